"""Shared fixtures and paths.

The evidence the tests check the model against (golden vectors, recordings of real kernels)
is part of the repository: ``data/``, read through :func:`swiotlb_lib.evidence.data_path`, which
fails with the missing file's name.  Nothing here skips for want of data.
"""
import pathlib

import pytest

from swiotlb_lib.evidence import data_path
from swiotlb_lib.pool import use_compiled

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The tests run the readable search and release (what the chapters teach), whatever the order
# they run in; tests/test_pool_compiled.py and the kprobe-trace test switch the compiled twins
# on and compare.
use_compiled(False)


@pytest.fixture
def data():
    """``data("oracle", name)``: a file of the repository's ``data/`` folder."""
    return data_path


def precomputed_parts(box):
    """(control, stack) of a widget built by ``swiotlb_lib.widgets.common.precomputed``."""
    import ipywidgets as W
    ctl, stack = box.children[0], box.children[1]
    assert isinstance(stack, W.Stack)
    return ctl, stack


def check_precomputed(box, n, *, figures: bool = False):
    """The checks every precomputed widget must pass: one state per option (``n``), every
    state different and non-empty, the shown state the selected option, the CSS class the
    static page's script looks for; with ``figures``, every state shows a PNG with alt text.
    Returns ``(control, [state HTML, ...])``."""
    ctl, stack = precomputed_parts(box)
    assert len(ctl.options) == n == len(stack.children)
    values = [c.value for c in stack.children]
    assert len(set(values)) == n, "two states render the same HTML"
    assert all(isinstance(v, str) and v for v in values)
    if figures:
        assert all('<img src="data:image/png;base64,' in v and ' alt="' in v for v in values)
    assert stack.selected_index == ctl.index
    assert "bounce-precomputed" in box._dom_classes
    return ctl, values
