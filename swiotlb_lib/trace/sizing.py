"""Sizing SWIOTLB from a trace (chapter 9b): the analyses the chapter shows.

The chapter reads the traces recorded on real kernels in ``data/realkernel/`` of this
repository (Linux 6.12.117 and 6.1.192 under QEMU with ``swiotlb=force``, a virtio-blk disk and
a ``dd`` workload; ``data/realkernel/README.md``) and turns them into a ``swiotlb=`` answer with
the rest of :mod:`swiotlb_lib.trace`.  This module holds what the chapter computes on top of
that, so that the notebook's cells stay short:

* :func:`overview_rows` -- the recordings (:mod:`swiotlb_lib.trace.recordings`) side by side;
* :func:`size_rows`, :func:`direction_rows`, :func:`step_rows` --
  what a trace contains (per size, per DMA direction, per workload step marker);
* :func:`lifetime_rows`, :func:`lognormal_spec`, :func:`calibration_rows`,
  :func:`hiwater_rows`, :func:`calibration_curves` -- measured lifetimes and the lifetime
  models checked against them and against the kernel's ``io_tlb_used_hiwater``;
* :func:`replay_run` -- :func:`swiotlb_lib.trace.replay.replay` plus the time and slots in
  use of every failed mapping attempt (the library's timeline does not mark failures; the
  replay reports them to the :data:`~swiotlb_lib.debug.REPLAY_MAP_FAILED` hook point);
* :func:`profile_rows`, :func:`rounding_rows`, :func:`advice`, :func:`advice_rows`,
  :func:`spread_rows`, :func:`demand_data` -- replays through kernel profiles and
  ``swiotlb=`` settings, and the advisor's answers;
* :func:`livelock_rows` -- ``data/realkernel/README.md`` finding 12 (a 1 MiB pool livelocks on
  1 MiB requests), as the replay detects it;
* :func:`pool_state` and :func:`kernel_build` -- the states of the chapter's two widgets.

Each table the chapter prints is registered as an experiment (:data:`EXPERIMENTS`), so
``python -m swiotlb_lib experiment NAME`` prints it on its own.
"""
from __future__ import annotations

import bisect
from collections import Counter
from functools import lru_cache

import numpy as np

from ..boot import Machine
from ..constants import DIRECTION_NAMES, IO_TLB_SHIFT, KiB, MiB
from ..debug import REPLAY_MAP_FAILED, observe
from ..pool import nr_slots
from ..report import text_table
from ..scenarios import Experiment, register
from .advise import ADVISE_PROFILES, advise, effective_nslabs
from .engine import livelock_groups
from .lifetime import DEFAULT_LIFETIME, lifetime_stats
from .read import TLB_FAILED, Trace
from .recordings import (KERNEL_LIVELOCK_LINES, RECORDINGS, T3_README, boot_record, kernel_hiwater, load,
                         requests_of, short_step, step_index, steps_ms, tracepoint_view)
from .replay import prepare_replay, replay
from .requests import min_request_slots, request_slots

#: Lifetime models of the main widget and of the calibration table.
DEFAULT_MODEL = DEFAULT_LIFETIME
WIDGET_POOLS = (512, 1024, 2048, 4096)
WIDGET_LIFETIMES = ("real", DEFAULT_MODEL, "qd:4")


# ======================================================================== recordings =====

def overview_rows():
    """One row per shipped recording: what it is and what is in it."""
    header = ("boot", "kernel", "swiotlb=", "max_sectors_kb", "bounced events", "kprobe unmaps",
              "requests", "abandoned attempts", "markers", "kernel hiwater")
    rows = []
    for boot, rec in RECORDINGS.items():
        tr = load(boot)
        reqs, _ = requests_of(boot)
        hw = kernel_hiwater(boot)
        b = boot_record(boot)
        if b is not None:        # what boots.jsonl recorded wins over the table above
            rec = dict(rec, swiotlb=b["swiotlb_param"],
                       max_sectors_kb=b["virtio_blk"]["vda_queue"]["max_sectors_kb_during_workload"])
        rows.append((boot, rec["kernel"], rec["swiotlb"].split("=", 1)[1], rec["max_sectors_kb"],
                     tr.counts["swiotlb_bounced"], tr.counts["unmap"], sum(not r.aborted for r in reqs),
                     sum(r.aborted for r in reqs), tr.counts["markers"], "-" if hw is None else hw))
    return header, rows


# ================================================================== what a trace holds ====

def _size_label(size: int) -> str:
    return f"{size // KiB} KiB" if size >= KiB and size % KiB == 0 else f"{size} B"


