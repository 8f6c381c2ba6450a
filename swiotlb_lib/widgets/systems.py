"""Chapter 4, "Three systems the fixed pool fails": the data behind its tables, figures
and widgets, and the widgets themselves.

The cover letter of the RFC (cover.1679309810.git.petr.tesarik.ext@huawei.com) names
three assumptions of the fixed pool and three systems that break them.  Each part here
runs the model on one of them:

(a) a confidential guest -- :func:`coco_sizing`, :func:`coco_need`, :func:`coco_widget`,
    :func:`coco_live`;
(b) the Raspberry Pi 4 display path -- :func:`frame_bytes`, :func:`rpi_frame`,
    :func:`rpi_widget`;
(c) a small Arm board -- :func:`board_run`, :func:`board_rows`, :func:`board_widget`.

The data functions are small wrappers over :class:`~swiotlb_lib.boot.Machine` and
:func:`~swiotlb_lib.workloads.run_scenario`; they live here because no other library
module offers them (chapter 4 is their only user).  Results are cached: the chapter's
figures and widgets share runs.
"""
from __future__ import annotations

import html
import random
from functools import lru_cache

import ipywidgets as W

from ..boot import Machine, coco_swiotlb_size
from ..cmdline import SwiotlbSetup
from ..constants import (DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, IO_TLB_SEGMENT_BYTES,
                         IO_TLB_SHIFT, GiB, MiB)
from ..debug import KernelLog
from ..memory import layout_for
from ..plots import systems as P
from ..plots.common import img_html, mib
from ..swiotlb import DmaMappingError
from ..scenarios.systems import run_scenario, scattered_buffer
from .common import live, precomputed



def _pre(lines) -> str:
    return "<pre style='font-size:85%;line-height:1.25'>" + html.escape("\n".join(lines)) + "</pre>"


# ================================================================== (a) confidential guest

