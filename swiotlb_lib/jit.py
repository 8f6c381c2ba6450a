"""Numba, where the model compiles: the decorators, the stale-cache guard, and a cheap call.

Numba is a dependency (``pyproject.toml``); without it :data:`HAVE_NUMBA` is false, the
decorators leave functions as Python and the readable reference runs everywhere.  Nothing
here models the kernel.
"""
from __future__ import annotations

import hashlib
import os
import pathlib

try:
    from numba import njit
    HAVE_NUMBA = True
except ImportError:                                     # pragma: no cover - exercised by hand
    HAVE_NUMBA = False


def drop_stale_cache(cache: pathlib.Path, pattern: str, sources: list) -> None:
    """Numba's on-disk cache (``*.nbi``, ``*.nbc``) is checked against the file of each
    function only, so a function that inlines another file's (or uses a constant of
    :mod:`swiotlb_lib.constants`) would keep stale code when only that file changes (an edit,
    a ``git pull``).  Keep a digest of ``sources`` in ``cache`` and drop the files matching
    ``pattern`` there when it changes."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return                                          # a cache elsewhere is the user's
    digest = hashlib.sha256(b"".join(pathlib.Path(f).read_bytes() for f in sources)).hexdigest()
    stamp = cache / (pattern.split("*")[0] + "-sources.sha256")
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass
    for f in cache.glob(pattern):
        f.unlink(missing_ok=True)
    try:
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:                                     # pragma: no cover - read-only install
        pass


def jit(fn):
    """Compile ``fn`` (cached on disk beside its file), or leave it as Python without numba.
    ``error_model="numpy"``: no exception paths for a division by zero, which the compiled
    code never does (every divisor is a count of at least one), so less code to compile."""
    return njit(cache=True, nogil=True, error_model="numpy")(fn) if HAVE_NUMBA else fn


def jit_inline(fn):
    """Inlined (in Numba's IR) where it is called: the allocators' small functions, since a
    call to a separately compiled function takes a reference on every array argument; and the
    engine's functions with one caller, since Numba links a separately compiled function's
    code, with all it calls, into each caller's and optimizes and generates it again there
    (the engine's compile went from 104 to 84 CPU s when they were inlined)."""
    return njit(cache=True, nogil=True, inline="always", error_model="numpy")(fn) if HAVE_NUMBA else fn


def entry_point(dispatcher, *example):
    """A compiled function's machine-code entry for the types of ``example``, called from
    Python without the dispatcher's type resolution: 180 ns instead of 730 ns for a call with
    a structure and ten integers (measured, 2026-12).  The caller must pass those types (the
    entry converts, or raises ``TypeError``/``OverflowError``, on anything else).  Falls back to
    the dispatcher if Numba's compile result no longer has ``entry_point``."""
    from numba import typeof
    dispatcher(*example)
    result = dispatcher.overloads.get(tuple(typeof(a) for a in example))
    fn = getattr(result, "entry_point", None)
    return dispatcher if fn is None else fn