def size_rows(boot: str = "6.12-T1", min_count: int = 50):
    """Mappings per size: every size seen at least ``min_count`` times, then the rest in one
    row; with the slots each takes and the share of all slots mapped."""
    tr = load(boot)
    c = Counter(m.size for m in tr.mappings)
    total_slots = sum(nr_slots(s) * n for s, n in c.items())
    rows, rest_n, rest_slots, rest_sizes = [], 0, 0, 0
    for size, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= min_count:
            rows.append((_size_label(size), n, nr_slots(size), f"{nr_slots(size) * n / total_slots:.1%}"))
        else:
            rest_n += n
            rest_slots += nr_slots(size) * n
            rest_sizes += 1
    if rest_n:
        rows.append((f"{rest_sizes} other sizes", rest_n, "1-127", f"{rest_slots / total_slots:.1%}"))
    rows.append(("all", len(tr.mappings), "", "100.0%"))
    return ("size", "mappings", "slots each", "share of slots"), rows


def direction_rows(boot: str = "6.12-T2"):
    """Mappings per DMA direction, from the kprobe ``map`` event's ``dir`` argument (the
    tracepoint has no direction): small control mappings and data pages apart."""
    tr = load(boot)
    if not tr.counts["map"]:
        raise ValueError(f"{boot}: no kprobe map events, so no direction")
    rows = []
    for d in sorted({m.dir for m in tr.mappings}):
        ms = [m for m in tr.mappings if m.dir == d]
        small = [m for m in ms if m.size < 4096]
        data = [m for m in ms if m.size >= 4096]
        rows.append((f"{d} {DIRECTION_NAMES[d]}", len(ms), len(small), len(data),
                     f"{sum(m.size for m in data) / MiB:.1f}", sum(nr_slots(m.size) for m in ms)))
    return ("dir", "mappings", "< 4 KiB", ">= 4 KiB", "data MiB", "slots"), rows


def step_rows(boot: str = "6.12-T1"):
    """Per workload step: mappings, requests, MiB bounced, the largest request (KiB of data
    and slots held at once), and the kernel's ``io_tlb_used_hiwater`` read after the step
    (boots.jsonl; not reset between steps, so it only grows)."""
    tr = load(boot)
    idx = step_index(tr)
    reqs, _ = requests_of(boot)
    b = boot_record(boot)
    hw = [w["io_tlb_used_hiwater_after"] for w in b["workload"]] if b else []
    rows = []
    for k, (_, _, name) in enumerate(tr.markers[:-1]):
        ms = [i for i, s in enumerate(idx) if s == k]
        rq = [r for r in reqs if idx[r.members[0]] == k and not r.aborted]
        big = max(rq, key=lambda r: request_slots(r, tr.mappings), default=None)
        rows.append((name, len(ms), len(rq), f"{sum(tr.mappings[i].size for i in ms) / MiB:.2f}",
                     big.data_bytes // KiB if big else 0, request_slots(big, tr.mappings) if big else 0,
                     hw[k] if k < len(hw) else "-"))
    return ("step", "mappings", "requests", "MiB", "largest request KiB", "its slots",
            "kernel hiwater after"), rows


# ================================================================== lifetimes and models ====

def lifetime_rows(boot: str = "6.12-T2"):
    """Measured lifetimes in ms, per mapping and per request (:func:`swiotlb_lib.trace.lifetime_stats`)."""
    st = lifetime_stats(load(boot))
    rows = []
    for key, what in (("per_mapping", "mapping: map to unmap"),
                      ("per_request", "request: last map to last unmap")):
        s = st[key]
        rows.append((what, s["n"], *(f"{s[k] * 1e3:.2f}" for k in ("p10", "median", "mean", "p90", "p99")),
                     f"{s['lognormal_median'] * 1e3:.2f}", f"{s['lognormal_sigma']:.2f}"))
    return ("lifetime of a", "n", "p10 ms", "median ms", "mean ms", "p90 ms", "p99 ms",
            "lognormal median ms", "sigma"), rows


def lognormal_spec(boot: str = "6.12-T2") -> str:
    """A ``lognormal:`` model fitted to the measured per-request lifetimes."""
    s = lifetime_stats(load(boot))["per_request"]
    return f"lognormal:{s['lognormal_median'] * 1e6:.0f}us,{s['lognormal_sigma']:.1f}"


def median_spec(boot: str = "6.12-T2") -> str:
    """A ``fixed:`` model at the measured median per-request lifetime."""
    return f"fixed:{lifetime_stats(load(boot))['per_request']['median'] * 1e6:.0f}us"


def calibration_models(boot: str = "6.12-T2") -> list:
    """The lifetime models the chapter compares with the measured lifetimes."""
    return [DEFAULT_MODEL, median_spec(boot), "exp:1500us", lognormal_spec(boot), "qd:2", "qd:4"]


