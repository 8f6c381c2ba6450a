"""CMA (swiotlb_lib/contiguous.py) against the Linux 6.6 rules of
cma_declare_contiguous_nid() (placement), kernel/dma/contiguous.c (dma_alloc_contiguous,
dma_free_contiguous) and mm/cma.c (cma_alloc, cma_release), through the page allocator
that owns the area."""
import pytest

from swiotlb_lib.constants import MAX_ORDER
from swiotlb_lib.contiguous import Cma
from swiotlb_lib.gfp import GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT
from swiotlb_lib.page_alloc import PageAllocator
from mm_helpers import GiB, KiB, MiB, PAGE, identities, rpi4_4g, x86_1t, x86_2g


def test_cma_placement_top_down():
    a = PageAllocator(x86_2g(), cma_bytes=64 * MiB, atomic_pool_bytes=0)
    # highest 2 MiB aligned end below the top of ZONE_DMA32 (0x7ffdd000) is 0x7fe00000
    assert a.cma_range == (0x7FE00000 - 64 * MiB, 0x7FE00000)
    plain = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    assert plain.stats()["free"] - a.stats()["free"] == 64 * MiB
    assert a.stats()["cma_total"] == 64 * MiB and a.stats()["cma_used"] == 0
    identities(a)
    # rpi4: CMA in the first GiB, below RAM's end at 0x3b400000 (and below a reservation there)
    r = PageAllocator(rpi4_4g(), cma_bytes=256 * MiB, atomic_pool_bytes=0)
    assert r.cma_range == (0x3B400000 - 256 * MiB, 0x3B400000)
    r = PageAllocator(rpi4_4g(), [(0x3A400000, 0x3B400000)], cma_bytes=256 * MiB, atomic_pool_bytes=0)
    assert r.cma_range == (0x3A400000 - 256 * MiB, 0x3A400000)
    # rounded up to CMA_MIN_ALIGNMENT_BYTES (2 MiB)
    r = PageAllocator(rpi4_4g(), cma_bytes=3 * MiB, atomic_pool_bytes=0)
    assert r.stats()["cma_total"] == 4 * MiB


def test_cma_above_4g_goes_bottom_up_from_4g():
    a = PageAllocator(x86_1t(), cma_bytes=64 * MiB, cma_limit=1 << 40, atomic_pool_bytes=0)
    assert a.cma_range == (4 * GiB, 4 * GiB + 64 * MiB)


def test_cma_only_for_blocking_gfp():
    a = PageAllocator(x86_2g(), cma_bytes=64 * MiB, atomic_pool_bytes=0)
    base, end = a.cma_range
    before = a.stats()
    assert a.alloc_contig(64 * KiB, GFP_ATOMIC) is None
    assert a.alloc_contig(64 * KiB, GFP_NOWAIT) is None
    assert a.alloc_contig(PAGE, GFP_KERNEL) is None          # single pages are left to the buddy allocator
    assert a.stats() == before                                # cma_alloc was never reached
    p = a.alloc_contig(64 * KiB, GFP_KERNEL)
    assert base <= p < end and a.stats()["cma_used"] == 64 * KiB
    assert a.stats()["costs"]["cma_attempts"] == 1
    # the buddy allocator never hands out CMA pages
    while (q := a.alloc_pages(GFP_KERNEL, MAX_ORDER)) is not None:
        assert q + 4 * MiB <= base or q >= end
    identities(a)


