"""The replay engine: a trace's mappings through a booted machine, and livelock detection.

:class:`Engine` runs one replay for :func:`swiotlb_lib.trace.replay.replay`: every traced
mapping goes through the kernel-exact allocator of the machine's profile
(``swiotlb_tbl_map_single``, ``swiotlb_tbl_unmap_single``), completions and queue reruns
come from a heap.  Block requests follow blk-mq's dispatch (``block/blk-mq.c``): a request
that cannot get all its slots gives back what it holds and is retried, as after
``BLK_STS_RESOURCE``; one that fails again and again with the same slots in use is a
:class:`Livelock` (``data/realkernel/README.md``, finding 12, a 1 MiB pool livelocks on
1 MiB requests).
"""
from __future__ import annotations

import heapq
from array import array
from collections import Counter, deque
from dataclasses import dataclass, replace
from functools import cached_property

from ..boot import Machine
from ..constants import DMA_ATTR_SKIP_CPU_SYNC, DMA_TO_DEVICE, KNOWN_ATTRS, U64, KiB
from ..debug import CAUSES, REPLAY_MAP_FAILED
from ..device import Device
from ..swiotlb import DmaMappingError
from ..scenarios.systems import Recorder, ScenarioResult
from .lifetime import Lifetime, lost_unmap_times
from .read import TLB_FAILED
from .requests import BLOCK_KINDS, MAX_MAPPING_BYTES, mapping_table, request_slots, request_table


def livelock_warning(data_bytes: int, slots_needed: int, nslabs: int, detail: str = "",
                     failed_size: int = 0) -> str:
    """The advisor's warning for requests that a pool can never complete
    (``data/realkernel/README.md``, finding 12, a 1 MiB pool livelocks on 1 MiB requests).
    When the failing mapping (``failed_size``) is larger than any bounce buffer
    (:data:`~swiotlb_lib.trace.requests.MAX_MAPPING_BYTES`), no ``swiotlb=`` helps, and the
    warning says so instead of advising a larger pool."""
    if failed_size > MAX_MAPPING_BYTES:
        return (f"requests of up to {-(-data_bytes // KiB)} KiB map {failed_size} bytes at once, more than "
                f"the {MAX_MAPPING_BYTES // KiB} KiB any bounce buffer can hold: they fail at every pool "
                "size, and no swiotlb= helps; lower max_sectors_kb or the segment size"
                + (f" ({detail})" if detail else ""))
    why = "" if slots_needed > nslabs else (
        " (slots are there in total, but no placement of the request's mappings fits: "
        "a mapping must lie inside one 128-slot segment and one area)")
    return (f"requests of up to {-(-data_bytes // KiB)} KiB need at least {slots_needed} slots at once; "
            f"a pool of {nslabs} slots can never complete them{why}; raise swiotlb= or lower "
            f"max_sectors_kb" + (f" ({detail})" if detail else ""))


@dataclass
class Livelock:
    """A request that failed again and again with the same slots in use
    (``data/realkernel/README.md``, finding 12, a 1 MiB pool livelocks on 1 MiB requests)."""

    line: int
    time: float
    dev_name: str
    data_bytes: int
    slots_needed: int
    used: int
    nslabs: int
    attempts: int
    failed_size: int
    repeats: int = 0

    def message(self) -> str:
        return livelock_warning(self.data_bytes, self.slots_needed, self.nslabs,
                                f"the request at line {self.line} failed {self.attempts} times; with "
                                f"nothing else in flight it failed {self.repeats} times the same way: "
                                f"{self.used} slot{'s' * (self.used != 1)} in use, then a "
                                f"{self.failed_size}-byte mapping did "
                                "not fit", self.failed_size)

    def to_dict(self) -> dict:
        return {"line": self.line, "time": self.time, "dev_name": self.dev_name,
                "data_bytes": self.data_bytes, "slots_needed": self.slots_needed, "used": self.used,
                "nslabs": self.nslabs, "attempts": self.attempts, "failed_size": self.failed_size,
                "repeats": self.repeats, "message": self.message()}


