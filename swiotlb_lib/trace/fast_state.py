"""The compiled replay engine's state: the indexes of its counter and parameter arrays, its
tables' columns, and the one structure every compiled function receives.

Part of the compiled engine (:mod:`swiotlb_lib.trace.fast`, whose docstring says how the
parts fit together); nothing here models the kernel.
"""
from __future__ import annotations

import pathlib
from collections import namedtuple

import numpy as np

from ..jit import HAVE_NUMBA, drop_stale_cache, jit, jit_inline
from .engine import Engine



def _drop_stale_cache() -> None:
    """Drop the compiled engine's cache (``__pycache__/fast*.nb[ic]``) when one of the files
    its functions inline has changed: every ``fast*.py`` here, the model's
    :mod:`swiotlb_lib.fast_pool` and :mod:`swiotlb_lib.jit`, and the constants compiled in."""
    here = pathlib.Path(__file__).parent
    sources = sorted(here.glob("fast*.py")) + [here.parent / f for f in ("fast_pool.py", "jit.py", "constants.py")]
    drop_stale_cache(here / "__pycache__", "fast*.nb[ic]", sources)


_drop_stale_cache()

if HAVE_NUMBA:                                          # without numba the reference runs
    from numba import njit
    from numba.experimental import structref
    from numba.extending import overload
    from numba import types

# -- counters: indexes into the int64 array ``C`` ---------------------------------------
(ATTEMPTED, MAPPED, BOUNCED, FAILED, F_TOO_BIG, F_POOL_FULL, F_OUT_OF_REACH, F_NO_MEMORY, TOTAL_USED,
 HIWATER, PEAK, BYTES_COPIED, PARTIAL, INFLIGHT, CTR, COMPLETED, FAILED_REQ, TOO_BIG_REQ, REQUEUED, RETRIES,
 QUEUED_BEHIND, GAVE_UP, DROPPED, ABORTED_FAILED, LIVE_AT_END, LOST_UNMAPS, NOT_ATTEMPTED, AG_COMPARED,
 AG_SAME, NLOCKS, NLOCKS_SMALL, STOPPED, NKEYS, NFIFO, SAMPLE, HEAP_N, TL_N,
 # growth by pools (dynamic.Grower): memory, the debugfs counters, the worker, the pools
 PEAK_BYTES, POOL_BYTES, TRANSIENT_BYTES, TRANSIENT_NSLABS, MEM_NSLABS, NPOOLS, PENDING, TR_FREE,
 # dynamic.Grower.costs() counters
 G_POOLS_SEARCHED, G_POOL_AREA_SEARCHES, G_TRANSIENT_POOLS, G_TRANSIENT_ALLOC_FAILED,
 G_TRANSIENT_SEARCH_FAILED, G_WORKER_KICKS, G_WORKER_RUNS, G_WORKER_FAILURES, G_POOLS_ADDED, G_EXAM_FREED,
 # the page allocator's costs (PageAllocator.costs) and its operation log
 PG_ALLOCATIONS, PG_FREES, PG_SPLITS, PG_MERGES, PG_FAILED, PG_WARNINGS, PG_NOPS,
 # RFC v1 as intended (dynamic.RfcDynamic.costs() counters, live buffers; its dyn_bytes are TRANSIENT_BYTES)
 RFC_SKIPPED, RFC_ATTEMPTS, RFC_FAILED, RFC_BUFFERS, RFC_LOOKUPS, RFC_VISITS, RFC_LOCKS, RFC_ERASES, RFC_ZEROED,
 RFC_LIVE,
 # the timeline thinned as it is made (replay's timeline_points): samples per point, samples in the last point
 TL_W, TL_FILL,
 NCOUNTERS) = range(75)
#: the Grower.costs() keys of the G_* counters
GROWER_COSTS = (("pools_searched", G_POOLS_SEARCHED), ("pool_area_searches", G_POOL_AREA_SEARCHES),
                ("transient_pools", G_TRANSIENT_POOLS), ("transient_alloc_failed", G_TRANSIENT_ALLOC_FAILED),
                ("transient_search_failed", G_TRANSIENT_SEARCH_FAILED), ("worker_kicks", G_WORKER_KICKS),
                ("worker_runs", G_WORKER_RUNS), ("worker_failures", G_WORKER_FAILURES),
                ("pools_added", G_POOLS_ADDED), ("slots_examined_freed_pools", G_EXAM_FREED))
#: the PageAllocator.costs keys of the PG_* counters
PAGE_COSTS = (("allocations", PG_ALLOCATIONS), ("frees", PG_FREES), ("splits", PG_SPLITS),
              ("merges", PG_MERGES), ("failed", PG_FAILED), ("alloc_warnings", PG_WARNINGS))
