"""Sizing SWIOTLB from a real trace: readers, lifetime models, replay and a pool advisor.

What a running kernel gives you, and what this module reads:

* the text of ``/sys/kernel/tracing/trace`` and the output of ``trace-cmd report``
  (:func:`parse_trace`, :func:`read_trace`), with

  - ``swiotlb:swiotlb_bounced`` in the format used since the 2022 initialisation cleanup
    (``"dev_name: %s dma_mask=%llx dev_addr=%llx size=%zu %s"``, last field ``FORCE`` or
    ``NORMAL``; ``include/trace/events/swiotlb.h@65e575744264: TRACE_EVENT(swiotlb_bounced)``;
    the same text in Linux 6.1 and 6.12, ``data/realkernel/trace-force-2G-linux6.1.txt`` and
    ``data/realkernel/trace-force-2G.txt``);
  - the older enum form (Linux 4.10 to 5.18).  Its ``TP_printk`` in
    ``include/trace/events/swiotlb.h`` has the same four fields and ends with
    ``__print_symbolic(swiotlb_force, {SWIOTLB_NORMAL, "NORMAL"}, {SWIOTLB_FORCE,
    "FORCE"}, {SWIOTLB_NO_FORCE, "NO_FORCE"})`` (read in the search index's copies of that
    header and in the patch that replaced it).  The kernel therefore prints
    ``NORMAL``/``FORCE``/``NO_FORCE``; tools that show the raw field print
    ``swiotlb_force=SWIOTLB_NORMAL`` (or the enum value 0, 1, 2, the order of
    ``enum swiotlb_force`` in ``include/linux/swiotlb.h`` of those releases).  All of these
    are accepted.  The form before 4.10 (an ``int`` flag) is not supported;
  - the kprobe events of the ``data/realkernel/*-kprobes.txt`` traces (``map`` on
    ``swiotlb_tbl_map_single`` with its arguments, ``map_ret`` with the returned bounce
    address ``tlb``, ``unmap`` on ``__swiotlb_tbl_unmap_single`` or, on 6.1,
    ``swiotlb_tbl_unmap_single``), recognised by their event name or by the probed function
    in the line;
  - ``tracing_mark_write`` markers (``trace_marker`` writes);

* the files of ``/sys/kernel/debug/swiotlb/`` (:func:`read_debugfs`), as a directory, or as
  ``name=value`` / ``name: value`` lines.

Malformed lines are never dropped silently: each is kept with its line number and a reason
(:attr:`Trace.errors`), well-formed lines the replay does not use are kept the same way
(:attr:`Trace.ignored`), and :meth:`Trace.skipped_summary` counts both by reason.  Lines
starting with ``#`` (the ftrace header) and ``trace-cmd``'s own header lines are not errors.

The tracepoint records maps, not unmaps, so how long a bounce buffer stays mapped comes from
a **lifetime model** the user picks (:func:`parse_lifetime`): ``fixed:250us``, ``qd:32``,
``exp:200us``, ``lognormal:1.5ms,0.5`` or, for a trace with the kprobe ``unmap`` events,
``real``.  :func:`replay` runs the mappings through a booted
:class:`~swiotlb_lib.boot.Machine` of any kernel profile and ``swiotlb=`` setting and
returns the tallies of the ``scenario`` command (:class:`~swiotlb_lib.workloads.ScenarioResult`)
plus the used-slots timeline; every failed mapping attempt fires the
:data:`~swiotlb_lib.debug.REPLAY_MAP_FAILED` hook point.  Mappings are grouped into block
requests when the trace has the shape of virtio-blk (``data/realkernel/README.md``, finding
13, the mappings of one virtio-blk request): a request that cannot get all its slots gives
back what it holds and is retried, as blk-mq does after ``BLK_STS_RESOURCE``;
a request that fails again and again with the same number of slots in use is reported as a
livelock (``data/realkernel/README.md``, finding 12, a 1 MiB pool livelocks on 1 MiB
requests).  :func:`advise` bisects over the pool sizes the kernel can actually
build (``swiotlb=`` rounding, then ``round_up_default_nslabs`` with the CPU count), with the
replay as the oracle.

Nothing here copies kernel code; the behaviour modelled is cited where it is used.
"""
from __future__ import annotations

import contextlib
import gc
import heapq
import math
import os
import random
import re
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from .boot import Machine
from .debug import CAUSES, REPLAY_MAP_FAILED, TraceEvent
from .cmdline import SwiotlbSetup, split_cmdline
from .constants import (DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE,
                        IO_TLB_DEFAULT_NSLABS, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, KNOWN_ATTRS)
from .device import Device
from .memory import GiB, layout_for, parse_size
from .pool import nr_slots
from .swiotlb import DmaMappingError
from .versions import PROFILES, get_profile
from .scenarios.systems import Recorder, ScenarioResult

U64 = (1 << 64) - 1
#: ``map_ret`` value of a failed ``swiotlb_tbl_map_single`` (``DMA_MAPPING_ERROR`` as phys_addr_t).
TLB_FAILED = U64
#: ``BLK_MQ_RESOURCE_DELAY`` (block/blk-mq.h): blk-mq reruns a queue whose driver answered
#: ``BLK_STS_RESOURCE`` after 3 ms, or sooner when one of the device's requests completes.
BLK_MQ_RESOURCE_DELAY = 0.003
#: virtio-blk request layout (include/uapi/linux/virtio_blk.h, virtio_ring.h): the
#: ``struct virtio_blk_outhdr`` header, the one-byte status, 16-byte ``struct vring_desc``.
VIRTIO_BLK_HDR_BYTES = 16
VIRTIO_BLK_STATUS_BYTES = 1
VRING_DESC_BYTES = 16
#: Largest bounce buffer: 128 slots of 2 KiB (``IO_TLB_SEGSIZE`` x ``IO_TLB_SIZE``,
#: ``include/linux/swiotlb.h@1aaa736815eb``; ``kernel/dma/swiotlb.c@af133562d5af:
#: swiotlb_max_mapping_size()``).
MAX_MAPPING_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE
#: Retries of one request before the replay gives up on it, and how many identical
#: failures with nothing else in flight (same mapping, same slots in use) make a livelock.
DEFAULT_MAX_RETRIES = 100
DEFAULT_LIVELOCK_REPEATS = 3
#: The profiles :func:`advise` sizes by default (all of them).
ADVISE_PROFILES = ("v6.3rc", "v6.3", "v6.6", "v6.11", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic")
#: Lifetime used when the trace has no unmap events and the user chose none.  Calibrated on
#: ``data/realkernel/trace-force-2G-kprobes.txt`` (Linux 6.12 under QEMU TCG): replaying its
#: swiotlb_bounced events alone with ``fixed:1500us`` peaks at 1546 slots against 1549 with
#: the recorded unmaps (and the kernel's io_tlb_used_hiwater of 1549).  The measured median
#: lifetime is 1.56 ms per mapping, 0.89 ms from a request's last mapping (see
#: :func:`lifetime_stats`).  Under KVM or on hardware I/O completes much faster.
DEFAULT_LIFETIME = "fixed:1500us"
#: Debugfs files of ``/sys/kernel/debug/swiotlb``
#: (``kernel/dma/swiotlb.c@af133562d5af: swiotlb_create_debugfs_files()``).
DEBUGFS_FILES = ("io_tlb_nslabs", "io_tlb_used", "io_tlb_used_hiwater", "io_tlb_transient_nslabs")


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while a long pass builds millions of acyclic
    records (it would only rescan them); its previous state is restored."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# =============================================================================== records ====

@dataclass(frozen=True, slots=True)
class Skipped:
    """A trace line the reader did not turn into data: its number, why, and its text."""

    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text.strip()[:160]}"


