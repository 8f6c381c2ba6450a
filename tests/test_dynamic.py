"""Dynamic bounce buffers: RFC v1 and CONFIG_SWIOTLB_DYNAMIC (6.6, 6.11).

Each test states the fact it pins and where the fact comes from; expected values are
derived from those sources, not from running the model."""
import json

import pytest

from swiotlb_lib.boot import Machine
from swiotlb_lib.device import Device
from swiotlb_lib.constants import DMA_ATTR_MAY_SLEEP, DMA_BIDIRECTIONAL, DMA_TO_DEVICE
from swiotlb_lib.oracle import replay
from swiotlb_lib.swiotlb import DmaMappingError
from swiotlb_lib.scenarios.systems import run_scenario
from swiotlb_lib.evidence import data_path

MiB = 1 << 20


# -- RFC v1 patch 2/4 is a pure refactoring ------------------------------------------
def test_rfc_without_dynamic_gives_v63rc_answers():
    # 932dee179c95...@huawei.com: "Move code around" must not change behaviour; the
    # v6.3rc golden vectors (kernel 7c3940bf81e5, the RFC's base) replay identically.
    path = data_path("oracle", "vectors-v6.3rc-handmade.jsonl")
    lines = path.read_text().splitlines()
    expected = [json.loads(l).get("expect", {}) for l in lines]
    assert list(replay(lines, "rfc-v1")) == expected


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rfc_dynamic_off_equals_v63rc_on_random_machine_runs(seed):
    a = run_scenario("storage", kernel="v6.3rc", cmdline="swiotlb=1024,force", seed=seed)
    b = run_scenario("storage", kernel="rfc-v1", cmdline="swiotlb=1024,force", seed=seed)
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d.pop("kernel")
    ca, cb = da.pop("costs"), db.pop("costs")
    assert da == db
    assert ca == {k: cb[k] for k in ca}               # same searches, locks, copies, lookups
    assert cb.get("tree_lookups", 0) == 0 and cb.get("dyn_attempts", 0) == 0


# -- RFC v1 patch 4/4: the option list ------------------------------------------------------
def test_rfc_option_list_parser():
    # e00c8c576b8e...@huawei.com: strsep on commas; force, noforce, dynamic; anything
    # else: "Invalid swiotlb option: %s".
    m = Machine(ram="2G", cpus=2, kernel="rfc-v1", cmdline="swiotlb=1024,force,dynamic,bogus")
    assert m.setup.force_bounce and m.setup.dynamic
    assert "software IO TLB: Invalid swiotlb option: bogus" in m.log.lines
    m = Machine(ram="2G", cpus=2, kernel="v6.3", cmdline="swiotlb=force,dynamic")
    assert not m.setup.force_bounce        # mainline: "force,dynamic" is not "force"


def _rfc(cmdline="swiotlb=force,dynamic", **kw):
    m = Machine(ram="2G", cpus=2, kernel="rfc-v1", cmdline=cmdline, **kw)
    return m, m.add_device("virtio-blk")


# -- RFC v1 patch 3/4 -------------------------------------------------------------------------
def test_rfc_dynamic_first_for_page_sized_buffers_and_no_cap():
    # 0334a54332ab...@huawei.com: swiotlb_dyn_map is tried first; it skips buffers
    # smaller than a page; it has no size cap (a 1 MiB bounce succeeds).
    m, dev = _rfc()
    pool = m.swiotlb.defpool
    small = m.dma.map_single(dev, 0x1000000, 512, DMA_TO_DEVICE)
    assert pool.start <= small < pool.end
    big = m.dma.map_single(dev, 0x2000000, 1 * MiB, DMA_TO_DEVICE, DMA_ATTR_MAY_SLEEP)
    assert not pool.start <= big < pool.end
    assert m.swiotlb.total_used == 1                      # the dynamic buffer uses no slots
    m.dma.unmap_single(dev, big, 1 * MiB, DMA_TO_DEVICE)
    assert m.swiotlb.dyn.bounce_bytes() == 0              # freed at unmap


