"""Widgets and data of chapters 4-6 (swiotlb_lib.widgets.systems, .patches12) and the
differential replay engine (swiotlb_lib.replay_diff)."""
import dataclasses

import ipywidgets as W
import pytest

from swiotlb_lib import replay_diff as R
from swiotlb_lib.widgets import patches12 as Q
from swiotlb_lib.widgets import systems as S


def _states(box):
    """(control, stack) of a widget made by widgets.common.precomputed."""
    ctl, stack = box.children[0], box.children[1]
    assert isinstance(stack, W.Stack)
    return ctl, stack


@pytest.mark.parametrize("build, n", [
    (S.coco_widget, len(S.COCO_WIDGET_GIB)),
    (S.rpi_widget, len(S.RPI_KEYS)),
    (S.board_widget, len(S.BOARD_CONFIGS)),
    (Q.allocator_widget, len(Q.ALLOC_KEYS)),
    (Q.replay_widget, len(Q.REPLAY_KEYS)),
])
def test_precomputed_widget_has_one_distinct_state_per_option(build, n):
    box = build()
    ctl, stack = _states(box)
    assert len(ctl.options) == n == len(stack.children)
    values = [c.value for c in stack.children]
    assert len(set(values)) == n, "two states render the same HTML"
    assert all("<img src=\"data:image/png;base64," in v and " alt=\"" in v for v in values)
    assert stack.selected_index == ctl.index
    assert "bounce-precomputed" in box._dom_classes


def test_live_widgets_build_and_say_they_need_a_kernel():
    for build in (S.coco_live, Q.serve_live):
        box = build()
        assert "bounce-live" in box._dom_classes
        assert "needs a running Python kernel" in box.children[-1].value


@pytest.mark.parametrize("name", sorted(S.LIVE_CALLBACKS))
def test_systems_live_callbacks(name):
    fn, kw = S.LIVE_CALLBACKS[name]
    out = fn(**kw)
    assert "12 GiB, 8 CPUs: pool 1 GiB" in out
    assert "adjusted to 737MB" in out and "roundup to 1024MB" in out


@pytest.mark.parametrize("name", sorted(Q.LIVE_CALLBACKS))
def test_patches12_live_callbacks(name):
    fn, kw = Q.LIVE_CALLBACKS[name]
    out = fn(**kw)
    assert out.startswith("<b>") and kw["context"] in out
    expected = {"serve": "CMA at 0x", "serve_fragmented": ": none"}[name]
    assert expected in out


# ---------------------------------------------------------------- chapter 4 data -------

def test_coco_sizing_follows_the_six_percent_rule_and_the_rounding():
    rows = {r["label"]: r for r in S.coco_sizing((1, 8, 12, 64))}
    assert rows["1 GiB"]["pool"] == 64 << 20              # clamped up
    assert rows["8 GiB"]["pool"] == 512 << 20             # 491 MB rounded to a power of two
    assert rows["12 GiB"]["pool"] == 1 << 30              # 737 MB rounded up to 1 GiB
    assert rows["64 GiB"]["pool"] == 1 << 30              # clamped down
    assert any("adjusted to 491MB" in ln for ln in rows["8 GiB"]["lines"])
    assert all(r["force"] for r in rows.values())


def test_explicit_default_size_does_not_stop_coco_sizing():
    assert S.coco_boot(8, 8, cmdline="swiotlb=32768")["pool"] == 512 << 20
    assert S.coco_boot(8, 8, cmdline="swiotlb=65536")["pool"] == 128 << 20


def test_rpi_frame_fails_on_a_too_big_segment():
    fr = S.rpi_frame(1920, 1080)
    assert fr["nbytes"] == 1920 * 1080 * 4
    assert sum(n for _, n, _ in fr["segments"]) == fr["nbytes"]
    assert not fr["imported"]
    big = [n for _, n, f in fr["segments"] if f == "too big"]
    assert big and all(n > 256 * 1024 for n in big)
    assert any("swiotlb buffer is full (sz: " in ln for ln in fr["log"])
    assert not any("buffer is full" in ln for ln in fr["pool_lines"])


def test_board_small_pool_avoids_oom():
    default = S.board_run("v6.3", "", 420)
    small = S.board_run("v6.3", "swiotlb=512", 420)
    assert default["oom"] > 0 and small["oom"] == 0
    for r in (default, small):
        assert r["apps"] + r["pool"] + r["free"] + r["other"] == r["total"]


def test_frame_bytes_rejects_unknown_format():
    with pytest.raises(KeyError):
        S.frame_bytes(1920, 1080, "YUYV")


# ---------------------------------------------------------------- chapter 5 data -------

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


# ---------------------------------------------------------------- replay_diff ----------

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
