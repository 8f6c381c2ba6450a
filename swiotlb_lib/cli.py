"""Command line: ``python -m swiotlb_lib <command> ...`` (installed as ``swiotlb-sim`` too).

Commands:

* ``boot``   -- boot a model machine and print SWIOTLB's kernel log lines and debugfs values.
* ``oracle`` -- replay a golden-vector file and print the model's own results (JSON lines).
* ``scenario``, ``compare``, ``scenarios`` -- the book's seeded systems on kernel profiles.
* ``profiles`` -- list the kernel profiles.
* ``replay``, ``advise`` (:mod:`swiotlb_lib.trace_cli`) -- size SWIOTLB from a recorded trace.
* ``dma-map-benchmark`` (:mod:`swiotlb_lib.perf.cli`) -- the kernel's benchmark on the model.

Each command imports the parts of the model it needs when it runs.
"""
from __future__ import annotations

import argparse
import json
import sys

from . import versions


def _cmd_boot(a) -> int:
    from .boot import Machine
    m = Machine(ram=a.ram, cpus=a.cpus, arch=a.arch, mem_encrypt=a.mem_encrypt,
                cmdline=a.cmdline, kernel=a.kernel)
    print(m.report())
    for w in m.setup.warnings + m.layout.notes * bool(a.verbose):
        print(f"model: {w}", file=sys.stderr)
    return 0


def _cmd_oracle(a) -> int:
    from .oracle import replay
    src = sys.stdin if a.file == "-" else open(a.file, encoding="utf-8")
    try:
        out = sys.stdout
        for res in replay(src, a.kernel):
            out.write(json.dumps(res, separators=(",", ":")) + "\n")
    finally:
        if src is not sys.stdin:
            src.close()
    return 0


def _cmd_scenario(a) -> int:
    from .workloads import run_scenario
    r = run_scenario(a.name, kernel=a.kernel, cmdline=a.cmdline, seed=a.seed)
    if a.json:
        print(r.to_json())
    else:
        print("\n".join(r.summary_lines()))
        print("kernel log:")
        for line in r.log:
            print("  " + line)
    return 0


def compare_table(results) -> str:
    """The scenario summaries side by side, one column per kernel profile."""
    rows = [("cmdline", lambda r: r.cmdline or "(none)"), ("attempted", lambda r: r.attempted),
            ("mapped", lambda r: r.mapped), ("bounced", lambda r: r.bounced), ("failed", lambda r: r.failed)]
    rows += [(f"  {c}", (lambda c: lambda r: r.failures[c])(c)) for c in ("too_big", "pool_full",
                                                                          "out_of_reach", "no_memory")]
    rows += [("peak used slots", lambda r: r.peak_used_slots),
             ("peak bounce MiB", lambda r: f"{r.peak_bounce_bytes / (1 << 20):.2f}"),
             ("end bounce MiB", lambda r: f"{r.end_bounce_bytes / (1 << 20):.2f}"),
             ("transient pools", lambda r: r.transient_pools), ("pools added", lambda r: r.pools_added),
             ("OOM events", lambda r: r.oom_events)]
    keys = []
    for r in results:
        for k in r.extra:
            if k not in keys:
                keys.append(k)
    rows += [(k, (lambda k: lambda r: r.extra.get(k, "-"))(k)) for k in keys]
    ckeys = []
    for r in results:
        for k, v in r.costs.items():
            if k not in ckeys and not isinstance(v, dict):
                ckeys.append(k)
    rows += [(f"cost: {k}", (lambda k: lambda r: r.costs.get(k, 0))(k)) for k in ckeys]
    table = [["", *[r.kernel for r in results]]] + [[name, *[str(f(r)) for r in results]] for name, f in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in table)


def _cmd_compare(a) -> int:
    from .workloads import run_scenario
    kernels = a.kernel or ["v6.3rc", "rfc-v1", "v6.6", "v6.6-dynamic", "v6.11-dynamic"]
    results = [run_scenario(a.name, kernel=k, cmdline=a.cmdline, seed=a.seed) for k in kernels]
    if a.json:
        print(json.dumps([r.to_dict() for r in results]))
    else:
        print(f"scenario {a.name}, seed {a.seed}")
        print(compare_table(results))
    return 0


def _cmd_scenarios(a) -> int:
    from .workloads import SCENARIOS
    for name, (_, desc) in SCENARIOS.items():
        print(f"{name:<14} {desc}")
    return 0


def _cmd_profiles(a) -> int:
    for name, p in versions.PROFILES.items():
        mark = " (default)" if name == versions.DEFAULT_PROFILE else ""
        print(f"{name:<14} {p.description}{mark}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m swiotlb_lib",
                                description="A kernel-exact model of the Linux software IO TLB (SWIOTLB).")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("boot", help="boot a machine and print SWIOTLB's log lines and debugfs values")
    b.add_argument("--ram", default="2G", help="RAM size, e.g. 512M, 2G, 1T (default 2G)")
    b.add_argument("--cpus", type=int, default=2, help="possible CPUs, 1..8192 (default 2)")
    b.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64-rpi4", "arm64-board"])
    b.add_argument("--mem-encrypt", action="store_true", help="confidential guest (SEV/TDX)")
    b.add_argument("--cmdline", default="", help='kernel command line, e.g. "swiotlb=1000,2,force"')
    b.add_argument("--kernel", default=None, help=f"kernel profile (default {versions.DEFAULT_PROFILE})")
    b.add_argument("-v", "--verbose", action="store_true", help="also print model notes on stderr")
    b.set_defaults(func=_cmd_boot)

    o = sub.add_parser("oracle", help="replay a golden-vector file; print the model's results")
    o.add_argument("file", help="golden-vector file in the format of data/oracle/README.md, or - for stdin")
    o.add_argument("--kernel", default=None, help="profile (default: the file's meta version)")
    o.set_defaults(func=_cmd_oracle)

    sc = sub.add_parser("scenario", help="run one scenario on one kernel profile")
    sc.add_argument("name", help="scenario name (see 'scenarios')")
    sc.add_argument("--kernel", default=None, help=f"profile (default {versions.DEFAULT_PROFILE})")
    sc.add_argument("--cmdline", default=None, help="kernel command line (default: the scenario's)")
    sc.add_argument("--seed", type=int, default=1)
    sc.add_argument("--json", action="store_true", help="print one JSON object")
    sc.set_defaults(func=_cmd_scenario)

    cp = sub.add_parser("compare", help="run one scenario on several profiles; print a table")
    cp.add_argument("name")
    cp.add_argument("--kernel", action="append", help="profile; repeat for each column "
                    "(default: v6.3rc rfc-v1 v6.6 v6.6-dynamic v6.11-dynamic)")
    cp.add_argument("--cmdline", default=None)
    cp.add_argument("--seed", type=int, default=1)
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(func=_cmd_compare)

    ss = sub.add_parser("scenarios", help="list the scenarios")
    ss.set_defaults(func=_cmd_scenarios)

    pr = sub.add_parser("profiles", help="list the kernel profiles")
    pr.set_defaults(func=_cmd_profiles)

    from .perf.cli import register as register_perf
    from .trace_cli import register as register_trace
    register_perf(sub)                 # dma-map-benchmark
    register_trace(sub)                # replay, advise
    return p


def run_command(a) -> int:
    """Run a parsed sub-command: a bad argument prints ``error: ...`` and returns 2."""
    try:
        return a.func(a)
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return 0
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    return run_command(build_parser().parse_args(argv))
