"""Widgets and data of chapter 10, "How to measure SWIOTLB" (swiotlb_lib.widgets.measuring)."""
import ipywidgets as W
import pytest

from swiotlb_lib.perf import stats
from swiotlb_lib.widgets import measuring as M


def _states(box):
    """(control, stack) of a widget made by widgets.common.precomputed."""
    ctl, stack = box.children[0], box.children[1]
    assert isinstance(stack, W.Stack)
    return ctl, stack


def _check_precomputed(box, n):
    ctl, stack = _states(box)
    assert len(ctl.options) == n == len(stack.children)
    values = [c.value for c in stack.children]
    assert len(set(values)) == n, "two states render the same HTML"
    assert all('<img src="data:image/png;base64,' in v and ' alt="' in v for v in values)
    assert stack.selected_index == ctl.index
    assert "bounce-precomputed" in box._dom_classes
    return ctl, values


def test_scaling_widget_one_state_per_area_count():
    box = M.scaling_widget()
    ctl, values = _check_precomputed(box, len(M.SCALING_AREAS))
    assert ctl.value == "8 areas"                       # the default shows scaling then a plateau
    assert "1 area: best 1.0x" in values[0]
    assert "8 areas: best 8.0x the one-thread rate, at 8 threads" in values[2]


def test_runs_widget_one_state_per_cov():
    box = M.runs_widget()
    ctl, values = _check_precomputed(box, len(M.RUNS_WIDGET_COVS))
    assert ctl.value == "3 %"
    assert "CoV 3 %: detecting 3 % needs 16 runs per kernel" in values[M.RUNS_WIDGET_COVS.index(3)]


def test_costs_widget_one_state_per_pool_size():
    # a short workload keeps the test quick; the chapter uses COST_REQUESTS
    box = M.costs_widget(nslabs=(512, 32768), requests=30, value=512)
    ctl, values = _check_precomputed(box, 2)
    assert ctl.value.startswith("1 MiB")
    assert "pool 1 MiB: failed mappings: v6.3" in values[0]
    assert "RFC v1" in values[1] and "v6.11 dyn" in values[1]


def test_live_widgets_build_and_say_they_need_a_kernel():
    for build in (M.runs_live, M.scaling_live):
        box = build()
        assert "bounce-live" in box._dom_classes
        assert "needs a running Python kernel" in box.children[-1].value


def test_live_callback_runs():
    fn, kw = M.LIVE_CALLBACKS["runs"]
    out = fn(**kw)
    assert "CoV 3 %, difference 3 %, power 0.8: 16 runs per kernel, 32 boots in all" in out
    assert "RMIT order of the first blocks" in out


def test_live_callback_scaling():
    fn, kw = M.LIVE_CALLBACKS["scaling"]
    out = fn(**kw)
    assert out.startswith("<b>16 threads, 4 areas")
    assert "% of the time waiting for a lock" in out and "map   p50" in out
    # 16 mappers on 4 areas: most of the time is spent waiting
    share = int(out.split("pairs/s (")[1].split("one thread), ")[1].split(" %")[0])
    assert share > 50
    quiet = fn(threads=4, areas=4, transfer_ns=0.0)
    assert "x one thread), 0 % of the time waiting" in quiet


def test_every_live_callback_is_listed_with_arguments():
    assert set(M.LIVE_CALLBACKS) == {"runs", "scaling"}
    for fn, kw in M.LIVE_CALLBACKS.values():
        assert callable(fn) and isinstance(kw, dict)


# ---------------------------------------------------------------- the chapter's data ------

def test_runs_table_equals_the_published_one():
    assert M.runs_table() == M.PUBLISHED_RUNS_TABLE
    assert "1570" in M.runs_table_text()


def test_detectable_effect_inverts_runs_needed():
    for cov in (1, 3, 5):
        for n in (2, 5, 16, 100):
            d = M.detectable_effect(cov, n)
            assert stats.runs_needed(cov, d * 1.001) <= n
    with pytest.raises(ValueError, match="n"):
        M.detectable_effect(3, 1)


def test_design_study_blocked_designs_mislead_rmit_does_not():
    s = M.design_study(experiments=300, seed=3)
    rates = list(s["rates"].values())
    assert rates[0] > 0.3 and rates[1] > 0.15        # identical kernels look different
    assert rates[2] < 0.1                             # RMIT keeps to about the nominal 5 %
    assert set(s["examples"]) == {d[0] for d in M.DESIGNS}


def test_rmit_lines_every_block_boots_every_kernel():
    lines = M.rmit_lines(runs_per_arm=3, seed=1)
    assert len(lines) == 3
    for ln in lines:
        assert all(a in ln for a in M.RMIT_ARMS)


def test_force_only_adds_work():
    r = M.force_vs_direct(size=8192)
    (direct_in_place, direct), (force_in_place, force) = r.values()
    assert direct_in_place and not force_in_place
    assert direct["bytes_copied"] == 0 and force["bytes_copied"] == 2 * 8192
    assert force["lock_acquisitions"] == 2 and direct["lock_acquisitions"] == 0


def test_reanalysis_rows_and_verdicts():
    rows = M.reanalysis_rows()
    assert len(rows) == 20
    sig = {(r["platform"], r["test"], r["config"]): r["verdict"] for r in rows if r["verdict"] != "noise"}
    assert sig == {("RPi4", "big", "default"): "marginal", ("RPi4", "big", "growing"): "signal",
                   ("CoCo VM", "4way", "growing"): "signal", ("CoCo VM", "24way", "growing"): "marginal"}
    for r in rows:
        assert r["low"] <= r["diff"] <= r["high"]
    assert "<0.1" in M.reanalysis_text(rows)


def test_cost_run_counters_short():
    big = {k: M.cost_run(k, 32768, requests=30) for k in M.COST_PROFILES}
    assert big["v6.3"]["slots_examined"] == big["v6.6"]["slots_examined"] == big["v6.6-dynamic"]["slots_examined"]
    assert big["v6.6"]["pool_searches"] == 0 and big["v6.6-dynamic"]["pool_searches"] == big["v6.6-dynamic"]["mapped"]
    assert big["rfc-v1"]["page_allocs"] > 0 and big["rfc-v1"]["tree_locks"] > 0
    assert len({r["bytes_copied"] for r in big.values()}) == 1
    small = M.cost_run("v6.6", 512, requests=30)
    assert small["failed"] > 0
    assert "v6.11 dyn" in M.cost_table(32768, requests=30)


def test_map_benchmark_lines_show_direction_rule():
    lines = M.map_benchmark_lines(granules=(16,), dirs=(1, 2), max_loops=100)
    to_dev = lines[2]
    from_dev = lines[5]
    assert "unmap latency(us):0.2" in to_dev
    assert "unmap latency(us):0.2" not in from_dev
    fail = M.map_benchmark_lines(granules=(65,), dirs=(0,), max_loops=50)
    assert "ioctl: Cannot allocate memory" in fail[1]
