"""Trace readers (swiotlb_lib.trace.read): ftrace text, trace-cmd report, kprobe events,
debugfs; counts checked against boots.jsonl and data/realkernel/README.md."""
import re

import pytest

from swiotlb_lib import trace as T
from tracedata import PHASES, T1, T2, T3, T61, boot, line, trace_fixture

t2 = trace_fixture("t2", T2)
t3 = trace_fixture("t3", T3)


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


def test_reader_choice_counts_bounced_lines():
    """read_trace's compiled scanner only pays when three lines in four are swiotlb_bounced
    events (it hands every other line back to the Python parser one by one)."""
    from swiotlb_lib.trace.read import scanner_pays
    bounced = line(1.0, 0, 16).encode() + b"\n"
    kprobe = b"   dd-115 [000] d....  8.569931: map: (swiotlb_tbl_map_single+0x4/0x440) orig=0x1 size=1\n"
    # lines counted by hand; a head that ends inside a line counts that line too
    assert scanner_pays(bounced * 4 + b"dd")                   # 4 of 5 lines
    assert scanner_pays(bounced * 3 + kprobe)                  # 3 of 4: just enough
    assert not scanner_pays(bounced * 3 + kprobe + b"dd")      # 3 of 5
    assert not scanner_pays(bounced * 3 + kprobe * 2)          # 3 of 5
    assert not scanner_pays(bounced + kprobe * 3)              # 1 of 4, as data/realkernel's kprobe traces
    assert not scanner_pays(b"")