@lru_cache(maxsize=None)
def _prepared(boot: str, view: str):
    """The recording checked and grouped into requests once per process
    (:func:`~swiotlb_lib.trace.replay.prepare_replay`), for every replay of it."""
    return prepare_replay(tracepoint_view(boot) if view == "tracepoint" else load(boot))


@lru_cache(maxsize=64)
def replay_run(boot: str, kernel: str = "v6.11", nslabs: int | None = None, lifetime: str | None = None,
               view: str = "full"):
    """Replay a recording through ``kernel`` with ``swiotlb=<nslabs>,force`` (the kernel's
    default pool when ``nslabs`` is None).  ``view="tracepoint"`` drops the kprobe data
    first, as if only the tracepoint had been recorded.  ``lifetime`` defaults to ``real``
    when the view has unmaps, else the library's default model.

    Returns ``(ReplayResult, failures)`` with ``failures`` a list of ``(time s, slots in
    use, size)`` for every failed mapping attempt.  Cached: the chapter reuses runs."""
    cmdline = "swiotlb=force" if nslabs is None else f"swiotlb={nslabs},force"
    fails: list = []
    with observe(REPLAY_MAP_FAILED, lambda ev: fails.append((ev.time, ev.used, ev.size))):
        r = replay(_prepared(boot, view), kernel, cmdline, lifetime)
    return r, fails


def _causes(res) -> str:
    return ", ".join(f"{k} {v}" for k, v in res.failures.items() if v) or "none"


def calibration_rows(models=None):
    """Peak slots in use with the measured lifetimes and with each model, on the kprobe
    recording (6.12-T2, its tracepoint view for the models) and, as a check on a recording
    the models were not fitted to, on 6.12-T1; against the kernel's high-water marks.  The
    last column: failed requests in a replay of 6.12-T2 with a 2048-slot pool."""
    models = calibration_models() if models is None else list(models)
    real, _ = replay_run("6.12-T2", lifetime="real")
    real2k, _ = replay_run("6.12-T2", nslabs=2048, lifetime="real")
    rows = [("real (kprobe unmaps)", real.result.peak_used_slots, "-", real2k.failed_requests)]
    for spec in models:
        a, _ = replay_run("6.12-T2", lifetime=spec, view="tracepoint")
        b, _ = replay_run("6.12-T1", lifetime=spec)
        c, _ = replay_run("6.12-T2", nslabs=2048, lifetime=spec, view="tracepoint")
        rows.append((spec, a.result.peak_used_slots, b.result.peak_used_slots, c.failed_requests))
    hdr = ("lifetime", f"peak 6.12-T2 (kernel {kernel_hiwater('6.12-T2')})",
           f"peak 6.12-T1 (kernel {kernel_hiwater('6.12-T1')})", "failed requests, 2048 slots")
    return hdr, rows


def thin(timeline, points: int = 1500):
    """At most ``4 * points`` samples of a replay timeline: per bucket the first, lowest,
    highest and last value, in time order.  For a step plot this keeps the peaks *and* the
    moments the pool emptied (``Timeline.decimate`` keeps only the maxima, so a gap
    between requests would be drawn as still full)."""
    t, u = timeline.t, timeline.used
    n = len(t)
    if n <= 4 * points:
        return t.copy(), u.copy()
    edges = np.linspace(0, n, points + 1).astype(np.int64)
    idx = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            idx += [a, a + int(np.argmin(u[a:b])), a + int(np.argmax(u[a:b])), b - 1]
    idx = np.unique(np.asarray(idx))
    return t[idx], u[idx]


def _ms(tr: Trace, t) -> np.ndarray:
    return (np.asarray(t, dtype=float) - tr.markers[0][1]) * 1e3


def running_peaks(boot: str, r) -> list:
    """The replay's highest slots-in-use up to the end of each workload step (the next
    marker), comparable with the kernel's hiwater read after each step."""
    return _peaks_by_step(load(boot), r.timeline.t, r.timeline.used)


def measured_usage(boot: str = "6.12-T2"):
    """Slots in use over time straight from a kprobe trace, without a replay: every mapping
    holds ``nr_slots(size)`` slots from its ``map`` to its ``unmap`` event.  Returns
    ``(t seconds, used)`` after each event (ties in trace-line order)."""
    tr = load(boot)
    if not tr.has_unmaps:
        raise ValueError(f"{boot}: no unmap events, so no measured usage")
    ev = []
    for m in tr.mappings:
        if m.unmap_time is None or m.tlb in (None, TLB_FAILED):
            continue
        ev.append((m.time, m.line, nr_slots(m.size)))
        ev.append((m.unmap_time, m.unmap_line, -nr_slots(m.size)))
    ev.sort(key=lambda e: (e[0], e[1]))
    return np.array([e[0] for e in ev]), np.cumsum([e[2] for e in ev])


