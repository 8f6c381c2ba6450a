"""The compiled replay engine against the readable one for the profiles that grow the pool
(swiotlb_lib/trace/fast.py and its parts fast_dynamic.py, fast_pages.py).

v6.6-dynamic and v6.11-dynamic (``CONFIG_SWIOTLB_DYNAMIC``, swiotlb_lib.dynamic.Grower) run
on both engines, which must agree on everything a replay reports (every slot through the
cost counters, failures and their causes, transient pools, pools added, the worker's kicks
and runs, the page orders allocated, peak bounce bytes, tallies, timeline, log lines) and,
for one case in ten, on the machine after the run: every pool's slot arrays and area
counters, the devices' transient pools, the worker's state, and the page allocator's free
lists, live blocks and counters.  Inputs:

- random traces, a thousand per profile, on small boot pools (128 to 1024 slots)
  so that transient pools and the worker's pools happen: kprobe traces with devices whose
  DMA masks reach all of RAM, 4 GiB, 1 GiB, 16 MiB (ZONE_DMA) and 1 MiB (the x86_64 model has
  less than 640 KiB of RAM below 1 MiB, so transient pools there soon fail: no_memory), block
  traces, every lifetime model, worker delays from 0 to never within the trace, the
  advisor's early stop;
- a machine whose memory runs out (the worker fails, transient pools fail);
- every recorded trace in data/ on a small pool;
- the states the compiled engine does not model are refused with their reason.
"""
import random

import pytest

from swiotlb_lib.boot import Machine
from swiotlb_lib.constants import DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, U64
from swiotlb_lib.evidence import data_path
from swiotlb_lib.gfp import GFP_KERNEL, Gfp
from swiotlb_lib.trace import read_trace
from swiotlb_lib.trace.engine import Engine, StopReplay, StopRule
from swiotlb_lib.trace.fast import CompiledEngine, supported
from swiotlb_lib.trace.lifetime import parse_lifetime
from swiotlb_lib.trace.read import Mapping, Trace, parse_trace
from swiotlb_lib.trace.replay import prepare_replay, replay
from swiotlb_lib.trace.synthesize import synthesize_trace
from swiotlb_lib.versions import get_profile

from test_trace_fast import both, kprobe_trace, random_block_trace

GROWING = ["v6.6-dynamic", "v6.11-dynamic"]
PER_PROFILE = 1000
STATE_EVERY = 10


def random_dyn_trace(rng: random.Random, n: int) -> Trace:
    """Lone mappings as the kprobes record them, on devices of five reaches (two of them
    inside ZONE_DMA, where their transient pools must lie), some unmaps lost."""
    devs = [("0000:00:04.0", U64), ("0000:00:05.0", (1 << 32) - 1), ("0000:00:06.0", (1 << 30) - 1),
            ("0000:00:07.0", (1 << 24) - 1), ("0000:00:08.0", (1 << 20) - 1)]
    events = []
    t = 1.0
    for _ in range(n):
        t += rng.expovariate(1 / rng.choice([20e-6, 200e-6]))
        dev, mask = rng.choice(devs)
        size = rng.choice([1, 200, 2048, 4096, 8192, 65536, 131072, 262144, 262145, rng.randrange(1, 300000)])
        orig = rng.choice([rng.randrange(1 << 20, 1 << 29), rng.randrange(1 << 32, 1 << 34)])
        orig &= ~rng.choice([0, 0xF, 0x7FF, 0xFFF])
        align = rng.choice([0, 0, 0, 0xFFF, 0xFFFF])
        attrs = rng.choice([0, 0, DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC])
        mp = Mapping(0, t, rng.randrange(4), "fio-1", dev, mask, orig, size, "FORCE",
                     dir=rng.choice([0, 1, 2]), align_mask=align, attrs=attrs)
        end = None if rng.random() < 0.05 else t + rng.expovariate(1 / rng.choice([100e-6, 5e-3]))
        events.append((t, 0, mp))
        if end is not None:
            events.append((end, 1, mp))
    return kprobe_trace(events, "random-dynamic")


