"""Commands ``replay`` and ``advise``: size SWIOTLB from a real trace.

``register(subparsers)`` adds both to ``python -m swiotlb_lib`` (:mod:`swiotlb_lib.cli`).

* ``replay TRACE [--kernel P] [--cmdline ...] [--lifetime ...] [--cpus N] [--ram SIZE] [--json]``
  replays the trace's mappings through one profile and prints the ``scenario`` summary
  (failures by cause, peak slots used, memory held), the lifetime model in plain words,
  any livelock, and what the reader skipped.
* ``advise TRACE [--kernel P ...] [--lifetime ...] [--target-failure-rate R] [--json]`` gives,
  per profile, the smallest ``swiotlb=`` with no failures (and with at most the target
  failure rate), with warnings.

``TRACE`` may be ``-`` (standard input).  What the reader skipped goes to stderr with line
numbers; a file that is not a trace is refused with one line.  A progress bar (with a total
and an estimate of the time left) goes to stderr when stderr is a terminal, or with
``--progress``.
"""
from __future__ import annotations

import json
import sys

from .. import versions
from .progress import Progress, progress_for


def _bar(a) -> Progress | None:
    return progress_for(a, "reading")


def warn_trace(tr, stream=None, show: int = 10) -> None:
    """What the reader could not use, on standard error with line numbers: malformed lines
    (the first ``show``), lines lost, and lines skipped by reason (events of probes the
    reader does not know among them), each with its count and first line."""
    stream = sys.stderr if stream is None else stream
    src = tr.source
    for s in tr.errors[:show]:
        print(f"warning: {src}: {s}", file=stream)
    if len(tr.errors) > show:
        print(f"warning: {src}: {len(tr.errors) - show} more malformed lines "
              f"({len(tr.errors)} in all)", file=stream)
    for w in tr.warnings:
        print(f"warning: {src}: {w}", file=stream)
    first: dict = {}
    for s in tr.ignored:
        first.setdefault(s.reason, [s.line, 0])[1] += 1
    for reason, (line, count) in first.items():
        print(f"warning: {src}: skipped {count} line{'s' * (count != 1)} (first at line {line}): "
              f"{reason}", file=stream)


def _read(a, bar):
    from ..trace.read import read_trace
    tr = read_trace(a.trace, progress=bar.phase("reading") if bar else None)
    if bar:
        bar.finish()
    warn_trace(tr)
    return tr


def _ram_blame(a, e: ValueError) -> ValueError:
    """The replay says ``ram: line N maps ...`` when a traced buffer is not RAM of any
    machine it can build; without ``--ram`` the trace line, not an option, is at fault."""
    msg = str(e)
    if a.ram is None and msg.startswith("ram: line "):
        return ValueError(f"trace: {a.trace!r}: {msg[len('ram: '):]} (no --ram was given: the trace "
                          "line is damaged or not from a machine the model can build)")
    return e


def _run(a, bar, work):
    """Run ``work()`` under the progress bar (closed however it ends); a ``ram`` error the
    user did not cause by ``--ram`` is told as a problem of the trace."""
    try:
        return work()
    except ValueError as e:
        raise _ram_blame(a, e) from None
    finally:
        if bar:
            bar.finish()


def _cmd_replay(a) -> int:
    from ..trace.read import read_debugfs
    from ..trace.replay import replay
    if a.timeline < 0:
        raise ValueError(f"--timeline: must be a number of points >= 1, got {a.timeline}")
    if a.timeline and not a.json:
        raise ValueError("--timeline: only with --json (it adds the used-slots timeline to the JSON); "
                         "add --json or leave --timeline out")
    dbg = read_debugfs(a.debugfs) if a.debugfs else None
    bar = _bar(a)
    tr = _read(a, bar)
    r = _run(a, bar, lambda: replay(
        tr, kernel=a.kernel, cmdline=a.cmdline, lifetime=a.lifetime, cpus=a.cpus, ram=a.ram,
        requests=a.requests, seed=a.seed, progress=bar.phase("replaying") if bar else None,
        timeline=bool(a.timeline), follow=a.follow, device=a.device, worker_delay=a.worker_delay))
    if a.json:
        d = r.to_dict()
        if dbg is not None:
            d["debugfs"] = {"values": dbg.values, "errors": [str(e) for e in dbg.errors]}
        if a.timeline:
            t, u = r.timeline.decimate(a.timeline)
            d["timeline"] = {"t": t.tolist(), "used": u.tolist(), "nslabs": r.timeline.nslabs}
        print(json.dumps(d))
        return 0
    print("\n".join(r.summary_lines()))
    if dbg is not None:
        print(f"debugfs ({dbg.source}): " + ", ".join(f"{k}={v}" for k, v in dbg.values.items()))
        hw = dbg.values.get("io_tlb_used_hiwater")
        if hw is not None:
            print(f"  the kernel's io_tlb_used_hiwater was {hw}; the replay peaked at "
                  f"{r.result.peak_used_slots} slots")
        for e in dbg.errors:
            print(f"  skipped {e}")
    print("kernel log:")
    for line in r.result.log:
        print("  " + line)
    return 0


