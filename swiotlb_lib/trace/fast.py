"""The compiled replay engine: :class:`~swiotlb_lib.trace.engine.Engine` for a pool that
does not grow, compiled by Numba.

This module is the fast twin of two readable references, and the one duplication of rules
the project accepts (issue "Sizing at production scale"): the slot search and release of
:mod:`swiotlb_lib.pool` (``swiotlb_search_pool_area``, ``swiotlb_release_slots``,
``kernel/dma/swiotlb.c`` v6.3-rc to v6.11) and the replay loop of
:class:`~swiotlb_lib.trace.engine.Engine` (blk-mq requeue and reruns, lifetimes, livelock
detection, the advisor's early stop).  The chapters teach from the references; this file
only runs them faster.  ``tests/test_trace_fast.py`` runs both on thousands of random traces
per profile and on every recorded trace and oracle vector, and they must agree on every
slot, failure, counter, timeline point and log line.

How it works.  :class:`CompiledEngine` is an :class:`Engine` whose :meth:`~CompiledEngine.run`
turns the trace, the requests and the booted pool into flat arrays (:func:`~swiotlb_lib.trace.columns.columns`),
runs the compiled loop (:func:`_run_range`, :func:`_drain`) on them, working in place on the
pool's own ``list``/``alloc_size``/``pad_slots``/``orig_addr`` arrays, and writes the tallies
back where the reference keeps them, so :meth:`Engine.finish` and
:func:`~swiotlb_lib.trace.replay.replay` read the same fields.  What the compiled loop cannot
do itself it records and the Python side replays afterwards, in order: the kernel log lines
(``swiotlb buffer is full`` through the same rate limit, the once-only warnings) and the
livelocks.  Per-mapping quantities that depend only on the mapping, the device and the
profile (the allocation size with its sub-slot offset and padding, the alignment test's
bits, whether dma-direct would bounce at all) are computed once per trace with the
readable functions (:func:`swiotlb_lib.pool.search_params`) rather than in the loop.

:func:`supported` says when the compiled engine applies: a profile without run-time growth
(``io_tlb_mem.dyn`` unset), one boot pool, no probe registered on
:data:`~swiotlb_lib.debug.SEARCH_AREA` or :data:`~swiotlb_lib.debug.REPLAY_MAP_FAILED`, no
``swiotlb_bounced`` recording, no memory encryption message, and an early stop that is a
:class:`~swiotlb_lib.trace.engine.StopRule` (or none).  Otherwise the reference runs.
"""
from __future__ import annotations

import math
from collections import namedtuple
from types import SimpleNamespace

import numpy as np

from ..constants import (DMA_ATTR_NO_WARN, INVALID_PHYS_ADDR, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE,
                         PAGE_SIZE, U32, U64)
from ..debug import REPLAY_MAP_FAILED, SEARCH_AREA
from ..pool import search_params
from .columns import columns
from .engine import Engine, Livelock, StopReplay, StopRule
from .requests import MAX_MAPPING_BYTES, request_slots

try:                                                    # numba is a dependency (pyproject.toml);
    from numba import njit                              # without it the reference runs
    from numba.experimental import structref
    from numba.extending import overload
    from numba.typed import Dict, List
    from numba import types
    HAVE_NUMBA = True
except ImportError:                                     # pragma: no cover - exercised by hand
    HAVE_NUMBA = False

# -- counters: indexes into the int64 array ``C`` ---------------------------------------
(ATTEMPTED, MAPPED, BOUNCED, FAILED, F_TOO_BIG, F_POOL_FULL, F_OUT_OF_REACH, TOTAL_USED, HIWATER,
 PEAK, SLOTS_EXAMINED, BYTES_COPIED, PARTIAL, INFLIGHT, CTR, COMPLETED, FAILED_REQ, TOO_BIG_REQ,
 REQUEUED, RETRIES, QUEUED_BEHIND, GAVE_UP, DROPPED, ABORTED_FAILED, LIVE_AT_END, LOST_UNMAPS,
 NOT_ATTEMPTED, AG_COMPARED, AG_SAME, NLOCKS, NLOCKS_SMALL, STOPPED, NKEYS, NFIFO, SAMPLE,
 HEAP_N, TL_N, NCOUNTERS) = range(38)
# floats: ``F``
NOW, STOP_T, NFLOATS = range(3)
# parameters: ``P`` (int64) and ``PF`` (float64)
(P_NAREAS, P_AREA_NSLABS, P_ROUND_START, P_HAS_PAD, P_START, P_LT, P_DEPTH, P_MAX_RETRIES,
 P_REPEATS, P_HAS_STOP, P_NEED_LIVELOCK, P_NREQS, P_TIMELINE, P_AGREE, NPARAMS) = range(15)
PF_LIFETIME, PF_RETRY_DELAY, PF_TARGET, NPFLOATS = range(4)
# columns of the per-mapping tables MI (int64) and MF (float64), the per-request table UI and
# the per-device table DI: one table per kind, read through one field of the state
(M_DEV, M_CPU, M_SIZE, M_PARAM, M_NSLOTS, M_REST, M_TLBOFF, M_PAD, M_SKIP, M_OBITS, M_DIRECT,
 M_SWMAP, M_ALIGNWARN, M_NOWARN, M_LINE, M_ENDLINE, M_TRACED, NMI) = range(18)
(M_TIME, M_END, M_LOST, NMF) = range(4)
(U_DEV, U_BLOCK, U_ABORTED, U_LAST, U_KEY, NUI) = range(6)
(D_MAM, D_REACH, D_WARN_ALIGN, D_WARN_OVERFLOW, NDI) = range(5)
# lifetime kinds
LT_FIXED, LT_SAMPLED, LT_QD, LT_REAL = range(4)
# event kinds (as Engine), unit states (as Engine), log records
COMPLETE_UNIT, COMPLETE_MAPPING, RUN = Engine.COMPLETE_UNIT, Engine.COMPLETE_MAPPING, Engine.RUN
IDLE, LIVE, QUEUED, DONE = Engine.IDLE, Engine.LIVE, Engine.QUEUED, Engine.DONE
LOG_FULL, LOG_OVERFLOW, LOG_ALIGN = range(3)
# map results below -1: the failure causes
R_POOL_FULL, R_TOO_BIG, R_OUT_OF_REACH = -2, -3, -4
NO_HANDLE = -(1 << 62)
SEG_LAST = IO_TLB_SEGSIZE - 1


