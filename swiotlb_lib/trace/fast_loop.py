"""The compiled twins of :class:`~swiotlb_lib.trace.engine.Engine`'s replay loop: the event
heap, blk-mq's queues and reruns, lifetimes, livelock detection and the advisor's early stop.

Part of the compiled engine (:mod:`swiotlb_lib.trace.fast`); each function names the
``Engine`` method it follows (``block/blk-mq.c`` in 6.12 for the queue rules, as there).

The state's arrays are read as ``S.C[...]``, ``S.h_t[...]`` at each use, never held in a
local (``C = S.C``), and a value passed to a call is computed before it: Numba counts the
references of an array with atomic operations, and an array held in a variable across a
branch or a call keeps an increment and a decrement per call that its optimizer cannot
remove, where one read at its use has them removed.  Those pairs were most of the loop's
time (``benchmarks/replay.py``, measured with ``perf`` at commit 3cd126c).
"""
from __future__ import annotations

import math

import numpy as np

from .fast_dynamic import allocate, now, unmap_slots
from .fast_state import (ABORTED_FAILED, AG_COMPARED, AG_SAME, ATTEMPTED, BOUNCED, COMPLETE_MAPPING, COMPLETE_UNIT,
                         COMPLETED, CTR, DONE, DROPPED, F_NO_MEMORY, F_OUT_OF_REACH, F_POOL_FULL, F_TOO_BIG, FAILED,
                         FAILED_REQ, GAVE_UP, HAVE_NUMBA, HEAP_N, IDLE, INFLIGHT, LIVE, LIVE_AT_END, LOST_UNMAPS,
                         LT_FIXED, LT_QD, LT_REAL, M_DIRECT, M_END, M_ENDLINE, M_LINE, M_LOST, M_SIZE, M_TIME, MAPPED,
                         MEM_NSLABS, NFIFO, NKEYS, NLOCKS, NLOCKS_SMALL, NO_HANDLE, NOW, NOT_ATTEMPTED, P_AGREE,
                         P_BOOT_BYTES, P_DEPTH, P_DYN, P_HAS_STOP, P_LT, P_MAX_RETRIES, P_NEED_LIVELOCK, P_NREQS,
                         P_OLDEST, P_RELN, P_REPEATS, P_TIMELINE, P_TL_CAP, P_WMASK, PARTIAL, PEAK, PEAK_BYTES,
                         PF_LIFETIME, PF_RETRY_DELAY, PF_TARGET, POOL_BYTES, QUEUED, QUEUED_BEHIND, R_NO_MEMORY,
                         R_OUT_OF_REACH, R_TOO_BIG, REQUEUED, RETRIES, RUN, SAMPLE, STOP_T, STOPPED, TL_FILL, TL_N,
                         TL_W, TOO_BIG_REQ, TOTAL_USED, TRANSIENT_BYTES, U_ABORTED, U_BLOCK, U_DEV, U_KEY, U_LAST,
                         flag, jit, jit_inline, mi, mr, row, var)
from .requests import MAX_MAPPING_BYTES

if HAVE_NUMBA:
    from numba import types
    from numba.typed import Dict, List
    from .fast_state import LOCK_ITEM, LOG_ITEM, SIG_KEY

# -- the engine: twins of Engine's methods ------------------------------------------------
# the event heap: Engine's heapq of (time, prio, counter, kind, payload) as five arrays (the
# counter is unique, so the order is that of the tuples whatever the sifting)
@jit
def _before(t1, p1, c1, t2, p2, c2):
    return t1 < t2 or (t1 == t2 and (p1 < p2 or (p1 == p2 and c1 < c2)))


@jit
def _push(S, t, prio, kind, payload):
    """Engine.push: an event keyed (time, prio, counter)."""
    S.C[CTR] += 1
    c = S.C[CTR]
    n = S.C[HEAP_N]
    if n == len(S.h_t):
        S.h_t = np.concatenate((S.h_t, np.empty_like(S.h_t)))
        S.h_p = np.concatenate((S.h_p, np.empty_like(S.h_p)))
        S.h_c = np.concatenate((S.h_c, np.empty_like(S.h_c)))
        S.h_k = np.concatenate((S.h_k, np.empty_like(S.h_k)))
        S.h_x = np.concatenate((S.h_x, np.empty_like(S.h_x)))
    i = n
    while i > 0:
        up = (i - 1) >> 1
        if not _before(t, prio, c, S.h_t[up], S.h_p[up], S.h_c[up]):
            break
        S.h_t[i], S.h_p[i], S.h_c[i], S.h_k[i], S.h_x[i] = S.h_t[up], S.h_p[up], S.h_c[up], S.h_k[up], S.h_x[up]
        i = up
    S.h_t[i], S.h_p[i], S.h_c[i], S.h_k[i], S.h_x[i] = t, prio, c, kind, payload
    S.C[HEAP_N] = n + 1


