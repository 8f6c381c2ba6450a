"""Commands ``replay`` and ``advise``: size SWIOTLB from a real trace.

``register(subparsers)`` adds both to ``python -m swiotlb_lib`` (:mod:`swiotlb_lib.cli`).

* ``replay TRACE [--kernel P] [--cmdline ...] [--lifetime ...] [--cpus N] [--ram SIZE] [--json]``
  replays the trace's mappings through one profile and prints the ``scenario`` summary
  (failures by cause, peak slots used, memory held), the lifetime model in plain words,
  any livelock, and what the reader skipped.
* ``advise TRACE [--kernel P ...] [--lifetime ...] [--target-failure-rate R] [--json]`` gives,
  per profile, the smallest ``swiotlb=`` with no failures (and with at most the target
  failure rate), with warnings.

A progress bar goes to stderr when stderr is a terminal, or with ``--progress``.
"""
from __future__ import annotations

import json
import sys
import time

from .. import versions


class Progress:
    """A one-line progress bar on a stream, redrawn at most ten times a second."""

    def __init__(self, stream, label: str) -> None:
        self.stream = stream
        self.label = label
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.drawn = False

    def phase(self, label: str) -> "Progress":
        self.finish()
        self.label = label
        self.t0 = time.perf_counter()
        self.last = 0.0
        return self

    def __call__(self, done: int, total: int | None) -> None:
        now = time.perf_counter()
        if now - self.last < 0.1 and (total is None or done < total):
            return
        self.last = now
        secs = now - self.t0
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"\r{self.label} [{bar:<30}] {frac:4.0%} {done:,}/{total:,}  {secs:5.1f} s"
        else:
            text = f"\r{self.label}: {done:,} done  {secs:5.1f} s"
        self.stream.write(text)
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _bar(a) -> Progress | None:
    if a.progress or sys.stderr.isatty():
        return Progress(sys.stderr, "reading")
    return None


def _read(a, bar):
    from ..trace.read import read_trace
    return read_trace(a.trace, progress=bar.phase("reading") if bar else None)


def _cmd_replay(a) -> int:
    from ..trace.read import read_debugfs
    from ..trace.replay import replay
    bar = _bar(a)
    tr = _read(a, bar)
    r = replay(tr, kernel=a.kernel, cmdline=a.cmdline, lifetime=a.lifetime, cpus=a.cpus, ram=a.ram,
               requests=a.requests, seed=a.seed, progress=bar.phase("replaying") if bar else None,
               timeline=bool(a.timeline))
    if bar:
        bar.finish()
    dbg = read_debugfs(a.debugfs) if a.debugfs else None
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
    out = advise(tr, kernels=a.kernel or ADVISE_PROFILES, lifetime=a.lifetime,
                 target_failure_rate=a.target_failure_rate, cpus=a.cpus, ram=a.ram, requests=a.requests,
                 seed=a.seed, max_sectors_kb=a.max_sectors_kb,
                 progress=bar.phase("replays") if bar else None)
    if bar:
        bar.finish()
    if a.json:
        print(json.dumps([x.to_dict() for x in out]))
        return 0
    print("\n".join(tr.summary_lines()))
    if out:
        print(out[0].lifetime_note)
    for x in out:
        print("\n".join(x.summary_lines()))
    return 0


def _common(p) -> None:
    p.add_argument("trace", help="a /sys/kernel/tracing/trace dump or 'trace-cmd report' output")
    p.add_argument("--lifetime", default=None,
                   help="fixed:250us, qd:32, exp:200us, lognormal:1.5ms,0.5 or real (default: real "
                        "if the trace has unmap events, else fixed:1500us)")
    p.add_argument("--cpus", type=int, default=None, help="possible CPUs (default: the trace's)")
    p.add_argument("--ram", default=None, help="RAM, e.g. 2G (default: the smallest that holds the "
                                               "traced buffers)")
    p.add_argument("--requests", default="auto", choices=["auto", "virtio-blk", "none"],
                   help="group mappings into block requests (default auto)")
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
