"""Command line: ``python -m swiotlb_lib <command> ...``.

Commands:

* ``boot``   -- boot a model machine and print SWIOTLB's kernel log lines and debugfs values.
* ``oracle`` -- replay a golden-vector file and print the model's own results (JSON lines).
* ``profiles`` -- list the kernel profiles.
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
    b.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64-rpi4"])
    b.add_argument("--mem-encrypt", action="store_true", help="confidential guest (SEV/TDX)")
    b.add_argument("--cmdline", default="", help='kernel command line, e.g. "swiotlb=1000,2,force"')
    b.add_argument("--kernel", default=None, help=f"kernel profile (default {versions.DEFAULT_PROFILE})")
    b.add_argument("-v", "--verbose", action="store_true", help="also print model notes on stderr")
    b.set_defaults(func=_cmd_boot)

    o = sub.add_parser("oracle", help="replay a golden-vector file; print the model's results")
    o.add_argument("file", help="vectors file in the shared/oracle format, or - for stdin")
    o.add_argument("--kernel", default=None, help="profile (default: the file's meta version)")
    o.set_defaults(func=_cmd_oracle)

    pr = sub.add_parser("profiles", help="list the kernel profiles")
    pr.set_defaults(func=_cmd_profiles)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return 0
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
