"""Widgets of chapters 4-6 (swiotlb_lib.widgets.systems, .patches12): every precomputed
widget has one distinct state per option, the live widgets build, and each live callback
returns HTML with the behaviour it is meant to show."""
import pytest

from swiotlb_lib.scenarios import three_systems as T
from swiotlb_lib.widgets import patches12 as Q
from swiotlb_lib.widgets import systems as S
from conftest import check_precomputed


@pytest.mark.parametrize("build, n", [
    (S.coco_widget, len(T.COCO_WIDGET_GIB)),
    (S.rpi_widget, len(S.RPI_KEYS)),
    (S.board_widget, len(T.BOARD_CONFIGS)),
    (Q.allocator_widget, len(Q.ALLOC_KEYS)),
    (Q.replay_widget, len(Q.REPLAY_KEYS)),
])
def test_precomputed_widget_has_one_distinct_state_per_option(build, n):
    check_precomputed(build(), n, figures=True)


def test_live_widgets_build_and_say_they_need_a_kernel():
    for build in (S.coco_live, Q.serve_live):
        box = build()
        assert "bounce-live" in box._dom_classes
        assert "needs a running Python kernel" in box.children[-1].value


@pytest.mark.parametrize("name", sorted(S.LIVE_CALLBACKS))
def test_systems_live_callbacks(name):
    fn, kw = S.LIVE_CALLBACKS[name]
    out = fn(**kw)
    assert "12 GiB, 8 CPUs: pool 1 GiB" in out
    assert "adjusted to 737MB" in out and "roundup to 1024MB" in out


@pytest.mark.parametrize("name", sorted(Q.LIVE_CALLBACKS))
def test_patches12_live_callbacks(name):
    fn, kw = Q.LIVE_CALLBACKS[name]
    out = fn(**kw)
    assert out.startswith("<b>") and kw["context"] in out
    expected = {"serve": "CMA at 0x", "serve_fragmented": ": none"}[name]
    assert expected in out


def test_chapters_reach_their_experiments_through_the_widget_modules():
    # chapter 4 calls S.coco_boot, S.board_table ...; chapters 5 and 6 Q.allocator_grid ...
    for name in ("coco_boot", "coco_table", "coco_sizing", "coco_ram_need", "coco_need", "brief",
                 "coco_small_pool", "frame_table", "rpi_frame", "rpi_summary", "rpi_segments",
                 "board_table", "board_rows"):
        assert getattr(S, name) is getattr(T, name)
    for name in ("gfp_table", "allocator_grid", "grid_text", "atomic_pool_sizes", "SIZES",
                 "before_after", "before_after_rows", "replay_verdicts"):
        assert hasattr(Q, name)
