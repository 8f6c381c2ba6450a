"""Request grouping: which traced mappings complete together.

Two block drivers are recognised, by the shape their requests leave in a trace:

* virtio-blk maps a 16-byte header, its data segments, a one-byte status and, with
  indirect descriptors, a table of 16 bytes per descriptor, in that order under the queue
  lock (``virtio_queue_rq``; ``data/realkernel/README.md``, finding 13, the mappings of one
  virtio-blk request);
* NVMe (``drivers/nvme/host/pci.c@adc218676eef``, v6.12: ``nvme_queue_rq()`` ->
  ``nvme_prep_rq()`` -> ``nvme_map_data()``) maps only a request's data through the
  streaming DMA API: one segment with ``dma_map_bvec()`` and no attributes
  (``nvme_setup_prp_simple()``, ``nvme_setup_sgl_simple()``), several with
  ``dma_map_sgtable(..., DMA_ATTR_NO_WARN)``, back to back on the submitting CPU.  Its PRP
  and SGL lists come from ``dma_pool_alloc()`` (coherent memory, never bounced), so no
  header or descriptor mapping appears (``data/realkernel-nvme/README.md``: no mapping
  under 4096 bytes).  See :func:`_nvme_requests` for what the model infers a request to be.

Other drivers' mappings are grouped ``none``: each is replayed on its own.
:func:`group_requests` finds the requests in a trace; :func:`request_slots` and
:func:`min_request_slots` count the slots one holds at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constants import DMA_ATTR_NO_WARN, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, KiB
from ..pool import nr_slots
from .scan import HAVE_NUMBA, jit, jitable
from .table import HAS_DIR, HAS_UNMAP_LINE, BlockView, MappingTable, MappingView, release_memory

#: virtio-blk request layout (include/uapi/linux/virtio_blk.h, virtio_ring.h): the
#: ``struct virtio_blk_outhdr`` header, the one-byte status, 16-byte ``struct vring_desc``.
VIRTIO_BLK_HDR_BYTES = 16
VIRTIO_BLK_STATUS_BYTES = 1
VRING_DESC_BYTES = 16
#: Largest bounce buffer: 128 slots of 2 KiB (``IO_TLB_SEGSIZE`` x ``IO_TLB_SIZE``,
#: ``include/linux/swiotlb.h@1aaa736815eb``; ``kernel/dma/swiotlb.c@af133562d5af:
#: swiotlb_max_mapping_size()``).
MAX_MAPPING_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE
#: ``NVME_CTRL_PAGE_SIZE`` (drivers/nvme/host/nvme.h): the driver's ``min_align_mask`` is
#: this less one.
NVME_CTRL_PAGE_SIZE = 4096
#: The largest NVMe request when SWIOTLB bounces: ``max_hw_sectors`` is capped by
#: ``dma_opt_mapping_size()`` (``nvme_pci_alloc_dev()``, v6.12), which with SWIOTLB is
#: ``swiotlb_max_mapping_size()``: 256 KiB less one 4 KiB ``min_align_mask`` unit
#: (``kernel/dma/swiotlb.c@afd81d914f6f: swiotlb_max_mapping_size()``); measured as
#: ``max_hw_sectors_kb`` 252 in ``data/realkernel-nvme/README.md``.
NVME_MAX_REQUEST_BYTES = MAX_MAPPING_BYTES - NVME_CTRL_PAGE_SIZE
#: Its segments: ``max_hw_sectors`` in controller pages plus one
#: (drivers/nvme/host/core.c@adc218676eef: ``nvme_max_drv_segments()``, used by
#: ``nvme_set_ctrl_limits()``): 64, the ``max_segments`` the README measured.
NVME_MAX_SEGMENTS = NVME_MAX_REQUEST_BYTES // NVME_CTRL_PAGE_SIZE + 1
#: The drivers :func:`group_requests` recognises: their failed requests are requeued.
BLOCK_KINDS = ("virtio-blk", "nvme")
#: ``--requests`` values.
GROUPINGS = ("auto", "virtio-blk", "nvme", "none")


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


#: ``RequestTable.kind`` codes.
KINDS = ("mapping", "virtio-blk", "nvme")
K_MAPPING, K_VIRTIO, K_NVME = 0, 1, 2


@jitable
def _grow(a):
    """``a`` in an array twice as long (zeros after it); plain Python when a kernel runs as
    Python (a short trace, see :func:`_run`), so that nothing is compiled then."""
    b = np.zeros(2 * len(a), a.dtype)
    b[:len(a)] = a
    return b


@jit
def _virtio_blk_units(size, key, nkeys):
    """:func:`_virtio_blk_requests` on columns: each mapping's request (``unit_of``) and each
    request's kind, aborted flag, data bytes and number of members."""
    n = len(size)
    unit_of = np.empty(n, np.int32)
    cap = n // 16 + 16                                  # per request, grown as needed
    kind = np.zeros(cap, np.uint8)
    aborted = np.zeros(cap, np.uint8)
    data = np.zeros(cap, size.dtype)                   # Python ints for sizes beyond int64
    nmem = np.zeros(cap, np.int32)
    open_req = np.full(nkeys, -1, np.int64)
    status = np.zeros(nkeys, np.uint8)                  # 0: data segments, 1: after the status
    nu = 0
    for i in range(n):
        if nu == len(kind):
            kind, aborted, data, nmem = _grow(kind), _grow(aborted), _grow(data), _grow(nmem)
        k = key[i]
        s = size[i]
        r = open_req[k]
        if r >= 0:
            if status[k] == 0:
                if s == VIRTIO_BLK_STATUS_BYTES:
                    unit_of[i] = r
                    nmem[r] += 1
                    status[k] = 1
                    continue
                if s != VIRTIO_BLK_HDR_BYTES:
                    unit_of[i] = r
                    nmem[r] += 1
                    data[r] += s
                    continue
                aborted[r] = 1                          # a new header before the status
            else:                                       # after the status: the indirect table, or done
                open_req[k] = -1
                if s == VRING_DESC_BYTES * nmem[r]:
                    unit_of[i] = r
                    nmem[r] += 1
                    continue
        r = nu
        nu += 1
        unit_of[i] = r
        nmem[r] = 1
        if s == VIRTIO_BLK_HDR_BYTES:
            kind[r] = K_VIRTIO
            open_req[k] = r
            status[k] = 0
        else:
            open_req[k] = -1
            data[r] = s
    return unit_of, kind[:nu], aborted[:nu], data[:nu], nmem[:nu]


