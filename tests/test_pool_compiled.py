"""The slot search and release that the Python API runs compiled (``swiotlb_lib.fast_pool``
``find_slots`` and ``release_pool_slots`` on a pool's store) against the readable reference
(``swiotlb_lib.pool.pool_find_slots`` and ``release_slots``): the same random sequences of
``dma_map_single``, ``swiotlb_tbl_map_single`` and unmaps on every profile, run once with the
compiled twins off and once on, must return the same addresses and failures and leave the
same slots, area counters, cost counters and kernel messages.  The golden vectors of the
kernel's own code replay exactly with the twins on too."""
import json
import random

import pytest

from swiotlb_lib import pool as pool_mod
from swiotlb_lib.boot import Machine
from swiotlb_lib.debug import SEARCH_AREA, subscribe
from swiotlb_lib.constants import DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE
from swiotlb_lib.device import Device
from swiotlb_lib.evidence import data_path
from swiotlb_lib.jit import HAVE_NUMBA
from swiotlb_lib.oracle import replay
from swiotlb_lib.swiotlb import DmaMappingError
from swiotlb_lib.versions import get_profile

pytestmark = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is a pinned dependency; without it only the "
                                "reference exists")

PROFILES = ["v6.3rc", "v6.3", "v6.6", "v6.11", "v6.6-dynamic", "v6.11-dynamic", "rfc-v1"]
SEQUENCES = 1000         # per profile, of up to 120 operations each
DIRS = [DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE]


@pytest.fixture
def compiled():
    """Switch the twins on or off for one run; the reference again afterwards."""
    yield pool_mod.use_compiled
    pool_mod.use_compiled(False)


def state(m):
    """Everything the search and release write, and what the API layers above them keep."""
    mem = m.swiotlb
    pools = [(p.start, p.nslabs, p.list.tolist(), p.alloc_size.tolist(), p.orig_addr.tolist(),
              p.pad_slots.tolist(), p.area_index, p.area_used, p.area_locks, p.slots_examined) for p in mem.pools]
    live = sorted((b.tlb_addr, b.first_slot, b.nslots, b.orig_addr, b.mapping_size) for b in mem.live.values())
    costs = json.dumps(mem.costs(), sort_keys=True, default=str)
    return pools, live, mem.total_used, mem.used_hiwater, mem.bytes_copied, costs, list(m.log.lines)


def run(profile, seed, on, compiled):
    """One seeded sequence with the twins ``on`` or off: each operation's result, the end state."""
    compiled(on)
    rng = random.Random(seed)
    nslabs = rng.choice([256, 512, 1024, 2048])
    nareas = rng.choice([1, 2, 4])
    force = "" if profile.endswith("dynamic") and rng.random() < 0.5 else ",force"
    m = Machine(ram="6G", cpus=4, cmdline=f"swiotlb={nslabs},{nareas}{force}", kernel=profile)
    devs = [m.add_device("virtio-blk"), m.add_device("nvme"),
            m.add_device(Device("seg64k", seg_boundary_mask=0xFFFF)),
            m.add_device(Device("tiny", min_align_mask=0x3)),
            m.add_device(Device("dma32", dma_mask=0xFFFFFFFF, min_align_mask=0x7FF))]
    mem = m.swiotlb
    out, live = [], []
    for _ in range(rng.randrange(1, 120)):
        if live and rng.random() < 0.4:
            dev, dma, size, d, how = live.pop(rng.randrange(len(live)))
            attrs = DMA_ATTR_SKIP_CPU_SYNC if rng.random() < 0.2 else 0
            if how == "tbl":
                out.append(("unmap", mem.tbl_unmap_single(dev, dma, size, d, attrs)))
            else:
                m.dma.unmap_single(dev, dma, size, d, attrs)
                out.append(("unmap", dma))
            continue
        dev = rng.choice(devs)
        size = rng.choice([rng.randrange(1, 4097), rng.choice([2048, 4096, 65536, 262144]),
                           rng.randrange(1, 300 * 1024)])
        d = rng.choice(DIRS)
        orig = 0x1000_0000 + rng.randrange(1 << 16) * 0x1000 + rng.randrange(0x1000)
        cpu = rng.randrange(4)
        try:
            if rng.random() < 0.25:
                align = rng.choice([0, 0x7FF, 0xFFF, 0x1FFF, 0xFFFF])
                if profile in ("v6.11", "v6.11-dynamic"):
                    alloc = None
                else:
                    alloc = size + rng.choice([0, 0, 100, 5000])
                dma = mem.tbl_map_single(dev, orig, size, alloc, align, d, 0, cpu)
                how = "tbl"
            else:
                dma = m.dma.map_single(dev, orig, size, d, cpu=cpu)
                how = "dma"
        except DmaMappingError as e:
            out.append(("failed", e.cause, str(e), e.rejected_tlb))
        else:
            out.append(("mapped", dma))
            live.append((dev, dma, size, d, how))
    return out, state(m)


