"""Figures of the merged dynamic design on Linux 6.12.117 (``data/realkernel-dynamic/``).
Data come from :mod:`swiotlb_lib.scenarios.dynamic612`; these functions only draw."""
from __future__ import annotations

import numpy as np

from .common import COLORS, figure

KERNEL_STYLE = dict(color=COLORS["pool_used"], lw=1.4)
MODEL_STYLE = dict(color=COLORS["transient"], lw=1.2, ls="--")


def _steps(times, t_end):
    """Cumulative count over time as step coordinates starting at 0."""
    ts = sorted(times)
    return [ts[0] if ts else t_end] + ts + [t_end], [0] + list(range(1, len(ts) + 1)) + [len(ts)]


def plot_pools_over_time(v: dict, width: float = 7.2, height: float = 5.0):
    """One boot (:func:`~swiotlb_lib.scenarios.dynamic612.side_by_side`): top, slots in use
    (the kernel's, summed from the trace's mappings, against the model's own run) and the
    kernel's pool capacity; bottom, worker and transient pools added so far, kernel solid,
    model dashed.  A dotted line marks where the model of the stock kernel first livelocks."""
    k, fol, own = v["kernel"], v["following"], v["own"]
    fig, (a1, a2) = figure(width, height, nrows=2, sharex=True)
    t_end = max(fol["t"][-1], own["t"][-1])
    a1.plot(fol["t"], fol["used"], label="slots in use: kernel", drawstyle="steps-post", **KERNEL_STYLE)
    a1.plot(own["t"], own["used"], label="slots in use: model (own worker)", drawstyle="steps-post",
            **MODEL_STYLE)
    cap_t, cap_n = _steps([t for t, _, _ in k["worker"]], t_end)
    base = v["boot_nslabs"]
    sizes = np.cumsum([0] + [n for _, _, n in sorted(k["worker"])])
    cap = [base + int(sizes[i]) for i in cap_n]
    a1.plot(cap_t, cap, drawstyle="steps-post", color=COLORS["pool"], lw=1, label="kernel's pool slots (boot + worker)")
    a1.set_ylabel("slots")
    a1.legend(fontsize=7, loc="upper left")
    for times, lab, col in (([t for t, _, _ in k["worker"]], "worker pools: kernel", COLORS["pool"]),
                            ([t for t, _, _ in k["transient"]], "transient pools: kernel", COLORS["fail"])):
        x, y = _steps(times, t_end)
        a2.plot(x, y, drawstyle="steps-post", color=col, lw=1.4, label=lab)
    for times, lab, col in (([t for t, _ in own["worker"]], "worker pools: model", COLORS["pool"]),
                            ([t for t, _ in own["transient"]], "transient pools: model", COLORS["fail"])):
        x, y = _steps(times, t_end)
        a2.plot(x, y, drawstyle="steps-post", color=col, lw=1.2, ls="--", label=lab)
    first = v["stock"]["first_livelock"]
    for ax in (a1, a2):
        if first is not None:
            ax.axvline(first, color=COLORS["kernel"], ls=":", lw=1.2)
    if first is not None:
        a2.text(first, a2.get_ylim()[1] * 0.9, " model of stock 6.12:\n first livelock", fontsize=7, va="top")
    a2.set_ylabel("pools added so far")
    a2.set_xlabel("trace time (s)")
    a2.legend(fontsize=7, loc="center left")
    a1.set_title(f"{v['boot']} ({v['cmdline']}), Linux 6.12.117 with CONFIG_SWIOTLB_DYNAMIC:\n"
                 "kernel (solid) and model with its own worker (dashed)", fontsize=9)
    return fig


def plot_delay_sweep(v: dict, width: float = 5.5, height: float = 2.8):
    """Transient pools of the model's own worker by worker delay
    (:func:`~swiotlb_lib.scenarios.dynamic612.delay_sweep`), the kernel's count as a line."""
    fig, ax = figure(width, height)
    d = [r[0] for r in v["rows"]]
    n = [r[2] for r in v["rows"]]
    ax.plot(d, n, "o-", color=COLORS["transient"], label="model: transient pools")
    ax.axhline(v["kernel"][1], color=COLORS["pool_used"], ls=":", label=f"kernel ({v['boot']}): {v['kernel'][1]}")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlim(0, max(d) * 1.3)
    ax.set_ylim(0, max(n + [v["kernel"][1]]) * 1.6)
    ax.set_xlabel("worker delay (ms of trace time)")
    ax.set_ylabel("transient pools")
    ax.legend(fontsize=8)
    return fig
