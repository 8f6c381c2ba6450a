"""Dynamic bounce buffers (chapters 7, 8, 9 and 11): the widgets, controls wired to the
experiments of :mod:`swiotlb_lib.scenarios.dynamic` and :mod:`swiotlb_lib.scenarios.review`
and the renderings of :mod:`swiotlb_lib.plots.dynamic`.

Precomputed (they work on the static page): :func:`footprint_widget` (chapter 7),
:func:`parse_widget` (chapter 8), :func:`compare_widget` (chapter 9) and
:func:`claim_explorer` (chapter 11).  Live (they need a kernel): :func:`where_live` and
:func:`parse_live`; :data:`LIVE_CALLBACKS` lists their callbacks with typical arguments for
the timing benchmark.

The chapters import this module as ``wd`` and read the experiments through it too, so the
names they use are re-exported below; their home is :mod:`swiotlb_lib.scenarios.dynamic`
(chapters 7 to 9) and :mod:`swiotlb_lib.scenarios.review` (chapter 11).
"""
from __future__ import annotations

import ipywidgets as W

from ..constants import MiB
from ..plots import dynamic as P
from ..report import mib
from ..report import text_table
from ..scenarios.dynamic import (COMPARE_KERNELS, COMPARE_SCENARIOS, FOOTPRINT_HEADER, INTENSITIES, MIXES,
                                 PARSE_CMDLINES, PARSE_HEADER, WHERE_HEADER, WHERE_SIZES, WORKER_HEADER,
                                 compare_lines, compat_rows, footprint_rows, footprint_state, later_rows,
                                 lookup_costs, lookup_table, oversize_growth, parse_one, parse_pair, parse_rows,
                                 search_order, tail_bug, three_systems, transient_demo, tree_levels,
                                 where_does_it_go, where_rows, worker_demo, worker_rows)
from ..scenarios.review import (CLAIMS, MAY_SLEEP_HEADER, claim_evidence, claim_summary_text, may_sleep_rows,
                                scorecard, scorecard_text)
from .common import live, precomputed

__all__ = [
    "footprint_widget", "parse_widget", "compare_widget", "claim_explorer", "where_live", "parse_live",
    "footprint_options", "compare_options", "render_footprint", "render_where", "render_parse",
    "render_compare", "render_claim", "KERNEL_SETS", "LIVE_CALLBACKS",
    # re-exported for the chapters (wd.<name>); text_table is swiotlb_lib.report's
    "text_table", "FOOTPRINT_HEADER", "WHERE_HEADER", "PARSE_HEADER", "PARSE_CMDLINES", "WORKER_HEADER",
    "MAY_SLEEP_HEADER", "CLAIMS", "footprint_state", "footprint_rows", "lookup_costs", "lookup_table",
    "tree_levels", "where_does_it_go", "where_rows", "parse_one", "parse_pair", "parse_rows", "compat_rows",
    "later_rows", "three_systems", "compare_lines", "oversize_growth", "transient_demo", "worker_demo",
    "worker_rows", "tail_bug", "search_order", "claim_evidence", "claim_summary_text", "may_sleep_rows",
    "scorecard", "scorecard_text"]


# ------------------------------------------------------------ chapter 7 ----------------

def footprint_options() -> list:
    """The footprint widget's states: ``"<mix> / <intensity>"``."""
    return [f"{mix} / {i}" for mix in MIXES for i in INTENSITIES]


def render_footprint(option: str) -> str:
    mix, intensity = option.split(" / ")
    return P.footprint_html(footprint_state(mix, intensity), MIXES[mix], intensity)


def footprint_widget(value: str = "storage / heavy") -> W.VBox:
    """Main widget of chapter 7 (precomputed): workload mix and intensity -> footprint
    timeline, failures and tree lookups for the four configurations."""
    return precomputed(footprint_options(), render_footprint, "workload / intensity",
                       value=value, kind="dropdown")


