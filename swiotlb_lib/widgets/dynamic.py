"""Dynamic bounce buffers (chapters 7, 8, 9 and 11): model experiments and their widgets.

Two parts:

*Experiments* -- small, seeded runs of the model that the chapters show.  They belong
with the scenarios in :mod:`swiotlb_lib.workloads`, but that module is not ours to edit,
so they live here (see each function's docstring for what it runs):

* :func:`footprint_run` / :func:`footprint_state` -- bytes held for bouncing
  (``Machine.bounce_bytes()``) sampled after every map and unmap of a workload mix, on
  v6.3-rc with its fixed pool and on RFC v1 with ``swiotlb=...,dynamic`` (chapter 7);
* :func:`lookup_costs` -- the cost counters of the unmap/sync path for a device that
  never bounces and one that does (chapter 7, Christoph Hellwig's overhead concern);
* :func:`tree_levels` -- maple-tree levels walked per lookup with N live buffers;
* :func:`where_does_it_go` -- one mapping on a Raspberry Pi 4: fixed slots, a dynamic
  buffer from the buddy allocator or CMA, or a failure;
* :func:`parse_pair` -- one command line through the mainline and the RFC parsers;
* :func:`three_systems`, :func:`oversize_growth`, :func:`transient_demo`,
  :func:`worker_demo`, :func:`tail_bug`, :func:`search_order` -- the merged design
  (chapter 9);
* :func:`claims` -- the cover-letter claims and the model's evidence (chapter 11).

*Widgets* -- :func:`footprint_widget`, :func:`parse_widget`, :func:`compare_widget`
and :func:`claim_explorer` are precomputed (they work on the static page);
:func:`where_live` and :func:`parse_live` need a kernel.  :data:`LIVE_CALLBACKS` lists
the live callbacks with typical arguments for the timing benchmark.
"""
from __future__ import annotations

import html
import random
from functools import lru_cache

import ipywidgets as W

from ..boot import Machine
from ..cmdline import SwiotlbSetup
from ..constants import (DMA_ATTR_MAY_SLEEP, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL,
                         DMA_FROM_DEVICE, DMA_TO_DEVICE, IO_TLB_SHIFT, PAGE_SIZE)
from ..debug import SEARCH_AREA, observe
from ..swiotlb import DmaMappingError
from ..versions import get_profile
from ..workloads import Recorder, ScenarioResult, run_scenario, scattered_buffer, virtio_blk_requests
from ..workloads import _size_mix as coco_size
from ..plots import dynamic as P
from ..plots.common import img_html as _img_html, mib
from .common import live, precomputed

MiB = 1 << 20
KiB = 1 << 10

#: Display names of the kernel profiles.
KERNEL_LABELS = {"v6.3rc": "v6.3-rc", "v6.3": "v6.3", "rfc-v1": "RFC v1", "v6.6": "v6.6",
                 "v6.6-dynamic": "v6.6 dynamic", "v6.11": "v6.11", "v6.11-dynamic": "v6.11 dynamic"}


def img_html(fig, alt: str) -> str:
    """:func:`swiotlb_lib.plots.common.img_html`, scaled down to the page width if needed."""
    return _img_html(fig, alt).replace("<img ", '<img style="max-width:100%;height:auto" ', 1)


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def html_table(header, rows, caption: str = "") -> str:
    """A small HTML table (used inside widget states)."""
    cap = f"<caption style='caption-side:top;text-align:left'><b>{_esc(caption)}</b></caption>" if caption else ""
    th = "".join(f"<th style='padding:2px 8px;text-align:left'>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{_esc(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table style='border-collapse:collapse;font-size:90%'>{cap}<tr>{th}</tr>{body}</table>"


def text_table(header, rows) -> str:
    """The same rows as fixed-width text (for printed, nbval-checked cell outputs)."""
    table = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in table)


# =====================================================================================
# Chapter 7: footprint over time
# =====================================================================================