def _peaks_by_step(tr, t, u) -> list:
    out = []
    for _, b in zip(tr.markers[:-1], tr.markers[1:]):
        sel = t < b[1]
        out.append(int(u[sel].max()) if sel.any() else 0)
    return out


def hiwater_rows(boot: str = "6.12-T2", models=(DEFAULT_MODEL,)):
    """Per step: the kernel's ``io_tlb_used_hiwater`` after it, the same number computed
    from the trace's own map/unmap events (kprobe recordings), and the replay's running
    peak with real lifetimes and with each model."""
    b = boot_record(boot)
    hw = [w["io_tlb_used_hiwater_after"] for w in b["workload"]]
    cols, header = [], ["step", "kernel"]
    if load(boot).has_unmaps:
        cols.append(_peaks_by_step(load(boot), *measured_usage(boot)))
        header.append("trace map/unmap")
        cols.append(running_peaks(boot, replay_run(boot, lifetime="real")[0]))
        header.append("replay, real")
    for spec in models:
        view = "tracepoint" if load(boot).has_unmaps else "full"
        cols.append(running_peaks(boot, replay_run(boot, lifetime=spec, view=view)[0]))
        header.append(f"replay, {spec}")
    rows = [(short_step(m[2]), hw[k], *(c[k] for c in cols)) for k, m in enumerate(load(boot).markers[:-1])]
    return tuple(header), rows


def calibration_curves(models=(DEFAULT_MODEL, "qd:1", "qd:2")):
    """``[(label, kind, t_ms, used)]`` for the calibration figure (6.12-T2), real first."""
    tr = load("6.12-T2")
    out = []
    for spec in ["real", *models]:
        r, _ = replay_run("6.12-T2", lifetime=spec, view="full" if spec == "real" else "tracepoint")
        t, u = r.timeline.t, r.timeline.used
        label = "real lifetimes (kprobe unmaps)" if spec == "real" else f"model {spec}"
        out.append((f"{label}: peak {r.result.peak_used_slots}", spec.split(":")[0], _ms(tr, t), u))
    return out


def calibration_windows(boot: str = "6.12-T2"):
    """Two windows of the trace for the calibration figure: the sequential 1 MiB direct
    write and read, and the two parallel steps."""
    steps, _ = steps_ms(load(boot))
    seq = [s for s in steps if s[2] in ("W 1M", "R 1M")]
    par = [s for s in steps if s[2].startswith("4x")]
    return [(seq[0][0] - 1, seq[-1][1] + 1, "sequential: dd bs=1M, write then read"),
            (par[0][0] - 1, par[-1][1] + 1, "parallel: 4 x dd bs=1M, write then read")]


# ======================================================================= profiles =====

#: (profile, pool slots) pairs of the replay table: the fixed-pool kernels across sizes, the
#: RFC and the merged dynamic kernels from small boot pools.
PROFILE_RUNS = (("v6.11", 512), ("v6.11", 1024), ("v6.11", 2048), ("v6.11", 4096), ("v6.11", None),
                ("v6.3", 1024), ("v6.3", 4096), ("rfc-v1", 512),
                ("v6.6-dynamic", 256), ("v6.6-dynamic", 512), ("v6.6-dynamic", 1024),
                ("v6.11-dynamic", 256), ("v6.11-dynamic", 512))


def profile_rows(boot: str = "6.12-T1", runs=PROFILE_RUNS, lifetime: str | None = None):
    """One replay per (profile, pool): failed requests, failed mapping attempts by cause,
    livelocks, peak slots used, memory held for bouncing (peak and end), pools added and
    transient pools."""
    rows = []
    for kernel, n in runs:
        r, _ = replay_run(boot, kernel, n, lifetime)
        x = r.result
        rows.append((kernel, x.cmdline.replace("swiotlb=", ""), f"{r.failed_requests}/{x.extra['requests']}",
                     _causes(x), len(r.livelocks), x.peak_used_slots, f"{x.peak_bounce_bytes / MiB:.2f}",
                     f"{x.end_bounce_bytes / MiB:.2f}", x.pools_added, x.transient_pools))
    return ("profile", "swiotlb=", "failed req", "failed attempts", "livelocks", "peak used", "MiB peak",
            "MiB end", "pools added", "transient"), rows


