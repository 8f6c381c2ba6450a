"""Benchmark: ``advise`` over all seven profiles on a seeded N-event SWIOTLB trace (default 10 000 000).

Method: :func:`swiotlb_lib.trace.synthesize_trace` writes a seeded trace in the text format
of Linux 6.12's ``/sys/kernel/tracing/trace`` (``swiotlb_bounced`` events of virtio-blk
requests, see ``benchmarks/replay.py``) to a temporary file, in a child process of its own;
that is neither timed nor counted in the memory.  The timed
part is what ``python -m swiotlb_lib advise FILE`` does: read and parse the file
(``read_s``), then :func:`swiotlb_lib.trace.advise` over every profile with the default
lifetime model (``advise_s`` is the whole run, reading included).  ``replays`` is the number
of replays the advisor ran; ``replay_events_per_s`` the trace events those replays went
through (a replay stopped early counts the events up to its stop) per second of the
advisor's wall-clock time after reading; ``peak_rss_mb`` the peak of the resident sets of this
process and all its worker processes added together (MB), the memory the whole run holds: a
thread adds up the proportional set sizes of the process tree every 50 ms (``Pss`` in
``/proc/PID/smaps_rollup``: each page counted once, split among the processes that share it,
such as the trace's columns and the libraries the forked workers inherit), and the result is
never below the largest single process's peak RSS (this process's from ``resource.getrusage``,
a worker's as sampled).  The sum of the processes' RSS, which counts a shared page once per process, is
printed beside it.

Prints the phases, then one JSON line with ``events``, ``read_s``, ``advise_s``, ``replays``,
``replay_events_per_s``, ``peak_rss_mb``.

Usage: python benchmarks/advise.py [--events N] [--seed S] [--target R] [--workers W]
"""
import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import threading
import time

from multiprocessing import get_context

import numpy as np

from swiotlb_lib.trace.advise import advise                # noqa: E402
from swiotlb_lib.trace.read import read_trace              # noqa: E402
from swiotlb_lib.trace.synthesize import synthesize_trace   # noqa: E402


