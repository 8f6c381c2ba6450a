"""Benchmark: 4 KiB map+unmap pairs through the model, and the cost of a 1 TiB guest.

Prints a table and, last, one JSON line with:
  pairs_per_s_64MiB, pairs_per_s_1GiB, ratio_1GiB_vs_64MiB (per-pair time on 1 GiB / on
  64 MiB), tib_guest_build_s, tib_guest_rss_mb.

Rates are per CPU-second of this process (``time.process_time``), so that other load
on a shared machine does not count against the model; wall-clock rates are printed too.

Method: a forced-bounce machine (``swiotlb=<nslabs>,force``) with one virtio device; the
pool is filled to about half its slots with live 4 KiB mappings at random CPU buffers,
then the timed loop maps one 4 KiB buffer and unmaps a randomly chosen live one, so the
allocator runs in steady state near 50 % use.  Each pair goes through the whole
dma-direct path: dma_map_single -> swiotlb_map -> swiotlb_tbl_map_single (search, bounce
copy of 4 KiB) and dma_unmap_single (copy back for BIDIRECTIONAL, release).  Seeded.

The 1 TiB guest is built in a fresh subprocess so that its peak RSS is its own:
``Machine(ram="1T", cpus=64, mem_encrypt=True)`` gets the 6 % rule clamped to a 1 GiB pool.

Usage: python benchmarks/map_unmap.py [--pairs N] [--seed S]
"""
import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swiotlb_lib.boot import Machine                    # noqa: E402
from swiotlb_lib.constants import DMA_BIDIRECTIONAL     # noqa: E402

PAGE = 4096


def steady_state(pool_mib: int, pairs: int, seed: int) -> float:
    nslabs = pool_mib << 9
    m = Machine(ram="4G" if pool_mib < 1024 else "8G", cpus=1, cmdline=f"swiotlb={nslabs},force")
    dev = m.add_device("virtio-blk")
    rng = random.Random(seed)
    bufs = 1 << 15                                      # CPU buffers to bounce from
    base = 0x10000000
    live = []
    target = nslabs // 2 // 2                           # 4 KiB = 2 slots; half the pool
    mp, ump = m.dma.map_single, m.dma.unmap_single
    for _ in range(target):
        live.append(mp(dev, base + rng.randrange(bufs) * PAGE, PAGE, DMA_BIDIRECTIONAL))
    # draw the random numbers before the clock starts: time the model, not the RNG
    addrs = [base + rng.randrange(bufs) * PAGE for _ in range(pairs)]
    picks = [rng.random() for _ in range(pairs)]
    n = len(live) + 1
    t0 = time.perf_counter()
    c0 = time.process_time()
    for a, r in zip(addrs, picks):
        live.append(mp(dev, a, PAGE, DMA_BIDIRECTIONAL))
        k = int(r * n)
        live[k], live[-1] = live[-1], live[k]
        ump(dev, live.pop(), PAGE, DMA_BIDIRECTIONAL)
    dt = time.perf_counter() - t0
    ct = time.process_time() - c0
    used = m.swiotlb.total_used / m.swiotlb.nslabs
    print(f"{pool_mib:>6} MiB pool: {pairs} pairs: {pairs / ct:,.0f} pairs per CPU-second "
          f"({ct / pairs * 1e6:.1f} us CPU/pair; wall {pairs / dt:,.0f} pairs/s), "
          f"{used:.0%} of slots in use")
    return pairs / ct, pairs / dt


def tib_guest() -> dict:
    code = ("import time,resource,json,sys;sys.path.insert(0,%r);t=time.perf_counter();"
            "from swiotlb_lib.boot import Machine;m=Machine(ram='1T',cpus=64,mem_encrypt=True);"
            "dt=time.perf_counter()-t;print(json.dumps({'s':dt,'rss':resource.getrusage("
            "resource.RUSAGE_SELF).ru_maxrss/1024,'nslabs':m.swiotlb.nslabs,'lines':m.swiotlb_lines()}))"
            % str(Path(__file__).resolve().parents[1]))
    base = json.loads(subprocess.run([sys.executable, "-c", "import resource,json,sys;sys.path.insert(0,%r);"
                                      "import swiotlb_lib.boot;print(json.dumps(resource.getrusage("
                                      "resource.RUSAGE_SELF).ru_maxrss/1024))" % str(Path(__file__).resolve().parents[1])],
                                     capture_output=True, text=True, check=True).stdout)
    r = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    print(f"1 TiB confidential guest: built in {r['s']:.3f} s, peak RSS {r['rss']:.0f} MB "
          f"(interpreter + imports alone: {base:.0f} MB), pool {r['nslabs']} slots")
    for line in r["lines"]:
        print("   ", line)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    small, small_wall = steady_state(64, a.pairs, a.seed)
    big, big_wall = steady_state(1024, a.pairs, a.seed)
    g = tib_guest()
    print(json.dumps({"pairs_per_s_64MiB": round(small), "pairs_per_s_1GiB": round(big),
                      "ratio_1GiB_vs_64MiB": round(small / big, 3),
                      "wall_pairs_per_s_64MiB": round(small_wall), "wall_pairs_per_s_1GiB": round(big_wall),
                      "tib_guest_build_s": round(g["s"], 3), "tib_guest_rss_mb": round(g["rss"], 1)}))


if __name__ == "__main__":
    main()