def small_pool_check():
    """6.12-T3 (recorded with ``swiotlb=512,force``, ``max_sectors_kb`` 256) replayed with
    the same pool: what the model and the kernel said."""
    r, fails = replay_run("6.12-T3", "v6.11", 512)
    full = [ln for ln in r.result.log if "buffer is full" in ln]
    return {"peak": r.result.peak_used_slots, "kernel_hiwater": T3_README["hiwater"],
            "failed_attempts": r.result.failed, "failed_requests": r.failed_requests,
            "requests": r.result.extra["requests"], "aborted_in_trace": r.result.extra["aborted_in_trace"],
            "completed": r.result.extra["requests_completed"], "gave_up": r.result.extra["gave_up"],
            "livelocks": len(r.livelocks), "first_log_lines": full[:3]}


def failure_steps_rows(nslabs: int = 1024, runs=(("6.12-T1", None, "full"), ("6.12-T2", "real", "full")),
                       kernel_boot: str = "6.12-e"):
    """Per workload step: failed mapping attempts in replays with ``swiotlb=<nslabs>,force``,
    next to a real boot with that pool (its hiwater after each step; ``kernel_boot`` ran
    the same workload untraced)."""
    b = boot_record(kernel_boot)
    hw = [w["io_tlb_used_hiwater_after"] for w in b["workload"]]
    cols, header = [], ["step", f"kernel {kernel_boot} hiwater"]
    for boot, lt, view in runs:
        tr = tracepoint_view(boot) if view == "tracepoint" else load(boot)
        r, fails = replay_run(boot, RECORDINGS[boot]["profile"], nslabs, lt, view)
        starts = [m[1] for m in tr.markers]
        per = Counter(bisect.bisect_right(starts, f[0]) - 1 for f in fails)
        cols.append([per.get(k, 0) for k in range(len(tr.markers) - 1)])
        header.append(f"failed attempts, {boot} ({r.lifetime.spec})")
    rows = [(short_step(m[2]), hw[k], *(c[k] for c in cols)) for k, m in enumerate(load("6.12-T1").markers[:-1])]
    return tuple(header), rows


# ======================================================================== advisor =====

def rounding_rows(values=(500, 1000, 1549, 1761, 2049, 3000), cpus=(1, 2, 4, 8, 64)):
    """What the kernel builds from ``swiotlb=<value>`` on machines with these CPU counts."""
    rows = [(v, *(effective_nslabs(v, c) for c in cpus)) for v in values]
    return ("swiotlb=", *(f"{c} CPU" + ("s" if c > 1 else "") for c in cpus)), rows


@lru_cache(maxsize=32)
def advice(boot: str = "6.12-T1", kernels=ADVISE_PROFILES, target: float | None = 0.02,
           lifetime: str | None = None, view: str = "full", max_sectors_kb: int | None = None):
    """:func:`swiotlb_lib.trace.advise` on a recording (cached)."""
    tr = tracepoint_view(boot) if view == "tracepoint" else load(boot)
    return tuple(advise(tr, list(kernels), lifetime, target_failure_rate=target,
                          max_sectors_kb=max_sectors_kb))


def advice_rows(boot: str = "6.12-T1", target: float = 0.02):
    """Per profile: the smallest ``swiotlb=`` with no failed request, the smallest with at
    most ``target`` of requests failed, and what the clean replay used and held."""
    rows = []
    for a in advice(boot, target=target):
        rows.append((a.profile, a.recommended_cmdline.replace("swiotlb=", ""),
                     f"{(a.recommended_nslabs << IO_TLB_SHIFT) / MiB:g}",
                     a.target_cmdline.replace("swiotlb=", "") if a.target_cmdline else "-",
                     f"{a.target_replayed_failure_rate:.1%}" if a.target_cmdline else "-",
                     a.peak_used_slots, f"{a.peak_bounce_bytes / MiB:.2f}"))
    return ("profile", "no failures: swiotlb=", "MiB", f"<= {target:.0%} failed: swiotlb=", "replayed",
            "peak used", "MiB held"), rows


def advice_warnings(boot: str = "6.12-T1", target: float = 0.02) -> list:
    """The advisor's warnings, each once, with the profiles that gave it."""
    seen: dict = {}
    for a in advice(boot, target=target):
        for w in a.warnings:
            seen.setdefault(w, []).append(a.profile)
    return [(w, ps) for w, ps in seen.items()]


def advice_bars(boot: str = "6.12-T1", target: float = 0.02):
    """``[(profile, recommended MiB, MiB held at peak)]`` for :func:`plots.sizing.plot_advice`."""
    return [(a.profile, (a.recommended_nslabs << IO_TLB_SHIFT) / MiB, a.peak_bounce_bytes / MiB)
            for a in advice(boot, target=target)]