@dataclass(slots=True)
class Mapping:
    """One bounce mapping seen in a trace.

    From ``swiotlb_bounced``: ``dev_name``, ``dma_mask``, ``orig`` (the *original* buffer's
    DMA address, ``dev_addr``), ``size`` and ``force`` (``"FORCE"``, ``"NORMAL"`` or
    ``"NO_FORCE"``).  From the kprobes, when present: ``dir``, ``align_mask``, ``attrs``,
    ``tlb`` (the bounce address ``map_ret`` returned; :data:`TLB_FAILED` when the kernel
    failed) and ``unmap_time``/``unmap_line`` (the matching ``unmap``).
    """

    line: int
    time: float
    cpu: int
    task: str
    dev_name: str
    dma_mask: int
    orig: int
    size: int
    force: str | None
    dir: int | None = None
    align_mask: int = 0
    attrs: int = 0
    alloc_size: int | None = None
    tlb: int | None = None
    unmap_time: float | None = None
    unmap_line: int | None = None
    map_line: int | None = None


@dataclass
class Trace:
    """What :func:`parse_trace` read: mappings in trace order, markers, counts, skipped lines.

    ``counts`` uses the names of the ``trace_counts`` field of ``data/realkernel/boots.jsonl``
    (``swiotlb_bounced``, ``map``, ``map_ret``, ``map_ret_fail``, ``unmap``, ``markers``,
    ``total_lines``).
    """

    source: str
    format: str = "unknown"
    mappings: list = field(default_factory=list)
    markers: list = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    errors: list = field(default_factory=list)
    ignored: list = field(default_factory=list)
    header: dict = field(default_factory=dict)
    lost_events: int = 0
    warnings: list = field(default_factory=list)

    @property
    def has_unmaps(self) -> bool:
        """Whether the trace recorded unmaps (the kprobe ``unmap`` event)."""
        return self.counts["unmap"] > 0

    @property
    def force_seen(self) -> bool:
        """Whether any ``swiotlb_bounced`` line carried ``FORCE`` (``swiotlb=force``)."""
        return any(m.force == "FORCE" for m in self.mappings)

    @property
    def cpus(self) -> int:
        """CPUs of the traced machine: the header's ``#P:`` / ``cpus=``, else the highest CPU seen + 1."""
        seen = max((m.cpu for m in self.mappings), default=0) + 1
        return max(self.header.get("cpus", 0), seen)

    @property
    def devices(self) -> list:
        return sorted({m.dev_name for m in self.mappings})

    def skipped_summary(self) -> dict:
        """Counts of skipped lines by reason: ``{"errors": {...}, "ignored": {...}}``."""
        return {"errors": dict(Counter(s.reason for s in self.errors)),
                "ignored": dict(Counter(s.reason for s in self.ignored))}

    def summary_lines(self, show: int = 10) -> list:
        """A human summary: format, event counts, what was skipped (the first ``show`` errors)."""
        c = self.counts
        out = [f"trace {self.source} ({self.format} format): {c['total_lines']} lines, "
               f"{len(self.mappings)} mappings from {c['swiotlb_bounced']} swiotlb_bounced, "
               f"{c['map']} map, {c['map_ret']} map_ret ({c['map_ret_fail']} failed), "
               f"{c['unmap']} unmap, {c['markers']} markers; CPUs {self.cpus}; "
               f"devices {', '.join(self.devices) or '-'}"]
        summ = self.skipped_summary()
        if self.errors:
            out.append(f"  malformed lines: {len(self.errors)} ("
                       + ", ".join(f"{r}: {n}" for r, n in summ["errors"].items()) + ")")
            out += [f"    {s}" for s in self.errors[:show]]
            if len(self.errors) > show:
                out.append(f"    ... {len(self.errors) - show} more")
        if self.ignored:
            out.append(f"  lines not used: {len(self.ignored)} ("
                       + ", ".join(f"{r}: {n}" for r, n in summ["ignored"].items()) + ")")
        out += [f"  warning: {w}" for w in self.warnings]
        return out

    def to_dict(self) -> dict:
        return {"source": self.source, "format": self.format, "mappings": len(self.mappings),
                "counts": dict(self.counts), "cpus": self.cpus, "devices": self.devices,
                "force_seen": self.force_seen, "has_unmaps": self.has_unmaps,
                "skipped": self.skipped_summary(), "lost_events": self.lost_events,
                "first_errors": [str(s) for s in self.errors[:20]], "warnings": list(self.warnings)}


# =============================================================================== readers ====

#: One event line of ``/sys/kernel/tracing/trace`` or ``trace-cmd report``:
#: ``TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: BODY``.  The optional ``(TGID)`` column
#: (``options/record-tgid``), the optional irq-flags column (``trace-cmd report`` prints it
#: only in some versions) and ``trace-cmd report -l``'s ``CPU#FLAGS`` column are accepted.
_EVENT_LINE = re.compile(
    r"\s*(\S.*?)-(\d+)\s+(?:\(\s*(?:\d+|-+)\)\s+)?"
    r"(?:\[(\d+)\](?:\s+[^\s\[\]:]{4,6})?|(\d+)[^\s\d:][^\s:]{3,4})"
    r"\s+(\d+(?:\.\d+)?):\s+([A-Za-z_][\w/]*):\s*(.*)")
_BOUNCED = re.compile(
    r"dev_name:\s+(\S+)\s+dma_mask=(?:0x)?([0-9a-fA-F]+)\s+dev_addr=(?:0x)?([0-9a-fA-F]+)\s+"
    r"size=(\d+)\s+(swiotlb_force=)?([A-Z_0-9]+)\s*$")
#: The common case in one match: a ``swiotlb_bounced`` line of ``/sys/kernel/tracing/trace``.
_FAST_BOUNCED = re.compile(
    r"\s*(\S.*?)-\d+\s+\[(\d+)\]\s+\S{4,6}\s+(\d+\.\d+): swiotlb_bounced: dev_name: (\S+) "
    r"dma_mask=([0-9a-f]{1,16}) dev_addr=([0-9a-f]{1,16}) size=([1-9]\d{0,15}) (FORCE|NORMAL)$")
_FORCE_NAMES = {"FORCE": "FORCE", "NORMAL": "NORMAL", "NO_FORCE": "NO_FORCE",
                "SWIOTLB_FORCE": "FORCE", "SWIOTLB_NORMAL": "NORMAL", "SWIOTLB_NO_FORCE": "NO_FORCE"}
#: ``enum swiotlb_force`` values (4.10-5.18): SWIOTLB_NORMAL, SWIOTLB_FORCE, SWIOTLB_NO_FORCE.
_FORCE_VALUES = {"0": "NORMAL", "1": "FORCE", "2": "NO_FORCE"}
_KPROBE_BODY = re.compile(r"^\((?P<site>[^)]*)\)\s*(?P<args>.*)$")
_LOST = re.compile(r"^\s*CPU:\s*(\d+)\s+\[LOST\s+(\d+)\s+EVENTS\]\s*$")
_TRACE_CMD_HEADER = re.compile(r"^(?:version\s*=\s*\d+|cpus=(?P<cpus>\d+)|CPU\s*\d+ is empty|"
                               r"CPU\s*\d+ data recorded at offset=\S+|\s+\d+ bytes in size.*|"
                               r"trace-cmd: .*)\s*$")