@jit_inline
def _pop(S):
    """Remove the first event; returns (time, kind, payload)."""
    t0, k0, x0 = S.h_t[0], S.h_k[0], S.h_x[0]
    n = S.C[HEAP_N] - 1
    S.C[HEAP_N] = n
    if n > 0:
        t, p, c, k, x = S.h_t[n], S.h_p[n], S.h_c[n], S.h_k[n], S.h_x[n]
        i = 0
        while True:
            j = 2 * i + 1
            if j >= n:
                break
            if j + 1 < n and _before(S.h_t[j + 1], S.h_p[j + 1], S.h_c[j + 1], S.h_t[j], S.h_p[j], S.h_c[j]):
                j += 1
            if not _before(S.h_t[j], S.h_p[j], S.h_c[j], t, p, c):
                break
            S.h_t[i], S.h_p[i], S.h_c[i], S.h_k[i], S.h_x[i] = S.h_t[j], S.h_p[j], S.h_c[j], S.h_k[j], S.h_x[j]
            i = j
        S.h_t[i], S.h_p[i], S.h_c[i], S.h_k[i], S.h_x[i] = t, p, c, k, x
    return t0, k0, x0


@jit_inline
def _record(S, t):
    """Engine._record: one timeline sample, slots in use now.  Each point of the timeline is
    the first highest of ``C[TL_W]`` samples in a row (one, unless ``timeline_points`` thins
    it: :func:`~swiotlb_lib.trace.replay.thin_timeline`, as it is made)."""
    if S.P[P_TIMELINE]:
        n = S.C[TL_N]
        used = S.C[TOTAL_USED]
        if n > 0 and S.C[TL_FILL] < S.C[TL_W]:         # the last point's stretch goes on
            S.C[TL_FILL] += 1
            if used > S.tl_u[n - 1]:
                S.tl_t[n - 1] = t
                S.tl_u[n - 1] = used
            return
        if n == len(S.tl_t) or (S.P[P_TL_CAP] > 0 and n == 2 * S.P[P_TL_CAP]):
            n = _grow_timeline(S)
        S.tl_t[n] = t
        S.tl_u[n] = used
        S.C[TL_FILL] = 1
        S.C[TL_N] = n + 1


