"""Figures for the chapter "Sizing SWIOTLB from a trace" (chapter 9b).

Every ``plot_*`` function takes arrays computed by :mod:`swiotlb_lib.trace.sizing` and
returns a matplotlib figure; :func:`pool_state_html` and :func:`kernel_build_html` render
the states of the chapter's two widgets as HTML.  None replays anything itself.  Times are
in milliseconds from the first workload step marker of the trace.
"""
from __future__ import annotations

import numpy as np

from ..constants import IO_TLB_SHIFT, MiB
from ..report import esc
from .common import COLORS, PROFILE_COLORS, figure, img_html


#: Colours of the candidate pool lines, smallest first.
POOL_COLORS = ("#d62828", "#f77f00", "#2a9d8f", "#457b9d", "#6a4c93")
#: Colours of the lifetime models in the calibration figure.
LIFETIME_COLORS = {"real": "#1d3557", "fixed": "#e76f51", "exp": "#2a9d8f", "lognormal": "#f4a261",
                   "qd": "#6a4c93"}
PROFILE_LABELS = {"v6.3rc": "v6.3-rc", "v6.3": "v6.3", "rfc-v1": "RFC v1", "v6.6": "v6.6",
                  "v6.6-dynamic": "v6.6\ndynamic", "v6.11": "v6.11", "v6.11-dynamic": "v6.11\ndynamic"}


def _steps(ax, steps, top, label=True, fontsize=6):
    """Shade every other workload step and name each one at the top of the axes."""
    for k, (t0, t1, name) in enumerate(steps):
        if k % 2:
            ax.axvspan(t0, t1, color="#000000", alpha=0.05, lw=0)
        if label and t1 - t0 > 0:
            ax.text((t0 + t1) / 2, top, name, ha="center", va="top", fontsize=fontsize, color="#555555",
                    rotation=90)


