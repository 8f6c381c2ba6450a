"""The pool advisor: the smallest ``swiotlb=`` per profile that replays a trace cleanly.

:func:`advise` searches (gallop, then bisection) over the pool sizes the kernel can actually
build (:func:`pool_candidates`: ``swiotlb=`` rounding in ``setup_io_tlb_npages``, then
``round_up_default_nslabs`` with the CPU count, ``kernel/dma/swiotlb.c@af133562d5af``), with
:func:`swiotlb_lib.trace.replay.replay` as the oracle, and warns about requests no pool of a
size can complete (``data/realkernel/README.md``, finding 12).
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

from ..cmdline import SwiotlbSetup
from ..constants import IO_TLB_DEFAULT_NSLABS, IO_TLB_SEGSIZE, IO_TLB_SHIFT, KiB, MiB
from ..versions import PROFILES, get_profile
from .engine import StopRule, livelock_warning
from .columns import columns
from .fast import warm, worth_it
from .lifetime import DEFAULT_LIFETIME, parse_lifetime
from .read import Trace, read_trace
from .replay import Timeline, prepare_replay, replay
from .requests import (BLOCK_KINDS, MAX_MAPPING_BYTES, biggest_request, largest_data_bytes, min_request_slots,
                       request_slots, whole_requests)

#: The profiles :func:`advise` sizes by default (all of them).
ADVISE_PROFILES = ("v6.3rc", "v6.3", "v6.6", "v6.11", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic")
#: Traces with fewer mappings are advised in one process.  Starting two forked workers
#: costs about 0.05 s (a 300-mapping trace, all profiles: 0.42 s in one process, 0.44-0.48 s
#: with two), so the gain is small below this; one process also keeps the book's recordings
#: (a few thousand mappings) from forking a Jupyter kernel.
PARALLEL_MIN_MAPPINGS = 20_000
#: The most points of a timeline the advisor's replays keep (``timeline_points`` of
#: :func:`replay`).  A whole timeline has up to two points per mapping (160-320 MB at ten
#: million mappings, for each replay); beyond this, :func:`~swiotlb_lib.trace.replay.thin_timeline`'s
#: sample of it, the highest point of each stretch, so its peaks survive.  An advice's plot
#: shows 1 000 (:meth:`Advice.plot_data`).  Every trace under ``data/`` is far below it.
ADVICE_TIMELINE_POINTS = 1 << 16


def effective_nslabs(value: int, cpus: int, kernel=None) -> int:
    """The boot pool the kernel builds for ``swiotlb=<value>`` on ``cpus`` CPUs when memory
    suffices: ``setup_io_tlb_npages`` rounds to a multiple of 128, then the area count (the
    CPU count, a power of two) makes ``round_up_default_nslabs`` raise it to at least 128 per
    area and to a power of two (``kernel/dma/swiotlb.c@af133562d5af: setup_io_tlb_npages(),
    round_up_default_nslabs()``; :class:`~swiotlb_lib.cmdline.SwiotlbSetup`)."""
    if type(value) is not int or not 1 <= value <= 1 << 32:
        raise ValueError(f"value: swiotlb= slots must be an integer in 1..{1 << 32}, got {value!r}")
    if type(cpus) is not int or not 1 <= cpus <= 8192:
        raise ValueError(f"cpus: must be an integer in 1..8192, got {cpus!r}")
    st = SwiotlbSetup(option_list=get_profile(kernel).option_list)
    st.setup_io_tlb_npages(str(value))
    if not st.default_nareas:
        st.adjust_nareas(cpus)
    return st.default_nslabs


def pool_candidates(cpus: int, kernel=None, hi: int = 1 << 21) -> list:
    """Every distinct boot-pool size (slots) the kernel can build from ``swiotlb=<n>`` with
    ``cpus`` CPUs, up to ``hi``, ascending."""
    out = []
    c = effective_nslabs(IO_TLB_SEGSIZE, cpus, kernel)
    while c <= hi:
        out.append(c)
        c = effective_nslabs(c + IO_TLB_SEGSIZE, cpus, kernel)
    return out


def pool_cmdline(nslabs: int, force: bool, kernel=None) -> str:
    """The ``swiotlb=`` text for a pool of ``nslabs`` slots (``,force`` kept when the trace
    was forced; ``,dynamic`` for the RFC v1 profile)."""
    s = f"swiotlb={nslabs}" + (",force" if force else "")
    if get_profile(kernel).dynamic == "rfc-v1":
        s += ",dynamic"
    return s


@dataclass
class Advice:
    """The advisor's answer for one profile (see :func:`advise`)."""

    profile: str
    recommended_nslabs: int | None
    recommended_cmdline: str | None
    peak_used_slots: int
    peak_bounce_bytes: int
    lifetime: str
    target_failure_rate: float | None = None
    lifetime_note: str = ""
    target_nslabs: int | None = None
    target_cmdline: str | None = None
    target_replayed_failure_rate: float | None = None
    tried: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    timeline: Timeline | None = None
    replays: int = 0

    def to_dict(self) -> dict:
        return {"profile": self.profile, "recommended_nslabs": self.recommended_nslabs,
                "recommended_cmdline": self.recommended_cmdline,
                "recommended_bytes": (self.recommended_nslabs or 0) << IO_TLB_SHIFT,
                "peak_used_slots": self.peak_used_slots, "peak_bounce_bytes": self.peak_bounce_bytes,
                "lifetime": self.lifetime, "lifetime_note": self.lifetime_note,
                "target_failure_rate": self.target_failure_rate,
                "target_nslabs": self.target_nslabs, "target_cmdline": self.target_cmdline,
                "target_replayed_failure_rate": self.target_replayed_failure_rate,
                "tried": self.tried, "warnings": self.warnings, "notes": self.notes,
                "replays": self.replays}

    def plot_data(self, points: int = 1000) -> dict:
        """Arrays for a plot of slots in use over time in the replay with the recommended pool,
        with the pool sizes to draw as lines (plotting itself lives outside the library):
        ``{"t", "used", "recommended_nslabs", "target_nslabs", "peak_used_slots"}``."""
        if self.timeline is None:
            raise ValueError(f"profile {self.profile}: no replay without failures, nothing to plot")
        t, used = self.timeline.decimate(points)
        return {"t": t, "used": used, "recommended_nslabs": self.recommended_nslabs,
                "target_nslabs": self.target_nslabs, "peak_used_slots": self.peak_used_slots}

    def summary_lines(self) -> list:
        rec = (f"{self.recommended_cmdline} ({self.recommended_nslabs} slots, "
               f"{(self.recommended_nslabs << IO_TLB_SHIFT) / MiB:g} MiB)"
               if self.recommended_nslabs else "none found")
        out = [f"{self.profile}: smallest pool with no failures: {rec}; peak used "
               f"{self.peak_used_slots} slots, memory held at peak "
               f"{self.peak_bounce_bytes / MiB:.2f} MiB"]
        if self.target_failure_rate is not None:
            tgt = (f"{self.target_cmdline} ({self.target_nslabs} slots, replayed failure rate "
                   f"{self.target_replayed_failure_rate:.4%})" if self.target_nslabs else "none found")
            out.append(f"  for a failure rate <= {self.target_failure_rate:g}: {tgt}")
        out.append("  tried: " + ", ".join(f"{x['nslabs']}:{'ok' if x['ok'] else 'fail'}" for x in self.tried))
        out += [f"  warning: {w}" for w in self.warnings]
        out += [f"  note: {n}" for n in self.notes]
        return out