#: The compiled loop's state: counters and parameters, the pool's arrays, the trace's and the
#: requests' columns, and the engine's mutable per-request, per-mapping and per-queue arrays.
STATE_FIELDS = ((
    "C F P PF p_list p_asize p_orig p_pad a_index a_used a_locks params h_t h_p h_c h_k h_x "
    "logs locks sig tl_t tl_u samples MI MF m_orig unit_of u_ptr u_members UI DI "
    "state attempts left nh sig_gen tlb_of handle_of q_next q_prev "
    "k_made k_order k_head k_tail k_dev f_made f_order f_head f_tail f_len f_next").split())

if HAVE_NUMBA:
    @structref.register
    class StateType(types.StructRef):
        """The numba type of :class:`State`: one reference, passed to every compiled function."""

        def preprocess_fields(self, fields):
            return tuple((name, types.unliteral(typ)) for name, typ in fields)

    class State(structref.StructRefProxy):
        """The compiled loop's state (fields: :data:`STATE_FIELDS`)."""

    structref.define_proxy(State, StateType, list(STATE_FIELDS))
    LOG_ITEM = types.Tuple((types.int64, types.float64, types.int64, types.int64))
    LOCK_ITEM = types.Tuple((types.int64, types.int64, types.float64, types.int64, types.int64, types.int64))
    SIG_KEY = types.UniTuple(types.int64, 4)

    # State(*values) would compile the proxy's constructor in every process; building the
    # state in a cached function from a namedtuple of the same fields compiles it once.
    StateTuple = namedtuple("StateTuple", STATE_FIELDS)

    def _struct_of(nt):
        """The :class:`State` with the fields of ``nt`` (a :data:`StateTuple`); compiled only."""

    @overload(_struct_of)
    def _struct_of_impl(nt):
        typ = StateType([(name, t) for name, t in zip(STATE_FIELDS, nt.types)])
        src = "def impl(nt):\n    st = new(typ)\n" + "".join(
            f"    st.{name} = nt.{name}\n" for name in STATE_FIELDS) + "    return st\n"
        scope = {"new": structref.new, "typ": typ}
        exec(src, scope)
        return scope["impl"]


def _jit(fn):
    return njit(cache=True, nogil=True)(fn) if HAVE_NUMBA else fn


def _jit_inline(fn):
    """For the allocator's small functions: inlined where they are called, since a call to a
    separately compiled function takes a reference on every array argument."""
    return njit(cache=True, nogil=True, inline="always")(fn) if HAVE_NUMBA else fn


# -- the allocator: twins of pool._search_area, pool._renumber_before, pool.release_slots --
@_jit_inline
def renumber_before(lst, s, count):
    """Twin of :func:`swiotlb_lib.pool._renumber_before`: the free slots just before slot
    ``s`` in its segment get ``count + 1``, ``count + 2``, ... walking back to a used slot or
    the segment start.  As in the reference, the run is found first (a load-only scan) and
    then written in one pass, which the compiler vectorizes; the values are the kernel loop's.
    ``s`` is not the first slot of its segment (the callers check)."""
    first = s & ~SEG_LAST
    j = s - 1
    while j >= first and lst[j]:
        j -= 1
    for i in range(j + 1, s):
        lst[i] = count + (s - i)


@_jit_inline
def search_area(lst, asize, area_index, area_used, area_locks, C, a, nslots, rest, shift, bmask, max_slots,
                stride, unbounded, skip_mask, orig_bits, area_nslabs, round_start):
    """Twin of :func:`swiotlb_lib.pool.search_pool_area` for one area (``swiotlb_search_pool_area``,
    v6.9+; ``swiotlb_area_find_slots``, v6.6; ``swiotlb_do_find_slots``, v6.3-rc and v6.3) on
    the pool's arrays (``list``, ``alloc_size``, and the areas' ``index``, ``used``, lock
    counts).  ``rest`` is what the first slot's ``alloc_size`` records.  Returns the first
    slot or -1.  (The arrays are passed one by one: a compiled function borrows its
    arguments, where unpacking a tuple or structure of arrays costs reference counting.)"""
    area_locks[a] += 1
    if nslots > area_nslabs - area_used[a]:
        return -1
    base = a * area_nslabs
    end = base + area_nslabs
    index = area_index[a]
    if round_start:
        index = (index + stride - 1) & ~(stride - 1)
        if index >= area_nslabs:
            index = 0
    slot = base + index
    checked = 0
    examined = 0
    found = False
    while checked < area_nslabs:
        examined += 1
        if skip_mask and ((shift + slot) & skip_mask) != orig_bits:
            slot += 1
            checked += 1
        elif lst[slot] >= nslots and (unbounded or ((shift + slot) & bmask) + nslots <= max_slots):
            found = True
            break
        else:
            slot += stride
            checked += stride
        if slot >= end:
            slot = base
    C[SLOTS_EXAMINED] += examined
    if not found:
        return -1
    for k in range(slot, slot + nslots):
        lst[k] = 0
        asize[k] = np.uint64(rest)
        rest -= IO_TLB_SIZE
    if slot & SEG_LAST and lst[slot - 1]:
        renumber_before(lst, slot, 0)
    nxt = slot - base + nslots
    area_index[a] = nxt if nxt < area_nslabs else 0
    area_used[a] += nslots
    return slot


