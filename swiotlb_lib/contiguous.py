"""The default CMA area: the ``cma=`` reservation and the DMA layer's contiguous
allocations, as in Linux 6.6.

* the ``cma=`` reservation -- ``dma_contiguous_reserve()`` -> ``cma_declare_contiguous_nid()``
  (``kernel/dma/contiguous.c``, ``mm/cma.c``): where the area is placed
  (:meth:`Cma.declare`; the size comes from ``cma=`` or the machine's default, see
  :attr:`swiotlb_lib.boot.Machine.cma_bytes`).
* allocation -- ``dma_alloc_contiguous()`` and ``dma_free_contiguous()``
  (``kernel/dma/contiguous.c``) over ``cma_alloc()``/``cma_release()`` (``mm/cma.c``):
  :meth:`Cma.dma_alloc_contiguous`, :meth:`Cma.dma_free_contiguous`, :meth:`Cma.cma_alloc`.

The area is withheld from the buddy allocator: a
:class:`~swiotlb_lib.page_alloc.PageAllocator` carves it out of free memory before it fills
its free lists, owns the :class:`Cma` (``pages.cma``) and keeps ``alloc_contig`` /
``free_contig`` as thin delegating methods.  The atomic pools
(:mod:`swiotlb_lib.atomic_pool`) may take their memory from it.

**Not modelled:** per-device (``dev->cma_area``) and per-NUMA-node areas; the area's
pages are never lent to movable buddy allocations (``MIGRATE_CMA``), so migration is
assumed to succeed.
"""
from __future__ import annotations

from bisect import bisect_left

from .constants import PAGE_SHIFT, PAGE_SIZE, ULONG_MAX
from .gfp import POOL_OWNER, Gfp, check_gfp, check_int, check_limit, check_owner, check_paddr, get_order

__all__ = ["CMA_ALIGNMENT", "PAGEBLOCK_ORDER", "CMA_MIN_ALIGNMENT_PAGES", "COST_KEYS", "Cma"]

#: ``CONFIG_CMA_ALIGNMENT`` (default 8): cap on the alignment order of a CMA allocation.
CMA_ALIGNMENT = 8
#: ``pageblock_order`` with 4 KiB pages and THP on x86_64/arm64 (``HPAGE_PMD_ORDER``).
PAGEBLOCK_ORDER = 9
#: ``CMA_MIN_ALIGNMENT_BYTES`` (``PAGE_SIZE * pageblock_nr_pages``): CMA base and size
#: granularity, 2 MiB.
CMA_MIN_ALIGNMENT_PAGES = 1 << PAGEBLOCK_ORDER

_DIRECT = int(Gfp.DIRECT_RECLAIM)
_FOUR_GIB_PFN = (4 << 30) >> PAGE_SHIFT
#: The counters a :class:`Cma` adds to its ``costs`` dict.
COST_KEYS = ("cma_attempts", "cma_failures", "cma_releases")


