"""Layouts and the accounting identities shared by the tests of the page allocator
(test_page_alloc.py), CMA (test_contiguous.py) and the atomic pools (test_atomic_pool.py)."""
from swiotlb_lib.memory import layout_for

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
PAGE = 4096


def x86_2g():
    return layout_for("x86_64", 2 * GiB)


def rpi4_4g():
    return layout_for("arm64-rpi4", 4 * GiB)


def x86_1t():
    return layout_for("x86_64", 1 << 40)


def identities(a):
    s = a.stats()
    assert s["total"] == s["free"] + s["used"] + s["reserved"] + s["cma_total"]
    assert sum(s["owners"].values()) == s["used"] + s["reserved"] + s["cma_used"]
    assert s["free"] == sum(s["free_by_zone"].values())
    assert s["free"] == sum(n << o for o, n in enumerate(s["free_blocks_by_order"])) * PAGE
    assert s["owners"].get("reserved", 0) == s["reserved"]
    assert s["reclaimable"] == s["owners"].get("pagecache", 0)
    live = a.allocations()
    assert s["used"] == sum(PAGE << o for o, _ in live.values())
    return s
