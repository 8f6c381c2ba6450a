"""The recordings of chapter 9b: the traces in ``data/realkernel/`` and what was noted of them.

Four traces recorded on real kernels (Linux 6.12.117 and 6.1.192 under QEMU with
``swiotlb=force``, a virtio-blk disk and a ``dd`` workload; ``data/realkernel/README.md``):
:data:`RECORDINGS` names them, :func:`load` reads one (once), :func:`boot_record` gives its
``boots.jsonl`` entry and :func:`kernel_hiwater` the kernel's ``io_tlb_used_hiwater``; the
workload's ``trace_marker`` lines split a trace into steps (:func:`steps_ms`).
"""
from __future__ import annotations

import bisect
import json
import re
from functools import lru_cache

from ..evidence import data_path
from .lifetime import tracepoint_only
from .read import Trace, read_trace
from .requests import group_requests

#: Where the recordings are (``data/realkernel/`` of this repository).
DATA_DIR = data_path("realkernel")

#: The shipped recordings: file, kernel, the model profile closest to it, and the disk's
#: ``max_sectors_kb`` during the workload (boots.jsonl; for 6.12-T3, ``data/realkernel/README.md``,
#: which says it was lowered to 256).
RECORDINGS = {
    "6.12-T1": dict(file="trace-force-2G.txt", kernel="Linux 6.12.117", profile="v6.11",
                    swiotlb="swiotlb=force", max_sectors_kb=1280),
    "6.12-T2": dict(file="trace-force-2G-kprobes.txt", kernel="Linux 6.12.117", profile="v6.11",
                    swiotlb="swiotlb=force", max_sectors_kb=1280),
    "6.12-T3": dict(file="trace-512-force-2G.txt", kernel="Linux 6.12.117", profile="v6.11",
                    swiotlb="swiotlb=512,force", max_sectors_kb=256),
    "6.1-T1": dict(file="trace-force-2G-linux6.1.txt", kernel="Linux 6.1.192", profile="v6.3",
                   swiotlb="swiotlb=force", max_sectors_kb=1280),
}
#: Boot 6.12-T3 is not in boots.jsonl; these are the values ``data/realkernel/README.md`` gives
#: for it (io_tlb_used_hiwater after the run, "swiotlb buffer is full" lines, bounced events).
T3_README = {"hiwater": 510, "full_lines": 10, "bounced": 7266}
#: ``data/realkernel/README.md``, finding 12 (a 1 MiB pool livelocks): the repeated line of
#: the livelocked 1 MiB-pool boots (6.12-T5 and 6.1-T5): slots in use and the size of the
#: mapping that did not fit.
KERNEL_LIVELOCK_LINES = {"6.12-T5": (433, 163840), "6.1-T5": (511, 4096)}


@lru_cache(maxsize=None)
def load(boot: str) -> Trace:
    """The trace of one shipped recording (``6.12-T1``, ``6.12-T2``, ``6.12-T3``, ``6.1-T1``)."""
    if boot not in RECORDINGS:
        raise ValueError(f"boot: one of {', '.join(RECORDINGS)}, got {boot!r}")
    return read_trace(DATA_DIR / RECORDINGS[boot]["file"])


@lru_cache(maxsize=None)
def tracepoint_view(boot: str) -> Trace:
    """The recording as if only ``swiotlb_bounced`` had been enabled (no kprobe data)."""
    return tracepoint_only(load(boot))


@lru_cache(maxsize=None)
def _boots() -> dict:
    out = {}
    for line in (DATA_DIR / "boots.jsonl").read_text().splitlines():
        if line.strip():
            b = json.loads(line)
            out[b["boot"]] = b
    return out


def boot_record(boot: str) -> dict | None:
    """The ``boots.jsonl`` entry of a boot, or None (6.12-T3 has none)."""
    return _boots().get(boot)


def kernel_hiwater(boot: str) -> int | None:
    """``io_tlb_used_hiwater`` after the workload (6.12 only; 6.1 has no such file)."""
    b = boot_record(boot)
    if b is None:
        return T3_README["hiwater"] if boot == "6.12-T3" else None
    return b["debugfs_swiotlb_after_workload"].get("io_tlb_used_hiwater")


def first_event(boot: str, event: str = "swiotlb_bounced") -> str:
    """The first line of the trace file with ``event``, verbatim (leading blanks trimmed)."""
    with open(DATA_DIR / RECORDINGS[boot]["file"], encoding="utf-8") as f:
        for line in f:
            if f" {event}: " in line:
                return line.strip()
    raise ValueError(f"{boot}: no {event} line")


def requests_of(boot: str, view: str = "full"):
    """``(requests, grouping)`` of a recording (virtio-blk requests, ``data/realkernel/README.md`` finding 13)."""
    tr = tracepoint_view(boot) if view == "tracepoint" else load(boot)
    return group_requests(tr.mappings)


def short_step(name: str) -> str:
    """``direct write bs=4k count=4`` -> ``W 4k``; ``parallel 4x direct read ...`` -> ``4xR 1M``."""
    bs = re.search(r"bs=(\w+)", name)
    bs = bs.group(1) if bs else ""
    rw = "W" if "write" in name else "R"
    if name.startswith("parallel"):
        return f"4x{rw} {bs}"
    if name.startswith("buffered"):
        return f"buf {rw}"
    if name.startswith("direct"):
        return f"{rw} {bs}"
    return name


def step_index(tr: Trace) -> list:
    """For each mapping, the index of the last step marker before it (-1 if none)."""
    lines = [m[0] for m in tr.markers]
    return [bisect.bisect_right(lines, mp.line) - 1 for mp in tr.mappings]


def steps_ms(tr: Trace):
    """``(start_ms, end_ms, short name)`` per workload step (all markers but the last),
    in ms from the first marker; and the time origin in seconds."""
    mk = tr.markers
    t0 = mk[0][1]
    return [((a[1] - t0) * 1e3, (b[1] - t0) * 1e3, short_step(a[2])) for a, b in zip(mk, mk[1:])], t0