def first_true(ok, lo: int, hi: int, *, gallop: bool = False) -> int | None:
    """Smallest index in ``lo+1..hi`` with ``ok(index)`` true, for a monotone ``ok`` (false,
    then true); ``ok(lo)`` is taken as false.  Without ``gallop``, ``ok(hi)`` is known to be
    true and the range is bisected; with it, ``lo+1, lo+2, lo+4, ...`` (capped at ``hi``)
    are tried first until one is true, then the last gap is bisected; None if none is."""
    if gallop:
        k, step = lo + 1, 1
        if k > hi:
            return None
        while not ok(k):                                # gallop: lo+1, lo+2, lo+4, ...
            lo = k
            if k == hi:
                return None
            k = min(k + step, hi)
            step *= 2
        hi = k
    while hi - lo > 1:                                  # ok(hi), not ok(lo)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi



def _gallop_probes(lo: int, hi: int) -> int:
    """How many indexes the reference search (``lo``, ``lo+1``, ``lo+3``, ... capped at ``hi``)
    and :func:`first_true`'s gallop can try at most between ``lo`` and ``hi``."""
    k, step, n = lo, 1, 1
    while k < hi:
        k, step, n = min(k + step, hi), step * 2, n + 1
    return n


def max_replays(kernels, cpus: int, *, target_failure_rate: float | None = None,
                max_sectors_kb: int | None = None, max_nslabs: int = 1 << 21) -> int:
    """An upper bound on the replays :func:`advise` runs for ``kernels`` (each a profile) on
    ``cpus`` CPUs: per profile, the reference search up from the default pool, the gallop and
    bisection below it, one replay for the ``max_sectors_kb`` floor (and one more if that
    replay had stopped early), the gallop and bisection of the target search; never more than the
    pool sizes the kernel can build (plus that one).  A growing profile has no reference
    search: its gallop starts at the smallest pool."""
    total = 0
    for k in kernels:
        try:
            cands = pool_candidates(cpus, k, max_nslabs)
        except ValueError:
            cands = []
        n = len(cands)
        if not n:
            continue
        if get_profile(k).is_dynamic:
            bound = _gallop_probes(-1, n - 1) + n.bit_length()
        else:
            ref = next((i for i, c in enumerate(cands) if c >= IO_TLB_DEFAULT_NSLABS), n - 1)
            bound = _gallop_probes(ref, n - 1) + _gallop_probes(-1, ref) + (ref + 1).bit_length()
        extra = 2 if max_sectors_kb is not None else 0
        if target_failure_rate is not None:
            bound += _gallop_probes(0, n - 1) + n.bit_length()
        total += min(bound, n) + extra
    return total


