"""Slot-map figures (chapter 3): the slots of a pool, who holds them, the free-run
counters ``list[]`` and each area's search ``index``.

Two views of one :class:`SlotSnapshot`:

* :func:`draw_slot_map` -- the whole pool, one row per 128-slot segment, one colour per
  mapping; a thin black line over each row is ``list[i]`` (high = long free run ahead),
  a triangle marks each area's ``index`` (where its next search starts).
* :func:`draw_slot_strip` -- a few slots large, with their ``list[]`` values written in.

A snapshot is a copy of the model's state
(:func:`swiotlb_lib.scenarios.basics.snapshot`); nothing here computes allocator
behaviour.  The chapter-3 states (:func:`step_html`, :func:`slot_choice_html`) and the
figure of the hand-worked requests (:func:`spec_figure`) draw results of
:mod:`swiotlb_lib.scenarios.basics`.
"""
from __future__ import annotations

import html

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle

from ..constants import IO_TLB_SEGSIZE, IO_TLB_SHIFT
from ..scenarios.basics import SlotChoice, SlotSnapshot, Step, spec_strips, step_table_html
from .common import COLORS, figure, img_html

#: colours for mappings, in the order they are numbered (cycled)
MAPPING_COLORS = ["#e76f51", "#2a9d8f", "#e9c46a", "#6a4c93", "#f4a261", "#264653",
                  "#d62828", "#8ab17d", "#b56576", "#457b9d", "#ffb703", "#6d597a"]
PAD_COLOR = "#adb5bd"
#: outline of the slots the last step touched
HIGHLIGHT = "#e0007a"


def mapping_color(k: int) -> str:
    return MAPPING_COLORS[k % len(MAPPING_COLORS)]


def _cell_rgb(snap: SlotSnapshot) -> np.ndarray:
    free = np.array(to_rgb(COLORS["free"]))
    rgb = np.tile(free, (snap.nslabs, 1))
    for k in np.unique(snap.owners):
        if k >= 0:
            rgb[snap.owners == k] = to_rgb(mapping_color(int(k)))
    rgb[snap.pad] = to_rgb(PAD_COLOR)
    return rgb


