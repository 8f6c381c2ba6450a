"""Experiments of chapters 7, 8 and 9: dynamic bounce buffers in RFC v1 and in what was merged.

The concern of this module is the seeded or deterministic runs of the model that these
chapters show; :mod:`swiotlb_lib.widgets.dynamic` wires controls to them and
:mod:`swiotlb_lib.plots.dynamic` draws them.  They follow RFC v1 patches 3/4 and 4/4
(cover Message-ID ``cover.1679309810.git.petr.tesarik.ext@huawei.com``: ``swiotlb_find_pool``
over a maple tree, ``swiotlb=...,dynamic``) on the ``rfc-v1`` profile, and the merged
design of 6.6 and 6.11 (``swiotlb_dyn_alloc()`` growth ``1aaa736815eb``, transient pools
``79636caad361``, ``dma_uses_io_tlb`` ``1395706a1490``, the tail cap ``53c87e846e33``,
area-major search across pools ``55c543865b76``) on ``v6.6-dynamic`` and ``v6.11-dynamic``.

Chapter 7: :func:`footprint_run` / :func:`footprint_state` (bytes held for bouncing over
time, driven through the named systems of :mod:`swiotlb_lib.scenarios.systems`),
:func:`lookup_costs`, :func:`tree_levels`, :func:`where_does_it_go` / :func:`where_rows`.
Chapter 8: :func:`parse_one`, :func:`parse_pair`, :func:`parse_rows`, :func:`compat_rows`,
:func:`later_rows`.  Chapter 9: :func:`three_systems`, :func:`compare_lines`,
:func:`oversize_growth`, :func:`transient_demo`, :func:`worker_demo` / :func:`worker_rows`,
:func:`tail_bug`, :func:`search_order`.  Each is registered as an experiment at the end.
"""
from __future__ import annotations

import random
from functools import lru_cache

from ..boot import Machine
from ..cmdline import SwiotlbSetup
from ..constants import DMA_ATTR_MAY_SLEEP, DMA_FROM_DEVICE, DMA_TO_DEVICE, IO_TLB_SHIFT, PAGE_SIZE, KiB, MiB
from ..debug import SEARCH_AREA, observe
from ..report import compare_table, text_table
from ..swiotlb import DmaMappingError
from ..versions import get_profile
from ..report import mib
from . import Experiment, register
from .systems import (Recorder, ScenarioResult, coco_machine, coco_traffic, rpi4_display, rpi4_machine,
                      run_scenario, storage_machine, virtio_blk_requests)

#: Display names of the kernel profiles.
KERNEL_LABELS = {"v6.3rc": "v6.3-rc", "v6.3": "v6.3", "rfc-v1": "RFC v1", "v6.6": "v6.6",
                 "v6.6-dynamic": "v6.6 dynamic", "v6.11": "v6.11", "v6.11-dynamic": "v6.11 dynamic"}



#: Bytes as a short label (``512 B``, ``4 KiB``, ``3.7 MiB``), as the chapters write sizes.
size_label = mib


# =====================================================================================
# Chapter 7: footprint over time
# =====================================================================================

class TimelineRecorder(Recorder):
    """A :class:`~swiotlb_lib.scenarios.systems.Recorder` that also samples
    ``Machine.bounce_bytes()`` after every map and unmap, and notes where maps failed."""

    def __init__(self, m: Machine, res: ScenarioResult) -> None:
        super().__init__(m, res)
        self.events = 0
        self.samples: list[int] = []
        self.fail_at: list[int] = []

    def _tick(self) -> None:
        self.events += 1
        self.samples.append(self.m.bounce_bytes())

    def map(self, dev, paddr, size, dir, attrs=0, cpu=0):
        failed = self.res.failed
        dma = super().map(dev, paddr, size, dir, attrs, cpu)
        self._tick()
        if self.res.failed > failed:
            self.fail_at.append(self.events)
        return dma

    def unmap(self, dev, dma, size, dir, attrs=0):
        super().unmap(dev, dma, size, dir, attrs)
        self._tick()


#: Workload mixes of the footprint experiment: machine, the ``swiotlb=`` options every
#: configuration carries, and what "light" and "heavy" mean for the mix.
MIXES = {
    "storage": dict(
        title="storage: virtio-blk, swiotlb=force",
        what="virtio-blk on a 2 GiB x86 guest booted with swiotlb=force, so every mapping bounces. "
             "Each request maps a 16-byte header, 4 KiB to 256 KiB of data in page runs, a "
             "1-byte status and the indirect descriptor table (the request shape seen in "
             "data/realkernel).",
        opts=["force"], light="queue depth 4", heavy="queue depth 64"),
    "rpi": dict(
        title="Raspberry Pi 4 frames",
        what="Raspberry Pi 4 (4 GiB, CMA 256 MiB): v3d renders a frame, vc4 (1 GiB bus limit) "
             "imports it as a scatter-gather list with DMA_ATTR_MAY_SLEEP; two frames stay on "
             "screen. One failed segment fails the whole import.",
        opts=[], light="FullHD frames (8 294 400 B)", heavy="4K frames (34 MiB)"),
    "coco": dict(
        title="confidential guest",
        what="confidential x86 guest (8 GiB, 8 CPUs): every mapping bounces through decrypted "
             "memory; sizes from the mix measured in a confidential VM (58 % <= 2 KiB, "
             "91 % <= 4 KiB), block and network devices.",
        opts=[], light="32 buffers in flight", heavy="256 buffers in flight"),
}
INTENSITIES = ("light", "heavy")

