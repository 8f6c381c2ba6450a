"""A seeded discrete-event simulation of T CPUs mapping and unmapping through SWIOTLB.

The allocator is the real model: every mapping is ``DmaApi.map_single`` (dma-direct ->
``swiotlb_map`` -> ``swiotlb_tbl_map_single``) on a :class:`~swiotlb_lib.boot.Machine`
booted with ``swiotlb=<nslabs>,<nareas>,force`` (or any command line), with ``cpu=`` set
to the mapper's CPU, and every unmapping is ``DmaApi.unmap_single``.  Time is *derived*
from the model's deterministic cost counters, read around each call:

* which area locks the search took (``IoTlbPool.area_locks``, per pool) and how many slots
  it examined (``IoTlbPool.slots_examined``): each lock is held for
  ``lock_base_ns + lock_slot_ns * slots`` (a search that fell through to other areas
  takes their locks one after the other, the examined slots shared among them);
* the unmap takes the lock of the area holding the buffer; a release examines no
  slots, so it is held ``lock_base_ns``;
* bytes copied (``IoTlbMem.bytes_copied``): ``copy_ns_per_byte`` each, outside the lock
  (after the search at map time; before the release at unmap time, as dma-direct syncs
  for the CPU before ``swiotlb_tbl_unmap_single``);
* dynamic profiles: pools walked by ``is_swiotlb_buffer`` (``lookup_steps``), transient
  pools and RFC v1 buffers allocated, and the RFC v1 maple-tree lock.

Locks are FIFO (like a queued spinlock).  An uncontended acquisition is free; handing
the lock to a waiter costs ``handoff_ns`` (the lock word and the area's slot metadata
move to the waiter's cache), during which the lock is unusable.  Between map and unmap a
mapper waits ``transfer_ns`` (the device "transmits"); between unmap and the next map it
thinks ``think_ns``.  All constants are in :class:`CostModel`; they are assumptions.

Model state changes when an operation reaches the allocator (a map when it requests
its first lock, an unmap when it starts its copy-back); because locks are FIFO, the
order in which operations on one area change the state is the order in which they hold
its lock, except that an unmap frees its slots a copy-time early.  Only slot *choice*
can differ from a true interleaving, never the counters that set the time.

The shapes this reproduces (published results, sources per item):

1. one area: adding mappers adds no throughput and can lose some, while the share of
   time spent waiting for the lock rises (Chao Gao, ``20220628070136.419163-1-chao.gao@intel.com``:
   1 fio job 1037 MB/s read, 4 jobs 885 MB/s with one lock);
2. N areas: near-linear scaling while mappers <= areas (same series, 4 jobs 2320 MB/s
   with the lock split; Tianyu Lan ``20220428141429.1637028-1-ltykernel@gmail.com``);
3. small dynamic pools have few areas (<= size / 256 KiB): parallel loads slow down,
   serial ones do not (Petr Tesarik, ``cover.1687859323.git.petr.tesarik.ext@huawei.com``;
   ``Documentation/core-api/swiotlb.rst``).

Everything random (start offsets, jitter of overheads) comes from ``numpy`` generators
seeded by ``seed``: same arguments, same result.
"""
from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, field, fields

import numpy as np

from ..boot import Machine
from ..checks import check_dir, check_int
from ..constants import (DMA_BIDIRECTIONAL, DMA_TO_DEVICE, IO_TLB_SEGMENT_BYTES,
                         IO_TLB_SHIFT, PAGE_SIZE)
from ..swiotlb import DmaMappingError

__all__ = ["CostModel", "DEFAULT_COSTS", "LatencySummary", "Trace", "ConcurrencyResult",
           "run_mappers", "grow_pools", "summarize", "simulate", "throughput_table"]