def test_coherent_reach_is_min_not_zero_of_coherent_mask_and_bus_limit():
    # min_not_zero(coherent_dma_mask, bus_dma_limit): the streaming dma_mask plays no part
    assert Device("a", dma_mask=(1 << 30) - 1, coherent_dma_mask=(1 << 32) - 1).coherent_reach == 0xFFFF_FFFF
    assert Device("b", bus_dma_limit=(1 << 30) - 1).coherent_reach == 0x3FFF_FFFF     # 64-bit masks
    assert Device("c", coherent_dma_mask=(1 << 24) - 1, bus_dma_limit=(1 << 30) - 1).coherent_reach == 0xFF_FFFF


def test_rfc_buffer_beyond_dma_mask_fails_cleanly():
    # swiotlb_dyn_map allocates in the zone of the *coherent* mask (dma_direct_alloc_pages),
    # so a device whose streaming mask is narrower (1 GiB here) can get a buffer it cannot
    # reach; swiotlb_map's dma_capable() re-check then unmaps it and fails (out_of_reach).
    # A buffer of its own has no slot to report, and nothing stays allocated.
    m = Machine(ram="4G", cpus=2, kernel="rfc-v1", cmdline="swiotlb=force,dynamic")
    dev = m.add_device(Device("lowdev", dma_mask=(1 << 30) - 1, coherent_dma_mask=(1 << 32) - 1))
    used = m.pages.stats()["used"]
    with pytest.raises(DmaMappingError) as e:
        m.dma.map_single(dev, 0x100000000, 8192, DMA_TO_DEVICE)
    assert e.value.cause == "out_of_reach"
    assert e.value.rejected_slot is None and e.value.rejected_tlb > (1 << 30) - 1
    assert m.swiotlb.dyn.nlive == 0 and m.swiotlb.dyn.bounce_bytes() == 0
    assert m.pages.stats()["used"] == used
    assert "overflow" in m.swiotlb.log.lines[-1]


def test_rfc_min_align_or_alignment_goes_to_fixed_slots():
    # "DMA direct does not deal with physical address constraints"
    m = Machine(ram="2G", cpus=2, kernel="rfc-v1", cmdline="swiotlb=force,dynamic")
    nv = m.add_device("nvme")
    dma = m.dma.map_single(nv, 0x1000200, 8192, DMA_TO_DEVICE)
    assert m.swiotlb.defpool.start <= dma < m.swiotlb.defpool.end


def test_rfc_tree_lookup_on_every_unmap_of_every_device():
    # is_swiotlb_buffer consults the maple tree when dynamic buffers are allowed, also
    # for devices that never bounce (Christoph Hellwig, 20230328040724.GB25506@lst.de).
    m = Machine(ram="6G", cpus=2, kernel="rfc-v1", cmdline="swiotlb=dynamic")
    dev = m.add_device("virtio-blk")                      # 64-bit: maps directly
    for _ in range(10):
        m.dma.unmap_single(dev, m.dma.map_single(dev, 0x150000000, 4096, 1), 4096, 1)
    assert m.swiotlb.costs()["tree_lookups"] == 10
    m2 = Machine(ram="6G", cpus=2, kernel="rfc-v1")          # dynamic not enabled
    dev2 = m2.add_device("virtio-blk")
    for _ in range(10):
        m2.dma.unmap_single(dev2, m2.dma.map_single(dev2, 0x150000000, 4096, 1), 4096, 1)
    assert m2.swiotlb.costs().get("tree_lookups", 0) == 0


def test_rfc_bytes_round_trip_through_dynamic_buffer():
    m, dev = _rfc()
    m.cpu_write(0x3000000, b"x" * 8192)
    dma = m.dma.map_single(dev, 0x3000000, 8192, DMA_BIDIRECTIONAL)
    assert m.device_read(dev, dma, 8192) == b"x" * 8192
    m.device_write(dev, dma + 100, b"y" * 50)
    m.dma.unmap_single(dev, dma, 8192, DMA_BIDIRECTIONAL)
    assert m.cpu_read(0x3000000 + 100, 50) == b"y" * 50


# -- the RFC's Raspberry Pi 4 facts ---------------------------------------------------------
def test_rpi4_4k_fails_on_v63_with_pool_nearly_empty():
    # Cover letter: 4K buffers "cannot be even handled by current SWIOTLB, because they
    # exceed the maximum segment size of 256 KiB"; the logged lines show a nearly empty
    # pool ("total 32768 (slots), used 3136 (slots)").
    r = run_scenario("rpi4-4k", kernel="v6.3", seed=1)
    assert r.extra["imports_ok"] == 0 and r.extra["imports_failed"] > 0
    full = [l for l in r.log if "swiotlb buffer is full" in l]
    assert full and all(l.startswith("vc4-drm gpu: ") for l in full)
    assert r.peak_used_slots < 32768 // 10


