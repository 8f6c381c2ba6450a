"""The fast path of :func:`~swiotlb_lib.trace.read.read_trace`: ``swiotlb_bounced`` lines of
``/sys/kernel/tracing/trace`` scanned by a compiled function, straight from the file's bytes
into the columns of a :class:`~swiotlb_lib.trace.table.TableBuilder`.

The scanner recognises one shape only, the one ``TP_printk`` of ``TRACE_EVENT(swiotlb_bounced)``
gives since 2022 (``include/trace/events/swiotlb.h@65e575744264``) in the default ftrace output,
and only when it is sure the Python line parser would read the line the same way: printable
ASCII, a ``TASK-PID [CPU] FLAGS SECONDS.FRACTION: swiotlb_bounced: dev_name: D dma_mask=M
dev_addr=A size=S FORCE|NORMAL`` line in exactly the form the parser's ``_FAST_BOUNCED``
expression matches, with values the parser would accept (``dev_addr + size`` within 64
bits, a CPU below 65536, a timestamp whose digits convert exactly: at most 2**53 as an
integer and 22 fraction digits, the cases where ``M / 10**k`` in floating point is the
correctly rounded value, as ``float()`` gives).  Every other line -- headers, markers, kprobe
events, damaged lines, any byte outside printable ASCII -- goes, with its line number and
text decoded exactly as a text-mode file gives it, through the Python parser, in trace
order: errors, ignored lines and kprobe joins are the parser's own.

Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (Python's universal newlines, what
``read_trace`` always read with).  Without Numba (a dependency, but optional at run time)
:data:`HAVE_NUMBA` is false and ``read_trace`` uses the Python parser alone.
"""
from __future__ import annotations

import numpy as np

from .table import pack_int

try:                                                    # numba is a dependency (pyproject.toml);
    from numba import njit                              # without it the Python parser runs
    HAVE_NUMBA = True
except ImportError:                                     # pragma: no cover - exercised by hand
    HAVE_NUMBA = False


def jit(fn):
    """``fn`` compiled by Numba (cached on disk, no GIL) when Numba is installed; else ``fn``."""
    return njit(cache=True, nogil=True)(fn) if HAVE_NUMBA else fn


def jitable(fn):
    """``fn`` as it is when called from Python, and compiled into the compiled functions that
    call it (``numba.extending.register_jitable``)."""
    if not HAVE_NUMBA:
        return fn
    from numba.extending import register_jitable
    return register_jitable(fn)


def jit_inline(fn):
    """:func:`jit`, inlined into its compiled callers (a call passing many arrays costs more
    than a short line's parse)."""
    return njit(cache=True, nogil=True, inline="always")(fn) if HAVE_NUMBA else fn


#: Literal parts of the line, between the fields.
LIT_EVENT = np.frombuffer(b": swiotlb_bounced: dev_name: ", dtype=np.uint8)
LIT_MASK = np.frombuffer(b" dma_mask=", dtype=np.uint8)
LIT_ADDR = np.frombuffer(b" dev_addr=", dtype=np.uint8)
LIT_SIZE = np.frombuffer(b" size=", dtype=np.uint8)
LIT_FORCE = np.frombuffer(b"FORCE", dtype=np.uint8)
LIT_NORMAL = np.frombuffer(b"NORMAL", dtype=np.uint8)
#: 10**k as the float ``float("1e{k}")`` (exact for k <= 22).
POW10 = np.array([float(f"1e{k}") for k in range(23)])
#: CPUs the scanner records (a larger CPU number goes through the parser).
MAX_CPU = 1 << 16
#: Distinct task names, device names and DMA masks the scanner interns, and the bytes of names.
MAX_NAMES = 1 << 16
NAME_BYTES = 1 << 22
#: ``st``: counts of interned tasks, devices and masks.
ST_TASK, ST_DEV, ST_MASK = 0, 1, 2


#: Columns of the scanner's int64 row block (``orig`` as its 64 bits).
R_LINE, R_CPU, R_TASK, R_DEV, R_MASK, R_ORIG, R_SIZE, R_FORCE = range(8)
#: Columns of its list of lines for the parser.
L_START, L_END, L_TERM, L_LINE, L_BEFORE = range(5)
#: A name table (one int64 row per kind, tasks and devices): hash slots, then the names' hashes,
#: then the offsets of their bytes in the kind's row of ``blobs``.
N_SLOTS, N_HASHES, N_OFFS = 0, 2 * MAX_NAMES, 3 * MAX_NAMES
#: The mask table: hash slots, then the values (int64 holding the 64 bits).
M_SLOTS, M_VALS = 0, 2 * MAX_NAMES