@dataclass(frozen=True)
class CostModel:
    """Service-time constants of the simulation, in nanoseconds.

    **Every value is an assumption, not a measurement.**  They are round numbers of the
    right order for a current x86 core, chosen for two properties, not fitted to data:

    * the lock-held part of a 4 KiB bounce pair (``2a + b`` = 505 ns: the search
      examines one slot, the release none) is most of the pair's single-mapper time
      (about 790 ns), so two mappers already saturate a lock;
    * a saturated lock hands over at every acquisition, so a pair then costs
      ``505 + 2h`` = 1005 ns of lock time: one lock tops out about 21 % below the
      single-mapper rate, inside the 15-24 % that Chao Gao reported for 1 vs 4 fio jobs
      on one lock (``20220628070136.419163-1-chao.gao@intel.com``).

    With a long ``transfer_ns`` the lock matters less and the curves flatten toward
    linear scaling.  Change values with ``dataclasses.replace`` to ask "what if".
    """

    #: Fixed cost of ``dma_map_single`` outside any lock (dma-direct checks, ``swiotlb_map``
    #: glue, the ``dma_capable`` re-check).  Assumption.
    map_overhead_ns: float = 40.0
    #: Fixed cost of ``dma_unmap_single`` outside any lock.  Assumption.
    unmap_overhead_ns: float = 40.0
    #: ``a``: an area lock's hold time with nothing to scan: irq-save lock and unlock,
    #: area ``index``/``used`` updates, the slot-array writes of the run and the backward
    #: renumbering of the free run before it (up to 127 counters, which the model's
    #: counters do not count).  Assumption.
    lock_base_ns: float = 250.0
    #: ``b``: per slot examined by the search under the lock (``slots_examined``): one
    #: ``list[]`` load and the alignment test, often a cache miss.  A release examines
    #: no slots; its per-slot writes are folded into ``a``.  Assumption.
    lock_slot_ns: float = 5.0
    #: ``c``: per byte bounced (memcpy at 40 GB/s, so 102 ns for 4 KiB), outside the
    #: lock; also the cost of the benchmark's memset.  Assumption.
    copy_ns_per_byte: float = 0.025
    #: ``h``: a contended handoff: the lock and the slot metadata it protects move to
    #: the next waiter's CPU; the lock is unusable meanwhile.  Assumption (a cross-core
    #: transfer of a few cache lines, more in a VM with paravirtualised spinlocks).
    handoff_ns: float = 250.0
    #: Per pool visited by the 6.6+ dynamic ``is_swiotlb_buffer``/``swiotlb_find_pool``
    #: walk (an RCU list step).  Assumption.
    lookup_step_ns: float = 10.0
    #: Allocating a transient pool (6.6+) or an RFC v1 per-buffer allocation from the
    #: page allocator, outside the area locks.  Assumption.
    pool_alloc_ns: float = 5_000.0
    #: Default delay between map and unmap (the device's "transfer"; ``dma_trans_ns``
    #: in dma_map_benchmark).  Assumption: 0, a tight map/unmap loop.
    transfer_ns: float = 0.0
    #: Default work between an unmap and the next map.  Assumption: 0.
    think_ns: float = 0.0
    #: Coefficient of variation of the log-normal noise (mean 1) that multiplies the
    #: fixed overheads, copies and think times, so mappers do not run in lock-step.
    #: Lock hold times stay as the counters set them; the transfer delay is exact (like
    #: the benchmark's ``ndelay``).  Assumption.
    jitter: float = 0.2
    #: Mappers start at seeded uniform offsets in ``[0, start_spread_ns)``.  Assumption.
    start_spread_ns: float = 1_000.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{f.name}: must be a finite number >= 0, got {v!r}")
        if self.jitter > 2:
            raise ValueError(f"jitter: must be in 0..2, got {self.jitter!r}")


