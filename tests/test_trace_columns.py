"""The columnar trace (swiotlb_lib.trace.table, .scan, .columns): the compiled scanner and the
Python line parser give the same Trace on every trace in data/ and on damaged text; the
columnar request grouping, lost-unmap inference and engine columns equal the per-object
algorithms they replaced (kept below as references, as they were before the change)."""
import glob
import math
import os
import random
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from swiotlb_lib import trace as T
from swiotlb_lib.constants import DMA_ATTR_NO_WARN, IO_TLB_SHIFT, KNOWN_ATTRS
from swiotlb_lib.evidence import data_path
from swiotlb_lib.trace.columns import columns
from swiotlb_lib.trace.lifetime import lost_unmap_times
from swiotlb_lib.trace.read import Mapping, Trace
from swiotlb_lib.trace.requests import (NVME_MAX_REQUEST_BYTES, NVME_MAX_SEGMENTS, Request, RequestTable,
                                        biggest_request, request_nslots)
from swiotlb_lib.trace.scan import HAVE_NUMBA, SPLIT_MIN_BYTES, Scanner
from swiotlb_lib.trace.synthesize import synthesize_trace
from swiotlb_lib.trace.table import MappingTable, MappingView

DATA_FILES = sorted(glob.glob(str(data_path("") / "**" / "*.txt"), recursive=True))
FAILED = 2 ** 64 - 1


def read(path, scanner, chunk=1 << 23):
    """read_trace: a Trace or the error's text."""
    try:
        return T.read_trace(path, scanner=scanner, chunk=chunk)
    except ValueError as e:
        return str(e)


def both(path, chunk=1 << 23):
    """read_trace with the scanner (``chunk`` bytes at a time) and with the parser alone:
    each a Trace or the error's text."""
    return [read(path, True, chunk), read(path, False)]


#: The parser alone's reading of a data file, kept for the file's other chunk size: the parser
#: reads no chunks (read_trace passes ``chunk`` to the scanner only), so its result is the same
#: for both; it is the slow half of each comparison.  Dropped after its second use.
_PARSED = {}


def same(a, b):
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert a == b                                       # every field, every mapping
    assert a.summary_lines() == b.summary_lines() and a.to_dict() == b.to_dict()
    assert a.skipped_summary() == b.skipped_summary()
    assert [str(s) for s in a.errors] == [str(s) for s in b.errors]


def test_numba_is_there():
    # the scanner is what these tests compare; numba is a dependency (pyproject.toml)
    assert HAVE_NUMBA


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.split("data/")[-1])
@pytest.mark.parametrize("chunk", [1 << 23, 97])
def test_scanner_and_parser_agree_on_every_data_file(path, chunk):
    fast = read(path, True, chunk)
    if path in _PARSED:
        slow = _PARSED.pop(path)
    else:
        slow = _PARSED[path] = read(path, False)
    same(fast, slow)


def test_data_files_include_the_recordings():
    names = {p.split("/")[-1] for p in DATA_FILES}
    assert {"trace-force-2G.txt", "trace-force-2G-kprobes.txt", "trace-N1-force.txt",
            "trace-D1-512-force-maxkb256.txt"} <= names


GOOD = "            dd-200     [001] d..1.     8.000034: swiotlb_bounced: dev_name: 0000:00:02.0 " \
       "dma_mask=ffffffff dev_addr=2034570 size=16 FORCE"


