"""Chapter 10, "How to measure SWIOTLB": its widgets, controls wired to the studies of
:mod:`swiotlb_lib.perf.studies` and the renderings of :mod:`swiotlb_lib.plots.measuring`.

Precomputed (work on the static page): :func:`scaling_widget` (main), :func:`runs_widget`,
:func:`costs_widget`.  Live (need a kernel; listed in :data:`LIVE_CALLBACKS`):
:func:`runs_live`, :func:`scaling_live`.

The chapter imports this module as ``M`` and reads its studies through it too, so the
names it uses are re-exported below; their home is :mod:`swiotlb_lib.perf.studies`.
"""
from __future__ import annotations

import ipywidgets as W

from ..constants import IO_TLB_SHIFT
from ..perf import studies as S
from ..perf.studies import COST_NSLABS, COST_PROFILES, COST_REQUESTS, LIVE_OPS, SCALING_AREAS
from ..perf.studies import (DESIGN_ASSUMPTIONS, PUBLISHED_RUNS_TABLE, analyse_two, cost_grid,
                            cost_model_lines, cost_table, design_lines, design_study, detectable_effect,
                            example_runs, force_vs_direct_lines, growth_table, latency_table,
                            map_benchmark_grid, map_benchmark_lines, reanalysis_rows, reanalysis_text,
                            rmit_lines, runs_table, runs_table_text, scaling_grid, scaling_table,
                            small_pool_rows, small_pool_text)
from ..plots import measuring as P
from ..report import mib
from .common import live, precomputed

__all__ = [
    "scaling_widget", "runs_widget", "costs_widget", "runs_live", "scaling_live", "runs_html",
    "scaling_html", "LIVE_CALLBACKS", "RUNS_WIDGET_COVS",
    # re-exported from perf.studies for the chapter (M.<name>)
    "COST_PROFILES", "SCALING_AREAS", "DESIGN_ASSUMPTIONS", "PUBLISHED_RUNS_TABLE", "analyse_two",
    "cost_grid", "cost_model_lines", "cost_table", "design_lines", "design_study", "detectable_effect",
    "example_runs", "force_vs_direct_lines", "growth_table", "latency_table", "map_benchmark_grid",
    "map_benchmark_lines", "reanalysis_rows", "reanalysis_text", "rmit_lines", "runs_table",
    "runs_table_text", "scaling_grid", "scaling_table", "small_pool_rows", "small_pool_text"]

#: CoV values (percent) of :func:`runs_widget`.
RUNS_WIDGET_COVS = (0.5, 1, 2, 3, 5, 10)


def _choose(options: dict, render, description: str, value, kind: str) -> W.VBox:
    """:func:`~.common.precomputed` over ``{label: option}``, rendering the option."""
    start = next((lab for lab, o in options.items() if o == value), None)
    return precomputed(list(options), lambda lab: render(options[lab]), description, value=start, kind=kind)


def scaling_widget(areas=SCALING_AREAS, value: int = 8) -> W.VBox:
    """Precomputed (MAIN): number of areas -> throughput against threads."""
    grid = S.scaling_grid(areas=tuple(areas))
    return _choose({f"{a} area{'s' if a > 1 else ''}": a for a in areas},
                   lambda a: P.scaling_state_html(a, grid), "areas in the pool", value, "toggle")


def runs_widget(covs=RUNS_WIDGET_COVS, value: float = 3) -> W.VBox:
    """Precomputed: per-run CoV -> runs per arm against the difference to detect."""
    return _choose({f"{c:g} %": c for c in covs},
                   lambda c: P.runs_state_html(S.detection_rows((c,), (3,), (5, 2))[0]),
                   "CoV of one run", value, "slider")


def costs_widget(nslabs=COST_NSLABS, profiles=COST_PROFILES, requests: int = COST_REQUESTS,
                 value: int = 512) -> W.VBox:
    """Precomputed: pool size -> the cost counters of the five profiles."""
    def render(n):
        rows = S.cost_rows(n, profiles, requests)
        return P.cost_state_html(rows, S.cost_table_of(rows))
    return _choose({f"{mib(n << IO_TLB_SHIFT)} ({n} slots)": n for n in nslabs}, render,
                   "pool size", value, "dropdown")


def runs_html(cov: float = 3.0, effect: float = 3.0, power: float = 0.8, arms: int = 2) -> str:
    """Live: runs per arm for any CoV, effect and power, with the first RMIT blocks."""
    return P.runs_html(S.runs_plan(cov, effect, power, arms))


def runs_live() -> W.VBox:
    cov = W.FloatLogSlider(value=3, base=10, min=-1, max=1.3, step=0.05, description="CoV %",
                           continuous_update=False)
    eff = W.FloatLogSlider(value=3, base=10, min=-1, max=1.3, step=0.05, description="detect %",
                           continuous_update=False)
    power = W.Dropdown(options=[0.5, 0.8, 0.9, 0.95], value=0.8, description="power")
    arms = W.IntSlider(value=2, min=2, max=6, description="kernels")
    return live({"cov": cov, "effect": eff, "power": power, "arms": arms}, runs_html,
                "Runs needed (any values)")


def scaling_html(threads: int = 8, areas: int = 4, transfer_ns: float = 0.0, ops: int = LIVE_OPS) -> str:
    """Live: one simulated run (``ops`` pairs) as text and a bar of the lock-wait share."""
    r, one = S.live_scaling(threads, areas, transfer_ns, ops)
    return P.scaling_live_html(r, one, areas, transfer_ns)


def scaling_live() -> W.VBox:
    threads = W.IntSlider(value=8, min=1, max=32, description="threads", continuous_update=False)
    areas = W.Dropdown(options=[1, 2, 4, 8, 16, 32], value=4, description="areas")
    transfer = W.SelectionSlider(options=[0, 500, 1000, 2000, 5000, 10000], value=0,
                                 description="transfer ns", continuous_update=False)
    return live({"threads": threads, "areas": areas, "transfer_ns": transfer}, scaling_html,
                "Concurrency model (1000 simulated pairs per redraw)")


#: Live callbacks with typical arguments, for the 250 ms benchmark.
LIVE_CALLBACKS = {
    "runs": (runs_html, {"cov": 3.0, "effect": 3.0, "power": 0.8, "arms": 2}),
    "scaling": (scaling_html, {"threads": 16, "areas": 4, "transfer_ns": 0.0}),
}