class Cma:
    """The default CMA area (``struct cma`` of ``mm/cma.c``): ``count`` pages from PFN
    ``base_pfn`` (``count == 0``: no area), a first-fit allocator over them, and the
    DMA layer's calls into it (``kernel/dma/contiguous.c``, Linux 6.6).

    Build it with :meth:`declare`.  Only :meth:`dma_alloc_contiguous` (the page
    allocator's ``alloc_contig``) and the atomic pools use the area.  ``costs`` is the
    counter dict to add ``cma_attempts``, ``cma_failures`` and ``cma_releases`` to (a page
    allocator passes its own, so ``PageAllocator.costs`` keeps every counter).  ``owners``
    is ``{owner: pages}`` of the ranges handed out, ``used`` their total in pages.
    """

    def __init__(self, base_pfn: int = 0, count: int = 0, *, limit: int | None = None,
                 costs: dict | None = None) -> None:
        self.base_pfn = check_int("base_pfn", base_pfn, 0, ULONG_MAX >> PAGE_SHIFT)
        self.count = check_int("count", count, 0, ULONG_MAX >> PAGE_SHIFT)
        self.limit = limit
        self.costs = {} if costs is None else costs
        for k in COST_KEYS:
            self.costs.setdefault(k, 0)
        self.owners: dict[str, int] = {}
        self.used = 0
        self._allocs: dict[int, tuple] = {}        # pfn -> (pages, owner)
        self._starts: list[int] = []

    # ------------------------------------------------------------ the cma= reservation
    @classmethod
    def declare(cls, layout, zone_pieces, size: int, limit: int | None = None, *,
                costs: dict | None = None) -> "Cma":
        """``dma_contiguous_reserve()`` -> ``cma_declare_contiguous_nid()``: carve the
        default area out of free memory (checked arguments; ``size`` 0: no area).

        ``size`` (rounded up to 2 MiB, ``CMA_MIN_ALIGNMENT_BYTES``) is placed as
        ``cma_declare_contiguous_nid()`` does: bottom-up from 4 GiB if ``limit`` lies above
        4 GiB and RAM reaches past 4 GiB + size, else the highest 2 MiB aligned free range
        below ``limit``, inside one zone.  ``zone_pieces`` is, per zone, the free PFN
        ranges ``[(start, end), ...]``.  The default ``limit`` (:meth:`default_limit`) is
        the top of ZONE_DMA on arm64 presets (``arm64_dma_phys_limit``; the RPi firmware's
        CMA lives in the first GiB) and the top of ZONE_DMA32 otherwise.  ``ValueError``
        (naming ``cma_bytes``) if the area does not fit.
        """
        if not size:
            return cls(limit=limit, costs=costs)
        gran = CMA_MIN_ALIGNMENT_PAGES << PAGE_SHIFT
        npages = -(-size // gran) * CMA_MIN_ALIGNMENT_PAGES
        if limit is None:
            limit = cls.default_limit(layout)
        base = cls.place(zone_pieces, npages, limit)
        if base is None:
            raise ValueError(f"cma_bytes: {npages * PAGE_SIZE:#x} bytes of 2 MiB aligned free memory in one "
                             f"zone are not available below cma_limit {limit:#x}")
        return cls(base, npages, limit=limit, costs=costs)

    @staticmethod
    def default_limit(layout) -> int:
        """The default ``limit``: the top of ZONE_DMA on arm64 presets, else the top of
        ZONE_DMA32, else the top of physical memory."""
        names = {z.name: z for z in layout.zones}
        if layout.arch.startswith("arm64") and "DMA" in names:
            return names["DMA"].end
        if "DMA32" in names:
            return names["DMA32"].end
        return layout.max_phys

    @staticmethod
    def place(zone_pieces, npages: int, limit: int) -> int | None:
        """The base PFN of the CMA area, or None (``cma_declare_contiguous_nid``)."""
        align = CMA_MIN_ALIGNMENT_PAGES
        limit_pfn = min(limit >> PAGE_SHIFT, 1 << 52)
        four_g = _FOUR_GIB_PFN
        pieces = sorted(p for ps in zone_pieces for p in ps)
        top = max((e for _, e in pieces), default=0)
        if limit_pfn > four_g and top >= four_g + npages:     # bottom-up above 4 GiB first
            for s, e in pieces:
                s = max(s, four_g)
                b = -(-s // align) * align
                if b + npages <= min(e, limit_pfn):
                    return b
        for s, e in sorted(pieces, key=lambda p: -p[1]):       # memblock top-down
            hi = (min(e, limit_pfn) // align) * align
            if hi - npages >= s:
                return hi - npages
        return None

    # ------------------------------------------------------------ mm/cma.c
    def cma_alloc(self, count: int, align_order: int, owner: str, limit_pfn: int | None = None) -> int | None:
        """``cma_alloc()``: first fit of ``count`` pages at a PFN multiple of
        ``1 << align_order`` inside the area; the first PFN, or None.  A fit that ends
        above ``limit_pfn`` (one past the highest usable PFN) is not handed out.  For the
        DMA layer: ``owner`` may be ``"atomic-pool"``."""
        count = check_int("count", count, 1, ULONG_MAX >> PAGE_SHIFT)
        align_order = check_int("align_order", align_order, 0, 63)
        if not isinstance(owner, str) or not owner:
            check_owner(owner)
        self.costs["cma_attempts"] += 1
        mask = (1 << align_order) - 1
        pos, end = self.base_pfn, self.base_pfn + self.count
        found = None
        for s in self._starts:
            cand = (pos + mask) & ~mask
            if cand + count <= s:
                found = cand
                break
            pos = max(pos, s + self._allocs[s][0])
        else:
            cand = (pos + mask) & ~mask
            if cand + count <= end:
                found = cand
        if found is None or (limit_pfn is not None and found + count > limit_pfn):
            self.costs["cma_failures"] += 1
            return None
        self._allocs[found] = (count, owner)
        self._starts.insert(bisect_left(self._starts, found), found)
        self.used += count
        self.owners[owner] = self.owners.get(owner, 0) + count
        return found

    # ------------------------------------------------------------ kernel/dma/contiguous.c
    def dma_alloc_contiguous(self, nbytes: int, gfp, *, limit: int | None = None, owner: str = "cma") -> int | None:
        """``dma_alloc_contiguous()`` -> ``cma_alloc()``: a contiguous range from the
        default CMA area, or None.

        As in 6.6: only if the caller may block (CMA migrates pages and can sleep), and
        never for ``nbytes <= PAGE_SIZE`` (single pages are left to the buddy allocator).
        The range is ``PAGE_ALIGN(nbytes)`` bytes aligned to
        ``min(get_order(nbytes), CONFIG_CMA_ALIGNMENT=8)`` pages, the first fit in the
        area's bitmap; it may exceed ``MAX_ORDER``.  If that first fit ends above
        ``limit`` (inclusive, as in
        :meth:`~swiotlb_lib.page_alloc.PageAllocator.alloc_pages`) it is not handed out
        (dma-direct would free it again) and the attempt fails.  ``costs["cma_attempts"]``
        counts calls that reach ``cma_alloc``, ``cma_failures`` those that return
        nothing.  Migration is assumed to succeed.
        """
        nbytes = check_int("nbytes", nbytes, 1, ULONG_MAX)
        gfp = check_gfp(gfp)
        limit_pfn = check_limit(limit)
        owner = check_owner(owner)
        if not gfp & _DIRECT or nbytes <= PAGE_SIZE or not self.count:
            return None
        count = (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT
        pfn = self.cma_alloc(count, min(get_order(nbytes), CMA_ALIGNMENT), owner, limit_pfn)
        return None if pfn is None else pfn << PAGE_SHIFT

    def dma_free_contiguous(self, paddr: int, nbytes: int) -> None:
        """``dma_free_contiguous()`` -> ``cma_release()`` of a range from
        :meth:`dma_alloc_contiguous` (same address and size)."""
        paddr = check_paddr(paddr)
        nbytes = check_int("nbytes", nbytes, 1, ULONG_MAX)
        pfn = paddr >> PAGE_SHIFT
        rec = self._allocs.get(pfn)
        if rec is None:
            raise ValueError(f"paddr: {paddr:#x} is not the start of a CMA allocation")
        count = (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT
        if rec[0] != count:
            raise ValueError(f"nbytes: the CMA range at {paddr:#x} has {rec[0]} pages, got {nbytes:#x} bytes "
                             f"({count} pages)")
        if rec[1] == POOL_OWNER:
            raise ValueError(f"paddr: {paddr:#x} backs an atomic pool; it is never freed")
        del self._allocs[pfn]
        del self._starts[bisect_left(self._starts, pfn)]
        self.used -= count
        left = self.owners[rec[1]] - count
        if left:
            self.owners[rec[1]] = left
        else:
            del self.owners[rec[1]]
        self.costs["cma_releases"] += 1

    # ------------------------------------------------------------ inspection
    def contains(self, pfn: int) -> bool:
        """Is page ``pfn`` in the area?"""
        return self.base_pfn <= pfn < self.base_pfn + self.count

    @property
    def range(self) -> tuple[int, int] | None:
        """The area as ``(start, end)`` physical addresses, or None."""
        if not self.count:
            return None
        return self.base_pfn << PAGE_SHIFT, (self.base_pfn + self.count) << PAGE_SHIFT

    def snapshot(self) -> tuple:
        """The allocator's logical state (for tests: a call that raises must not change it)."""
        return tuple(sorted(self._allocs.items())), tuple(self._starts), self.used

    def __repr__(self) -> str:
        r = self.range
        where = "none" if r is None else f"[{r[0]:#x}, {r[1]:#x})"
        return f"Cma({where}, used={self.used << PAGE_SHIFT >> 10} KiB)"
