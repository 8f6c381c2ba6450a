"""Trace readers: what a running kernel gives, turned into :class:`Trace` records.

Reads the text of ``/sys/kernel/tracing/trace`` and of ``trace-cmd report``
(:func:`parse_trace`, :func:`read_trace`) and the files of ``/sys/kernel/debug/swiotlb/``
(:func:`read_debugfs`):

* ``swiotlb:swiotlb_bounced`` in the format used since the 2022 initialisation cleanup
  (``"dev_name: %s dma_mask=%llx dev_addr=%llx size=%zu %s"``, last field ``FORCE`` or
  ``NORMAL``; ``include/trace/events/swiotlb.h@65e575744264: TRACE_EVENT(swiotlb_bounced)``;
  the same text in Linux 6.1 and 6.12, ``data/realkernel/trace-force-2G-linux6.1.txt`` and
  ``data/realkernel/trace-force-2G.txt``);
* the older enum form (Linux 4.10 to 5.18).  Its ``TP_printk`` in
  ``include/trace/events/swiotlb.h`` has the same four fields and ends with
  ``__print_symbolic(swiotlb_force, {SWIOTLB_NORMAL, "NORMAL"}, {SWIOTLB_FORCE,
  "FORCE"}, {SWIOTLB_NO_FORCE, "NO_FORCE"})`` (read in the search index's copies of that
  header and in the patch that replaced it).  The kernel therefore prints
  ``NORMAL``/``FORCE``/``NO_FORCE``; tools that show the raw field print
  ``swiotlb_force=SWIOTLB_NORMAL`` (or the enum value 0, 1, 2, the order of
  ``enum swiotlb_force`` in ``include/linux/swiotlb.h`` of those releases).  All of these
  are accepted.  The form before 4.10 (an ``int`` flag) is not supported;
* the kprobe events of the ``data/realkernel/*-kprobes.txt`` traces (``map`` on
  ``swiotlb_tbl_map_single`` with its arguments, ``map_ret`` with the returned bounce
  address ``tlb``, ``unmap`` on ``__swiotlb_tbl_unmap_single`` or, on 6.1,
  ``swiotlb_tbl_unmap_single``), recognised by their event name or by the probed function
  in the line;
* ``tracing_mark_write`` markers (``trace_marker`` writes);
* the debugfs files as a directory, or as ``name=value`` / ``name: value`` lines.

Malformed lines are never dropped silently: each is kept with its line number and a reason
(:attr:`Trace.errors`), well-formed lines the replay does not use are kept the same way
(:attr:`Trace.ignored`), and :meth:`Trace.skipped_summary` counts both by reason.  Lines
starting with ``#`` (the ftrace header) and ``trace-cmd``'s own header lines are not errors.
"""
from __future__ import annotations

import contextlib
import gc
import os
import re
from collections import Counter
from dataclasses import dataclass

from ..constants import U64
from .scan import HAVE_NUMBA, scan_file
from .table import FORCE_CODE, MappingTable, MappingView, TableBuilder, release_memory

#: ``map_ret`` value of a failed ``swiotlb_tbl_map_single`` (``DMA_MAPPING_ERROR`` as phys_addr_t).
TLB_FAILED = U64
#: Debugfs files of ``/sys/kernel/debug/swiotlb``
#: (``kernel/dma/swiotlb.c@af133562d5af: swiotlb_create_debugfs_files()``).
DEBUGFS_FILES = ("io_tlb_nslabs", "io_tlb_used", "io_tlb_used_hiwater", "io_tlb_transient_nslabs")


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while a long pass builds millions of acyclic
    records (it would only rescan them); its previous state is restored."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def printable(text: str) -> str:
    """``text`` with control characters, U+FFFD (bytes that were not UTF-8) and other
    unprintable characters written as ``\\xNN``/``\\uNNNN`` escapes: what a report may echo
    of a damaged line without sending raw bytes to the terminal."""
    if text.isprintable() and "\ufffd" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\ufffd" else
                   (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}") for c in text)


