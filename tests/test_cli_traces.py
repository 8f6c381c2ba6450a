"""Commands replay and advise (swiotlb_lib.cli.traces) on the recorded traces."""
import argparse
import json

import pytest

from swiotlb_lib.cli import main
from swiotlb_lib.cli.traces import register
from swiotlb_lib.evidence import data_path
from tracedata import DATA, T1, T2


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
        # each pool tried was replayed once (none twice: no max_sectors_kb floor)
        assert x["replays"] == len(x["tried"]) >= 1


def test_cli_advise_says_how_many_replays_ran(capsys):
    assert main(["advise", str(T1), "--kernel", "v6.11", "--kernel", "v6.6", "--progress"]) == 0
    cap = capsys.readouterr()
    tried = [ln.count(":") for ln in cap.out.splitlines() if ln.startswith("  tried: ")]
    # "tried: 2048:fail, 4096:ok, ..." has one colon after "tried" and one per pool
    n = [k - 1 for k in tried]
    assert cap.out.splitlines()[-1].startswith(f"replays: {sum(n)} (v6.11 {n[0]}, v6.6 {n[1]}); ")
    assert "replays (at most " in cap.err


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
    (["advise", str(T1), "--target-failure-rate", "1.5"], "--target-failure-rate: must be"),
    (["advise", str(T1), "--kernel", "v6.11", "--max-sectors-kb", "1"], "--max-sectors-kb"),
])
def test_cli_bad_inputs(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err


def test_register_adds_both_commands():
    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="command", required=True))
    a = p.parse_args(["replay", "x.txt", "--kernel", "v6.6", "--cmdline", "swiotlb=1024,force",
                      "--lifetime", "qd:32", "--cpus", "2", "--ram", "2G", "--json"])
    assert a.command == "replay" and a.func.__name__ == "_cmd_replay" and a.cpus == 2
    a = p.parse_args(["advise", "x.txt", "--kernel", "v6.6", "--kernel", "v6.11", "--target-failure-rate",
                      "0.01", "--json"])
    assert a.kernel == ["v6.6", "v6.11"] and a.target_failure_rate == 0.01


def test_replay_follows_the_two_cpu_recording_and_no_follow_does_not():
    # a subprocess, as a user runs it; --no-follow in-process (tests/clirun.py)
    from clirun import cli
    args = ["replay", DATA / "trace-512-force-2G-kprobes.txt", "--kernel", "v6.11", "--cmdline",
            "swiotlb=512,2,force", "--json"]
    rc, out, err = cli(*args, process=True)
    assert rc == 0, err[-2000:]
    d = json.loads(out)
    # the kernel failed 56 mappings (56 map_ret lines with tlb=0xffffffffffffffff)
    assert d["follow"] is True and d["failure_agreement"] == "56/56" and abs(d["failed"] - 56) <= 2
    rc, out, err = cli(*args, "--no-follow")
    assert rc == 0, err[-2000:]
    assert json.loads(out)["follow"] is False


def test_replay_nvme_recording_counts_its_lost_unmaps(capsys):
    assert main(["replay", str(data_path("realkernel-nvme", "trace-N1-force.txt")), "--device", "nvme",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    # data/realkernel-nvme/README.md: 1 056 fewer unmap events than maps, although the pool emptied
    assert d["lost_unmaps"] == 1056 and d["slot_agreement"].split("/")[0] == d["slot_agreement"].split("/")[1]


def test_cli_livelock_text_and_json_agree(tmp_path, capsys):
    # the one-request livelock of tests/test_trace_replay.py::livelock_trace (worked by hand
    # there): 1 request, 0 completed, 1 livelocked, failure rate 100 % of requests, 12 mapping
    # attempts of which 4 failed; the command's text and its JSON say the same
    from tracedata import line
    K = 1024
    p = tmp_path / "livelock.txt"
    p.write_text("\n".join([line(1.0, 0, 16, addr=0x1000000), line(1.00001, 0, 200 * K, addr=0x2000000),
                            line(1.00002, 0, 100 * K, addr=0x3000000), line(1.00003, 0, 1, addr=0x4000000)]) + "\n")
    argv = ["replay", str(p), "--kernel", "v6.11", "--cmdline", "swiotlb=128,force", "--lifetime", "fixed:1ms",
            "--requests", "virtio-blk", "--cpus", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert main(argv + ["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["requests"], d["requests_completed"], d["livelocked_requests"]) == (1, 0, 1)
    assert "  requests: 1\n  requests_completed: 0\n" in text and "  livelocked_requests: 1\n" in text
    assert d["failure_rate"] == 1.0 and "failure rate 100.0000% of requests (1 of 1)" in text
    assert (d["attempted"], d["failed"]) == (12, 4) and "attempted 12, mapped 8 (8 bounced), failed 4" in text
    assert "LIVELOCK (1 request)" in text and d["livelocks"][0]["message"] in text


def test_requests_choices_are_the_groupings():
    # the CLI writes the choices out (no model import for --help); they must be the reader's
    from swiotlb_lib.cli import build_parser
    from swiotlb_lib.trace.requests import GROUPINGS
    sub = next(a for a in build_parser()._actions if a.dest == "command" or getattr(a, "choices", None)
               and "replay" in (a.choices or {}))
    opt = next(a for a in sub.choices["replay"]._actions if a.dest == "requests")
    assert tuple(opt.choices) == GROUPINGS
