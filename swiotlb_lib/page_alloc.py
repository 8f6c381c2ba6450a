"""The buddy page allocator over a machine's RAM, with zones, watermarks and direct
reclaim -- what dynamic SWIOTLB allocates its memory from.

The RFC v1 patches allocate every dynamic bounce buffer from the page allocator; Linux
6.6 (``CONFIG_SWIOTLB_DYNAMIC``) grows SWIOTLB by pools of up to one ``MAX_ORDER`` block
(4 MiB) and allocates transient pools with ``GFP_NOWAIT``; confidential guests take
non-blocking memory from the atomic pools.  This module models the parts of
``mm/page_alloc.c`` (Linux 6.6) those paths depend on:

* the GFP masks (:mod:`swiotlb_lib.gfp`, re-exported here) and what they do:
  zone choice -- ``gfp_zone()`` and the zonelist walk of ``get_page_from_freelist()``
  (``mm/page_alloc.c``): ``__GFP_DMA`` only ZONE_DMA, ``__GFP_DMA32`` ZONE_DMA32 then
  ZONE_DMA, otherwise ZONE_NORMAL, ZONE_DMA32, ZONE_DMA.
* the buddy system -- ``__rmqueue_smallest()`` + ``expand()`` for allocation (smallest
  sufficient order first, the upper halves go back to the free lists) and
  ``__free_one_page()`` for merging with the buddy (``pfn ^ (1 << order)``) up to
  ``MAX_ORDER`` (10, inclusive since 6.4).
* boot-time free lists -- ``memblock_free_all()`` -> ``__free_pages_memory()``
  (``mm/memblock.c``): each free range is cut into the largest naturally aligned blocks.
* the min watermark -- ``__zone_watermark_ok()`` with the 6.6 reserve rules of
  ``gfp_to_alloc_flags()`` (see :meth:`PageAllocator.watermark_ok`).
* direct reclaim -- ``__alloc_pages_direct_reclaim()`` / ``try_to_free_pages()``
  (``mm/vmscan.c``), modelled as freeing the least recently allocated ``"pagecache"``
  blocks, ``SWAP_CLUSTER_MAX`` (32) pages per reclaim event.

CMA (:mod:`swiotlb_lib.contiguous`, ``kernel/dma/contiguous.c``) and the atomic pools
(:mod:`swiotlb_lib.atomic_pool`, ``kernel/dma/pool.c``) are separate objects that a
:class:`PageAllocator` builds and owns (``pages.cma``, ``pages.coherent_pools``); it keeps
``alloc_contig``, ``free_contig``, ``dma_alloc_from_pool``, ``dma_free_from_pool``,
``atomic_pools()`` and ``cma_range`` as thin delegating methods.

**Free lists.**  Each zone keeps, for orders 0..9, a ``set`` of free block start PFNs
(the truth) plus a min-heap of the same PFNs with lazy deletion (to find the lowest
block, or the lowest block under a ``limit``, in O(log n)).  Free ``MAX_ORDER`` blocks
are kept implicitly: a sorted, coalesced list of PFN extents ``[start, end)`` whose
bounds are multiples of 1024 pages, so a 1 TiB machine starts with a handful of extents
and is built in milliseconds; blocks are cut from an extent only when split or carved.

**Which block.**  The kernel takes the head of a free list.  At boot the lists are
filled in ascending address order at their tails (``FPI_TO_TAIL``) and ``expand()``
keeps the lower half, so a freshly booted kernel hands out low addresses first; the
model makes that the rule: the lowest-addressed block of the smallest sufficient order
(deterministic, and it makes a ``limit`` check a heap look-up).

**Not modelled:** per-CPU page lists, migratetypes and pageblock stealing, the low/high
watermarks and kswapd (``__GFP_KSWAPD_RECLAIM`` wakes nobody), ``lowmem_reserve``,
compaction (the reclaim loop stands in for reclaim + compaction: it keeps reclaiming
while it makes progress, see :meth:`PageAllocator.alloc_pages`), highatomic reserves,
the OOM killer, and page contents (``__GFP_ZERO`` is accepted and has no effect here).
"""
from __future__ import annotations

import heapq
import math
import numbers
from bisect import bisect_left, bisect_right
from collections import OrderedDict

import numpy as np

from .atomic_pool import AtomicPools
from .constants import MAX_ORDER, PAGE_SHIFT, PAGE_SIZE, ULONG_MAX
from .contiguous import Cma
from .gfp import (GFP_ATOMIC, GFP_DMA, GFP_DMA32, GFP_KERNEL, GFP_NOFS, GFP_NOIO, GFP_NOWAIT,  # noqa: F401
                  GFP_ZONEMASK, POOL_OWNER, RESERVED_OWNER, Gfp, check_gfp, check_int, check_limit,
                  check_owner, check_paddr, get_order, gfpflags_allow_blocking, is_int)
from .memory import MemoryLayout

# The GFP names of swiotlb_lib.gfp are importable from here too (not listed, so that the
# API reference documents them once).
__all__ = ["MAX_ORDER", "MAX_ORDER_NR_PAGES", "SWAP_CLUSTER_MAX", "gfp_zone", "PageAllocator"]

