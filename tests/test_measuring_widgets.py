"""Widgets of chapter 10, "How to measure SWIOTLB" (swiotlb_lib.widgets.measuring); the
studies behind them are tested in test_perf_studies.py."""

from swiotlb_lib.widgets import measuring as M
from conftest import check_precomputed


def test_scaling_widget_one_state_per_area_count():
    box = M.scaling_widget()
    ctl, values = check_precomputed(box, figures=True, n=len(M.SCALING_AREAS))
    assert ctl.value == "8 areas"                       # the default shows scaling then a plateau
    assert "1 area: best 1.0x" in values[0]
    assert "8 areas: best 8.0x the one-thread rate, at 8 threads" in values[2]


def test_runs_widget_one_state_per_cov():
    box = M.runs_widget()
    ctl, values = check_precomputed(box, figures=True, n=len(M.RUNS_WIDGET_COVS))
    assert ctl.value == "3 %"
    assert "CoV 3 %: detecting 3 % needs 16 runs per kernel" in values[M.RUNS_WIDGET_COVS.index(3)]


def test_costs_widget_one_state_per_pool_size():
    # a short workload keeps the test quick; the chapter uses COST_REQUESTS
    box = M.costs_widget(nslabs=(512, 32768), requests=30, value=512)
    ctl, values = check_precomputed(box, figures=True, n=2)
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


def test_the_chapter_reads_its_studies_through_the_widget_module():
    # ch10 imports this module as M and calls, for example, M.design_study and M.cost_table
    for name in ("DESIGN_ASSUMPTIONS", "PUBLISHED_RUNS_TABLE", "design_study", "runs_table",
                 "cost_table", "growth_table", "scaling_grid", "small_pool_rows", "map_benchmark_grid"):
        assert hasattr(M, name), name
