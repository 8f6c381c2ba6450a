"""Experiments of chapter 11 (swiotlb_lib.scenarios.review): the claims and the scorecard.

Each registered experiment runs once through the registry, with one assertion on a value
the chapter states."""
import json

import pytest

from swiotlb_lib.scenarios import get_experiment
from swiotlb_lib.scenarios import review as rv


def _run(name):
    res = get_experiment(name).run()
    text = str(res)
    assert text and json.loads(res.to_json())["experiment"] == name
    return res.value, text


def test_scorecard_cells_complete():
    cells, rows, cols = rv.scorecard()
    assert set(cells) == {(r, c) for r in rows for c in cols}
    # no kernel shows every frame: the RFC imports, but the screen then stays on old frames
    assert {cells[(rows[0], c)][0] for c in cols} == {"bad"}


def test_experiment_scorecard():
    # 8 frames into 2 reused buffers, imported once with SKIP_CPU_SYNC and never synced:
    # the RFC's screen shows frames 1 and 2 when they are new, then those two again (2 of 8);
    # the other kernels cannot import a 34 MiB buffer at all (0 of 8).
    (cells, rows, _), text = _run("scorecard")
    assert cells[(rows[0], "RFC v1")] == ("bad", "2 of 8\nthen stale")
    assert cells[(rows[0], "v6.3")] == ("bad", "0 of 8")
    assert text.startswith("RPi 4: 4K frames shown")
    # one value per number, as chapter 9 prints them (two decimals below 10 MiB)
    assert cells[(rows[1], "RFC v1")][1] == "17 failed\n4.97 MiB held"
    assert cells[(rows[2], "RFC v1")][1] == "0 OOM\n1.75 MiB held"


def test_experiment_claims():
    rows, text = _run("claims")
    assert [r[0] for r in rows] == [c[1] for c in rv.CLAIMS]
    assert "RFC v1 8/8" in rows[0][1] and "RFC v1 2/8" in rows[0][1] and text.startswith("* ")
    assert "RFC v1 17 failed" in rows[1][1] and "1.75 MiB held" in rows[2][1]


@pytest.mark.parametrize("key", [c[0] for c in rv.CLAIMS])
def test_experiment_claim_evidence(key):
    ev, _ = _run(f"claim-{key}")
    if key == "rpi":            # 4K frames: only RFC v1 imports them, and its screen shows 2 of 8
        assert [r[2] for r in ev["rows"] if r[0] == "rpi4-4k"] == [0, 8, 0, 0]
        assert "RFC v1 2 of 8" in ev["note"]
    if key == "coco":           # the 6 % pool of an 8 GiB guest is 512 MiB
        assert {r[2] for r in ev["rows"] if r[1].startswith("v6.3-rc, 512")} == {512}
    if key == "oom":            # the fixed 64 MiB pool costs OOM kills; the small pools do not
        assert ev["rows"][0][3] > 0 and all(r[3] == 0 for r in ev["rows"][1:])
    if key == "off":            # applied but off: identical to the base
        assert "identical" in ev["note"]
    if key == "cost":           # one locked tree lookup per unmap/sync call of a non-bouncing device
        nvme_rfc = next(r for r in ev["rows"] if r[0] == "nvme" and r[1] == "RFC v1, swiotlb=dynamic")
        assert nvme_rfc[2] == nvme_rfc[3] == 400


def test_experiment_may_sleep_frames():
    # RFC patch 1/4: without MAY_SLEEP no CMA, so 4K frames with segments over 4 MiB fail
    rows, _ = _run("may-sleep-frames")
    by = {(r[0], r[1]): r for r in rows}
    assert by[("rpi4-4k", "yes")][2] == "8/8" and by[("rpi4-4k", "no")][3] > 0
    # imports succeed, the screen does not follow: 2 reused buffers, first frame of each only
    assert by[("rpi4-4k", "yes")][6] == "2/8"
