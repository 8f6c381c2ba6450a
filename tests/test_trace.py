"""Sizing SWIOTLB from a real trace (swiotlb_lib.trace and its commands).

The recorded traces are in data/realkernel/ (Linux 6.12.117 and 6.1.192 under QEMU); their
event counts come from boots.jsonl and data/realkernel/README.md.
"""
import argparse
import json
import pathlib
import re

import numpy as np
import pytest

from swiotlb_lib import trace as T
from swiotlb_lib.boot import Machine
from swiotlb_lib.evidence import data_path
from swiotlb_lib.cli import main
from swiotlb_lib.cli.traces import register

DATA = data_path("realkernel")
T1 = DATA / "trace-force-2G.txt"
T2 = DATA / "trace-force-2G-kprobes.txt"
T3 = DATA / "trace-512-force-2G.txt"
T61 = DATA / "trace-force-2G-linux6.1.txt"
PHASES = ["direct write bs=4k count=4", "direct read bs=4k count=4", "direct write bs=64k count=4",
          "direct read bs=64k count=4", "direct write bs=256k count=4", "direct read bs=256k count=4",
          "direct write bs=1M count=4", "direct read bs=1M count=4", "buffered read bs=1M count=2 skip=8",
          "buffered write bs=1M count=2 seek=12 conv=fsync", "parallel 4x direct write bs=1M count=4",
          "parallel 4x direct read bs=1M count=4", "workload end"]


def boot(name):
    for line in (DATA / "boots.jsonl").read_text().splitlines():
        b = json.loads(line)
        if b["boot"] == name:
            return b
    raise KeyError(name)


@pytest.fixture(scope="module")
def t1():
    return T.read_trace(T1)


@pytest.fixture(scope="module")
def t2():
    return T.read_trace(T2)


@pytest.fixture(scope="module")
def t3():
    return T.read_trace(T3)


def line(t, cpu, size, addr=0x1000000, task="dd-100", flag="FORCE", mask="ffffffffffffffff"):
    return (f"{task:>16}     [{cpu:03d}] d..1. {t:12.6f}: swiotlb_bounced: dev_name: 0000:00:02.0 "
            f"dma_mask={mask} dev_addr={addr:x} size={size} {flag}")


def lone_trace(times, size=4096):
    """Lone 4 KiB mappings (no request shape) on CPU 0 at the given times."""
    return T.parse_trace([line(t, 0, size, 0x1000000 + k * 0x10000) for k, t in enumerate(times)])


# ------------------------------------------------------------------------- readers ----

@pytest.mark.parametrize("path,name", [(T1, "6.12-T1"), (T2, "6.12-T2"), (T61, "6.1-T1")])
def test_real_traces_counts_match_boots(path, name):
    tr = T.read_trace(path)
    want = boot(name)["trace_counts"]
    for key, n in want.items():
        assert tr.counts[key] == n, key
    assert not tr.errors and tr.format == "ftrace"
    assert [m[2] for m in tr.markers] == PHASES
    assert tr.header["entries_in_buffer"] == want["total_lines"] - 12     # 12 '#' header lines
    assert tr.cpus == 2 and tr.devices == ["0000:00:02.0"] and tr.force_seen
    assert not tr.warnings


def test_512_trace_counts_match_readme(t3):
    # data/realkernel/README.md, boot 6.12-T3 (swiotlb=512,force): 7266 bounced events, 13
    # markers, 7291 lines in the file
    assert t3.counts["swiotlb_bounced"] == 7266 and t3.counts["markers"] == 13
    assert t3.counts["total_lines"] == 7291 and not t3.errors


def test_kprobe_records_joined(t2):
    b = boot("6.12-T2")["pool_from_kprobe"]
    assert all(m.tlb is not None and b["start"] <= m.tlb < b["end"] for m in t2.mappings)
    assert all(m.unmap_time is not None and m.unmap_time >= m.time for m in t2.mappings)
    assert {m.dir for m in t2.mappings} == {1, 2}
    assert all(m.force == "FORCE" for m in t2.mappings)
    # data/realkernel/README.md, finding 14: every mapping of at least 4 KiB got a page-aligned slot
    assert all(m.tlb % 4096 == 0 for m in t2.mappings if m.size >= 4096)


