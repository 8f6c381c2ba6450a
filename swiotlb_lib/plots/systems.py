"""Figures and widget states for chapter 4, "Three systems the fixed pool fails".

Every function takes data computed by :mod:`swiotlb_lib.scenarios.three_systems` and
returns a matplotlib figure or, for the ``*_html`` functions, the HTML of one widget state
(it computes nothing by itself).
"""
from __future__ import annotations

import html

import numpy as np
from matplotlib.patches import Patch

from ..constants import IO_TLB_SEGMENT_BYTES, GiB, MiB
from .common import COLORS, figure, img_html
from ..report import mib


def pre_html(lines) -> str:
    """Lines of text as a small preformatted HTML block."""
    return "<pre style='font-size:85%;line-height:1.25'>" + html.escape("\n".join(lines)) + "</pre>"


# ------------------------------------------------------------------ (a) CoCo sizing ----

def coco_curve(rows, highlight=None, width: float = 7.0, height: float = 3.4):
    """Pool size against RAM for a confidential guest: the 6 % line, the clamp to
    [64 MiB, 1 GiB], the final pool after the power-of-two rounding, and the fixed
    64 MiB default.  ``rows`` come from :func:`~swiotlb_lib.scenarios.three_systems.coco_sizing`;
    ``highlight`` is a RAM size (bytes) to mark."""
    fig, ax = figure(width, height)
    ram = np.array([r["ram"] for r in rows], dtype=float) / GiB
    six = np.array([r["six_percent"] for r in rows], dtype=float) / MiB
    clamped = np.array([r["clamped"] for r in rows], dtype=float) / MiB
    final = np.array([r["pool"] for r in rows], dtype=float) / MiB
    ax.plot(ram, six, ls=":", color=COLORS["kernel"], label="6 % of memory")
    ax.plot(ram, clamped, ls="--", color=COLORS["dma"], label="clamped to [64 MiB, 1 GiB]")
    ax.step(ram, final, where="post", color=COLORS["pool"], lw=2,
            label="pool after area rounding")
    ax.axhline(64, color=COLORS["fail"], lw=1, label="fixed default (64 MiB)")
    if highlight is not None:
        r = min(rows, key=lambda r: abs(r["ram"] - highlight))
        ax.plot([r["ram"] / GiB], [r["pool"] / MiB], "o", color=COLORS["pool_used"], ms=8)
        ax.annotate(f"{r['label']}: {mib(r['pool'])}", (r["ram"] / GiB, r["pool"] / MiB),
                    textcoords="offset points", xytext=(8, -14), fontsize=9)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ticks = [1, 2, 4, 8, 16, 32, 64]
    ax.set_xticks(ticks, [f"{t} GiB" for t in ticks])
    yt = [64, 128, 256, 512, 1024]
    ax.set_yticks(yt, [f"{t} MiB" for t in yt])
    ax.set_xlabel("guest RAM")
    ax.set_ylabel("SWIOTLB pool")
    ax.set_title("Confidential guest: SWIOTLB pool size from RAM size")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def coco_need(rows, pool_bytes: int, width: float = 7.0, height: float = 3.0):
    """Peak bounce-buffer use of the coco-guest workload against the number of mappings
    in flight, with the pool the 6 % rule gave the same guest."""
    fig, ax = figure(width, height)
    depth = [r["depth"] for r in rows]
    peak = [r["peak_bytes"] / MiB for r in rows]
    ax.plot(depth, peak, "o-", color=COLORS["pool_used"], label="peak slots in use (model)")
    ax.axhline(pool_bytes / MiB, color=COLORS["pool"], ls="--", label=f"pool from the 6 % rule ({mib(pool_bytes)})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(depth, [str(d) for d in depth])
    ax.set_yscale("log")
    ax.set_xlabel("mappings in flight during a burst")
    ax.set_ylabel("MiB")
    ax.set_title("What the pool must hold depends on I/O in flight, not on RAM")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


# ------------------------------------------------------------------ (b) RPi 4 ----------

_SEG_COLORS = {"direct": COLORS["ok"], "bounce": COLORS["pool"], "too big": COLORS["fail"]}


def segment_histogram(segments, title: str = "", width: float = 7.0, height: float = 3.2):
    """Sizes of a display buffer's scatter-gather segments (log scale) against the
    256 KiB wall, coloured by fate: mapped directly, bounced, or too big to bounce.
    ``segments`` is a list of ``(paddr, nbytes, fate)``."""
    fig, ax = figure(width, height)
    sizes = np.array([n for _, n, _ in segments], dtype=float)
    lo = np.floor(np.log2(max(4096.0, sizes.min() if len(sizes) else 4096.0)))
    hi = np.ceil(np.log2(max(8 * MiB, sizes.max() if len(sizes) else 8 * MiB)))
    # half-octave bins; each edge sits half a byte above a power of two, so a segment of
    # exactly 256 KiB (which still fits) is counted left of the wall
    bins = 2.0 ** np.arange(lo - 0.5, hi + 0.25, 0.5) + 0.5
    data, labels, colors = [], [], []
    for fate in ("direct", "bounce", "too big"):
        part = [n for _, n, f in segments if f == fate]
        if part:
            data.append(part)
            labels.append(f"{fate} ({len(part)})")
            colors.append(_SEG_COLORS[fate])
    if data:
        ax.hist(data, bins=bins, stacked=True, color=colors, label=labels, edgecolor="white")
    ax.axvline(IO_TLB_SEGMENT_BYTES, color="black", lw=1.5)
    ax.text(IO_TLB_SEGMENT_BYTES * 1.08, ax.get_ylim()[1] * 0.92, "256 KiB:\nlargest bounce buffer",
            va="top", fontsize=8)
    ax.set_xscale("log", base=2)
    ticks = [16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20]
    ax.set_xticks(ticks, [mib(t) for t in ticks])
    ax.set_xlabel("segment size (physically contiguous run of the buffer)")
    ax.set_ylabel("segments")
    ax.set_title(title or "Display buffer segments against the 256 KiB wall")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def segment_strip(segments, title: str = "", width: float = 6.0, height: float = 1.7):
    """One display buffer as a strip: its segments in buffer order, width proportional
    to size, coloured by fate."""
    fig, ax = figure(width, height)
    x = 0
    total = sum(n for _, n, _ in segments) or 1
    for _, n, fate in segments:
        ax.barh(0, n / total, left=x / total, color=_SEG_COLORS[fate], edgecolor="white", height=0.8)
        x += n
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    ax.set_xticks([0, 0.5, 1], ["0", mib(total / 2), mib(total)])
    handles = [Patch(color=c, label=f) for f, c in _SEG_COLORS.items()]
    ax.legend(handles=handles, fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.45),
              frameon=False)
    ax.set_title(title, fontsize=9)
    return fig


