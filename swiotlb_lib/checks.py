"""Argument checks shared by the entry points above the model (experiments, benchmarks).

An entry point checks its arguments first and says which one is wrong, by name, with
the range it accepts: ``ValueError("threads: must be an integer in 1..1024, got 0")``.
The mapping API's checks (direction, attributes, sizes, addresses) live here too, so
every entry point (``swiotlb``, ``direct``, the experiments, the benchmarks) says the same
thing about the same argument.  A leaf module: it imports only
:mod:`swiotlb_lib.constants` and numpy.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .constants import (DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE,
                        DMA_TO_DEVICE, KNOWN_ATTRS, U64)

__all__ = ["is_int", "check_int", "check_int_at_least", "check_positive", "check_dir", "check_attrs",
           "check_size", "check_addr", "MAX_SIZE", "UNKNOWN_ATTRS", "DMA_DIRS"]


def is_int(v) -> bool:
    """An integer and not a bool (numpy integers count)."""
    if isinstance(v, int):
        return not isinstance(v, bool)
    return isinstance(v, (np.integer, numbers.Integral))


def check_int(name: str, v, lo: int, hi: int, *, hexadecimal: bool = False) -> int:
    """``v`` as a Python ``int`` if it is an integer (Python or numpy, not ``bool``) in
    ``lo..hi``; ``ValueError`` naming ``name`` otherwise.  ``hexadecimal`` writes the range
    (and a wrong value) in hex, as the page allocator's addresses and limits read best."""
    if type(v) is not int:
        if not is_int(v):
            rng = f"[{lo:#x}, {hi:#x}]" if hexadecimal else f"{lo}..{hi}"
            raise ValueError(f"{name}: must be an integer in {rng}, got {v!r}")
        v = int(v)
    if not lo <= v <= hi:
        if hexadecimal:
            raise ValueError(f"{name}: must be in [{lo:#x}, {hi:#x}], got {v:#x}")
        raise ValueError(f"{name}: must be an integer in {lo}..{hi}, got {v!r}")
    return v


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


#: the directions the mapping API accepts (``DMA_NONE`` is not one of them)
DMA_DIRS = (DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE)


def check_dir(dir) -> int:
    """Validate a ``dma_data_direction`` (``DMA_NONE`` and others are rejected)."""
    if type(dir) is not int or dir not in DMA_DIRS:
        raise ValueError(f"dir: must be DMA_BIDIRECTIONAL (0), DMA_TO_DEVICE (1) or "
                         f"DMA_FROM_DEVICE (2), got {dir!r}")
    return dir


#: the attribute bits the model does not know: ``attrs & UNKNOWN_ATTRS`` must be 0
UNKNOWN_ATTRS = ~KNOWN_ATTRS


def check_attrs(attrs) -> int:
    if type(attrs) is not int or attrs < 0 or attrs & UNKNOWN_ATTRS:
        raise ValueError(f"attrs: only DMA_ATTR_SKIP_CPU_SYNC ({DMA_ATTR_SKIP_CPU_SYNC:#x}), "
                         f"DMA_ATTR_NO_WARN ({DMA_ATTR_NO_WARN:#x}) and DMA_ATTR_MAY_SLEEP "
                         f"are modelled, got {attrs!r}")
    return attrs


#: The largest size the model accepts for one mapping or buffer (256 TiB)
MAX_SIZE = 1 << 48


def check_size(name: str, size, lo: int = 1, hi: int = MAX_SIZE) -> int:
    if type(size) is not int:
        raise TypeError(f"{name}: must be an integer, got {type(size).__name__}")
    if not lo <= size <= hi:
        raise ValueError(f"{name}: must be in {lo}..{hi}, got {size}")
    return size


def check_addr(name: str, addr) -> int:
    if type(addr) is not int:
        raise TypeError(f"{name}: must be an integer address, got {type(addr).__name__}")
    if not 0 <= addr < U64:
        raise ValueError(f"{name}: must be in 0..{U64 - 1:#x}, got {addr:#x}" if addr >= 0
                         else f"{name}: must be in 0..{U64 - 1:#x}, got {addr}")
    return addr