def render_where(size: int, may_sleep: bool, kernel: str) -> str:
    """HTML for the live "where does it go" widget."""
    return P.where_html(where_does_it_go(size, may_sleep, kernel), size, may_sleep, kernel)


def where_live() -> W.VBox:
    """Kernel-only widget: pick a size, MAY_SLEEP and a kernel; see where the bounce
    buffer comes from."""
    size = W.SelectionSlider(options=[(mib(s), s) for s in WHERE_SIZES], value=1 * MiB,
                             description="buffer size", style={"description_width": "initial"})
    sleep = W.Checkbox(value=False, description="DMA_ATTR_MAY_SLEEP")
    kern = W.ToggleButtons(options=[("v6.3-rc", "v6.3rc"), ("RFC v1", "rfc-v1")], value="rfc-v1")
    return live({"size": size, "may_sleep": sleep, "kernel": kern}, render_where,
                "Where does a vc4 bounce buffer come from? (Raspberry Pi 4)")


# ------------------------------------------------------------ chapter 8 ----------------

def render_parse(cmdline: str, ram: str = "8G") -> str:
    """Side-by-side HTML of the mainline and the RFC parse of ``cmdline`` (both widgets)."""
    return P.parse_pair_html(parse_pair(cmdline, ram=ram))


def parse_widget(value: str = "swiotlb=force,dynamic") -> W.VBox:
    """Precomputed: pick one of :data:`PARSE_CMDLINES`; mainline and RFC side by side."""
    return precomputed(PARSE_CMDLINES, render_parse, "command line", value=value, kind="dropdown")


def parse_live() -> W.VBox:
    """Kernel-only: type any command line; mainline and RFC parses side by side."""
    text = W.Text(value="swiotlb=512,4,force,dynamic", description="kernel command line",
                  continuous_update=False, layout=W.Layout(width="480px"),
                  style={"description_width": "initial"})
    ram = W.ToggleButtons(options=["2G", "8G"], value="8G", description="RAM")
    return live({"cmdline": text, "ram": ram}, render_parse, "Type a command line")


# ------------------------------------------------------------ chapter 9 ----------------

#: Kernel sets of the comparison widget.
KERNEL_SETS = {"v6.3 vs RFC v1": ("v6.3", "rfc-v1"),
               "v6.3 vs merged": ("v6.3", "v6.6-dynamic", "v6.11-dynamic"),
               "all four": COMPARE_KERNELS}


def compare_options() -> list:
    """The comparison widget's states: ``"<scenario> / <kernel set>"``."""
    return [f"{s} / {ks}" for s in COMPARE_SCENARIOS for ks in KERNEL_SETS]


def render_compare(option: str) -> str:
    scen, kset = option.split(" / ")
    return P.compare_html([r for r in three_systems()[scen] if r.kernel in KERNEL_SETS[kset]], scen)


def compare_widget(value: str = "rpi4-4k / all four") -> W.VBox:
    """Main widget of chapter 9 (precomputed): scenario x kernel set -> table and plot."""
    return precomputed(compare_options(), render_compare, "scenario / kernels", value=value,
                       kind="dropdown")


# ------------------------------------------------------------ chapter 11 ---------------

def render_claim(title: str) -> str:
    key, _, said = next(c for c in CLAIMS if c[1] == title)
    return P.claim_html(key, said, claim_evidence(key))


def claim_explorer(value: str | None = None) -> W.VBox:
    """Main widget of chapter 11 (precomputed): pick a claim -> the model's evidence."""
    titles = [c[1] for c in CLAIMS]
    return precomputed(titles, render_claim, "claim", value=value or titles[0], kind="dropdown")


#: Live callbacks and typical arguments, for the 250 ms benchmark.
LIVE_CALLBACKS = {
    "where_does_it_go": (render_where, {"size": 34 * MiB, "may_sleep": True, "kernel": "rfc-v1"}),
    "parse_live": (render_parse, {"cmdline": "swiotlb=512,4,force,dynamic", "ram": "8G"}),
}
