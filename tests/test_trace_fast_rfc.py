"""The compiled replay engine against the readable one for RFC v1 as intended (``rfc-v1``:
swiotlb_lib/trace/fast_rfc.py, the twin of swiotlb_lib.dynamic.RfcDynamic).

Both engines must agree on everything a replay reports (slots through the cost counters,
failures and their causes, the RFC counters: dyn_attempts, dyn_skipped, dyn_failed,
dyn_buffers, dyn_zone_*, tree_lookups, tree_node_visits, dyn_lock_acquisitions, zeroed_bytes,
page_alloc_orders, live_dyn_buffers; bytes copied, peak bounce bytes, tallies, timeline, log
lines) and, for one case in five, on the machine after the run: the pool's slots, the tree's
ranges (buffers still live at the end), ``dyn_bytes``, and the page allocator's free lists,
live blocks and counters.  Inputs:

- random traces on a small RAM (64 MiB to 1 GiB, so that buffers fail: no_memory) and small
  boot pools, on devices whose DMA masks (and so coherent masks, which the trace's devices
  take from them) put their buffers in ZONE_Normal, ZONE_DMA32, ZONE_DMA (16 MiB) and below
  1 MiB (little RAM there: failures); mappings under a page, with an alignment mask, with
  ``DMA_ATTR_MAY_SLEEP`` of one page (``GFP_KERNEL``, the buddy path), every lifetime model,
  the advisor's early stop;
- every recorded trace in data/ that the other profiles' differential tests use;
- the cases the compiled engine refuses fall back to the reference, saying why.
"""
import random

import pytest

from swiotlb_lib.boot import Machine
from swiotlb_lib.memory import parse_size
from swiotlb_lib.constants import DMA_ATTR_MAY_SLEEP, DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, U64
from swiotlb_lib.device import Device
from swiotlb_lib.evidence import data_path
from swiotlb_lib.trace import read_trace
from swiotlb_lib.trace.engine import Engine, StopReplay, StopRule
from swiotlb_lib.trace.fast import CompiledEngine, supported, warm, worth_it
from swiotlb_lib.trace.lifetime import parse_lifetime
from swiotlb_lib.trace.read import Mapping, Trace
from swiotlb_lib.trace.replay import prepare_replay, replay

from test_trace_fast import kprobe_trace, outcome, random_block_trace, recorded_tlb

PER_CASE = 1000
STATE_EVERY = 5
RAMS = ["64M", "96M", "256M", "1G"]


def random_rfc_trace(rng: random.Random, n: int, ram: int = 1 << 30) -> Trace:
    """Lone mappings as the kprobes record them, on devices of four reaches (ZONE_Normal,
    ZONE_DMA32, ZONE_DMA, below 1 MiB), sizes around a page, some aligned, some that may
    sleep (one page only: a larger one is refused, tested below), bounce addresses
    (:func:`~test_trace_fast.recorded_tlb`), some unmaps lost; every
    buffer inside the first ``ram`` bytes (a replay's RAM must hold them)."""
    devs = [("0000:00:04.0", U64), ("0000:00:05.0", (1 << 32) - 1), ("0000:00:07.0", (1 << 24) - 1),
            ("0000:00:08.0", (1 << 20) - 1)]
    events = []
    t = 1.0
    for _ in range(n):
        t += rng.expovariate(1 / rng.choice([20e-6, 200e-6]))
        dev, mask = rng.choice(devs)
        size = rng.choice([1, 2048, 4095, 4096, 4097, 8192, 65536, 262144, 262145, 1 << 20, 5 << 20,
                           rng.randrange(1, 600000)])
        orig = rng.randrange(2 << 20, ram - (6 << 20)) & ~rng.choice([0, 0xF, 0xFFF])
        align = rng.choice([0, 0, 0, 0, 0xFFF])
        attrs = rng.choice([0, 0, DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC])
        if size == 4096 and rng.random() < 0.5:
            attrs |= DMA_ATTR_MAY_SLEEP                 # GFP_KERNEL: the buddy path (no CMA at one page)
        mp = Mapping(0, t, rng.randrange(4), "fio-1", dev, mask, orig, size, "FORCE", dir=rng.choice([0, 1, 2]),
                     align_mask=align, attrs=attrs, tlb=recorded_tlb(rng))
        events.append((t, 0, mp))
        if rng.random() >= 0.05:                        # else its unmap is lost
            events.append((t + rng.expovariate(1 / rng.choice([100e-6, 5e-3])), 1, mp))
    return kprobe_trace(events, "random-rfc")


