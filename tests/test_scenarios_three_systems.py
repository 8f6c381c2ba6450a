"""Experiments of chapter 4 (swiotlb_lib.scenarios.three_systems): the confidential
guest's sizing, the Raspberry Pi 4 display buffer, the small board; each registered
experiment run once through the registry (text and JSON)."""
import json

import pytest

from swiotlb_lib.scenarios import get_experiment
from swiotlb_lib.scenarios import three_systems as S


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


def test_coco_pool_without_a_boot():
    p = S.coco_pool(12.0, 8)
    assert p["pool"] == 1 << 30
    assert any("adjusted to 737MB" in ln for ln in p["lines"])


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


# -- the registered experiments ------------------------------------------------------------

@pytest.mark.parametrize("name,expected", [
    ("coco-sizing", "  12 GiB         737.2 MiB        737MB      1024MB     1 GiB   8.3%"),
    ("coco-need", "burst depth  512: peak  4460 slots (8.7 MiB), failed 0"),
    ("coco-ram-need", "  32G            1 GiB      5.0 MiB       0.49%       0"),
    ("coco-small-pool", "v6.6-dynamic"),
    ("frame-sizes", "3840x2160   XRGB8888    33177600  31.64      126.6"),
    ("rpi-frame", "import FAILED: vc4 cannot display the buffer"),
    ("rpi-segments", "too big to bounce"),
    ("board-oom", "v6.3, swiotlb=512 (1 MiB)"),
])
def test_registered_experiment_runs(name, expected):
    r = get_experiment(name).run()
    assert expected in str(r)
    assert json.loads(r.to_json())["experiment"] == name


def test_board_oom_values():
    grid = dict(get_experiment("board-oom").run().value)
    assert grid["v6.3, default (64 MiB)"][1]["oom"] > 0          # apps want 420 MiB
    assert grid["v6.3, swiotlb=512 (1 MiB)"][1]["oom"] == 0


def test_rpi_screen_freezes_on_the_frames_imported():
    # RFC v1 imports both 34 MiB buffers; every segment lies above vc4's 1 GiB reach on a
    # 4 GiB Pi, so every segment bounces.  The bounce buffers are filled once, at import
    # (frames 1 and 2); frames 3..8 go to the original pages only, so the screen shows
    # frame 1, 2, 1, 2, ... : 2 of 8 frames are the ones just rendered.
    r = S.rpi_screen("rfc-v1")
    assert (r["imports_ok"], r["imports_failed"], r["direct_segments"]) == (2, 0, 0)
    assert r["shown"] == (1, 2, 1, 2, 1, 2, 1, 2) and r["frames_shown"] == 2
    # a dma_sync_sg_for_device() before each scan-out (what DRM does not do) shows all 8
    assert S.rpi_screen("rfc-v1", sync=True)["frames_shown"] == 8


def test_rpi_screen_shows_nothing_when_the_import_fails():
    # v6.3: a segment over 256 KiB cannot bounce, so neither buffer imports: nothing shown
    r = S.rpi_screen("v6.3")
    assert r["shown"] == (None,) * 8 and r["frames_shown"] == 0 and r["imports_failed"] == 2


def test_rpi_screen_rejects_bad_counts():
    with pytest.raises(ValueError, match="frames, buffers"):
        S.rpi_screen("rfc-v1", frames=0)


def test_experiment_rpi_screen():
    res = get_experiment("rpi-screen").run()
    assert json.loads(res.to_json())["experiment"] == "rpi-screen"
    assert "frames shown: 2 of 8" in str(res)
