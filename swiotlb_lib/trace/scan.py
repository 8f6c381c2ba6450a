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

import sys
import threading

import numpy as np


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


#: Literal parts of the line, between the fields.
LIT_EVENT = b": swiotlb_bounced: dev_name: "
LIT_MASK = b" dma_mask="
LIT_ADDR = b" dev_addr="
LIT_SIZE = b" size="
LIT_FORCE = np.frombuffer(b"FORCE", dtype=np.uint8)
LIT_NORMAL = np.frombuffer(b"NORMAL", dtype=np.uint8)


def word(b: bytes) -> np.uint64:
    """The 8 bytes ``b`` as :func:`load8` loads them (this machine's byte order)."""
    return np.uint64(int.from_bytes(b, sys.byteorder))


#: The literals as 8-byte words compared at once: the event and device tag at offsets 0, 8, 16
#: and 21 (the last two overlap); the masks and addresses at 0 and 2; the size's 6 bytes.
EV0, EV1, EV2, EV3 = (word(LIT_EVENT[o:o + 8]) for o in (0, 8, 16, 21))
MK0, MK2 = word(LIT_MASK[:8]), word(LIT_MASK[2:])
AD0, AD2 = word(LIT_ADDR[:8]), word(LIT_ADDR[2:])
SZ, SZ_BYTES = word(LIT_SIZE + b"\0\0"), word(b"\xff" * 6 + b"\0\0")
SPACES = word(b" " * 8)
N_EVENT, N_MASK, N_ADDR, N_SIZE = len(LIT_EVENT), len(LIT_MASK), len(LIT_ADDR), len(LIT_SIZE)

if HAVE_NUMBA:
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def load8(typingctx, arr, i):
        """``arr[i:i + 8]`` (bytes) as one uint64, by one unaligned load; the caller checks that
        ``i + 8 <= len(arr)``."""
        def codegen(context, builder, sig, args):
            a = context.make_array(sig.args[0])(context, builder, args[0])
            ptr = builder.bitcast(builder.gep(a.data, [args[1]]), ir.IntType(64).as_pointer())
            return builder.load(ptr, align=1)
        return types.uint64(arr, i), codegen
else:                                                   # pragma: no cover - the scanner does not run
    def load8(arr, i):
        return word(bytes(arr[i:i + 8]))


#: 10**k as the float ``float("1e{k}")`` (exact for k <= 22).
POW10 = np.array([float(f"1e{k}") for k in range(23)])
#: CPUs the scanner records (a larger CPU number goes through the parser).
MAX_CPU = 1 << 16
#: Distinct task names, device names and DMA masks the scanner interns, and the bytes of names.
MAX_NAMES = 1 << 16
NAME_BYTES = 1 << 22
#: ``st``: counts of interned tasks, devices and masks.
ST_TASK, ST_DEV, ST_MASK = 0, 1, 2


#: The scanner's columns, in the dtypes it writes them (``cpu`` below :data:`MAX_CPU`; the builder's
#: codes, widened to int32 beyond uint16 by :meth:`Scanner.new_names`; :meth:`TableBuilder.finish
#: <swiotlb_lib.trace.table.TableBuilder.finish>` narrows them all).
COLUMNS = {"line": np.int64, "time": np.float64, "cpu": np.uint16, "task": np.uint16, "dev": np.uint16,
           "mask": np.uint16, "orig": np.uint64, "size": np.int64, "force": np.uint8}
#: Columns of its list of lines for the parser.
L_START, L_END, L_TERM, L_LINE, L_BEFORE = range(5)
#: A name table (one int64 row per kind, tasks and devices): hash slots, then the names' hashes,
#: then the offsets of their bytes in the kind's row of ``blobs``.
N_SLOTS, N_HASHES, N_OFFS = 0, 2 * MAX_NAMES, 3 * MAX_NAMES
#: The mask table: hash slots, then the values (int64 holding the 64 bits).
M_SLOTS, M_VALS = 0, 2 * MAX_NAMES
#: ``st`` after the counts: the code each kind interned last (-1: none yet), tried first.
ST_LAST = 3
#: The shortest line the scanner reads (one-character task and device, 4 flags, ``0.0``, single
#: hex digits, size ``1``, ``FORCE``, its newline): a file of B bytes has at most
#: ``B // MIN_LINE + 1`` of them.
MIN_LINE = len("a-1 [0] abcd 0.0: swiotlb_bounced: dev_name: d dma_mask=0 dev_addr=0 size=1 FORCE\n")