#: Magic numbers of files people give by mistake, and what to do instead.
_MAGIC = ((b"\x7fELF", "an ELF binary"),
          (b"\x17\x08\x44tracing", "a trace-cmd data file (trace.dat): give the text of "
                                    "'trace-cmd report FILE' instead"),
          (b"\x1f\x8b", "gzip-compressed: decompress it first"),
          (b"\xfd7zXZ\x00", "xz-compressed: decompress it first"),
          (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first"),
          (b"PK\x03\x04", "a zip archive"),
          (b"%PDF", "a PDF document"))


def check_text(head: bytes, label: str, what: str) -> None:
    """Raise ``ValueError`` (one line, starting with ``label``, e.g. ``"trace: 'f.txt'"``)
    unless ``head``, the first bytes of an input, looks like text: not empty, not a known
    binary format, no NUL byte, and at most 5 % of characters that are neither UTF-8 text
    nor common white space.  The bytes themselves are never echoed."""
    if not head:
        raise ValueError(f"{label} is empty; expected {what}")
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            raise ValueError(f"{label} is {kind}, not {what}")
    text = head.decode("utf-8", errors="replace")
    bad = sum(1 for c in text if c == "\ufffd" or (c < " " and c not in "\t\n\r\f\v\x1b"))
    if "\x00" in text or bad > 0.05 * len(text):
        raise ValueError(f"{label} is a binary file ({bad} of its first {len(text)} characters "
                         f"are not text), not {what}")


def open_text(path, name: str, what: str, stdin=None):
    """Open an input the way every command does: ``-`` is standard input (``stdin``, default
    ``sys.stdin``), anything else a path that must be a readable file (a FIFO or
    ``/dev/stdin`` works too) whose first bytes pass :func:`check_text`.  Returns
    ``(stream, source)``; the caller closes ``stream``.  Errors are ``ValueError`` with one
    line naming ``name`` (the parameter) and the path, and what was expected."""
    import io
    import stat
    import sys
    path = os.fspath(path)
    if path == "-":
        stdin = sys.stdin if stdin is None else stdin
        raw = getattr(stdin, "buffer", None)
        data = raw.read() if raw is not None else stdin.read().encode("utf-8", errors="replace")
        check_text(data[:65536], f"{name}: standard input", what)
        return io.StringIO(data.decode("utf-8", errors="replace"), newline=None), "<stdin>"
    label = f"{name}: {path!r}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{name}: no such file {path!r}") from None
    except OSError as e:
        raise ValueError(f"{label} cannot be read ({e.strerror}); expected {what}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{label} is a directory; expected {what}")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        raise ValueError(f"{label} is not a regular file; expected {what}")
    try:
        f = open(path, "rb", buffering=1 << 16)
    except OSError as e:
        raise ValueError(f"{label} cannot be read ({e.strerror}); expected {what}") from None
    try:
        check_text(f.peek(1 << 16)[:1 << 16], label, what)
    except BaseException:
        f.close()
        raise
    return io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline=None), path


# =============================================================================== records ====

@dataclass(frozen=True, slots=True)
class Skipped:
    """A trace line the reader did not turn into data: its number, why, and its text."""

    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {printable(self.text.strip()[:160])}"


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