_FTRACE_ENTRIES = re.compile(r"entries-in-buffer/entries-written:\s*(\d+)/(\d+)\s+#P:(\d+)")
_KPROBE_NAMES = {"map": "map", "map_ret": "map_ret", "unmap": "unmap"}


def _kprobe_kind(event: str, body: str) -> str | None:
    """``map``, ``map_ret`` or ``unmap`` for a kprobe line (by event name, else by the
    probed function shown in parentheses), or None."""
    name = event.rsplit("/", 1)[-1]
    if name in _KPROBE_NAMES and body.startswith("("):
        return name
    if not body.startswith("("):
        return None
    site = body[1:body.find(")")] if ")" in body else ""
    if "<- swiotlb_tbl_map_single" in site:
        return "map_ret"
    if site.startswith("swiotlb_tbl_map_single+"):
        return "map"
    if site.startswith(("__swiotlb_tbl_unmap_single+", "swiotlb_tbl_unmap_single+")):
        return "unmap"
    return None


def _kprobe_args(args: str) -> dict:
    """``k=v`` pairs of a kprobe line; values are ``0x`` hex or (signed) decimal."""
    out = {}
    for word in args.split():
        k, eq, v = word.partition("=")
        if not eq or not k:
            raise ValueError(f"argument {word!r} is not name=value")
        try:
            out[k] = int(v, 16) if v[:2].lower() == "0x" else int(v, 10)
        except ValueError:
            raise ValueError(f"argument {k}={v!r} is not a number") from None
    return out


class _Reader:
    """The state of one pass over a trace (kept per call; nothing global)."""

    def __init__(self, source: str) -> None:
        self.t = Trace(source)
        self.pending_bounce: dict[int, Mapping] = {}   # CPU -> swiotlb_bounced awaiting its map
        self.awaiting_ret: dict[int, Mapping] = {}     # CPU -> map awaiting its map_ret
        self.live: dict[int, Mapping] = {}             # bounce address -> mapping
        self.last_dev: dict[int, tuple] = {}           # CPU -> (dev_name, dma_mask) last seen
        self.event_lines = 0
        self.saw_ftrace_header = False
        self.saw_tracecmd_header = False

    def error(self, n: int, reason: str, text: str) -> None:
        self.t.errors.append(Skipped(n, reason, text.rstrip("\n")))

    def ignore(self, n: int, reason: str, text: str) -> None:
        self.t.ignored.append(Skipped(n, reason, text.rstrip("\n")))

    def header_line(self, text: str) -> None:
        self.saw_ftrace_header = True
        m = _FTRACE_ENTRIES.search(text)
        if m:
            self.t.header.update(entries_in_buffer=int(m.group(1)), entries_written=int(m.group(2)),
                                 cpus=int(m.group(3)))
        elif text.startswith("# tracer:"):
            self.t.header["tracer"] = text.split(":", 1)[1].strip()

    def line(self, n: int, text: str) -> None:
        fm = _FAST_BOUNCED.match(text)
        if fm is not None:
            task, cpu, ts, dev, mask, addr, size, force = fm.groups()
            orig, size, cpu = int(addr, 16), int(size), int(cpu)
            if orig + size <= U64 + 1:
                mask = int(mask, 16)
                t = self.t
                self.event_lines += 1
                t.counts["swiotlb_bounced"] += 1
                mp = Mapping(n, float(ts), cpu, task, dev, mask, orig, size, force)
                t.mappings.append(mp)
                self.pending_bounce[cpu] = mp
                self.last_dev[cpu] = (dev, mask)
                return
        m = _EVENT_LINE.match(text) if text[:1] != "#" else None
        if m is None:
            self.other_line(n, text)
            return
        task, _pid, cpu, lcpu, ts, event, body = m.groups()
        if "." not in ts:
            self.error(n, "timestamp without a fraction (use a trace clock in seconds: local, global, "
                          "mono)", text)
            return
        self.event_lines += 1
        cpu = int(cpu if cpu is not None else lcpu)
        time = float(ts)
        name = event.rsplit("/", 1)[-1]
        if name == "swiotlb_bounced":
            self.bounced(n, text, time, cpu, task, body)
        elif name in ("tracing_mark_write", "print"):
            t = self.t
            t.counts["markers"] += 1
            body = body.rstrip()
            msg = body[len("tracing_mark_write:"):].strip() if body.startswith("tracing_mark_write:") else body
            t.markers.append((n, time, msg))
        else:
            body = body.rstrip()
            kind = _kprobe_kind(event, body)
            if kind is None:
                self.ignore(n, f"event {name!r} is not used", text)
            else:
                self.kprobe(n, text, time, cpu, task, kind, body)

    def other_line(self, n: int, text: str) -> None:
        """Lines that are not events: blank, ``#`` header, trace-cmd header, lost events."""
        t = self.t
        stripped = text.strip()
        if not stripped:
            return
        if stripped.startswith("#"):
            self.header_line(stripped)
            return
        hm = _TRACE_CMD_HEADER.match(text.rstrip("\n"))
        if hm:
            self.saw_tracecmd_header = True
            if hm.group("cpus"):
                t.header["cpus"] = int(hm.group("cpus"))
            return
        lm = _LOST.match(text)
        if lm:
            t.lost_events += int(lm.group(2))
            t.warnings.append(f"line {n}: ring buffer lost {lm.group(2)} events on CPU {lm.group(1)}; "
                              "the trace is incomplete there")
            return
        self.error(n, "not a trace event line", text)

    def bounced(self, n, text, time, cpu, task, body) -> None:
        b = _BOUNCED.match(body)
        if b is None:
            self.error(n, "swiotlb_bounced: fields are not 'dev_name: D dma_mask=M dev_addr=A size=S "
                          "FORCE|NORMAL' (truncated line?)", text)
            return
        dev, mask, addr, size, raw, tok = b.groups()
        force = _FORCE_NAMES.get(tok) or (_FORCE_VALUES.get(tok) if raw else None)
        if force is None:
            self.error(n, "swiotlb_bounced: last field must be FORCE, NORMAL, NO_FORCE or "
                          "swiotlb_force=SWIOTLB_*", text)
            return
        size = int(size)
        orig = int(addr, 16)
        mask = int(mask, 16)
        if size < 1 or orig + size > U64 + 1 or mask > U64:
            self.error(n, "swiotlb_bounced: size 0 or address beyond 64 bits", text)
            return
        t = self.t
        t.counts["swiotlb_bounced"] += 1
        mp = Mapping(n, time, cpu, task, dev, mask, orig, size, force)
        t.mappings.append(mp)
        self.pending_bounce[cpu] = mp
        self.last_dev[cpu] = (dev, mask)

    def kprobe(self, n, text, time, cpu, task, kind, body) -> None:
        t = self.t
        km = _KPROBE_BODY.match(body)
        try:
            args = _kprobe_args(km.group("args")) if km else None
        except ValueError as e:
            self.error(n, f"{kind}: {e}", text)
            return
        if args is None:
            self.error(n, f"{kind}: no '(probe site)' before the arguments", text)
            return
        if kind == "map":
            if "orig" not in args or "size" not in args:
                self.error(n, "map: needs orig= and size=", text)
                return
            orig, size = args["orig"], args["size"]
            if not 1 <= size or not 0 <= orig or orig + size > U64 + 1:
                self.error(n, "map: size 0 or address beyond 64 bits", text)
                return
            t.counts["map"] += 1
            mp = self.pending_bounce.pop(cpu, None)
            if mp is None or mp.orig != orig or mp.size != size or mp.map_line is not None:
                dev, mask = self.last_dev.get(cpu, ("kprobe-device", U64))
                mp = Mapping(n, time, cpu, task, dev, mask, orig, size, None)
                t.mappings.append(mp)
            mp.map_line = n
            mp.dir = args.get("dir")
            mp.align_mask = args.get("align_mask", 0) & 0xFFFFFFFF
            mp.attrs = args.get("attrs", 0)
            mp.alloc_size = args.get("alloc_size")
            self.awaiting_ret[cpu] = mp
        elif kind == "map_ret":
            if "tlb" not in args:
                self.error(n, "map_ret: needs tlb=", text)
                return
            mp = self.awaiting_ret.pop(cpu, None)
            if mp is None:
                self.error(n, "map_ret: no map before it on this CPU", text)
                return
            t.counts["map_ret"] += 1
            mp.tlb = args["tlb"] & U64
            if mp.tlb == TLB_FAILED:
                t.counts["map_ret_fail"] += 1
            else:
                self.live[mp.tlb] = mp
        else:
            if "tlb" not in args:
                self.error(n, "unmap: needs tlb=", text)
                return
            t.counts["unmap"] += 1
            mp = self.live.pop(args["tlb"] & U64, None)
            if mp is None:
                self.ignore(n, "unmap of a bounce address this trace never mapped (mapped before "
                               "tracing started?)", text)
                return
            mp.unmap_time = time
            mp.unmap_line = n

    def finish(self) -> Trace:
        t = self.t
        t.format = ("trace-cmd" if self.saw_tracecmd_header else
                    "ftrace" if self.saw_ftrace_header else "unknown")
        hdr = t.header.get("entries_in_buffer")
        if hdr is not None and hdr != self.event_lines:
            t.warnings.append(f"the header says {hdr} entries in the buffer but {self.event_lines} "
                              "event lines were read: lines were lost or damaged on the way")
        if t.counts["map"] and t.counts["map"] != t.counts["map_ret"]:
            t.warnings.append(f"{t.counts['map']} map but {t.counts['map_ret']} map_ret events")
        return t


