"""The buddy page allocator over a machine's RAM, with zones, watermarks, direct reclaim,
CMA and the atomic coherent pools -- what dynamic SWIOTLB allocates its memory from.

The RFC v1 patches allocate every dynamic bounce buffer from the page allocator; Linux
6.6 (``CONFIG_SWIOTLB_DYNAMIC``) grows SWIOTLB by pools of up to one ``MAX_ORDER`` block
(4 MiB) and allocates transient pools with ``GFP_NOWAIT``; confidential guests take
non-blocking memory from the atomic pools.  This module models the parts of Linux 6.6
those paths depend on:

* :class:`Gfp` and the ``GFP_*`` masks -- ``include/linux/gfp_types.h`` (6.6 bit values).
* zone choice -- ``gfp_zone()`` and the zonelist walk of ``get_page_from_freelist()``
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
* CMA -- ``cma_declare_contiguous_nid()`` (placement), ``dma_alloc_contiguous()``
  (``kernel/dma/contiguous.c``) and ``cma_alloc()``/``cma_release()`` (``mm/cma.c``).
* the atomic pools -- ``dma_atomic_pool_init()``, ``atomic_pool_expand()``,
  ``dma_guess_pool()``, ``dma_alloc_from_pool()`` and ``dma_free_from_pool()``
  (``kernel/dma/pool.c``), with the pools' ``gen_pool_first_fit_order_align`` policy.

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
the OOM killer, atomic pool growth by ``atomic_pool_work_fn``, and page contents
(``__GFP_ZERO`` is accepted and has no effect here).
"""
from __future__ import annotations

import enum
import heapq
import math
import numbers
from bisect import bisect_left, bisect_right
from collections import OrderedDict

import numpy as np

from .constants import MAX_ORDER, PAGE_SHIFT, PAGE_SIZE
from .memory import MemoryLayout

__all__ = ["Gfp", "GFP_KERNEL", "GFP_NOWAIT", "GFP_ATOMIC", "GFP_NOIO", "GFP_NOFS", "GFP_DMA",
           "GFP_DMA32", "GFP_ZONEMASK", "MAX_ORDER", "MAX_ORDER_NR_PAGES", "SWAP_CLUSTER_MAX",
           "gfpflags_allow_blocking", "gfp_zone", "get_order", "PageAllocator"]

#: Pages in one ``MAX_ORDER`` block (``MAX_ORDER_NR_PAGES``, 1024 = 4 MiB since 6.4).
MAX_ORDER_NR_PAGES = 1 << MAX_ORDER
#: Pages one direct-reclaim pass aims to free (``SWAP_CLUSTER_MAX``, ``include/linux/swap.h``).
SWAP_CLUSTER_MAX = 32
#: ``CONFIG_CMA_ALIGNMENT`` (default 8): cap on the alignment order of a CMA allocation.
CMA_ALIGNMENT = 8
#: ``pageblock_order`` with 4 KiB pages and THP on x86_64/arm64 (``HPAGE_PMD_ORDER``).
PAGEBLOCK_ORDER = 9
#: ``CMA_MIN_ALIGNMENT_BYTES`` (``PAGE_SIZE * pageblock_nr_pages``): CMA base and size
#: granularity, 2 MiB.
CMA_MIN_ALIGNMENT_PAGES = 1 << PAGEBLOCK_ORDER
#: Default atomic pool rule of ``dma_atomic_pool_init()``: 128 KiB per GiB of RAM.
ATOMIC_POOL_MIN_BYTES = 128 << 10
#: Kernel zone order (``enum zone_type`` on 64-bit without ZONE_MOVABLE/HIGHMEM).
ZONE_ORDER = ("DMA", "DMA32", "Normal")
#: Owners the allocator itself uses; callers may not claim them.
RESERVED_OWNER = "reserved"
POOL_OWNER = "atomic-pool"
PAGECACHE_OWNER = "pagecache"
PINNED_OWNER = "pinned"