#: The four configurations: (kernel, pool slots or None for the boot default, dynamic?).
FOOTPRINT_CONFIGS = (("v6.3rc", None, False), ("v6.3rc", 512, False),
                     ("rfc-v1", None, True), ("rfc-v1", 512, True))


def swiotlb_cmdline(nslabs, opts, dynamic: bool) -> str:
    """``swiotlb=<nslabs>,<opts...>[,dynamic]``, or "" when there is nothing to say."""
    parts = ([str(nslabs)] if nslabs else []) + list(opts) + (["dynamic"] if dynamic else [])
    return "swiotlb=" + ",".join(parts) if parts else ""


#: How each mix boots its machine: the named systems' own machines.
MIX_MACHINES = {"storage": storage_machine, "rpi": rpi4_machine, "coco": coco_machine}


def footprint_run(mix: str, intensity: str, kernel: str, nslabs=None, dynamic: bool = False,
                  seed: int = 1) -> dict:
    """Run one workload ``mix`` (see :data:`MIXES`) at ``intensity`` on one configuration
    and return the timeline of bytes held for bouncing plus the run's tallies.

    The mixes are the named systems of :mod:`swiotlb_lib.scenarios.systems`, driven with a
    :class:`TimelineRecorder`: ``storage`` is :func:`~swiotlb_lib.scenarios.systems.virtio_blk_requests`
    (300 requests of 4 to 256 KiB), ``rpi`` is :func:`~swiotlb_lib.scenarios.systems.rpi4_display`
    (10 frames, the last two unmapped at the end), ``coco`` is
    :func:`~swiotlb_lib.scenarios.systems.coco_traffic` (1500 requests, a fixed depth).

    The result has ``label``, ``kernel``, ``cmdline``, ``pool_bytes``, ``samples`` (bytes
    after every map and unmap), ``fail_at`` (event numbers of failed maps), ``attempted``,
    ``failed``, ``failures``, ``peak``/``end`` bytes, ``costs`` and ``extra``."""
    if mix not in MIXES:
        raise ValueError(f"mix: choose one of {', '.join(MIXES)}, got {mix!r}")
    if intensity not in INTENSITIES:
        raise ValueError(f"intensity: 'light' or 'heavy', got {intensity!r}")
    heavy = intensity == "heavy"
    cmdline = swiotlb_cmdline(nslabs, MIXES[mix]["opts"], dynamic)
    m = MIX_MACHINES[mix](kernel, cmdline)
    res = ScenarioResult(mix, kernel, cmdline, seed)
    rec = TimelineRecorder(m, res)
    rng = random.Random(seed)
    extra = {}
    if mix == "storage":
        virtio_blk_requests(rec, m.add_device("virtio-blk"), rng, requests=300,
                            qd=64 if heavy else 4, cpus=m.cpus, sizes=(4096, 16384, 65536, 262144))
    elif mix == "rpi":
        shown = rpi4_display(rec, rng, 34 * MiB if heavy else 1920 * 1080 * 4, frames=10, drain=True)
        extra = {"imports_ok": shown["imports_ok"], "imports_failed": shown["imports_failed"]}
    else:
        depth = 256 if heavy else 32
        coco_traffic(rec, rng, ops=1500, depth=depth, burst_depth=depth, cpu_per_buffer=True)
    rec.finish()
    pool = m.swiotlb.nslabs << IO_TLB_SHIFT
    label = f"{KERNEL_LABELS[kernel]}, {size_label(pool)} pool" + (" + dynamic" if dynamic else "")
    return {"label": label, "kernel": kernel, "cmdline": cmdline, "pool_bytes": pool,
            "dynamic": dynamic, "samples": rec.samples, "fail_at": rec.fail_at,
            "attempted": res.attempted, "failed": res.failed, "failures": dict(res.failures),
            "peak": max(rec.samples, default=pool), "end": rec.samples[-1] if rec.samples else pool,
            "costs": res.costs, "extra": extra}


@lru_cache(maxsize=None)
def footprint_state(mix: str, intensity: str, seed: int = 1) -> tuple:
    """The four :data:`FOOTPRINT_CONFIGS` runs of one mix and intensity (cached)."""
    return tuple(footprint_run(mix, intensity, k, n, d, seed) for k, n, d in FOOTPRINT_CONFIGS)


def footprint_rows(runs) -> list:
    """One summary row per run: configuration, command line, failed/attempted, peak and
    end MiB held for bouncing, dynamic buffers, maple-tree lookups."""
    rows = []
    for r in runs:
        c = r["costs"]
        rows.append([r["label"], r["cmdline"] or "(none)", f"{r['failed']}/{r['attempted']}",
                     f"{r['peak'] / MiB:.1f}", f"{r['end'] / MiB:.1f}", c.get("dyn_buffers", 0),
                     c.get("tree_lookups", 0)])
    return rows


FOOTPRINT_HEADER = ["configuration", "cmdline", "failed", "peak MiB", "end MiB", "dyn bufs", "tree lookups"]


# =====================================================================================
# Chapter 7: what every unmap and sync pays
# =====================================================================================