def test_scanner_values_worked_by_hand(tmp_path):
    # line 1: GOOD, ended by CRLF; line 2: the same on CPU 3 with NORMAL, ended by a lone CR
    # (universal newlines: a line of its own); line 3: a tab before the task (the parser reads
    # it); line 4: uppercase hex (the parser's general expression accepts it); line 5: 17 hex
    # digits in dev_addr (accepted by the general expression, then beyond 64 bits with the
    # size: an error); line 6: no newline at the end.
    lines = [GOOD + "\r\n",
             GOOD.replace("[001]", "[003]").replace("FORCE", "NORMAL") + "\r",
             "\t" + GOOD.lstrip() + "\n",
             GOOD.replace("dev_addr=2034570", "dev_addr=2034ABC") + "\n",
             GOOD.replace("dev_addr=2034570", "dev_addr=fffffffffffffffff") + "\n",
             GOOD.replace("8.000034", "9.5")]
    p = tmp_path / "t.txt"
    p.write_bytes("".join(lines).encode())
    for chunk in (1 << 20, 7):
        fast, slow = both(p, chunk)
        same(fast, slow)
        m = list(fast.mappings)
        assert [x.line for x in m] == [1, 2, 3, 4, 6] and fast.counts["total_lines"] == 6
        assert m[0] == Mapping(1, 8.000034, 1, "dd", "0000:00:02.0", 0xFFFFFFFF, 0x2034570, 16, "FORCE")
        assert (m[1].cpu, m[1].force) == (3, "NORMAL")
        assert m[3].orig == 0x2034ABC and m[4].time == 9.5
        assert [e.line for e in fast.errors] == [5] and "64 bits" in fast.errors[0].reason
        assert fast.devices == ["0000:00:02.0"] and fast.cpus == 4 and fast.force_seen


def damaged(n, seed):
    """A synthesized trace with damaged and unusual lines inserted at random places."""
    rng = random.Random(seed)
    lines = list(synthesize_trace(n, seed=seed, cpus=3))
    bad = [GOOD[:60], GOOD[:-3], GOOD.replace("dma_mask=ffffffff", "dma_mask=ffzzffff"),
           GOOD.replace("swiotlb_bounced", "sched_switch"), GOOD.replace("FORCE", "MAYBE"),
           GOOD.replace("size=16", "size=0"), GOOD.replace("size=16", "size=016"),
           GOOD.replace("[001]", "[99999999]"), GOOD.replace("8.000034", "8000034"),
           GOOD.replace("dd-200", "a-1 [2] b-300"), GOOD.replace("dd-200", "my task-7"),
           GOOD + "  ", GOOD.replace("0000:00:02.0", "dev\u00e9"), "\ufeff" + GOOD, "", "#", "   ",
           GOOD.replace("d..1.", "d..1.....x"), GOOD.replace("FORCE", "swiotlb_force=SWIOTLB_FORCE"),
           "CPU:1 [LOST 3 EVENTS]", "  dd-1 [000] d..1. 1.000003: tracing_mark_write: phase 2",
           "  dd-1 [001] d..1. 1.000004: map: (swiotlb_tbl_map_single+0x4/0x770) orig=0x2034570 size=16 dir=1",
           "  dd-1 [001] d..1. 1.000005: map_ret: (swiotlb_map+0x6c/0x280 <- swiotlb_tbl_map_single) tlb=0x1000",
           "  dd-1 [001] d..1. 1.000006: unmap: (__swiotlb_tbl_unmap_single+0x4/0x60) tlb=0x1000",
           GOOD.replace("dev_addr=2034570", "dev_addr=ffffffffffffffff"),
           # digit runs past what an int64 holds: the scanner refuses them by their length
           GOOD.replace("[001]", "[" + "9" * 25 + "]"), GOOD.replace("size=16", "size=" + "9" * 21),
           GOOD.replace("8.000034", "9" * 15 + ".0000340000")]
    for _ in range(n // 10):
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(bad))
    ends = ["\n", "\n", "\n", "\r\n", "\r"]
    text = "".join(x + rng.choice(ends) for x in lines)
    return text.encode("utf-8") + b"\xff\xfe serial noise\n" + GOOD.encode()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scanner_and_parser_agree_on_damaged_text(tmp_path, seed):
    p = tmp_path / "d.txt"
    p.write_bytes(damaged(3000, seed))
    ref = T.read_trace(p, scanner=False)
    assert ref.errors and ref.ignored and ref.markers and ref.counts["map"]
    for chunk in (1 << 23, 4096, 61, 150):              # lines split between reads
        same(T.read_trace(p, scanner=True, chunk=chunk), ref)