class Trace:
    """What :func:`parse_trace` read: mappings in trace order, markers, counts, skipped lines.

    ``counts`` uses the names of the ``trace_counts`` field of ``data/realkernel/boots.jsonl``
    (``swiotlb_bounced``, ``map``, ``map_ret``, ``map_ret_fail``, ``unmap``, ``markers``,
    ``total_lines``).

    A trace the readers made keeps its mappings as numpy columns (:attr:`table`, a
    :class:`~swiotlb_lib.trace.table.MappingTable`); :attr:`mappings` is then a read-only
    sequence that builds :class:`Mapping` records on demand
    (:class:`~swiotlb_lib.trace.table.MappingView`).  A trace made by hand holds a list of
    :class:`Mapping` (``Trace(src).mappings.append(...)``, or ``mappings=[...]``), and
    :attr:`table` is then built from it each time it is asked for.
    """

    def __init__(self, source: str, format: str = "unknown", mappings=None, markers=None, counts=None,
                 errors=None, ignored=None, header=None, lost_events: int = 0, warnings=None,
                 event_lines: int = 0) -> None:
        self.source, self.format = source, format
        self.mappings = [] if mappings is None else mappings
        self.markers = [] if markers is None else markers
        self.counts = Counter() if counts is None else counts
        self.errors = [] if errors is None else errors
        self.ignored = [] if ignored is None else ignored
        self.header = {} if header is None else header
        self.lost_events = lost_events
        self.warnings = [] if warnings is None else warnings
        #: lines read as trace events (``TASK-PID [CPU] ... TIME: EVENT: ...``), used or not
        self.event_lines = event_lines

    @property
    def mappings(self):
        """The mappings in trace order: a list of :class:`Mapping`, or a lazy view of the columns."""
        return self._list if self._list is not None else self._view

    @mappings.setter
    def mappings(self, value) -> None:
        if isinstance(value, MappingView):
            value = value.table
        if isinstance(value, MappingTable):
            self._table, self._view, self._list = value, MappingView(value), None
        else:
            self._table, self._view, self._list = None, None, value

    @property
    def table(self) -> MappingTable:
        """The mappings as columns (:class:`~swiotlb_lib.trace.table.MappingTable`)."""
        return self._table if self._table is not None else MappingTable.from_mappings(self._list)

    def _fields(self) -> tuple:
        return (self.source, self.format, list(self.mappings), self.markers, self.counts, self.errors,
                self.ignored, self.header, self.lost_events, self.warnings, self.event_lines)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Trace):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None

    def __repr__(self) -> str:
        return (f"Trace(source={self.source!r}, format={self.format!r}, mappings={len(self.mappings)}, "
                f"errors={len(self.errors)}, ignored={len(self.ignored)})")

    @property
    def has_unmaps(self) -> bool:
        """Whether the trace recorded unmaps (the kprobe ``unmap`` event)."""
        return self.counts["unmap"] > 0

    @property
    def force_seen(self) -> bool:
        """Whether any ``swiotlb_bounced`` line carried ``FORCE`` (``swiotlb=force``)."""
        if self._list is not None:
            return any(m.force == "FORCE" for m in self._list)
        return bool((self._table.force == FORCE_CODE["FORCE"]).any())

    @property
    def cpus(self) -> int:
        """CPUs of the traced machine: the header's ``#P:`` / ``cpus=``, else the highest CPU seen + 1."""
        if self._list is not None:
            seen = max((m.cpu for m in self._list), default=0) + 1
        else:
            cpu = self._table.cpu
            seen = (int(cpu.max()) if len(cpu) else 0) + 1
        return max(self.header.get("cpus", 0), seen)

    @property
    def devices(self) -> list:
        if self._list is not None:
            return sorted({m.dev_name for m in self._list})
        return list(self._table.dev_names)

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


#: The probed functions the reader knows, by kind (a ``.isra.0``/``.constprop.0`` suffix is
#: ignored): ``kernel/dma/swiotlb.c`` at 6.1 and 6.12.
_PROBED = {"swiotlb_tbl_map_single": "map", "__swiotlb_tbl_unmap_single": "unmap",
           "swiotlb_tbl_unmap_single": "unmap"}


def probe_site(body: str) -> tuple | None:
    """``(function, is_return)`` of a kprobe line's ``(site)``: ``(f+0x4/0x770)`` is a probe
    on ``f``, ``(caller+0x6c/0x280 <- f)`` a return probe of ``f``; None when the body has
    no ``(site)`` or the site is a bare address."""
    if not body.startswith("(") or ")" not in body:
        return None
    site = body[1:body.find(")")].strip()
    ret = " <- " in site
    func = site.rsplit(" <- ", 1)[-1] if ret else site.split("+", 1)[0]
    func = func.strip().split(".", 1)[0]
    if not func or func.startswith("0x") or not (func[0].isalpha() or func[0] == "_"):
        return None
    return func, ret


