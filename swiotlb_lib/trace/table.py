"""A trace's mappings as numpy columns (:class:`MappingTable`), what :class:`~swiotlb_lib.trace.read.Trace`
keeps, and the lazy sequence of :class:`~swiotlb_lib.trace.read.Mapping` records that reads them
(:class:`MappingView`, ``Trace.mappings``).

Ten million ``swiotlb_bounced`` events as Python objects take gigabytes; as columns they take
about 40 bytes each.  The readers fill a :class:`TableBuilder` row by row (the Python line
parser) or by runs of rows (the compiled scanner, :mod:`swiotlb_lib.trace.scan`); the hot
paths (request grouping, the compiled engine's columns, the trace summary) read the columns;
the readable code (the reference engine, the chapters' analyses) reads ``Mapping`` records
built on demand, a block of :data:`BLOCK` at a time, never all at once.
"""
from __future__ import annotations

import bisect
import ctypes
from collections.abc import Sequence

import numpy as np

#: ``Mapping.force`` by code (``MappingTable.force``): 0 is a mapping without a
#: ``swiotlb_bounced`` line (kprobe ``map`` only).
FORCE_NAMES = (None, "FORCE", "NORMAL", "NO_FORCE")
FORCE_CODE = {name: k for k, name in enumerate(FORCE_NAMES)}
#: Bits of ``MappingTable.flags``: which optional kprobe fields a mapping has (``None`` otherwise).
HAS_DIR, HAS_ALLOC, HAS_TLB, HAS_UNMAP_TIME, HAS_UNMAP_LINE, HAS_MAP_LINE = 1, 2, 4, 8, 16, 32
#: Mappings built at once by :class:`MappingView` (and kept: at most :data:`CACHED_BLOCKS` blocks).
BLOCK = 2048
CACHED_BLOCKS = 4


def pack_int(values, smallest=np.int8) -> np.ndarray:
    """Integers (a list or an integer array) in the narrowest signed dtype from ``smallest``
    up to int64 that holds them all; uint64 when one exceeds int64 and none is negative;
    a numpy object array (Python ints) beyond that -- a reader keeps any value a line gives."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuO":
        if values.dtype == object or (values.size and int(values.max()) > np.iinfo(np.int64).max):
            return values
        lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
        for dt in (np.int8, np.int16, np.int32, np.int64):
            info = np.iinfo(dt)
            if np.dtype(dt).itemsize >= np.dtype(smallest).itemsize and info.min <= lo and hi <= info.max:
                return values if values.dtype == dt else values.astype(dt)
    try:
        a = np.asarray(values, dtype=np.int64)
    except OverflowError:
        try:
            return np.asarray(values, dtype=np.uint64)
        except OverflowError:
            a = np.empty(len(values), dtype=object)
            a[:] = list(values)
            return a
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for dt in (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if np.dtype(dt).itemsize >= np.dtype(smallest).itemsize and info.min <= lo and hi <= info.max:
            return a.astype(dt)
    return a


#: The fewest rows (mappings) whose columns are worth a ``malloc_trim``: each call walks the
#: whole heap (about 0.1 ms), and a short trace's columns free too little to matter.
TRIM_MIN_ROWS = 100_000


def release_memory(rows: int) -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; nothing where
    there is none) after columns of ``rows`` rows were built or dropped, when that is at least
    :data:`TRIM_MIN_ROWS`.  The reader frees many blocks of about a megabyte while it joins
    them into columns; glibc keeps such blocks for reuse, which would count as resident
    memory."""
    if rows < TRIM_MIN_ROWS:
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):                   # pragma: no cover - not glibc
        pass


def _small(a: np.ndarray) -> np.ndarray:
    return pack_int(a, np.int8) if a.dtype != object else a


