"""The compiled twin of RFC v1 as intended (the ``rfc-v1`` profile,
:class:`swiotlb_lib.dynamic.RfcDynamic` with ``rfc_posted`` false): a buffer of its own from
``dma_direct_alloc_pages()`` for every bounce of at least a page without alignment
constraints, tried before the fixed slots, tracked in a PFN-keyed tree and freed at unmap.

Part of the compiled engine (:mod:`swiotlb_lib.trace.fast`).  It twins what a replay runs of
``RfcDynamic``: :meth:`~swiotlb_lib.dynamic.RfcDynamic.before_map` (``swiotlb_dyn_map()``) with
its buddy path of :meth:`~swiotlb_lib.dynamic.RfcDynamic.dma_direct_alloc_pages`, the one
:meth:`~swiotlb_lib.dynamic.RfcDynamic.bounce` (``swiotlb_dyn_bounce()``) of the map-time copy
and its :meth:`~swiotlb_lib.dynamic.RfcDynamic._find`, :meth:`~swiotlb_lib.dynamic.RfcDynamic.unmap`
(``swiotlb_dyn_unmap()``), the counters of :meth:`~swiotlb_lib.dynamic.RfcDynamic.costs` (with
:meth:`~swiotlb_lib.dynamic.RfcDynamic._tree_cost` at the tree size of each operation),
:meth:`~swiotlb_lib.dynamic.RfcDynamic.failure_cause` and
:meth:`~swiotlb_lib.dynamic.RfcDynamic.bounce_bytes`; RFC v1 patches 3/4 and 4/4
(https://lore.kernel.org/all/0334a54332ab75312c9de825548b616439dcc9f5.1679309810.git.petr.tesarik.ext@huawei.com/,
https://lore.kernel.org/all/e00c8c576b8ef2fa3cf867ab776cd136a519a835.1679309810.git.petr.tesarik.ext@huawei.com/)
on the v6.3-rc base.  The pages come from the compiled buddy allocator
(:func:`~swiotlb_lib.trace.fast_pages.alloc_pages`, ``free_pages``), whose operation log is
written back through the allocator's public methods as for the merged design's transient pools
(each buffer is logged as a transient allocation of device row ``2 * device + may_sleep``).

The tree.  As intended, the stored ranges never overlap (each is a live buffer's own pages)
and unmap erases the buffer's own range, so the tree holds exactly the live buffers: the twin
keeps their count (``RFC_LIVE``), which is all the cost model reads (``len(tree)``), and the
buffers still live at the end of a run are put into ``RfcDynamic.tree`` by :func:`write_back`.
A live buffer's mapping has ``pool_of = RFC_BASE + pfn``.

Not twinned, refused by :func:`unsupported` / :func:`unsupported_trace` (the reference runs):
``rfc-v1-posted`` (its stale tree entries and use-after-free lookups); memory encryption (the
atomic pool, ``dma_set_decrypted()``); a restricted pool (``for_alloc``); buffers live before
the run; a mapping that may sleep (``DMA_ATTR_MAY_SLEEP``) over a page (CMA first); and a
device whose coherent limit reaches beyond its streaming DMA reach, whose buffer may land out
of reach: the twin does not model ``swiotlb_map``'s ``dma_capable()`` re-check unmapping a
buffer of its own (``out_of_reach``; a device with a ``min_align_mask`` never gets one).
"""
from __future__ import annotations

import numpy as np

from ..constants import DMA_ATTR_MAY_SLEEP, MAX_ORDER, PAGE_SHIFT, PAGE_SIZE
from ..dynamic import DYN_GFP_MAY_SLEEP, DYN_GFP_NOWAIT, DynSlot, RfcDynamic, gfp_for_limit, zone_gfp
from ..gfp import get_order
from ..page_alloc import gfp_zone
from . import fast_pages
from .fast_pages import alloc_pages, free_pages
from .fast_state import (BYTES_COPIED, D_LIMIT, D_RFC_N, D_ZL, M_DEV, M_RFC, M_SIZE, OP_TRANSIENT, PAGE_COSTS,
                         PG_NOPS, P_RFC_GFP_NOWAIT, P_RFC_GFP_SLEEP, RFC_ATTEMPTS, RFC_BUFFERS, RFC_COSTS,
                         RFC_ERASES, RFC_FAILED, RFC_LIVE, RFC_LOCKS, RFC_LOOKUPS, RFC_SKIPPED, RFC_VISITS,
                         RFC_ZEROED, TRANSIENT_BYTES, Z_END, Z_START, jit_inline, mi, row, var)

