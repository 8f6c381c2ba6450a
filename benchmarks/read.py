"""Benchmark: reading a seeded N-event SWIOTLB trace into columns, grouping its requests and
building the compiled engine's columns (default 10 000 000 events).

Method: :func:`swiotlb_lib.trace.synthesize.temp_trace` writes a seeded trace in the text
format of Linux 6.12's ``/sys/kernel/tracing/trace`` (``swiotlb_bounced`` events of virtio-blk
requests) to a temporary file; that is not timed.  Timed, one after the other:
:func:`~swiotlb_lib.trace.read.read_trace` on the file (``read_s``; the compiled scanner, its
Numba functions loaded from their on-disk cache), :func:`~swiotlb_lib.trace.requests.group_requests`
(``group_s``) and :func:`~swiotlb_lib.trace.columns.columns` (``columns_s``, with the grouping;
what :func:`~swiotlb_lib.trace.advise.advise` builds once before it forks its workers).
``peak_rss_mb`` is the largest resident set of this process (``resource.getrusage``, in MB);
no worker processes run.

Prints the phases, then one JSON line with ``events``, ``read_s``, ``group_s``, ``columns_s``,
``peak_rss_mb``.

Usage: python benchmarks/read.py [--events N] [--seed S] [--python]
"""
import argparse
import json
import resource
import sys
import time

from swiotlb_lib.trace.columns import columns                # noqa: E402
from swiotlb_lib.trace.read import read_trace                # noqa: E402
from swiotlb_lib.trace.requests import group_requests         # noqa: E402
from swiotlb_lib.trace.synthesize import temp_trace           # noqa: E402


def peak_rss_mb() -> float:
    """Max RSS of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--python", action="store_true", help="read with the Python line parser alone")
    a = ap.parse_args(argv)
    if a.events < 1:
        print("error: --events: must be >= 1", file=sys.stderr)
        return 2
    with temp_trace(a.events, seed=a.seed) as (path, size, t_syn):
        t0 = time.perf_counter()
        tr = read_trace(path, scanner=False if a.python else None)
        t1 = time.perf_counter()
    reqs, mode = group_requests(tr.mappings)
    t2 = time.perf_counter()
    cols = columns(tr, reqs, False)
    t3 = time.perf_counter()
    read_s, group_s, columns_s = t1 - t0, t2 - t1, t3 - t2
    print(f"synthesised {a.events:,} events ({size / 1e6:.0f} MB, seed {a.seed}) in {t_syn:.1f} s (not timed)")
    print(f"read     : {read_s:7.2f} s  ({len(tr.mappings):,} mappings, {a.events / read_s:,.0f} lines/s)")
    print(f"group    : {group_s:7.2f} s  ({len(reqs):,} {mode} requests)")
    print(f"columns  : {columns_s:7.2f} s  ({len(cols.time):,} mappings)")
    print(f"peak RSS : {peak_rss_mb():7.0f} MB")
    print(json.dumps({"events": a.events, "read_s": round(read_s, 2), "group_s": round(group_s, 2),
                      "columns_s": round(columns_s, 2), "peak_rss_mb": round(peak_rss_mb())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
