"""The compiled twin of the part of the buddy allocator (:mod:`swiotlb_lib.page_alloc`) that a
replay of a growing profile exercises, and the functions that build it from a
:class:`~swiotlb_lib.page_alloc.PageAllocator` and write its work back.

Part of the compiled engine (:mod:`swiotlb_lib.trace.fast`).  The twin covers
``alloc_pages()`` without reclaim (:meth:`PageAllocator._alloc
<swiotlb_lib.page_alloc.PageAllocator>`: the zonelist for the gfp mask and the limit, the
min watermark, ``__rmqueue_smallest()`` with ``expand()``, the lowest block of the smallest
sufficient order) and ``__free_pages()`` (``__free_one_page()``, merging with free buddies up
to ``MAX_ORDER``), Linux 6.6's ``mm/page_alloc.c`` as the reference models it, on the same
representation: per zone, the free blocks of orders 0..9 (one dict ``pfn -> order, zone``
for all zones and a min-heap per zone and order with lazy deletion) and the free
``MAX_ORDER`` blocks as sorted, coalesced extents.  The replay never asks for pagecache
reclaim, CMA or the atomic pools: :func:`unsupported` refuses an allocator that could need
them.

**Write-back.**  The reference's allocator is changed only through its public methods.
Its logical state (which blocks are free, at which order) is a function of the set of
allocated blocks, because merging is eager (no two free buddies of one order in a zone, the
invariant :meth:`PageAllocator.check <swiotlb_lib.page_alloc.PageAllocator.check>` asserts).
So a stretch of the twin's operations that starts and ends with no transient pool alive and
adds no worker pool leaves the reference's state as it found it, and only its counters
count; the other stretches are replayed through :meth:`PageAllocator.alloc_pages
<swiotlb_lib.page_alloc.PageAllocator.alloc_pages>` and ``free_pages``, which must return
the same blocks (checked).  ``PageAllocator.costs`` then gets the twin's counters.
"""
from __future__ import annotations

import numpy as np

from ..constants import MAX_ORDER, PAGE_SHIFT
from ..dynamic import gfp_for_limit
from ..gfp import GFP_KERNEL, GFP_NOWAIT, Gfp, check_limit
from .fast_state import (GFP_DIRECT_BIT, GFP_HIGH_BIT, GFP_NOWARN_BIT, HAVE_NUMBA, NZ, OP_FREE, OP_TRANSIENT,
                         OP_WORKER, P_LOG_OPS, PG_ALLOCATIONS, PG_FAILED, PG_FREES, PG_MERGES, PG_NOPS, PG_SPLITS,
                         PG_WARNINGS, Z_END, Z_NEXT, Z_NR_FREE, Z_START, Z_WMARK, grown, jit, var)

if HAVE_NUMBA:
    from numba import types
    from numba.typed import Dict

MAX_ORDER_NR_PAGES = 1 << MAX_ORDER


# -- the free lists -----------------------------------------------------------------------
@jit
def _heap_push(S, row, v):
    n = S.pg_hn[row]
    if n == S.pg_heap.shape[1]:
        _heap_compact(S, row)
        n = S.pg_hn[row]
        if n * 2 > S.pg_heap.shape[1]:
            S.pg_heap = grown(S.pg_heap, S.pg_heap.shape[0], 2 * S.pg_heap.shape[1])
    h = S.pg_heap
    i = n
    while i > 0:
        up = (i - 1) >> 1
        if h[row, up] <= v:
            break
        h[row, i] = h[row, up]
        i = up
    h[row, i] = v
    S.pg_hn[row] = n + 1


@jit
def _sift_down(h, row, i, n, v):
    """Put ``v`` at heap position ``i`` of row ``row`` (``n`` entries) and sift it down."""
    while True:
        j = 2 * i + 1
        if j >= n:
            break
        if j + 1 < n and h[row, j + 1] < h[row, j]:
            j += 1
        if h[row, j] >= v:
            break
        h[row, i] = h[row, j]
        i = j
    h[row, i] = v


@jit
def _heap_pop(S, row):
    n = S.pg_hn[row] - 1
    S.pg_hn[row] = n
    if n > 0:
        _sift_down(S.pg_heap, row, var(0), n, S.pg_heap[row, n])


