"""Widgets and model drivers of chapters 2 and 3 (swiotlb_lib.widgets.basics).

Builds every widget, checks that a precomputed widget has one distinct state per option,
and that each live callback returns HTML with the behaviour it is meant to show.
"""
import ipywidgets as W
import pytest

from swiotlb_lib.widgets import basics as B


def parts(box):
    """(control, stack) of a precomputed widget."""
    ctl, stack = box.children[0], box.children[1]
    assert isinstance(stack, W.Stack)
    return ctl, stack


def check_precomputed(box, n):
    ctl, stack = parts(box)
    assert len(ctl.options) == n == len(stack.children)
    values = [c.value for c in stack.children]
    assert len(set(values)) == n, "every state must differ"
    assert all(isinstance(v, str) and v for v in values)
    assert stack.selected_index == ctl.index
    return ctl, values


# -- chapter 2 --------------------------------------------------------------------------

def test_dma_map_widget_has_one_state_per_case():
    box = B.dma_map_widget()
    ctl, values = check_precomputed(box, len(B.MAP_CASES))
    assert ctl.value == B.DEFAULT_MAP_CASE
    by_label = dict(zip(ctl.options, values))
    assert "bounce" in by_label["32-bit PCI · buffer at 5 GiB"]
    assert "direct" in by_label["32-bit PCI · buffer at 1.25 GiB"]
    assert "DMA addr 0x0000000140000000+4096 overflow" in by_label[
        "32-bit PCI · buffer at 5 GiB · swiotlb=noforce"]
    assert "Memory encryption is active" in by_label["virtio, confidential guest · buffer at 32 MiB"]
    assert all('<img src="data:image/png;base64,' in v and 'alt="' in v for v in values)


@pytest.mark.parametrize("label,outcome", [
    ("NVMe · buffer at 5 GiB", "direct"),
    ("32-bit PCI · buffer at 5 GiB", "bounce"),
    ("32-bit PCI · buffer at 5 GiB · swiotlb=noforce", "fail"),
    ("RPi 4 vc4 · buffer at 32 MiB", "direct"),
    ("RPi 4 vc4 · buffer at 1.25 GiB", "bounce"),
    ("RPi 4 v3d · buffer at 5 GiB", "direct"),
    ("virtio, confidential guest · buffer at 32 MiB", "bounce"),
])
def test_map_case_outcomes(label, outcome):
    _, machine, device, paddr = next(c for c in B.MAP_CASES if c[0] == label)
    r = B.run_map_case(machine, device, paddr)
    assert r.outcome == outcome
    if outcome == "bounce":
        assert r.pool[0] <= r.dma < r.pool[1] and r.dma <= r.dev.reach


def test_decision_table_lists_every_case():
    table = B.decision_table()
    assert len(table.splitlines()) == len(B.MAP_CASES) + 1


def test_overview_figure_has_two_machines():
    fig = B.overview_figure()
    assert len(fig.axes) == 2


# -- chapter 3 --------------------------------------------------------------------------

def test_slot_walk_widget_has_one_state_per_step():
    box = B.slot_walk_widget()
    ctl, values = check_precomputed(box, len(B.SLOT_STEPS))
    assert ctl.value == str(B.DEFAULT_STEP)
    assert "swiotlb buffer is full (sz: 262144 bytes), total 512 (slots), used 391 (slots)" in values[-1]


def test_slot_walk_shows_wrap_and_area_spill():
    steps = B.slot_walk()
    assert steps[7].index_before[0] == 160 and steps[7].index_after[0] == 0      # wrap to 0
    assert steps[3].highlight == (256, 32)                                      # CPU 1 -> area 1
    assert steps[9].highlight == (384, 128)                                     # area 0 too full
    assert steps[6].snap.list[1] == 3                                           # merge on unmap


def test_sync_widget_has_one_state_per_case():
    check_precomputed(B.sync_widget(), len(B.SYNC_CASES))


@pytest.mark.parametrize("kernel", ["v6.3", "v6.11"])
def test_sync_cases_move_real_bytes(kernel):
    no_sync = B.sync_case("no sync: CPU reads at once", kernel)
    assert no_sync.rows[-1][1] == B.OLD and no_sync.rows[-1][2] == B.PACKET
    assert no_sync.rows[0][2] == B.STALE                      # slot held an earlier mapping
    assert no_sync.rows[1][2] == B.OLD                        # map copied even FROM_DEVICE
    assert B.sync_case("dma_sync_single_for_cpu, then read", kernel).rows[-1][1] == B.PACKET
    assert B.sync_case("wrong direction: mapped TO_DEVICE", kernel).rows[-1][1] == B.OLD
    part = B.sync_case("device writes 10 bytes, unmap", kernel).rows[-1][1]
    assert part == B.PACKET[:10] + B.OLD[10:]


def test_spec_request_3_differs_between_profiles():
    v63 = B.spec_requests("v6.3")[0]
    v611 = B.spec_requests("v6.11")[0]
    assert [r[4] for r in v63] == [0, 2, 3, 5, 8192, None]
    assert [r[4] for r in v611] == [0, 2, 4, 7, 8192, None]
    assert "3 → 0x7c001800" in B.spec_table() and "4 → 0x7c002000" in B.spec_table()


def test_slot_choice_widget_is_live():
    box = B.slot_choice_widget()
    assert "bounce-live" in box._dom_classes
    assert "slot 3" in box.children[-2].value                 # default: v6.3, offset 0x800


def test_live_callbacks_return_expected_html():
    assert set(B.LIVE_CALLBACKS) == {"slot_choice"}
    fn, kwargs = B.LIVE_CALLBACKS["slot_choice"]
    out = fn(**kwargs)
    assert "<b>v6.3</b>" in out and "slot 3 → bounce address <code>0x7c001800</code>" in out
    out = fn(**{**kwargs, "kernel": "v6.11"})
    assert "slot 4 → bounce address <code>0x7c002000</code>" in out
    out = fn(kernel="v6.11", offset="0x900", size="6000 B", min_align="NVMe 0xfff")
    assert "tlb &amp; 0xfff = <code>0x900</code>" in out
    out = fn(kernel="v6.3", offset="0x000", size="4 KiB", min_align="none")
    assert "slot 4 →" in out


@pytest.mark.parametrize("kernel,copied", [("v6.3", False), ("v6.6", False), ("v6.11", True)])
def test_partial_sync(kernel, copied):
    ok, _dma, _target, _got, log = B.partial_sync(kernel)
    assert ok == copied
    assert any("Access before mapping start detected" in line for line in log) != copied
