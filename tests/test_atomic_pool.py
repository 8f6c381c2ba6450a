"""The atomic pools (swiotlb_lib/atomic_pool.py) against kernel/dma/pool.c of Linux 6.6:
dma_atomic_pool_init() sizes, atomic_pool_expand() (CMA in the pool's zone first),
dma_guess_pool() order, dma_alloc_from_pool() / dma_free_from_pool()."""
import pytest

from swiotlb_lib.atomic_pool import default_pool_size
from swiotlb_lib.gfp import Gfp
from swiotlb_lib.memory import layout_for
from swiotlb_lib.page_alloc import PageAllocator
from mm_helpers import GiB, KiB, MiB, PAGE, identities, rpi4_4g, x86_1t, x86_2g


def test_atomic_pool_default_sizes():
    a = PageAllocator(x86_2g())
    pools = a.atomic_pools()
    # kernel/dma/pool.c: 128 KiB per GiB of RAM, so 256 KiB each on this 2 GiB machine
    assert sorted(pools) == ["dma", "dma32", "kernel"]
    assert all(p["size"] == 256 * KiB and p["used"] == 0 and not p["from_cma"] for p in pools.values())
    assert pools["dma"]["base"] + 256 * KiB <= 16 * MiB
    assert 16 * MiB <= pools["dma32"]["base"] < 4 * GiB
    s = identities(a)
    assert s["atomic_pool_total"] == 3 * 256 * KiB
    assert s["owners"]["atomic-pool"] == 3 * 256 * KiB
    big = PageAllocator(x86_1t())
    pools = big.atomic_pools()
    assert all(p["size"] == 4 * MiB for p in pools.values())        # capped at MAX_ORDER_NR_PAGES
    assert pools["kernel"]["base"] >= 4 * GiB
    small = PageAllocator(layout_for("x86_64", 512 * MiB))
    assert all(p["size"] == 128 * KiB for p in small.atomic_pools().values())     # at least 128 KiB
    assert PageAllocator(x86_2g(), atomic_pool_bytes=0).atomic_pools() == {}


def test_atomic_pools_come_from_cma_in_their_zone():
    r = PageAllocator(rpi4_4g(), cma_bytes=256 * MiB)
    lo, hi = r.cma_range
    pools = r.atomic_pools()
    assert all(p["from_cma"] and lo <= p["base"] < hi for p in pools.values())
    assert r.stats()["cma_used"] == sum(p["size"] for p in pools.values())
    identities(r)
    # x86: CMA below 2 GiB is inside DMA32 but not inside ZONE_DMA (16 MiB)
    a = PageAllocator(x86_2g(), cma_bytes=64 * MiB)
    pools = a.atomic_pools()
    assert pools["kernel"]["from_cma"] and pools["dma32"]["from_cma"] and not pools["dma"]["from_cma"]
    assert pools["dma"]["base"] < 16 * MiB
    with pytest.raises(ValueError, match="atomic pool"):
        a.free_pages(pools["dma"]["base"], 6)


def test_dma_alloc_from_pool_order_and_limit():
    a = PageAllocator(x86_1t())
    pools = a.atomic_pools()
    k, d32, d = (pools[n]["base"] for n in ("kernel", "dma32", "dma"))
    assert a.dma_alloc_from_pool(PAGE) == k
    assert a.dma_alloc_from_pool(3 * PAGE) == k + 4 * PAGE        # aligned to its power-of-two size
    assert a.dma_alloc_from_pool(100) == k + PAGE
    assert a.dma_alloc_from_pool(PAGE, limit=4 * GiB - 1) == d32  # kernel pool above the limit
    assert a.dma_alloc_from_pool(PAGE, limit=16 * MiB - 1) == d   # then dma32, then dma
    assert a.dma_alloc_from_pool(PAGE, gfp=Gfp.DMA) == d + PAGE   # dma_guess_pool starts at dma
    assert a.dma_alloc_from_pool(PAGE, limit=0) is None
    s = a.stats()
    assert s["atomic_pool_used"] == (1 + 3 + 1 + 1 + 1 + 1) * PAGE
    assert s["costs"]["pool_allocations"] == 6 and s["costs"]["pool_failures"] == 1
    assert a.dma_free_from_pool(k + 4 * PAGE, 3 * PAGE) is True
    assert a.dma_alloc_from_pool(4 * PAGE) == k + 4 * PAGE
    assert a.dma_free_from_pool(8 * GiB, PAGE) is False


def test_dma_pool_exhaustion_and_errors():
    a = PageAllocator(x86_2g())
    pools = a.atomic_pools()
    got = [a.dma_alloc_from_pool(256 * KiB) for _ in range(4)]
    assert got[:3] == [pools["kernel"]["base"], pools["dma32"]["base"], pools["dma"]["base"]]
    assert got[3] is None
    before = a._snapshot()
    with pytest.raises(ValueError, match="nbytes"):
        a.dma_free_from_pool(got[0], 128 * KiB)
    with pytest.raises(ValueError, match="paddr"):
        a.dma_free_from_pool(got[0] + PAGE, PAGE)
    with pytest.raises(ValueError, match="paddr"):
        a.dma_free_from_pool(got[0] + 1, PAGE)
    with pytest.raises(ValueError, match="nbytes"):
        a.dma_alloc_from_pool(0)
    assert a._snapshot() == before
    assert a.dma_free_from_pool(got[1], 256 * KiB)
    with pytest.raises(ValueError, match="paddr"):
        a.dma_free_from_pool(got[1], 256 * KiB)


def test_default_pool_size_and_the_owning_page_allocator():
    # dma_atomic_pool_init(): totalram_pages / (SZ_1G / SZ_128K) pages, at most
    # MAX_ORDER_NR_PAGES, at least 128 KiB
    assert default_pool_size(2 * GiB // PAGE) == 256 * KiB
    assert default_pool_size(512 * MiB // PAGE) == 128 * KiB
    assert default_pool_size((1 << 40) // PAGE) == 4 * MiB
    a = PageAllocator(x86_2g())
    # totalram_pages is a little under 2 GiB (RAM holes, page 0): 63 * 4 KiB, in pools of order 6
    assert a.atomic_pool_size == a.coherent_pools.size == 252 * KiB
    assert all(p["size"] == 256 * KiB for p in a.atomic_pools().values())
    assert a.coherent_pools.info() == a.atomic_pools()
    p = a.coherent_pools.dma_alloc_from_pool(PAGE)
    assert p == a.atomic_pools()["kernel"]["base"] and a.costs["pool_allocations"] == 1
    assert a.dma_free_from_pool(p, PAGE) and a.coherent_pools.used_pages == 0