def _trace_cmd(text):
    """The same events as ``trace-cmd report`` prints them (no flags column, padded names)."""
    out = ["version = 6", "CPU 3 is empty", "cpus=2"]
    for ln in text.splitlines():
        m = re.match(r"^(\s*\S.*?-\d+)\s+\[(\d+)\]\s+\S+\s+(\d+\.\d+): (\w+): (.*)$", ln)
        if m:
            out.append(f"{m.group(1):>20} [{m.group(2)}] {m.group(3)}: {m.group(4) + ':':<20} {m.group(5)}")
    return out


def _latency(text):
    """``trace-cmd report -l``: CPU number and flags in one column."""
    out = []
    for ln in text.splitlines():
        m = re.match(r"^(\s*\S.*?-\d+)\s+\[(\d+)\]\s+(\S+)\s+(\d+\.\d+): (\w+): (.*)$", ln)
        out.append(f"{m.group(1):>20} {int(m.group(2))}{m.group(3)} {m.group(4)}: {m.group(5)}: {m.group(6)}"
                   if m else ln)
    return out


def test_trace_cmd_report_formats_read_the_same(t2):
    text = T2.read_text()
    key = lambda t: [(m.time, m.cpu, m.orig, m.size, m.dir, m.tlb, m.unmap_time) for m in t.mappings]  # noqa: E731
    tc = T.parse_trace(_trace_cmd(text))
    assert tc.format == "trace-cmd" and not tc.errors and tc.header["cpus"] == 2
    assert key(tc) == key(t2)
    lat = T.parse_trace(_latency(text))
    assert not lat.errors and key(lat) == key(t2)


def test_old_enum_form_and_flags():
    tr = T.parse_trace([line(1.0, 0, 64, flag="NORMAL"), line(1.1, 0, 64, flag="NO_FORCE"),
                        line(1.2, 0, 64, flag="swiotlb_force=SWIOTLB_FORCE"),
                        line(1.3, 0, 64, flag="swiotlb_force=SWIOTLB_NO_FORCE"),
                        line(1.4, 0, 64, flag="swiotlb_force=0"), line(1.5, 0, 64, flag="SWIOTLB_NORMAL")])
    assert not tr.errors
    assert [m.force for m in tr.mappings] == ["NORMAL", "NO_FORCE", "FORCE", "NO_FORCE", "NORMAL", "NORMAL"]
    bad = T.parse_trace([line(1.0, 0, 64, flag="1")])      # a bare number is not a flag
    assert bad.errors[0].line == 1


def test_malformed_lines_reported_with_numbers_and_reasons():
    lines = ["# tracer: nop", "#", "", line(1.0, 0, 16),
             "   dd-1 [000] d..1. 1.000001: swiotlb_bounced: dev_name: x dma_mask=ff dev_addr=10 size=40",
             "\x00\x00 serial noise",
             line(1.000002, 0, 4096).replace("FORCE", "MAYBE"),
             "   dd-1 [000] d..1. 1.000003: map_ret: (swiotlb_map+0x6c/0x280 <- swiotlb_tbl_map_single) tlb=0x1000",
             "   dd-1 [000] d..1. 1.000004: map: (swiotlb_tbl_map_single+0x4/0x770) orig=zz size=1",
             "   dd-1 [000] d..1. 1000005: swiotlb_bounced: dev_name: x dma_mask=ff dev_addr=10 size=4 FORCE",
             "   sh-2 [001] ..... 1.000006: sched_switch: prev_comm=sh",
             "   <idle>-0 [001] d.h2. 1.000007: unmap: (__swiotlb_tbl_unmap_single+0x4/0x60) tlb=0x7 size=1 dir=2",
             "CPU:1 [LOST 3 EVENTS]"]
    tr = T.parse_trace(lines)
    assert len(tr.mappings) == 1
    assert [e.line for e in tr.errors] == [5, 6, 7, 8, 9, 10]
    assert "truncated" in tr.errors[0].reason and tr.errors[1].reason == "not a trace event line"
    assert "FORCE, NORMAL" in tr.errors[2].reason and "map_ret" in tr.errors[3].reason
    assert "orig" in tr.errors[4].reason and "timestamp" in tr.errors[5].reason
    assert [e.line for e in tr.ignored] == [11, 12]
    summary = tr.skipped_summary()
    assert sum(summary["errors"].values()) == 6 and sum(summary["ignored"].values()) == 2
    assert tr.lost_events == 3 and any("line 13" in w for w in tr.warnings)
    text = "\n".join(tr.summary_lines())
    assert "malformed lines: 6" in text and "line 5:" in text