#: ``pool_of`` of a mapping whose buffer is live: ``RFC_BASE + pfn``; after its unmap: ``RFC_FREED``
RFC_BASE = -(1 << 62)
RFC_FREED = RFC_BASE - 1
#: every ``pool_of`` below this is an RFC buffer's (a transient pool's is ``-1 - t``, far above)
RFC_CUT = -(1 << 61)
#: ``M_RFC`` of a mapping that skips the dynamic path; else ``order | may_sleep << 8``
RFC_SKIP = -1


@jit_inline
def _tree_cost(n):
    """``RfcDynamic._tree_cost`` of a tree of ``n`` ranges: maple-tree levels, 16-way."""
    if n < 1:
        n = 1
    levels = 1
    while n > 16:
        n = (n + 15) // 16
        levels += 1
    return levels


@jit_inline
def rfc_map(S, i):
    """``RfcDynamic.before_map`` (``swiotlb_dyn_map()``) of mapping ``i``: the buffer's address,
    or -1 (skipped: try the fixed slots), or -2 (``dma_direct_alloc_pages()`` failed: the
    fixed slots, and ``failure_cause`` says no_memory for a mapping too big for them).  On
    success also the map-time ``swiotlb_dyn_bounce()`` (one more tree lookup, the copy)."""
    C = S.C
    v = mi(S, i, M_RFC)
    if v < 0:
        C[RFC_SKIPPED] += 1
        return -1
    C[RFC_ATTEMPTS] += 1
    order, sleep = v & 255, v >> 8
    d = mi(S, i, M_DEV)
    DI = S.DI
    p = -1
    if order <= MAX_ORDER:
        p, z = alloc_pages(S, DI[d, D_ZL], order, DI[d, D_LIMIT], S.P[P_RFC_GFP_NOWAIT + sleep],   # or _SLEEP
                           var(OP_TRANSIENT), 2 * d + sleep)
    live = C[RFC_LIVE]
    if p < 0:
        C[RFC_FAILED] += 1
        if live == 0:
            C[PG_NOPS] = 0                              # fast_pages.write_back would skip the log so far
        return -2
    S.pg_orders[order] += 1
    DI[d, D_RFC_N] += 1                                 # dyn_zone_<the device's zone>
    size = mi(S, i, M_SIZE)
    nbytes = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    C[RFC_ZEROED] += nbytes
    C[RFC_BUFFERS] += 1                                 # mtree_store_range() on `live` ranges,
    C[RFC_LOOKUPS] += 1                                 # then the bounce's mt_find() on live + 1
    C[RFC_VISITS] += _tree_cost(live) + _tree_cost(live + 1)
    C[RFC_LOCKS] += 2
    C[RFC_LIVE] = live + 1
    C[TRANSIENT_BYTES] += nbytes                        # RfcDynamic.dyn_bytes
    C[BYTES_COPIED] += size
    S.pool_of[row(S, i)] = RFC_BASE + p
    return p << PAGE_SHIFT


