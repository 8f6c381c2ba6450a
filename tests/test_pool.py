"""Allocator unit tests against worked examples computed by hand from the kernel's rules
(``kernel/dma/swiotlb.c@0459ff487373: swiotlb_do_find_slots()`` and
``@afd81d914f6f: swiotlb_search_pool_area()``) and the kernel's documented rules."""
import pytest

from swiotlb_lib.constants import IO_TLB_SEGSIZE
from swiotlb_lib.device import Device
from swiotlb_lib.memory import PhysMemory
from swiotlb_lib.pool import IoTlbPool, nr_slots, search_pool_area
from swiotlb_lib.swiotlb import DmaMappingError, IoTlbMem
from swiotlb_lib.versions import get_profile


def make(profile, nslabs=32768, nareas=4, start=0x7C000000):
    mem = IoTlbMem(profile, memory=PhysMemory(), nr_cpus=64)
    mem.init_pool(start, nslabs, nareas)
    plain = Device("plain")
    nv = Device("nvme", min_align_mask=0xFFF)
    for d in (plain, nv):
        d.dma_io_tlb_mem = mem
    return mem, plain, nv


# §3.5: slot -> tlb for the five requests, for v6.3/v6.6 and for v6.9+ (v6.11 profile)
SPEC_35 = {
    "v6.3": [(0, 0x7C000000), (2, 0x7C001000), (3, 0x7C001800), (5, 0x7C002900), (8192, 0x7D000000)],
    "v6.6": [(0, 0x7C000000), (2, 0x7C001000), (3, 0x7C001800), (5, 0x7C002900), (8192, 0x7D000000)],
    "v6.11": [(0, 0x7C000000), (2, 0x7C001000), (4, 0x7C002000), (7, 0x7C003900), (8192, 0x7D000000)],
}


@pytest.mark.parametrize("profile", sorted(SPEC_35))
def test_spec_worked_example(profile):
    mem, plain, nv = make(profile)
    reqs = [(plain, 0x10000000, 4096, 0), (plain, 0x10000200, 512, 0), (plain, 0x10000800, 4096, 0),
            (nv, 0x20000900, 6000, 0), (plain, 0x30000000, 65536, 1)]
    got = []
    for dev, orig, size, cpu in reqs:
        tlb = mem.tbl_map_single(dev, orig, size, cpu=cpu)
        got.append(((tlb - 0x7C000000) >> 11, tlb))
    assert got == SPEC_35[profile]
    with pytest.raises(DmaMappingError) as e:
        mem.tbl_map_single(plain, 0x40000000, 300 * 1024)
    assert e.value.cause == "too_big"
    pool = mem.defpool
    if profile == "v6.11":
        assert (pool.area_index[0], pool.area_used[0]) == (11, 9)
        assert pool.list[3] == 1 and pool.list[6] == 1 and pool.list[11] == 117
    else:
        assert (pool.area_index[0], pool.area_used[0]) == (9, 9)
        assert list(pool.list[:13]) == [0] * 9 + [119, 118, 117, 116]
    # unmapping request 2 (slot 2): v6.3 -> list[2] = 1; v6.9+ merges with free slot 3 -> 2
    mem.tbl_unmap_single(plain, SPEC_35[profile][1][1], 512)
    assert pool.list[2] == (2 if profile == "v6.11" else 1)


def test_max_mapping_size_nvme_is_252k():
    mem, plain, nv = make("v6.11")
    assert mem.max_mapping_size(nv) == 252 * 1024
    assert mem.max_mapping_size(plain) == 256 * 1024


@pytest.mark.parametrize("profile", ["v6.3rc", "v6.3", "v6.6", "v6.11"])
def test_allocation_never_crosses_a_segment(profile):
    mem, plain, _ = make(profile, nslabs=1024, nareas=1)
    mem.tbl_map_single(plain, 0x1000, 100 * 2048)        # slots 0..99
    tlb = mem.tbl_map_single(plain, 0x100000, 64 * 2048)  # does not fit in 100..127
    first = (tlb - 0x7C000000) >> 11
    assert first // IO_TLB_SEGSIZE == (first + 63) // IO_TLB_SEGSIZE
    assert first == 128


