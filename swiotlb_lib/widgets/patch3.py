"""Chapter 7 (RFC v1 patch 3/4): its main widget, precomputed so it works on the static page.

:func:`where_widget` is a slider over the buffer sizes of
:data:`swiotlb_lib.scenarios.dynamic.WHERE_SIZES`; each state shows where one Raspberry Pi 4
(vc4) bounce buffer of that size comes from on v6.3-rc and on RFC v1 without and with
``DMA_ATTR_MAY_SLEEP`` (:func:`swiotlb_lib.scenarios.dynamic.where_does_it_go`, rendered by
:func:`swiotlb_lib.plots.dynamic.where_html`).
"""
from __future__ import annotations

from ..constants import MiB
from ..plots import dynamic as P
from ..report import mib
from ..scenarios.dynamic import WHERE_SIZES, where_does_it_go
from .common import precomputed

#: (kernel, may_sleep) shown for every size, in this order
WHERE_CONFIGS = (("v6.3rc", False), ("rfc-v1", False), ("rfc-v1", True))
_SIZE_BY_LABEL = {mib(s): s for s in WHERE_SIZES}


def where_options() -> list[str]:
    """The slider's labels, smallest size first."""
    return list(_SIZE_BY_LABEL)


def render_where_size(label: str) -> str:
    """HTML of one state: the three configurations for the size called ``label``."""
    try:
        size = _SIZE_BY_LABEL[label]
    except KeyError:
        raise ValueError(f"label: unknown size {label!r}; choose one of {', '.join(_SIZE_BY_LABEL)}") from None
    return "".join(P.where_html(where_does_it_go(size, ms, k), size, ms, k) for k, ms in WHERE_CONFIGS)


def where_widget(value: str | None = None):
    """Main widget of chapter 7 (precomputed): buffer size -> where the bounce buffer comes
    from, on v6.3-rc and RFC v1 (``swiotlb=dynamic``) without and with MAY_SLEEP."""
    return precomputed(where_options(), render_where_size, "buffer size",
                       value=value if value is not None else mib(1 * MiB), kind="slider")
