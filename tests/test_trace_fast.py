"""The compiled replay engine against the readable one (swiotlb_lib/trace/fast.py).

The compiled engine is a twin of swiotlb_lib.pool's slot search and release and of
swiotlb_lib.trace.engine.Engine; the two must agree on every slot (the cost counters count
every candidate slot examined and every area lock), failure, tally, livelock, timeline
point and kernel log line.  Four sets of inputs:

- random traces, a thousand per profile whose pool does not grow: mixed devices (DMA masks
  below and above the buffers, min_align_mask and segment boundaries from the device
  presets), alignment masks and NO_WARN attributes as the kprobe records carry them,
  mappings too big for any pool, virtio-blk requests and lone mappings, every lifetime
  model, real unmaps with some lost, pools from 128 slots up, with and without force, the
  advisor's early stop;
- every recorded trace in data/ at its own size and at a small pool that fails;
- every golden vector of the kernel's own allocator (data/oracle/), through the compiled
  slot search and release;
- RFC v1's profiles run the readable engine (the compiled one refuses them); the merged
  dynamic design's are tested in tests/test_trace_fast_dynamic.py.
"""
import json
import random

import numpy as np
import pytest

from swiotlb_lib.constants import DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, U64
from swiotlb_lib.device import Device
from swiotlb_lib.evidence import data_path
from swiotlb_lib.pool import IoTlbPool, search_params
from swiotlb_lib.trace import fast
from swiotlb_lib.trace import read_trace
from swiotlb_lib.trace.engine import StopRule
from swiotlb_lib.trace.read import Mapping, Trace
from swiotlb_lib.trace.replay import prepare_replay, replay
from swiotlb_lib.trace.synthesize import synthesize_trace
from swiotlb_lib.trace.table import MappingTable
from swiotlb_lib.trace.read import parse_trace
from swiotlb_lib.versions import PROFILES, get_profile

STATIC = [p for p in PROFILES if not get_profile(p).is_dynamic]
GROWING = [p for p in PROFILES if get_profile(p).is_dynamic]
PER_PROFILE = 1000


def outcome(r) -> dict:
    """Everything a replay reports."""
    d = r.result.to_dict()
    d["livelocks"] = [x.to_dict() for x in r.livelocks]
    d["nslabs"] = r.nslabs
    d["warnings"] = list(r.warnings)
    d["complete"] = r.complete
    if r.timeline is not None:
        d["timeline_t"] = r.timeline.t.tolist()
        d["timeline_used"] = r.timeline.used.tolist()
    return d


def both(trace, *args, **kw):
    """Replay on both engines, assert they agree; returns the outcome (``"compiled"``: whether
    the compiled engine could run it: not when the machine boots no pool)."""
    a = outcome(replay(trace, *args, engine="reference", **kw))
    try:
        b = outcome(replay(trace, *args, engine="compiled", **kw))
    except ValueError as e:
        assert "cannot run this replay: no single boot pool" in str(e)
        assert a["nslabs"] == 0
        b = outcome(replay(trace, *args, engine="auto", **kw))
        a["compiled"] = b["compiled"] = False
    diff = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert not diff, f"engines differ on {sorted(diff)}: {str(diff)[:600]}"
    a.setdefault("compiled", True)
    return a


def recorded_tlb(rng: random.Random):
    """A bounce address ``map_ret`` recorded, for half the mappings: in 256 slots, so that
    later mappings reuse a buffer's slots.  A replay only compares it with its own address
    and, with the recorded lifetimes, infers a lost unmap from it (``lost_unmap_times``: a
    mapping the kernel made, with no unmap, whose slots a later mapping got)."""
    return 0x7F000000 + rng.randrange(256) * 2048 if rng.random() < 0.5 else None


