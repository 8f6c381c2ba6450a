"""The atomic coherent pools of ``kernel/dma/pool.c`` (Linux 6.6): memory set aside at
boot for DMA allocations that may not sleep.

Confidential guests take non-blocking memory (dynamic SWIOTLB's transient pools among it)
from these pools.  Modelled:

* ``dma_atomic_pool_init()`` -- the pools' size (``atomic_pool_size``, ``coherent_pool=``;
  default 128 KiB per GiB of ``totalram_pages()``, at least 128 KiB, at most
  ``MAX_ORDER_NR_PAGES``) and the three pools ``kernel``, ``dma``, ``dma32``.
* ``atomic_pool_expand()`` at init -- CMA first when ``cma_in_zone()``, else the buddy
  allocator, halving the order on failure.
* ``dma_guess_pool()``, ``dma_alloc_from_pool()`` and ``dma_free_from_pool()``, with the
  pools' ``gen_pool_first_fit_order_align`` policy.

A :class:`~swiotlb_lib.page_alloc.PageAllocator` builds and owns the :class:`AtomicPools`
(``pages.coherent_pools``) and keeps ``dma_alloc_from_pool``, ``dma_free_from_pool`` and
``atomic_pools()`` as thin delegating methods.

**Not modelled:** atomic pool growth by ``atomic_pool_work_fn``.
"""
from __future__ import annotations

from .constants import MAX_ORDER, PAGE_SHIFT, PAGE_SIZE, ULONG_MAX
from .contiguous import CMA_ALIGNMENT
from .gfp import GFP_KERNEL, POOL_OWNER, Gfp, check_gfp, check_int, check_limit, check_paddr, get_order

__all__ = ["ATOMIC_POOL_MIN_BYTES", "COST_KEYS", "default_pool_size", "AtomicPools"]

#: Default atomic pool rule of ``dma_atomic_pool_init()``: 128 KiB per GiB of RAM.
ATOMIC_POOL_MIN_BYTES = 128 << 10
#: The counters :class:`AtomicPools` adds to its ``costs`` dict.
COST_KEYS = ("pool_allocations", "pool_failures", "pool_frees")

_DMA, _DMA32, _NOWARN = int(Gfp.DMA), int(Gfp.DMA32), int(Gfp.NOWARN)
_GiB = 1 << 30


def default_pool_size(totalram_pages: int) -> int:
    """``atomic_pool_size`` when ``coherent_pool=`` is not given: 128 KiB per GiB of
    ``totalram_pages()``, at least 128 KiB, at most ``MAX_ORDER_NR_PAGES`` (4 MiB)."""
    pages = check_int("totalram_pages", totalram_pages, 0, ULONG_MAX) // (_GiB // ATOMIC_POOL_MIN_BYTES)
    pages = min(pages, 1 << MAX_ORDER)
    return max(pages << PAGE_SHIFT, ATOMIC_POOL_MIN_BYTES)


class _AtomicPool:
    """One ``gen_pool`` of ``kernel/dma/pool.c`` (page granular, ``min_alloc_order`` =
    ``PAGE_SHIFT``)."""

    __slots__ = ("name", "gfp", "base_pfn", "npages", "order", "bitmap", "allocs", "used", "from_cma")

    def __init__(self, name: str, gfp: Gfp, base_pfn: int, order: int, from_cma: bool) -> None:
        self.name = name
        self.gfp = gfp
        self.base_pfn = base_pfn
        self.order = order
        self.npages = 1 << order
        self.bitmap = bytearray(self.npages)
        self.allocs: dict[int, int] = {}     # first page index -> pages
        self.used = 0
        self.from_cma = from_cma