_U64 = (1 << 64) - 1
_GiB = 1 << 30


class Gfp(enum.IntFlag):
    """The ``gfp_t`` bits that matter to the model, with their Linux 6.6 values
    (``include/linux/gfp_types.h``; 0x200 has been unused since ``__GFP_ATOMIC`` went
    in 6.3)."""

    DMA = 0x01
    HIGHMEM = 0x02          # no highmem on 64-bit: behaves like no zone modifier
    DMA32 = 0x04
    ATOMIC_HIGH = 0x20      # __GFP_HIGH: may dip into the min reserve
    IO = 0x40
    FS = 0x80
    ZERO = 0x100
    DIRECT_RECLAIM = 0x400
    KSWAPD_RECLAIM = 0x800
    NOWARN = 0x2000
    NORETRY = 0x10000


GFP_DMA = Gfp.DMA
GFP_DMA32 = Gfp.DMA32
GFP_ZONEMASK = Gfp.DMA | Gfp.HIGHMEM | Gfp.DMA32
GFP_KERNEL = Gfp.DIRECT_RECLAIM | Gfp.KSWAPD_RECLAIM | Gfp.IO | Gfp.FS
GFP_NOWAIT = Gfp.KSWAPD_RECLAIM
GFP_ATOMIC = Gfp.ATOMIC_HIGH | Gfp.KSWAPD_RECLAIM
GFP_NOIO = GFP_KERNEL & ~(Gfp.IO | Gfp.FS)
GFP_NOFS = GFP_KERNEL & ~Gfp.FS
_GFP_KNOWN = 0
for _bit in Gfp:
    _GFP_KNOWN |= int(_bit)
# plain-int copies for the hot paths
_DMA, _HIGHMEM, _DMA32 = int(Gfp.DMA), int(Gfp.HIGHMEM), int(Gfp.DMA32)
_ZONEMASK = int(GFP_ZONEMASK)
_HIGH, _DIRECT, _NOWARN, _NORETRY = (int(Gfp.ATOMIC_HIGH), int(Gfp.DIRECT_RECLAIM), int(Gfp.NOWARN),
                                     int(Gfp.NORETRY))


# ---------------------------------------------------------------- argument checks ----

def _is_int(v) -> bool:
    if isinstance(v, int):
        return not isinstance(v, bool)
    return isinstance(v, numbers.Integral)


def _check_int(name: str, v, lo: int, hi: int) -> int:
    if type(v) is not int:
        if not _is_int(v):
            raise ValueError(f"{name}: must be an integer in [{lo:#x}, {hi:#x}], got {v!r}")
        v = int(v)
    if not lo <= v <= hi:
        raise ValueError(f"{name}: must be in [{lo:#x}, {hi:#x}], got {v:#x}")
    return v


def _check_fraction(name: str, v, lo: float, hi: float) -> float:
    if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{name}: must be a number in [{lo}, {hi}], got {v!r}")
    return float(v)


def _check_gfp(gfp) -> int:
    """Validate a gfp mask and return it as a plain int (flag arithmetic on ints is
    several times faster than on ``IntFlag`` members)."""
    if type(gfp) is not int:
        if not _is_int(gfp):
            raise ValueError(f"gfp: must be a Gfp flag combination (a non-negative integer), got {gfp!r}")
        gfp = int(gfp)
    if gfp < 0 or gfp & ~_GFP_KNOWN:
        raise ValueError(f"gfp: unknown bits {gfp & ~_GFP_KNOWN if gfp >= 0 else gfp:#x}; allowed bits are "
                         f"{_GFP_KNOWN:#x} ({', '.join(b.name for b in Gfp)})")
    if (gfp & _ZONEMASK) not in (0, _DMA, _HIGHMEM, _DMA32):
        raise ValueError(f"gfp: at most one of Gfp.DMA, Gfp.DMA32, Gfp.HIGHMEM may be set "
                         f"(GFP_ZONE_BAD), got {gfp:#x}")
    return gfp


