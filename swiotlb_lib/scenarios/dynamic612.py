"""The merged dynamic design as Linux 6.12.117 runs it: ``data/realkernel-dynamic/``.

Four boots of Linux 6.12.117 built with ``CONFIG_SWIOTLB_DYNAMIC=y`` (D1-D4,
``data/realkernel-dynamic/README.md``) traced the pools the kernel added, besides the
standard ``map`` / ``map_ret`` / ``unmap`` probes.  The trace reader skips the pool probes;
:func:`kernel_pools` reads them here:

* ``apool`` / ``apool_ret``: entry and return of ``swiotlb_alloc_pool()`` (the
  ``.isra.0`` copy gcc emitted).  The return line names the caller: ``swiotlb_dyn_alloc``
  for the growth worker's pool, ``swiotlb_tbl_map_single`` for a transient pool
  (``kernel/dma/swiotlb.c@afd81d914f6f: swiotlb_dyn_alloc()``, ``swiotlb_find_slots()``).
  Entry lines carry ``gfp=``: ``0xcc0`` for the worker, ``0x2800`` for a transient pool.
* ``dynfree``: ``swiotlb_dyn_free()``, a pool going away (``transient=1`` for transient ones).

The experiments set the kernel beside the model (profile ``v6.11-dynamic``, the allocator
Debian's 6.12.117 runs, with the dynamic pools of ``CONFIG_SWIOTLB_DYNAMIC``), both
following the recording (:mod:`swiotlb_lib.trace.follow_dynamic`) and not
(the model's own worker, :attr:`swiotlb_lib.dynamic.Grower.worker_delay`), and the model of
the stock kernel (``v6.11``, no growth) on the same workload.
"""
from __future__ import annotations

import copy
import re
import statistics
from collections import Counter
from functools import lru_cache

from ..atomic_pool import default_pool_size
from ..constants import IO_TLB_SIZE, PAGE_SIZE, KiB
from ..debug import POOL_ADDED, SEARCH_AREA, observe
from ..dynamic import Grower
from ..evidence import data_path
from ..report import text_table
from ..trace import replay
from ..trace.read import TLB_FAILED, read_trace
from ..trace.recordings import KERNEL_LIVELOCK_LINES
from . import Experiment, register

#: Where the recordings are.
DATA_DIR = data_path("realkernel-dynamic")
#: The four boots (``data/realkernel-dynamic/README.md``, "The boots"; ``nslabs``: the boot pool).
BOOTS = {
    "D1": dict(trace="trace-D1-512-force-maxkb256.txt", record="record-D1-512-force-maxkb256.txt",
               cmdline="swiotlb=512,force", max_sectors_kb=256, nslabs=512),
    "D2": dict(trace="trace-D2-512-force.txt", record="record-D2-512-force.txt",
               cmdline="swiotlb=512,force", max_sectors_kb=1280, nslabs=512),
    "D3": dict(trace="trace-D3-1024-force.txt", record="record-D3-1024-force.txt",
               cmdline="swiotlb=1024,force", max_sectors_kb=1280, nslabs=1024),
    "D4": dict(trace="trace-D4-force.txt", record="record-D4-force.txt",
               cmdline="swiotlb=force", max_sectors_kb=1280, nslabs=32768),
}
#: The model profile of the dynamic kernel, and of Debian's stock build of the same source.
DYNAMIC_PROFILE = "v6.11-dynamic"
STOCK_PROFILE = "v6.11"
#: Worker delays of the sweep, seconds.
SWEEP_DELAYS = (0.0, 0.001, 0.004, Grower.WORKER_DELAY_TCG, 0.020, 0.050)

_LINE = re.compile(r"\[\d+\]\s+\S+\s+([\d.]+):\s+(apool|apool_ret|dynfree|map_ret):\s+\((.*?)\)\s*(.*)$")
_FIELD = re.compile(r"(\w+)=(0x[0-9a-f]+|\d+)")


def _boot(boot: str) -> dict:
    if boot not in BOOTS:
        raise ValueError(f"boot: one of {', '.join(BOOTS)}, got {boot!r}")
    return BOOTS[boot]


@lru_cache(maxsize=None)
def _trace(boot: str):
    """The boot's trace, read once per process (every replay of it starts from the same
    parsed :class:`~swiotlb_lib.trace.read.Trace`)."""
    return read_trace(DATA_DIR / _boot(boot)["trace"])