#: the RfcDynamic.costs() keys of the RFC_* counters (a buffer is one tree store)
RFC_COSTS = (("dyn_skipped", RFC_SKIPPED), ("dyn_attempts", RFC_ATTEMPTS), ("dyn_failed", RFC_FAILED),
             ("zeroed_bytes", RFC_ZEROED), ("tree_stores", RFC_BUFFERS), ("tree_node_visits", RFC_VISITS),
             ("dyn_lock_acquisitions", RFC_LOCKS), ("dyn_buffers", RFC_BUFFERS), ("tree_lookups", RFC_LOOKUPS),
             ("tree_erases", RFC_ERASES))
# floats: ``F``
NOW, STOP_T, KICKED_AT, NFLOATS = range(4)
# parameters: ``P`` (int64) and ``PF`` (float64)
(P_LT, P_DEPTH, P_MAX_RETRIES, P_REPEATS, P_HAS_STOP, P_NEED_LIVELOCK, P_NREQS, P_TIMELINE, P_AGREE,
 P_ROUND_START, P_HAS_PAD, P_TAIL_CAP, P_DYN, P_V611, P_CAN_GROW, P_HAS_DELAY, P_DEF_NSLABS, P_DEF_NAREAS,
 P_W_ZL, P_W_LIMIT, P_W_GFP, P_BOOT_BYTES, P_RFC, P_RFC_GFP_NOWAIT, P_RFC_GFP_SLEEP, P_WMASK, P_TL_CAP,
 P_LOG_OPS, P_RELN, P_OLDEST, NPARAMS) = range(31)
PF_LIFETIME, PF_RETRY_DELAY, PF_TARGET, PF_WORKER_DELAY, NPFLOATS = range(5)
# (P_RFC: RfcDynamic.allow_dyn; P_RFC_GFP_NOWAIT and P_RFC_GFP_SLEEP = P_RFC_GFP_NOWAIT + 1: the
# GFP_*_BIT flags of a buffer's gfp without and with DMA_ATTR_MAY_SLEEP; M_RFC: fast_rfc.rfc_field;
# D_RFC_N: the device's buffers, counted in dyn_zone_<its zone>)
# columns of the per-mapping tables MI (int32, read through mi() or mr()) and MF (float64, at
# the mapping's row()), the per-request table UI and the per-device table DI: one table per
# kind, read through one field of the state.  The traced bounce address, a physical address,
# is the int64 field m_traced.  MI, MF and the per-mapping results tlb_of, handle_of and pool_of are a window of
# rows, a ring: mapping i is row i & P[P_WMASK] (row()), and fast.Window has fast_rows.fill_rows
# make the rows of the next mappings as the replay reaches them (fast_loop.ring_busy, ring_grow).
# A mapping whose row is still in use when the ring comes round again may instead be moved to a
# relocated row after the ring's (fast_loop.make_room): the ring holds the rows of mappings
# P[P_OLDEST] on, rel_id[:P[P_RELN]] are the relocated mappings, ascending, in rows
# P[P_WMASK] + 1 on.
(M_DEV, M_CPU, M_SIZE, M_PARAM, M_NSLOTS, M_REST, M_TLBOFF, M_PAD, M_SKIP, M_OBITS, M_DIRECT,
 M_SWMAP, M_ALIGNWARN, M_NOWARN, M_LINE, M_ENDLINE, M_ASIZE, M_RFC, NMI) = range(19)
#: The largest value an ``MI`` field may hold (``fast.fits_mi`` checks a trace against it).
MI_MAX = (1 << 31) - 1
(M_TIME, M_END, M_LOST, NMF) = range(4)
(U_DEV, U_BLOCK, U_ABORTED, U_LAST, U_KEY, NUI) = range(6)
(D_MAM, D_REACH, D_WARN_ALIGN, D_WARN_OVERFLOW, D_ZL, D_LIMIT, D_GFP, D_USES, D_RFC_N, NDI) = range(10)
# the search constants of one kind of request (device, alloc_align_mask, big), table ``params``:
# the pool-independent ones of pool.search_params, and the device's segment boundary
(Q_BMASK, Q_MAX_SLOTS, Q_ZERO, Q_CMP, Q_STRIDE, NQ) = range(6)
# the pools, table ``pp`` (one row per pool in creation order; ``mem.pools`` is newest first)
(PP_START, PP_NSLABS, PP_NAREAS, PP_ANSLABS, PP_OFF, PP_AOFF, PP_ORDER, PP_ZONE, NPP) = range(9)
# a pool's search constants per kind of request, table ``ps`` [pool, kind]: shift, unbounded
# the live transient pools, table ``tr``
(TR_PADDR, TR_ORDER, TR_NSLABS, TR_EXAM, TR_ZONE, TR_NEXT, TR_MAP, TR_SEQ, NTR) = range(9)
# the page allocator's zones, table ``pg_z``
(Z_START, Z_END, Z_NR_FREE, Z_WMARK, Z_NEXT, NZ) = range(6)
# gfp flags the compiled allocator tests (bits of D_GFP / P_W_GFP)
GFP_HIGH_BIT, GFP_DIRECT_BIT, GFP_NOWARN_BIT = 1, 2, 4
# the page allocator's operation log, table ``pg_ops``: kind, pfn (or -1), order, device (or -1)
OP_TRANSIENT, OP_FREE, OP_WORKER = range(3)
# lifetime kinds
LT_FIXED, LT_SAMPLED, LT_QD, LT_REAL = range(4)
# event kinds (as Engine), unit states (as Engine), log records
COMPLETE_UNIT, COMPLETE_MAPPING, RUN = Engine.COMPLETE_UNIT, Engine.COMPLETE_MAPPING, Engine.RUN
IDLE, LIVE, QUEUED, DONE = Engine.IDLE, Engine.LIVE, Engine.QUEUED, Engine.DONE
LOG_FULL, LOG_OVERFLOW, LOG_ALIGN, LOG_WORKER = range(4)
# map results below -1: the failure causes
R_POOL_FULL, R_TOO_BIG, R_OUT_OF_REACH, R_NO_MEMORY = -2, -3, -4, -5
NO_HANDLE = -(1 << 62)


