"""The concurrency simulation: determinism, use of the real model, published shapes.

Each shape test states the shape and cites where it was published
(Chao Gao's area series, 20220628070136.419163-1-chao.gao@intel.com, and Petr Tesarik's v3
cover letter, cover.1687859323.git.petr.tesarik.ext@huawei.com).  The simulated numbers depend on
CostModel's assumed constants; the tests check shapes (flat, scaling, ratios),
not magnitudes.
"""
from dataclasses import replace

import pytest

from swiotlb_lib.constants import DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE
from swiotlb_lib.perf.concurrency import DEFAULT_COSTS, CostModel, simulate

MiB = 1 << 20
OPS = 1500
THREADS = (1, 2, 4, 8, 16)


@pytest.fixture(scope="module")
def one_area():
    return {t: simulate(t, 1, ops=OPS, seed=1) for t in THREADS}


@pytest.fixture(scope="module")
def eight_areas():
    return {t: simulate(t, 8, ops=OPS, seed=1) for t in THREADS}


# ------------------------------------------------------------------ basics ----------

def test_same_seed_same_result_and_seed_matters():
    a = simulate(4, 2, ops=600, seed=5)
    b = simulate(4, 2, ops=600, seed=5)
    c = simulate(4, 2, ops=600, seed=6)
    assert a.row() == b.row()
    assert a.costs == b.costs
    assert a.row() != c.row()


def test_result_fields(eight_areas):
    r = eight_areas[4]
    assert (r.threads, r.nareas, r.kernel, r.pools) == (4, 8, "v6.11", 1)
    assert r.cmdline == "swiotlb=32768,8,force"
    assert r.ops == OPS - int(OPS * 0.1)
    for lat in (r.map, r.unmap):
        assert 0 < lat.p50 <= lat.p90 <= lat.p99
    assert 0 <= r.lock_wait_share < 1
    assert r.failures == []


def test_every_pair_goes_through_the_model(eight_areas):
    """Two area-lock acquisitions per pair (search, release), one slot examined per
    search in a quiet pool, 4 KiB copied in at map and back at unmap (BIDIRECTIONAL)."""
    r = eight_areas[8]
    pairs = r.costs["lock_acquisitions"] / 2
    assert pairs >= OPS                             # measured pairs plus those in flight at the end
    assert pairs <= OPS + 8
    assert r.costs["bytes_copied"] == pytest.approx(2 * 4096 * pairs, rel=0.01)
    assert r.costs["slots_examined"] == pytest.approx(pairs, rel=0.01)


def test_direction_sets_where_the_copy_lands():
    """kernel/dma/swiotlb.c@afd81d914f6f: swiotlb_tbl_map_single() always copies (901c7280ca0d); unmap copies back only for
    FROM_DEVICE and BIDIRECTIONAL."""
    big = 64 * 1024
    to = simulate(1, 1, ops=300, size=big, dir=DMA_TO_DEVICE, seed=2)
    bidi = simulate(1, 1, ops=300, size=big, dir=DMA_BIDIRECTIONAL, seed=2)
    frm = simulate(1, 1, ops=300, size=big, dir=DMA_FROM_DEVICE, seed=2)
    copy = big * DEFAULT_COSTS.copy_ns_per_byte
    for r in (to, bidi, frm):
        assert r.map.p50 > copy
    assert to.unmap.p50 < copy / 2
    assert bidi.unmap.p50 > copy and frm.unmap.p50 > copy


def test_transfer_delay_is_outside_both_latencies():
    slow = simulate(2, 2, ops=400, costs=replace(DEFAULT_COSTS, transfer_ns=10_000), seed=3)
    fast = simulate(2, 2, ops=400, seed=3)
    assert slow.map.p50 == pytest.approx(fast.map.p50, rel=0.1)
    assert slow.throughput < fast.throughput / 5


def test_pool_exhaustion_stops_only_the_failing_mappers():
    # 128 slots, 80 mappers of 4 KiB (2 slots each): some searches find the area full
    r = simulate(80, 1, nslabs=128, ops=400, seed=4)
    assert r.failures
    assert {f[2] for f in r.failures} == {"pool_full"}
    assert len(r.failures) < 80
    assert r.ops > 0


# ------------------------------------------------------------------ shape 1 ---------

def test_shape_one_lock_adds_no_throughput(one_area):
    """Chao Gao's figures ( 20220628070136.419163-1-chao.gao@intel.com:
    4 fio jobs moved 885/868 MB/s against 1037/1148 MB/s with one job, one lock):
    with nareas = 1, more mappers give flat or falling throughput and a rising share of
    time spent waiting for the lock."""
    base = one_area[1].throughput
    for t in THREADS[1:]:
        assert one_area[t].throughput <= 1.02 * base
    assert one_area[16].throughput < base          # the handoffs lose throughput
    shares = [one_area[t].lock_wait_share for t in THREADS]
    assert shares[0] == 0
    assert all(a < b for a, b in zip(shares, shares[1:]))
    assert shares[2] > 0.5                          # 4 mappers: mostly waiting


# ------------------------------------------------------------------ shape 2 ---------