def draw_slot_map(ax, snap: SlotSnapshot, highlight=None):
    """The whole pool, one row per segment of 128 slots.

    ``highlight`` is an optional ``(first, count)`` range outlined in :data:`HIGHLIGHT`
    (the slots the last step touched).
    """
    seg = IO_TLB_SEGSIZE
    nrows = -(-snap.nslabs // seg)
    rgb = np.ones((nrows * seg, 3))
    rgb[: snap.nslabs] = _cell_rgb(snap)
    ax.imshow(rgb.reshape(nrows, seg, 3), aspect="auto", extent=(0, seg, nrows, 0),
              interpolation="nearest")
    # free-run counters as a step line per row: list/128 of the row height
    for r in range(nrows):
        lo, hi = r * seg, min((r + 1) * seg, snap.nslabs)
        vals = snap.list[lo:hi]
        ys = r + 0.95 - 0.85 * vals / seg
        xs = np.arange(hi - lo + 1)
        ax.stairs(ys, xs, baseline=None, color="black", lw=0.8)
    # cell grid every 8 slots, segment/area separators
    for x in range(0, seg + 1, 8):
        ax.axvline(x, color="white", lw=0.3, alpha=0.6)
    rows_per_area = max(snap.area_nslabs // seg, 1)
    for r in range(nrows + 1):
        is_area = snap.area_nslabs >= seg and r % rows_per_area == 0
        ax.axhline(r, color="black" if is_area else "#888888", lw=1.6 if is_area else 0.5)
    # area labels and index markers
    for a in range(snap.nareas):
        first = a * snap.area_nslabs
        r0 = first // seg
        r1 = -(-(first + snap.area_nslabs) // seg)
        ax.text(seg + 1.5, (r0 + r1) / 2, f"area {a}", fontsize=7.5, va="center", ha="left",
                rotation=90)
        slot = first + snap.area_index[a]
        if slot < snap.nslabs:
            ax.plot([slot % seg + 0.5], [slot // seg + 0.02], marker="v", ms=7, color="black",
                    markeredgecolor="white", zorder=5, clip_on=False)
    if highlight is not None:
        first, count = highlight
        for r in range(first // seg, (first + count - 1) // seg + 1):
            lo = max(first, r * seg) - r * seg
            hi = min(first + count, (r + 1) * seg) - r * seg
            ax.add_patch(Rectangle((lo, r + 0.03), hi - lo, 0.94, fill=False, ec=HIGHLIGHT, lw=2,
                                   zorder=6))
    ax.set_xlim(0, seg)
    ax.set_ylim(nrows, 0)
    ax.set_yticks([r + 0.5 for r in range(nrows)])
    ax.set_yticklabels([f"slots {r * seg}–{min((r + 1) * seg, snap.nslabs) - 1}" for r in range(nrows)],
                       fontsize=7)
    ax.set_xticks(range(0, seg + 1, 16))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("slot within its 128-slot segment", fontsize=7)


def draw_slot_strip(ax, snap: SlotSnapshot, first: int, count: int, highlight=None,
                    show_addr: bool = True):
    """Slots ``first .. first+count-1`` drawn large with their ``list[]`` values.

    ``highlight``: an optional set of slot numbers outlined in :data:`HIGHLIGHT`."""
    hl = set(highlight or ())
    for j in range(count):
        i = first + j
        if i >= snap.nslabs:
            break
        k = int(snap.owners[i])
        col = PAD_COLOR if snap.pad[i] else (mapping_color(k) if k >= 0 else COLORS["free"])
        ax.add_patch(Rectangle((j, 0), 1, 1, fc=col, ec=HIGHLIGHT if i in hl else "#999999",
                               lw=2.0 if i in hl else 0.6, zorder=3 if i in hl else 2))
        ax.text(j + 0.5, 0.5, str(int(snap.list[i])), ha="center", va="center", fontsize=8,
                fontweight="bold" if snap.list[i] == 0 else "normal")
        ax.text(j + 0.5, -0.12, str(i), ha="center", va="top", fontsize=6.5, color="#555555")
        if i % IO_TLB_SEGSIZE == 0 and j:
            ax.axvline(j, color="black", lw=2)
    for a in range(snap.nareas):
        s = a * snap.area_nslabs + snap.area_index[a]
        if first <= s < first + count:
            ax.plot([s - first + 0.5], [1.18], marker="v", ms=7, color="black", clip_on=False)
            j = s - first
            ha = "right" if j > count - 3 else ("left" if j < 2 else "center")
            x = j + 1 if ha == "right" else (j if ha == "left" else j + 0.5)
            ax.text(x, 1.42, f"index of area {a}", ha=ha, va="bottom", fontsize=6.5, clip_on=False)
    ax.set_xlim(0, count)
    ax.set_ylim(-0.95, 1.7)
    ax.axis("off")
    if show_addr:
        ax.text(0, -0.62, f"slot {first} @ {snap.start + (first << IO_TLB_SHIFT):#x}; numbers are list[i]"
                "; 0 = in use", fontsize=6.5, va="top", color="#555555")


def slot_step_figure(snap: SlotSnapshot, title: str = "", highlight=None, zoom=None,
                     width: float = 6.6, height: float = 3.3):
    """Overview of the pool (top) and, when ``zoom=(first, count)``, a strip of those
    slots with their counters (bottom)."""
    if zoom is None:
        fig, ax = figure(width, height * 0.62)
        draw_slot_map(ax, snap, highlight)
        axes = [ax]
    else:
        fig, axes = figure(width, height, nrows=2, gridspec_kw={"height_ratios": [2.2, 1]})
        draw_slot_map(axes[0], snap, highlight)
        hl = range(highlight[0], highlight[0] + highlight[1]) if highlight else None
        draw_slot_strip(axes[1], snap, zoom[0], zoom[1], hl)
    if title:
        axes[0].set_title(title, fontsize=9, loc="left")
    return fig


def strip_figure(snaps, first: int, count: int, titles=(), highlights=(), width: float = 6.4):
    """One or more strips stacked (for example the same requests on two kernel profiles)."""
    n = len(snaps)
    fig, axes = figure(width, 0.3 + 1.2 * n, nrows=n)
    axes = np.atleast_1d(axes)
    for i, (ax, snap) in enumerate(zip(axes, snaps)):
        draw_slot_strip(ax, snap, first, count, highlights[i] if i < len(highlights) else None)
        if i < len(titles):
            ax.set_title(titles[i], fontsize=8.5, loc="left")
    return fig


def slot_strip_html(snap: SlotSnapshot, first: int, count: int, highlight=None) -> str:
    """:func:`draw_slot_strip` as an HTML table: one cell per slot with its ``list[]``
    value, coloured by owner, highlighted slots outlined.  Much faster than a PNG, for
    live widgets."""
    hl = set(highlight or ())
    idx = {a * snap.area_nslabs + snap.area_index[a]: a for a in range(snap.nareas)}
    top, mid, bot = [], [], []
    for i in range(first, min(first + count, snap.nslabs)):
        k = int(snap.owners[i])
        col = PAD_COLOR if snap.pad[i] else (mapping_color(k) if k >= 0 else COLORS["free"])
        fg = "white" if k >= 0 and col in ("#264653", "#6a4c93", "#d62828", "#457b9d", "#6d597a") else "black"
        border = f"3px solid {HIGHLIGHT}" if i in hl else "1px solid #999"
        top.append(f"<td style='text-align:center;font-size:70%'>{'▼ index' if i in idx else ''}</td>")
        mid.append(f"<td style='background:{col};color:{fg};border:{border};width:2.6em;"
                   f"text-align:center;font-weight:{'bold' if snap.list[i] == 0 else 'normal'}'>"
                   f"{int(snap.list[i])}</td>")
        bot.append(f"<td style='text-align:center;font-size:70%;color:#555'>{i}</td>")
    return ("<table style='border-collapse:collapse;margin:4px 0'>"
            f"<tr>{''.join(top)}</tr><tr>{''.join(mid)}</tr><tr>{''.join(bot)}</tr></table>"
            f"<small>slot numbers below, list[i] inside (0 = in use); slot {first} is at "
            f"{snap.start + (first << IO_TLB_SHIFT):#x}</small>")


# ------------------------------------------------------------------ chapter 3 ---------

def step_html(step: Step) -> str:
    """HTML of one state of the chapter-3 main widget: the step, its result and kernel
    lines, the slot map with a zoomed strip, and the areas' counters."""
    fig = slot_step_figure(step.snap, f"step {step.number}: {step.result}", step.highlight,
                           zoom=(step.zoom, 16), width=6.6, height=3.4)
    alt = (f"Slot map after step {step.number}: {step.result}. Used slots are coloured per "
           f"mapping; a black line per segment shows the free-run counters; triangles mark "
           f"each area's search index ({', '.join(map(str, step.snap.area_index))}).")
    log = "".join(f"<br><code>{html.escape(line)}</code>" for line in step.log)
    return (f"<div><b>Step {step.number}.</b> {html.escape(step.caption)}.<br>"
            f"Result: {html.escape(step.result)}{log}</div>" + img_html(fig, alt) + step_table_html(step))


def spec_figure(kernels=("v6.3", "v6.11"), through: int = 4):
    """Slots 0–11 after the first ``through`` hand-worked requests, one strip per profile
    (:func:`swiotlb_lib.scenarios.basics.spec_strips`)."""
    snaps, titles, hls = zip(*spec_strips(kernels, through))
    return strip_figure(list(snaps), 0, 12, list(titles), list(hls), width=6.4)


SPEC_ALT = ("Two strips of slots 0 to 11. v6.3: request 3 takes slots 3 and 4 (bit 11 matches "
            "the original's offset 0x800); v6.11: it takes slots 4 and 5 (page-aligned) and slot "
            "3 stays free with list value 1.")


def slot_choice_html(c: SlotChoice) -> str:
    """HTML of a :class:`~swiotlb_lib.scenarios.basics.SlotChoice`: the slot chosen, the
    rule, a strip of slots 0–15."""
    if c.tlb is None:
        hl, msg, tail = None, f"mapping failed ({c.cause})", ""
    else:
        hl = range(c.first_slot, c.first_slot + c.nslots)
        msg = (f"slot {c.slot} → bounce address <code>{c.tlb:#x}</code> "
               f"({c.nslots} slot(s) held, from slot {c.first_slot})")
        tail = (f"tlb &amp; 0xfff = <code>{c.tlb & 0xFFF:#05x}</code>, "
                f"orig &amp; 0xfff = <code>{c.orig & 0xFFF:#05x}</code>")
    return (f"<div><b>{c.kernel}</b>: orig <code>{c.orig:#x}</code>, {c.nbytes} bytes, min_align "
            f"<code>{c.mask:#x}</code> → {msg}<br>{tail}<br><small>rule ({c.rule} family): {c.why}; "
            f"an occupied candidate steps by {c.stride} slot(s).</small></div>"
            + slot_strip_html(c.snap, 0, 16, hl))
