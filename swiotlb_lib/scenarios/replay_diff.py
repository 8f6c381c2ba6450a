"""Differential replay: run one seeded stream of DMA operations on two kernel profiles
and report the first place where they disagree.

This is how the book reviews a patch that claims "no functional change" (RFC v1 patch
2/4, 932dee179c950e98713f8636f0c9d95a6a37b640.1679309810.git.petr.tesarik.ext@huawei.com):
drive the kernel before and after the patch with the same operations and compare
everything that can be observed.

* :func:`generate_ops` -- a pure function of ``(seed, length)``: maps (several devices,
  sizes from 1 byte to past the 256 KiB limit, in-page offsets chosen to hit the
  alignment rules, every direction, four CPUs), unmaps, partial and full syncs in both
  directions, and device writes, each with the seed of the bytes it writes.
* :func:`run_ops` -- boot a :class:`~swiotlb_lib.boot.Machine` on one profile and apply
  the operations through the streaming DMA API with real bytes; one :class:`Record`
  per operation (result, slot, pool counters, a digest of the free-run counters, a
  digest of the bytes the CPU or the device sees, and the kernel log lines printed).
* :func:`compare` / :func:`diff_replay` -- the :class:`Verdict`: identical or not, and
  the first divergence with the differing fields.  It prints its own answers
  (:meth:`Verdict.lines`).
* :func:`golden_check` -- replay a golden-vector file (``data/oracle/``) on a profile and
  count the lines whose ``expect`` the model reproduces.

Everything is deterministic: the same arguments give the same verdict on every run.
Chapter 6 runs it through :mod:`swiotlb_lib.scenarios.patches12`, which registers its
experiments.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import random
from collections import Counter
from dataclasses import dataclass, field

from ..boot import Machine
from ..constants import (DMA_ATTR_NO_WARN, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE,
                        DIRECTION_NAMES, IO_TLB_SHIFT, PAGE_SIZE)
from ..device import Device
from ..evidence import data_path
from ..swiotlb import DmaMappingError
from ..versions import get_profile

#: The machine every replay boots: 2 GiB, 4 CPUs (so 4 areas), a small forced pool of
#: 1024 slots (2 MiB) so that "buffer is full" and wrap-around happen often.
DEFAULT_CMDLINE = "swiotlb=1024,force"
DEFAULT_RAM = "2G"
DEFAULT_CPUS = 4

#: Fields of a :class:`Record` that are compared, in the order a divergence reports them.
FIELDS = ("op", "result", "slot", "used", "areas", "list_digest", "bytes", "log")

#: The devices of a replay: NVMe keeps in-page offsets (``min_align_mask`` 0xfff), pci32
#: has a 4 GiB segment boundary, seg64k a 64 KiB one (at most 32 slots per mapping),
#: virtio-blk has no constraint at all.
DEVICE_KINDS = ("nvme", "pci32", "virtio-blk", "seg64k")

_SIZES = (512, 1500, 2048, 4096, 4096, 8192, 16384, 65536, 131072, 262144)
_OFFSETS = (0, 0, 0x200, 0x800, 0x800, 0xA00, 0xFFE)
#: Originals live in 2048 regions of 512 KiB from 256 MiB up (well inside 2 GiB of RAM).
_REGION_BASE = 0x10000000
_REGION_SIZE = 0x80000
_NREGIONS = 2048
_MAX_LIVE = 48
#: The FNV-1a ``list_hash`` (slow in Python) is taken every this many operations.
CHECKPOINT = 500
#: Model time per operation: 5 ms, so that a few thousand operations span several of the
#: kernel's 5-second rate-limit intervals ("N callbacks suppressed" lines get compared too).
STEP_SECONDS = 5e-3


def _device(kind: str) -> Device:
    if kind == "seg64k":
        return Device("0000:03:00.0", seg_boundary_mask=0xFFFF, driver="seg64k",
                      max_seg_size=0xFFFFFFFF)
    from ..device import preset
    return preset(kind)


# ------------------------------------------------------------------ the operations -----

def generate_ops(seed: int, length: int) -> list[dict]:
    """The operation stream for ``seed``: ``length`` dicts, the same on every call.

    Kinds: ``map`` (id, dev, offset, size, dir, cpu, attrs, data), ``unmap`` (id),
    ``sync_cpu`` / ``sync_dev`` (id, off, n[, data]) and ``dev_write`` (id, off, n, data).
    Operations on a live mapping are only generated while one exists; the chance of an
    unmap grows with the number of live mappings, as in the golden vectors' generator.
    ``data`` is the seed of the bytes written (``random.Random(data).randbytes``).
    """
    if type(seed) is not int or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    if type(length) is not int or not 1 <= length <= 200_000:
        raise ValueError(f"length: must be an integer in 1..200000, got {length!r}")
    rng = random.Random(seed)
    ops: list[dict] = []
    live: list[tuple[int, int]] = []         # (id, size) of maps not yet unmapped
    next_id = 0
    for _ in range(length):
        u = rng.random()
        p_unmap = 0.10 + 0.5 * len(live) / _MAX_LIVE
        if live and (len(live) >= _MAX_LIVE or u < p_unmap):
            mid, _ = live.pop(rng.randrange(len(live)))
            ops.append({"op": "unmap", "id": mid})
            continue
        if live and u < p_unmap + 0.30:
            mid, size = live[rng.randrange(len(live))]
            kind = rng.choice(("sync_cpu", "sync_dev", "dev_write"))
            off = rng.randrange(size) if rng.random() < 0.5 else 0
            n = rng.randrange(1, size - off + 1) if rng.random() < 0.5 else size - off
            op = {"op": kind, "id": mid, "off": off, "n": n}
            if kind != "sync_cpu":
                op["data"] = rng.getrandbits(32)
            ops.append(op)
            continue
        r = rng.random()
        if r < 0.03:
            size = rng.randrange(256 * 1024 + 1, 300 * 1024)      # too big: must fail
        elif r < 0.25:
            size = rng.randrange(1, 256 * 1024 + 1)
        else:
            size = rng.choice(_SIZES)
        ops.append({"op": "map", "id": next_id, "dev": rng.choice(DEVICE_KINDS),
                    "offset": rng.choice(_OFFSETS) if rng.random() < 0.8 else rng.randrange(PAGE_SIZE),
                    "size": size,
                    "dir": rng.choice((DMA_BIDIRECTIONAL, DMA_TO_DEVICE, DMA_FROM_DEVICE)),
                    "cpu": rng.randrange(DEFAULT_CPUS),
                    "attrs": DMA_ATTR_NO_WARN if rng.random() < 0.05 else 0,
                    "data": rng.getrandbits(32)})
        live.append((next_id, size))
        next_id += 1
    return ops


_NOISE: bytes | None = None
_NOISE_LEN = 1 << 20


def _bytes(seed: int, n: int) -> bytes:
    """``n`` bytes for data seed ``seed``: a window of a fixed 1 MiB random block (made
    once from ``random.Random(0)``), starting at an offset the seed picks."""
    global _NOISE
    if _NOISE is None:
        _NOISE = random.Random(0).randbytes(_NOISE_LEN)
    start = seed % (_NOISE_LEN - n + 1)
    return _NOISE[start:start + n]


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@dataclass(frozen=True)
class Record:
    """What could be observed after one operation on one kernel.

    ``result``: the DMA address (hex), ``"fail:<cause>"``, ``"skip"`` (the mapping
    this operation refers to had failed) or ``"ok"``; ``slot``: the bounce buffer's
    slot in the default pool (None if it did not bounce or failed); ``used`` and
    ``areas`` (``(index, used)`` per area): the pool's counters; ``list_digest``: a
    digest of every slot's free-run counter (``list``); ``bytes``: a digest of the
    bytes the device sees after a map or ``sync_dev``/``dev_write``, or the CPU sees
    in the original after ``sync_cpu``/``unmap``; ``log``: the kernel lines printed.
    """

    op: str
    result: str
    slot: int | None
    used: int
    areas: tuple
    list_digest: str
    bytes: str | None
    log: tuple

    def get(self, name: str):
        return getattr(self, name)


@dataclass
class Run:
    """One profile's replay: the boot log and one record per operation."""

    kernel: str
    cmdline: str
    boot_log: tuple
    records: list
    #: the oracle's FNV-1a ``list_hash`` of the pool after every :data:`CHECKPOINT`-th
    #: operation and after the last: ``{operations done: hash}``
    list_hashes: dict
    pool_nslabs: int
    pool_nareas: int