def test_shape_areas_scale_until_mappers_outnumber_them(one_area, eight_areas):
    """Chao Gao's series again ( 4 jobs 2320/1998 MB/s once the lock
    was split; Tianyu Lan 20220428141429.1637028-1-ltykernel@gmail.com): near-linear
    scaling while mappers <= areas, small single-thread gains, and no further scaling
    once mappers outnumber areas."""
    base = eight_areas[1].throughput
    assert base == pytest.approx(one_area[1].throughput, rel=0.05)
    for t in (2, 4, 8):
        assert eight_areas[t].throughput >= 0.9 * t * base
        assert eight_areas[t].lock_wait_share < 0.02
    assert eight_areas[16].throughput / 16 < 0.8 * base
    assert eight_areas[16].throughput < 1.1 * eight_areas[8].throughput
    assert eight_areas[16].lock_wait_share > 0.2


def test_shape_area_of_a_cpu_is_cpu_modulo_areas():
    """Two mappers on CPUs 0 and 2 share area 0 of a 2-area pool (cpu & (nareas - 1)),
    two on CPUs 0 and 1 do not."""
    apart = simulate(2, 2, cpus=4, cpu_ids=[0, 1], ops=600, seed=1)
    shared = simulate(2, 2, cpus=4, cpu_ids=[0, 2], ops=600, seed=1)
    assert apart.lock_wait_share < 0.02 < shared.lock_wait_share
    assert shared.throughput < 0.7 * apart.throughput


# ------------------------------------------------------------------ shape 3 ---------

@pytest.mark.parametrize("kernel", ["v6.6", "v6.11"])
def test_shape_small_dynamic_pools_hurt_parallel_not_serial(kernel):
    """Petr Tesarik's v3 cover letter (
    cover.1687859323.git.petr.tesarik.ext@huawei.com: growing from 1 MiB to 5 MiB cost
    about 5-6 % at 4 and 24 threads, 1 thread within noise; Documentation/core-api/swiotlb.rst:
    a pool has at most size / 256 KiB areas): a dynamic pool grown from swiotlb=512
    (1 MiB, 4 areas) slows a parallel load against the default 64 MiB pool with an area
    per CPU, and leaves a serial load alone."""
    def run(threads, dynamic):
        if dynamic:
            return simulate(threads, cmdline="swiotlb=512,4,force", kernel=kernel + "-dynamic",
                            cpus=24, grow_to=5 * MiB, ops=1200, seed=2)
        return simulate(threads, cmdline="swiotlb=32768,force", kernel=kernel, cpus=24, ops=1200, seed=2)

    serial = run(1, True).throughput / run(1, False).throughput
    par_dyn, par_def = run(16, True), run(16, False)
    assert par_dyn.pools == 5 and par_dyn.nareas == 4    # 1 MiB boot pool + four 1 MiB pools
    assert par_def.nareas == 32                          # 24 CPUs -> 32 areas
    assert serial > 0.95
    assert par_dyn.throughput / par_def.throughput < 0.8
    assert par_dyn.lock_wait_share > par_def.lock_wait_share + 0.3
    assert par_dyn.costs.get("lookup_steps", 0) > 0      # the dynamic pool walk is counted


def test_growth_during_a_run_uses_transient_pools():
    """kernel-swiotlb.md section 10 fact 13 (6.6 dynamic): when every pool is full a
    transient pool serves the request and the worker adds a pool; the run goes on
    without failures.  16 mappers of 128 KiB need 1024 slots; the boot pool has 512."""
    r = simulate(16, cmdline="swiotlb=512,4,force", kernel="v6.6-dynamic", size=128 * 1024,
                 cpus=16, ops=300, seed=1)
    assert r.failures == []
    assert r.costs["transient_pools"] >= 1 and r.costs["pools_added"] >= 1
    assert r.pools >= 2


# ------------------------------------------------------------------ bad input ------

@pytest.mark.parametrize("kw,name", [
    ({"threads": 0}, "threads"), ({"threads": 1025}, "threads"), ({"threads": 2.0}, "threads"),
    ({"nareas": 0}, "nareas"), ({"size": 0}, "size"), ({"size": 256 * 1024 + 1}, "size"),
    ({"dir": 3}, "dir"), ({"seed": -1}, "seed"), ({"ops": 0}, "ops"), ({"nslabs": 10}, "nslabs"),
    ({"cpus": 1, "threads": 2}, "cpus"), ({"threads": 2, "cpu_ids": [0]}, "cpu_ids"),
    ({"threads": 2, "cpus": 2, "cpu_ids": [0, 5]}, "cpu_ids"), ({"warmup": 1.0}, "warmup"),
    ({"grow_to": MiB}, "grow_to"), ({"costs": "fast"}, "costs"), ({"kernel": "v9"}, "kernel"),
])
def test_bad_arguments(kw, name):
    with pytest.raises(ValueError, match=name):
        simulate(**{"ops": 50, **kw})


@pytest.mark.parametrize("kw,name", [({"handoff_ns": -1}, "handoff_ns"), ({"jitter": 3.0}, "jitter"),
                                     ({"copy_ns_per_byte": float("nan")}, "copy_ns_per_byte"),
                                     ({"lock_base_ns": True}, "lock_base_ns")])
def test_cost_model_rejects_bad_constants(kw, name):
    with pytest.raises(ValueError, match=name):
        CostModel(**kw)