@jit
def _nvme_units(size, key, nkeys, dirc, sg, failed, rank):
    """:func:`_nvme_requests` on columns (``sg``: may join a request; ``rank``: position of
    the mapping's unmap among the trace's unmaps, -1 without one)."""
    n = len(size)
    unit_of = np.empty(n, np.int32)
    cap = n // 16 + 16                                  # per request, grown as needed
    aborted = np.zeros(cap, np.uint8)
    data = np.zeros(cap, size.dtype)                   # Python ints for sizes beyond int64
    nmem = np.zeros(cap, np.int32)
    last = np.zeros(cap, np.int64)
    open_req = np.full(nkeys, -1, np.int64)
    nu = 0
    for i in range(n):
        if nu == len(aborted):
            aborted, data, nmem, last = _grow(aborted), _grow(data), _grow(nmem), _grow(last)
        k = key[i]
        r = open_req[k]
        open_req[k] = -1
        if r >= 0 and sg[i]:
            j = last[r]
            a = rank[j]
            b = rank[i]
            if (dirc[j] == dirc[i] and data[r] + size[i] <= NVME_MAX_REQUEST_BYTES
                    and nmem[r] < NVME_MAX_SEGMENTS and (a < 0 or b < 0 or b == a + 1)):
                unit_of[i] = r
                nmem[r] += 1
                data[r] += size[i]
                last[r] = i
                if failed[i]:
                    aborted[r] = 1
                else:
                    open_req[k] = r
                continue
        r = nu
        nu += 1
        unit_of[i] = r
        nmem[r] = 1
        data[r] = size[i]
        last[r] = i
        aborted[r] = failed[i]
        if sg[i] and not failed[i]:
            open_req[k] = r
    return unit_of, aborted[:nu], data[:nu], nmem[:nu]


