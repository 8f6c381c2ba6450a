"""Building blocks for the chapters' widgets."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import ipywidgets as W

KERNEL_ONLY = ("<small><i>This control needs a running Python kernel: open the chapter "
               "live (see the preface) to use it. On the static page it does nothing.</i></small>")
STATIC_OK = "<small><i>Precomputed: this control works on the static page too.</i></small>"


def precomputed(options: Sequence, render: Callable[[object], str], description: str = "",
                value=None, kind: str = "slider") -> W.VBox:
    """A control over ``options`` and a ``Stack`` of their rendered states.

    ``render(option)`` returns HTML (for example text plus
    :func:`swiotlb_lib.plots.common.img_html`).  The control's ``index`` is linked to the
    stack's ``selected_index`` with ``jslink``, so moving it in the browser switches the
    state without Python.  ``kind`` is ``"slider"`` (SelectionSlider), ``"dropdown"`` or
    ``"toggle"`` (ToggleButtons).
    """
    options = list(options)
    if not options:
        raise ValueError("options: need at least one state to precompute")
    labels = [str(o) for o in options]
    children = [W.HTML(render(o)) for o in options]
    stack = W.Stack(children)
    start = labels.index(str(value)) if value is not None else 0
    common = dict(options=labels, value=labels[start], description=description,
                  style={"description_width": "initial"})
    if kind == "slider":
        ctl = W.SelectionSlider(continuous_update=True, layout=W.Layout(width="480px"), **common)
    elif kind == "dropdown":
        ctl = W.Dropdown(**common)
    elif kind == "toggle":
        ctl = W.ToggleButtons(**common)
    else:
        raise ValueError(f"kind: must be 'slider', 'dropdown' or 'toggle', got {kind!r}")
    stack.selected_index = start
    W.jslink((ctl, "index"), (stack, "selected_index"))
    box = W.VBox([ctl, stack, W.HTML(STATIC_OK)])
    box.add_class("bounce-precomputed")
    return box


def live(controls: dict, callback: Callable[..., str], title: str = "") -> W.VBox:
    """Kernel-side widget: ``callback(**values)`` returns HTML shown below the controls,
    redrawn on every change.  The last redraw time (ms) is kept in ``box.last_ms`` so
    benchmarks can check the 250 ms budget."""
    out = W.HTML()
    box = W.VBox([W.HTML(f"<b>{title}</b>") if title else W.HTML(), *controls.values(), out,
                  W.HTML(KERNEL_ONLY)])
    box.last_ms = 0.0

    def redraw(_=None):
        t = time.perf_counter()
        out.value = callback(**{k: c.value for k, c in controls.items()})
        box.last_ms = (time.perf_counter() - t) * 1000

    for c in controls.values():
        c.observe(redraw, names="value")
    redraw()
    box.redraw = redraw
    box.add_class("bounce-live")
    return box