def test_header_count_mismatch_is_a_warning():
    tr = T.parse_trace(["# entries-in-buffer/entries-written: 3/3   #P:2", line(1.0, 0, 16), line(1.1, 1, 1)])
    assert tr.cpus == 2 and any("3 entries" in w for w in tr.warnings)


def test_debugfs_readers(tmp_path):
    d = tmp_path / "swiotlb"
    d.mkdir()
    for name, v in boot("6.12-T2")["debugfs_swiotlb_after_workload"].items():
        (d / name).write_text(f"{v}\n")
    got = T.read_debugfs(d)
    assert got.values == {"io_tlb_nslabs": 32768, "io_tlb_used": 0, "io_tlb_used_hiwater": 1549}
    txt = T.parse_debugfs(["io_tlb_nslabs=512", "# comment", "io_tlb_used=0 io_tlb_used_hiwater=510",
                           "io_tlb_nslabs: 1024", "io_tlb_bogus=3", "io_tlb_used=-1", "what"])
    assert txt.values == {"io_tlb_nslabs": 1024, "io_tlb_used": 0, "io_tlb_used_hiwater": 510}
    assert [(e.line, e.reason.split(" ")[0]) for e in txt.errors] == [(5, "unknown"), (6, "io_tlb_used:"),
                                                                       (7, "not")]
    with pytest.raises(ValueError, match="debugfs"):
        T.read_debugfs(tmp_path / "missing")


# ------------------------------------------------------------------ lifetime models ----

@pytest.mark.parametrize("spec,kind,value", [("fixed:250us", "fixed", 250e-6), ("fixed:1.5ms", "fixed", 1.5e-3),
                                             ("fixed:250µs", "fixed", 250e-6), ("qd:32", "qd", 32),
                                             ("exp:200us", "exp", 200e-6), ("lognormal:1ms,0.5", "lognormal", 1e-3),
                                             ("real", "real", 0)])
def test_parse_lifetime(spec, kind, value):
    lt = T.parse_lifetime(spec)
    assert lt.kind == kind and lt.value == pytest.approx(value)
    assert ("MODEL" in lt.describe()) == (kind != "real")


@pytest.mark.parametrize("spec", ["", "fixed", "fixed:250", "fixed:-1us", "fixed:2h", "qd:0", "qd:x",
                                  "exp:1ms,seed=x", "lognormal:1ms,9", "poisson:1ms", "real:1"])
def test_parse_lifetime_rejects(spec):
    with pytest.raises(ValueError, match="lifetime"):
        T.parse_lifetime(spec)


def test_fixed_lifetime_completes_exactly_after_latency():
    tr = lone_trace([0.0, 0.001, 0.002])
    r = T.replay(tr, lifetime="fixed:1500us", requests="none", cpus=1)
    assert r.result.peak_used_slots == 4                  # two 4 KiB mappings overlap, never three
    t, u = r.timeline.t, r.timeline.used
    assert list(u) == [2, 4, 2, 4, 2, 0] and t[2] == pytest.approx(0.0015)
    assert T.replay(tr, lifetime="fixed:500us", requests="none", cpus=1).result.peak_used_slots == 2