def model_check_rows(boot: str = "6.12-T1", models=(DEFAULT_MODEL, "exp:1500us", "qd:2", "qd:4")):
    """Which lifetime model to believe: each model's replay peak with the pool the
    recording had, against the kernel's ``io_tlb_used_hiwater`` of the same run, and the
    advisor's no-failure answer under that model."""
    hw = kernel_hiwater(boot)
    prof = RECORDINGS[boot]["profile"]
    rows = []
    for spec in models:
        r, _ = replay_run(boot, prof, None, spec)
        a, = advice(boot, (prof,), None, spec)
        peak = r.result.peak_used_slots
        rows.append((spec, peak, hw, f"{(peak - hw) / hw:+.1%}", a.recommended_cmdline.replace("swiotlb=", "")))
    return ("lifetime", "replay peak", "kernel hiwater", "difference", f"{prof}: no failures: swiotlb="), rows


def min_slots_rows(kbs=(128, 256, 512, 1024, 1280)):
    """Slots one virtio-blk request of ``max_sectors_kb`` holds at once, and the smallest
    pool the kernel builds that holds it (2 CPUs)."""
    rows = []
    for kb in kbs:
        need = min_request_slots(kb)
        rows.append((kb, need, effective_nslabs(need, 2)))
    return ("max_sectors_kb", "slots at once", "smallest pool (2 CPUs)"), rows


def spread_rows():
    """The no-failure answer for the 6.12 (v6.11) and 6.1 (v6.3) recordings, with real
    lifetimes where there are some and with the default model."""
    cases = (("6.12-T1", "full", None), ("6.12-T2", "full", "real"), ("6.12-T2", "tracepoint", None),
             ("6.1-T1", "full", None), ("6.12-T3", "full", None))
    rows = []
    for boot, view, lt in cases:
        prof = RECORDINGS[boot]["profile"]
        a, = advice(boot, (prof,), None, lt, view)
        r, _ = replay_run(boot, prof, None, lt, view)
        rows.append((boot + (" tracepoint only" if view == "tracepoint" else ""), prof,
                     lt or DEFAULT_MODEL, r.result.peak_used_slots, "-" if kernel_hiwater(boot) is None
                     else kernel_hiwater(boot), a.recommended_cmdline.replace("swiotlb=", "")))
    return ("recording", "profile", "lifetime", "peak used", "kernel hiwater", "no failures: swiotlb="), rows


def demand_data(boot: str = "6.12-T1", pools=(1024, 2048, 4096), lifetime: str | None = None,
                points: int = 1000):
    """The main figure's data: the replay with the kernel's default 64 MiB pool (never
    full here, so it shows the demand), and for each candidate pool the outcome of its own
    replay as a label."""
    tr = load(boot)
    prof = RECORDINGS[boot]["profile"]
    r, _ = replay_run(boot, prof, None, lifetime)
    t, u = thin(r.timeline, points)
    labels = []
    for n in pools:
        rn, _ = replay_run(boot, prof, n, lifetime)
        bad = rn.failed_requests
        labels.append((n, f"swiotlb={n}: {(n << IO_TLB_SHIFT) // MiB} MiB, "
                          + (f"{bad} of {rn.result.extra['requests']} requests failed" if bad else "no failures")))
    steps, _ = steps_ms(tr)
    return {"t": _ms(tr, t), "used": u, "pools": labels, "steps": steps, "hiwater": kernel_hiwater(boot),
            "peak": r.result.peak_used_slots, "lifetime": r.lifetime.spec, "profile": prof}


# ======================================================================= livelock =====

def livelock_rows(runs=(("6.12-T1", None), ("6.12-T2", "real"))):
    """Livelocks of 1 MiB-pool replays (``swiotlb=512,force``), grouped by what the failing
    retry saw: slots in use and the size of the mapping that did not fit; with the line the
    kernel repeated in ``data/realkernel/README.md`` finding 12, where one matches."""
    rows = []
    kernel = {v: k for k, v in KERNEL_LIVELOCK_LINES.items()}
    for boot, lt in runs:
        r, _ = replay_run(boot, "v6.11", 512, lt)
        c = Counter((x.used, x.failed_size) for x in r.livelocks)
        for (used, size), n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])):
            rows.append((f"{boot} ({r.lifetime.spec})", used, size, n, kernel.get((used, size), "")))
    return ("replay", "slots in use", "mapping that did not fit (bytes)", "requests", "kernel boot with this line"), rows


def livelock_summary(boot: str = "6.12-T1", lifetime: str | None = None) -> dict:
    """The 1 MiB-pool replay (``swiotlb=512,force`` on v6.11): requests, how many completed
    and livelocked, failed attempts, and each group of alike livelocks with its message."""
    r, fails = replay_run(boot, "v6.11", 512, lifetime)
    x = r.result.extra
    return {"requests": x["requests"], "completed": x["requests_completed"], "livelocks": len(r.livelocks),
            "failed_attempts": r.result.failed, "first": r.livelocks[0].message() if r.livelocks else "",
            "groups": [(n, first.message()) for first, n in livelock_groups(r.livelocks)]}


