"""The trace and its requests as flat numpy arrays: what every compiled replay of one grouping
shares (:class:`Columns`, built once per prepared trace by :func:`columns`) from the trace's
own columns (:class:`~swiotlb_lib.trace.table.MappingTable`) and the grouping's
(:class:`~swiotlb_lib.trace.requests.RequestTable`), with no loop over mappings in Python."""
from __future__ import annotations

import numpy as np

from ..constants import KNOWN_ATTRS
from .engine import replay_index
from .requests import BLOCK_KINDS, KINDS, mapping_table, request_table
from .table import HAS_UNMAP_LINE, HAS_UNMAP_TIME


def _const(value, dtype, n: int) -> np.ndarray:
    """``n`` copies of ``value`` in no memory (a read-only broadcast view)."""
    return np.broadcast_to(np.asarray(value, dtype=dtype), (n,))


def _int64(a: np.ndarray) -> np.ndarray:
    """``a`` as int64, shared when it is already (an OverflowError for a value beyond int64,
    as ``np.fromiter(..., np.int64)`` gives)."""
    if a.dtype == np.int64:
        return a
    if a.dtype == object or (a.dtype == np.uint64 and len(a) and int(a.max()) > np.iinfo(np.int64).max):
        return np.fromiter(a.tolist(), np.int64, len(a))
    return a.astype(np.int64)


class Columns:
    """The trace and its requests as flat arrays (what every replay of one grouping shares).

    Per mapping: ``time``, ``line``, ``cpu``, ``dev`` (index into ``dev_names``), ``size``,
    ``orig``, ``align``, ``attrs`` (known attributes only), ``end``/``endline`` (the recorded
    unmap, NaN/-1 without), ``traced`` (the recorded bounce address, -1 without or failed),
    ``lost`` (the inferred unmap time of a lost unmap, NaN otherwise), ``unit_of``; per request
    ``u_ptr``/``u_members`` (members ``u_members[u_ptr[u]:u_ptr[u + 1]]``), ``u_dev``,
    ``u_cpu``, ``u_block``, ``u_aborted``, ``u_last``; ``ordered``: every request's members
    ascend.  int64/float64/uint64 as the compiled engine reads them, except ``unit_of``,
    ``u_members`` and ``u_last`` (int32, as the grouping keeps them), and ``cpu`` and ``dev``,
    which only the making of its per-mapping rows reads: a column the trace shares
    (``time``, ``line``, ``cpu``, ``dev``, ``size``, ``orig``) is the trace's own array, and one
    that is the same for every mapping of the trace (no kprobe data) is a read-only broadcast
    view."""

    def __init__(self, table, rt, lost_at: dict) -> None:
        n = len(table)
        nan = np.nan
        self.dev_names = list(table.dev_names)
        self.time = table.time
        self.line = _int64(table.line)
        self.cpu = table.cpu                            # the trace's own narrow columns (int8 as a rule)
        self.dev = table.dev
        self.size = _int64(table.size)
        self.orig = table.orig
        if table.kprobe:
            self.align = _int64(table.align_mask)
            if table.attrs.dtype == object:
                self.attrs = np.array([a & KNOWN_ATTRS for a in table.attrs.tolist()], dtype=np.int64)
            else:
                self.attrs = table.attrs.astype(np.int64) & KNOWN_ATTRS
            self.end = np.where(table.has(HAS_UNMAP_TIME), table.unmap_time, nan)
            self.endline = np.where(table.has(HAS_UNMAP_LINE), table.unmap_line, -1).astype(np.int64)
            ok = table.tlb_ok()
            self.traced = np.full(n, -1, np.int64)
            self.traced[ok] = _int64(table.tlb[ok])
            del ok
        else:
            self.align = _const(0, np.int64, n)
            self.attrs = _const(0, np.int64, n)
            self.end = _const(nan, np.float64, n)
            self.endline = _const(-1, np.int64, n)
            self.traced = _const(-1, np.int64, n)
        if lost_at:
            self.lost = np.full(n, nan)
            self.lost[np.fromiter(lost_at.keys(), np.int64, len(lost_at))] = np.fromiter(
                lost_at.values(), np.float64, len(lost_at))
        else:
            self.lost = _const(nan, np.float64, n)
        # int32 whatever made the grouping, so that the compiled engine is compiled for one type
        self.unit_of = rt.unit_of.astype(np.int32, copy=False) if n else np.zeros(0, np.int32)
        nu = len(rt)
        self.u_ptr = rt.ptr
        self.u_members = rt.members.astype(np.int32, copy=False)
        # the request's device code in this table's order (a hand-made grouping has its own)
        code = {d: k for k, d in enumerate(self.dev_names)}
        remap = np.array([code.get(d, 0) for d in rt.dev_names] or [0], np.int64)
        self.u_dev = remap[rt.dev.astype(np.int64)] if nu else np.zeros(0, np.int64)
        self.u_cpu = _int64(rt.cpu)
        block = np.array([k in BLOCK_KINDS for k in KINDS], np.int8)
        self.u_block = block[rt.kind] if nu else np.zeros(0, np.int8)
        self.u_aborted = rt.aborted.astype(np.int8)
        self.u_last = self.u_members[self.u_ptr[1:] - 1] if nu else np.zeros(0, np.int32)
        # the loop maps a request's members in trace order: they must ascend
        self.ordered = rt.ordered


def columns(trace, reqs, lost: bool, cache: dict | None = None) -> Columns:
    """The :class:`Columns` of ``trace`` grouped into ``reqs`` (``lost`` as for
    :func:`~swiotlb_lib.trace.engine.replay_index`), kept in ``cache`` when given."""
    key = ("columns", id(reqs), lost)
    if cache is not None and key in cache:
        return cache[key]
    table = mapping_table(trace.mappings)
    lost_at = replay_index(trace, reqs, lost, cache)[1] if lost else {}
    cols = Columns(table, request_table(reqs, len(table)), lost_at)
    if cache is not None:
        cache[key] = cols
    return cols