def random_kprobe_trace(rng: random.Random, n: int) -> Trace:
    """Lone mappings with what the kprobes record: direction, alignment mask, attributes,
    bounce addresses (:func:`recorded_tlb`), unmap times (some lost: no unmap event, some
    never unmapped)."""
    devs = [("0000:00:04.0", U64), ("0000:00:05.0", (1 << 32) - 1), ("0000:00:06.0", (1 << 30) - 1)]
    events = []
    t = 1.0
    for _ in range(n):
        t += rng.expovariate(1 / 50e-6)
        dev, mask = rng.choice(devs)
        size = rng.choice([1, 16, 200, 2048, 4096, 4097, 8192, 65536, 131072, 262144, 262145,
                           rng.randrange(1, 300000)])
        orig = rng.choice([rng.randrange(1 << 20, 1 << 29), rng.randrange(1 << 32, 1 << 34)])
        orig &= ~rng.choice([0, 0xF, 0x7FF, 0xFFF])
        align = rng.choice([0, 0, 0, 0xFFF, 0xFFFF, 0x1FFFF])
        attrs = rng.choice([0, 0, DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC])
        mp = Mapping(0, t, rng.randrange(4), "fio-1", dev, mask, orig, size, "FORCE",
                     dir=rng.choice([0, 1, 2]), align_mask=align, attrs=attrs, tlb=recorded_tlb(rng))
        fate = rng.random()
        end = None if fate < 0.05 else t + rng.expovariate(1 / rng.choice([100e-6, 2e-3]))
        events.append((t, 0, mp))
        if end is not None:
            events.append((end, 1, mp))
    return kprobe_trace(events, "random")


def kprobe_trace(events, name: str) -> Trace:
    """The trace of ``(time, 0, mapping)`` map and ``(time, 1, mapping)`` unmap events, lines
    numbered in time order from 10."""
    events.sort(key=lambda e: (e[0], e[1]))
    tr = Trace(name)
    for line, (tm, kind, mp) in enumerate(events, 10):
        if kind == 0:
            mp.line = mp.map_line = line
            tr.mappings.append(mp)
        else:
            mp.unmap_time, mp.unmap_line = tm, line
            tr.counts["unmap"] += 1
    tr.counts["map"] = tr.counts["swiotlb_bounced"] = len(tr.mappings)
    if len(tr.mappings) % 10:
        # as columns, the form the trace readers give: a list of Mapping would be turned into
        # columns again by every step of every replay (prepare_replay, the RAM size, each
        # engine), a third of a small case's time; one trace in ten keeps the list
        tr.mappings = MappingTable.from_mappings(tr.mappings)
    return tr


def random_block_trace(rng: random.Random, n: int) -> Trace:
    return parse_trace(synthesize_trace(n, seed=rng.randrange(1 << 30), cpus=rng.choice([1, 2, 4]),
                                        request_kib=tuple(rng.sample([4, 16, 64, 256, 512, 1024], 3)),
                                        max_sectors_kb=rng.choice([128, 256, 1280]),
                                        contiguity=rng.random(), gap_us=rng.choice([5.0, 40.0, 200.0])))


def random_case(rng: random.Random, profile: str):
    """One random case: a kprobe trace (10-149 lone mappings) or a synthesized block trace
    (10-199 events), a pool of 128 to 4096 slots in 1-8 areas with or without force,
    a lifetime model, 4 or 8 CPUs, a device preset or none, a timeline or not, a request given
    up after 3 retries or after the replay's default 100 (the livelock test ends it first when
    nothing else is in flight; a limit of 1000 would repeat the same failing search of a full
    pool ten times as often and reach no other path), and for three cases in ten the
    advisor's early stop."""
    kprobes = rng.random() < 0.5
    tr = random_kprobe_trace(rng, rng.randrange(10, 150)) if kprobes else \
        random_block_trace(rng, rng.randrange(10, 200))
    nslabs = rng.choice([128, 256, 512, 1024, 4096])
    opts = [str(nslabs)]
    if rng.random() < 0.3:
        opts.append(str(rng.choice([1, 2, 4, 8])))      # areas
    if rng.random() < 0.85:
        opts.append("force")
    lt = rng.choice(["fixed:300us", "fixed:3ms", "exp:1ms", "lognormal:800us,0.7", "qd:1", "qd:8"]
                    + (["real", "real"] if kprobes else []))
    kw = dict(cpus=rng.choice([4, 8]), device=rng.choice([None, None, "nvme", "pci32"]),
              seed=rng.randrange(100), timeline=rng.random() < 0.7, max_retries=rng.choice([3, 100]),
              livelock_repeats=rng.choice([2, 3]), follow=False)
    if rng.random() < 0.3:
        kw["stop_when"] = StopRule(rng.choice([None, 0.01, 0.2]), rng.random() < 0.5)
    return tr, profile, "swiotlb=" + ",".join(opts), lt, kw