def test_alloc_contig_beyond_max_order_and_first_fit():
    a = PageAllocator(x86_2g(), cma_bytes=64 * MiB, atomic_pool_bytes=0)
    base, end = a.cma_range
    with pytest.raises(ValueError, match="order"):
        a.alloc_pages(GFP_KERNEL, MAX_ORDER + 2)
    big = a.alloc_contig(16 * MiB, GFP_KERNEL)                # order 12 > MAX_ORDER
    assert big == base
    p1 = a.alloc_contig(8 * KiB, GFP_KERNEL)                  # 2 pages, aligned to 2 pages
    assert p1 == base + 16 * MiB
    p2 = a.alloc_contig(12 * KiB, GFP_KERNEL)                 # 3 pages, aligned to 4 pages
    assert p2 == base + 16 * MiB + 16 * KiB
    p3 = a.alloc_contig(3 * MiB, GFP_KERNEL)                  # order 10 -> capped at CMA_ALIGNMENT 8 (1 MiB)
    assert p3 == base + 17 * MiB
    a.free_contig(p1, 8 * KiB)
    assert a.alloc_contig(5 * KiB, GFP_KERNEL) == p1          # first fit reuses the hole
    a.free_contig(big, 16 * MiB)
    assert a.alloc_contig(16 * MiB, GFP_KERNEL) == base
    s = a.stats()
    assert s["cma_used"] == 16 * MiB + 8 * KiB + 12 * KiB + 3 * MiB
    assert s["owners"]["cma"] == s["cma_used"]
    assert a.alloc_contig(64 * MiB, GFP_KERNEL) is None       # does not fit any more
    assert a.alloc_contig(64 * KiB, GFP_KERNEL, limit=base - 1) is None
    c = a.stats()["costs"]
    assert c["cma_attempts"] == 8 and c["cma_failures"] == 2 and c["cma_releases"] == 2
    identities(a)


def test_free_contig_errors_change_nothing():
    a = PageAllocator(x86_2g(), cma_bytes=64 * MiB, atomic_pool_bytes=0)
    p = a.alloc_contig(64 * KiB, GFP_KERNEL)
    before = a._snapshot()
    with pytest.raises(ValueError, match="nbytes"):
        a.free_contig(p, 128 * KiB)
    with pytest.raises(ValueError, match="paddr"):
        a.free_contig(p + PAGE, 60 * KiB)
    with pytest.raises(ValueError, match="paddr"):
        a.free_pages(p, 4)                                   # CMA memory is not buddy memory
    assert a._snapshot() == before
    a.free_contig(p, 64 * KiB)
    with pytest.raises(ValueError, match="paddr"):
        a.free_contig(p, 64 * KiB)                           # double free


def test_the_page_allocator_owns_a_cma_and_delegates_to_it():
    a = PageAllocator(x86_2g(), cma_bytes=64 * MiB, atomic_pool_bytes=0)
    assert isinstance(a.cma, Cma) and a.cma.range == a.cma_range
    assert a.cma.count == 64 * MiB // PAGE and a.cma_limit == a.cma.limit == x86_2g().zone("DMA32").end
    p = a.cma.dma_alloc_contiguous(64 * KiB, GFP_KERNEL, owner="dev")
    assert p == a.cma_range[0]
    assert a.alloc_contig(64 * KiB, GFP_KERNEL) == p + 64 * KiB           # the same first-fit area
    assert a.stats()["owners"]["dev"] == 64 * KiB and a.cma.owners == {"dev": 16, "cma": 16}
    assert a.costs["cma_attempts"] == 2                                   # one counter dict, shared
    a.free_contig(p, 64 * KiB)
    assert a.cma.used == 16 and a.costs["cma_releases"] == 1
    identities(a)


def test_cma_alone():
    c = Cma(0x1000, 1024)                       # 4 MiB at 16 MiB, no page allocator
    assert c.range == (16 * MiB, 20 * MiB) and c.contains(0x1000) and not c.contains(0x1400)
    assert c.cma_alloc(3, 2, "x") == 0x1000
    assert c.cma_alloc(1, 0, "y") == 0x1003                 # first fit
    assert c.cma_alloc(4, 2, "x") == 0x1004
    assert c.cma_alloc(1024, 0, "x") is None
    assert c.costs == {"cma_attempts": 4, "cma_failures": 1, "cma_releases": 0}
    assert c.owners == {"x": 7, "y": 1} and c.used == 8
    c.dma_free_contiguous(0x1000 << 12, 3 * PAGE)
    assert c.cma_alloc(2, 1, "z") == 0x1000
    assert Cma.declare(x86_2g(), [], 0).range is None
    with pytest.raises(ValueError, match="count"):
        c.cma_alloc(0, 0, "x")
