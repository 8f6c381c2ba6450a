"""Widgets and experiments of chapters 7, 8, 9 and 11 (swiotlb_lib.widgets.dynamic).

Checks behaviour, not timing: every widget builds; each precomputed widget holds one state
per option and the states differ; every live callback returns HTML with the content it
exists to show; the experiments report the facts the chapters state (from the patches and
the kernel sources, not from running the model first)."""
import ipywidgets as W
import pytest

from swiotlb_lib.widgets import dynamic as wd


def _stack(box):
    """The Stack of a precomputed widget and its control."""
    ctl, stack = box.children[0], box.children[1]
    assert isinstance(stack, W.Stack)
    return ctl, stack


@pytest.mark.parametrize("factory, options", [
    (wd.footprint_widget, wd.footprint_options()),
    (wd.parse_widget, list(wd.PARSE_CMDLINES)),
    (wd.compare_widget, wd.compare_options()),
    (wd.claim_explorer, [c[1] for c in wd.CLAIMS]),
])
def test_precomputed_widgets_have_one_distinct_state_per_option(factory, options):
    box = factory()
    ctl, stack = _stack(box)
    assert list(ctl.options) == [str(o) for o in options]
    assert len(stack.children) == len(options)
    values = [c.value for c in stack.children]
    assert len(set(values)) == len(values), "two options render the same state"
    assert stack.selected_index == ctl.index
    assert len(options) < 12


def test_precomputed_states_show_figures_with_alt_text():
    box = wd.footprint_widget()
    for child in _stack(box)[1].children:
        assert 'src="data:image/png;base64,' in child.value and 'alt="' in child.value


def test_footprint_default_state_shows_the_point():
    # storage under load: the small fixed pool fails maps, the RFC's small pool does not
    runs = wd.footprint_state("storage", "heavy")
    small_fixed, small_rfc = runs[1], runs[3]
    assert small_fixed["failed"] > 0 and small_rfc["failed"] == 0
    assert small_rfc["peak"] < runs[0]["peak"]


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


def test_where_does_it_go_follows_the_rfc():
    # 0334a54332ab...@huawei.com: sub-page requests use the fixed slots; others get pages
    assert wd.where_does_it_go(2048, False, "rfc-v1")["outcome"] == "fixed slots"
    assert wd.where_does_it_go(1 << 20, False, "rfc-v1")["outcome"] == "dynamic (buddy)"
    # v6.3-rc: anything above 256 KiB fails
    assert wd.where_does_it_go(1 << 20, False, "v6.3rc")["outcome"] == "failed"
    with pytest.raises(ValueError, match="size"):
        wd.where_does_it_go(0)


def test_parser_pair_reports_mainline_silence_and_rfc_option_list():
    pair = wd.parse_pair("swiotlb=force,dynamic")
    assert not pair["v6.3rc"]["force"] and pair["v6.3rc"]["warnings"]
    assert pair["rfc-v1"]["force"] and pair["rfc-v1"]["dynamic"]
    bogus = wd.parse_one("swiotlb=force,bogus", "rfc-v1")
    assert "software IO TLB: Invalid swiotlb option: bogus" in bogus["parser_said"]
    assert all(r[1] == "same" for r in wd.compat_rows())


def test_lookup_costs_show_who_pays():
    nvme = wd.lookup_costs("nvme", ops=20)
    # applied but off: identical to the base; on: one locked tree lookup per unmap/sync
    assert nvme["RFC v1, dynamic off"] == nvme["v6.3-rc"]
    on = nvme["RFC v1, swiotlb=dynamic"]
    assert on["tree_lookups"] == on["unmap_sync_lookups"] == 40
    assert nvme["v6.6 dynamic"]["lookup_steps"] == 0          # dma_uses_io_tlb shortcut


def test_merged_design_facts():
    # 6.6: a failed >256 KiB request kicks the worker and adds a 4 MiB pool; 6.11 refuses early
    g66, g611 = wd.oversize_growth("v6.6-dynamic", 2), wd.oversize_growth("v6.11-dynamic", 2)
    assert g66[-1][2] == 2 and g66[-1][1] - g66[0][1] == 8
    assert g611[-1][2] == 0 and g611[-1][3] == 0
    # worker pools: 4 MiB cap, at most 16 areas (limit_nareas), never freed
    w = wd.worker_demo(cpus=32)
    assert all(a == (2048, 16) for a in w["added"]) and w["pools_after_unmap"] == 1 + len(w["added"])
    # transient pool: exactly the request's slots, gone after unmap
    steps = wd.transient_demo()
    assert steps[2][1]["io_tlb_transient_nslabs"] == 12 and steps[3][1]["io_tlb_transient_nslabs"] == 0
    # CVE-2023-52790: without the tail cap the buffer runs past a 2-slot transient pool
    assert wd.tail_bug("v6.6-dynamic")["overrun"] == 2048
    assert not wd.tail_bug("v6.6-dynamic", fixed=True)["mapped"]


def test_search_order_area_major_in_611():
    o66, o611 = wd.search_order("v6.6-dynamic"), wd.search_order("v6.11-dynamic")
    assert [p for p, _ in o66[:4]] == ["added 2"] * 4
    assert [p for p, _ in o611[:3]] == ["added 2", "added 1", "boot"]
    assert o66[-1][0] == o611[-1][0] == "transient"


def test_scorecard_cells_complete():
    cells, rows, cols = wd.scorecard()
    assert set(cells) == {(r, c) for r in rows for c in cols}
    assert cells[(rows[0], "RFC v1")][0] == "good"