@dataclass
class _Job:
    """What every profile's search shares (made once by :func:`advise`)."""

    prep: object
    lt: object
    target: float | None
    ncpus: int
    ram: object
    requests: str
    seed: int
    force: bool
    floor_slots: int
    max_sectors_kb: int | None
    max_nslabs: int
    whole: list
    biggest: object


def advise(trace, kernels=ADVISE_PROFILES, lifetime=None, *, target_failure_rate: float | None = None,
           cpus: int | None = None, ram=None, requests: str = "auto", seed: int = 1,
           max_sectors_kb: int | None = None, max_nslabs: int = 1 << 21, progress=None,
           workers: int | None = None) -> list:
    """Size the boot pool for each profile in ``kernels`` from a trace.

    For each profile, search (:func:`first_true`) over :func:`pool_candidates` (sizes the
    kernel can build) with :func:`replay` as the oracle: the smallest pool in whose replay no
    request met a full pool (requests mapping more than 256 KiB at once, which fail at any
    size, aside) and none livelocked; with ``target_failure_rate`` also the smallest whose
    share of failed requests (:attr:`ReplayResult.failure_rate`) is at most that.  The
    search assumes that a larger pool never has more failed requests; the tests check that
    on the recorded traces (failed mapping *attempts* need not be monotone: retries feed
    back).  A profile whose pool does not grow is first replayed with the kernel's default
    64 MiB pool (larger if that fails); no smaller pool than that replay's peak of slots in
    use can be clean, so the search gallops up from the first pool at or above the peak (one
    more replay when that pool is clean) and bisects the last step.  A growing profile's
    pool has no such bound: its search gallops up from the smallest pool, which its growth
    usually makes clean.  ``peak_used_slots`` is only a lower bound on the pool needed: slots come in
    128-slot segments and per-CPU areas, and alignment leaves holes.  ``max_sectors_kb`` (the production queue limit) adds the floor one
    request of that size needs, with a warning when the trace's requests were smaller.

    The trace is read, checked and grouped into requests once (:func:`prepare_replay`) for
    every replay.  A replay stops at the failure that decides what the search asks of it
    (``stop_when`` of :func:`replay`; see :class:`~swiotlb_lib.trace.engine.StopRule`): the answers are those of full
    replays, and the stopped replays' tallies in ``tried`` (``"complete": False``) count the
    trace up to that failure (``"stopped_at"``, its trace time in seconds).  Profiles are searched in parallel on ``workers`` processes
    (default: ``os.cpu_count()``, at most one per profile; one process for traces under
    :data:`PARALLEL_MIN_MAPPINGS` mappings), with the same results as one process.
    ``Advice.replays`` is the number of replays run for the profile.
    Returns a list of :class:`Advice`.
    """
    if not isinstance(trace, Trace):
        trace = read_trace(trace)
    if isinstance(kernels, str):
        kernels = [kernels]
    kernels = [get_profile(k).name for k in kernels]
    if not kernels:
        raise ValueError(f"kernels: give at least one profile ({', '.join(PROFILES)})")
    if target_failure_rate is not None and (not isinstance(target_failure_rate, (int, float))
                                            or not 0 <= target_failure_rate < 1):
        raise ValueError(f"target_failure_rate: must be a number in [0, 1), got {target_failure_rate!r}")
    if workers is not None and (type(workers) is not int or workers < 1):
        raise ValueError(f"workers: must be a positive integer, got {workers!r}")
    if lifetime is None:
        lifetime = "real" if trace.has_unmaps else DEFAULT_LIFETIME
    lt = parse_lifetime(lifetime, seed) if isinstance(lifetime, str) else lifetime
    ncpus = trace.cpus if cpus is None else cpus
    floor_slots = min_request_slots(max_sectors_kb) if max_sectors_kb is not None else 0

    if not trace.mappings:
        return [Advice(get_profile(k).name, None, None, 0, 0, lt.spec, target_failure_rate,
                       warnings=["the trace has no bounce mappings: nothing to size"]) for k in kernels]
    prep = prepare_replay(trace, requests)
    whole = whole_requests(prep.reqs, len(trace.mappings))
    biggest = biggest_request(prep.reqs, trace.mappings)
    job = _Job(prep, lt, target_failure_rate, ncpus, ram, requests, seed, trace.force_seen, floor_slots,
               max_sectors_kb, max_nslabs, whole, biggest)
    if workers is None:
        workers = os.cpu_count() or 1 if len(trace.mappings) >= PARALLEL_MIN_MAPPINGS else 1
    workers = min(workers, len(kernels))
    if workers == 1:
        done = [0]

        def step():
            done[0] += 1
            if progress is not None:
                progress(done[0], None)
        return [_advise_profile(job, k, step) for k in kernels]
    # fork: the workers inherit the prepared trace instead of receiving it pickled, with the
    # engines' shared indexes made once here
    columns(trace, prep.reqs, lt.kind == "real", prep.engine_cache)     # the compiled engine's
    if worth_it(trace):                                 # its code too (loaded, or compiled, once)
        warm()
    _SHARED["job"] = job
    try:
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as ex:
            # the growing profiles' replays cost the most: start them first, so that the
            # cheaper ones fill in behind them (longest first balances the workers)
            order = sorted(kernels, key=lambda k: not get_profile(k).is_dynamic)
            started = {k: ex.submit(_advise_in_worker, k) for k in order}
            futs = [started[k] for k in kernels]
            out, done = [], 0
            for f in futs:                              # in the order of ``kernels``
                out.append(f.result())
                done += out[-1].replays
                if progress is not None:
                    progress(done, None)
    finally:
        _SHARED.clear()
    return out


