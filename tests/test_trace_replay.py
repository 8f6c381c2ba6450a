"""Replay (swiotlb_lib.trace.replay and .engine): lifetimes applied, the recordings
reproduced, small pools failing like the kernel, livelock detection (finding 12)."""
import numpy as np
import pytest

from swiotlb_lib import trace as T
from tracedata import T1, T2, T3, boot, line, lone_trace, trace_fixture

t1 = trace_fixture("t1", T1)
t2 = trace_fixture("t2", T2)
t3 = trace_fixture("t3", T3)


def test_fixed_lifetime_completes_exactly_after_latency():
    tr = lone_trace([0.0, 0.001, 0.002])
    r = T.replay(tr, lifetime="fixed:1500us", requests="none", cpus=1)
    assert r.result.peak_used_slots == 4                  # two 4 KiB mappings overlap, never three
    t, u = r.timeline.t, r.timeline.used
    assert list(u) == [2, 4, 2, 4, 2, 0] and t[2] == pytest.approx(0.0015)
    assert T.replay(tr, lifetime="fixed:500us", requests="none", cpus=1).result.peak_used_slots == 2


def test_qd_bounds_units_in_flight():
    tr = lone_trace([k * 1e-4 for k in range(10)])
    for n in (1, 3, 10):
        r = T.replay(tr, lifetime=f"qd:{n}", requests="none", cpus=1)
        assert r.result.peak_used_slots == 2 * n          # oldest completes before the next maps
        assert r.result.extra["requests_completed"] == 10


def test_real_lifetimes_reproduce_the_kernel(t2):
    r = T.replay(t2)                                      # real is the default with unmaps
    assert r.lifetime.kind == "real" and not r.lifetime.is_model
    assert r.result.extra["slot_agreement"] == "7142/7142"   # same bounce address as Linux 6.12
    hw = boot("6.12-T2")["debugfs_swiotlb_after_workload"]["io_tlb_used_hiwater"]
    assert r.result.peak_used_slots == hw == 1549
    assert r.result.failed == 0 and r.result.extra["requests_completed"] == 79


def test_real_needs_unmaps(t1):
    with pytest.raises(ValueError, match="lifetime: 'real' needs"):
        T.replay(t1, lifetime="real")


def test_replay_is_deterministic_and_says_what_it_assumed(t1):
    a = T.replay(t1, lifetime="exp:1ms", seed=3)
    b = T.replay(t1, lifetime="exp:1ms", seed=3)
    assert a.to_dict() == b.to_dict()
    assert np.array_equal(a.timeline.t, b.timeline.t) and np.array_equal(a.timeline.used, b.timeline.used)
    assert a.timeline.used.max() == a.result.peak_used_slots
    t, u = a.timeline.decimate(50)
    assert len(t) <= 50 and u.max() == a.result.peak_used_slots
    text = "\n".join(a.summary_lines())
    assert "MODEL exp:1ms" in text and "not a measurement" in text
    assert a.result.cmdline == "swiotlb=force" and a.nslabs == 32768


def test_replay_small_pool_fails_like_the_kernel(t3):
    r = T.replay(t3, cmdline="swiotlb=512,force")
    assert r.nslabs == 512 and r.result.peak_used_slots <= 512
    assert r.result.failures["pool_full"] > 0 and r.failed_requests > 0
    assert any("swiotlb buffer is full" in ln and "total 512 (slots)" in ln for ln in r.result.log)


@pytest.mark.parametrize("kernel", ["v6.3", "v6.11"])
def test_bigger_pool_never_fails_more(t1, t2, kernel):
    for tr, lt in ((t1, "fixed:1500us"), (t2, "real")):
        failed = [T.replay(tr, kernel, f"swiotlb={n},force", lt, timeline=False).failed_requests
                  for n in (256, 512, 1024, 2048, 4096, 8192)]
        assert failed == sorted(failed, reverse=True), failed
        assert failed[0] > 0 and failed[-1] == 0


def test_normal_bounces_of_a_32_bit_device():
    # a device with a 32-bit mask and buffers above 4 GiB: bounced without swiotlb=force
    tr = T.parse_trace([line(1.0 + k * 1e-3, 0, 4096, addr=(5 << 30) + k * 4096, flag="NORMAL",
                             mask="ffffffff") for k in range(8)])
    assert not tr.force_seen and T.default_cmdline(tr) == ""
    r = T.replay(tr, requests="none", lifetime="fixed:100us", cpus=1)
    assert r.result.bounced == 8 and r.result.failed == 0 and r.nslabs == 32768   # RAM above 4 GiB
    r = T.replay(tr, requests="none", lifetime="fixed:100us", cpus=1, cmdline="swiotlb=noforce")
    assert r.result.bounced == 0 and r.result.failures["out_of_reach"] == 8