@jit
def _members(unit_of, ptr):
    """Mapping indexes grouped by request, ascending within each (a counting sort)."""
    at = ptr[:-1].copy()
    out = np.empty(len(unit_of), np.int32)
    for i in range(len(unit_of)):
        u = unit_of[i]
        out[at[u]] = i
        at[u] += 1
    return out


#: the most mappings a grouping indexes: :class:`RequestTable` keeps ``unit_of`` and
#: ``members`` in int32 (4 bytes a mapping each, 80 MB less at ten million mappings)
MAX_MAPPINGS = 2**31 - 1


def check_count(n: int) -> None:
    """ValueError for a trace of more mappings than a grouping can index (:data:`MAX_MAPPINGS`,
    a limit of the model, not of the kernel)."""
    if n > MAX_MAPPINGS:
        raise ValueError(f"trace: at most {MAX_MAPPINGS} bounce mappings can be grouped into "
                         f"requests (the model indexes them in int32), got {n}")


class RequestTable:
    """Requests as columns: ``members[ptr[u]:ptr[u + 1]]`` are the mappings of request ``u``
    (ascending), ``unit_of[i]`` the request of mapping ``i`` (0 for a mapping in none, which
    only a grouping made by hand can leave; both int32, see :data:`MAX_MAPPINGS`); per request
    ``dev`` (code into ``dev_names``), ``cpu``, ``kind`` (code into :data:`KINDS`),
    ``aborted``, ``data_bytes``; ``ordered``: every
    request's members ascend (always, for a grouping :func:`group_requests` made: it lists a
    request's members in trace order)."""

    def __init__(self, unit_of, ptr, members, dev, dev_names, cpu, kind, aborted, data_bytes,
                 ordered: bool | None = None) -> None:
        self.unit_of, self.ptr, self.members = unit_of, ptr, members
        if ordered is None:                             # every request's members ascend
            d = np.diff(members)
            same = np.ones(len(d), bool)
            b = ptr[1:-1] - 1                           # last member of each request but the last
            same[b[(b >= 0) & (b < len(d))]] = False
            ordered = bool(np.all(d[same] > 0))
        self.ordered = ordered
        self.dev, self.dev_names, self.cpu = dev, list(dev_names), cpu
        self.kind, self.aborted, self.data_bytes = kind, aborted, data_bytes

    def __len__(self) -> int:
        return len(self.ptr) - 1

    @classmethod
    def from_units(cls, table, unit_of, kind, aborted, data) -> RequestTable:
        nu = len(kind)
        ptr = np.zeros(nu + 1, np.int64)
        np.cumsum(np.bincount(unit_of, minlength=nu), out=ptr[1:])
        # a stable sort gives the same order; the compiled counting sort for long traces
        members = (_members(unit_of, ptr) if len(unit_of) >= COMPILED_MIN_MAPPINGS
                   else np.argsort(unit_of, kind="stable").astype(np.int32))
        first = members[ptr[:-1]]
        # copies: the kernels' outputs are views of arrays as long as the trace
        return cls(unit_of, ptr, members, table.dev[first], table.dev_names, table.cpu[first],
                   np.array(kind, np.uint8), np.array(aborted, bool), np.array(data), ordered=True)

    @classmethod
    def from_requests(cls, reqs, n: int) -> RequestTable:
        """The table of a list of :class:`Request` over ``n`` mappings (a grouping made by hand)."""
        check_count(n)
        reqs = list(reqs)
        names = sorted({r.dev_name for r in reqs})
        code = {d: k for k, d in enumerate(names)}
        unit_of = np.zeros(n, np.int32)
        ptr = np.zeros(len(reqs) + 1, np.int64)
        np.cumsum([len(r.members) for r in reqs], out=ptr[1:])
        members = np.fromiter((i for r in reqs for i in r.members), np.int32, int(ptr[-1]))
        for u, r in enumerate(reqs):
            unit_of[r.members] = u
        kinds = {k: c for c, k in enumerate(KINDS)}
        return cls(unit_of, ptr, members, np.array([code[r.dev_name] for r in reqs], np.int64), names,
                   np.array([r.cpu for r in reqs], np.int64),
                   np.array([kinds.get(r.kind, K_MAPPING) for r in reqs], np.uint8),
                   np.array([r.aborted for r in reqs], bool), np.array([r.data_bytes for r in reqs], np.int64))

    def rows(self, lo: int, hi: int) -> list:
        """:class:`Request` records of requests ``lo`` to ``hi - 1``."""
        ptr = self.ptr[lo:hi + 1].tolist()
        mem = self.members[ptr[0]:ptr[-1]].tolist() if hi > lo else []
        base = ptr[0] if hi > lo else 0
        names = self.dev_names
        return [Request(mem[p - base:q - base], names[d], c, KINDS[k], a, db)
                for p, q, d, c, k, a, db in zip(ptr, ptr[1:], self.dev[lo:hi].tolist(), self.cpu[lo:hi].tolist(),
                                               self.kind[lo:hi].tolist(), self.aborted[lo:hi].tolist(),
                                               self.data_bytes[lo:hi].tolist())]


