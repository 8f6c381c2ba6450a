"""The kernel log's printk helpers (swiotlb_lib.debug.KernelLog): ``*_once`` and
``*_ratelimited`` as ``lib/ratelimit.c: ___ratelimit()`` runs them with the defaults of
``include/linux/ratelimit_types.h`` (interval 5 s, burst 10).  Expected lines worked by hand."""
from swiotlb_lib.debug import KernelLog


def test_burst_of_ten_then_suppressed_then_reported_at_the_next_interval():
    log = KernelLog()
    printed = [log.ratelimited("swiotlb_tbl_map_single", f"full {i}") for i in range(13)]
    assert printed == [True] * 10 + [False] * 3
    assert log.lines == [f"full {i}" for i in range(10)]
    log.now = 4.999                      # still the first interval: suppressed, not reported
    assert not log.ratelimited("swiotlb_tbl_map_single", "full 13")
    log.now = 5.0                        # a new interval: the count of the missed comes first
    assert log.ratelimited("swiotlb_tbl_map_single", "full 14")
    assert log.lines[10:] == ["swiotlb_tbl_map_single: 4 callbacks suppressed", "full 14"]


def test_a_new_interval_without_misses_prints_no_report():
    log = KernelLog()
    for i in range(3):
        log.ratelimited("f", f"a{i}")
    log.now = 6.0
    log.ratelimited("f", "b")
    assert log.lines == ["a0", "a1", "a2", "b"]


def test_call_sites_are_limited_separately():
    log = KernelLog()
    for i in range(11):
        log.ratelimited("one", f"one {i}")
    assert log.ratelimited("two", "two 0")
    assert log.lines[-1] == "two 0" and "one 10" not in log.lines


def test_the_interval_restarts_at_the_first_call_after_it_ends():
    log = KernelLog()
    for i in range(12):
        log.ratelimited("f", f"x{i}")              # 10 printed, 2 missed, interval begins at 0
    log.now = 7.0
    log.ratelimited("f", "y")                     # new interval begins at 7.0
    log.now = 11.9
    for i in range(10):
        log.ratelimited("f", f"z{i}")             # 9 more fit in the burst, 1 is missed
    log.now = 12.0
    log.ratelimited("f", "w")
    assert log.lines[10:13] == ["f: 2 callbacks suppressed", "y", "z0"]
    assert log.lines[-2:] == ["f: 1 callbacks suppressed", "w"]


def test_once_prints_only_the_first_call_per_key():
    log = KernelLog()
    log.once(("DMA addr", "dev0"), "first")
    log.once(("DMA addr", "dev0"), "second")
    log.once(("DMA addr", "dev1"), "other device")
    assert log.lines == ["first", "other device"]
