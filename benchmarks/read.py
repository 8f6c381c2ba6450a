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
``peak_rss_mb``.  ``--profile`` reads the file a second time under ``cProfile`` and prints where
that read's time went: file I/O (``readinto``), the compiled scan
(:func:`~swiotlb_lib.trace.scan.scan`), the lines the Python parser reads (``_Reader.line``),
the final columns (``_Reader.finish``), the wait for the thread that scans a buffer's second
half (``second_half_wait``) and the rest, the per-chunk Python work (names, runs of rows,
per-CPU state); the JSON line then also has ``profile`` (those seconds), and ``peak_rss_mb`` counts both
readings held at once.

Usage: python benchmarks/read.py [--events N] [--seed S] [--python] [--profile]
"""
import cProfile
import pstats
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


def read_profile(path) -> dict:
    """Seconds of one :func:`read_trace` of ``path`` by phase (see the module's docstring).
    cProfile sees only the calling thread: a buffer the scanner reads in two halves at once
    (:data:`~swiotlb_lib.trace.scan.SPLIT_MIN_BYTES` or more) counts the first half's scan
    under ``scan``, and the wait for the second half's thread, what the second half took
    beyond the first, under ``second_half_wait`` (``Thread.join``)."""
    prof = cProfile.Profile()
    prof.runcall(read_trace, path)
    st = pstats.Stats(prof).stats                        # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = sum(v[2] for v in st.values())

    def phase(file_end: str, name: str, cumulative: bool) -> float:
        return sum(v[3 if cumulative else 2] for (f, _, n), v in st.items() if f.endswith(file_end) and n == name)

    out = {"io": phase("~", "<method 'readinto' of '_io.BufferedReader' objects>", False),
           "scan": phase("trace/scan.py", "scan", False),
           "parser_lines": phase("trace/read.py", "line", True),
           "finish": phase("trace/read.py", "finish", True),
           "second_half_wait": phase("threading.py", "join", True)}
    out["per_chunk_python"] = total - sum(out.values())
    return {k: round(v, 3) for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--python", action="store_true", help="read with the Python line parser alone")
    ap.add_argument("--profile", action="store_true", help="then read again under cProfile: time by phase")
    a = ap.parse_args(argv)
    if a.events < 1:
        print("error: --events: must be >= 1", file=sys.stderr)
        return 2
    with temp_trace(a.events, seed=a.seed) as (path, size, t_syn):
        t0 = time.perf_counter()
        tr = read_trace(path, scanner=False if a.python else None)
        read_s = time.perf_counter() - t0
        prof = read_profile(path) if a.profile else None
    t1 = time.perf_counter()
    reqs, mode = group_requests(tr.mappings)
    t2 = time.perf_counter()
    cols = columns(tr, reqs, False)
    t3 = time.perf_counter()
    group_s, columns_s = t2 - t1, t3 - t2
    print(f"synthesised {a.events:,} events ({size / 1e6:.0f} MB, seed {a.seed}) in {t_syn:.1f} s (not timed)")
    print(f"read     : {read_s:7.2f} s  ({len(tr.mappings):,} mappings, {a.events / read_s:,.0f} lines/s)")
    print(f"group    : {group_s:7.2f} s  ({len(reqs):,} {mode} requests)")
    print(f"columns  : {columns_s:7.2f} s  ({len(cols.time):,} mappings)")
    print(f"peak RSS : {peak_rss_mb():7.0f} MB")
    out = {"events": a.events, "read_s": round(read_s, 2), "group_s": round(group_s, 2),
           "columns_s": round(columns_s, 2), "peak_rss_mb": round(peak_rss_mb())}
    if prof is not None:
        print("read, by phase (cProfile): " + ", ".join(f"{k} {v:.2f} s" for k, v in prof.items()))
        out["profile"] = prof
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