def _boot(kernel, cmdline: str, ram: str, cpus: int) -> Machine:
    return Machine(ram=ram, cpus=cpus, kernel=kernel, cmdline=cmdline)


def run_ops(kernel, ops: list[dict], cmdline: str = DEFAULT_CMDLINE, ram: str = DEFAULT_RAM,
            cpus: int = DEFAULT_CPUS) -> Run:
    """Boot ``kernel`` and apply ``ops`` (from :func:`generate_ops`) with real bytes."""
    m = _boot(kernel, cmdline, ram, cpus)
    mem = m.swiotlb
    pool = mem.defpool
    if pool is None:
        raise ValueError(f"cmdline: {cmdline!r} leaves the machine without a SWIOTLB pool")
    devs = {k: m.add_device(_device(k)) for k in DEVICE_KINDS}
    dma = m.dma
    log = m.log
    live: dict[int, tuple] = {}
    records: list[Record] = []
    boot_log = tuple(log.lines)
    seen = len(log.lines)
    hashes = {}
    for i, op in enumerate(ops, 1):
        log.now += STEP_SECONDS
        kind = op["op"]
        result, slot, data_digest = "ok", None, None
        if kind == "map":
            dev = devs[op["dev"]]
            orig = _REGION_BASE + (op["id"] % _NREGIONS) * _REGION_SIZE + op["offset"]
            size = op["size"]
            m.cpu_write(orig, _bytes(op["data"], size))
            try:
                addr = dma.map_single(dev, orig, size, op["dir"], op["attrs"], op["cpu"])
            except DmaMappingError as e:
                result = f"fail:{e.cause}"
                live[op["id"]] = None
            else:
                result = f"{addr:#x}"
                if pool.start <= addr < pool.end:
                    slot = (addr - pool.start) >> IO_TLB_SHIFT
                live[op["id"]] = (dev, orig, addr, size, op["dir"])
                data_digest = _digest(m.device_read(dev, addr, size))
        else:
            entry = live.get(op["id"])
            if entry is None:
                result = "skip"
                live.pop(op["id"], None)
            else:
                dev, orig, addr, size, d = entry
                if kind == "unmap":
                    del live[op["id"]]
                    dma.unmap_single(dev, addr, size, d)
                    data_digest = _digest(m.cpu_read(orig, size))
                else:
                    off, n = op["off"], op["n"]
                    if kind == "sync_cpu":
                        dma.sync_single_for_cpu(dev, addr + off, n, d)
                        data_digest = _digest(m.cpu_read(orig, size))
                    elif kind == "sync_dev":
                        m.cpu_write(orig + off, _bytes(op["data"], n))
                        dma.sync_single_for_device(dev, addr + off, n, d)
                        data_digest = _digest(m.device_read(dev, addr, size))
                    else:                               # dev_write: DMA into the buffer
                        m.device_write(dev, addr + off, _bytes(op["data"], n))
                        data_digest = _digest(m.device_read(dev, addr, size))
        new = tuple(log.lines[seen:])
        seen = len(log.lines)
        records.append(Record(kind, result, slot, pool.used,
                              tuple(zip(pool.area_index, pool.area_used)),
                              _digest(pool.list[: pool.nslabs].tobytes()), data_digest, new))
        if i % CHECKPOINT == 0 or i == len(ops):
            hashes[i] = pool.list_hash()
    return Run(get_profile(kernel).name, cmdline, boot_log, records, hashes,
               pool.nslabs, pool.nareas)


