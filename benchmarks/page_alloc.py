"""Benchmark: the buddy page allocator (swiotlb_lib/page_alloc.py) on 2 GiB and 1 TiB machines.

Prints, per machine: construction time and the peak Python memory it used (tracemalloc),
then the rate of order-0 alloc_pages (GFP_KERNEL), of freeing those pages in random
order (buddy merging), of order-10 alloc+free pairs, and the time of fragment(seed,
0.02) on the 2 GiB machine.  Last line: one JSON object with the same numbers.

Usage: python benchmarks/page_alloc.py [--n N] [--seed S]
"""
import argparse
import json
import random
import time
import tracemalloc


from swiotlb_lib.memory import layout_for                     # noqa: E402
from swiotlb_lib.page_alloc import GFP_KERNEL, PageAllocator   # noqa: E402


def bench(name: str, arch: str, ram: int, n: int, seed: int) -> dict:
    lay = layout_for(arch, ram)
    tracemalloc.start()
    t0 = time.perf_counter()
    a = PageAllocator(lay)
    build = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    t0 = time.perf_counter()
    pages = [a.alloc_pages(GFP_KERNEL, 0) for _ in range(n)]
    t_alloc = time.perf_counter() - t0
    assert all(p is not None for p in pages)
    random.Random(seed).shuffle(pages)
    t0 = time.perf_counter()
    for p in pages:
        a.free_pages(p, 0)
    t_free = time.perf_counter() - t0

    pairs = min(n, 20_000)
    t0 = time.perf_counter()
    for _ in range(pairs):
        a.free_pages(a.alloc_pages(GFP_KERNEL, 10), 10)
    t_pair = time.perf_counter() - t0

    out = {"machine": name, "build_ms": round(build * 1e3, 3), "build_peak_kib": round(peak / 1024, 1),
           "alloc0_per_s": round(n / t_alloc), "free0_per_s": round(n / t_free),
           "order10_pairs_per_s": round(pairs / t_pair)}
    if ram <= 1 << 32:
        t0 = time.perf_counter()
        k = a.fragment(seed, 0.02)
        out["fragment_s"] = round(time.perf_counter() - t0, 3)
        out["pinned"] = k
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="order-0 allocations per machine")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = [bench("x86_64 2 GiB", "x86_64", 2 << 30, args.n, args.seed),
            bench("x86_64 1 TiB", "x86_64", 1 << 40, args.n, args.seed)]
    print(f"{'machine':14s} {'build':>10s} {'peak':>10s} {'alloc0/s':>10s} {'free0/s':>10s} {'o10 pair/s':>11s}")
    for r in rows:
        print(f"{r['machine']:14s} {r['build_ms']:>8.2f}ms {r['build_peak_kib']:>7.1f}KiB {r['alloc0_per_s']:>10d} "
              f"{r['free0_per_s']:>10d} {r['order10_pairs_per_s']:>11d}")
        if "fragment_s" in r:
            print(f"{'':14s} fragment(seed, 0.02): {r['pinned']} pinned pages in {r['fragment_s']:.3f} s")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