def parse_trace(lines, source: str = "<text>") -> Trace:
    """Read trace text: ``lines`` is a string or an iterable of lines (a file works).

    Pure: the result depends only on the text.  Line numbers count from 1.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    r = _Reader(source)
    n = 0
    with _gc_paused():
        for n, text in enumerate(lines, 1):
            r.line(n, text)
    r.t.counts["total_lines"] = n
    return r.finish()


def read_trace(path, progress=None) -> Trace:
    """Read a trace file (``cat /sys/kernel/tracing/trace > f`` or ``trace-cmd report > f``).

    Bytes that are not UTF-8 (serial-line noise) become U+FFFD and such lines are reported
    as malformed.  ``progress(done_bytes, total_bytes)`` is called now and then if given.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"trace: no such file {path!r}")
    with open(path, encoding="utf-8", errors="replace", newline=None) as f:
        if progress is None:
            return parse_trace(f, source=path)
        total = os.path.getsize(path) or 1

        def counted():
            done = 0
            for k, text in enumerate(f):
                done += len(text)
                if not k & 0x3FFF:
                    progress(min(done, total), total)
                yield text
            progress(total, total)
        return parse_trace(counted(), source=path)


@dataclass
class Debugfs:
    """Values of ``/sys/kernel/debug/swiotlb/*`` and the lines that did not parse."""

    values: dict
    errors: list
    source: str = "<text>"


_DEBUGFS_PAIR = re.compile(r"(?P<name>[A-Za-z_][\w]*)\s*(?:=|:)\s*(?P<value>\S+)")


def parse_debugfs(lines, source: str = "<text>") -> Debugfs:
    """Read debugfs values given as ``name=value`` or ``name: value`` lines (several pairs on
    a line are fine, as in ``io_tlb_used=0 io_tlb_used_hiwater=1549``).  Unknown names and
    non-integer values are reported with their line number."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    values, errors = {}, []
    for n, text in enumerate(lines, 1):
        s = text.strip()
        if not s or s.startswith("#"):
            continue
        pairs = list(_DEBUGFS_PAIR.finditer(s))
        if not pairs:
            errors.append(Skipped(n, "not name=value", s))
            continue
        for p in pairs:
            name, val = p.group("name"), p.group("value")
            if name not in DEBUGFS_FILES:
                errors.append(Skipped(n, f"unknown swiotlb debugfs file {name!r} (known: "
                                         f"{', '.join(DEBUGFS_FILES)})", s))
                continue
            if not val.isdigit():
                errors.append(Skipped(n, f"{name}: value {val!r} is not a non-negative integer", s))
                continue
            values[name] = int(val)
    return Debugfs(values, errors, source)


def read_debugfs(path) -> Debugfs:
    """Read ``/sys/kernel/debug/swiotlb`` (or a copy): a directory of files, or a text file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        lines = []
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isfile(full):
                with open(full, encoding="utf-8", errors="replace") as f:
                    lines.append(f"{name}={f.read().strip()}")
        return parse_debugfs(lines, source=path)
    if not os.path.isfile(path):
        raise ValueError(f"debugfs: no such file or directory {path!r}")
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse_debugfs(f, source=path)


# ======================================================================= lifetime models ====

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


# ====================================================================== request grouping ====

@dataclass(slots=True)
class Request:
    """Mappings that complete together: one block request, or one lone mapping.

    ``aborted`` marks an attempt the traced kernel abandoned (a new request header came on
    the same CPU before this one's status byte): the kernel unmapped it at once and the
    retry appears later in the trace as its own request.
    """

    members: list
    dev_name: str
    cpu: int
    kind: str
    aborted: bool = False
    data_bytes: int = 0


def _virtio_blk_requests(mappings) -> list:
    """Group mappings per (device, CPU) into virtio-blk requests: a 16-byte header
    (``DMA_TO_DEVICE``), data segments, the 1-byte status and, with indirect descriptors,
    a table of 16 bytes per descriptor (header + data + status).  ``data/realkernel/README.md``,
    finding 13 (the mappings of one virtio-blk request);
    ``virtio_queue_rq`` maps them in this order under the queue lock, so one CPU's
    requests do not interleave.  Anything else is a lone mapping."""
    reqs = []
    open_: dict[tuple, tuple] = {}          # (dev, cpu) -> (request, state)
    for i, mp in enumerate(mappings):
        key = (mp.dev_name, mp.cpu)
        cur = open_.get(key)
        size = mp.size
        if cur is not None:
            req, state = cur
            if state == "data":
                if size == VIRTIO_BLK_STATUS_BYTES:
                    req.members.append(i)
                    open_[key] = (req, "status")
                    continue
                if size != VIRTIO_BLK_HDR_BYTES:
                    req.members.append(i)
                    req.data_bytes += size
                    continue
                req.aborted = True              # a new header before the status
            else:                               # after the status: the indirect table, or done
                ndesc = len(req.members)        # header + data + status
                del open_[key]
                if size == VRING_DESC_BYTES * ndesc:
                    req.members.append(i)
                    continue
        if size == VIRTIO_BLK_HDR_BYTES:
            req = Request([i], mp.dev_name, mp.cpu, "virtio-blk")
            reqs.append(req)
            open_[key] = (req, "data")
        else:
            open_.pop(key, None)
            reqs.append(Request([i], mp.dev_name, mp.cpu, "mapping", data_bytes=size))
    return reqs