@pytest.mark.parametrize("profile", PROFILES)
def test_random_sequences_agree_with_the_reference(profile, compiled):
    failures = mapped = 0
    for seed in range(SEQUENCES):
        ref = run(profile, seed, False, compiled)
        got = run(profile, seed, True, compiled)
        assert got[0] == ref[0], f"{profile} seed {seed}: the operations' results differ"
        assert got[1] == ref[1], f"{profile} seed {seed}: the end states differ"
        failures += sum(r[0] == "failed" for r in ref[0])
        mapped += sum(r[0] == "mapped" for r in ref[0])
    # the sequences reach what they are for: full pools and refused requests, not only mappings
    assert failures > SEQUENCES and mapped > 10 * SEQUENCES


def map_unmap(n, kernel="v6.11"):
    """``n`` map+unmap pairs of 4 KiB on a fresh forced-bounce machine; its default pool."""
    m = Machine(ram="2G", cpus=1, cmdline="swiotlb=1024,force", kernel=kernel)
    dev = m.add_device("virtio-blk")
    for i in range(n):
        dma = m.dma.map_single(dev, 0x1000_0000 + i * 4096, 4096, DMA_BIDIRECTIONAL)
        m.dma.unmap_single(dev, dma, 4096, DMA_BIDIRECTIONAL)
    return m.swiotlb.defpool


def test_the_switch_chooses_who_searches(compiled, monkeypatch):
    """The comparisons above would pass if the switch did nothing: count the reference's
    area searches with the twins off (one per map), on (none), and on with a probe
    registered on the search's hook point (one per map again, each delivered)."""
    calls = []
    reference = pool_mod._search_area
    monkeypatch.setattr(pool_mod, "_search_area", lambda *a: calls.append(1) or reference(*a))
    compiled(False)
    assert map_unmap(50).slots_examined == 50 and len(calls) == 50
    compiled(True)
    assert map_unmap(50).slots_examined == 50 and len(calls) == 50
    seen = []
    sub = subscribe(SEARCH_AREA, seen.append)
    try:
        assert map_unmap(50).slots_examined == 50 and len(calls) == 100 and len(seen) == 50
    finally:
        sub.unsubscribe()


def test_the_default_switches_after_a_budget_of_searches(compiled, monkeypatch):
    calls = []
    reference = pool_mod._search_area
    monkeypatch.setattr(pool_mod, "_search_area", lambda *a: calls.append(1) or reference(*a))
    monkeypatch.setattr(pool_mod, "COMPILED_AFTER", 30)
    compiled(None)
    pool = map_unmap(50)
    assert len(calls) == 30 and pool.slots_examined == 50 and pool.area_used == [0]


@pytest.mark.parametrize("name", ["vectors-v6.3rc-handmade.jsonl", "vectors-v6.3-handmade.jsonl",
                                  "vectors-v6.6-handmade.jsonl", "vectors-v6.11-handmade.jsonl",
                                  "vectors-v6.3-random-public.jsonl", "vectors-v6.6-random-public.jsonl",
                                  "vectors-v6.11-random-public.jsonl"])
def test_golden_vectors_replay_with_the_twins(name, compiled):
    compiled(True)
    lines = data_path("oracle", name).read_text().splitlines()
    stripped = []
    for line in lines:
        rec = json.loads(line)
        rec.pop("expect", None)
        stripped.append(json.dumps(rec))
    got = list(replay(stripped))
    bad = [(n, g) for n, (line, g) in enumerate(zip(lines, got), 1) if g != json.loads(line).get("expect", {})]
    assert len(got) == len(lines) and not bad, f"{len(bad)} lines differ, first: {bad[:1]}"


def test_the_twins_are_called_past_the_dispatcher():
    """The speed of the twins comes from calling their compiled entry point directly (the
    dispatcher's type resolution costs more than the search): a Numba that no longer has one
    would fall back to the dispatcher, still right but slow; this says so."""
    from swiotlb_lib import fast_pool, jit
    p = pool_mod.IoTlbPool(0, 128, 1, get_profile("v6.11"))
    args = (p.store, p.layout, 0, 0)
    fn = jit.entry_point(fast_pool.release_pool_slots, *args)
    assert fn is not fast_pool.release_pool_slots and fn(*args) == 0     # nothing mapped, nothing freed
