"""Lifetime models (swiotlb_lib.trace.lifetime): parsing, seeded samplers, and the models
checked against the measured lifetimes of the kprobe recording."""
import numpy as np
import pytest

from swiotlb_lib import trace as T
from tracedata import T2, lone_trace, trace_fixture

t2 = trace_fixture("t2", T2)


@pytest.mark.parametrize("spec,kind,value", [("fixed:250us", "fixed", 250e-6), ("fixed:1.5ms", "fixed", 1.5e-3),
                                             ("fixed:250µs", "fixed", 250e-6), ("qd:32", "qd", 32),
                                             ("exp:200us", "exp", 200e-6), ("lognormal:1ms,0.5", "lognormal", 1e-3),
                                             ("real", "real", 0)])
def test_parse_lifetime(spec, kind, value):
    lt = T.parse_lifetime(spec)
    assert lt.kind == kind and lt.value == pytest.approx(value)
    assert ("MODEL" in lt.describe()) == (kind != "real")


@pytest.mark.parametrize("spec", ["", "fixed", "fixed:250", "fixed:-1us", "fixed:2h", "qd:0", "qd:x",
                                  "exp:1ms,seed=x", "lognormal:1ms,9", "poisson:1ms", "real:1"])
def test_parse_lifetime_rejects(spec):
    with pytest.raises(ValueError, match="lifetime"):
        T.parse_lifetime(spec)


def test_random_lifetimes_seeded():
    for spec, stat in (("exp:200us", np.mean), ("lognormal:200us,0.5", np.median)):
        a = T.parse_lifetime(spec, seed=7).sampler()
        b = T.parse_lifetime(spec, seed=7).sampler()
        xs = [a() for _ in range(20000)]
        assert xs[:50] == [b() for _ in range(50)]
        assert stat(xs) == pytest.approx(200e-6, rel=0.05)
    tr = lone_trace([k * 1e-4 for k in range(200)])
    r1 = T.replay(tr, lifetime="exp:1ms", seed=1, requests="none", cpus=1)
    r2 = T.replay(tr, lifetime="exp:1ms", seed=2, requests="none", cpus=1)
    assert not np.array_equal(r1.timeline.used, r2.timeline.used)


def test_calibration_modelled_vs_real(t2):
    stats = T.lifetime_stats(t2)
    assert stats["per_mapping"]["n"] == 7142 and 1e-3 < stats["per_mapping"]["median"] < 2e-3
    cal = T.calibrate(t2, models=("fixed:1500us", "qd:2"))
    assert cal["real"]["peak_used_slots"] == 1549
    assert cal["fixed:1500us"]["peak_used_slots"] == pytest.approx(1549, rel=0.01)
    assert T.DEFAULT_LIFETIME == "fixed:1500us"
