"""Argument checks shared by the entry points above the model (experiments, benchmarks).

An entry point checks its arguments first and says which one is wrong, by name, with
the range it accepts: ``ValueError("threads: must be an integer in 1..1024, got 0")``.
The model's own checks (``swiotlb.check_dir`` and the like) stay with the kernel code
they follow; these serve :mod:`swiotlb_lib.perf` and whatever else takes numbers from a
user.  A leaf module: it imports only :mod:`swiotlb_lib.constants` and numpy.
"""
from __future__ import annotations

import math

import numpy as np

from .constants import DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE

__all__ = ["check_int", "check_int_at_least", "check_positive", "check_dir_value"]


def check_int(name: str, v, lo: int, hi: int) -> int:
    """``v`` as a Python ``int`` if it is an integer (Python or numpy, not ``bool``) in
    ``lo..hi``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise ValueError(f"{name}: must be an integer in {lo}..{hi}, got {v!r}")
    return int(v)


def check_int_at_least(name: str, v, lo: int) -> int:
    """``v`` as a Python ``int`` if it is an integer (Python or numpy, not ``bool``)
    ``>= lo``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name}: must be an integer >= {lo}, got {v!r}")
    return int(v)


def check_positive(name: str, v, *, allow_zero: bool = False) -> float:
    """``v`` as a ``float`` if it is a finite number (Python or numpy, not ``bool``) and
    ``> 0`` (``>= 0`` with ``allow_zero``); ``ValueError`` naming ``name`` otherwise."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise ValueError(f"{name}: must be a finite number, got {v!r}")
    if v < 0 or (v == 0 and not allow_zero):
        rng = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: must be {rng}, got {v!r}")
    return float(v)


def check_dir_value(dir) -> int:
    """A ``dma_data_direction`` given as 0, 1 or 2 (``DMA_NONE`` and ``bool`` rejected),
    returned as ``int``."""
    if isinstance(dir, bool) or dir not in (DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE):
        raise ValueError(f"dir: must be 0 (DMA_BIDIRECTIONAL), 1 (DMA_TO_DEVICE) or "
                         f"2 (DMA_FROM_DEVICE), got {dir!r}")
    return int(dir)