#: Configurations of the lookup-cost comparison: (label, kernel, cmdline).
LOOKUP_CONFIGS = (("v6.3-rc", "v6.3rc", ""), ("RFC v1, dynamic off", "rfc-v1", ""),
                  ("RFC v1, swiotlb=dynamic", "rfc-v1", "swiotlb=dynamic"),
                  ("v6.6 dynamic", "v6.6-dynamic", ""), ("v6.11 dynamic", "v6.11-dynamic", ""))
#: Counters shown, in order.
LOOKUP_COUNTERS = ("unmap_sync_lookups", "tree_lookups", "tree_node_visits", "dyn_lock_acquisitions",
                   "lookup_steps", "cma_attempts", "page_alloc_orders", "slots_examined",
                   "lock_acquisitions")


def lookup_costs(device: str, ops: int = 200, seed: int = 1) -> dict:
    """Cost counters after ``ops`` rounds of map, ``sync_single_for_cpu`` and unmap of
    16 KiB buffers above 4 GiB by one ``device`` on an 8 GiB x86 machine (SWIOTLB is set
    up because RAM reaches above 4 GiB).

    ``device="nvme"``: 64-bit DMA, never bounces.  ``device="pci32"``: a 32-bit device,
    every buffer above 4 GiB bounces.  Returns ``{config label: costs dict}``."""
    if device not in ("nvme", "pci32"):
        raise ValueError(f"device: 'nvme' or 'pci32', got {device!r}")
    out = {}
    for label, kernel, cmdline in LOOKUP_CONFIGS:
        rng = random.Random(seed)
        m = Machine(ram="8G", cpus=4, cmdline=cmdline, kernel=kernel)
        dev = m.add_device(device)
        for i in range(ops):
            paddr = 0x100000000 + rng.randrange(1 << 16) * PAGE_SIZE
            dma = m.dma.map_single(dev, paddr, 16 * KiB, DMA_FROM_DEVICE, 0, i % 4)
            m.dma.sync_single_for_cpu(dev, dma, 16 * KiB, DMA_FROM_DEVICE)
            m.dma.unmap_single(dev, dma, 16 * KiB, DMA_FROM_DEVICE)
        c = m.swiotlb.costs()
        out[label] = {k: c.get(k, {} if k == "page_alloc_orders" else 0) for k in LOOKUP_COUNTERS}
    return out


def lookup_table(costs_by_config: dict) -> tuple[list, list]:
    """Header and rows (one row per counter) of a :func:`lookup_costs` result."""
    short = {"RFC v1, dynamic off": "RFC off", "RFC v1, swiotlb=dynamic": "RFC dynamic",
             "v6.6 dynamic": "6.6 dyn", "v6.11 dynamic": "6.11 dyn"}
    header = ["counter", *[short.get(k, k) for k in costs_by_config]]
    rows = [[k, *[_fmt_counter(c[k]) for c in costs_by_config.values()]] for k in LOOKUP_COUNTERS]
    return header, rows


