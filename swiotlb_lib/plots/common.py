"""Shared plotting helpers: one look for every figure, PNG export with alt text."""
from __future__ import annotations

import base64
import html
import io

import matplotlib.pyplot as plt

#: One colour per thing the book draws, so a reader learns them once.
COLORS = {
    "ram": "#d9d9d9", "dma": "#f4a261", "dma32": "#e9c46a", "normal": "#a8dadc",
    "pool": "#457b9d", "pool_used": "#1d3557", "dynamic": "#2a9d8f", "transient": "#e76f51",
    "reach": "#6a4c93", "fail": "#d62828", "ok": "#2a9d8f", "free": "#f1faee",
    "kernel": "#8d99ae", "app": "#ffb703", "cma": "#cdb4db",
}
#: The kernel profiles in the order chapters show them, with a colour each.
PROFILE_COLORS = {"v6.3rc": "#6c757d", "v6.3": "#495057", "rfc-v1": "#e76f51", "v6.6": "#264653",
                  "v6.6-dynamic": "#2a9d8f", "v6.11": "#1d3557", "v6.11-dynamic": "#457b9d"}


def figure(width: float = 7.0, height: float = 3.2, **kw):
    """A new figure and axes with the book's defaults."""
    fig, ax = plt.subplots(figsize=(width, height), dpi=100, constrained_layout=True, **kw)
    return fig, ax


def png_bytes(fig, close: bool = True) -> bytes:
    """The figure as PNG bytes (closes it by default so pages do not pile up figures).

    The layout engine (constrained layout) runs once here and is then switched off, so
    ``savefig`` draws the figure once instead of twice (it makes an extra, invisible draw
    to run a layout engine it still finds on the figure); the pixels are the same.  With
    ``close=False`` the figure is left laid out as saved, without its layout engine."""
    engine = fig.get_layout_engine()
    if engine is not None:
        engine.execute(fig)
        fig.set_layout_engine(None)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    if close:
        plt.close(fig)
    return buf.getvalue()


def img_html(fig, alt: str, width: int | None = None) -> str:
    """An ``<img>`` tag with the figure inline (base64) and its alt text: this is how a
    figure goes into a precomputed widget state that works on the static site."""
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    w = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}"{w}/>'
