"""What SWIOTLB lets you observe: kernel log lines, trace events, debugfs values.

* :class:`KernelLog` -- ``printk`` as lines, with the ``software IO TLB: `` prefix
  (``pr_fmt`` in ``kernel/dma/swiotlb.c``), ``dev_warn`` prefixes, ``*_once`` and
  ``*_ratelimited`` behaviour (``DEFAULT_RATELIMIT_INTERVAL`` 5 s, burst 10, and the
  ``"<func>: N callbacks suppressed"`` line) on a simulated clock.
* :class:`TraceEvent` -- ``swiotlb:swiotlb_bounced`` in the text format of
  ``include/trace/events/swiotlb.h`` (unchanged from 5.19 to 6.12).
* debugfs values are computed by :meth:`swiotlb_lib.swiotlb.IoTlbMem.debugfs`.

Also the machine-readable warning tags used by the oracle replay (``full``,
``dma_mask_overflow``, ``align_gt_page``), and the model's own hook points:

* :class:`Tracepoint` -- a place in the model where code outside it can watch, like a
  kernel tracepoint (``include/linux/tracepoint.h``): :data:`SEARCH_AREA` (every area
  search), :data:`POOL_ADDED` (``add_mem_pool``) and :data:`REPLAY_MAP_FAILED` (a failed
  mapping attempt in :func:`swiotlb_lib.trace.replay`).  :func:`subscribe` registers a
  probe and returns a handle (``register_trace_<name>()``); :func:`observe` does the same
  for the length of a ``with`` block.  These are the model's instruments, not the
  kernel's: only ``swiotlb_bounced`` (:class:`TraceEvent`) exists in a real kernel.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

PR_FMT = "software IO TLB: "
RATELIMIT_INTERVAL_S = 5.0
RATELIMIT_BURST = 10

#: Why a mapping failed, as the model reports it (``DmaMappingError.cause``, the ``failures``
#: of scenario and replay results): larger than one segment (256 KiB, or less with
#: ``min_align_mask``); no free run of slots; the bounce address beyond the device's mask;
#: no memory for a dynamic buffer or pool; no SWIOTLB pool at all.
CAUSES = ("too_big", "pool_full", "out_of_reach", "no_memory", "no_pool")


@dataclass
class _RateLimit:
    begin: float = 0.0
    printed: int = 0
    missed: int = 0


@dataclass
class KernelLog:
    """The kernel ring buffer as a list of lines, with a simulated clock ``now`` (s)."""

    lines: list = field(default_factory=list)
    now: float = 0.0
    tags: list = field(default_factory=list)
    _once: set = field(default_factory=set)
    _rl: dict = field(default_factory=dict)

    def info(self, msg: str, prefix: str = PR_FMT) -> None:
        """``pr_info()``/``pr_warn()`` with the ``pr_fmt`` of ``kernel/dma/swiotlb.c``
        (v6.3-rc to v6.11); ``prefix=""`` for lines printed from other files."""
        self.lines.append(prefix + msg)

    warn = info

    def dev_warn(self, dev, msg: str) -> None:
        """``dev_warn()`` (v6.3-rc to v6.11): ``msg`` after the ``"<driver> <name>: "`` prefix."""
        self.lines.append(f"{dev.dev_name}: {msg}")

    def once(self, key, line: str) -> None:
        """``pr_warn_once()``/``dev_warn_once()``/``dev_WARN_ONCE()`` (v6.3-rc to v6.11): only
        the first call for ``key`` prints (the kernel keeps one flag per call site)."""
        if key not in self._once:
            self._once.add(key)
            self.lines.append(line)

    def ratelimited(self, func: str, line: str) -> bool:
        """``dev_warn_ratelimited()``/``pr_warn_ratelimited()`` (v6.3-rc to v6.11): at most
        ``DEFAULT_RATELIMIT_BURST`` (10) lines per ``DEFAULT_RATELIMIT_INTERVAL`` (5 s) per
        call site; returns whether printed.

        When a new interval begins after suppressions, the kernel prints
        ``"<func>: N callbacks suppressed"`` first (``___ratelimit()``, ``lib/ratelimit.c``).
        """
        st = self._rl.setdefault(func, _RateLimit(begin=self.now))
        if self.now - st.begin >= RATELIMIT_INTERVAL_S:
            if st.missed:
                self.lines.append(f"{func}: {st.missed} callbacks suppressed")
            st.begin, st.printed, st.missed = self.now, 0, 0
        if st.printed < RATELIMIT_BURST:
            st.printed += 1
            self.lines.append(line)
            return True
        st.missed += 1
        return False

    def tag(self, name: str) -> None:
        self.tags.append(name)

    def take_tags(self) -> list:
        t, self.tags = self.tags, []
        return t

    def grep(self, *words: str) -> list:
        """Lines containing any of ``words`` (case-insensitive), like ``dmesg | grep -i -E``."""
        w = [x.lower() for x in words]
        return [ln for ln in self.lines if any(x in ln.lower() for x in w)]


@dataclass(frozen=True)
class TraceEvent:
    """One ``swiotlb_bounced`` event (``include/trace/events/swiotlb.h``, v6.3-rc to v6.11):
    fired at the start of ``swiotlb_map()``, before the slot search, with the *original*
    buffer's DMA address."""

    dev_name: str
    dma_mask: int
    dev_addr: int
    size: int
    force: bool
    timestamp: float = 0.0
    cpu: int = 0
    #: the task that mapped, as ``comm-pid`` (the trace prints the command name right-aligned
    #: in 16 columns, then ``-`` and the pid left-aligned in 7)
    task: str = "model-0"

    def __str__(self) -> str:
        return (f"swiotlb_bounced: dev_name: {self.dev_name} dma_mask={self.dma_mask:x} "
                f"dev_addr={self.dev_addr:x} size={self.size} {'FORCE' if self.force else 'NORMAL'}")

    def trace_line(self) -> str:
        """The line as ``/sys/kernel/tracing/trace`` prints it (``d..1.`` flags)."""
        comm, _, pid = self.task.rpartition("-")
        return f"{comm:>16}-{pid:<7} [{self.cpu:03d}] d..1. {self.timestamp:12.6f}: {self}"


