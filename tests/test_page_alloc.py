"""The buddy page allocator (swiotlb_lib/page_alloc.py) against the Linux 6.6 rules.

Expected values are derived here from the layouts of memory.layout_for (documented QEMU
pc / Raspberry Pi 4 maps) and the kernel rules, not read back from the allocator:

* boot free lists: memblock_free_all() frees each range as the largest naturally aligned
  blocks (mm/memblock.c __free_pages_memory); blocks never cross a zone;
* __rmqueue_smallest(): the smallest order with a free block is used; the model's
  documented tie-break is the lowest address;
* __zone_watermark_ok() (6.6): allocation proceeds iff free - (2**order - 1) > min;
  __GFP_HIGH halves min, and non-blocking __GFP_HIGH takes a further quarter off.

CMA and the atomic pools are tested in test_contiguous.py and test_atomic_pool.py; here
they appear as parts of a busy machine (accounting, bad input).

A page-level reference model (``ref_blocks``) recomputes the maximal-block decomposition
of any set of free pages with numpy, independently of the allocator's data structures.
"""
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swiotlb_lib.constants import MAX_ORDER
from swiotlb_lib.page_alloc import GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, Gfp, PageAllocator
from mm_helpers import GiB, KiB, MiB, PAGE, identities, rpi4_4g, x86_1t, x86_2g

# x86_64 QEMU pc with 2 GiB (memory.layout_for docstring): RAM [0, 0x9fc00) and
# [1 MiB, 2 GiB - 0x23000); ZONE_DMA [4 KiB, 16 MiB), ZONE_DMA32 [16 MiB, top).
X86_2G_TOP = 2 * GiB - 0x23000            # 0x7ffdd000
X86_2G_PAGES = 0x9F + (X86_2G_TOP - MiB) // PAGE
DMA_MANAGED = (0x9F000 - 0x1000) // PAGE + (16 * MiB - MiB) // PAGE     # 158 + 3840 = 3998


def zones_state(a):
    return a._snapshot()[0]