# ------------------------------------------------------------------ (c) the board -----

_BAR_PARTS = (("apps", "app", "applications"), ("other", "kernel", "kernel, page cache, reserved"),
              ("pool", "pool", "SWIOTLB pool"), ("free", "free", "free"))


def board_bars(rows, title: str = "", width: float = 7.0, height: float = 3.2):
    """The board's 512 MiB at the end of each run, one bar per row: applications,
    everything else the kernel holds, the SWIOTLB pool, free; OOM events on the right.
    ``rows`` come from :func:`~swiotlb_lib.scenarios.three_systems.board_run`."""
    fig, ax = figure(width, height)
    y = np.arange(len(rows))[::-1]
    for key, color, label in _BAR_PARTS:
        left = np.zeros(len(rows))
        for k2, _, _ in _BAR_PARTS:
            if k2 == key:
                break
            left += np.array([r[k2] for r in rows]) / MiB
        vals = np.array([r[key] for r in rows]) / MiB
        ax.barh(y, vals, left=left, color=COLORS[color], label=label,
                edgecolor="grey" if key == "free" else "white")
    total = rows[0]["total"] / MiB if rows else 512
    for yi, r in zip(y, rows):
        ax.text(total * 1.01, yi, f"OOM {r['oom']}", va="center", fontsize=8,
                color=COLORS["fail"] if r["oom"] else "black")
    ax.set_yticks(y, [r["label"] for r in rows], fontsize=8)
    ax.set_xlim(0, total * 1.14)
    ax.set_xlabel("MiB (at the end of the run)")
    ax.set_title(title or "A 512 MiB board: who holds the memory")
    ax.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.08), frameon=False)
    return fig