class MappingTable:
    """The mappings of a trace, one numpy array per field of :class:`~swiotlb_lib.trace.read.Mapping`,
    in trace order.

    Dtypes (why they are wide enough):

    * ``time``, ``unmap_time``: float64, the value ``float()`` gives the timestamp text;
    * ``line``, ``unmap_line``, ``map_line``: int64 (a line number of a file of any size;
      ``line`` is shared as is with the compiled engine's columns);
    * ``orig``, ``tlb``: uint64 (64-bit DMA and bounce addresses); ``size``: int64 (the
      engine's dtype; uint64 or Python ints only for a size beyond 2**63, which no kernel maps);
    * ``cpu``, ``dir``, ``attrs``, ``alloc_size``: the narrowest integer dtype that holds
      the values read (:func:`pack_int`: int16 for any real CPU number, int8 for ``dir``);
    * ``task``, ``dev``, ``mask``: codes (narrowest dtype) into ``tasks``, ``dev_names``
      (sorted, the order of :attr:`Trace.devices <swiotlb_lib.trace.read.Trace.devices>`)
      and ``masks`` (uint64): a trace has few distinct names and DMA masks;
    * ``force``: uint8 code into :data:`FORCE_NAMES`; ``align_mask``: narrowest integer dtype
      (the reader keeps its low 32 bits, ``swiotlb_tbl_map_single()``'s ``unsigned int
      alloc_align_mask``);
    * ``flags``: uint8, the :data:`HAS_DIR` ... bits saying which optional field is set.

    The kprobe columns (``flags`` to ``map_line``) are None when no mapping has any of them
    (a ``swiotlb_bounced``-only trace): every mapping then has the defaults.
    """

    KPROBE = ("flags", "dir", "align_mask", "attrs", "alloc_size", "tlb", "unmap_time", "unmap_line",
              "map_line")

    def __init__(self, time, line, cpu, task, tasks, dev, dev_names, mask, masks, orig, size, force,
                 kprobe: dict | None = None) -> None:
        self.time, self.line, self.cpu = time, line, cpu
        self.task, self.tasks = task, list(tasks)
        self.dev, self.dev_names = dev, list(dev_names)
        self.mask, self.masks = mask, masks
        self.orig, self.size, self.force = orig, size, force
        self.kprobe = kprobe is not None
        kp = kprobe or {}
        for name in self.KPROBE:
            setattr(self, name, kp.get(name))

    def __len__(self) -> int:
        return len(self.time)

    # ------------------------------------------------------------------- derived columns ----
    def dma_mask(self) -> np.ndarray:
        """Each mapping's DMA mask (uint64)."""
        return self.masks[self.mask]

    def last_dma_masks(self) -> dict:
        """``{device name: the DMA mask of its last mapping}``, devices in the order they first
        appear (what ``{mp.dev_name: mp.dma_mask for mp in mappings}`` gives)."""
        n = len(self)
        if not n:
            return {}
        masks = self.masks.tolist()
        seen = []                                       # (first, name, mask of the last)
        for code, name in enumerate(self.dev_names):    # a few devices: one pass each, no sort
            here = self.dev == code                     # a byte per mapping
            if here.any():
                first, last = int(here.argmax()), n - 1 - int(here[::-1].argmax())
                seen.append((first, name, masks[int(self.mask[last])]))
        return {name: mask for _, name, mask in sorted(seen)}

    def has(self, bit: int) -> np.ndarray:
        """Whether each mapping has the optional field of flag ``bit`` (all False without kprobe data)."""
        if self.flags is None:
            return np.zeros(len(self), dtype=bool)
        return (self.flags & bit) != 0

    def tlb_ok(self) -> np.ndarray:
        """Mappings the traced kernel made: ``tlb`` recorded and not ``TLB_FAILED``."""
        if self.tlb is None:
            return np.zeros(len(self), dtype=bool)
        return self.has(HAS_TLB) & (self.tlb != np.uint64(2 ** 64 - 1))

    def tlb_failed(self) -> np.ndarray:
        """Mappings whose ``map_ret`` returned ``TLB_FAILED``."""
        if self.tlb is None:
            return np.zeros(len(self), dtype=bool)
        return self.has(HAS_TLB) & (self.tlb == np.uint64(2 ** 64 - 1))

    # ------------------------------------------------------------------------ records ----
    def rows(self, lo: int, hi: int) -> list:
        """:class:`~swiotlb_lib.trace.read.Mapping` records of rows ``lo`` to ``hi - 1``."""
        from .read import Mapping
        tasks, devs, masks = self.tasks, self.dev_names, self.masks.tolist()
        base = (self.line[lo:hi].tolist(), self.time[lo:hi].tolist(), self.cpu[lo:hi].tolist(),
                [tasks[k] for k in self.task[lo:hi].tolist()], [devs[k] for k in self.dev[lo:hi].tolist()],
                [masks[k] for k in self.mask[lo:hi].tolist()], self.orig[lo:hi].tolist(),
                self.size[lo:hi].tolist(), [FORCE_NAMES[k] for k in self.force[lo:hi].tolist()])
        if not self.kprobe:
            return [Mapping(*r) for r in zip(*base)]
        out = []
        for r, f, d, al, at, asz, tlb, ut, ul, ml in zip(
                zip(*base), self.flags[lo:hi].tolist(), self.dir[lo:hi].tolist(),
                self.align_mask[lo:hi].tolist(), self.attrs[lo:hi].tolist(), self.alloc_size[lo:hi].tolist(),
                self.tlb[lo:hi].tolist(), self.unmap_time[lo:hi].tolist(), self.unmap_line[lo:hi].tolist(),
                self.map_line[lo:hi].tolist()):
            out.append(Mapping(*r, d if f & HAS_DIR else None, al, at, asz if f & HAS_ALLOC else None,
                               tlb if f & HAS_TLB else None, ut if f & HAS_UNMAP_TIME else None,
                               ul if f & HAS_UNMAP_LINE else None, ml if f & HAS_MAP_LINE else None))
        return out

    @classmethod
    def from_mappings(cls, maps) -> MappingTable:
        """The table of a list of :class:`~swiotlb_lib.trace.read.Mapping` (a trace built by hand)."""
        b = TableBuilder()
        for mp in maps:
            row = b.add(mp.line, mp.time, mp.cpu, mp.task, mp.dev_name, mp.dma_mask, mp.orig, mp.size, mp.force)
            for name in ("dir", "alloc_size", "tlb", "unmap_time", "unmap_line", "map_line"):
                v = getattr(mp, name)
                if v is not None:
                    b.set(row, name, v)
            if mp.align_mask:
                b.set(row, "align_mask", mp.align_mask)
            if mp.attrs:
                b.set(row, "attrs", mp.attrs)
        return b.finish()


