"""The figure of RFC v1 patch 3/4's maple tree: one buffer's keys before and after unmap.

Takes the dictionaries of :func:`swiotlb_lib.scenarios.rfc_bugs.tree_keys` (one per
profile) and draws, for each, the stored range as a bar over the key axis, each page's
lookup key as a dot (filled: a lookup finds the buffer; hollow: it misses) and, after the
unmap, where ``mtree_erase()`` was aimed.  Runs no model itself.
"""
from __future__ import annotations

from matplotlib.patches import Rectangle

from .common import COLORS, PROFILE_COLORS, figure

_TITLES = {"rfc-v1": "as intended: key = PFN",
           "rfc-v1-posted": "as posted: key = xa_mk_value(PFN) = 2*PFN + 1"}


def plot_tree_keys(results):
    """One panel per profile, two rows per panel (after map, after unmap)."""
    fig, axes = figure(7.2, 1.9 * len(results), nrows=len(results), squeeze=False)
    for ax, r in zip(axes[:, 0], results):
        posted = r["kernel"] == "rfc-v1-posted"
        width = max(k for _, k, _ in r["stages"][0]["page_keys"]) + 3
        for row, st in enumerate(r["stages"]):
            y = 1 - row
            for a, b, freed in st["ranges"]:
                color = COLORS.get("fail", "#d62828") if freed else PROFILE_COLORS["rfc-v1"]
                ax.add_patch(Rectangle((a - 0.45, y - 0.3), b - a + 0.9, 0.6, color=color, alpha=0.35))
                ax.text((a + b) / 2, y + 0.36, "freed descriptor" if freed else "buffer's range",
                        ha="center", fontsize=7, color=color)
            for k, key, hit in st["page_keys"]:
                ax.plot([key], [y], "o", ms=9, mfc="black" if hit else "white", mec="black")
                ax.text(key, y - 0.52, f"page {k}", ha="center", fontsize=7)
        ax.annotate("mtree_erase()", xy=(r["erase_at"], -0.05), xytext=(r["erase_at"], -0.75),
                    ha="center", fontsize=7, arrowprops=dict(arrowstyle="->", lw=0.8))
        ax.set_yticks([1, 0], [r["stages"][0]["label"], r["stages"][1]["label"]], fontsize=8)
        ax.set_xticks(range(width), ["key0" if i == 0 else f"+{i}" for i in range(width)], fontsize=7)
        ax.set_xlim(-0.8, width - 0.2)
        ax.set_ylim(-1.0, 1.6)
        ax.set_title(_TITLES.get(r["kernel"], r["kernel"]) + f" ({r['pages']}-page buffer)", fontsize=9)
        if posted:
            ax.set_xlabel("tree index (keys of neighbouring PFNs differ by 2)", fontsize=8)
    return fig