class RequestView(BlockView):
    """The requests of a :class:`RequestTable` as :class:`Request` records built on demand
    (see :class:`~swiotlb_lib.trace.table.BlockView`); ``index``: the requests of the table
    it shows, default all."""

    def __init__(self, table: RequestTable, index=None) -> None:
        super().__init__()
        self.table, self.index = table, index

    def __len__(self) -> int:
        return len(self.table) if self.index is None else len(self.index)

    def rows(self, lo: int, hi: int) -> list:
        if self.index is None:
            return self.table.rows(lo, hi)
        return [self.table.rows(u, u + 1)[0] for u in self.index[lo:hi].tolist()]


def request_table(reqs, n: int) -> RequestTable:
    """The :class:`RequestTable` of ``reqs`` (what :func:`group_requests` returned, or a list
    of :class:`Request`) over ``n`` mappings."""
    return reqs.table if isinstance(reqs, RequestView) and reqs.index is None else RequestTable.from_requests(reqs, n)


def mapping_table(mappings) -> MappingTable:
    """The columns of ``mappings``: a trace's ``mappings`` (a view of its columns) or a list of Mapping."""
    if isinstance(mappings, MappingView):
        return mappings.table
    if isinstance(mappings, MappingTable):
        return mappings
    return MappingTable.from_mappings(mappings)


def _keys(table: MappingTable) -> tuple:
    """Each mapping's (device, CPU) as one small integer, and how many there can be."""
    cpu = table.cpu
    if cpu.dtype == object or cpu.dtype == np.uint64:
        _, cpu = np.unique(cpu.astype(object) if cpu.dtype == object else cpu, return_inverse=True)
    cpu = cpu.reshape(-1)
    lo = int(cpu.min()) if len(cpu) else 0
    if lo < 0 or (len(cpu) and int(cpu.max()) >= 1 << 20):
        _, cpu = np.unique(cpu, return_inverse=True)
        cpu = cpu.reshape(-1).astype(np.int64)
    ncpu = int(cpu.max()) + 1 if len(cpu) else 1
    nkeys = max(len(table.dev_names), 1) * ncpu
    key = table.dev.astype(np.int32 if nkeys < 1 << 31 else np.int64)
    key *= ncpu
    key += cpu
    return key, nkeys


def _sizes(table: MappingTable) -> np.ndarray:
    size = table.size
    return size if size.dtype == np.int64 else size.astype(object)


#: The fewest mappings grouped by the compiled kernels: below, their Python source runs
#: (about 10 us a mapping, so 0.1 s at this size), which beats loading them from Numba's
#: cache and far beats compiling them (about 10 s); every trace under ``data/`` is smaller.
COMPILED_MIN_MAPPINGS = 10_000