def group_requests(mappings, mode: str = "auto") -> tuple[list, str]:
    """Group mappings into completion units: ``virtio-blk`` requests, ``none`` (every
    mapping alone), or ``auto`` (virtio-blk when at least half the mappings fall into
    well-formed requests).  Returns ``(requests, mode_used)``; requests are ordered by
    their first mapping."""
    if mode not in ("auto", "virtio-blk", "none"):
        raise ValueError(f"requests: must be auto, virtio-blk or none, got {mode!r}")
    if mode != "none":
        reqs = _virtio_blk_requests(mappings)
        covered = sum(len(r.members) for r in reqs if r.kind == "virtio-blk" and not r.aborted)
        if mode == "virtio-blk" or (mappings and covered * 2 >= len(mappings)):
            return reqs, "virtio-blk"
    return [Request([i], mp.dev_name, mp.cpu, "mapping", data_bytes=mp.size)
            for i, mp in enumerate(mappings)], "none"


def request_slots(req: Request, mappings) -> int:
    """Slots a request holds at once when all its mappings are live (a lower bound:
    alignment padding can add more)."""
    return sum(nr_slots(mappings[i].size) for i in req.members)


# ================================================================================ replay ====

def livelock_warning(data_bytes: int, slots_needed: int, nslabs: int, detail: str = "") -> str:
    """The advisor's warning for requests that a pool can never complete
    (``data/realkernel/README.md``, finding 12, a 1 MiB pool livelocks on 1 MiB requests)."""
    why = "" if slots_needed > nslabs else (
        " (slots are there in total, but no placement of the request's mappings fits: "
        "a mapping must lie inside one 128-slot segment and one area)")
    return (f"requests of up to {-(-data_bytes // 1024)} KiB need at least {slots_needed} slots at once; "
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
                                f"{self.used} slots in use, then a {self.failed_size}-byte mapping did "
                                "not fit")

    def to_dict(self) -> dict:
        return {"line": self.line, "time": self.time, "dev_name": self.dev_name,
                "data_bytes": self.data_bytes, "slots_needed": self.slots_needed, "used": self.used,
                "nslabs": self.nslabs, "attempts": self.attempts, "failed_size": self.failed_size,
                "repeats": self.repeats, "message": self.message()}


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
        edges = np.linspace(0, n, points + 1).astype(np.int64)
        idx = np.array([a + int(np.argmax(self.used[a:b])) for a, b in zip(edges[:-1], edges[1:]) if b > a])
        return self.t[idx], self.used[idx]


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
    def failed_requests(self) -> int:
        """Requests (lone mappings when not grouped) that met a full pool at least once;
        those failing on a mapping over 256 KiB, which fails at any pool size, aside."""
        return self.result.extra["failed_requests"]

    @property
    def failure_rate(self) -> float:
        """``failed_requests`` / requests: the share of I/O that saw "swiotlb buffer is full"."""
        n = self.result.extra["requests"]
        return self.failed_requests / n if n else 0.0

    @property
    def ok(self) -> bool:
        """No request failed and none livelocked (the advisor's criterion)."""
        return self.failed_requests == 0 and not self.livelocks

    def to_dict(self) -> dict:
        d = self.result.to_dict()
        d.update(lifetime=self.lifetime.spec, lifetime_note=self.lifetime.describe(self._unit()),
                 lifetime_is_model=self.lifetime.is_model, grouping=self.grouping, nslabs=self.nslabs,
                 failure_rate=self.failure_rate,
                 livelocks=[x.to_dict() for x in self.livelocks], warnings=list(self.warnings),
                 trace=self.trace.to_dict())
        return d

    def _unit(self) -> str:
        return "request" if self.grouping == "virtio-blk" else "mapping"

    def summary_lines(self) -> list:
        out = self.trace.summary_lines()
        out.append(self.lifetime.describe(self._unit()))
        out.append(f"grouping: {self.grouping}"
                   + (" (virtio-blk requests: header, data, status, indirect table; a request that "
                      "cannot get all its slots gives them back and is retried)"
                      if self.grouping == "virtio-blk" else " (every mapping on its own)"))
        out += self.result.summary_lines()
        r = self.result
        out.append(f"  failure rate {self.failure_rate:.4%} of {self._unit()}s "
                   f"({self.failed_requests} of {r.extra['requests']}); "
                   f"{r.failed / r.attempted if r.attempted else 0:.4%} of mapping attempts")
        for first, n in livelock_groups(self.livelocks):
            out.append(f"  LIVELOCK ({n} request{'s' if n > 1 else ''}): {first.message()}")
        out += [f"  warning: {w}" for w in self.warnings]
        return out