# ------------------------------------------------------------------ widget states -----

def coco_state_html(r: dict, rows, cpus: int = 8) -> str:
    """One state of the sizing widget: the boot lines and the arithmetic of one
    :func:`~swiotlb_lib.scenarios.three_systems.coco_boot`, and the curve of ``rows``."""
    text = [f"RAM {r['label']} ({cpus} CPUs): memblock sees {r['memblock'] / MiB:.0f} MiB; "
            f"6 % = {r['six_percent'] / MiB:.1f} MiB; clamped = {r['clamped'] / MiB:.1f} MiB; "
            f"pool = {mib(r['pool'])} in {r['nareas']} areas "
            f"({100 * r['pool'] / r['ram']:.1f} % of RAM, decrypted and shared with the host)"]
    fig = coco_curve(rows, highlight=r["ram"], width=6, height=3)
    alt = (f"Pool size against RAM for a confidential guest; at {r['label']} the pool is "
           f"{mib(r['pool'])}, against the fixed 64 MiB default.")
    return ("<b>" + html.escape(text[0]) + "</b>" + pre_html(r["lines"]) + img_html(fig, alt))


def coco_pool_html(p: dict) -> str:
    """A :func:`~swiotlb_lib.scenarios.three_systems.coco_pool` result: size, areas, kernel lines."""
    return (f"<b>{p['ram_gib']:g} GiB, {p['cpus']} CPUs: pool {mib(p['pool'])} "
            f"({100 * p['pool'] / p['ram']:.1f} % of RAM), {p['nareas']} areas</b>" + pre_html(p["lines"]))


def rpi_state_html(fr: dict, summary) -> str:
    """One state of the display widget: the facts (``summary`` lines), the buffer's
    segments, the kernel lines of the import of one
    :func:`~swiotlb_lib.scenarios.three_systems.rpi_frame`."""
    res, fmt = f"{fr['width']}x{fr['height']}", fr["fmt"]
    fig = segment_strip(fr["segments"], f"{res} {fmt}: the buffer's segments in order", width=6, height=1.7)
    alt = (f"The {res} {fmt} buffer as a strip of {len(fr['segments'])} segments coloured by fate; "
           f"{sum(1 for *_, f in fr['segments'] if f == 'too big')} are too big to bounce.")
    log = list(fr["log"]) or ["(no kernel lines: nothing failed)"]
    return pre_html(summary) + img_html(fig, alt) + "<b>kernel log of the import</b>" + pre_html(log)


def board_state_html(label: str, rows) -> str:
    """One state of the board widget: configuration ``label`` at each demand (``rows``
    from :func:`~swiotlb_lib.scenarios.three_systems.board_config_rows`)."""
    fig = board_bars(rows, f"{label}: memory at the end of each run", width=6, height=2.8)
    alt = (f"Memory bars of the 512 MiB board with {label}: "
           + "; ".join(f"{r['label']}: {r['oom']} OOM events" for r in rows))
    text = [f"{r['label']}: OOM events {r['oom']}, failed mappings {r['failed']}, apps resident "
            f"{r['apps'] // MiB} MiB, pool {mib(r['pool'])}, free {r['free'] // MiB} MiB" for r in rows]
    return pre_html(list(rows[0]["lines"]) + [""] + text) + img_html(fig, alt)