#: Pages in one ``MAX_ORDER`` block (``MAX_ORDER_NR_PAGES``, 1024 = 4 MiB since 6.4).
MAX_ORDER_NR_PAGES = 1 << MAX_ORDER
#: Pages one direct-reclaim pass aims to free (``SWAP_CLUSTER_MAX``, ``include/linux/swap.h``).
SWAP_CLUSTER_MAX = 32
#: Kernel zone order (``enum zone_type`` on 64-bit without ZONE_MOVABLE/HIGHMEM).
ZONE_ORDER = ("DMA", "DMA32", "Normal")
#: Owners with a meaning to the allocator (and ``"reserved"``, ``"atomic-pool"``, see gfp).
PAGECACHE_OWNER = "pagecache"
PINNED_OWNER = "pinned"

# plain-int copies for the hot paths
_DMA, _HIGHMEM, _DMA32 = int(Gfp.DMA), int(Gfp.HIGHMEM), int(Gfp.DMA32)
_ZONEMASK = int(GFP_ZONEMASK)
_HIGH, _DIRECT, _NOWARN, _NORETRY = (int(Gfp.ATOMIC_HIGH), int(Gfp.DIRECT_RECLAIM), int(Gfp.NOWARN),
                                     int(Gfp.NORETRY))


# ---------------------------------------------------------------- checks, gfp_zone ----

def _check_fraction(name: str, v, lo: float, hi: float) -> float:
    if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name}: must be a number in [{lo}, {hi}], got {v!r}")
    return float(v)


def gfp_zone(gfp) -> str:
    """``gfp_zone()``: the highest zone a request may use (``"DMA"``, ``"DMA32"`` or
    ``"Normal"``; ``__GFP_HIGHMEM`` maps to ZONE_NORMAL on 64-bit)."""
    g = check_gfp(gfp)
    if g & _DMA:
        return "DMA"
    if g & _DMA32:
        return "DMA32"
    return "Normal"


# ---------------------------------------------------------------- PFN range helpers ----

def _merge_ranges(ranges) -> list:
    out = []
    for s, e in sorted(r for r in ranges if r[0] < r[1]):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _subtract(ranges, holes) -> list:
    """Sorted disjoint ``ranges`` minus sorted disjoint ``holes``."""
    out = []
    holes = list(holes)
    for s, e in ranges:
        cur = s
        for hs, he in holes:
            if he <= cur or hs >= e:
                continue
            if hs > cur:
                out.append((cur, hs))
            cur = max(cur, he)
            if cur >= e:
                break
        if cur < e:
            out.append((cur, e))
    return out


def _intersect(ranges, lo: int, hi: int) -> list:
    return [(max(s, lo), min(e, hi)) for s, e in ranges if max(s, lo) < min(e, hi)]


def _buddy_blocks(s: int, e: int):
    """``__free_pages_memory()``: [s, e) as the largest naturally aligned blocks."""
    while s < e:
        order = MAX_ORDER if s == 0 else min(MAX_ORDER, (s & -s).bit_length() - 1)
        while s + (1 << order) > e:
            order -= 1
        yield s, order
        s += 1 << order


def _owner_add(d: dict, owner: str, pages: int) -> None:
    v = d.get(owner, 0) + pages
    if v:
        d[owner] = v
    else:
        d.pop(owner, None)


# ---------------------------------------------------------------- internal state ----

class _Zone:
    """One zone's free lists (``struct zone`` / ``struct free_area``)."""

    __slots__ = ("name", "idx", "start_pfn", "end_pfn", "free", "heap", "ext_starts", "ext_ends",
                 "ext_blocks", "nr_free", "managed", "wmark_min")

    def __init__(self, name: str, idx: int, start_pfn: int, end_pfn: int) -> None:
        self.name = name
        self.idx = idx
        self.start_pfn = start_pfn
        self.end_pfn = end_pfn
        self.free = [set() for _ in range(MAX_ORDER)]     # orders 0..MAX_ORDER-1
        self.heap = [[] for _ in range(MAX_ORDER)]
        self.ext_starts: list[int] = []                     # free MAX_ORDER blocks, coalesced
        self.ext_ends: list[int] = []
        self.ext_blocks = 0
        self.nr_free = 0
        self.managed = 0
        self.wmark_min = 0


