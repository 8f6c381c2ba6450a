"""The model's commands: ``boot``, ``oracle``, ``scenario``, ``compare``, ``scenarios``,
``experiment``, ``profiles``.  :func:`register` adds them to the parser of :mod:`swiotlb_lib.cli`."""
from __future__ import annotations

import json
import sys

from .. import versions
from .progress import progress_for


def _cmd_boot(a) -> int:
    from ..boot import Machine
    m = Machine(ram=a.ram, cpus=a.cpus, arch=a.arch, mem_encrypt=a.mem_encrypt,
                cmdline=a.cmdline, kernel=a.kernel)
    report = m.report()
    if report:
        print(report)
    why = m.no_pool_reason()
    if why:
        print(why)
    for w in m.setup.warnings + m.layout.notes * bool(a.verbose):
        print(f"model: {w}", file=sys.stderr)
    return 0


def _cmd_oracle(a) -> int:
    from ..oracle import replay
    from ..trace.read import open_text
    src, _ = open_text(a.file, "file", "golden vectors: one JSON object per line (data/oracle/README.md)")
    with src:
        out = sys.stdout
        for res in replay(src, a.kernel):
            out.write(json.dumps(res, separators=(",", ":")) + "\n")
    return 0


def _cmd_scenario(a) -> int:
    from ..scenarios.systems import run_scenario
    if a.name == "rfc-v1-bugs":                 # swiotlb_lib.scenarios.rfc_bugs
        from ..scenarios.rfc_bugs import lines, rfc_v1_bugs
        r = rfc_v1_bugs(kernel=a.kernel or "rfc-v1-posted", seed=a.seed, mem_encrypt=a.mem_encrypt,
                        cmdline=a.cmdline)
        print(json.dumps(r) if a.json else "\n".join(lines(r)))
        return 0
    if a.mem_encrypt:
        raise ValueError(f"--mem-encrypt: only scenario rfc-v1-bugs takes it (scenario {a.name!r} "
                         "chooses its own machine)")
    bar = progress_for(a, f"scenario {a.name}")
    try:
        r = run_scenario(a.name, kernel=a.kernel, cmdline=a.cmdline, seed=a.seed, progress=bar)
    finally:
        if bar:
            bar.finish()
    if a.json:
        print(r.to_json())
    else:
        print("\n".join(r.summary_lines()))
        print("kernel log:")
        for line in r.log:
            print("  " + line)
    return 0


def _cmd_compare(a) -> int:
    from ..scenarios.systems import run_scenario
    kernels = a.kernel or ["v6.3rc", "rfc-v1", "v6.6", "v6.6-dynamic", "v6.11-dynamic"]
    bar = progress_for(a, f"compare {a.name} on {len(kernels)} profiles")
    results = []
    try:
        for k in kernels:
            # every profile runs the same workload: its units (requests, frames) times the
            # number of profiles is the total
            inner = None if bar is None else (
                lambda done, total, n=len(results): bar(n * total + done, len(kernels) * total))
            results.append(run_scenario(a.name, kernel=k, cmdline=a.cmdline, seed=a.seed, progress=inner))
    finally:
        if bar:
            bar.finish()
    if a.json:
        print(json.dumps([r.to_dict() for r in results]))
    else:
        print(f"scenario {a.name}, seed {a.seed}")
        from ..report import compare_table
        print(compare_table(results))
    return 0


def _cmd_scenarios(a) -> int:
    from ..scenarios.systems import SCENARIOS
    for name, (_, desc) in SCENARIOS.items():
        print(f"{name:<14} {desc}")
    return 0


def _cmd_experiment(a) -> int:
    from ..scenarios import experiments, get_experiment
    if a.list:
        for name, e in experiments().items():
            print(f"{name:<24} {e.chapter:<10} {e.summary}")
        return 0
    if not a.name:
        raise ValueError("experiment: give a NAME, or --list to see them")
    r = get_experiment(a.name).run(seed=a.seed, kernels=tuple(a.kernel or ()))
    print(r.to_json() if a.json else str(r))
    return 0


def _cmd_profiles(a) -> int:
    for name, p in versions.PROFILES.items():
        mark = " (default)" if name == versions.DEFAULT_PROFILE else ""
        print(f"{name:<14} {p.description}{mark}")
    return 0


def register(sub) -> None:
    """Add the model's commands to an argparse subparsers object."""
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
    sc.add_argument("--mem-encrypt", action="store_true",
                    help="rfc-v1-bugs only: run on a confidential guest (cc_platform_has(CC_ATTR_MEM_ENCRYPT))")
    sc.add_argument("--progress", action="store_true",
                    help="the workload's requests (or frames) done, of how many, and the time left "
                         "on stderr even when it is not a terminal")
    sc.set_defaults(func=_cmd_scenario)

    cp = sub.add_parser("compare", help="run one scenario on several profiles; print a table")
    cp.add_argument("name")
    cp.add_argument("--kernel", action="append", help="profile; repeat for each column "
                    "(default: v6.3rc rfc-v1 v6.6 v6.6-dynamic v6.11-dynamic)")
    cp.add_argument("--cmdline", default=None)
    cp.add_argument("--seed", type=int, default=1)
    cp.add_argument("--json", action="store_true")
    cp.add_argument("--progress", action="store_true",
                    help="the workload done on all profiles, of how much, and the time left on "
                         "stderr even when it is not a terminal")
    cp.set_defaults(func=_cmd_compare)

    ss = sub.add_parser("scenarios", help="list the scenarios")
    ss.set_defaults(func=_cmd_scenarios)

    ex = sub.add_parser("experiment", help="run one chapter experiment and print its answers")
    ex.add_argument("name", nargs="?", help="experiment name (see --list)")
    ex.add_argument("--list", action="store_true", help="list the experiments")
    ex.add_argument("--kernel", action="append", default=None,
                    help="profile; repeat for experiments that compare profiles")
    ex.add_argument("--seed", type=int, default=None, help="seed (default: the experiment's)")
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.set_defaults(func=_cmd_experiment)

    pr = sub.add_parser("profiles", help="list the kernel profiles")
    pr.set_defaults(func=_cmd_profiles)
