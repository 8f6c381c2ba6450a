"""The compiled replay engine: :class:`~swiotlb_lib.trace.engine.Engine` compiled by Numba,
for a pool that does not grow, for the merged dynamic design (``CONFIG_SWIOTLB_DYNAMIC``,
the ``v6.6-dynamic`` and ``v6.11-dynamic`` profiles) and for RFC v1 as intended (``rfc-v1``).

This module and its parts are the fast twin of readable references, and the one duplication
of rules the project accepts (issue "Sizing at production scale"): the slot search and
release of :mod:`swiotlb_lib.pool` (``swiotlb_search_pool_area``, ``swiotlb_release_slots``,
``kernel/dma/swiotlb.c`` v6.3-rc to v6.11) in :mod:`~swiotlb_lib.fast_pool`; the map
and unmap paths over a list of pools with growth by pools (:class:`swiotlb_lib.dynamic.Grower`)
in :mod:`~swiotlb_lib.trace.fast_dynamic`; RFC v1's buffer per mapping
(:class:`swiotlb_lib.dynamic.RfcDynamic`, as intended) in :mod:`~swiotlb_lib.trace.fast_rfc`; the
part of the buddy allocator (:mod:`swiotlb_lib.page_alloc`) that growth and RFC v1 use in
:mod:`~swiotlb_lib.trace.fast_pages`; the
replay loop of :class:`~swiotlb_lib.trace.engine.Engine` (blk-mq requeue and reruns,
lifetimes, livelock detection, the advisor's early stop) in :mod:`~swiotlb_lib.trace.fast_loop`;
the per-mapping rows in :mod:`~swiotlb_lib.trace.fast_rows`; the state they share in
:mod:`~swiotlb_lib.trace.fast_state`.  The chapters teach from the
references; these files only run them faster.  ``tests/test_trace_fast.py`` and
``tests/test_trace_fast_dynamic.py`` run both on thousands of random traces per profile and on
every recorded trace and oracle vector, and they must agree on every slot, failure, counter,
timeline point and log line (and, for the growing profiles, on the pools and the page
allocator's free lists after the run).

How it works.  :class:`CompiledEngine` is an :class:`Engine` whose :meth:`~CompiledEngine.run`
turns the trace, the requests, the booted pool (and, for a growing profile, the page
allocator's free lists) into flat arrays (:func:`~swiotlb_lib.trace.columns.columns`), runs the
compiled loop on them, and writes back what the reference keeps, where it keeps it, so
:meth:`Engine.finish` and :func:`~swiotlb_lib.trace.replay.replay` read the same fields.  A
static pool is worked on in place; a growing profile's pools sit in one array per field
(``pool.list``, ``alloc_size``, ...), the boot pool first, and the worker's pools become
:class:`~swiotlb_lib.pool.IoTlbPool` objects at the end, added to ``mem.pools`` in the order
the worker added them.  What the compiled loop cannot do itself it records and the Python
side replays afterwards, in order: the kernel log lines (``swiotlb buffer is full`` through
the same rate limit with the pool size of the moment, the once-only warnings, the worker's
failure) and the livelocks.  Per-mapping quantities that depend only on the mapping, the
device and the profile (the allocation size with its sub-slot offset and padding, the
alignment test's bits, whether dma-direct would bounce at all) are made just before the
loop reaches each mapping (:mod:`~swiotlb_lib.trace.fast_rows`), into a window of rows that
holds the mappings in flight, not the whole trace (:class:`Window`); the search constants
of each kind of request come from the readable :func:`swiotlb_lib.pool.search_params`, once
per trace and profile.  A long replay's timeline can be thinned as it is made
(``timeline_points`` of :func:`~swiotlb_lib.trace.replay.replay`).

The page allocator, for the growing profiles: design (a) of the issue, a compiled twin of
``alloc_pages``/``free_pages`` on arrays built from the allocator's public state
(``free_lists()``, ``stats()``, ``zonelist()``) and written back through its public methods
(:mod:`~swiotlb_lib.trace.fast_pages` says how).  Chosen over returning to Python for every
transient pool (design (b)) because one transient pool through the Python allocator
(``alloc_pages`` + ``free_pages``) costs about 25 us, as much as a dozen mappings of the
compiled loop (2 us each, ``benchmarks/replay.py --kernel v6.6-dynamic``), so a replay whose
small pool sends many mappings to transient pools would run at the Python allocator's speed.

Like the static engine, the compiled one does not keep a ``BounceBuffer`` per live mapping in
``mem.live`` (nothing a replay reports reads it).

Numba keeps the compiled code in ``__pycache__`` beside these files and checks only the
file of each function, so a function that calls into another file would not be recompiled
when only that file changes; :mod:`~swiotlb_lib.trace.fast_state` keeps a digest of all the
``fast*.py`` files there and drops the cache when it changes.

:func:`supported` says when the compiled engine applies: a profile without run-time growth or
with :class:`~swiotlb_lib.dynamic.Grower`'s or RFC v1's as intended (within the limits
:func:`~swiotlb_lib.trace.fast_rfc.unsupported` and ``unsupported_trace`` state), one boot pool
not grown yet, no probe registered on :data:`~swiotlb_lib.debug.SEARCH_AREA`,
:data:`~swiotlb_lib.debug.POOL_ADDED` or :data:`~swiotlb_lib.debug.REPLAY_MAP_FAILED`, no
``swiotlb_bounced`` recording, no memory encryption (its once-only message; a confidential
guest's transient pools come from the atomic pools), no pagecache for the worker to reclaim,
and an early stop that is a :class:`~swiotlb_lib.trace.engine.StopRule` (or none).  Otherwise
the reference runs.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..constants import IO_TLB_SHIFT, IO_TLB_SIZE, U32, U64
from ..debug import POOL_ADDED, REPLAY_MAP_FAILED, SEARCH_AREA
from ..dynamic import Grower
from ..fast_pool import release_slots, search_area     # the oracle test's entry points
from ..pool import SPARE_SLOTS, IoTlbPool, search_params, search_pool_area
from . import fast_pages, fast_rfc
from .columns import columns
from .engine import Engine, Livelock, StopReplay, StopRule
from .fast_state import (ABORTED_FAILED, AG_COMPARED, AG_SAME, ATTEMPTED, BOUNCED, BYTES_COPIED, COMPLETED, CTR,
                         D_GFP, D_LIMIT, D_MAM, D_REACH, D_USES, D_ZL, DROPPED, F_NO_MEMORY, F_OUT_OF_REACH,
                         F_POOL_FULL, F_TOO_BIG, FAILED, FAILED_REQ, GAVE_UP, GROWER_COSTS, HAVE_NUMBA, HIWATER,
                         KICKED_AT, LIVE_AT_END, LOG_FULL, LOG_OVERFLOW, LOG_WORKER, LOST_UNMAPS, LT_FIXED, LT_QD,
                         LT_REAL, LT_SAMPLED, MAPPED, MEM_NSLABS, MI_MAX, NCOUNTERS, NDI, NFLOATS, NMF, NMI,
                         NO_HANDLE, NOT_ATTEMPTED, NOW, NPARAMS, NPFLOATS, NPOOLS, NPP, NQ, NTR, NUI, PAGE_COSTS,
                         PEAK, PEAK_BYTES, PENDING, P_AGREE, P_BOOT_BYTES, P_CAN_GROW, P_DEF_NAREAS, P_DEF_NSLABS,
                         P_DEPTH, P_DYN, P_HAS_DELAY, P_HAS_PAD, P_HAS_STOP, P_LOG_OPS, P_LT, P_MAX_RETRIES,
                         P_NEED_LIVELOCK, P_NREQS, P_REPEATS, P_RFC, P_ROUND_START, P_TAIL_CAP, P_TIMELINE,
                         P_TL_CAP, P_V611, P_W_GFP, P_W_LIMIT, P_W_ZL, P_WMASK, PF_LIFETIME, PF_RETRY_DELAY,
                         PF_TARGET, PF_WORKER_DELAY, POOL_BYTES, PP_ANSLABS, PP_AOFF, PP_NAREAS, PP_NSLABS, PP_OFF,
                         PP_ORDER, PP_START, Q_BMASK, Q_CMP, Q_MAX_SLOTS, Q_STRIDE, Q_ZERO, QUEUED_BEHIND, REQUEUED,
                         RETRIES, RFC_LIVE, STOP_T, STOPPED, TL_W, TOO_BIG_REQ, TOTAL_USED, TR_FREE, TR_MAP,
                         TR_NEXT, TR_NSLABS, TR_ORDER, TR_PADDR, TR_SEQ, TRANSIENT_BYTES, TRANSIENT_NSLABS,
                         U_ABORTED, U_BLOCK, U_DEV, U_KEY, U_LAST)
from .requests import request_slots

if HAVE_NUMBA:
    from .fast_dynamic import TR_LIVE, export_pools
    from .fast_loop import containers, drain, export, make_room, ring_busy, ring_grow, ring_pool_of, run_range
    from .fast_rows import alloc_of, fill_rows, kinds, one
    from .fast_state import StateTuple, new_state

__all__ = ["CompiledEngine", "supported", "worth_it", "warm", "AUTO_MIN_MAPPINGS", "NCOUNTERS", "search_area",
           "release_slots"]

#: The shortest trace (in mappings) that ``replay(engine="auto")`` runs on the compiled engine
#: when this process has not loaded it yet.  Loading it from Numba's cache takes about 3 s
#: (compiling it, the first time after an install or a change to ``fast*.py``, about 70-85 s
#: of CPU), and the readable engine replays 20 000-30 000 mappings a second, so below this a
#: replay is over before the compiled engine would be loaded (measured on the 2-core
#: machine; every trace under ``data/`` has fewer than 10 000 mappings).
AUTO_MIN_MAPPINGS = 50_000


#: Rows of the per-mapping window made at a time (at most half the window).
MI_BLOCK = 1 << 15
#: Mappings whose kinds of request are found at a time (a temporary array of 8 bytes each).
KIND_BLOCK = 1 << 18
#: Mappings replayed per call of the compiled loop (the window is filled ahead of each call).
RING_FILL = 1 << 14
#: The per-mapping window's size when the trace is longer (rows, a power of two; 64 Ki rows of
#: ``MI``, ``MF`` and the results are 7.5 MiB).  It doubles when a replay needs more.
RING_START = 1 << 16
#: :class:`Window` moves the rows still in use of the oldest mappings (a few long-lived ones)
#: to relocated rows while those are at most one in this many of the window's rows, else it
#: doubles
RELOCATE_SHARE = 8


def is_rfc(mem) -> bool:
    """Whether ``mem`` grows by RFC v1's buffer per mapping (:mod:`~swiotlb_lib.trace.fast_rfc`)
    rather than not at all or by pools (:class:`~swiotlb_lib.dynamic.Grower`)."""
    return mem.dyn is not None and type(mem.dyn) is not Grower


def _narrow(a: np.ndarray) -> np.ndarray:
    """A small-integer column (CPU, device) as the row functions take it: its own narrow array,
    int64 only when the trace gave it as Python ints."""
    return a.astype(np.int64) if a.dtype == object else a


def ring_size(n: int, start: int = RING_START) -> int:
    """The first size of the per-mapping window for a trace of ``n`` mappings: the power of two
    at or above ``n`` up to ``start`` (a power of two; a short trace has a row for every mapping)."""
    return min(1 << max(n - 1, 1).bit_length(), start)



def fits_mi(cols) -> bool:
    """Whether every value of the per-mapping table ``MI`` fits its ``int32`` fields
    (:data:`~swiotlb_lib.trace.fast_state.MI_MAX`): the sizes with their offset, padding and
    alignment rounding, and the trace's line numbers.  The allocation size is at most the
    mapping size plus twice ``alloc_align_mask | 2047`` (the sub-slot offset, then the rounding
    up to the alignment).  A trace beyond that (a mapping over 2 GiB, a mask of 2**31 or more,
    more than two billion lines) is replayed by the reference.  The other fields are small by
    construction (a device's index, a kind of request, flags, the alignment test's bits of a
    mask of at most 32 bits), except the CPU number, which the engine only uses by its low
    bits (modulo the number of areas), which an ``int32`` keeps."""
    if not len(cols.size):
        return True
    worst = int(cols.size.max()) + 2 * (int(cols.align.max()) | (IO_TLB_SIZE - 1)) + 1
    return worst <= MI_MAX and max(int(cols.line.max()), int(cols.endline.max())) <= MI_MAX


def worth_it(trace) -> bool:
    """Whether ``replay(engine="auto")`` should run ``trace`` on the compiled engine: it is long
    (:data:`AUTO_MIN_MAPPINGS`) or the engine is already loaded in this process.  The two
    engines give the same results, so this only decides which is faster."""
    if not HAVE_NUMBA:
        return False
    return len(trace.mappings) >= AUTO_MIN_MAPPINGS or bool(run_range.signatures)


def supported(eng) -> str | None:
    """Why the compiled engine cannot run replay ``eng`` (an :class:`Engine`), or None if it can."""
    mem = eng.mem
    if not HAVE_NUMBA:
        return "numba is not installed"
    if type(eng) is not CompiledEngine:
        return f"{type(eng).__name__} is not the plain replay engine"
    dyn = mem.dyn
    if is_rfc(mem):
        why = fast_rfc.unsupported(dyn)
        if why is not None:
            return why
    if mem.defpool is None or not mem.nslabs or len(mem.pools) != 1:
        return "no single boot pool"
    if SEARCH_AREA.probes or REPLAY_MAP_FAILED.probes or POOL_ADDED.probes:
        return "a probe is registered"
    if mem.trace_enabled:
        return "swiotlb_bounced events are being recorded"
    if mem.cc_mem_encrypt:
        return "memory encryption is active (its once-only message)"
    if eng.stop is not None and not isinstance(eng.stop, StopRule):
        return "the early stop is not a StopRule"
    if type(dyn) is Grower:
        if dyn.only_pool is not None or dyn.transient_at is not None:
            return "the pools follow a recording"
        if mem.transient_nslabs:
            return "transient pools are live"
        return fast_pages.unsupported(dyn.pages)
    return None


class Window:
    """The compiled loop's per-mapping rows (``MI``, ``MF``, ``tlb_of``, ``handle_of``,
    ``pool_of``) as a window over the trace: mapping ``i`` has row ``i`` modulo the window's
    size (:func:`~swiotlb_lib.trace.fast_state.row`), and :meth:`fill` makes the rows of the
    next mappings as the replay reaches them, over the rows of mappings the loop is done with.
    So a replay holds rows for the mappings in flight, not for the whole trace (at ten million
    mappings the whole tables took 1.2 GB per replay).  The window starts at
    :func:`ring_size` rows.  A row it would reuse may still be in use
    (:func:`~swiotlb_lib.trace.fast_loop.ring_busy`: a request not done, a recorded unmap to
    come): a few such rows move to relocated rows after the ring's
    (:func:`~swiotlb_lib.trace.fast_loop.make_room`), so that a mapping that lives long (a
    ``real`` lifetime whose recorded unmap comes far later, a request stuck in its queue) costs
    one row, not a window spanning every mapping from it on (at ten million mappings up to 16
    Mi rows, 2 GB); when more than one in :data:`RELOCATE_SHARE` of the window's rows would be
    relocated, the window doubles instead.  Either way a row still in use is never lost, so the
    answers do not depend on the window.  The one thing the write-back reads from rows of done
    mappings, RFC v1's buffers still live (never unmapped in the trace), is kept aside as their
    rows are reused; RFC v1's replays double the window rather than relocate."""

    def __init__(self, S, make_rows, w: int, rfc: bool) -> None:
        self.S, self.make_rows, self.w, self.rfc = S, make_rows, w, rfc
        self.filled = self.reused = self.relocated = 0
        self.kept: list = []                            # (mappings, pool_of) of live RFC buffers

    def fill(self, hi: int, reached: int) -> None:
        """Make the rows of mappings up to ``hi``, at most :data:`MI_BLOCK` and half the window
        at a time (:func:`~swiotlb_lib.trace.fast_rows.fill_rows`); the loop has reached mapping
        ``reached`` (it reads the row of each mapping it reaches, whatever its request's state,
        so the rows from there on are never reused).  Rows still in use move to relocated rows
        while those in use are at most one in :data:`RELOCATE_SHARE` of the window's
        (:func:`~swiotlb_lib.trace.fast_loop.make_room`; not for RFC v1, whose write-back reads
        done rows, see :meth:`_keep`), else the window doubles."""
        S = self.S
        while self.filled < hi:
            b = self.filled
            e = min(b + MI_BLOCK, b + self.w // 2, hi)
            # rows b..e-1 are those of mappings b-w..e-w-1 now
            while e - self.w > 0:
                lo, top = max(b - self.w, 0), e - self.w
                if top <= reached:
                    if self.rfc:
                        moved = -1 if ring_busy(S, lo, top) else 0
                    else:
                        moved = make_room(S, lo, top, b, RELOCATE_SHARE)
                    if moved >= 0:
                        self.relocated += moved
                        break
                ring_grow(S, lo, b)
                self.w *= 2
            if self.rfc and e - self.w > 0:
                self._keep(max(b - self.w, 0), e - self.w)
            self.make_rows(b, e)
            self.reused += max(min(e - self.w, e - b), 0)
            self.filled = e

    def _keep(self, lo: int, hi: int) -> None:
        po = ring_pool_of(self.S, lo, hi)
        live = (po >= fast_rfc.RFC_BASE) & (po < fast_rfc.RFC_CUT)
        if live.any():
            self.kept.append((np.flatnonzero(live) + lo, po[live]))

    def rfc_live(self) -> tuple:
        """The mappings whose RFC v1 buffer is live at the end, ascending, and their ``pool_of``."""
        self._keep(max(self.filled - self.w, 0), self.filled)
        kept, self.kept = self.kept, []
        if not kept:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate([k[0] for k in kept]), np.concatenate([k[1] for k in kept])


class CompiledEngine(Engine):
    """:class:`Engine` with :meth:`run` compiled (see the module docstring); the same results.

    ``cache`` (a dict, or None) keeps the trace's :class:`Columns` between replays of one
    prepared trace (:class:`~swiotlb_lib.trace.replay.PreparedTrace`)."""

    #: refuse to fall back to the reference (``engine="compiled"`` of replay())
    strict = False
    #: the per-mapping window's first size (rows, a power of two of at least 2; see :class:`Window`)
    window = RING_START
    #: the :class:`Window` of the last run (its size ``w`` at the end, rows ``reused``, rows
    #: ``relocated``)
    ring = None

    def run(self) -> None:
        why = supported(self)
        if why is not None:
            self.fallback = why
            return super().run()
        self.fallback = None
        cols = columns(self.trace, self.reqs, self.lt.kind == "real" and self.INFER_LOST, self.cache)
        why = None if cols.ordered else "a request's mappings are not in trace order"
        if why is None:
            key = ("fits_mi", id(cols))                 # once per prepared trace
            fits = self.cache.get(key) if self.cache is not None else None
            if fits is None:
                fits = fits_mi(cols)
                if self.cache is not None:
                    self.cache[key] = fits
            if not fits:
                why = "a mapping's size, alignment or line number does not fit the 32-bit table MI"
        self._devs = [self.devs[d] for d in cols.dev_names]        # in the columns' order
        if why is None and is_rfc(self.mem):
            why = fast_rfc.unsupported_trace(self.mem.dyn, cols, self._devs)
        if why is not None:
            self.fallback = why
            if self.strict:
                raise ValueError(f"engine: the compiled engine cannot run this replay: {self.fallback}")
            return super().run()
        S, V, n = self._state(cols)
        C, F = V.C, V.F
        step = max(n // 200, 1)
        progress, report = self.progress, 0
        i0 = 0
        unit_of, u_last = cols.unit_of, cols.u_last
        while i0 < n:                                   # at most half the window at a time
            i1 = min(i0 + min(RING_FILL, self.ring.w // 2), n)
            # a request dispatched again from its queue maps all its mappings, also those the
            # trace has not reached: the rows up to the last mapping of every request begun
            self.ring.fill(max(i1, int(u_last[unit_of[i0:i1]].max()) + 1), i0)
            if progress is not None and i0 >= report:
                progress(i0, n)
                report = i0 + step
            run_range(S, i0, i1)
            if C[STOPPED]:
                break
            i0 = i1
        if not C[STOPPED]:
            drain(S)
        self._write_back(V, export(S), export_pools(S))
        self.ring.S = self.ring.make_rows = None        # keep the window's figures, not the state
        if C[STOPPED]:
            raise StopReplay(float(F[STOP_T]))
        if progress is not None:
            progress(n, n)

    # -- the state ----------------------------------------------------------------------
    def _kinds(self, cols, devs, d_mam, reach_u, pool):
        """The kinds of request of the trace's mappings (``(device << 34) | (alloc_align_mask
        << 1) | big``, ascending), their search constants (``params``, one row per kind) and
        segment boundaries, and the (device, alloc_align_mask, big) of each.  None of it depends
        on the pool's place or size, so the last one made is kept in ``self.cache`` for the next
        replay of the trace with the same profile, devices and force (the advisor's replays of
        one profile at several sizes); only the pool's own constants (``ps0``: shift, unbounded)
        are made again."""
        mem = self.mem
        key = (id(cols), pool.has_pad, mem.profile.align_rule, mem.force_bounce, is_rfc(mem),
               tuple((d.min_align_mask, d.reach, d.seg_boundary) for d in devs))
        hit = self.cache.get("kinds") if self.cache is not None else None
        if hit is not None and hit[0] == key:
            uniq, params, q_bnd, combos = hit[1]
        else:
            n = len(cols.time)
            dev, align = _narrow(cols.dev), one(cols.align)
            block = np.empty(KIND_BLOCK, np.int64)
            parts = [np.zeros(0, np.int64)]
            for b in range(0, n, KIND_BLOCK):
                out = block[:min(KIND_BLOCK, n - b)]
                kinds(out, b, dev, cols.orig, cols.size, align, d_mam, pool.has_pad)
                parts.append(np.unique(out))
            uniq = np.unique(np.concatenate(parts))
            nq = max(len(uniq), 1)
            params = np.zeros((nq, NQ), np.int64)
            q_bnd = np.full(nq, U64, np.uint64)
            combos = []
            for k, c in enumerate(uniq.tolist()):
                d = c >> 34
                bnd = devs[d].seg_boundary
                combos.append((d, (c >> 1) & U32, bool(c & 1)))
                p = search_params(pool, int(d_mam[d]), (c >> 1) & U32, bool(c & 1), bnd)
                params[k, Q_BMASK], params[k, Q_MAX_SLOTS], params[k, Q_ZERO] = p[1], p[2], p[3]
                params[k, Q_CMP], params[k, Q_STRIDE] = p[4], p[5]
                q_bnd[k] = bnd
            if self.cache is not None:
                self.cache["kinds"] = (key, (uniq, params, q_bnd, combos))
        ps0 = np.zeros((len(params), 2), np.int64)
        for k, (d, align, big) in enumerate(combos):
            p = search_params(pool, int(d_mam[d]), align, big, int(q_bnd[k]))
            ps0[k] = p[0], int(p[6])
        return uniq, params, ps0, q_bnd

    def _state(self, cols):
        """The compiled loop's :class:`State` and its fields as a namespace, and the mappings."""
        m, mem, pool, lt = self.m, self.mem, self.mem.defpool, self.lt
        dyn = mem.dyn
        n, nu = len(cols.time), len(cols.u_ptr) - 1
        devs = self._devs
        nd = max(len(devs), 1)
        d_mam = np.array([d.min_align_mask for d in devs] or [0], np.int64)
        reach_u = np.array([d.reach for d in devs] or [U64], np.uint64)
        d_reach = np.array([min(d.reach, (1 << 63) - 1) for d in devs] or [0], np.int64)
        uniq, params, ps0, q_bnd = self._kinds(cols, devs, d_mam, reach_u, pool)
        ncpus = int(max(cols.cpu.max(initial=0), cols.u_cpu.max(initial=0))) + 1
        nkeys = nd * ncpus
        u_key = cols.u_dev * ncpus + cols.u_cpu
        k_dev = np.arange(nkeys, dtype=np.int64) // ncpus
        UI = np.empty((nu, NUI), np.int64)
        UI[:, U_DEV], UI[:, U_BLOCK], UI[:, U_ABORTED] = cols.u_dev, cols.u_block, cols.u_aborted
        UI[:, U_LAST], UI[:, U_KEY] = cols.u_last, u_key
        DI = np.zeros((nd, NDI), np.int64)
        DI[:, D_MAM], DI[:, D_REACH] = d_mam, d_reach
        C = np.zeros(NCOUNTERS, np.int64)
        C[TOTAL_USED], C[HIWATER], C[PEAK] = mem.total_used, mem.used_hiwater, self.peak
        C[CTR] = self.ctr
        C[NPOOLS], C[MEM_NSLABS], C[PEAK_BYTES] = 1, mem.nslabs, self.peak_bytes
        F = np.zeros(NFLOATS)
        F[NOW] = m.log.now
        P = np.zeros(NPARAMS, np.int64)
        P[P_ROUND_START], P[P_HAS_PAD], P[P_TAIL_CAP] = pool.round_start, pool.has_pad, mem.profile.tail_cap
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
        w = ring_size(n, self.window)
        cap = min(self.timeline_points or 0, 1 << 60)        # 2 * cap fits an int64; no timeline is longer
        P[P_TL_CAP] = cap
        P[P_LOG_OPS] = self.machine_after
        C[TL_W] = 1
        # up to two points per mapping, or twice the cap (then thinned in place)
        tl_rows = (min(max(64, 2 * n), 2 * cap) if cap else max(64, 2 * n)) if self.tl_t is not None else 1
        P[P_WMASK] = w - 1
        PF = np.zeros(NPFLOATS)
        PF[PF_LIFETIME] = lt.value if lt.kind == "fixed" else 0.0
        PF[PF_RETRY_DELAY] = self.retry_delay
        PF[PF_TARGET] = stop.target if stop is not None and stop.target is not None else -1.0
        if lt.kind in ("exp", "lognormal"):             # one draw per request, in the order
            draw = self.sample                          # the reference draws them
            samples = np.fromiter((draw() for _ in range(nu)), np.float64, nu)
        else:
            samples = np.zeros(1)
        pp = np.zeros((4 if dyn is not None else 1, NPP), np.int64)
        pp[0, PP_START], pp[0, PP_NSLABS], pp[0, PP_NAREAS] = pool.start, pool.nslabs, pool.nareas
        pp[0, PP_ANSLABS], pp[0, PP_ORDER] = pool.area_nslabs, -1
        ps = np.zeros((len(pp), len(params), 2), np.int64)
        ps[0] = ps0
        slots = (pool.list, pool.alloc_size, pool.orig_addr, pool.pad_slots)
        areas = [row.copy() for row in pool.areas]
        pg = {"pg_z": np.zeros((1, 6), np.int64), "pg_heap": np.zeros((1, 1), np.int64),
              "pg_hn": np.zeros(1, np.int64), "pg_es": np.zeros((1, 1), np.int64),
              "pg_ee": np.zeros((1, 1), np.int64), "zl": np.zeros((1, 5), np.int64),
              "pg_free": fast_pages.build_empty()}
        ntr = 1
        if type(dyn) is Grower:                         # room for pools the worker adds
            slots = tuple(np.concatenate((a, np.zeros(4 * len(a), a.dtype))) for a in slots)
            areas = [np.concatenate((a, np.zeros(64, np.int64))) for a in areas]
            pages = dyn.pages
            gfps = [fast_pages.transient_gfp(pages, d.reach) for d in devs]
            wgfp = fast_pages.worker_gfp(pages, dyn.phys_limit)
            pg = fast_pages.build(pages, gfps + [wgfp])
            for k, d in enumerate(devs):
                DI[k, D_ZL], DI[k, D_LIMIT] = k, fast_pages.limit_pfn(d.reach)
                DI[k, D_GFP] = fast_pages.gfp_flags(gfps[k])
            self._gfps = [(g, d.reach) for g, d in zip(gfps, devs)], (wgfp, dyn.phys_limit)
            P[P_W_ZL], P[P_W_LIMIT], P[P_W_GFP] = len(devs), fast_pages.limit_pfn(dyn.phys_limit), \
                fast_pages.gfp_flags(wgfp)
            P[P_DYN], P[P_V611], P[P_CAN_GROW] = 1, dyn.flavour == "v6.11", dyn.can_grow
            P[P_HAS_DELAY] = dyn.worker_delay is not None
            PF[PF_WORKER_DELAY] = dyn.worker_delay or 0.0
            P[P_DEF_NSLABS], P[P_DEF_NAREAS] = dyn.default_nslabs, dyn.default_nareas
            P[P_BOOT_BYTES] = pool.nslabs << IO_TLB_SHIFT
            C[PENDING], F[KICKED_AT] = dyn.pending, dyn.kicked_at
            C[POOL_BYTES], C[TRANSIENT_BYTES] = dyn.pool_bytes, dyn.transient_bytes
            ntr = 16
        elif dyn is not None:                           # RFC v1 (fast_rfc): no growth, the P_DYN clock
            pg, self._gfps = fast_rfc.setup(dyn, devs, P, DI)
            P[P_DYN], P[P_RFC], P[P_BOOT_BYTES] = 1, dyn.allow_dyn, pool.nslabs << IO_TLB_SHIFT
            C[TRANSIENT_BYTES], C[RFC_LIVE] = dyn.dyn_bytes, dyn.nlive
        tr = np.zeros((ntr, NTR), np.int64)
        tr[:, TR_NEXT] = np.arange(1, ntr + 1)
        tr[-1, TR_NEXT] = -1
        C[TR_FREE] = 0
        logs, locks, sig = containers()
        cap = max(64, nu)
        traced = cols.traced
        if traced.strides[0] == 0 and self.agreement is None:   # no address recorded, none compared
            traced = np.full(1, -1, np.int64)
        else:
            traced = np.require(traced, np.int64, ["C", "W"])
        fields = dict(
            C=C, F=F, P=P, PF=PF, p_list=slots[0], p_asize=slots[1], p_orig=slots[2], p_pad=slots[3],
            a_index=areas[0], a_used=areas[1], a_locks=areas[2], pp=pp, pp_exam=np.zeros(len(pp), np.int64),
            ps=ps, params=params, q_bnd=q_bnd, tr=tr, t_list=np.zeros(SPARE_SLOTS + 256, np.int32),
            t_asize=np.zeros(SPARE_SLOTS + 256, np.uint64), t_area=np.zeros(4, np.int64),
            pool_of=np.zeros(w, np.int64), pg_ops=np.zeros((256 if dyn is not None else 1, 4), np.int64),
            pg_orders=np.zeros(16, np.int64), **pg,
            h_t=np.empty(cap), h_p=np.empty(cap, np.int64), h_c=np.empty(cap, np.int64),
            h_k=np.empty(cap, np.int64), h_x=np.empty(cap, np.int64), logs=logs, locks=locks, sig=sig,
            tl_t=np.empty(tl_rows), tl_u=np.empty(tl_rows, np.int64), samples=samples,
            MI=np.zeros((w, NMI), np.int32), MF=np.zeros((w, NMF)), m_orig=cols.orig, m_traced=traced,
            unit_of=cols.unit_of, u_ptr=cols.u_ptr, u_members=cols.u_members,
            UI=UI, DI=DI, state=np.zeros(nu, np.int8), attempts=np.zeros(nu, np.int64),
            left=np.zeros(nu, np.int64), nh=np.full(nu, -1, np.int64), sig_gen=np.zeros(nu, np.int64),
            tlb_of=np.full(w, -1, np.int64), handle_of=np.full(w, NO_HANDLE, np.int64),
            rel_id=np.zeros(0, np.int64),
            q_next=np.full(nu, -1, np.int64), q_prev=np.full(nu, -1, np.int64),
            k_made=np.zeros(nkeys, np.int8), k_order=np.zeros(nkeys, np.int64),
            k_head=np.full(nkeys, -1, np.int64),
            k_tail=np.full(nkeys, -1, np.int64), k_dev=k_dev, f_made=np.zeros(nd, np.int8),
            f_order=np.zeros(nd, np.int64), f_head=np.full(nd, -1, np.int64), f_tail=np.full(nd, -1, np.int64),
            f_len=np.zeros(nd, np.int64), f_next=np.full(nu, -1, np.int64))
        values = [fields[k] for k in StateTuple._fields]
        S = new_state(StateTuple(*values))
        rfc = is_rfc(mem)
        dev, align = _narrow(cols.dev), one(cols.align)
        args = (dev, _narrow(cols.cpu), cols.orig, cols.size, align, one(cols.attrs), cols.line, one(cols.endline),
                cols.time, one(cols.end), one(cols.lost), d_mam, reach_u, pool.has_pad, mem.force_bounce, rfc, uniq,
                params)
        self.ring = Window(S, lambda lo, hi: fill_rows(S, lo, hi, *args), w, rfc)
        self._alloc_of = lambda i: alloc_of(i, dev, cols.orig, cols.size, align, d_mam, pool.has_pad)
        self._size_col = cols.size
        return S, SimpleNamespace(**fields), n

    # -- the write-back --------------------------------------------------------------------
    def _write_back(self, S, records, pools) -> None:
        """Put what the compiled loop did where the reference keeps it."""
        C, mem, pool, m = S.C, self.mem, self.mem.defpool, self.m
        li, lt, ki, kt, tl_t, tl_u = records
        p_list, p_asize, p_orig, p_pad, a_index, a_used, a_locks, pp, pp_exam, tr, ops, orders = pools
        nslabs = mem.nslabs
        for (kind, i, value, ns), now in zip(li.tolist(), lt.tolist()):
            m.log.now = now
            if kind == LOG_WORKER:                      # Grower.run_pending_work's failure
                mem.dyn.warn_alloc_failed()
                continue
            mp = self.maps[i]
            dev = self.devs[mp.dev_name]
            if kind == LOG_FULL:
                mem.nslabs = ns                         # the pools' size at that time
                size = int(self._alloc_of(i)[0]) if pool.has_pad else mp.size     # 6.9+: padded
                mem.warn_full(dev, size, value)
                mem.nslabs = nslabs
            elif kind == LOG_OVERFLOW:
                mem.warn_overflow(dev, value, mp.size)
            else:
                mem.warn_align(dev)
        m.log.now = float(S.F[NOW])
        dyn = mem.dyn
        for pid, row in enumerate(pp.tolist()):
            if pid == 0:
                p = pool
                if type(dyn) is Grower:                 # the boot pool's slots, copied out
                    k = pool.nslabs + SPARE_SLOTS
                    p.list[:], p.alloc_size[:], p.orig_addr[:], p.pad_slots[:] = \
                        p_list[:k], p_asize[:k], p_orig[:k], p_pad[:k]
            else:                                       # a pool the worker added
                p = IoTlbPool(row[PP_START], row[PP_NSLABS], row[PP_NAREAS], mem.profile, late_alloc=True,
                              name="dynamic")
                p.alloc_how = row[PP_ORDER]
                a, k = row[PP_OFF], row[PP_NSLABS] + SPARE_SLOTS
                p.list[:], p.alloc_size[:], p.orig_addr[:], p.pad_slots[:] = \
                    p_list[a:a + k], p_asize[a:a + k], p_orig[a:a + k], p_pad[a:a + k]
                mem.memory.fill(p.start, p.nslabs << IO_TLB_SHIFT, 0)
                mem.add_pool(p)
            a, k = row[PP_AOFF], row[PP_NAREAS]
            p.areas[:] = a_index[a:a + k], a_used[a:a + k], a_locks[a:a + k]
            p.examined[0] += pp_exam[pid]
        if type(dyn) is Grower:
            self._write_back_dyn(S, tr, ops, orders)
        elif dyn is not None:
            live, pool_of = self.ring.rfc_live()
            fast_rfc.write_back(dyn, C, S.DI, self._devs, live, pool_of,
                                self._size_col, S.m_orig, ops, orders, self._gfps)
        mem.total_used = int(C[TOTAL_USED])
        mem.used_hiwater = int(C[HIWATER])
        mem.bytes_copied += int(C[BYTES_COPIED])
        res = self.res
        res.attempted += int(C[ATTEMPTED])
        res.mapped += int(C[MAPPED])
        res.bounced += int(C[BOUNCED])
        res.failed += int(C[FAILED])
        for cause, k in (("too_big", F_TOO_BIG), ("pool_full", F_POOL_FULL), ("out_of_reach", F_OUT_OF_REACH),
                         ("no_memory", F_NO_MEMORY)):
            res.failures[cause] += int(C[k])
        self.peak = int(C[PEAK])
        self.peak_bytes = int(C[PEAK_BYTES])
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
        for (u, i, used, attempts, reps, ns), t in zip(ki.tolist(), kt.tolist()):
            req = self.reqs[u]
            self.livelocks.append(Livelock(self.maps[req.members[0]].line, t, req.dev_name, req.data_bytes,
                                           request_slots(req, self.maps), used, ns, attempts,
                                           self.maps[i].size, reps))
        if self.tl_t is not None:
            self.tl_t.frombytes(memoryview(tl_t).cast("B"))     # straight from the arrays: no bytes copy
            self.tl_u.frombytes(memoryview(np.ascontiguousarray(tl_u, np.int64)).cast("B"))

    def _write_back_dyn(self, S, tr, ops, orders) -> None:
        """The growing profile's part: the worker, the transient pools still live, the
        counters of ``Grower.costs()`` and the page allocator
        (:func:`~swiotlb_lib.trace.fast_pages.write_back`)."""
        C, mem = S.C, self.mem
        dyn = mem.dyn
        dyn.pending, dyn.kicked_at = bool(C[PENDING]), float(S.F[KICKED_AT])
        dyn.pool_bytes, dyn.transient_bytes = int(C[POOL_BYTES]), int(C[TRANSIENT_BYTES])
        mem.transient_nslabs = int(C[TRANSIENT_NSLABS])
        c = dyn.costs_.c
        for key, k in GROWER_COSTS:
            if C[k]:
                c[key] += int(C[k])
        for order, count in enumerate(orders.tolist()):
            if count:
                dyn.costs_.page_orders[order] += count
        for d, dev in enumerate(self._devs):
            if S.DI[d, D_USES]:
                dev.dma_uses_io_tlb = True
        live = sorted((row for row in tr.tolist() if row[TR_NEXT] == TR_LIVE), key=lambda r: r[TR_SEQ])
        for row in live:                                # Grower.find_slots' transient pools
            mp = self.maps[row[TR_MAP]]
            dev = self.devs[mp.dev_name]
            p = IoTlbPool(row[TR_PADDR], row[TR_NSLABS], 1, mem.profile, late_alloc=True, name="dynamic")
            p.alloc_how = row[TR_ORDER]
            mem.memory.fill(p.start, p.nslabs << IO_TLB_SHIFT, 0)
            asize, pad, nslots = (int(x) for x in self._alloc_of(row[TR_MAP]))
            first = search_pool_area(p, 0, mp.orig, asize, mp.align_mask, dev.min_align_mask, dev.seg_boundary)
            p.pad_slots[first + pad] = pad
            k = np.arange(first + pad, first + nslots, dtype=np.uint64)
            p.orig_addr[first + pad:first + nslots] = \
                (np.uint64(mp.orig) + (k - np.uint64(first + pad)) * np.uint64(IO_TLB_SIZE))
            p.transient = True
            dev.dma_io_tlb_pools.insert(0, p)
        transient, worker = self._gfps
        fast_pages.write_back(dyn.pages, ops, {key: int(C[k]) for key, k in PAGE_COSTS}, transient, worker)


def warm() -> float:
    """Compile every function of the compiled engine, or load it from Numba's cache (in
    ``__pycache__`` beside this file), with small replays (a static, a growing and an RFC v1
    profile), and the slot search and release that the Python API switches to in a long run
    (:func:`swiotlb_lib.pool.use_compiled`); returns the seconds taken.
    ``scripts/setup_and_build.sh`` runs it while the book builds, so that the tests and the
    first long replay find the cache filled instead of each compiling (about 80 s of CPU) at
    once.  The trace scanner and the request grouping's
    kernels are left to their first use: compiling them too (about 15 s of CPU more) would
    outlast ``jupyter-book build`` and leave a core idle at the end of the set-up."""
    import time
    from .read import parse_trace
    from .replay import prepare_replay, replay
    from .synthesize import synthesize_trace
    from ..pool import use_compiled
    t = time.perf_counter()
    use_compiled(True)
    use_compiled(None)
    prep = prepare_replay(parse_trace(synthesize_trace(64)))
    replay(prep, "v6.11", "swiotlb=128,force", engine="compiled")
    replay(prep, "v6.11-dynamic", "swiotlb=128,force", engine="compiled")
    replay(prep, "rfc-v1", "swiotlb=128,force", engine="compiled")
    return time.perf_counter() - t
