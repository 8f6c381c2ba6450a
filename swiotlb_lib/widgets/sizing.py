"""Widgets of the chapter "Sizing SWIOTLB from a trace" (chapter 9b).

:func:`pool_timeline_widget` (precomputed: lifetime model x pool size, works on the static
page) and :func:`units_live` (needs a kernel: what the kernel builds from a ``swiotlb=``
value).  :data:`LIVE_CALLBACKS` lists the live callback for the benchmark.  The states come
from :mod:`swiotlb_lib.trace.sizing` (the chapter's analyses, re-exported below because the
chapter reaches them as ``sz.*``) and are drawn by :mod:`swiotlb_lib.plots.sizing`.
"""
from __future__ import annotations

import ipywidgets as W

from ..plots import sizing as P
from ..report import text_table as _text_table
from ..trace.recordings import RECORDINGS, boot_record, first_event, kernel_hiwater, load, steps_ms
from ..trace.sizing import (WIDGET_LIFETIMES, WIDGET_POOLS, advice, advice_bars, advice_rows,
                            advice_warnings, calibration_curves, calibration_rows, calibration_windows,
                            demand_data, direction_rows, failure_steps_rows, hiwater_rows, kernel_build,
                            lifetime_rows, livelock_plot_data, livelock_rows, livelock_summary,
                            min_slots_rows, model_check_rows, overview_rows, pool_state, profile_rows,
                            replay_run, rounding_rows, size_rows, small_pool_check, spread_rows, step_rows,
                            thin)
from .common import STATIC_OK, live


def text_table(header, rows) -> str:
    """The chapter's tables: :func:`swiotlb_lib.report.text_table` without trailing blanks."""
    return _text_table(header, rows, strip=True)


def widget_lifetimes() -> list:
    """The main widget's lifetime choices: the measured ones, the library default and a
    pessimistic queue-depth model (four requests in flight)."""
    return list(WIDGET_LIFETIMES)


def render_pool_state(lifetime: str, nslabs: int) -> str:
    """One state of the main widget, as HTML."""
    return P.pool_state_html(pool_state(lifetime, nslabs), nslabs, WIDGET_POOLS)


def pool_timeline_widget(lifetimes=None, pools=WIDGET_POOLS, value=("real", 1024)) -> W.VBox:
    """Main widget (precomputed, works on the static page): a lifetime model and a pool
    size select one of ``len(lifetimes) * len(pools)`` rendered states.

    Two controls cannot drive one ``Stack`` index in the browser, so the states are nested:
    the lifetime buttons are ``jslink``-ed to an outer ``Stack`` with one inner ``Stack`` per
    lifetime, and the pool buttons to every inner ``Stack``.  The box has the layout of
    :func:`swiotlb_lib.widgets.common.precomputed` (controls, stack, note)."""
    lifetimes = widget_lifetimes() if lifetimes is None else list(lifetimes)
    pools = list(pools)
    style = {"description_width": "initial", "button_width": "auto"}
    lt_ctl = W.ToggleButtons(options=[P.lifetime_label(x) for x in lifetimes],
                             value=P.lifetime_label(value[0]), description="lifetimes", style=style)
    pool_ctl = W.ToggleButtons(options=[f"{n} slots" for n in pools], value=f"{value[1]} slots",
                               description="pool (swiotlb=N,force)", style=style)
    inners = []
    for lt in lifetimes:
        inner = W.Stack([W.HTML(render_pool_state(lt, n)) for n in pools], selected_index=pool_ctl.index)
        W.jslink((pool_ctl, "index"), (inner, "selected_index"))
        inners.append(inner)
    outer = W.Stack(inners, selected_index=lt_ctl.index)
    W.jslink((lt_ctl, "index"), (outer, "selected_index"))
    box = W.VBox([W.VBox([lt_ctl, pool_ctl]), outer, W.HTML(STATIC_OK)])
    box.add_class("bounce-precomputed")
    return box


def kernel_units(slots: int = 1761, cpus: int = 2, max_sectors_kb: int = 1280, ram: str = "2G") -> str:
    """What the kernel builds from ``swiotlb=<slots>,force`` on a machine with ``cpus`` CPUs
    and ``ram`` (the model boots it), and whether one request of ``max_sectors_kb`` fits."""
    return P.kernel_build_html(kernel_build(slots, cpus, max_sectors_kb, ram))


def units_live() -> W.VBox:
    """Needs a kernel: type the slots the advisor or your own estimate gives."""
    style = {"description_width": "initial"}
    controls = {
        "slots": W.BoundedIntText(value=1761, min=1, max=1 << 16, description="swiotlb= slots", style=style),
        "cpus": W.Dropdown(options=[1, 2, 3, 4, 8, 16, 48, 64], value=2, description="CPUs", style=style),
        "max_sectors_kb": W.Dropdown(options=[128, 256, 512, 1024, 1280], value=1280,
                                     description="max_sectors_kb", style=style),
        "ram": W.Dropdown(options=["1G", "2G", "8G"], value="2G", description="RAM", style=style),
    }
    return live(controls, kernel_units, "What the kernel builds from swiotlb=")


LIVE_CALLBACKS = {
    "kernel_units": (kernel_units, {"slots": 1761, "cpus": 2, "max_sectors_kb": 1280, "ram": "2G"}),
}

#: The chapter's names: the widgets, and the analyses it reaches as ``sz.*``.
__all__ = ["pool_timeline_widget", "render_pool_state", "kernel_units", "units_live", "widget_lifetimes",
           "text_table", "LIVE_CALLBACKS", "RECORDINGS", "WIDGET_LIFETIMES", "WIDGET_POOLS", "advice",
           "advice_bars", "advice_rows", "advice_warnings", "boot_record", "calibration_curves",
           "calibration_rows", "calibration_windows", "demand_data", "direction_rows", "failure_steps_rows",
           "first_event", "hiwater_rows", "kernel_hiwater", "lifetime_rows", "livelock_plot_data",
           "livelock_rows", "livelock_summary", "load", "min_slots_rows", "model_check_rows",
           "overview_rows", "profile_rows", "replay_run", "rounding_rows", "size_rows", "small_pool_check",
           "spread_rows", "step_rows", "steps_ms", "thin"]