class PageAllocator:
    """A zoned buddy allocator over ``layout.ram`` (``mm/page_alloc.c``, Linux 6.6).

    ``reserved`` lists memblock reservations ``[(start, end), ...]`` (the kernel image,
    early boot allocations, the boot SWIOTLB pool): every page they touch is withheld
    from the allocator, as are RAM pages outside every zone (x86_64 page 0).  Free
    memory is the rest of ``layout.ram``, page-trimmed, cut per zone into the largest
    aligned blocks as ``memblock_free_all()`` does.

    ``cma_bytes``/``cma_limit`` declare the default CMA area before the free lists are
    filled (:meth:`Cma.declare <swiotlb_lib.contiguous.Cma.declare>`); it is withheld
    from the buddy allocator and kept in :attr:`cma`.  ``atomic_pool_bytes`` is
    ``atomic_pool_size`` (``coherent_pool=``; ``None``: the kernel default, ``0``: no
    pools); the pools are then made from CMA or from this allocator
    (:class:`~swiotlb_lib.atomic_pool.AtomicPools`, kept in :attr:`coherent_pools`).
    ``costs`` is shared with both, which add their ``cma_*`` and ``pool_*`` counters.

    ``watermark_min_fraction`` sets each zone's min watermark to that fraction of its
    managed pages (the kernel spreads ``min_free_kbytes`` by managed pages).

    Every bad argument raises ``ValueError`` naming the parameter and its allowed range,
    and a call that raises changes nothing.
    """

    def __init__(self, layout: MemoryLayout, reserved=(), *, cma_bytes: int = 0,
                 cma_limit: int | None = None, atomic_pool_bytes: int | None = None,
                 watermark_min_fraction: float = 0.005) -> None:
        if not isinstance(layout, MemoryLayout):
            raise ValueError(f"layout: must be a MemoryLayout (see memory.layout_for), got {type(layout).__name__}")
        total = layout.total_ram
        res = []
        try:
            items = list(reserved)
        except TypeError:
            raise ValueError(f"reserved: must be a sequence of (start, end) pairs, got {reserved!r}") from None
        for r in items:
            if (not isinstance(r, (tuple, list)) or len(r) != 2 or not all(is_int(x) for x in r)
                    or not 0 <= r[0] <= r[1] <= 1 << 64):
                raise ValueError(f"reserved: each entry must be (start, end) with 0 <= start <= end <= 2**64, "
                                 f"got {r!r}")
            res.append((int(r[0]) >> PAGE_SHIFT, (int(r[1]) + PAGE_SIZE - 1) >> PAGE_SHIFT))
        cma_bytes = check_int("cma_bytes", cma_bytes, 0, total)
        if cma_limit is not None:
            cma_limit = check_int("cma_limit", cma_limit, PAGE_SIZE, 1 << 64)
        if atomic_pool_bytes is not None:
            atomic_pool_bytes = check_int("atomic_pool_bytes", atomic_pool_bytes, 0, total)
        wfrac = _check_fraction("watermark_min_fraction", watermark_min_fraction, 0.0, 0.5)

        self.layout = layout
        self.watermark_min_fraction = wfrac
        self.costs = {"allocations": 0, "frees": 0, "splits": 0, "merges": 0, "reclaim_events": 0,
                      "reclaimed_pages": 0, "failed": 0, "alloc_warnings": 0}
        self._allocated: dict[int, tuple] = {}          # pfn -> (order, owner, zone index)
        self._used_pages = 0
        self._owner_pages: dict[str, int] = {}
        self._lru: OrderedDict[int, None] = OrderedDict()  # pagecache blocks, oldest first

        ram = _merge_ranges(((s + PAGE_SIZE - 1) >> PAGE_SHIFT, e >> PAGE_SHIFT) for s, e in layout.ram)
        free = _subtract(ram, _merge_ranges(res))
        self._zones: list[_Zone] = []
        zone_pieces = []
        for z in sorted(layout.zones, key=lambda z: z.start):
            if z.name not in ZONE_ORDER:
                raise ValueError(f"layout: unknown zone {z.name!r}; the model knows {ZONE_ORDER}")
            lo, hi = (z.start + PAGE_SIZE - 1) >> PAGE_SHIFT, z.end >> PAGE_SHIFT
            if lo >= hi:
                continue
            self._zones.append(_Zone(z.name, ZONE_ORDER.index(z.name), lo, hi))
            zone_pieces.append(_intersect(free, lo, hi))
        self._zone_by_name = {z.name: z for z in self._zones}
        self._zone_by_idx = {z.idx: z for z in self._zones}
        self._zl_cache = {}
        for bits in (0, _DMA, _HIGHMEM, _DMA32):
            high = ZONE_ORDER.index(gfp_zone(bits))
            self._zl_cache[bits] = [z for z in reversed(self._zones) if z.idx <= high]
        self._zone_starts = [z.start_pfn for z in self._zones]

        # -- the cma= reservation (dma_contiguous_reserve), before memblock_free_all ----
        self.cma = Cma.declare(layout, zone_pieces, cma_bytes, cma_limit, costs=self.costs)
        self.cma_limit = self.cma.limit
        if self.cma.count:
            area = [(self.cma.base_pfn, self.cma.base_pfn + self.cma.count)]
            zone_pieces = [_subtract(p, area) for p in zone_pieces]

        for z, pieces in zip(self._zones, zone_pieces):
            for s, e in pieces:
                self._add_free_range(z, s, e)
            z.managed = z.nr_free
            z.wmark_min = int(wfrac * z.managed)
        managed = sum(z.managed for z in self._zones)
        self._total_pages = total >> PAGE_SHIFT
        self._reserved_pages = self._total_pages - managed - self.cma.count
        _owner_add(self._owner_pages, RESERVED_OWNER, self._reserved_pages)

        # -- the atomic pools (dma_atomic_pool_init), from CMA or the buddy allocator ----
        self.coherent_pools = AtomicPools(
            atomic_pool_bytes, totalram_pages=managed + self.cma.count,
            zones={z.name: (z.end_pfn, z.managed) for z in self._zones}, cma=self.cma,
            alloc_pages=lambda gfp, order: self._alloc(gfp, order, None, POOL_OWNER), costs=self.costs)
        self.atomic_pool_size = self.coherent_pools.size

    # ------------------------------------------------------------ free-list primitives
    def _zone_of_pfn(self, pfn: int) -> _Zone | None:
        i = bisect_right(self._zone_starts, pfn) - 1
        if i >= 0 and pfn < self._zones[i].end_pfn:
            return self._zones[i]
        return None

    def _add_free_range(self, z: _Zone, s: int, e: int) -> None:
        """Free [s, e) as ``__free_pages_memory()`` does, but put the aligned middle in
        as one extent of ``MAX_ORDER`` blocks instead of block by block."""
        a = -(-s // MAX_ORDER_NR_PAGES) * MAX_ORDER_NR_PAGES
        b = e // MAX_ORDER_NR_PAGES * MAX_ORDER_NR_PAGES
        if a >= b:
            for blk, o in _buddy_blocks(s, e):
                self._add_free(z, blk, o)
            return
        for blk, o in _buddy_blocks(s, a):
            self._add_free(z, blk, o)
        st, en = z.ext_starts, z.ext_ends
        i = bisect_left(st, a)
        if (i > 0 and en[i - 1] >= a) or (i < len(st) and st[i] <= b):
            raise AssertionError("free ranges overlap or touch")   # ranges are merged first
        st.insert(i, a)
        en.insert(i, b)
        z.ext_blocks += (b - a) // MAX_ORDER_NR_PAGES
        z.nr_free += b - a
        for blk, o in _buddy_blocks(b, e):
            self._add_free(z, blk, o)

    def _add_free(self, z: _Zone, pfn: int, order: int) -> None:
        """Put a block on its free list, no merging (``__add_to_free_list``)."""
        z.nr_free += 1 << order
        if order < MAX_ORDER:
            z.free[order].add(pfn)
            heapq.heappush(z.heap[order], pfn)
            return
        z.ext_blocks += 1
        st, en = z.ext_starts, z.ext_ends
        i = bisect_left(st, pfn)
        left = i > 0 and en[i - 1] == pfn
        right = i < len(st) and st[i] == pfn + MAX_ORDER_NR_PAGES
        if left and right:
            en[i - 1] = en[i]
            del st[i], en[i]
        elif left:
            en[i - 1] = pfn + MAX_ORDER_NR_PAGES
        elif right:
            st[i] = pfn
        else:
            st.insert(i, pfn)
            en.insert(i, pfn + MAX_ORDER_NR_PAGES)

    def _del_free(self, z: _Zone, pfn: int, order: int) -> None:
        """Take a known free block off its free list (``__del_page_from_free_list``)."""
        z.nr_free -= 1 << order
        if order < MAX_ORDER:
            s = z.free[order]
            s.remove(pfn)
            h = z.heap[order]
            if h and h[0] == pfn:
                heapq.heappop(h)
            elif len(h) > 2 * len(s) + 64:          # drop stale heap entries now and then
                z.heap[order] = sorted(s)
            return
        z.ext_blocks -= 1
        st, en = z.ext_starts, z.ext_ends
        i = bisect_right(st, pfn) - 1
        s, e = st[i], en[i]
        if s == pfn and e == pfn + MAX_ORDER_NR_PAGES:
            del st[i], en[i]
        elif s == pfn:
            st[i] = pfn + MAX_ORDER_NR_PAGES
        elif e == pfn + MAX_ORDER_NR_PAGES:
            en[i] = pfn
        else:
            en[i] = pfn
            st.insert(i + 1, pfn + MAX_ORDER_NR_PAGES)
            en.insert(i + 1, e)

    def _find_free_block(self, z: _Zone, pfn: int):
        """The free block containing ``pfn`` as ``(start, order)``, or None."""
        for o in range(MAX_ORDER):
            b = pfn & ~((1 << o) - 1)
            if b in z.free[o]:
                return b, o
        i = bisect_right(z.ext_starts, pfn) - 1
        if i >= 0 and pfn < z.ext_ends[i]:
            return pfn & ~(MAX_ORDER_NR_PAGES - 1), MAX_ORDER
        return None

    def _expand(self, z: _Zone, pfn: int, high: int, low: int) -> None:
        """``expand()``: return the upper halves of a split block to the free lists."""
        self.costs["splits"] += high - low
        while high > low:
            high -= 1
            self._add_free(z, pfn + (1 << high), high)

    def _rmqueue(self, z: _Zone, order: int, limit_pfn: int | None) -> int | None:
        """``__rmqueue_smallest()``: the smallest order with a free block whose first
        ``1 << order`` pages end at or below the limit; the lowest such block (hot: an
        empty list costs no call, a block that needs no split no ``expand()``)."""
        free, heap = z.free, z.heap
        for k in range(order, MAX_ORDER + 1):
            if k < MAX_ORDER:                       # the lowest block of exactly order k
                s = free[k]
                if not s:
                    continue
                h = heap[k]
                while h[0] not in s:                # drop stale heap entries
                    heapq.heappop(h)
                p = h[0]
            elif z.ext_starts:
                p = z.ext_starts[0]
            else:
                return None
            if limit_pfn is not None and p + (1 << order) > limit_pfn:
                continue
            self._del_free(z, p, k)
            if k > order:
                self._expand(z, p, k, order)
            return p
        return None

    def _free_one(self, z: _Zone, pfn: int, order: int) -> None:
        """``__free_one_page()``: merge with free buddies up to ``MAX_ORDER``."""
        free, low = z.free, order
        while order < MAX_ORDER:
            buddy = pfn ^ (1 << order)
            if buddy not in free[order]:
                break
            self._del_free(z, buddy, order)
            pfn &= buddy
            order += 1
        if order > low:
            self.costs["merges"] += order - low
        self._add_free(z, pfn, order)

    # ------------------------------------------------------------ watermarks and zones
    def watermark_ok(self, zone: str, order: int, gfp) -> bool:
        """``__zone_watermark_ok()`` against the min watermark (Linux 6.6 rules).

        ``__GFP_HIGH`` (``ALLOC_MIN_RESERVE``) lowers the mark by half; a request that
        also cannot block (``ALLOC_NON_BLOCK``, e.g. ``GFP_ATOMIC``) by a further
        quarter of the rest.  The allocation may proceed iff
        ``free - ((1 << order) - 1) > min``, i.e. at least ``min`` pages stay free.
        ``GFP_NOWAIT`` gets no reserve access.  ``lowmem_reserve`` is not modelled.
        """
        z = self._zone(zone)
        order = check_int("order", order, 0, MAX_ORDER)
        return self._watermark_ok(z, order, check_gfp(gfp))

    @staticmethod
    def _watermark_ok(z: _Zone, order: int, gfp: int) -> bool:
        mn = z.wmark_min
        if gfp & _HIGH:
            mn -= mn // 2
            if not gfp & _DIRECT:
                mn -= mn // 4
        return z.nr_free - ((1 << order) - 1) > mn

    def _zone(self, name) -> _Zone:
        if name not in self._zone_by_name:
            raise ValueError(f"zone: must be one of {list(self._zone_by_name)} on {self.layout.arch}, got {name!r}")
        return self._zone_by_name[name]

    def zonelist(self, gfp) -> list[str]:
        """The zones a request may use, in the order they are tried (highest first)."""
        return [z.name for z in self._zonelist(check_gfp(gfp), 0, None)]

    def _zonelist(self, gfp: int, order: int, limit_pfn: int | None) -> list[_Zone]:
        out = self._zl_cache[gfp & _ZONEMASK]
        if limit_pfn is not None:
            out = [z for z in out if z.start_pfn + (1 << order) <= limit_pfn]
        return out

    def _get_page_from_freelist(self, zl, order: int, gfp: int, limit_pfn):
        for z in zl:
            if not self._watermark_ok(z, order, gfp):
                continue
            p = self._rmqueue(z, order, limit_pfn)
            if p is not None:
                return p, z
        return None

    def _direct_reclaim(self, zl) -> int:
        """One direct reclaim pass (``try_to_free_pages`` with ``nr_to_reclaim`` =
        ``SWAP_CLUSTER_MAX``): free the least recently allocated pagecache blocks in
        the request's zones until 32 pages are freed or none are left.  Returns pages."""
        eligible = {z.idx for z in zl}
        victims, freed = [], 0
        alloc = self._allocated
        for pfn in self._lru:
            order, _, zi = alloc[pfn]
            if zi in eligible:
                victims.append(pfn)
                freed += 1 << order
                if freed >= SWAP_CLUSTER_MAX:
                    break
        for pfn in victims:
            self._release(pfn)
        if freed:
            self.costs["reclaim_events"] += 1
            self.costs["reclaimed_pages"] += freed
        return freed

    # ------------------------------------------------------------ the page allocator
    def alloc_pages(self, gfp, order: int, *, limit: int | None = None, owner: str = "kernel") -> int | None:
        """``alloc_pages(gfp, order)``: the physical address of a free block of
        ``1 << order`` pages, or None.

        Zones are tried in zonelist order (:meth:`zonelist`); in each, the min watermark
        (:meth:`watermark_ok`) must hold, then the lowest block of the smallest order
        that fits is split (``__rmqueue_smallest``).  ``limit`` is the highest usable
        physical address (a kernel ``phys_limit``/DMA mask such as ``0xffffffff``; a page
        aligned bound like ``1 << 32`` means the same): only a block with
        ``paddr + size - 1 <= limit`` is handed out -- a block above it is skipped, never
        allocated and freed again.

        A request that may block (``gfpflags_allow_blocking``) and finds nothing enters
        direct reclaim: each reclaim event frees up to ``SWAP_CLUSTER_MAX`` pages of the
        oldest ``owner="pagecache"`` blocks in its zones, then the zones are tried again;
        this repeats while reclaim makes progress (with ``Gfp.NORETRY``: once).  The
        reclaimed pagecache stays freed even if the request then fails, as in the kernel.
        Non-blocking requests never reclaim.  A failure counts in ``costs["failed"]`` (and
        ``alloc_warnings`` unless ``Gfp.NOWARN``).
        """
        if type(order) is not int or not 0 <= order <= MAX_ORDER:
            order = check_int("order", order, 0, MAX_ORDER)
        gfp = check_gfp(gfp)
        limit_pfn = None if limit is None else check_limit(limit)
        if type(owner) is not str or owner in (RESERVED_OWNER, POOL_OWNER) or not owner:
            check_owner(owner)
        return self._alloc(gfp, order, limit_pfn, owner)

    def _alloc(self, gfp: int, order: int, limit_pfn, owner: str) -> int | None:
        zl = self._zl_cache[gfp & _ZONEMASK] if limit_pfn is None else self._zonelist(gfp, order, limit_pfn)
        got = self._get_page_from_freelist(zl, order, gfp, limit_pfn)
        if got is None and gfp & _DIRECT and zl:
            while self._direct_reclaim(zl):
                got = self._get_page_from_freelist(zl, order, gfp, limit_pfn)
                if got is not None or gfp & _NORETRY:
                    break
        if got is None:
            self.costs["failed"] += 1
            if not gfp & _NOWARN:
                self.costs["alloc_warnings"] += 1
            return None
        pfn, z = got
        self._allocated[pfn] = (order, owner, z.idx)
        self._used_pages += 1 << order
        _owner_add(self._owner_pages, owner, 1 << order)
        if owner == PAGECACHE_OWNER:
            self._lru[pfn] = None
        self.costs["allocations"] += 1
        return pfn << PAGE_SHIFT

    def free_pages(self, paddr: int, order: int) -> None:
        """``__free_pages(page, order)``: give back a block from :meth:`alloc_pages`,
        merging it with free buddies.  ``ValueError`` on a double free, a wrong order or
        an address that is not the start of an allocated block."""
        if type(paddr) is not int or not 0 <= paddr <= ULONG_MAX or paddr & (PAGE_SIZE - 1):
            paddr = check_paddr(paddr)
        if type(order) is not int or not 0 <= order <= MAX_ORDER:
            order = check_int("order", order, 0, MAX_ORDER)
        pfn = paddr >> PAGE_SHIFT
        rec = self._allocated.get(pfn)
        if rec is None:
            z = self._zone_of_pfn(pfn)
            if z is not None and self._find_free_block(z, pfn) is not None:
                raise ValueError(f"paddr: {paddr:#x} is free already (double free)")
            if self.cma.contains(pfn):
                raise ValueError(f"paddr: {paddr:#x} is in the CMA area; use free_contig")
            raise ValueError(f"paddr: {paddr:#x} is not the start of an allocated block")
        if rec[0] != order:
            raise ValueError(f"order: the block at {paddr:#x} was allocated with order {rec[0]}, got {order}")
        if rec[1] == POOL_OWNER:
            raise ValueError(f"paddr: {paddr:#x} backs an atomic pool; it is never freed")
        self._release(pfn)

    def _release(self, pfn: int) -> None:
        order, owner, zi = self._allocated.pop(pfn)
        _owner_add(self._owner_pages, owner, -(1 << order))
        if owner == PAGECACHE_OWNER:
            del self._lru[pfn]
        self._used_pages -= 1 << order
        self._free_one(self._zone_by_idx[zi], pfn, order)
        self.costs["frees"] += 1

    # ------------------------------------------------------------ CMA and atomic pools (delegating)
    def alloc_contig(self, nbytes: int, gfp, *, limit: int | None = None, owner: str = "cma") -> int | None:
        """:meth:`~swiotlb_lib.contiguous.Cma.dma_alloc_contiguous` of :attr:`cma`."""
        return self.cma.dma_alloc_contiguous(nbytes, gfp, limit=limit, owner=owner)

    def free_contig(self, paddr: int, nbytes: int) -> None:
        """:meth:`~swiotlb_lib.contiguous.Cma.dma_free_contiguous` of :attr:`cma`."""
        self.cma.dma_free_contiguous(paddr, nbytes)

    def dma_alloc_from_pool(self, nbytes: int, *, limit: int | None = None, gfp=0) -> int | None:
        """:meth:`~swiotlb_lib.atomic_pool.AtomicPools.dma_alloc_from_pool` of :attr:`coherent_pools`."""
        return self.coherent_pools.dma_alloc_from_pool(nbytes, limit=limit, gfp=gfp)

    def dma_free_from_pool(self, paddr: int, nbytes: int) -> bool:
        """:meth:`~swiotlb_lib.atomic_pool.AtomicPools.dma_free_from_pool` of :attr:`coherent_pools`."""
        return self.coherent_pools.dma_free_from_pool(paddr, nbytes)

    @property
    def cma_range(self) -> tuple[int, int] | None:
        """The CMA area as ``(start, end)`` physical addresses, or None."""
        return self.cma.range

    def atomic_pools(self) -> dict:
        """``{name: {"base", "size", "used", "from_cma", "gfp"}}`` for the atomic pools."""
        return self.coherent_pools.info()

    # ------------------------------------------------------------ workloads
    def fragment(self, seed: int, pinned_fraction: float = 0.02, zone: str | None = None) -> int:
        """Fragment free memory the way a long-running workload does, deterministically.

        The workload modelled: allocate every free page of ``zone`` (all zones if None)
        one by one in a seeded random order, keep each with probability
        ``pinned_fraction`` (owner ``"pinned"``, order 0) and free the rest.  Buddy
        merging is eager, so the result is fully determined by the set of pinned pages:
        the free blocks are then the largest aligned blocks (up to ``MAX_ORDER``) that
        contain no pinned page.  The model computes that state directly: it draws the
        pinned pages (Bernoulli with ``pinned_fraction``, via geometric gaps from
        ``numpy.random.default_rng(seed)``) and carves each out of its free block, which
        costs ``O(pinned * MAX_ORDER)`` rather than ``O(free pages)``.  Costs count one
        allocation per pinned page and the splits of the carving.  Watermarks are not
        checked.  Returns the number of pinned pages.
        """
        seed = check_int("seed", seed, 0, ULONG_MAX)
        frac = _check_fraction("pinned_fraction", pinned_fraction, 0.0, 1.0)
        zones = self._zones if zone is None else [self._zone(zone)]
        starts, sizes = [], []
        for z in zones:
            for o in range(MAX_ORDER):
                starts += z.free[o]
                sizes += [1 << o] * len(z.free[o])
            for s, e in zip(z.ext_starts, z.ext_ends):
                starts.append(s)
                sizes.append(e - s)
        if not starts or frac == 0.0:
            return 0
        st = np.array(starts, dtype=np.int64)
        sz = np.array(sizes, dtype=np.int64)
        order = np.argsort(st, kind="stable")
        st, sz = st[order], sz[order]
        cum = np.cumsum(sz)
        total = int(cum[-1])
        rng = np.random.default_rng(seed)
        if frac >= 1.0:
            pos = np.arange(total, dtype=np.int64)
        else:
            chunks, last = [], -1
            chunk = max(int(total * frac * 1.05) + 64, 64)
            while last < total:
                gaps = rng.geometric(frac, size=chunk).astype(np.int64)
                c = np.cumsum(gaps) + last
                chunks.append(c)
                last = int(c[-1])
            pos = np.concatenate(chunks)
            pos = pos[pos < total]
        idx = np.searchsorted(cum, pos, side="right")
        pfns = st[idx] + (pos - (cum[idx] - sz[idx]))
        for pfn in pfns.tolist():
            z = self._zone_of_pfn(pfn)
            b, o = self._find_free_block(z, pfn)
            self._del_free(z, b, o)
            while o > 0:                      # keep the half without pfn free
                o -= 1
                half = 1 << o
                if pfn >= b + half:
                    self._add_free(z, b, o)
                    b += half
                else:
                    self._add_free(z, b + half, o)
                self.costs["splits"] += 1
            self._allocated[pfn] = (0, PINNED_OWNER, z.idx)
            self.costs["allocations"] += 1
        self._used_pages += len(pfns)
        _owner_add(self._owner_pages, PINNED_OWNER, len(pfns))
        return int(len(pfns))

    # ------------------------------------------------------------ inspection
    def largest_free_block(self, zone: str | None = None) -> int:
        """Bytes in the largest free buddy block of ``zone`` (all zones if None); CMA and
        the atomic pools are not counted.  0 if nothing is free."""
        zones = self._zones if zone is None else [self._zone(zone)]
        best = -1
        for z in zones:
            if z.ext_blocks:
                return PAGE_SIZE << MAX_ORDER
            for o in range(MAX_ORDER - 1, best, -1):
                if z.free[o]:
                    best = o
                    break
        return 0 if best < 0 else PAGE_SIZE << best

    def free_lists(self, zone: str | None = None) -> dict:
        """``/proc/buddyinfo`` in full: ``{zone: [[paddr, ...] for order 0..MAX_ORDER]}``
        with each list sorted (``MAX_ORDER`` blocks expanded from their extents)."""
        zones = self._zones if zone is None else [self._zone(zone)]
        out = {}
        for z in zones:
            lists = [sorted(p << PAGE_SHIFT for p in z.free[o]) for o in range(MAX_ORDER)]
            top = []
            for s, e in zip(z.ext_starts, z.ext_ends):
                top += range(s << PAGE_SHIFT, e << PAGE_SHIFT, PAGE_SIZE << MAX_ORDER)
            lists.append(top)
            out[z.name] = lists
        return out

    def allocations(self) -> dict:
        """Live buddy blocks: ``{paddr: (order, owner)}``."""
        return {p << PAGE_SHIFT: (o, w) for p, (o, w, _) in self._allocated.items()}

    def _owners(self) -> dict:
        """Pages per owner: buddy blocks, reserved memory and CMA ranges."""
        out = dict(self._owner_pages)
        for k, v in self.cma.owners.items():
            out[k] = out.get(k, 0) + v
        return out

    def stats(self) -> dict:
        """Memory accounting, in bytes unless named otherwise.

        Identities that always hold::

            total == free + used + reserved + cma_total
            sum(owners.values()) == used + reserved + cma_used
            free == sum(free_by_zone.values())
                 == sum(n << order for order, n in enumerate(free_blocks_by_order)) * PAGE_SIZE

        ``used`` is buddy memory in allocated blocks (atomic pools taken from the buddy
        allocator included, owner ``"atomic-pool"``); ``reserved`` is RAM withheld at
        construction (memblock reservations, pages outside every zone); ``cma_used``
        counts CMA ranges handed out (pools carved from CMA included).
        ``atomic_pool_total``/``atomic_pool_used`` describe the pools' own contents.
        ``reclaimable`` is pagecache.  ``largest_free_order`` is None if nothing is free.
        """
        P = PAGE_SIZE
        by_order = [0] * (MAX_ORDER + 1)
        for z in self._zones:
            for o in range(MAX_ORDER):
                by_order[o] += len(z.free[o])
            by_order[MAX_ORDER] += z.ext_blocks
        free = sum(z.nr_free for z in self._zones)
        used = self._used_pages
        largest = max((o for o, n in enumerate(by_order) if n), default=None)
        return {
            "total": self._total_pages * P, "free": free * P, "used": used * P,
            "reserved": self._reserved_pages * P, "cma_total": self.cma.count * P,
            "cma_used": self.cma.used * P,
            "atomic_pool_total": self.coherent_pools.total_pages * P,
            "atomic_pool_used": self.coherent_pools.used_pages * P,
            "reclaimable": self._owner_pages.get(PAGECACHE_OWNER, 0) * P,
            "free_by_zone": {z.name: z.nr_free * P for z in self._zones},
            "managed_by_zone": {z.name: z.managed * P for z in self._zones},
            "watermark_min_by_zone": {z.name: z.wmark_min * P for z in self._zones},
            "free_blocks_by_order": by_order,
            "largest_free_order": largest,
            "owners": {k: v * P for k, v in sorted(self._owners().items())},
            "costs": dict(self.costs),
        }

    def check(self) -> None:
        """Verify every internal invariant (O(n log n); for tests).  Raises
        ``AssertionError`` naming the first broken one."""
        intervals = []
        for z in self._zones:
            n = 0
            for o in range(MAX_ORDER):
                assert set(z.heap[o]) >= z.free[o], f"{z.name}: heap misses order-{o} blocks"
                for p in z.free[o]:
                    assert p % (1 << o) == 0, f"{z.name}: order-{o} block {p:#x} misaligned"
                    assert (p ^ (1 << o)) not in z.free[o], f"{z.name}: unmerged buddies at order {o}, {p:#x}"
                    intervals.append((p, p + (1 << o), "free"))
                    n += 1 << o
            assert z.ext_starts == sorted(z.ext_starts)
            for i, (s, e) in enumerate(zip(z.ext_starts, z.ext_ends)):
                assert s < e and s % MAX_ORDER_NR_PAGES == 0 and e % MAX_ORDER_NR_PAGES == 0
                assert i == 0 or z.ext_ends[i - 1] < s, f"{z.name}: extents not coalesced"
                intervals.append((s, e, "free"))
                n += e - s
            assert n == z.nr_free, f"{z.name}: nr_free {z.nr_free} != {n}"
            assert z.ext_blocks == sum(e - s for s, e in zip(z.ext_starts, z.ext_ends)) // MAX_ORDER_NR_PAGES
            for s, e, _ in intervals:
                if z.start_pfn <= s < z.end_pfn:
                    assert e <= z.end_pfn, f"{z.name}: block crosses the zone end"
        for p, (o, _, zi) in self._allocated.items():
            assert p % (1 << o) == 0
            z = self._zone_of_pfn(p)
            assert z is not None and z.idx == zi and p + (1 << o) <= z.end_pfn
            intervals.append((p, p + (1 << o), "alloc"))
        intervals.sort()
        for (s1, e1, k1), (s2, e2, k2) in zip(intervals, intervals[1:]):
            assert e1 <= s2, f"overlap: {k1} [{s1:#x},{e1:#x}) and {k2} [{s2:#x},{e2:#x})"
        st = self.stats()
        assert st["total"] == st["free"] + st["used"] + st["reserved"] + st["cma_total"]
        assert sum(st["owners"].values()) == st["used"] + st["reserved"] + st["cma_used"]
        assert set(self._lru) == {p for p, r in self._allocated.items() if r[1] == PAGECACHE_OWNER}
        assert self._used_pages == sum(1 << r[0] for r in self._allocated.values())

    def _snapshot(self):
        """The whole logical state (for tests: a call that raises must not change it)."""
        zones = tuple((z.name, tuple(frozenset(s) for s in z.free), tuple(z.ext_starts), tuple(z.ext_ends),
                       z.ext_blocks, z.nr_free) for z in self._zones)
        return (zones, tuple(sorted(self._allocated.items())), tuple(self._lru), tuple(sorted(self._owners().items())),
                *self.cma.snapshot(), self.coherent_pools.snapshot(), tuple(sorted(self.costs.items())))

    def __repr__(self) -> str:
        st = self.stats()
        return (f"PageAllocator({self.layout.arch}, total={st['total'] >> 20} MiB, free={st['free'] >> 20} MiB, "
                f"zones={[z.name for z in self._zones]}, cma={st['cma_total'] >> 20} MiB)")