def test_qd_bounds_units_in_flight():
    tr = lone_trace([k * 1e-4 for k in range(10)])
    for n in (1, 3, 10):
        r = T.replay(tr, lifetime=f"qd:{n}", requests="none", cpus=1)
        assert r.result.peak_used_slots == 2 * n          # oldest completes before the next maps
        assert r.result.extra["requests_completed"] == 10


def test_random_lifetimes_seeded():
    for spec, stat in (("exp:200us", np.mean), ("lognormal:200us,0.5", np.median)):
        a = T.parse_lifetime(spec, seed=7).sampler()
        b = T.parse_lifetime(spec, seed=7).sampler()
        xs = [a() for _ in range(20000)]
        assert xs[:50] == [b() for _ in range(50)]
        assert stat(xs) == pytest.approx(200e-6, rel=0.05)
    tr = lone_trace([k * 1e-4 for k in range(200)])
    r1 = T.replay(tr, lifetime="exp:1ms", seed=1, requests="none", cpus=1)
    r2 = T.replay(tr, lifetime="exp:1ms", seed=2, requests="none", cpus=1)
    assert not np.array_equal(r1.timeline.used, r2.timeline.used)


def test_real_lifetimes_reproduce_the_kernel(t2):
    r = T.replay(t2)                                      # real is the default with unmaps
    assert r.lifetime.kind == "real" and not r.lifetime.is_model
    assert r.result.extra["slot_agreement"] == "7142/7142"   # same bounce address as Linux 6.12
    hw = boot("6.12-T2")["debugfs_swiotlb_after_workload"]["io_tlb_used_hiwater"]
    assert r.result.peak_used_slots == hw == 1549
    assert r.result.failed == 0 and r.result.extra["requests_completed"] == 79


def test_real_needs_unmaps(t1):
    with pytest.raises(ValueError, match="lifetime: 'real' needs"):
        T.replay(t1, lifetime="real")


def test_calibration_modelled_vs_real(t2):
    stats = T.lifetime_stats(t2)
    assert stats["per_mapping"]["n"] == 7142 and 1e-3 < stats["per_mapping"]["median"] < 2e-3
    cal = T.calibrate(t2, models=("fixed:1500us", "qd:2"))
    assert cal["real"]["peak_used_slots"] == 1549
    assert cal["fixed:1500us"]["peak_used_slots"] == pytest.approx(1549, rel=0.01)
    assert T.DEFAULT_LIFETIME == "fixed:1500us"


# ---------------------------------------------------------------------------- replay ----

def test_requests_grouped_as_virtio_blk(t1, t3):
    reqs, mode = T.group_requests(t1.mappings)
    assert mode == "virtio-blk" and len(reqs) == 75 and not any(r.aborted for r in reqs)
    sizes = [t1.mappings[i].size for i in reqs[0].members]
    assert sizes == [16, 4096, 1, 48]                     # header, data, status, indirect table
    reqs3, _ = T.group_requests(t3.mappings)
    assert sum(r.aborted for r in reqs3) == 40            # 242 headers, 202 status bytes
    assert T.group_requests(t1.mappings, "none")[1] == "none"
    with pytest.raises(ValueError, match="requests"):
        T.group_requests(t1.mappings, "scsi")


def test_replay_is_deterministic_and_says_what_it_assumed(t1):
    a = T.replay(t1, lifetime="exp:1ms", seed=3)
    b = T.replay(t1, lifetime="exp:1ms", seed=3)
    assert a.to_dict() == b.to_dict()
    assert np.array_equal(a.timeline.t, b.timeline.t) and np.array_equal(a.timeline.used, b.timeline.used)
    assert a.timeline.used.max() == a.result.peak_used_slots
    t, u = a.timeline.decimate(50)
    assert len(t) <= 50 and u.max() == a.result.peak_used_slots
    text = "\n".join(a.summary_lines())
    assert "MODEL exp:1ms" in text and "not a measurement" in text
    assert a.result.cmdline == "swiotlb=force" and a.nslabs == 32768