def _run(kernel, size, *args):
    """A grouping kernel: compiled for a long trace, its Python source for a short one or
    for sizes beyond int64 (Python ints)."""
    if HAVE_NUMBA and (size.dtype == object or len(size) < COMPILED_MIN_MAPPINGS):
        return kernel.py_func(size, *args)
    return kernel(size, *args)


def _virtio_blk_requests(table: MappingTable) -> RequestTable:
    """Group mappings per (device, CPU) into virtio-blk requests: a 16-byte header
    (``DMA_TO_DEVICE``), data segments, the 1-byte status and, with indirect descriptors,
    a table of 16 bytes per descriptor (header + data + status).  ``data/realkernel/README.md``,
    finding 13 (the mappings of one virtio-blk request);
    ``virtio_queue_rq`` maps them in this order under the queue lock, so one CPU's
    requests do not interleave.  Anything else is a lone mapping."""
    key, nkeys = _keys(table)
    unit_of, kind, aborted, data, _ = _run(_virtio_blk_units, _sizes(table), key, nkeys)
    del key, _
    return RequestTable.from_units(table, unit_of, kind, aborted, data)


def _nvme_requests(table: MappingTable) -> RequestTable:
    """Group mappings into NVMe requests (v6.12 ``nvme_map_data()``, see the module docstring).

    A trace does not mark where one request ends and the next begins: blk-mq can dispatch
    several requests of one CPU in a row, and nothing between their ``dma_map_sgtable()``
    calls is traced.  The model's inference, each rule from the driver's code:

    * a request's mappings are consecutive among the mappings of its device and CPU
      (``nvme_map_data()`` maps them in one call on the submitting CPU), with one direction
      (``rq_dma_dir()``);
    * in a kprobe trace, a mapping without ``DMA_ATTR_NO_WARN`` is a one-segment request of
      its own (``dma_map_bvec(..., 0)``), and a mapping the kernel failed ends its request:
      ``dma_direct_map_sg()`` unmaps the segments already mapped and ``nvme_map_data()``
      returns ``BLK_STS_RESOURCE`` (``Request.aborted``; the retry is later in the trace);
    * its data is at most :data:`NVME_MAX_REQUEST_BYTES` in at most
      :data:`NVME_MAX_SEGMENTS` segments (the queue limits SWIOTLB imposes);
    * with unmap events: ``nvme_unmap_data()`` unmaps a request's whole table in one
      ``dma_unmap_sgtable()`` loop, in mapping order, so two mappings whose recorded unmaps
      are not next to each other among the trace's unmaps belong to different requests;
    * within those limits a request takes as many consecutive mappings as it can (greedy).

    The last rule is the guess: two small requests dispatched back to back whose unmaps are
    lost or adjacent are read as one.  Requests of the largest size, which decide a pool's
    size, are split exactly, since no request exceeds the limits."""
    n = len(table)
    key, nkeys = _keys(table)
    has_dir = table.has(HAS_DIR)
    kprobe = bool(has_dir.any())
    dirc = np.full(n, -1, np.int64)
    if kprobe:
        d = table.dir[has_dir]
        _, inv = np.unique(d.astype(object) if d.dtype == object else d, return_inverse=True)
        dirc[has_dir] = inv.reshape(-1)
    sg = nowarn(table) if kprobe else np.ones(n, bool)
    rank = np.full(n, -1, np.int64)
    has_unmap = table.has(HAS_UNMAP_LINE)
    if has_unmap.any():
        lines = table.unmap_line[has_unmap]
        order = np.sort(lines)
        rank[has_unmap] = np.searchsorted(order, lines, "right") - 1     # the last of equal lines
    unit_of, aborted, data, _ = _run(_nvme_units, _sizes(table), key, nkeys, dirc, sg, table.tlb_failed(), rank)
    del key, dirc, sg, rank, _
    return RequestTable.from_units(table, unit_of, np.full(len(aborted), K_NVME, np.uint8), aborted, data)