@pytest.mark.parametrize("profile", STATIC)
def test_random_traces_agree(profile):
    rng = random.Random(f"fast-{profile}")
    seen = {"failed": 0, "livelocks": 0, "stopped": 0, "real": 0, "qd": 0, "direct": 0, "compiled": 0}
    for _ in range(PER_PROFILE):
        tr, prof, cmdline, lt, kw = random_case(rng, profile)
        out = _both_prepared(tr, prof, cmdline, lt, kw)
        seen["failed"] += out["failed"] > 0
        seen["livelocks"] += bool(out["livelocks"])
        seen["stopped"] += not out["complete"]
        # the recorded lifetimes with unmaps inferred for the lost ones; a queue depth that
        # completed requests as others arrived (what the engines did, not what was asked)
        seen["real"] += lt == "real" and out.get("lost_unmaps", 0) > 0
        seen["qd"] += lt.startswith("qd") and out["requests_completed"] > 0
        seen["direct"] += out["mapped"] > out["bounced"]
        seen["compiled"] += out["compiled"]
    # the random cases reach every path (counts vary with the seed; each is many)
    assert all(v >= PER_PROFILE // 50 for v in seen.values()), seen
    assert seen["compiled"] >= PER_PROFILE * 3 // 4, seen


def _both_prepared(tr, prof, cmdline, lt, kw):
    device = kw.pop("device")
    prep = prepare_replay(tr, "auto", device)
    return both(prep, prof, cmdline, lt, device=device, **kw)


RECORDED = sorted(p for d in ("realkernel", "realkernel-nvme", "realkernel-dynamic")
                  for p in data_path(d).glob("trace-*.txt"))


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_recorded_traces_agree(path):
    tr = read_trace(path)
    prep = prepare_replay(tr)
    lts = ["real", "fixed:1500us"] if tr.has_unmaps else ["fixed:1500us", "qd:4"]
    for k, profile in enumerate(STATIC):
        for lt in lts:
            both(prep, profile, None, lt, follow=False)
        if k % 2 == 0:                                  # a pool that fails, for half the profiles
            # at most 10 retries of a request (the default is 100): the same paths (requeue,
            # retry, give up) with a tenth of the failing searches, each a scan of the pool
            out = both(prep, profile, "swiotlb=256,force", lts[k // 2 % 2], follow=False, max_retries=10)
            assert out["failed"] > 0


@pytest.mark.parametrize("profile", [p for p in GROWING if get_profile(p).rfc_posted])
def test_rfc_profiles_run_the_reference(profile):
    """RFC v1 as posted has no compiled twin: refused, and "auto" falls back.  (RFC v1 as
    intended and the merged design are compiled: tests/test_trace_fast_rfc.py and
    tests/test_trace_fast_dynamic.py.)"""
    tr = random_block_trace(random.Random(1), 200)
    with pytest.raises(ValueError, match="engine: the compiled engine cannot run this replay: RFC v1 as posted "
                                         r"\(rfc-v1-posted\): its stale tree entries and use-after-free lookups"):
        replay(tr, profile, engine="compiled")
    fast.warm()                                                   # loaded: "auto" tries it
    assert fast.worth_it(tr) and replay(tr, profile).result.attempted == 200      # and falls back


def test_engine_argument_is_checked():
    tr = random_block_trace(random.Random(2), 50)
    with pytest.raises(ValueError, match="engine: must be 'auto', 'reference' or 'compiled', got 'fast'"):
        replay(tr, "v6.11", engine="fast")
    with pytest.raises(ValueError, match="the early stop is not a StopRule"):
        replay(tr, "v6.11", engine="compiled", stop_when=lambda eng: False)


def test_without_numba_the_reference_runs():
    """numba missing (a plain ``pip install`` that failed to get it): replay still works, on the
    readable engine, and says why when the compiled one is asked for."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['numba'] = None\n"
            "from swiotlb_lib.trace.read import parse_trace\n"
            "from swiotlb_lib.trace.synthesize import synthesize_trace\n"
            "from swiotlb_lib.trace.replay import replay\n"
            "tr = parse_trace(synthesize_trace(300))\n"
            "print(replay(tr, 'v6.11', 'swiotlb=256,force').result.failed)\n"
            "try:\n    replay(tr, 'v6.11', 'swiotlb=256,force', engine='compiled')\n"
            "except ValueError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    failed, why = out.splitlines()
    tr = parse_trace(synthesize_trace(300))
    assert int(failed) == replay(tr, "v6.11", "swiotlb=256,force", engine="reference").result.failed > 0
    assert why == "engine: the compiled engine cannot run this replay: numba is not installed"


# -- the compiled allocator against the kernel's golden vectors ------------------------------
ORACLE = sorted(data_path("oracle").glob("vectors-*.jsonl"))


def _num(v):
    return int(v, 0) if isinstance(v, str) else v


def twin_vectors(lines):
    """Replay an oracle vector file (data/oracle/README.md) with the compiled allocator
    functions (fast.search_area, fast.release_slots) on an IoTlbPool's arrays; yield
    ``(line number, expected, got)`` for every op whose result they decide.  The per-call
    arithmetic around the search (sub-slot offset, padding and rounding, the areas tried from
    the CPU's, swiotlb_map's reach check) is written out here, from swiotlb_tbl_map_single()
    (kernel/dma/swiotlb.c at the commit each file's meta line names); the expected values are
    the kernel's."""
    prof = pool = None
    devs, live = {}, {}
    for n, line in enumerate(lines, 1):
        rec = json.loads(line)
        op, exp = rec["op"], rec.get("expect", {})
        if op == "meta":
            prof = get_profile(rec["version"])
        elif op == "init":
            pool = IoTlbPool(_num(rec["start"]), _num(rec["nslabs"]), _num(rec["nareas"]), prof)
            areas = [np.zeros(pool.nareas, np.int64) for _ in range(3)]     # index, used, locks
            exam = np.zeros(1, np.int64)
            live.clear()
        elif op == "dev":
            devs[rec["name"]] = Device(rec["name"], dma_mask=_num(rec["dma_mask"]),
                                       min_align_mask=_num(rec["min_align_mask"]),
                                       seg_boundary_mask=_num(rec["seg_boundary_mask"]))
        elif op in ("map", "swiotlb_map"):
            dev, orig, size = devs[rec["dev"]], _num(rec["orig"]), _num(rec["size"])
            align = _num(rec.get("align", 0)) if op == "map" else 0
            mam = dev.min_align_mask
            if prof.pad_slots:
                offset = orig & mam & (align | 2047)
                alloc = -(-(size + offset) // (align + 1)) * (align + 1) if align else size + offset
            else:
                offset = orig & mam & 2047
                alloc = size + offset
            nslots = -(-alloc // 2048)
            p = search_params(pool, mam, align, alloc >= 4096, dev.seg_boundary)
            skip, obits = (p[3] | p[4], (orig >> 11) & p[4]) if orig else (p[3], 0)
            first = -1
            a = start = _num(rec.get("cpu", 0)) & (pool.nareas - 1)
            while True:
                first = fast.search_area(pool.list, pool.alloc_size, areas[0], areas[1], areas[2], exam, 0, 0, 0,
                                         a, nslots, alloc - (orig & mam & 2047), p[0], p[1], p[2], p[5], int(p[6]),
                                         skip, obits, pool.area_nslabs, int(pool.round_start))
                a = (a + 1) % pool.nareas
                if first >= 0 or a == start:
                    break
            got = {"tlb": None, "slot": -1}
            live[rec["id"]] = None
            if first >= 0:
                pad = offset >> 11 if prof.pad_slots else 0
                pool.pad_slots[first + pad] = pad
                tlb = pool.start + ((first + pad) << 11) + (offset & 2047)
                if op == "swiotlb_map" and tlb + size - 1 > dev.reach:      # dma_capable()
                    fast.release_slots(pool.list, pool.alloc_size, pool.orig_addr, pool.pad_slots, areas[1],
                                       areas[2], 0, 0, pool.start, int(pool.has_pad), pool.area_nslabs, tlb, mam)
                    got.update(rejected_tlb=hex(tlb), rejected_slot=(tlb - pool.start) >> 11)
                else:
                    got = {"tlb": hex(tlb), "slot": (tlb - pool.start) >> 11, "first_slot": first,
                           "nslots": nslots}
                    live[rec["id"]] = (tlb, mam)
            yield n, {k: exp.get(k) for k in got}, got
        elif op == "unmap":
            entry = live.pop(rec["id"])
            freed = 0 if entry is None else fast.release_slots(
                pool.list, pool.alloc_size, pool.orig_addr, pool.pad_slots, areas[1], areas[2], 0, 0, pool.start,
                int(pool.has_pad), pool.area_nslabs, entry[0], entry[1])
            yield n, {"freed": exp["freed"]}, {"freed": freed}
        elif op in ("dump", "dumpfull"):
            got = {"used": int(areas[1].sum()), "list_hash": pool.list_hash(),
                   "areas": [[int(i), int(u)] for i, u in zip(areas[0], areas[1])]}
            if op == "dumpfull":
                got["list"] = [int(x) for x in pool.list[:pool.nslabs]]
            yield n, {k: exp.get(k) for k in got}, got


@pytest.mark.parametrize("path", ORACLE, ids=lambda p: p.name)
def test_compiled_allocator_matches_the_kernel_vectors(path):
    checked = 0
    for n, want, got in twin_vectors(path.read_text().splitlines()):
        if want.get("tlb") is not None:
            want["tlb"] = hex(int(want["tlb"], 16))
        if want.get("rejected_tlb") is not None:
            want["rejected_tlb"] = hex(int(want["rejected_tlb"], 16))
        assert got == want, f"{path.name} line {n}"
        checked += 1
    assert checked > 100


def test_values_beyond_the_int32_table_run_the_reference():
    """The compiled engine's per-mapping table is int32: a mapping whose allocation size can
    pass 2**31 - 1 (here an alloc_align_mask of 0xffffffff: 6.9+ round the size up to 4 GiB)
    is refused with the reason, and "auto" replays it on the reference."""
    mp = Mapping(0, 1.0, 0, "fio-1", "0000:00:04.0", U64, 1 << 24, 4096, "FORCE", dir=1,
                 align_mask=0xFFFFFFFF, attrs=0)
    small = Mapping(0, 1.1, 0, "fio-1", "0000:00:04.0", U64, 1 << 25, 4096, "FORCE", dir=1)
    tr = kprobe_trace([(1.0, 0, mp), (1.1, 0, small), (1.2, 1, small), (1.3, 1, mp)], "align")
    with pytest.raises(ValueError, match="cannot run this replay: a mapping's size, alignment or line number "
                                         "does not fit the 32-bit table MI"):
        replay(tr, "v6.11", engine="compiled")
    fast.warm()                                                   # loaded: "auto" tries it
    assert fast.worth_it(tr)
    r = replay(tr, "v6.11")
    # 4 GiB is over the 128-slot segment: that mapping fails too_big, the other one maps
    assert r.result.attempted == 2 and r.result.failed == 1
    assert outcome(r) == outcome(replay(tr, "v6.11", engine="reference"))