@jit_inline
def _lit(buf, i, b, lit):
    if i + len(lit) > b:
        return False
    for k in range(len(lit)):
        if buf[i + k] != lit[k]:
            return False
    return True


@jit_inline
def _hex(buf, i, b):
    """``[0-9a-f]{1,16}`` at ``i`` followed by a non-hex byte: (value, end, ok)."""
    v = np.uint64(0)
    j = i
    while j < b:
        c = buf[j]
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        else:
            break
        if j - i < 16:
            v = v * np.uint64(16) + np.uint64(d)
        j += 1
    return v, j, 1 <= j - i <= 16


@jit_inline
def _intern(buf, a, b, names, blobs, kind, st):
    """The code of the name ``buf[a:b]`` in the name table of ``kind``; -1 when it is full."""
    h = np.uint64(14695981039346656037)
    for k in range(a, b):
        h = (h ^ np.uint64(buf[k])) * np.uint64(1099511628211)
    hs = np.int64(h)
    m = 2 * MAX_NAMES - 1
    j = np.int64(h & np.uint64(m))
    while True:
        c = names[kind, N_SLOTS + j]
        if c < 0:
            break
        o = names[kind, N_OFFS + c]
        if names[kind, N_HASHES + c] == hs and names[kind, N_OFFS + c + 1] - o == b - a:
            same = True
            for k in range(b - a):
                if blobs[kind, o + k] != buf[a + k]:
                    same = False
                    break
            if same:
                return c
        j = (j + 1) & m
    n = st[kind]
    o = names[kind, N_OFFS + n]
    if n + 1 >= MAX_NAMES or o + (b - a) > NAME_BYTES:
        return -1
    for k in range(b - a):
        blobs[kind, o + k] = buf[a + k]
    names[kind, N_OFFS + n + 1] = o + (b - a)
    names[kind, N_HASHES + n] = hs
    names[kind, N_SLOTS + j] = n
    st[kind] = n + 1
    return n


@jit_inline
def _intern_mask(v, masks, st):
    m = 2 * MAX_NAMES - 1
    vs = np.int64(v)
    j = np.int64((v * np.uint64(11400714819323198485)) >> np.uint64(40)) & m
    while True:
        c = masks[M_SLOTS + j]
        if c < 0:
            break
        if masks[M_VALS + c] == vs:
            return c
        j = (j + 1) & m
    n = st[ST_MASK]
    if n + 1 >= MAX_NAMES:
        return -1
    masks[M_VALS + n] = vs
    masks[M_SLOTS + j] = n
    st[ST_MASK] = n + 1
    return n


@jit_inline
def _decimal(buf, i, b, value, ndig, cap):
    """Read the decimal digits at ``buf[i:b]`` into ``value`` (continuing it), keeping at most
    ``cap`` digits in all; returns ``(end, value, digits counted in all)``."""
    while i < b and 48 <= buf[i] <= 57:
        if ndig < cap:
            value = value * 10 + (buf[i] - 48)
        ndig += 1
        i += 1
    return i, value, ndig