@_jit_inline
def release_slots(lst, asize, orig, pad, area_used, area_locks, start, has_pad, area_nslabs, tlb,
                  min_align_mask):
    """Twin of :func:`swiotlb_lib.pool.release_slots` (``swiotlb_release_slots``) on the
    pool's arrays (``list``, ``alloc_size``, ``orig_addr``, ``pad_slots``, the areas' ``used``
    and lock counts).  Returns the number of slots freed."""
    offset = tlb & min_align_mask & (IO_TLB_SIZE - 1)
    index = (tlb - offset - start) >> IO_TLB_SHIFT
    if has_pad:
        index -= pad[index]
    nslots = np.int64((asize[index] + np.uint64(offset) + np.uint64(IO_TLB_SIZE - 1)) >> np.uint64(IO_TLB_SHIFT))
    aindex = index // area_nslabs
    area_locks[aindex] += 1
    end = index + nslots
    count = np.int64(lst[end]) if end & SEG_LAST else np.int64(0)
    for i in range(end - 1, index - 1, -1):
        count += 1
        lst[i] = count
        orig[i] = np.uint64(INVALID_PHYS_ADDR)
        asize[i] = 0
        pad[i] = 0
    if index & SEG_LAST and lst[index - 1]:
        renumber_before(lst, index, count)
    area_used[aindex] -= nslots
    return nslots


# -- the engine: twins of Engine's methods ------------------------------------------------
# the event heap: Engine's heapq of (time, prio, counter, kind, payload) as five arrays (the
# counter is unique, so the order is that of the tuples whatever the sifting)
@_jit
def _before(t1, p1, c1, t2, p2, c2):
    return t1 < t2 or (t1 == t2 and (p1 < p2 or (p1 == p2 and c1 < c2)))


@_jit
def _push(S, t, prio, kind, payload):
    """Engine.push: an event keyed (time, prio, counter)."""
    C = S.C
    C[CTR] += 1
    c = C[CTR]
    n = C[HEAP_N]
    if n == len(S.h_t):
        S.h_t = np.concatenate((S.h_t, np.empty_like(S.h_t)))
        S.h_p = np.concatenate((S.h_p, np.empty_like(S.h_p)))
        S.h_c = np.concatenate((S.h_c, np.empty_like(S.h_c)))
        S.h_k = np.concatenate((S.h_k, np.empty_like(S.h_k)))
        S.h_x = np.concatenate((S.h_x, np.empty_like(S.h_x)))
    ht, hp, hc, hk, hx = S.h_t, S.h_p, S.h_c, S.h_k, S.h_x
    i = n
    while i > 0:
        up = (i - 1) >> 1
        if not _before(t, prio, c, ht[up], hp[up], hc[up]):
            break
        ht[i], hp[i], hc[i], hk[i], hx[i] = ht[up], hp[up], hc[up], hk[up], hx[up]
        i = up
    ht[i], hp[i], hc[i], hk[i], hx[i] = t, prio, c, kind, payload
    C[HEAP_N] = n + 1


@_jit
def _pop(S):
    """Remove the first event; returns (time, kind, payload)."""
    C = S.C
    ht, hp, hc, hk, hx = S.h_t, S.h_p, S.h_c, S.h_k, S.h_x
    t0, k0, x0 = ht[0], hk[0], hx[0]
    n = C[HEAP_N] - 1
    C[HEAP_N] = n
    if n > 0:
        t, p, c, k, x = ht[n], hp[n], hc[n], hk[n], hx[n]
        i = 0
        while True:
            j = 2 * i + 1
            if j >= n:
                break
            if j + 1 < n and _before(ht[j + 1], hp[j + 1], hc[j + 1], ht[j], hp[j], hc[j]):
                j += 1
            if not _before(ht[j], hp[j], hc[j], t, p, c):
                break
            ht[i], hp[i], hc[i], hk[i], hx[i] = ht[j], hp[j], hc[j], hk[j], hx[j]
            i = j
        ht[i], hp[i], hc[i], hk[i], hx[i] = t, p, c, k, x
    return t0, k0, x0


@_jit
def _now(S, t):
    """Engine._now: the model's clock (``KernelLog.now``) only moves forward."""
    if t > S.F[NOW]:
        S.F[NOW] = t


@_jit
def _record(S, t):
    """Engine._record: one timeline point, slots in use now."""
    if S.P[P_TIMELINE]:
        C = S.C
        n = C[TL_N]
        if n == len(S.tl_t):
            S.tl_t = np.concatenate((S.tl_t, np.empty_like(S.tl_t)))
            S.tl_u = np.concatenate((S.tl_u, np.empty_like(S.tl_u)))
        S.tl_t[n] = t
        S.tl_u[n] = C[TOTAL_USED]
        C[TL_N] = n + 1


@_jit
def _log(S, kind, i, value):
    """A kernel message the Python side prints after the run (see
    CompiledEngine._write_back)."""
    S.logs.append((kind, S.F[NOW], i, value))