def livelock_plot_data(boot: str = "6.12-T1", lifetime: str | None = None, before_ms=3.0, after_ms=25.0):
    """A window around the first livelock of the 512-slot replay, for the zoomed figure."""
    tr = load(boot)
    r, fails = replay_run(boot, "v6.11", 512, lifetime)
    first = r.livelocks[0]
    f = np.asarray([(a, u) for a, u, _ in fails], dtype=float)
    first_fail = float(f[f[:, 0] <= first.time, 0].min())
    lo, hi = (first_fail - tr.markers[0][1]) * 1e3 - before_ms, (first.time - tr.markers[0][1]) * 1e3 + after_ms
    t = _ms(tr, r.timeline.t)
    sel = (t >= lo - 1) & (t <= hi + 1)
    fm = np.column_stack([_ms(tr, f[:, 0]), f[:, 1]])
    fm = fm[(fm[:, 0] >= lo) & (fm[:, 0] <= hi)]
    ll = [v for v in _ms(tr, [x.time for x in r.livelocks]) if lo <= v <= hi]
    return {"t": t[sel], "used": r.timeline.used[sel], "fails": fm, "livelocks": ll, "window": (lo, hi),
            "nslabs": r.nslabs}


# ===================================================================== widget states =====

def pool_state(lifetime: str, nslabs: int, boot: str = "6.12-T2") -> dict:
    """One state of the main widget: the replay of the 6.12-T2 recording on v6.11 with
    ``swiotlb=<nslabs>,force``; modelled lifetimes use its tracepoint view."""
    view = "full" if lifetime == "real" else "tracepoint"
    tr = load(boot)
    r, fails = replay_run(boot, "v6.11", nslabs, lifetime, view)
    t, u = thin(r.timeline, 250)
    steps, _ = steps_ms(tr)
    clean = [n for n in WIDGET_POOLS if replay_run(boot, "v6.11", n, lifetime, view)[0].ok]
    return {"t": _ms(tr, t), "used": u, "fails": [((a - tr.markers[0][1]) * 1e3, b) for a, b, _ in fails],
            "livelocks": list(_ms(tr, [x.time for x in r.livelocks])), "steps": steps, "nslabs": r.nslabs,
            "peak": r.result.peak_used_slots, "failed_requests": r.failed_requests,
            "requests": r.result.extra["requests"], "failed_attempts": r.result.failed,
            "n_livelocks": len(r.livelocks), "smallest_clean": clean[0] if clean else None,
            "lifetime": lifetime}


def kernel_build(slots: int = 1761, cpus: int = 2, max_sectors_kb: int = 1280, ram: str = "2G") -> dict:
    """What the kernel builds from ``swiotlb=<slots>,force`` on a machine with ``cpus`` CPUs
    and ``ram`` (the model boots it), and the slots one request of ``max_sectors_kb`` holds
    at once (``need``; it ``fits`` or the request livelocks, finding 12).  ``nslabs`` is 0
    when no pool was built."""
    if type(slots) is not int or not 1 <= slots <= 1 << 16:
        raise ValueError(f"slots: an integer in 1..65536, got {slots!r}")
    m = Machine(ram=ram, cpus=cpus, cmdline=f"swiotlb={slots},force")
    pool = m.swiotlb.defpool
    need = min_request_slots(max_sectors_kb)
    d = {"slots": slots, "cpus": cpus, "ram": ram, "max_sectors_kb": max_sectors_kb, "need": need,
         "nslabs": 0, "nareas": 0, "area_nslabs": 0, "fits": False,
         "log": [ln for ln in m.swiotlb_lines() if ln.startswith("software IO TLB")]}
    if pool is not None and pool.nslabs:
        d.update(nslabs=pool.nslabs, nareas=pool.nareas, area_nslabs=pool.area_nslabs,
                 fits=need <= pool.nslabs)
    return d


# ======================================================================= experiments =====

def table_lines(value) -> list:
    """A ``(header, rows)`` pair as the lines the chapter prints."""
    return text_table(*value, strip=True).splitlines()


def small_pool_lines(chk: dict) -> list:
    """:func:`small_pool_check` as the chapter prints it."""
    keys = ("peak", "kernel_hiwater", "requests", "aborted_in_trace", "failed_requests", "completed",
            "gave_up", "livelocks")
    return [f"{k:17} {chk[k]}" for k in keys] + list(chk["first_log_lines"])