# ------------------------------------------------------------------ the verdict --------

@dataclass
class Divergence:
    """The first operation whose records differ."""

    index: int                 #: 0-based operation number
    op: dict                   #: the operation as generated
    fields: dict               #: name -> (value on kernel a, value on kernel b)
    before: tuple              #: the pool's ``(index, used)`` per area just before it
    context: dict = field(default_factory=dict)   #: facts about the request (maps only)

    def lines(self, a: str, b: str) -> list[str]:
        op = self.op
        out = [f"first divergence at operation {self.index}: " + describe_op(op)]
        for k, v in self.context.items():
            out.append(f"  {k}: {v}")
        out.append(f"  areas before (index, used): {list(self.before)}")
        for name, (va, vb) in self.fields.items():
            out.append(f"  {name}: {a} {_show(va)} | {b} {_show(vb)}")
        return out


def _show(v) -> str:
    if isinstance(v, tuple) and v and isinstance(v[0], str):
        return " / ".join(v)
    return str(v)


def describe_op(op: dict) -> str:
    """One line for an operation, the way the book prints it."""
    if op["op"] == "map":
        d = DIRECTION_NAMES[op["dir"]].replace("DMA_", "")
        return (f"map #{op['id']} {op['dev']} size {op['size']} in-page offset {op['offset']:#x} "
                f"{d} cpu {op['cpu']}" + (" NO_WARN" if op["attrs"] else ""))
    if op["op"] == "unmap":
        return f"unmap #{op['id']}"
    extra = f" off {op['off']} n {op['n']}"
    return f"{op['op']} #{op['id']}{extra}"


