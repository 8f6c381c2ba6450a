"""Widgets of chapters 5 and 6 (RFC v1 patches 1/4 and 2/4): controls wired to the
experiments of :mod:`swiotlb_lib.scenarios.patches12` and the states drawn by
:mod:`swiotlb_lib.plots.patches12`.  The chapters reach their experiments through this
module too (``Q.allocator_grid``, ``Q.replay_verdicts``, ...).
"""
from __future__ import annotations

import ipywidgets as W

from ..constants import KiB
from ..plots import patches12 as P
from ..scenarios.patches12 import (
    CMA_OPTIONS, CONTEXTS, MEMORY_STATES, REPLAY_LENGTHS, REPLAY_SEEDS, SIZES, allocator_grid,
    atomic_pool_sizes, before_after, before_after_rows, gfp_table, grid_text, replay_verdicts, serve)
from .common import live, precomputed

#: The states of :func:`allocator_widget`: label -> (cma, memory state).
ALLOC_STATES = {f"cma={c}, {s}": (c, s) for c in CMA_OPTIONS for s in MEMORY_STATES}
ALLOC_KEYS = tuple(ALLOC_STATES)
#: The states of :func:`replay_widget`: label -> (seed, length).
REPLAY_STATES = {f"seed {s}, {n} operations": (s, n) for s in REPLAY_SEEDS for n in REPLAY_LENGTHS}
REPLAY_KEYS = tuple(REPLAY_STATES)


def allocator_widget(value: str = "cma=256M, page cache full") -> W.VBox:
    """Precomputed: CMA size and memory state -> which allocator serves each context
    and size."""
    return precomputed(ALLOC_KEYS, lambda k: P.allocator_state_html(allocator_grid(*ALLOC_STATES[k]),
                                                                    *ALLOC_STATES[k]),
                       "CMA and memory", value=value, kind="dropdown")


def serve_html(size_kib: int = 8192, context: str = "may sleep (GFP_KERNEL)", cma: str = "256M",
               state: str = "page cache full") -> str:
    """Live callback: one size, one context (:func:`~swiotlb_lib.scenarios.patches12.serve`)."""
    nbytes = int(size_kib) * KiB
    return P.serve_html(serve(context, nbytes, cma, state), nbytes, context, cma, state)


def serve_live() -> W.VBox:
    """Kernel-side: any size (KiB), context, CMA size and memory state."""
    controls = {
        "size_kib": W.BoundedIntText(value=8192, min=1, max=65536, description="size (KiB)"),
        "context": W.Dropdown(options=list(CONTEXTS), value="may sleep (GFP_KERNEL)", description="context"),
        "cma": W.Dropdown(options=list(CMA_OPTIONS), value="256M", description="cma="),
        "state": W.Dropdown(options=list(MEMORY_STATES), value="page cache full", description="memory"),
    }
    return live(controls, serve_html, "Who can allocate this bounce buffer?")


def replay_widget(value: str = f"seed 1, {max(REPLAY_LENGTHS)} operations") -> W.VBox:
    """Precomputed: seed and length -> the replay and its verdicts."""
    return precomputed(REPLAY_KEYS, lambda k: P.replay_state_html(*replay_verdicts(*REPLAY_STATES[k])),
                       "replay", value=value, kind="dropdown")


#: Live callbacks of chapters 5 and 6 with typical arguments (for the 250 ms benchmark).
LIVE_CALLBACKS = {
    "serve": (serve_html, {"size_kib": 8192, "context": "may sleep (GFP_KERNEL)", "cma": "256M",
                           "state": "page cache full"}),
    "serve_fragmented": (serve_html, {"size_kib": 4096, "context": "atomic (GFP_NOWAIT)", "cma": "0",
                                      "state": "fragmented"}),
}

__all__ = ["allocator_widget", "serve_html", "serve_live", "replay_widget", "LIVE_CALLBACKS",
           # the chapters' Q.<name>, from swiotlb_lib.scenarios.patches12
           "SIZES", "allocator_grid", "atomic_pool_sizes", "before_after", "before_after_rows", "gfp_table",
           "grid_text", "replay_verdicts"]