@_jit
def _allocate(S, i):
    """``swiotlb_map`` -> ``swiotlb_tbl_map_single`` for mapping ``i`` (Engine.allocate with
    IoTlbMem.map_checked_args and swiotlb_map_checked_args).  Returns the bounce address
    or a failure code (R_*)."""
    # (each field of S read once: a read costs a reference count, an index into it does not)
    C, P, MI, DI = S.C, S.P, S.MI, S.DI
    d = MI[i, M_DEV]
    if MI[i, M_ALIGNWARN] and not DI[d, D_WARN_ALIGN]:
        DI[d, D_WARN_ALIGN] = 1
        _log(S, LOG_ALIGN, i, 0)
    nslots = MI[i, M_NSLOTS]
    p = MI[i, M_PARAM]
    params = S.params
    lst, asize, a_index, a_used, a_locks = S.p_list, S.p_asize, S.a_index, S.a_used, S.a_locks
    nareas = P[P_NAREAS]
    start = a = MI[i, M_CPU] & (nareas - 1)
    while True:
        index = search_area(lst, asize, a_index, a_used, a_locks, C, a, nslots, MI[i, M_REST],
                            params[p, 0], params[p, 1], params[p, 2], params[p, 5], params[p, 6],
                            MI[i, M_SKIP], MI[i, M_OBITS], P[P_AREA_NSLABS], P[P_ROUND_START])
        if index >= 0:
            break
        a += 1
        if a >= nareas:
            a = 0
        if a == start:
            break
    if index < 0:
        if not MI[i, M_NOWARN]:
            _log(S, LOG_FULL, i, C[TOTAL_USED])
        return R_TOO_BIG if nslots > IO_TLB_SEGSIZE else R_POOL_FULL
    used = C[TOTAL_USED] + nslots
    C[TOTAL_USED] = used
    if used > C[HIWATER]:
        C[HIWATER] = used
    first = index
    if P[P_HAS_PAD]:
        index += MI[i, M_PAD]
        S.p_pad[index] = MI[i, M_PAD]
    orig = S.p_orig
    o = S.m_orig[i]
    for k in range(index, first + nslots):
        orig[k] = o
        o += np.uint64(IO_TLB_SIZE)
    tlb = P[P_START] + (index << IO_TLB_SHIFT) + MI[i, M_TLBOFF]
    size = MI[i, M_SIZE]
    C[BYTES_COPIED] += size
    if MI[i, M_SWMAP] and tlb + size - 1 > DI[d, D_REACH]:    # dma_capable() of the bounce address
        C[TOTAL_USED] -= _release_slots(S, tlb, DI[d, D_MAM])
        if not DI[d, D_WARN_OVERFLOW]:
            DI[d, D_WARN_OVERFLOW] = 1
            _log(S, LOG_OVERFLOW, i, tlb)
        return R_OUT_OF_REACH
    return tlb


@_jit
def _map_one(S, i):
    """Engine.map_one: returns the bounce address, -1 for a direct mapping, or R_*."""
    C = S.C
    C[ATTEMPTED] += 1
    if S.MI[i, M_DIRECT]:
        C[MAPPED] += 1
        return -1
    r = _allocate(S, i)
    if r < -1:
        C[FAILED] += 1
        if r == R_TOO_BIG:
            C[F_TOO_BIG] += 1
        elif r == R_OUT_OF_REACH:
            C[F_OUT_OF_REACH] += 1
        else:
            C[F_POOL_FULL] += 1
        return r
    C[MAPPED] += 1
    C[BOUNCED] += 1
    if C[TOTAL_USED] > C[PEAK]:
        C[PEAK] = C[TOTAL_USED]
    return r


@_jit
def _release_slots(S, tlb, min_align_mask):
    """release_slots on this state's pool."""
    P = S.P
    return release_slots(S.p_list, S.p_asize, S.p_orig, S.p_pad, S.a_used, S.a_locks, P[P_START],
                         P[P_HAS_PAD], P[P_AREA_NSLABS], tlb, min_align_mask)


@_jit
def _unmap_one(S, i, tlb):
    """Engine.unmap_one: ``swiotlb_tbl_unmap_single`` with ``DMA_ATTR_SKIP_CPU_SYNC``."""
    if tlb >= 0:
        S.C[TOTAL_USED] -= _release_slots(S, tlb, S.DI[S.MI[i, M_DEV], D_MAM])


@_jit
def _release(S, u, t):
    """Engine.release: unmap every live mapping of request ``u``, last first."""
    nh = S.nh
    n = nh[u]
    if n > 0:
        P, C, MI, DI, members, tlb_of = S.P, S.C, S.MI, S.DI, S.u_members, S.tlb_of
        lst, asize, orig, pad, a_used, a_locks = S.p_list, S.p_asize, S.p_orig, S.p_pad, S.a_used, S.a_locks
        base = S.u_ptr[u]
        for k in range(n - 1, -1, -1):
            i = members[base + k]
            tlb = tlb_of[i]
            if tlb >= 0:                                # _unmap_one
                C[TOTAL_USED] -= release_slots(lst, asize, orig, pad, a_used, a_locks, P[P_START],
                                               P[P_HAS_PAD], P[P_AREA_NSLABS], tlb, DI[MI[i, M_DEV], D_MAM])
        _record(S, t)
    nh[u] = -1


# queues: one doubly linked list per (device, CPU) key over the units; fifos: one per device
@_jit
def _key_touch(S, key):
    """Create queue ``key`` (its place in the order the reference's dict keeps)."""
    if not S.k_made[key]:
        S.k_made[key] = 1
        S.k_order[S.C[NKEYS]] = key
        S.C[NKEYS] += 1


@_jit
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


@_jit
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


@_jit
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


@_jit
def _f_popleft(S, d):
    """popleft on device ``d``'s fifo."""
    h = S.f_head[d]
    S.f_head[d] = S.f_next[h]
    S.f_len[d] -= 1
    return h


@_jit
def _unit_mapped(S, u, t):
    """Engine.unit_mapped: all mappings of request ``u`` are live; schedule its completion."""
    C, P = S.C, S.P
    lt = P[P_LT]
    if S.UI[u, U_ABORTED] and lt != LT_REAL:
        _release(S, u, t)
        S.state[u] = DONE
        return
    S.state[u] = LIVE
    if lt == LT_REAL:
        agree = P[P_AGREE] and S.attempts[u] == 0
        base = S.u_ptr[u]
        for k in range(S.nh[u]):
            i = S.u_members[base + k]
            tlb = S.tlb_of[i]
            if agree and S.MI[i, M_TRACED] >= 0:
                C[AG_COMPARED] += 1
                if tlb == S.MI[i, M_TRACED]:
                    C[AG_SAME] += 1
            end = S.MF[i, M_END]
            line = S.MI[i, M_ENDLINE]
            if math.isnan(end):
                if S.UI[u, U_ABORTED]:
                    _unmap_one(S, i, tlb)
                    continue
                end = S.MF[i, M_LOST]
                line = -1
                if math.isnan(end):
                    C[LIVE_AT_END] += 1
                    continue
                if S.attempts[u] == 0:
                    C[LOST_UNMAPS] += 1
            S.handle_of[i] = tlb
            S.left[u] += 1
            C[INFLIGHT] += 1
            if S.attempts[u] == 0:
                _push(S, max(t, end), line, COMPLETE_MAPPING, i)
            else:
                _push(S, t + (end - S.MF[i, M_TIME]), -1, COMPLETE_MAPPING, i)
        S.nh[u] = -1
        if S.left[u] == 0:
            S.state[u] = DONE
        return
    C[INFLIGHT] += 1
    if lt == LT_QD:
        _f_append(S, S.UI[u, U_DEV], u)
    elif lt == LT_FIXED:
        _push(S, t + S.PF[PF_LIFETIME], -1, COMPLETE_UNIT, u)
    else:
        _push(S, t + S.samples[C[SAMPLE]], -1, COMPLETE_UNIT, u)
        C[SAMPLE] += 1