def ref_blocks(free: np.ndarray, lo: int, hi: int) -> list:
    """Maximal buddy blocks of the free pages (bool per PFN) of a zone [lo, hi): largest
    orders first, a block is taken iff all its pages are free and no larger taken block
    covers it.  Returns [[paddr, ...] for order 0..MAX_ORDER]."""
    out = [[] for _ in range(MAX_ORDER + 1)]
    covered = np.zeros(hi, dtype=bool)
    for o in range(MAX_ORDER, -1, -1):
        n = 1 << o
        a, b = -(-lo // n) * n, hi // n * n
        if a >= b:
            continue
        ok = free[a:b].reshape(-1, n).all(axis=1) & ~covered[a:b].reshape(-1, n).any(axis=1)
        for i in np.flatnonzero(ok):
            s = a + int(i) * n
            out[o].append(s * PAGE)
            covered[s:s + n] = True
    return out


def free_mask(layout, holes=()) -> np.ndarray:
    """Pages of RAM (page-trimmed) minus ``holes`` [(start, end)) in bytes."""
    top = max(e for _, e in layout.ram) // PAGE
    m = np.zeros(top, dtype=bool)
    for s, e in layout.ram:
        m[-(-s // PAGE):e // PAGE] = True
    for s, e in holes:
        m[s // PAGE:-(-e // PAGE)] = False
    return m


def ref_free_lists(layout, a, holes=()):
    """Reference free lists: RAM minus holes minus every live block of ``a``."""
    m = free_mask(layout, holes)
    for p, (o, _) in a.allocations().items():
        m[p // PAGE:p // PAGE + (1 << o)] = False
    if a.cma_range:
        s, e = a.cma_range
        m[s // PAGE:e // PAGE] = False
    out = {}
    for z in layout.zones:
        lo, hi = -(-z.start // PAGE), z.end // PAGE
        out[z.name] = ref_blocks(m, lo, hi)
    return out


# ------------------------------------------------------------------ boot free lists ----

def test_initial_free_lists_x86_2g():
    lay = x86_2g()
    a = PageAllocator(lay, atomic_pool_bytes=0)
    s = identities(a)
    assert s["total"] == X86_2G_PAGES * PAGE
    assert s["reserved"] == PAGE                # page 0 is RAM but in no zone
    assert s["free"] == (X86_2G_PAGES - 1) * PAGE
    assert s["used"] == 0 and s["owners"] == {"reserved": PAGE}
    fl = a.free_lists()
    # ZONE_DMA by hand: [0x1000, 0x9f000) and [1 MiB, 16 MiB) in largest aligned blocks
    assert fl["DMA"] == [[0x1000, 0x9E000], [0x2000, 0x9C000], [0x4000, 0x98000], [0x8000, 0x90000],
                         [0x10000, 0x80000], [0x20000], [0x40000], [], [0x100000], [0x200000],
                         [0x400000, 0x800000, 0xC00000]]
    # ZONE_DMA32 [16 MiB, 0x7ffdd000): 4 MiB blocks up to 0x7fc00000, then 989 pages
    # = 512+256+128+64+16+8+4+1
    tail = {9: 0x7FC00000, 8: 0x7FE00000, 7: 0x7FF00000, 6: 0x7FF80000, 4: 0x7FFC0000,
            3: 0x7FFD0000, 2: 0x7FFD8000, 0: 0x7FFDC000}
    d32 = fl["DMA32"]
    assert d32[10] == list(range(16 * MiB, 0x7FC00000, 4 * MiB))
    for o in range(10):
        assert d32[o] == ([tail[o]] if o in tail else [])
    assert fl == ref_free_lists(lay, a)
    assert s["largest_free_order"] == 10 and a.largest_free_block() == 4 * MiB
    a.check()


@pytest.mark.parametrize("make", [rpi4_4g, x86_2g])
def test_initial_free_lists_match_reference_with_reservations(make):
    lay = make()
    res = [(2 * MiB + 0x800, 42 * MiB), (0x30000000, 0x34000000)]   # kernel image, a boot pool
    a = PageAllocator(lay, res, atomic_pool_bytes=0)
    assert a.free_lists() == ref_free_lists(lay, a, res)
    identities(a)
    a.check()


def test_reserved_is_page_granular_and_counted():
    lay = x86_2g()
    # [16 MiB, 56 MiB) and a 64 MiB pool, and 0x1000 bytes straddling two pages
    res = [(16 * MiB, 56 * MiB), (0x70000000, 0x70000000 + 64 * MiB), (0x1000800, 0x1001800)]
    a = PageAllocator(lay, res, atomic_pool_bytes=0)
    s = identities(a)
    assert s["reserved"] == PAGE + 40 * MiB + 64 * MiB        # page 0, the image (covers the straddle), the pool
    b = PageAllocator(lay, [(0x2000800, 0x2001800)], atomic_pool_bytes=0)
    assert b.stats()["reserved"] == PAGE + 2 * PAGE
    for p in (0x2000000, 0x2001000):
        with pytest.raises(ValueError, match="paddr"):
            b.free_pages(p, 0)


# ------------------------------------------------------------------ buddy split / merge ----

def test_smallest_order_first_and_split_x86_2g():
    a = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    # the only order-0 block of DMA32 is the last page below 0x7ffdd000
    assert a.alloc_pages(GFP_KERNEL, 0) == 0x7FFDC000
    assert a.stats()["costs"]["splits"] == 0
    # next smallest: the order-2 block at 0x7ffd8000 is split (2 splits)
    assert a.alloc_pages(GFP_KERNEL, 0) == 0x7FFD8000
    assert a.stats()["costs"]["splits"] == 2
    assert a.alloc_pages(GFP_KERNEL, 0) == 0x7FFD9000       # its buddy, left free by expand()
    assert a.alloc_pages(GFP_KERNEL, 1) == 0x7FFDA000       # the order-1 upper half
    a.check()


def test_split_and_merge_counts_1t():
    a = PageAllocator(x86_1t(), atomic_pool_bytes=0)
    before = zones_state(a)
    # ZONE_NORMAL [4 GiB, 4 GiB + 1021 GiB) is all 4 MiB blocks: an order-0 page costs 10 splits
    p = a.alloc_pages(GFP_KERNEL, 0)
    assert p == 4 * GiB
    c = a.stats()["costs"]
    assert c["splits"] == 10 and c["allocations"] == 1
    q = a.alloc_pages(GFP_KERNEL, 3)
    assert q == 4 * GiB + 8 * PAGE                          # the order-3 half left by the split
    a.free_pages(p, 0)
    a.free_pages(q, 3)
    c = a.stats()["costs"]
    assert c["merges"] == 10 and c["frees"] == 2
    assert zones_state(a) == before


def test_free_everything_restores_initial_picture_1t():
    a = PageAllocator(x86_1t())
    before = zones_state(a)
    blocks = [(a.alloc_pages(GFP_KERNEL, 0), 0) for _ in range(50_000)]
    blocks += [(a.alloc_pages(GFP_KERNEL | Gfp.DMA32, o), o) for o in range(MAX_ORDER + 1) for _ in range(3)]
    assert all(p is not None for p, _ in blocks)
    assert len({p for p, _ in blocks}) == len(blocks)
    rng = np.random.default_rng(5)
    for i in rng.permutation(len(blocks)):
        a.free_pages(*blocks[i])
    assert zones_state(a) == before
    identities(a)


ORDERS = st.integers(0, MAX_ORDER)
GFPS = st.sampled_from([GFP_KERNEL, GFP_ATOMIC, GFP_NOWAIT, GFP_KERNEL | Gfp.DMA, GFP_NOWAIT | Gfp.DMA32,
                        GFP_KERNEL | Gfp.NORETRY])
OPS = st.lists(st.tuples(st.sampled_from(["alloc", "alloc", "free"]), ORDERS, GFPS,
                         st.one_of(st.none(), st.integers(0, 2**31)),
                         st.sampled_from(["kernel", "pagecache", "app"]), st.integers(0, 10**9)),
               max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_random_alloc_free_matches_reference(ops):
    lay = x86_2g()
    a = PageAllocator(lay, [(16 * MiB, 56 * MiB)], cma_bytes=32 * MiB)
    initial = zones_state(a)
    pools = {p for p, (o, w) in a.allocations().items() if w == "atomic-pool"}
    for kind, order, gfp, limit, owner, pick in ops:
        if kind == "alloc":
            p = a.alloc_pages(gfp, order, limit=limit, owner=owner)
            if p is not None:
                assert p % (PAGE << order) == 0
                if limit is not None:
                    assert p + (PAGE << order) - 1 <= limit
                if gfp & Gfp.DMA:
                    assert p + (PAGE << order) <= 16 * MiB
                lo, hi = a.cma_range
                assert p + (PAGE << order) <= lo or p >= hi
        else:
            live = sorted(p for p in a.allocations() if p not in pools)
            if live:
                p = live[pick % len(live)]
                a.free_pages(p, a.allocations()[p][0])
        a.check()
        identities(a)
    assert a.free_lists() == ref_free_lists(lay, a, [(16 * MiB, 56 * MiB)])
    for p, (o, w) in list(a.allocations().items()):
        if w != "atomic-pool":
            a.free_pages(p, o)
    assert zones_state(a) == initial


# ------------------------------------------------------------------ zones ----

def test_zonelists():
    assert PageAllocator(x86_2g()).zonelist(GFP_KERNEL) == ["DMA32", "DMA"]     # no ZONE_NORMAL below 4 GiB
    big = PageAllocator(x86_1t())
    assert big.zonelist(GFP_KERNEL) == ["Normal", "DMA32", "DMA"]
    assert big.zonelist(GFP_KERNEL | Gfp.HIGHMEM) == ["Normal", "DMA32", "DMA"]
    assert big.zonelist(GFP_KERNEL | Gfp.DMA32) == ["DMA32", "DMA"]
    assert big.zonelist(GFP_ATOMIC | Gfp.DMA) == ["DMA"]


def test_zone_fallback_order_1t():
    # leave ZONE_NORMAL only 8 MiB: two 4 MiB blocks
    normal_end = 4 * GiB + (1 << 40) - 3 * GiB
    a = PageAllocator(x86_1t(), [(4 * GiB + 8 * MiB, normal_end)], atomic_pool_bytes=0,
                      watermark_min_fraction=0.0)
    got = []
    while (p := a.alloc_pages(GFP_KERNEL, MAX_ORDER)) is not None:
        got.append(p)
    # Normal: 2; DMA32 [16 MiB, 3 GiB - 0x23000): 4 MiB blocks from 16 MiB to 3 GiB - 4 MiB; DMA: 4, 8, 12 MiB
    n_dma32 = (3 * GiB - 4 * MiB - 16 * MiB) // (4 * MiB)
    assert len(got) == 2 + n_dma32 + 3
    assert all(p >= 4 * GiB for p in got[:2])
    assert all(16 * MiB <= p < 3 * GiB for p in got[2:2 + n_dma32])
    assert got[2 + n_dma32:] == [4 * MiB, 8 * MiB, 12 * MiB]
    assert a.stats()["costs"]["failed"] == 1


def test_gfp_dma_only_from_zone_dma_until_min_watermark():
    a = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    got = []
    while (p := a.alloc_pages(GFP_KERNEL | Gfp.DMA, 0)) is not None:
        got.append(p)
    assert all(0x1000 <= p < 16 * MiB for p in got)
    wmin = int(0.005 * DMA_MANAGED)                       # 19 pages
    assert len(got) == DMA_MANAGED - wmin                 # stops with exactly min pages free
    assert a.stats()["free_by_zone"]["DMA"] == wmin * PAGE
    assert a.stats()["free_by_zone"]["DMA32"] == (X86_2G_PAGES - 1 - DMA_MANAGED) * PAGE
    rp = PageAllocator(rpi4_4g())
    for _ in range(50):
        p = rp.alloc_pages(GFP_KERNEL | Gfp.DMA, MAX_ORDER)
        assert p is not None and p + 4 * MiB <= GiB
    for _ in range(50):
        p = rp.alloc_pages(GFP_KERNEL | Gfp.DMA32, MAX_ORDER)
        assert p is not None and GiB <= p < 4 * GiB      # ZONE_DMA32 first


def test_gfp_dma32_never_above_4g():
    a = PageAllocator(x86_1t())
    for o in (0, 4, 10):
        for _ in range(20):
            p = a.alloc_pages(GFP_KERNEL | Gfp.DMA32, o)
            assert p + (PAGE << o) <= 4 * GiB


# ------------------------------------------------------------------ limit ----

def test_limit_skips_blocks_above_it():
    a = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    # all small blocks of DMA32 lie near 2 GiB; under a 1 GiB limit the lowest 4 MiB block is split
    assert a.alloc_pages(GFP_KERNEL, 0, limit=GiB - 1) == 16 * MiB
    fl = a.free_lists("DMA32")["DMA32"]
    for o in range(10):
        assert 16 * MiB + (PAGE << o) in fl[o]
    # below ZONE_DMA32: falls back to ZONE_DMA, whose lowest order-0 block is 0x1000
    assert a.alloc_pages(GFP_KERNEL, 0, limit=16 * MiB - 1) == 0x1000
    c = a.stats()["costs"]
    assert c["allocations"] == 2 and c["frees"] == 0


def test_limit_is_inclusive_highest_address():
    a = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    before = a._snapshot()
    assert a.alloc_pages(GFP_KERNEL | Gfp.DMA, 1, limit=0x3FFE) is None      # [0x2000, 0x4000) ends at 0x3fff
    after = a._snapshot()
    assert after[0] == before[0] and after[1] == before[1]                  # nothing taken and given back
    c = a.stats()["costs"]
    assert (c["allocations"], c["frees"], c["splits"], c["failed"]) == (0, 0, 0, 1)
    assert a.alloc_pages(GFP_KERNEL | Gfp.DMA, 1, limit=0x3FFF) == 0x2000
    assert a.alloc_pages(GFP_KERNEL | Gfp.DMA, 0, limit=0x2000) == 0x1000      # page-aligned bound: same rule


def test_limit_1t_normal_and_nothing_fits():
    a = PageAllocator(x86_1t())
    p = a.alloc_pages(GFP_KERNEL, 5, limit=5 * GiB - 1)
    assert 4 * GiB <= p and p + 32 * PAGE <= 5 * GiB
    p = a.alloc_pages(GFP_KERNEL, 10, limit=4 * GiB - 1)
    assert p + 4 * MiB <= 4 * GiB
    before = a._snapshot()
    assert a.alloc_pages(GFP_KERNEL, 0, limit=0) is None
    assert a._snapshot()[:2] == before[:2]


# ------------------------------------------------------------------ watermarks, reclaim ----

def fill_dma_with_pagecache(a):
    got = []
    while (p := a.alloc_pages(GFP_NOWAIT | Gfp.DMA, 0, owner="pagecache")) is not None:
        got.append(p)
    return got


def test_nonblocking_stops_at_watermark_blocking_reclaims():
    a = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    wmin = int(0.005 * DMA_MANAGED)                          # 19
    cache = fill_dma_with_pagecache(a)
    assert len(cache) == DMA_MANAGED - wmin
    assert a.stats()["reclaimable"] == len(cache) * PAGE
    assert a.alloc_pages(GFP_NOWAIT | Gfp.DMA, 0) is None    # no reserve access, no reclaim
    # GFP_ATOMIC (6.6): min - min/2 = 10, then non-blocking: 10 - 10/4 = 8 pages stay free
    atomic_min = (wmin - wmin // 2) - (wmin - wmin // 2) // 4
    n = 0
    while a.alloc_pages(GFP_ATOMIC | Gfp.DMA, 0) is not None:
        n += 1
    assert n == wmin - atomic_min
    s = a.stats()
    assert s["costs"]["reclaim_events"] == 0 and s["reclaimable"] == len(cache) * PAGE
    # a blocking request reclaims SWAP_CLUSTER_MAX = 32 of the oldest pagecache pages
    p = a.alloc_pages(GFP_KERNEL | Gfp.DMA, 0)
    assert p is not None
    s = a.stats()
    assert s["costs"]["reclaim_events"] == 1 and s["costs"]["reclaimed_pages"] == 32
    assert s["reclaimable"] == (len(cache) - 32) * PAGE
    live = a.allocations()
    assert not any(q in live for q in cache[:32] if q != p)      # p may reuse a reclaimed page
    assert all(q in live for q in cache[32:])
    identities(a)
    a.check()


def test_gfp_high_blocking_gets_half_the_reserve():
    a = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    wmin = int(0.005 * DMA_MANAGED)
    while a.alloc_pages(GFP_NOWAIT | Gfp.DMA, 0, owner="kernel") is not None:
        pass
    n = 0
    while a.alloc_pages(GFP_KERNEL | Gfp.ATOMIC_HIGH | Gfp.DMA, 0) is not None:
        n += 1
    assert n == wmin // 2                                  # min - min/2 stay free; nothing to reclaim
    assert a.stats()["costs"]["reclaim_events"] == 0
    assert a.watermark_ok("DMA", 0, GFP_ATOMIC) and not a.watermark_ok("DMA", 0, GFP_KERNEL)


def test_noretry_reclaims_once():
    a = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    fill_dma_with_pagecache(a)
    failed = a.stats()["costs"]["failed"]
    # order 5 needs free - 31 > 19: one reclaim round (32 pages on top of 19) is not enough
    assert a.alloc_pages(GFP_KERNEL | Gfp.DMA | Gfp.NORETRY, 5) is None
    s = a.stats()
    assert s["costs"]["reclaim_events"] == 1 and s["costs"]["failed"] == failed + 1
    assert s["free_by_zone"]["DMA"] == (int(0.005 * DMA_MANAGED) + 32) * PAGE     # reclaim is not undone
    p = a.alloc_pages(GFP_KERNEL | Gfp.DMA, 5)
    assert p is not None and p % (32 * PAGE) == 0
    assert a.stats()["costs"]["reclaim_events"] >= 2


def test_only_pagecache_is_reclaimed_and_only_in_eligible_zones():
    a = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    while a.alloc_pages(GFP_NOWAIT | Gfp.DMA, 0, owner="app") is not None:
        pass
    for _ in range(100):                                   # pagecache in DMA32 cannot help ZONE_DMA
        assert a.alloc_pages(GFP_KERNEL | Gfp.DMA32, 0, owner="pagecache") >= 16 * MiB
    assert a.alloc_pages(GFP_KERNEL | Gfp.DMA, 0) is None
    s = a.stats()
    assert s["costs"]["reclaim_events"] == 0 and s["reclaimable"] == 100 * PAGE

# ------------------------------------------------------------------ fragmentation ----

def test_fragment_blocks_high_orders_not_order_0():
    lay = x86_2g()
    a = PageAllocator(lay, atomic_pool_bytes=0)
    n = a.stats()["free"] // PAGE
    k = a.fragment(7, 0.02)
    sd = math.sqrt(n * 0.02 * 0.98)
    assert abs(k - 0.02 * n) < 6 * sd
    s = identities(a)
    assert s["owners"]["pinned"] == k * PAGE
    assert s["free"] == (n - k) * PAGE
    assert a.largest_free_block() < 4 * MiB
    assert a.alloc_pages(GFP_KERNEL, MAX_ORDER) is None
    assert a.alloc_pages(GFP_KERNEL | Gfp.DMA, MAX_ORDER) is None
    assert a.alloc_pages(GFP_KERNEL, 0) is not None
    # the end state is the buddy state of "free pages minus pinned ones"
    assert a.free_lists() == ref_free_lists(lay, a)
    # scattered: nearly every 4 MiB window of DMA32 holds a pinned page
    pinned = np.array([p for p, (o, w) in a.allocations().items() if w == "pinned"])
    windows = np.unique(pinned // (4 * MiB))
    assert len(windows) >= 0.99 * ((X86_2G_TOP - 16 * MiB) // (4 * MiB))
    a.check()


def test_fragment_deterministic_and_reversible():
    a, b, c = (PageAllocator(x86_2g()) for _ in range(3))
    initial = zones_state(a)
    assert a.fragment(3, 0.05) == b.fragment(3, 0.05)
    assert a._snapshot() == b._snapshot()
    c.fragment(4, 0.05)
    assert zones_state(c) != zones_state(a)
    for p, (o, w) in list(a.allocations().items()):
        if w == "pinned":
            a.free_pages(p, o)
    assert zones_state(a) == initial


def test_fragment_one_zone_and_zero_fraction():
    a = PageAllocator(x86_2g(), atomic_pool_bytes=0)
    before = a._snapshot()
    assert a.fragment(1, 0.0) == 0
    assert a._snapshot() == before
    k = a.fragment(1, 0.1, zone="DMA")
    assert k > 0
    assert all(p < 16 * MiB for p, (o, w) in a.allocations().items())
    assert a.largest_free_block("DMA32") == 4 * MiB
    assert a.alloc_pages(GFP_KERNEL | Gfp.DMA32, MAX_ORDER) is not None
    assert a.fragment(2, 1.0, zone="DMA") == DMA_MANAGED - k           # everything pinned
    assert a.largest_free_block("DMA") == 0


# ------------------------------------------------------------------ accounting ----

def test_accounting_identities_busy_machine():
    lay = rpi4_4g()
    a = PageAllocator(lay, [(2 * MiB, 42 * MiB), (0x3A400000, 0x3B400000)], cma_bytes=256 * MiB)
    a.alloc_pages(GFP_KERNEL, 3, owner="app")
    for _ in range(200):
        a.alloc_pages(GFP_KERNEL, 0, owner="pagecache")
    a.alloc_pages(GFP_KERNEL | Gfp.DMA, 10, owner="swiotlb-pool")
    a.alloc_contig(1 * MiB, GFP_KERNEL, owner="dma-coherent")
    a.dma_alloc_from_pool(64 * KiB)
    a.fragment(9, 0.01)
    s = identities(a)
    assert s["reserved"] == 40 * MiB + 16 * MiB
    assert s["owners"]["app"] == 8 * PAGE
    assert s["owners"]["pagecache"] == 200 * PAGE == s["reclaimable"]
    assert s["owners"]["swiotlb-pool"] == 4 * MiB
    assert s["owners"]["dma-coherent"] == 1 * MiB
    assert s["atomic_pool_used"] == 64 * KiB
    c = s["costs"]
    assert c["allocations"] - c["frees"] == len(a.allocations())
    a.check()


# ------------------------------------------------------------------ bad input ----

@pytest.fixture
def busy():
    a = PageAllocator(x86_2g(), [(16 * MiB, 56 * MiB)], cma_bytes=64 * MiB)
    a.alloc_pages(GFP_KERNEL, 1, owner="app")
    for _ in range(10):
        a.alloc_pages(GFP_KERNEL, 0, owner="pagecache")
    a.alloc_contig(64 * KiB, GFP_KERNEL)
    a.dma_alloc_from_pool(PAGE)
    a.fragment(1, 0.001)
    return a


def _bad_calls(a):
    live = sorted((p, o) for p, (o, w) in a.allocations().items() if w == "app")
    p1, o1 = live[0]
    return [
        (lambda: a.alloc_pages(GFP_KERNEL, MAX_ORDER + 1), "order"),
        (lambda: a.alloc_pages(GFP_KERNEL, -1), "order"),
        (lambda: a.alloc_pages(GFP_KERNEL, 1.0), "order"),
        (lambda: a.alloc_pages(GFP_KERNEL, True), "order"),
        (lambda: a.alloc_pages("GFP_KERNEL", 0), "gfp"),
        (lambda: a.alloc_pages(0x200, 0), "gfp"),
        (lambda: a.alloc_pages(-1, 0), "gfp"),
        (lambda: a.alloc_pages(GFP_KERNEL | Gfp.DMA | Gfp.DMA32, 0), "gfp"),
        (lambda: a.alloc_pages(None, 0), "gfp"),
        (lambda: a.alloc_pages(GFP_KERNEL, 0, limit=-1), "limit"),
        (lambda: a.alloc_pages(GFP_KERNEL, 0, limit=1 << 64), "limit"),
        (lambda: a.alloc_pages(GFP_KERNEL, 0, limit=1.5), "limit"),
        (lambda: a.alloc_pages(GFP_KERNEL, 0, owner=""), "owner"),
        (lambda: a.alloc_pages(GFP_KERNEL, 0, owner=7), "owner"),
        (lambda: a.alloc_pages(GFP_KERNEL, 0, owner="reserved"), "owner"),
        (lambda: a.free_pages(p1 + 1, o1), "paddr"),
        (lambda: a.free_pages(-PAGE, 0), "paddr"),
        (lambda: a.free_pages(p1, o1 + 1), "order"),
        (lambda: a.free_pages(p1, 11), "order"),
        (lambda: a.free_pages(p1 + PAGE, 0), "paddr"),             # inside an order-1 block
        (lambda: a.free_pages(0, 0), "paddr"),                     # page 0: in no zone
        (lambda: a.free_pages(20 * MiB, 0), "paddr"),              # reserved
        (lambda: a.free_pages(1 << 50, 0), "paddr"),               # beyond RAM
        (lambda: a.alloc_contig(0, GFP_KERNEL), "nbytes"),
        (lambda: a.alloc_contig(3 * PAGE, "x"), "gfp"),
        (lambda: a.alloc_contig(3 * PAGE, GFP_KERNEL, limit=-5), "limit"),
        (lambda: a.free_contig(p1, PAGE), "paddr"),
        (lambda: a.dma_alloc_from_pool(-1), "nbytes"),
        (lambda: a.dma_alloc_from_pool(PAGE, limit="4G"), "limit"),
        (lambda: a.dma_free_from_pool(3, PAGE), "paddr"),
        (lambda: a.dma_free_from_pool(PAGE, 0), "nbytes"),
        (lambda: a.fragment(-1), "seed"),
        (lambda: a.fragment(1.5), "seed"),
        (lambda: a.fragment(1, -0.1), "pinned_fraction"),
        (lambda: a.fragment(1, 1.5), "pinned_fraction"),
        (lambda: a.fragment(1, float("nan")), "pinned_fraction"),
        (lambda: a.fragment(1, 0.1, zone="HighMem"), "zone"),
        (lambda: a.largest_free_block("Movable"), "zone"),
        (lambda: a.watermark_ok("DMA", 12, GFP_KERNEL), "order"),
        (lambda: a.free_lists("dma"), "zone"),
    ]


def test_bad_arguments_raise_and_change_nothing(busy):
    free_page = busy.free_lists("DMA32")["DMA32"][0][0]
    calls = _bad_calls(busy) + [(lambda: busy.free_pages(free_page, 0), "double free")]
    for call, name in calls:
        before = busy._snapshot()
        stats = busy.stats()
        with pytest.raises(ValueError, match=name):
            call()
        assert busy._snapshot() == before, name
        assert busy.stats() == stats, name


def test_double_free_and_wrong_order():
    a = PageAllocator(x86_2g())
    p = a.alloc_pages(GFP_KERNEL, 2)
    with pytest.raises(ValueError, match="order 2"):
        a.free_pages(p, 1)
    a.free_pages(p, 2)
    with pytest.raises(ValueError, match="double free"):
        a.free_pages(p, 2)


@pytest.mark.parametrize("kw,name", [
    ({"cma_bytes": -1}, "cma_bytes"),
    ({"cma_bytes": 3 * GiB}, "cma_bytes"),                           # more than the RAM
    ({"cma_bytes": 1 * GiB, "cma_limit": 512 * MiB}, "cma_bytes"),   # does not fit below the limit
    ({"cma_bytes": 64 * MiB, "cma_limit": 0}, "cma_limit"),
    ({"atomic_pool_bytes": -1}, "atomic_pool_bytes"),
    ({"watermark_min_fraction": 0.9}, "watermark_min_fraction"),
    ({"watermark_min_fraction": -0.1}, "watermark_min_fraction"),
    ({"watermark_min_fraction": "0.1"}, "watermark_min_fraction"),
])
def test_constructor_rejects(kw, name):
    with pytest.raises(ValueError, match=name):
        PageAllocator(x86_2g(), **kw)


@pytest.mark.parametrize("res", [[(5, 1)], [(1,)], 5, [(0, "1")], [(-1, 10)]])
def test_constructor_rejects_reserved(res):
    with pytest.raises(ValueError, match="reserved"):
        PageAllocator(x86_2g(), res)


def test_constructor_rejects_layout():
    with pytest.raises(ValueError, match="layout"):
        PageAllocator("x86_64")


# ------------------------------------------------------------------ 1 TiB ----

def test_one_tib_is_lazy_and_consistent():
    lay = x86_1t()
    tracemalloc.start()
    a = PageAllocator(lay)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 * MiB                       # nothing per page or per 4 MiB block is materialised
    s = identities(a)
    total = 0x9F000 + (3 * GiB - 0x23000 - MiB) + ((1 << 40) - 3 * GiB)
    assert s["total"] == total
    assert s["free"] == total - PAGE - 3 * 4 * MiB                  # page 0, three 4 MiB atomic pools
    n_normal = ((1 << 40) - 3 * GiB) // (4 * MiB)
    n_dma32 = (3 * GiB - 4 * MiB - 16 * MiB) // (4 * MiB)
    assert s["free_blocks_by_order"][MAX_ORDER] == n_normal + n_dma32 + 3 - 3
    assert sum(s["free_blocks_by_order"][:MAX_ORDER]) < 40
    assert a.largest_free_block() == 4 * MiB
    ps = [a.alloc_pages(GFP_KERNEL, 0) for _ in range(20_000)]
    assert len(set(ps)) == 20_000 and all(p >= 4 * GiB for p in ps)
    a.check()