@jit_inline
def _parse(buf, a, b, k, rows, times, names, blobs, masks, st):
    """Parse ``buf[a:b]``, a line of printable ASCII, into row ``k`` of the outputs; False when
    the parser must read it."""
    i = a
    while i < b and buf[i] == 32:
        i += 1
    task0 = i
    if i >= b:
        return False
    # the task ends at the first "-PID [CPU]" (the parser's expression is non-greedy there)
    p = task0 + 1
    found = False
    cpu = 0
    nd = 0
    r = 0
    while p < b:
        if buf[p] == 45:
            q = p + 1
            while q < b and 48 <= buf[q] <= 57:
                q += 1
            if q > p + 1 and q < b and buf[q] == 32:
                while q < b and buf[q] == 32:
                    q += 1
                if q < b and buf[q] == 91:
                    r, cpu, nd = _decimal(buf, q + 1, b, 0, 0, 6)
                    if nd > 0 and r < b and buf[r] == 93:
                        found = True
                        break
        p += 1
    if not found or nd > 5 or cpu >= MAX_CPU:
        return False
    i = r + 1
    if i >= b or buf[i] != 32:
        return False
    while i < b and buf[i] == 32:
        i += 1
    f0 = i
    while i < b and buf[i] != 32:
        i += 1
    if not 4 <= i - f0 <= 6 or i >= b:
        return False
    while i < b and buf[i] == 32:
        i += 1
    i0 = i
    i, mant, ndig = _decimal(buf, i, b, np.int64(0), 0, 19)
    if i == i0 or i >= b or buf[i] != 46:
        return False
    f0 = i + 1
    i, mant, ndig = _decimal(buf, f0, b, mant, ndig, 19)
    nfrac = i - f0
    if nfrac == 0 or nfrac > 22 or ndig > 18 or mant > (1 << 53):
        return False
    if not _lit(buf, i, b, LIT_EVENT):
        return False
    i += len(LIT_EVENT)
    d0 = i
    while i < b and buf[i] != 32:
        i += 1
    d1 = i
    if d1 == d0 or not _lit(buf, i, b, LIT_MASK):
        return False
    mask, i, ok = _hex(buf, i + len(LIT_MASK), b)
    if not ok or not _lit(buf, i, b, LIT_ADDR):
        return False
    orig, i, ok = _hex(buf, i + len(LIT_ADDR), b)
    if not ok or not _lit(buf, i, b, LIT_SIZE):
        return False
    i += len(LIT_SIZE)
    if i >= b or not 49 <= buf[i] <= 57:
        return False
    size = np.int64(0)
    s0 = i
    while i < b and 48 <= buf[i] <= 57 and i - s0 < 17:
        size = size * 10 + (buf[i] - 48)
        i += 1
    if i - s0 > 16 or i >= b or buf[i] != 32:
        return False
    i += 1
    if b - i == 5 and _lit(buf, i, b, LIT_FORCE):
        force = 1
    elif b - i == 6 and _lit(buf, i, b, LIT_NORMAL):
        force = 2
    else:
        return False
    if orig != np.uint64(0) and np.uint64(size) > np.uint64(0) - orig:
        return False                                    # dev_addr + size beyond 64 bits: an error
    t = _intern(buf, task0, p, names, blobs, ST_TASK, st)
    d = _intern(buf, d0, d1, names, blobs, ST_DEV, st)
    mk = _intern_mask(mask, masks, st)
    if t < 0 or d < 0 or mk < 0:
        return False
    times[k] = mant / POW10[nfrac]
    rows[k, R_CPU] = cpu
    rows[k, R_TASK] = t
    rows[k, R_DEV] = d
    rows[k, R_MASK] = mk
    rows[k, R_ORIG] = np.int64(orig)
    rows[k, R_SIZE] = size
    rows[k, R_FORCE] = force
    return True


@jit
def scan(buf, pos, end, final, lineno, rows, times, slow, names, blobs, masks, st):
    """Scan the lines of ``buf[pos:end]``: the ones the scanner reads become rows (``rows``,
    ``times``), the others are listed for the parser (``slow``, with how many rows come before
    each).  Stops at a line not complete in the buffer (unless ``final``) or when an output is
    full.  Returns ``(pos, lineno, rows, lines for the parser)``."""
    nfast = 0
    nslow = 0
    while pos < end:
        e = pos
        ascii = True                                    # printable ASCII only, so far
        while e < end:
            c = buf[e]
            if c < 32 or c > 126:
                if c == 10 or c == 13:
                    break
                ascii = False
            e += 1
        if e == end:
            if not final:
                break
            term = 0
        elif buf[e] == 13:
            if e + 1 == end and not final:
                break
            term = 2 if e + 1 < end and buf[e + 1] == 10 else 1
        else:
            term = 1
        if nfast >= len(times) or nslow >= len(slow):
            break                                       # an output is full: the caller takes them
        if ascii and _parse(buf, pos, e, nfast, rows, times, names, blobs, masks, st):
            rows[nfast, R_LINE] = lineno
            nfast += 1
        else:
            slow[nslow, L_START] = pos
            slow[nslow, L_END] = e
            slow[nslow, L_TERM] = term > 0
            slow[nslow, L_LINE] = lineno
            slow[nslow, L_BEFORE] = nfast
            nslow += 1
        lineno += 1
        pos = e + term
    return pos, lineno, nfast, nslow


