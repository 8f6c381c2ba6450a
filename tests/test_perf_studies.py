"""The measuring studies of chapter 10 (swiotlb_lib.perf.studies) and their registered
experiments.  Expected values are the chapter's printed ones or worked out by hand."""
import json

import pytest

from swiotlb_lib.perf import stats
from swiotlb_lib.perf import studies as S
from swiotlb_lib.scenarios import get_experiment


def test_runs_table_equals_the_one_worked_out_by_hand():
    # the chapter prints "same as the table worked out by hand: True"
    assert S.runs_table() == S.RUNS_TABLE_BY_HAND == S.PUBLISHED_RUNS_TABLE
    # two cells by hand: 15.698 * (10 / 1)**2 = 1569.8 -> 1570; 15.698 * (3 / 1)**2 = 141.3 -> 142
    assert S.runs_table()[10][1] == 1570 and S.runs_table()[3][1] == 142
    assert "1570" in S.runs_table_text()


def test_detectable_effect_inverts_runs_needed():
    for cov in (1, 3, 5):
        for n in (2, 5, 16, 100):
            d = S.detectable_effect(cov, n)
            assert stats.runs_needed(cov, d * 1.001) <= n
    with pytest.raises(ValueError, match="n"):
        S.detectable_effect(3, 1)


def test_design_study_blocked_designs_mislead_rmit_does_not():
    s = S.design_study(experiments=300, seed=3)
    rates = list(s["rates"].values())
    assert rates[0] > 0.3 and rates[1] > 0.15        # identical kernels look different
    assert rates[2] < 0.1                             # RMIT keeps to about the nominal 5 %
    assert set(s["examples"]) == {d[0] for d in S.DESIGNS}


def test_rmit_lines_every_block_boots_every_kernel():
    lines = S.rmit_lines(runs_per_arm=3, seed=1)
    assert len(lines) == 3
    for ln in lines:
        assert all(a in ln for a in S.RMIT_ARMS)


def test_force_only_adds_work():
    r = S.force_vs_direct(size=8192)
    (direct_in_place, direct), (force_in_place, force) = r.values()
    assert direct_in_place and not force_in_place
    assert direct["bytes_copied"] == 0 and force["bytes_copied"] == 2 * 8192
    assert force["lock_acquisitions"] == 2 and direct["lock_acquisitions"] == 0


def test_reanalysis_rows_and_verdicts():
    rows = S.reanalysis_rows()
    assert len(rows) == 20
    sig = {(r["platform"], r["test"], r["config"]): r["verdict"] for r in rows if r["verdict"] != "noise"}
    assert sig == {("RPi4", "big", "default"): "marginal", ("RPi4", "big", "growing"): "signal",
                   ("CoCo VM", "4way", "growing"): "signal", ("CoCo VM", "24way", "growing"): "marginal"}
    for r in rows:
        assert r["low"] <= r["diff"] <= r["high"]
    assert "<0.1" in S.reanalysis_text(rows)


def test_cost_run_counters_short():
    big = {k: S.cost_run(k, 32768, requests=30) for k in S.COST_PROFILES}
    assert big["v6.3"]["slots_examined"] == big["v6.6"]["slots_examined"] == big["v6.6-dynamic"]["slots_examined"]
    assert big["v6.6"]["pool_searches"] == 0 and big["v6.6-dynamic"]["pool_searches"] == big["v6.6-dynamic"]["mapped"]
    assert big["rfc-v1"]["page_allocs"] > 0 and big["rfc-v1"]["tree_locks"] > 0
    assert len({r["bytes_copied"] for r in big.values()}) == 1
    small = S.cost_run("v6.6", 512, requests=30)
    assert small["failed"] > 0
    assert "v6.11 dyn" in S.cost_table(32768, requests=30)


def test_map_benchmark_lines_show_direction_rule():
    lines = S.map_benchmark_lines(granules=(16,), dirs=(1, 2), max_loops=100)
    to_dev = lines[2]
    from_dev = lines[5]
    assert "unmap latency(us):0.2" in to_dev
    assert "unmap latency(us):0.2" not in from_dev
    fail = S.map_benchmark_lines(granules=(65,), dirs=(0,), max_loops=50)
    assert "ioctl: Cannot allocate memory" in fail[1]