_SHARED: dict = {}


def _advise_in_worker(prof_name: str) -> Advice:
    return _advise_profile(_SHARED["job"], prof_name, lambda: None)


def _advise_profile(job: _Job, prof_name: str, step) -> Advice:
    """:func:`advise` for one profile (``step()`` after each replay)."""
    trace, lt, target, force = job.prep.trace, job.lt, job.target, job.force
    cands = pool_candidates(job.ncpus, prof_name, job.max_nslabs)
    dynamic = get_profile(prof_name).is_dynamic
    biggest = job.biggest
    need = request_slots(biggest, trace.mappings) if biggest is not None else 0
    warn_locked = biggest is not None and not dynamic and len(biggest.members) > 1
    cache: dict = {}
    count = [0]

    def run(k, full=False, timeline=False):
        if k not in cache or (full and not cache[k].complete) or (timeline and cache[k].timeline is None):
            # livelocks of a pool matter only if no larger pool (>= need) has shown one yet
            need_ll = warn_locked and cands[k] >= need and not any(
                cache[j].livelocks for j in cache if j > k and cands[j] >= need)
            cache[k] = replay(job.prep, prof_name, pool_cmdline(cands[k], force, prof_name), lt,
                              cpus=job.ncpus, ram=job.ram, requests=job.requests, seed=job.seed,
                              follow=False, stop_when=None if full else StopRule(target, need_ll),
                              timeline_points=ADVICE_TIMELINE_POINTS)
            count[0] += 1
            step()
            # Only the smallest accepted pool's timeline can become the advice's, and the one
            # asked for now: the others go at once (up to ADVICE_TIMELINE_POINTS points, 1 MiB,
            # per replay).
            clean = [j for j in cache if cache[j].complete and accepted(j)]
            keep = {min(clean)} if clean else set()
            if timeline:
                keep.add(k)
            for j in cache:
                if j not in keep:
                    cache[j].timeline = None
        return cache[k]

    def valid(r, k):
        return r.nslabs == cands[k]

    def ok(k):
        r = run(k)
        return valid(r, k) and r.ok

    def accepted(k):
        """A replayed pool the advice may recommend: clean, and at or above the
        max_sectors_kb floor (the step after the search below)."""
        return valid(cache[k], k) and cache[k].ok and cands[k] >= job.floor_slots

    first = None
    if dynamic:
        # a growing profile: no pool size bounds the slots in use, so gallop up from the
        # smallest pool (usually clean at once: one replay)
        first = first_true(ok, -1, len(cands) - 1, gallop=True)
    else:
        # 1. a clean reference replay: the kernel's default 64 MiB, or larger if need be
        ref = next((k for k, c in enumerate(cands) if c >= IO_TLB_DEFAULT_NSLABS), len(cands) - 1)
        step_ = 1
        while ref is not None and not ok(ref):
            if not valid(run(ref), ref) or ref == len(cands) - 1:
                ref = None
                break
            ref = min(ref + step_, len(cands) - 1)
            step_ *= 2
        if ref is not None:
            # 2. a fixed pool smaller than the clean replay's peak must fail by the time of
            # that peak (the replays agree until the first failure), so search up from there:
            # the first pool at or above the peak is usually clean (gallop, then bisect)
            peak = run(ref).result.peak_used_slots
            lo = next(k for k, c in enumerate(cands) if c >= min(peak, cands[ref])) - 1
            first = first_true(ok, lo, ref, gallop=True)
    adv = Advice(prof_name, None, None, 0, 0, lt.spec, target)
    if first is not None and job.floor_slots and cands[first] < job.floor_slots:
        first = next((k for k in range(first, len(cands)) if cands[k] >= job.floor_slots), None)
    if first is not None:
        r = run(first, full=True, timeline=True)
        adv.recommended_nslabs = cands[first]
        adv.recommended_cmdline = pool_cmdline(cands[first], force, prof_name)
        adv.peak_used_slots = r.result.peak_used_slots
        adv.peak_bounce_bytes = r.result.peak_bounce_bytes
        adv.timeline = r.timeline
        if r.result.transient_pools or r.result.pools_added:
            adv.notes.append(f"the pool grew at run time in this replay ({r.result.pools_added} pools "
                             f"added, {r.result.transient_pools} transient pools): memory held "
                             f"peaked at {r.result.peak_bounce_bytes / MiB:.2f} MiB")
    else:
        adv.warnings.append(f"no pool up to {cands[-1] if cands else job.max_nslabs} slots replays this "
                            "trace without failures")
    if target is not None:
        hi = first if first is not None else len(cands) - 1

        def ok_rate(k):
            r = run(k)
            return valid(r, k) and not r.livelocks and r.failure_rate <= target

        k = first_true(ok_rate, -1, hi, gallop=True)
        if k is not None:
            adv.target_nslabs = cands[k]
            adv.target_cmdline = pool_cmdline(cands[k], force, prof_name)
            adv.target_replayed_failure_rate = run(k, full=True).failure_rate
    for k in sorted(cache):
        r = cache[k]
        adv.tried.append({"nslabs": cands[k], "ok": valid(r, k) and r.ok,
                          "failed_requests": r.failed_requests, "failed": r.result.failed,
                          "attempted": r.result.attempted, "failure_rate": r.failure_rate,
                          "livelocks": len(r.livelocks), "peak_used_slots": r.result.peak_used_slots,
                          "booted_nslabs": r.nslabs, "complete": r.complete,
                          "stopped_at": r.result.extra.get("stopped_at")})
        if not valid(r, k):
            adv.warnings.append(f"swiotlb={cands[k]} does not fit this machine's low memory: the "
                                f"kernel would build only {r.nslabs} slots")
    # requests that no pool of a given size can ever complete (data/realkernel/README.md,
    # finding 12): by count of slots, and as the replays found them (fragmentation can
    # make larger pools fail too)
    if warn_locked:
        below = [c for c in cands if c < need]
        if below:
            adv.warnings.append(livelock_warning(biggest.data_bytes, need, below[-1]))
        locked = [k for k in sorted(cache) if cache[k].livelocks and cands[k] >= need]
        if locked:
            adv.warnings.append(cache[locked[-1]].livelocks[0].message())
    if job.max_sectors_kb is not None:
        largest = largest_data_bytes(job.whole, "virtio-blk")
        if job.max_sectors_kb * KiB > largest:
            below = [c for c in cands if c < job.floor_slots]
            adv.warnings.append(
                f"the trace's largest request is {-(-largest // KiB)} KiB but max_sectors_kb is "
                f"{job.max_sectors_kb}: " + livelock_warning(job.max_sectors_kb * KiB, job.floor_slots,
                                                             below[-1] if below else job.floor_slots - 1))
    # with a clean replay among them, its count is every request with a mapping over 256 KiB
    # (none of them failed first on a full pool), and no replay counts more: a stopped replay's
    # lower count does not change the maximum
    too_big = max((cache[k].result.extra["too_big_requests"] for k in cache), default=0)
    if too_big:
        adv.warnings.append(f"{too_big} requests map more than {MAX_MAPPING_BYTES // KiB} KiB at "
                            "once and fail at any pool size; they were left out of the sizing")
    if dynamic:
        adv.notes.append("dynamic profile: the recommended size is the boot pool; the kernel adds "
                         "pools (and transient pools) when it runs short")
    adv.notes.append("peak_used_slots is a lower bound on the pool needed: mappings cannot "
                     "cross 128-slot segments or areas, and alignment leaves holes")
    adv.lifetime_note = lt.describe("request" if cache and next(iter(cache.values())).grouping
                                    in BLOCK_KINDS else "mapping")
    adv.replays = count[0]
    return adv
