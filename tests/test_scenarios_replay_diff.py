"""The differential replay engine (swiotlb_lib.scenarios.replay_diff): pure operation
streams, deterministic runs, the verdict, the golden vectors, the boot comparison."""
import dataclasses

import pytest

from swiotlb_lib.scenarios import replay_diff as R


def test_generate_ops_is_pure_and_prefix_stable():
    a = R.generate_ops(7, 400)
    assert a == R.generate_ops(7, 400)
    assert R.generate_ops(7, 150) == a[:150]
    assert a != R.generate_ops(8, 400)
    kinds = {o["op"] for o in a}
    assert {"map", "unmap", "sync_cpu", "sync_dev", "dev_write"} <= kinds


@pytest.mark.parametrize("seed, length", [(-1, 10), (1, 0), (1.5, 10), (1, 10**7)])
def test_generate_ops_rejects_bad_arguments(seed, length):
    with pytest.raises(ValueError):
        R.generate_ops(seed, length)


def test_replay_same_pair_identical_and_control_differs():
    same = R.diff_replay(11, 600)
    assert same.identical and same.first is None and same.boot_identical
    assert same.list_hash_a == same.list_hash_b
    ctl = R.diff_replay(11, 600, kernel_b="v6.3")
    assert not ctl.identical and ctl.first is not None
    assert ctl.first.op["op"] == "map" and ctl.first.op["size"] >= 4096
    assert "result" in ctl.first.fields or "areas" in ctl.first.fields
    text = str(ctl)
    assert "VERDICT: different" in text and "rule on v6.3rc" in text
    assert "VERDICT: identical" in str(same)


def test_replay_is_deterministic_and_records_bytes():
    ops = R.generate_ops(5, 300)
    a, b = R.run_ops("v6.3rc", ops), R.run_ops("v6.3rc", ops)
    assert a.records == b.records and a.list_hashes == b.list_hashes
    assert any(r.bytes for r in a.records if r.op in ("sync_cpu", "unmap"))


def test_compare_detects_a_changed_record():
    ops = R.generate_ops(3, 50)
    a, b = R.run_ops("v6.3rc", ops), R.run_ops("v6.3rc", ops)
    b.records[20] = dataclasses.replace(b.records[20], bytes="0000000000000000")
    v = R.compare(a, b, ops, 3)
    assert not v.identical and v.first.index == 20 and set(v.first.fields) == {"bytes"}
    assert v.differing_ops == 1


def test_golden_check_and_missing_data(tmp_path):
    res = R.golden_check("vectors-v6.3rc-handmade.jsonl", kernel="rfc-v1")
    assert res.checked == res.matched == 368
    ctl = R.golden_check("vectors-v6.3rc-handmade.jsonl", kernel="v6.3")
    assert ctl.checked - ctl.matched == 34
    with pytest.raises(FileNotFoundError, match="vectors-v6.3rc-handmade.jsonl"):
        R.golden_check("vectors-v6.3rc-handmade.jsonl", directory=tmp_path)


def test_compare_boot_shows_the_rfc_parser_difference():
    lines = R.compare_boot("swiotlb=1024,force,foo")
    assert "force_bounce False" in lines[0] and "Invalid swiotlb option: foo" in lines[1]