def test_rpi4_4k_rfc_maps_with_may_sleep_and_cma():
    # RFC v1 + swiotlb=dynamic maps them when the importer passes DMA_ATTR_MAY_SLEEP
    # (Petr's tree set it in drm_gem_map_dma_buf, f42723f3-...@huaweicloud.com) and CMA
    # has room: dma_alloc_contiguous is used only by callers that may sleep.
    r = run_scenario("rpi4-4k", kernel="rfc-v1", seed=1)
    assert r.extra["imports_failed"] == 0 and r.extra["imports_ok"] > 0


def test_rpi4_4k_rfc_without_may_sleep_fails_on_big_segments():
    # Without MAY_SLEEP the allocation is GFP_NOWAIT: no CMA, so a segment larger than the
    # largest buddy block (4 MiB, MAX_ORDER 10) cannot be allocated.
    r = run_scenario("rpi4-4k", kernel="rfc-v1", seed=1, may_sleep=False)
    assert r.extra["largest_segment"] > 4 * MiB
    assert r.extra["imports_failed"] > 0 and r.failures["no_memory"] > 0


def test_rpi4_4k_still_fails_on_v66_dynamic():
    # 6.6 transient pools hold exactly one mapping of at most one segment (128 slots): the
    # merged design dropped the RPi use case (Christoph Hellwig agreed, 20230411035131.GA15795@lst.de).
    for k in ("v6.6-dynamic", "v6.11-dynamic"):
        r = run_scenario("rpi4-4k", kernel=k, seed=1)
        assert r.extra["imports_ok"] == 0, k


# -- 6.6 CONFIG_SWIOTLB_DYNAMIC ----------------------------------------------------------------
def _dyn(kernel="v6.6-dynamic", cmdline="swiotlb=512,force", worker_delay=None, ram="2G"):
    m = Machine(ram=ram, cpus=2, kernel=kernel, cmdline=cmdline, worker_delay=worker_delay)
    return m, m.add_device("virtio-blk")


@pytest.mark.parametrize("kernel", ["v6.6-dynamic", "v6.11-dynamic"])
def test_transient_pool_exactly_request_slots_freed_at_unmap(kernel):
    # 79636caad361: when all pools fail, a transient pool of exactly nr_slots(size) slots,
    # one area, freed at unmap; the worker is kicked.
    m, dev = _dyn(kernel)
    held = [m.dma.map_single(dev, 0x1000000 + i * 0x40000, 256 * 1024, 1) for i in range(4)]
    assert m.swiotlb.total_used == 512
    dma = m.dma.map_single(dev, 0x3000000, 6000, 1)
    dev_pools = dev.dma_io_tlb_pools
    assert len(dev_pools) == 1 and dev_pools[0].nslabs == 3 and dev_pools[0].nareas == 1
    assert m.swiotlb.dyn.pending                       # worker kicked, not yet run
    if kernel == "v6.11-dynamic":
        assert m.debugfs()["io_tlb_transient_nslabs"] == 3
    assert m.debugfs()["io_tlb_nslabs"] == 512          # transient slots are not counted
    m.dma.unmap_single(dev, dma, 6000, 1)
    assert dev.dma_io_tlb_pools == [] and m.swiotlb.transient_nslabs == 0
    for h in held:
        m.dma.unmap_single(dev, h, 256 * 1024, 1)
    assert m.swiotlb.total_used == 0


