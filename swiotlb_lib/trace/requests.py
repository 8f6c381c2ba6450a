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

from ..constants import DMA_ATTR_NO_WARN, IO_TLB_SEGSIZE, IO_TLB_SIZE, KiB
from ..pool import nr_slots
from .read import TLB_FAILED

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


def _nvme_requests(mappings) -> list:
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
    kprobe = any(mp.dir is not None for mp in mappings)
    order = sorted(mp.unmap_line for mp in mappings if mp.unmap_line is not None)
    rank = {line: k for k, line in enumerate(order)}
    reqs = []
    open_: dict[tuple, Request] = {}             # (dev, cpu) -> the request its last map began
    for i, mp in enumerate(mappings):
        key = (mp.dev_name, mp.cpu)
        cur = open_.pop(key, None)
        sg = not kprobe or bool(mp.attrs & DMA_ATTR_NO_WARN)
        if cur is not None and sg:
            last = mappings[cur.members[-1]]
            a, b = last.unmap_line, mp.unmap_line
            if (last.dir == mp.dir and cur.data_bytes + mp.size <= NVME_MAX_REQUEST_BYTES
                    and len(cur.members) < NVME_MAX_SEGMENTS
                    and (a is None or b is None or rank[b] == rank[a] + 1)):
                cur.members.append(i)
                cur.data_bytes += mp.size
                if mp.tlb == TLB_FAILED:
                    cur.aborted = True
                else:
                    open_[key] = cur
                continue
        req = Request([i], mp.dev_name, mp.cpu, "nvme", aborted=mp.tlb == TLB_FAILED,
                      data_bytes=mp.size)
        reqs.append(req)
        if sg and not req.aborted:
            open_[key] = req
    return reqs


def shows_nvme(mappings) -> bool:
    """Whether a kprobe trace shows NVMe's ``dma_map_sgtable(..., DMA_ATTR_NO_WARN)``: at
    least half the mappings carry ``DMA_ATTR_NO_WARN`` and none is smaller than a sector
    (NVMe maps data only; ``data/realkernel-nvme/README.md``: 6322 of 6413 with the
    attribute, none under 4096 bytes).  A tracepoint-only trace records no attributes: it
    cannot show NVMe (give ``requests="nvme"`` or the ``nvme`` device preset)."""
    if not mappings or all(mp.dir is None for mp in mappings):
        return False
    nowarn = sum(bool(mp.attrs & DMA_ATTR_NO_WARN) for mp in mappings)
    return nowarn * 2 >= len(mappings) and min(mp.size for mp in mappings) >= 512


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


def group_requests(mappings, mode: str = "auto", driver: str | None = None) -> tuple[list, str]:
    """Group mappings into completion units: ``virtio-blk`` or ``nvme`` requests, ``none``
    (every mapping alone), or ``auto``: virtio-blk when at least half the mappings fall into
    well-formed virtio-blk requests, else NVMe when ``driver`` is ``"nvme"`` (a device
    preset) or the trace shows it (:func:`shows_nvme`), else none.  Returns ``(requests,
    mode_used)``; requests are ordered by their first mapping."""
    if mode not in GROUPINGS:
        raise ValueError(f"requests: must be one of {', '.join(GROUPINGS)}, got {mode!r}")
    if mode in ("auto", "virtio-blk"):
        reqs = _virtio_blk_requests(mappings)
        covered = sum(len(r.members) for r in reqs if r.kind == "virtio-blk" and not r.aborted)
        if mode == "virtio-blk" or (mappings and covered * 2 >= len(mappings)):
            return reqs, "virtio-blk"
    if mode == "nvme" or (mode == "auto" and (driver == "nvme" or shows_nvme(mappings))):
        return _nvme_requests(mappings), "nvme"
    return [Request([i], mp.dev_name, mp.cpu, "mapping", data_bytes=mp.size)
            for i, mp in enumerate(mappings)], "none"


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

