"""Widgets of Part I, chapters 2 and 3: controls wired to the experiments of
:mod:`swiotlb_lib.scenarios.basics` and the drawings of :mod:`swiotlb_lib.plots.memory_map`
and :mod:`swiotlb_lib.plots.slots`.

* :func:`dma_map_widget` -- chapter 2, MAIN, precomputed: pick a device and a buffer, see
  direct vs bounce on a memory map;
* :func:`slot_walk_widget` -- chapter 3, MAIN, precomputed: step through a map/unmap
  sequence on a 512-slot pool;
* :func:`sync_widget` -- precomputed: what the CPU sees with and without sync;
* :func:`slot_choice_widget` -- live: which slot a request gets under v6.3 or v6.11 rules.
"""
from __future__ import annotations

import ipywidgets as W

from ..plots.memory_map import map_case_html
from ..plots.slots import slot_choice_html, step_html
from ..scenarios.basics import (DEFAULT_MAP_CASE, DEFAULT_STEP, MAP_CASES, MIN_ALIGN, OFFSETS,
                                SIZES, SYNC_CASES, map_case, slot_choice, slot_walk, sync_case,
                                sync_html)
from .common import live, precomputed


def dma_map_widget(value: str = DEFAULT_MAP_CASE):
    """MAIN widget of chapter 2 (precomputed): device and buffer -> direct or bounce."""
    return precomputed([c[0] for c in MAP_CASES], lambda label: map_case_html(map_case(label)),
                       "device · buffer", value=value, kind="dropdown")


def slot_walk_widget(value: int | None = None):
    """MAIN widget of chapter 3 (precomputed): step through a map/unmap sequence."""
    by_label = {f"{s.number}": s for s in slot_walk()}
    return precomputed(list(by_label), lambda k: step_html(by_label[k]), "step",
                       value=str(value if value is not None else DEFAULT_STEP), kind="slider")


def sync_widget(value: str = "no sync: CPU reads at once"):
    """Precomputed widget: what the CPU sees with and without sync, and the map-time copy."""
    return precomputed(SYNC_CASES, lambda case: sync_html(sync_case(case)), "driver does",
                       value=value, kind="dropdown")


def slot_choice_html_live(kernel: str = "v6.3", offset: str = "0x800", size: str = "4 KiB",
                          min_align: str = "none") -> str:
    """Live callback: :func:`~swiotlb_lib.scenarios.basics.slot_choice` as HTML."""
    return slot_choice_html(slot_choice(kernel, offset, size, min_align))


def slot_choice_widget():
    """Live widget: pick profile, page offset, size and min_align; see the slot chosen."""
    controls = {
        "kernel": W.ToggleButtons(options=["v6.3", "v6.11"], value="v6.3", description="kernel"),
        "offset": W.Dropdown(options=list(OFFSETS), value="0x800", description="page offset"),
        "size": W.Dropdown(options=list(SIZES), value="4 KiB", description="size"),
        "min_align": W.ToggleButtons(options=list(MIN_ALIGN), value="none", description="min_align"),
    }
    return live(controls, slot_choice_html_live, "Which slot does the third request get?")


#: Live callbacks with typical arguments (for the 250 ms benchmark).
LIVE_CALLBACKS = {
    "slot_choice": (slot_choice_html_live, dict(kernel="v6.3", offset="0x800", size="4 KiB",
                                                min_align="none")),
}

__all__ = ["dma_map_widget", "slot_walk_widget", "sync_widget", "slot_choice_widget",
           "slot_choice_html_live", "LIVE_CALLBACKS"]
