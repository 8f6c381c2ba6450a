"""Widgets of chapters 7, 8, 9 and 11 (swiotlb_lib.widgets.dynamic).

Checks behaviour, not timing: every widget builds; each precomputed widget holds one state
per option and the states differ; every live callback returns HTML with the content it
exists to show.  The experiments behind them are tested in tests/test_scenarios_dynamic.py
and tests/test_scenarios_review.py."""
from functools import lru_cache

import pytest

from swiotlb_lib.widgets import dynamic as wd
from conftest import check_precomputed, precomputed_parts


@lru_cache(maxsize=None)
def built(factory):
    """``factory()``, built once for the tests of this file that read it (they only read)."""
    return factory()


@pytest.mark.parametrize("factory, options", [
    (wd.footprint_widget, wd.footprint_options()),
    (wd.parse_widget, list(wd.PARSE_CMDLINES)),
    (wd.compare_widget, wd.compare_options()),
    (wd.claim_explorer, [c[1] for c in wd.CLAIMS]),
])
def test_precomputed_widgets_have_one_distinct_state_per_option(factory, options):
    ctl, _ = check_precomputed(built(factory), len(options))
    assert list(ctl.options) == [str(o) for o in options]
    assert len(options) < 12


def test_precomputed_states_show_figures_with_alt_text():
    box = built(wd.footprint_widget)
    for child in precomputed_parts(box)[1].children:
        assert 'src="data:image/png;base64,' in child.value and 'alt="' in child.value


@pytest.mark.parametrize("name", sorted(wd.LIVE_CALLBACKS))
def test_live_callbacks_return_expected_html(name):
    fn, kwargs = wd.LIVE_CALLBACKS[name]
    out = fn(**kwargs)
    assert isinstance(out, str) and out.startswith("<")
    if name == "where_does_it_go":
        # 34 MiB with DMA_ATTR_MAY_SLEEP on RFC v1: a CMA allocation (patch 1/4 + 3/4)
        assert "dynamic (CMA)" in out
    if name == "parse_live":
        assert "mainline parser" in out and "option-list parser" in out
        assert "area num 4." in out


def test_live_widgets_build_and_redraw():
    for factory in (wd.where_live, wd.parse_live):
        box = factory()
        assert "bounce-live" in box._dom_classes
        box.redraw()