@_jit
def _wake(S, d, t):
    """Engine.wake: a request of device ``d`` completed, so blk-mq reruns its stalled queues
    (``blk_mq_sched_restart()`` from ``__blk_mq_free_request()``, block/blk-mq.c in 6.12)."""
    for k in range(S.C[NKEYS]):
        key = S.k_order[k]
        if S.k_head[key] >= 0 and S.k_dev[key] == d:
            _push(S, t, -1, RUN, key)


@_jit
def _complete_unit(S, u, t):
    """Engine.complete_unit."""
    _now(S, t)
    _release(S, u, t)
    S.state[u] = DONE
    S.C[INFLIGHT] -= 1
    S.C[COMPLETED] += 1
    _wake(S, S.UI[u, U_DEV], t)


@_jit
def _complete_mapping(S, i, t):
    """Engine.complete_mapping: a real unmap (or an inferred lost one)."""
    tlb = S.handle_of[i]
    if tlb == NO_HANDLE:
        return
    S.handle_of[i] = NO_HANDLE
    _now(S, t)
    _unmap_one(S, i, tlb)
    _record(S, t)
    S.C[INFLIGHT] -= 1
    u = S.unit_of[i]
    S.left[u] -= 1
    if S.left[u] == 0:
        S.state[u] = DONE
        S.C[COMPLETED] += 1
        _wake(S, S.UI[u, U_DEV], t)


@_jit
def _stop_now(S):
    """Twin of :meth:`StopRule.__call__`."""
    C, P = S.C, S.P
    if C[FAILED_REQ] == 0 and C[NLOCKS_SMALL] == 0:
        return False
    if S.PF[PF_TARGET] >= 0 and C[NLOCKS] == 0:
        if not (C[FAILED_REQ] + C[TOO_BIG_REQ]) / P[P_NREQS] > S.PF[PF_TARGET]:
            return False
    return C[NLOCKS] > 0 or not P[P_NEED_LIVELOCK]


@_jit
def _requeue(S, u, i, t, retry):
    """Engine.requeue: a failed request gives back its slots and waits at the head of its
    queue (``BLK_STS_RESOURCE``, ``blk_mq_requeue_request()``); rerun at once after the
    first failure, after ``BLK_MQ_RESOURCE_DELAY`` later (``blk_mq_dispatch_rq_list()``,
    6.12); livelocks and give-ups as in the reference."""
    C, P = S.C, S.P
    used = C[TOTAL_USED]
    alone = retry and C[INFLIGHT] == 0 and C[PARTIAL] == 0
    _release(S, u, t)
    _record(S, t)
    big = S.MI[i, M_SIZE] > MAX_MAPPING_BYTES
    if S.attempts[u] == 0:
        if big:
            C[TOO_BIG_REQ] += 1
        else:
            C[FAILED_REQ] += 1
    if S.UI[u, U_ABORTED] or not S.UI[u, U_BLOCK]:
        S.attempts[u] += 1
        S.state[u] = DONE
        if not S.UI[u, U_BLOCK]:
            C[DROPPED] += 1
        else:
            C[ABORTED_FAILED] += 1
        return
    S.attempts[u] += 1
    reps = 0
    if alone:
        key = (u, S.sig_gen[u], i, used)
        reps = S.sig.get(key, 0) + 1
        S.sig[key] = reps
    else:
        S.sig_gen[u] += 1
    if reps >= P[P_REPEATS]:
        S.state[u] = DONE
        S.locks.append((u, i, t, used, S.attempts[u], reps))
        C[NLOCKS] += 1
        if not big:
            C[NLOCKS_SMALL] += 1
        return
    if S.attempts[u] > P[P_MAX_RETRIES]:
        S.state[u] = DONE
        C[GAVE_UP] += 1
        return
    if S.attempts[u] == 1:
        C[REQUEUED] += 1
    key = S.UI[u, U_KEY]
    _key_touch(S, key)
    if S.state[u] != QUEUED:
        S.state[u] = QUEUED
        _q_push(S, key, u, True)
    d = S.UI[u, U_DEV]
    if P[P_LT] == LT_QD and S.f_len[d] > 0:
        _complete_unit(S, _f_popleft(S, d), t)
    else:
        _push(S, t if S.attempts[u] == 1 else t + S.PF[PF_RETRY_DELAY], -1, RUN, key)


@_jit
def _failed(S, u, i, t, retry):
    """Engine.failed: requeue, then the early stop (S.C[STOPPED] in place of StopReplay)."""
    _requeue(S, u, i, t, retry)
    if S.P[P_HAS_STOP] and _stop_now(S):
        S.C[STOPPED] = 1
        S.F[STOP_T] = t


@_jit
def _attempt(S, u, t):
    """Engine.attempt: map every mapping of request ``u`` (a dispatch from its queue)."""
    _now(S, t)
    S.nh[u] = 0
    base = S.u_ptr[u]
    for k in range(S.u_ptr[u + 1] - base):
        i = S.u_members[base + k]
        r = _map_one(S, i)
        if r < -1:
            _failed(S, u, i, t, True)
            return False
        S.tlb_of[i] = r
        S.nh[u] += 1
    _record(S, t)
    _unit_mapped(S, u, t)
    return True


@_jit
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