def random_rfc_case(rng: random.Random):
    kprobes = rng.random() < 0.7
    ram = rng.choice(RAMS) if kprobes else None         # a block trace's buffers lie above 1 GiB
    tr = (random_rfc_trace(rng, rng.randrange(10, 120), parse_size(ram, "ram")) if kprobes
          else random_block_trace(rng, rng.randrange(10, 150)))
    opts = [str(rng.choice([128, 256, 1024])), "force", "dynamic"]
    if rng.random() < 0.3:
        opts.insert(1, str(rng.choice([1, 2, 4])))      # areas
    lt = rng.choice(["fixed:300us", "fixed:3ms", "exp:1ms", "lognormal:800us,0.7", "qd:1", "qd:8"]
                    + (["real", "real"] if kprobes else []))
    kw = dict(cpus=rng.choice([4, 8]), ram=ram, seed=rng.randrange(100),
              timeline=rng.random() < 0.7, max_retries=rng.choice([3, 20]),
              livelock_repeats=rng.choice([2, 3]), follow=False)
    if rng.random() < 0.2:
        kw["stop_when"] = StopRule(rng.choice([None, 0.01, 0.2]), rng.random() < 0.5)
    return tr, "swiotlb=" + ",".join(opts), lt, kw


def both_rfc(prep, cmdline, lt, **kw) -> dict:
    """rfc-v1 on both engines (the compiled one strictly: no fallback); they must agree."""
    a = outcome(replay(prep, "rfc-v1", cmdline, lt, engine="reference", **kw))
    b = outcome(replay(prep, "rfc-v1", cmdline, lt, engine="compiled", **kw))
    diff = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert not diff, f"engines differ on {sorted(diff)}: {str(diff)[:600]}"
    return a


def end_state(tr, cmdline, lt, kw, cls, window=None) -> dict:
    """One replay on engine class ``cls`` as replay() does, and the machine after it."""
    prep = prepare_replay(tr, "auto", None)
    m = Machine(ram=prep.ram_for(kw["ram"], "6.1"), cpus=kw["cpus"], cmdline=cmdline, kernel="rfc-v1")
    eng = cls(tr, m, parse_lifetime(lt, kw["seed"]), prep.reqs, kw["max_retries"], kw["livelock_repeats"], 0.003,
              kw["timeline"], None, prep.template, None)
    eng.stop = kw.get("stop_when")
    if window is not None:                              # the compiled engine's first window (rows)
        eng.window = window
    try:
        eng.run()
    except StopReplay:
        pass
    if cls is CompiledEngine:
        assert eng.fallback is None, eng.fallback
    mem, dyn = m.swiotlb, m.swiotlb.dyn
    p = mem.defpool
    return {"result": eng.finish().to_dict(), "tally": dict(eng.tally),
            "pool": (p.list.tolist(), p.alloc_size.tolist(), p.orig_addr.tolist(), list(p.area_index),
                     list(p.area_used), list(p.area_locks), p.slots_examined),
            "tree": [(f, last, s.orig_addr, s.alloc_size, s.paddr, s.nbytes, s.how, s.freed)
                     for f, last, s in dyn.tree.ranges()],
            "dyn": (dyn.nlive, dyn.dyn_bytes, dyn.costs(), dyn.bounce_bytes()),
            "mem": (mem.nslabs, mem.total_used, mem.used_hiwater, mem.bytes_copied),
            "pages": (m.pages.free_lists(), m.pages.allocations(), m.pages.stats(), dict(m.pages.costs)),
            "log": (list(m.log.lines), m.log.now), "peak": (eng.peak, eng.peak_bytes),
            "window": ((eng.ring.w, eng.ring.reused, eng.ring.filled, eng.ring.relocated)
                       if window is not None else None)}


