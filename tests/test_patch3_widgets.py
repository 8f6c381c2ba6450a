"""swiotlb_lib.widgets.patch3: chapter 7's main widget works on the static page."""
import pytest

from conftest import check_precomputed
from swiotlb_lib.widgets.patch3 import render_where_size, where_options, where_widget


def test_where_widget_has_one_state_per_size():
    # WHERE_SIZES has nine sizes, from 512 bytes to 34 MiB
    ctl, states = check_precomputed(where_widget(), 9)
    assert ctl.value == "1 MiB"
    # 512 bytes stay in the fixed slots on all three; 34 MiB fails on v6.3-rc (above 256 KiB)
    assert states[0].count("failed") == 0
    assert "failed" in states[-1]


def test_bad_label_is_named():
    with pytest.raises(ValueError, match="^label: unknown size"):
        render_where_size("3 MiB")
    # the slider runs from the chapter's smallest bounce (512 bytes) to the 34 MiB 4K frame
    assert (where_options()[0], where_options()[-1]) == ("512 B", "34 MiB")
