"""Command line: ``python -m swiotlb_lib <command> ...`` (installed as ``swiotlb-sim`` too).

One parser tree; each group of commands lives in its own module and imports the parts of
the model it needs only when it runs:

* :mod:`.model` -- ``boot``, ``oracle``, ``scenario``, ``compare``, ``scenarios``, ``profiles``;
* :mod:`.traces` -- ``replay`` and ``advise``: size SWIOTLB from a recorded trace;
* :mod:`.benchmark` -- ``dma-map-benchmark``: the kernel's benchmark on the model.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["build_parser", "run_command", "main"]


def build_parser() -> argparse.ArgumentParser:
    from . import benchmark, model, traces
    p = argparse.ArgumentParser(prog="python -m swiotlb_lib",
                                description="A kernel-exact model of the Linux software IO TLB (SWIOTLB).")
    sub = p.add_subparsers(dest="command", required=True)
    model.register(sub)                # boot, oracle, scenario, compare, scenarios, profiles
    benchmark.register(sub)            # dma-map-benchmark
    traces.register(sub)               # replay, advise
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