def test_worker_adds_boot_size_pool_capped_at_4mib_and_never_shrinks():
    # swiotlb_dyn_alloc: default_nslabs capped at SLABS_PER_PAGE << MAX_ORDER = 2048 slots;
    # pools are never freed (no path removes them, 20230707122213.3a7378b5@meshulam.tesarici.cz).
    m, dev = _dyn(cmdline="swiotlb=force")              # boot pool 64 MiB
    held = [m.dma.map_single(dev, 0x1000000 + i * 0x40000, 256 * 1024, 1) for i in range(256)]
    assert m.swiotlb.total_used == 32768
    extra = m.dma.map_single(dev, 0x9000000, 4096, 1)   # transient
    assert m.run_pending_work()
    newest = m.swiotlb.pools[0]
    assert newest.nslabs == 2048 and newest.nareas == 2 and m.swiotlb.nslabs == 32768 + 2048
    after = m.dma.map_single(dev, 0x9100000, 4096, 1)
    assert newest.start <= after < newest.end             # newest pool searched first
    for h in held + [extra, after]:
        m.dma.unmap_single(dev, h, 4096 if h in (extra, after) else 256 * 1024, 1)
    assert m.swiotlb.nslabs == 32768 + 2048 and len(m.swiotlb.pools) == 2


def test_worker_small_boot_pool_and_delay():
    # swiotlb=512: the worker adds 1 MiB pools; with a delay it runs only once model time
    # has passed.
    m, dev = _dyn(worker_delay=0.005)
    for i in range(4):
        m.dma.map_single(dev, 0x1000000 + i * 0x40000, 256 * 1024, 1)
    m.dma.map_single(dev, 0x2000000, 4096, 1)
    assert m.swiotlb.dyn.pending
    m.advance(0.004)
    assert m.swiotlb.dyn.pending
    m.advance(0.002)
    assert not m.swiotlb.dyn.pending and m.swiotlb.pools[0].nslabs == 512


def test_v611_rejects_oversize_before_growing_but_v66_tries():
    # 6.11: "if (alloc_size > IO_TLB_SEGSIZE * IO_TLB_SIZE) return -1" before any growth;
    # 6.6 had no such check, so a 512 KiB request allocates a transient pool and frees it.
    m, dev = _dyn("v6.11-dynamic")
    with pytest.raises(DmaMappingError) as e:
        m.dma.map_single(dev, 0x1000000, 512 * 1024, 1)
    assert e.value.cause == "too_big" and not m.swiotlb.dyn.pending
    m, dev = _dyn("v6.6-dynamic")
    with pytest.raises(DmaMappingError) as e:
        m.dma.map_single(dev, 0x1000000, 512 * 1024, 1)
    assert e.value.cause == "too_big" and m.swiotlb.dyn.pending
    assert m.swiotlb.costs()["transient_search_failed"] == 1


def test_uses_io_tlb_shortcut():
    # 1395706a1490 / 2d5780bbef8d: a device that never bounced skips the pool walk.
    m = Machine(ram="6G", cpus=2, kernel="v6.6-dynamic")
    dev = m.add_device("virtio-blk")
    for _ in range(5):
        m.dma.unmap_single(dev, m.dma.map_single(dev, 0x150000000, 4096, 1), 4096, 1)
    c = m.swiotlb.costs()
    assert c["lookups"] == 5 and c.get("lookup_steps", 0) == 0


def test_coco_every_mapping_bounces_on_every_profile():
    # Confidential guests force all DMA through bounce buffers (Documentation/core-api/swiotlb.rst; arch/x86/mm/mem_encrypt.c: mem_encrypt_setup_arch()).
    for k in ("v6.3rc", "rfc-v1", "v6.6", "v6.6-dynamic", "v6.11-dynamic"):
        r = run_scenario("coco-guest", kernel=k, seed=2)
        assert r.mapped > 0 and r.bounced == r.mapped, k


def test_arm_board_oom_fixed_pool_vs_small_pool_with_growth():
    # Cover letter: "get rid of occasional OOM kills on an Arm embedded device by reducing
    # the SWIOTLB size"; a small pool that grows when needed avoids them.
    assert run_scenario("arm-board-oom", kernel="v6.3", seed=1).oom_events > 0
    r = run_scenario("arm-board-oom", kernel="v6.6-dynamic", seed=1)
    assert r.oom_events == 0 and r.failed == 0


def test_scenarios_deterministic_for_a_seed():
    # 100 requests (about 4400 mappings) already make the 1 MiB pool grow, so the run
    # covers the growth worker and transient pools; both runs must agree on everything
    kw = dict(kernel="v6.6-dynamic", cmdline="swiotlb=512,force", seed=7, requests=100)
    a = run_scenario("storage", **kw)
    b = run_scenario("storage", **kw)
    assert a.pools_added > 0 and a.costs["transient_pools"] > 0
    assert a.to_dict() == b.to_dict()
