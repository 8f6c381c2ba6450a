"""The compiled twins of the map and unmap paths over a list of pools, with the growth of
``CONFIG_SWIOTLB_DYNAMIC`` (:class:`swiotlb_lib.dynamic.Grower`, the merged design, v6.6 and
v6.11 flavours): the search over ``mem.pools`` newest first, transient pools from the page
allocator freed at unmap, the background worker, the model's clock.

Part of the compiled engine (:mod:`swiotlb_lib.trace.fast`).  A profile whose pool does not
grow runs the same functions with one pool and no growth.  The functions follow
``IoTlbMem.map_checked_args`` / ``swiotlb_map_checked_args`` / ``unmap_checked_args``
(:mod:`swiotlb_lib.swiotlb`) and ``Grower.find_slots``, ``alloc_pool``, ``alloc_tlb``,
``del_transient``, ``schedule_work``, ``tick`` and ``run_pending_work``
(``swiotlb_find_slots()``, ``swiotlb_alloc_pool()``, ``swiotlb_dyn_alloc()``,
``swiotlb_del_transient()``: ``kernel/dma/swiotlb.c@afd81d914f6f``).  RFC v1's buffer per
mapping (the ``rfc-v1`` profile) is tried first, in :mod:`~swiotlb_lib.trace.fast_rfc`.
"""
from __future__ import annotations

import numpy as np

from ..constants import (DYNAMIC_POOL_MAX_NSLABS, IO_TLB_MIN_SLABS, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE,
                         MAX_ORDER, PAGE_SHIFT)
from ..pool import SPARE_SLOTS
from .fast_pages import alloc_pages, free_pages
from ..fast_pool import init_slots, release, search_area, search_slots
from .fast_rfc import RFC_CUT, rfc_map, rfc_unmap
from .fast_state import (BYTES_COPIED, D_LIMIT, D_GFP, D_MAM, D_REACH, D_USES, D_WARN_ALIGN, D_WARN_OVERFLOW, D_ZL,
                         G_EXAM_FREED, G_POOL_AREA_SEARCHES, G_POOLS_ADDED, G_POOLS_SEARCHED,
                         G_TRANSIENT_ALLOC_FAILED, G_TRANSIENT_POOLS, G_TRANSIENT_SEARCH_FAILED,
                         G_WORKER_FAILURES, G_WORKER_KICKS, G_WORKER_RUNS, HIWATER, KICKED_AT, LOG_ALIGN,
                         LOG_FULL, LOG_OVERFLOW, LOG_WORKER, M_ALIGNWARN, M_ASIZE, M_CPU, M_DEV, M_NOWARN,
                         M_NSLOTS, M_OBITS, M_PAD, M_PARAM, M_REST, M_SIZE, M_SKIP, M_SWMAP, M_TLBOFF, MEM_NSLABS,
                         NOW, NPOOLS, OP_TRANSIENT, OP_WORKER, P_CAN_GROW, P_RFC, P_DEF_NAREAS, P_DEF_NSLABS, P_DYN,
                         P_HAS_DELAY, P_HAS_PAD, P_ROUND_START, P_TAIL_CAP, P_V611, P_W_GFP, P_W_LIMIT, P_W_ZL,
                         PENDING, PF_WORKER_DELAY, POOL_BYTES, PP_ANSLABS, PP_AOFF, PP_NAREAS, PP_NSLABS, PP_OFF,
                         PG_NOPS, PP_ORDER, PP_START, PP_ZONE, Q_BMASK, Q_MAX_SLOTS, Q_STRIDE, R_NO_MEMORY,
                         R_OUT_OF_REACH,
                         R_POOL_FULL, R_TOO_BIG, TOTAL_USED, TR_EXAM, TR_FREE, TR_NEXT, TR_NSLABS, TR_ORDER,
                         TR_MAP, TR_PADDR, TR_SEQ, TR_ZONE, TRANSIENT_BYTES, TRANSIENT_NSLABS, grown, jit,
                         jit_inline, mr, row, var)

#: ``tr[t, TR_NEXT]`` of a live transient pool
TR_LIVE = -2


@jit
def klog(S, kind, i, value):
    """A kernel message the Python side prints after the run (``CompiledEngine._write_back``),
    with the pool's size then (the "buffer is full" line prints it)."""
    S.logs.append((kind, S.F[NOW], i, value, S.C[MEM_NSLABS]))


# -- the worker ---------------------------------------------------------------------------
@jit_inline
def _limit_nareas(nareas, nslots):
    """``limit_nareas()`` (:func:`swiotlb_lib.pool.limit_nareas`)."""
    if nslots < nareas * IO_TLB_SEGSIZE:
        return nslots // IO_TLB_SEGSIZE
    return nareas