@jit
def _heap_compact(S, row):
    """Drop the heap's stale entries (blocks no longer free at its order and zone), then
    restore the heap order (sift down from the last parent)."""
    z, o = row // MAX_ORDER, row % MAX_ORDER
    code = o * 4 + z
    h = S.pg_heap
    n = 0
    for j in range(S.pg_hn[row]):
        if S.pg_free.get(h[row, j], -1) == code:
            h[row, n] = h[row, j]
            n += 1
    S.pg_hn[row] = n
    for i in range(n // 2 - 1, -1, -1):
        _sift_down(h, row, i, n, h[row, i])


@jit
def _lowest(S, z, o):
    """The first step of ``PageAllocator._rmqueue`` at each order: the lowest free block of
    exactly order ``o`` in zone ``z``, or -1."""
    if o == MAX_ORDER:
        return S.pg_es[z, 0] if S.pg_z[z, Z_NEXT] > 0 else -1
    row = z * MAX_ORDER + o
    code = o * 4 + z
    while S.pg_hn[row] > 0:
        p = S.pg_heap[row, 0]
        if S.pg_free.get(p, -1) == code:
            return p
        _heap_pop(S, row)
    return -1


@jit
def _ext_room(S, z):
    if S.pg_z[z, Z_NEXT] == S.pg_es.shape[1]:
        S.pg_es = grown(S.pg_es, S.pg_es.shape[0], 2 * S.pg_es.shape[1])
        S.pg_ee = grown(S.pg_ee, S.pg_ee.shape[0], 2 * S.pg_ee.shape[1])


@jit
def _ext_insert(S, z, i, s, e):
    _ext_room(S, z)
    n = S.pg_z[z, Z_NEXT]
    es, ee = S.pg_es, S.pg_ee
    for k in range(n, i, -1):
        es[z, k], ee[z, k] = es[z, k - 1], ee[z, k - 1]
    es[z, i], ee[z, i] = s, e
    S.pg_z[z, Z_NEXT] = n + 1


@jit
def _ext_delete(S, z, i):
    n = S.pg_z[z, Z_NEXT]
    es, ee = S.pg_es, S.pg_ee
    for k in range(i, n - 1):
        es[z, k], ee[z, k] = es[z, k + 1], ee[z, k + 1]
    S.pg_z[z, Z_NEXT] = n - 1


@jit
def _add_free(S, z, pfn, o):
    """``PageAllocator._add_free``: put a block on its free list, no merging."""
    S.pg_z[z, Z_NR_FREE] += 1 << o
    if o < MAX_ORDER:
        S.pg_free[pfn] = o * 4 + z
        _heap_push(S, z * MAX_ORDER + o, pfn)
        return
    n = S.pg_z[z, Z_NEXT]
    es, ee = S.pg_es, S.pg_ee
    i = 0
    while i < n and es[z, i] < pfn:                     # bisect_left
        i += 1
    left = i > 0 and ee[z, i - 1] == pfn
    right = i < n and es[z, i] == pfn + MAX_ORDER_NR_PAGES
    if left and right:
        ee[z, i - 1] = ee[z, i]
        _ext_delete(S, z, i)
    elif left:
        ee[z, i - 1] = pfn + MAX_ORDER_NR_PAGES
    elif right:
        es[z, i] = pfn
    else:
        _ext_insert(S, z, i, pfn, pfn + MAX_ORDER_NR_PAGES)


@jit
def _del_free(S, z, pfn, o):
    """``PageAllocator._del_free``: take a known free block off its free list."""
    S.pg_z[z, Z_NR_FREE] -= 1 << o
    if o < MAX_ORDER:
        S.pg_free.pop(pfn)
        row = z * MAX_ORDER + o
        if S.pg_hn[row] > 0 and S.pg_heap[row, 0] == pfn:
            _heap_pop(S, row)
        return
    n = S.pg_z[z, Z_NEXT]
    es, ee = S.pg_es, S.pg_ee
    i = n - 1
    while i > 0 and es[z, i] > pfn:                     # bisect_right - 1
        i -= 1
    s, e = es[z, i], ee[z, i]
    if s == pfn and e == pfn + MAX_ORDER_NR_PAGES:
        _ext_delete(S, z, i)
    elif s == pfn:
        es[z, i] = pfn + MAX_ORDER_NR_PAGES
    elif e == pfn + MAX_ORDER_NR_PAGES:
        ee[z, i] = pfn
    else:
        ee[z, i] = pfn
        _ext_insert(S, z, i + 1, pfn + MAX_ORDER_NR_PAGES, e)


@jit
def _rmqueue(S, z, order, limit_pfn):
    """``__rmqueue_smallest()`` + ``expand()`` (``PageAllocator._rmqueue``): the lowest block
    of the smallest order whose first ``1 << order`` pages end at or below the limit."""
    need = 1 << order
    for k in range(order, MAX_ORDER + 1):
        p = _lowest(S, z, k)
        if p < 0 or p + need > limit_pfn:
            continue
        _del_free(S, z, p, k)
        while k > order:
            k -= 1
            _add_free(S, z, p + (1 << k), k)
            S.C[PG_SPLITS] += 1
        return p
    return -1


@jit
def _log_op(S, kind, pfn, order, dev):
    """One row of the operation log :func:`write_back` replays (none when the replay leaves no
    machine behind: ``P_LOG_OPS``, ``Engine.machine_after``)."""
    if not S.P[P_LOG_OPS]:
        return
    n = S.C[PG_NOPS]
    if n == S.pg_ops.shape[0]:
        S.pg_ops = grown(S.pg_ops, 2 * n, var(4))
    ops = S.pg_ops
    ops[n, 0], ops[n, 1], ops[n, 2], ops[n, 3] = kind, pfn, order, dev
    S.C[PG_NOPS] = n + 1


@jit
def alloc_pages(S, zl, order, limit_pfn, gflags, kind, dev):
    """``alloc_pages()`` (``PageAllocator._alloc``) for the zonelist row ``zl`` of ``S.zl``
    (the zones of the gfp mask, highest first), the limit and the gfp flags (bits
    ``GFP_*_BIT``); no direct reclaim (nothing to reclaim: :func:`unsupported`).  Returns
    ``(pfn, zone)`` or ``(-1, -1)``; logs the operation."""
    C = S.C
    got, gz = -1, -1
    for k in range(S.zl[zl, 0]):
        z = S.zl[zl, 1 + k]
        if S.pg_z[z, Z_START] + (1 << order) > limit_pfn:
            continue                                    # PageAllocator._zonelist's filter
        mn = S.pg_z[z, Z_WMARK]                         # PageAllocator._watermark_ok
        if gflags & GFP_HIGH_BIT:
            mn -= mn // 2
            if not gflags & GFP_DIRECT_BIT:
                mn -= mn // 4
        if not S.pg_z[z, Z_NR_FREE] - ((1 << order) - 1) > mn:
            continue
        p = _rmqueue(S, z, order, limit_pfn)
        if p >= 0:
            got, gz = p, z
            break
    _log_op(S, kind, got, order, dev)
    if got < 0:
        C[PG_FAILED] += 1
        if not gflags & GFP_NOWARN_BIT:
            C[PG_WARNINGS] += 1
        return -1, -1
    C[PG_ALLOCATIONS] += 1
    return got, gz


@jit
def free_pages(S, pfn, order, z):
    """``__free_pages()`` (``PageAllocator._release`` -> ``_free_one``) of a block of zone
    ``z``: merge with free buddies up to ``MAX_ORDER``; logs the operation."""
    _log_op(S, var(OP_FREE), pfn, order, var(-1))
    S.C[PG_FREES] += 1
    while order < MAX_ORDER:
        buddy = pfn ^ (1 << order)
        if S.pg_free.get(buddy, -1) != order * 4 + z:
            break
        _del_free(S, z, buddy, order)
        pfn &= buddy
        order += 1
        S.C[PG_MERGES] += 1
    _add_free(S, z, pfn, order)


@jit
def _free_dict(pfns, codes):
    d = Dict.empty(types.int64, types.int64)
    for k in range(len(pfns)):
        d[pfns[k]] = codes[k]
    return d


# -- the Python side ------------------------------------------------------------------------
def build_empty():
    """An empty free-block dict (the state's field when no page allocator is used)."""
    return _free_dict(np.zeros(0, np.int64), np.zeros(0, np.int64))


def unsupported(pages) -> str | None:
    """Why the twin cannot stand for ``pages`` in a replay, or None."""
    st = pages.stats()
    if st["reclaimable"]:
        return "the page allocator has pagecache to reclaim"
    if len(st["free_by_zone"]) > 4:                     # pragma: no cover - x86_64 has three zones
        return "the page allocator has more than four zones"
    return None


def gfp_flags(gfp) -> int:
    """The ``GFP_*_BIT`` flags of a gfp mask that the twin tests."""
    g = int(gfp)
    return ((GFP_HIGH_BIT if g & Gfp.ATOMIC_HIGH else 0) | (GFP_DIRECT_BIT if g & Gfp.DIRECT_RECLAIM else 0)
            | (GFP_NOWARN_BIT if g & Gfp.NOWARN else 0))


def transient_gfp(pages, reach: int):
    """The gfp mask of a transient pool for a device of DMA reach ``reach``
    (``swiotlb_find_slots()`` -> ``swiotlb_alloc_pool(..., GFP_NOWAIT | __GFP_NOWARN)`` ->
    ``swiotlb_alloc_tlb()``: the zone bits replaced by those the limit needs), as
    :meth:`swiotlb_lib.dynamic.Grower.alloc_tlb` computes it."""
    return gfp_for_limit(pages, GFP_NOWAIT | Gfp.NOWARN, reach)


def worker_gfp(pages, phys_limit: int):
    """The gfp mask of the worker's pool (``swiotlb_dyn_alloc()``: ``GFP_KERNEL``)."""
    return gfp_for_limit(pages, GFP_KERNEL, phys_limit)


def build(pages, gfps) -> dict:
    """The twin's state for ``pages``: ``pg_z``, ``pg_free``, ``pg_heap``, ``pg_hn``,
    ``pg_es``, ``pg_ee``, and ``zl`` with one zonelist row per gfp mask of ``gfps``
    (``[count, zone, zone, ...]``, highest zone first)."""
    st = pages.stats()
    lists = pages.free_lists()
    names = list(lists)
    zones = {z.name: z for z in pages.layout.zones}
    nz = len(names)
    pg_z = np.zeros((nz, NZ), np.int64)
    pfns, codes = [], []
    heaps = []
    exts = []
    for k, name in enumerate(names):
        z = zones[name]
        pg_z[k, Z_START] = (z.start + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT
        pg_z[k, Z_END] = z.end >> PAGE_SHIFT
        pg_z[k, Z_NR_FREE] = st["free_by_zone"][name] >> PAGE_SHIFT
        pg_z[k, Z_WMARK] = st["watermark_min_by_zone"][name] >> PAGE_SHIFT
        for o in range(MAX_ORDER):
            blocks = [p >> PAGE_SHIFT for p in lists[name][o]]      # sorted: a valid min-heap
            pfns += blocks
            codes += [o * 4 + k] * len(blocks)
            heaps.append(blocks)
        ext = []
        for p in lists[name][MAX_ORDER]:
            pfn = p >> PAGE_SHIFT
            if ext and ext[-1][1] == pfn:
                ext[-1][1] = pfn + MAX_ORDER_NR_PAGES
            else:
                ext.append([pfn, pfn + MAX_ORDER_NR_PAGES])
        exts.append(ext)
        pg_z[k, Z_NEXT] = len(ext)
    cap = max(64, 2 * max(len(h) for h in heaps))
    pg_heap = np.zeros((nz * MAX_ORDER, cap), np.int64)
    pg_hn = np.zeros(nz * MAX_ORDER, np.int64)
    for row, h in enumerate(heaps):
        pg_heap[row, :len(h)] = h
        pg_hn[row] = len(h)
    ecap = max(16, 2 * max(len(e) for e in exts))
    pg_es = np.zeros((nz, ecap), np.int64)
    pg_ee = np.zeros((nz, ecap), np.int64)
    for k, ext in enumerate(exts):
        for j, (s, e) in enumerate(ext):
            pg_es[k, j], pg_ee[k, j] = s, e
    zl = np.zeros((max(len(gfps), 1), 5), np.int64)
    for r, g in enumerate(gfps):
        order = [names.index(n) for n in pages.zonelist(g)]
        zl[r, 0] = len(order)
        zl[r, 1:1 + len(order)] = order
    return {"pg_z": pg_z, "pg_free": _free_dict(np.array(pfns, np.int64), np.array(codes, np.int64)),
            "pg_heap": pg_heap, "pg_hn": pg_hn, "pg_es": pg_es, "pg_ee": pg_ee, "zl": zl}


def write_back(pages, ops, counters, transient_gfps, worker) -> None:
    """Bring ``pages`` to the state the twin left (see the module docstring): ``ops`` is the
    twin's operation log (rows ``kind, pfn or -1, order, device``), ``counters`` its
    ``{costs key: count}``, ``transient_gfps`` the ``(gfp, limit)`` of each device's
    transient pools and ``worker`` the worker's ``(gfp, limit)``."""
    before = dict(pages.costs)
    live = 0
    start = 0
    keep = False
    todo = []
    for k in range(len(ops)):
        kind, pfn = int(ops[k, 0]), int(ops[k, 1])
        if kind == OP_TRANSIENT and pfn >= 0:
            live += 1
        elif kind == OP_FREE:
            live -= 1
        elif kind == OP_WORKER and pfn >= 0:
            keep = True
        if live == 0:
            if keep:
                todo.append((start, k + 1))
            start, keep = k + 1, False
    if start < len(ops) and (live or keep):
        todo.append((start, len(ops)))
    for a, b in todo:
        for kind, pfn, order, dev in ops[a:b].tolist():
            if kind == OP_FREE:
                pages.free_pages(pfn << PAGE_SHIFT, order)
                continue
            gfp, limit = worker if kind == OP_WORKER else transient_gfps[dev]
            got = pages.alloc_pages(gfp, order, limit=limit, owner="swiotlb-dyn")
            want = None if pfn < 0 else pfn << PAGE_SHIFT
            if got != want:
                raise AssertionError(f"compiled page allocator: alloc_pages(order {order}) gave {want}, "
                                     f"the reference {got}")
    for key, n in counters.items():
        pages.costs[key] += n - (pages.costs[key] - before[key])


def limit_pfn(limit: int) -> int:
    """``limit`` (a highest usable address) as one past the highest usable PFN, as
    :meth:`PageAllocator.alloc_pages <swiotlb_lib.page_alloc.PageAllocator.alloc_pages>` reads it."""
    return check_limit(limit)