@jitable
def _intern(buf, a, b, names, blobs, kind, st):
    """The code of the name ``buf[a:b]`` in the name table of ``kind`` (now the one it interned
    last); -1 when the table is full."""
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
                st[ST_LAST + kind] = c
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
    st[ST_LAST + kind] = n
    return n


@jitable
def _intern_mask(v, masks, st):
    """The code of the DMA mask ``v`` (now the one interned last); -1 when the table is full."""
    vs = np.int64(v)
    m = 2 * MAX_NAMES - 1
    j = np.int64((v * np.uint64(11400714819323198485)) >> np.uint64(40)) & m
    while True:
        c = masks[M_SLOTS + j]
        if c < 0:
            break
        if masks[M_VALS + c] == vs:
            st[ST_LAST + ST_MASK] = c
            return c
        j = (j + 1) & m
    n = st[ST_MASK]
    if n + 1 >= MAX_NAMES:
        return -1
    masks[M_VALS + n] = vs
    masks[M_SLOTS + j] = n
    st[ST_MASK] = n + 1
    st[ST_LAST + ST_MASK] = n
    return n


@jitable
def _decimal(buf, i, end, acc):
    """The decimal digits from ``buf[i]`` on appended to ``acc`` (an int64): ``(acc, the index
    after them)``.  The callers bound the number of digits afterwards, where more would wrap."""
    while i < end and 48 <= buf[i] <= 57:
        acc = acc * 10 + (np.int64(buf[i]) - 48)
        i += 1
    return acc, i


@jitable
def _hex_digit(c):
    """The value of the lowercase hex digit ``c`` (a byte); -1 for any other byte."""
    if 48 <= c <= 57:
        return np.int64(c) - 48
    if 97 <= c <= 102:
        return np.int64(c) - 87
    return np.int64(-1)