#: The compiled loop's state: counters and parameters, the pools' arrays (concatenated), the
#: trace's and the requests' columns, the engine's mutable per-request, per-mapping and
#: per-queue arrays, and the page allocator's free lists.
STATE_FIELDS = ((
    "C F P PF p_list p_asize p_orig p_pad a_index a_used a_locks pp pp_exam ps params q_bnd "
    "tr t_list t_asize t_area pool_of "
    "pg_z pg_free pg_heap pg_hn pg_es pg_ee zl pg_ops pg_orders "
    "h_t h_p h_c h_k h_x logs locks sig tl_t tl_u samples MI MF m_orig m_traced unit_of u_ptr u_members UI DI "
    "state attempts left nh sig_gen tlb_of handle_of rel_id q_next q_prev "
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
    #: a log record: kind, time, mapping, value, pool slots (``mem.nslabs``) then
    LOG_ITEM = types.Tuple((types.int64, types.float64, types.int64, types.int64, types.int64))
    LOCK_ITEM = types.Tuple((types.int64, types.int64, types.float64, types.int64, types.int64, types.int64,
                             types.int64))
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

    @njit(cache=True, nogil=True, error_model="numpy")
    def new_state(nt):
        """The :class:`State` of a :data:`StateTuple` (compiled once, cached)."""
        return _struct_of(nt)


def _typed(sig):
    """A compiled identity function with the one signature ``sig``, or identity without numba."""
    def ident(x):
        return x
    return njit(sig, cache=True, nogil=True)(ident) if HAVE_NUMBA else ident


@jit
def relocated_row(S, i):
    """The relocated row of mapping ``i`` (``fast_loop.make_room``): after the ring's rows, in
    the order of ``rel_id`` (ascending, so found by bisection)."""
    lo = 0
    hi = S.P[P_RELN]
    while lo < hi:
        mid = (lo + hi) >> 1
        if S.rel_id[mid] < i:
            lo = mid + 1
        else:
            hi = mid
    return S.P[P_WMASK] + 1 + lo


@jit_inline
def row(S, i):
    """The row of mapping ``i`` in the per-mapping window (``MI``, ``MF``, ``tlb_of``,
    ``handle_of``, ``pool_of``): ``i`` modulo the window's size, a power of two, unless the
    ring has moved past ``i`` and its row was relocated (:func:`relocated_row`)."""
    if i >= S.P[P_OLDEST]:
        return i & S.P[P_WMASK]
    return relocated_row(S, i)


@jit_inline
def mr(S, r, k):
    """Field ``k`` of row ``r`` (:func:`row`) of the table ``MI`` as an ``int64``: the table is
    ``int32`` (half the memory of its rows), and a plain ``int64`` everywhere keeps Numba from
    compiling a second copy of each function that takes the value.  A function that reads
    several fields of one mapping finds its row once (the window changes only between calls
    of the compiled loop)."""
    return np.int64(S.MI[r, k])


@jit_inline
def mi(S, i, k):
    """Field ``k`` of mapping ``i`` in the table ``MI`` (:func:`mr` of its :func:`row`)."""
    return mr(S, row(S, i), k)


#: ``var(x)``, ``flag(x)``: the constant ``x`` as a plain ``int64`` / ``boolean``.  A constant
#: passed straight to a compiled function has a literal type, and Numba compiles a copy of the
#: function (and of everything it calls) for each literal: ``_push`` had four.  A function with
#: one explicit signature returns the plain type; an identity compiled without one would
#: return the literal type again.
var = _typed("int64(int64)")
flag = _typed("boolean(boolean)")


@jit
def grown(a, rows, cols):
    """A copy of the 2-D array ``a`` in a zeroed ``rows`` x ``cols`` array (a loop: numpy's
    slice assignment compiles its broadcasting checks into every caller)."""
    out = np.zeros((rows, cols), a.dtype)
    for r in range(a.shape[0]):
        for c in range(a.shape[1]):
            out[r, c] = a[r, c]
    return out