def _check_limit(limit) -> int | None:
    """``limit`` -> one past the highest usable PFN (None: no limit)."""
    if limit is None:
        return None
    limit = _check_int("limit", limit, 0, _U64)
    return (limit + 1) >> PAGE_SHIFT


def _check_owner(owner) -> str:
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner: must be a non-empty string, got {owner!r}")
    if owner in (RESERVED_OWNER, POOL_OWNER):
        raise ValueError(f"owner: {owner!r} is used by the allocator itself; choose another name")
    return owner


def _check_paddr(paddr) -> int:
    paddr = _check_int("paddr", paddr, 0, _U64)
    if paddr & (PAGE_SIZE - 1):
        raise ValueError(f"paddr: must be page aligned ({PAGE_SIZE:#x}), got {paddr:#x}")
    return paddr


def gfpflags_allow_blocking(gfp) -> bool:
    """``gfpflags_allow_blocking()``: the caller may sleep (``__GFP_DIRECT_RECLAIM`` set)."""
    return bool(_check_gfp(gfp) & _DIRECT)


def gfp_zone(gfp) -> str:
    """``gfp_zone()``: the highest zone a request may use (``"DMA"``, ``"DMA32"`` or
    ``"Normal"``; ``__GFP_HIGHMEM`` maps to ZONE_NORMAL on 64-bit)."""
    g = _check_gfp(gfp)
    if g & _DMA:
        return "DMA"
    if g & _DMA32:
        return "DMA32"
    return "Normal"


def get_order(nbytes) -> int:
    """``get_order()``: the smallest order whose block (``PAGE_SIZE << order``) holds
    ``nbytes`` (>= 1); may exceed ``MAX_ORDER``."""
    nbytes = _check_int("nbytes", nbytes, 1, _U64)
    return ((nbytes - 1) >> PAGE_SHIFT).bit_length()


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


