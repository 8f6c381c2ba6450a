"""The pool advisor (swiotlb_lib.trace.advise): pool sizes in kernel units, the smallest
clean pool, warnings."""
import sys

import numpy as np
import pytest

from swiotlb_lib import trace as T
from swiotlb_lib.boot import Machine
from swiotlb_lib.trace.advise import first_true, max_replays
from swiotlb_lib.trace.replay import thin_timeline
from tracedata import T1, T3, trace_fixture

t1 = trace_fixture("t1", T1)
t3 = trace_fixture("t3", T3)


def test_pool_sizes_in_kernel_units():
    assert T.effective_nslabs(1000, 2) == 1024            # multiple of 128, then a power of two
    assert T.effective_nslabs(100, 4) == 512              # at least 128 per area
    assert T.effective_nslabs(128, 1) == 128
    assert T.pool_candidates(2, hi=4096) == [256, 512, 1024, 2048, 4096]
    for n in T.pool_candidates(4, hi=8192):
        m = Machine(ram="2G", cpus=4, cmdline=f"swiotlb={n},force")
        assert m.swiotlb.nslabs == n
    assert T.pool_cmdline(1024, True) == "swiotlb=1024,force"
    assert T.pool_cmdline(1024, True, "rfc-v1") == "swiotlb=1024,force,dynamic"
    with pytest.raises(ValueError, match="cpus"):
        T.effective_nslabs(128, 0)


def test_advisor_answer_is_the_smallest_clean_pool(t1):
    adv, = T.advise(t1, ["v6.11"], target_failure_rate=0.05)
    n = adv.recommended_nslabs
    assert adv.recommended_cmdline == f"swiotlb={n},force"
    cands = T.pool_candidates(2)
    assert T.replay(t1, "v6.11", adv.recommended_cmdline).ok
    assert not T.replay(t1, "v6.11", f"swiotlb={cands[cands.index(n) - 1]},force").ok
    assert adv.peak_used_slots <= n
    assert adv.target_nslabs <= n and adv.target_replayed_failure_rate <= 0.05
    assert any("lower bound" in x for x in adv.notes)


def test_advisor_plot_data(t1):
    adv, = T.advise(t1, ["v6.6"])
    d = adv.plot_data(points=200)
    assert len(d["t"]) == len(d["used"]) <= 200 and np.all(np.diff(d["t"]) >= 0)
    assert d["used"].max() == adv.peak_used_slots <= d["recommended_nslabs"]


def test_dynamic_profiles_report_memory_held(t1):
    adv, = T.advise(t1, ["v6.11-dynamic"])
    assert adv.recommended_nslabs == 256 and adv.peak_bounce_bytes > 256 * 2048
    assert any("grew" in x for x in adv.notes)


def test_advisor_warns_about_livelock():
    tr = T.parse_trace(list(T.synthesize_trace(400, seed=2, cpus=1, request_kib=(1024,), contiguity=1.0)))
    adv, = T.advise(tr, ["v6.11"], lifetime="fixed:1500us")
    assert adv.recommended_nslabs >= 1024
    assert any(w.startswith("requests of up to 1024 KiB need at least 515 slots at once; a pool of 512 "
                            "slots can never complete them") for w in adv.warnings)


def test_advisor_warns_when_max_sectors_kb_exceeds_the_trace(t3):
    adv, = T.advise(t3, ["v6.11"], max_sectors_kb=1280)
    assert adv.recommended_nslabs >= 643
    assert any("requests of up to 1280 KiB need at least 643 slots at once" in w for w in adv.warnings)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 16, 33])
def test_first_true_is_the_smallest_true_index(n):
    for cut in range(n + 1):                          # ok(k) for k >= cut; cut == n: never
        probes = []

        def ok(k):
            probes.append(k)
            return k >= cut
        assert first_true(ok, -1, n - 1, gallop=True) == (cut if cut < n else None)
        assert all(0 <= k < n for k in probes) and len(set(probes)) == len(probes)
        if cut < n:                                   # ok(n - 1) known: bisection only
            probes.clear()
            assert first_true(ok, -1, n - 1) == cut
            assert len(probes) <= max(n - 1, 0).bit_length()



