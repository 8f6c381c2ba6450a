"""The merged dynamic design on Linux 6.12.117 (swiotlb_lib.scenarios.dynamic612): the
kernel's pools read from data/realkernel-dynamic/ and the experiments of the chapter "What was
merged in 6.6".  Expected values come from data/realkernel-dynamic/README.md ("Results") or
from trace lines worked by hand, as each comment says."""
import json

from conftest import check_precomputed
from swiotlb_lib.scenarios import dynamic612 as s
from swiotlb_lib.scenarios import get_experiment


def test_kernel_pools_match_the_readme():
    # README "Results": D2 added 4 worker pools (0x3f00000, 0x4400000, 0x4600000, 0x4500000, in
    # that order) and 46 transient pools, 2 of 1 slot, 38 of 2, 1 of 4, 1 of 84, 4 of 128; no
    # map_ret carried the error value; every transient pool was freed.
    k = s.kernel_pools("D2")
    assert [start for _, start, _ in k["worker"]] == [0x3f00000, 0x4400000, 0x4600000, 0x4500000]
    sizes = sorted(n for _, _, n in k["transient"])
    assert sizes == [1] * 2 + [2] * 38 + [4] + [84] + [128] * 4
    assert k["failures"] == 0
    assert len(k["transient_freed"]) == 46
    assert s.kernel_hiwater("D2") == 2065            # README table, io_tlb_used_hiwater


def test_transient_bytes_of_d3():
    # README: D3's two transient pools have 122 and 128 slots; in all (122 + 128) * 2 KiB = 500 KiB
    tb = s.transient_bytes("D3")
    assert tb["total"] == 500 * 1024
    assert tb["live_peak"] <= tb["total"]


def test_bad_boot_is_one_line_error():
    try:
        s.kernel_pools("D9")
    except ValueError as e:
        assert "boot" in str(e) and "D1" in str(e)
    else:
        raise AssertionError("D9 accepted")


def test_worker_delay_experiment():
    # the first D2 growth by hand: transient apool at 8.954346 s, worker apool_ret at
    # 8.963368 s (README finding 1) -> 9.022 ms; the chapter states the median, 8.762 ms
    r = get_experiment("dynamic612-worker-delay").run()
    assert ("D2", 9.022) in r.value["delays"]
    assert len(r.value["delays"]) == 8               # 2 + 4 + 2 worker pools in D1-D3
    assert r.value["median_ms"] == 8.762
    assert "median 8.762 ms" in str(r)
    assert json.loads(r.to_json())["result"]["median_ms"] == 8.762


def test_side_by_side_experiment():
    # the chapter states: on D2 the kernel added 4 worker and 46 transient pools (README), and
    # the model of the stock kernel livelocks on the same workload
    r = get_experiment("dynamic612-side-by-side").run()
    assert len(r.value["kernel"]["worker"]) == 4 and len(r.value["kernel"]["transient"]) == 46
    assert r.value["stock"]["livelocked_requests"] > 0
    assert "never finished" in str(r)
    assert json.loads(r.to_json())["result"]["boot"] == "D2"


def test_boots_experiment():
    # D4 (swiotlb=force, 32768 slots) never grew: README table, worker pools none, hiwater 2061
    r = get_experiment("dynamic612-boots").run()
    d4 = [row for row in r.value["rows"] if row[0] == "D4" and row[3] == "kernel"]
    assert d4 == [("D4", "force", 1280, "kernel", 0, 0, 0, 2061, "", "")]
    assert "D4" in str(r) and json.loads(r.to_json())["experiment"] == "dynamic612-boots"


def test_delay_sweep_experiment():
    # with no delay the worker's pool is there before the next mapping: one transient pool
    # per growth, so transient pools == worker pools (the chapter's first sweep row)
    r = get_experiment("dynamic612-delay-sweep").run()
    first = r.value["rows"][0]
    assert first[0] == 0.0 and first[2] == first[1]
    assert json.loads(r.to_json())["result"]["kernel"] == [4, 46]


def test_default_worker_delay_given_by_value_is_the_same_replay():
    # replay() sets the worker delay to Grower.WORKER_DELAY_TCG when it is given None, so
    # the sweep's row at that delay (8.762 ms) and the side-by-side's "own worker" run are one
    # replay: same pools, failures and timeline.  The row of the sweep at 8.762 ms shows
    # the pools of side_by_side("D2")["own"].
    from swiotlb_lib.dynamic import Grower
    by_value = s.model_run("D2", False, worker_delay=Grower.WORKER_DELAY_TCG)
    default = s.model_run("D2", False)
    assert by_value == default and by_value is not default
    sweep = s.delay_sweep("D2")
    row = next(r for r in sweep["rows"] if r[0] == 8.762)
    assert row[1:] == (default["pools_added"], default["transient_pools"], default["failed"])


def test_model_run_returns_a_copy_the_caller_may_change():
    # model_run() caches each replay and hands out copies: emptying the lists of one answer
    # and changing a count must leave the next answer as the first was (same replay).
    first = s.model_run("D2", False)
    keep = {k: list(v) if isinstance(v, list) else v for k, v in first.items()}
    for v in first.values():
        if isinstance(v, list):
            v.clear()
    first["pools_added"] = -1
    again = s.model_run("D2", False)
    assert again == keep and len(again["t"]) > 0 and again["pools_added"] >= 0


def test_boot_picker_precomputed():
    from swiotlb_lib.widgets import dynamic612 as w
    box = w.boot_picker(("D3", "D4"))
    ctl, states = check_precomputed(box, 2, figures=True)
    assert "D3 (swiotlb=1024,force)" in states[0]