@jit
def scan(buf, pos, end, final, lineno, k, line, time, cpu_, task_, dev_, mask_, orig_, size_, force_, slow,
         names, blobs, masks, st):
    """Scan the lines of ``buf[pos:end]``: the ones the scanner reads become rows ``k``,
    ``k + 1``, ... of the columns (``line`` ... ``force``, see :data:`COLUMNS`), the others are
    listed for the parser (``slow``, with the row that comes after each).  Stops at a line
    not complete in the buffer (unless ``final``) or when the columns or ``slow`` are full.
    Returns ``(pos, lineno, the next row, lines for the parser)``.

    One pass over each line's bytes, all in this function: a compiled call that passes arrays
    costs reference counting on each of them, more than a short line's parse.  Every loop
    stops at a byte outside printable ASCII, so a line the scanner reads has none; ``i`` never
    passes the line's end, where the parser's lines resume the search for it."""
    nslow = 0
    cap = len(line)
    while pos < end:
        if k >= cap or nslow >= len(slow):
            break                                       # an output is full: the caller takes them
        i = pos
        ok = False
        for _ in range(1):                              # a block to break out of: the parser reads it
            while i + 8 <= end and load8(buf, i) == SPACES:
                i += 8
            while i < end and buf[i] == 32:
                i += 1
            task0 = i
            if i >= end or not 33 <= buf[i] <= 126:
                break
            # the task ends at the first "-PID [CPU]" (the parser's expression is non-greedy there)
            p = task0 + 1
            cpu = 0
            nd = 0
            r = 0
            found = False
            while p < end:
                c = buf[p]
                if c < 32 or c > 126:
                    break
                if c == 45:
                    q = p + 1
                    while q < end and 48 <= buf[q] <= 57:
                        q += 1
                    if q > p + 1 and q < end and buf[q] == 32:
                        while q < end and buf[q] == 32:
                            q += 1
                        if q < end and buf[q] == 91:
                            cpu, r = _decimal(buf, q + 1, end, np.int64(0))     # refused past 5 digits
                            nd = r - q - 1
                            if nd > 0 and r < end and buf[r] == 93:
                                found = True
                                break
                p += 1
            if not found:
                i = p
                break
            if nd > 5 or cpu >= MAX_CPU:
                i = r
                break
            i = r + 1
            if i >= end or buf[i] != 32:
                break
            while i < end and buf[i] == 32:
                i += 1
            f0 = i
            while i < end and 33 <= buf[i] <= 126:
                i += 1
            if not 4 <= i - f0 <= 6 or i >= end or buf[i] != 32:
                break
            while i < end and buf[i] == 32:
                i += 1
            # the timestamp: digits '.' digits, as an integer of at most 18 digits / 10**nfrac
            i0 = i
            mant, i = _decimal(buf, i, end, np.int64(0))
            nint = i - i0
            if nint == 0 or i >= end or buf[i] != 46:
                break
            i += 1
            f0 = i
            mant, i = _decimal(buf, i, end, mant)
            nfrac = i - f0
            if nfrac == 0 or nfrac > 22 or nint + nfrac > 18 or mant > (1 << 53):
                break                                   # (18 digits cannot wrap an int64)
            if (i + N_EVENT > end or load8(buf, i) != EV0 or load8(buf, i + 8) != EV1
                    or load8(buf, i + 16) != EV2 or load8(buf, i + 21) != EV3):
                break
            i += N_EVENT
            d0 = i
            while i < end and 33 <= buf[i] <= 126:
                i += 1
            d1 = i
            if d1 == d0 or i + N_MASK > end or load8(buf, i) != MK0 or load8(buf, i + 2) != MK2:
                break
            i += N_MASK
            mk = orig = np.uint64(0)
            good = False
            for f in range(2):                          # the mask's hex digits, then the address's
                h0 = i
                v = np.uint64(0)
                while i < end:
                    d = _hex_digit(buf[i])
                    if d < 0:
                        break
                    v = (v << np.uint64(4)) | np.uint64(d)
                    i += 1
                good = 1 <= i - h0 <= 16
                if f == 0:
                    mk = v
                    good = good and i + N_ADDR <= end and load8(buf, i) == AD0 and load8(buf, i + 2) == AD2
                    if not good:
                        break
                    i += N_ADDR
                else:
                    # (" size=" and at least "1 FORCE" follow in a line the scanner reads: 8 bytes are there)
                    orig = v
                    good = good and i + 8 <= end and load8(buf, i) & SZ_BYTES == SZ
            if not good:
                break
            i += N_SIZE
            if i >= end or not 49 <= buf[i] <= 57:
                break
            s0 = i
            size, i = _decimal(buf, i, end, np.int64(0))
            if i - s0 > 16 or i >= end or buf[i] != 32:
                break                                   # (16 digits cannot wrap an int64)
            i += 1
            if i + len(LIT_FORCE) <= end and buf[i] == 70:
                lit, force = LIT_FORCE, 1
            elif i + len(LIT_NORMAL) <= end and buf[i] == 78:
                lit, force = LIT_NORMAL, 2
            else:
                break
            j = 0
            while j < len(lit) and buf[i + j] == lit[j]:
                j += 1
            if j < len(lit):
                break
            i += len(lit)
            if i == end:
                if not final:
                    break                               # the line may go on in the next read
            elif buf[i] == 13:
                if i + 1 == end and not final:
                    break                               # a CR whose LF may come next
            elif buf[i] != 10:
                break
            if orig != np.uint64(0) and np.uint64(size) > np.uint64(0) - orig:
                break                                   # dev_addr + size beyond 64 bits: an error
            # the names: the one interned last first (a trace repeats a few)
            t = dv = -1
            for kind in range(2):
                a, z = (task0, p) if kind == ST_TASK else (d0, d1)
                c = st[ST_LAST + kind]
                if c >= 0:
                    o = names[kind, N_OFFS + c]
                    if names[kind, N_OFFS + c + 1] - o != z - a:
                        c = -1
                    else:
                        for j in range(z - a):
                            if blobs[kind, o + j] != buf[a + j]:
                                c = -1
                                break
                if c < 0:
                    c = _intern(buf, a, z, names, blobs, kind, st)
                if kind == ST_TASK:
                    t = c
                else:
                    dv = c
            m = st[ST_LAST + ST_MASK]
            if m < 0 or masks[M_VALS + m] != np.int64(mk):
                m = _intern_mask(mk, masks, st)
            if t < 0 or dv < 0 or m < 0:
                break
            time[k] = mant / POW10[nfrac]
            cpu_[k] = cpu
            task_[k] = t
            dev_[k] = dv
            mask_[k] = m
            orig_[k] = orig
            size_[k] = size
            force_[k] = force
            ok = True
        e = i
        if not ok:
            while e < end and buf[e] != 10 and buf[e] != 13:
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
        if ok:
            line[k] = lineno
            k += 1
        else:
            slow[nslow, L_START] = pos
            slow[nslow, L_END] = e
            slow[nslow, L_TERM] = term > 0
            slow[nslow, L_LINE] = lineno
            slow[nslow, L_BEFORE] = k
            nslow += 1
        lineno += 1
        pos = e + term
    return pos, lineno, k, nslow