DEFAULT_COSTS = CostModel()


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles of one operation kind, in nanoseconds."""

    p50: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def of(cls, ns: np.ndarray) -> "LatencySummary":
        if ns.size == 0:
            return cls(math.nan, math.nan, math.nan, math.nan)
        p = np.percentile(ns, [50, 90, 99])
        return cls(float(p[0]), float(p[1]), float(p[2]), float(ns.mean()))


@dataclass
class Trace:
    """What :func:`run_mappers` saw, one entry per completed map+unmap pair, in
    completion order: completion time, map and unmap latency, time spent waiting for
    locks, and the mapper.  ``failures`` lists ``(mapper, cpu, cause, message)`` for
    mappers that stopped on a failed mapping."""

    end_ns: np.ndarray
    map_ns: np.ndarray
    unmap_ns: np.ndarray
    wait_ns: np.ndarray
    mapper: np.ndarray
    threads: int
    sim_ns: float
    failures: list = field(default_factory=list)


@dataclass
class ConcurrencyResult:
    """One simulated run (:func:`simulate`).

    ``throughput`` is completed map+unmap pairs per simulated second over the measured
    window (after ``warmup``); ``lock_wait_share`` the time mappers spent waiting for an
    area lock (handoffs included) over ``threads`` times the window; ``map``/``unmap``
    latency percentiles in ns.  ``nareas`` is the area count of the pool the first
    search goes to (the newest pool for dynamic profiles); ``pools`` the number of
    pools; ``costs`` the model's cost counters accumulated by the measured run.
    """

    threads: int
    nareas: int
    kernel: str
    cmdline: str
    ops: int
    throughput: float
    lock_wait_share: float
    map: LatencySummary
    unmap: LatencySummary
    pools: int
    sim_ns: float
    failures: list
    costs: dict
    seed: int

    def row(self) -> dict:
        """A flat dict for tables (latencies in µs)."""
        return {"threads": self.threads, "nareas": self.nareas, "kernel": self.kernel,
                "ops": self.ops, "throughput_mops": self.throughput / 1e6,
                "lock_wait_share": self.lock_wait_share,
                "map_p50_us": self.map.p50 / 1e3, "map_p90_us": self.map.p90 / 1e3,
                "map_p99_us": self.map.p99 / 1e3, "unmap_p50_us": self.unmap.p50 / 1e3,
                "unmap_p90_us": self.unmap.p90 / 1e3, "unmap_p99_us": self.unmap.p99 / 1e3,
                "failures": len(self.failures)}


# ------------------------------------------------------------------ reading counters --

def _dyn_counts(mem) -> tuple[int, int, int, int]:
    """(lookup_steps, pools allocated (transient + RFC buffers), RFC tree lock
    acquisitions, RFC tree node visits) from a dynamic hook's cost counters."""
    if mem.dyn is None:
        return 0, 0, 0, 0
    c = mem.dyn.costs()
    return (c.get("lookup_steps", 0),
            c.get("transient_pools", 0) + c.get("dyn_buffers", 0),
            c.get("dyn_lock_acquisitions", 0), c.get("tree_node_visits", 0))


def _first(e):
    return e[0]