#: RAM sizes (GiB) of the sizing curve and of the widget's states.
COCO_CURVE_GIB = (0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
COCO_WIDGET_GIB = (1, 2, 4, 8, 12, 16, 24, 32, 64)


def _gib_label(g: float) -> str:
    return f"{g:g} GiB"


@lru_cache(maxsize=None)
def coco_boot(ram_gib: float, cpus: int = 8, kernel: str = "v6.3", cmdline: str = "") -> dict:
    """Boot a confidential x86 guest (``mem_encrypt=True``) and report its sizing.

    Keys: ``label``, ``ram`` (nominal bytes), ``memblock`` (what the model's e820 map
    gives ``memblock_phys_mem_size()``), ``six_percent``, ``clamped`` (both from that
    memblock size), ``pool`` (bytes of the boot pool), ``nareas``, ``lines`` (the
    SWIOTLB boot-log lines, as the realkernel boots grepped them), ``force`` (every
    mapping bounces)."""
    ram = int(ram_gib * GiB)
    m = Machine(ram=ram, cpus=cpus, mem_encrypt=True, kernel=kernel, cmdline=cmdline)
    total = m.layout.total_ram
    pool = m.swiotlb.defpool
    return {"label": _gib_label(ram_gib), "ram": ram, "memblock": total,
            "six_percent": total * 6 // 100, "clamped": coco_swiotlb_size(total),
            "pool": pool.nslabs << IO_TLB_SHIFT if pool else 0,
            "nareas": pool.nareas if pool else 0,
            "lines": tuple(ln for ln in m.swiotlb_lines() if "ommand line" not in ln),
            "force": m.swiotlb.force_bounce}


def coco_sizing(gib=COCO_CURVE_GIB, cpus: int = 8, kernel: str = "v6.3") -> list[dict]:
    """:func:`coco_boot` for each RAM size."""
    return [coco_boot(g, cpus, kernel) for g in gib]


def coco_table(gib=COCO_WIDGET_GIB, cpus: int = 8) -> str:
    """A plain-text table: RAM, 6 %, the two boot-log sizing lines, pool, share of RAM."""
    head = f"{'RAM':>8} {'6 % of memblock':>16} {'adjusted to':>12} {'roundup to':>11} {'pool':>9} {'% RAM':>6}"
    out = [head]
    for r in coco_sizing(gib, cpus):
        adj = next((ln.split("adjusted to ")[1] for ln in r["lines"] if "adjusted to" in ln), "-")
        rnd = next((ln.split("roundup to ")[1] for ln in r["lines"] if "roundup to" in ln), "-")
        out.append(f"{r['label']:>8} {r['six_percent'] / MiB:>13.1f} MiB {adj:>12} {rnd:>11} "
                   f"{mib(r['pool']):>9} {100 * r['pool'] / r['ram']:>5.1f}%")
    return "\n".join(out)


def coco_state_html(ram_gib: float, cpus: int = 8) -> str:
    """One state of the sizing widget: the boot lines, the arithmetic, the curve."""
    r = coco_boot(ram_gib, cpus)
    text = [f"RAM {r['label']} ({cpus} CPUs): memblock sees {r['memblock'] / MiB:.0f} MiB; "
            f"6 % = {r['six_percent'] / MiB:.1f} MiB; clamped = {r['clamped'] / MiB:.1f} MiB; "
            f"pool = {mib(r['pool'])} in {r['nareas']} areas "
            f"({100 * r['pool'] / r['ram']:.1f} % of RAM, decrypted and shared with the host)"]
    fig = P.coco_curve(coco_sizing(), highlight=r["ram"], width=6, height=3)
    alt = (f"Pool size against RAM for a confidential guest; at {r['label']} the pool is "
           f"{mib(r['pool'])}, against the fixed 64 MiB default.")
    return ("<b>" + html.escape(text[0]) + "</b>" + _pre(r["lines"]) + img_html(fig, alt))


def coco_widget(gib=COCO_WIDGET_GIB, value: float = 8) -> W.VBox:
    """Precomputed: guest RAM -> SWIOTLB pool size, with the boot-log lines."""
    return precomputed(list(gib), lambda g: coco_state_html(g), "guest RAM (GiB)", value=value)


def coco_pool_html(ram_gib: float = 12.0, cpus: int = 8) -> str:
    """Live: the sizing steps only (no boot), fast enough for a slider.

    Runs the model's ``swiotlb_adjust_size`` with 6 % of the e820 RAM clamped, then
    ``swiotlb_adjust_nareas(cpus)`` as ``swiotlb_init_remap`` does."""
    ram = int(ram_gib * GiB)
    total = layout_for("x86_64", ram).total_ram
    st = SwiotlbSetup(log=KernelLog())
    st.adjust_size(coco_swiotlb_size(total))
    st.adjust_nareas(cpus)
    pool = st.default_nslabs << IO_TLB_SHIFT
    return (f"<b>{ram_gib:g} GiB, {cpus} CPUs: pool {mib(pool)} "
            f"({100 * pool / ram:.1f} % of RAM), {st.default_nareas} areas</b>" + _pre(st.log.lines))


def coco_live() -> W.VBox:
    """Kernel-side: any RAM size and CPU count."""
    ram = W.FloatLogSlider(value=12, base=2, min=-1, max=8, step=0.25, description="RAM (GiB)",
                           continuous_update=False)
    cpus = W.IntSlider(value=8, min=1, max=1024, description="CPUs", continuous_update=False)
    return live({"ram_gib": ram, "cpus": cpus}, coco_pool_html, "Confidential guest: pool from RAM and CPUs")


#: Mappings in flight during the coco-guest scenario's bursts.
COCO_DEPTHS = (32, 128, 256, 512)


@lru_cache(maxsize=None)
def coco_need(depths=COCO_DEPTHS, kernel: str = "v6.3", ram: str = "8G", seed: int = 1) -> tuple:
    """Run the ``coco-guest`` scenario with each burst depth; return rows with
    ``depth``, ``peak_slots``, ``peak_bytes``, ``failed``, ``pool`` (bytes)."""
    rows = []
    for d in depths:
        r = run_scenario("coco-guest", kernel=kernel, seed=seed, burst_depth=d, ram=ram)
        rows.append({"depth": d, "peak_slots": r.peak_used_slots,
                     "peak_bytes": r.peak_used_slots << IO_TLB_SHIFT, "failed": r.failed,
                     "mapped": r.mapped, "bounced": r.bounced,
                     "all_bounced": r.extra.get("every_mapping_bounced"),
                     "pool": r.peak_bounce_bytes})
    return tuple(rows)


def coco_ram_need(rams=("2G", "8G", "32G"), depth: int = 256, seed: int = 1) -> str:
    """Plain text: the same workload on guests of different RAM: pool vs peak use."""
    out = [f"{'RAM':>5} {'pool (6 % rule)':>16} {'peak in use':>12} {'used share':>11} {'failed':>7}"]
    for ram in rams:
        r = coco_need((depth,), ram=ram, seed=seed)[0]
        out.append(f"{ram:>5} {mib(r['pool']):>16} {mib(r['peak_bytes']):>12} "
                   f"{100 * r['peak_bytes'] / r['pool']:>10.2f}% {r['failed']:>7}")
    return "\n".join(out)


@lru_cache(maxsize=None)
def coco_small_pool(cmdline: str = "swiotlb=2048", depth: int = 512, seed: int = 1,
                    kernels=("v6.3", "v6.6-dynamic")) -> tuple:
    """The coco-guest scenario with a pool set by hand, fixed vs growing."""
    return tuple(run_scenario("coco-guest", kernel=k, cmdline=cmdline, burst_depth=depth, seed=seed)
                 for k in kernels)


# ================================================================== (b) Raspberry Pi 4

#: Display resolutions of the widget (1680x1050 is Petr Tesarik's monitor,
#: 20230331110043.7b1ddfa3@meshulam.tesarici.cz).
RESOLUTIONS = ((1280, 720), (1680, 1050), (1920, 1080), (2560, 1440), (3840, 2160))
#: Pixel formats: bytes per pixel.
FORMATS = {"XRGB8888": 4, "RGB565": 2}


def frame_bytes(width: int, height: int, fmt: str = "XRGB8888") -> int:
    """Bytes of one linear framebuffer (no padding): width x height x bytes per pixel."""
    return width * height * FORMATS[fmt]


def frame_table() -> str:
    """Plain-text table of buffer sizes for :data:`RESOLUTIONS` x :data:`FORMATS`."""
    out = [f"{'resolution':>10} {'format':>9} {'bytes':>11} {'MiB':>6} {'x 256 KiB':>10}"]
    for w, h in RESOLUTIONS:
        for fmt in FORMATS:
            n = frame_bytes(w, h, fmt)
            out.append(f"{w}x{h:<5} {fmt:>9} {n:>11} {n / MiB:>6.2f} {n / IO_TLB_SEGMENT_BYTES:>10.1f}")
    return "\n".join(out)


@lru_cache(maxsize=None)
def rpi_frame(width: int, height: int, fmt: str = "XRGB8888", kernel: str = "v6.3", seed: int = 1,
              ram: str = "4G") -> dict:
    """One display buffer on a Raspberry Pi 4: v3d's pages, vc4's import.

    The buffer is allocated page by page with
    :func:`~swiotlb_lib.workloads.scattered_buffer` (its run lengths are the model's
    assumption, see ``workloads.RUN_PAGES``), then vc4 (1 GiB bus limit) maps its
    scatter-gather table with ``DMA_ATTR_SKIP_CPU_SYNC`` as ``drm_gem_map_dma_buf``
    does.  Returns ``nbytes``, ``segments`` (``(paddr, nbytes, fate)`` with fate
    ``direct``/``bounce``/``too big``), ``imported``, ``log`` (the kernel lines of the
    import), ``pool_lines`` (boot)."""
    m = Machine(ram=ram, cpus=4, arch="arm64-rpi4", kernel=kernel)
    vc4 = m.add_device("rpi4-vc4")
    nbytes = frame_bytes(width, height, fmt)
    _, runs = scattered_buffer(m, random.Random(seed), nbytes)
    if runs is None:
        raise ValueError(f"ram: {ram} is too small for a {nbytes}-byte buffer")
    limit = m.swiotlb.max_mapping_size(vc4)
    boot_lines = tuple(ln for ln in m.swiotlb_lines() if "ommand line" not in ln)
    segs = []
    for a, n in runs:
        fate = "direct" if a + n - 1 <= vc4.reach else ("too big" if n > limit else "bounce")
        segs.append((a, n, fate))
    before = len(m.log.lines)
    try:
        mapped = m.dma.map_sg(vc4, runs, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
    except DmaMappingError:
        imported = False
    else:
        imported = True
        m.dma.unmap_sg(vc4, mapped, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
    return {"width": width, "height": height, "fmt": fmt, "nbytes": nbytes, "segments": tuple(segs),
            "imported": imported, "log": tuple(m.log.lines[before:]),
            "pool_lines": boot_lines, "reach": vc4.reach}


def rpi_summary(fr: dict) -> list[str]:
    """Plain-text facts about one :func:`rpi_frame`."""
    segs = fr["segments"]
    count = {f: sum(1 for *_, x in segs if x == f) for f in ("direct", "bounce", "too big")}
    big = [n for _, n, f in segs if f == "too big"]
    out = [f"{fr['width']}x{fr['height']} {fr['fmt']}: {fr['nbytes']} bytes ({fr['nbytes'] / MiB:.2f} MiB) "
           f"in {len(segs)} segments",
           f"  above vc4's 1 GiB limit: {sum(1 for a, n, _ in segs if a + n - 1 > fr['reach'])}; "
           f"direct {count['direct']}, bounce {count['bounce']}, too big to bounce {count['too big']}",
           f"  largest segment {max(n for _, n, _ in segs)} bytes"
           + (f"; too-big segments: {', '.join(str(n) for n in big)}" if big else ""),
           f"  import {'succeeded' if fr['imported'] else 'FAILED: vc4 cannot display the buffer'}"]
    return out


def rpi_state_html(key: str) -> str:
    res, fmt = key.split(" ")
    w, h = (int(x) for x in res.split("x"))
    fr = rpi_frame(w, h, fmt)
    fig = P.segment_strip(fr["segments"], f"{res} {fmt}: the buffer's segments in order", width=6, height=1.7)
    alt = (f"The {res} {fmt} buffer as a strip of {len(fr['segments'])} segments coloured by fate; "
           f"{sum(1 for *_, f in fr['segments'] if f == 'too big')} are too big to bounce.")
    log = list(fr["log"]) or ["(no kernel lines: nothing failed)"]
    return _pre(rpi_summary(fr)) + img_html(fig, alt) + "<b>kernel log of the import</b>" + _pre(log)


RPI_KEYS = tuple(f"{w}x{h} {fmt}" for w, h in RESOLUTIONS for fmt in FORMATS)


def rpi_widget(value: str = "1920x1080 XRGB8888") -> W.VBox:
    """Precomputed: resolution and format -> buffer, segments, fate, kernel lines (v6.3)."""
    return precomputed(RPI_KEYS, rpi_state_html, "display mode", value=value, kind="dropdown")


def rpi_segments(width: int = 1920, height: int = 1080, fmt: str = "XRGB8888", seeds=range(1, 11)) -> list:
    """The segments of one buffer for each seed, pooled (for the distribution figure)."""
    out = []
    for s in seeds:
        out += list(rpi_frame(width, height, fmt, seed=s)["segments"])
    return out


# ================================================================== (c) the small board

#: (label, kernel profile, command line) of the board's configurations.
BOARD_CONFIGS = (
    ("v6.3, default (64 MiB)", "v6.3", ""),
    ("v6.3, swiotlb=16384 (32 MiB)", "v6.3", "swiotlb=16384"),
    ("v6.3, swiotlb=512 (1 MiB)", "v6.3", "swiotlb=512"),
    ("v6.6-dynamic, swiotlb=512", "v6.6-dynamic", "swiotlb=512"),
)
#: Application demands (MiB) tried on each configuration.
BOARD_DEMANDS = (380, 420, 460)


@lru_cache(maxsize=None)
def board_run(kernel: str, cmdline: str, app_mib: int, seed: int = 1, label: str = "") -> dict:
    """Run ``arm-board-oom`` and split the board's RAM at the end of the run into
    ``apps``, ``pool`` (memory held for bouncing), ``free`` and ``other`` (kernel, page
    cache, reserved: the rest), in bytes; plus ``oom`` events and mapping ``failed``."""
    r = run_scenario("arm-board-oom", kernel=kernel, cmdline=cmdline, seed=seed, app_mib=app_mib)
    total = Machine(ram="512M", cpus=4, arch="arm64-board", kernel=kernel, cmdline=cmdline).layout.total_ram
    apps = r.extra["app_mib_resident"] * MiB
    free = r.extra["free_mib_end"] * MiB
    pool = r.end_bounce_bytes
    return {"label": label or f"{kernel} {cmdline}".strip(), "kernel": kernel, "cmdline": cmdline,
            "app_mib": app_mib, "total": total, "apps": apps, "pool": pool, "free": free,
            "other": total - apps - pool - free, "oom": r.oom_events, "failed": r.failed,
            "peak_pool": r.peak_bounce_bytes, "pools_added": r.pools_added,
            "lines": tuple(ln for ln in r.log if "software IO TLB" in ln or "swiotlb" in ln)}


def board_rows(app_mib: int = 420, configs=BOARD_CONFIGS) -> list[dict]:
    """:func:`board_run` of every configuration at one application demand."""
    return [board_run(k, c, app_mib, label=lab) for lab, k, c in configs]


def board_table(configs=BOARD_CONFIGS, demands=BOARD_DEMANDS) -> str:
    """Plain text: OOM events (and mapping failures) per configuration and demand."""
    out = [f"{'configuration':<30}" + "".join(f"{f'apps {d} MiB':>15}" for d in demands)]
    for lab, k, c in configs:
        cells = []
        for d in demands:
            r = board_run(k, c, d, label=lab)
            cells.append(f"OOM {r['oom']}, fail {r['failed']}")
        out.append(f"{lab:<30}" + "".join(f"{x:>15}" for x in cells))
    return "\n".join(out)


def board_state_html(label: str) -> str:
    cfg = next(c for c in BOARD_CONFIGS if c[0] == label)
    rows = [dict(board_run(cfg[1], cfg[2], d, label=cfg[0]), label=f"apps want {d} MiB") for d in BOARD_DEMANDS]
    fig = P.board_bars(rows, f"{label}: memory at the end of each run", width=6, height=2.8)
    alt = (f"Memory bars of the 512 MiB board with {label}: "
           + "; ".join(f"{r['label']}: {r['oom']} OOM events" for r in rows))
    text = [f"{r['label']}: OOM events {r['oom']}, failed mappings {r['failed']}, apps resident "
            f"{r['apps'] // MiB} MiB, pool {mib(r['pool'])}, free {r['free'] // MiB} MiB" for r in rows]
    return _pre(list(rows[0]["lines"]) + [""] + text) + img_html(fig, alt)


def board_widget(value: str = BOARD_CONFIGS[0][0]) -> W.VBox:
    """Precomputed: SWIOTLB configuration -> the board's memory and OOM events."""
    return precomputed([c[0] for c in BOARD_CONFIGS], board_state_html, "configuration", value=value,
                       kind="dropdown")


#: Live callbacks of this chapter with typical arguments (for the 250 ms benchmark).
LIVE_CALLBACKS = {"coco_pool": (coco_pool_html, {"ram_gib": 12.0, "cpus": 8})}


def brief(table: str, keep=("cmdline", "attempted", "mapped", "failed", "  ", "peak", "pools added",
                            "transient", "imports", "OOM")) -> str:
    """The header and the rows of a :func:`swiotlb_lib.report.compare_table` whose label
    starts with one of ``keep`` (the long cost rows are left out)."""
    lines = table.splitlines()
    return "\n".join(lines[:1] + [ln for ln in lines[1:] if ln.startswith(keep)])