@pytest.mark.parametrize("profile", ["v6.3rc", "v6.3", "v6.6", "v6.11"])
def test_wrap_resets_to_zero_and_failures_leave_index(profile):
    mem, plain, _ = make(profile, nslabs=256, nareas=1)
    pool = mem.defpool
    tlb = mem.tbl_map_single(plain, 0x1000, 128 * 2048)
    assert pool.area_index[0] == 128
    mem.tbl_map_single(plain, 0x100000, 128 * 2048)
    assert pool.area_index[0] == 0                      # index + nslots == area_nslabs -> 0
    with pytest.raises(DmaMappingError):
        mem.tbl_map_single(plain, 0x200000, 2048)
    assert pool.area_index[0] == 0 and pool.area_used[0] == 256
    assert mem.log.lines[-1].endswith("swiotlb buffer is full (sz: 2048 bytes), total 256 (slots), used 256 (slots)")
    mem.tbl_unmap_single(plain, tlb, 128 * 2048)
    assert pool.area_index[0] == 0                      # release does not touch the index


def test_start_area_is_cpu_and_full_area_spills_to_next():
    mem, plain, _ = make("v6.6", nslabs=1024, nareas=4)
    pool = mem.defpool
    t = mem.tbl_map_single(plain, 0x1000, 4096, cpu=6)  # 6 & 3 = area 2
    assert pool.slot_of(t) // 256 == 2
    for k in range(2):
        mem.tbl_map_single(plain, 0x100000 + k * 0x40000, 128 * 2048, cpu=3)
    t = mem.tbl_map_single(plain, 0x200000, 2048, cpu=3)  # area 3 is full -> wraps to area 0
    assert pool.slot_of(t) // 256 == 0


def test_nr_slots():
    assert [nr_slots(x) for x in (1, 2048, 2049, 4096, 262144)] == [1, 1, 2, 2, 128]


def test_release_merges_only_inside_segment():
    prof = get_profile("v6.3")
    pool = IoTlbPool(0, 256, 1, prof)
    a = search_pool_area(pool, 0, 0, 126 * 2048, 0, 0, (1 << 64) - 1)
    assert a == 0
    b = search_pool_area(pool, 0, 0, 2 * 2048, 0, 0, (1 << 64) - 1)
    assert b == 126 and pool.list[128] == 128
    assert list(pool.free_runs_from_scratch()) == list(pool.list[:256])


def test_tail_cap_only_from_v6_7():
    assert IoTlbPool(0, 1000, 1, get_profile("v6.3")).list[999] == 128 - 999 % 128
    assert IoTlbPool(0, 1000, 1, get_profile("v6.11")).list[999] == 1


# -- the slot search against an address-level restatement of the kernel loop -------------