def random_dyn_case(rng: random.Random, profile: str):
    kprobes = rng.random() < 0.6
    tr = (random_dyn_trace(rng, rng.randrange(10, 120)) if kprobes
          else random_block_trace(rng, rng.randrange(10, 150)))
    opts = [str(rng.choice([128, 256, 512, 1024]))]
    if rng.random() < 0.3:
        opts.append(str(rng.choice([1, 2, 4])))         # areas
    if rng.random() < 0.85:
        opts.append("force")
    lt = rng.choice(["fixed:300us", "fixed:3ms", "exp:1ms", "lognormal:800us,0.7", "qd:1", "qd:8"]
                    + (["real", "real"] if kprobes else []))
    kw = dict(cpus=rng.choice([4, 8]), device=rng.choice([None, None, "nvme", "pci32"]),
              seed=rng.randrange(100), timeline=rng.random() < 0.7, max_retries=rng.choice([3, 20]),
              livelock_repeats=rng.choice([2, 3]), follow=False,
              worker_delay=rng.choice([None, None, 0.0, 1e-4, 2e-3, 60.0]))
    if rng.random() < 0.25:
        kw["stop_when"] = StopRule(rng.choice([None, 0.01, 0.2]), rng.random() < 0.5)
    return tr, profile, "swiotlb=" + ",".join(opts), lt, kw


def end_state(tr, profile, cmdline, lt, kw, cls, prepare=None, window=None) -> dict:
    """Run one replay on engine class ``cls`` as replay() does (no follow), after
    ``prepare(machine)`` if given, and return its result and the machine after it: pools,
    devices' transient pools, worker, page allocator, log (None when the machine boots without
    a pool, so the profile has nothing to grow)."""
    prep = prepare_replay(tr, "auto", kw["device"])
    prof = get_profile(profile)
    m = Machine(ram=prep.ram_for(None, "6.12" if prof.pad_slots else "6.1"), cpus=kw["cpus"], cmdline=cmdline,
                kernel=prof)
    dyn = m.swiotlb.dyn
    if dyn is None:                                     # no pool at boot: the profile cannot grow one
        return None
    dyn.worker_delay = dyn.WORKER_DELAY_TCG if kw["worker_delay"] is None else kw["worker_delay"]
    eng = cls(tr, m, parse_lifetime(lt, kw["seed"]), prep.reqs, kw["max_retries"], kw["livelock_repeats"], 0.003,
              kw["timeline"], None, prep.template, None)
    eng.stop = kw.get("stop_when")
    if window is not None:                              # the compiled engine's first window (rows)
        eng.window = window
    if prepare is not None:
        prepare(m)
    try:
        eng.run()
    except StopReplay:
        pass
    mem = m.swiotlb
    if cls is CompiledEngine:
        assert eng.fallback is None, eng.fallback
    res = eng.finish().to_dict()
    return {"result": res, "tally": dict(eng.tally), "livelocks": [x.to_dict() for x in eng.livelocks],
            "pools": [(p.start, p.nslabs, p.nareas, p.name, p.alloc_how, p.list.tolist(), p.alloc_size.tolist(),
                       p.orig_addr.tolist(), p.pad_slots.tolist(), list(p.area_index), list(p.area_used),
                       list(p.area_locks), p.slots_examined) for p in mem.pools],
            "transient": {d.name: [(p.start, p.nslabs, p.transient, p.alloc_how, p.list.tolist(),
                                    p.pad_slots.tolist(),
                                    p.orig_addr.tolist()) for p in d.dma_io_tlb_pools]
                          for d in m.devices.values()},
            "uses": {d.name: d.dma_uses_io_tlb for d in m.devices.values()},
            "mem": (mem.nslabs, mem.total_used, mem.used_hiwater, mem.transient_nslabs, mem.bytes_copied),
            "worker": (dyn.pending, dyn.kicked_at, dyn.pool_bytes, dyn.transient_bytes, dyn.costs()),
            "pages": (m.pages.free_lists(), m.pages.allocations(), m.pages.stats()),
            "log": (list(m.log.lines), m.log.now), "peak": (eng.peak, eng.peak_bytes),
            "window": ((eng.ring.w, eng.ring.reused, eng.ring.filled, eng.ring.relocated)
                       if window is not None else None)}


