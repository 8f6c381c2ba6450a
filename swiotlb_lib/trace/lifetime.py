"""Lifetime models: how long a bounce buffer stays mapped, and their calibration.

The ``swiotlb_bounced`` tracepoint records maps, not unmaps, so how long a bounce buffer
stays mapped comes from a **lifetime model** the user picks (:func:`parse_lifetime`):
``fixed:250us``, ``qd:32``, ``exp:200us``, ``lognormal:1.5ms,0.5`` or, for a trace with the
kprobe ``unmap`` events, ``real``.  :func:`lifetime_stats` measures the real lifetimes of a
kprobe trace and :func:`tracepoint_only` hides them, so that a model can be checked against
the same mappings (chapter 9b, "Sizing SWIOTLB from a trace").
"""
from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..constants import IO_TLB_SHIFT
from .read import Mapping, Trace
from .requests import group_requests, mapping_table, request_table
from .table import HAS_MAP_LINE, HAS_UNMAP_LINE, HAS_UNMAP_TIME

#: Lifetime used when the trace has no unmap events and the user chose none.  Calibrated on
#: ``data/realkernel/trace-force-2G-kprobes.txt`` (Linux 6.12 under QEMU TCG): replaying its
#: swiotlb_bounced events alone with ``fixed:1500us`` peaks at 1546 slots against 1549 with
#: the recorded unmaps (and the kernel's io_tlb_used_hiwater of 1549).  The measured median
#: lifetime is 1.56 ms per mapping, 0.89 ms from a request's last mapping (see
#: :func:`lifetime_stats`).  Under KVM or on hardware I/O completes much faster.
DEFAULT_LIFETIME = "fixed:1500us"

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
_DURATION = re.compile(r"^\s*(?P<v>\d+(?:\.\d*)?|\.\d+)\s*(?P<u>ns|us|µs|ms|s)\s*$")
MAX_DURATION_S = 3600.0


def parse_duration(text: str, what: str = "duration") -> float:
    """``250us`` -> 0.00025.  Units ns, us (or µs), ms, s; from 0 to one hour."""
    m = _DURATION.match(str(text))
    if m is None:
        raise ValueError(f"{what}: {text!r} is not a duration like 250us, 1.5ms or 2s "
                         f"(units: {', '.join(_UNITS)})")
    v = float(m.group("v")) * _UNITS[m.group("u")]
    if not 0 <= v <= MAX_DURATION_S:
        raise ValueError(f"{what}: must be between 0 and {MAX_DURATION_S:g} s, got {text!r}")
    return v


def _fmt_s(s: float) -> str:
    if s >= 1:
        return f"{s:g} s"
    if s >= 1e-3:
        return f"{s * 1e3:g} ms"
    return f"{s * 1e6:g} µs"


@dataclass(frozen=True)
class Lifetime:
    """How long a bounce buffer stays mapped (see :func:`parse_lifetime`).

    ``kind`` is ``fixed``, ``qd``, ``exp``, ``lognormal`` or ``real``; ``value`` the latency
    in seconds (fixed; mean for exp; median for lognormal) or the queue depth (qd);
    ``sigma`` the lognormal shape; ``seed`` seeds the random ones.
    """

    kind: str
    value: float = 0.0
    sigma: float = 0.0
    seed: int = 1
    spec: str = ""

    @property
    def is_model(self) -> bool:
        return self.kind != "real"

    def describe(self, unit: str = "mapping") -> str:
        """One plain sentence: which model, its parameters, and that it is a model."""
        if self.kind == "real":
            return ("lifetimes: real -- every mapping is unmapped when the trace's kprobe unmap "
                    "event says (measured, not modelled)")
        what = {"fixed": f"every {unit} completes {_fmt_s(self.value)} after its last mapping",
                "qd": f"at most {int(self.value)} {unit}s in flight per device; when another is "
                      "submitted the oldest completes first (no clock)",
                "exp": f"each {unit} completes after an exponentially distributed time, mean "
                       f"{_fmt_s(self.value)} (seed {self.seed})",
                "lognormal": f"each {unit} completes after a lognormally distributed time, median "
                             f"{_fmt_s(self.value)}, sigma {self.sigma:g} (seed {self.seed})"}[self.kind]
        return (f"lifetimes: MODEL {self.spec} -- {what}.  This is a model, not a measurement: "
                "the swiotlb_bounced tracepoint records maps, not unmaps")

    def sampler(self):
        """A function returning the next lifetime in seconds (seeded; fixed/exp/lognormal)."""
        if self.kind == "fixed":
            v = self.value
            return lambda: v
        rng = random.Random(self.seed)
        if self.kind == "exp":
            rate = 1.0 / self.value if self.value else math.inf
            return (lambda: 0.0) if rate == math.inf else (lambda: rng.expovariate(rate))
        if self.kind == "lognormal":
            mu, sg = math.log(self.value) if self.value else -math.inf, self.sigma
            return (lambda: 0.0) if mu == -math.inf else (lambda: rng.lognormvariate(mu, sg))
        raise ValueError(f"lifetime: {self.kind!r} has no sampler")