def test_empty_trace():
    tr = T.parse_trace(["# tracer: nop"])
    r = T.replay(tr)
    assert r.result.attempted == 0 and "the trace has no mappings" in r.warnings
    adv, = T.advise(tr, ["v6.11"])
    assert adv.recommended_nslabs is None and "nothing to size" in adv.warnings[0]


def test_livelock_finding_12():
    # dd bs=1M with the default max_sectors_kb=1280: requests of 1280 KiB in <= 256 KiB
    # segments on a 1 MiB pool (swiotlb=512,force: 512 slots, 2 areas)
    tr = T.parse_trace(list(T.synthesize_trace(700, seed=2, cpus=1, request_kib=(1280,), contiguity=1.0)))
    r = T.replay(tr, cmdline="swiotlb=512,force", lifetime="fixed:1500us")
    assert r.nslabs == 512 and r.livelocks
    first = r.livelocks[0]
    assert first.repeats >= T.DEFAULT_LIVELOCK_REPEATS and first.attempts <= T.DEFAULT_MAX_RETRIES
    assert first.message().startswith("requests of up to 1280 KiB need at least 643 slots at once; a pool "
                                      "of 512 slots can never complete them; raise swiotlb= or lower "
                                      "max_sectors_kb")
    assert "LIVELOCK" in "\n".join(r.summary_lines())
    assert T.min_request_slots(1280) == 643 and T.min_request_slots(1024) == 515
    big = T.replay(tr, cmdline="swiotlb=2048,force", lifetime="fixed:1500us")
    assert not big.livelocks and big.result.extra["requests_completed"] == r.result.extra["requests"]


def test_bad_api_inputs(t1):
    with pytest.raises(ValueError, match="max_retries"):
        T.replay(t1, max_retries=-1)
    with pytest.raises(ValueError, match="livelock_repeats"):
        T.replay(t1, livelock_repeats=1)
    with pytest.raises(TypeError, match="lifetime"):
        T.replay(t1, lifetime=3)
    with pytest.raises(ValueError, match="n_events"):
        list(T.synthesize_trace(-1))
    with pytest.raises(ValueError, match="kernels"):
        T.advise(t1, [])
    bad = T.parse_trace(["  dd-1 [000] d..1. 1.0: map: (swiotlb_tbl_map_single+0x4/0x770) orig=0x1000 "
                         "size=16 align_mask=0x5 dir=1 attrs=0x0"])
    with pytest.raises(ValueError, match="line 1: align_mask"):
        T.replay(bad, cmdline="swiotlb=force")


def test_replay_machine_moves_no_bytes():
    # the replay switches its machine's bounce copies off (PhysMemory.move_bytes), nothing else
    from swiotlb_lib.memory import PhysMemory
    mem = PhysMemory()
    mem.write(0x1000, b"abc")
    mem.move_bytes(False)
    mem.copy(0x2000, 0x1000, 3)
    assert mem.read(0x2000, 3) == bytes(3)
    other = PhysMemory()                                 # the switch is per object
    other.write(0x1000, b"xyz")
    other.copy(0x2000, 0x1000, 3)
    assert other.read(0x2000, 3) == b"xyz"
    mem.move_bytes(True)
    mem.copy(0x2000, 0x1000, 3)
    assert mem.read(0x2000, 3) == b"abc"


def test_headline_rates_agree_in_text_and_json():
    # three lone mappings, one of 300 KiB (more than the 256 KiB any bounce buffer holds):
    # failed 1 (too_big 1), so 1 of 3 mappings failed: 33.3333 %, in the text and the JSON
    tr = T.parse_trace([line(1.0, 0, 4096), line(1.1, 0, 300 * 1024, addr=0x200000),
                        line(1.2, 0, 4096, addr=0x300000)])
    r = T.replay(tr, "v6.11", "swiotlb=force", "fixed:100us", requests="none", cpus=1)
    text = "\n".join(r.summary_lines())
    assert "failed 1: too_big 1" in text
    assert "failure rate 33.3333% of mappings (1 of 3)" in text
    assert r.to_dict()["failure_rate"] == pytest.approx(1 / 3)
    assert r.ok                                        # a larger pool cannot help: not a sizing failure