def _cmd_advise(a) -> int:
    from ..trace.advise import ADVISE_PROFILES, advise
    bar = _bar(a)
    tr = _read(a, bar)
    kernels = a.kernel or ADVISE_PROFILES
    progress = None
    if bar:
        most = advise_replays(kernels, a.cpus or tr.cpus, a.target_failure_rate, a.max_sectors_kb)
        bar.phase(f"replays (at most {most})")

        def progress(done, _total, most=most):
            bar(done, max(most, done))
    def work():
        res = advise(tr, kernels=kernels, lifetime=a.lifetime, target_failure_rate=a.target_failure_rate,
                     cpus=a.cpus, ram=a.ram, requests=a.requests, seed=a.seed,
                     max_sectors_kb=a.max_sectors_kb, progress=progress)
        if bar:                                         # the replays the search needed: done
            n = sum(x.replays for x in res)
            bar(n, n)
        return res
    out = _run(a, bar, work)
    if a.json:
        print(json.dumps([x.to_dict() for x in out]))
        return 0
    print("\n".join(tr.summary_lines()))
    if out:
        print(out[0].lifetime_note)
    for x in out:
        print("\n".join(x.summary_lines()))
    if out:
        stopped = sum(not t.get("complete", True) for x in out for t in x.tried)
        print(f"replays: {sum(x.replays for x in out)} ("
              + ", ".join(f"{x.profile} {x.replays}" for x in out)
              + f"); {stopped} stopped at the failure that decided them")
    return 0


def advise_replays(kernels, cpus: int, target_failure_rate: float | None = None,
                   max_sectors_kb: int | None = None) -> int:
    """An upper bound on the replays ``advise`` runs (the progress line's total, "at most"):
    :func:`swiotlb_lib.trace.advise.max_replays`."""
    from ..trace.advise import max_replays
    return max_replays(kernels, cpus, target_failure_rate=target_failure_rate,
                       max_sectors_kb=max_sectors_kb)


def _seconds(text: str) -> float:
    """``--worker-delay 9ms`` -> 0.009 (argparse reports a bad value as the option's error)."""
    import argparse
    from ..trace.lifetime import parse_duration
    try:
        return parse_duration(text, "duration")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _common(p) -> None:
    p.add_argument("trace", help="a /sys/kernel/tracing/trace dump or 'trace-cmd report' output, "
                                 "or - for standard input")
    p.add_argument("--lifetime", default=None,
                   help="fixed:250us, qd:32, exp:200us, lognormal:1.5ms,0.5 or real (default: real "
                        "if the trace has unmap events, else fixed:1500us)")
    p.add_argument("--cpus", type=int, default=None, help="possible CPUs (default: the trace's)")
    p.add_argument("--ram", default=None, help="RAM, e.g. 2G (default: the smallest that holds the "
                                               "traced buffers)")
    # trace.requests.GROUPINGS, written out so that --help imports no model module
    # (tests/test_cli_traces.py checks that they agree)
    p.add_argument("--requests", default="auto", choices=["auto", "virtio-blk", "nvme", "none"],
                   help="group mappings into block requests of a driver (default auto: virtio-blk "
                        "or NVMe when the trace shows it, else none)")
    p.add_argument("--seed", type=int, default=1, help="seed for random lifetimes (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--progress", action="store_true", help="progress bar on stderr even when it is "
                                                           "not a terminal")


def register(subparsers) -> None:
    """Add the ``replay`` and ``advise`` commands to an argparse subparsers object."""
    r = subparsers.add_parser("replay", help="replay a kernel trace's SWIOTLB mappings through a profile")
    _common(r)
    r.add_argument("--kernel", default=None, help=f"profile (default {versions.DEFAULT_PROFILE})")
    r.add_argument("--cmdline", default=None,
                   help='kernel command line, e.g. "swiotlb=1024,force" (default: swiotlb=force if '
                        'the trace shows FORCE)')
    r.add_argument("--debugfs", default=None,
                   help="/sys/kernel/debug/swiotlb (a copy, or name=value lines) to compare with")
    r.add_argument("--timeline", type=int, default=0, metavar="POINTS",
                   help="with --json: add the used-slots timeline, at most POINTS samples")
    r.add_argument("--no-follow", dest="follow", action="store_const", const=False, default=None,
                   help="take every decision from the model (what-if), even when the trace recorded "
                        "the kernel's (map_ret addresses)")
    r.add_argument("--device", metavar="PRESET", default=None,
                   help="device preset giving min_align_mask (e.g. nvme); default: inferred from a "
                        "kprobe trace")
    r.add_argument("--worker-delay", type=_seconds, default=None, metavar="DURATION",
                   help="profiles that grow by pools: time from the first mapping that fits in no "
                        "pool to the growth worker's new pool, e.g. 9ms (default: the model's "
                        "value, measured under QEMU TCG)")
    r.set_defaults(func=_cmd_replay)

    a = subparsers.add_parser("advise", help="smallest swiotlb= per profile that replays a trace "
                                             "without failures")
    _common(a)
    a.add_argument("--kernel", action="append", default=None,
                   help="profile; repeat for several (default: all seven)")
    a.add_argument("--target-failure-rate", type=float, default=None, metavar="R",
                   help="also the smallest pool whose failed/attempted mappings is at most R")
    a.add_argument("--max-sectors-kb", type=int, default=None, metavar="KB",
                   help="the device's max_sectors_kb in production (warns if the trace's requests "
                        "were smaller)")
    a.set_defaults(func=_cmd_advise)