def _reference_search(pool, area, orig, size, align, min_align, boundary):
    """The candidate loop of ``swiotlb_search_pool_area`` (v6.11) / ``swiotlb_do_find_slots``
    (v6.3-rc, v6.3) written on 64-bit slot addresses, as the kernel does.  Returns the
    first slot that would be taken, without taking it (or -1)."""
    from swiotlb_lib.constants import IO_TLB_SHIFT
    nslots = nr_slots(size)
    big = size >= 4096
    # the alignment rules as the cited commits state them, on byte addresses
    if pool.profile.align_rule == "v6.9":           # 04867a7a3332, af133562d5af
        zero_mask = (align or (0xFFF if big and not min_align else 0)) | 0x7FF
        cmp_mask = min_align & ~zero_mask
        stride = (max(zero_mask, cmp_mask) >> 11) + 1
    elif pool.profile.align_rule == "v6.3":         # 0eee5ae10256 + bbb73a103fbb
        zero_mask = 0
        cmp_mask = (min_align | align | (0xFFF if big else 0)) & ~0x7FF
        stride = (cmp_mask >> 11) + 1
    else:                                           # v6.3-rc, 7c3940bf81e5
        zero_mask = 0
        cmp_mask = min_align & ~0x7FF
        stride = (cmp_mask >> 11) + 1
        if big:
            stride = max(stride, stride << 1)
        stride = max(stride, (align >> 11) + 1)
    if not orig:
        cmp_mask = 0
    tbl = pool.start & boundary
    max_slots = (boundary >> 11) + 1
    if nslots > pool.area_nslabs - pool.area_used[area]:
        return -1
    index = pool.area_index[area]
    if pool.round_start:
        index = (index + stride - 1) & ~(stride - 1)
        if index >= pool.area_nslabs:
            index = 0
    checked = 0
    while checked < pool.area_nslabs:
        slot = area * pool.area_nslabs + index
        taddr = tbl + (slot << IO_TLB_SHIFT)
        if taddr & zero_mask or (taddr & cmp_mask) != (orig & cmp_mask):
            index, checked = index + 1, checked + 1
        elif (nr_slots(tbl) + slot) % max_slots + nslots <= max_slots and pool.list[slot] >= nslots:
            return slot
        else:
            index, checked = index + stride, checked + stride
        if index >= pool.area_nslabs:
            index = 0
    return -1


@pytest.mark.parametrize("profile", ["v6.3rc", "v6.3", "v6.11"])
def test_search_matches_address_level_loop(profile):
    """The model searches in slot units with cached per-request constants; every choice
    must equal the address-level loop's, for random alignments, min_align masks, segment
    boundaries (including ones that do not divide the pool start) and pool fill states."""
    import random
    rng = random.Random(7)
    for trial in range(60):
        start = rng.choice([0x7C000000, 0x7FECF000, 0x1_0000_0800, 0x3F_FFF0_0000])
        nslabs = rng.choice([256, 1000, 4096])
        pool = IoTlbPool(start, nslabs, rng.choice([1, 2, 4]), get_profile(profile))
        boundary = rng.choice([0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF, 0xFFFF, 0x3FFFF])
        for _ in range(120):
            min_align = rng.choice([0, 0, 0x3, 0x7FF, 0xFFF, 0x3FFF])
            align = rng.choice([0, 0, 0x7FF, 0xFFF, 0xFFFF])
            orig = rng.choice([0, rng.randrange(1 << 40)])
            size = rng.choice([1, 512, 2048, 4096, 6000, 65536, rng.randrange(1, 1 << 18)])
            area = rng.randrange(pool.nareas)
            want = _reference_search(pool, area, orig, size, align, min_align, boundary)
            got = search_pool_area(pool, area, orig, size, align, min_align, boundary)
            assert got == want, (trial, hex(orig), size, hex(align), hex(min_align), hex(boundary))
            if got >= 0 and rng.random() < 0.4:       # free some buffers again, at random
                from swiotlb_lib.pool import release_slots
                pool.orig_addr[got] = orig
                release_slots(pool, pool.start + (got << 11) + (orig & min_align & 0x7FF), min_align)