@jit
def _grow_timeline(S):
    """Make room for a point (out of line: :func:`_record` is inlined everywhere): at twice
    ``timeline_points`` points, merge them in pairs (each stretch twice as long); else double
    the arrays.  Returns the number of points now."""
    n = S.C[TL_N]
    if S.P[P_TL_CAP] > 0 and n == 2 * S.P[P_TL_CAP]:
        for k in range(n // 2):
            a, b = 2 * k, 2 * k + 1
            if S.tl_u[b] > S.tl_u[a]:
                a = b
            S.tl_t[k] = S.tl_t[a]
            S.tl_u[k] = S.tl_u[a]
        n //= 2
        S.C[TL_N] = n
        S.C[TL_W] *= 2
        return n
    S.tl_t = np.concatenate((S.tl_t, np.empty_like(S.tl_t)))
    S.tl_u = np.concatenate((S.tl_u, np.empty_like(S.tl_u)))
    return n


@jit_inline
def _map_one(S, i, ri):
    """Engine.map_one of mapping ``i`` (row ``ri``): returns the bounce address, -1 for a
    direct mapping, or R_*."""
    S.C[ATTEMPTED] += 1
    if mr(S, ri, M_DIRECT):
        S.C[MAPPED] += 1
        return -1
    r = allocate(S, i, ri)
    if r < -1:
        S.C[FAILED] += 1
        if r == R_TOO_BIG:
            S.C[F_TOO_BIG] += 1
        elif r == R_OUT_OF_REACH:
            S.C[F_OUT_OF_REACH] += 1
        elif r == R_NO_MEMORY:
            S.C[F_NO_MEMORY] += 1
        else:
            S.C[F_POOL_FULL] += 1
        return r
    S.C[MAPPED] += 1
    S.C[BOUNCED] += 1
    if S.C[TOTAL_USED] > S.C[PEAK]:
        S.C[PEAK] = S.C[TOTAL_USED]
    if S.P[P_DYN]:                                      # Machine.bounce_bytes()
        b = S.P[P_BOOT_BYTES] + S.C[POOL_BYTES] + S.C[TRANSIENT_BYTES]
        if b > S.C[PEAK_BYTES]:
            S.C[PEAK_BYTES] = b
    return r


@jit_inline
def _unmap_one(S, i, tlb):
    """Engine.unmap_one: ``swiotlb_tbl_unmap_single`` with ``DMA_ATTR_SKIP_CPU_SYNC``."""
    if tlb >= 0:
        unmap_slots(S, i, tlb)


@jit
def _release(S, u, t):
    """Engine.release: unmap every live mapping of request ``u``, last first."""
    n = S.nh[u]
    if n > 0:
        base = S.u_ptr[u]
        for k in range(n - 1, -1, -1):
            i = np.int64(S.u_members[base + k])
            tlb = S.tlb_of[row(S, i)]
            if tlb >= 0:                                # _unmap_one
                unmap_slots(S, i, tlb)
        _record(S, t)
    S.nh[u] = -1


# queues: one doubly linked list per (device, CPU) key over the units; fifos: one per device
@jit
def _key_touch(S, key):
    """Create queue ``key`` (its place in the order the reference's dict keeps)."""
    if not S.k_made[key]:
        S.k_made[key] = 1
        S.k_order[S.C[NKEYS]] = key
        S.C[NKEYS] += 1


@jit
def _q_push(S, key, u, front):
    """appendleft / append on queue ``key``."""
    h = S.k_head[key]
    if h < 0:
        S.k_head[key] = S.k_tail[key] = u
        S.q_next[u] = S.q_prev[u] = -1
    elif front:
        S.q_prev[h] = u
        S.q_next[u] = h
        S.q_prev[u] = -1
        S.k_head[key] = u
    else:
        tl = S.k_tail[key]
        S.q_next[tl] = u
        S.q_prev[u] = tl
        S.q_next[u] = -1
        S.k_tail[key] = u


@jit
def _q_popleft(S, key):
    """popleft on queue ``key``."""
    h = S.k_head[key]
    n = S.q_next[h]
    S.k_head[key] = n
    if n < 0:
        S.k_tail[key] = -1
    else:
        S.q_prev[n] = -1
    return h


@jit
def _f_append(S, d, u):
    """Append to device ``d``'s fifo of live requests (qd lifetimes)."""
    if not S.f_made[d]:
        S.f_made[d] = 1
        S.f_order[S.C[NFIFO]] = d
        S.C[NFIFO] += 1
    if S.f_len[d] == 0:
        S.f_head[d] = u
    else:
        S.f_next[S.f_tail[d]] = u
    S.f_tail[d] = u
    S.f_next[u] = -1
    S.f_len[d] += 1


@jit
def _f_popleft(S, d):
    """popleft on device ``d``'s fifo."""
    h = S.f_head[d]
    S.f_head[d] = S.f_next[h]
    S.f_len[d] -= 1
    return h


@jit
def _unit_mapped(S, u, t):
    """Engine.unit_mapped: all mappings of request ``u`` are live; schedule its completion."""
    lt = S.P[P_LT]
    if S.UI[u, U_ABORTED] and lt != LT_REAL:
        _release(S, u, t)
        S.state[u] = DONE
        return
    S.state[u] = LIVE
    if lt == LT_REAL:
        agree = S.P[P_AGREE] and S.attempts[u] == 0
        base = S.u_ptr[u]
        for k in range(S.nh[u]):
            i = np.int64(S.u_members[base + k])
            ri = row(S, i)
            tlb = S.tlb_of[ri]
            if agree and S.m_traced[i] >= 0:
                S.C[AG_COMPARED] += 1
                if tlb == S.m_traced[i]:
                    S.C[AG_SAME] += 1
            end = S.MF[ri, M_END]
            line = mr(S, ri, M_ENDLINE)
            if math.isnan(end):
                if S.UI[u, U_ABORTED]:
                    _unmap_one(S, i, tlb)
                    continue
                end = S.MF[ri, M_LOST]
                line = -1
                if math.isnan(end):
                    S.C[LIVE_AT_END] += 1
                    continue
                if S.attempts[u] == 0:
                    S.C[LOST_UNMAPS] += 1
            S.handle_of[ri] = tlb
            S.left[u] += 1
            S.C[INFLIGHT] += 1
            if S.attempts[u] == 0:
                _push(S, max(t, end), line, var(COMPLETE_MAPPING), i)
            else:
                end = t + (end - S.MF[ri, M_TIME])
                _push(S, end, var(-1), var(COMPLETE_MAPPING), i)
        S.nh[u] = -1
        if S.left[u] == 0:
            S.state[u] = DONE
        return
    S.C[INFLIGHT] += 1
    if lt == LT_QD:
        d = S.UI[u, U_DEV]
        _f_append(S, d, u)
    elif lt == LT_FIXED:
        end = t + S.PF[PF_LIFETIME]
        _push(S, end, var(-1), var(COMPLETE_UNIT), u)
    else:
        end = t + S.samples[S.C[SAMPLE]]
        S.C[SAMPLE] += 1
        _push(S, end, var(-1), var(COMPLETE_UNIT), u)


@jit
def _wake(S, d, t):
    """Engine.wake: a request of device ``d`` completed, so blk-mq reruns its stalled queues
    (``blk_mq_sched_restart()`` from ``__blk_mq_free_request()``, block/blk-mq.c in 6.12)."""
    for k in range(S.C[NKEYS]):
        key = S.k_order[k]
        if S.k_head[key] >= 0 and S.k_dev[key] == d:
            _push(S, t, var(-1), var(RUN), key)


@jit_inline
def _complete_unit(S, u, t):
    """Engine.complete_unit."""
    now(S, t)
    _release(S, u, t)
    S.state[u] = DONE
    S.C[INFLIGHT] -= 1
    S.C[COMPLETED] += 1
    d = S.UI[u, U_DEV]
    _wake(S, d, t)


@jit_inline
def _complete_mapping(S, i, t):
    """Engine.complete_mapping: a real unmap (or an inferred lost one)."""
    ri = row(S, i)
    tlb = S.handle_of[ri]
    if tlb == NO_HANDLE:
        return
    S.handle_of[ri] = NO_HANDLE
    now(S, t)
    _unmap_one(S, i, tlb)
    _record(S, t)
    S.C[INFLIGHT] -= 1
    u = np.int64(S.unit_of[i])
    S.left[u] -= 1
    if S.left[u] == 0:
        S.state[u] = DONE
        S.C[COMPLETED] += 1
        d = S.UI[u, U_DEV]
        _wake(S, d, t)


@jit
def _stop_now(S):
    """Twin of :meth:`StopRule.__call__`."""
    if S.C[FAILED_REQ] == 0 and S.C[NLOCKS_SMALL] == 0:
        return False
    if S.PF[PF_TARGET] >= 0 and S.C[NLOCKS] == 0:
        if not (S.C[FAILED_REQ] + S.C[TOO_BIG_REQ]) / S.P[P_NREQS] > S.PF[PF_TARGET]:
            return False
    return S.C[NLOCKS] > 0 or not S.P[P_NEED_LIVELOCK]


@jit_inline
def _requeue(S, u, i, t, retry):
    """Engine.requeue: a failed request gives back its slots and waits at the head of its
    queue (``BLK_STS_RESOURCE``, ``blk_mq_requeue_request()``); rerun at once after the
    first failure, after ``BLK_MQ_RESOURCE_DELAY`` later (``blk_mq_dispatch_rq_list()``,
    6.12); livelocks and give-ups as in the reference."""
    used = S.C[TOTAL_USED]
    alone = retry and S.C[INFLIGHT] == 0 and S.C[PARTIAL] == 0
    _release(S, u, t)
    _record(S, t)
    big = mi(S, i, M_SIZE) > MAX_MAPPING_BYTES
    if S.attempts[u] == 0:
        if big:
            S.C[TOO_BIG_REQ] += 1
        else:
            S.C[FAILED_REQ] += 1
    if S.UI[u, U_ABORTED] or not S.UI[u, U_BLOCK]:
        S.attempts[u] += 1
        S.state[u] = DONE
        if not S.UI[u, U_BLOCK]:
            S.C[DROPPED] += 1
        else:
            S.C[ABORTED_FAILED] += 1
        return
    S.attempts[u] += 1
    reps = 0
    if alone:
        key = (u, S.sig_gen[u], i, used)
        reps = S.sig.get(key, 0) + 1
        S.sig[key] = reps
    else:
        S.sig_gen[u] += 1
    if reps >= S.P[P_REPEATS]:
        S.state[u] = DONE
        S.locks.append((u, i, t, used, S.attempts[u], reps, S.C[MEM_NSLABS]))
        S.C[NLOCKS] += 1
        if not big:
            S.C[NLOCKS_SMALL] += 1
        return
    if S.attempts[u] > S.P[P_MAX_RETRIES]:
        S.state[u] = DONE
        S.C[GAVE_UP] += 1
        return
    if S.attempts[u] == 1:
        S.C[REQUEUED] += 1
    key = S.UI[u, U_KEY]
    _key_touch(S, key)
    if S.state[u] != QUEUED:
        S.state[u] = QUEUED
        _q_push(S, key, u, flag(True))
    d = S.UI[u, U_DEV]
    if S.P[P_LT] == LT_QD and S.f_len[d] > 0:
        _complete_unit(S, _f_popleft(S, d), t)
    else:
        rerun = t if S.attempts[u] == 1 else t + S.PF[PF_RETRY_DELAY]
        _push(S, rerun, var(-1), var(RUN), key)


@jit
def _failed(S, u, i, t, retry):
    """Engine.failed: requeue, then the early stop (S.C[STOPPED] in place of StopReplay)."""
    _requeue(S, u, i, t, retry)
    if S.P[P_HAS_STOP] and _stop_now(S):
        S.C[STOPPED] = 1
        S.F[STOP_T] = t


@jit_inline
def _attempt(S, u, t):
    """Engine.attempt: map every mapping of request ``u`` (a dispatch from its queue)."""
    now(S, t)
    S.nh[u] = 0
    base = S.u_ptr[u]
    for k in range(S.u_ptr[u + 1] - base):
        i = np.int64(S.u_members[base + k])
        ri = row(S, i)
        r = _map_one(S, i, ri)
        if r < -1:
            _failed(S, u, i, t, flag(True))
            return False
        S.tlb_of[ri] = r
        S.nh[u] += 1
    _record(S, t)
    _unit_mapped(S, u, t)
    return True


@jit_inline
def _run_queue(S, key, t):
    """Engine.run_queue: ``blk_mq_run_hw_queue``, dispatch waiting requests until one fails."""
    while S.k_head[key] >= 0:
        u = S.k_head[key]
        if S.state[u] != QUEUED:
            _q_popleft(S, key)
            continue
        if S.attempts[u]:
            S.C[RETRIES] += 1
        if _attempt(S, u, t):
            _q_popleft(S, key)
        elif S.C[STOPPED]:
            return
        elif S.state[u] == DONE:
            _q_popleft(S, key)
        else:
            return


@jit
def _handle(S, ev):
    """Engine.handle: one event off the heap."""
    t, kind, x = ev
    if kind == COMPLETE_UNIT:
        _complete_unit(S, x, t)
    elif kind == COMPLETE_MAPPING:
        _complete_mapping(S, x, t)
    else:
        _run_queue(S, x, t)


@jit
def run_range(S, i0, i1):
    """Engine.run's loop over trace mappings ``i0..i1-1``; stops early when S.C[STOPPED]."""
    C, P = S.C, S.P
    qd = P[P_LT] == LT_QD
    depth = P[P_DEPTH]
    for i in range(i0, i1):
        ri = row(S, i)                                  # the window changes only between calls
        t = S.MF[ri, M_TIME]
        line = mr(S, ri, M_LINE)
        while C[HEAP_N] and (S.h_t[0] < t or (S.h_t[0] == t and S.h_p[0] < line)):
            _handle(S, _pop(S))
            if C[STOPPED]:
                return
        u = np.int64(S.unit_of[i])
        if S.state[u] != IDLE:
            C[NOT_ATTEMPTED] += 1
            continue
        if S.nh[u] < 0:                                 # a new request arrives
            key = S.UI[u, U_KEY]
            if S.UI[u, U_BLOCK] and S.k_head[key] >= 0:     # behind requeued requests
                S.state[u] = QUEUED
                _q_push(S, key, u, flag(False))
                C[NOT_ATTEMPTED] += 1
                C[QUEUED_BEHIND] += 1
                continue
            if qd:
                now(S, t)
                d = S.UI[u, U_DEV]
                while S.f_len[d] > 0 and S.f_len[d] >= depth:
                    _complete_unit(S, _f_popleft(S, d), t)
            S.nh[u] = 0
            C[PARTIAL] += 1
        now(S, t)
        r = _map_one(S, i, ri)
        if r < -1:
            C[PARTIAL] -= 1
            _failed(S, u, i, t, flag(False))
            if C[STOPPED]:
                return
            continue
        S.tlb_of[ri] = r
        S.nh[u] += 1
        _record(S, t)
        if i == S.UI[u, U_LAST]:
            C[PARTIAL] -= 1
            _unit_mapped(S, u, t)


@jit
def drain(S):
    """Engine.drain."""
    C = S.C
    for u in range(len(S.nh)):
        if S.nh[u] > 0 and S.state[u] == IDLE:
            C[PARTIAL] -= 1
            _unit_mapped(S, u, S.F[NOW])
    while True:
        while C[HEAP_N]:
            _handle(S, _pop(S))
            if C[STOPPED]:
                return
        t = S.F[NOW]
        busy = 0
        for k in range(C[NFIFO]):
            if S.f_len[S.f_order[k]] > 0:
                busy += 1
        if busy:
            for k in range(C[NFIFO]):
                d = S.f_order[k]
                if S.f_len[d] > 0:
                    _complete_unit(S, _f_popleft(S, d), t)
            continue
        waiting = 0
        for k in range(C[NKEYS]):
            key = S.k_order[k]
            if S.k_head[key] >= 0:
                waiting += 1
                _push(S, t + S.PF[PF_RETRY_DELAY], var(-1), var(RUN), key)
        if not waiting:
            break


# -- the window of per-mapping rows (fast.CompiledEngine fills it as the replay reaches them) --
@jit_inline
def _in_use(S, i, r):
    """Whether the loop may still read row ``r`` of mapping ``i``, which it has reached: its
    request is not done (mapped in part, queued, or live with its mappings to unmap; the
    handle test is a guard, a done request has none left).  A done request is never mapped
    again, and only the write-back reads a done mapping's row (``fast.Window`` keeps what it
    needs).  ``fast.Window.fill`` never reuses the row of a mapping the loop has not reached."""
    return S.state[S.unit_of[i]] != DONE or S.handle_of[r] != NO_HANDLE


@jit
def ring_busy(S, lo, hi):
    """How many of the mappings ``lo..hi-1`` hold a ring row still in use (:func:`_in_use`).
    After the ring doubled, the oldest of them have no row in it: theirs were reused or
    relocated before."""
    m = S.P[P_WMASK]
    k = 0
    for i in range(max(lo, S.P[P_OLDEST]), hi):
        k += _in_use(S, i, i & m)
    return k


@jit
def _copy_row(S, MI, MF, tlb, hnd, pool, a, b):
    """Row ``a`` of the state's per-mapping tables to row ``b`` of the given ones."""
    for k in range(MI.shape[1]):
        MI[b, k] = S.MI[a, k]
    for k in range(MF.shape[1]):
        MF[b, k] = S.MF[a, k]
    tlb[b], hnd[b], pool[b] = S.tlb_of[a], S.handle_of[a], S.pool_of[a]


@jit
def ring_resize(S, lo, hi, w, cap):
    """The window at ``w`` rows (a power of two, at least the present) with room for ``cap``
    relocated rows after them, keeping the rows of the mappings ``lo..hi-1`` still in the ring
    (every row still in use) and the relocated rows still in use (:func:`_in_use`)."""
    m = S.P[P_WMASK]
    n = S.P[P_RELN]
    tot = w + cap
    MI = np.zeros((tot, S.MI.shape[1]), np.int32)
    MF = np.zeros((tot, S.MF.shape[1]), np.float64)
    tlb = np.full(tot, -1, np.int64)
    hnd = np.full(tot, NO_HANDLE, np.int64)
    pool = np.zeros(tot, np.int64)
    for i in range(max(lo, S.P[P_OLDEST]), hi):      # those the ring holds
        _copy_row(S, MI, MF, tlb, hnd, pool, i & m, i & (w - 1))
    rel = np.zeros(cap, np.int64)
    kept = 0
    for k in range(n):
        i = S.rel_id[k]
        if _in_use(S, i, m + 1 + k):                    # rel stays ascending
            _copy_row(S, MI, MF, tlb, hnd, pool, m + 1 + k, w + kept)
            rel[kept] = i
            kept += 1
    S.MI, S.MF, S.tlb_of, S.handle_of, S.pool_of, S.rel_id = MI, MF, tlb, hnd, pool, rel
    S.P[P_WMASK] = w - 1
    S.P[P_RELN] = kept


@jit
def ring_grow(S, lo, hi):
    """Double the window, keeping the rows of the mappings ``lo..hi-1`` still in the ring and
    the relocated rows."""
    ring_resize(S, lo, hi, 2 * (S.P[P_WMASK] + 1), len(S.rel_id))


@jit
def make_room(S, lo, hi, ring_hi, share):
    """Make the rows of the mappings ``lo..hi-1`` (the oldest in the ring, which holds
    ``lo..ring_hi-1``) free to reuse by moving those still in use to relocated rows, after
    those relocated before (``rel_id`` stays ascending), as long as the relocated rows in use
    stay at most one in ``share`` of the ring's.  Returns how many moved, or -1 when they would
    be more: the caller doubles the ring (:func:`ring_grow`) and asks again."""
    need = ring_busy(S, lo, hi)
    if need == 0:
        return 0
    w = S.P[P_WMASK] + 1
    if S.P[P_RELN] + need > w // share or len(S.rel_id) - S.P[P_RELN] < need:
        # drop the relocated rows no longer in use, and make room for these
        ring_resize(S, lo, ring_hi, w, max(len(S.rel_id), S.P[P_RELN] + need, 64))
        if S.P[P_RELN] + need > w // share:
            return -1
    m = w - 1
    n = S.P[P_RELN]
    for i in range(max(lo, S.P[P_OLDEST]), hi):
        a = i & m
        if _in_use(S, i, a):
            _copy_row(S, S.MI, S.MF, S.tlb_of, S.handle_of, S.pool_of, a, w + n)
            S.rel_id[n] = i
            n += 1
    S.P[P_RELN] = n
    return need


@jit
def ring_pool_of(S, lo, hi):
    """``pool_of`` of mappings ``lo..hi-1`` in the ring, 0 (no pool) for those not in it."""
    out = np.zeros(hi - lo, np.int64)
    m = S.P[P_WMASK]
    for i in range(max(lo, S.P[P_OLDEST]), hi):
        out[i - lo] = S.pool_of[i & m]
    return out


@jit
def containers():
    """The state's growable parts, made here (typed containers made in Python compile their
    methods in every process): log and livelock records, livelock signatures."""
    logs = List.empty_list(LOG_ITEM)
    locks = List.empty_list(LOCK_ITEM)
    sig = Dict.empty(SIG_KEY, types.int64)
    return logs, locks, sig


@jit
def export(S):
    """The records the Python side replays, as arrays: log records (kind, mapping, value,
    ``mem.nslabs``; time), livelocks, timeline."""
    nl = len(S.logs)
    li = np.empty((nl, 4), np.int64)
    lt = np.empty(nl, np.float64)
    for k in range(nl):
        r = S.logs[k]
        li[k, 0], lt[k], li[k, 1], li[k, 2], li[k, 3] = r[0], r[1], r[2], r[3], r[4]
    nk = len(S.locks)
    ki = np.empty((nk, 6), np.int64)
    kt = np.empty(nk, np.float64)
    for k in range(nk):
        r = S.locks[k]
        ki[k, 0], ki[k, 1], kt[k], ki[k, 2] = r[0], r[1], r[2], r[3]
        ki[k, 3], ki[k, 4], ki[k, 5] = r[4], r[5], r[6]
    n = S.C[TL_N]
    return li, lt, ki, kt, S.tl_t[:n].copy(), S.tl_u[:n].copy()