def test_livelock_warning_never_advises_a_pool_that_cannot_help():
    from swiotlb_lib.trace.engine import livelock_warning
    msg = livelock_warning(1024 * 1024, 600, 512, failed_size=300 * 1024)
    assert "no swiotlb= helps" in msg and "raise swiotlb=" not in msg
    assert "raise swiotlb=" in livelock_warning(1024 * 1024, 600, 512, failed_size=4096)


K = 1024


def test_nvme_request_that_meets_a_full_pool_is_requeued():
    # nvme_map_data() (v6.12) answers BLK_STS_RESOURCE when a segment cannot be mapped, after
    # dma_direct_map_sg() unmapped the segments already mapped; blk-mq requeues the request.
    # 128 slots, one area, fixed 1 ms lifetimes.  P: 3 x 64 KiB (32 slots each) at 1.0 takes
    # slots 0..95 and completes at 1.00102.  Q: 2 x 64 KiB at 1.0005: its first segment takes
    # 96..127, the second finds the pool full: Q gives slot 96..127 back and is requeued; the
    # immediate rerun fails the same way; P's completion reruns it and Q maps.  By hand:
    # mapping attempts 3 (P) + 3 x 2 (Q) = 9, failed 2, so 2 of 9 attempts and 1 of 2 requests.
    P = [line(1.0 + k * 1e-5, 0, 64 * K, addr=0x1000000 + k * 0x100000) for k in range(3)]
    Q = [line(1.0005 + k * 1e-5, 0, 64 * K, addr=0x2000000 + k * 0x100000) for k in range(2)]
    r = T.replay(T.parse_trace(P + Q), "v6.11", "swiotlb=128,force", "fixed:1ms", requests="nvme", cpus=1)
    x = r.result.extra
    assert r.grouping == "nvme" and x["requests"] == 2
    assert r.result.attempted == 9 and r.result.failed == 2 and r.result.failures["pool_full"] == 2
    assert x["failed_requests"] == 1 and x["requests_requeued"] == 1 and x["retries"] == 2
    assert x["requests_completed"] == 2 and not r.livelocks and r.result.peak_used_slots == 128
    text = "\n".join(r.summary_lines())
    assert "failure rate 50.0000% of requests (1 of 2); 22.2222% of mapping attempts" in text
    d = r.to_dict()
    assert d["failure_rate"] == 0.5 and d["attempted"] == 9 and d["failed"] == 2
    # the device is the NVMe driver's PCI function: its kernel lines carry "nvme <bdf>:"
    assert r.result.log[-1].startswith("nvme 0000:00:02.0: swiotlb buffer is full (sz: 65536 bytes)")


def livelock_trace():
    """One virtio-blk request that can never fit a 128-slot pool: header (1 slot), 200 KiB
    (100 slots), 100 KiB (50 slots), status (1 slot): 152 slots > 128."""
    return T.parse_trace([line(1.0, 0, 16, addr=0x1000000), line(1.00001, 0, 200 * K, addr=0x2000000),
                          line(1.00002, 0, 100 * K, addr=0x3000000), line(1.00003, 0, 1, addr=0x4000000)])


def test_livelock_counts_in_text_and_json_agree():
    # Worked by hand: the header takes slot 0, the 200 KiB buffer slots 2..101 (page-sized
    # buffers start on an even slot), leaving 26 + 1 free slots: the 100 KiB buffer (50 slots)
    # never fits.  Attempt 1 (the trace's) fails; the rerun at once, then two reruns 3 ms
    # apart fail alone, the same way, with 101 slots in use: the third such repeat makes a
    # livelock.  4 attempts x 3 mappings = 12 attempted, 4 failed (33.3333 %); 1 request, 0
    # completed, 1 livelocked, which counts as failed: 100 % of requests.  The failing
    # mapping (100 KiB) fits a bounce buffer, so a larger pool helps: "raise swiotlb=".
    r = T.replay(livelock_trace(), "v6.11", "swiotlb=128,force", "fixed:1ms", requests="virtio-blk", cpus=1)
    text = "\n".join(r.summary_lines())
    d = r.to_dict()
    for key, want in (("requests", 1), ("requests_completed", 0), ("livelocked_requests", 1),
                      ("failed_requests", 1)):
        assert d[key] == want and f"  {key}: {want}\n" in text
    assert d["attempted"] == 12 and d["failed"] == 4
    assert "mappings attempted 12, mapped 8 (8 bounced), failed 4: pool_full 4" in text
    assert "failure rate 100.0000% of requests (1 of 1); 33.3333% of mapping attempts" in text
    assert d["failure_rate"] == 1.0
    assert len(d["livelocks"]) == 1 and d["livelocks"][0]["slots_needed"] == 152
    assert d["livelocks"][0]["used"] == 101 and d["livelocks"][0]["failed_size"] == 100 * K
    assert "LIVELOCK (1 request): requests of up to 300 KiB need at least 152 slots" in text
    assert "raise swiotlb=" in d["livelocks"][0]["message"] and not r.ok