def nowarn(table: MappingTable) -> np.ndarray:
    """Whether each mapping carries ``DMA_ATTR_NO_WARN``."""
    if table.attrs is None:
        return np.zeros(len(table), bool)
    a = table.attrs
    if a.dtype == object:
        return np.array([bool(x & DMA_ATTR_NO_WARN) for x in a.tolist()], bool)
    return (a.astype(np.int64) & DMA_ATTR_NO_WARN) != 0


def shows_nvme(mappings) -> bool:
    """Whether a kprobe trace shows NVMe's ``dma_map_sgtable(..., DMA_ATTR_NO_WARN)``: at
    least half the mappings carry ``DMA_ATTR_NO_WARN`` and none is smaller than a sector
    (NVMe maps data only; ``data/realkernel-nvme/README.md``: 6322 of 6413 with the
    attribute, none under 4096 bytes).  A tracepoint-only trace records no attributes: it
    cannot show NVMe (give ``requests="nvme"`` or the ``nvme`` device preset)."""
    table = mapping_table(mappings)
    if not len(table) or not table.has(HAS_DIR).any():
        return False
    return int(nowarn(table).sum()) * 2 >= len(table) and int(table.size.min()) >= 512


def grouping_note(mode: str) -> str:
    """What a grouping means, in one line (the replay's text and JSON ``grouping_note``)."""
    if mode == "virtio-blk":
        return ("virtio-blk requests: header, data, status, indirect table; a request that cannot "
                "get all its slots gives them back and is retried")
    if mode == "nvme":
        return ("NVMe requests: data segments mapped back to back on one CPU, at most "
                f"{NVME_MAX_REQUEST_BYTES // KiB} KiB in {NVME_MAX_SEGMENTS} segments (the model's "
                "inference from the trace); a request that cannot get all its slots gives them "
                "back and is retried")
    return ("mappings replayed ungrouped, each on its own: the trace shows neither virtio-blk "
            "nor NVMe requests")


def group_requests(mappings, mode: str = "auto", driver: str | None = None) -> tuple:
    """Group mappings into completion units: ``virtio-blk`` or ``nvme`` requests, ``none``
    (every mapping alone), or ``auto``: virtio-blk when at least half the mappings fall into
    well-formed virtio-blk requests, else NVMe when ``driver`` is ``"nvme"`` (a device
    preset) or the trace shows it (:func:`shows_nvme`), else none.  Returns ``(requests,
    mode_used)``; requests are ordered by their first mapping, a :class:`RequestView` of
    their :class:`RequestTable` (``requests.table``).  ``mappings`` is a trace's
    ``mappings`` (read as columns) or a list of :class:`~swiotlb_lib.trace.read.Mapping`."""
    if mode not in GROUPINGS:
        raise ValueError(f"requests: must be one of {', '.join(GROUPINGS)}, got {mode!r}")
    table = mapping_table(mappings)
    n = len(table)
    check_count(n)
    if mode in ("auto", "virtio-blk"):
        rt = _virtio_blk_requests(table)
        release_memory(n)
        whole = (rt.kind == K_VIRTIO) & ~rt.aborted
        covered = int(np.diff(rt.ptr)[whole].sum())
        if mode == "virtio-blk" or (n and covered * 2 >= n):
            return RequestView(rt), "virtio-blk"
        del rt
    if mode == "nvme" or (mode == "auto" and (driver == "nvme" or shows_nvme(table))):
        rt = _nvme_requests(table)
        release_memory(n)
        return RequestView(rt), "nvme"
    unit_of = np.arange(n, dtype=np.int32)
    size = table.size if table.size.dtype == np.int64 else table.size.astype(object)
    return RequestView(RequestTable.from_units(table, unit_of, np.zeros(n, np.uint8), np.zeros(n, bool),
                                               size)), "none"


#: mappings per block of :func:`request_nslots`
NSLOTS_BLOCK = 1 << 20


