"""Experiments of chapters 7, 8 and 9 (swiotlb_lib.scenarios.dynamic).

The experiments report the facts the chapters state (from the patches and the kernel
sources, not from running the model first); each registered experiment runs once through
the registry, as ``python -m swiotlb_lib experiment NAME`` runs it."""
import json

import pytest

from swiotlb_lib.scenarios import dynamic as sd
from swiotlb_lib.scenarios import get_experiment


def test_footprint_default_state_shows_the_point():
    # storage under load: the small fixed pool fails maps, the RFC's small pool does not
    runs = sd.footprint_state("storage", "heavy")
    small_fixed, small_rfc = runs[1], runs[3]
    assert small_fixed["failed"] > 0 and small_rfc["failed"] == 0
    assert small_rfc["peak"] < runs[0]["peak"]


def test_where_does_it_go_follows_the_rfc():
    # 0334a54332ab...@huawei.com: sub-page requests use the fixed slots; others get pages
    assert sd.where_does_it_go(2048, False, "rfc-v1")["outcome"] == "fixed slots"
    assert sd.where_does_it_go(1 << 20, False, "rfc-v1")["outcome"] == "dynamic (buddy)"
    # v6.3-rc: anything above 256 KiB fails
    assert sd.where_does_it_go(1 << 20, False, "v6.3rc")["outcome"] == "failed"
    with pytest.raises(ValueError, match="size"):
        sd.where_does_it_go(0)


def test_parser_pair_reports_mainline_silence_and_rfc_option_list():
    pair = sd.parse_pair("swiotlb=force,dynamic")
    assert not pair["v6.3rc"]["force"] and pair["v6.3rc"]["warnings"]
    assert pair["rfc-v1"]["force"] and pair["rfc-v1"]["dynamic"]
    bogus = sd.parse_one("swiotlb=force,bogus", "rfc-v1")
    assert "software IO TLB: Invalid swiotlb option: bogus" in bogus["parser_said"]
    assert all(r[1] == "same" for r in sd.compat_rows())


def test_lookup_costs_show_who_pays():
    nvme = sd.lookup_costs("nvme", ops=20)
    # applied but off: identical to the base; on: one locked tree lookup per unmap/sync
    assert nvme["RFC v1, dynamic off"] == nvme["v6.3-rc"]
    on = nvme["RFC v1, swiotlb=dynamic"]
    assert on["tree_lookups"] == on["unmap_sync_lookups"] == 40
    assert nvme["v6.6 dynamic"]["lookup_steps"] == 0          # dma_uses_io_tlb shortcut


def test_merged_design_facts():
    # 6.6: a failed >256 KiB request kicks the worker and adds a 4 MiB pool; 6.11 refuses early
    g66, g611 = sd.oversize_growth("v6.6-dynamic", 2), sd.oversize_growth("v6.11-dynamic", 2)
    assert g66[-1][2] == 2 and g66[-1][1] - g66[0][1] == 8
    assert g611[-1][2] == 0 and g611[-1][3] == 0
    # worker pools: 4 MiB cap, at most 16 areas (limit_nareas), never freed
    w = sd.worker_demo(cpus=32)
    assert all(a == (2048, 16) for a in w["added"]) and w["pools_after_unmap"] == 1 + len(w["added"])
    # transient pool: exactly the request's slots, gone after unmap
    steps = sd.transient_demo()
    assert steps[2][1]["io_tlb_transient_nslabs"] == 12 and steps[3][1]["io_tlb_transient_nslabs"] == 0
    # CVE-2023-52790: without the tail cap the buffer runs past a 2-slot transient pool
    assert sd.tail_bug("v6.6-dynamic")["overrun"] == 2048
    assert not sd.tail_bug("v6.6-dynamic", fixed=True)["mapped"]


def test_search_order_area_major_in_611():
    o66, o611 = sd.search_order("v6.6-dynamic"), sd.search_order("v6.11-dynamic")
    assert [p for p, _ in o66[:4]] == ["added 2"] * 4
    assert [p for p, _ in o611[:3]] == ["added 2", "added 1", "boot"]
    assert o66[-1][0] == o611[-1][0] == "transient"


# -- every registered experiment, through the registry ---------------------------------

def _run(name):
    exp = get_experiment(name)
    res = exp.run()
    text = str(res)
    assert text and json.loads(res.to_json())["experiment"] == name
    return res.value, text


def test_experiment_footprint():
    # chapter 7's table: the 1 MiB fixed pool fails 286 of 749 storage maps under load
    runs, text = _run("footprint")
    assert runs[1]["failed"] == 286 and "286/749" in text


