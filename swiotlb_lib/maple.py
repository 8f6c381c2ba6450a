"""The maple tree operations RFC v1 patch 3/4 uses, with their exact index semantics.

Not a B-tree: a sorted list of disjoint ranges ``[first, last] -> entry``, which is what a
maple tree stores.  Each method names the function of ``lib/maple_tree.c`` it models, read
in Debian's ``linux-source-6.1`` (6.1.192), whose ``mt_find()``, ``mtree_erase()`` /
``mas_erase()`` and ``mtree_store_range()`` are those of the v6.3-rc base the RFC was
written on: ``mt_find()`` was added with the tree (Liam Howlett's series, reviewed in
f727adcf-5967-0b71-92a8-3269c0256948@suse.cz) and its only later change before 6.4 turned
the debug ``MT_BUG_ON`` into ``MT_WARN_ON`` (20230518145544.1722059-10-Liam.Howlett@oracle.com);
the ``*index = mas.last + 1`` update is in every version.

``xa_mk_value()`` (``include/linux/xarray.h``) is :func:`xa_mk_value`: ``(v << 1) | 1``.

What the model leaves out: node allocation (``mtree_store_range()`` can fail with -ENOMEM
under ``GFP_NOWAIT``), RCU, the reserved values a real tree refuses as entries, and the
tree's shape (lookup cost is counted separately by :mod:`swiotlb_lib.dynamic`).
"""
from __future__ import annotations

import bisect

ULONG_MAX = (1 << 64) - 1


def xa_mk_value(v: int) -> int:
    """``xa_mk_value()``: the tagged value ``2 * v + 1`` (``(v << 1) | 1``)."""
    if type(v) is not int or v < 0 or v > ULONG_MAX >> 1:
        raise ValueError(f"v: must be an int in 0..{ULONG_MAX >> 1:#x}, got {v!r}")
    return (v << 1) | 1


class MapleTree:
    """Disjoint ranges ``[first, last]`` of ``unsigned long`` keys, each with one entry."""

    def __init__(self) -> None:
        self._firsts: list[int] = []
        self._ranges: dict[int, tuple[int, object]] = {}   # first -> (last, entry)

    def __len__(self) -> int:
        return len(self._firsts)

    def ranges(self) -> list[tuple[int, int, object]]:
        """Every stored range in key order: ``(first, last, entry)``."""
        return [(f, self._ranges[f][0], self._ranges[f][1]) for f in self._firsts]

    def _slot_of(self, index: int):
        """Position of the range containing ``index``, or None (``mas_walk``)."""
        i = bisect.bisect_right(self._firsts, index) - 1
        if i >= 0 and index <= self._ranges[self._firsts[i]][0]:
            return i
        return None

    def load(self, index: int):
        """``mtree_load()``: the entry whose range contains ``index``, or None."""
        i = self._slot_of(index)
        return None if i is None else self._ranges[self._firsts[i]][1]

    def store_range(self, first: int, last: int, entry) -> int:
        """``mtree_store_range()``: ``entry`` over ``[first, last]``; parts of older
        ranges outside it survive (they are cut, not removed).  Returns 0, or -EINVAL
        (-22) if ``first > last`` as the kernel does."""
        if first > last:
            return -22
        self._clear(first, last)
        bisect.insort(self._firsts, first)
        self._ranges[first] = (last, entry)
        return 0

    def _clear(self, first: int, last: int) -> None:
        i = max(bisect.bisect_right(self._firsts, first) - 1, 0)
        while i < len(self._firsts):
            f = self._firsts[i]
            l, e = self._ranges[f]
            if f > last:
                break
            if l < first:
                i += 1
                continue
            del self._firsts[i]
            del self._ranges[f]
            if f < first:                       # the head survives
                bisect.insort(self._firsts, f)
                self._ranges[f] = (first - 1, e)
                i += 1
            if l > last:                        # the tail survives
                bisect.insort(self._firsts, last + 1)
                self._ranges[last + 1] = (l, e)
                break

    def mt_find(self, index: int, max: int):
        """``mt_find(mt, &index, max)``: the first entry at or after ``index`` whose range
        starts no later than ``max``.  Returns ``(entry, index)``: on success the index is
        **advanced to the found range's last key + 1** (``*index = mas.last + 1``), else
        it is returned unchanged.  ``index > max`` finds nothing."""
        if index > max:
            return None, index
        i = self._slot_of(index)
        if i is None:
            i = bisect.bisect_right(self._firsts, index)
            if i >= len(self._firsts) or self._firsts[i] > max:
                return None, index
        last, entry = self._ranges[self._firsts[i]]
        return entry, last + 1

    def erase(self, index: int):
        """``mtree_erase()`` -> ``mas_erase()``: remove the **whole** range containing
        ``index`` and return its entry; None (and no change) if no range contains it."""
        i = self._slot_of(index)
        if i is None:
            return None
        f = self._firsts.pop(i)
        return self._ranges.pop(f)[1]