class TimelineRecorder(Recorder):
    """A :class:`~swiotlb_lib.workloads.Recorder` that also samples
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


def _rpi(rec: TimelineRecorder, rng: random.Random, nbytes: int, frames: int = 10) -> dict:
    m = rec.m
    v3d = m.add_device("rpi4-v3d")
    vc4 = m.add_device("rpi4-vc4")
    attrs = DMA_ATTR_SKIP_CPU_SYNC | DMA_ATTR_MAY_SLEEP
    live_frames, ok, bad = [], 0, 0

    def retire(blocks, v, mp):
        for d, k in mp or []:
            rec.unmap(vc4, d, k, DMA_BIDIRECTIONAL, attrs)
        for d, k in v or []:
            rec.unmap(v3d, d, k, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
        for p in blocks:
            m.pages.free_pages(p, 0)

    for f in range(frames):
        blocks, runs = scattered_buffer(m, rng, nbytes)
        v = rec.map_sg(v3d, runs, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
        mp = rec.map_sg(vc4, runs, DMA_BIDIRECTIONAL, attrs, cpu=f % 4)
        ok += mp is not None
        bad += mp is None
        live_frames.append((blocks, v, mp))
        if len(live_frames) > 2:
            retire(*live_frames.pop(0))
    for fr in live_frames:
        retire(*fr)
    return {"imports_ok": ok, "imports_failed": bad}


def _coco(rec: TimelineRecorder, rng: random.Random, depth: int, ops: int = 1500) -> None:
    m = rec.m
    blk = m.add_device("virtio-coco", "0000:00:03.0")
    net = m.add_device("virtio-coco", "0000:00:04.0")
    maxmap = m.swiotlb.max_mapping_size(blk)
    inflight = []
    for _ in range(ops):
        size = coco_size(rng)
        dev = net if size <= 4096 and rng.random() < 0.7 else blk
        d = rng.choice([DMA_TO_DEVICE, DMA_FROM_DEVICE])
        pieces = [size] if dev is net else [min(maxmap, size - k) for k in range(0, size, maxmap)]
        for n in pieces:
            dma = rec.map(dev, 0x10000000 + rng.randrange(1 << 16) * PAGE_SIZE, n, d, 0, rng.randrange(m.cpus))
            if dma is not None:
                inflight.append((dev, dma, n, d))
        while len(inflight) > depth:
            dv, dma, n, dd = inflight.pop(rng.randrange(len(inflight)))
            rec.unmap(dv, dma, n, dd)
    for dv, dma, n, dd in inflight:
        rec.unmap(dv, dma, n, dd)


def footprint_run(mix: str, intensity: str, kernel: str, nslabs=None, dynamic: bool = False,
                  seed: int = 1) -> dict:
    """Run one workload ``mix`` (see :data:`MIXES`) at ``intensity`` on one configuration
    and return the timeline of bytes held for bouncing plus the run's tallies.

    The result has ``label``, ``kernel``, ``cmdline``, ``pool_bytes``, ``samples`` (bytes
    after every map and unmap), ``fail_at`` (event numbers of failed maps), ``attempted``,
    ``failed``, ``failures``, ``peak``/``end`` bytes, ``costs`` and ``extra``."""
    if mix not in MIXES:
        raise ValueError(f"mix: choose one of {', '.join(MIXES)}, got {mix!r}")
    if intensity not in INTENSITIES:
        raise ValueError(f"intensity: 'light' or 'heavy', got {intensity!r}")
    heavy = intensity == "heavy"
    cmdline = swiotlb_cmdline(nslabs, MIXES[mix]["opts"], dynamic)
    if mix == "storage":
        m = Machine(ram="2G", cpus=2, cmdline=cmdline, kernel=kernel)
    elif mix == "rpi":
        m = Machine(ram="4G", cpus=4, arch="arm64-rpi4", cmdline=cmdline, kernel=kernel)
    else:
        m = Machine(ram="8G", cpus=8, mem_encrypt=True, cmdline=cmdline, kernel=kernel)
    res = ScenarioResult(mix, kernel, cmdline, seed)
    rec = TimelineRecorder(m, res)
    rng = random.Random(seed)
    extra = {}
    if mix == "storage":
        virtio_blk_requests(rec, m.add_device("virtio-blk"), rng, requests=300,
                            qd=64 if heavy else 4, cpus=m.cpus, sizes=(4096, 16384, 65536, 262144))
    elif mix == "rpi":
        extra = _rpi(rec, rng, 34 * MiB if heavy else 1920 * 1080 * 4)
    else:
        _coco(rec, rng, 256 if heavy else 32)
    rec.finish()
    pool = m.swiotlb.nslabs << IO_TLB_SHIFT
    label = f"{KERNEL_LABELS[kernel]}, {mib(pool)} pool" + (" + dynamic" if dynamic else "")
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
        detail = f"{mib(-(-size // PAGE_SIZE) * PAGE_SIZE)} from the CMA area (dma_direct_alloc_pages, GFP_KERNEL)"
        short = "CMA"
    else:
        order = max(costs.get("page_alloc_orders", {0: 0}))
        outcome = "dynamic (buddy)"
        detail = (f"an order-{order} block ({mib(PAGE_SIZE << order)}) from the buddy allocator, "
                  f"{'GFP_KERNEL' if may_sleep else 'GFP_NOWAIT'}")
        short = f"buddy, order {order}"
    return {"outcome": outcome, "short": short, "detail": detail, "held_mib": m.bounce_bytes() / MiB,
            "log": m.log.lines[nlines:]}


WHERE_HEADER = ["size", "v6.3-rc", "RFC v1 (GFP_NOWAIT)", "RFC v1 (MAY_SLEEP)"]


def where_rows(sizes=WHERE_SIZES) -> list:
    """One row per size: where the bounce buffer comes from on v6.3-rc and on RFC v1
    (``swiotlb=dynamic``) without and with ``DMA_ATTR_MAY_SLEEP``."""
    return [[mib(s), where_does_it_go(s, False, "v6.3rc")["short"], where_does_it_go(s, False, "rfc-v1")["short"],
             where_does_it_go(s, True, "rfc-v1")["short"]] for s in sizes]


def render_where(size: int, may_sleep: bool, kernel: str) -> str:
    """HTML for the live "where does it go" widget."""
    r = where_does_it_go(size, may_sleep, kernel)
    color = "#d62828" if r["outcome"] == "failed" else "#2a9d8f"
    log = "<br>".join(_esc(l) for l in r["log"]) or "(nothing logged)"
    return (f"<p>{_esc(KERNEL_LABELS[kernel])}, {mib(size)} buffer, "
            f"{'with' if may_sleep else 'without'} DMA_ATTR_MAY_SLEEP:<br>"
            f"<b style='color:{color}'>{_esc(r['outcome'])}</b>: {_esc(r['detail'])}<br>"
            f"bytes held for bouncing now: {r['held_mib']:.2f} MiB<br>"
            f"<small>kernel log: <code>{log}</code></small></p>")


def where_live() -> W.VBox:
    """Kernel-only widget: pick a size, MAY_SLEEP and a kernel; see where the bounce
    buffer comes from."""
    size = W.SelectionSlider(options=[(mib(s), s) for s in WHERE_SIZES], value=1 * MiB,
                             description="buffer size", style={"description_width": "initial"})
    sleep = W.Checkbox(value=False, description="DMA_ATTR_MAY_SLEEP")
    kern = W.ToggleButtons(options=[("v6.3-rc", "v6.3rc"), ("RFC v1", "rfc-v1")], value="rfc-v1")
    return live({"size": size, "may_sleep": sleep, "kernel": kern}, render_where,
                "Where does a vc4 bounce buffer come from? (Raspberry Pi 4)")


# =====================================================================================
# Chapter 7: the footprint widget
# =====================================================================================

def footprint_options() -> list:
    """The widget's states: ``"<mix> / <intensity>"``."""
    return [f"{mix} / {i}" for mix in MIXES for i in INTENSITIES]


