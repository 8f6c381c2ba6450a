"""Figures of chapter 10, "How to measure SWIOTLB", and the widget states built on them.

Every function takes data computed by :mod:`swiotlb_lib.perf.studies` (or the other
:mod:`swiotlb_lib.perf` modules) and returns a matplotlib figure, or (the ``*_html``
functions) the HTML of one widget state: figure, headline and numbers.  None runs the
model.
"""
from __future__ import annotations

import html

import numpy as np

from ..constants import IO_TLB_SHIFT
from ..perf.stats import runs_needed
from .common import COLORS, PROFILE_COLORS, figure, img_html
from ..report import mib

VERDICT_COLORS = {"noise": "#8d99ae", "marginal": "#f4a261", "signal": COLORS["fail"]}
ARM_COLORS = ("#1d3557", "#e76f51")


def forest(rows, title: str = ""):
    """Forest plot of the re-analysis: one row per platform/test/configuration, the
    published difference as a dot, our 95 % Welch interval as a bar, a line at 0."""
    n = len(rows)
    fig, ax = figure(7.0, 0.22 * n + 1.0)
    y = np.arange(n)[::-1]
    for yi, r in zip(y, rows):
        c = VERDICT_COLORS[r["verdict"]]
        ax.plot([r["low"], r["high"]], [yi, yi], color=c, lw=2.2, solid_capstyle="butt")
        ax.plot([r["diff"]], [yi], "o", color=c, ms=4.5, mec="black", mew=0.5)
    ax.axvline(0, color="black", lw=0.9)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['platform']} {r['test']} {r['config']}" for r in rows], fontsize=7)
    # separators between platforms
    for i in range(1, n):
        if rows[i]["platform"] != rows[i - 1]["platform"]:
            ax.axhline(y[i] + 0.5, color="#cccccc", lw=0.8)
    for v, c in VERDICT_COLORS.items():
        ax.plot([], [], color=c, lw=3, label=v)
    ax.legend(fontsize=7, loc="lower right", title="our verdict", title_fontsize=7)
    ax.set_xlabel("difference in read-write bandwidth, patched vs vanilla (%), with 95 % interval")
    ax.set_ylim(-0.7, n - 0.3)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9)
    return fig


def design_figure(study: dict, show=("10 boots per kernel, A then B", "10 boots per kernel, RMIT order")):
    """Left: one example session of two identical kernels for two designs (runs against
    time in the session, coloured by arm, the machine's drift as a line). Right: the
    false-positive rate of each design, with the nominal 5 %."""
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(7.2, 3.2), dpi=100, constrained_layout=True)
    gs = fig.add_gridspec(len(show), 2, width_ratios=[1.25, 1])
    for i, label in enumerate(show):
        ax = fig.add_subplot(gs[i, 0])
        t, arm, v, ci = study["examples"][label]
        for a, name in ((0, "kernel A"), (1, "kernel B (identical)")):
            m = arm == a
            ax.plot(t[m], v[m], "o", ms=3.5, color=ARM_COLORS[a], label=name)
            ax.plot([t[m].min(), t[m].max()], [v[m].mean()] * 2, color=ARM_COLORS[a], lw=1.2, alpha=0.7)
        ax.set_title(f"{label}: B - A = {ci.estimate:+.1f} % [{ci.low:+.1f}, {ci.high:+.1f}]", fontsize=7.5)
        ax.set_ylabel("result (%)", fontsize=7)
        ax.tick_params(labelsize=6.5)
        ax.grid(alpha=0.3)
        if i == len(show) - 1:
            ax.set_xlabel("time in the session", fontsize=7)
        handles = ax.get_legend_handles_labels()
    ax = fig.add_subplot(gs[:, 1])
    labels = list(study["rates"])
    rates = [100 * study["rates"][k] for k in labels]
    colors = [COLORS["fail"] if r > 10 else COLORS["ok"] for r in rates]
    yy = np.arange(len(labels))[::-1]
    ax.barh(yy, rates, color=colors)
    for yi, r in zip(yy, rates):
        ax.text(max(r, 5) + 1.5, yi, f"{r:.0f} %", va="center", fontsize=7)
    ax.axvline(5, color="black", ls="--", lw=0.9, label="5 % expected")
    h, lab = ax.get_legend_handles_labels()
    ax.legend(handles[0] + h, handles[1] + lab, fontsize=6.5, loc="lower right", frameon=False)
    ax.set_yticks(yy)
    ax.set_yticklabels([k.replace(", ", ",\n") for k in labels], fontsize=7)
    ax.set_xlim(0, 105)
    ax.set_xlabel("false 'significant' differences (%)", fontsize=7)
    ax.tick_params(labelsize=6.5)
    ax.set_title(f"{study['experiments']} experiments per design", fontsize=7.5)
    return fig


