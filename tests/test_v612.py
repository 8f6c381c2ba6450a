"""Linux 6.12.117 against the v6.11 profiles: the zone a new pool comes from, and where
the model's page allocator puts the first dynamic pools on the machine of
``data/realkernel-dynamic/`` (2 GiB, 2 CPUs, x86_64)."""
from swiotlb_lib.boot import Machine
from swiotlb_lib.constants import MiB, U64
from swiotlb_lib.dynamic import zone_gfp
from swiotlb_lib.page_alloc import GFP_KERNEL, GFP_NOWAIT, Gfp


def _machine(cmdline):
    return Machine(ram="2G", cpus=2, cmdline=cmdline, kernel="v6.11-dynamic")


def test_zone_choice_thresholds_equal_for_the_6_11_and_6_12_rules_on_x86():
    # 6.11: __GFP_DMA iff phys_limit <= DMA_BIT_MASK(zone_dma_bits), zone_dma_bits = 24;
    # 6.12 (ba0fb44aed47): iff phys_limit <= zone_dma_limit, default DMA_BIT_MASK(24).
    # Both: 0xffffff.  __GFP_DMA32 iff <= 0xffffffff; else no zone modifier.
    pages = _machine("swiotlb=512,force").pages
    assert zone_gfp(pages, (1 << 24) - 1) == Gfp.DMA
    assert zone_gfp(pages, 1 << 24) == Gfp.DMA32
    assert zone_gfp(pages, 0xFFFFFFFF) == Gfp.DMA32       # the worker: mem->phys_limit
    assert zone_gfp(pages, U64) == Gfp(0)                 # a transient pool: the device's mask
    # with no zone modifier a 2 GiB machine (no ZONE_NORMAL) falls back to DMA32 first
    assert pages.zonelist(GFP_NOWAIT) == ["DMA32", "DMA"]


def test_first_pools_low_in_dma32_512_slot_boot():
    # The model's boot memory map for -m 2G, swiotlb=512,force (see Machine.pages and
    # memory.layout_for): RAM [0, 0x9fc00) and [0x100000, 0x7ffdd000); ZONE_DMA
    # [0x1000, 16 MiB), ZONE_DMA32 [16 MiB, 0x7ffdd000).  memblock reservations: the kernel
    # image, 40 MiB at 16 MiB (Debian's size: 16384K code + 2499K rwdata + 11716K rodata +
    # 4264K init + 4904K bss), so [16 MiB, 56 MiB); early boot allocations
    # [0x7d900000, 0x7ffdd000); the boot pool [0x7d800000, 0x7d900000) (1 MiB).  Free in
    # DMA32: [56 MiB, 0x7d800000), both ends multiples of 4 MiB, so order-10 blocks only.
    # The atomic pools (kernel/dma/pool.c; 128 KiB each, order 5) take the lowest block:
    # "kernel" (GFP_KERNEL, no ZONE_NORMAL -> DMA32) at 0x3800000, "dma32" at 0x3820000,
    # leaving the split buddies 0x3840000 (o6), 0x3880000 (o7), 0x3900000 (o8),
    # 0x3a00000 (o9).  __rmqueue_smallest takes the smallest order with a free block:
    m = _machine("swiotlb=512,force")
    pools = m.pages.atomic_pools()
    assert (pools["kernel"]["base"], pools["dma32"]["base"]) == (0x3800000, 0x3820000)
    # the worker's first 512-slot (1 MiB, order 8) pool: the order-8 buddy
    assert m.pages.alloc_pages(GFP_KERNEL | Gfp.DMA32, 8, limit=0xFFFFFFFF) == 0x3900000
    # the second: order 8 is empty, so the order-9 block at 0x3a00000 is split, lower half
    assert m.pages.alloc_pages(GFP_KERNEL | Gfp.DMA32, 8, limit=0xFFFFFFFF) == 0x3a00000
    # a transient pool for one 4 KiB segment (GFP_NOWAIT, no zone modifier, order 0): the
    # lowest order-6 buddy is split down to its first page
    assert m.pages.alloc_pages(GFP_NOWAIT | Gfp.NOWARN, 0, limit=U64) == 0x3840000
    # all of it in ZONE_DMA32 below 128 MiB, as in the recorded kernel (24-72 MiB)
    assert 16 * MiB <= 0x3840000 < 0x3a00000 + MiB <= 128 * MiB


def test_order9_fragment_beside_1024_slot_boot_pool():
    # swiotlb=1024,force: boot pool [0x7d700000, 0x7d900000) (2 MiB); the rest of the map
    # as above.  Free DMA32 is [56 MiB, 0x7d700000); 0x7d400000 is a multiple of 4 MiB, so
    # the top of free memory is an order-9 block [0x7d400000, 0x7d600000) and an order-8
    # block [0x7d600000, 0x7d700000).  The atomic pools (order 5) split the smallest block
    # there is, the order-8 one: "kernel" at 0x7d600000, "dma32" at 0x7d620000, leaving
    # 0x7d640000 (o6) and 0x7d680000 (o7).  The worker's 1024-slot (2 MiB, order 9) pool
    # then takes the order-9 block beside the boot pool, not low memory.  The recorded
    # kernel put it at 0x4400000: by then its page cache and slab had used up such
    # fragments; the model has neither.
    m = _machine("swiotlb=1024,force")
    pools = m.pages.atomic_pools()
    assert (pools["kernel"]["base"], pools["dma32"]["base"]) == (0x7d600000, 0x7d620000)
    assert m.pages.alloc_pages(GFP_KERNEL | Gfp.DMA32, 9, limit=0xFFFFFFFF) == 0x7d400000
    # no order-8 or order-9 block is left, so the next order-8 block is the lower quarter
    # of the lowest order-10 block: 56 MiB
    assert m.pages.alloc_pages(GFP_KERNEL | Gfp.DMA32, 8, limit=0xFFFFFFFF) == 56 * MiB
