"""Shared fixtures: where the golden vectors and real-kernel recordings live.

The data are not part of the project: they sit in ``shared/`` beside the checkout
(``../shared``), or where ``BOUNCE_SHARED`` points.  Under CI (``CI=true``) their absence
is a failure, never a skip.
"""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("BOUNCE_SHARED", ROOT.parent / "shared"))


def require_shared(*parts) -> pathlib.Path:
    p = shared_dir().joinpath(*parts)
    if not p.exists():
        msg = f"{p} not found: the golden data live in ../shared beside the checkout (or $BOUNCE_SHARED)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def shared():
    return require_shared
