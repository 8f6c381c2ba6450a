"""ipywidgets wiring: controls -> model -> plots.

Two kinds of widget, as the book's quality bar asks:

* :func:`~swiotlb_lib.widgets.common.precomputed` -- a control linked *in the browser*
  (``widgets.jslink``) to a ``Stack`` of states rendered in Python beforehand; it works
  on the static site with no kernel.
* :func:`~swiotlb_lib.widgets.common.live` -- a control whose Python callback redraws;
  it needs a running kernel and says so next to it.
"""