def test_detection_rows_are_the_chapters_numbers():
    rows = S.detection_rows()
    assert rows[0]["runs_needed"] == {3: 16, 5: 6, 7: 3}
    assert S.detection_lines(rows)[1] == "          smallest change detected by 2 runs: 8.4 %, by 5 runs: 5.3 %"


def test_runs_plan_counts_boots_and_blocks():
    p = S.runs_plan(3.0, 3.0, 0.8, 3)
    assert p["runs"] == 16 and len(p["blocks"]) == 4
    assert all(sorted(b.split()) == ["A", "B", "C"] for b in p["blocks"])


def test_cost_grid_lines_one_table_per_pool_size():
    grid = S.cost_grid(nslabs=(512, 32768), requests=30)
    lines = S.cost_grid_lines(grid)
    assert sum("storage scenario, 30 requests" in ln for ln in lines) == 2 and "" in lines
    assert S.growth_lines(S.cost_rows(512, requests=30))[0].startswith("kernel")


def test_live_scaling_baseline_is_one_mapper():
    r, one = S.live_scaling(threads=4, areas=4, ops=200)
    assert r.threads == 4 and one.threads == 1


# ---------------------------------------------------------------- registered experiments --

#: One value per experiment that the chapter prints (default parameters).
CHAPTER_SAYS = {
    "runs-table": "        10 %      1570      393      175       63       16",
    "detectable-effect": "CoV 5 %: runs per kernel to detect 3, 5, 7 %: [44, 16, 9]",
    "rmit-schedule": "block 1: #1  patched 1 MiB+grow | #2  patched 64 MiB | #3  v6.4-rc6",
    "analyse-two": "Mann-Whitney U test             p = 0.0050",
    "design-study": "10 boots per kernel, RMIT order    false positives   1.7 % of 2000 experiments",
    "force-vs-direct": "    slots_examined 1, lock_acquisitions 2, bytes_copied 131072, unmap_sync_lookups 1",
    "reanalysis": "CoCo VM  4way  growing  0.86  2.22    -4.9 [  -7.6,  -2.2]  5.2  0.005  signal",
    "cost-counters": "slots examined         8791         600        8791      910626      470512",
    "pool-growth": "rfc-v1             0         0     8410  0: 4266, 1: 2113, 2: 1554, 3: 446, 4: 31",
    "area-scaling": "  16 areas |            1.00   2.00   4.00   8.00  15.98",
    "small-pool": "v6.11       24 |         0.131 |     5   4 vs 32 |         86.7%     0.0%",
    "small-pool-slow-device": "v6.6        24 |         0.999 |     5   4 vs 32 |          0.1%     0.0%",
    "map-benchmark": "    average map latency(us):6.6 standard deviation:1.6",
}


def test_every_chapter_10_experiment_is_checked_here():
    from swiotlb_lib.scenarios import experiments
    mine = {n for n, e in experiments().items() if e.chapter == "ch10"}
    assert mine == set(CHAPTER_SAYS) | {"map-benchmark-latency"}


@pytest.mark.parametrize("name", sorted(CHAPTER_SAYS))
def test_experiment_prints_what_the_chapter_says(name):
    r = get_experiment(name).run()
    assert CHAPTER_SAYS[name] in r.lines()
    assert json.loads(r.to_json())["experiment"] == name


def test_map_benchmark_latency_experiment():
    r = get_experiment("map-benchmark-latency").run()
    grid = json.loads(r.to_json())["result"]
    # TO_DEVICE copies nothing back: unmap latency flat in the granule (0.2 us, as printed)
    assert {round(u, 1) for _, _, u in grid["1"]} == {0.2}
    assert any(ln.startswith("TO_DEVICE") for ln in r.lines())


def test_experiments_take_seed_and_kernels_where_they_should():
    r = get_experiment("rmit-schedule").run(seed=1)
    assert r.params["seed"] == 1 and len(r.lines()) == 4
    r = get_experiment("force-vs-direct").run(kernels=("v6.6",))
    assert r.params["kernel"] == "v6.6"
    with pytest.raises(ValueError, match="not random"):
        get_experiment("runs-table").run(seed=1)