def test_release_rewrites_every_slot_of_a_long_buffer():
    """``swiotlb_release_slots`` (afd81d914f6f) on a 40-slot buffer and on neighbours: the
    freed slots count down to the free run after them, their ``orig_addr`` is
    ``INVALID_PHYS_ADDR``, ``alloc_size`` and ``pad_slots`` 0 (values by hand)."""
    mem, plain, nv = make("v6.11", nslabs=256, nareas=1)
    pool = mem.defpool
    a = mem.tbl_map_single(plain, 0x10000000, 4 * 2048)           # slots 0-3
    b = mem.tbl_map_single(plain, 0x20000000, 4 * 2048)           # slots 4-7
    c = mem.tbl_map_single(plain, 0x30000000, 40 * 2048)          # slots 8-47
    assert [(x - pool.start) >> 11 for x in (a, b, c)] == [0, 4, 8]
    assert list(pool.orig_addr[8:48]) == [0x30000000 + 2048 * i for i in range(40)]
    assert list(pool.alloc_size[8:48]) == [(40 - i) * 2048 for i in range(40)]
    mem.tbl_unmap_single(plain, c, 40 * 2048)
    # slots 8..127 free again: counts 120 down to 1 across the segment
    assert list(pool.list[8:128]) == list(range(120, 0, -1))
    assert (pool.orig_addr[8:48] == 2**64 - 1).all() and not pool.alloc_size[8:48].any()
    mem.tbl_unmap_single(plain, b, 4 * 2048)
    # b merges with the 120-slot run after it: 124 (slot 4) .. 121 (slot 7)
    assert list(pool.list[4:8]) == [124, 123, 122, 121]
    mem.tbl_unmap_single(plain, a, 4 * 2048)
    assert list(pool.list[:128]) == list(range(128, 0, -1)) and mem.total_used == 0
    assert (pool.orig_addr[:48] == 2**64 - 1).all() and not pool.alloc_size.any() and not pool.pad_slots.any()


def test_padding_slot_cleared_and_not_left_for_the_next_buffer():
    """6.9+ padding (af133562d5af): an NVMe buffer (min_align_mask 0xfff) at offset 0x800
    with a 4 KiB alloc_align_mask takes one padding slot, so ``pad_slots`` of its first
    real slot is 1; after the unmap every ``pad_slots`` is 0 and the next plain buffer
    (from the area index, slot 2, past the first buffer's two slots) records none."""
    mem, plain, nv = make("v6.11", nslabs=256, nareas=1)
    pool = mem.defpool
    tlb = mem.tbl_map_single(nv, 0x10000800, 2048, alloc_align_mask=0xFFF)
    # offset 0x800 -> size 0x1000 (one page): slot 0 padding, slot 1 the data
    assert tlb == pool.start + 2048 + 0x000 and list(pool.pad_slots[:3]) == [0, 1, 0]
    mem.tbl_unmap_single(nv, tlb, 2048)
    assert not pool.pad_slots.any() and list(pool.list[:3]) == [128, 127, 126]
    tlb2 = mem.tbl_map_single(plain, 0x20000000, 4096)
    assert tlb2 == pool.start + 2 * 2048 and not pool.pad_slots.any()


def test_long_walk_counts_every_candidate_it_passes():
    """A search that passes hundreds of candidates (``swiotlb_search_pool_area``,
    afd81d914f6f) examines and counts each one: worked by hand on a 1024-slot v6.11 pool
    whose even slots are in use and odd slots free (free-run count 1).  A 4 KiB request
    needs 2 page-aligned slots (stride 2), so from index 0 it examines the 512 even slots
    and fails; after slot 700 is freed too (counts 2 at 700, 3 at 699) it passes the 350
    even slots below 700 and takes 700 at the 351st candidate."""
    from swiotlb_lib.pool import release_slots
    pool = IoTlbPool(0x7C000000, 1024, 1, get_profile("v6.11"))
    ulong = (1 << 64) - 1
    assert [search_pool_area(pool, 0, 0, 2048, 0, 0, ulong) for _ in range(1024)] == list(range(1024))
    assert pool.area_index[0] == 0                     # 1024 wraps to 0
    for s in range(1, 1024, 2):
        release_slots(pool, pool.start + (s << 11), 0)
    assert list(pool.list[:6]) == [0, 1, 0, 1, 0, 1]
    before = pool.slots_examined
    assert search_pool_area(pool, 0, 0, 4096, 0, 0, ulong) == -1
    assert pool.slots_examined - before == 512 and pool.area_index[0] == 0
    release_slots(pool, pool.start + (700 << 11), 0)
    assert list(pool.list[698:702]) == [0, 3, 2, 1]
    assert search_pool_area(pool, 0, 0, 4096, 0, 0, ulong) == 700
    assert pool.slots_examined - before == 512 + 351 and pool.area_index[0] == 702
