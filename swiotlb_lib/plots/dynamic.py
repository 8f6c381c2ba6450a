"""Figures for the dynamic-bounce-buffer chapters (7: RFC patch 3/4, 8: patch 4/4,
9: what was merged, 11: review).

Every function takes data computed by the experiments of :mod:`swiotlb_lib.scenarios.dynamic`
and :mod:`swiotlb_lib.scenarios.review` and returns a matplotlib figure, or (the ``*_html``
functions) the HTML of one state of a widget of :mod:`swiotlb_lib.widgets.dynamic`; none
runs the model itself.
"""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from .common import COLORS, PROFILE_COLORS, figure
from ..report import mib
from .common import img_html as _img_html
from ..constants import MiB
from ..report import esc, html_table
from ..scenarios.dynamic import FOOTPRINT_HEADER, KERNEL_LABELS, compare_lines, footprint_rows, yes_no


LABELS = {"v6.3rc": "v6.3-rc", "v6.3": "v6.3", "rfc-v1": "RFC v1", "v6.6": "v6.6",
          "v6.6-dynamic": "v6.6 dyn", "v6.11": "v6.11", "v6.11-dynamic": "v6.11 dyn"}

#: Line styles of the four footprint configurations, in FOOTPRINT_CONFIGS order.
_FOOT_STYLE = ((PROFILE_COLORS["v6.3rc"], "-"), (PROFILE_COLORS["v6.3rc"], ":"),
               (PROFILE_COLORS["rfc-v1"], "-"), (COLORS["dynamic"], "--"))