def test_request_failure_rate_counts_too_big_and_full_pool_alike():
    # two virtio-blk requests in a roomy pool: R1 maps 300 KiB of data in one buffer (more
    # than the 256 KiB any bounce buffer holds: too_big, at any pool size), R2 4 KiB.  By
    # hand: 1 of 2 requests failed (50 %), in the text and in the JSON; R1 is not a sizing
    # failure (failed_requests 0, too_big_requests 1), so the advisor's criterion holds.  R1,
    # requeued, fails alone the same way and is reported as a livelock that no pool helps.
    tr = T.parse_trace([line(1.0, 0, 16, addr=0x1000000), line(1.00001, 0, 300 * K, addr=0x2000000),
                        line(1.00002, 0, 1, addr=0x3000000), line(1.1, 0, 16, addr=0x4000000),
                        line(1.10001, 0, 4096, addr=0x5000000), line(1.10002, 0, 1, addr=0x6000000)])
    r = T.replay(tr, "v6.11", "swiotlb=force", "fixed:1ms", requests="virtio-blk", cpus=1)
    d = r.to_dict()
    assert d["requests"] == 2 and d["too_big_requests"] == 1 and d["failed_requests"] == 0
    assert d["failure_rate"] == 0.5
    text = "\n".join(r.summary_lines())
    assert "failure rate 50.0000% of requests (1 of 2)" in text
    assert d["livelocked_requests"] == 1 and "no swiotlb= helps" in text and "raise swiotlb=" not in text
    assert r.ok


def test_decimate_keeps_the_first_highest_point_of_each_stretch():
    # worked by hand: 10 points in 4 stretches of linspace(0, 10, 5) -> [0, 2, 5, 7, 10]:
    # [0,2) used 1,3 -> index 1; [2,5) 3,2,3 -> the first 3, index 2; [5,7) 0,0 -> 5;
    # [7,10) 4,9,9 -> 8
    tl = T.Timeline(np.arange(10) / 10, np.array([1, 3, 3, 2, 3, 0, 0, 4, 9, 9]), 8)
    t, u = tl.decimate(4)
    assert list(u) == [3, 3, 0, 9] and np.allclose(t, [0.1, 0.2, 0.5, 0.8])
    # against the definition (each stretch's argmax), on random timelines of every length
    rng = np.random.default_rng(5)
    for _ in range(200):
        n, points = int(rng.integers(1, 3000)), int(rng.integers(1, 4000))
        tl = T.Timeline(np.sort(rng.random(n)), rng.integers(0, int(rng.integers(1, 40)), n), 8)
        t, u = tl.decimate(points)
        if n <= points:
            assert np.array_equal(u, tl.used) and np.array_equal(t, tl.t)
            continue
        edges = np.linspace(0, n, points + 1).astype(np.int64)
        want = [a + int(np.argmax(tl.used[a:b])) for a, b in zip(edges[:-1], edges[1:])]
        assert np.array_equal(t, tl.t[want]) and np.array_equal(u, tl.used[want])
    # a timeline long enough to be worked through in several chunks (about 2**20 samples each)
    n = (1 << 22) + 3
    tl = T.Timeline(np.arange(n, dtype=np.float64), rng.integers(0, 5, n), 8)
    for points in (7, 1000, 50_001):
        edges = np.linspace(0, n, points + 1).astype(np.int64)
        want = [a + int(np.argmax(tl.used[a:b])) for a, b in zip(edges[:-1], edges[1:])]
        t, u = tl.decimate(points)
        assert np.array_equal(t, tl.t[want]) and np.array_equal(u, tl.used[want])