class Scanner:
    """The scanner's tables and output blocks, for one file (see :func:`scan_file`)."""

    def __init__(self, rows: int = 1 << 17, slow: int = 1 << 14) -> None:
        self.rows = np.empty((rows, 8), np.int64)
        self.times = np.empty(rows, np.float64)
        self.slow = np.empty((slow, 5), np.int64)
        self.names = np.zeros((2, 4 * MAX_NAMES + 1), np.int64)
        self.names[:, N_SLOTS:N_HASHES] = -1
        self.blobs = np.zeros((2, NAME_BYTES), np.uint8)
        self.masks = np.zeros(3 * MAX_NAMES, np.int64)
        self.masks[M_SLOTS:M_VALS] = -1
        self.st = np.zeros(3, np.int64)
        # scanner code -> the builder's code, per kind
        self.remap = {"task": np.zeros(MAX_NAMES, np.int32), "dev": np.zeros(MAX_NAMES, np.int32),
                      "mask": np.zeros(MAX_NAMES, np.int32)}
        self.known = {"task": 0, "dev": 0, "mask": 0}

    def run(self, arr, pos: int, final: bool, lineno: int) -> tuple:
        return scan(arr, pos, len(arr), final, lineno, self.rows, self.times, self.slow, self.names, self.blobs,
                    self.masks, self.st)

    def new_names(self, builder) -> None:
        """Give the builder the names and masks interned since the last call."""
        for kind, which in (("task", ST_TASK), ("dev", ST_DEV)):
            offs = self.names[which, N_OFFS:]
            for c in range(self.known[kind], int(self.st[which])):
                name = self.blobs[which, offs[c]:offs[c + 1]].tobytes().decode("ascii")
                self.remap[kind][c] = builder.code(kind, name)
            self.known[kind] = int(self.st[which])
        vals = self.masks[M_VALS:].view(np.uint64)
        for c in range(self.known["mask"], int(self.st[ST_MASK])):
            self.remap["mask"][c] = builder.code("mask", int(vals[c]))
        self.known["mask"] = int(self.st[ST_MASK])

    def add_rows(self, reader, lo: int, hi: int) -> None:
        """Rows ``lo`` to ``hi - 1`` of the last scan to the reader's builder, in order, and the
        last row of each of their CPUs to the reader's state (:meth:`_Reader.sync_cpu`)."""
        k = hi - lo
        if k <= 0:
            return
        b, r = reader.b, self.rows[lo:hi]
        row0 = b.n
        # the small columns as narrow as their values (pack_int), as the table keeps them
        block = {"line": r[:, R_LINE].copy(), "time": self.times[lo:hi].copy(),
                 "cpu": pack_int(r[:, R_CPU], np.int8), "orig": r[:, R_ORIG].view(np.uint64).copy(),
                 "size": r[:, R_SIZE].copy(), "force": r[:, R_FORCE].astype(np.uint8)}
        for c, col in (("task", R_TASK), ("dev", R_DEV), ("mask", R_MASK)):
            block[c] = pack_int(self.remap[c][r[:, col]], np.int8)
        b.add_block(block)
        reader.fast_rows(k)
        cpus = block["cpu"]
        if k < 64:
            for j, c in enumerate(cpus.tolist()):
                reader.sync_cpu(c, row0 + j)
        else:
            u, first = np.unique(cpus[::-1], return_index=True)
            for c, j in zip(u.tolist(), first.tolist()):
                reader.sync_cpu(c, row0 + k - 1 - j)


def scan_file(f, reader, chunk: int = 1 << 23, progress=None, total: int = 0) -> int:
    """Read the binary stream ``f`` to its end: the scanner's rows into ``reader.b`` (a
    :class:`~swiotlb_lib.trace.table.TableBuilder`), every other line through
    ``reader.line(n, text)``, in order.  ``reader`` also gets ``fast_rows(k)`` (k lines the
    scanner read) and ``sync_cpu(cpu, row)`` (the last row of a CPU so far).  ``chunk`` bytes
    are read at a time.  Returns the number of lines."""
    sc = Scanner()
    tail = b""
    lineno = 1
    done = 0
    while True:
        data = f.read(chunk)
        final = not data
        done += len(data)
        buf = tail + data if tail else data
        arr = np.frombuffer(buf, dtype=np.uint8)
        pos = 0
        while True:
            pos, lineno, nfast, nslow = sc.run(arr, pos, final, lineno)
            if nfast:
                sc.new_names(reader.b)
            done_rows = 0
            for s, e, term, n, before in sc.slow[:nslow].tolist():
                sc.add_rows(reader, done_rows, before)
                done_rows = before
                text = buf[s:e].decode("utf-8", errors="replace")
                reader.line(n, text + "\n" if term else text)
            sc.add_rows(reader, done_rows, nfast)
            if not nfast and not nslow:
                break
        if progress is not None and total:
            progress(min(done, total), total)
        tail = buf[pos:]
        if final:
            return lineno - 1
