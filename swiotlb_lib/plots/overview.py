"""The preface's figure: the whole idea of SWIOTLB at a glance.

:func:`overview_figure` draws physical memory as a bar, the part a 32-bit device can reach,
a buffer above it, the bounce buffer in the boot-time pool (``io_tlb_mem.defpool``, whose
slots ``swiotlb_tbl_map_single()`` takes) with the copy at map and at unmap
(``swiotlb_bounce()``), and, beside the pool, the RFC v1's dynamic bounce buffers (patch 3/4,
Message-ID ``0334a54332ab75312c9de825548b616439dcc9f5.1679309810.git.petr.tesarik.ext@huawei.com``)
allocated when a mapping needs one.  It has no random element: the same call draws the same
figure.  The addresses are a schematic of a 6 GiB machine, not the output of a run.
"""
from __future__ import annotations

from matplotlib.patches import FancyArrowPatch, Rectangle

from .common import COLORS, figure

#: Schematic layout in GiB: (start, end, label, colour key).
REGIONS = (
    (0.0, 4.0, "below 4 GiB:\nreachable by\na 32-bit device", "dma32", 3.45),
    (4.0, 6.0, "above 4 GiB:\nout of its\nreach", "normal", 5.65),
)
#: The boot-time pool (64 MiB, drawn wider so it can be seen), the dynamic buffers of the
#: RFC, and the driver's buffer, in GiB.
POOL = (2.2, 2.9)
DYNAMIC = ((1.2, 1.45), (1.6, 1.8))
BUFFER = (4.9, 5.3)


def overview_figure():
    """The preface figure (see the module docstring); returns the matplotlib figure."""
    fig, ax = figure(8.0, 3.6)
    y0, h = 1.0, 0.8
    for start, end, label, key, x in REGIONS:
        ax.add_patch(Rectangle((start, y0), end - start, h, facecolor=COLORS[key], edgecolor="black", lw=0.8))
        ax.text(x, y0 + h / 2, label, ha="center", va="center", fontsize=7)
    ax.add_patch(Rectangle((POOL[0], y0), POOL[1] - POOL[0], h, facecolor=COLORS["pool"], edgecolor="black"))
    ax.text(sum(POOL) / 2, y0 + h / 2, "SWIOTLB pool\n(fixed, at boot)", ha="center", va="center",
            fontsize=7, color="white")
    slot = POOL[0] + 0.12
    ax.add_patch(Rectangle((slot, y0 + 0.05), 0.18, 0.2, facecolor=COLORS["pool_used"], edgecolor="white"))
    for i, (a, b) in enumerate(DYNAMIC):
        ax.add_patch(Rectangle((a, y0), b - a, h, facecolor=COLORS["dynamic"], edgecolor="black",
                               hatch="//", lw=0.8))
    ax.text(sum(DYNAMIC[0]) / 2 + 0.15, y0 - 0.12, "RFC v1: dynamic bounce buffers,\nallocated per mapping",
            ha="center", va="top", fontsize=7, color=COLORS["dynamic"])
    ax.add_patch(Rectangle((BUFFER[0], y0), BUFFER[1] - BUFFER[0], h, facecolor=COLORS["app"], edgecolor="black"))
    ax.text(sum(BUFFER) / 2, y0 + h / 2, "driver's\nbuffer", ha="center", va="center", fontsize=7)
    src = (sum(BUFFER) / 2, y0 + h)
    dst = (slot + 0.09, y0 + h)
    ax.add_patch(FancyArrowPatch(src, dst, connectionstyle="arc3,rad=0.45", arrowstyle="-|>",
                                 mutation_scale=12, color="black"))
    ax.text(3.75, 3.1, "map: copy in (to device)", ha="center", fontsize=8)
    ax.add_patch(FancyArrowPatch((slot + 0.09, y0), (sum(BUFFER) / 2, y0), connectionstyle="arc3,rad=0.45",
                                 arrowstyle="-|>", mutation_scale=12, color=COLORS["transient"]))
    ax.text(3.75, -0.45, "unmap or sync: copy back (from device)", ha="center", fontsize=8,
            color=COLORS["transient"])
    ax.add_patch(Rectangle((0.0, 2.55), 0.9, 0.5, facecolor=COLORS["reach"], edgecolor="black"))
    ax.text(0.45, 2.8, "device\n(32-bit DMA)", ha="center", va="center", fontsize=7, color="white")
    ax.add_patch(FancyArrowPatch((0.9, 2.8), (slot + 0.09, y0 + h + 0.02), arrowstyle="<|-|>",
                                 mutation_scale=10, color=COLORS["reach"], lw=1.2))
    ax.text(1.55, 2.25, "DMA to the\nbounce buffer", ha="center", fontsize=7, color=COLORS["reach"])
    ax.set_xlim(-0.1, 6.1)
    ax.set_ylim(-0.6, 3.4)
    ax.set_yticks([])
    ax.set_xticks(range(7))
    ax.set_xlabel("physical address (GiB, schematic)")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return fig