def last_rows(cpus) -> dict:
    """``{cpu: the index of its last entry}`` in ``cpus``, an array of CPU numbers."""
    if len(cpus) < 64:
        return {c: j for j, c in enumerate(cpus.tolist())}
    out = {}
    step = 1 << 20
    for a in range(0, len(cpus), step):                 # bounded temporaries
        c = cpus[a:a + step].astype(np.intp)
        last = np.full(int(c.max()) + 1, -1, np.int64)
        np.maximum.at(last, c, np.arange(a, a + len(c)))
        for cpu in np.flatnonzero(last >= 0).tolist():
            out[cpu] = int(last[cpu])
    return out


#: Fewer rows than this between two parsed lines go to the builder as Python values (one
#: conversion of the scan call's rows, shared by them), not as a piece of columns.
SMALL_RUN = 256


class Scanner:
    """The scanner's tables and columns, for one file (see :func:`scan_file`).

    The columns are allocated for ``rows`` rows (:data:`COLUMNS`), the most a file of known size
    can give (pages never written are never resident); the builder takes views of them, so
    the rows are written once.  When they are full, new columns of twice the size follow."""

    def __init__(self, rows: int, slow: int = 1 << 14) -> None:
        self.new_columns(rows)
        self.slow = np.empty((slow, 5), np.int64)
        self.names = np.zeros((2, 4 * MAX_NAMES + 1), np.int64)
        self.names[:, N_SLOTS:N_HASHES] = -1
        self.blobs = np.zeros((2, NAME_BYTES), np.uint8)
        self.masks = np.zeros(3 * MAX_NAMES, np.int64)
        self.masks[M_SLOTS:M_VALS] = -1
        self.st = np.array([0, 0, 0, -1, -1, -1], np.int64)
        # scanner code -> the builder's code, per kind, and whether that is the same code so far
        self.remap = {kind: np.zeros(MAX_NAMES, np.int64) for kind in ("task", "dev", "mask")}
        self.same = {kind: True for kind in self.remap}
        self.known = {kind: 0 for kind in self.remap}
        self.unsynced: list = []                        # [first builder row, columns, lo, hi]

    def new_columns(self, rows: int) -> None:
        self.cols = {c: np.empty(rows, dt) for c, dt in COLUMNS.items()}
        self.k0 = self.k = self.given = 0               # rows written, rows given to the builder
        self.lists = None                               # the last scan call's rows as lists

    def scan_from(self, arr, pos: int, end: int, final: bool, lineno: int, k: int) -> tuple:
        """:func:`scan` of ``arr[pos:end]`` into this scanner's columns from row ``k``."""
        c = self.cols
        return scan(arr, pos, end, final, lineno, k, c["line"], c["time"], c["cpu"], c["task"], c["dev"],
                    c["mask"], c["orig"], c["size"], c["force"], self.slow, self.names, self.blobs, self.masks,
                    self.st)

    def run(self, arr, pos: int, final: bool, lineno: int, builder) -> tuple:
        """One call of :func:`scan` from ``pos``; the new rows' codes are the builder's.
        Returns ``(pos, lineno, lines for the parser)``."""
        pos, lineno, k, nslow = self.scan_from(arr, pos, len(arr), final, lineno, self.k)
        if k > self.k:
            self.new_names(builder, self.k, k)
        self.k0, self.k, self.lists = self.k, k, None
        return pos, lineno, nslow

    def new_names(self, builder, lo: int, hi: int) -> None:
        """Give the builder the names and masks interned since the last call, and write its codes
        into rows ``lo`` to ``hi - 1`` where they differ from the scanner's.  (A builder code
        beyond uint16, after 65 536 names the parser read first, widens the code columns.)"""
        for kind, which in (("task", ST_TASK), ("dev", ST_DEV), ("mask", ST_MASK)):
            n = int(self.st[which])
            known = self.known[kind]
            if n > known:
                if kind == "mask":
                    values = [int(v) for v in self.masks[M_VALS + known:M_VALS + n].view(np.uint64)]
                else:
                    offs = self.names[which, N_OFFS:N_OFFS + n + 1].tolist()
                    values = [self.blobs[which, offs[c]:offs[c + 1]].tobytes().decode("ascii")
                              for c in range(known, n)]
                remap = self.remap[kind]
                for c, value in enumerate(values, known):
                    remap[c] = code = builder.code(kind, value)
                    self.same[kind] &= code == c
                self.known[kind] = n
                if int(remap[:n].max()) > np.iinfo(self.cols[kind].dtype).max:
                    for c in ("task", "dev", "mask"):
                        self.cols[c] = self.cols[c].astype(np.int32)
            if not self.same[kind]:
                col = self.cols[kind]
                col[lo:hi] = self.remap[kind][col[lo:hi]]

    def give(self, reader, hi: int) -> None:
        """Rows up to ``hi - 1`` of the columns to the reader's builder."""
        lo = self.given
        if hi <= lo:
            return
        b, u = reader.b, self.unsynced
        row0 = b.n
        if hi - lo < SMALL_RUN and not b.continues(self.cols, lo):
            if self.lists is None:
                self.lists = {c: col[self.k0:self.k].tolist() for c, col in self.cols.items()}
            a, z = lo - self.k0, hi - self.k0
            b.add_rows({c: v[a:z] for c, v in self.lists.items()})
        else:
            b.add_run(self.cols, lo, hi)
        # rows lo..hi-1 of these columns are the builder's from row0 on: one entry with the
        # rows just before them in both
        if u and u[-1][1] is self.cols and u[-1][3] == lo and u[-1][0] + lo - u[-1][2] == row0:
            u[-1][3] = hi
        else:
            u.append([row0, self.cols, lo, hi])
        reader.fast_rows(hi - lo)
        self.given = hi

    def sync(self, reader) -> None:
        """The last row of each CPU in the rows given since the last call to the reader's state
        (:meth:`_Reader.sync_cpu`), before the parser reads a line."""
        for row0, cols, lo, hi in self.unsynced:
            for cpu, j in last_rows(cols["cpu"][lo:hi]).items():
                reader.sync_cpu(cpu, row0 + j)
        self.unsynced.clear()


