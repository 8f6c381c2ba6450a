"""The pool advisor (swiotlb_lib.trace.advise): pool sizes in kernel units, the smallest
clean pool, warnings."""
import numpy as np
import pytest

from swiotlb_lib import trace as T
from swiotlb_lib.boot import Machine
from swiotlb_lib.trace.advise import first_true
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

