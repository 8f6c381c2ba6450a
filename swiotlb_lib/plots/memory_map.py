"""Memory-map figures (chapter 2): RAM ranges, zones, the SWIOTLB pool, device reaches,
and where a buffer and its bounce slot land; the chapter's overview figure and the
states of its main widget, drawn from :mod:`swiotlb_lib.scenarios.basics`.

Physical addresses run left to right on a linear scale in GiB.  Things far too small
for that scale (the 16 MiB ``ZONE_DMA`` of x86, a 64 MiB pool on a 6 GiB machine) are
drawn with a minimum width so they stay visible, and labelled with their real size.
"""
from __future__ import annotations

import html
from dataclasses import dataclass

from matplotlib.patches import FancyArrowPatch

from .common import COLORS, figure, img_html
from ..report import mib
from ..constants import GiB
from ..scenarios.basics import DEVICE_NAMES, MapResult, explain, overview_maps


#: zone name -> colour key in :data:`~swiotlb_lib.plots.common.COLORS`
ZONE_COLORS = {"DMA": "dma", "DMA32": "dma32", "Normal": "normal"}


@dataclass
class Reach:
    """One device row: a label and the highest DMA address the device can use."""

    label: str
    reach: int


def _bar(ax, y, lo, hi, xmax, color, h, min_frac=0.0, **kw):
    """A horizontal bar [lo, hi) at row ``y``, at least ``min_frac`` of the axis wide."""
    w = max(hi - lo, int(xmax * min_frac))
    ax.broken_barh([(lo / GiB, w / GiB)], (y - h / 2, h), facecolors=color, **kw)