def test_scanner_halves_agree_with_the_parser(tmp_path, monkeypatch):
    """A buffer of SPLIT_MIN_BYTES or more is scanned in two halves at once; damaged and
    parsed lines fall in both (8000 events of about 150 bytes: 1.2 MB, one buffer).  The
    second halves are seen as the threads the scanner starts for them."""
    p = tmp_path / "d.txt"
    p.write_bytes(damaged(8000, 5))
    assert p.stat().st_size >= SPLIT_MIN_BYTES
    ref = T.read_trace(p, scanner=False)
    assert ref.errors and ref.ignored and ref.markers and ref.counts["map"]
    started = []

    class Counted(threading.Thread):
        def start(self):
            started.append(self)
            super().start()
    # only the scanner's module sees the counting Thread
    monkeypatch.setattr("swiotlb_lib.trace.scan.threading", SimpleNamespace(Thread=Counted))
    for chunk, halves in ((1 << 23, 1), (SPLIT_MIN_BYTES + 4099, 1), (SPLIT_MIN_BYTES // 2, 0)):
        del started[:]                                  # one buffer; a buffer and a tail; no split
        same(T.read_trace(p, scanner=True, chunk=chunk), ref)
        assert len(started) == halves, chunk


def test_scanner_reads_a_pipe_past_its_first_columns(tmp_path):
    """A pipe has no size to bound the rows: the scanner starts with columns of 65 536 rows
    (scan_file) and adds more when they fill; a kprobe map after row 66 000 joins the
    swiotlb_bounced row before it, which lies in the second columns."""
    n = 70_000
    lines = [GOOD.replace("dev_addr=2034570", f"dev_addr={0x100000 + 64 * k:x}") for k in range(n)]
    lines.insert(66_001, "  dd-1 [001] d..1. 9.000001: map: (swiotlb_tbl_map_single+0x4/0x770) "
                         f"orig={0x100000 + 64 * 66_000:#x} size=16 dir=1")
    text = "\n".join(lines) + "\n"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(text,))
    writer.start()
    fast = T.read_trace(fifo, scanner=True)
    writer.join()
    ref = T.parse_trace(text, source=str(fifo))
    same(fast, ref)
    # every GOOD line is a mapping on CPU 1; the map line joins mapping 66 000 (0-based), the
    # last line before it, which gets dir 1 and its map line number (66 002, 1-based)
    assert len(fast.mappings) == n and fast.counts["map"] == 1
    m = fast.mappings[66_000]
    assert (m.line, m.dir, m.map_line) == (66_001, 1, 66_002)


def test_scanner_widens_codes_beyond_uint16():
    """The builder's codes go into the scanner's uint16 columns; a larger one (after 65 536
    names the parser read first) widens them to int32."""
    class Builder:
        def code(self, kind, value):
            return 70_000                               # more than uint16's 65 535

    sc = Scanner(4)
    arr = np.frombuffer((GOOD + "\n").encode(), np.uint8)
    pos, lineno, nslow = sc.run(arr, 0, True, 1, Builder())
    assert (pos, lineno, nslow, sc.k) == (len(arr), 2, 0, 1)
    for kind in ("task", "dev", "mask"):
        assert sc.cols[kind].dtype == np.int32 and sc.cols[kind][0] == 70_000
    assert sc.cols["cpu"][0] == 1 and sc.cols["orig"][0] == 0x2034570 and sc.cols["time"][0] == 8.000034


def test_mapping_view_is_a_sequence_of_copies():
    tr = T.parse_trace(synthesize_trace(5000, seed=4))
    v = tr.mappings
    assert isinstance(v, MappingView) and len(v) == 5000
    whole = list(v)
    assert v[0] == whole[0] and v[-1] == whole[-1] and v[4097] == whole[4097]
    assert v[10:13] == whole[10:13] and v == whole
    v[0].size = 1                                       # a copy: the columns do not change
    assert tr.table.rows(0, 1)[0].size == 16 and list(tr.mappings)[0].size == 16
    with pytest.raises(IndexError):
        v[5000]
    # the synthesizer's first request (worked from its code): after its 6 header lines, a
    # 16-byte header mapped on CPU 0 by task "dd-200"
    assert (whole[0].line, whole[0].size, whole[0].cpu, whole[0].task) == (7, 16, 0, "dd")


def test_trace_by_hand_keeps_its_list():
    tr = Trace("hand")
    mp = Mapping(5, 1.0, 2, "t", "d", 0xFFFF, 0x1000, 100, None, dir=1, tlb=0x8000)
    tr.mappings.append(mp)
    assert tr.mappings[0] is mp and tr.cpus == 3 and tr.devices == ["d"] and not tr.force_seen
    t = tr.table
    assert isinstance(t, MappingTable) and t.rows(0, 1) == [mp]


# -- the per-object algorithms the columns replaced (as they were), for comparison ---------

def ref_virtio(mappings):
    reqs, open_ = [], {}
    for i, mp in enumerate(mappings):
        key, size = (mp.dev_name, mp.cpu), mp.size
        cur = open_.get(key)
        if cur is not None:
            req, state = cur
            if state == "data":
                if size == 1:
                    req.members.append(i)
                    open_[key] = (req, "status")
                    continue
                if size != 16:
                    req.members.append(i)
                    req.data_bytes += size
                    continue
                req.aborted = True
            else:
                ndesc = len(req.members)
                del open_[key]
                if size == 16 * ndesc:
                    req.members.append(i)
                    continue
        if size == 16:
            req = Request([i], mp.dev_name, mp.cpu, "virtio-blk")
            reqs.append(req)
            open_[key] = (req, "data")
        else:
            open_.pop(key, None)
            reqs.append(Request([i], mp.dev_name, mp.cpu, "mapping", data_bytes=size))
    return reqs


def ref_nvme(mappings):
    kprobe = any(mp.dir is not None for mp in mappings)
    order = sorted(mp.unmap_line for mp in mappings if mp.unmap_line is not None)
    rank = {line: k for k, line in enumerate(order)}
    reqs, open_ = [], {}
    for i, mp in enumerate(mappings):
        key = (mp.dev_name, mp.cpu)
        cur = open_.pop(key, None)
        sg = not kprobe or bool(mp.attrs & DMA_ATTR_NO_WARN)
        if cur is not None and sg:
            last = mappings[cur.members[-1]]
            a, b = last.unmap_line, mp.unmap_line
            if (last.dir == mp.dir and cur.data_bytes + mp.size <= NVME_MAX_REQUEST_BYTES
                    and len(cur.members) < NVME_MAX_SEGMENTS and (a is None or b is None or rank[b] == rank[a] + 1)):
                cur.members.append(i)
                cur.data_bytes += mp.size
                if mp.tlb == FAILED:
                    cur.aborted = True
                else:
                    open_[key] = cur
                continue
        req = Request([i], mp.dev_name, mp.cpu, "nvme", aborted=mp.tlb == FAILED, data_bytes=mp.size)
        reqs.append(req)
        if sg and not req.aborted:
            open_[key] = req
    return reqs


def ref_lost(maps, reqs):
    if not any(mp.unmap_time is not None for mp in maps):
        return {}
    lost = [i for i, mp in enumerate(maps) if mp.unmap_time is None and mp.tlb is not None and mp.tlb != FAILED]
    if not lost:
        return {}
    bound, events, owner = {}, [], {}
    for i, mp in enumerate(maps):
        if mp.tlb is not None and mp.tlb != FAILED:
            events.append((mp.map_line or mp.line, 0, i))
            if mp.unmap_line is not None:
                events.append((mp.unmap_line, 1, i))
    events.sort()
    for _, kind, i in events:
        mp = maps[i]
        frames = range(mp.tlb >> IO_TLB_SHIFT, (mp.tlb + max(mp.size, 1) - 1 >> IO_TLB_SHIFT) + 1)
        if kind:
            for f in frames:
                if owner.get(f) == i:
                    del owner[f]
            continue
        for f in frames:
            j = owner.get(f)
            if j is not None and j != i:
                if maps[j].unmap_time is None and j not in bound:
                    bound[j] = mp.time
                o = maps[j]
                for g in range(o.tlb >> IO_TLB_SHIFT, (o.tlb + max(o.size, 1) - 1 >> IO_TLB_SHIFT) + 1):
                    if owner.get(g) == j:
                        del owner[g]
            owner[f] = i
    sibling = {}
    for r in reqs:
        ends = [maps[i].unmap_time for i in r.members if maps[i].unmap_time is not None]
        if ends and len(ends) < len(r.members):
            for i in r.members:
                sibling[i] = max(ends)
    recorded = sorted(mp.unmap_time - mp.time for mp in maps if mp.unmap_time is not None)
    median = recorded[len(recorded) // 2]
    out = {}
    for i in lost:
        t = sibling.get(i, maps[i].time + median)
        out[i] = min(t, bound[i]) if i in bound else t
    return out


def random_kprobe_trace(rng, n):
    """Random mappings as a kprobe trace records them (some failed, some unmaps lost)."""
    lines, t, live = [], 1.0, []
    for _ in range(n):
        t += rng.expovariate(1 / 20e-6)
        cpu, size = rng.randrange(3), rng.choice([1, 16, 48, 4096, 8192, 65536, 262144, rng.randrange(1, 9000)])
        orig = rng.randrange(1 << 20, 1 << 30) & ~0xF
        attrs, tlb = rng.choice([0, DMA_ATTR_NO_WARN, DMA_ATTR_NO_WARN]), rng.randrange(1 << 12) << 11
        tlb = FAILED if rng.random() < 0.05 else 0x80000000 + tlb
        dev = rng.choice(["0000:00:04.0", "0000:00:05.0"])
        lines.append(f"fio-3 [{cpu:03d}] ..... {t:.6f}: swiotlb_bounced: dev_name: {dev} "
                     f"dma_mask=ffffffffffffffff dev_addr={orig:x} size={size} FORCE")
        lines.append(f"fio-3 [{cpu:03d}] ..... {t:.6f}: map: (swiotlb_tbl_map_single+0x4/0x770) "
                     f"orig={orig:#x} size={size} align_mask=0x0 dir={rng.choice([1, 2])} attrs={attrs:#x}")
        lines.append(f"fio-3 [{cpu:03d}] ..... {t:.6f}: map_ret: (swiotlb_map+0x6c/0x280 <- "
                     f"swiotlb_tbl_map_single) tlb={tlb:#x}")
        if tlb != FAILED:
            live.append(tlb)
        if live and rng.random() < 0.6:
            gone = live.pop(rng.randrange(len(live)))
            if rng.random() < 0.9:                      # else the unmap event is lost
                lines.append(f"<idle>-0 [000] d.h1. {t:.6f}: unmap: (__swiotlb_tbl_unmap_single+0x4/0x60) "
                             f"tlb={gone:#x}")
    return T.parse_trace(lines)


def traces_for_grouping():
    out = [T.read_trace(p) for p in DATA_FILES if "/trace-" in p]
    out.append(T.parse_trace(synthesize_trace(20000, seed=5, cpus=4)))
    rng = random.Random(7)
    out += [random_kprobe_trace(rng, 1500) for _ in range(4)]
    return out


@pytest.fixture(scope="module")
def grouping_traces():
    return traces_for_grouping()


def test_grouping_equals_the_per_object_grouping(grouping_traces):
    for tr in grouping_traces:
        maps = list(tr.mappings)
        assert list(T.group_requests(tr.mappings, "virtio-blk")[0]) == ref_virtio(maps)
        assert list(T.group_requests(tr.mappings, "nvme")[0]) == ref_nvme(maps)
        assert list(T.group_requests(maps, "nvme")[0]) == ref_nvme(maps)          # a list of Mapping
        none = T.group_requests(tr.mappings, "none")[0]
        assert list(none) == [Request([i], m.dev_name, m.cpu, "mapping", data_bytes=m.size)
                              for i, m in enumerate(maps)]
        reqs = T.group_requests(tr.mappings)[0]
        slots = request_nslots(reqs, tr.mappings)
        assert slots.tolist() == [T.request_slots(r, maps) for r in reqs]
        whole = [r for r in reqs if not r.aborted]
        assert biggest_request(reqs, tr.mappings) == max(whole, key=lambda q: T.request_slots(q, maps),
                                                          default=None)


@pytest.mark.parametrize("block", [1, 2, 5])
def test_request_slots_added_up_in_blocks_equal_the_per_request_sums(grouping_traces, monkeypatch, block):
    # blocks of a few mappings: most requests straddle a block's end or fill several blocks
    monkeypatch.setattr("swiotlb_lib.trace.requests.NSLOTS_BLOCK", block)
    for tr in grouping_traces:
        maps = list(tr.mappings)
        for mode in ("virtio-blk", "nvme", "none"):
            reqs = T.group_requests(tr.mappings, mode)[0]
            assert request_nslots(reqs, tr.mappings).tolist() == [T.request_slots(r, maps) for r in reqs]


def test_a_size_beyond_int64_is_grouped_in_every_mode():
    # a hand-made Mapping list (the readers refuse such a line): Python ints, no OverflowError
    maps = [Mapping(0, 1.0 + k, 0, "fio-1", "0000:00:04.0", (1 << 64) - 1, 0x10000000, size, "FORCE", dir=d)
            for k, (size, d) in enumerate(((16, 1), (2 ** 65, 1), (4096, 1), (1, 2)))]
    for mode in ("auto", "virtio-blk", "nvme", "none"):
        reqs = T.group_requests(maps, mode)[0]
        assert request_nslots(reqs, maps).tolist() == [T.request_slots(r, maps) for r in reqs], mode
        want = 2 ** 65 + 4096 if mode in ("auto", "virtio-blk") else 16 + 2 ** 65 + 4096 + 1   # header, status
        assert sum(r.data_bytes for r in reqs) == want, mode


def test_a_trace_of_more_mappings_than_the_grouping_indexes_is_refused_by_name(monkeypatch):
    tr = T.parse_trace([GOOD.replace("size=16", f"size={s}") for s in (16, 4096, 1, 512)])
    monkeypatch.setattr("swiotlb_lib.trace.requests.MAX_MAPPINGS", 3)
    for mode in ("auto", "nvme", "none"):
        with pytest.raises(ValueError, match=r"^trace: at most 3 bounce mappings .* got 4$"):
            T.group_requests(tr.mappings, mode)
    with pytest.raises(ValueError, match=r"^trace: at most 3 "):
        RequestTable.from_requests([Request([0, 1, 2, 3], "d", 0, "mapping")], 4)
    monkeypatch.setattr("swiotlb_lib.trace.requests.MAX_MAPPINGS", 4)
    assert len(T.group_requests(tr.mappings, "none")[0]) == 4


def test_grouping_of_a_request_by_hand():
    # virtio-blk on one CPU: header 16, data 4096 and 8192 (12288 data bytes), status 1, and
    # an indirect table of 16 x 4 descriptors = 64 bytes; then a lone 512-byte mapping
    tr = T.parse_trace([GOOD.replace("size=16", f"size={s}") for s in (16, 4096, 8192, 1, 64, 512)])
    reqs, mode = T.group_requests(tr.mappings)
    assert mode == "virtio-blk" and list(reqs) == [
        Request([0, 1, 2, 3, 4], "0000:00:02.0", 1, "virtio-blk", False, 12288),
        Request([5], "0000:00:02.0", 1, "mapping", False, 512)]
    # slots: 1 + 2 + 4 + 1 + 1 (2 KiB each, rounded up) = 9, and 1
    assert request_nslots(reqs, tr.mappings).tolist() == [9, 1]


def test_lost_unmaps_equal_the_per_object_inference(grouping_traces):
    seen = 0
    for tr in grouping_traces:
        maps = list(tr.mappings)
        for mode in ("auto", "none"):
            reqs = T.group_requests(tr.mappings, mode)[0]
            got = lost_unmap_times(tr, reqs)
            assert got == ref_lost(maps, list(reqs))
            seen += len(got)
    assert seen > 0                                     # the NVMe recording and the random traces lose some


def ref_columns(maps, reqs, unit_of, lost_at):
    """The engine's columns as they were built from Mapping objects."""
    n = len(maps)
    names = sorted({mp.dev_name for mp in maps})
    idx = {d: k for k, d in enumerate(names)}
    sizes = [len(r.members) for r in reqs]
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    lost = np.full(n, math.nan)
    for i, t in lost_at.items():
        lost[i] = t
    return {"time": [mp.time for mp in maps], "line": [mp.line for mp in maps], "cpu": [mp.cpu for mp in maps],
            "dev": [idx[mp.dev_name] for mp in maps], "size": [mp.size for mp in maps],
            "orig": [mp.orig for mp in maps], "align": [mp.align_mask for mp in maps],
            "attrs": [mp.attrs & KNOWN_ATTRS for mp in maps],
            "end": [math.nan if mp.unmap_time is None else mp.unmap_time for mp in maps],
            "endline": [-1 if mp.unmap_line is None else mp.unmap_line for mp in maps],
            "traced": [-1 if mp.tlb is None or mp.tlb == FAILED else mp.tlb for mp in maps],
            "lost": lost.tolist(), "unit_of": list(unit_of), "u_ptr": ptr.tolist(),
            "u_members": [i for r in reqs for i in r.members], "u_dev": [idx.get(r.dev_name, 0) for r in reqs],
            "u_cpu": [r.cpu for r in reqs], "u_block": [int(r.kind in ("virtio-blk", "nvme")) for r in reqs],
            "u_aborted": [int(r.aborted) for r in reqs], "u_last": [r.members[-1] for r in reqs]}


def test_engine_columns_equal_the_per_object_columns(grouping_traces):
    for tr in grouping_traces:
        for lost in (False, True):
            reqs = T.group_requests(tr.mappings)[0]
            cols = columns(tr, reqs, lost)
            maps = list(tr.mappings)
            want_lost = ref_lost(maps, list(reqs)) if lost else {}
            unit_of = [0] * len(maps)
            for u, r in enumerate(reqs):
                for i in r.members:
                    unit_of[i] = u
            want = ref_columns(maps, list(reqs), unit_of, want_lost)
            for name, values in want.items():
                got = getattr(cols, name)
                assert got.dtype.kind in "iuf" and np.array_equal(got, np.asarray(values, dtype=got.dtype),
                                                                  equal_nan=got.dtype.kind == "f"), name
            assert cols.dev_names == sorted({m.dev_name for m in maps}) and cols.ordered


def test_python_parser_alone_reads_without_the_scanner(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("\n".join(synthesize_trace(300, seed=2)) + "\n")
    tr = T.read_trace(p, scanner=False)
    # the synthesizer's header says 300 entries and there are 6 header lines (worked from its code)
    assert len(tr.mappings) == 300 and tr.counts["total_lines"] == 306 and not tr.warnings


def test_last_dma_masks_follow_the_mappings():
    # each device's mask is the one of its last mapping, devices in the order they first map
    rng = random.Random(7)
    names = ["0000:00:04.0", "0000:00:05.0", "nvme0", "virtio1"]
    masks = [(1 << 64) - 1, (1 << 32) - 1, (1 << 30) - 1]
    for n in (1, 2, 5, 40, 300):
        maps = [Mapping(k, 1.0 + k, 0, "fio-1", rng.choice(names[:rng.randrange(1, 5)]), rng.choice(masks),
                        0x1000 * (k + 1), 512, "FORCE") for k in range(n)]
        want = {}
        for mp in maps:
            want[mp.dev_name] = mp.dma_mask
        got = MappingTable.from_mappings(maps).last_dma_masks()
        assert list(got.items()) == list(want.items())