def plot_demand(t_ms, used, pools, steps, hiwater=None, title=""):
    """Slots in use over time in a replay with a pool large enough never to fail, and the
    candidate pool sizes as horizontal lines.

    ``pools`` is a list of ``(nslabs, label)``; ``steps`` a list of ``(start_ms, end_ms,
    short name)``; ``hiwater`` the kernel's ``io_tlb_used_hiwater`` (dotted line)."""
    fig, ax = figure(7.0, 3.6)
    top = max([n for n, _ in pools] + [int(np.max(used)) if len(used) else 1]) * 1.32
    _steps(ax, steps, top * 0.99)
    ax.plot(t_ms, used, drawstyle="steps-post", color=COLORS["pool_used"], lw=1.1, label="slots in use (replay)")
    for k, (n, label) in enumerate(pools):
        ax.axhline(n, color=POOL_COLORS[k % len(POOL_COLORS)], lw=1.4, ls="--")
        ax.text(0.005, n, f" {label}", transform=ax.get_yaxis_transform(), va="bottom", ha="left",
                fontsize=7, color=POOL_COLORS[k % len(POOL_COLORS)])
    if hiwater is not None:
        ax.axhline(hiwater, color="k", lw=0.9, ls=":", label=f"kernel's io_tlb_used_hiwater ({hiwater})")
    ax.set_ylim(0, top)
    ax.set_xlim(t_ms[0] if len(t_ms) else 0, (steps[-1][1] if steps else (t_ms[-1] if len(t_ms) else 1)))
    ax.set_xlabel("ms since the first workload step")
    ax.set_ylabel("slots in use (2 KiB each)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="center left", frameon=False)
    ax.grid(alpha=0.3, axis="y")
    return fig


def plot_calibration(curves, windows, hiwater=None, title=""):
    """Slots in use with the measured lifetimes and with modelled ones, in one panel per
    window of the trace.  ``curves`` is ``[(label, kind, t_ms, used)]`` (``kind`` picks the
    colour: real, fixed, exp, lognormal, qd); ``windows`` is ``[(lo_ms, hi_ms, title)]``."""
    fig, axes = figure(7.0, 3.3, ncols=len(windows), sharey=True)
    axes = np.atleast_1d(axes)
    styles = {}
    for k, (label, kind, _, _) in enumerate(curves):
        real = kind == "real"
        dash = ("-", "--", ":", "-.")[k % 4] if not real else "-"
        styles[label] = dict(color=LIFETIME_COLORS.get(kind, "#888888") if k < 2 or kind != "qd" else
                             ("#6a4c93", "#9d4edd", "#c77dff")[k % 3],
                             lw=2.6 if real else 1.2, alpha=0.5 if real else 0.95, zorder=1 if real else 2,
                             ls=dash)
    for ax, (lo, hi, wtitle) in zip(axes, windows):
        for label, kind, t, u in curves:
            t, u = np.asarray(t), np.asarray(u)
            sel = (t >= lo) & (t <= hi)
            ax.plot(t[sel], u[sel], drawstyle="steps-post", label=label, **styles[label])
        if hiwater is not None:
            ax.axhline(hiwater, color="k", lw=0.9, ls=":")
        ax.set_xlim(lo, hi)
        ax.set_title(wtitle, fontsize=8)
        ax.set_xlabel("ms since the first workload step", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, None)
    axes[0].set_ylabel("slots in use")
    handles, labels = axes[0].get_legend_handles_labels()
    if hiwater is not None:
        handles.append(axes[0].lines[-1])
        labels.append(f"kernel's io_tlb_used_hiwater ({hiwater})")
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=3, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_pool_run(t_ms, used, nslabs, fails=(), livelocks=(), steps=(), title="", width=6.0, height=3.0,
                  window=None):
    """One replay with a given pool: slots in use, the pool as a line, every failed mapping
    attempt as a red cross at the slots in use when it failed, and each livelocked request
    as a triangle on the pool line.  ``fails`` is ``[(t_ms, used)]``, ``livelocks`` a list
    of times in ms."""
    fig, ax = figure(width, height)
    t_ms, used = np.asarray(t_ms), np.asarray(used)
    top = max(nslabs, int(used.max()) if used.size else 1) * 1.3
    if steps:
        _steps(ax, steps, top * 0.99, label=window is None)
    ax.plot(t_ms, used, drawstyle="steps-post", color=COLORS["pool_used"], lw=1.0, label="slots in use")
    ax.axhline(nslabs, color=COLORS["pool"], lw=1.6, ls="--", label=f"pool: {nslabs} slots")
    if len(fails):
        f = np.asarray(fails, dtype=float)
        if window is not None:          # a failed retry held these slots for a moment
            ax.vlines(f[:, 0], 0, f[:, 1], color=COLORS["fail"], alpha=0.3, lw=0.8)
        ax.plot(f[:, 0], f[:, 1], "x", color=COLORS["fail"], ms=4, mew=1.0, alpha=0.7,
                label=f"failed mapping attempt ({len(f)})")
    if len(livelocks):
        ax.plot(list(livelocks), [nslabs] * len(livelocks), "v", color="#000000", ms=6,
                label=f"livelock: request dropped ({len(livelocks)})")
    if window is not None:
        ax.set_ylim(0, max(nslabs, int(used.max()) if used.size else 1) * 1.45)
        ax.set_xlim(*window)
        ax.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
    else:
        ax.set_ylim(0, top)
        if steps:
            ax.set_xlim(steps[0][0], steps[-1][1])
        ax.legend(fontsize=7, loc="center left", frameon=False)
    ax.set_xlabel("ms since the first workload step")
    ax.set_ylabel("slots in use")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return fig


def plot_advice(rows, default_mib=64.0, title=""):
    """The advisor's answer per profile: the boot pool it recommends and the most memory
    held for bouncing in that replay (MiB, log scale), against the 64 MiB default.
    ``rows`` is ``[(profile, pool_mib, peak_held_mib)]``."""
    fig, ax = figure(7.0, 3.0)
    x = np.arange(len(rows))
    pool = [r[1] for r in rows]
    held = [r[2] for r in rows]
    colors = [PROFILE_COLORS.get(r[0], "#888888") for r in rows]
    ax.bar(x - 0.2, pool, 0.4, color=colors, label="recommended boot pool")
    ax.bar(x + 0.2, held, 0.4, color=colors, alpha=0.45, hatch="//", edgecolor="white",
           label="most memory held in the replay")
    for xi, p, h in zip(x, pool, held):
        ax.text(xi - 0.2, p * 1.08, f"{p:g}", ha="center", va="bottom", fontsize=7)
        ax.text(xi + 0.2, h * 1.08, f"{h:.2f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(default_mib, color="k", ls=":", lw=1, label=f"kernel default ({default_mib:g} MiB)")
    ax.set_yscale("log")
    ax.set_ylim(0.25, default_mib * 2.2)
    ax.set_xticks(x, [PROFILE_LABELS.get(r[0], r[0]) for r in rows], fontsize=8)
    ax.set_ylabel("MiB (log scale)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", frameon=False, ncol=3)
    ax.grid(alpha=0.3, axis="y", which="both")
    return fig


def lifetime_label(spec: str) -> str:
    """How the widgets name a lifetime model."""
    return "real (kprobe unmaps)" if spec == "real" else spec


def _page_img(fig, alt: str) -> str:
    """:func:`swiotlb_lib.plots.common.img_html`, scaled to the page width if needed."""
    return img_html(fig, alt).replace("<img ", '<img style="max-width:100%;height:auto" ', 1)


def pool_state_html(s: dict, nslabs: int, pools) -> str:
    """One state of the main widget (:func:`swiotlb_lib.trace.sizing.pool_state` ``s`` of the
    replay with ``swiotlb=<nslabs>,force``): a verdict, the smallest clean size of ``pools``,
    and the figure of :func:`plot_pool_run`."""
    lt = lifetime_label(s["lifetime"])
    title = f"6.12-T2 on v6.11, swiotlb={nslabs},force, lifetimes: {lt}"
    alt = (f"Slots in use over the 6.12-T2 workload replayed with a {nslabs}-slot pool and lifetimes {lt}: "
           f"peak {s['peak']} slots, {s['failed_attempts']} failed mapping attempts, "
           f"{s['n_livelocks']} livelocked requests; the pool is a dashed line.")
    fig = plot_pool_run(s["t"], s["used"], s["nslabs"], s["fails"], s["livelocks"], s["steps"])
    verdict = ("<b style='color:#2a9d8f'>no failures</b>" if not s["failed_requests"] and not s["n_livelocks"]
               else f"<b style='color:#d62828'>{s['failed_requests']} of {s['requests']} requests failed at "
                    f"least once</b> ({s['failed_attempts']} failed mapping attempts"
                    + (f", {s['n_livelocks']} livelocked" if s["n_livelocks"] else "") + ")")
    best = (f"smallest of {', '.join(map(str, pools))} slots with no failures under this lifetime: "
            f"<b>{s['smallest_clean']}</b>" if s["smallest_clean"] else "none of the sizes is free of failures")
    return (f"<div style='font-size:90%'><b>{esc(title)}</b><br>peak {s['peak']} of {s['nslabs']} slots; "
            f"{verdict}.<br>{best}.</div>{_page_img(fig, alt)}")


def kernel_build_html(d: dict) -> str:
    """What the kernel builds from ``swiotlb=<slots>,force``
    (:func:`swiotlb_lib.trace.sizing.kernel_build` ``d``) and whether one request fits."""
    if not d["nslabs"]:
        return f"<div>swiotlb={d['slots']},force: no pool</div>"
    n, need, cpus, nareas = d["nslabs"], d["need"], d["cpus"], d["nareas"]
    verdict = (f"<span style='color:#2a9d8f'>fits in the pool ({n} slots)</span>" if d["fits"] else
               f"<b style='color:#d62828'>never completes: {need} &gt; {n} slots "
               f"(livelock, finding 12)</b>")
    return (f"<div><b>swiotlb={d['slots']},force</b> on {cpus} CPU{'s' if cpus > 1 else ''}, {esc(d['ram'])} "
            f"RAM: the kernel builds <b>{n} slots</b> ({(n << IO_TLB_SHIFT) / MiB:g} MiB) in "
            f"{nareas} area{'s' if nareas > 1 else ''} of {d['area_nslabs']} slots.<br>"
            f"A request of max_sectors_kb={d['max_sectors_kb']} KiB holds at least {need} slots at once: "
            f"{verdict}.<br><small>model boot log: {esc(' | '.join(d['log']))}</small></div>")
