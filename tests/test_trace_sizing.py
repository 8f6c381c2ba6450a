"""Chapter 9b's analyses (swiotlb_lib.trace.sizing, swiotlb_lib.trace.recordings) and its
registered experiments.

The analyses report the facts the chapter states, taken from data/realkernel/README.md
(finding 12 and the table of boots) and from boots.jsonl, not from running the model first.
Each registered experiment runs once through the registry, as text and as JSON, with one
value the chapter states.
"""
import json

import numpy as np
import pytest

from swiotlb_lib.debug import REPLAY_MAP_FAILED
from swiotlb_lib.scenarios import get_experiment
from swiotlb_lib.trace import recordings as rec
from swiotlb_lib.trace import sizing as sz


def test_recordings_load_and_match_boots():
    header, rows = sz.overview_rows()
    by_boot = {r[0]: dict(zip(header, r)) for r in rows}
    assert set(by_boot) == set(rec.RECORDINGS)
    assert by_boot["6.12-T1"]["bounced events"] == 5855          # data/realkernel/README.md, boot 6.12-T1
    assert by_boot["6.12-T2"]["kprobe unmaps"] == 7142
    assert by_boot["6.12-T3"]["bounced events"] == 7266
    assert by_boot["6.12-T1"]["kernel hiwater"] == 1553
    assert by_boot["6.12-T3"]["abandoned attempts"] > 0            # failed attempts are traced too


def test_steps_follow_the_markers_and_boots_jsonl():
    header, rows = sz.step_rows("6.12-T1")
    assert len(rows) == 12
    hw = [r[-1] for r in rows]
    assert hw == [w["io_tlb_used_hiwater_after"] for w in rec.boot_record("6.12-T1")["workload"]]
    # a 1 MiB direct request holds 512 data slots plus header, status and indirect table
    assert dict((r[0], r[5]) for r in rows)["direct write bs=1M count=4"] >= 515
    assert sum(r[1] for r in rows) == len(rec.load("6.12-T1").mappings)


def test_direction_only_from_kprobes():
    _, rows = sz.direction_rows("6.12-T2")
    assert [r[0].split()[1] for r in rows] == ["DMA_TO_DEVICE", "DMA_FROM_DEVICE"]
    assert sum(r[1] for r in rows) == 7142
    with pytest.raises(ValueError, match="no kprobe"):
        sz.direction_rows("6.12-T1")


def test_measured_usage_equals_kernel_hiwater_at_every_step():
    header, rows = sz.hiwater_rows("6.12-T2", models=())
    k, sweep = header.index("kernel"), header.index("trace map/unmap")
    assert all(r[k] == r[sweep] for r in rows)
    real = header.index("replay, real")
    assert all(abs(r[k] - r[real]) <= 1 for r in rows)


def test_timer_model_overlaps_sequential_requests_qd1_does_not():
    header, rows = sz.hiwater_rows("6.12-T2", models=("fixed:1500us", "qd:1"))
    first = rows[0]                                  # W 4k: one request at a time in the kernel
    assert first[header.index("replay, fixed:1500us")] > first[header.index("kernel")]
    assert first[header.index("replay, qd:1")] == first[header.index("kernel")]


def test_thin_keeps_peaks_and_empty_moments():
    r, _ = sz.replay_run("6.12-T2", lifetime="real")
    t, u = sz.thin(r.timeline, 200)
    assert len(t) <= 800 and np.all(np.diff(t) >= 0)
    assert u.max() == r.timeline.used.max() == 1549
    assert (u == 0).sum() > 10                       # the gaps between requests survive


def test_failures_are_recorded_with_time_and_use():
    r, fails = sz.replay_run("6.12-T1", "v6.11", 1024)
    assert len(fails) == r.result.failed > 0
    assert all(0 <= used <= 1024 for _, used, _ in fails)
    assert REPLAY_MAP_FAILED.probes == []            # the probe is removed after the replay


def test_advisor_answers_in_kernel_units():
    _, rows = sz.rounding_rows(values=(1000, 1549), cpus=(2, 64))
    assert rows == [(1000, 1024, 8192), (1549, 2048, 8192)]
    _, rows = sz.advice_rows("6.12-T1", 0.02)
    fixed = {r[0]: r for r in rows if "dynamic" not in r[0] and r[0] != "rfc-v1"}
    for r in fixed.values():
        n = int(r[1].split(",")[0])
        assert n & (n - 1) == 0 and r[1].endswith(",force")


