"""The ``dma-map-benchmark`` command: ``python -m swiotlb_lib dma-map-benchmark -t T -s S -b BITS -d DIR -x NS -g PAGES``.

:func:`register` adds the ``dma-map-benchmark`` sub-command to the project's parser;
:func:`main` runs it on its own (``main(["-t", "4", "-g", "65"])``).  Options and
defaults are the tool's (``tools/testing/selftests/dma/dma_map_benchmark.c`` at
2488655b2f6b): 1 thread, 20 s, node -1, 32 bits, dir 0, 0 ns, 1 page.  Like the tool,
values are read with ``atoi`` (``-t abc`` is 0) and checked in the tool's order with the
tool's messages; a bad value exits with status 2.  A failed ioctl prints what
``perror("ioctl")`` prints and exits 1, as the tool does.

Model extensions: ``--kernel`` (profile), ``--cmdline`` (default ``"swiotlb=force"``),
``--ram``, ``--seed``, ``--loops`` (cap on simulated loops) and ``--dmesg`` (print the
kernel lines the run logged, after the tool's output).
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["register", "main", "atoi"]

COMMAND = "dma-map-benchmark"


def atoi(text: str) -> int:
    """C ``atoi``: optional leading white space and sign, then decimal digits; stops at
    the first other character; 0 when there are no digits.  (Values beyond ``int``
    are undefined in C; here they are clamped to the 32-bit range.)"""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    n = 0
    for ch in s:
        if not "0" <= ch <= "9":
            break
        n = n * 10 + (ord(ch) - 48)
        if n > 1 << 31:
            n = 1 << 31
    return max(-(1 << 31), min(sign * n, (1 << 31) - 1))


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``dma-map-benchmark`` to an ``argparse`` sub-parser collection."""
    p = subparsers.add_parser(
        COMMAND, help="run dma_map_benchmark on a model machine",
        description="The kernel's dma_map_benchmark (kernel/dma/map_benchmark.c and "
                    "tools/testing/selftests/dma/dma_map_benchmark.c) on the model: "
                    "simulated time, the tool's output lines.")
    p.add_argument("-t", dest="threads", default="1", metavar="T", help="threads, 1-1024 (default 1)")
    p.add_argument("-s", dest="seconds", default="20", metavar="S",
                   help="simulated seconds, 1-300 (default 20)")
    p.add_argument("-n", dest="node", default="-1", metavar="NODE", help="NUMA node or -1 (default -1)")
    p.add_argument("-b", dest="bits", default="32", metavar="BITS", help="DMA mask bits, 20-64 (default 32)")
    p.add_argument("-d", dest="dir", default="0", metavar="DIR",
                   help="0 BIDIRECTIONAL, 1 TO_DEVICE, 2 FROM_DEVICE (default 0)")
    p.add_argument("-x", dest="xdelay", default="0", metavar="NS",
                   help="transfer delay between map and unmap, 0-10000000 ns (default 0)")
    p.add_argument("-g", dest="granule", default="1", metavar="PAGES", help="pages per mapping, 1-1024 (default 1)")
    p.add_argument("--kernel", default=None, help="kernel profile (default: the library's default)")
    p.add_argument("--cmdline", default="swiotlb=force",
                   help='kernel command line (default "swiotlb=force": every mapping bounces)')
    p.add_argument("--ram", default="2G", help="RAM of the model machine (default 2G)")
    p.add_argument("--seed", default="0", help="seed of the simulation's jitter (default 0)")
    p.add_argument("--loops", default="10000",
                   help="stop after this many loops of all threads together (default 10000)")
    p.add_argument("--dmesg", action="store_true", help="also print the kernel lines the run logged")
    p.add_argument("--progress", action="store_true",
                   help="progress line on stderr even when it is not a terminal")
    p.set_defaults(func=run)
    return p