def livelock_groups(livelocks) -> list:
    """Livelocks with the same request size, slots and pool, as ``(first, count)`` pairs."""
    groups: dict = {}
    for x in livelocks:
        key = (-(-x.data_bytes // KiB), x.slots_needed, x.nslabs)
        if key in groups:
            groups[key][1] += 1
        else:
            groups[key] = [x, 1]
    return [tuple(v) for v in groups.values()]


class StopReplay(Exception):
    """Raised out of :meth:`Engine.run` when the engine's ``stop`` predicate says the replay
    has answered its caller's question (see :func:`swiotlb_lib.trace.replay.replay`,
    ``stop_when``); its argument is the trace time of the failure."""


@dataclass(frozen=True)
class StopRule:
    """The advisor's early stop (``stop_when`` of :func:`swiotlb_lib.trace.replay.replay`): true
    once the replay so far settles every question the search asks of it, whatever the rest of
    the trace does.  Tallies only grow during a replay, so:

    - "no failures" is settled false by the first request counted in ``failed_requests`` or
      the first livelock on a mapping a pool can hold (at most
      :data:`~swiotlb_lib.trace.requests.MAX_MAPPING_BYTES`);
    - "at most ``target`` of requests failed" is settled false by any livelock, or once the
      failed requests (``failed_requests`` + ``too_big_requests``) over *all* the trace's
      requests (known before the replay) exceed ``target``;
    - with ``need_livelock`` the replay also runs until its first livelock.

    A data object rather than a closure, so that the compiled engine
    (:mod:`swiotlb_lib.trace.fast`) can apply the same rule."""

    target: float | None = None
    need_livelock: bool = False

    def __call__(self, eng) -> bool:
        tal, locks = eng.tally, eng.livelocks
        if not tal["failed_requests"] and all(x.failed_size > MAX_MAPPING_BYTES for x in locks):
            return False
        if self.target is not None and not locks:
            n = len(eng.reqs)
            if not (tal["failed_requests"] + tal["too_big_requests"]) / n > self.target:
                return False
        return bool(locks) or not self.need_livelock


#: Traces of at most this many mappings are replayed from lists of their records (mappings
#: and requests), made once per prepared trace (``cache``): the readable engine reads a
#: mapping's record about three times per attempt and its request's several times (arrival,
#: each failure, completion), and indexing a columnar view
#: (:class:`~swiotlb_lib.trace.table.MappingView`, :class:`~swiotlb_lib.trace.requests.RequestView`)
#: costs 1-10 us each time against some 30 ns for a list (ch09b replays its 7 266-mapping
#: recordings 112 times; the request view was a tenth of a short replay's time).  A longer
#: trace keeps the views, which never hold all their records at once; a list of this many
#: records is about 30 MB.
LIST_MAX_MAPPINGS = 100_000


def records(rows, cache: dict | None = None):
    """``rows`` (a trace's mappings or its requests) as the engine indexes them: a list of the
    records when there are at most :data:`LIST_MAX_MAPPINGS` (kept in ``cache`` when given),
    else ``rows`` itself."""
    if isinstance(rows, list) or len(rows) > LIST_MAX_MAPPINGS:
        return rows
    if cache is None:
        return list(rows)
    key = ("records", id(rows))
    if key not in cache:
        cache[key] = list(rows)
    return cache[key]


def replay_index(trace, reqs, lost: bool, cache: dict | None = None) -> tuple:
    """What every replay of ``trace`` grouped into ``reqs`` shares: each device's DMA mask (the
    last the trace shows), and with ``lost`` the inferred unmap times of buffers whose unmap
    event the trace lost (:func:`~swiotlb_lib.trace.lifetime.lost_unmap_times`).  Kept in
    ``cache`` (a dict, e.g. :attr:`PreparedTrace.engine_cache
    <swiotlb_lib.trace.replay.PreparedTrace>`) when given."""
    key = ("index", id(reqs), lost)
    if cache is not None and key in cache:
        return cache[key]
    out = (mapping_table(trace.mappings).last_dma_masks(), lost_unmap_times(trace, reqs) if lost else {})
    if cache is not None:
        cache[key] = out
    return out


def unit_index(trace, reqs, cache: dict | None = None) -> array:
    """The request of each mapping of ``trace`` grouped into ``reqs``, as the readable engine
    indexes it (an ``array('q')``: a plain int per lookup), kept in ``cache`` when given.  Made
    only by the readable engine (8 bytes per mapping the compiled one does without)."""
    key = ("unit_of", id(reqs))
    if cache is not None and key in cache:
        return cache[key]
    unit_of = array("q", request_table(reqs, len(trace.mappings)).unit_of.astype("int64", copy=False).tobytes())
    if cache is not None:
        cache[key] = unit_of
    return unit_of


class Engine:
    """One replay: a machine, the trace's mappings in order, completions and queue runs in a heap.

    Block requests model blk-mq's dispatch (``block/blk-mq.c`` in 6.12): each (device, CPU)
    queue holds the requests the driver sent back with ``BLK_STS_RESOURCE`` (virtio-blk's
    ``virtio_queue_rq()`` on a failed ``dma_map``; NVMe's ``nvme_queue_rq()`` passes on
    what ``nvme_map_data()`` returns, ``BLK_STS_RESOURCE`` for a failed ``dma_map_bvec()``
    or ``dma_map_sgtable()`` -- only ``-EREMOTEIO`` becomes ``BLK_STS_TARGET`` --, after
    ``dma_direct_map_sg()`` unmapped the segments already mapped:
    ``drivers/nvme/host/pci.c@adc218676eef``, ``kernel/dma/direct.c@adc218676eef``, v6.12);
    the first failure stops the run.
    ``blk_mq_dispatch_rq_list()`` reruns the queue at once after a first failure (no
    ``SCHED_RESTART`` set yet), and after ``BLK_MQ_RESOURCE_DELAY`` after a failed rerun;
    ``__blk_mq_free_request()`` restarts it (``blk_mq_sched_restart()``) when a request of
    the device completes, once per request, after all its mappings are unmapped.  A request
    arriving while its queue holds requests waits behind them.  Lone mappings (non-block
    devices) that fail are dropped.

    With real lifetimes, an attempt the traced kernel abandoned (``Request.aborted``: its
    retry is a later request of the trace) whose failing mapping the model does map is
    given back at once: that attempt is over in the recording, and keeping the mapping
    would hold slots no later event frees (the model's choice; the cost is that the
    request's data is replayed at the kernel's retry time, not earlier).

    Event keys are ``(time, prio, counter)``: trace maps use their line number as ``prio``,
    real unmaps theirs (so a replay with real lifetimes keeps the trace's exact order),
    modelled completions and queue runs ``-1`` (before a map with the same timestamp).

    ``stop`` (None, or a predicate of the engine) is asked after every failed mapping
    attempt, once its tallies (``tally["failed_requests"]``, ``["too_big_requests"]``) and
    :attr:`livelocks` are updated; when it answers true the run ends with
    :class:`StopReplay` (an early stop, used by the advisor: the tallies are then those of
    the run up to that failure).
    """

    COMPLETE_UNIT, COMPLETE_MAPPING, RUN = 0, 1, 2
    INFER_LOST = True                                   # infer lost unmaps (lost_unmap_times)
    #: replay()'s ``timeline_points`` (None: every sample), which the compiled engine applies as it goes
    timeline_points = None
    #: leave the machine as the run left it, the page allocator's free blocks included; replay()
    #: drops its machine after the run and turns this off, which spares the compiled engine its
    #: log of page operations (32 bytes per transient pool or RFC v1 buffer until none is live)
    machine_after = True
    IDLE, LIVE, QUEUED, DONE = 0, 1, 2, 3

    def __init__(self, trace, m: Machine, lifetime: Lifetime, reqs, max_retries, livelock_repeats,
                 retry_delay, timeline: bool, progress, device: Device | None = None,
                 cache: dict | None = None) -> None:
        self.trace, self.m, self.lt = trace, m, lifetime
        self.mem = m.swiotlb
        self.maps = records(trace.mappings, cache)
        self.reqs = reqs
        # the requests as columns (the grouping's own table; built once for a list of Request)
        self.req_table = request_table(reqs, len(self.maps))
        self.max_retries, self.repeats_needed, self.retry_delay = max_retries, livelock_repeats, retry_delay
        self.progress = progress
        self.res = ScenarioResult("trace-replay", m.profile.name, m.cmdline, lifetime.seed)
        self.res.failures = {c: 0 for c in CAUSES}
        self.rec = Recorder(m, self.res)
        self.rec.step = 0.0
        self.cache = cache
        dev_masks, self.lost_at = replay_index(trace, reqs, lifetime.kind == "real" and self.INFER_LOST, cache)
        self.state = bytearray(len(reqs))
        self.handles: list = [None] * len(reqs)        # unit -> [(mapping index, tlb or -1)]
        self.handle_of: dict = {}                       # mapping index -> tlb (real lifetimes)
        self.attempts = [0] * len(reqs)
        self.left = [0] * len(reqs)                     # live mappings per unit (real lifetimes)
        self.signature: dict = {}                       # unit -> Counter of (mapping, used)
        self.inflight = Counter()                       # device -> live units (mappings if real)
        self.inflight_total = 0
        self.partial = 0                                # units mapped only partly (trace order)
        self.queues: dict = {}                          # (device, cpu) -> deque of waiting units
        self.fifo: dict = {}                            # device -> deque of live units (qd)
        self.heap: list = []
        self.ctr = 0
        self.sample = lifetime.sampler() if lifetime.kind in ("fixed", "exp", "lognormal") else None
        self.devs = {}
        for name, mask in dev_masks.items():
            # the trace names the device and its DMA mask; min_align_mask and the segment
            # boundary are not in it: they come from ``device`` (a preset), else defaults
            dev = (Device(name, dma_mask=mask or U64) if device is None
                   else replace(device, name=name, dma_mask=mask or U64))
            self.devs[name] = m.add_device(dev)
        # A trace carries no data, so bytes need not move: switch off the bounce copy of this
        # machine's memory (slot bookkeeping, the only thing a replay measures, is unchanged).
        m.memory.move_bytes(False)
        self.peak = 0
        self.peak_bytes = m.bounce_bytes()
        self.livelocks: list = []
        self.tally = Counter()
        self.tl_t = array("d") if timeline else None
        self.tl_u = array("q") if timeline else None
        self.agreement = None                           # Counter(compared, same) with real lifetimes
        self.stop = None                                # early-stop predicate (see the class)

    @cached_property
    def unit_of(self) -> array:
        """The request of each mapping (:func:`unit_index`)."""
        return unit_index(self.trace, self.reqs, self.cache)

    @cached_property
    def req_records(self):
        """The requests as the readable loop indexes them (:func:`records`), made on
        first use: the compiled engine, which reads the columns, never makes them."""
        return records(self.reqs, self.cache)

    # -- the DMA operations -------------------------------------------------------------
    def _now(self, t: float) -> None:
        m = self.m
        if t > m.log.now:
            if self.mem.dyn is None:
                m.log.now = t                           # Machine.advance without a worker to tick
            else:
                m.advance(t - m.log.now)

    def _record(self, t: float) -> None:
        if self.tl_t is not None:
            self.tl_t.append(t)
            self.tl_u.append(self.mem.total_used)

    def map_one(self, i: int):
        """Map trace mapping ``i`` as ``swiotlb_map`` would (``swiotlb_tbl_map_single`` with the
        traced ``align_mask`` for kprobe records), or directly when the model's dma-direct
        would not bounce it.  Returns the bounce address, ``-1`` for a direct mapping, or
        the failure cause as a string."""
        mem, res = self.mem, self.res
        res.attempted += 1
        mp = self.maps[i]
        dev = self.devs[mp.dev_name]
        orig, size = mp.orig, mp.size
        if not mem.force_bounce and orig + size - 1 <= dev.reach:
            res.mapped += 1                             # dma_direct_map_page: no bounce
            return -1
        try:
            if not mem.force_bounce and not mem.nslabs:
                # out of reach and no pool: dma-direct's overflow error (raises)
                self.m.dma.map_single(dev, orig, size, DMA_TO_DEVICE if mp.dir is None else mp.dir,
                                      mp.attrs & KNOWN_ATTRS, mp.cpu)
            tlb = self.allocate(i, mp.cpu)
        except DmaMappingError as e:
            res.failed += 1
            cause = e.cause if e.cause in res.failures else "pool_full"
            res.failures[cause] += 1
            if len(self.m.log.tags) > 4096:
                self.m.log.tags.clear()
            return cause
        res.mapped += 1
        res.bounced += 1
        u = mem.total_used
        if u > self.peak:
            self.peak = u
        if mem.dyn is not None:
            b = self.m.bounce_bytes()
            if b > self.peak_bytes:
                self.peak_bytes = b
        return tlb

    def allocate(self, i: int, cpu: int) -> int:
        """``swiotlb_map`` -> ``swiotlb_tbl_map_single`` for trace mapping ``i``, searching
        from the area of ``cpu``, without any tally; raises :class:`DmaMappingError`."""
        mp = self.maps[i]
        dev = self.devs[mp.dev_name]
        d = DMA_TO_DEVICE if mp.dir is None else mp.dir      # the tracepoint has no direction
        attrs = mp.attrs & KNOWN_ATTRS                  # other bits do not change the slot choice
        if mp.align_mask or dev.reach == U64:           # swiotlb_map's dma_capable() cannot fail
            return self.mem.map_checked_args(dev, mp.orig, mp.size, mp.size, mp.align_mask, d, attrs, cpu)
        return self.mem.swiotlb_map_checked_args(dev, mp.orig, mp.size, d, attrs, cpu)

    def unmap_one(self, i: int, tlb: int) -> None:
        """``swiotlb_tbl_unmap_single`` with ``DMA_ATTR_SKIP_CPU_SYNC`` (no bytes to copy back)."""
        if tlb < 0:
            return
        mp = self.maps[i]
        mem = self.mem
        mem.unmap_checked_args(self.devs[mp.dev_name], mem.live[tlb], mp.size,
                   DMA_TO_DEVICE if mp.dir is None else mp.dir, DMA_ATTR_SKIP_CPU_SYNC)

    # -- scheduling ------------------------------------------------------------------------
    def push(self, t: float, prio: int, kind: int, payload) -> None:
        self.ctr += 1
        heapq.heappush(self.heap, (t, prio, self.ctr, kind, payload))

    def unit_mapped(self, u: int, t: float) -> None:
        """All mappings of unit ``u`` are live: schedule its completion."""
        req = self.req_records[u]
        lt = self.lt
        if req.aborted and lt.kind != "real":
            self.release(u, t)                          # the traced kernel gave it up at once
            self.state[u] = self.DONE
            return
        self.state[u] = self.LIVE
        dev = req.dev_name
        if lt.kind == "real":
            agree = self.agreement if self.attempts[u] == 0 else None
            for i, tlb in self.handles[u]:
                mp = self.maps[i]
                if agree is not None and mp.tlb is not None and mp.tlb != TLB_FAILED:
                    agree["compared"] += 1
                    agree["same"] += tlb == mp.tlb
                end, line = mp.unmap_time, mp.unmap_line
                if end is None:
                    if self.req_records[u].aborted:     # the kernel failed it: its retry is
                        self.unmap_one(i, tlb)          # later in the trace; give it back now
                        continue
                    end, line = self.lost_at.get(i), -1     # its unmap event was lost
                    if end is None:
                        self.tally["live_at_end"] += 1  # never unmapped in the trace
                        continue
                    if self.attempts[u] == 0:
                        self.tally["lost_unmaps"] += 1
                self.handle_of[i] = tlb
                self.left[u] += 1
                self.inflight[dev] += 1
                self.inflight_total += 1
                if self.attempts[u] == 0:              # mapped as traced: unmap as traced
                    self.push(max(t, end), line, self.COMPLETE_MAPPING, i)
                else:                                   # mapped later than traced: same duration
                    self.push(t + (end - mp.time), -1, self.COMPLETE_MAPPING, i)
            self.handles[u] = None
            if not self.left[u]:
                self.state[u] = self.DONE
            return
        self.inflight[dev] += 1
        self.inflight_total += 1
        if lt.kind == "qd":
            self.fifo.setdefault(dev, deque()).append(u)
        else:
            self.push(t + self.sample(), -1, self.COMPLETE_UNIT, u)

    def release(self, u: int, t: float) -> None:
        """Unmap every live mapping of unit ``u``."""
        hs = self.handles[u]
        if hs:
            for i, tlb in reversed(hs):
                self.unmap_one(i, tlb)
            self._record(t)
        self.handles[u] = None

    def complete_unit(self, u: int, t: float) -> None:
        self._now(t)
        self.release(u, t)
        self.state[u] = self.DONE
        dev = self.req_records[u].dev_name
        self.inflight[dev] -= 1
        self.inflight_total -= 1
        self.tally["completed"] += 1
        self.wake(dev, t)

    def complete_mapping(self, i: int, t: float) -> None:
        tlb = self.handle_of.pop(i, None)
        if tlb is None:
            return
        self._now(t)
        self.unmap_one(i, tlb)
        self._record(t)
        dev = self.maps[i].dev_name
        self.inflight[dev] -= 1
        self.inflight_total -= 1
        u = self.unit_of[i]
        self.left[u] -= 1
        if not self.left[u]:
            self.state[u] = self.DONE
            self.tally["completed"] += 1
            self.wake(dev, t)

    def wake(self, dev: str, t: float) -> None:
        """A request of ``dev`` completed: blk-mq reruns that device's stalled queues."""
        for key, q in self.queues.items():
            if q and key[0] == dev:
                self.push(t, -1, self.RUN, key)

    # -- requests -------------------------------------------------------------------------
    def attempt(self, u: int, t: float) -> bool:
        """Map every mapping of unit ``u`` now (a dispatch from its queue)."""
        self._now(t)
        self.handles[u] = []
        for i in self.req_records[u].members:
            r = self.map_one(i)
            if isinstance(r, str):
                self.failed(u, i, t, retry=True)
                return False
            self.handles[u].append((i, r))
        self._record(t)
        self.unit_mapped(u, t)
        return True

    def run_queue(self, key, t: float) -> None:
        """``blk_mq_run_hw_queue``: dispatch waiting requests in order until one fails."""
        q = self.queues.get(key)
        while q:
            u = q[0]
            if self.state[u] != self.QUEUED:
                q.popleft()
                continue
            if self.attempts[u]:
                self.tally["retry_attempts"] += 1
            if self.attempt(u, t):
                q.popleft()
            elif self.state[u] == self.DONE:            # livelocked or given up: dropped
                q.popleft()
            else:
                return

    def failed(self, u: int, i: int, t: float, retry: bool) -> None:
        """Mapping ``i`` of unit ``u`` failed (:meth:`requeue`), then the early stop, if any."""
        self.requeue(u, i, t, retry)
        if self.stop is not None and self.stop(self):
            raise StopReplay(t)

    def requeue(self, u: int, i: int, t: float, retry: bool) -> None:
        """Mapping ``i`` of unit ``u`` failed: give back what the unit holds (the driver
        unmaps its sg list and answers ``BLK_STS_RESOURCE``) and leave it at the head of its
        queue, unless the traced kernel abandoned this attempt anyway.

        Livelock (``data/realkernel/README.md``, finding 12): a retry that fails while nothing
        else holds slots or is in flight can only be repeated, never helped; when it fails
        that way ``livelock_repeats`` times on the same mapping with the same number of slots in use
        (with no other kind of failure in between), the request can never complete: it is
        reported and dropped (the real queue would stall for ever).

        Fires :data:`~swiotlb_lib.debug.REPLAY_MAP_FAILED` (time, slots in use, size, line)
        when a probe is registered."""
        used = self.mem.total_used
        if REPLAY_MAP_FAILED.probes:
            mp = self.maps[i]
            REPLAY_MAP_FAILED.fire(t, used, mp.size, mp.line)
        alone = retry and self.inflight_total == 0 and self.partial == 0
        self.release(u, t)
        self._record(t)
        req = self.req_records[u]
        if not self.attempts[u]:                        # counted once per request
            self.tally["too_big_requests" if self.maps[i].size > MAX_MAPPING_BYTES
                       else "failed_requests"] += 1
        if req.aborted or req.kind not in BLOCK_KINDS:
            self.attempts[u] += 1
            self.state[u] = self.DONE
            self.tally["dropped" if req.kind not in BLOCK_KINDS else "aborted_failed"] += 1
            return
        self.attempts[u] += 1
        reps = 0
        if alone:                   # the area indexes may cycle: count repeats, not runs
            seen = self.signature.setdefault(u, Counter())
            seen[(i, used)] += 1
            reps = seen[(i, used)]
        else:
            self.signature.pop(u, None)
        if reps >= self.repeats_needed:
            self.state[u] = self.DONE
            self.livelocks.append(Livelock(self.maps[req.members[0]].line, t, req.dev_name, req.data_bytes,
                                           request_slots(req, self.maps), used, self.mem.nslabs,
                                           self.attempts[u], self.maps[i].size, reps))
            return
        if self.attempts[u] > self.max_retries:
            self.state[u] = self.DONE
            self.tally["gave_up"] += 1
            return
        if self.attempts[u] == 1:
            self.tally["requeued"] += 1
        key = (req.dev_name, req.cpu)
        q = self.queues.setdefault(key, deque())
        if self.state[u] != self.QUEUED:
            self.state[u] = self.QUEUED
            q.appendleft(u)                             # blk_mq_requeue_request: at the head
        dev = req.dev_name
        if self.lt.kind == "qd" and self.fifo.get(dev):
            self.complete_unit(self.fifo[dev].popleft(), t)   # the device finishes its oldest
        else:   # first failure: rerun at once (no SCHED_RESTART yet); then after the delay
            self.push(t if self.attempts[u] == 1 else t + self.retry_delay, -1, self.RUN, key)

    def handle(self, ev) -> None:
        t, _, _, kind, x = ev
        if kind == self.COMPLETE_UNIT:
            self.complete_unit(x, t)
        elif kind == self.COMPLETE_MAPPING:
            self.complete_mapping(x, t)
        else:
            self.run_queue(x, t)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        maps, heap, state, unit_of = self.maps, self.heap, self.state, self.unit_of
        reqs, handles, queues = self.req_records, self.handles, self.queues
        rt = self.req_table
        last = rt.members[rt.ptr[1:] - 1].tolist()      # each request's last mapping: r.members[-1]
        qd = self.lt.kind == "qd"
        depth = int(self.lt.value) if qd else 0
        n = len(maps)
        step = max(n // 200, 1)
        log, mem, map_one = self.m.log, self.mem, self.map_one
        tl_t, tl_u = self.tl_t, self.tl_u
        for i in range(n):
            mp = maps[i]
            t, line = mp.time, mp.line
            while heap and (heap[0][0] < t or (heap[0][0] == t and heap[0][1] < line)):
                self.handle(heapq.heappop(heap))
            if self.progress is not None and not i % step:
                self.progress(i, n)
            u = unit_of[i]
            if state[u] != self.IDLE:                   # waits in its queue, or already failed
                self.tally["not_attempted"] += 1
                continue
            hs = handles[u]
            if hs is None:                              # a new request arrives
                req = reqs[u]
                q = queues.get((req.dev_name, req.cpu))
                if q and req.kind in BLOCK_KINDS:       # behind requeued requests
                    state[u] = self.QUEUED
                    q.append(u)
                    self.tally["not_attempted"] += 1
                    self.tally["queued_behind"] += 1
                    continue
                if qd:
                    self._now(t)
                    f = self.fifo.get(mp.dev_name)
                    while f and len(f) >= depth:
                        self.complete_unit(f.popleft(), t)
                hs = handles[u] = []
                self.partial += 1
            if t > log.now:
                self._now(t)
            r = map_one(i)
            if r.__class__ is str:
                self.partial -= 1
                self.failed(u, i, t, retry=False)
                continue
            hs.append((i, r))
            if tl_t is not None:
                tl_t.append(t)
                tl_u.append(mem.total_used)
            if i == last[u]:
                self.partial -= 1
                self.unit_mapped(u, t)
        self.drain()
        if self.progress is not None:
            self.progress(n, n)

    def drain(self) -> None:
        """After the last traced mapping: let everything complete and the queues empty (each
        retry counts towards the livelock and give-up limits, so this ends)."""
        heap = self.heap
        for u, hs in enumerate(self.handles):
            if hs and self.state[u] == self.IDLE:       # the trace ended inside this request
                self.partial -= 1
                self.unit_mapped(u, self.m.log.now)
        while True:
            while heap:
                self.handle(heapq.heappop(heap))
            t = self.m.log.now
            busy = [d for d, q in self.fifo.items() if q]
            waiting = [k for k, q in self.queues.items() if q]
            if busy:
                for d in busy:                          # qd: the devices finish their queues
                    self.complete_unit(self.fifo[d].popleft(), t)
            elif waiting:
                for k in waiting:
                    self.push(t + self.retry_delay, -1, self.RUN, k)
            else:
                break

    def finish(self) -> ScenarioResult:
        res = self.rec.finish()
        res.peak_used_slots = max(self.peak, res.peak_used_slots)
        res.peak_bounce_bytes = max(self.peak_bytes, res.peak_bounce_bytes)
        tal = self.tally
        res.extra = {"trace": self.trace.source, "lifetime": self.lt.spec,
                     "requests": len(self.reqs), "requests_completed": tal["completed"],
                     "failed_requests": tal["failed_requests"],
                     "too_big_requests": tal["too_big_requests"],
                     "requests_requeued": tal["requeued"], "retries": tal["retry_attempts"],
                     "queued_behind": tal["queued_behind"],
                     "livelocked_requests": len(self.livelocks), "gave_up": tal["gave_up"],
                     "aborted_in_trace": int(self.req_table.aborted.sum()),
                     "dropped_mappings": tal["dropped"],
                     "live_at_end": tal["live_at_end"]}
        if self.lt.kind == "real":
            res.extra["lost_unmaps"] = tal["lost_unmaps"]
        return res
