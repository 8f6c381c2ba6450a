"""Replay: a trace's mappings through any kernel profile and ``swiotlb=`` setting.

:func:`replay` boots a :class:`~swiotlb_lib.boot.Machine` of the chosen profile, runs the
trace through the :class:`~swiotlb_lib.trace.engine.Engine` and returns a
:class:`ReplayResult`: the tallies of the ``scenario`` command
(:class:`~swiotlb_lib.scenarios.systems.ScenarioResult`), the livelocks and the used-slots
:class:`Timeline`; every failed mapping attempt fires the
:data:`~swiotlb_lib.debug.REPLAY_MAP_FAILED` hook point.  Mappings are grouped into block
requests when the trace has the shape of virtio-blk or NVMe (:mod:`swiotlb_lib.trace.requests`);
other drivers' mappings are replayed ungrouped, and the text and JSON (``grouping_note``) say so.
:func:`calibrate` sets modelled lifetimes against the real ones of a kprobe trace.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from ..boot import Machine
from ..dynamic import Grower
from ..cmdline import split_cmdline
from ..constants import DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, IO_TLB_SHIFT, GiB, KiB
from ..memory import layout_for, parse_size
from ..versions import get_profile
from ..scenarios.systems import ScenarioResult
from ..device import Device, preset
from .engine import Engine, StopReplay, livelock_groups
from .fast import CompiledEngine, supported, worth_it
from .follow_dynamic import FollowDynamic
from .follow import Follow, follow_note, follows, infer_min_align_mask, recorded_fit
from .lifetime import DEFAULT_LIFETIME, Lifetime, parse_lifetime, tracepoint_only
from .read import TLB_FAILED, Trace, gc_paused, read_trace
from .requests import BLOCK_KINDS, MAX_MAPPING_BYTES, group_requests, grouping_note, mapping_table
from .table import HAS_DIR

#: ``BLK_MQ_RESOURCE_DELAY`` (block/blk-mq.h): blk-mq reruns a queue whose driver answered
#: ``BLK_STS_RESOURCE`` after 3 ms, or sooner when one of the device's requests completes.
BLK_MQ_RESOURCE_DELAY = 0.003
#: Retries of one request before the replay gives up on it, and how many identical
#: failures with nothing else in flight (same mapping, same slots in use) make a livelock.
DEFAULT_MAX_RETRIES = 100
DEFAULT_LIVELOCK_REPEATS = 3


@dataclass
class Timeline:
    """Slots in use over time (``t`` seconds of trace time, ``used`` slots), for plotting;
    ``nslabs`` is the boot pool."""

    t: np.ndarray
    used: np.ndarray
    nslabs: int

    def decimate(self, points: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """At most ``points`` samples keeping each bucket's maximum (peaks survive)."""
        if points < 1:
            raise ValueError(f"points: must be >= 1, got {points}")
        n = len(self.t)
        if n <= points:
            return self.t.copy(), self.used.copy()
        # ``points`` buckets of equal length (none empty: n > points); in each, the first
        # sample at the bucket's maximum.  Worked through about a million samples at a time,
        # so the temporary arrays stay small however long the timeline.
        edges = np.linspace(0, n, points + 1).astype(np.int64)
        idx = np.empty(points, np.int64)
        step = max(1, points * (1 << 20) // n)          # buckets per chunk
        for b0 in range(0, points, step):
            b1 = min(b0 + step, points)
            lo = edges[b0]
            used = self.used[lo:edges[b1]]
            bucket = np.repeat(np.arange(b1 - b0, dtype=np.int32), np.diff(edges[b0:b1 + 1]))
            top = np.maximum.reduceat(used, edges[b0:b1] - lo)
            hits = np.flatnonzero(used == top[bucket])
            bh = bucket[hits]                           # ascending: the first hit of each bucket
            idx[b0:b1] = lo + hits[np.concatenate(([True], bh[1:] != bh[:-1]))]
        return self.t[idx], self.used[idx]


def thin_timeline(t: np.ndarray, used: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """A timeline of at most ``points`` points: samples taken in pairs, the first highest of
    each pair kept (the first of two equal), again until no more than ``points`` are left.  So
    each point is the first highest sample of a stretch of ``2**k`` in a row (the last stretch
    may be shorter), ``k`` the least that fits, and the peaks survive.  Merging in pairs is what
    the compiled engine does as the timeline grows (``fast_loop._record``), so both engines keep
    the same points without either holding the whole timeline in the compiled case."""
    if type(points) is not int or points < 1:
        raise ValueError(f"points: must be a positive integer, got {points!r}")
    while len(t) > points:
        m = len(t) // 2 * 2
        first = used[0:m:2] >= used[1:m:2]
        pick = np.arange(0, m, 2) + ~first
        if len(t) > m:                                  # an odd last sample stands alone
            pick = np.append(pick, m)
        t, used = t[pick], used[pick]
    return t, used


@dataclass
class ReplayResult:
    """A replay: the scenario tallies (``result``), the lifetime model, livelocks, timeline."""

    result: ScenarioResult
    lifetime: Lifetime
    grouping: str
    nslabs: int
    livelocks: list
    timeline: Timeline | None
    trace: Trace
    warnings: list

    @property
    def complete(self) -> bool:
        """False when the replay was stopped early (``stop_when``): its tallies then count
        the trace only up to the failure that stopped it."""
        return not self.result.extra.get("stopped_early", False)

    @property
    def failed_requests(self) -> int:
        """Requests (lone mappings when not grouped) that met a full pool at least once;
        those failing on a mapping over 256 KiB, which fails at any pool size, aside (they
        are ``too_big_requests``)."""
        return self.result.extra["failed_requests"]

    @property
    def failed_units(self) -> int:
        """Requests (lone mappings when not grouped) with at least one failed mapping attempt,
        for any cause: ``failed_requests`` + ``too_big_requests``.  A livelocked request is
        one of them (it failed before it was found livelocked)."""
        x = self.result.extra
        return x["failed_requests"] + x.get("too_big_requests", 0)

    @property
    def failure_rate(self) -> float:
        """The headline failure rate, in the text and the JSON (``failure_rate``):
        :attr:`failed_units` / requests (mappings when not grouped), the share of I/O that
        saw "swiotlb buffer is full" or a mapping too big for any pool."""
        n = self.result.extra["requests"]
        return self.failed_units / n if n else 0.0

    @property
    def ok(self) -> bool:
        """No request met a full pool and none livelocked on a full pool (the advisor's
        criterion: requests that fail at any pool size, a mapping over 256 KiB, cannot be
        helped by a larger pool and do not count, livelocked or not)."""
        return self.failed_requests == 0 and all(x.failed_size > MAX_MAPPING_BYTES for x in self.livelocks)

    def to_dict(self) -> dict:
        d = self.result.to_dict()
        d.update(lifetime=self.lifetime.spec, lifetime_note=self.lifetime.describe(self._unit()),
                 lifetime_is_model=self.lifetime.is_model, grouping=self.grouping, nslabs=self.nslabs,
                 grouping_note=grouping_note(self.grouping),
                 failure_rate=self.failure_rate, follow=bool(self.result.extra.get("follow")),
                 livelocks=[x.to_dict() for x in self.livelocks], warnings=list(self.warnings),
                 trace=self.trace.to_dict())
        return d

    def _unit(self) -> str:
        return "request" if self.grouping in BLOCK_KINDS else "mapping"

    def summary_lines(self) -> list:
        out = self.trace.summary_lines()
        out.append(self.lifetime.describe(self._unit()))
        out.append(f"grouping: {self.grouping} ({grouping_note(self.grouping)})")
        out += self.result.summary_lines()
        r = self.result
        out.append(f"  failure rate {self.failure_rate:.4%} of {self._unit()}s "
                   f"({self.failed_units} of {r.extra['requests']}); "
                   f"{r.failed / r.attempted if r.attempted else 0:.4%} of mapping attempts")
        if r.extra.get("follow"):
            out.append("  " + follow_note(r.extra))
        for first, n in livelock_groups(self.livelocks):
            out.append(f"  LIVELOCK ({n} request{'s' if n > 1 else ''}): {first.message()}")
        out += [f"  warning: {w}" for w in self.warnings]
        return out


def _ram_for(trace: Trace, ram, calibration: str) -> int:
    """RAM for the replay machine: ``ram`` if it holds every traced buffer (else an error
    naming the first line that does not fit), or the smallest of 2G, 4G, 8G, ... that does."""
    maps = trace.mappings
    if not maps:
        return parse_size(ram, "ram") if ram is not None else 2 * GiB
    table = trace.table
    chunk = 1 << 20                                     # mappings at a time: small temporaries

    def outside(nbytes):
        banks = layout_for("x86_64", nbytes, calibration).ram
        for a in range(0, len(maps), chunk):
            starts = table.orig[a:a + chunk].astype(np.float64)
            ends = starts + table.size[a:a + chunk].astype(np.float64)
            ok = np.zeros(len(starts), dtype=bool)
            for lo, hi in banks:
                ok |= (starts >= lo) & (ends <= hi)
            bad = np.flatnonzero(~ok)
            if bad.size:
                return a + int(bad[0])
        return None

    if ram is not None:
        nbytes = parse_size(ram, "ram")
        k = outside(nbytes)
        if k is not None:
            mp = maps[k]
            raise ValueError(f"ram: line {mp.line} maps [{mp.orig:#x}, {mp.orig + mp.size:#x}), which "
                             f"is not RAM of a {ram} x86_64 machine; give a larger --ram")
        return nbytes
    nbytes = 2 * GiB
    while nbytes <= 1 << 40:
        if outside(nbytes) is None:
            return nbytes
        nbytes *= 2
    mp = maps[outside(1 << 40)]
    raise ValueError(f"ram: line {mp.line} maps [{mp.orig:#x}, {mp.orig + mp.size:#x}), outside the "
                     "RAM of any modelled x86_64 machine up to 1T")


def default_cmdline(trace: Trace) -> str:
    """``swiotlb=force`` if the trace shows FORCE, else nothing (bounce only when needed)."""
    return "swiotlb=force" if trace.force_seen else ""


def _with_rfc_dynamic(prof, cmdline: str) -> str:
    """RFC v1 only grows with ``swiotlb=...,dynamic`` (its point): add it, as the scenarios do."""
    if prof.dynamic != "rfc-v1":
        return cmdline
    for key, val in split_cmdline(cmdline):
        if key == "swiotlb" and val and "dynamic" in val.split(","):
            return cmdline
    words = cmdline.split()
    for i, w in enumerate(words):
        if w.startswith("swiotlb="):
            words[i] = w + ",dynamic"
            return " ".join(words)
    return (cmdline + " swiotlb=dynamic").strip()


@dataclass
class PreparedTrace:
    """What every replay of one trace shares, whatever the profile and ``swiotlb=``: the
    trace (its mappings checked), the grouping into requests (:func:`group_requests`), the
    device template, the traced bounce addresses' range, and the RAM per layout (computed
    once per calibration).  Made by :func:`prepare_replay`; pass it to :func:`replay` in
    place of the trace to replay the same trace many times (the advisor does)."""

    trace: Trace
    requests: str
    device: str | None
    reqs: list
    mode: str
    template: Device | None
    max_cpu: int
    traced_range: tuple | None
    ram_cache: dict
    #: what the replay engines share between replays (:func:`~swiotlb_lib.trace.engine.replay_index`,
    #: :func:`swiotlb_lib.trace.fast.columns`)
    engine_cache: dict = field(default_factory=dict)

    def ram_for(self, ram, calibration: str) -> int:
        """:func:`_ram_for`, once per ``(ram, calibration)``."""
        key = (ram, calibration)
        if key not in self.ram_cache:
            self.ram_cache[key] = _ram_for(self.trace, ram, calibration)
        return self.ram_cache[key]


def prepare_replay(trace, requests: str = "auto", device: str | None = None) -> PreparedTrace:
    """Read (if ``trace`` is a path), check and group a trace once for many :func:`replay` calls
    (see :class:`PreparedTrace`); ``requests`` and ``device`` as for :func:`replay`."""
    if not isinstance(trace, Trace):
        trace = read_trace(trace)
    _check_mappings(trace)
    if device is not None:
        if not isinstance(device, str):
            raise ValueError(f"device: must be a preset name (e.g. 'nvme'), got {device!r}")
        template = preset(device)
    else:
        table = mapping_table(trace.mappings)
        # without a recorded bounce address there is nothing to infer from (0)
        mask = infer_min_align_mask(trace) if table.kprobe and table.tlb_ok().any() else 0
        template = Device("trace-device", min_align_mask=mask) if mask else None
    reqs, mode = group_requests(trace.mappings, requests, template.driver if device is not None else None)
    if mode == "nvme" and device is None:
        # the trace shows the NVMe driver, whose nvme_probe() sets min_align_mask 0xfff
        # (swiotlb_lib.device.nvme) and whose PCI function dev_warn() names "nvme"
        template = (replace(preset("nvme"), name="trace-device") if template is None
                    else replace(template, driver="nvme"))
    if mode == "virtio-blk" and (template is None or not template.driver):
        # a virtio disk's DMA device is its PCI function, bound to virtio-pci, and dev_warn()
        # prefixes the driver and device names (drivers/base/core.c: __dev_printk(), with
        # dev_driver_string()): "virtio-pci 0000:00:02.0: ..." as in data/realkernel/boots.jsonl
        template = replace(template or Device("trace-device"), driver="virtio-pci")
    table = mapping_table(trace.mappings)
    traced = table.tlb[table.tlb_ok()] if table.kprobe else []
    return PreparedTrace(trace, requests, device, reqs, mode, template,
                         int(table.cpu.max()) if len(table) else 0,
                         (int(traced.min()), int(traced.max())) if len(traced) else None, {})


def replay(trace, kernel=None, cmdline: str | None = None, lifetime=None, *, cpus: int | None = None,
           ram=None, requests: str = "auto", seed: int = 1, max_retries: int = DEFAULT_MAX_RETRIES,
           livelock_repeats: int = DEFAULT_LIVELOCK_REPEATS, retry_delay: float = BLK_MQ_RESOURCE_DELAY,
           timeline: bool = True, progress=None, align_areas: bool = True, follow: bool | None = None,
           device: str | None = None, worker_delay: float | None = None,
           stop_when=None, engine: str = "auto", timeline_points: int | None = None) -> ReplayResult:
    """Replay a trace's mappings through profile ``kernel`` booted with ``cmdline``.

    ``trace`` is a :class:`Trace` or a path.  Defaults: ``cmdline`` = ``swiotlb=force``
    when the trace shows FORCE (see :func:`default_cmdline`), CPUs from the trace, RAM the
    smallest that holds every traced buffer, lifetime ``real`` when the trace recorded
    unmaps else :data:`DEFAULT_LIFETIME`.  ``lifetime`` is a spec string or a
    :class:`Lifetime`.  Deterministic: the same arguments give the same result.

    With ``real`` lifetimes and ``align_areas``, each area's search index starts where the
    traced kernel's first allocation in that area shows it was (boot-time I/O had moved it;
    :func:`areas_from_trace`), and ``extra["slot_agreement"]`` counts the first attempts
    that got the very bounce address the kernel returned.

    ``follow``: with ``True``, replay a kprobe trace that recorded the kernel's decisions
    (``map_ret``) by following them (:mod:`swiotlb_lib.trace.follow`): ``result.failed`` is
    then the mappings the model itself fails on the kernel's state, beside
    ``extra["failure_agreement"]``, ``["slot_agreement"]``, ``["lost_unmaps"]`` and
    ``["first_divergence"]``; a recorded address outside the model's pool is a
    :class:`ValueError`.  ``None`` (the default) follows when the trace has ``map_ret`` and
    unmap events, the lifetime is ``real``, the profile's pool does not grow and the
    recorded addresses all lie in the configured pool (a what-if at another pool size or
    place is replayed without following, with a warning).
    ``False`` takes every decision from the model (failures handled as the driver and
    block layer do, see :class:`~swiotlb_lib.trace.engine.Engine`).

    ``device``: a device preset (:func:`swiotlb_lib.device.preset`, e.g. ``"nvme"``) giving
    the ``min_align_mask`` and segment boundary the trace does not record; without it,
    ``min_align_mask`` is inferred from a kprobe trace (:func:`infer_min_align_mask`).

    ``worker_delay``: for a profile that grows by pools (``CONFIG_SWIOTLB_DYNAMIC``), the
    seconds of trace time between the first mapping that fits in no pool and the growth
    worker's new pool; ``None`` takes the model's calibrated value
    (:attr:`swiotlb_lib.dynamic.Grower.WORKER_DELAY_TCG`, measured in emulated guest time).

    ``trace`` may also be a :class:`PreparedTrace` (:func:`prepare_replay`, made with the same
    ``requests`` and ``device``): the checks and the grouping are then not repeated.

    ``stop_when``: None, or a predicate of the :class:`~swiotlb_lib.trace.engine.Engine`
    asked after every failed mapping attempt; when it answers true the replay ends there
    (``complete`` is False, ``extra["stopped_early"]`` True, ``extra["stopped_at"]`` the trace
    time of that failure, and every tally counts the trace up to it).  Only for replays that do not follow the recording.

    ``engine``: ``"auto"`` (the default) runs a replay that does not follow the recording on
    the compiled engine (:mod:`swiotlb_lib.trace.fast`) when it supports the case
    (:func:`swiotlb_lib.trace.fast.supported`) and pays for itself
    (:func:`swiotlb_lib.trace.fast.worth_it`: a trace of at least
    :data:`~swiotlb_lib.trace.fast.AUTO_MIN_MAPPINGS` mappings, or the engine already loaded in
    this process), else on the readable :class:`~swiotlb_lib.trace.engine.Engine`; ``"reference"`` always on the readable one;
    ``"compiled"`` on the compiled one or a :class:`ValueError` saying why not.  Both give
    the same results (``tests/test_trace_fast.py``).

    ``timeline_points``: None (every sample), or the most points the timeline keeps: beyond
    it, :func:`thin_timeline`'s sample (each point the first highest of a stretch of samples),
    which the compiled engine makes as it goes, so a long replay never holds the whole timeline.
    """
    prep = None
    if isinstance(trace, PreparedTrace):
        prep = trace
        if (requests, device) != (prep.requests, prep.device):
            raise ValueError(f"requests, device: {requests!r}, {device!r} differ from those the trace "
                             f"was prepared with ({prep.requests!r}, {prep.device!r})")
        trace = prep.trace
    elif not isinstance(trace, Trace):
        trace = read_trace(trace)
    prof = get_profile(kernel)
    if cmdline is None:
        cmdline = default_cmdline(trace)
    if not isinstance(cmdline, str):
        raise TypeError("cmdline: must be a string")
    cmdline = _with_rfc_dynamic(prof, cmdline)
    if lifetime is None:
        lifetime = "real" if trace.has_unmaps else DEFAULT_LIFETIME
    if isinstance(lifetime, str):
        lifetime = parse_lifetime(lifetime, seed)
    elif not isinstance(lifetime, Lifetime):
        raise TypeError(f"lifetime: must be a spec string or a Lifetime, got {type(lifetime).__name__}")
    if lifetime.kind == "real" and not trace.has_unmaps:
        raise ValueError("lifetime: 'real' needs the kprobe unmap events; this trace has none "
                         "(use fixed:, qd:, exp: or lognormal:)")
    for name, v, lo, hi in (("max_retries", max_retries, 0, 1 << 20),
                            ("livelock_repeats", livelock_repeats, 2, 1 << 20)):
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError(f"{name}: must be an integer in {lo}..{hi}, got {v!r}")
    if not isinstance(retry_delay, (int, float)) or not 0 < retry_delay <= 60:
        raise ValueError(f"retry_delay: must be in (0, 60] seconds, got {retry_delay!r}")
    tcpus = trace.cpus
    if cpus is None:
        cpus = tcpus
    if type(cpus) is not int or not 1 <= cpus <= 8192:
        raise ValueError(f"cpus: must be an integer in 1..8192, got {cpus!r}")
    max_cpu = prep.max_cpu if prep is not None else max((mp.cpu for mp in trace.mappings), default=0)
    if cpus < max_cpu + 1:
        raise ValueError(f"cpus: the trace has events on CPU {max_cpu}; give at least {max_cpu + 1}")
    if worker_delay is not None and (isinstance(worker_delay, bool) or not isinstance(worker_delay, (int, float))
                                     or not 0 <= worker_delay <= 60):
        raise ValueError(f"worker_delay: must be a number of seconds in [0, 60], got {worker_delay!r}")
    if follow not in (None, True, False):
        raise ValueError(f"follow: must be True, False or None (follow when possible), got {follow!r}")
    if timeline_points is not None and (type(timeline_points) is not int or timeline_points < 1):
        raise ValueError(f"timeline_points: must be a positive integer or None, got {timeline_points!r}")
    if engine not in ("auto", "reference", "compiled"):
        raise ValueError(f"engine: must be 'auto', 'reference' or 'compiled', got {engine!r}")
    if prep is None:
        prep = prepare_replay(trace, requests, device)
    reqs, mode, template = prep.reqs, prep.mode, prep.template
    ram_bytes = prep.ram_for(ram, "6.12" if prof.pad_slots else "6.1")
    m = Machine(ram=ram_bytes, cpus=cpus, cmdline=cmdline, kernel=prof)
    warnings = list(m.setup.warnings)
    pool = m.swiotlb.defpool
    grows = isinstance(m.swiotlb.dyn, Grower)
    if grows:
        m.swiotlb.dyn.worker_delay = Grower.WORKER_DELAY_TCG if worker_delay is None else float(worker_delay)
    if follow is not False and lifetime.kind == "real" and follows(trace):
        first = next((mp.tlb for mp in trace.mappings if mp.tlb is not None and mp.tlb != TLB_FAILED), None)
        if grows and pool is not None:
            # a pool that grows: the new pools are inferred from the addresses (follow_dynamic);
            # the recording starts with the boot pool alone, so its first address is in it
            if first is not None and pool.start <= first < pool.end:
                follow = True
            elif follow:
                raise ValueError(f"follow: the recording's first bounce address {first:#x} lies outside "
                                 f"the boot pool of {cmdline!r} [{pool.start:#x}, {pool.end:#x}): give the "
                                 "recorded swiotlb= and RAM, or replay with follow=False")
            else:
                follow = False
                warnings.append(f"not following the recording: its first bounce address lies outside the "
                                f"boot pool of {cmdline!r} (a what-if replay: every decision is the model's)")
        elif m.swiotlb.dyn is not None or pool is None:
            if follow:
                raise ValueError(f"follow: profile {prof.name} grows its pool at run time; following "
                                 "needs a fixed pool (replay with follow=False)")
            follow = False
            warnings.append(f"not following the recording: {prof.name} grows its pool at run time")
        else:
            inside, outside = recorded_fit(trace, [pool])
            if follow is None and outside:
                follow = False
                warnings.append(f"not following the recording: {outside} of its bounce addresses lie "
                                f"outside the pool of {cmdline!r} (a what-if replay: every decision "
                                "is the model's)")
            else:
                follow = True
    elif follow:
        raise ValueError("follow: needs a kprobe trace with map_ret and unmap events and lifetime "
                         "'real'" + ("" if follows(trace) else "; this trace has none"))
    if stop_when is not None and follow:
        raise ValueError("stop_when: an early stop needs a replay that does not follow the recording "
                         "(follow=False)")
    if follow:
        cls = FollowDynamic if grows else Follow
    else:
        cls = Engine if engine == "reference" or (engine == "auto" and not worth_it(trace)) else CompiledEngine
    eng = cls(trace, m, lifetime, reqs, max_retries, livelock_repeats, retry_delay, timeline, progress,
              template, prep.engine_cache)
    eng.stop = stop_when
    eng.timeline_points = timeline_points
    eng.machine_after = False                          # nothing reads the machine after the run
    traced = prep.traced_range
    if (lifetime.kind == "real" and align_areas and pool is not None and traced
            and pool.start <= traced[0] and traced[1] < pool.end):
        if not follow:
            eng.agreement = Counter()                   # same pool as the traced kernel's
        areas_from_trace(pool, trace)
    if engine == "compiled":
        why = "it follows the recording" if follow else supported(eng)
        if why is not None:
            raise ValueError(f"engine: the compiled engine cannot run this replay: {why}")
        eng.strict = True
    stopped = None
    with gc_paused():
        try:
            eng.run()
        except StopReplay as e:
            stopped = e.args[0]
    res = eng.finish()
    if stopped is not None:
        res.extra["stopped_early"] = True
        res.extra["stopped_at"] = stopped
    if eng.agreement is not None:
        res.extra["slot_agreement"] = f"{eng.agreement['same']}/{eng.agreement['compared']}"
    res.extra["grouping"] = mode
    if not trace.mappings:
        warnings.append("the trace has no mappings")
    if trace.errors:
        warnings.append(f"{len(trace.errors)} malformed trace lines were skipped (see the trace summary)")
    if res.failures.get("too_big"):
        warnings.append(f"{res.failures['too_big']} mapping attempts were larger than "
                        f"{MAX_MAPPING_BYTES // KiB} KiB and fail at any pool size")
    nslabs = m.swiotlb.defpool.nslabs if m.swiotlb.defpool is not None else 0
    tl = None
    if timeline:
        # views of the engine's arrays (nothing appends to them after the run), not copies: at
        # ten million mappings (a point per request event, up to two per mapping) a copy is
        # 160-320 MB more at the end of each replay
        tl = Timeline(np.frombuffer(eng.tl_t, dtype=np.float64),
                      np.frombuffer(eng.tl_u, dtype=f"i{eng.tl_u.itemsize}").astype(np.int64, copy=False), nslabs)
        if timeline_points is not None and len(tl.t) > timeline_points:
            tl = Timeline(*thin_timeline(tl.t, tl.used, timeline_points), nslabs)
    return ReplayResult(res, lifetime, mode, nslabs, eng.livelocks, tl, trace, warnings)


def areas_from_trace(pool, trace: Trace) -> int:
    """Start each area's search index at the slot of the traced kernel's first allocation
    in that area (the trace begins with an empty pool, so that allocation landed at the
    index; ``data/realkernel/README.md``, finding 14, slot addresses in the kprobe traces,
    and tests/test_realkernel.py).  Only
    traced bounce addresses inside ``pool`` count.  Returns how many areas were set."""
    if pool is None:
        return 0
    done = set()
    for mp in trace.mappings:
        tlb = mp.tlb
        if tlb is None or tlb == TLB_FAILED or not pool.start <= tlb < pool.end:
            continue
        slot = (tlb - pool.start) >> IO_TLB_SHIFT
        area = slot // pool.area_nslabs
        if area < pool.nareas and area not in done:
            pool.set_area_index(area, slot - area * pool.area_nslabs)
            done.add(area)
            if len(done) == pool.nareas:
                break
    return len(done)


def _check_mappings(trace: Trace) -> None:
    """Arguments the allocator would refuse, named by trace line."""
    table = mapping_table(trace.mappings)
    if not len(table):
        return
    bad = np.zeros(len(table), bool)
    m = table.masks.astype(object)
    bad_mask = np.array([bool(v and v & (v + 1)) for v in m.tolist()] or [False])
    bad |= bad_mask[table.mask.astype(np.int64)]
    if table.kprobe:
        d = table.dir
        bad |= table.has(HAS_DIR) & ~(np.isin(d, (DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE))
                                       if d.dtype != object else np.array([x in (0, 1, 2) for x in d.tolist()]))
        a = table.align_mask.astype(object if table.align_mask.dtype == object else np.int64)
        bad |= (a & (a + 1)) != 0
    first = np.flatnonzero(bad)
    for mp in trace.mappings[int(first[0]):int(first[0]) + 1] if len(first) else ():
        if mp.dir is not None and mp.dir not in (DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE):
            raise ValueError(f"trace: line {mp.map_line or mp.line}: dir={mp.dir} is not 0, 1 or 2")
        if mp.align_mask & (mp.align_mask + 1):
            raise ValueError(f"trace: line {mp.map_line or mp.line}: align_mask={mp.align_mask:#x} is "
                             "not 2**n - 1")
        if mp.dma_mask and mp.dma_mask & (mp.dma_mask + 1):
            raise ValueError(f"trace: line {mp.line}: dma_mask={mp.dma_mask:x} is not 2**n - 1")


def calibrate(trace: Trace, models=("fixed:1500us", "exp:1500us", "lognormal:1500us,0.5", "qd:4"),
              kernel=None, cmdline: str | None = None, seed: int = 1) -> dict:
    """Replay a kprobe trace with its real lifetimes, then its tracepoint-only view with each
    modelled lifetime; return the peaks side by side (``{"real": {...}, "fixed:...": {...}}``)."""
    out = {}
    real = replay(trace, kernel, cmdline, "real", seed=seed, timeline=False)
    out["real"] = {"peak_used_slots": real.result.peak_used_slots, "failed": real.result.failed}
    tp = tracepoint_only(trace)
    for spec in models:
        r = replay(tp, kernel, cmdline, spec, seed=seed, timeline=False)
        out[spec] = {"peak_used_slots": r.result.peak_used_slots, "failed": r.result.failed}
    return out