def _kprobe_kind(event: str, body: str) -> str | None:
    """``map``, ``map_ret`` or ``unmap`` for a kprobe line, or None.

    The probed function shown in parentheses decides: a probe on a function the reader does
    not know is not one of its events, whatever the event is called (``-`` for those; the
    caller skips and counts them).  Only when the site names no function does the event
    name (``map``, ``map_ret``, ``unmap``) decide."""
    site = probe_site(body)
    if site is None:
        name = event.rsplit("/", 1)[-1]
        return name if name in _KPROBE_NAMES and body.startswith("(") else None
    func, ret = site
    kind = _PROBED.get(func)
    if kind is None:
        return "-"
    if ret:
        return "map_ret" if kind == "map" else "-"
    return kind


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
    """The state of one pass over a trace (kept per call; nothing global).  Mappings are rows
    of a :class:`~swiotlb_lib.trace.table.TableBuilder` (``self.b``), referred to by row."""

    def __init__(self, source: str) -> None:
        self.t = Trace(source)
        self.b = TableBuilder()
        self.pending_bounce: dict[int, int] = {}       # CPU -> swiotlb_bounced row awaiting its map
        self.awaiting_ret: dict[int, int] = {}         # CPU -> map row awaiting its map_ret
        self.live: dict[int, int] = {}                 # bounce address -> row
        self.last_dev: dict[int, int] = {}             # CPU -> row of its last swiotlb_bounced
        self.event_lines = 0
        self.saw_ftrace_header = False
        self.saw_tracecmd_header = False

    def fast_rows(self, k: int) -> None:
        """``k`` swiotlb_bounced lines the compiled scanner read into ``self.b``."""
        self.event_lines += k
        self.t.counts["swiotlb_bounced"] += k

    def sync_cpu(self, cpu: int, row: int) -> None:
        """The scanner's last swiotlb_bounced row on ``cpu``, before the parser reads a line."""
        self.pending_bounce[cpu] = row
        self.last_dev[cpu] = row

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
                self.event_lines += 1
                self.t.counts["swiotlb_bounced"] += 1
                row = self.b.add(n, float(ts), cpu, task, dev, int(mask, 16), orig, size, force)
                self.pending_bounce[cpu] = row
                self.last_dev[cpu] = row
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
            if kind == "-":
                func, ret = probe_site(body)
                self.ignore(n, f"event {name!r}: a {'return ' if ret else ''}probe on {func}, which "
                               "the reader does not know", text)
            elif kind is None:
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
        self.t.counts["swiotlb_bounced"] += 1
        row = self.b.add(n, time, cpu, task, dev, mask, orig, size, force)
        self.pending_bounce[cpu] = row
        self.last_dev[cpu] = row

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
            b = self.b
            row = self.pending_bounce.pop(cpu, None)
            if (row is None or b.get(row, "orig") != orig or b.get(row, "size") != size
                    or b.kget(row, "map_line") is not None):
                last = self.last_dev.get(cpu)
                dev, mask = ((b.get(last, "dev"), b.get(last, "mask")) if last is not None
                             else ("kprobe-device", U64))
                row = b.add(n, time, cpu, task, dev, mask, orig, size, None)
            b.set(row, "map_line", n)
            b.set(row, "dir", args.get("dir"))
            b.set(row, "align_mask", args.get("align_mask", 0) & 0xFFFFFFFF)
            b.set(row, "attrs", args.get("attrs", 0))
            b.set(row, "alloc_size", args.get("alloc_size"))
            self.awaiting_ret[cpu] = row
        elif kind == "map_ret":
            if "tlb" not in args:
                self.error(n, "map_ret: needs tlb=", text)
                return
            row = self.awaiting_ret.pop(cpu, None)
            if row is None:
                self.error(n, "map_ret: no map before it on this CPU", text)
                return
            t.counts["map_ret"] += 1
            tlb = args["tlb"] & U64
            self.b.set(row, "tlb", tlb)
            if tlb == TLB_FAILED:
                t.counts["map_ret_fail"] += 1
            else:
                self.live[tlb] = row
        else:
            if "tlb" not in args:
                self.error(n, "unmap: needs tlb=", text)
                return
            t.counts["unmap"] += 1
            row = self.live.pop(args["tlb"] & U64, None)
            if row is None:
                self.ignore(n, "unmap of a bounce address this trace never mapped (mapped before "
                               "tracing started?)", text)
                return
            self.b.set(row, "unmap_time", time)
            self.b.set(row, "unmap_line", n)

    def finish(self) -> Trace:
        t = self.t
        t.mappings = self.b.finish()
        self.b = None
        release_memory(len(t.mappings))
        t.event_lines = self.event_lines
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
    with gc_paused():
        for n, text in enumerate(lines, 1):
            r.line(n, text)
    r.t.counts["total_lines"] = n
    return r.finish()


#: What a trace file should be, for error messages.
TRACE_EXPECTED = ("the text of /sys/kernel/tracing/trace or of 'trace-cmd report' "
                  "(lines like 'TASK-PID [CPU] FLAGS TIME: EVENT: ...')")


#: How much of a file :func:`read_trace` looks at to choose its reader.
SAMPLE_BYTES = 1 << 20
#: The smallest file :func:`read_trace` gives the compiled scanner: the parser reads 8 MiB
#: (about 55 000 ``swiotlb_bounced`` lines) in about 0.5 s, the scanner loaded from Numba's
#: cache in 0.07 s, but its first compilation takes 7 to 9 s (measured on the 2-core machine on
#: a synthesized trace, ``swiotlb_lib.trace.synthesize``): below this size the most it saves, under
#: half a second, does not pay for a compilation the first reader after an install would meet.
SCAN_MIN_BYTES = 8 << 20