def runs_curve(cov: float, effects=None, width: float = 7.0, height: float = 3.0,
               covs_faint=(0.5, 1, 2, 3, 5, 10)):
    """Runs per arm (log) against the difference to detect, for CoV ``cov`` (bold) and
    the other CoVs (faint); horizontal lines at 2 (the RFC) and 5 runs (v3)."""
    effects = np.geomspace(0.5, 20, 60) if effects is None else np.asarray(effects)
    fig, ax = figure(width, height)
    for c in covs_faint:
        if c == cov:
            continue
        ax.plot(effects, [runs_needed(c, e) for e in effects], color="#bbbbbb", lw=1)
        ax.text(effects[0], runs_needed(c, effects[0]), f"{c:g} %", fontsize=6, color="#888888",
                ha="right", va="center")
    ys = [runs_needed(cov, e) for e in effects]
    ax.plot(effects, ys, color=COLORS["pool_used"], lw=2.4, label=f"CoV {cov:g} %")
    for n, lab in ((2, "2 runs (the RFC's fio runs)"), (5, "5 runs (v3 tables)")):
        ax.axhline(n, color=COLORS["transient"], ls="--", lw=0.9)
        ax.text(effects[0] * 1.05, n * 1.1, lab, fontsize=6.5, ha="left", color=COLORS["transient"])
    for e in (1, 3, 10):
        n = runs_needed(cov, e)
        ax.plot([e], [n], "o", color=COLORS["pool_used"], ms=4)
        ax.annotate(f"{n}", (e, n), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks([0.5, 1, 2, 3, 5, 10, 20])
    ax.set_xticklabels(["0.5", "1", "2", "3", "5", "10", "20"])
    ax.set_xlabel("difference to detect (%), alpha 0.05, power 0.8")
    ax.set_ylabel("runs per kernel")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper right")
    return fig


#: Counters drawn by :func:`cost_bars`: (key, label).
COST_BARS = (("slots_examined", "slots examined"), ("pool_searches", "pool searches"),
             ("area_locks", "area locks"), ("tree_locks", "RFC tree locks"),
             ("lookup_steps", "lookup steps"), ("bytes_copied", "KiB copied"),
             ("page_allocs", "page allocations"))


def cost_bars(rows, title: str = "", width: float = 7.0, height: float = 3.2):
    """Grouped horizontal bars: each counter per successful mapping (log scale), one bar
    per profile."""
    fig, ax = figure(width, height)
    k = len(rows)
    h = 0.8 / k
    y0 = np.arange(len(COST_BARS))[::-1]
    for i, r in enumerate(rows):
        per = []
        for key, _ in COST_BARS:
            v = r[key] / 1024 if key == "bytes_copied" else r[key]
            per.append(v / r["mapped"] if r["mapped"] else 0.0)
        ax.barh(y0 + 0.4 - (i + 0.5) * h, per, height=h, color=PROFILE_COLORS.get(r["kernel"], "#999999"),
                label=f"{r['kernel']}" + (f" ({r['failed']} failed)" if r["failed"] else ""))
    ax.set_xscale("log")
    ax.set_xlim(1e-3, None)
    ax.set_yticks(y0)
    ax.set_yticklabels([lab for _, lab in COST_BARS], fontsize=7)
    ax.set_xlabel("per successful mapping (log scale; 0 not drawn)", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title, fontsize=8)
    return fig


def cost_lines(grid, profiles, width: float = 7.2, height: float = 3.0):
    """Two panels against boot pool size, one line per profile: slots examined per
    successful mapping (search work), and page allocations made during the run (symlog,
    so 0 is drawn) with the failed mappings as crosses."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(width, height), dpi=100, constrained_layout=True)
    sizes = sorted({r["nslabs"] for r in grid})
    markers = dict(zip(profiles, "osD^v<>"))
    for k in profiles:
        rs = sorted((r for r in grid if r["kernel"] == k), key=lambda r: r["nslabs"])
        x = [r["pool"] / (1 << 20) for r in rs]
        col = PROFILE_COLORS.get(k, "#999999")
        ls = "--" if k in ("v6.6", "v6.6-dynamic") else "-"
        kw = dict(marker=markers[k], ms=4, color=col, mfc="none" if ls == "--" else col)
        axes[0].plot(x, [r["slots_examined"] / max(r["mapped"], 1) for r in rs], ls, label=k, **kw)
        axes[1].plot(x, [r["page_allocs"] for r in rs], ls, label=k, **kw)
        fails = [(xx, r["failed"]) for xx, r in zip(x, rs) if r["failed"]]
        if fails:
            axes[1].plot([f[0] for f in fails], [f[1] for f in fails], "x", color=COLORS["fail"], ms=7, mew=1.5)
    axes[1].plot([], [], "x", color=COLORS["fail"], label="failed mappings (v6.3, v6.6)")
    axes[1].set_yscale("symlog", linthresh=1)
    axes[1].set_ylim(-0.3, 3e4)
    axes[0].set_yscale("log")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks([s * 2048 / (1 << 20) for s in sizes])
        ax.set_xticklabels([mib(s * 2048) for s in sizes], fontsize=6.5)
        ax.minorticks_off()
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("boot pool size", fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("slots examined per mapping", fontsize=7)
    axes[1].set_ylabel("count during the run", fontsize=7)
    axes[0].set_title("search work", fontsize=8)
    axes[1].set_title("page allocations (lines), failed mappings (x)", fontsize=8)
    axes[0].legend(fontsize=6, loc="upper right", frameon=False)
    axes[1].legend(handles=axes[1].get_legend_handles_labels()[0][-1:], fontsize=6, loc="center right",
                   frameon=False)
    return fig


def scaling(grid, highlight: int | None = None, width: float = 7.0, height: float = 3.0):
    """Throughput (left) and lock-wait share (right) against threads, one line per area
    count; ``highlight`` draws one of them bold and the others faint."""
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(width, height), dpi=100, constrained_layout=True,
                                 gridspec_kw={"width_ratios": [1.4, 1]})
    palette = ("#d62828", "#f4a261", "#2a9d8f", "#1d3557", "#6a4c93", "#8d99ae")
    areas = list(grid)
    for i, a in enumerate(areas):
        rs = grid[a]
        t = [r.threads for r in rs]
        col = palette[i % len(palette)]
        bold = highlight is None or a == highlight
        kw = dict(color=col, lw=2.4 if bold else 1.1, alpha=1.0 if bold else 0.45, marker="o",
                  ms=4 if bold else 2.5, zorder=3 if bold else 2)
        lab = f"{a} area{'s' if a > 1 else ''}"
        a1.plot(t, [r.throughput / 1e6 for r in rs], label=lab, **kw)
        a2.plot(t, [100 * r.lock_wait_share for r in rs], label=lab, **kw)
    t = [r.threads for r in grid[areas[0]]]
    base = grid[areas[0]][0].throughput / 1e6
    a1.plot(t, [base * x for x in t], ":", color="black", lw=0.9, label="linear")
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(t)
        ax.set_xticklabels([str(x) for x in t], fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("mapping threads", fontsize=7)
        ax.grid(alpha=0.3)
    a1.set_ylabel("M map+unmap pairs / s", fontsize=7)
    a2.set_ylabel("time waiting for a lock (%)", fontsize=7)
    a2.set_ylim(-3, 100)
    a1.legend(fontsize=6.5, loc="upper left", frameon=False)
    a1.set_title("throughput (simulated)", fontsize=8)
    a2.set_title("lock-wait share", fontsize=8)
    return fig


def map_benchmark_plot(grid, width: float = 7.0, height: float = 2.8):
    """Average map and unmap latency against granule, one line per direction."""
    import matplotlib.pyplot as plt
    from ..perf.map_benchmark import DIRECTIONS
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(width, height), dpi=100, constrained_layout=True,
                                 sharey=True)
    styles = {0: ("#1d3557", "-"), 1: ("#2a9d8f", "--"), 2: ("#e76f51", ":")}
    for d, rows in grid.items():
        g = [r[0] for r in rows]
        col, ls = styles[d]
        a1.plot(g, [r[1] for r in rows], ls, marker="o", ms=3.5, color=col, label=f"-d {d} {DIRECTIONS[d]}")
        a2.plot(g, [r[2] for r in rows], ls, marker="o", ms=3.5, color=col, label=f"-d {d} {DIRECTIONS[d]}")
    for ax, what in ((a1, "map"), (a2, "unmap")):
        ax.set_xscale("log", base=2)
        ax.set_xticks([r[0] for r in rows])
        ax.set_xticklabels([str(r[0]) for r in rows])
        ax.minorticks_off()
        ax.set_xlabel("granule (-g, pages of 4 KiB)", fontsize=7)
        ax.set_title(f"average {what} latency", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    a1.set_ylabel("µs (model)", fontsize=7)
    a2.legend(fontsize=6.5, loc="upper left", frameon=False)
    return fig


# ------------------------------------------------------------------ widget states ------

def _pre(text: str) -> str:
    return "<pre style='font-size:85%;line-height:1.25'>" + html.escape(text) + "</pre>"


def runs_state_html(row: dict) -> str:
    """One state of the runs widget, from a row of
    :func:`swiotlb_lib.perf.studies.detection_rows` with the runs needed for 3 % and the
    changes 5 and 2 runs detect: runs per arm against the difference to detect."""
    cov, n3 = row["cov"], row["runs_needed"][3]
    d5, d2 = row["detectable"][5], row["detectable"][2]
    fig = runs_curve(cov, width=6, height=3)
    alt = (f"Runs per kernel needed against the difference to detect, for a CoV of {cov:g} %: "
           f"{n3} runs for a 3 % difference; 5 runs detect {d5:.1f} %, 2 runs {d2:.1f} %.")
    head = (f"<b>CoV {cov:g} %: detecting 3 % needs {n3} runs per kernel; Petr's 5 runs detect "
            f"differences of {d5:.1f} % or more, two runs only {d2:.1f} %</b>")
    return head + img_html(fig, alt)


def runs_html(plan: dict) -> str:
    """A :func:`swiotlb_lib.perf.studies.runs_plan` as the live runs widget shows it."""
    n, arms = plan["runs"], plan["arms"]
    return (f"<b>CoV {plan['cov']:g} %, difference {plan['effect']:g} %, power {plan['power']:g}: "
            f"{n} runs per kernel, {n * arms} boots in all</b>" +
            _pre("RMIT order of the first blocks: " + " | ".join(plan["blocks"]) +
                 f"\n{n} runs detect {plan['detectable']:.2f} % at this CoV"))


def cost_state_html(rows, table: str) -> str:
    """One state of the costs widget: the counters of ``rows`` (one pool size, from
    :func:`swiotlb_lib.perf.studies.cost_rows`) as a figure, and ``table``, their text."""
    pool = mib(rows[0]["nslabs"] << IO_TLB_SHIFT)
    fig = cost_bars(rows, f"pool {pool}: counters per mapping", width=6, height=3)
    failed = ", ".join(f"{r['kernel']} {r['failed']}" for r in rows if r["failed"]) or "none"
    alt = (f"Counters per successful mapping for the storage scenario with a "
           f"{pool} pool on five kernels, log scale; failed mappings: {failed}.")
    return f"<b>pool {pool}: failed mappings: {html.escape(failed)}</b>" + img_html(fig, alt) + _pre(table)


def scaling_state_html(areas: int, grid: dict) -> str:
    """One state of the scaling widget: :func:`scaling` of ``grid`` with ``areas``
    highlighted and the numbers of that line."""
    rs = grid[areas]
    fig = scaling(grid, highlight=areas, width=6, height=3)
    best = max(rs, key=lambda r: r.throughput)
    alt = (f"Simulated throughput and lock-wait share against 1 to 16 mapping threads for pools "
           f"with 1, 4, 8 and 16 areas; the {areas}-area line is highlighted and peaks at "
           f"{best.threads} threads with {best.throughput / rs[0].throughput:.1f} times the "
           f"one-thread rate.")
    lines = [f"{'threads':>7} {'M pairs/s':>10} {'x 1 thread':>10} {'waiting':>8} {'map p99 us':>11}"]
    for r in rs:
        lines.append(f"{r.threads:>7} {r.throughput / 1e6:>10.2f} {r.throughput / rs[0].throughput:>10.2f} "
                     f"{100 * r.lock_wait_share:>7.1f}% {r.map.p99 / 1e3:>11.2f}")
    head = (f"<b>{areas} area{'s' if areas > 1 else ''}: best {best.throughput / rs[0].throughput:.1f}x "
            f"the one-thread rate, at {best.threads} threads</b>")
    return head + img_html(fig, alt) + _pre("\n".join(lines))


def scaling_live_html(r, one, areas: int, transfer_ns: float) -> str:
    """A live run of :func:`swiotlb_lib.perf.studies.live_scaling` (result ``r``,
    one-mapper baseline ``one``, ``areas`` asked for) as text and a bar of the lock-wait
    share."""
    w = int(round(100 * r.lock_wait_share))
    bar = (f"<div style='width:300px;border:1px solid #999;height:10px'>"
           f"<div style='width:{3 * w}px;height:10px;background:#d62828'></div></div>")
    return (f"<b>{r.threads} threads, {areas} areas, transfer {transfer_ns:g} ns: "
            f"{r.throughput / 1e6:.2f} M pairs/s ({r.throughput / one.throughput:.2f}x one thread), "
            f"{100 * r.lock_wait_share:.0f} % of the time waiting for a lock</b>" + bar +
            _pre(f"map   p50 {r.map.p50 / 1e3:.2f} us  p90 {r.map.p90 / 1e3:.2f} us  p99 {r.map.p99 / 1e3:.2f} us\n"
                 f"unmap p50 {r.unmap.p50 / 1e3:.2f} us  p90 {r.unmap.p90 / 1e3:.2f} us  "
                 f"p99 {r.unmap.p99 / 1e3:.2f} us\n"
                 f"{r.ops} pairs measured after warm-up; lock acquisitions {r.costs['lock_acquisitions']}"))
