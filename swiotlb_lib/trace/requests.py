"""Request grouping: which traced mappings complete together.

A virtio-blk request maps a 16-byte header, its data segments, a one-byte status and, with
indirect descriptors, a table of 16 bytes per descriptor, in that order under the queue
lock (``virtio_queue_rq``; ``data/realkernel/README.md``, finding 13, the mappings of one
virtio-blk request).  :func:`group_requests` finds those requests in a trace;
:func:`request_slots` and :func:`min_request_slots` count the slots one holds at once.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..constants import IO_TLB_SEGSIZE, IO_TLB_SIZE, KiB
from ..pool import nr_slots

#: virtio-blk request layout (include/uapi/linux/virtio_blk.h, virtio_ring.h): the
#: ``struct virtio_blk_outhdr`` header, the one-byte status, 16-byte ``struct vring_desc``.
VIRTIO_BLK_HDR_BYTES = 16
VIRTIO_BLK_STATUS_BYTES = 1
VRING_DESC_BYTES = 16
#: Largest bounce buffer: 128 slots of 2 KiB (``IO_TLB_SEGSIZE`` x ``IO_TLB_SIZE``,
#: ``include/linux/swiotlb.h@1aaa736815eb``; ``kernel/dma/swiotlb.c@af133562d5af:
#: swiotlb_max_mapping_size()``).
MAX_MAPPING_BYTES = IO_TLB_SIZE * IO_TLB_SEGSIZE


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


def min_request_slots(max_sectors_kb: int) -> int:
    """Slots one virtio-blk request of ``max_sectors_kb`` KiB holds at once at least: its data
    (2 KiB slots), the header, the status and an indirect table for the fewest segments
    (256 KiB each, ``max_segment_size``)."""
    if type(max_sectors_kb) is not int or not 4 <= max_sectors_kb <= 1 << 22:
        raise ValueError(f"max_sectors_kb: must be an integer in 4..{1 << 22}, got {max_sectors_kb!r}")
    segs = -(-max_sectors_kb // (MAX_MAPPING_BYTES // KiB))
    return (nr_slots(max_sectors_kb * KiB) + nr_slots(VIRTIO_BLK_HDR_BYTES)
            + nr_slots(VIRTIO_BLK_STATUS_BYTES) + nr_slots(VRING_DESC_BYTES * (segs + 2)))