def _lone_256k_trace(n=24):
    """``n`` lone 256 KiB mappings (128 slots each, one whole 128-slot segment), 1 us apart on
    CPU 0, page-aligned buffers: with a 1 s lifetime none is unmapped before the last map."""
    head = ["# tracer: nop", "#", f"# entries-in-buffer/entries-written: {n}/{n}   #P:1", "#"]
    ev = [f"              dd-200     [000] d..1.     8.{k + 1:06d}: swiotlb_bounced: dev_name: "
          f"0000:00:03.0 dma_mask=ffffffffffffffff dev_addr={0x10000000 + k * 0x40000:x} "
          "size=262144 FORCE" for k in range(n)]
    return T.parse_trace(head + ev)


def test_replay_stops_at_the_first_failure():
    tr = _lone_256k_trace()
    kw = dict(lifetime="fixed:1s", cpus=1, requests="none")
    full = T.replay(tr, "v6.11", "swiotlb=256,force", **kw)
    # a 256-slot pool holds two 128-slot mappings; the 22 later ones fail (none is unmapped)
    assert full.complete and (full.result.attempted, full.result.failed) == (24, 22)
    stopped = T.replay(tr, "v6.11", "swiotlb=256,force", stop_when=lambda eng: True, **kw)
    # stopped at the first failed attempt: 2 mapped, the third failed
    assert not stopped.complete and (stopped.result.attempted, stopped.result.failed) == (3, 1)
    assert not stopped.ok and stopped.result.extra["stopped_at"] == 8.000003


def test_advisor_stops_replays_it_has_its_answer_from():
    tr = _lone_256k_trace()
    adv, = T.advise(tr, ["v6.11"], "fixed:1s", target_failure_rate=0.5, cpus=1, requests="none")
    # all 24 mappings are live at once: 24 * 128 = 3072 slots, so 4096 (pools on 1 CPU are
    # powers of two from 128) is the smallest clean pool; a pool of 128 * m slots fails
    # 24 - m requests: the rate 8/24 <= 0.5 first at 2048 (m = 16)
    assert (adv.recommended_nslabs, adv.target_nslabs) == (4096, 2048)
    assert adv.target_replayed_failure_rate == 8 / 24
    tried = {x["nslabs"]: x for x in adv.tried}
    # the target search gallops 128, 256, 1024, then 4096 (known clean) and bisects to 2048;
    # a failing pool of 128 * m slots stops once 13 requests failed (13/24 > 0.5): after
    # m + 13 attempts; 2048 meets the target, so it is replayed in full (24 attempts)
    assert {k: (x["complete"], x["attempted"]) for k, x in tried.items() if k <= 2048} == {
        128: (False, 14), 256: (False, 15), 1024: (False, 21), 2048: (True, 24)}
    assert adv.replays == len(adv.tried) == len(tried)
    # without a target, a failing replay stops at its first failure; the answer is the same
    adv0, = T.advise(tr, ["v6.11"], "fixed:1s", cpus=1, requests="none")
    assert adv0.recommended_nslabs == 4096 and adv0.replays == len(adv0.tried)


def test_advisor_answers_as_with_full_replays(t1, t3):
    """Every answer, warning and note equals that of full replays: replay each pool the
    advisor tried without a stop and compare its verdicts."""
    for tr, target in ((t1, 0.05), (t3, None)):
        for adv in T.advise(tr, ["v6.11", "rfc-v1"], target_failure_rate=target):
            for x in adv.tried:
                r = T.replay(tr, adv.profile, T.pool_cmdline(x["nslabs"], True, adv.profile),
                             timeline=False, follow=False)
                assert x["ok"] == r.ok
                if x["complete"]:
                    assert (x["attempted"], x["failure_rate"]) == (r.result.attempted, r.failure_rate)
                else:                                   # a prefix of the full replay
                    assert x["attempted"] <= r.result.attempted and not r.ok
                    if target is not None:
                        assert r.livelocks or r.failure_rate > target


def test_parallel_advice_equals_serial(t1):
    one = T.advise(t1, ["v6.11", "v6.6-dynamic", "rfc-v1"], target_failure_rate=0.05, workers=1)
    two = T.advise(t1, ["v6.11", "v6.6-dynamic", "rfc-v1"], target_failure_rate=0.05, workers=2)
    assert [a.to_dict() for a in one] == [a.to_dict() for a in two]
    for a, b in zip(one, two):
        assert np.array_equal(a.timeline.t, b.timeline.t) and np.array_equal(a.timeline.used, b.timeline.used)
    with pytest.raises(ValueError, match="workers"):
        T.advise(t1, ["v6.11"], workers=0)