def plot_footprint(runs, title: str = "", max_points: int = 600):
    """Bytes held for bouncing after every map/unmap, one line per configuration (log
    scale), with the failed maps marked as ticks under the lines."""
    fig, ax = figure(6.0, 3.6)
    top = 1.0
    for k, (r, (color, ls)) in enumerate(zip(runs, _FOOT_STYLE)):
        y = np.asarray(r["samples"], dtype=float) / MiB
        x = np.arange(1, len(y) + 1)
        if len(y) > max_points:          # keep the peaks when thinning
            step = -(-len(y) // max_points)
            n = len(y) // step * step
            y = np.concatenate([y[:n].reshape(-1, step).max(axis=1), y[n:].max(keepdims=True)] if n < len(y)
                               else [y[:n].reshape(-1, step).max(axis=1)])
            x = np.arange(len(y)) * step + 1
        wide = k == 0                     # the boot-sized fixed pool: drawn wide, underneath
        ax.plot(x, y, color=color, ls=ls, lw=4 if wide else 1.6, alpha=0.45 if wide else 1.0,
                zorder=1 if wide else 2, label=f"{r['label']} ({r['failed']} failed)")
        top = max(top, float(y.max()) if len(y) else 1.0)
    ax.set_yscale("log")
    ymin = min(float(np.min(np.asarray(r["samples"]) / MiB)) for r in runs if r["samples"]) * 0.6
    for r, (color, _) in zip(runs, _FOOT_STYLE):
        if r["fail_at"]:
            ys = np.asarray(r["samples"], dtype=float)[np.asarray(r["fail_at"]) - 1] / MiB
            ax.plot(r["fail_at"], ys, "x", color=COLORS["fail"], ms=5, mew=1.2, alpha=0.8)
    if any(r["fail_at"] for r in runs):
        ax.plot([], [], "x", color=COLORS["fail"], label="a failed map")
    ax.set_ylim(ymin, top * 2)
    ax.set_xlabel("map and unmap calls")
    ax.set_ylabel("MiB held for bouncing")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    ax.grid(alpha=0.3, which="both")
    return fig


SHORT = {"v6.3-rc": "v6.3-rc", "RFC v1, dynamic off": "RFC\n(off)", "RFC v1, swiotlb=dynamic": "RFC\n(dynamic)",
         "v6.6 dynamic": "v6.6\ndynamic"}


def plot_lookup_costs(nvme: dict, pci32: dict):
    """Tree lookups (RFC) or pool-walk steps (6.6) per unmap/sync path call, for a device
    that never bounces and one that always does."""
    fig, axes = figure(6.4, 2.8, ncols=2, sharey=True)
    for ax, (title, data) in zip(axes, (("64-bit device (never bounces)", nvme),
                                        ("32-bit device (always bounces)", pci32))):
        labels = list(data)
        tree = [data[k]["tree_lookups"] for k in labels]
        steps = [data[k]["lookup_steps"] for k in labels]
        calls = [data[k]["unmap_sync_lookups"] for k in labels]
        x = np.arange(len(labels))
        ax.bar(x - 0.2, tree, 0.4, color=PROFILE_COLORS["rfc-v1"], label="maple-tree lookups")
        ax.bar(x + 0.2, steps, 0.4, color=PROFILE_COLORS["v6.6-dynamic"], label="pool-walk steps")
        ax.plot(x, calls, "_", color="k", ms=22, mew=2, label="unmap/sync path calls")
        ax.set_xticks(x, [SHORT.get(l, l) for l in labels], fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("count (200 rounds)")
    axes[0].legend(fontsize=7, frameon=False, loc="upper left")
    return fig


def plot_tree_levels(levels):
    """Maple-tree levels walked per lookup against the number of live dynamic buffers."""
    fig, ax = figure(4.8, 2.6)
    n = [a for a, _ in levels]
    v = [b for _, b in levels]
    ax.step(n, v, where="post", color=PROFILE_COLORS["rfc-v1"], lw=2)
    ax.plot(n, v, "o", color=PROFILE_COLORS["rfc-v1"])
    ax.set_xscale("log")
    ax.set_xlabel("live dynamic bounce buffers")
    ax.set_ylabel("tree levels per lookup")
    ax.set_yticks(range(0, max(v) + 2))
    ax.grid(alpha=0.3)
    return fig


def plot_parse_grid(rows):
    """Chapter 8: what each parser made of each command line.

    ``rows`` are :func:`~swiotlb_lib.scenarios.dynamic.parse_rows` rows (mainline, then
    RFC, per command line).  A cell is green when the option took effect, grey when
    not, red where the mainline parser dropped something without a word, and outlined
    where the two parsers disagree."""
    cols = ["slots", "areas", "force", "dynamic", "pool"]
    idx = {"slots": 2, "areas": 3, "force": 4, "dynamic": 6, "pool": 7}
    cmdlines = list(dict.fromkeys(r[0] for r in rows))
    fig, ax = figure(7.0, 0.42 * len(cmdlines) + 1.0)
    ax.set_xlim(0, 2 * len(cols) + 0.5)
    ax.set_ylim(len(cmdlines), -1.0)
    ax.axis("off")
    for j, name in enumerate(("mainline (v6.3-rc)", "RFC v1 option list")):
        ax.text(j * (len(cols) + 0.5) + len(cols) / 2, -0.75, name, ha="center", fontsize=9, weight="bold")
        for c, col in enumerate(cols):
            ax.text(j * (len(cols) + 0.5) + c + 0.5, -0.3, col, ha="center", fontsize=7)
    for i, cl in enumerate(cmdlines):
        main, rfc = [r for r in rows if r[0] == cl][:2]
        ax.text(-0.1, i + 0.5, cl, ha="right", va="center", fontsize=7, family="monospace")
        for j, r in enumerate((main, rfc)):
            other = rfc if j == 0 else main
            for c, col in enumerate(cols):
                v = str(r[idx[col]])
                good = v not in ("no", "none", "n/a", "-", "CPUs") and not (col == "slots" and v == "32768")
                face = "#cfe8e3" if good else "#eeeeee"
                if j == 0 and "(silent) ignored" in r[8] and col in ("force", "dynamic") and v in ("no", "n/a") \
                        and ("force" in cl if col == "force" else "dynamic" in cl):
                    face = "#f4c2c2"
                x0 = j * (len(cols) + 0.5) + c
                diff = v != str(other[idx[col]]) and col != "dynamic"
                ax.add_patch(Rectangle(
                    (x0 + 0.04, i + 0.08), 0.92, 0.84, facecolor=face,
                    edgecolor=COLORS["fail"] if diff else "white", lw=1.6 if diff else 0.5))
                txt = v.replace(" slots", "")
                ax.text(x0 + 0.5, i + 0.5, txt, ha="center", va="center", fontsize=7)
    fig.text(0.5, 0.0, "green: set or allocated; grey: default or off; red fill: asked for on the command "
             "line but dropped without a word; red outline: the two parsers disagree", ha="center",
             va="bottom", fontsize=7)
    return fig


def plot_scenario_bars(results, scenario: str = ""):
    """Chapter 9: per kernel, failed maps (left) and peak MiB held for bouncing (right)."""
    fig, axes = figure(6.4, 2.6, ncols=2)
    names = [LABELS.get(r.kernel, r.kernel) for r in results]
    colors = [PROFILE_COLORS.get(r.kernel, "#888888") for r in results]
    x = np.arange(len(results))
    failed = [r.failed for r in results]
    peak = [r.peak_bounce_bytes / MiB for r in results]
    axes[0].bar(x, failed, color=colors)
    axes[0].set_title("failed mappings", fontsize=9)
    for xi, (f, r) in enumerate(zip(failed, results)):
        axes[0].text(xi, f, f"{f}/{r.attempted}", ha="center", va="bottom", fontsize=7)
    axes[1].bar(x, peak, color=colors)
    axes[1].set_title("peak MiB held for bouncing", fontsize=9)
    for xi, p in enumerate(peak):
        axes[1].text(xi, p, f"{p:.1f}", ha="center", va="bottom", fontsize=7)
    for ax in axes:
        ax.set_xticks(x, names, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.2)
    if scenario:
        fig.suptitle(scenario, fontsize=9)
    return fig


#: What each scenario's panel shows: (y label, value, note on the bar, log scale).
SCENARIO_METRIC = {
    "rpi4-4k": ("frames vc4 imported (of 8)", lambda r: r.extra.get("imports_ok", 0),
                lambda r: f"{r.peak_bounce_bytes / MiB:.0f} MiB\nheld", False),
    "rpi4-fullhd": ("frames vc4 imported (of 8)", lambda r: r.extra.get("imports_ok", 0),
                    lambda r: f"{r.peak_bounce_bytes / MiB:.0f} MiB\nheld", False),
    "coco-guest": ("peak MiB held for bouncing", lambda r: r.peak_bounce_bytes / MiB,
                   lambda r: f"{r.failed}\nfailed", True),
    "arm-board-oom": ("OOM events", lambda r: r.oom_events,
                      lambda r: f"{r.peak_bounce_bytes / MiB:.0f} MiB\nheld", False),
}


def plot_three_systems(systems: dict):
    """Chapter 9 at a glance: for each system the number that matters there (frames
    shown, memory held, OOM kills), per kernel, with a second number on each bar."""
    fig, axes = figure(7.0, 2.9, ncols=len(systems))
    for ax, (scen, results) in zip(np.atleast_1d(axes), systems.items()):
        ylabel, value, note, log = SCENARIO_METRIC[scen]
        x = np.arange(len(results))
        vals = [value(r) for r in results]
        ax.bar(x, vals, color=[PROFILE_COLORS.get(r.kernel, "#888") for r in results])
        for xi, (v, r) in enumerate(zip(vals, results)):
            ax.text(xi, v if v else 0, note(r), ha="center", va="bottom", fontsize=6)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(0.5, max(vals) * 20)
        else:
            ax.set_ylim(0, max(max(vals) * 1.5, 2))
        ax.set_xticks(x, [LABELS.get(r.kernel, r.kernel) for r in results], fontsize=7, rotation=25)
        ax.set_title(scen, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return fig


def plot_oversize(series: dict):
    """Chapter 9: MiB held for bouncing after each failed >256 KiB request, per kernel."""
    fig, ax = figure(4.8, 2.6)
    for kernel, rows in series.items():
        ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", color=PROFILE_COLORS.get(kernel, "#888"),
                label=f"{LABELS.get(kernel, kernel)}: {rows[-1][2]} pools added")
    ax.set_xlabel("failed 512 KiB map requests")
    ax.set_ylabel("MiB held for bouncing")
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def plot_search_order(orders: dict):
    """Chapter 9: the order in which one failing search visits (pool, area) pairs."""
    fig, axes = figure(6.4, 2.4, ncols=len(orders), sharey=True)
    pools = ["added 2", "added 1", "boot"]
    for ax, (kernel, order) in zip(np.atleast_1d(axes), orders.items()):
        areas = max(a for _, a in order) + 1
        ax.set_xlim(-0.5, areas - 0.5)
        ax.set_ylim(len(pools) - 0.5, -0.5)
        for step, (pool, area) in enumerate(order, 1):
            if pool not in pools:
                continue
            y = pools.index(pool)
            ax.add_patch(Rectangle(
                (area - 0.45, y - 0.4), 0.9, 0.8, facecolor=PROFILE_COLORS.get(kernel, "#888"),
                alpha=0.25 + 0.6 * (1 - step / len(order))))
            ax.text(area, y, str(step), ha="center", va="center", fontsize=9, weight="bold")
        ax.set_xticks(range(areas), [f"area {a}" for a in range(areas)], fontsize=7)
        ax.set_yticks(range(len(pools)), ["pool " + p for p in pools], fontsize=7)
        ax.set_title(f"{LABELS.get(kernel, kernel)}", fontsize=9)
    return fig


def plot_claim(key: str, ev: dict):
    """Chapter 11: one figure per claim of the claim explorer; returns ``(fig, alt)``."""
    rows = ev["rows"]
    if key == "rpi":
        fig, ax = figure(6.0, 2.6)
        kernels = list(dict.fromkeys(r[1] for r in rows))
        x = np.arange(len(kernels))
        for off, scen, hatch in ((-0.2, "rpi4-fullhd", ""), (0.2, "rpi4-4k", "//")):
            ok = [next(r[2] for r in rows if r[0] == scen and r[1] == k) for k in kernels]
            ax.bar(x + off, ok, 0.4, color=[PROFILE_COLORS[k] for k in kernels], hatch=hatch,
                   edgecolor="white", label=scen)
        ax.set_xticks(x, [LABELS[k] for k in kernels], fontsize=8)
        ax.set_ylabel("frames imported (of 8)")
        ax.legend(fontsize=7, frameon=False)
        alt = "Frames vc4 imported: " + "; ".join(f"{r[0]} on {LABELS[r[1]]}: {r[2]} of {r[2] + r[3]}" for r in rows)
    elif key == "coco":
        fig, ax = figure(6.0, 2.6)
        labels = list(dict.fromkeys(r[1] for r in rows))
        x = np.arange(len(labels))
        for off, load in ((-0.2, "light"), (0.2, "heavy")):
            sel = [next(r for r in rows if r[0] == load and r[1] == l) for l in labels]
            bars = ax.bar(x + off, [r[3] for r in sel], 0.4, color=COLORS["pool"] if load == "light" else COLORS["pool_used"],
                          label=f"{load} load")
            for b, r in zip(bars, sel):
                ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{r[4]} failed", ha="center",
                        va="bottom", fontsize=6, color=COLORS["fail"] if r[4] else "k")
        ax.set_yscale("log")
        ax.set_xticks(x, [l.replace(", ", ",\n") for l in labels], fontsize=6)
        ax.set_ylabel("peak MiB held")
        ax.legend(fontsize=7, frameon=False)
        alt = "Confidential guest: " + "; ".join(f"{r[1]} {r[0]} load: peak {r[3]} MiB, {r[4]} failed"
                                                for r in rows)
    elif key == "oom":
        fig, axes = figure(6.0, 2.6, ncols=2)
        names = [LABELS[r[0]] for r in rows]
        colors = [PROFILE_COLORS[r[0]] for r in rows]
        axes[0].bar(names, [r[3] for r in rows], color=colors)
        axes[0].set_title("OOM events", fontsize=9)
        axes[1].bar(names, [r[4] for r in rows], color=colors)
        axes[1].set_title("application MiB resident (of 400)", fontsize=9)
        for ax in axes:
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(axis="y", alpha=0.3)
        alt = "Arm board: " + "; ".join(f"{LABELS[r[0]]}: {r[3]} OOM events, {r[4]} MiB resident" for r in rows)
    elif key == "off":
        fig, axes = figure(6.0, 2.6, ncols=2)
        for ax, dev in zip(axes, ("nvme", "pci32")):
            sel = [r for r in rows if r[0] == dev]
            x = np.arange(3)
            for k, r in enumerate(sel):
                ax.bar(x + (k - 0.5) * 0.4, [r[2], r[4], r[5]], 0.4,
                       color=PROFILE_COLORS["v6.3rc"] if k == 0 else PROFILE_COLORS["rfc-v1"], label=r[1])
            ax.set_xticks(x, ["unmap/sync\nlookups", "slots\nexamined", "area lock\nacquisitions"], fontsize=7)
            ax.set_title("64-bit device (never bounces)" if dev == "nvme" else "32-bit device (always bounces)",
                         fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        axes[1].legend(fontsize=7, frameon=False)
        alt = "Dynamic buffers off: " + "; ".join(f"{r[0]} {r[1]}: {r[2]} lookups, {r[4]} slots examined, "
                                                 f"{r[5]} lock acquisitions" for r in rows)
    elif key == "cost":
        fig, axes = figure(6.4, 2.8, ncols=2, sharey=True)
        for ax, dev in zip(axes, ("nvme", "pci32")):
            sel = [r for r in rows if r[0] == dev]
            x = np.arange(len(sel))
            cols = ((3, "maple-tree lookups", PROFILE_COLORS["rfc-v1"]),
                    (5, "dyn lock acquisitions", COLORS["app"]),
                    (6, "page allocations", COLORS["reach"]), (7, "pool-walk steps", PROFILE_COLORS["v6.6-dynamic"]))
            w = 0.2
            for k, (i, name, color) in enumerate(cols):
                ax.bar(x + (k - 1.5) * w, [r[i] for r in sel], w, color=color, label=name)
            ax.set_xticks(x, [SHORT.get(r[1], r[1]) for r in sel], fontsize=7)
            ax.set_title("64-bit device (never bounces)" if dev == "nvme" else "32-bit device (always bounces)",
                         fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("count, 200 rounds")
        axes[0].legend(fontsize=6, frameon=False, loc="upper left")
        alt = "Dynamic buffers on: " + "; ".join(f"{r[0]} {r[1]}: {r[3]} tree lookups, {r[5]} lock acquisitions, "
                                                f"{r[6]} page allocations, {r[7]} pool-walk steps" for r in rows)
    else:
        raise ValueError(f"key: unknown claim {key!r}")
    return fig, alt


def plot_scorecard(cells, rows, cols):
    """Chapter 11 at a glance: ``cells[(row, col)] = (verdict, text)`` with verdict
    ``"good"``, ``"mixed"`` or ``"bad"``."""
    face = {"good": "#cfe8e3", "mixed": "#fbe7c6", "bad": "#f4c2c2", "n/a": "#eeeeee"}
    fig, ax = figure(7.0, 0.55 * len(rows) + 0.8)
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), -0.6)
    ax.axis("off")
    for j, c in enumerate(cols):
        ax.text(j + 0.5, -0.3, c, ha="center", fontsize=8, weight="bold")
    for i, r in enumerate(rows):
        ax.text(-0.05, i + 0.5, r, ha="right", va="center", fontsize=8)
        for j, c in enumerate(cols):
            verdict, text = cells[(r, c)]
            ax.add_patch(Rectangle((j + 0.03, i + 0.06), 0.94, 0.88, facecolor=face[verdict], edgecolor="white"))
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7)
    return fig