def test_replay_small_pool_fails_like_the_kernel(t3):
    r = T.replay(t3, cmdline="swiotlb=512,force")
    assert r.nslabs == 512 and r.result.peak_used_slots <= 512
    assert r.result.failures["pool_full"] > 0 and r.failed_requests > 0
    assert any("swiotlb buffer is full" in ln and "total 512 (slots)" in ln for ln in r.result.log)


@pytest.mark.parametrize("kernel", ["v6.3", "v6.11"])
def test_bigger_pool_never_fails_more(t1, t2, kernel):
    for tr, lt in ((t1, "fixed:1500us"), (t2, "real")):
        failed = [T.replay(tr, kernel, f"swiotlb={n},force", lt, timeline=False).failed_requests
                  for n in (256, 512, 1024, 2048, 4096, 8192)]
        assert failed == sorted(failed, reverse=True), failed
        assert failed[0] > 0 and failed[-1] == 0


# --------------------------------------------------------------------------- advisor ----

def test_pool_sizes_in_kernel_units():
    assert T.effective_nslabs(1000, 2) == 1024            # multiple of 128, then a power of two
    assert T.effective_nslabs(100, 4) == 512              # at least 128 per area
    assert T.effective_nslabs(128, 1) == 128
    assert T.pool_candidates(2, hi=4096) == [256, 512, 1024, 2048, 4096]
    for n in T.pool_candidates(4, hi=8192):
        m = Machine(ram="2G", cpus=4, cmdline=f"swiotlb={n},force")
        assert m.swiotlb.nslabs == n
    assert T.pool_cmdline(1024, True) == "swiotlb=1024,force"
    assert T.pool_cmdline(1024, True, "rfc-v1") == "swiotlb=1024,force,dynamic"
    with pytest.raises(ValueError, match="cpus"):
        T.effective_nslabs(128, 0)


def test_advisor_answer_is_the_smallest_clean_pool(t1):
    adv, = T.advise(t1, ["v6.11"], target_failure_rate=0.05)
    n = adv.recommended_nslabs
    assert adv.recommended_cmdline == f"swiotlb={n},force"
    cands = T.pool_candidates(2)
    assert T.replay(t1, "v6.11", adv.recommended_cmdline).ok
    assert not T.replay(t1, "v6.11", f"swiotlb={cands[cands.index(n) - 1]},force").ok
    assert adv.peak_used_slots <= n
    assert adv.target_nslabs <= n and adv.target_replayed_failure_rate <= 0.05
    assert any("lower bound" in x for x in adv.notes)


def test_advisor_plot_data(t1):
    adv, = T.advise(t1, ["v6.6"])
    d = adv.plot_data(points=200)
    assert len(d["t"]) == len(d["used"]) <= 200 and np.all(np.diff(d["t"]) >= 0)
    assert d["used"].max() == adv.peak_used_slots <= d["recommended_nslabs"]


def test_normal_bounces_of_a_32_bit_device():
    # a device with a 32-bit mask and buffers above 4 GiB: bounced without swiotlb=force
    tr = T.parse_trace([line(1.0 + k * 1e-3, 0, 4096, addr=(5 << 30) + k * 4096, flag="NORMAL",
                             mask="ffffffff") for k in range(8)])
    assert not tr.force_seen and T.default_cmdline(tr) == ""
    r = T.replay(tr, requests="none", lifetime="fixed:100us", cpus=1)
    assert r.result.bounced == 8 and r.result.failed == 0 and r.nslabs == 32768   # RAM above 4 GiB
    r = T.replay(tr, requests="none", lifetime="fixed:100us", cpus=1, cmdline="swiotlb=noforce")
    assert r.result.bounced == 0 and r.result.failures["out_of_reach"] == 8