@dataclass
class Verdict:
    """The answer of a differential replay; prints itself (:meth:`lines`)."""

    kernel_a: str
    kernel_b: str
    seed: int
    length: int
    cmdline: str
    boot_identical: bool
    compared: int
    identical: bool
    first: Divergence | None
    differing_ops: int
    op_counts: dict
    outcome_counts: dict
    log_lines: int
    list_hash_a: str
    list_hash_b: str
    used_a: list = field(repr=False, default_factory=list)
    used_b: list = field(repr=False, default_factory=list)
    slot_a: list = field(repr=False, default_factory=list)
    slot_b: list = field(repr=False, default_factory=list)

    def lines(self) -> list[str]:
        a, b = self.kernel_a, self.kernel_b
        ops = ", ".join(f"{k} {v}" for k, v in self.op_counts.items())
        out = [f"replay seed {self.seed}, {self.length} operations, cmdline {self.cmdline!r}: {a} vs {b}",
               f"  operations: {ops}",
               f"  maps on {a}: " + ", ".join(f"{k} {v}" for k, v in self.outcome_counts.items()),
               f"  kernel log lines after boot on {a}: {self.log_lines}",
               f"  boot logs identical: {self.boot_identical}",
               f"  final list_hash: {a} {self.list_hash_a} | {b} {self.list_hash_b}"]
        if self.identical:
            out.append(f"  VERDICT: identical -- all {self.compared} operations agree in every "
                       f"field ({', '.join(FIELDS[1:])})")
        else:
            out.append(f"  VERDICT: different -- {self.differing_ops} of {self.compared} operations "
                       "differ")
            out += ["  " + ln for ln in self.first.lines(a, b)]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def slot_rule(profile, op: dict, dev: Device) -> str:
    """The alignment rule a profile applies to one map request, with its numbers
    (``kernel/dma/swiotlb.c@7c3940bf81e5: swiotlb_do_find_slots()`` for v6.3-rc and
    ``@0459ff487373`` for v6.3; ``data/oracle/README.md``, "How the versions differ").  Empty for rule families
    other than v6.3-rc and v6.3."""
    from ..versions import ALIGN_V63, ALIGN_V63RC
    prof = get_profile(profile)
    size, mam, orig_off = op["size"], dev.min_align_mask, op["offset"]
    big = size >= PAGE_SIZE
    if prof.align_rule == ALIGN_V63RC:
        stride = (mam >> IO_TLB_SHIFT) + 1
        if big:
            stride *= 2
        bits = mam & ~0x7FF
        cmp = (f"slot address bits {bits:#x} must equal the original's" if bits
               else "no address bits compared")
        return (f"stride {stride} slot(s); the search starts at the area index rounded up to a "
                f"multiple of {stride}; {cmp}")
    if prof.align_rule == ALIGN_V63:
        mask = (mam | ((PAGE_SIZE - 1) if big else 0)) & ~0x7FF
        stride = (mask >> IO_TLB_SHIFT) + 1
        cmp = (f"slot address bits {mask:#x} must equal the original's ({orig_off & mask:#x} here)"
               if mask else "no address bits compared")
        return f"stride {stride} slot(s); the search starts at the area index itself; {cmp}"
    return ""


def _context(op: dict, dev: Device, kernels=()) -> dict:
    if op["op"] != "map":
        return {}
    out = {"request": f"{op['size']} bytes ({-(-op['size'] // 2048)} slots), "
                       f"{'at least' if op['size'] >= PAGE_SIZE else 'less than'} a page",
            "original in-page offset": f"{op['offset']:#x} (bit 11 {'set' if op['offset'] & 0x800 else 'clear'})",
            "device": f"{dev.dev_name}: min_align_mask {dev.min_align_mask:#x}, "
                      f"seg_boundary_mask {dev.seg_boundary_mask:#x}"}
    for k in kernels:
        rule = slot_rule(k, op, dev)
        if rule:
            out[f"rule on {get_profile(k).name}"] = rule
    return out