def _nonneg(name: str, text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        v = -1
    if v < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {text!r}")
    return v


#: The library's parameter names as the tool's options (for error messages).
_OPTIONS = {"threads": "-t", "seconds": "-s", "node": "-n", "dma_bits": "-b", "dma_dir": "-d",
            "dma_trans_ns": "-x", "granule": "-g", "max_loops": "--loops", "kernel": "--kernel",
            "cmdline": "--cmdline", "ram": "--ram", "seed": "--seed", "cpus": "-t"}


def _einval_reason(a, kernel_log) -> str:
    """Why the module returned -EINVAL, naming the option as typed: the kernel's own line
    (``kernel/dma/map_benchmark.c: map_benchmark_ioctl()`` rejects a node that is not
    online, and a DMA mask the device refuses)."""
    said = next((ln for ln in kernel_log if ln.startswith("dma_map_benchmark:")), "")
    if "numa node" in said:
        return (f"-n {a.node}: NUMA node {atoi(a.node)} is not online on the model machine "
                f"(it has node 0; -1 means any node); the kernel logged \"{said}\"")
    if "dma_mask" in said:
        return (f"-b {a.bits}: the device refused a {atoi(a.bits)}-bit DMA mask; "
                f"the kernel logged \"{said}\"")
    return f"the kernel logged \"{said}\"" if said else "the module refused a value"


def _run_with_progress(a, loops: int, fn, *args, **kw):
    """Run ``fn`` with a progress line counting bounce mappings against ``loops`` (each
    loop maps once; counted at the model's area-search hook, the searches that found
    slots), on stderr when it is a terminal or with ``--progress``."""
    from .progress import progress_for
    bar = progress_for(a, "dma-map-benchmark loops")
    if bar is None:
        return fn(*args, **kw)
    from ..debug import SEARCH_AREA, observe
    done = [0]

    def count(ev):
        if ev.slot >= 0:
            done[0] += 1
            if not done[0] & 0xFF:
                bar(min(done[0], loops), loops)

    bar(0, loops)
    try:
        with observe(SEARCH_AREA, count):
            r = fn(*args, **kw)
        bar(r.loops, r.loops or loops)
    finally:
        bar.finish()
    return r


def run(a) -> int:
    """Run the parsed command; returns the exit status."""
    from ..perf.map_benchmark import run_map_benchmark, tool_check
    threads, seconds, node = atoi(a.threads), atoi(a.seconds), atoi(a.node)
    bits, dir, xdelay, granule = atoi(a.bits), atoi(a.dir), atoi(a.xdelay), atoi(a.granule)
    msg = tool_check(threads, seconds, bits, dir, xdelay, granule)
    if msg is not None:
        print(msg, file=sys.stderr)
        return 2
    if node < -1:
        # the module rejects it (-EINVAL): what perror("ioctl") prints, and why
        print(f"ioctl: Invalid argument ({_einval_reason(a, ['dma_map_benchmark: invalid numa node'])})",
              file=sys.stderr)
        return 2
    try:
        seed = _nonneg("--seed", a.seed)
        loops = _nonneg("--loops", a.loops)
        if loops < 1:
            raise ValueError(f"--loops: must be an integer >= 1, got {a.loops!r}")
        r = _run_with_progress(a, loops, run_map_benchmark, threads, seconds, node, bits, dir, xdelay,
                               granule, kernel=a.kernel, cmdline=a.cmdline, ram=a.ram, seed=seed,
                               max_loops=loops)
    except (ValueError, TypeError) as e:
        from . import user_message
        print(f"error: {user_message(str(e), _OPTIONS)}", file=sys.stderr)
        return 2
    sys.stdout.write(r.stdout())
    err = r.stderr()
    if r.errno == "EINVAL" and err.startswith("ioctl: Invalid argument"):
        err = f"ioctl: Invalid argument ({_einval_reason(a, r.kernel_log)})\n"
    sys.stderr.write(err)
    if a.dmesg:
        for line in r.kernel_log:
            print(f"[dmesg] {line}")
    if r.errno == "EINVAL":
        return 2            # the module refused a value (node, DMA mask)
    return r.exit_status


def main(argv=None) -> int:
    """Run ``dma-map-benchmark`` from an argument list (with or without the command
    name first); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [COMMAND]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="python -m swiotlb_lib")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    try:
        a = parser.parse_args([COMMAND, *argv])
    except SystemExit as e:          # argparse: unknown option, missing value
        return int(e.code or 0)
    return a.func(a)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