class _MapProbe:
    """Runs one map through the model and turns the counters it moved into a lock
    chain ``[(lock_key, hold_ns), ...]`` and the time spent after the locks."""

    def __init__(self, machine: Machine, dev, costs: CostModel) -> None:
        self.m = machine
        self.mem = machine.swiotlb
        self.dev = dev
        self.a = costs.lock_base_ns
        self.b = costs.lock_slot_ns
        self.c = costs.copy_ns_per_byte
        self.step = costs.lookup_step_ns
        self.alloc = costs.pool_alloc_ns
        self.map_single = machine.dma.map_single
        prof = self.mem.profile
        #: 6.11 dynamic searches area-major across pools (55c543865b76); others pool by pool
        self.area_major = prof.dynamic == "v6.11"

    def map(self, paddr: int, size: int, dir: int, cpu: int):
        """Map through the model; returns ``(dma_addr, lock chain, post-lock ns)``."""
        mem = self.mem
        pools = mem.pools
        copied0 = mem.bytes_copied
        if mem.dyn is None and len(pools) == 1:
            # the common case, one fixed pool: compare its lock counters only
            p = pools[0]
            al = p.area_locks[:]
            ex = p.slots_examined
            dma = self.map_single(self.dev, paddr, size, dir, 0, cpu)
            cur = p.area_locks
            after = (mem.bytes_copied - copied0) * self.c
            if cur == al:
                return dma, [], after
            n = p.nareas
            first = cpu & (n - 1)
            if cur[first] - al[first] == 1 and sum(cur) - sum(al) == 1:
                return dma, [((p, first), self.a + self.b * (p.slots_examined - ex))], after
            chain = []
            self._add(chain, p, [i for i in range(n) if cur[i] != al[i]], p.slots_examined - ex, cpu)
            chain.sort(key=_first)
            return dma, [(k, h) for _, k, h in chain], after
        # the device's live transient pools too: their counters must not be taken for new
        before = [(p, p.area_locks[:], p.slots_examined) for p in (*pools, *self.dev.dma_io_tlb_pools)]
        dyn0 = _dyn_counts(mem)
        dma = self.map_single(self.dev, paddr, size, dir, 0, cpu)
        chain = []
        seen = set()
        for p, al, ex in before:
            seen.add(id(p))
            cur = p.area_locks
            if cur != al:
                self._add(chain, p, [i for i in range(p.nareas) if cur[i] != al[i]],
                          p.slots_examined - ex, cpu)
        # pools that appeared during the call: one the worker added, or a transient pool
        for p in list(mem.pools) + list(self.dev.dma_io_tlb_pools):
            if id(p) not in seen and any(p.area_locks):
                self._add(chain, p, [i for i in range(p.nareas) if p.area_locks[i]],
                          p.slots_examined, cpu)
        dyn1 = _dyn_counts(mem)
        after = (dyn1[1] - dyn0[1]) * self.alloc
        tree = dyn1[2] - dyn0[2]
        if tree:        # RFC v1: the maple tree's lock, before any slot search
            visits = (dyn1[3] - dyn0[3]) / tree
            chain.extend(((-1, 0), "rfc-v1 maple tree", self.a + self.b * visits) for _ in range(tree))
        chain.sort(key=_first)
        after += (mem.bytes_copied - copied0) * self.c
        return dma, [(k, h) for _, k, h in chain], after

    def _add(self, chain: list, pool, areas: list, examined: int, cpu: int) -> None:
        n = pool.nareas
        share = examined / len(areas) if areas else 0.0
        hold = self.a + self.b * share
        pidx = self._pool_index(pool)
        for area in areas:
            k = (area - cpu) % n
            order = (k, pidx) if self.area_major else (pidx, k)
            chain.append((order, (pool, area), hold))

    def _pool_index(self, pool) -> int:
        for i, p in enumerate(self.mem.pools):
            if p is pool:
                return i
        return 1 << 30          # transient pools are searched last

    def unmap(self, dma: int, size: int, dir: int):
        """Unmap through the model; returns ``(pre_lock_ns, lock chain)``."""
        mem = self.mem
        dev = self.dev
        buf = mem.live.get(dma)
        bounced = buf is not None and buf.dev is dev
        dyn0 = _dyn_counts(mem) if mem.dyn is not None else None
        copied0 = mem.bytes_copied
        if bounced:
            pool = buf.pool
            if pool is None:
                key = None
            else:
                key = (pool, buf.first_slot // pool.area_nslabs)
        self.m.dma.unmap_single(dev, dma, size, dir)
        pre = (mem.bytes_copied - copied0) * self.c
        chain = []
        if mem.dyn is not None:
            dyn1 = _dyn_counts(mem)
            pre += (dyn1[0] - dyn0[0]) * self.step
            tree = dyn1[2] - dyn0[2]
            if tree:
                visits = (dyn1[3] - dyn0[3]) / tree
                chain.extend(("rfc-v1 maple tree", self.a + self.b * visits) for _ in range(tree))
        if bounced and key is not None:
            chain.append((key, self.a))
        return pre, chain


# ------------------------------------------------------------------ the simulation ---

_MAP, _LOCKREQ, _HOLD_END, _UNMAP = 0, 1, 2, 3


def run_mappers(machine: Machine, dev, buffers, cpu_ids, size: int, dir: int = DMA_BIDIRECTIONAL,
                *, costs: CostModel = DEFAULT_COSTS, ops: int = 2000,
                duration_ns: float | None = None, seed: int = 0, fill: int | None = None,
                on_failure=None) -> Trace:
    """Simulate ``len(buffers)`` mappers on ``machine``: mapper ``i`` runs on CPU
    ``cpu_ids[i]`` and loops map -> transfer -> unmap -> think on its own buffer at
    physical address ``buffers[i]`` (``size`` bytes, direction ``dir``).

    Stops when ``ops`` pairs have completed, or when a mapper finishes a pair at or
    after ``duration_ns`` (it then stops, as a kthread checks ``kthread_should_stop``
    at the top of its loop), whichever comes first.  ``fill`` (a byte value) makes each
    loop start by writing that byte over the buffer, timed at ``copy_ns_per_byte`` and
    not counted in the latencies (dma_map_benchmark's memset).  A mapping that fails
    (``DmaMappingError``) stops its mapper and is listed in ``Trace.failures``;
    ``on_failure(mapper, cpu, error)`` is called at that moment, if given.  The
    machine's clock (``Machine.advance``: kernel-log rate limits, the dynamic growth
    worker) follows simulated time.
    """
    threads = len(buffers)
    if threads < 1 or len(cpu_ids) != threads:
        raise ValueError(f"cpu_ids: need one CPU per buffer ({threads}), got {len(cpu_ids)}")
    ops = check_int("ops", ops, 1, 10_000_000)
    if duration_ns is not None and (not isinstance(duration_ns, (int, float)) or not duration_ns > 0):
        raise ValueError(f"duration_ns: must be a number > 0 or None, got {duration_ns!r}")
    if fill is not None:
        check_int("fill", fill, 0, 255)
    rng = np.random.default_rng(seed)
    probe = _MapProbe(machine, dev, costs)
    h = costs.handoff_ns
    cpb = costs.copy_ns_per_byte
    # jitter: log-normal factors with mean 1, six per pair (overheads, copies, transfer, think)
    sigma = math.sqrt(math.log1p(costs.jitter ** 2)) if costs.jitter else 0.0
    ndraw = 6 * (ops + 2 * threads) + 64
    noise = (np.exp(rng.normal(-sigma * sigma / 2, sigma, ndraw)) if sigma else np.ones(ndraw)).tolist()
    starts = (rng.random(threads) * costs.start_spread_ns).tolist()
    fill_bytes = bytes([fill]) * size if fill is not None else None
    fill_ns = cpb * size if fill is not None else 0.0
    o_map, o_unmap = costs.map_overhead_ns, costs.unmap_overhead_ns
    transfer, think = costs.transfer_ns, costs.think_ns

    heap: list = []
    # per-mapper state
    map_start = [0.0] * threads
    unmap_start = [0.0] * threads
    map_lat = [0.0] * threads
    waits = [0.0] * threads
    req_at = [0.0] * threads
    chain: list = [None] * threads
    ci = [0] * threads
    phase = [0] * threads           # 0 map, 1 unmap
    dma_of = [0] * threads
    after = [0.0] * threads
    locks: dict = {}                # key -> deque of waiting mappers, or None when free
    rec_end, rec_map, rec_unmap, rec_wait, rec_who = [], [], [], [], []
    failures = []
    done = 0
    stopped = False
    t_last = 0.0
    cpu_of = [int(c) for c in cpu_ids]
    log = machine.log

    nxt = itertools.cycle(noise).__next__
    tie = itertools.count().__next__        # tie-breaker: equal times pop in push order
    heappush = heapq.heappush

    def push(t, kind, i):
        heappush(heap, (t, tie(), kind, i))

    def request(i, t):
        key, hold = chain[i][ci[i]]
        q = locks.get(key)
        if q is None:                   # free: never used, or released with no waiter
            locks[key] = deque()
            push(t + hold, _HOLD_END, i)
        else:
            req_at[i] = t
            q.append(i)

    def release(key, t):
        q = locks[key]
        if q:
            j = q.popleft()
            g = t + h
            waits[j] += g - req_at[j]
            push(g + chain[j][ci[j]][1], _HOLD_END, j)
        else:
            locks[key] = None

    def clock(t):
        now = t * 1e-9
        if now > log.now:
            machine.advance(now - log.now)

    def start_loop(i, t):
        """Begin the next pair at ``t`` (after think): memset, then the map request."""
        if fill_bytes is not None:
            machine.cpu_write(buffers[i], fill_bytes)
        ms = t + fill_ns
        map_start[i] = ms
        push(ms + o_map * nxt(), _MAP, i)

    for i in range(threads):
        start_loop(i, starts[i])

    while heap:
        t, _, kind, i = heapq.heappop(heap)
        if kind == _HOLD_END:
            release(chain[i][ci[i]][0], t)
            ci[i] += 1
            if ci[i] < len(chain[i]):
                request(i, t)
                continue
            if phase[i] == 0:
                t_end = t + after[i]
                map_lat[i] = t_end - map_start[i]
                us = t_end + transfer
                unmap_start[i] = us
                phase[i] = 1
                push(us + o_unmap * nxt(), _UNMAP, i)
                continue
            # unmap done
            rec_end.append(t)
            rec_map.append(map_lat[i])
            rec_unmap.append(t - unmap_start[i])
            rec_wait.append(waits[i])
            rec_who.append(i)
            t_last = t
            done += 1
            if done >= ops:
                stopped = True
                break
            if duration_ns is not None and t >= duration_ns:
                continue
            start_loop(i, t + think * nxt())
        elif kind == _MAP:
            if stopped:
                continue
            waits[i] = 0.0
            phase[i] = 0
            clock(t)
            try:
                dma, ch, aft = probe.map(buffers[i], size, dir, cpu_of[i])
            except DmaMappingError as e:
                failures.append((i, cpu_of[i], e.cause, str(e)))
                if on_failure is not None:
                    on_failure(i, cpu_of[i], e)
                continue
            dma_of[i] = dma
            after[i] = aft * nxt()
            chain[i] = ch
            ci[i] = 0
            if ch:
                request(i, t)
            else:
                t_end = t + after[i]
                map_lat[i] = t_end - map_start[i]
                us = t_end + transfer
                unmap_start[i] = us
                phase[i] = 1
                push(us + o_unmap * nxt(), _UNMAP, i)
        elif kind == _UNMAP:
            clock(t)
            pre, ch = probe.unmap(dma_of[i], size, dir)
            chain[i] = ch
            ci[i] = 0
            if not ch:
                # a direct mapping takes no lock: a private zero-length "lock" of its own
                # ends the operation through the same path
                chain[i] = [(("direct", i), 0.0)]
            push(t + pre * nxt(), _LOCKREQ, i)
        else:  # _LOCKREQ
            request(i, t)
    return Trace(np.asarray(rec_end), np.asarray(rec_map), np.asarray(rec_unmap),
                 np.asarray(rec_wait), np.asarray(rec_who, dtype=np.int64), threads,
                 t_last, failures)


def summarize(trace: Trace, warmup: float = 0.1) -> dict:
    """Throughput, lock-wait share and latency percentiles of a trace, leaving out the
    first ``warmup`` fraction of completed pairs (0 <= warmup < 1)."""
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
        raise ValueError(f"warmup: must be a number in [0, 1), got {warmup!r}")
    n = trace.end_ns.size
    if n == 0:
        nan = LatencySummary.of(np.empty(0))
        return {"ops": 0, "throughput": 0.0, "lock_wait_share": math.nan, "map": nan, "unmap": nan}
    w = int(n * warmup)
    t0 = trace.end_ns[w - 1] if w > 0 else 0.0
    span = trace.end_ns[-1] - t0
    k = n - w
    thr = k / span * 1e9 if span > 0 else math.inf
    share = float(trace.wait_ns[w:].sum() / (trace.threads * span)) if span > 0 else math.nan
    return {"ops": k, "throughput": float(thr), "lock_wait_share": share,
            "map": LatencySummary.of(trace.map_ns[w:]), "unmap": LatencySummary.of(trace.unmap_ns[w:])}


# ------------------------------------------------------------------ set-up ------------

def grow_pools(machine: Machine, dev, target_bytes: int, cpu: int = 0) -> int:
    """Make a dynamic profile's allocator grow until its pools (transient ones excluded)
    hold ``target_bytes``: map 256 KiB buffers until the background worker has added
    enough pools, then unmap them all (transient pools go with their buffers).  Petr's
    "growing" runs started from 1 MiB and grew to 5 MiB.  Returns the bytes the pools
    hold.  A profile without growth raises ``ValueError``."""
    mem = machine.swiotlb
    if mem.dyn is None or not hasattr(mem.dyn, "run_pending_work") or machine.profile.dynamic == "rfc-v1":
        raise ValueError(f"grow_to: profile {machine.profile.name!r} has no growing pools "
                         "(use v6.6-dynamic or v6.11-dynamic)")
    check_int("target_bytes", target_bytes, 1, 1 << 34)
    live = []
    base = 0x10000000
    chunk = IO_TLB_SEGMENT_BYTES
    for k in range(4096):
        if (mem.nslabs << IO_TLB_SHIFT) >= target_bytes:
            break
        addr = base + (k % 256) * chunk
        try:
            live.append(machine.dma.map_single(dev, addr, chunk, DMA_TO_DEVICE, 0, cpu))
        except DmaMappingError:
            machine.run_pending_work()
        machine.run_pending_work()
    for d in live:
        machine.dma.unmap_single(dev, d, chunk, DMA_TO_DEVICE)
    return mem.nslabs << IO_TLB_SHIFT


def _first_pool_areas(machine: Machine) -> int:
    pools = machine.swiotlb.pools
    return pools[0].nareas if pools else 0


def simulate(threads: int = 1, nareas: int = 1, *, ops: int = 2000, size: int = 4096,
             dir: int = DMA_BIDIRECTIONAL, kernel: str | None = "v6.11", nslabs: int = 32768,
             cmdline: str | None = None, cpus: int | None = None, cpu_ids=None,
             grow_to: int | None = None, costs: CostModel = DEFAULT_COSTS, seed: int = 0,
             warmup: float = 0.1) -> ConcurrencyResult:
    """Boot a machine, attach a forced-bounce device, run ``threads`` mappers, summarise.

    ``cmdline`` defaults to ``swiotlb=<nslabs>,<nareas>,force``; given, it replaces
    ``nslabs``/``nareas``.  The machine has ``cpus`` CPUs (default ``threads``); mapper
    ``i`` runs on ``cpu_ids[i]`` (default CPU ``i``).  Each mapper bounces its own
    page-aligned ``size``-byte buffer (1 .. 256 KiB), ``ops`` pairs in all.  ``grow_to``
    (bytes) first grows a dynamic profile's pools (:func:`grow_pools`); the cost
    counters reported are those of the measured run only.
    """
    threads = check_int("threads", threads, 1, 1024)
    nareas = check_int("nareas", nareas, 1, 1024)
    size = check_int("size", size, 1, IO_TLB_SEGMENT_BYTES)
    nslabs = check_int("nslabs", nslabs, 128, 1 << 22)
    dir = check_dir(int(dir) if isinstance(dir, np.integer) else dir)
    seed = check_int("seed", seed, 0, 2 ** 63 - 1)
    if not isinstance(costs, CostModel):
        raise ValueError(f"costs: must be a CostModel, got {type(costs).__name__}")
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
        raise ValueError(f"warmup: must be a number in [0, 1), got {warmup!r}")
    if cpus is None:
        cpus = threads if cpu_ids is None else max(max(cpu_ids) + 1, threads)
    cpus = check_int("cpus", cpus, 1, 8192)
    if cpu_ids is None:
        if cpus < threads:
            raise ValueError(f"cpus: must be >= threads ({threads}) unless cpu_ids is given, got {cpus}")
        cpu_ids = list(range(threads))
    else:
        cpu_ids = list(cpu_ids)
        if len(cpu_ids) != threads or any(isinstance(c, bool) or not isinstance(c, (int, np.integer))
                                          or not 0 <= c < cpus for c in cpu_ids):
            raise ValueError(f"cpu_ids: must be {threads} integers in 0..{cpus - 1}, got {cpu_ids!r}")
    if cmdline is None:
        cmdline = f"swiotlb={nslabs},{nareas},force"
    m = Machine(ram="2G", cpus=cpus, cmdline=cmdline, kernel=kernel)
    dev = m.add_device("virtio-blk")
    if grow_to is not None:
        grow_pools(m, dev, grow_to)
    stride = -(-size // PAGE_SIZE) * PAGE_SIZE
    base = 0x20000000
    buffers = [base + i * stride for i in range(threads)]
    before = m.swiotlb.costs()
    tr = run_mappers(m, dev, buffers, cpu_ids, size, dir, costs=costs, ops=ops, seed=seed)
    s = summarize(tr, warmup)
    after = m.swiotlb.costs()
    diff = {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, (int, float))}
    return ConcurrencyResult(threads, _first_pool_areas(m), m.profile.name, cmdline, s["ops"],
                             s["throughput"], s["lock_wait_share"], s["map"], s["unmap"],
                             len(m.swiotlb.pools), tr.sim_ns, tr.failures, diff, seed)


def throughput_table(threads=(1, 2, 4, 8, 16), areas=(1, 8), **kw) -> dict:
    """``{nareas: [ConcurrencyResult per thread count]}`` for a throughput-vs-threads table;
    ``kw`` goes to :func:`simulate`."""
    return {a: [simulate(t, a, **kw) for t in threads] for a in areas}
