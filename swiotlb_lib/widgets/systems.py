"""Widgets of chapter 4, "Three systems the fixed pool fails": controls wired to the
experiments of :mod:`swiotlb_lib.scenarios.three_systems` and the states drawn by
:mod:`swiotlb_lib.plots.systems`.

(a) a confidential guest -- :func:`coco_widget` (precomputed), :func:`coco_live`;
(b) the Raspberry Pi 4 display path -- :func:`rpi_widget` (precomputed);
(c) a small Arm board -- :func:`board_widget` (precomputed).

The chapter reaches its experiments through this module too (``S.coco_boot``,
``S.board_table``, ...): they are imported here from the scenarios module.
"""
from __future__ import annotations

import ipywidgets as W

from ..plots import systems as P
from ..scenarios.three_systems import (
    BOARD_CONFIGS, COCO_WIDGET_GIB, RPI_MODES, board_config_rows, board_rows, board_table, brief,
    coco_boot, coco_need, coco_pool, coco_ram_need, coco_sizing, coco_small_pool, coco_table,
    frame_table, rpi_frame, rpi_segments, rpi_summary)
from .common import live, precomputed

#: The display modes of :func:`rpi_widget`.
RPI_KEYS = tuple(RPI_MODES)


def coco_widget(gib=COCO_WIDGET_GIB, value: float = 8) -> W.VBox:
    """Precomputed: guest RAM -> SWIOTLB pool size, with the boot-log lines."""
    return precomputed(list(gib), lambda g: P.coco_state_html(coco_boot(g, 8), coco_sizing()),
                       "guest RAM (GiB)", value=value)


def coco_pool_html(ram_gib: float = 12.0, cpus: int = 8) -> str:
    """Live callback: :func:`~swiotlb_lib.scenarios.three_systems.coco_pool` as HTML."""
    return P.coco_pool_html(coco_pool(ram_gib, cpus))


def coco_live() -> W.VBox:
    """Kernel-side: any RAM size and CPU count."""
    ram = W.FloatLogSlider(value=12, base=2, min=-1, max=8, step=0.25, description="RAM (GiB)",
                           continuous_update=False)
    cpus = W.IntSlider(value=8, min=1, max=1024, description="CPUs", continuous_update=False)
    return live({"ram_gib": ram, "cpus": cpus}, coco_pool_html, "Confidential guest: pool from RAM and CPUs")


def rpi_state(key: str) -> str:
    """One state of :func:`rpi_widget`: the display mode ``key`` of :data:`RPI_KEYS`."""
    fr = rpi_frame(*RPI_MODES[key])
    return P.rpi_state_html(fr, rpi_summary(fr))


def rpi_widget(value: str = "1920x1080 XRGB8888") -> W.VBox:
    """Precomputed: resolution and format -> buffer, segments, fate, kernel lines (v6.3)."""
    return precomputed(RPI_KEYS, rpi_state, "display mode", value=value, kind="dropdown")


def board_widget(value: str = BOARD_CONFIGS[0][0]) -> W.VBox:
    """Precomputed: SWIOTLB configuration -> the board's memory and OOM events."""
    return precomputed([c[0] for c in BOARD_CONFIGS],
                       lambda label: P.board_state_html(label, board_config_rows(label)),
                       "configuration", value=value, kind="dropdown")


#: Live callbacks of this chapter with typical arguments (for the 250 ms benchmark).
LIVE_CALLBACKS = {"coco_pool": (coco_pool_html, {"ram_gib": 12.0, "cpus": 8})}

__all__ = ["coco_widget", "coco_live", "coco_pool_html", "rpi_widget", "board_widget", "LIVE_CALLBACKS",
           # the chapter's S.<name>, from swiotlb_lib.scenarios.three_systems
           "board_rows", "board_table", "brief", "coco_boot", "coco_need", "coco_ram_need", "coco_sizing",
           "coco_small_pool", "coco_table", "frame_table", "rpi_frame", "rpi_segments", "rpi_summary"]
