"""Widgets of the chapter "SWIOTLB beyond the RFC": the main control picks an IOMMU case
(:data:`swiotlb_lib.scenarios.today.IOMMU_CASES`) and shows the bounce decision and the
slots it takes; the states are precomputed, so the control works on the static page."""
from __future__ import annotations

import ipywidgets as W

from ..plots import today as P
from ..scenarios.today import IOMMU_KEYS, iommu_case
from .common import precomputed


def iommu_widget(value: str = IOMMU_KEYS[3]) -> W.VBox:
    """Precomputed: an IOMMU case -> decision table and slot strip."""
    return precomputed(IOMMU_KEYS, lambda k: P.iommu_state_html(iommu_case(k)), "case",
                       value=value, kind="dropdown")


__all__ = ["iommu_widget", "IOMMU_KEYS"]
