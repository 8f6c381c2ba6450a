"""The trace and its requests as flat numpy arrays: what every compiled replay of one grouping
shares (:class:`Columns`, built once per prepared trace by :func:`columns`)."""
from __future__ import annotations

import math

import numpy as np

from ..constants import KNOWN_ATTRS
from .engine import replay_index
from .read import TLB_FAILED
from .requests import BLOCK_KINDS


class Columns:
    """The trace and its requests as flat arrays (what every replay of one grouping shares)."""

    def __init__(self, maps, reqs, unit_of, lost_at) -> None:
        n = len(maps)
        self.dev_names = sorted({mp.dev_name for mp in maps})
        dev_index = {d: k for k, d in enumerate(self.dev_names)}
        self.time = np.fromiter((mp.time for mp in maps), np.float64, n)
        self.line = np.fromiter((mp.line for mp in maps), np.int64, n)
        self.cpu = np.fromiter((mp.cpu for mp in maps), np.int64, n)
        self.dev = np.fromiter((dev_index[mp.dev_name] for mp in maps), np.int64, n)
        self.size = np.fromiter((mp.size for mp in maps), np.int64, n)
        self.orig = np.fromiter((mp.orig for mp in maps), np.uint64, n)
        self.align = np.fromiter((mp.align_mask for mp in maps), np.int64, n)
        self.attrs = np.fromiter((mp.attrs & KNOWN_ATTRS for mp in maps), np.int64, n)
        nan = math.nan
        self.end = np.fromiter((nan if mp.unmap_time is None else mp.unmap_time for mp in maps), np.float64, n)
        self.endline = np.fromiter((-1 if mp.unmap_line is None else mp.unmap_line for mp in maps), np.int64, n)
        self.traced = np.fromiter((-1 if mp.tlb is None or mp.tlb == TLB_FAILED else mp.tlb for mp in maps),
                                  np.int64, n)
        self.lost = np.full(n, nan)
        for i, t in lost_at.items():
            self.lost[i] = t
        self.unit_of = np.frombuffer(unit_of, dtype=np.int64).copy() if n else np.zeros(0, np.int64)
        sizes = np.fromiter((len(r.members) for r in reqs), np.int64, len(reqs))
        self.u_ptr = np.zeros(len(reqs) + 1, np.int64)
        np.cumsum(sizes, out=self.u_ptr[1:])
        self.u_members = np.fromiter((i for r in reqs for i in r.members), np.int64, int(self.u_ptr[-1]))
        self.u_dev = np.fromiter((dev_index.get(r.dev_name, 0) for r in reqs), np.int64, len(reqs))
        self.u_cpu = np.fromiter((r.cpu for r in reqs), np.int64, len(reqs))
        self.u_block = np.fromiter((r.kind in BLOCK_KINDS for r in reqs), np.int8, len(reqs))
        self.u_aborted = np.fromiter((r.aborted for r in reqs), np.int8, len(reqs))
        self.u_last = self.u_members[self.u_ptr[1:] - 1] if len(reqs) else np.zeros(0, np.int64)
        # the loop maps a request's members in trace order: they must ascend
        d = np.diff(self.u_members)
        same = np.ones(len(d), bool)
        b = self.u_ptr[1:-1] - 1                        # last member of each request but the last
        same[b[(b >= 0) & (b < len(d))]] = False
        self.ordered = bool(np.all(d[same] > 0))


def columns(trace, reqs, lost: bool, cache: dict | None = None) -> Columns:
    """The :class:`Columns` of ``trace`` grouped into ``reqs`` (``lost`` as for
    :func:`~swiotlb_lib.trace.engine.replay_index`), kept in ``cache`` when given."""
    key = ("columns", id(reqs), lost)
    if cache is not None and key in cache:
        return cache[key]
    unit_of, _, lost_at = replay_index(trace, reqs, lost, cache)
    cols = Columns(trace.mappings, reqs, unit_of, lost_at)
    if cache is not None:
        cache[key] = cols
    return cols
