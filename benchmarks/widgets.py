"""Benchmark: how long each kernel-side widget callback takes to redraw.

Every module in swiotlb_lib/widgets/ may define ``LIVE_CALLBACKS = {name: (callable,
kwargs)}``; this script calls each one five times (after one warm-up call) and prints the
median and worst time, then a final JSON line with the slowest callback.  The book's
budget is "well under 250 ms" per redraw.

Usage: .venv/bin/python benchmarks/widgets.py
"""
import importlib
import json
import pkgutil
import statistics
import time


import matplotlib  # noqa: E402

matplotlib.use("Agg")

import swiotlb_lib.widgets as pkg  # noqa: E402


def main() -> None:
    rows = []
    for mod in pkgutil.iter_modules(pkg.__path__):
        m = importlib.import_module(f"swiotlb_lib.widgets.{mod.name}")
        for name, (fn, kwargs) in getattr(m, "LIVE_CALLBACKS", {}).items():
            fn(**kwargs)
            times = []
            for _ in range(5):
                t = time.perf_counter()
                fn(**kwargs)
                times.append((time.perf_counter() - t) * 1000)
            rows.append((f"{mod.name}.{name}", statistics.median(times), max(times)))
    rows.sort(key=lambda r: -r[2])
    print(f"{'callback':<48} {'median ms':>10} {'worst ms':>10}")
    for name, med, worst in rows:
        print(f"{name:<48} {med:>10.1f} {worst:>10.1f}")
    slowest = rows[0] if rows else ("none", 0.0, 0.0)
    print(json.dumps({"callbacks": len(rows), "slowest": slowest[0],
                      "slowest_median_ms": round(slowest[1], 1), "slowest_worst_ms": round(slowest[2], 1)}))


if __name__ == "__main__":
    main()
