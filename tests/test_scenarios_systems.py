"""The named systems (swiotlb_lib.scenarios.systems): one test per system.

Each test pins numbers the chapters state and that follow by hand from the system's setup
and the kernel sources, not from running the model first."""
import random

from swiotlb_lib.constants import IO_TLB_DEFAULT_SIZE, KiB, MiB
from swiotlb_lib.debug import SEARCH_AREA, observe
from swiotlb_lib.scenarios.systems import (SCENARIOS, Recorder, ScenarioResult, rpi4_display, rpi4_machine,
                                           run_scenario, size_mix)


def test_rpi4_fullhd_fails_every_import_on_a_fixed_pool():
    # Chapter 4: a FullHD XRGB8888 frame is 1920 * 1080 * 4 = 8 294 400 bytes; its
    # contiguous runs exceed 256 KiB, so on v6.3 every import fails on a too-big segment
    # (dma_map_sgtable stops at the first failure: one failed map per frame) while the
    # memory held stays the 64 MiB default pool.
    r = run_scenario("rpi4-fullhd", kernel="v6.3")
    assert r.extra["frame_bytes"] == 8294400 and r.extra["resolution"] == "1920x1080"
    assert r.extra["imports_ok"] == 0 and r.extra["imports_failed"] == 8
    assert r.failed == r.failures["too_big"] == 8
    assert r.peak_bounce_bytes == r.end_bounce_bytes == IO_TLB_DEFAULT_SIZE


def test_rpi4_4k_imports_every_frame_on_rfc_v1():
    # Chapter 11's scorecard: RFC v1 (swiotlb=dynamic added by default) shows 8 of 8
    # 34 MiB frames, the RFC's own figure.
    r = run_scenario("rpi4-4k", kernel="rfc-v1")
    assert r.cmdline == "swiotlb=dynamic" and r.extra["frame_bytes"] == 34 * MiB
    assert (r.extra["imports_ok"], r.extra["imports_failed"]) == (8, 0)


def test_rpi4_display_drain_gives_every_slot_back():
    # With drain, every frame still on screen is unmapped at the end: no slot stays used.
    m = rpi4_machine("v6.3", "")
    rec = Recorder(m, ScenarioResult("rpi", "v6.3", "", 1))
    shown = rpi4_display(rec, random.Random(1), 1280 * 720 * 2, frames=3, drain=True)
    assert shown["imports_ok"] + shown["imports_failed"] == 3
    assert m.swiotlb.debugfs()["io_tlb_used"] == 0


def test_coco_guest_pool_is_six_percent_rounded_up():
    # Chapter 4: 6 % of an 8 GiB guest is 491 MB, rounded up to 512 MB; the pool is all
    # the memory held on a fixed-pool kernel, and every mapping bounces.
    r = run_scenario("coco-guest", kernel="v6.3", ops=500)
    assert r.peak_bounce_bytes == r.end_bounce_bytes == 512 * MiB
    assert r.extra["every_mapping_bounced"] and r.mapped == r.bounced > 0


def test_size_mix_follows_the_measured_shares():
    # GuoRui Yu's measurement: 58 % of buffers <= 2 KiB, 91 % <= 4 KiB, none above 512 KiB.
    rng = random.Random(5)
    sizes = [size_mix(rng) for _ in range(20000)]
    assert max(sizes) == 512 * KiB
    assert abs(sum(s <= 2 * KiB for s in sizes) / len(sizes) - 0.58) < 0.015
    assert abs(sum(s <= 4 * KiB for s in sizes) / len(sizes) - 0.91) < 0.01


def test_arm_board_oom_fixed_pool_against_a_small_growing_one():
    # Cover letter: the fixed 64 MiB pool costs a 512 MiB board OOM kills; the default
    # given to growing profiles is swiotlb=512 (1 MiB).
    fixed = run_scenario("arm-board-oom", kernel="v6.3")
    assert fixed.cmdline == "" and fixed.peak_bounce_bytes == 64 * MiB and fixed.oom_events > 0
    grow = run_scenario("arm-board-oom", kernel="v6.6-dynamic")
    assert grow.cmdline == "swiotlb=512" and grow.oom_events == 0


def test_nvme_max_mapping_is_252_kib():
    # swiotlb_max_mapping_size(): 128 slots of 2 KiB less min_align_mask 0xfff rounded up
    # to a slot multiple (4 KiB): 256 KiB - 4 KiB; requests split there never exceed 256 KiB.
    r = run_scenario("nvme", kernel="v6.3", ops=200)
    assert r.extra["max_mapping_size"] == 252 * KiB
    assert r.extra["requests_over_256k"] == 0 and r.mapped == r.bounced


def test_storage_bounces_every_buffer_of_every_request():
    # swiotlb=force: every buffer bounces; each virtio-blk request maps a header, at least
    # one data segment, a status byte and an indirect table (data/realkernel/README.md,
    # finding 13), so 50 requests make at least 200 mappings.
    r = run_scenario("storage", kernel="v6.3", requests=50)
    assert r.cmdline == "swiotlb=force" and r.extra["requests_requeued"] == 0
    assert r.attempted >= 4 * 50 and r.bounced == r.mapped == r.attempted
    assert r.peak_bounce_bytes == IO_TLB_DEFAULT_SIZE


def test_every_named_system_is_listed():
    assert set(SCENARIOS) == {"rpi4-fullhd", "rpi4-4k", "coco-guest", "arm-board-oom", "nvme", "storage"}


def test_run_scenario_computes_a_run_once_and_hands_out_copies():
    # A seeded run asked for twice (a table, then a widget) is computed once per process:
    # the second call returns the same numbers (rpi4-fullhd on v6.3: 8 frames, each import
    # fails on a too-big segment, as in the first test) in a new object, so a caller that
    # changes its copy does not change what the next caller gets.  may_sleep=True is the
    # scenario's default, so asking for it by value is the same run.
    first = run_scenario("rpi4-fullhd", kernel="v6.3", seed=1)
    first.extra["imports_failed"] = -1
    first.failures["too_big"] = -1
    again = run_scenario("rpi4-fullhd", kernel="v6.3", seed=1, may_sleep=True)
    assert again is not first
    assert again.extra["imports_failed"] == 8 and again.failures["too_big"] == 8


def test_run_scenario_runs_again_for_a_probe_or_a_progress_callback():
    # With a probe on a hook the run must really happen, or the probe would see nothing: a
    # cached answer fires no event.  The run is cached first, then asked for again under a
    # probe on SEARCH_AREA: the vc4 imports of rpi4-fullhd map segments (each run of pages is
    # at least 4 pages, 16 KiB, far under the 256 KiB limit), so some area searches reach it.
    # A progress callback is called once per frame (rpi4_display's tick(frame, frames)):
    # (0, 8) to (7, 8) for the 8 frames, then (8, 8) from Recorder.finish().
    run_scenario("rpi4-fullhd", kernel="v6.3")
    seen = []
    with observe(SEARCH_AREA, seen.append):
        r = run_scenario("rpi4-fullhd", kernel="v6.3")
    assert seen and r.extra["imports_failed"] == 8
    calls = []
    run_scenario("rpi4-fullhd", kernel="v6.3", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(f, 8) for f in range(9)]