@jit
def _alloc_pool_pages(S, zl, limit, gflags, kind, dev, minslabs, nslabs, nareas):
    """The memory of ``Grower.alloc_pool`` (``swiotlb_alloc_pool()``): cap at 4 MiB, then
    ``alloc_tlb`` (the buddy allocator, ``get_order()`` of the size), halving down to
    ``minslabs`` on failure.  Returns ``(pfn, zone, order, nslabs, nareas)``, pfn -1 on failure."""
    if nslabs > DYNAMIC_POOL_MAX_NSLABS:
        nslabs = DYNAMIC_POOL_MAX_NSLABS
        nareas = _limit_nareas(nareas, nslabs)
    while True:
        nbytes = nslabs << IO_TLB_SHIFT
        order = 0
        v = (nbytes - 1) >> PAGE_SHIFT                  # get_order(): bit_length of this
        while v:
            order += 1
            v >>= 1
        if order <= MAX_ORDER:
            p, z = alloc_pages(S, zl, order, limit, gflags, kind, dev)
            if p >= 0:
                S.pg_orders[order] += 1
                return p, z, order, nslabs, nareas
        if nslabs <= minslabs:
            return -1, -1, -1, nslabs, nareas
        nslabs = -(-(nslabs >> 1) // IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE
        nareas = _limit_nareas(nareas, nslabs)


@jit_inline
def _add_pool(S, start, nslabs, nareas, order, zone):
    """``Grower.alloc_pool``'s ``IoTlbPool`` and ``IoTlbMem.add_pool`` (``add_mem_pool()``):
    the new pool's arrays after the others', its search constants, its slots counted."""
    C = S.C
    pid = C[NPOOLS]
    if pid == S.pp.shape[0]:
        S.pp = grown(S.pp, 2 * pid, S.pp.shape[1])
        S.pp_exam = np.concatenate((S.pp_exam, np.zeros(pid, np.int64)))
        olds = S.ps
        S.ps = np.zeros((2 * pid, olds.shape[1], 2), np.int64)
        for r in range(pid):
            for q in range(olds.shape[1]):
                S.ps[r, q, 0], S.ps[r, q, 1] = olds[r, q, 0], olds[r, q, 1]
    pp = S.pp
    off = pp[pid - 1, PP_OFF] + pp[pid - 1, PP_NSLABS] + SPARE_SLOTS
    aoff = pp[pid - 1, PP_AOFF] + pp[pid - 1, PP_NAREAS]
    need = off + nslabs + SPARE_SLOTS
    if need > len(S.p_list):
        cap = max(need, 2 * len(S.p_list))
        S.p_list = np.concatenate((S.p_list, np.zeros(cap - len(S.p_list), S.p_list.dtype)))
        S.p_asize = np.concatenate((S.p_asize, np.zeros(cap - len(S.p_asize), S.p_asize.dtype)))
        S.p_orig = np.concatenate((S.p_orig, np.zeros(cap - len(S.p_orig), S.p_orig.dtype)))
        S.p_pad = np.concatenate((S.p_pad, np.zeros(cap - len(S.p_pad), S.p_pad.dtype)))
    if aoff + nareas > len(S.a_index):
        cap = max(aoff + nareas, 2 * len(S.a_index))
        S.a_index = np.concatenate((S.a_index, np.zeros(cap - len(S.a_index), np.int64)))
        S.a_used = np.concatenate((S.a_used, np.zeros(cap - len(S.a_used), np.int64)))
        S.a_locks = np.concatenate((S.a_locks, np.zeros(cap - len(S.a_locks), np.int64)))
    init_slots(S.p_list, S.p_asize, S.p_orig, S.p_pad, off, nslabs, SPARE_SLOTS, S.P[P_TAIL_CAP])
    pp[pid, PP_START], pp[pid, PP_NSLABS], pp[pid, PP_NAREAS] = start, nslabs, nareas
    pp[pid, PP_ANSLABS], pp[pid, PP_OFF], pp[pid, PP_AOFF] = nslabs // nareas, off, aoff
    pp[pid, PP_ORDER], pp[pid, PP_ZONE] = order, zone
    S.pp_exam[pid] = 0
    for q in range(S.params.shape[0]):                  # pool.search_params: shift, unbounded
        shift = np.int64((np.uint64(start) & S.q_bnd[q]) >> np.uint64(IO_TLB_SHIFT))
        S.ps[pid, q, 0] = shift
        S.ps[pid, q, 1] = shift + 2 * (nslabs + SPARE_SLOTS) <= S.params[q, Q_MAX_SLOTS]
    C[NPOOLS] = pid + 1
    C[MEM_NSLABS] += nslabs


@jit_inline
def run_pending_work(S):
    """``Grower.run_pending_work`` (``swiotlb_dyn_alloc()``): add one pool (``GFP_KERNEL``) or
    log the failure."""
    C, P = S.C, S.P
    if not C[PENDING]:
        return
    C[PENDING] = 0
    C[G_WORKER_RUNS] += 1
    p, z, order, nslabs, nareas = _alloc_pool_pages(S, P[P_W_ZL], P[P_W_LIMIT], P[P_W_GFP], var(OP_WORKER), var(-1),
                                                    var(IO_TLB_MIN_SLABS), P[P_DEF_NSLABS], P[P_DEF_NAREAS])
    if p < 0:
        klog(S, var(LOG_WORKER), var(-1), var(0))
        C[G_WORKER_FAILURES] += 1
        return
    _add_pool(S, p << PAGE_SHIFT, nslabs, max(nareas, 1), order, z)
    C[POOL_BYTES] += nslabs << IO_TLB_SHIFT
    C[G_POOLS_ADDED] += 1


@jit
def tick(S, now):
    """``Grower.tick``: run the pending worker once its delay has passed at model time ``now``."""
    if S.C[PENDING] and S.P[P_HAS_DELAY] and now - S.F[KICKED_AT] >= S.PF[PF_WORKER_DELAY]:
        run_pending_work(S)


@jit_inline
def now(S, t):
    """``Engine._now``: the model's clock (``KernelLog.now``) only moves forward; with a pool
    that grows, by ``Machine.advance`` (which adds the difference, then ticks the worker)."""
    if t > S.F[NOW]:
        if S.P[P_DYN]:
            S.F[NOW] += t - S.F[NOW]
            t = S.F[NOW]
            tick(S, t)
        else:
            S.F[NOW] = t


# -- the search ------------------------------------------------------------------------------
@jit_inline
def _search_pool_area(S, pid, a, r):
    """Search area ``a`` of pool ``pid`` for the mapping of row ``r`` (``search_pool_area``)."""
    q = mr(S, r, M_PARAM)
    return search_slots(S, pid, S.pp[pid, PP_OFF], S.pp[pid, PP_AOFF], a, mr(S, r, M_NSLOTS), mr(S, r, M_REST),
                        S.ps[pid, q, 0], S.params[q, Q_BMASK], S.params[q, Q_MAX_SLOTS], S.params[q, Q_STRIDE],
                        S.ps[pid, q, 1], mr(S, r, M_SKIP), mr(S, r, M_OBITS), S.pp[pid, PP_ANSLABS],
                        S.P[P_ROUND_START])


@jit_inline
def _pool_find_slots(S, pid, r):
    """``pool_find_slots`` (``swiotlb_pool_find_slots``, v6.6) for the mapping of row ``r``:
    every area of pool ``pid``, round-robin from the CPU's."""
    nareas = S.pp[pid, PP_NAREAS]
    start = a = mr(S, r, M_CPU) & (nareas - 1)
    while True:
        index = _search_pool_area(S, pid, a, r)
        if index >= 0:
            return index
        a += 1
        if a >= nareas:
            a = 0
        if a == start:
            return -1


@jit_inline
def _transient(S, i, r):
    """``Grower.find_slots``' transient pool for mapping ``i`` (row ``r``): ``alloc_pool(dev,
    n, n, 1, reach, GFP_NOWAIT | __GFP_NOWARN)`` and a search in it.  Returns ``(transient,
    slot, no_memory)``; on failure transient -1."""
    C, DI = S.C, S.DI
    d = mr(S, r, M_DEV)
    n = mr(S, r, M_NSLOTS)
    p, z, order, nslabs, nareas = _alloc_pool_pages(S, DI[d, D_ZL], DI[d, D_LIMIT], DI[d, D_GFP], var(OP_TRANSIENT),
                                                    d, n, n, var(1))
    if p < 0:
        C[G_TRANSIENT_ALLOC_FAILED] += 1
        return -1, -1, True
    start = p << PAGE_SHIFT
    lst, asz, ta = S.t_list, S.t_asize, S.t_area        # the fresh pool: one area
    if nslabs + SPARE_SLOTS > len(lst):
        S.t_list = lst = np.zeros(nslabs + SPARE_SLOTS, lst.dtype)
        S.t_asize = asz = np.zeros(nslabs + SPARE_SLOTS, asz.dtype)
    for k in range(nslabs):
        v = IO_TLB_SEGSIZE - (k & (IO_TLB_SEGSIZE - 1))
        if S.P[P_TAIL_CAP] and nslabs - k < v:
            v = nslabs - k
        lst[k] = v
    for k in range(nslabs, nslabs + SPARE_SLOTS):
        lst[k] = 0
    for k in range(4):
        ta[k] = 0
    q = mr(S, r, M_PARAM)
    params = S.params
    shift = np.int64((np.uint64(start) & S.q_bnd[q]) >> np.uint64(IO_TLB_SHIFT))
    unbounded = shift + 2 * (nslabs + SPARE_SLOTS) <= params[q, Q_MAX_SLOTS]
    idx = search_area(lst, asz, ta[0:1], ta[1:2], ta[2:3], ta[3:4], 0, 0, 0, 0, n, mr(S, r, M_REST), shift,
                      params[q, Q_BMASK], params[q, Q_MAX_SLOTS], params[q, Q_STRIDE], unbounded, mr(S, r, M_SKIP),
                      mr(S, r, M_OBITS), nslabs, S.P[P_ROUND_START])
    exam = ta[3]
    if idx < 0:
        C[G_TRANSIENT_SEARCH_FAILED] += 1
        free_pages(S, p, order, z)                      # Grower.free_pool
        C[G_EXAM_FREED] += exam
        return -1, -1, False
    t = C[TR_FREE]                                      # a record for the live pool
    if t < 0:
        t = len(S.tr)
        S.tr = grown(S.tr, 2 * t, S.tr.shape[1])
        for k in range(t, 2 * t):
            S.tr[k, TR_NEXT] = k + 1 if k + 1 < 2 * t else -1
    tr = S.tr
    C[TR_FREE] = tr[t, TR_NEXT]
    tr[t, TR_PADDR], tr[t, TR_ORDER], tr[t, TR_NSLABS], tr[t, TR_EXAM] = start, order, nslabs, exam
    tr[t, TR_ZONE], tr[t, TR_NEXT], tr[t, TR_MAP], tr[t, TR_SEQ] = z, TR_LIVE, i, C[G_TRANSIENT_POOLS]
    C[TRANSIENT_NSLABS] += nslabs
    C[G_TRANSIENT_POOLS] += 1
    C[TRANSIENT_BYTES] += nslabs << IO_TLB_SHIFT
    return t, idx, False


@jit_inline
def _del_transient(S, t):
    """``Grower.del_transient`` (``swiotlb_del_transient()``): the whole pool goes at unmap."""
    C, tr = S.C, S.tr
    nslabs = tr[t, TR_NSLABS]
    C[TOTAL_USED] -= nslabs
    C[TRANSIENT_NSLABS] -= nslabs
    C[TRANSIENT_BYTES] -= nslabs << IO_TLB_SHIFT
    free_pages(S, tr[t, TR_PADDR] >> PAGE_SHIFT, tr[t, TR_ORDER], tr[t, TR_ZONE])
    C[G_EXAM_FREED] += tr[t, TR_EXAM]
    tr[t, TR_NEXT] = C[TR_FREE]
    C[TR_FREE] = t


# -- map and unmap ----------------------------------------------------------------------------
@jit
def unmap_slots(S, i, tlb):
    """``unmap_checked_args`` of mapping ``i`` at ``tlb``: free its transient pool whole, or
    release its slots in its pool (``swiotlb_release_slots``)."""
    r = row(S, i)
    pid = S.pool_of[r]
    if pid < RFC_CUT:                                   # RFC v1: its own buffer
        rfc_unmap(S, i, tlb)
        return
    if pid < 0:
        _del_transient(S, -1 - pid)
        return
    freed = release(S, S.pp[pid, PP_OFF], S.pp[pid, PP_AOFF], S.pp[pid, PP_START], S.P[P_HAS_PAD],
                    S.pp[pid, PP_ANSLABS], tlb, S.DI[mr(S, r, M_DEV), D_MAM])
    S.C[TOTAL_USED] -= freed


@jit
def allocate(S, i, r):
    """``swiotlb_map`` -> ``swiotlb_tbl_map_single`` for mapping ``i`` (``Engine.allocate``
    with ``IoTlbMem.map_checked_args`` and ``swiotlb_map_checked_args``); with a pool that
    grows, ``Grower.find_slots`` for the search.  Returns the bounce address or a failure
    code (R_*); ``S.pool_of[r]`` is its pool (-1 - t: transient pool t); ``r`` is its
    :func:`~swiotlb_lib.trace.fast_state.row`."""
    d = mr(S, r, M_DEV)
    if mr(S, r, M_ALIGNWARN) and not S.DI[d, D_WARN_ALIGN]:
        S.DI[d, D_WARN_ALIGN] = 1
        klog(S, var(LOG_ALIGN), i, var(0))
    nslots = mr(S, r, M_NSLOTS)
    pid, index, t, nomem, dyn_failed = 0, -1, -1, False, False
    if S.P[P_RFC]:                                      # RFC v1: a buffer of its own first
        tlb = rfc_map(S, i)
        if tlb >= 0:
            return tlb
        dyn_failed = tlb == -2
    if not S.P[P_DYN]:
        index = _pool_find_slots(S, var(0), r)
    else:
        clock = S.F[NOW]
        tick(S, clock)
        pools = S.C[NPOOLS]
        if S.P[P_V611]:                                 # area-major over the pools
            if mr(S, r, M_ASIZE) <= IO_TLB_SEGSIZE * IO_TLB_SIZE:
                cpu = mr(S, r, M_CPU)
                for k in range(S.P[P_DEF_NAREAS]):
                    for pid in range(pools - 1, -1, -1):
                        nareas = S.pp[pid, PP_NAREAS]
                        if k >= nareas:
                            continue
                        S.C[G_POOL_AREA_SEARCHES] += 1
                        index = _search_pool_area(S, pid, (cpu + k) & (nareas - 1), r)
                        if index >= 0:
                            break
                    if index >= 0:
                        break
                if index < 0 and S.P[P_CAN_GROW]:
                    _schedule_work(S)
                    t, index, nomem = _transient(S, i, r)
        else:
            for pid in range(pools - 1, -1, -1):
                S.C[G_POOLS_SEARCHED] += 1
                index = _pool_find_slots(S, pid, r)
                if index >= 0:
                    break
            if index < 0 and S.P[P_CAN_GROW]:
                _schedule_work(S)
                t, index, nomem = _transient(S, i, r)
    if index < 0:
        if not mr(S, r, M_NOWARN):
            klog(S, var(LOG_FULL), i, S.C[TOTAL_USED])
        if nslots > IO_TLB_SEGSIZE:
            return R_NO_MEMORY if dyn_failed else R_TOO_BIG    # RfcDynamic.failure_cause
        return R_NO_MEMORY if nomem else R_POOL_FULL
    S.DI[d, D_USES] = 1
    used = S.C[TOTAL_USED] + nslots
    S.C[TOTAL_USED] = used
    if used > S.C[HIWATER]:
        S.C[HIWATER] = used
    first = index
    if S.P[P_HAS_PAD]:
        index += mr(S, r, M_PAD)
    if t >= 0:
        start = S.tr[t, TR_PADDR]
        S.pool_of[r] = -1 - t
    else:
        S.pool_of[r] = pid
        start = S.pp[pid, PP_START]
        off = S.pp[pid, PP_OFF]
        if S.P[P_HAS_PAD]:
            S.p_pad[off + index] = mr(S, r, M_PAD)
        o = S.m_orig[i]
        for k in range(off + index, off + first + nslots):
            S.p_orig[k] = o
            o += np.uint64(IO_TLB_SIZE)
    tlb = start + (index << IO_TLB_SHIFT) + mr(S, r, M_TLBOFF)
    size = mr(S, r, M_SIZE)
    S.C[BYTES_COPIED] += size
    if mr(S, r, M_SWMAP) and tlb + size - 1 > S.DI[d, D_REACH]:  # dma_capable() of the bounce address
        unmap_slots(S, i, tlb)
        if not S.DI[d, D_WARN_OVERFLOW]:
            S.DI[d, D_WARN_OVERFLOW] = 1
            klog(S, var(LOG_OVERFLOW), i, tlb)
        return R_OUT_OF_REACH
    return tlb


@jit
def _schedule_work(S):
    """``Grower.schedule_work`` (``schedule_work(&mem->dyn_alloc)``): a no-op while pending."""
    C = S.C
    C[G_WORKER_KICKS] += 1
    if not C[PENDING]:
        C[PENDING] = 1
        S.F[KICKED_AT] = S.F[NOW]


@jit
def export_pools(S):
    """The pools' arrays (the compiled loop may have moved them), the pool table, the live
    transient pools, the page allocator's operation log and the orders allocated."""
    n = S.C[NPOOLS]
    return (S.p_list, S.p_asize, S.p_orig, S.p_pad, S.a_index, S.a_used, S.a_locks, S.pp[:n].copy(),
            S.pp_exam[:n].copy(), S.tr.copy(), S.pg_ops[:S.C[PG_NOPS]].copy(), S.pg_orders.copy())