def test_random_traces_agree():
    rng = random.Random("fast-rfc")
    seen = {"buffers": 0, "skipped": 0, "no_memory": 0, "pool_full": 0, "DMA": 0, "DMA32": 0, "Normal": 0,
            "live_at_end": 0, "stopped": 0, "real": 0, "qd": 0, "states": 0}
    for k in range(PER_CASE):
        tr, cmdline, lt, kw = random_rfc_case(rng)
        out = both_rfc(prepare_replay(tr), cmdline, lt, **kw)
        costs = out["costs"]
        seen["buffers"] += costs.get("dyn_buffers", 0) > 0
        seen["skipped"] += costs.get("dyn_skipped", 0) > 0
        seen["no_memory"] += out["failures"]["no_memory"] > 0
        seen["pool_full"] += out["failures"]["pool_full"] > 0
        for zone in ("DMA", "DMA32", "Normal"):
            seen[zone] += costs.get("dyn_zone_" + zone, 0) > 0
        seen["live_at_end"] += costs["live_dyn_buffers"] > 0
        seen["stopped"] += not out["complete"]
        # the recorded lifetimes with unmaps inferred for the lost ones; a queue depth that
        # completed requests as others arrived (what the engine did, not what was asked)
        seen["real"] += lt == "real" and out.get("lost_unmaps", 0) > 0
        seen["qd"] += lt.startswith("qd") and out["requests_completed"] > 0
        if k % STATE_EVERY == 0:
            a = end_state(tr, cmdline, lt, kw, Engine)
            b = end_state(tr, cmdline, lt, kw, CompiledEngine)
            diff = sorted(key for key in a if a[key] != b[key])
            assert not diff, f"case {k}: machines differ on {diff}"
            seen["states"] += 1
    # the random cases reach every path (counts vary with the seed; each is many)
    assert all(v >= PER_CASE // 50 for v in seen.values()), str(seen)


RECORDED = sorted(p for d in ("realkernel", "realkernel-nvme", "realkernel-dynamic")
                  for p in data_path(d).glob("trace-*.txt"))


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_recorded_traces_agree(path):
    """Every recorded trace, with its own unmaps where it has them."""
    tr = read_trace(path)
    lt = "real" if tr.has_unmaps else "fixed:1500us"
    out = both_rfc(prepare_replay(tr), "swiotlb=256,force,dynamic", lt, follow=False)
    # NVMe's min_align_mask (inferred from the trace) sends every mapping to the fixed slots
    assert out["costs"].get("dyn_buffers" if "nvme" not in str(path) else "dyn_skipped", 0) > 0


def _refusal(tr, cmdline="swiotlb=128,force,dynamic", kernel="rfc-v1", device=None, **kw):
    """The compiled engine's refusal of a replay, and that "auto" then gives the reference's
    result.  The engine is loaded first, so that "auto" tries it (worth_it) and falls back,
    rather than choosing the reference for a short trace."""
    with pytest.raises(ValueError, match="engine: the compiled engine cannot run this replay: ") as e:
        replay(tr, kernel, cmdline, "fixed:1ms", engine="compiled", device=device, **kw)
    warm()
    assert worth_it(tr)
    a = outcome(replay(tr, kernel, cmdline, "fixed:1ms", engine="auto", device=device, **kw))
    assert a == outcome(replay(tr, kernel, cmdline, "fixed:1ms", engine="reference", device=device, **kw))
    return str(e.value).split("cannot run this replay: ")[1]


def test_refused_cases_fall_back():
    """rfc-v1-posted, memory encryption, a sleeping mapping over a page (CMA), a device whose
    coherent mask reaches beyond its DMA mask: refused with the reason, the reference runs."""
    tr = random_block_trace(random.Random(5), 60)
    assert _refusal(tr, kernel="rfc-v1-posted") == \
        "RFC v1 as posted (rfc-v1-posted): its stale tree entries and use-after-free lookups"
    sleepy = kprobe_trace([(1.0, 0, Mapping(0, 1.0, 0, "fio-1", "0000:00:04.0", U64, 1 << 30, 8192, "FORCE", dir=1,
                                            attrs=DMA_ATTR_MAY_SLEEP))], "sleepy")
    assert _refusal(sleepy) == "a mapping that may sleep (DMA_ATTR_MAY_SLEEP) is over a page (RFC v1 tries CMA first)"
    # the pci32 preset's coherent mask is 32 bits; the trace's device has a 24-bit DMA mask, so its
    # buffers may lie above its reach, where swiotlb_map's dma_capable() re-check unmaps the buffer
    # and fails (out_of_reach): not twinned, refused, and "auto" gives the reference's result
    narrow = kprobe_trace([(1.0, 0, Mapping(0, 1.0, 0, "fio-1", "0000:00:05.0", (1 << 24) - 1, 1 << 33, 8192,
                                            "FORCE", dir=1))], "narrow")
    assert _refusal(narrow, device="pci32") == ("device 0000:00:05.0: its coherent DMA limit reaches beyond its "
                                                "DMA mask (a dynamic buffer out of reach)")
    assert replay(narrow, "rfc-v1", "swiotlb=128,force,dynamic", "fixed:1ms", engine="reference",
                  device="pci32").result.failures["out_of_reach"] == 1
    prep = prepare_replay(tr)
    m = Machine(ram="1G", cpus=4, cmdline="swiotlb=128,force,dynamic", kernel="rfc-v1")
    eng = CompiledEngine(tr, m, parse_lifetime("fixed:1ms"), prep.reqs, 3, 3, 0.003, False, None, None, None)
    assert supported(eng) is None
    m.swiotlb.cc_mem_encrypt = True
    assert supported(eng) == "memory encryption is active (RFC v1's buffers come from the atomic pool)"
    eng.run()
    assert eng.fallback == supported(eng) and eng.res.attempted == 60
    m.swiotlb.cc_mem_encrypt = False
    dev = m.add_device(Device("live"))
    m.swiotlb.map_checked_args(dev, 1 << 28, 8192, 8192, 0, 1, 0, 0)   # a buffer of its own, live
    assert supported(eng) == "RFC v1 buffers are live"


def test_without_dynamic_option_compiles():
    """``rfc-v1`` booted without ``dynamic`` (a machine built here: replay() always adds it)
    never tries a buffer (allow_dyn false): compiled, the same machine as the reference."""
    tr = random_rfc_trace(random.Random(7), 80)
    kw = dict(ram="1G", cpus=4, seed=1, max_retries=3, livelock_repeats=3, timeline=True)
    a = end_state(tr, "swiotlb=128,force", "fixed:1ms", kw, Engine)
    b = end_state(tr, "swiotlb=128,force", "fixed:1ms", kw, CompiledEngine)
    assert a == b
    # by hand: before_map returns at once, so RfcDynamic counts nothing (no key at all)
    assert not any(k.startswith(("dyn_", "tree_")) for k in a["result"]["costs"])
    assert a["result"]["costs"]["live_dyn_buffers"] == 0 and a["result"]["bounced"] > 0