# ------------------------------------------------------------ widget states (HTML) -----

def img_html(fig, alt: str) -> str:
    """:func:`swiotlb_lib.plots.common.img_html`, scaled down to the page width if needed."""
    return _img_html(fig, alt).replace("<img ", '<img style="max-width:100%;height:auto" ', 1)


def footprint_html(runs, spec: dict, intensity: str) -> str:
    """One state of the footprint widget: the timeline of :func:`plot_footprint`, what the
    mix ``spec`` (one of ``scenarios.dynamic.MIXES``) runs, and the summary table."""
    fig = plot_footprint(runs, f"{spec['title']}, {intensity} ({spec[intensity]})")
    alt = (f"Bytes held for bouncing over time for the {spec['title']} workload, {intensity}: "
           + "; ".join(f"{r['label']} peaks at {r['peak'] / MiB:.1f} MiB with {r['failed']} failed maps"
                       for r in runs))
    return (img_html(fig, alt) + f"<p><small>{esc(spec['what'])} {esc(intensity)}: {esc(spec[intensity])}."
            "</small></p>" + html_table(FOOTPRINT_HEADER, footprint_rows(runs)))


def where_html(r: dict, size: int, may_sleep: bool, kernel: str) -> str:
    """The live "where does it go" answer ``r`` (``scenarios.dynamic.where_does_it_go``)."""
    color = "#d62828" if r["outcome"] == "failed" else "#2a9d8f"
    log = "<br>".join(esc(l) for l in r["log"]) or "(nothing logged)"
    return (f"<p>{esc(KERNEL_LABELS[kernel])}, {mib(size)} buffer, "
            f"{'with' if may_sleep else 'without'} DMA_ATTR_MAY_SLEEP:<br>"
            f"<b style='color:{color}'>{esc(r['outcome'])}</b>: {esc(r['detail'])}<br>"
            f"bytes held for bouncing now: {r['held_mib']:.2f} MiB<br>"
            f"<small>kernel log: <code>{log}</code></small></p>")