# -- hook points ----------------------------------------------------------------------

class SearchAreaEvent(NamedTuple):
    """One call of the area search (``swiotlb_search_pool_area()`` and its older names),
    delivered after the search, with the pool's state as the search left it."""

    #: the :class:`~swiotlb_lib.pool.IoTlbPool` searched
    pool: object
    #: the area's number in the pool
    area: int
    #: the first candidate slot (pool-wide index), or -1 when the area had fewer free
    #: slots than asked for and no candidate was examined
    start: int
    #: slots asked for
    nslots: int
    #: candidates examined (what the search added to ``pool.slots_examined``)
    examined: int
    #: the first slot taken, or -1 when the search failed
    slot: int


class PoolAddedEvent(NamedTuple):
    """A pool put at the head of an allocator's list (``add_mem_pool()``, 6.6+; also the
    default pool at boot).  Transient pools are not on the list and do not fire it."""

    #: the :class:`~swiotlb_lib.swiotlb.IoTlbMem`
    mem: object
    #: the :class:`~swiotlb_lib.pool.IoTlbPool` added
    pool: object


class ReplayMapFailedEvent(NamedTuple):
    """A mapping attempt that failed during :func:`swiotlb_lib.trace.replay` (one per
    failed attempt, retries included; as many as ``ReplayResult.result.failed``)."""

    #: replay time, s (the trace's clock)
    time: float
    #: slots in use when it failed (``total_used``, before the request gave back its slots)
    used: int
    #: the mapping's size, bytes
    size: int
    #: the mapping's line in the trace file
    line: int


class Tracepoint:
    """A hook point of the model: a name, the event type its probes receive, and the
    probes (``struct tracepoint`` and its ``funcs`` array).

    The model tests ``probes`` before it builds an event: ``if probes: tp.fire(...)``, the
    counterpart of the tracepoint's static key.  With no probe a hook costs one global
    load and a branch.  ``probes`` is one list for the whole life of the process (changed
    in place), so code may keep a reference to it.
    """

    __slots__ = ("name", "event", "probes")

    def __init__(self, name: str, event: type) -> None:
        self.name = name
        self.event = event
        self.probes: list = []

    def fire(self, *fields) -> None:
        """Build the event from ``fields`` and hand it to every probe, in the order they
        subscribed (a probe that subscribes or unsubscribes meanwhile does not change who
        gets this event)."""
        ev = self.event(*fields)
        for fn in tuple(self.probes):
            fn(ev)

    def __repr__(self) -> str:
        return f"<Tracepoint {self.name}: {len(self.probes)} probe(s)>"


#: Every area search: :class:`SearchAreaEvent` (fired in :mod:`swiotlb_lib.pool`).
SEARCH_AREA = Tracepoint("search_area", SearchAreaEvent)
#: A pool added to an allocator: :class:`PoolAddedEvent` (fired in :mod:`swiotlb_lib.swiotlb`).
POOL_ADDED = Tracepoint("pool_added", PoolAddedEvent)
#: A failed mapping attempt in a trace replay: :class:`ReplayMapFailedEvent` (fired in
#: :mod:`swiotlb_lib.trace`).
REPLAY_MAP_FAILED = Tracepoint("replay_map_failed", ReplayMapFailedEvent)

#: The hook points by name.
TRACEPOINTS = {tp.name: tp for tp in (SEARCH_AREA, POOL_ADDED, REPLAY_MAP_FAILED)}


def _tracepoint(point) -> Tracepoint:
    if isinstance(point, Tracepoint):
        return point
    tp = TRACEPOINTS.get(point)
    if tp is None:
        raise ValueError(f"point: must be one of {', '.join(TRACEPOINTS)}, got {point!r}")
    return tp


class Subscription:
    """A probe registered on a :class:`Tracepoint`, as :func:`subscribe` returns it.
    :meth:`unsubscribe` (``unregister_trace_<name>()``) stops the delivery; calling it
    again does nothing.  Also a context manager that unsubscribes on exit."""

    __slots__ = ("tracepoint", "fn", "_active")

    def __init__(self, tracepoint: Tracepoint, fn: Callable) -> None:
        self.tracepoint, self.fn, self._active = tracepoint, fn, True

    @property
    def active(self) -> bool:
        return self._active

    def unsubscribe(self) -> None:
        if self._active:
            self._active = False
            probes = self.tracepoint.probes
            for k, f in enumerate(probes):
                if f is self.fn:
                    del probes[k]
                    break

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.unsubscribe()


def subscribe(point: "str | Tracepoint", fn: Callable) -> Subscription:
    """Call ``fn(event)`` at every event of ``point`` (a name in :data:`TRACEPOINTS` or a
    :class:`Tracepoint`) until the returned handle's ``unsubscribe()``."""
    if not callable(fn):
        raise TypeError(f"fn: must be callable, got {type(fn).__name__}")
    tp = _tracepoint(point)
    tp.probes.append(fn)
    return Subscription(tp, fn)


@contextmanager
def observe(point: "str | Tracepoint", fn: Callable):
    """:func:`subscribe` for the length of a ``with`` block (unsubscribed on exit, also
    when the block raises); yields the handle."""
    sub = subscribe(point, fn)
    try:
        yield sub
    finally:
        sub.unsubscribe()