def test_empty_trace():
    tr = T.parse_trace(["# tracer: nop"])
    r = T.replay(tr)
    assert r.result.attempted == 0 and "the trace has no mappings" in r.warnings
    adv, = T.advise(tr, ["v6.11"])
    assert adv.recommended_nslabs is None and "nothing to size" in adv.warnings[0]


def test_dynamic_profiles_report_memory_held(t1):
    adv, = T.advise(t1, ["v6.11-dynamic"])
    assert adv.recommended_nslabs == 256 and adv.peak_bounce_bytes > 256 * 2048
    assert any("grew" in x for x in adv.notes)


def test_livelock_finding_12():
    # dd bs=1M with the default max_sectors_kb=1280: requests of 1280 KiB in <= 256 KiB
    # segments on a 1 MiB pool (swiotlb=512,force: 512 slots, 2 areas)
    tr = T.parse_trace(list(T.synthesize_trace(700, seed=2, cpus=1, request_kib=(1280,), contiguity=1.0)))
    r = T.replay(tr, cmdline="swiotlb=512,force", lifetime="fixed:1500us")
    assert r.nslabs == 512 and r.livelocks
    first = r.livelocks[0]
    assert first.repeats >= T.DEFAULT_LIVELOCK_REPEATS and first.attempts <= T.DEFAULT_MAX_RETRIES
    assert first.message().startswith("requests of up to 1280 KiB need at least 643 slots at once; a pool "
                                      "of 512 slots can never complete them; raise swiotlb= or lower "
                                      "max_sectors_kb")
    assert "LIVELOCK" in "\n".join(r.summary_lines())
    assert T.min_request_slots(1280) == 643 and T.min_request_slots(1024) == 515
    big = T.replay(tr, cmdline="swiotlb=2048,force", lifetime="fixed:1500us")
    assert not big.livelocks and big.result.extra["requests_completed"] == r.result.extra["requests"]


def test_advisor_warns_about_livelock():
    tr = T.parse_trace(list(T.synthesize_trace(400, seed=2, cpus=1, request_kib=(1024,), contiguity=1.0)))
    adv, = T.advise(tr, ["v6.11"], lifetime="fixed:1500us")
    assert adv.recommended_nslabs >= 1024
    assert any(w.startswith("requests of up to 1024 KiB need at least 515 slots at once; a pool of 512 "
                            "slots can never complete them") for w in adv.warnings)


def test_advisor_warns_when_max_sectors_kb_exceeds_the_trace(t3):
    adv, = T.advise(t3, ["v6.11"], max_sectors_kb=1280)
    assert adv.recommended_nslabs >= 643
    assert any("requests of up to 1280 KiB need at least 643 slots at once" in w for w in adv.warnings)


def test_synthetic_trace_is_seeded():
    a = list(T.synthesize_trace(500, seed=5))
    assert a == list(T.synthesize_trace(500, seed=5)) and a != list(T.synthesize_trace(500, seed=6))
    tr = T.parse_trace(a)
    assert len(tr.mappings) == 500 and not tr.errors and tr.header["entries_in_buffer"] == 500


# ------------------------------------------------------------------------------- CLI ----

def test_cli_replay_json(capsys):
    assert main(["replay", str(T1), "--json", "--timeline", "20"]) == 0
    d = json.loads(capsys.readouterr().out)
    scenario_keys = {"scenario", "kernel", "cmdline", "seed", "attempted", "mapped", "bounced", "failed",
                     "failures", "peak_used_slots", "peak_bounce_bytes", "end_bounce_bytes", "costs", "log"}
    assert scenario_keys <= set(d)
    assert d["lifetime"] == "fixed:1500us" and d["lifetime_is_model"] and "not a measurement" in d["lifetime_note"]
    assert d["trace"]["counts"]["swiotlb_bounced"] == 5855 and len(d["timeline"]["used"]) <= 20