def _parse_one_html(r: dict) -> str:
    name = KERNEL_LABELS[r["kernel"]] + (" (option-list parser)" if r["kernel"] == "rfc-v1" else " (mainline parser)")
    if r["error"]:
        return f"<div><b>{esc(name)}</b><p style='color:#d62828'>model refuses: {esc(r['error'])}</p></div>"
    rows = [["slots", r["slots"]], ["areas", r["areas"]], ["force", yes_no(r["force"])],
            ["noforce", yes_no(r["noforce"])],
            ["dynamic", "no such option" if r["dynamic"] is None else yes_no(r["dynamic"])],
            ["boot pool", f"{r['pool_slots']} slots, {r['pool_areas']} areas" if r["pool_slots"] else "none"],
            ["dynamic buffers allowed", yes_no(r["dynamic_on"])]]
    warn = "".join(f"<li style='color:#d62828'>ignored without a word: {esc(w)}</li>" for w in r["warnings"])
    log = "\n".join(esc(l) for l in r["boot_log"])
    return (f"<div style='flex:1;min-width:280px'><b>{esc(name)}</b>" + html_table(["", "value"], rows)
            + (f"<ul>{warn}</ul>" if warn else "<p><small>nothing ignored</small></p>")
            + "<small>boot log (SWIOTLB lines):</small>"
            + f"<pre style='font-size:75%;white-space:pre-wrap;margin:2px 0'>{log}</pre></div>")


