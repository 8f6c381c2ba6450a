"""Benchmark: the SWIOTLB concurrency simulation -- how fast it runs, and what it shows.

Prints (1) wall-clock and CPU timings of a widget-sized callback (threads and areas in
{1, 4, 16}, 1000 and 2000 map+unmap pairs, one fresh machine each) and (2) the throughput-vs-threads table
for one area and for eight areas (threads 1, 2, 4, 8, 16; 4 KiB BIDIRECTIONAL bounces,
``swiotlb=32768,<areas>,force``, v6.11 profile, seed 1), then one JSON line with the
numbers.  The simulated throughputs follow from swiotlb_lib.perf.concurrency.CostModel,
whose constants are assumptions, not measurements.

Usage: python benchmarks/concurrency.py [--ops N] [--seed S]
"""
import argparse
import json
import statistics
import sys
import time


from swiotlb_lib.perf.concurrency import simulate      # noqa: E402

THREADS = (1, 2, 4, 8, 16)
AREAS = (1, 8)


def time_callbacks(ops: int, seed: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of simulate() for a spread of widget settings."""
    simulate(1, 1, ops=50, seed=seed)                   # imports, first-use caches
    wall, cpu = [], []
    for threads in (1, 4, 16):
        for areas in (1, 4, 16):
            t0, c0 = time.perf_counter(), time.process_time()
            simulate(threads, areas, ops=ops, seed=seed)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return wall, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=2000, help="map+unmap pairs per run (default 2000)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)

    timing = {}
    for ops in (1000, 2000):
        wall, cpu = time_callbacks(ops, a.seed)
        timing[ops] = (statistics.median(wall), max(wall), statistics.median(cpu))
        print(f"widget callback, {ops} pairs, threads x areas in {{1,4,16}}^2: wall median "
              f"{timing[ops][0] * 1e3:.0f} ms, max {timing[ops][1] * 1e3:.0f} ms; "
              f"CPU median {timing[ops][2] * 1e3:.0f} ms")

    table = {}
    print()
    print(f"{'areas':>5} {'threads':>7} {'Mpairs/s':>9} {'vs 1 thr':>8} {'lock wait':>9} "
          f"{'map p50/p99 us':>15} {'unmap p50/p99 us':>17}")
    for areas in AREAS:
        rows = [simulate(t, areas, ops=a.ops, seed=a.seed) for t in THREADS]
        base = rows[0].throughput
        for r in rows:
            print(f"{areas:>5} {r.threads:>7} {r.throughput / 1e6:>9.3f} {r.throughput / base:>8.2f} "
                  f"{r.lock_wait_share:>9.1%} {r.map.p50 / 1e3:>7.2f}/{r.map.p99 / 1e3:<7.2f} "
                  f"{r.unmap.p50 / 1e3:>8.2f}/{r.unmap.p99 / 1e3:<8.2f}")
        table[str(areas)] = {str(r.threads): round(r.throughput / 1e6, 3) for r in rows}
    print()
    print(json.dumps({"callback_ms": {str(k): {"wall_median": round(v[0] * 1e3, 1),
                                               "wall_max": round(v[1] * 1e3, 1),
                                               "cpu_median": round(v[2] * 1e3, 1)}
                                       for k, v in timing.items()},
                      "throughput_mpairs_per_s": table}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