class BlockView(Sequence):
    """A read-only sequence of records built on demand from columns, :data:`BLOCK` at a time
    by :meth:`rows` (``rows(lo, hi)``: the records ``lo`` to ``hi - 1``); the last
    :data:`CACHED_BLOCKS` blocks indexed are kept, never all.  Records are copies: changing one
    does not change the columns (while its block is kept, indexing returns the same record)."""

    def __init__(self) -> None:
        self._blocks: dict = {}

    def rows(self, lo: int, hi: int) -> list:
        raise NotImplementedError

    def __getitem__(self, i):
        n = len(self)
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(n))]
        i = i.__index__()
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{type(self).__name__} index out of range")
        b = i // BLOCK
        blk = self._blocks.get(b)
        if blk is None:
            if len(self._blocks) >= CACHED_BLOCKS:
                del self._blocks[next(iter(self._blocks))]
            blk = self._blocks[b] = self.rows(b * BLOCK, min((b + 1) * BLOCK, n))
        return blk[i % BLOCK]

    def __iter__(self):
        n = len(self)
        for lo in range(0, n, BLOCK):
            yield from self.rows(lo, min(lo + BLOCK, n))

    def __eq__(self, other) -> bool:
        if isinstance(other, (BlockView, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"<{len(self)} {type(self).__name__} records (columns)>"


class MappingView(BlockView):
    """``Trace.mappings`` of a trace kept as columns: :class:`~swiotlb_lib.trace.read.Mapping`
    records of a :class:`MappingTable` built on indexing or iteration (see :class:`BlockView`)."""

    def __init__(self, table: MappingTable) -> None:
        super().__init__()
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def rows(self, lo: int, hi: int) -> list:
        return self.table.rows(lo, hi)


class TableBuilder:
    """Rows in trace order, added one at a time (:meth:`add`) or by runs of arrays (:meth:`add_run`);
    optional kprobe fields set on any row already added (:meth:`set`).  :meth:`finish` makes the
    :class:`MappingTable`."""

    BASE = ("line", "time", "cpu", "task", "dev", "mask", "orig", "size", "force")
    DTYPES = {"line": np.int64, "time": np.float64, "orig": np.uint64, "force": np.uint8}

    def __init__(self) -> None:
        self.n = 0
        self.pieces: list = []          # finished blocks of rows: {column: array}
        self.starts: list = []          # the first row of each piece
        self.py = {c: [] for c in self.BASE}
        self.py_start = 0
        self.run = None                 # (arrays, lo, hi) of the last piece when it is a run of add_run
        self.kp = {c: {} for c in ("dir", "align_mask", "attrs", "alloc_size", "tlb", "unmap_time",
                                   "unmap_line", "map_line")}
        self.names = {"task": ([], {}), "dev": ([], {}), "mask": ([], {})}

    def code(self, kind: str, value) -> int:
        """The code of a task name, device name or DMA mask (``kind``), new ones appended."""
        vals, index = self.names[kind]
        k = index.get(value)
        if k is None:
            k = index[value] = len(vals)
            vals.append(value)
        return k

    def add(self, line, time, cpu, task, dev, mask, orig, size, force) -> int:
        """Add one mapping; returns its row."""
        py = self.py
        py["line"].append(line)
        py["time"].append(time)
        py["cpu"].append(cpu)
        py["task"].append(self.code("task", task))
        py["dev"].append(self.code("dev", dev))
        py["mask"].append(self.code("mask", mask))
        py["orig"].append(orig)
        py["size"].append(size)
        py["force"].append(FORCE_CODE[force])
        self.n += 1
        return self.n - 1

    def _flush(self) -> None:
        if self.n > self.py_start:
            piece = {}
            for c in self.BASE:
                vals = self.py[c]
                dt = self.DTYPES.get(c)
                piece[c] = np.asarray(vals, dtype=dt) if dt is not None else pack_int(vals, np.int64)
                self.py[c] = []
            self.pieces.append(piece)
            self.starts.append(self.py_start)
            self.run = None
        self.py_start = self.n

    def continues(self, cols: dict, lo: int) -> bool:
        """Whether :meth:`add_run` of ``cols`` from row ``lo`` extends the last piece."""
        run = self.run
        return run is not None and run[0] is cols and run[2] == lo and self.py_start == self.n

    def add_rows(self, lists: dict) -> None:
        """Add rows given as lists of the :attr:`BASE` columns (codes from :meth:`code`)."""
        for c in self.BASE:
            self.py[c].extend(lists[c])
        self.n += len(lists["line"])

    def add_run(self, cols: dict, lo: int, hi: int) -> None:
        """Add rows ``lo`` to ``hi - 1`` of the arrays ``cols`` (the :attr:`BASE` columns, codes
        from :meth:`code`) as views, not copies: the caller must not change those rows again.
        A run that goes on where the last one of the same ``cols`` ended, with no row added in
        between, extends it (one piece, never joined)."""
        k = hi - lo
        if k <= 0:
            return
        if self.continues(cols, lo):
            piece, first = self.pieces[-1], self.run[1]
            for c in self.BASE:
                piece[c] = cols[c][first:hi]
            self.run = (cols, first, hi)
        else:
            self._flush()
            self.pieces.append({c: cols[c][lo:hi] for c in self.BASE})
            self.starts.append(self.n)
            self.run = (cols, lo, hi)
        self.n = self.py_start = self.n + k

    def get(self, row: int, col: str):
        """A base column's value at ``row`` (``task``/``dev``/``mask`` as names and values)."""
        if row >= self.py_start:
            v = self.py[col][row - self.py_start]
        else:
            p = bisect.bisect_right(self.starts, row) - 1
            v = self.pieces[p][col][row - self.starts[p]].item()
        if col in self.names:
            return self.names[col][0][v]
        return v

    def set(self, row: int, field: str, value) -> None:
        """Set an optional kprobe field of ``row`` (``dir``, ``align_mask``, ``attrs``, ``alloc_size``,
        ``tlb``, ``unmap_time``, ``unmap_line``, ``map_line``)."""
        self.kp[field][row] = value

    def kget(self, row: int, field: str, default=None):
        return self.kp[field].get(row, default)

    def finish(self) -> MappingTable:
        self._flush()
        n = self.n
        cols = {}
        for c in self.BASE:                             # one column at a time: the pieces go as it is built
            parts = [p.pop(c) for p in self.pieces]
            if not parts:
                a = np.zeros(0, dtype=self.DTYPES.get(c, np.int64))
            elif len(parts) == 1:
                a = parts[0]
            elif any(p.dtype == object for p in parts):
                a = np.concatenate([p.astype(object) for p in parts])
            else:
                a = np.concatenate(parts)
            del parts
            release_memory(n)
            cols[c] = a
        tasks = self.names["task"][0]
        devs = self.names["dev"][0]
        used = np.bincount(cols["dev"], minlength=len(devs)) > 0 if n else []
        order = sorted((k for k in range(len(devs)) if used[k]), key=devs.__getitem__)
        rank = np.zeros(max(len(devs), 1), dtype=np.int64)
        rank[order] = np.arange(len(order))
        dev = _small(rank)[cols["dev"]] if n else cols["dev"]
        masks = np.asarray(self.names["mask"][0], dtype=np.uint64)
        size = cols["size"]
        if size.dtype != object and size.dtype != np.uint64:
            size = size.astype(np.int64, copy=False)
        kprobe = None
        if any(self.kp.values()):
            kprobe = self._kprobe_columns(n)
        return MappingTable(cols["time"].astype(np.float64, copy=False), cols["line"].astype(np.int64, copy=False),
                            _small(cols["cpu"]), _small(cols["task"]), tasks, _small(dev),
                            [devs[k] for k in order], _small(cols["mask"]), masks,
                            cols["orig"].astype(np.uint64, copy=False), size,
                            cols["force"].astype(np.uint8, copy=False), kprobe)

    def _kprobe_columns(self, n: int) -> dict:
        flags = np.zeros(n, dtype=np.uint8)
        out = {"flags": flags}

        def column(field, dtype, fill, bit=0):
            d = self.kp[field]
            if bit:
                d = {k: v for k, v in d.items() if v is not None}
            rows = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
            vals = list(d.values())
            if dtype is None:                           # any integer: widest needed, then narrowed
                packed = pack_int(vals, np.int64) if vals else np.zeros(0, np.int64)
                a = np.zeros(n, dtype=packed.dtype)
                a[rows] = packed
                a = pack_int(a, np.int8) if a.dtype != object else a
            else:
                a = np.full(n, fill, dtype=dtype)
                a[rows] = np.asarray(vals, dtype=dtype) if vals else a[rows]
            if bit:
                flags[rows] |= bit
            out[field] = a

        column("dir", None, 0, HAS_DIR)
        column("align_mask", None, 0)
        column("attrs", None, 0)
        column("alloc_size", None, 0, HAS_ALLOC)
        column("tlb", np.uint64, 0, HAS_TLB)
        column("unmap_time", np.float64, np.nan, HAS_UNMAP_TIME)
        column("unmap_line", np.int64, -1, HAS_UNMAP_LINE)
        column("map_line", np.int64, 0, HAS_MAP_LINE)
        return out
