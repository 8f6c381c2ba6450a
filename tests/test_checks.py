"""The argument checks shared by entry points (swiotlb_lib.checks)."""
import numpy as np
import pytest

from swiotlb_lib.checks import check_dir, check_int, check_int_at_least, check_positive


def test_check_int_accepts_python_and_numpy_integers_and_returns_int():
    for v in (3, np.int64(3), np.uint8(3)):
        out = check_int("threads", v, 1, 8)
        assert out == 3 and type(out) is int


@pytest.mark.parametrize("v", [0, 9, True, 2.0, "3", None])
def test_check_int_rejects_with_name_and_range(v):
    with pytest.raises(ValueError, match=r"^threads: must be an integer in 1\.\.8, got "):
        check_int("threads", v, 1, 8)


def test_check_int_at_least():
    assert check_int_at_least("n", np.int32(2), 2) == 2
    with pytest.raises(ValueError, match=r"^n: must be an integer >= 2, got 1$"):
        check_int_at_least("n", 1, 2)


def test_check_positive():
    assert check_positive("cov", np.float32(0.5)) == 0.5
    assert check_positive("sd", 0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match=r"^cov: must be > 0, got 0$"):
        check_positive("cov", 0)
    with pytest.raises(ValueError, match="cov: must be a finite number"):
        check_positive("cov", float("inf"))


def test_check_dir_names_the_three_directions():
    assert [check_dir(d) for d in (0, 1, 2)] == [0, 1, 2]
    for bad in (3, -1, True, 1.0):
        with pytest.raises(ValueError, match=r"^dir: must be DMA_BIDIRECTIONAL \(0\), DMA_TO_DEVICE \(1\) or "
                                             r"DMA_FROM_DEVICE \(2\), got "):
            check_dir(bad)


def test_attribute_and_direction_constants():
    from swiotlb_lib.checks import DMA_DIRS, UNKNOWN_ATTRS
    # SKIP_CPU_SYNC 1<<5, NO_WARN 1<<8, MAY_SLEEP 1<<10 are known; every other bit is not
    assert UNKNOWN_ATTRS & ((1 << 5) | (1 << 8) | (1 << 10)) == 0
    assert all(UNKNOWN_ATTRS >> b & 1 for b in range(64) if b not in (5, 8, 10))
    assert DMA_DIRS == (0, 1, 2)


def test_map_outside_the_largest_ram_range_takes_the_full_checks():
    """An 8 GiB x86_64 guest has RAM [0, 0x9fc00), [1 MiB, 3 GiB - 0x23000) and
    [4 GiB, 9 GiB) (layout_for): the fast check tries the largest range first, then the
    others, so a buffer in low RAM maps and one in the 640 KiB hole does not."""
    from swiotlb_lib.boot import Machine
    m = Machine(ram="8G", cmdline="swiotlb=1024,force")
    assert (m.memory.ram_lo, m.memory.ram_hi) == (1 << 32, (1 << 32) + (5 << 30))
    dev = m.add_device("virtio-blk")
    dma = m.dma.map_single(dev, 0x200000, 4096, 0)
    m.dma.unmap_single(dev, dma, 4096, 0)
    with pytest.raises(ValueError, match=r"^paddr: \[0x9fc00, 0xa0c00\) is not inside one RAM range"):
        m.dma.map_single(dev, 0x9FC00, 4096, 0)
    # the largest range's top edge: the last page maps, one byte more does not
    dma = m.dma.map_single(dev, (9 << 30) - 4096, 4096, 0)
    m.dma.unmap_single(dev, dma, 4096, 0)
    with pytest.raises(ValueError, match=r"^paddr: "):
        m.dma.map_single(dev, (9 << 30) - 4096, 4097, 0)