def kernel_pools(boot: str) -> dict:
    """The kernel's pool events of one boot, from its trace: ``worker`` and ``transient``
    (lists of ``(t, start, nslabs)`` at ``apool_ret``), ``transient_asked`` (``apool`` entry
    times with ``gfp=0x2800``), ``transient_freed`` (``(t, start)`` of ``dynfree`` with ``transient=1``),
    ``failures`` (``map_ret`` with the error value).  The trace is read once per process;
    every call returns a fresh copy."""
    return copy.deepcopy(_kernel_pools(_boot(boot)["trace"]))


@lru_cache(maxsize=None)
def _kernel_pools(trace: str) -> dict:
    out = dict(worker=[], transient=[], transient_asked=[], transient_freed=[], failures=0)
    with open(DATA_DIR / trace, encoding="utf-8") as f:
        for line in f:
            m = _LINE.search(line)
            if not m:
                continue
            t, ev, where, rest = float(m.group(1)), m.group(2), m.group(3), m.group(4)
            fields = {k: int(v, 0) for k, v in _FIELD.findall(rest)}
            if ev == "apool" and fields.get("gfp") == 0x2800:
                out["transient_asked"].append(t)
            elif ev == "apool_ret":
                kind = "worker" if "swiotlb_dyn_alloc" in where else "transient"
                out[kind].append((t, fields["start"], fields["nslabs"]))
            elif ev == "dynfree" and fields.get("transient") == 1:
                out["transient_freed"].append((t, fields["start"]))
            elif ev == "map_ret" and fields.get("tlb") == TLB_FAILED:
                out["failures"] += 1
    return out


def kernel_hiwater(boot: str) -> int:
    """The largest ``io_tlb_used_hiwater`` the boot's record printed after a workload step."""
    text = (DATA_DIR / _boot(boot)["record"]).read_text(encoding="utf-8")
    return max(int(x) for x in re.findall(r"io_tlb_used=\d+ io_tlb_used_hiwater=(\d+)", text))


def transient_bytes(boot: str) -> dict:
    """The kernel's transient pools in bytes: all of them (``total``) and the most alive at
    once (``live_peak``: allocation at ``apool_ret``, release at ``dynfree``, matched by start)."""
    k = kernel_pools(boot)
    ev = sorted([(t, 1, start, n) for t, start, n in k["transient"]]
                + [(t, -1, start, 0) for t, start in k["transient_freed"]])
    live, cur, peak = {}, 0, 0
    for _t, kind, start, n in ev:
        if kind > 0:
            live[start] = n * IO_TLB_SIZE
            cur += live[start]
            peak = max(peak, cur)
        else:
            cur -= live.pop(start, 0)
    return dict(total=sum(n for _, _, n in k["transient"]) * IO_TLB_SIZE, live_peak=peak)


