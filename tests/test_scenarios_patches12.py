"""Experiments of chapters 5 and 6 (swiotlb_lib.scenarios.patches12): who allocates the
RFC's dynamic bounce buffers, the GFP masks, the before/after runs, the replay verdicts;
each registered experiment run once through the registry (text and JSON)."""
import json

import pytest

from swiotlb_lib.scenarios import get_experiment
from swiotlb_lib.scenarios import patches12 as Q


def test_serve_answers():
    assert Q.serve("may sleep (GFP_KERNEL)", 8 << 20, "256M", "fresh boot")["kind"] == "CMA"
    assert Q.serve("atomic (GFP_NOWAIT)", 8 << 20, "256M", "fresh boot")["kind"] == "none"
    r = Q.serve("atomic (GFP_NOWAIT)", 4 << 20, "0", "fresh boot")
    assert r["kind"] == "buddy" and r["order"] == 10
    assert Q.serve("atomic (GFP_NOWAIT)", 4096, "0", "page cache full")["kind"] == "none"
    r = Q.serve("may sleep (GFP_KERNEL)", 4096, "0", "page cache full")
    assert r["kind"] == "buddy + reclaim" and r["reclaimed"] > 0
    assert Q.serve("atomic, confidential guest", 64 << 10)["kind"] == "atomic pool"


@pytest.mark.parametrize("kw", [dict(context="sometimes"), dict(nbytes=0), dict(cma="1G"),
                                dict(state="haunted")])
def test_serve_rejects_bad_arguments(kw):
    args = dict(context="atomic (GFP_NOWAIT)", nbytes=4096, cma="0", state="fresh boot")
    args.update(kw)
    with pytest.raises(ValueError, match=next(iter(kw))):
        Q.serve(**args)


def test_gfp_table_marks_noio():
    row = next(ln for ln in Q.gfp_table().splitlines() if ln.startswith("GFP_NOIO"))
    assert row.split()[2:] == ["yes", "no", "no", "no"]


# -- the registered experiments ------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("gfp-masks", "GFP_NOIO"),
    ("allocator-grid", "CMA"),
    ("atomic-pools", "atomic pools of the confidential guest"),
    ("may-sleep-imports", "imports"),
    # 4K with MAY_SLEEP: both buffers import (2 of 2), the screen shows 2 of 8 frames
    ("may-sleep-screen", "4K, RFC, MAY_SLEEP           2 of 2  2 of 8  ok ok f1 f2 f1 f2 f1 f2"),
    ("replay-diff", "VERDICT: identical -- all 3000 operations agree"),
    ("golden-check", "368 of 368 expected results reproduced"),
    ("boot-compare", "Invalid swiotlb option: foo"),
])
def test_registered_experiment_runs(name, expected):
    r = get_experiment(name).run()
    assert expected in str(r)
    assert json.loads(r.to_json())["experiment"] == name


def test_allocator_grid_values():
    grid = dict(get_experiment("allocator-grid").run().value)
    assert grid["may sleep (GFP_KERNEL)"][Q.SIZES.index(8 << 20)]["kind"] == "CMA"
    assert get_experiment("replay-diff").run().value[1].identical is False     # the control differs
