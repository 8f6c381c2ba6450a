"""Benchmark: replay a 1 000 000-event SWIOTLB trace (the ``replay`` command's budget is a minute).

Method: :func:`swiotlb_lib.trace.synthesize_trace` writes a seeded trace in the text format
of Linux 6.12's ``/sys/kernel/tracing/trace`` (``swiotlb_bounced`` events of virtio-blk
requests: header, data segments of 4 KiB to 256 KiB, status, indirect table; I/O of 4 KiB
to 1 MiB) to a temporary file.  The timed part is what ``python -m swiotlb_lib replay``
does: read and parse the file, then replay every mapping through the kernel-exact
allocator of the chosen profile (default v6.11, ``swiotlb=force``, 2 CPUs) with the chosen
lifetime model (default ``fixed:250us``), each request completing as a whole.

Prints the phases, events/s and the total time, then one JSON line with
``events``, ``kernel``, ``cmdline``, ``engine``, ``read_s``, ``replay_s``, ``total_s``,
``events_per_s``, ``peak_used_slots``, ``transient_pools``, ``pools_added`` and
``prepared_replay_s``: a second replay of the same prepared trace
(:func:`~swiotlb_lib.trace.replay.prepare_replay`: requests grouped and, for the compiled
engine, the trace's columns built once), as the advisor runs its replays after the first
(with ``--repeat N``, the fastest of N such replays: the machine is shared), and
``prepared_events_per_s``, the events per second of that replay.

Usage: python benchmarks/replay.py [--events N] [--seed S] [--kernel P] [--lifetime SPEC]
       [--engine auto|reference|compiled] [--cmdline 'swiotlb=256'] [--repeat N]

``--kernel`` names the profile (a growing one such as ``v6.6-dynamic`` with a small
``--cmdline 'swiotlb=256'`` boot pool exercises transient pools and the worker).
"""
import argparse
import json
import sys
import time


from swiotlb_lib.trace.read import read_trace              # noqa: E402
from swiotlb_lib.trace.replay import prepare_replay, replay    # noqa: E402
from swiotlb_lib.trace.synthesize import temp_trace         # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kernel", default="v6.11")
    ap.add_argument("--lifetime", default="fixed:250us")
    ap.add_argument("--cmdline", default=None, help="kernel command line (default: the trace's, swiotlb=force)")
    ap.add_argument("--engine", default="auto", choices=("auto", "reference", "compiled"),
                    help="replay engine (swiotlb_lib/trace/fast.py is the compiled one)")
    ap.add_argument("--repeat", type=int, default=1, help="prepared replays to time (the fastest is kept)")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error(f"--repeat: must be at least 1, got {a.repeat}")
    with temp_trace(a.events, seed=a.seed) as (path, size, t_syn):
        size_mb = size / 1e6
        t1 = time.perf_counter()
        tr = read_trace(path)
        t2 = time.perf_counter()
        r = replay(tr, kernel=a.kernel, cmdline=a.cmdline, lifetime=a.lifetime, seed=a.seed, engine=a.engine)
        t3 = time.perf_counter()
        prep = prepare_replay(tr)
        replay(prep, kernel=a.kernel, cmdline=a.cmdline, lifetime=a.lifetime, seed=a.seed, engine=a.engine)
        prepared_s = float("inf")
        for _ in range(a.repeat):
            t4 = time.perf_counter()
            replay(prep, kernel=a.kernel, cmdline=a.cmdline, lifetime=a.lifetime, seed=a.seed, engine=a.engine)
            prepared_s = min(prepared_s, time.perf_counter() - t4)
    res = r.result
    read_s, replay_s, total_s = t2 - t1, t3 - t2, t3 - t1
    print(f"synthesised {a.events:,} events ({size_mb:.0f} MB, seed {a.seed}) in {t_syn:.1f} s (not timed)")
    print(f"read + parse : {read_s:6.1f} s  ({a.events / read_s:,.0f} lines/s)")
    print(f"replay       : {replay_s:6.1f} s  ({a.events / replay_s:,.0f} events/s) on {res.kernel}, "
          f"{res.cmdline!r}, lifetime {a.lifetime}")
    print(f"again        : {prepared_s:6.1f} s  ({a.events / prepared_s:,.0f} events/s) on the prepared trace")
    print(f"total        : {total_s:6.1f} s  ({a.events / total_s:,.0f} events/s); budget 60 s: "
          f"{'ok' if total_s < 60 else 'OVER'}")
    print(f"  {res.mapped:,} mapped, {res.failed:,} failed, {res.extra['requests']:,} requests, "
          f"peak {res.peak_used_slots} slots")
    print(json.dumps({"events": a.events, "kernel": res.kernel, "cmdline": res.cmdline, "engine": a.engine,
                      "read_s": round(read_s, 2), "replay_s": round(replay_s, 2),
                      "total_s": round(total_s, 2), "events_per_s": round(a.events / total_s),
                      "peak_used_slots": res.peak_used_slots, "transient_pools": res.transient_pools,
                      "pools_added": res.pools_added, "prepared_replay_s": round(prepared_s, 2),
                      "prepared_events_per_s": round(a.events / prepared_s)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