class PageAllocator:
    """A zoned buddy allocator over ``layout.ram`` (``mm/page_alloc.c``, Linux 6.6).

    ``reserved`` lists memblock reservations ``[(start, end), ...]`` (the kernel image,
    early boot allocations, the boot SWIOTLB pool): every page they touch is withheld
    from the allocator, as are RAM pages outside every zone (x86_64 page 0).  Free
    memory is the rest of ``layout.ram``, page-trimmed, cut per zone into the largest
    aligned blocks as ``memblock_free_all()`` does.

    ``cma_bytes`` (rounded up to 2 MiB, ``CMA_MIN_ALIGNMENT_BYTES``) carves the default
    CMA area out of free memory as ``cma_declare_contiguous_nid()`` does: bottom-up from
    4 GiB if ``cma_limit`` lies above 4 GiB and RAM reaches past 4 GiB + size, else the
    highest 2 MiB aligned free range below ``cma_limit``, inside one zone.  The default
    ``cma_limit`` is the top of ZONE_DMA on arm64 presets (``arm64_dma_phys_limit``;
    the RPi firmware's CMA lives in the first GiB) and the top of ZONE_DMA32 otherwise.
    Only :meth:`alloc_contig` (and the atomic pools, see below) use the CMA area.

    ``atomic_pool_bytes`` is ``atomic_pool_size`` (``coherent_pool=``); ``None`` means
    the kernel default: 128 KiB per GiB of ``totalram_pages()``, at least 128 KiB, at
    most ``MAX_ORDER_NR_PAGES`` (4 MiB); ``0`` creates no pools (a model knob).  As in
    6.6 ``dma_atomic_pool_init()`` three pools are made, each of
    ``1 << min(get_order(size), MAX_ORDER)`` pages: ``kernel`` (``GFP_KERNEL``),
    ``dma`` (``GFP_KERNEL|GFP_DMA``, if ZONE_DMA has managed pages) and ``dma32``
    (``GFP_KERNEL|GFP_DMA32``, if ZONE_DMA32 exists).  ``atomic_pool_expand()`` takes
    each from CMA when the CMA area lies in the pool's zone (``cma_in_zone()``), else
    from the buddy allocator, halving the order on failure.

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
            if (not isinstance(r, (tuple, list)) or len(r) != 2 or not all(_is_int(x) for x in r)
                    or not 0 <= r[0] <= r[1] <= 1 << 64):
                raise ValueError(f"reserved: each entry must be (start, end) with 0 <= start <= end <= 2**64, "
                                 f"got {r!r}")
            res.append((int(r[0]) >> PAGE_SHIFT, (int(r[1]) + PAGE_SIZE - 1) >> PAGE_SHIFT))
        cma_bytes = _check_int("cma_bytes", cma_bytes, 0, total)
        if cma_limit is not None:
            cma_limit = _check_int("cma_limit", cma_limit, PAGE_SIZE, 1 << 64)
        if atomic_pool_bytes is not None:
            atomic_pool_bytes = _check_int("atomic_pool_bytes", atomic_pool_bytes, 0, total)
        wfrac = _check_fraction("watermark_min_fraction", watermark_min_fraction, 0.0, 0.5)

        self.layout = layout
        self.watermark_min_fraction = wfrac
        self.costs = {"allocations": 0, "frees": 0, "splits": 0, "merges": 0, "reclaim_events": 0,
                      "reclaimed_pages": 0, "failed": 0, "alloc_warnings": 0, "cma_attempts": 0,
                      "cma_failures": 0, "cma_releases": 0, "pool_allocations": 0, "pool_failures": 0,
                      "pool_frees": 0}
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

        # -- CMA (cma_declare_contiguous_nid) --------------------------------------
        self._cma_base = self._cma_npages = 0
        self._cma_allocs: dict[int, tuple] = {}        # pfn -> (pages, owner)
        self._cma_starts: list[int] = []
        self._cma_used = 0
        if cma_bytes:
            gran = CMA_MIN_ALIGNMENT_PAGES << PAGE_SHIFT
            npages = -(-cma_bytes // gran) * CMA_MIN_ALIGNMENT_PAGES
            if cma_limit is None:
                cma_limit = self._default_cma_limit()
            base = self._place_cma(zone_pieces, npages, cma_limit)
            if base is None:
                raise ValueError(f"cma_bytes: {npages * PAGE_SIZE:#x} bytes of 2 MiB aligned free memory in one "
                                 f"zone are not available below cma_limit {cma_limit:#x}")
            self._cma_base, self._cma_npages = base, npages
            zone_pieces = [_subtract(p, [(base, base + npages)]) for p in zone_pieces]
        self.cma_limit = cma_limit

        for z, pieces in zip(self._zones, zone_pieces):
            for s, e in pieces:
                self._add_free_range(z, s, e)
            z.managed = z.nr_free
            z.wmark_min = int(wfrac * z.managed)
        managed = sum(z.managed for z in self._zones)
        self._total_pages = total >> PAGE_SHIFT
        self._reserved_pages = self._total_pages - managed - self._cma_npages
        _owner_add(self._owner_pages, RESERVED_OWNER, self._reserved_pages)

        # -- atomic pools (dma_atomic_pool_init) ----------------------------------
        if atomic_pool_bytes is None:
            pages = (managed + self._cma_npages) // (_GiB // ATOMIC_POOL_MIN_BYTES)
            pages = min(pages, MAX_ORDER_NR_PAGES)
            atomic_pool_bytes = max(pages << PAGE_SHIFT, ATOMIC_POOL_MIN_BYTES)
        self.atomic_pool_size = atomic_pool_bytes
        self._pools: dict[str, _AtomicPool] = {}
        if atomic_pool_bytes:
            wanted = [("kernel", GFP_KERNEL)]
            if "DMA" in self._zone_by_name and self._zone_by_name["DMA"].managed:
                wanted.append(("dma", GFP_KERNEL | Gfp.DMA))
            if "DMA32" in self._zone_by_name:
                wanted.append(("dma32", GFP_KERNEL | Gfp.DMA32))
            for name, gfp in wanted:
                pool = self._atomic_pool_expand(name, gfp, atomic_pool_bytes)
                if pool is not None:
                    self._pools[name] = pool

    # ------------------------------------------------------------ construction helpers
    def _default_cma_limit(self) -> int:
        lay = self.layout
        names = {z.name: z for z in lay.zones}
        if lay.arch.startswith("arm64") and "DMA" in names:
            return names["DMA"].end
        if "DMA32" in names:
            return names["DMA32"].end
        return lay.max_phys

    def _place_cma(self, zone_pieces, npages: int, limit: int) -> int | None:
        """The base PFN of the CMA area, or None (``cma_declare_contiguous_nid``)."""
        align = CMA_MIN_ALIGNMENT_PAGES
        limit_pfn = min(limit >> PAGE_SHIFT, 1 << 52)
        four_g = (4 * _GiB) >> PAGE_SHIFT
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

    def _atomic_pool_expand(self, name: str, gfp: Gfp, size: int) -> _AtomicPool | None:
        """``atomic_pool_expand()`` at init: CMA first when ``cma_in_zone()``, else the
        buddy allocator, halving the order until something is found."""
        order = min(get_order(size), MAX_ORDER)
        while True:
            pfn, from_cma = None, False
            if self._cma_in_zone(gfp):
                pfn = self._cma_alloc(1 << order, min(order, CMA_ALIGNMENT), POOL_OWNER, None)
                from_cma = pfn is not None
            if pfn is None:
                p = self._alloc(int(gfp) | _NOWARN, order, None, POOL_OWNER)
                pfn = None if p is None else p >> PAGE_SHIFT
            if pfn is not None:
                return _AtomicPool(name, gfp, pfn, order, from_cma)
            if order == 0:
                return None
            order -= 1

    def _cma_in_zone(self, gfp: int) -> bool:
        """``cma_in_zone()`` (6.6): may this pool come from the default CMA area?"""
        if not self._cma_npages:
            return False
        end = ((self._cma_base + self._cma_npages) << PAGE_SHIFT) - 1
        if gfp & Gfp.DMA and "DMA" in self._zone_by_name:
            return end <= (self._zone_by_name["DMA"].end_pfn << PAGE_SHIFT) - 1
        if gfp & Gfp.DMA32:
            return end <= 0xFFFFFFFF
        return True

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

    def _lowest(self, z: _Zone, order: int) -> int | None:
        """The lowest free block start of exactly ``order`` (None if the list is empty)."""
        if order == MAX_ORDER:
            return z.ext_starts[0] if z.ext_starts else None
        s = z.free[order]
        if not s:
            return None
        h = z.heap[order]
        while h[0] not in s:
            heapq.heappop(h)
        return h[0]

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
        while high > low:
            high -= 1
            self._add_free(z, pfn + (1 << high), high)
            self.costs["splits"] += 1

    def _rmqueue(self, z: _Zone, order: int, limit_pfn: int | None) -> int | None:
        """``__rmqueue_smallest()``: the smallest order with a free block whose first
        ``1 << order`` pages end at or below the limit; the lowest such block."""
        need = 1 << order
        for k in range(order, MAX_ORDER + 1):
            p = self._lowest(z, k)
            if p is None or (limit_pfn is not None and p + need > limit_pfn):
                continue
            self._del_free(z, p, k)
            self._expand(z, p, k, order)
            return p
        return None

    def _free_one(self, z: _Zone, pfn: int, order: int) -> None:
        """``__free_one_page()``: merge with free buddies up to ``MAX_ORDER``."""
        while order < MAX_ORDER:
            buddy = pfn ^ (1 << order)
            if buddy not in z.free[order]:
                break
            self._del_free(z, buddy, order)
            pfn &= buddy
            order += 1
            self.costs["merges"] += 1
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
        order = _check_int("order", order, 0, MAX_ORDER)
        return self._watermark_ok(z, order, _check_gfp(gfp))

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
        return [z.name for z in self._zonelist(_check_gfp(gfp), 0, None)]

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
        order = _check_int("order", order, 0, MAX_ORDER)
        gfp = _check_gfp(gfp)
        limit_pfn = _check_limit(limit)
        if type(owner) is not str or owner in (RESERVED_OWNER, POOL_OWNER) or not owner:
            _check_owner(owner)
        return self._alloc(gfp, order, limit_pfn, owner)

    def _alloc(self, gfp: int, order: int, limit_pfn, owner: str) -> int | None:
        zl = self._zonelist(gfp, order, limit_pfn)
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
        paddr = _check_paddr(paddr)
        order = _check_int("order", order, 0, MAX_ORDER)
        pfn = paddr >> PAGE_SHIFT
        rec = self._allocated.get(pfn)
        if rec is None:
            z = self._zone_of_pfn(pfn)
            if z is not None and self._find_free_block(z, pfn) is not None:
                raise ValueError(f"paddr: {paddr:#x} is free already (double free)")
            if self._cma_npages and self._cma_base <= pfn < self._cma_base + self._cma_npages:
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

    # ------------------------------------------------------------ CMA
    def alloc_contig(self, nbytes: int, gfp, *, limit: int | None = None, owner: str = "cma") -> int | None:
        """``dma_alloc_contiguous()`` -> ``cma_alloc()``: a contiguous range from the
        default CMA area, or None.

        As in 6.6: only if the caller may block (CMA migrates pages and can sleep), and
        never for ``nbytes <= PAGE_SIZE`` (single pages are left to the buddy allocator).
        The range is ``PAGE_ALIGN(nbytes)`` bytes aligned to
        ``min(get_order(nbytes), CONFIG_CMA_ALIGNMENT=8)`` pages, the first fit in the
        area's bitmap; it may exceed ``MAX_ORDER``.  If that first fit ends above
        ``limit`` (inclusive, as in :meth:`alloc_pages`) it is not handed out (dma-direct
        would free it again) and the attempt fails.  ``costs["cma_attempts"]`` counts
        calls that reach ``cma_alloc``, ``cma_failures`` those that return nothing.
        Migration is assumed to succeed.
        """
        nbytes = _check_int("nbytes", nbytes, 1, _U64)
        gfp = _check_gfp(gfp)
        limit_pfn = _check_limit(limit)
        owner = _check_owner(owner)
        if not gfp & _DIRECT or nbytes <= PAGE_SIZE or not self._cma_npages:
            return None
        count = (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT
        pfn = self._cma_alloc(count, min(get_order(nbytes), CMA_ALIGNMENT), owner, limit_pfn)
        return None if pfn is None else pfn << PAGE_SHIFT

    def _cma_alloc(self, count: int, align_order: int, owner: str, limit_pfn) -> int | None:
        """``cma_alloc()``: first fit of ``count`` pages at a PFN multiple of
        ``1 << align_order`` inside the area."""
        self.costs["cma_attempts"] += 1
        mask = (1 << align_order) - 1
        pos, end = self._cma_base, self._cma_base + self._cma_npages
        found = None
        for s in self._cma_starts:
            cand = (pos + mask) & ~mask
            if cand + count <= s:
                found = cand
                break
            pos = max(pos, s + self._cma_allocs[s][0])
        else:
            cand = (pos + mask) & ~mask
            if cand + count <= end:
                found = cand
        if found is None or (limit_pfn is not None and found + count > limit_pfn):
            self.costs["cma_failures"] += 1
            return None
        self._cma_allocs[found] = (count, owner)
        self._cma_starts.insert(bisect_left(self._cma_starts, found), found)
        self._cma_used += count
        _owner_add(self._owner_pages, owner, count)
        return found

    def free_contig(self, paddr: int, nbytes: int) -> None:
        """``dma_free_contiguous()`` -> ``cma_release()`` of a range from
        :meth:`alloc_contig` (same address and size)."""
        paddr = _check_paddr(paddr)
        nbytes = _check_int("nbytes", nbytes, 1, _U64)
        pfn = paddr >> PAGE_SHIFT
        rec = self._cma_allocs.get(pfn)
        if rec is None:
            raise ValueError(f"paddr: {paddr:#x} is not the start of a CMA allocation")
        count = (nbytes + PAGE_SIZE - 1) >> PAGE_SHIFT
        if rec[0] != count:
            raise ValueError(f"nbytes: the CMA range at {paddr:#x} has {rec[0]} pages, got {nbytes:#x} bytes "
                             f"({count} pages)")
        if rec[1] == POOL_OWNER:
            raise ValueError(f"paddr: {paddr:#x} backs an atomic pool; it is never freed")
        del self._cma_allocs[pfn]
        del self._cma_starts[bisect_left(self._cma_starts, pfn)]
        self._cma_used -= count
        _owner_add(self._owner_pages, rec[1], -count)
        self.costs["cma_releases"] += 1

    # ------------------------------------------------------------ atomic pools
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
        ``phys_addr_ok`` callback; inclusive as in :meth:`alloc_pages`) the next pool is
        tried.  Returns the physical address or None."""
        nbytes = _check_int("nbytes", nbytes, 1, _U64)
        limit_pfn = _check_limit(limit)
        gfp = _check_gfp(gfp)
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
        paddr = _check_paddr(paddr)
        nbytes = _check_int("nbytes", nbytes, 1, _U64)
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
        seed = _check_int("seed", seed, 0, _U64)
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

    @property
    def cma_range(self) -> tuple[int, int] | None:
        """The CMA area as ``(start, end)`` physical addresses, or None."""
        if not self._cma_npages:
            return None
        return self._cma_base << PAGE_SHIFT, (self._cma_base + self._cma_npages) << PAGE_SHIFT

    def atomic_pools(self) -> dict:
        """``{name: {"base", "size", "used", "from_cma", "gfp"}}`` for the atomic pools."""
        return {p.name: {"base": p.base_pfn << PAGE_SHIFT, "size": p.npages << PAGE_SHIFT,
                         "used": p.used << PAGE_SHIFT, "from_cma": p.from_cma, "gfp": p.gfp}
                for p in self._pools.values()}

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
            "total": self._total_pages * P,
            "free": free * P,
            "used": used * P,
            "reserved": self._reserved_pages * P,
            "cma_total": self._cma_npages * P,
            "cma_used": self._cma_used * P,
            "atomic_pool_total": sum(p.npages for p in self._pools.values()) * P,
            "atomic_pool_used": sum(p.used for p in self._pools.values()) * P,
            "reclaimable": self._owner_pages.get(PAGECACHE_OWNER, 0) * P,
            "free_by_zone": {z.name: z.nr_free * P for z in self._zones},
            "managed_by_zone": {z.name: z.managed * P for z in self._zones},
            "watermark_min_by_zone": {z.name: z.wmark_min * P for z in self._zones},
            "free_blocks_by_order": by_order,
            "largest_free_order": largest,
            "owners": {k: v * P for k, v in sorted(self._owner_pages.items())},
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
        pools = tuple((p.name, bytes(p.bitmap), tuple(sorted(p.allocs.items())), p.used)
                      for p in self._pools.values())
        return (zones, tuple(sorted(self._allocated.items())), tuple(self._lru), tuple(sorted(self._owner_pages.items())),
                tuple(sorted(self._cma_allocs.items())), tuple(self._cma_starts), self._cma_used, pools,
                tuple(sorted(self.costs.items())))

    def __repr__(self) -> str:
        st = self.stats()
        return (f"PageAllocator({self.layout.arch}, total={st['total'] >> 20} MiB, free={st['free'] >> 20} MiB, "
                f"zones={[z.name for z in self._zones]}, cma={st['cma_total'] >> 20} MiB)")