def _fmt_counter(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{n} x order {k}" for k, n in v.items()) or "-"
    return str(v)


def tree_levels(live_counts=(1, 16, 17, 256, 257, 1000, 4096), seed: int = 1) -> list:
    """Maple-tree levels walked by one lookup with N live dynamic buffers (RFC v1).

    Maps N one-page buffers with a 32-bit device on an 8 GiB x86 machine with
    ``swiotlb=dynamic`` (each gets its own page from ``dma_direct_alloc_pages``), then
    unmaps one buffer of a 64-bit device that never bounced, and reads how many tree
    nodes that single ``is_swiotlb_buffer`` visited.  Returns ``[(N, levels)]``."""
    out = []
    for n in live_counts:
        m = Machine(ram="8G", cpus=4, cmdline="swiotlb=dynamic", kernel="rfc-v1")
        dev = m.add_device("pci32")
        other = m.add_device("nvme")
        for i in range(n):
            m.dma.map_single(dev, 0x100000000 + i * PAGE_SIZE, PAGE_SIZE, DMA_TO_DEVICE)
        dma = m.dma.map_single(other, 0x180000000, PAGE_SIZE, DMA_TO_DEVICE)
        before = m.swiotlb.costs()["tree_node_visits"]
        m.dma.unmap_single(other, dma, PAGE_SIZE, DMA_TO_DEVICE)
        out.append((n, m.swiotlb.costs()["tree_node_visits"] - before))
    return out


# =====================================================================================
# Chapter 7: where does one mapping go?
# =====================================================================================

#: Sizes offered by the "where does it go" widget.
WHERE_SIZES = (512, 2 * KiB, 4 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 34 * MiB)


def where_does_it_go(size: int, may_sleep: bool = False, kernel: str = "rfc-v1") -> dict:
    """Map one ``size``-byte buffer above 1 GiB for the Raspberry Pi 4 display (vc4, 1 GiB
    bus limit) and say where the bounce buffer came from.

    ``kernel="rfc-v1"`` boots with ``swiotlb=dynamic``; ``may_sleep`` passes
    ``DMA_ATTR_MAY_SLEEP`` (RFC patch 1/4).  Returns ``{"outcome", "detail", "held_mib",
    "log"}`` where ``outcome`` is ``"fixed slots"``, ``"dynamic (buddy)"``,
    ``"dynamic (CMA)"`` or ``"failed"``."""
    if not isinstance(size, int) or not 1 <= size <= 64 * MiB:
        raise ValueError(f"size: must be an integer from 1 to {64 * MiB}, got {size!r}")
    prof = get_profile(kernel)
    cmdline = "swiotlb=dynamic" if prof.option_list else ""
    m = Machine(ram="4G", cpus=4, arch="arm64-rpi4", cmdline=cmdline, kernel=prof)
    vc4 = m.add_device("rpi4-vc4")
    nlines = len(m.log.lines)
    attrs = DMA_ATTR_MAY_SLEEP if may_sleep else 0
    cma_before = m.pages.stats()["cma_used"]
    try:
        dma = m.dma.map_single(vc4, 0x80000000, size, DMA_TO_DEVICE, attrs)
    except DmaMappingError as e:
        return {"outcome": "failed", "short": f"failed ({e.cause})", "detail": f"DMA_MAPPING_ERROR ({e.cause})",
                "held_mib": m.bounce_bytes() / MiB, "log": m.log.lines[nlines:]}
    pool = m.swiotlb.defpool
    costs = m.swiotlb.costs()
    if pool.start <= dma < pool.end:
        slot = (dma - pool.start) >> IO_TLB_SHIFT
        outcome, detail = "fixed slots", f"{-(-size // 2048)} slot(s) from slot {slot} of the boot pool"
        short = f"{-(-size // 2048)} fixed slot(s)"
    elif m.pages.stats()["cma_used"] > cma_before:
        outcome = "dynamic (CMA)"
        detail = f"{size_label(-(-size // PAGE_SIZE) * PAGE_SIZE)} from the CMA area (dma_direct_alloc_pages, GFP_KERNEL)"
        short = "CMA"
    else:
        order = max(costs.get("page_alloc_orders", {0: 0}))
        outcome = "dynamic (buddy)"
        detail = (f"an order-{order} block ({size_label(PAGE_SIZE << order)}) from the buddy allocator, "
                  f"{'GFP_KERNEL' if may_sleep else 'GFP_NOWAIT'}")
        short = f"buddy, order {order}"
    return {"outcome": outcome, "short": short, "detail": detail, "held_mib": m.bounce_bytes() / MiB,
            "log": m.log.lines[nlines:]}


WHERE_HEADER = ["size", "v6.3-rc", "RFC v1 (GFP_NOWAIT)", "RFC v1 (MAY_SLEEP)"]


def where_rows(sizes=WHERE_SIZES) -> list:
    """One row per size: where the bounce buffer comes from on v6.3-rc and on RFC v1
    (``swiotlb=dynamic``) without and with ``DMA_ATTR_MAY_SLEEP``."""
    return [[size_label(s), where_does_it_go(s, False, "v6.3rc")["short"], where_does_it_go(s, False, "rfc-v1")["short"],
             where_does_it_go(s, True, "rfc-v1")["short"]] for s in sizes]


# =====================================================================================
# Chapter 8: the swiotlb= option list
# =====================================================================================

#: The command lines of chapter 8's table and precomputed widget.
PARSE_CMDLINES = ("swiotlb=force", "swiotlb=1000,2,force", "swiotlb=dynamic", "swiotlb=force,dynamic",
                  "swiotlb=512,4,force,dynamic", "swiotlb=force,bogus", "swiotlb=,3", "swiotlb=0x400")
#: Mainline and RFC profiles compared by the parser widgets.
PARSE_KERNELS = ("v6.3rc", "rfc-v1")


def parse_one(cmdline: str, kernel: str, ram: str = "8G", cpus: int = 4) -> dict:
    """Parse ``cmdline`` with the ``swiotlb=`` parser of ``kernel`` and boot a machine with it.

    Returns the parsed fields (``slots``, ``areas``, ``force``, ``noforce``, ``dynamic``;
    ``dynamic`` is None for parsers that have no such option), the lines the parser
    printed, the model's ``warnings`` (what the kernel ignored without a word), the boot
    pool (slots and areas, 0 if none) and the SWIOTLB boot-log lines.  A command line
    the model refuses gives ``error``."""
    prof = get_profile(kernel)
    st = SwiotlbSetup(option_list=prof.option_list)
    try:
        st.parse(cmdline)
        m = Machine(ram=ram, cpus=cpus, cmdline=cmdline, kernel=prof)
    except (ValueError, TypeError) as e:
        return {"kernel": kernel, "error": str(e)}
    pool = m.swiotlb.defpool
    return {"kernel": kernel, "error": None,
            "slots": st.default_nslabs, "areas": st.default_nareas or "CPUs",
            "force": st.force_bounce, "noforce": st.force_disable,
            "dynamic": st.dynamic if prof.option_list else None,
            "parser_said": list(st.log.lines), "warnings": list(st.warnings),
            "pool_slots": pool.nslabs if pool else 0, "pool_areas": pool.nareas if pool else 0,
            "dynamic_on": m.swiotlb.dyn is not None and getattr(m.swiotlb.dyn, "allow_dyn", False),
            "boot_log": m.swiotlb_lines()}


def parse_pair(cmdline: str, ram: str = "8G", cpus: int = 4) -> dict:
    """:func:`parse_one` for the mainline parser (v6.3-rc) and the RFC's."""
    return {k: parse_one(cmdline, k, ram, cpus) for k in PARSE_KERNELS}


PARSE_HEADER = ["cmdline", "parser", "slots", "areas", "force", "noforce", "dynamic", "pool slots",
                "printed / (silent) ignored"]


def parse_rows(cmdlines=PARSE_CMDLINES) -> list:
    """Rows of chapter 8's comparison table: one per command line and parser."""
    rows = []
    for cl in cmdlines:
        for k, r in parse_pair(cl).items():
            if r["error"]:
                rows.append([cl, KERNEL_LABELS[k], "-", "-", "-", "-", "-", "-", "model: " + r["error"]])
                continue
            said = [l.replace("software IO TLB: ", "") for l in r["parser_said"]] + \
                [f"(silent) {short_warning(w)}" for w in r["warnings"]]
            rows.append([cl, KERNEL_LABELS[k], r["slots"], r["areas"], yes_no(r["force"]), yes_no(r["noforce"]),
                         "n/a" if r["dynamic"] is None else yes_no(r["dynamic"]),
                         r["pool_slots"] or "none", "; ".join(said) or "-"])
    return rows


#: Command lines the mainline parser accepts in full (nothing ignored).
MAINLINE_FORMS = ("swiotlb=force", "swiotlb=noforce", "swiotlb=1024", "swiotlb=1024,4", "swiotlb=1024,force",
                  "swiotlb=1024,4,noforce", "swiotlb=,2,force", "swiotlb=0x8000,8")


def compat_rows(forms=MAINLINE_FORMS) -> list:
    """For each command line: do the mainline and the RFC parser agree on slots, areas,
    force and noforce, and does either print or ignore anything?"""
    rows = []
    for cl in forms:
        a, b = (parse_one(cl, k) for k in PARSE_KERNELS)
        keys = ("slots", "areas", "force", "noforce", "pool_slots", "boot_log")
        same = all(a[k] == b[k] for k in keys)
        quiet = not (a["warnings"] or b["warnings"] or b["parser_said"] != a["parser_said"])
        rows.append([cl, "same" if same else "DIFFERENT", "nothing" if quiet else "something"])
    return rows


LATER_KERNELS = ("v6.3rc", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic")


def later_rows(cmdline: str = "swiotlb=force,dynamic") -> list:
    """What kernels before, in and after the RFC make of one command line."""
    rows = []
    for k in LATER_KERNELS:
        r = parse_one(cmdline, k)
        grows = "yes (CONFIG_SWIOTLB_DYNAMIC)" if get_profile(k).dynamic in ("v6.6", "v6.11") and r["pool_slots"] \
            else ("yes (swiotlb=dynamic)" if r["dynamic_on"] else "no")
        rows.append([KERNEL_LABELS[k], yes_no(r["force"]), f"{r['pool_slots']} slots" if r["pool_slots"] else "none",
                     grows, "; ".join(short_warning(w) for w in r["warnings"]) or "-"])
    return rows


def short_warning(w: str) -> str:
    """A model warning in a few words: ``ignored 'force,dynamic'`` or ``1000 -> 1024 slots``."""
    body = w.split(": ", 1)[1] if ": " in w else w
    if " ignored" in body:
        return "ignored " + body.split(" ignored")[0].strip("'")
    if "rounded up to" in body:
        n, rest = body.split(" slots rounded up to ")
        return f"{n} -> {rest.split(' ')[0]} slots"
    return body


def yes_no(b) -> str:
    """``"yes"`` or ``"no"``."""
    return "yes" if b else "no"


# =====================================================================================
# Chapter 9: the merged design
# =====================================================================================

#: Kernels of the side-by-side comparison.
COMPARE_KERNELS = ("v6.3", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic")
#: Scenarios of the comparison and the command line per kernel (None: the scenario's
#: default; rfc-v1 then adds ``dynamic`` by itself).
COMPARE_SCENARIOS = {
    "rpi4-4k": {k: None for k in COMPARE_KERNELS},
    "coco-guest": {"v6.3": None, "rfc-v1": "swiotlb=512,dynamic", "v6.6-dynamic": "swiotlb=512",
                   "v6.11-dynamic": "swiotlb=512"},
    "arm-board-oom": {k: None for k in COMPARE_KERNELS},
}


@lru_cache(maxsize=None)
def three_systems(seed: int = 1) -> dict:
    """``{scenario: [ScenarioResult per kernel in COMPARE_KERNELS]}`` (cached)."""
    return {name: [run_scenario(name, kernel=k, cmdline=cl, seed=seed) for k, cl in cmdlines.items()]
            for name, cmdlines in COMPARE_SCENARIOS.items()}


def key_numbers(r) -> dict:
    """The few numbers of a scenario result the chapters quote."""
    d = {"kernel": r.kernel, "cmdline": r.cmdline or "(none)", "attempted": r.attempted,
         "failed": r.failed, "peak_bounce_mib": round(r.peak_bounce_bytes / MiB, 2),
         "pools_added": r.pools_added, "transient_pools": r.transient_pools, "oom_events": r.oom_events}
    for k in ("imports_ok", "imports_failed", "app_mib_resident"):
        if k in r.extra:
            d[k] = r.extra[k]
    return d


#: Rows of ``compare_table`` that the chapters show (the others are in the CLI's output).
COMPARE_ROWS = ("cmdline", "attempted", "mapped", "failed", "  too_big", "  pool_full", "  no_memory",
                "peak bounce MiB", "end bounce MiB", "transient pools", "pools added", "OOM events",
                "imports_ok", "imports_failed", "app_mib_resident", "cost: worker_kicks", "cost: tree_lookups",
                "cost: lookup_steps")


def compare_lines(results) -> str:
    """``swiotlb_lib.report.compare_table(results)`` restricted to :data:`COMPARE_ROWS`."""
    lines = compare_table(results).splitlines()
    return "\n".join([lines[0]] + [l for l in lines[1:] if l.startswith(COMPARE_ROWS)])


def oversize_growth(kernel: str, requests: int = 6, size: int = 512 * KiB) -> list:
    """Map ``requests`` buffers of ``size`` bytes (over 256 KiB: they can never fit a
    slot run) on a 2 GiB x86 guest with ``swiotlb=force`` (RFC v1: ``swiotlb=force,dynamic``).
    Returns, after each attempt, ``(attempt, MiB held for bouncing, pools added, worker
    kicks, transient pools tried and freed, maps that succeeded)``."""
    cmdline = "swiotlb=force,dynamic" if get_profile(kernel).option_list else "swiotlb=force"
    m = Machine(ram="2G", cpus=2, cmdline=cmdline, kernel=kernel)
    dev = m.add_device("virtio-blk")
    out = [(0, m.bounce_bytes() / MiB, 0, 0, 0, 0)]
    ok = 0
    for i in range(requests):
        m.advance(0.001)
        try:
            m.dma.map_single(dev, 0x10000000 + i * MiB, size, DMA_TO_DEVICE)
            ok += 1
        except DmaMappingError:
            pass
        m.advance(0.001)
        c = m.swiotlb.costs()
        out.append((i + 1, m.bounce_bytes() / MiB, c.get("pools_added", 0), c.get("worker_kicks", 0),
                    c.get("transient_search_failed", 0), ok))
    return out


def transient_demo(kernel: str = "v6.6-dynamic") -> list:
    """A transient pool's life on a 2 GiB x86 guest booted with ``swiotlb=512,force``
    and the worker held back (it never runs): fill the 1 MiB pool with 4 KiB maps, map
    one 24 KiB buffer more, unmap it.  Returns ``[(step, debugfs values, pools of the
    device)]``."""
    m = Machine(ram="2G", cpus=2, cmdline="swiotlb=512,force", kernel=kernel, worker_delay=None)
    dev = m.add_device("virtio-blk")
    steps = [("boot", dict(m.debugfs()), _pools(dev))]
    for i in range(256):
        m.dma.map_single(dev, 0x10000000 + i * PAGE_SIZE, PAGE_SIZE, DMA_TO_DEVICE)
    steps.append(("256 x 4 KiB mapped", dict(m.debugfs()), _pools(dev)))
    dma = m.dma.map_single(dev, 0x20000000, 24 * KiB, DMA_TO_DEVICE)
    steps.append(("one 24 KiB map more", dict(m.debugfs()), _pools(dev)))
    m.dma.unmap_single(dev, dma, 24 * KiB, DMA_TO_DEVICE)
    steps.append(("that buffer unmapped", dict(m.debugfs()), _pools(dev)))
    return steps


def _pools(dev) -> str:
    return ", ".join(f"transient {p.nslabs} slots/{p.nareas} area" for p in dev.dma_io_tlb_pools) or "-"


def worker_demo(cpus: int = 32, pinned_fraction: float = 0.0, seed: int = 1, attempts: int = 400) -> dict:
    """The growth worker on a 2 GiB x86 guest with ``cpus`` CPUs and ``swiotlb=force``
    (a 64 MiB pool): keep mapping 256 KiB buffers (never unmapped) until three pools have
    been added or ``attempts`` maps were tried, and report what the worker added.
    ``pinned_fraction`` > 0 first fragments free memory (``PageAllocator.fragment``:
    that fraction of free pages pinned at seeded random places), so that large free
    blocks become rare.

    Returns ``{"boot_pool": (slots, areas), "added": [(slots, areas)], "maps",
    "failed", "log"}``; ``log`` holds the worker's "Failed to allocate new pool" lines."""
    m = Machine(ram="2G", cpus=cpus, cmdline="swiotlb=force", kernel="v6.6-dynamic")
    if pinned_fraction:
        m.pages.fragment(seed, pinned_fraction)
    largest = m.pages.largest_free_block("DMA32")
    dev = m.add_device("virtio-blk")
    boot = (m.swiotlb.defpool.nslabs, m.swiotlb.defpool.nareas)
    n = failed = 0
    held = []
    while len(m.swiotlb.pools) < 4 and n < attempts:
        try:
            held.append(m.dma.map_single(dev, 0x10000000 + (n % 1024) * 256 * KiB, 256 * KiB, DMA_TO_DEVICE,
                                         0, n % cpus))
        except DmaMappingError:
            failed += 1
        n += 1
        m.advance(0.001)
    added = [(p.nslabs, p.nareas) for p in reversed(m.swiotlb.pools) if p is not m.swiotlb.defpool]
    transient = m.swiotlb.costs().get("transient_pools", 0)
    for dma in held:
        m.dma.unmap_single(dev, dma, 256 * KiB, DMA_TO_DEVICE)
    m.advance(1.0)
    return {"boot_pool": boot, "largest_free_block": largest, "added": added, "maps": n, "failed": failed,
            "transient_pools": transient,
            "pools_after_unmap": len(m.swiotlb.pools), "used_after_unmap": m.swiotlb.debugfs()["io_tlb_used"],
            "mib_held_after_unmap": m.bounce_bytes() / MiB,
            "log": sorted(set(l for l in m.log.lines if "Failed to allocate" in l))}


WORKER_HEADER = ["pinned pages", "largest free block", "pools added (slots/areas)", "256 KiB maps", "failed",
                 "transient pools", "pools after unmap", "MiB held after unmap"]


def worker_rows(fractions=(0.0, 0.01, 0.02, 0.05), cpus: int = 32, seed: int = 1) -> list:
    """:func:`worker_demo` at several fragmentation levels, as table rows."""
    rows = []
    for f in fractions:
        r = worker_demo(cpus=cpus, pinned_fraction=f, seed=seed)
        rows.append([f"{f:.0%}", size_label(r["largest_free_block"]),
                     ", ".join(f"{a}/{b}" for a, b in r["added"]) or "none", r["maps"], r["failed"],
                     r["transient_pools"],
                     r["pools_after_unmap"], f"{r['mib_held_after_unmap']:.0f}"])
    return rows


def tail_bug(kernel: str = "v6.6-dynamic", fixed: bool = False) -> dict:
    """CVE-2023-52790 in the model: a transient pool smaller than 128 slots.

    On a 2 GiB x86 guest with ``swiotlb=512,force`` and the worker held back, fill the
    pool, then map 4 KiB whose original address has bit 11 set (``0x20000800``).  The
    transient pool is exactly 2 slots and page-aligned; v6.6's alignment rule wants bit 11
    of the slot to match the original, so slot 1 is the candidate, and without the tail
    cap (53c87e846e33) its free count still says 127.  ``fixed=True`` adds the cap to
    the profile (as 6.6.3 did).  Returns the pool, the bounce buffer and the overrun."""
    prof = get_profile(kernel)
    if fixed:
        prof = prof.with_name(prof.name + "+53c87e846e33", tail_cap=True)
    m = Machine(ram="2G", cpus=1, cmdline="swiotlb=512,force", kernel=prof, worker_delay=None)
    dev = m.add_device("virtio-blk")
    for i in range(256):
        m.dma.map_single(dev, 0x10000000 + i * PAGE_SIZE, PAGE_SIZE, DMA_TO_DEVICE)
    out = {"kernel": prof.name}
    try:
        dma = m.dma.map_single(dev, 0x20000800, PAGE_SIZE, DMA_TO_DEVICE)
    except DmaMappingError as e:
        c = m.swiotlb.costs()
        return {**out, "mapped": False, "cause": e.cause,
                "transient_tried_and_freed": c.get("transient_search_failed", 0), "log": m.log.lines[-1]}
    pool = dev.dma_io_tlb_pools[0]
    return {**out, "mapped": True, "pool": (pool.start, pool.end, pool.nslabs),
            "buffer": (dma, dma + PAGE_SIZE), "overrun": max(0, dma + PAGE_SIZE - pool.end)}


def search_order(kernel: str, cpu: int = 1) -> list:
    """The (pool, area) order one failing search visits with three full pools.

    A 2 GiB x86 guest with 4 CPUs and ``swiotlb=512,force``: the 1 MiB boot pool has 4
    areas of 128 slots; filling it kicks the worker, which adds 1 MiB pools (4 areas) until
    there are three.  With every slot taken, one more 4 KiB map from ``cpu`` is traced.
    Returns ``[(pool label, area)]`` in visiting order; pool labels are "boot",
    "added 1", "added 2" (in order of creation) and "transient"."""
    m = Machine(ram="2G", cpus=4, cmdline="swiotlb=512,force", kernel=kernel)
    dev = m.add_device("virtio-blk")
    i = 0
    while True:
        m.advance(0.001)
        pools = m.swiotlb.pools
        if len(pools) >= 3 and all(p.used == p.nslabs for p in pools):
            break
        m.dma.map_single(dev, 0x10000000 + i * PAGE_SIZE, PAGE_SIZE, DMA_TO_DEVICE, 0, i % 4)
        i += 1
    m.swiotlb.dyn.worker_delay = None          # keep the pool list as it is while tracing
    names = {p.start: ("boot" if p is m.swiotlb.defpool else None) for p in m.swiotlb.pools}
    added = [p for p in reversed(m.swiotlb.pools) if p is not m.swiotlb.defpool]
    for k, p in enumerate(added, 1):
        names[p.start] = f"added {k}"
    trace: list = []                           # every area search (the SEARCH_AREA hook)
    with observe(SEARCH_AREA, lambda ev: trace.append((ev.pool.start, ev.area))):
        m.dma.map_single(dev, 0x20000000, PAGE_SIZE, DMA_TO_DEVICE, 0, cpu)
    # a pool the search made on the spot is the transient one
    return [(names.get(start, "transient"), area) for start, area in trace]


# =====================================================================================
# What the command line prints, and the registry
# =====================================================================================

def _table(header):
    """A ``lines`` formatter: rows as :func:`~swiotlb_lib.report.text_table` under ``header``."""
    return lambda rows: text_table(header, rows).splitlines()


def tree_lines(levels) -> list[str]:
    """:func:`tree_levels` as chapter 7 prints it."""
    return [f"{n:5d} live buffers -> {v} tree level(s) per lookup" for n, v in levels]


def where_lines(r: dict) -> list[str]:
    """One :func:`where_does_it_go` answer: outcome, detail, bytes held and kernel log."""
    return [f"{r['outcome']}: {r['detail']}", f"bytes held for bouncing now: {r['held_mib']:.2f} MiB",
            *(f"kernel log: {line}" for line in r["log"])]


def systems_lines(systems: dict) -> list[str]:
    """:func:`three_systems` as chapter 9 prints it: one :func:`compare_lines` block per system."""
    out = []
    for name, results in systems.items():
        out += [f"== {name}", *compare_lines(results).splitlines(), ""]
    return out


OVERSIZE_HEADER = ["attempt", "MiB held", "pools added", "worker kicks", "transient pools", "maps ok"]


def oversize_lines(rows) -> list[str]:
    """:func:`oversize_growth` as a table, one row per attempt."""
    return text_table(OVERSIZE_HEADER, [[a, f"{held:.0f}", *rest] for a, held, *rest in rows]).splitlines()


def transient_lines(steps) -> list[str]:
    """:func:`transient_demo` as chapter 9 prints it."""
    return [f"{step:22} {debugfs}  device pools: {pools}" for step, debugfs, pools in steps]


def tail_bug_lines(r: dict) -> list[str]:
    """:func:`tail_bug` as chapter 9 prints it."""
    if not r["mapped"]:
        return [r["kernel"], f"    map fails ({r['cause']}); {r['transient_tried_and_freed']} transient pool "
                             "made and freed"]
    start, end, n = r["pool"]
    return [r["kernel"], f"    transient pool of {n} slots [{start:#x}, {end:#x})",
            f"    bounce buffer [{r['buffer'][0]:#x}, {r['buffer'][1]:#x}): {r['overrun']} bytes past the pool"]


def search_order_lines(order) -> list[str]:
    """:func:`search_order` in chapter 9's notation: ``B`` boot pool, ``1``/``2`` added pools,
    ``t`` transient, then the area."""
    return [" ".join(f"{p.split()[-1][0] if p != 'boot' else 'B'}{a}" for p, a in order)]


for _exp in (
    Experiment("footprint", footprint_state, "memory held for bouncing over time, fixed pool vs RFC v1",
               chapter="ch07", lines=lambda runs: text_table(FOOTPRINT_HEADER, footprint_rows(runs)).splitlines(),
               defaults={"mix": "storage", "intensity": "heavy"}),
    Experiment("lookup-costs-nvme", lookup_costs, "unmap/sync lookup costs of a device that never bounces",
               chapter="ch07", lines=lambda c: text_table(*lookup_table(c)).splitlines(),
               defaults={"device": "nvme"}),
    Experiment("lookup-costs-pci32", lookup_costs, "unmap/sync lookup costs of a 32-bit device that bounces",
               chapter="ch07", lines=lambda c: text_table(*lookup_table(c)).splitlines(),
               defaults={"device": "pci32"}),
    Experiment("tree-levels", tree_levels, "maple-tree levels per lookup against live dynamic buffers",
               chapter="ch07", seeded=False, lines=tree_lines),
    Experiment("where-table", where_rows, "where a vc4 bounce buffer comes from, per size (v6.3-rc, RFC v1)",
               chapter="ch07", seeded=False, lines=_table(WHERE_HEADER)),
    Experiment("where-does-it-go", where_does_it_go, "one 34 MiB vc4 mapping with DMA_ATTR_MAY_SLEEP",
               chapter="ch07", kernels="one", seeded=False, lines=where_lines,
               defaults={"size": 34 * MiB, "may_sleep": True}),
    Experiment("parse-table", parse_rows, "swiotlb= command lines through the mainline and the RFC parser",
               chapter="ch08", seeded=False, lines=_table(PARSE_HEADER)),
    Experiment("parse-compat", compat_rows, "mainline command lines the RFC parser reads the same",
               chapter="ch08", seeded=False, lines=_table(["cmdline", "parsed", "said/ignored"])),
    Experiment("parse-later", later_rows, "swiotlb=force,dynamic on kernels before, in and after the RFC",
               chapter="ch08", seeded=False, lines=_table(["kernel", "force", "boot pool", "can grow", "ignored"])),
    Experiment("parse-cmdline", parse_one, "one command line through one kernel's parser and boot",
               chapter="ch08", kernels="one", seeded=False,
               defaults={"cmdline": "swiotlb=noforce,dynamic", "kernel": "rfc-v1"}),
    Experiment("systems-by-kernel", three_systems, "the three systems on v6.3, RFC v1, 6.6 and 6.11 dynamic",
               chapter="ch09", lines=systems_lines),
    Experiment("oversize-growth", oversize_growth, "memory held after each failed 512 KiB request",
               chapter="ch09", kernels="one", seeded=False, lines=oversize_lines,
               defaults={"kernel": "v6.6-dynamic"}),
    Experiment("transient-pool", transient_demo, "a transient pool's life with the worker held back",
               chapter="ch09", kernels="one", seeded=False, lines=transient_lines),
    Experiment("growth-worker", worker_rows, "what the growth worker adds, against free-memory fragmentation",
               chapter="ch09", lines=_table(WORKER_HEADER)),
    Experiment("tail-bug", tail_bug, "CVE-2023-52790: a bounce buffer past a 2-slot transient pool",
               chapter="ch09", kernels="one", seeded=False, lines=tail_bug_lines),
    Experiment("tail-bug-fixed", tail_bug, "the same with the tail cap 53c87e846e33",
               chapter="ch09", kernels="one", seeded=False, lines=tail_bug_lines, defaults={"fixed": True}),
    Experiment("search-order", search_order, "the (pool, area) order of one failing search, 3 full pools",
               chapter="ch09", kernels="one", seeded=False, lines=search_order_lines,
               defaults={"kernel": "v6.11-dynamic"}),
):
    register(_exp)
