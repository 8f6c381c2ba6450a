"""The gfp_t flags and get_order() (swiotlb_lib/gfp.py): the Linux 6.6 bit values of
include/linux/gfp_types.h, as page-allocation-failure and OOM reports print them."""
import pytest

from swiotlb_lib import gfp, page_alloc
from swiotlb_lib.gfp import GFP_ATOMIC, GFP_KERNEL, GFP_NOIO, GFP_NOWAIT, Gfp, get_order, gfpflags_allow_blocking
from mm_helpers import GiB, MiB


def test_gfp_values_are_linux_6_6():
    # the masks as page-allocation-failure and OOM reports print them on 6.x kernels
    assert int(GFP_KERNEL) == 0xCC0
    assert int(GFP_ATOMIC) == 0x820             # 0xa20 before 6.3 dropped __GFP_ATOMIC (0x200)
    assert int(GFP_NOWAIT) == 0x800
    assert int(GFP_NOIO) == 0xC00
    assert (int(Gfp.DMA), int(Gfp.HIGHMEM), int(Gfp.DMA32)) == (0x1, 0x2, 0x4)
    assert (int(Gfp.ZERO), int(Gfp.NOWARN), int(Gfp.NORETRY), int(Gfp.ATOMIC_HIGH)) == (0x100, 0x2000, 0x10000, 0x20)
    assert gfpflags_allow_blocking(GFP_KERNEL) and gfpflags_allow_blocking(GFP_NOIO)
    assert not gfpflags_allow_blocking(GFP_NOWAIT) and not gfpflags_allow_blocking(GFP_ATOMIC)
    assert not gfpflags_allow_blocking(0)


@pytest.mark.parametrize("nbytes,order", [(1, 0), (4096, 0), (4097, 1), (8192, 1), (8193, 2),
                                          (4 * MiB, 10), (4 * MiB + 1, 11), (GiB, 18)])
def test_get_order(nbytes, order):
    assert get_order(nbytes) == order


@pytest.mark.parametrize("bad", [0, -1, 4096.0, True, "4096", None])
def test_get_order_rejects(bad):
    with pytest.raises(ValueError, match="nbytes"):
        get_order(bad)


def test_page_alloc_reexports_the_gfp_names():
    # callers import the masks from swiotlb_lib.page_alloc; they are the objects of swiotlb_lib.gfp
    for name in ["Gfp", "GFP_KERNEL", "GFP_NOWAIT", "GFP_ATOMIC", "GFP_NOIO", "GFP_NOFS", "GFP_DMA",
                 "GFP_DMA32", "GFP_ZONEMASK", "gfpflags_allow_blocking", "get_order"]:
        assert getattr(page_alloc, name) is getattr(gfp, name), name
