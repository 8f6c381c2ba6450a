"""Command line: ``python -m swiotlb_lib <command> ...`` (installed as ``swiotlb-sim`` too).

One parser tree; each group of commands lives in its own module and imports the parts of
the model it needs only when it runs:

* :mod:`.model` -- ``boot``, ``oracle``, ``scenario``, ``compare``, ``scenarios``, ``profiles``;
* :mod:`.traces` -- ``replay`` and ``advise``: size SWIOTLB from a recorded trace;
* :mod:`.benchmark` -- ``dma-map-benchmark``: the kernel's benchmark on the model.
"""
from __future__ import annotations

import argparse
import re
import sys

__all__ = ["build_parser", "run_command", "main"]


def option_names(parser: argparse.ArgumentParser) -> dict:
    """``{dest: option as typed}`` for a parser's options (``--target-failure-rate`` for
    ``target_failure_rate``, ``-n`` for ``node``); positional arguments keep their name."""
    names = {}
    for act in parser._actions:        # argparse has no public list of a parser's actions
        if act.option_strings:
            long = [o for o in act.option_strings if o.startswith("--")]
            names[act.dest] = (long or act.option_strings)[0]
    return names


_PARAM = re.compile(r"^([A-Za-z_]\w*): ")


def user_message(msg: str, names: dict) -> str:
    """The library names its parameters (``cpus: must be ...``); the user typed options
    (``--cpus``): rewrite the leading name when it is one of the command's options, and keep
    the message on one line."""
    msg = " ".join(str(msg).split("\n"))
    m = _PARAM.match(msg)
    if m and m.group(1) in names:
        msg = names[m.group(1)] + msg[m.end(1):]
    return msg


def build_parser() -> argparse.ArgumentParser:
    from . import benchmark, model, traces
    p = argparse.ArgumentParser(prog="python -m swiotlb_lib",
                                description="A kernel-exact model of the Linux software IO TLB (SWIOTLB).")
    sub = p.add_subparsers(dest="command", required=True)
    model.register(sub)                # boot, oracle, scenario, compare, scenarios, profiles
    benchmark.register(sub)            # dma-map-benchmark
    traces.register(sub)               # replay, advise
    for cmd in sub.choices.values():
        cmd.set_defaults(option_names=option_names(cmd))
    return p


def run_command(a) -> int:
    """Run a parsed sub-command.  A bad argument or input prints one line ``error: ...``
    (naming the option as typed, or the file) on stderr and returns 2; never a traceback."""
    try:
        return a.func(a)
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory: the input asks the model for more than this machine has",
              file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as e:
        msg = e.strerror + (f": {e.filename!r}" if e.filename else "") if isinstance(e, OSError) \
            and e.strerror else str(e)
        print(f"error: {user_message(msg, getattr(a, 'option_names', {}))}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    return run_command(build_parser().parse_args(argv))