@pytest.mark.parametrize("name, tree_lookups", [("lookup-costs-nvme", 400), ("lookup-costs-pci32", 1000)])
def test_experiment_lookup_costs(name, tree_lookups):
    # chapter 7: with swiotlb=dynamic every one of the 400 unmap/sync calls takes the
    # tree lookup; a bouncing device pays 1000 (map, sync and unmap of 200 rounds)
    costs, _ = _run(name)
    assert costs["RFC v1, swiotlb=dynamic"]["tree_lookups"] == tree_lookups


def test_experiment_tree_levels():
    # a maple-tree leaf holds 16 entries: 17 live buffers need a second level, 257 a third
    levels, text = _run("tree-levels")
    assert dict(levels)[16] == 1 and dict(levels)[17] == 2 and dict(levels)[257] == 3
    assert "17 live buffers -> 2 tree level(s) per lookup" in text


def test_experiment_where_table():
    # 4 KiB is two 2 KiB slots on v6.3-rc, an order-0 page on RFC v1
    rows, _ = _run("where-table")
    assert rows[2][:3] == ["4 KiB", "2 fixed slot(s)", "buddy, order 0"]


def test_experiment_where_does_it_go():
    # 34 MiB with DMA_ATTR_MAY_SLEEP on RFC v1: a CMA allocation (patches 1/4 and 3/4)
    r, _ = _run("where-does-it-go")
    assert r["outcome"] == "dynamic (CMA)"


def test_experiment_parse_table():
    # chapter 11: 4 of the 8 command lines lose options on mainline without a word
    rows, _ = _run("parse-table")
    assert len({r[0] for r in rows if r[1] == "v6.3-rc" and "(silent) ignored" in r[-1]}) == 4


def test_experiment_parse_compat():
    rows, _ = _run("parse-compat")
    assert [r[1:] for r in rows] == [["same", "nothing"]] * len(sd.MAINLINE_FORMS)


def test_experiment_parse_later():
    # mainline drops "force,dynamic" as a whole, so force is off there
    rows, _ = _run("parse-later")
    assert rows[0][:2] == ["v6.3-rc", "no"] and rows[1][:2] == ["RFC v1", "yes"]


def test_experiment_parse_cmdline():
    # chapter 8: noforce means no boot pool, and then no dynamic buffers either
    r, _ = _run("parse-cmdline")
    assert r["noforce"] and r["dynamic"] and r["pool_slots"] == 0 and not r["dynamic_on"]


def test_experiment_systems_by_kernel():
    systems, text = _run("systems-by-kernel")
    rfc = next(r for r in systems["rpi4-4k"] if r.kernel == "rfc-v1")
    assert rfc.extra["imports_ok"] == 8 and text.startswith("== rpi4-4k")


def test_experiment_oversize_growth():
    # v6.6: each failed 512 KiB map kicks the worker, which adds a 4 MiB pool: +24 MiB after 6
    rows, _ = _run("oversize-growth")
    assert rows[-1][2] == 6 and rows[-1][1] - rows[0][1] == 24


def test_experiment_transient_pool():
    # one 24 KiB map with the pool full: a transient pool of exactly 12 slots
    steps, _ = _run("transient-pool")
    assert steps[2][1]["io_tlb_transient_nslabs"] == 12


def test_experiment_growth_worker():
    # unfragmented memory: three 4 MiB pools of 16 areas (2048 slots each)
    rows, _ = _run("growth-worker")
    assert rows[0][2] == "2048/16, 2048/16, 2048/16"


def test_experiment_tail_bug():
    r, text = _run("tail-bug")
    assert r["overrun"] == 2048 and "2048 bytes past the pool" in text


def test_experiment_tail_bug_fixed():
    r, _ = _run("tail-bug-fixed")
    assert not r["mapped"] and r["cause"] == "pool_full"


def test_experiment_search_order():
    # 6.11 walks area by area across the pools, newest pool first, then a transient pool
    _, text = _run("search-order")
    assert text == "21 11 B1 22 12 B2 23 13 B3 20 10 B0 t0"


def test_every_chapter_7_to_9_experiment_is_registered():
    from swiotlb_lib.scenarios import experiments
    names = {n for n, e in experiments().items() if e.chapter in ("ch07", "ch08", "ch09")}
    assert names >= {"footprint", "lookup-costs-nvme", "lookup-costs-pci32", "tree-levels", "where-table",
                     "where-does-it-go", "parse-table", "parse-compat", "parse-later", "parse-cmdline",
                     "systems-by-kernel", "oversize-growth", "transient-pool", "growth-worker", "tail-bug",
                     "tail-bug-fixed", "search-order"}