def livelock_groups(livelocks) -> list:
    """Livelocks with the same request size, slots and pool, as ``(first, count)`` pairs."""
    groups: dict = {}
    for x in livelocks:
        key = (-(-x.data_bytes // 1024), x.slots_needed, x.nslabs)
        if key in groups:
            groups[key][1] += 1
        else:
            groups[key] = [x, 1]
    return [tuple(v) for v in groups.values()]


def _ram_for(trace: Trace, ram, calibration: str) -> int:
    """RAM for the replay machine: ``ram`` if it holds every traced buffer (else an error
    naming the first line that does not fit), or the smallest of 2G, 4G, 8G, ... that does."""
    maps = trace.mappings
    if not maps:
        return parse_size(ram, "ram") if ram is not None else 2 * GiB
    starts = np.fromiter((m.orig for m in maps), dtype=np.float64, count=len(maps))
    ends = starts + np.fromiter((m.size for m in maps), dtype=np.float64, count=len(maps))

    def outside(nbytes):
        ok = np.zeros(len(maps), dtype=bool)
        for lo, hi in layout_for("x86_64", nbytes, calibration).ram:
            ok |= (starts >= lo) & (ends <= hi)
        bad = np.flatnonzero(~ok)
        return int(bad[0]) if bad.size else None

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


def _no_copy(dst: int, src: int, size: int) -> None:
    """Stands in for ``PhysMemory.copy_unchecked`` in a replay: no bytes to move."""


class _Engine:
    """One replay: a machine, the trace's mappings in order, completions and queue runs in a heap.

    Block requests model blk-mq's dispatch (block/blk-mq.c): each (device, CPU) queue
    holds the requests the driver sent back with ``BLK_STS_RESOURCE``; its head is tried
    again when a request of that device completes, and ``BLK_MQ_RESOURCE_DELAY`` after the
    failure; the first failure stops the run; a request arriving while its queue holds
    requests waits behind them.  Lone mappings (non-block devices) that fail are dropped.

    Event keys are ``(time, prio, counter)``: trace maps use their line number as ``prio``,
    real unmaps theirs (so a replay with real lifetimes keeps the trace's exact order),
    modelled completions and queue runs ``-1`` (before a map with the same timestamp).
    """

    COMPLETE_UNIT, COMPLETE_MAPPING, RUN = 0, 1, 2
    IDLE, LIVE, QUEUED, DONE = 0, 1, 2, 3

    def __init__(self, trace, m: Machine, lifetime: Lifetime, reqs, max_retries, livelock_repeats,
                 retry_delay, timeline: bool, progress) -> None:
        self.trace, self.m, self.lt = trace, m, lifetime
        self.mem = m.swiotlb
        self.maps = trace.mappings
        self.reqs = reqs
        self.max_retries, self.repeats_needed, self.retry_delay = max_retries, livelock_repeats, retry_delay
        self.progress = progress
        self.res = ScenarioResult("trace-replay", m.profile.name, m.cmdline, lifetime.seed)
        self.res.failures = {c: 0 for c in CAUSES}
        self.rec = Recorder(m, self.res)
        self.rec.step = 0.0
        self.unit_of = array("q", bytes(8 * len(self.maps)))
        for u, r in enumerate(reqs):
            for i in r.members:
                self.unit_of[i] = u
        self.last_member = [r.members[-1] for r in reqs]
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
        for name, mask in {mp.dev_name: mp.dma_mask for mp in self.maps}.items():
            self.devs[name] = m.add_device(Device(name, dma_mask=mask or U64))
        # A trace carries no data, so bytes need not move: switch off the bounce copy of this
        # machine's memory (slot bookkeeping, the only thing a replay measures, is unchanged).
        m.memory.copy_unchecked = _no_copy
        self.peak = 0
        self.peak_bytes = m.bounce_bytes()
        self.livelocks: list = []
        self.tally = Counter()
        self.tl_t = array("d") if timeline else None
        self.tl_u = array("q") if timeline else None
        self.agreement = None                           # Counter(compared, same) with real lifetimes

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
        d = DMA_TO_DEVICE if mp.dir is None else mp.dir      # the tracepoint has no direction
        attrs = mp.attrs & KNOWN_ATTRS                  # other bits do not change the slot choice
        try:
            if not mem.force_bounce and not mem.nslabs:
                # out of reach and no pool: dma-direct's overflow error (raises)
                self.m.dma.map_single(dev, orig, size, d, attrs, mp.cpu)
            if mp.align_mask or dev.reach == U64:       # swiotlb_map's dma_capable() cannot fail
                tlb = mem._map(dev, orig, size, size, mp.align_mask, d, attrs, mp.cpu)
            else:
                tlb = mem._swiotlb_map(dev, orig, size, d, attrs, mp.cpu)
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

    def unmap_one(self, i: int, tlb: int) -> None:
        """``swiotlb_tbl_unmap_single`` with ``DMA_ATTR_SKIP_CPU_SYNC`` (no bytes to copy back)."""
        if tlb < 0:
            return
        mp = self.maps[i]
        mem = self.mem
        mem._unmap(self.devs[mp.dev_name], mem.live[tlb], mp.size,
                   DMA_TO_DEVICE if mp.dir is None else mp.dir, DMA_ATTR_SKIP_CPU_SYNC)

    # -- scheduling ------------------------------------------------------------------------
    def push(self, t: float, prio: int, kind: int, payload) -> None:
        self.ctr += 1
        heapq.heappush(self.heap, (t, prio, self.ctr, kind, payload))

    def unit_mapped(self, u: int, t: float) -> None:
        """All mappings of unit ``u`` are live: schedule its completion."""
        req = self.reqs[u]
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
                if mp.unmap_time is None:
                    self.tally["live_at_end"] += 1      # never unmapped in the trace
                    continue
                self.handle_of[i] = tlb
                self.left[u] += 1
                self.inflight[dev] += 1
                self.inflight_total += 1
                if self.attempts[u] == 0:              # mapped as traced: unmap as traced
                    self.push(max(t, mp.unmap_time), mp.unmap_line, self.COMPLETE_MAPPING, i)
                else:                                   # mapped later than traced: same duration
                    self.push(t + (mp.unmap_time - mp.time), -1, self.COMPLETE_MAPPING, i)
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
        dev = self.reqs[u].dev_name
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
        for i in self.reqs[u].members:
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
        req = self.reqs[u]
        if not self.attempts[u]:                        # counted once per request
            self.tally["too_big_requests" if self.maps[i].size > MAX_MAPPING_BYTES
                       else "failed_requests"] += 1
        if req.aborted or req.kind != "virtio-blk":
            self.attempts[u] += 1
            self.state[u] = self.DONE
            self.tally["dropped" if req.kind != "virtio-blk" else "aborted_failed"] += 1
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
        else:
            self.push(t + self.retry_delay, -1, self.RUN, key)

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
        reqs, handles, last, queues = self.reqs, self.handles, self.last_member, self.queues
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
                if q and req.kind == "virtio-blk":      # behind requeued requests
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
                     "aborted_in_trace": sum(r.aborted for r in self.reqs),
                     "dropped_mappings": tal["dropped"],
                     "live_at_end": tal["live_at_end"]}
        return res


def replay(trace, kernel=None, cmdline: str | None = None, lifetime=None, *, cpus: int | None = None,
           ram=None, requests: str = "auto", seed: int = 1, max_retries: int = DEFAULT_MAX_RETRIES,
           livelock_repeats: int = DEFAULT_LIVELOCK_REPEATS, retry_delay: float = BLK_MQ_RESOURCE_DELAY,
           timeline: bool = True, progress=None, align_areas: bool = True) -> ReplayResult:
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
    """
    if not isinstance(trace, Trace):
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
    if cpus < max((mp.cpu for mp in trace.mappings), default=0) + 1:
        raise ValueError(f"cpus: the trace has events on CPU {max(mp.cpu for mp in trace.mappings)}; "
                         f"give at least {max(mp.cpu for mp in trace.mappings) + 1}")
    _check_mappings(trace)
    ram_bytes = _ram_for(trace, ram, "6.12" if prof.pad_slots else "6.1")
    m = Machine(ram=ram_bytes, cpus=cpus, cmdline=cmdline, kernel=prof)
    reqs, mode = group_requests(trace.mappings, requests)
    eng = _Engine(trace, m, lifetime, reqs, max_retries, livelock_repeats, retry_delay, timeline, progress)
    pool = m.swiotlb.defpool
    traced = [mp.tlb for mp in trace.mappings if mp.tlb is not None and mp.tlb != TLB_FAILED]
    if (lifetime.kind == "real" and align_areas and pool is not None and traced
            and pool.start <= min(traced) and max(traced) < pool.end):
        eng.agreement = Counter()                       # same pool as the traced kernel's
        areas_from_trace(pool, trace)
    with _gc_paused():
        eng.run()
    res = eng.finish()
    if eng.agreement is not None:
        res.extra["slot_agreement"] = f"{eng.agreement['same']}/{eng.agreement['compared']}"
    res.extra["grouping"] = mode
    warnings = list(m.setup.warnings)
    if not trace.mappings:
        warnings.append("the trace has no mappings")
    if trace.errors:
        warnings.append(f"{len(trace.errors)} malformed trace lines were skipped (see the trace summary)")
    if res.failures.get("too_big"):
        warnings.append(f"{res.failures['too_big']} mapping attempts were larger than "
                        f"{MAX_MAPPING_BYTES // 1024} KiB and fail at any pool size")
    nslabs = m.swiotlb.defpool.nslabs if m.swiotlb.defpool is not None else 0
    tl = None
    if timeline:
        tl = Timeline(np.frombuffer(eng.tl_t, dtype=np.float64).copy(),
                      np.frombuffer(eng.tl_u, dtype=f"i{eng.tl_u.itemsize}").astype(np.int64), nslabs)
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
            pool.area_index[area] = slot - area * pool.area_nslabs
            done.add(area)
            if len(done) == pool.nareas:
                break
    return len(done)


def _check_mappings(trace: Trace) -> None:
    """Arguments the allocator would refuse, named by trace line."""
    for mp in trace.mappings:
        if mp.dir is not None and mp.dir not in (DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE):
            raise ValueError(f"trace: line {mp.map_line or mp.line}: dir={mp.dir} is not 0, 1 or 2")
        if mp.align_mask & (mp.align_mask + 1):
            raise ValueError(f"trace: line {mp.map_line or mp.line}: align_mask={mp.align_mask:#x} is "
                             "not 2**n - 1")
        if mp.dma_mask and mp.dma_mask & (mp.dma_mask + 1):
            raise ValueError(f"trace: line {mp.line}: dma_mask={mp.dma_mask:x} is not 2**n - 1")


# ========================================================================== calibration ====

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


# ============================================================================= advisor ====

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


def min_request_slots(max_sectors_kb: int) -> int:
    """Slots one virtio-blk request of ``max_sectors_kb`` KiB holds at once at least: its data
    (2 KiB slots), the header, the status and an indirect table for the fewest segments
    (256 KiB each, ``max_segment_size``)."""
    if type(max_sectors_kb) is not int or not 4 <= max_sectors_kb <= 1 << 22:
        raise ValueError(f"max_sectors_kb: must be an integer in 4..{1 << 22}, got {max_sectors_kb!r}")
    segs = -(-max_sectors_kb // (MAX_MAPPING_BYTES // 1024))
    return (nr_slots(max_sectors_kb * 1024) + nr_slots(VIRTIO_BLK_HDR_BYTES)
            + nr_slots(VIRTIO_BLK_STATUS_BYTES) + nr_slots(VRING_DESC_BYTES * (segs + 2)))


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

    def to_dict(self) -> dict:
        return {"profile": self.profile, "recommended_nslabs": self.recommended_nslabs,
                "recommended_cmdline": self.recommended_cmdline,
                "recommended_bytes": (self.recommended_nslabs or 0) << IO_TLB_SHIFT,
                "peak_used_slots": self.peak_used_slots, "peak_bounce_bytes": self.peak_bounce_bytes,
                "lifetime": self.lifetime, "lifetime_note": self.lifetime_note,
                "target_failure_rate": self.target_failure_rate,
                "target_nslabs": self.target_nslabs, "target_cmdline": self.target_cmdline,
                "target_replayed_failure_rate": self.target_replayed_failure_rate,
                "tried": self.tried, "warnings": self.warnings, "notes": self.notes}

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
               f"{(self.recommended_nslabs << IO_TLB_SHIFT) / (1 << 20):g} MiB)"
               if self.recommended_nslabs else "none found")
        out = [f"{self.profile}: smallest pool with no failures: {rec}; peak used "
               f"{self.peak_used_slots} slots, memory held at peak "
               f"{self.peak_bounce_bytes / (1 << 20):.2f} MiB"]
        if self.target_failure_rate is not None:
            tgt = (f"{self.target_cmdline} ({self.target_nslabs} slots, replayed failure rate "
                   f"{self.target_replayed_failure_rate:.4%})" if self.target_nslabs else "none found")
            out.append(f"  for a failure rate <= {self.target_failure_rate:g}: {tgt}")
        out.append("  tried: " + ", ".join(f"{x['nslabs']}:{'ok' if x['ok'] else 'fail'}" for x in self.tried))
        out += [f"  warning: {w}" for w in self.warnings]
        out += [f"  note: {n}" for n in self.notes]
        return out


def _first_true(n: int, ok) -> int | None:
    """Smallest index in ``0..n-1`` with ``ok(index)`` true, assuming it is monotone
    (galloping, then bisection); None if none."""
    if n == 0:
        return None
    lo, hi, step = -1, 0, 1
    while not ok(hi):                                   # gallop: 0, 1, 3, 7, ...
        lo = hi
        if hi == n - 1:
            return None
        hi = min(hi + step, n - 1)
        step *= 2
    while hi - lo > 1:                                  # ok(hi), not ok(lo)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def advise(trace, kernels=ADVISE_PROFILES, lifetime=None, *, target_failure_rate: float | None = None,
           cpus: int | None = None, ram=None, requests: str = "auto", seed: int = 1,
           max_sectors_kb: int | None = None, max_nslabs: int = 1 << 21, progress=None) -> list:
    """Size the boot pool for each profile in ``kernels`` from a trace.

    For each profile, bisect over :func:`pool_candidates` (sizes the kernel can build) with
    :func:`replay` as the oracle: the smallest pool in whose replay no request met a full
    pool (requests mapping more than 256 KiB at once, which fail at any size, aside) and
    none livelocked; with ``target_failure_rate`` also the smallest whose share of failed
    requests (:attr:`ReplayResult.failure_rate`) is at most that.  The bisection assumes
    that a larger pool never has more failed requests; the tests check that on the
    recorded traces (failed mapping *attempts* need not be monotone: retries feed back).  ``peak_used_slots`` is only a lower bound
    on the pool needed: slots come in 128-slot segments and per-CPU areas, and alignment
    leaves holes.  ``max_sectors_kb`` (the production queue limit) adds the floor one
    request of that size needs, with a warning when the trace's requests were smaller.
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
    if lifetime is None:
        lifetime = "real" if trace.has_unmaps else DEFAULT_LIFETIME
    lt = parse_lifetime(lifetime, seed) if isinstance(lifetime, str) else lifetime
    ncpus = trace.cpus if cpus is None else cpus
    force = trace.force_seen
    floor_slots = min_request_slots(max_sectors_kb) if max_sectors_kb is not None else 0
    out = []
    steps = [0]

    if not trace.mappings:
        return [Advice(get_profile(k).name, None, None, 0, 0, lt.spec, target_failure_rate,
                       warnings=["the trace has no bounce mappings: nothing to size"]) for k in kernels]
    reqs, _ = group_requests(trace.mappings, requests)
    whole = [q for q in reqs if not q.aborted]
    biggest = max(whole, key=lambda q: request_slots(q, trace.mappings), default=None)
    for prof_name in kernels:
        cands = pool_candidates(ncpus, prof_name, max_nslabs)
        dynamic = get_profile(prof_name).is_dynamic
        cache: dict = {}

        def run(k, prof_name=prof_name, cands=cands, cache=cache):
            if k not in cache:
                r = replay(trace, prof_name, pool_cmdline(cands[k], force, prof_name), lt, cpus=ncpus,
                           ram=ram, requests=requests, seed=seed)
                cache[k] = r
                steps[0] += 1
                if progress is not None:
                    progress(steps[0], None)
            return cache[k]

        def valid(r, k, cands=cands):
            return r.nslabs == cands[k]

        def ok(k):
            r = run(k)
            return valid(r, k) and r.ok

        # 1. a clean reference replay: the kernel's default 64 MiB, or larger if need be
        ref = next((k for k, c in enumerate(cands) if c >= IO_TLB_DEFAULT_NSLABS), len(cands) - 1)
        step = 1
        while ref is not None and not ok(ref):
            if not valid(run(ref), ref) or ref == len(cands) - 1:
                ref = None
                break
            ref = min(ref + step, len(cands) - 1)
            step *= 2
        first = None
        if ref is not None:
            # 2. a fixed pool smaller than the clean replay's peak must fail by the time of that
            # peak (the replays agree until the first failure), so bisect from there
            peak = run(ref).result.peak_used_slots
            lo = -1 if dynamic else next(k for k, c in enumerate(cands) if c >= min(peak, cands[ref])) - 1
            hi = ref
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if ok(mid):
                    hi = mid
                else:
                    lo = mid
            first = hi
        adv = Advice(prof_name, None, None, 0, 0, lt.spec, target_failure_rate)
        if first is not None and floor_slots and cands[first] < floor_slots:
            first = next((k for k in range(first, len(cands)) if cands[k] >= floor_slots), None)
            if first is not None:
                run(first)
        if first is not None:
            r = run(first)
            adv.recommended_nslabs = cands[first]
            adv.recommended_cmdline = pool_cmdline(cands[first], force, prof_name)
            adv.peak_used_slots = r.result.peak_used_slots
            adv.peak_bounce_bytes = r.result.peak_bounce_bytes
            adv.timeline = r.timeline
            if r.result.transient_pools or r.result.pools_added:
                adv.notes.append(f"the pool grew at run time in this replay ({r.result.pools_added} pools "
                                 f"added, {r.result.transient_pools} transient pools): memory held "
                                 f"peaked at {r.result.peak_bounce_bytes / (1 << 20):.2f} MiB")
        else:
            adv.warnings.append(f"no pool up to {cands[-1] if cands else max_nslabs} slots replays this "
                                "trace without failures")
        if target_failure_rate is not None:
            hi = first if first is not None else len(cands) - 1

            def ok_rate(k):
                r = run(k)
                return valid(r, k) and not r.livelocks and r.failure_rate <= target_failure_rate

            k = _first_true(hi + 1, ok_rate) if cands else None
            if k is not None:
                adv.target_nslabs = cands[k]
                adv.target_cmdline = pool_cmdline(cands[k], force, prof_name)
                adv.target_replayed_failure_rate = run(k).failure_rate
        for k in sorted(cache):
            r = cache[k]
            adv.tried.append({"nslabs": cands[k], "ok": valid(r, k) and r.ok,
                              "failed_requests": r.failed_requests, "failed": r.result.failed,
                              "attempted": r.result.attempted, "failure_rate": r.failure_rate,
                              "livelocks": len(r.livelocks), "peak_used_slots": r.result.peak_used_slots,
                              "booted_nslabs": r.nslabs})
            if not valid(r, k):
                adv.warnings.append(f"swiotlb={cands[k]} does not fit this machine's low memory: the "
                                    f"kernel would build only {r.nslabs} slots")
        # requests that no pool of a given size can ever complete (data/realkernel/README.md,
        # finding 12): by count of slots, and as the replays found them (fragmentation can
        # make larger pools fail too)
        if biggest is not None and not dynamic and len(biggest.members) > 1:
            need = request_slots(biggest, trace.mappings)
            below = [c for c in cands if c < need]
            if below:
                adv.warnings.append(livelock_warning(biggest.data_bytes, need, below[-1]))
            locked = [k for k in sorted(cache) if cache[k].livelocks and cands[k] >= need]
            if locked:
                adv.warnings.append(cache[locked[-1]].livelocks[0].message())
        if max_sectors_kb is not None:
            largest = max((q.data_bytes for q in whole if q.kind == "virtio-blk"), default=0)
            if max_sectors_kb * 1024 > largest:
                below = [c for c in cands if c < floor_slots]
                adv.warnings.append(
                    f"the trace's largest request is {-(-largest // 1024)} KiB but max_sectors_kb is "
                    f"{max_sectors_kb}: " + livelock_warning(max_sectors_kb * 1024, floor_slots,
                                                             below[-1] if below else floor_slots - 1))
        too_big = max((cache[k].result.extra["too_big_requests"] for k in cache), default=0)
        if too_big:
            adv.warnings.append(f"{too_big} requests map more than {MAX_MAPPING_BYTES // 1024} KiB at "
                                "once and fail at any pool size; they were left out of the sizing")
        if get_profile(prof_name).is_dynamic:
            adv.notes.append("dynamic profile: the recommended size is the boot pool; the kernel adds "
                             "pools (and transient pools) when it runs short")
        adv.notes.append("peak_used_slots is a lower bound on the pool needed: mappings cannot "
                         "cross 128-slot segments or areas, and alignment leaves holes")
        adv.lifetime_note = lt.describe("request" if cache and next(iter(cache.values())).grouping ==
                                        "virtio-blk" else "mapping")
        out.append(adv)
    return out


# ==================================================================== synthetic traces ====

def synthesize_trace(n_events: int, seed: int = 1, *, cpus: int = 2, request_kib=(4, 64, 256, 1024),
                     max_sectors_kb: int = 1280, contiguity: float = 0.5, gap_us: float = 40.0,
                     dev_name: str = "0000:00:02.0", start: float = 8.0):
    """Yield the lines of a seeded ``/sys/kernel/tracing/trace`` in the Linux 6.12 format
    with ``n_events`` ``swiotlb_bounced`` events of virtio-blk requests (FORCE).

    Each I/O of ``request_kib`` KiB (chosen uniformly) is split into requests of at most
    ``max_sectors_kb``; a request's data pages are physically contiguous with probability
    ``contiguity`` page to page, up to 256 KiB segments.  Every request maps the 16-byte
    header, the segments, the status byte and the indirect table (``data/realkernel/README.md``,
    finding 13, the mappings of one virtio-blk request).
    Requests start ``gap_us`` apart on average, round-robin over ``cpus``.  A model of the
    recorded workload's shape, not a recording.
    """
    if type(n_events) is not int or n_events < 0:
        raise ValueError(f"n_events: must be a non-negative integer, got {n_events!r}")
    if type(cpus) is not int or not 1 <= cpus <= 1024:
        raise ValueError(f"cpus: must be an integer in 1..1024, got {cpus!r}")
    if not 0 <= contiguity <= 1:
        raise ValueError(f"contiguity: must be in [0, 1], got {contiguity!r}")
    if type(max_sectors_kb) is not int or not 4 <= max_sectors_kb <= 1 << 20:
        raise ValueError(f"max_sectors_kb: must be an integer in 4..{1 << 20}, got {max_sectors_kb!r}")
    if not isinstance(gap_us, (int, float)) or not 0 <= gap_us <= 1e6:
        raise ValueError(f"gap_us: must be in 0..1000000 microseconds, got {gap_us!r}")
    if not request_kib or any(type(k) is not int or not 1 <= k <= 1 << 20 for k in request_kib):
        raise ValueError(f"request_kib: give sizes in 1..{1 << 20} KiB, got {request_kib!r}")
    rng = random.Random(seed)
    yield "# tracer: nop"
    yield "#"
    yield f"# entries-in-buffer/entries-written: {n_events}/{n_events}   #P:{cpus}"
    yield "#"
    yield "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION"
    yield "#              | |         |   |||||     |         |"
    emitted = 0
    t = start
    req = 0
    mask = (1 << 64) - 1

    def line(cpu, ts, addr, size):
        return TraceEvent(dev_name, mask, addr, size, True, timestamp=ts, cpu=cpu,
                          task=f"dd-{200 + cpu}").trace_line()

    while emitted < n_events:
        io = rng.choice(request_kib) * 1024
        for off in range(0, io, max_sectors_kb * 1024):
            nbytes = min(max_sectors_kb * 1024, io - off)
            cpu = req % cpus
            req += 1
            t += rng.expovariate(1.0 / (gap_us * 1e-6)) if gap_us > 0 else 0.0
            segs, left = [], nbytes
            while left > 0:
                run = min(4096, left)
                while run < min(left, MAX_MAPPING_BYTES) and rng.random() < contiguity:
                    run = min(run + 4096, left)
                segs.append(run)
                left -= run
            sizes = [VIRTIO_BLK_HDR_BYTES, *segs, VIRTIO_BLK_STATUS_BYTES, VRING_DESC_BYTES * (len(segs) + 2)]
            ts = t
            for k, size in enumerate(sizes):
                if emitted >= n_events:
                    return
                addr = (0x2000000 + rng.randrange(1 << 16) * 16 if size < 4096
                        else 0x10000000 + rng.randrange(1 << 16) * 4096)
                yield line(cpu, ts, addr, size)
                emitted += 1
                ts += 2e-6
            t = max(t, ts)