def compare(run_a: Run, run_b: Run, ops: list[dict], seed: int = -1) -> Verdict:
    """Compare two :class:`Run` s of the same operations record by record.

    The runs may be longer than ``ops`` (a longer replay of the same seed: the stream of
    :func:`generate_ops` for a length is a prefix of the stream for a greater length);
    only the first ``len(ops)`` records are compared."""
    n = len(ops)
    if len(run_a.records) < n or len(run_b.records) < n:
        raise ValueError("ops: both runs need at least one record per operation")
    recs_a, recs_b = run_a.records[:n], run_b.records[:n]
    first = None
    differing = 0
    for i, (ra, rb) in enumerate(zip(recs_a, recs_b)):
        if ra == rb:
            continue
        differing += 1
        if first is None:
            before = recs_a[i - 1].areas if i else tuple()
            dev = _device(ops[i]["dev"]) if ops[i]["op"] == "map" else None
            first = Divergence(i, dict(ops[i]),
                               {f: (ra.get(f), rb.get(f)) for f in FIELDS if ra.get(f) != rb.get(f)},
                               before, _context(ops[i], dev, (run_a.kernel, run_b.kernel)) if dev else {})
    outcomes = Counter()
    for op, r in zip(ops, recs_a):
        if op["op"] == "map":
            outcomes["ok" if not r.result.startswith("fail") else r.result] += 1
    return Verdict(run_a.kernel, run_b.kernel, seed, n, run_a.cmdline,
                   run_a.boot_log == run_b.boot_log, n,
                   first is None and run_a.boot_log == run_b.boot_log, first, differing,
                   dict(sorted(Counter(o["op"] for o in ops).items())), dict(sorted(outcomes.items())),
                   sum(len(r.log) for r in recs_a), run_a.list_hashes.get(n, "n/a"),
                   run_b.list_hashes.get(n, "n/a"),
                   [r.used for r in recs_a], [r.used for r in recs_b],
                   [r.slot for r in recs_a], [r.slot for r in recs_b])


def diff_replay(seed: int, length: int, kernel_a="v6.3rc", kernel_b="rfc-v1",
                cmdline: str = DEFAULT_CMDLINE) -> Verdict:
    """Generate the operations for ``seed``/``length``, run them on both profiles and
    compare.  With the defaults this checks RFC v1 with ``swiotlb=dynamic`` off against
    its base; ``kernel_b="v6.3"`` is the control that must find a difference."""
    ops = generate_ops(seed, length)
    return compare(run_ops(kernel_a, ops, cmdline), run_ops(kernel_b, ops, cmdline), ops, seed)


# ------------------------------------------------------------------ golden vectors -----

@dataclass
class GoldenResult:
    """How many ``expect`` objects of a golden-vector file the model reproduced."""

    path: str
    kernel: str
    checked: int = 0
    matched: int = 0
    first_mismatch: tuple | None = None    #: (line number, op, expected, model)
    file_version: str = ""

    def lines(self) -> list[str]:
        name = pathlib.Path(self.path).name
        out = [f"{name} (kernel code {self.file_version}) replayed on model profile {self.kernel}: "
               f"{self.matched} of {self.checked} expected results reproduced"]
        if self.first_mismatch:
            n, op, exp, got = self.first_mismatch
            out.append(f"  first mismatch, line {n} ({op}): expected {exp}, model {got}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def golden_check(name: str = "vectors-v6.3rc-handmade.jsonl", kernel: str = "rfc-v1",
                 directory: str | os.PathLike | None = None) -> GoldenResult:
    """Replay the file ``name`` of ``data/oracle/`` (or of ``directory``) on profile ``kernel``
    and compare with its ``expect`` objects.  A missing file raises ``FileNotFoundError``."""
    from ..oracle import replay
    if directory is None:
        path = data_path("oracle", name)
    else:
        path = pathlib.Path(directory) / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such golden-vector file")
    prof = get_profile(kernel).name
    lines = path.read_text(encoding="utf-8").splitlines()
    res = GoldenResult(str(path), prof)
    for n, (line, got) in enumerate(zip(lines, replay(lines, kernel=prof)), 1):
        rec = json.loads(line)
        if rec.get("op") == "meta":
            res.file_version = rec.get("version", "")
        if "expect" not in rec:
            continue
        res.checked += 1
        if rec["expect"] == got:
            res.matched += 1
        elif res.first_mismatch is None:
            res.first_mismatch = (n, rec["op"], rec["expect"], got)
    return res


def compare_boot(cmdline: str, kernel_a="v6.3rc", kernel_b="rfc-v1", ram: str = DEFAULT_RAM,
                 cpus: int = DEFAULT_CPUS) -> list[str]:
    """Boot both profiles with ``cmdline`` and print what each kernel logged about
    SWIOTLB, whether it forces bouncing, and the pool size."""
    out = []
    for k in (kernel_a, kernel_b):
        m = _boot(k, cmdline, ram, cpus)
        lines = [ln for ln in m.swiotlb_lines() if "ommand line" not in ln]
        out.append(f"{get_profile(k).name:>7}: force_bounce {m.swiotlb.force_bounce}, pool {m.swiotlb.nslabs} slots; "
                   f"log: {' | '.join(lines) or '(nothing)'}")
    return out