@_jit
def _handle(S, ev):
    """Engine.handle: one event off the heap."""
    t, kind, x = ev
    if kind == COMPLETE_UNIT:
        _complete_unit(S, x, t)
    elif kind == COMPLETE_MAPPING:
        _complete_mapping(S, x, t)
    else:
        _run_queue(S, x, t)


@_jit
def _run_range(S, i0, i1):
    """Engine.run's loop over trace mappings ``i0..i1-1``; stops early when S.C[STOPPED]."""
    C, P = S.C, S.P
    qd = P[P_LT] == LT_QD
    depth = P[P_DEPTH]
    for i in range(i0, i1):
        t = S.MF[i, M_TIME]
        line = S.MI[i, M_LINE]
        while C[HEAP_N] and (S.h_t[0] < t or (S.h_t[0] == t and S.h_p[0] < line)):
            _handle(S, _pop(S))
            if C[STOPPED]:
                return
        u = S.unit_of[i]
        if S.state[u] != IDLE:
            C[NOT_ATTEMPTED] += 1
            continue
        if S.nh[u] < 0:                                 # a new request arrives
            key = S.UI[u, U_KEY]
            if S.UI[u, U_BLOCK] and S.k_head[key] >= 0:     # behind requeued requests
                S.state[u] = QUEUED
                _q_push(S, key, u, False)
                C[NOT_ATTEMPTED] += 1
                C[QUEUED_BEHIND] += 1
                continue
            if qd:
                _now(S, t)
                d = S.UI[u, U_DEV]
                while S.f_len[d] > 0 and S.f_len[d] >= depth:
                    _complete_unit(S, _f_popleft(S, d), t)
            S.nh[u] = 0
            C[PARTIAL] += 1
        _now(S, t)
        r = _map_one(S, i)
        if r < -1:
            C[PARTIAL] -= 1
            _failed(S, u, i, t, False)
            if C[STOPPED]:
                return
            continue
        S.tlb_of[i] = r
        S.nh[u] += 1
        _record(S, t)
        if i == S.UI[u, U_LAST]:
            C[PARTIAL] -= 1
            _unit_mapped(S, u, t)


@_jit
def _drain(S):
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
                _push(S, t + S.PF[PF_RETRY_DELAY], -1, RUN, key)
        if not waiting:
            break


@_jit
def _new_state(nt):
    return _struct_of(nt)


@_jit
def _containers():
    """The state's growable parts, made here (typed containers made in Python compile their
    methods in every process): log and livelock records, livelock signatures."""
    logs = List.empty_list(LOG_ITEM)
    locks = List.empty_list(LOCK_ITEM)
    sig = Dict.empty(SIG_KEY, types.int64)
    return logs, locks, sig


@_jit
def _export(S):
    """The records the Python side replays, as arrays: log records, livelocks, timeline."""
    nl = len(S.logs)
    lk, li, lv = np.empty(nl, np.int64), np.empty(nl, np.int64), np.empty(nl, np.int64)
    lt = np.empty(nl, np.float64)
    for k in range(nl):
        r = S.logs[k]
        lk[k], lt[k], li[k], lv[k] = r[0], r[1], r[2], r[3]
    nk = len(S.locks)
    ki = np.empty((nk, 5), np.int64)
    kt = np.empty(nk, np.float64)
    for k in range(nk):
        r = S.locks[k]
        ki[k, 0], ki[k, 1], kt[k], ki[k, 2], ki[k, 3], ki[k, 4] = r[0], r[1], r[2], r[3], r[4], r[5]
    n = S.C[TL_N]
    return lk, lt, li, lv, ki, kt, S.tl_t[:n].copy(), S.tl_u[:n].copy()


# -- the Python side ------------------------------------------------------------------------
def supported(eng) -> str | None:
    """Why the compiled engine cannot run replay ``eng`` (an :class:`Engine`), or None if it can."""
    mem = eng.mem
    if not HAVE_NUMBA:
        return "numba is not installed"
    if type(eng) is not CompiledEngine:
        return f"{type(eng).__name__} is not the plain replay engine"
    if mem.dyn is not None:
        return "the profile grows the pool at run time"
    if mem.defpool is None or not mem.nslabs or len(mem.pools) != 1:
        return "no single boot pool"
    if SEARCH_AREA.probes or REPLAY_MAP_FAILED.probes:
        return "a probe is registered"
    if mem.trace_enabled:
        return "swiotlb_bounced events are being recorded"
    if mem.cc_mem_encrypt:
        return "memory encryption is active (its once-only message)"
    if eng.stop is not None and not isinstance(eng.stop, StopRule):
        return "the early stop is not a StopRule"
    return None