@jit_inline
def rfc_unmap(S, i, tlb):
    """``RfcDynamic.unmap`` (``swiotlb_dyn_unmap()``): ``mt_find()``, ``mtree_erase()`` of the
    buffer's own range, ``__free_pages()``."""
    C = S.C
    live = C[RFC_LIVE]
    C[RFC_LOOKUPS] += 1
    C[RFC_VISITS] += _tree_cost(live)
    C[RFC_LOCKS] += 1
    C[RFC_ERASES] += 1
    C[TRANSIENT_BYTES] -= (mi(S, i, M_SIZE) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    C[RFC_LIVE] = live - 1
    pfn = tlb >> PAGE_SHIFT
    z = 0
    while not S.pg_z[z, Z_START] <= pfn < S.pg_z[z, Z_END]:
        z += 1
    free_pages(S, pfn, mi(S, i, M_RFC) & 255, z)
    S.pool_of[row(S, i)] = RFC_FREED
    if live == 1:
        C[PG_NOPS] = 0                                  # no buffer left: the log so far is void


# -- the Python side --------------------------------------------------------------------------
def unsupported(dyn) -> str | None:
    """Why the twin cannot stand for the hook ``dyn`` (not a :class:`~swiotlb_lib.dynamic.Grower`), or None."""
    if type(dyn) is not RfcDynamic:
        return f"the dynamic hook {type(dyn).__name__} has no compiled twin"
    if dyn.posted:
        return "RFC v1 as posted (rfc-v1-posted): its stale tree entries and use-after-free lookups"
    mem = dyn.mem
    if mem.for_alloc:
        return "a restricted pool (for_alloc)"
    if mem.cc_mem_encrypt:
        return "memory encryption is active (RFC v1's buffers come from the atomic pool)"
    if dyn.nlive or len(dyn.tree):
        return "RFC v1 buffers are live"
    return fast_pages.unsupported(dyn.pages)


def unsupported_trace(dyn, cols, devs) -> str | None:
    """Why the twin cannot replay the trace of columns ``cols`` on devices ``devs``, or None."""
    if not dyn.allow_dyn:
        return None
    for dev in devs:
        if dev.coherent_reach > dev.reach and not dev.min_align_mask:
            return (f"device {dev.name}: its coherent DMA limit reaches beyond its DMA mask (a dynamic "
                    "buffer out of reach)")
    if np.any((cols.attrs & DMA_ATTR_MAY_SLEEP != 0) & (cols.size > PAGE_SIZE) & (cols.align == 0)):
        return "a mapping that may sleep (DMA_ATTR_MAY_SLEEP) is over a page (RFC v1 tries CMA first)"
    return None


@jit_inline
def rfc_field(size, align, mam, attrs):
    """``M_RFC`` of a mapping: ``RFC_SKIP`` where ``before_map`` skips the dynamic path (under a
    page, an alignment, a ``min_align_mask``), else ``get_order()`` of the page-rounded size and
    ``may_sleep << 8``."""
    if size < PAGE_SIZE or align != 0 or mam != 0:
        return RFC_SKIP
    v = ((size + PAGE_SIZE - 1) >> PAGE_SHIFT) - 1     # get_order(): the bit length of this
    order = 0
    while v > 0:
        order += 1
        v >>= 1
    return order | (256 if attrs & DMA_ATTR_MAY_SLEEP else 0)


def setup(dyn, devs, P, DI) -> tuple[dict, list]:
    """The twin's parameters in ``P`` and ``DI``, the page allocator's arrays
    (:func:`~swiotlb_lib.trace.fast_pages.build`, one zonelist per device) and the ``(gfp,
    limit)`` of each logged device row ``2 * device + may_sleep`` for the write-back."""
    pages = dyn.pages
    nowait, sleep = DYN_GFP_NOWAIT, DYN_GFP_MAY_SLEEP     # swiotlb_dyn_map()
    rows, zls = [], []
    for k, dev in enumerate(devs):
        limit = dev.coherent_reach                      # dma_direct_optimal_gfp_mask()
        rows += [(gfp_for_limit(pages, g, limit), limit) for g in (nowait, sleep)]
        zls.append(rows[-2][0])
        DI[k, D_ZL], DI[k, D_LIMIT] = k, fast_pages.limit_pfn(limit)
    P[P_RFC_GFP_NOWAIT], P[P_RFC_GFP_SLEEP] = fast_pages.gfp_flags(nowait), fast_pages.gfp_flags(sleep)
    return fast_pages.build(pages, zls), rows


def write_back(dyn, C, DI, devs, live, pool_of, sizes, origs, ops, orders, rows) -> None:
    """Put the twin's work into ``dyn``: the counters of ``costs()``, the zones, the page
    orders, the live buffers (tree ranges, ``nlive``, ``dyn_bytes``; mappings ``live`` in
    ascending order, their ``pool_of`` in ``pool_of``, and every mapping's size and address in
    ``sizes`` and ``origs``) and the page allocator
    (:func:`~swiotlb_lib.trace.fast_pages.write_back`)."""
    c = dyn.costs_.c
    for key, k in RFC_COSTS:
        if C[k]:
            c[key] += int(C[k])
    for d, dev in enumerate(devs):
        if DI[d, D_RFC_N]:
            c["dyn_zone_" + gfp_zone(zone_gfp(dyn.pages, dev.coherent_reach))] += int(DI[d, D_RFC_N])
    for order, count in enumerate(orders.tolist()):
        if count:
            dyn.costs_.page_orders[order] += count
    dyn.nlive = int(C[RFC_LIVE])
    dyn.dyn_bytes = int(C[TRANSIENT_BYTES])
    for i, po in zip(live.tolist(), pool_of.tolist()):
        pfn, size = po - RFC_BASE, int(sizes[i])
        npages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
        order = get_order(size)
        dyn.tree.store_range(pfn, pfn + npages - 1,
                             DynSlot(int(origs[i]), size, pfn << PAGE_SHIFT, npages << PAGE_SHIFT, order))
    fast_pages.write_back(dyn.pages, ops, {key: int(C[k]) for key, k in PAGE_COSTS}, rows, None)