def test_model_check_picks_models_that_match_the_hiwater():
    _, rows = sz.model_check_rows("6.12-T1", models=("exp:1500us", "qd:4"))
    exp, qd4 = rows
    assert abs(exp[1] - exp[2]) / exp[2] < 0.02 and qd4[1] > qd4[2] * 1.3


def test_livelock_of_finding_12():
    # data/realkernel/README.md, finding 12: a 1 MiB pool never completes 1 MiB requests; the kernel
    # repeated "used 433 (slots)" with a 163840-byte segment (6.12) and "used 511" with 4 KiB (6.1)
    ll = sz.livelock_summary("6.12-T1")
    assert ll["livelocks"] > 0 and ll["completed"] < ll["requests"]
    assert "can never complete them" in ll["first"]
    _, rows = sz.livelock_rows()
    assert {r[4] for r in rows} >= {"6.12-T5", "6.1-T5"}
    a, = sz.advice("6.12-T3", ("v6.11",), None, None, "full", 1280)
    assert any("1280 KiB need at least 643 slots" in w for w in a.warnings)
    assert dict((r[0], r[1]) for r in sz.min_slots_rows()[1])[1280] == 643


def test_dynamic_kernels_grow_and_keep_their_pools():
    header, rows = sz.profile_rows("6.12-T1", runs=(("v6.6-dynamic", 256), ("v6.11", 1024)))
    dyn, fixed = (dict(zip(header, r)) for r in rows)
    assert dyn["pools added"] > 0 and float(dyn["MiB end"]) > 0.5 and dyn["failed req"].startswith("0/")
    assert not fixed["failed req"].startswith("0/") and fixed["pools added"] == 0


#: One value the chapter states per experiment: (name, words of its text output that hold it;
#: blanks between columns do not count).
EXPERIMENT_FACTS = [
    ("trace-recordings", "6.12-T1  Linux 6.12.117      force            1280            5855"),
    ("trace-sizes", "all                 5855"),
    ("trace-directions", "1 DMA_TO_DEVICE        3650"),
    ("trace-steps", "parallel 4x direct read bs=1M count=4               2200        20  16.03"),
    ("trace-lifetimes", "mapping: map to unmap            7142"),
    ("lifetime-calibration", "real (kprobe unmaps)                        1549"),
    ("hiwater-by-step", "4xR 1M    1549             1549          1549"),
    ("replay-profiles", "v6.11                 1024,force       27/75    pool_full 132"),
    ("failures-by-step", "R 1M                      519                                        4                                0"),
    ("small-pool-trace", "kernel_hiwater    510"),
    ("pool-rounding", "1761       2048    2048    2048    2048     8192"),
    ("trace-advice", "v6.11                     4096,force    8              2048,force      1.3%       1761"),
    ("lifetime-check", "exp:1500us           1549            1553       -0.3%                    2048,force"),
    ("advice-spread", "6.12-T2                    v6.11          real       1549            1549             2048,force"),
    ("livelock-summary", "75 requests, 36 completed, 39 livelocked"),
    ("livelock-replays", "6.12-T1 (fixed:1500us)           433                            163840         4                     6.12-T5"),
    ("request-floor", "1280                      643                    1024"),
    ("pool-run", "15 of 79 requests failed at least once"),
    ("kernel-build", "2048 slots in 2 areas of 1024; a 1280 KiB request holds 643 slots: fits"),
]


def test_every_chapter_experiment_is_checked():
    from swiotlb_lib.scenarios import experiments
    ours = {n for n, e in experiments().items() if e.chapter == "ch09b"}
    assert ours == {n for n, _ in EXPERIMENT_FACTS}


@pytest.mark.parametrize("name,fact", EXPERIMENT_FACTS, ids=[n for n, _ in EXPERIMENT_FACTS])
def test_experiment_runs_from_the_registry(name, fact):
    res = get_experiment(name).run()
    text = str(res)
    assert " ".join(fact.split()) in " ".join(text.split()), text
    d = json.loads(res.to_json())
    assert d["experiment"] == name and d["result"]