#: The fewest bytes in the buffer for which :func:`scan_file` scans its two halves at once, the
#: second in another thread (the compiled scan runs without the GIL).
SPLIT_MIN_BYTES = 1 << 20


def _deliver(sc: Scanner, reader, buf, slow: list, rows: int = 0, lines: int = 0) -> None:
    """The lines for the parser (``slow``: rows of a scan's list) through ``reader.line``, each
    after the rows before it (:meth:`Scanner.give`), then the rest of the rows; a scan of a
    second half gives its rows and line numbers from 0: ``rows`` and ``lines`` shift them."""
    for s, e, term, n, before in slow:
        sc.give(reader, before + rows)
        sc.sync(reader)
        text = buf[s:e].decode("utf-8", errors="replace")
        reader.line(n + lines, text + "\n" if term else text)
    sc.give(reader, sc.k)


def _second_half(sc: Scanner, half: Scanner, reader, buf, res: tuple, lineno: int) -> tuple:
    """The rows and lines of the second half of a buffer (scanned by ``half`` from line 0 into its
    own columns: ``res``, what :func:`scan` returned) after the first half's, ``lineno`` the
    number of its first line.  Returns ``(pos, lineno)`` after it, or None when the rows do not
    fit (a file that grew while it was read): the caller scans the half again."""
    pos, nlines, k, nslow = res
    if sc.k + k > len(sc.cols["line"]):
        return None
    half.k = k
    half.new_names(reader.b, 0, k)
    k0 = sc.k
    for c, col in half.cols.items():
        if col.dtype.itemsize > sc.cols[c].dtype.itemsize:     # codes the builder made int32 on that side
            sc.cols[c] = sc.cols[c].astype(np.int32)
        sc.cols[c][k0:k0 + k] = col[:k]
    sc.cols["line"][k0:k0 + k] += lineno
    sc.k0, sc.k, sc.lists = k0, k0 + k, None
    _deliver(sc, reader, buf, half.slow[:nslow].tolist(), k0, lineno)
    return pos, lineno + nlines