def test_cli_replay_text_with_debugfs(tmp_path, capsys):
    dbg = tmp_path / "dbg.txt"
    dbg.write_text("io_tlb_nslabs=32768\nio_tlb_used=0 io_tlb_used_hiwater=1549\n")
    assert main(["replay", str(T2), "--debugfs", str(dbg)]) == 0
    out = capsys.readouterr().out
    assert "lifetimes: real" in out and "io_tlb_used_hiwater was 1549; the replay peaked at 1549" in out
    assert "mappings attempted 7142" in out and "kernel log:" in out


def test_cli_advise_json(capsys):
    assert main(["advise", str(T1), "--kernel", "v6.11", "--kernel", "v6.6-dynamic",
                 "--target-failure-rate", "0.05", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [x["profile"] for x in out] == ["v6.11", "v6.6-dynamic"]
    for x in out:
        for key in ("profile", "recommended_nslabs", "recommended_cmdline", "peak_used_slots",
                    "target_failure_rate", "target_nslabs", "target_cmdline", "warnings", "tried"):
            assert key in x
        assert x["recommended_cmdline"].endswith(",force")


def test_cli_progress_bar(capsys):
    assert main(["replay", str(T1), "--progress", "--json"]) == 0
    err = capsys.readouterr().err
    assert "replaying" in err and "100%" in err


@pytest.mark.parametrize("argv,msg", [
    (["replay", "/nonexistent/trace.txt"], "trace: no such file"),
    (["replay", str(T1), "--lifetime", "forever"], "lifetime"),
    (["replay", str(T1), "--kernel", "v9.9"], "kernel: unknown profile"),
    (["replay", str(T1), "--cpus", "0"], "cpus"),
    (["replay", str(T1), "--cpus", "1"], "cpus: the trace has events on CPU 1"),
    (["replay", str(T1), "--ram", "256M"], "ram: line"),
    (["replay", str(T1), "--ram", "lots"], "ram"),
    (["replay", str(T1), "--lifetime", "real"], "lifetime: 'real' needs"),
    (["advise", str(T1), "--target-failure-rate", "1.5"], "target_failure_rate"),
    (["advise", str(T1), "--kernel", "v6.11", "--max-sectors-kb", "1"], "max_sectors_kb"),
])
def test_cli_bad_inputs(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err


def test_bad_api_inputs(t1):
    with pytest.raises(ValueError, match="max_retries"):
        T.replay(t1, max_retries=-1)
    with pytest.raises(ValueError, match="livelock_repeats"):
        T.replay(t1, livelock_repeats=1)
    with pytest.raises(TypeError, match="lifetime"):
        T.replay(t1, lifetime=3)
    with pytest.raises(ValueError, match="n_events"):
        list(T.synthesize_trace(-1))
    with pytest.raises(ValueError, match="kernels"):
        T.advise(t1, [])
    bad = T.parse_trace(["  dd-1 [000] d..1. 1.0: map: (swiotlb_tbl_map_single+0x4/0x770) orig=0x1000 "
                         "size=16 align_mask=0x5 dir=1 attrs=0x0"])
    with pytest.raises(ValueError, match="line 1: align_mask"):
        T.replay(bad, cmdline="swiotlb=force")


def test_register_adds_both_commands():
    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="command", required=True))
    a = p.parse_args(["replay", "x.txt", "--kernel", "v6.6", "--cmdline", "swiotlb=1024,force",
                      "--lifetime", "qd:32", "--cpus", "2", "--ram", "2G", "--json"])
    assert a.command == "replay" and a.func.__name__ == "_cmd_replay" and a.cpus == 2
    a = p.parse_args(["advise", "x.txt", "--kernel", "v6.6", "--kernel", "v6.11", "--target-failure-rate",
                      "0.01", "--json"])
    assert a.kernel == ["v6.6", "v6.11"] and a.target_failure_rate == 0.01