class CompiledEngine(Engine):
    """:class:`Engine` with :meth:`run` compiled (see the module docstring); the same results.

    ``cache`` (a dict, or None) keeps the trace's :class:`Columns` between replays of one
    prepared trace (:class:`~swiotlb_lib.trace.replay.PreparedTrace`)."""

    #: refuse to fall back to the reference (``engine="compiled"`` of replay())
    strict = False

    def run(self) -> None:
        why = supported(self)
        if why is not None:
            self.fallback = why
            return super().run()
        self.fallback = None
        m, mem, pool, lt = self.m, self.mem, self.mem.defpool, self.lt
        cols = columns(self.trace, self.reqs, lt.kind == "real" and self.INFER_LOST, self.cache)
        if not cols.ordered:
            self.fallback = "a request's mappings are not in trace order"
            if self.strict:
                raise ValueError(f"engine: the compiled engine cannot run this replay: {self.fallback}")
            return super().run()
        n, nu = len(cols.time), len(cols.u_ptr) - 1
        devs = [self.devs[d] for d in cols.dev_names]
        nd = max(len(devs), 1)
        d_mam = np.array([d.min_align_mask for d in devs] or [0], np.int64)
        d_seg = [d.seg_boundary for d in devs] or [U64]
        reach_u = np.array([d.reach for d in devs] or [U64], np.uint64)
        d_reach = np.array([min(d.reach, (1 << 63) - 1) for d in devs] or [0], np.int64)
        # per mapping, what depends only on it, its device and the profile
        dv = cols.dev
        mam = d_mam[dv] if n else np.zeros(0, np.int64)
        orig, size, align = cols.orig, cols.size, cols.align
        low = (orig & np.uint64(IO_TLB_SIZE - 1)).astype(np.int64)
        if pool.has_pad:                                # 6.9+: offset, padding, rounding
            offset = (orig & (mam & (align | (IO_TLB_SIZE - 1))).astype(np.uint64)).astype(np.int64)
            raw = size + offset
            asz = np.where(align > 0, -(-raw // (align + 1)) * (align + 1), raw)
            tlboff = offset & (IO_TLB_SIZE - 1)
            pad = offset >> IO_TLB_SHIFT
            rest = asz - (low & mam)
            self.msg_size = asz
        else:
            offset = low & mam
            asz = size + offset
            tlboff, pad = offset, np.zeros(n, np.int64)
            rest = size.copy()
            self.msg_size = size
        nslots = (asz + IO_TLB_SIZE - 1) >> IO_TLB_SHIFT
        big = asz >= PAGE_SIZE
        # one row of search constants per (device, alloc_align_mask, big) in the trace
        combo = (dv << 34) | (align << 1) | big          # align_mask <= U32 (checked by replay)
        uniq, m_param = np.unique(combo, return_inverse=True)
        params = np.zeros((max(len(uniq), 1), 7), np.int64)
        for k, c in enumerate(uniq.tolist()):
            d = c >> 34
            p = search_params(pool, int(d_mam[d]), (c >> 1) & U32, bool(c & 1), d_seg[d])
            params[k] = [p[0], p[1], p[2], p[3], p[4], p[5], int(p[6])]
        m_param = m_param.reshape(-1).astype(np.int64)
        zero, cmp = params[m_param, 3], params[m_param, 4]
        has_orig = orig != 0
        obits = np.where(has_orig, (orig >> np.uint64(IO_TLB_SHIFT)).astype(np.int64) & cmp, 0)
        skip = np.where(has_orig, zero | cmp, zero)
        last_byte = orig + (size - 1).astype(np.uint64)
        direct = (last_byte <= reach_u[dv]) & (not mem.force_bounce) if n else np.zeros(0, bool)
        swmap = (align == 0) & (reach_u[dv] != np.uint64(U64)) if n else np.zeros(0, bool)
        alignwarn = (align > PAGE_SIZE - 1) & bool(pool.has_pad)
        nowarn = (cols.attrs & DMA_ATTR_NO_WARN) != 0
        ncpus = int(max(cols.cpu.max(initial=0), cols.u_cpu.max(initial=0))) + 1
        nkeys = nd * ncpus
        u_key = cols.u_dev * ncpus + cols.u_cpu
        k_dev = np.arange(nkeys, dtype=np.int64) // ncpus

        MI = np.empty((n, NMI), np.int64)
        for k, col in ((M_DEV, dv), (M_CPU, cols.cpu), (M_SIZE, size), (M_PARAM, m_param), (M_NSLOTS, nslots),
                       (M_REST, rest), (M_TLBOFF, tlboff), (M_PAD, pad), (M_SKIP, skip), (M_OBITS, obits),
                       (M_DIRECT, direct), (M_SWMAP, swmap), (M_ALIGNWARN, alignwarn), (M_NOWARN, nowarn),
                       (M_LINE, cols.line), (M_ENDLINE, cols.endline), (M_TRACED, cols.traced)):
            MI[:, k] = col
        MF = np.empty((n, NMF))
        MF[:, M_TIME], MF[:, M_END], MF[:, M_LOST] = cols.time, cols.end, cols.lost
        UI = np.empty((nu, NUI), np.int64)
        UI[:, U_DEV], UI[:, U_BLOCK], UI[:, U_ABORTED] = cols.u_dev, cols.u_block, cols.u_aborted
        UI[:, U_LAST], UI[:, U_KEY] = cols.u_last, u_key
        DI = np.zeros((nd, NDI), np.int64)
        DI[:, D_MAM], DI[:, D_REACH] = d_mam, d_reach
        C = np.zeros(NCOUNTERS, np.int64)
        C[TOTAL_USED], C[HIWATER], C[PEAK] = mem.total_used, mem.used_hiwater, self.peak
        C[CTR] = self.ctr
        F = np.zeros(NFLOATS)
        F[NOW] = m.log.now
        P = np.zeros(NPARAMS, np.int64)
        P[P_NAREAS], P[P_AREA_NSLABS] = pool.nareas, pool.area_nslabs
        P[P_ROUND_START], P[P_HAS_PAD], P[P_START] = pool.round_start, pool.has_pad, pool.start
        kind = {"fixed": LT_FIXED, "exp": LT_SAMPLED, "lognormal": LT_SAMPLED, "qd": LT_QD, "real": LT_REAL}
        P[P_LT] = kind[lt.kind]
        P[P_DEPTH] = int(lt.value) if lt.kind == "qd" else 0
        P[P_MAX_RETRIES], P[P_REPEATS] = self.max_retries, self.repeats_needed
        stop = self.stop
        P[P_HAS_STOP] = stop is not None
        P[P_NEED_LIVELOCK] = bool(stop.need_livelock) if stop is not None else 0
        P[P_NREQS] = max(nu, 1)
        P[P_TIMELINE] = self.tl_t is not None
        P[P_AGREE] = self.agreement is not None
        PF = np.zeros(NPFLOATS)
        PF[PF_LIFETIME] = lt.value if lt.kind == "fixed" else 0.0
        PF[PF_RETRY_DELAY] = self.retry_delay
        PF[PF_TARGET] = stop.target if stop is not None and stop.target is not None else -1.0
        if lt.kind in ("exp", "lognormal"):             # one draw per request, in the order
            draw = self.sample                          # the reference draws them
            samples = np.fromiter((draw() for _ in range(nu)), np.float64, nu)
        else:
            samples = np.zeros(1)
        area_index = np.array(pool.area_index, np.int64)
        area_used = np.array(pool.area_used, np.int64)
        area_locks = np.array(pool.area_locks, np.int64)
        logs, locks, sig = _containers()
        cap = max(64, nu)
        values = (C, F, P, PF, pool.list, pool.alloc_size, pool.orig_addr, pool.pad_slots, area_index,
                  area_used, area_locks, params, np.empty(cap), np.empty(cap, np.int64), np.empty(cap, np.int64),
                  np.empty(cap, np.int64), np.empty(cap, np.int64), logs, locks, sig,
                  np.empty(max(64, 2 * n) if self.tl_t is not None else 1),
                  np.empty(max(64, 2 * n) if self.tl_t is not None else 1, np.int64), samples,
                  MI, MF, orig, cols.unit_of, cols.u_ptr, cols.u_members, UI, DI,
                  np.zeros(nu, np.int8), np.zeros(nu, np.int64), np.zeros(nu, np.int64),
                  np.full(nu, -1, np.int64), np.zeros(nu, np.int64),
                  np.full(n, -1, np.int64), np.full(n, NO_HANDLE, np.int64),
                  np.full(nu, -1, np.int64), np.full(nu, -1, np.int64),
                  np.zeros(nkeys, np.int8), np.zeros(nkeys, np.int64), np.full(nkeys, -1, np.int64),
                  np.full(nkeys, -1, np.int64), k_dev,
                  np.zeros(nd, np.int8), np.zeros(nd, np.int64), np.full(nd, -1, np.int64),
                  np.full(nd, -1, np.int64), np.zeros(nd, np.int64), np.full(nu, -1, np.int64))
        S = _new_state(StateTuple(*values))
        V = SimpleNamespace(**dict(zip(STATE_FIELDS, values)))
        step = max(n // 200, 1)
        progress = self.progress
        if progress is None:
            _run_range(S, 0, n)
        else:
            for i0 in range(0, n, step):
                progress(i0, n)
                _run_range(S, i0, min(i0 + step, n))
                if C[STOPPED]:
                    break
        if not C[STOPPED]:
            _drain(S)
        self._write_back(V, _export(S))
        if C[STOPPED]:
            raise StopReplay(float(F[STOP_T]))
        if progress is not None:
            progress(n, n)

    def _write_back(self, S, records) -> None:
        """Put what the compiled loop did where the reference keeps it."""
        C, mem, pool, m = S.C, self.mem, self.mem.defpool, self.m
        lk, lt, li, lv, ki, kt, tl_t, tl_u = records
        for kind, now, i, value in zip(lk.tolist(), lt.tolist(), li.tolist(), lv.tolist()):
            m.log.now = now
            mp = self.maps[i]
            dev = self.devs[mp.dev_name]
            if kind == LOG_FULL:
                mem.warn_full(dev, int(self.msg_size[i]), value)
            elif kind == LOG_OVERFLOW:
                mem.warn_overflow(dev, value, mp.size)
            else:
                mem.warn_align(dev)
        m.log.now = float(S.F[NOW])
        pool.area_index[:] = S.a_index.tolist()
        pool.area_used[:] = S.a_used.tolist()
        pool.area_locks[:] = S.a_locks.tolist()
        pool.slots_examined += int(C[SLOTS_EXAMINED])
        mem.total_used = int(C[TOTAL_USED])
        mem.used_hiwater = int(C[HIWATER])
        mem.bytes_copied += int(C[BYTES_COPIED])
        res = self.res
        res.attempted += int(C[ATTEMPTED])
        res.mapped += int(C[MAPPED])
        res.bounced += int(C[BOUNCED])
        res.failed += int(C[FAILED])
        for cause, k in (("too_big", F_TOO_BIG), ("pool_full", F_POOL_FULL), ("out_of_reach", F_OUT_OF_REACH)):
            res.failures[cause] += int(C[k])
        self.peak = int(C[PEAK])
        self.ctr = int(C[CTR])
        for name, k in (("completed", COMPLETED), ("failed_requests", FAILED_REQ),
                        ("too_big_requests", TOO_BIG_REQ), ("requeued", REQUEUED),
                        ("retry_attempts", RETRIES), ("queued_behind", QUEUED_BEHIND),
                        ("gave_up", GAVE_UP), ("dropped", DROPPED), ("aborted_failed", ABORTED_FAILED),
                        ("live_at_end", LIVE_AT_END), ("lost_unmaps", LOST_UNMAPS),
                        ("not_attempted", NOT_ATTEMPTED)):
            if C[k]:
                self.tally[name] += int(C[k])
        if self.agreement is not None and C[AG_COMPARED]:
            self.agreement["compared"] += int(C[AG_COMPARED])
            self.agreement["same"] += int(C[AG_SAME])
        for (u, i, used, attempts, reps), t in zip(ki.tolist(), kt.tolist()):
            req = self.reqs[u]
            self.livelocks.append(Livelock(self.maps[req.members[0]].line, t, req.dev_name, req.data_bytes,
                                           request_slots(req, self.maps), used, mem.nslabs, attempts,
                                           self.maps[i].size, reps))
        if self.tl_t is not None:
            self.tl_t.frombytes(tl_t.tobytes())
            self.tl_u.frombytes(tl_u.astype(np.int64).tobytes())


def warm() -> float:
    """Compile every function of the compiled engine, or load it from Numba's cache (in
    ``__pycache__`` beside this file), with one small replay; returns the seconds taken.
    ``scripts/setup_and_build.sh`` calls it once before the chapters run in parallel, so that
    they find the cache filled instead of each compiling (half a minute of CPU) at once."""
    import time
    from .read import parse_trace
    from .replay import replay
    from .synthesize import synthesize_trace
    t = time.perf_counter()
    replay(parse_trace(synthesize_trace(64)), "v6.11", "swiotlb=128,force", engine="compiled")
    return time.perf_counter() - t