def scan_file(f, reader, chunk: int = 1 << 23, progress=None, total: int = 0) -> int:
    """Read the binary stream ``f`` to its end: the scanner's rows into ``reader.b`` (a
    :class:`~swiotlb_lib.trace.table.TableBuilder`), every other line through
    ``reader.line(n, text)``, in order.  ``reader`` also gets ``fast_rows(k)`` (k lines the
    scanner read) and ``sync_cpu(cpu, row)`` (the last row of a CPU so far).  ``chunk`` bytes
    are read at a time into one buffer (``readinto``); ``total`` (the file's size, 0 when not
    known) bounds the rows.  A buffer of :data:`SPLIT_MIN_BYTES` or more of a file of known
    size is scanned in two halves at once, split after a newline.  Returns the number of lines."""
    sc = Scanner(total // MIN_LINE + 1 if total else 1 << 16)
    half = None
    buf = bytearray(max(chunk, 1) * 2)
    have = 0                                            # bytes in buf, from an unread line on
    lineno = 1
    done = 0
    b = reader.b
    while True:
        if len(buf) - have < chunk:                     # a line longer than the buffer's rest
            buf.extend(bytes(max(chunk, len(buf))))
        with memoryview(buf) as mv:
            got = f.readinto(mv[have:have + chunk])
        final = not got
        done += got
        have += got
        arr = np.frombuffer(buf, dtype=np.uint8, count=have)
        pos = 0
        split = buf.find(b"\n", have // 2, have) + 1 if total and have >= SPLIT_MIN_BYTES else 0
        if 0 < split < have:
            rows = (have - split) // MIN_LINE + 1
            if half is None or len(half.cols["line"]) < rows:
                half = Scanner(rows) if half is None else half
                half.new_columns(rows)
            res = []

            def second():                               # its result, or what it raised
                try:
                    res.append(half.scan_from(arr, split, have, final, 0, 0))
                except BaseException as exc:            # pragma: no cover - re-raised below
                    res.append(exc)
            th = threading.Thread(target=second)
            th.start()
            pos, lineno, nslow = sc.run(arr[:split], 0, False, lineno, b)
            th.join()
            if isinstance(res[0], BaseException):
                raise res[0]
            _deliver(sc, reader, buf, sc.slow[:nslow].tolist())
            if pos == split:
                pos, lineno = _second_half(sc, half, reader, buf, res[0], lineno) or (pos, lineno)
        while True:
            pos, lineno, nslow = sc.run(arr, pos, final, lineno, b)
            _deliver(sc, reader, buf, sc.slow[:nslow].tolist())
            if sc.k == len(sc.cols["line"]):
                sc.new_columns(2 * sc.k)
            elif nslow < len(sc.slow):
                break                                   # at the end of the buffer
        del arr
        if progress is not None and total:
            progress(min(done, total), total)
        buf[:have - pos] = buf[pos:have]
        have -= pos
        if final:
            return lineno - 1
