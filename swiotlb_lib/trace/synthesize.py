"""Synthetic traces: seeded ``/sys/kernel/tracing/trace`` text of virtio-blk requests.

:func:`synthesize_trace` writes the Linux 6.12 ``swiotlb_bounced`` format
(:class:`~swiotlb_lib.debug.TraceEvent`) for tests and ``benchmarks/replay.py``; the request
shape is that of ``data/realkernel/README.md``, finding 13.
"""
from __future__ import annotations

import contextlib
import os

import random
import tempfile
import time

from ..constants import U64, KiB
from ..debug import TraceEvent
from .requests import MAX_MAPPING_BYTES, VIRTIO_BLK_HDR_BYTES, VIRTIO_BLK_STATUS_BYTES, VRING_DESC_BYTES


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
    mask = U64

    def line(cpu, ts, addr, size):
        return TraceEvent(dev_name, mask, addr, size, True, timestamp=ts, cpu=cpu,
                          task=f"dd-{200 + cpu}").trace_line()

    while emitted < n_events:
        io = rng.choice(request_kib) * KiB
        for off in range(0, io, max_sectors_kb * KiB):
            nbytes = min(max_sectors_kb * KiB, io - off)
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



@contextlib.contextmanager
def temp_trace(n_events: int, seed: int = 1):
    """:func:`synthesize_trace`'s lines in a temporary file (the benchmarks' input), removed
    afterwards; yields ``(path, size in bytes, seconds taken to write it)``."""
    fd, path = tempfile.mkstemp(prefix="swiotlb-trace-", suffix=".txt")
    try:
        t0 = time.perf_counter()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for line in synthesize_trace(n_events, seed=seed):
                f.write(line + "\n")
        yield path, os.path.getsize(path), time.perf_counter() - t0
    finally:
        os.unlink(path)