def livelock_lines(ll: dict) -> list:
    """:func:`livelock_summary` as the chapter prints it."""
    return ([f"{ll['requests']} requests, {ll['completed']} completed, {ll['livelocks']} livelocked, "
             f"{ll['failed_attempts']} failed mapping attempts"]
            + [f"{count} x {message}" for count, message in ll["groups"]])


def pool_state_lines(s: dict) -> list:
    """One state of the main widget in words."""
    return [f"6.12-T2 on v6.11, lifetimes {s['lifetime']}: peak {s['peak']} of "
            f"{s['nslabs']} slots; {s['failed_requests']} of {s['requests']} requests failed at least "
            f"once ({s['failed_attempts']} failed mapping attempts, {s['n_livelocks']} livelocked); "
            f"smallest of {', '.join(map(str, WIDGET_POOLS))} slots with no failures: {s['smallest_clean']}"]


def kernel_build_lines(d: dict) -> list:
    """:func:`kernel_build` in words."""
    if not d["nslabs"]:
        return [f"swiotlb={d['slots']},force: no pool"]
    return [f"swiotlb={d['slots']},force on {d['cpus']} CPUs, {d['ram']} RAM: {d['nslabs']} slots in "
            f"{d['nareas']} areas of {d['area_nslabs']}; a {d['max_sectors_kb']} KiB request holds "
            f"{d['need']} slots: " + ("fits" if d["fits"] else "never completes (livelock)"), *d["log"]]


#: The chapter's experiments: (name, function, summary, formatter, defaults).
EXPERIMENTS = (
    ("trace-recordings", overview_rows, "the shipped trace recordings and what each holds", table_lines, {}),
    ("trace-sizes", size_rows, "mappings per size in 6.12-T1", table_lines, {"boot": "6.12-T1"}),
    ("trace-directions", direction_rows, "mappings per DMA direction (kprobe recording 6.12-T2)",
     table_lines, {"boot": "6.12-T2"}),
    ("trace-steps", step_rows, "mappings, requests and kernel hiwater per workload step of 6.12-T1",
     table_lines, {"boot": "6.12-T1"}),
    ("trace-lifetimes", lifetime_rows, "measured lifetimes per mapping and per request (6.12-T2)",
     table_lines, {}),
    ("lifetime-calibration", calibration_rows, "replay peaks with real and modelled lifetimes",
     table_lines, {}),
    ("hiwater-by-step", hiwater_rows, "kernel hiwater against the trace and replays, per step (6.12-T2)",
     table_lines, {"boot": "6.12-T2", "models": ("fixed:1500us", "qd:1", "qd:2")}),
    ("replay-profiles", profile_rows, "6.12-T1 replayed per profile and pool size", table_lines,
     {"boot": "6.12-T1"}),
    ("failures-by-step", failure_steps_rows, "failed attempts per step with a 1024-slot pool",
     table_lines, {"nslabs": 1024}),
    ("small-pool-trace", small_pool_check, "6.12-T3 (swiotlb=512,force) replayed with its own pool",
     small_pool_lines, {}),
    ("pool-rounding", rounding_rows, "what the kernel builds from swiotlb=<value> per CPU count",
     table_lines, {}),
    ("trace-advice", advice_rows, "the advisor's swiotlb= per profile for 6.12-T1", table_lines,
     {"boot": "6.12-T1", "target": 0.02}),
    ("lifetime-check", model_check_rows, "replay peak per lifetime model against the kernel hiwater",
     table_lines, {"boot": "6.12-T1"}),
    ("advice-spread", spread_rows, "the no-failure answer across recordings and lifetimes", table_lines, {}),
    ("livelock-summary", livelock_summary, "6.12-T1 replayed with a 1 MiB pool: livelocked requests",
     livelock_lines, {"boot": "6.12-T1"}),
    ("livelock-replays", livelock_rows, "livelocks of 1 MiB-pool replays against the kernel's lines",
     table_lines, {}),
    ("request-floor", min_slots_rows, "slots one request of max_sectors_kb holds, smallest pool",
     table_lines, {}),
    ("pool-run", pool_state, "one state of the main widget: 6.12-T2 with a given pool and lifetime",
     pool_state_lines, {"lifetime": "real", "nslabs": 1024}),
    ("kernel-build", kernel_build, "what the kernel builds from swiotlb=<slots>,force", kernel_build_lines,
     {"slots": 1761, "cpus": 2, "max_sectors_kb": 1280, "ram": "2G"}),
)
for _name, _func, _summary, _lines, _defaults in EXPERIMENTS:
    register(Experiment(_name, _func, _summary, chapter="ch09b", kernels="none", seeded=False,
                        lines=_lines, defaults=_defaults))