@pytest.mark.parametrize("profile", GROWING)
def test_random_traces_agree(profile):
    rng = random.Random(f"fast-dyn-{profile}")
    seen = {"transient": 0, "added": 0, "no_memory": 0, "failed": 0, "stopped": 0, "real": 0, "qd": 0,
            "states": 0, "compiled": 0}
    for k in range(PER_PROFILE):
        tr, prof, cmdline, lt, kw = random_dyn_case(rng, profile)
        device = kw.pop("device")
        out = both(prepare_replay(tr, "auto", device), prof, cmdline, lt, device=device, **kw)
        seen["compiled"] += out["compiled"]
        seen["transient"] += out["transient_pools"] > 0
        seen["added"] += out["pools_added"] > 0
        seen["no_memory"] += out["failures"]["no_memory"] > 0
        seen["failed"] += out["failed"] > 0
        seen["stopped"] += not out["complete"]
        seen["real"] += lt == "real"
        seen["qd"] += lt.startswith("qd")
        if k % STATE_EVERY == 0 and out["compiled"]:
            kw["device"] = device
            a = end_state(tr, prof, cmdline, lt, kw, Engine)
            b = end_state(tr, prof, cmdline, lt, kw, CompiledEngine)
            diff = sorted(key for key in a if a[key] != b[key])
            assert not diff, f"case {k}: machines differ on {diff}"
            seen["states"] += 1
    # the random cases reach every path (counts vary with the seed; each is many)
    assert all(v >= PER_PROFILE // 50 for v in seen.values()), seen
    assert seen["compiled"] >= PER_PROFILE * 3 // 4, seen


def fill_dma32(m) -> None:
    """Take every free block of 32 pages or more from ZONE_DMA32, leaving ZONE_DMA's 16 MiB
    (``GFP_KERNEL | __GFP_DMA32`` tries ZONE_DMA32 first, ZONE_DMA after it: a block below
    16 MiB says ZONE_DMA32 has none left of that order; it is given back)."""
    for order in range(10, 4, -1):
        while True:
            p = m.pages.alloc_pages(GFP_KERNEL | Gfp.DMA32, order, owner="kernel")
            if p is None:
                break
            if p < 16 << 20:
                m.pages.free_pages(p, order)
                break


def test_exhausted_memory_agrees():
    """Memory runs out: the worker adds pools until it fails ("Failed to allocate new pool"),
    transient pools fail (no_memory); both engines agree on all of it."""
    tr = parse_trace(synthesize_trace(3000, seed=5, request_kib=(1024,), gap_us=5.0))
    kw = dict(cpus=4, device=None, seed=1, timeline=True, max_retries=3, livelock_repeats=3, worker_delay=0.0)
    for profile in GROWING:
        a = end_state(tr, profile, "swiotlb=128,force", "fixed:200ms", kw, Engine, fill_dma32)
        b = end_state(tr, profile, "swiotlb=128,force", "fixed:200ms", kw, CompiledEngine, fill_dma32)
        diff = sorted(key for key in a if a[key] != b[key])
        assert not diff, f"{profile}: machines differ on {diff}"
        # 1 MiB requests every 5 us held for 200 ms need far more than the 16 MiB of ZONE_DMA:
        # the worker's 1 MiB pools (swiotlb=128 rounds up to 1 MiB) succeed, then fail
        costs = a["result"]["costs"]
        assert costs["pools_added"] >= 1 and costs["worker_failures"] >= 1, costs
        assert a["result"]["failures"]["no_memory"] > 0
        assert any("Failed to allocate new pool" in line for line in a["log"][0])


def test_refused_states():
    """What the compiled engine does not model it refuses, saying why; "auto" then runs the
    reference (with the same results as replay(engine="reference"))."""
    tr = random_block_trace(random.Random(3), 100)
    prep = prepare_replay(tr)
    m = Machine(ram=prep.ram_for(None, "6.1"), cpus=4, cmdline="swiotlb=128,force",
                kernel=get_profile("v6.6-dynamic"))
    eng = CompiledEngine(tr, m, parse_lifetime("fixed:1ms"), prep.reqs, 3, 3, 0.003, False, None, None, None)
    assert supported(eng) is None
    m.pages.alloc_pages(GFP_KERNEL, 0, owner="pagecache")
    assert supported(eng) == "the page allocator has pagecache to reclaim"
    eng.run()
    assert eng.fallback == "the page allocator has pagecache to reclaim"
    m.swiotlb.dyn.run_pending_work()
    with pytest.raises(ValueError, match="engine: the compiled engine cannot run this replay: RFC v1 as posted "
                                         r"\(rfc-v1-posted\): its stale tree entries and use-after-free lookups"):
        replay(tr, "rfc-v1-posted", "swiotlb=128,force", engine="compiled")


RECORDED = sorted(p for d in ("realkernel", "realkernel-nvme", "realkernel-dynamic")
                  for p in data_path(d).glob("trace-*.txt"))


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.name)
def test_recorded_traces_agree(path):
    """Every recorded trace on a small boot pool (transient pools and the worker's pools),
    each growing profile once, with the trace's own unmaps where it has them."""
    tr = read_trace(path)
    prep = prepare_replay(tr)
    lt = "real" if tr.has_unmaps else "fixed:1500us"
    for profile in GROWING:
        out = both(prep, profile, "swiotlb=256,force", lt, follow=False)
        assert out["compiled"] and out["transient_pools"] > 0