class AtomicPools:
    """The atomic pools of one machine (``dma_atomic_pool_init()``, Linux 6.6).

    ``size`` is ``atomic_pool_size`` (``coherent_pool=``); ``None`` means the kernel
    default (:func:`default_pool_size` of ``totalram_pages``); ``0`` creates no pools (a
    model knob).  As in 6.6 three pools are made, each of
    ``1 << min(get_order(size), MAX_ORDER)`` pages: ``kernel`` (``GFP_KERNEL``), ``dma``
    (``GFP_KERNEL|GFP_DMA``, if ZONE_DMA has managed pages) and ``dma32``
    (``GFP_KERNEL|GFP_DMA32``, if ZONE_DMA32 exists).  ``atomic_pool_expand()`` takes each
    from CMA when the CMA area lies in the pool's zone (``cma_in_zone()``), else from the
    buddy allocator, halving the order on failure.

    ``zones`` is ``{zone name: (end PFN, managed pages)}``; ``cma`` the
    :class:`~swiotlb_lib.contiguous.Cma`; ``alloc_pages(gfp, order)`` allocates a buddy
    block for a pool (owner ``"atomic-pool"``) and returns its physical address or None;
    ``costs`` is the counter dict to add ``pool_allocations``, ``pool_failures`` and
    ``pool_frees`` to.
    """

    def __init__(self, size: int | None, *, totalram_pages: int, zones: dict, cma, alloc_pages,
                 costs: dict | None = None) -> None:
        if size is None:
            size = default_pool_size(totalram_pages)
        self.size = check_int("atomic_pool_bytes", size, 0, ULONG_MAX)
        self.costs = {} if costs is None else costs
        for k in COST_KEYS:
            self.costs.setdefault(k, 0)
        self._zones = dict(zones)
        self._cma = cma
        self._pools: dict[str, _AtomicPool] = {}
        if self.size:
            wanted = [("kernel", GFP_KERNEL)]
            if "DMA" in self._zones and self._zones["DMA"][1]:
                wanted.append(("dma", GFP_KERNEL | Gfp.DMA))
            if "DMA32" in self._zones:
                wanted.append(("dma32", GFP_KERNEL | Gfp.DMA32))
            for name, gfp in wanted:
                pool = self._expand(name, gfp, self.size, alloc_pages)
                if pool is not None:
                    self._pools[name] = pool

    def _expand(self, name: str, gfp: Gfp, size: int, alloc_pages) -> _AtomicPool | None:
        """``atomic_pool_expand()`` at init: CMA first when ``cma_in_zone()``, else the
        buddy allocator, halving the order until something is found."""
        order = min(get_order(size), MAX_ORDER)
        while True:
            pfn, from_cma = None, False
            if self._cma_in_zone(gfp):
                pfn = self._cma.cma_alloc(1 << order, min(order, CMA_ALIGNMENT), POOL_OWNER, None)
                from_cma = pfn is not None
            if pfn is None:
                p = alloc_pages(int(gfp) | _NOWARN, order)
                pfn = None if p is None else p >> PAGE_SHIFT
            if pfn is not None:
                return _AtomicPool(name, gfp, pfn, order, from_cma)
            if order == 0:
                return None
            order -= 1

    def _cma_in_zone(self, gfp: int) -> bool:
        """``cma_in_zone()`` (6.6): may this pool come from the default CMA area?"""
        r = self._cma.range
        if r is None:
            return False
        end = r[1] - 1
        if gfp & Gfp.DMA and "DMA" in self._zones:
            return end <= (self._zones["DMA"][0] << PAGE_SHIFT) - 1
        if gfp & Gfp.DMA32:
            return end <= 0xFFFFFFFF
        return True

    def _guess_pools(self, gfp: int):
        """``dma_guess_pool()`` (6.6): the pools ``dma_alloc_from_pool`` tries, in order."""
        pools = self._pools
        if gfp & _DMA32:
            first = pools.get("dma32")
        elif gfp & _DMA and "dma" in pools:
            first = pools["dma"]
        else:
            first = pools.get("kernel")
        out = []
        cur = first
        while cur is not None:
            out.append(cur)
            if cur.name == "kernel":
                cur = pools.get("dma32") or pools.get("dma")
            elif cur.name == "dma32":
                cur = pools.get("dma")
            else:
                cur = None
        return out

    def dma_alloc_from_pool(self, nbytes: int, *, limit: int | None = None, gfp=0) -> int | None:
        """``dma_alloc_from_pool()``: ``nbytes`` (rounded up to pages) from the atomic
        pools, never sleeping.  The pools are tried in ``dma_guess_pool()`` order for
        ``gfp``'s zone bits (none: kernel, then dma32, then dma); in each the first fit
        aligned to the request's power-of-two page count is taken
        (``gen_pool_first_fit_order_align``), and if it ends above ``limit`` (the
        ``phys_addr_ok`` callback; inclusive as in
        :meth:`~swiotlb_lib.page_alloc.PageAllocator.alloc_pages`) the next pool is
        tried.  Returns the physical address or None."""
        nbytes = check_int("nbytes", nbytes, 1, ULONG_MAX)
        limit_pfn = check_limit(limit)
        gfp = check_gfp(gfp)
        nr = (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT
        align = 1 << (nr - 1).bit_length()
        zeros = bytes(nr)
        for pool in self._guess_pools(gfp):
            if nr > pool.npages:
                continue
            bm = pool.bitmap
            i = 0
            idx = None
            while i + nr <= pool.npages:
                j = bm.find(zeros, i)
                if j < 0:
                    break
                a = (j + align - 1) & ~(align - 1)
                if a == j:
                    idx = j
                    break
                i = a
            if idx is None:
                continue
            pfn = pool.base_pfn + idx
            if limit_pfn is not None and pfn + nr > limit_pfn:
                continue
            bm[idx:idx + nr] = b"\x01" * nr
            pool.allocs[idx] = nr
            pool.used += nr
            self.costs["pool_allocations"] += 1
            return pfn << PAGE_SHIFT
        self.costs["pool_failures"] += 1
        return None

    def dma_free_from_pool(self, paddr: int, nbytes: int) -> bool:
        """``dma_free_from_pool()``: False if ``paddr`` is in no atomic pool; else free
        the allocation (which must have been made with the same address and size)."""
        paddr = check_paddr(paddr)
        nbytes = check_int("nbytes", nbytes, 1, ULONG_MAX)
        pfn = paddr >> PAGE_SHIFT
        nr = (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT
        for pool in self._pools.values():
            if pool.base_pfn <= pfn < pool.base_pfn + pool.npages:
                idx = pfn - pool.base_pfn
                have = pool.allocs.get(idx)
                if have is None:
                    raise ValueError(f"paddr: {paddr:#x} is in the {pool.name} atomic pool but not the start "
                                     f"of an allocation")
                if have != nr:
                    raise ValueError(f"nbytes: the pool allocation at {paddr:#x} has {have} pages, got "
                                     f"{nbytes:#x} bytes ({nr} pages)")
                del pool.allocs[idx]
                pool.bitmap[idx:idx + nr] = bytes(nr)
                pool.used -= nr
                self.costs["pool_frees"] += 1
                return True
        return False

    # ------------------------------------------------------------ inspection
    def info(self) -> dict:
        """``{name: {"base", "size", "used", "from_cma", "gfp"}}`` for the atomic pools."""
        return {p.name: {"base": p.base_pfn << PAGE_SHIFT, "size": p.npages << PAGE_SHIFT,
                         "used": p.used << PAGE_SHIFT, "from_cma": p.from_cma, "gfp": p.gfp}
                for p in self._pools.values()}

    @property
    def total_pages(self) -> int:
        """Pages in all pools."""
        return sum(p.npages for p in self._pools.values())

    @property
    def used_pages(self) -> int:
        """Pages handed out from the pools."""
        return sum(p.used for p in self._pools.values())

    def snapshot(self) -> tuple:
        """The pools' logical state (for tests: a call that raises must not change it)."""
        return tuple((p.name, bytes(p.bitmap), tuple(sorted(p.allocs.items())), p.used)
                     for p in self._pools.values())

    def __repr__(self) -> str:
        sizes = {n: p.npages << PAGE_SHIFT >> 10 for n, p in self._pools.items()}
        return f"AtomicPools(size={self.size >> 10} KiB, pools={sizes} KiB)"
