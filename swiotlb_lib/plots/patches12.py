"""Figures and widget states for chapters 5 (patch 1/4, ``DMA_ATTR_MAY_SLEEP``) and 6
(patch 2/4, moving code).  Data come from :mod:`swiotlb_lib.scenarios.patches12` and
:mod:`swiotlb_lib.scenarios.replay_diff`; these functions only draw and lay out."""
from __future__ import annotations

import html

import numpy as np
from matplotlib.patches import Patch, Rectangle

from ..scenarios.patches12 import SIZES, grid_text
from .common import COLORS, PROFILE_COLORS, figure, img_html
from ..report import mib

#: Colour of each answer in the allocator grid.
SERVED_COLORS = {"buddy": COLORS["ok"], "buddy + reclaim": COLORS["normal"], "CMA": COLORS["cma"],
                 "atomic pool": COLORS["dma32"], "none": COLORS["fail"]}


def allocator_grid(grid, sizes, title: str = "", width: float = 7.0, height: float = 2.6):
    """Which allocator serves each (context, size) cell.

    ``grid`` is ``[(context label, [cell, ...]), ...]``; each cell a dict with ``kind``
    (a key of :data:`SERVED_COLORS`) and a short ``text``; ``sizes`` label the columns."""
    fig, ax = figure(width, height)
    nrow, ncol = len(grid), len(sizes)
    for i, (_, cells) in enumerate(grid):
        for j, c in enumerate(cells):
            y = nrow - 1 - i
            ax.add_patch(Rectangle((j, y), 1, 1, facecolor=SERVED_COLORS[c["kind"]], edgecolor="white",
                                   lw=2))
            ax.text(j + 0.5, y + 0.5, c["text"], ha="center", va="center", fontsize=8,
                    color="white" if c["kind"] in ("none",) else "black")
    ax.set_xlim(0, ncol)
    ax.set_ylim(0, nrow)
    ax.set_xticks(np.arange(ncol) + 0.5, [mib(s) for s in sizes], fontsize=8)
    ax.set_yticks(np.arange(nrow) + 0.5, [g[0] for g in grid][::-1], fontsize=8)
    ax.tick_params(length=0)
    for sp in ax.spines.values():
        sp.set_visible(False)
    ax.set_xlabel("buffer size (one bounce buffer of the RFC's dynamic path)")
    handles = [Patch(color=v, label=k) for k, v in SERVED_COLORS.items()]
    ax.legend(handles=handles, fontsize=7, ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.0),
              frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def before_after(rows, width: float = 7.0, height: float = 3.0):
    """Imports that worked and failed, per configuration.  ``rows``:
    ``[(label, ok, failed, bounce_peak_bytes), ...]``."""
    fig, (ax, ax2) = figure(width, height, ncols=2, gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(rows))[::-1]
    ok = np.array([r[1] for r in rows])
    bad = np.array([r[2] for r in rows])
    ax.barh(y, ok, color=COLORS["ok"], label="imports that succeeded")
    ax.barh(y, bad, left=ok, color=COLORS["fail"], label="imports failed")
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("frames (of 8)")
    ax.legend(fontsize=7, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax2.barh(y, [r[3] / (1 << 20) for r in rows], color=COLORS["pool"])
    ax2.set_yticks(y, [""] * len(rows))
    ax2.set_xlabel("peak MiB held for bouncing")
    return fig


def replay_panels(v_same, v_ctl, width: float = 7.0, height: float = 3.6):
    """Slots in use after every operation of a differential replay: top, the pair that
    must agree (lines on top of each other); bottom, the control pair, with its first
    divergence marked."""
    fig, (a1, a2) = figure(width, height, nrows=2, sharex=True)
    x = np.arange(1, v_same.length + 1)
    for ax, v in ((a1, v_same), (a2, v_ctl)):
        ax.plot(x, v.used_a, color=PROFILE_COLORS.get(v.kernel_a, "black"), lw=1.6, label=v.kernel_a)
        ax.plot(x, v.used_b, color=COLORS["transient"], lw=1, ls="--", label=v.kernel_b)
        verdict = "identical" if v.identical else f"{v.differing_ops} of {v.compared} operations differ"
        ax.set_title(f"{v.kernel_a} vs {v.kernel_b}: {verdict}", fontsize=9)
        ax.set_ylabel("slots in use", fontsize=8)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
        if v.first is not None:
            ax.axvline(v.first.index + 1, color=COLORS["fail"], lw=1)
            ax.annotate(f"first divergence: op {v.first.index}", (v.first.index + 1, ax.get_ylim()[1]),
                        textcoords="offset points", xytext=(4, -12), fontsize=8, color=COLORS["fail"])
    a2.set_xlabel("operation")
    return fig


# ------------------------------------------------------------------ widget states -----

def allocator_state_html(grid, cma: str, state: str) -> str:
    """One state of the allocator widget: the grid of
    :func:`~swiotlb_lib.scenarios.patches12.allocator_grid` for ``cma`` and ``state``,
    drawn and as text."""
    fig = allocator_grid(grid, SIZES, f"RFC v1 dynamic bounce buffer: cma={cma}, {state}", width=6.5,
                         height=2.6)
    served = {ctx: sum(c["kind"] != "none" for c in cells) for ctx, cells in grid}
    alt = (f"Allocator grid for cma={cma}, {state}: " +
           "; ".join(f"{ctx} served {n} of {len(SIZES)} sizes" for ctx, n in served.items()))
    return img_html(fig, alt) + "<pre style='font-size:80%'>" + html.escape(grid_text(grid)) + "</pre>"


def serve_html(r: dict, nbytes: int, context: str, cma: str, state: str) -> str:
    """One answer of :func:`~swiotlb_lib.scenarios.patches12.serve`, in a line."""
    where = f" at {r['paddr']:#x}" if r["paddr"] is not None else ""
    extra = f", after reclaiming {r['reclaimed']} pages" if r["reclaimed"] else ""
    return (f"<b>{mib(nbytes)}, {html.escape(context)}, cma={cma}, {state}: "
            f"{html.escape(r['kind'])}{where}{extra}</b>")


def replay_state_html(same, ctl) -> str:
    """One state of the replay widget: the two verdicts of
    :func:`~swiotlb_lib.scenarios.patches12.replay_verdicts` and their panels."""
    fig = replay_panels(same, ctl, width=6.5, height=3.4)
    alt = (f"Slots in use over {same.length} operations of seed {same.seed}: {same.kernel_a} and "
           f"{same.kernel_b} coincide ({'identical' if same.identical else 'different'}); {ctl.kernel_a} and "
           f"{ctl.kernel_b} split at operation {ctl.first.index if ctl.first else 'none'}.")
    pre = "<pre style='font-size:78%;line-height:1.2'>{}</pre>"
    return (pre.format(html.escape(str(same))) + img_html(fig, alt)
            + "<b>control</b>" + pre.format(html.escape(str(ctl))))
