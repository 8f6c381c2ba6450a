"""Widgets of chapters 2 and 3 (swiotlb_lib.widgets.basics).

Builds every widget, checks that a precomputed widget has one distinct state per option,
and that each live callback returns HTML with the behaviour it is meant to show.
"""

from swiotlb_lib.scenarios import basics as S
from swiotlb_lib.widgets import basics as B
from conftest import check_precomputed


# -- chapter 2 --------------------------------------------------------------------------

def test_dma_map_widget_has_one_state_per_case():
    box = B.dma_map_widget()
    ctl, values = check_precomputed(box, len(S.MAP_CASES))
    assert ctl.value == S.DEFAULT_MAP_CASE
    by_label = dict(zip(ctl.options, values))
    assert "bounce" in by_label["32-bit PCI · buffer at 5 GiB"]
    assert "direct" in by_label["32-bit PCI · buffer at 1.25 GiB"]
    assert "DMA addr 0x0000000140000000+4096 overflow" in by_label[
        "32-bit PCI · buffer at 5 GiB · swiotlb=noforce"]
    assert "Memory encryption is active" in by_label["virtio, confidential guest · buffer at 32 MiB"]
    assert all('<img src="data:image/png;base64,' in v and 'alt="' in v for v in values)


# -- chapter 3 --------------------------------------------------------------------------

def test_slot_walk_widget_has_one_state_per_step():
    box = B.slot_walk_widget()
    ctl, values = check_precomputed(box, len(S.SLOT_STEPS))
    assert ctl.value == str(S.DEFAULT_STEP)
    assert "swiotlb buffer is full (sz: 262144 bytes), total 512 (slots), used 391 (slots)" in values[-1]


def test_sync_widget_has_one_state_per_case():
    check_precomputed(B.sync_widget(), len(S.SYNC_CASES))


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