def parse_lifetime(spec: str, seed: int = 1) -> Lifetime:
    """Parse a lifetime model.

    * ``fixed:250us`` -- each request (or mapping) completes that long after its last mapping;
    * ``qd:32`` -- at most 32 in flight per device, the oldest completes when another is
      submitted (1..65536);
    * ``exp:200us`` -- exponential with that mean; ``lognormal:1.5ms,0.5`` -- lognormal with
      that median and shape sigma (0 < sigma <= 5; default 1); both take ``,seed=N``
      (default: ``seed``);
    * ``real`` -- the unmaps the trace recorded (kprobe traces only).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("lifetime: give one of fixed:<duration>, qd:<N>, exp:<mean>, "
                         "lognormal:<median>[,<sigma>], real")
    if type(seed) is not int or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    s = spec.strip()
    kind, _, rest = s.partition(":")
    kind = kind.lower()
    parts = [p.strip() for p in rest.split(",")] if rest else []
    for p in list(parts):
        if p.startswith("seed="):
            v = p[5:]
            if not v.isdigit():
                raise ValueError(f"lifetime: seed in {spec!r} must be a non-negative integer")
            seed = int(v)
            parts.remove(p)
    if kind == "real":
        if parts:
            raise ValueError(f"lifetime: 'real' takes no parameters, got {spec!r}")
        return Lifetime("real", spec=s)
    if kind == "fixed" and len(parts) == 1:
        return Lifetime("fixed", parse_duration(parts[0], "lifetime fixed:"), spec=s)
    if kind == "qd" and len(parts) == 1:
        if not parts[0].isdigit() or not 1 <= int(parts[0]) <= 65536:
            raise ValueError(f"lifetime: qd:<N> needs N in 1..65536, got {spec!r}")
        return Lifetime("qd", int(parts[0]), spec=s)
    if kind == "exp" and len(parts) == 1:
        return Lifetime("exp", parse_duration(parts[0], "lifetime exp:"), seed=seed, spec=s)
    if kind == "lognormal" and len(parts) in (1, 2):
        sigma = 1.0
        if len(parts) == 2:
            try:
                sigma = float(parts[1])
            except ValueError:
                raise ValueError(f"lifetime: lognormal sigma must be a number, got {parts[1]!r}") from None
            if not 0 < sigma <= 5:
                raise ValueError(f"lifetime: lognormal sigma must be in (0, 5], got {sigma:g}")
        return Lifetime("lognormal", parse_duration(parts[0], "lifetime lognormal:"), sigma, seed, s)
    raise ValueError(f"lifetime: cannot parse {spec!r}; use fixed:250us, qd:32, exp:200us, "
                     "lognormal:1.5ms,0.5 or real")


def lifetime_stats(trace: Trace, requests: str = "auto") -> dict:
    """Measured lifetimes in a trace with unmaps (seconds): per mapping (map to unmap) and
    per request (its last mapping to its last unmap), with mean, median, p10, p90, p99 and
    the lognormal fit (median ``exp(mean(log))`` and sigma)."""
    if not trace.has_unmaps:
        raise ValueError("trace: lifetime statistics need the kprobe unmap events")

    def stats(xs):
        a = np.sort(np.asarray([x for x in xs if x >= 0], dtype=np.float64))
        if not a.size:
            return {"n": 0}
        pos = a[a > 0]
        lg = np.log(pos) if pos.size else np.zeros(1)
        return {"n": int(a.size), "mean": float(a.mean()), "median": float(np.median(a)),
                "p10": float(np.quantile(a, 0.1)), "p90": float(np.quantile(a, 0.9)),
                "p99": float(np.quantile(a, 0.99)), "lognormal_median": float(np.exp(lg.mean())),
                "lognormal_sigma": float(lg.std())}

    maps = trace.mappings
    per_map = [mp.unmap_time - mp.time for mp in maps if mp.unmap_time is not None]
    reqs, mode = group_requests(maps, requests)
    per_req = []
    for r in reqs:
        if r.aborted:
            continue
        ends = [maps[i].unmap_time for i in r.members]
        if None in ends:
            continue
        per_req.append(max(ends) - maps[r.members[-1]].time)
    return {"per_mapping": stats(per_map), "per_request": stats(per_req), "grouping": mode}


def tracepoint_only(trace: Trace) -> Trace:
    """The same trace as if only ``swiotlb_bounced`` had been enabled (no kprobe data):
    for checking a lifetime model against the real lifetimes of the same mappings."""
    t = Trace(trace.source + " (tracepoint only)", trace.format, markers=list(trace.markers),
              header=dict(trace.header), lost_events=trace.lost_events)
    t.mappings = [Mapping(mp.line, mp.time, mp.cpu, mp.task, mp.dev_name, mp.dma_mask, mp.orig, mp.size,
                          mp.force) for mp in trace.mappings if mp.force is not None]
    t.counts = Counter(swiotlb_bounced=len(t.mappings), markers=trace.counts["markers"],
                       total_lines=trace.counts["total_lines"])
    return t



def lost_unmap_times(trace: Trace, reqs) -> dict:
    """When the bounce buffers whose ``unmap`` event a kprobe trace lost were unmapped.

    A kprobe can miss hits (``data/realkernel-nvme/README.md``: the NVMe trace has 1 056
    fewer ``unmap`` than ``map_ret`` events although ``io_tlb_used`` was 0 at the end), so a
    mapping the kernel made may have no unmap.  Its time is inferred, in this order (the
    model's inference, not a recorded fact):

    1. the unmap time of another mapping of the same request (``reqs``): a driver unmaps a
       request's mappings together (``nvme_unmap_data()``; virtio's ``detach_buf_split()``);
    2. else the map time plus the median lifetime of the trace's recorded mappings;
    3. never later than the first ``map_ret`` that returned an address inside the buffer's
       slots (the kernel cannot hand out slots still in use, so the buffer was gone by then).

    Returns ``{mapping index: time}`` for every mapping the kernel made (``tlb`` recorded,
    not failed) that has no unmap event; empty for a trace without unmap events.
    """
    table = mapping_table(trace.mappings)
    n = len(table)
    has_end = table.has(HAS_UNMAP_TIME)
    if not has_end.any():
        return {}
    made = table.tlb_ok()
    lost = np.flatnonzero(~has_end & made).tolist()
    if not lost:
        return {}
    time = table.time.tolist()
    end = np.where(has_end, table.unmap_time, np.nan).tolist()
    # 3: the first reuse of a lost buffer's slots (slots as 2 KiB frames of the address)
    rows = np.flatnonzero(made)
    map_line = np.where(table.has(HAS_MAP_LINE) & (table.map_line != 0), table.map_line, table.line)[rows]
    unmapped = rows[table.has(HAS_UNMAP_LINE)[rows]]
    ev_line = np.concatenate([map_line, table.unmap_line[unmapped]])
    ev_kind = np.concatenate([np.zeros(len(rows), np.int64), np.ones(len(unmapped), np.int64)])
    ev_row = np.concatenate([rows, unmapped])
    order = np.lexsort((ev_row, ev_kind, ev_line))
    tlb = dict(zip(rows.tolist(), table.tlb[rows].tolist()))
    size = dict(zip(rows.tolist(), table.size[rows].tolist()))
    bound: dict = {}
    owner: dict = {}                                    # slot frame -> mapping holding it
    for kind, i in zip(ev_kind[order].tolist(), ev_row[order].tolist()):
        first = tlb[i] >> IO_TLB_SHIFT
        frames = range(first, (tlb[i] + max(size[i], 1) - 1 >> IO_TLB_SHIFT) + 1)
        if kind:
            for f in frames:
                if owner.get(f) == i:
                    del owner[f]
            continue
        for f in frames:
            j = owner.get(f)
            if j is not None and j != i:
                if end[j] != end[j] and j not in bound:            # NaN: no unmap recorded
                    bound[j] = time[i]
                for g in range(tlb[j] >> IO_TLB_SHIFT, (tlb[j] + max(size[j], 1) - 1 >> IO_TLB_SHIFT) + 1):
                    if owner.get(g) == j:
                        del owner[g]
            owner[f] = i
    # 1 and 2
    rt = request_table(reqs, n)
    sibling: dict = {}
    if len(rt.members):
        m = rt.members
        got = has_end[m]
        nonempty = np.diff(rt.ptr) > 0
        starts = rt.ptr[:-1][nonempty]
        cnt = np.zeros(len(rt), np.int64)
        cnt[nonempty] = np.add.reduceat(got.astype(np.int64), starts)
        latest = np.full(len(rt), np.nan)
        latest[nonempty] = np.fmax.reduceat(np.where(got, table.unmap_time[m], np.nan), starts)
        part = np.flatnonzero((cnt > 0) & (cnt < np.diff(rt.ptr)))
        for u, t in zip(part.tolist(), latest[part].tolist()):
            for i in m[rt.ptr[u]:rt.ptr[u + 1]].tolist():
                sibling[i] = t
    recorded = np.sort(table.unmap_time[has_end] - table.time[has_end])
    median = float(recorded[len(recorded) // 2])
    out = {}
    for i in lost:
        t = sibling.get(i, time[i] + median)
        out[i] = min(t, bound[i]) if i in bound else t
    return out