def axis_top(layout) -> int:
    """Right edge of the plot: the end of RAM rounded up to a whole GiB."""
    return -(-layout.max_phys // GiB) * GiB


def draw_memory_map(ax, layout, pool=None, devices=(), buffer=None, bounce=None,
                    failed=False, pool_label="SWIOTLB"):
    """Draw a memory map on ``ax``.

    ``layout`` is a :class:`~swiotlb_lib.memory.MemoryLayout`; ``pool`` a ``(start, end)``
    physical range or ``None``; ``devices`` a list of :class:`Reach` (one row each);
    ``buffer`` a ``(paddr, size)`` to mark; ``bounce`` the bounce-buffer address it was
    copied to (an arrow goes from the buffer to it); ``failed`` marks the mapping as
    refused.  Returns the row labels, top to bottom.
    """
    xmax = axis_top(layout)
    X = xmax / GiB
    rows = ["zones", "RAM"] + [d.label for d in devices]
    ys = {name: len(rows) - 1 - i for i, name in enumerate(rows)}

    # zones: a thin band; tiny zones get a side label
    y = ys["zones"]
    for z in layout.zones:
        col = COLORS[ZONE_COLORS.get(z.name, "normal")]
        _bar(ax, y, z.start, z.end, xmax, col, 0.4, 0.006, edgecolor="white", linewidth=0.8)
        if z.end - z.start < xmax * 0.06:
            ax.text(max(z.end, xmax * 0.006) / GiB + 0.01 * X, y, f"◂ ZONE_{z.name}",
                    ha="left", va="center", fontsize=6.5, color="#333333")
        else:
            lo = max(z.start, 0)
            ax.text((lo + z.end) / 2 / GiB, y, f"ZONE_{z.name}", ha="center", va="center",
                    fontsize=7.5)

    # RAM ranges, the pool on top
    y = ys["RAM"]
    for s, e in layout.ram:
        _bar(ax, y, s, e, xmax, COLORS["ram"], 0.45, edgecolor="#999999", linewidth=0.5)
    if pool is not None:
        _bar(ax, y, pool[0], pool[1], xmax, COLORS["pool"], 0.62, 0.012)
        text = f"{pool_label} {mib(pool[1] - pool[0])} @ {pool[0]:#x}"
        ax.text(pool[0] / GiB, y - 0.34, text, ha="center", va="top", fontsize=7,
                color=COLORS["pool_used"], fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8), zorder=8)
    else:
        ax.text(0.25 * X, y, "no SWIOTLB pool", ha="center", va="center", fontsize=7.5,
                color=COLORS["fail"], fontweight="bold")

    # one row per device: how far its DMA can reach
    for d in devices:
        y = ys[d.label]
        hi = min(d.reach + 1, xmax)
        ax.broken_barh([(0, hi / GiB)], (y - 0.18, 0.36), facecolors=COLORS["reach"], alpha=0.3)
        if d.reach + 1 >= xmax:
            ax.annotate("", (X * 1.035, y), (X * 0.985, y),
                        arrowprops=dict(arrowstyle="-|>", color=COLORS["reach"]))

    if buffer is not None:
        paddr, _size = buffer
        yb = ys["RAM"]
        xb = paddr / GiB
        ax.plot([xb], [yb], marker="s", ms=7, color=COLORS["app"], markeredgecolor="black", zorder=5)
        ax.axvline(xb, color=COLORS["app"], lw=0.9, ls=":", zorder=1)
        for d in devices:
            yd = ys[d.label]
            if failed:
                ax.plot([xb], [yd], marker="X", ms=11, color=COLORS["fail"], zorder=6)
            elif bounce is None:
                ax.plot([xb], [yd], marker="o", ms=6, color=COLORS["ok"], markeredgecolor="black",
                        zorder=6)
        if bounce is not None and not failed:
            xt = bounce / GiB
            ax.add_patch(FancyArrowPatch((xb, yb + 0.15), (xt, yb + 0.32),
                                         connectionstyle="arc,angleA=90,angleB=90,armA=16,armB=10,rad=4",
                                         arrowstyle="-|>", mutation_scale=11, color=COLORS["transient"],
                                         lw=1.6, zorder=6))
            for d in devices:
                ax.plot([xt], [ys[d.label]], marker="o", ms=6, color=COLORS["ok"],
                        markeredgecolor="black", zorder=6)

    names = {d.label: (f"{d.label}\nreach: all RAM" if d.reach + 1 >= xmax
                       else f"{d.label}\nreach ≤ {d.reach:#x}") for d in devices}
    ax.set_yticks([ys[r] for r in rows])
    ax.set_yticklabels([names.get(r, r) for r in rows], fontsize=7.5)
    ax.set_ylim(-0.6, len(rows) - 0.4 + (0.5 if bounce is not None else 0))
    ax.set_xlim(0, X * 1.04)
    ax.set_xlabel("physical address (GiB)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return rows


def memory_map_figure(layout, pool=None, devices=(), buffer=None, bounce=None, failed=False,
                      title="", width=6.4, height=None, pool_label="SWIOTLB"):
    """A figure with one memory map (see :func:`draw_memory_map`)."""
    if height is None:
        height = 1.0 + 0.5 * (2 + len(devices))
    fig, ax = figure(width, height)
    draw_memory_map(ax, layout, pool, devices, buffer, bounce, failed, pool_label)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    return fig


def machines_figure(maps, width=7.0, height=None):
    """Several memory maps stacked, each ``dict(layout=, pool=, devices=, title=)``."""
    ratios = [2 + len(m["devices"]) for m in maps]
    if height is None:
        height = 0.8 * len(maps) + 0.42 * sum(ratios)
    fig, axes = figure(width, height, nrows=len(maps), gridspec_kw={"height_ratios": ratios})
    for ax, m in zip(axes, maps):
        draw_memory_map(ax, m["layout"], m.get("pool"), m["devices"],
                        pool_label=m.get("pool_label", "SWIOTLB"))
        ax.set_title(m.get("title", ""), fontsize=9, loc="left")
    return fig


# ------------------------------------------------------------------ chapter 2 ---------

def overview_figure(width=7.0):
    """The chapter-2 overview: x86_64 with 6 GiB and a Raspberry Pi 4 with 8 GiB: zones,
    RAM, the SWIOTLB pool, and how far each device reaches
    (:func:`swiotlb_lib.scenarios.basics.overview_maps`)."""
    maps = [dict(m, devices=[Reach(*d) for d in m["devices"]]) for m in overview_maps()]
    return machines_figure(maps, width=width)


OVERVIEW_ALT = ("Two memory maps. x86_64 with 6 GiB: RAM up to 3 GiB and from 4 to 7 GiB, a "
                "64 MiB SWIOTLB pool just below 3 GiB; the NVMe SSD reaches all RAM, the 32-bit "
                "PCI card only the first 4 GiB. Raspberry Pi 4 with 8 GiB: ZONE_DMA is the first "
                "GiB, the 64 MiB pool sits inside it; vc4 reaches only the first GiB, v3d all RAM.")


def map_case_html(r: MapResult) -> str:
    """HTML of one state of the main chapter-2 widget: the decision in words, the kernel
    lines, and the memory map with the buffer (and its bounce slot)."""
    color = {"direct": "#2a9d8f", "bounce": "#e76f51", "fail": "#d62828"}[r.outcome]
    title = f"{r.machine}: buffer {r.paddr:#x} → {r.outcome}"
    pool_label = "shared (decrypted) SWIOTLB" if "confidential" in r.machine else "SWIOTLB"
    name = DEVICE_NAMES[r.device]
    fig = memory_map_figure(r.layout, r.pool, [Reach(name, r.dev.reach)],
                            buffer=(r.paddr, r.size), bounce=r.dma if r.outcome == "bounce" else None,
                            failed=r.outcome == "fail", title=title, width=6.4, height=2.6,
                            pool_label=pool_label)
    alt = (f"Memory map of {r.machine} with the {name}'s reach up to {r.dev.reach:#x}; "
           f"a buffer at {r.paddr:#x} is mapped {r.outcome}"
           + (f" through the SWIOTLB slot at {r.dma:#x}" if r.outcome == "bounce" else "") + ".")
    log = "".join(f"<br><code>{html.escape(line)}</code>" for line in r.log)
    return (f"<div><b style='color:{color}'>{r.outcome}</b>: {html.escape(explain(r))}{log}</div>"
            + img_html(fig, alt))
