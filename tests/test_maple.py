"""swiotlb_lib.maple: the maple-tree operations RFC v1 patch 3/4 uses, checked against the
rules of lib/maple_tree.c (6.1/6.3) worked by hand."""
import pytest

from swiotlb_lib.maple import MapleTree, xa_mk_value


def test_xa_mk_value_is_twice_plus_one():
    # include/linux/xarray.h: (v << 1) | 1
    assert [xa_mk_value(v) for v in (0, 1, 0x1000)] == [1, 3, 0x2001]
    with pytest.raises(ValueError, match="^v: "):
        xa_mk_value(-1)


def test_mt_find_advances_the_index_past_the_found_range():
    t = MapleTree()
    t.store_range(10, 13, "A")
    # a hit anywhere in [10, 13]: *index = mas.last + 1 = 14
    assert t.mt_find(10, 10) == ("A", 14)
    assert t.mt_find(12, 12) == ("A", 14)
    # a miss leaves the index alone; max below the next range finds nothing
    assert t.mt_find(14, 14) == (None, 14)
    assert t.mt_find(5, 9) == (None, 5)
    # a search from 5 up to 10 reaches the range starting at 10
    assert t.mt_find(5, 10) == ("A", 14)
    assert t.mt_find(11, 10) == (None, 11)          # index > max


def test_erase_removes_the_whole_range_or_nothing():
    t = MapleTree()
    t.store_range(10, 13, "A")
    assert t.erase(14) is None and len(t) == 1     # nothing at 14: no change
    assert t.erase(12) == "A" and len(t) == 0      # any key of the range erases all of it


def test_store_range_cuts_older_ranges():
    t = MapleTree()
    t.store_range(10, 19, "old")
    t.store_range(12, 14, "new")
    # [10,11] and [15,19] of the old range survive around the new one
    assert t.ranges() == [(10, 11, "old"), (12, 14, "new"), (15, 19, "old")]
    assert t.store_range(5, 4, "x") == -22          # first > last: -EINVAL
    t.store_range(0, 100, "all")
    assert t.ranges() == [(0, 100, "all")]


def test_the_posted_unmap_sequence_leaves_the_range():
    # swiotlb_dyn_map(): a 4-page buffer at PFN 0x1000 -> key 0x2001, range [0x2001, 0x2004]
    t = MapleTree()
    key = xa_mk_value(0x1000)
    t.store_range(key, key + 4 - 1, "slot")
    # pages 0..3 have keys 0x2001, 0x2003, 0x2005, 0x2007: only the first two are covered
    assert [t.load(xa_mk_value(0x1000 + k)) for k in range(4)] == ["slot", "slot", None, None]
    # swiotlb_dyn_unmap(): mt_find() moves index to 0x2005, mtree_erase(0x2005) finds nothing
    slot, index = t.mt_find(key, key)
    assert (slot, index) == ("slot", 0x2005)
    assert t.erase(index) is None
    assert t.ranges() == [(0x2001, 0x2004, "slot")]
