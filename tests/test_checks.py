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