def self_peak_mb() -> float:
    """Max RSS of this process so far (Linux reports KiB).  The trace is synthesized in a child
    process (:func:`synthesize_in_child`), so this is the reading and the advice only."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


@contextlib.contextmanager
def synthesize_in_child(n: int, seed: int):
    """The synthesized trace in a temporary file, written by a child process (its memory is not
    the advice's) and removed when the caller is done; yields ``(path, bytes, seconds)``."""
    fd, path = tempfile.mkstemp(prefix="swiotlb-trace-", suffix=".txt")
    os.close(fd)
    child = get_context("fork").Process(target=write_trace, args=(path, n, seed))
    try:
        t0 = time.perf_counter()
        child.start()
        child.join()
        if child.exitcode != 0:
            raise OSError(f"the synthesizer process failed (exit code {child.exitcode})")
        yield path, os.path.getsize(path), time.perf_counter() - t0
    finally:
        if child.is_alive():                            # interrupted while it wrote
            child.terminate()
            child.join()
        os.unlink(path)


def write_trace(path: str, n: int, seed: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for line in synthesize_trace(n, seed=seed):
            f.write(line + "\n")


def tree_kib(pid: int) -> tuple[int, int, int]:
    """``Pss`` and ``Rss`` of ``pid`` and of all its descendants now, each added up, and the
    largest single ``Rss`` (KiB, from ``/proc/PID/smaps_rollup``; a process that ends while it
    is read counts 0)."""
    pss = rss = top = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        one = int(line.split()[1])
                        rss += one
                        top = max(top, one)
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return pss, rss, top


class TreeRss:
    """The peaks of :func:`tree_kib` for this process, sampled every ``period`` seconds by a
    thread from ``start()`` to ``stop()``."""

    def __init__(self, period: float = 0.05) -> None:
        self.period, self.peak_kib, self.peak_rss_kib, self.top_kib = period, 0, 0, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

        self.error: BaseException | None = None

    def _run(self) -> None:
        pid = os.getpid()
        try:
            while not self._done.is_set():
                pss, rss, top = tree_kib(pid)
                self.peak_kib, self.peak_rss_kib = max(self.peak_kib, pss), max(self.peak_rss_kib, rss)
                self.top_kib = max(self.top_kib, top)
                self._done.wait(self.period)
        except BaseException as e:          # re-raised by stop(): a dead sampler must not pass
            self.error = e                  # for a low peak

    def start(self) -> "TreeRss":
        """Start sampling; OSError if this kernel cannot list a process's children or its
        PSS (``/proc/PID/task/PID/children`` needs ``CONFIG_PROC_CHILDREN``)."""
        pid = os.getpid()
        for path in (f"/proc/{pid}/task/{pid}/children", f"/proc/{pid}/smaps_rollup"):
            with open(path):
                pass
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop sampling; the peak PSS in MB, at least the largest single process's RSS."""
        self._done.set()
        self._thread.join()
        if self.error is not None:
            raise self.error
        return max(self.peak_kib * 1024 / 1e6, self.largest_mb())

    def largest_mb(self) -> float:
        """The largest single process's peak RSS: this one's (``getrusage``) or a worker's as
        sampled."""
        return max(self_peak_mb(), self.top_kib * 1024 / 1e6)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--target", type=float, default=None, help="--target-failure-rate of advise")
    ap.add_argument("--workers", type=int, default=None, help="worker processes (default: advise's)")
    a = ap.parse_args(argv)
    if a.events < 1:
        print("error: --events: must be >= 1", file=sys.stderr)
        return 2
    with synthesize_in_child(a.events, a.seed) as (path, size, t_syn):
        size_mb = size / 1e6
        try:
            rss = TreeRss().start()
        except OSError as e:
            print(f"error: cannot measure the memory of this process and its workers: {e}", file=sys.stderr)
            return 2
        t1 = time.perf_counter()
        tr = read_trace(path)
        t2 = time.perf_counter()
        out = advise(tr, target_failure_rate=a.target, workers=a.workers)
        t3 = time.perf_counter()
        peak = rss.stop()
    read_s, advise_s = t2 - t1, t3 - t1
    times = np.fromiter((mp.time for mp in tr.mappings), dtype=np.float64, count=len(tr.mappings))
    n = len(tr.mappings)
    replays = sum(x.replays for x in out)
    replayed = sum(n if t["complete"] else int(np.searchsorted(times, t["stopped_at"], "right"))
                   for x in out for t in x.tried)
    rate = replayed / (t3 - t2) if t3 > t2 else 0.0
    print(f"synthesised {a.events:,} events ({size_mb:.0f} MB, seed {a.seed}) in {t_syn:.1f} s (not timed)")
    print(f"read + parse : {read_s:7.1f} s  ({a.events / read_s:,.0f} lines/s)")
    print(f"advise       : {advise_s:7.1f} s  reading included; {replays} replays "
          f"({sum(not t['complete'] for x in out for t in x.tried)} stopped early), "
          f"{rate:,.0f} replayed events/s, {os.cpu_count()} CPUs")
    for x in out:
        print(f"  {x.profile:14} {x.recommended_cmdline or 'none found':24} {x.replays} replays")
    print(f"peak memory  : {peak:7.0f} MB (this process and its workers together, PSS; "
          f"their RSS added up {rss.peak_rss_kib * 1024 / 1e6:.0f} MB, "
          f"the largest one alone {rss.largest_mb():.0f} MB)")
    print(json.dumps({"events": a.events, "read_s": round(read_s, 2), "advise_s": round(advise_s, 2),
                      "replays": replays, "replay_events_per_s": round(rate),
                      "peak_rss_mb": round(peak)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