def render_footprint(option: str) -> str:
    mix, intensity = option.split(" / ")
    runs = footprint_state(mix, intensity)
    spec = MIXES[mix]
    fig = P.plot_footprint(runs, f"{spec['title']}, {intensity} ({spec[intensity]})")
    alt = (f"Bytes held for bouncing over time for the {spec['title']} workload, {intensity}: "
           + "; ".join(f"{r['label']} peaks at {r['peak'] / MiB:.1f} MiB with {r['failed']} failed maps"
                       for r in runs))
    return (img_html(fig, alt) + f"<p><small>{_esc(spec['what'])} {_esc(intensity)}: {_esc(spec[intensity])}."
            "</small></p>" + html_table(FOOTPRINT_HEADER, footprint_rows(runs)))


def footprint_widget(value: str = "storage / heavy") -> W.VBox:
    """Main widget of chapter 7 (precomputed): workload mix and intensity -> footprint
    timeline, failures and tree lookups for the four configurations."""
    return precomputed(footprint_options(), render_footprint, "workload / intensity",
                       value=value, kind="dropdown")


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
            rows.append([cl, KERNEL_LABELS[k], r["slots"], r["areas"], _yn(r["force"]), _yn(r["noforce"]),
                         "n/a" if r["dynamic"] is None else _yn(r["dynamic"]),
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
        rows.append([KERNEL_LABELS[k], _yn(r["force"]), f"{r['pool_slots']} slots" if r["pool_slots"] else "none",
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


def _yn(b) -> str:
    return "yes" if b else "no"


def _render_parse_one(r: dict) -> str:
    name = KERNEL_LABELS[r["kernel"]] + (" (option-list parser)" if r["kernel"] == "rfc-v1" else " (mainline parser)")
    if r["error"]:
        return f"<div><b>{_esc(name)}</b><p style='color:#d62828'>model refuses: {_esc(r['error'])}</p></div>"
    rows = [["slots", r["slots"]], ["areas", r["areas"]], ["force", _yn(r["force"])],
            ["noforce", _yn(r["noforce"])],
            ["dynamic", "no such option" if r["dynamic"] is None else _yn(r["dynamic"])],
            ["boot pool", f"{r['pool_slots']} slots, {r['pool_areas']} areas" if r["pool_slots"] else "none"],
            ["dynamic buffers allowed", _yn(r["dynamic_on"])]]
    warn = "".join(f"<li style='color:#d62828'>ignored without a word: {_esc(w)}</li>" for w in r["warnings"])
    log = "\n".join(_esc(l) for l in r["boot_log"])
    return (f"<div style='flex:1;min-width:280px'><b>{_esc(name)}</b>" + html_table(["", "value"], rows)
            + (f"<ul>{warn}</ul>" if warn else "<p><small>nothing ignored</small></p>")
            + "<small>boot log (SWIOTLB lines):</small>"
            + f"<pre style='font-size:75%;white-space:pre-wrap;margin:2px 0'>{log}</pre></div>")


def render_parse(cmdline: str, ram: str = "8G") -> str:
    """Side-by-side HTML of the mainline and the RFC parse of ``cmdline`` (both widgets)."""
    pair = parse_pair(cmdline, ram=ram)
    return ("<div style='display:flex;gap:24px;flex-wrap:wrap'>"
            + "".join(_render_parse_one(r) for r in pair.values()) + "</div>")


def parse_widget(value: str = "swiotlb=force,dynamic") -> W.VBox:
    """Precomputed: pick one of :data:`PARSE_CMDLINES`; mainline and RFC side by side."""
    return precomputed(PARSE_CMDLINES, render_parse, "command line", value=value, kind="dropdown")


def parse_live() -> W.VBox:
    """Kernel-only: type any command line; mainline and RFC parses side by side."""
    text = W.Text(value="swiotlb=512,4,force,dynamic", description="kernel command line",
                  continuous_update=False, layout=W.Layout(width="480px"),
                  style={"description_width": "initial"})
    ram = W.ToggleButtons(options=["2G", "8G"], value="8G", description="RAM")
    return live({"cmdline": text, "ram": ram}, render_parse, "Type a command line")


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


#: Kernel sets of the comparison widget.
KERNEL_SETS = {"v6.3 vs RFC v1": ("v6.3", "rfc-v1"),
               "v6.3 vs merged": ("v6.3", "v6.6-dynamic", "v6.11-dynamic"),
               "all four": COMPARE_KERNELS}


def compare_options() -> list:
    return [f"{s} / {ks}" for s in COMPARE_SCENARIOS for ks in KERNEL_SETS]


#: Rows of ``compare_table`` that the chapters show (the others are in the CLI's output).
COMPARE_ROWS = ("cmdline", "attempted", "mapped", "failed", "  too_big", "  pool_full", "  no_memory",
                "peak bounce MiB", "end bounce MiB", "transient pools", "pools added", "OOM events",
                "imports_ok", "imports_failed", "app_mib_resident", "cost: worker_kicks", "cost: tree_lookups",
                "cost: lookup_steps")


def compare_lines(results) -> str:
    """``swiotlb_lib.report.compare_table(results)`` restricted to :data:`COMPARE_ROWS`."""
    from ..report import compare_table
    lines = compare_table(results).splitlines()
    return "\n".join([lines[0]] + [l for l in lines[1:] if l.startswith(COMPARE_ROWS)])


def render_compare(option: str) -> str:
    scen, kset = option.split(" / ")
    results = [r for r in three_systems()[scen] if r.kernel in KERNEL_SETS[kset]]
    fig = P.plot_scenario_bars(results, scen)
    alt = f"{scen}: " + "; ".join(f"{KERNEL_LABELS[r.kernel]} {r.failed} failed of {r.attempted}, "
                                  f"peak {r.peak_bounce_bytes / MiB:.1f} MiB held" for r in results)
    return img_html(fig, alt) + "<pre style='font-size:80%'>" + _esc(compare_lines(results)) + "</pre>"


def compare_widget(value: str = "rpi4-4k / all four") -> W.VBox:
    """Main widget of chapter 9 (precomputed): scenario x kernel set -> table and plot."""
    return precomputed(compare_options(), render_compare, "scenario / kernels", value=value,
                       kind="dropdown")


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


def worker_rows(fractions=(0.0, 0.01, 0.02, 0.05), cpus: int = 32) -> list:
    """:func:`worker_demo` at several fragmentation levels, as table rows."""
    rows = []
    for f in fractions:
        r = worker_demo(cpus=cpus, pinned_fraction=f)
        rows.append([f"{f:.0%}", mib(r["largest_free_block"]),
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
# Chapter 11: the claim explorer
# =====================================================================================

#: The claims of the explorer, in order: (key, short title, what the cover letter says,
#: in our words).
CLAIMS = (
    ("rpi", "Raspberry Pi 4 frames cannot be bounced",
     "dma-buf frames from v3d to vc4 (8 MiB FullHD, 34 MiB 4K) exceed the 256 KiB segment "
     "limit, so SWIOTLB cannot handle them."),
    ("coco", "6 % of RAM is only a guess for confidential guests",
     "SEV sizes SWIOTLB at 6 % of memory, an approximation: real needs depend on the I/O "
     "and the drivers, which are not known at boot."),
    ("oom", "A smaller SWIOTLB avoids OOM kills on an Arm board",
     "Colleagues got rid of OOM kills on an embedded Arm device by shrinking SWIOTLB; a "
     "pool that starts small and grows would spare them the sizing."),
    ("off", "Zero impact when the patches are applied but not enabled",
     "Petr's follow-up (630334b5-05d0-0152-7c2c-79174703f0ed@huaweicloud.com): with the "
     "series applied and swiotlb=dynamic not given, nothing changes."),
    ("cost", "Some slowdown is acceptable when dynamic buffers are enabled",
     "The cover letter asks how to measure the performance impact; the follow-up proposes "
     "to accept some slowdown when the feature is opted in."),
)


@lru_cache(maxsize=None)
def claim_evidence(key: str) -> dict:
    """The model's numbers for one claim (see :data:`CLAIMS`); cached."""
    if key == "rpi":
        rows = []
        known = {r.kernel: r for r in three_systems()["rpi4-4k"]}
        for name in ("rpi4-fullhd", "rpi4-4k"):
            for k in ("v6.3", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic"):
                r = known[k] if name == "rpi4-4k" else run_scenario(name, kernel=k)
                rows.append((name, k, r.extra["imports_ok"], r.extra["imports_failed"],
                             round(r.peak_bounce_bytes / MiB, 1)))
        return {"header": ["scenario", "kernel", "imports ok", "imports failed", "peak MiB held"], "rows": rows}
    if key == "coco":
        rows = []
        for intensity in INTENSITIES:
            for r in footprint_state("coco", intensity):
                rows.append((intensity, r["label"], r["pool_bytes"] // MiB, round(r["peak"] / MiB, 1),
                             r["failed"], r["attempted"]))
        return {"header": ["load", "configuration", "pool MiB", "peak MiB held", "failed", "attempted"],
                "rows": rows}
    if key == "oom":
        rows = []
        for r in three_systems()["arm-board-oom"]:
            rows.append((r.kernel, r.cmdline or "(none)", round(r.peak_bounce_bytes / MiB, 1), r.oom_events,
                         r.extra["app_mib_resident"], r.failed))
        return {"header": ["kernel", "cmdline", "peak MiB held", "OOM events", "app MiB resident",
                           "failed maps"], "rows": rows}
    if key == "off":
        rows = []
        for device in ("nvme", "pci32"):
            costs = lookup_costs(device)
            for label in ("v6.3-rc", "RFC v1, dynamic off"):
                c = costs[label]
                rows.append((device, label, c["unmap_sync_lookups"], c["tree_lookups"], c["slots_examined"],
                             c["lock_acquisitions"]))
        a = run_scenario("storage", kernel="v6.3rc", cmdline="swiotlb=1024,force").to_dict()
        b = run_scenario("storage", kernel="rfc-v1", cmdline="swiotlb=1024,force").to_dict()
        same = all(a[k] == b[k] for k in a if k not in ("kernel", "costs")) and \
            all(a["costs"][k] == b["costs"].get(k) for k in a["costs"])
        return {"header": ["device", "configuration", "unmap/sync lookups", "tree lookups", "slots examined",
                           "area lock acquisitions"], "rows": rows,
                "note": f"storage scenario (swiotlb=1024,force), v6.3-rc vs RFC v1 without dynamic: "
                        f"{'identical' if same else 'DIFFERENT'} results and cost counters"}
    if key == "cost":
        rows = []
        for device in ("nvme", "pci32"):
            for label, c in lookup_costs(device).items():
                if label == "RFC v1, dynamic off":
                    continue
                rows.append((device, label, c["unmap_sync_lookups"], c["tree_lookups"], c["tree_node_visits"],
                             c["dyn_lock_acquisitions"], sum(c["page_alloc_orders"].values()),
                             c["lookup_steps"]))
        return {"header": ["device", "configuration", "unmap/sync lookups", "tree lookups", "tree node visits",
                           "dyn lock acquisitions", "page allocations", "pool-walk steps"], "rows": rows}
    raise ValueError(f"key: one of {', '.join(k for k, *_ in CLAIMS)}, got {key!r}")


def claim_summary_rows() -> list:
    """One row per claim: the claim and the model's answer in one line, from :func:`claim_evidence`."""
    rows = []
    ev = claim_evidence("rpi")["rows"]
    four_k = {r[1]: f"{r[2]}/{r[2] + r[3]}" for r in ev if r[0] == "rpi4-4k"}
    rows.append([CLAIMS[0][1], "4K frames imported: " + ", ".join(f"{KERNEL_LABELS[k]} {v}" for k, v in four_k.items())])
    ev = claim_evidence("coco")["rows"]
    big = next(r for r in ev if r[0] == "heavy" and r[1].startswith("v6.3-rc") and r[2] > 64)
    small = [r for r in ev if r[0] == "heavy" and r[2] < 64]
    v63 = next(r for r in three_systems()["coco-guest"] if r.kernel == "v6.3")
    rows.append([CLAIMS[1][1], f"6 % pool: {big[2]} MiB, of which at most {v63.peak_used_slots * 2048 / MiB:.1f} MiB "
                 f"in use at once (coco-guest scenario); with a small pool under heavy load: "
                 + ", ".join(f"{r[1]}: {r[4]} failed" for r in small)])
    ev = claim_evidence("oom")["rows"]
    rows.append([CLAIMS[2][1], ", ".join(f"{KERNEL_LABELS[r[0]]}: {r[3]} OOM events, {r[2]} MiB held" for r in ev)])
    rows.append([CLAIMS[3][1], claim_evidence("off")["note"]])
    ev = claim_evidence("cost")["rows"]
    n = next(r for r in ev if r[0] == "nvme" and r[1].startswith("RFC"))
    b = next(r for r in ev if r[0] == "pci32" and r[1].startswith("RFC"))
    rows.append([CLAIMS[4][1], f"RFC with dynamic on: {n[3]} tree lookups for {n[2]} unmap/sync calls of a device "
                 f"that never bounces; {b[3]} tree lookups, {b[5]} lock acquisitions and {b[6]} page allocations "
                 f"for {b[2] // 2} rounds of one that does"])
    return rows


MAY_SLEEP_HEADER = ["scenario", "MAY_SLEEP", "frames", "failed maps", "largest segment", "peak MiB"]


def may_sleep_rows() -> list:
    """RFC v1 patch 1/4 in numbers: the Raspberry Pi scenarios on rfc-v1 with and without
    ``DMA_ATTR_MAY_SLEEP``."""
    rows = []
    for name in ("rpi4-fullhd", "rpi4-4k"):
        for ms in (True, False):
            r = run_scenario(name, kernel="rfc-v1", may_sleep=ms)
            rows.append([name, "yes" if ms else "no", f"{r.extra['imports_ok']}/{r.extra['imports_ok'] + r.extra['imports_failed']}",
                         r.failed, mib(r.extra["largest_segment"]), f"{r.peak_bounce_bytes / MiB:.0f}"])
    return rows


def claim_summary_text(width: int = 88) -> str:
    """:func:`claim_summary_rows` as wrapped text."""
    import textwrap
    out = []
    for claim, answer in claim_summary_rows():
        out.append("* " + claim)
        out.append(textwrap.fill(answer, width, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(out)


def render_claim(title: str) -> str:
    key, _, said = next(c for c in CLAIMS if c[1] == title)
    ev = claim_evidence(key)
    fig, alt = P.plot_claim(key, ev)
    note = f"<p>{_esc(ev['note'])}</p>" if ev.get("note") else ""
    return (f"<p><b>Claim:</b> {_esc(said)}</p>" + img_html(fig, alt) + note
            + html_table(ev["header"], ev["rows"], "model evidence"))


def claim_explorer(value: str | None = None) -> W.VBox:
    """Main widget of chapter 11 (precomputed): pick a claim -> the model's evidence."""
    titles = [c[1] for c in CLAIMS]
    return precomputed(titles, render_claim, "claim", value=value or titles[0], kind="dropdown")


SCORE_KERNELS = ("v6.3", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic")
SCORE_ROWS = ("RPi 4: 4K frames shown", "CoCo guest, 8 GiB", "Arm board: OOM kills",
              "never-bouncing device,\n400 unmap/sync calls", "512 KiB request")


def scorecard() -> tuple:
    """Chapter 11's summary: ``(cells, rows, cols)`` for :func:`~swiotlb_lib.plots.dynamic.plot_scorecard`,
    every cell ``(verdict, text)`` computed from the experiments above."""
    sysr = {name: {r.kernel: r for r in res} for name, res in three_systems().items()}
    nvme = lookup_costs("nvme")
    nvme_by_kernel = {"v6.3": nvme["v6.3-rc"], "rfc-v1": nvme["RFC v1, swiotlb=dynamic"],
                      "v6.6-dynamic": nvme["v6.6 dynamic"], "v6.11-dynamic": nvme["v6.11 dynamic"]}
    cells = {}
    cols = [KERNEL_LABELS[k] for k in SCORE_KERNELS]
    for k, col in zip(SCORE_KERNELS, cols):
        r = sysr["rpi4-4k"][k]
        ok = r.extra["imports_ok"]
        cells[(SCORE_ROWS[0], col)] = ("good" if ok == r.extra["imports_ok"] + r.extra["imports_failed"] else "bad",
                                       f"{ok} of {ok + r.extra['imports_failed']}")
        r = sysr["coco-guest"][k]
        held = r.peak_bounce_bytes / MiB
        verdict = "bad" if r.failed and held < 64 else ("mixed" if held >= 64 else "good")
        cells[(SCORE_ROWS[1], col)] = (verdict, f"{r.failed} failed\n{held:.0f} MiB held")
        r = sysr["arm-board-oom"][k]
        cells[(SCORE_ROWS[2], col)] = ("bad" if r.oom_events else "good",
                                       f"{r.oom_events} OOM\n{r.peak_bounce_bytes / MiB:.0f} MiB held")
        c = nvme_by_kernel[k]
        extra = c["tree_lookups"] + c["lookup_steps"]
        cells[(SCORE_ROWS[3], col)] = ("bad" if c["tree_lookups"] else "good",
                                       f"{c['tree_lookups']} tree lookups" if c["tree_lookups"]
                                       else f"{extra} extra steps")
        growth = oversize_growth(k)
        g = growth[-1]
        added = g[1] - growth[0][1]
        if g[5]:
            cells[(SCORE_ROWS[4], col)] = ("good", f"served ({g[5]} of {g[0]})")
        else:
            cells[(SCORE_ROWS[4], col)] = ("bad" if added else "n/a",
                                           f"fails, +{added:.0f} MiB\nnever freed" if added else "fails, +0 MiB")
    return cells, list(SCORE_ROWS), cols


def scorecard_text(cells, rows, cols) -> str:
    """The scorecard as text: one block per question, one line per kernel."""
    out = []
    for r in rows:
        out.append(r.replace("\n", " "))
        for c in cols:
            verdict, text = cells[(r, c)]
            out.append(f"    {c:14} {verdict:6} {text.replace(chr(10), ', ')}")
    return "\n".join(out)


#: Live callbacks and typical arguments, for the 250 ms benchmark.
LIVE_CALLBACKS = {
    "where_does_it_go": (render_where, {"size": 34 * MiB, "may_sleep": True, "kernel": "rfc-v1"}),
    "parse_live": (render_parse, {"cmdline": "swiotlb=512,4,force,dynamic", "ram": "8G"}),
}