def scanner_pays(head: bytes) -> bool:
    """Whether the compiled scanner reads a file starting with ``head`` faster than the Python
    parser: when at least three lines in four are ``swiotlb_bounced`` events.  The scanner
    hands every other line (kprobe events, markers) back to the parser one at a time, with
    the rows before it, so on a trace recorded with the kprobes of ``data/recording`` (one
    bounced line in four) it takes a little more CPU time than the parser (measured on
    ``data/realkernel/trace-512-force-2G-kprobes.txt`` with the scanner of commit 60a9167:
    0.71 s against 0.63 s), about as much with one line in two
    (0.26 s against 0.26 s, that file without its ``map_ret`` and ``unmap`` lines), and less
    with three in four (0.13 s against 0.15 s, keeping one ``map`` line in three), while on a
    trace of bounced lines alone it takes a quarter to a third of it
    (``data/realkernel/trace-force-2G.txt``: 0.011-0.016 s against 0.042-0.054 s)."""
    lines = head.count(b"\n") + (not head.endswith(b"\n"))     # a last line cut short counts
    return 4 * head.count(b"swiotlb_bounced:") >= 3 * lines


def read_trace(path, progress=None, *, stdin=None, scanner: bool | None = None, chunk: int = 1 << 23) -> Trace:
    """Read a trace file (``cat /sys/kernel/tracing/trace > f`` or ``trace-cmd report > f``);
    ``-`` reads standard input (``stdin``, default ``sys.stdin``).

    Bytes that are not UTF-8 (serial-line noise) become U+FFFD and such lines are reported
    as malformed.  ``progress(done_bytes, total_bytes)`` is called now and then if given.
    An input that is not a trace -- missing, a directory, unreadable, empty, binary, or text
    without a single trace event line -- raises ``ValueError`` with one line that names it.

    A file is read by the compiled scanner (:mod:`swiotlb_lib.trace.scan`) with the Python
    line parser for every line the scanner leaves to it, when Numba is installed (``scanner``
    True; False: the parser alone, for comparison), ``chunk`` bytes at a time.  ``None``
    chooses: the scanner for a file of :data:`SCAN_MIN_BYTES` or more whose first MiB it reads
    faster (:func:`scanner_pays`).  Standard input goes through the
    parser.  Both give the same :class:`Trace`.
    """
    f, source = open_text(path, "trace", TRACE_EXPECTED, stdin=stdin)
    with f:
        total = os.path.getsize(source) if source != "<stdin>" and os.path.isfile(source) else 0
        raw = getattr(f, "buffer", None)
        if scanner is None and raw is not None and raw.seekable():
            scanner = total >= SCAN_MIN_BYTES and scanner_pays(raw.read(SAMPLE_BYTES))
            raw.seek(0)
        if scanner is not False and HAVE_NUMBA and raw is not None:
            r = _Reader(source)
            with gc_paused():
                r.t.counts["total_lines"] = scan_file(raw, r, chunk, progress=progress, total=total)
            t = r.finish()
        elif progress is None or not total:
            t = parse_trace(f, source=source)
        else:
            def counted():
                done = 0
                for k, text in enumerate(f):
                    done += len(text)
                    if not k & 0x3FFF:
                        progress(min(done, total), total)
                    yield text
                progress(total, total)
            t = parse_trace(counted(), source=source)
    if not t.event_lines:
        lines = t.counts["total_lines"]
        raise ValueError(f"trace: {source!r} has no trace event lines ({lines} line{'s' * (lines != 1)}"
                         + (", only the ftrace header: nothing was recorded" if t.header else "")
                         + f"); expected {TRACE_EXPECTED}")
    return t


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
    """Read ``/sys/kernel/debug/swiotlb`` (or a copy): a directory holding some of
    :data:`DEBUGFS_FILES` (only those are read), or a text file of ``name=value`` lines."""
    path = os.fspath(path)
    if os.path.isdir(path):
        lines = []
        for name in DEBUGFS_FILES:
            full = os.path.join(path, name)
            if os.path.isfile(full):
                f, _ = open_text(full, "debugfs", "a number")
                with f:
                    lines.append(f"{name}={f.read(4096).strip()}")
        if not lines:
            raise ValueError(f"debugfs: {path!r} has none of {', '.join(DEBUGFS_FILES)}; expected "
                             "/sys/kernel/debug/swiotlb or a copy of it")
        return parse_debugfs(lines, source=path)
    f, source = open_text(path, "debugfs", "/sys/kernel/debug/swiotlb (a directory) or name=value lines")
    with f:
        return parse_debugfs(f, source=source)
