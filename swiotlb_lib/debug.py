"""What SWIOTLB lets you observe: kernel log lines, trace events, debugfs values.

* :class:`KernelLog` -- ``printk`` as lines, with the ``software IO TLB: `` prefix
  (``pr_fmt`` in ``kernel/dma/swiotlb.c``), ``dev_warn`` prefixes, ``*_once`` and
  ``*_ratelimited`` behaviour (``DEFAULT_RATELIMIT_INTERVAL`` 5 s, burst 10, and the
  ``"<func>: N callbacks suppressed"`` line) on a simulated clock.
* :class:`TraceEvent` -- ``swiotlb:swiotlb_bounced`` in the text format of
  ``include/trace/events/swiotlb.h`` (unchanged from 5.19 to 6.12).
* debugfs values are computed by :meth:`swiotlb_lib.swiotlb.IoTlbMem.debugfs`.

Also the machine-readable warning tags used by the oracle replay (``full``,
``dma_mask_overflow``, ``align_gt_page``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

PR_FMT = "software IO TLB: "
RATELIMIT_INTERVAL_S = 5.0
RATELIMIT_BURST = 10


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
