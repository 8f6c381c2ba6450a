"""Widgets of the chapter "Sizing SWIOTLB from a trace" (swiotlb_lib.widgets.sizing).

Checks behaviour, not timing: the widgets build; the precomputed one holds one state per
(lifetime, pool) pair and the states differ; the live callback returns HTML with what it
exists to show.  The chapter's analyses are tested in tests/test_trace_sizing.py.
"""
import ipywidgets as W
import pytest

from swiotlb_lib.widgets import sizing as sz


def _stacks(box):
    controls, outer = box.children[0], box.children[1]
    assert isinstance(outer, W.Stack)
    return controls.children, outer


def test_main_widget_has_one_distinct_state_per_option():
    box = sz.pool_timeline_widget()
    assert "bounce-precomputed" in box._dom_classes
    (lt_ctl, pool_ctl), outer = _stacks(box)
    assert len(outer.children) == len(lt_ctl.options) == len(sz.widget_lifetimes())
    states = []
    for inner in outer.children:
        assert isinstance(inner, W.Stack) and len(inner.children) == len(pool_ctl.options)
        states += [c.value for c in inner.children]
    assert len(states) == len(sz.WIDGET_LIFETIMES) * len(sz.WIDGET_POOLS) <= 12
    assert len(set(states)) == len(states), "two options render the same state"
    assert all('<img ' in s and 'src="data:image/png;base64,' in s and 'alt="' in s for s in states)
    # the default state (recorded lifetimes, 1024 slots) shows failures; 2048 shows none
    assert outer.selected_index == lt_ctl.index == 0
    default = outer.children[0].children[pool_ctl.index]
    assert pool_ctl.value == "1024 slots" and "requests failed" in default.value
    assert "no failures" in outer.children[0].children[sz.WIDGET_POOLS.index(2048)].value


@pytest.mark.parametrize("name", sorted(sz.LIVE_CALLBACKS))
def test_live_callbacks_return_expected_html(name):
    fn, kwargs = sz.LIVE_CALLBACKS[name]
    out = fn(**kwargs)
    assert isinstance(out, str) and out.startswith("<")
    if name == "kernel_units":
        # swiotlb=1761 on 2 CPUs: a power of two, 2048 slots in 2 areas; 1280 KiB needs 643 slots
        assert "<b>2048 slots</b>" in out and "2 areas" in out and "643 slots" in out
        small = fn(slots=512, cpus=2, max_sectors_kb=1280, ram="2G")
        assert "never completes" in small


def test_live_widget_builds_and_redraws():
    box = sz.units_live()
    assert "bounce-live" in box._dom_classes
    box.redraw()
    with pytest.raises(ValueError, match="slots"):
        sz.kernel_units(slots=0)