def guest_atomic_pool_bytes(boot: str) -> int:
    """The size of each DMA atomic pool a guest of this boot's ``MemTotal`` would get at boot
    (the model's :func:`~swiotlb_lib.atomic_pool.default_pool_size`, ``dma_atomic_pool_init()``)."""
    text = (DATA_DIR / _boot(boot)["record"]).read_text(encoding="utf-8")
    kb = int(re.search(r"MemTotal:\s+(\d+) kB", text).group(1))
    return default_pool_size(kb * KiB // PAGE_SIZE)


def worker_delays(boots=("D1", "D2", "D3")) -> dict:
    """The growth worker's latency, measured: for each worker pool, the time from the first
    transient pool asked for after the previous worker pool (``apool`` with ``gfp=0x2800``,
    just after the failed search that kicked the worker) to the worker's ``apool_ret``.
    Returns ``{"delays": [(boot, ms), ...], "median_ms", "model_ms"}``."""
    rows = []
    for b in boots:
        k = kernel_pools(b)
        prev = float("-inf")
        for t, _start, _n in k["worker"]:
            first = min((a for a in k["transient_asked"] if prev < a <= t), default=None)
            if first is not None:
                rows.append((b, round((t - first) * 1000, 3)))
            prev = t
    return dict(delays=rows, median_ms=round(statistics.median(ms for _, ms in rows), 3),
                model_ms=round(Grower.WORKER_DELAY_TCG * 1000, 3))


def worker_delays_lines(v: dict) -> list:
    out = [f"{b}: {ms:.3f} ms" for b, ms in v["delays"]]
    return out + [f"median {v['median_ms']:.3f} ms; the model's Grower.WORKER_DELAY_TCG {v['model_ms']:.3f} ms "
                  "(QEMU TCG guest time)"]


register(Experiment("dynamic612-worker-delay", worker_delays,
                    "the growth worker's measured latency in D1-D3 (Linux 6.12.117 under QEMU TCG) and its median",
                    chapter="ch09", seeded=False, lines=worker_delays_lines))


def model_run(boot: str, follow: bool, worker_delay: float | None = None, kernel: str = DYNAMIC_PROFILE) -> dict:
    """One replay of a boot's trace at its recorded ``swiotlb=``, with the times at which the
    model added pools (``worker``: ``add_mem_pool()``; ``transient``: the first search of each
    new transient pool) and slots in use over time (``t``, ``used``).

    Each distinct replay runs once per process (the chapter, its boot picker and the boots
    table ask for the same ones); every call returns a fresh copy.  ``worker_delay=None``
    means :attr:`Grower.WORKER_DELAY_TCG <swiotlb_lib.dynamic.Grower.WORKER_DELAY_TCG>` as
    it is at the call, so that delay given by value is the same replay (the delay sweep
    asks for it, the boots table and the boot picker do not)."""
    _boot(boot)
    if (worker_delay is not None and not isinstance(worker_delay, bool)
            and worker_delay == Grower.WORKER_DELAY_TCG):
        worker_delay = None
    run = _model_run(boot, follow, worker_delay, kernel, Grower.WORKER_DELAY_TCG)
    # its values are numbers, strings, None and lists of numbers or tuples: copying the lists
    # makes the copy independent (copy.deepcopy of the long timelines costs seconds a chapter)
    return {k: list(v) if isinstance(v, list) else v for k, v in run.items()}


@lru_cache(maxsize=None)
def _model_run(boot: str, follow: bool, worker_delay: float | None, kernel: str, _default_delay: float) -> dict:
    b = _boot(boot)
    mems, seen, worker, transient = [], {}, [], []

    def on_pool(ev):
        if not mems:
            mems.append(ev.mem)                      # the boot pool, at boot
        else:
            worker.append((ev.mem.log.now, ev.pool.nslabs))

    def on_search(ev):
        # a transient pool is searched once, right after swiotlb_alloc_pool(), before it is
        # marked transient; it is never on the allocator's list of pools
        p = ev.pool
        if mems and ev.slot >= 0 and id(p) not in seen and all(p is not q for q in mems[0].pools):
            seen[id(p)] = p                          # kept, so no later pool reuses the id
            transient.append((mems[0].log.now, p.nslabs))

    with observe(POOL_ADDED, on_pool), observe(SEARCH_AREA, on_search):
        r = replay(_trace(boot), kernel, b["cmdline"], follow=follow, worker_delay=worker_delay)
    res, x = r.result, r.result.extra
    if not follow and len(transient) != res.transient_pools:
        raise RuntimeError(f"{boot}: saw {len(transient)} transient pools, the replay counted {res.transient_pools}")
    return dict(boot=boot, follow=follow, kernel=kernel, pools_added=res.pools_added,
                transient_pools=res.transient_pools, failed=res.failed, peak=res.peak_used_slots,
                livelocked_requests=x.get("livelocked_requests", 0),
                first_livelock=r.livelocks[0].time if r.livelocks else None,
                slot_agreement=x.get("slot_agreement", ""), pool_agreement=x.get("pool_agreement", ""),
                worker_pools=x.get("worker_pools", ""), transient_model=x.get("transient_pools", ""),
                worker=worker, transient=transient,
                t=[float(v) for v in r.timeline.t], used=[int(v) for v in r.timeline.used])


BOOT_HEADER = ("boot", "swiotlb=", "max_sectors_kb", "who", "worker pools", "transient pools", "failures",
               "high water", "slot agreement", "pool agreement")


def boots_table(boots=tuple(BOOTS)) -> dict:
    """Kernel against model on each boot: the kernel's pools (trace), failures and
    ``io_tlb_used_hiwater`` (record); the model following the recording (its worker and
    transient pools as ``model/kernel``, agreement) and not following (its own pools)."""
    rows = []
    for b in boots:
        k, cfg = kernel_pools(b), _boot(b)
        fol, own = model_run(b, True), model_run(b, False)
        head = (b, cfg["cmdline"].split("=", 1)[1], cfg["max_sectors_kb"])
        rows.append(head + ("kernel", len(k["worker"]), len(k["transient"]), k["failures"],
                            kernel_hiwater(b), "", ""))
        rows.append(head + ("model, following", fol["worker_pools"], fol["transient_model"], fol["failed"],
                            fol["peak"], fol["slot_agreement"], fol["pool_agreement"]))
        rows.append(head + ("model, own worker", own["pools_added"], own["transient_pools"], own["failed"],
                            own["peak"], "", ""))
    return dict(header=BOOT_HEADER, rows=rows, worker_delay_ms=round(Grower.WORKER_DELAY_TCG * 1000, 3))


def boots_lines(v: dict) -> list:
    return text_table(v["header"], v["rows"], strip=True).splitlines() + [
        f"model, own worker: worker delay {v['worker_delay_ms']:.3f} ms of trace time; "
        "following: worker and transient pools as model/kernel"]


register(Experiment("dynamic612-boots", boots_table,
                    "D1-D4 on Linux 6.12.117 with CONFIG_SWIOTLB_DYNAMIC: the kernel's pools against the model's",
                    chapter="ch09", seeded=False, lines=boots_lines))


def side_by_side(boot: str = "D2") -> dict:
    """Stock 6.12 and the dynamic kernel on the same workload and the same 1 MiB pool: the
    dynamic kernel's pools over time (trace), the model of it following and not, and the model
    of the stock kernel (no growth) on the same trace, with the stock kernel's livelock as
    ``data/realkernel/README.md`` (finding 12) records it."""
    k = kernel_pools(boot)
    stock = model_run(boot, False, kernel=STOCK_PROFILE)
    return dict(boot=boot, cmdline=_boot(boot)["cmdline"], boot_nslabs=_boot(boot)["nslabs"], kernel=k, hiwater=kernel_hiwater(boot),
                following=model_run(boot, True), own=model_run(boot, False),
                stock=dict((key, stock[key]) for key in ("failed", "livelocked_requests", "first_livelock", "peak")),
                transient_bytes=transient_bytes(boot), atomic_pool_bytes=guest_atomic_pool_bytes(boot),
                stock_kernel_livelock=(dict(zip(("used", "size"), KERNEL_LIVELOCK_LINES["6.12-T5"]))
                                       if boot == "D2" else None))


def side_by_side_lines(v: dict) -> list:
    k, fol, own, st = v["kernel"], v["following"], v["own"], v["stock"]
    kl, tb = v["stock_kernel_livelock"], v["transient_bytes"]
    out = [f"{v['boot']} ({v['cmdline']})"]
    if kl:
        out.append(f"stock 6.12 (kernel, data/realkernel/README.md finding 12): never finished; repeated "
                   f"failure at {kl['used']} slots used, a {kl['size']}-byte mapping")
    return out + [f"stock 6.12 (model {STOCK_PROFILE}): {st['livelocked_requests']} livelocked requests"
            + (f", the first at {st['first_livelock']:.6f} s" if st["first_livelock"] is not None else ""),
            f"dynamic 6.12 (kernel): {len(k['worker'])} worker pools, {len(k['transient'])} transient pools, "
            f"{k['failures']} failures, high water {v['hiwater']}",
            f"model following: worker pools {fol['worker_pools']}, transient pools {fol['transient_model']}, "
            f"slots {fol['slot_agreement']}, pools {fol['pool_agreement']}",
            f"model, own worker: {own['pools_added']} worker pools, {own['transient_pools']} transient pools, "
            f"{own['failed']} failures, peak {own['peak']}",
            "kernel's transient pool sizes (slots: how many): "
            + ", ".join(f"{n}: {c}" for n, c in sorted(Counter(n for _, _, n in k["transient"]).items())),
            f"kernel's transient pools: {tb['total'] // KiB} KiB in all, at most {tb['live_peak'] // KiB} KiB at once; "
            f"a DMA atomic pool of this guest's RAM: {v['atomic_pool_bytes'] // KiB} KiB"]


register(Experiment("dynamic612-side-by-side", side_by_side,
                    "stock 6.12 against CONFIG_SWIOTLB_DYNAMIC 6.12 on one workload and a 1 MiB pool (boot D2)",
                    chapter="ch09", seeded=False, lines=side_by_side_lines, defaults={"boot": "D2"}))


def delay_sweep(boot: str = "D2", delays=SWEEP_DELAYS) -> dict:
    """Transient and worker pools of the model's own worker, by worker delay (s), on one boot."""
    rows = []
    for d in delays:
        r = model_run(boot, False, worker_delay=d)
        rows.append((round(d * 1000, 3), r["pools_added"], r["transient_pools"], r["failed"]))
    k = kernel_pools(boot)
    return dict(boot=boot, header=("worker delay (ms)", "worker pools", "transient pools", "failures"),
                rows=rows, kernel=(len(k["worker"]), len(k["transient"])))


def delay_sweep_lines(v: dict) -> list:
    return text_table(v["header"], v["rows"], strip=True).splitlines() + [
        f"kernel ({v['boot']}): {v['kernel'][0]} worker pools, {v['kernel'][1]} transient pools"]


register(Experiment("dynamic612-delay-sweep", delay_sweep,
                    "the model's transient pools on D2 by growth-worker delay (0 to 50 ms)",
                    chapter="ch09", seeded=False, lines=delay_sweep_lines, defaults={"boot": "D2"}))