def parse_pair_html(pair: dict) -> str:
    """Side by side, the parses of ``scenarios.dynamic.parse_pair`` (mainline, then RFC)."""
    return ("<div style='display:flex;gap:24px;flex-wrap:wrap'>"
            + "".join(_parse_one_html(r) for r in pair.values()) + "</div>")


def compare_html(results, scenario: str) -> str:
    """One state of the comparison widget: :func:`plot_scenario_bars` and the compare table."""
    fig = plot_scenario_bars(results, scenario)
    alt = f"{scenario}: " + "; ".join(f"{KERNEL_LABELS[r.kernel]} {r.failed} failed of {r.attempted}, "
                                      f"peak {r.peak_bounce_bytes / MiB:.1f} MiB held" for r in results)
    return img_html(fig, alt) + "<pre style='font-size:80%'>" + esc(compare_lines(results)) + "</pre>"


def claim_html(key: str, said: str, ev: dict) -> str:
    """One state of the claim explorer: the claim, :func:`plot_claim` and the evidence table."""
    fig, alt = plot_claim(key, ev)
    note = f"<p>{esc(ev['note'])}</p>" if ev.get("note") else ""
    return (f"<p><b>Claim:</b> {esc(said)}</p>" + img_html(fig, alt) + note
            + html_table(ev["header"], ev["rows"], "model evidence"))


__all__ = ["plot_footprint", "plot_lookup_costs", "plot_tree_levels", "plot_parse_grid", "plot_scenario_bars",
           "plot_three_systems", "plot_oversize", "plot_search_order", "plot_claim", "plot_scorecard",
           "img_html", "footprint_html", "where_html", "parse_pair_html", "compare_html", "claim_html"]
