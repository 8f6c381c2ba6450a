"""Benchmark: how long ``--help`` takes, for the program and for each command.

Prints one JSON object: ``runs``, ``target_s`` (0.3, the issue's limit), ``median_s`` (a map
from ``"--help"`` and ``"<command> --help"`` to the median wall time in seconds of ``runs``
fresh ``python -m swiotlb_lib ... --help`` processes), ``max_median_s`` and ``ok`` (every
median under the target).  Wall time of a whole process, interpreter start included, since
that is what a user waits for; the commands must import what they need only when they run.

Usage: python benchmarks/cli_help.py [--runs N]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.3


def commands() -> list:
    sys.path.insert(0, str(ROOT))
    from swiotlb_lib.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")   # argparse keeps no public list
    return list(sub.choices)


def wall(args, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "swiotlb_lib", *args], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="processes per measurement (default 7)")
    a = ap.parse_args()
    med = {"--help": wall(["--help"], a.runs)}
    for cmd in commands():
        med[f"{cmd} --help"] = wall([cmd, "--help"], a.runs)
    worst = max(med.values())
    print(json.dumps({"runs": a.runs, "target_s": TARGET_S, "median_s": {k: round(v, 4) for k, v in med.items()},
                      "max_median_s": round(worst, 4), "ok": worst < TARGET_S}))


if __name__ == "__main__":
    main()