def test_max_replays_bounds_the_replays(t1):
    for target in (None, 0.05):
        out = T.advise(t1, ["v6.11", "v6.6-dynamic"], target_failure_rate=target)
        # 2 CPUs: pools 256 .. 2**21, 14 sizes; each profile's search tries at most those
        assert T.pool_candidates(2) and len(T.pool_candidates(2)) == 14
        bound = max_replays(["v6.11", "v6.6-dynamic"], 2, target_failure_rate=target)
        assert sum(a.replays for a in out) <= bound <= 2 * 14


def test_search_order_static_and_growing(t1):
    """Which pools the search replays: a fixed pool from its default-pool replay's peak up,
    a growing pool from the smallest up."""
    fixed, grown = T.advise(t1, ["v6.11", "v6.6-dynamic"], workers=1)
    # a fixed pool: first the kernel's default 64 MiB (32768 slots), then the pools from the
    # first one at or above that replay's peak; 2 CPUs build powers of two from 256
    # (test_max_replays_bounds_the_replays), so that is the next power of two >= the peak
    first_up = 256
    while first_up < fixed.peak_used_slots:
        first_up *= 2
    sizes = [x["nslabs"] for x in fixed.tried]
    assert 32768 in sizes and first_up in sizes
    assert all(s >= first_up for s in sizes) and fixed.recommended_nslabs >= first_up
    # nothing below the first pool at or above the peak is replayed: a fixed pool smaller
    # than the peak must fail; the default-pool replay's peak equals the clean one's here
    assert fixed.replays == len(sizes) <= 4
    # a growing pool: the smallest pool 2 CPUs can build (256 slots) is tried first; the
    # worker's pools and transient pools make it clean, so it is the only replay
    assert [(x["nslabs"], x["ok"]) for x in grown.tried] == [(256, True)]
    assert grown.replays == 1 and grown.recommended_nslabs == 256


def test_advice_keeps_a_bounded_timeline_with_its_peak(t1, monkeypatch):
    # the replay's timeline has a point per change of the slots in use (thousands here);
    # above ADVICE_TIMELINE_POINTS the advice keeps at most that many, each the highest of its
    # stretch (thin_timeline), so the peak is still there
    full, = T.advise(t1, ["v6.11"])
    n = len(full.timeline.t)
    assert n > len(t1.mappings)
    # (the package's name ``advise`` is the function: patch the module itself)
    monkeypatch.setattr(sys.modules["swiotlb_lib.trace.advise"], "ADVICE_TIMELINE_POINTS", 100)
    small, = T.advise(t1, ["v6.11"])
    assert 50 < len(small.timeline.t) <= 100 < n
    want = thin_timeline(full.timeline.t, full.timeline.used, 100)
    assert small.timeline.t.tolist() == want[0].tolist() and small.timeline.used.tolist() == want[1].tolist()
    assert small.timeline.used.max() == full.timeline.used.max() == small.peak_used_slots
    assert small.recommended_nslabs == full.recommended_nslabs


def test_max_sectors_kb_floor_answers_with_its_own_timeline():
    # 4 KiB requests: 256 slots (the smallest candidate) are clean, but max_sectors_kb=1280
    # asks for room for one 1280 KiB request, 643 slots (640 of data, one each for the
    # virtio-blk header, the status byte and the indirect descriptor table), so the answer is the next candidate up, 1024; that pool is replayed in
    # full once more (3 replays: 32768, 256, 1024) and the advice shows its timeline
    tr = T.parse_trace(list(T.synthesize_trace(300, seed=2, cpus=2, request_kib=(4,))))
    plain, = T.advise(tr, ["v6.11"])
    assert plain.recommended_nslabs == 256 and plain.replays == 2
    adv, = T.advise(tr, ["v6.11"], max_sectors_kb=1280)
    assert adv.recommended_nslabs == 1024 and adv.replays == 3
    assert [t["nslabs"] for t in adv.tried] == [256, 1024, 32768]
    assert adv.timeline.nslabs == 1024 and adv.timeline.used.max() == adv.peak_used_slots