def request_nslots(reqs, mappings) -> np.ndarray:
    """:func:`request_slots` of every request of ``reqs`` (from :func:`group_requests`).

    The requests are added up in blocks of about :data:`NSLOTS_BLOCK` mappings, so that the
    slots of every mapping, in the order of the requests' members, never exist at once (two
    int64 arrays of the trace's length, 160 MB at ten million mappings, were the peak of
    ``advise``'s memory)."""
    table = mapping_table(mappings)
    rt = request_table(reqs, len(table))
    size = table.size
    exact = size.dtype != np.int64                      # sizes beyond int64 (object): Python ints
    ptr, nu = rt.ptr, len(rt)
    out = np.zeros(nu, dtype=object if exact else np.int64)
    u0 = 0
    while u0 < nu:
        # requests u0..u1-1: about NSLOTS_BLOCK members, at least one request
        u1 = min(max(int(np.searchsorted(ptr, ptr[u0] + NSLOTS_BLOCK, side="right")) - 1, u0 + 1), nu)
        lo, hi = ptr[u0], ptr[u1]
        if hi > lo:
            s = size[rt.members[lo:hi]]
            ms = (np.array([nr_slots(x) for x in s.tolist()], dtype=object) if exact
                  else (s + (IO_TLB_SIZE - 1)) >> IO_TLB_SHIFT)
            nonempty = np.diff(ptr[u0:u1 + 1]) > 0
            out[u0:u1][nonempty] = np.add.reduceat(ms, ptr[u0:u1][nonempty] - lo)
        u0 = u1
    return out


def whole_requests(reqs, n: int) -> RequestView:
    """The requests of ``reqs`` the traced kernel did not abandon (``not aborted``), as a view."""
    rt = request_table(reqs, n)
    return RequestView(rt, np.flatnonzero(~rt.aborted))


def biggest_request(reqs, mappings) -> Request | None:
    """The first request not abandoned that holds the most slots (:func:`request_slots`), or None."""
    table = mapping_table(mappings)
    rt = request_table(reqs, len(table))
    idx = np.flatnonzero(~rt.aborted)
    if not len(idx):
        return None
    slots = request_nslots(RequestView(rt), table)[idx]
    k = int(idx[int(np.argmax(slots))]) if slots.dtype != object else int(idx[max(
        range(len(idx)), key=slots.__getitem__)])
    return rt.rows(k, k + 1)[0]


def largest_data_bytes(reqs, kind: str) -> int:
    """The largest ``data_bytes`` of the requests of ``reqs`` of ``kind``, 0 if none."""
    if not isinstance(reqs, RequestView):
        return max((q.data_bytes for q in reqs if q.kind == kind), default=0)
    rt = reqs.table
    idx = np.arange(len(rt)) if reqs.index is None else reqs.index
    sel = idx[rt.kind[idx] == KINDS.index(kind)]
    return int(rt.data_bytes[sel].max()) if len(sel) else 0


def request_slots(req: Request, mappings) -> int:
    """Slots a request holds at once when all its mappings are live (a lower bound:
    alignment padding can add more)."""
    return sum(nr_slots(mappings[i].size) for i in req.members)


def min_request_slots(max_sectors_kb: int) -> int:
    """Slots one virtio-blk request of ``max_sectors_kb`` KiB holds at once at least: its data
    (2 KiB slots), the header, the status and an indirect table for the fewest segments
    (256 KiB each, ``max_segment_size``)."""
    if type(max_sectors_kb) is not int or not 4 <= max_sectors_kb <= 1 << 22:
        raise ValueError(f"max_sectors_kb: must be an integer in 4..{1 << 22}, got {max_sectors_kb!r}")
    segs = -(-max_sectors_kb // (MAX_MAPPING_BYTES // KiB))
    return (nr_slots(max_sectors_kb * KiB) + nr_slots(VIRTIO_BLK_HDR_BYTES)
            + nr_slots(VIRTIO_BLK_STATUS_BYTES) + nr_slots(VRING_DESC_BYTES * (segs + 2)))

