"""Experiments of Part I, chapters 2 and 3: where a buffer lands, and inside SWIOTLB.

Chapter 2 (DMA masks and when a buffer bounces): :func:`run_map_case` maps one buffer for
one device on a freshly booted :class:`~swiotlb_lib.boot.Machine` and reports what
dma-direct did (``kernel/dma/direct.h: dma_direct_map_page()``, ``dma_capable()``);
:func:`map_decisions` runs every case of :data:`MAP_CASES`.

Chapter 3 (inside SWIOTLB):

* :func:`slot_walk` runs a fixed map/unmap sequence on a 512-slot, 2-area pool and
  snapshots the pool after every step (:class:`SlotSnapshot`);
* :func:`sync_case` moves real bytes through a bounce buffer (direction, sync, the
  map-time copy of ``swiotlb_tbl_map_single()``);
* :func:`spec_requests` replays, on one profile, a request sequence worked by hand from the
  kernel rules (``kernel/dma/swiotlb.c@0459ff487373: swiotlb_do_find_slots()`` for v6.3,
  ``kernel/dma/swiotlb.c@afd81d914f6f: swiotlb_search_pool_area()`` for v6.11);
  :func:`slot_choice` -- which slot a request gets under v6.3 or v6.11 rules;
* :func:`partial_sync` -- the partial-sync case fixed by e8068f2d756d.

Every result comes from real model runs (``Machine.dma.map_single`` and friends, or
``IoTlbMem.tbl_map_single``); these functions only drive the model and format its answers
as text.  Figures and HTML with figures are in :mod:`swiotlb_lib.plots.memory_map` and
:mod:`swiotlb_lib.plots.slots`.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from ..boot import Machine
from ..constants import (DMA_FROM_DEVICE, DMA_TO_DEVICE, DIRECTION_NAMES,
                         IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SIZE)
from ..device import Device
from ..direct import dma_capable
from ..memory import PhysMemory
from ..pool import alignment_rule, nr_slots
from ..swiotlb import DmaMappingError, IoTlbMem
from . import Experiment, register

# =====================================================================================
# Chapter 2: where a buffer lands
# =====================================================================================

#: The machines of chapter 2: name -> Machine keyword arguments.
MACHINES = {
    "x86_64 6 GiB": dict(ram="6G", cpus=4, arch="x86_64"),
    "x86_64 6 GiB, swiotlb=noforce": dict(ram="6G", cpus=4, arch="x86_64", cmdline="swiotlb=noforce"),
    "x86_64 6 GiB confidential guest": dict(ram="6G", cpus=4, arch="x86_64", mem_encrypt=True),
    "Raspberry Pi 4, 8 GiB": dict(ram="8G", cpus=4, arch="arm64-rpi4"),
}

#: Short names of the preset devices as the chapter uses them.
DEVICE_NAMES = {"nvme": "NVMe SSD", "pci32": "32-bit PCI card", "rpi4-vc4": "RPi 4 vc4 (display)",
                "rpi4-v3d": "RPi 4 v3d (GPU)", "virtio-coco": "virtio (confidential guest)",
                "virtio-blk": "virtio-blk"}

LOW, ABOVE_1G, ABOVE_4G = 0x2000000, 0x50000000, 0x140000000

#: (label, machine, device preset, buffer address): the states of the main widget.
MAP_CASES = [
    ("NVMe · buffer at 5 GiB", "x86_64 6 GiB", "nvme", ABOVE_4G),
    ("32-bit PCI · buffer at 32 MiB", "x86_64 6 GiB", "pci32", LOW),
    ("32-bit PCI · buffer at 1.25 GiB", "x86_64 6 GiB", "pci32", ABOVE_1G),
    ("32-bit PCI · buffer at 5 GiB", "x86_64 6 GiB", "pci32", ABOVE_4G),
    ("32-bit PCI · buffer at 5 GiB · swiotlb=noforce", "x86_64 6 GiB, swiotlb=noforce", "pci32", ABOVE_4G),
    ("RPi 4 vc4 · buffer at 32 MiB", "Raspberry Pi 4, 8 GiB", "rpi4-vc4", LOW),
    ("RPi 4 vc4 · buffer at 1.25 GiB", "Raspberry Pi 4, 8 GiB", "rpi4-vc4", ABOVE_1G),
    ("RPi 4 vc4 · buffer at 5 GiB", "Raspberry Pi 4, 8 GiB", "rpi4-vc4", ABOVE_4G),
    ("RPi 4 v3d · buffer at 5 GiB", "Raspberry Pi 4, 8 GiB", "rpi4-v3d", ABOVE_4G),
    ("virtio, confidential guest · buffer at 32 MiB", "x86_64 6 GiB confidential guest", "virtio-coco", LOW),
    ("virtio, confidential guest · buffer at 5 GiB", "x86_64 6 GiB confidential guest", "virtio-coco", ABOVE_4G),
]
DEFAULT_MAP_CASE = "32-bit PCI · buffer at 5 GiB"


def boot(machine: str, **extra) -> Machine:
    """A freshly booted machine of :data:`MACHINES` (``extra`` overrides arguments)."""
    return Machine(**{**MACHINES[machine], **extra})


def left_table(rows) -> str:
    """Rows of text cells, every column left-aligned two spaces apart, lines right-stripped
    (the layout of chapter 3's request tables and chapter 2's decision table)."""
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows)


@dataclass
class MapResult:
    """What ``dma_map_single`` did for one buffer (chapter 2)."""

    machine: str
    device: str
    dev: Device
    paddr: int
    size: int
    capable: bool            # dma_capable() of the original buffer
    forced: bool             # SWIOTLB forces every mapping to bounce
    outcome: str             # "direct", "bounce" or "fail"
    dma: int | None
    slot: int | None
    cause: str | None
    log: list = field(default_factory=list)
    pool: tuple | None = None
    layout: object = None


def run_map_case(machine: str, device: str, paddr: int, size: int = 4096,
                 dev: Device | None = None) -> MapResult:
    """Boot ``machine``, attach ``device`` (a preset name, or ``dev``), map ``size``
    bytes at ``paddr`` for DMA_TO_DEVICE and report what happened."""
    m = boot(machine)
    d = m.add_device(dev if dev is not None else device)
    before = len(m.log.lines)
    pool = m.swiotlb.defpool
    capable = dma_capable(d, paddr, size)
    forced = bool(m.swiotlb.force_bounce)
    try:
        dma = m.dma.map_single(d, paddr, size, DMA_TO_DEVICE)
        outcome = "direct" if dma == paddr else "bounce"
        slot = pool.slot_of(dma) if outcome == "bounce" else None
        cause = None
    except DmaMappingError as e:
        dma, outcome, slot, cause = None, "fail", e.rejected_slot, e.cause
    return MapResult(machine, device, d, paddr, size, capable, forced, outcome, dma, slot, cause,
                     m.log.lines[before:], (pool.start, pool.end) if pool is not None else None,
                     m.layout)


def map_case(label: str) -> MapResult:
    """:func:`run_map_case` of the case of :data:`MAP_CASES` called ``label``."""
    _, machine, device, paddr = next(c for c in MAP_CASES if c[0] == label)
    return run_map_case(machine, device, paddr)


def explain(r: MapResult) -> str:
    """One line in words: the dma-direct decision for ``r``."""
    end = r.paddr + r.size - 1
    cap = f"end {end:#x} {'≤' if r.capable else '>'} reach {r.dev.reach:#x}"
    if r.forced:
        head = "SWIOTLB forces bouncing (memory encryption)"
    elif r.capable:
        head = f"dma_capable: {cap}"
    else:
        head = f"not dma_capable: {cap}"
    if r.outcome == "direct":
        return f"{head} → direct: the device uses {r.dma:#x}"
    if r.outcome == "bounce":
        return f"{head} → bounce: copied to slot {r.slot} at {r.dma:#x}"
    if r.cause == "out_of_reach" and r.pool is None:
        return f"{head}, and there is no SWIOTLB pool → mapping fails"
    return f"{head} → mapping fails ({r.cause})"


def map_decisions(cases=MAP_CASES) -> list[dict]:
    """Every case of :data:`MAP_CASES` mapped: ``case``, ``reach``, ``outcome``, ``dma``
    (None when the mapping failed), ``slot``, ``cause`` and the decision in words."""
    out = []
    for label, machine, device, paddr in cases:
        r = run_map_case(machine, device, paddr)
        out.append({"case": label, "reach": r.dev.reach, "outcome": r.outcome, "dma": r.dma,
                    "slot": r.slot, "cause": r.cause, "why": explain(r)})
    return out


def decision_lines(rows) -> list[str]:
    """The text table of :func:`map_decisions`: case, device reach, outcome, DMA address."""
    cells = [("case", "reach", "outcome", "DMA address")]
    cells += [(r["case"], f"{r['reach']:#x}", r["outcome"], f"{r['dma']:#x}" if r["dma"] is not None else "-")
              for r in rows]
    return left_table(cells).splitlines()


def decision_table(cases=MAP_CASES) -> str:
    """A text table of every case of :data:`MAP_CASES`: buffer, device reach, outcome."""
    return "\n".join(decision_lines(map_decisions(cases)))


def overview_maps() -> list[dict]:
    """The chapter-2 overview: x86_64 with 6 GiB and a Raspberry Pi 4 with 8 GiB, each as
    ``dict(layout=, pool=(start, end), devices=[(label, reach), ...], title=)``."""
    maps = []
    for machine, devices in (("x86_64 6 GiB", ["nvme", "pci32"]),
                             ("Raspberry Pi 4, 8 GiB", ["rpi4-vc4", "rpi4-v3d"])):
        m = boot(machine)
        p = m.swiotlb.defpool
        reaches = [(DEVICE_NAMES[k], m.add_device(k).reach) for k in devices]
        maps.append(dict(layout=m.layout, pool=(p.start, p.end), devices=reaches, title=machine))
    return maps


# =====================================================================================
# Chapter 3: inside SWIOTLB
# =====================================================================================

@dataclass
class SlotSnapshot:
    """The state of one pool at one moment, copied out of the model.

    ``owners[i]`` is the number of the mapping holding slot ``i`` (-1 when free);
    ``pad[i]`` is True for a padding slot (v6.9+ pre-padding, held but unused);
    ``labels`` maps a mapping number to a short text.
    """

    start: int
    nslabs: int
    nareas: int
    area_nslabs: int
    list: np.ndarray
    owners: np.ndarray
    pad: np.ndarray
    area_index: list
    area_used: list
    labels: dict = field(default_factory=dict)

    @property
    def used(self) -> int:
        return int(sum(self.area_used))


def snapshot(pool, buffers, labels=None) -> SlotSnapshot:
    """Copy ``pool``'s state.  ``buffers`` is an iterable of ``(number, BounceBuffer)``
    (the model's live bounce buffers, :attr:`IoTlbMem.live`) of this pool."""
    n = pool.nslabs
    owners = np.full(n, -1, dtype=np.int32)
    pad = np.zeros(n, dtype=bool)
    for k, b in buffers:
        if b.pool is not pool:
            continue
        owners[b.first_slot:b.first_slot + b.nslots] = k
        real_first = (b.tlb_addr - pool.start) >> IO_TLB_SHIFT
        pad[b.first_slot:real_first] = True
    return SlotSnapshot(pool.start, n, pool.nareas, pool.area_nslabs,
                        np.array(pool.list[:n], dtype=np.int64), owners, pad,
                        list(pool.area_index), list(pool.area_used), dict(labels or {}))


#: The map/unmap sequence of the chapter-3 main widget: (caption, op, args).
#: op "map": (name, paddr, size, cpu); op "unmap": (name,).  Zoom = first slot of the strip.
SLOT_STEPS = [
    ("boot: 512 free slots, 2 areas of 256; every list[i] counts down to its segment end",
     "boot", (), 0),
    ("CPU 0 maps a 16-byte request header", "map", ("header", 0x2252678, 16, 0), 0),
    ("CPU 0 maps a 4 KiB page: it must start on a page boundary, so slot 1 is skipped",
     "map", ("page A", 0x3000000, 4096, 0), 0),
    ("CPU 1 maps 64 KiB: CPU 1 starts in area 1", "map", ("64 KiB (CPU 1)", 0x4000000, 65536, 1), 248),
    ("CPU 0 maps 200 KiB (100 slots) from its area's index", "map", ("200 KiB", 0x5000000, 204800, 0), 96),
    ("CPU 0 maps 64 KiB: the 24 slots left in segment 0 are too few, so it goes to the next segment",
     "map", ("64 KiB", 0x6000000, 65536, 0), 120),
    ("unmap page A: its slots merge with the free slot 1 before them", "unmap", ("page A",), 0),
    ("CPU 0 maps 192 KiB: it fills area 0 to its end, and index wraps to 0",
     "map", ("192 KiB", 0x7000000, 196608, 0), 248),
    ("CPU 0 maps a 4 KiB page: the search restarts at slot 0 and reuses page A's slots",
     "map", ("page B", 0x3001000, 4096, 0), 0),
    ("CPU 0 maps 256 KiB: area 0 has only 25 free slots, so the search moves on to area 1",
     "map", ("256 KiB", 0x8000000, 262144, 0), 376),
    ("CPU 1 maps 256 KiB: no area has 128 free slots in one segment, so the mapping fails",
     "map", ("256 KiB (CPU 1)", 0x9000000, 262144, 1), 280),
]


#: The step the chapter-3 widget shows first: CPU 0's 256 KiB buffer spills into area 1,
#: with every feature of the pool visible; one step right is the failure.
DEFAULT_STEP = 9


@dataclass
class Step:
    """The pool after one step of :func:`slot_walk`."""

    number: int
    caption: str
    snap: SlotSnapshot
    result: str
    log: list
    highlight: tuple | None
    zoom: int
    index_before: list
    index_after: list


def slot_walk(kernel: str = "v6.11", steps=SLOT_STEPS) -> list:
    """Run ``steps`` on a 2-CPU machine booted with ``swiotlb=512,force`` and snapshot the
    pool after each.  Returns a list of :class:`Step`."""
    m = Machine(ram="2G", cpus=2, cmdline="swiotlb=512,force", kernel=kernel)
    dev = m.add_device("virtio-blk")
    pool = m.swiotlb.defpool
    live, numbers, labels = {}, {}, {}
    out = []
    for n, (caption, op, args, zoom) in enumerate(steps):
        before_log = len(m.log.lines)
        idx_before = list(pool.area_index)
        highlight = None
        if op == "boot":
            result = (f"pool [{pool.start:#x}, {pool.end:#x}): {pool.nslabs} slots, "
                      f"{pool.nareas} areas of {pool.area_nslabs}")
        elif op == "map":
            name, paddr, size, cpu = args
            try:
                dma = m.dma.map_single(dev, paddr, size, DMA_TO_DEVICE, cpu=cpu)
                buf = m.swiotlb.live[dma]
                live[name] = (dma, size)
                numbers[dma] = len(labels)
                labels[len(labels)] = name
                highlight = (buf.first_slot, buf.nslots)
                result = (f"{name}: {nr_slots(size)} slot(s) → slots {buf.first_slot}–"
                          f"{buf.first_slot + buf.nslots - 1} at {dma:#x}")
            except DmaMappingError as e:
                result = f"{name}: {nr_slots(size)} slots needed → FAILED ({e.cause})"
        else:
            (name,) = args
            dma, size = live.pop(name)
            buf = m.swiotlb.live[dma]
            highlight = (buf.first_slot, buf.nslots)
            m.dma.unmap_single(dev, dma, size, DMA_TO_DEVICE)
            result = f"unmap {name}: slots {buf.first_slot}–{buf.first_slot + buf.nslots - 1} freed"
        bufs = [(numbers[t], b) for t, b in m.swiotlb.live.items()]
        snap = snapshot(pool, bufs, labels)
        out.append(Step(n, caption, snap, result, m.log.lines[before_log:], highlight, zoom,
                        idx_before, list(pool.area_index)))
    return out


def slot_walk_lines(steps) -> list[str]:
    """One line per :class:`Step` (area indexes, slots used, result) and its kernel lines."""
    out = []
    for step in steps:
        out.append(f"{step.number:2} index {step.snap.area_index!s:9} used {step.snap.area_used!s:10} "
                   f"{step.result}")
        out += ["       " + line for line in step.log]
    return out


def step_table_html(step: Step) -> str:
    """HTML table of one :class:`Step`: each area's index (before → after) and slots used."""
    s = step.snap
    td = "<td style='padding:1px 10px'>"
    rows = "".join(f"<tr>{td}area {a}</td>{td}{step.index_before[a]} → {s.area_index[a]}</td>"
                   f"{td}{s.area_used[a]}</td></tr>" for a in range(s.nareas))
    return ("<table style='font-size:85%;border-collapse:collapse'><tr><th>area</th>"
            "<th>index (before → after)</th><th>used</th></tr>" + rows
            + f"<tr><td colspan=3 style='padding:1px 10px'>io_tlb_used = {s.used} of {s.nslabs} "
            "slots</td></tr></table>")


# -- direction and sync with real bytes ------------------------------------------------

ORIG = 0x10000000 + 0x340      # the driver's buffer (CPU side)
# Three 32-byte strings that differ at every position, so each byte shown can be
# coloured by where it came from.
STALE = b"Secret_PIN_4711|TOKEN_9F3A|ALICE"      # an earlier mapping's bytes
OLD = b"(old contents of the CPU buffer)"        # what the CPU buffer held before
PACKET = b"PACKET #1 from the device: hello"     # what the device writes


@dataclass
class SyncResult:
    """Bytes seen at each stage of :func:`sync_case` (all 32 bytes long)."""

    case: str
    rows: list          # (stage, cpu_view, bounce_view)
    tlb: int
    log: list

    def lines(self) -> list[str]:
        out = [f"{self.case}:"]
        for stage, cpu_view, bounce_view in self.rows:
            out.append(f"  {stage:45} CPU {cpu_view!r}")
            out.append(f"  {'':45} dev {bounce_view!r}")
        return out


def sync_case(case: str, kernel: str = "v6.11") -> SyncResult:
    """Move real bytes through a bounce buffer.

    Setup (the same for every case): a 1-CPU machine with ``swiotlb=128,force``.  An
    earlier mapping left :data:`STALE` in slot 0 (freed slots are not cleared); a big
    mapping then moves the area's index to the end so it wraps to 0, and the next
    mapping gets slot 0 again.  ``case`` is one of :data:`SYNC_CASES`.
    """
    m = Machine(ram="2G", cpus=1, cmdline="swiotlb=128,force", kernel=kernel)
    dev = m.add_device("virtio-blk")
    # an earlier user of slot 0
    m.cpu_write(0x30000000, STALE)
    a = m.dma.map_single(dev, 0x30000000, len(STALE), DMA_TO_DEVICE)
    m.dma.unmap_single(dev, a, len(STALE), DMA_TO_DEVICE)
    fill = m.dma.map_single(dev, 0x31000000, 126 * IO_TLB_SIZE, DMA_TO_DEVICE)
    m.dma.unmap_single(dev, fill, 126 * IO_TLB_SIZE, DMA_TO_DEVICE)
    n = len(OLD)
    m.cpu_write(ORIG, OLD)
    rows = [("before the map", m.cpu_read(ORIG, n), m.cpu_read(a, n))]
    before = len(m.log.lines)
    direction = DMA_TO_DEVICE if case == "wrong direction: mapped TO_DEVICE" else DMA_FROM_DEVICE
    dma = m.dma.map_single(dev, ORIG, n, direction)
    if dma != a:
        raise RuntimeError(f"expected the bounce buffer to reuse slot 0 at {a:#x}, got {dma:#x}")
    rows.append((f"dma_map_single(…, {DIRECTION_NAMES[direction]})", m.cpu_read(ORIG, n),
                 m.cpu_read(dma, n)))
    written = PACKET[:10] if case == "device writes 10 bytes, unmap" else PACKET
    m.device_write(dev, dma, written)
    rows.append((f"device writes {len(written)} bytes", m.cpu_read(ORIG, n), m.cpu_read(dma, n)))
    if case == "no sync: CPU reads at once":
        rows.append(("CPU reads its buffer (no sync)", m.cpu_read(ORIG, n), m.cpu_read(dma, n)))
    elif case == "dma_sync_single_for_cpu, then read":
        m.dma.sync_single_for_cpu(dev, dma, n, DMA_FROM_DEVICE)
        rows.append(("dma_sync_single_for_cpu(…, DMA_FROM_DEVICE)", m.cpu_read(ORIG, n), m.cpu_read(dma, n)))
    else:
        m.dma.unmap_single(dev, dma, n, direction)
        rows.append((f"dma_unmap_single(…, {DIRECTION_NAMES[direction]})", m.cpu_read(ORIG, n),
                     m.cpu_read(dma, n)))
    return SyncResult(case, rows, dma, m.log.lines[before:])


SYNC_CASES = ["no sync: CPU reads at once", "dma_sync_single_for_cpu, then read",
              "dma_unmap_single, then read", "wrong direction: mapped TO_DEVICE",
              "device writes 10 bytes, unmap"]


def sync_cases(kernel: str = "v6.11") -> list[SyncResult]:
    """:func:`sync_case` for every case of :data:`SYNC_CASES`."""
    return [sync_case(c, kernel) for c in SYNC_CASES]


def sync_cases_lines(results) -> list[str]:
    """The bytes of every stage of each :class:`SyncResult`, as text."""
    return [ln for r in results for ln in r.lines()]


def _color_bytes(data: bytes) -> str:
    """Bytes as monospace text, each byte coloured by where it came from."""
    out = []
    for i, b in enumerate(data):
        ch = chr(b) if 32 <= b < 127 else "·"
        if b == PACKET[i]:
            col = "#2a9d8f"          # from the device
        elif b == STALE[i]:
            col = "#d62828"          # an earlier mapping's leftovers
        elif b == OLD[i]:
            col = "#6c757d"          # the CPU buffer's old contents
        else:
            col = "#000000"
        out.append(f"<span style='color:{col}'>{html.escape(ch)}</span>")
    return "<code>" + "".join(out) + "</code>"


SYNC_NOTES = {
    "no sync: CPU reads at once": "The device wrote into the bounce slot; the CPU's buffer still "
        "holds its old bytes, because nothing copied them back.",
    "dma_sync_single_for_cpu, then read": "The sync copies the bounce slot back to the CPU's "
        "buffer (FROM_DEVICE/BIDIRECTIONAL only): the CPU now sees the device's data.",
    "dma_unmap_single, then read": "Unmap copies back once, then frees the slot; the slot keeps "
        "its bytes (freed slots are not cleared).",
    "wrong direction: mapped TO_DEVICE": "A TO_DEVICE mapping is never copied back: the device's "
        "data stays in the bounce slot and is lost.",
    "device writes 10 bytes, unmap": "Unmap copies all 32 mapped bytes back. The 22 the device "
        "did not write are the CPU buffer's own bytes, because the map copied them in first. "
        "Without that copy they would be the earlier mapping's bytes (red, row 1).",
}


def sync_html(r: SyncResult) -> str:
    """HTML of one :class:`SyncResult`: the note, the kernel lines, the bytes per stage."""
    legend = ("<small><span style='color:#2a9d8f'>device data</span> · "
              "<span style='color:#6c757d'>CPU buffer's old bytes</span> · "
              "<span style='color:#d62828'>bytes left in the slot by an earlier mapping</span></small>")
    td = "<td style='padding:2px 8px'>"
    rows = "".join(f"<tr>{td}{html.escape(stage)}</td>{td}{_color_bytes(cpu)}</td>"
                   f"{td}{_color_bytes(bounce)}</td></tr>" for stage, cpu, bounce in r.rows)
    log = "".join(f"<br><code>{html.escape(line)}</code>" for line in r.log)
    return (f"<div><b>{html.escape(r.case)}</b>: {html.escape(SYNC_NOTES[r.case])}{log}</div>"
            "<table style='font-size:85%'><tr><th>stage</th><th>CPU buffer "
            f"@ {ORIG:#x}</th><th>bounce slot @ {r.tlb:#x}</th></tr>{rows}</table>{legend}")


# -- which slot: v6.3 vs v6.11 ---------------------------------------------------------

SPEC_POOL = dict(start=0x7C000000, nslabs=32768, nareas=4)
#: Requests worked by hand from the v6.3 and v6.11 slot-search rules (see
#: :func:`spec_requests`): (orig, size, min_align_mask, cpu)
SPEC_REQUESTS = [(0x10000000, 4096, 0, 0), (0x10000200, 512, 0, 0), (0x10000800, 4096, 0, 0),
                 (0x20000900, 6000, 0xFFF, 0), (0x30000000, 65536, 0, 1), (0x40000000, 300 * 1024, 0, 0)]


def _spec_device(mem, mask: int) -> Device:
    d = Device("nvme0" if mask else "dev0", min_align_mask=mask, driver="nvme" if mask else "")
    d.dma_io_tlb_mem = mem
    return d


def spec_requests(kernel: str, requests=SPEC_REQUESTS):
    """Replay the :data:`SPEC_REQUESTS` on a fresh pool (0x7C000000, 32768 slots, 4 areas).
    The sequence was worked by hand from the kernel rules,
    ``kernel/dma/swiotlb.c@0459ff487373: swiotlb_do_find_slots()`` (v6.3) against
    ``kernel/dma/swiotlb.c@afd81d914f6f: swiotlb_search_pool_area()`` (v6.11); request 3
    is the first where the two differ.
    Returns ``(rows, mem, pool)``; a row is ``(orig, size, min_align, cpu, slot or None, tlb)``."""
    mem = IoTlbMem(kernel, memory=PhysMemory(), nr_cpus=4)
    pool = mem.init_pool(**SPEC_POOL)
    devs = {}
    rows = []
    for orig, size, mask, cpu in requests:
        if mask not in devs:
            devs[mask] = _spec_device(mem, mask)
        try:
            tlb = mem.tbl_map_single(devs[mask], orig, size, cpu=cpu)
            rows.append((orig, size, mask, cpu, pool.slot_of(tlb), tlb))
        except DmaMappingError:
            rows.append((orig, size, mask, cpu, None, None))
    return rows, mem, pool


def spec_slots(kernels=("v6.3", "v6.11")) -> dict:
    """The rows of :func:`spec_requests` on each profile: ``{kernel: rows}``."""
    return {k: spec_requests(k)[0] for k in kernels}


def spec_lines(res: dict) -> list[str]:
    """:func:`spec_slots` side by side: one line per request, ``slot → tlb`` per profile."""
    kernels = list(res)
    rows = [["#", "orig", "size", "min_align", "cpu"] + [f"{k}: slot → tlb" for k in kernels]]
    for i, base in enumerate(res[kernels[0]]):
        orig, size, mask, cpu = base[:4]
        cells = [str(i + 1), f"{orig:#x}", str(size), f"{mask:#x}", str(cpu)]
        for k in kernels:
            slot, tlb = res[k][i][4:]
            cells.append("fails" if slot is None else f"{slot} → {tlb:#x}")
        rows.append(cells)
    return left_table(rows).splitlines()


def spec_table(kernels=("v6.3", "v6.11")) -> str:
    """The :data:`SPEC_REQUESTS` side by side on two profiles (text table)."""
    return "\n".join(spec_lines(spec_slots(kernels)))


def spec_strips(kernels=("v6.3", "v6.11"), through: int = 4) -> list[tuple]:
    """Per profile, after the first ``through`` of :data:`SPEC_REQUESTS`:
    ``(snapshot, title, slots of request 3)`` for a strip of slots 0–11."""
    out = []
    for k in kernels:
        rows, mem, pool = spec_requests(k, SPEC_REQUESTS[:through])
        numbers = {t: i for i, t in enumerate(r[5] for r in rows)}
        third = rows[2]
        b = mem.live[third[5]]
        out.append((snapshot(pool, [(numbers[t], bb) for t, bb in mem.live.items()]),
                    f"{k}: request 3 (orig {third[0]:#x}, 4 KiB) → slot {third[4]}; "
                    f"request 4 (NVMe) → slot {rows[3][4]}",
                    range(b.first_slot, b.first_slot + b.nslots)))
    return out


OFFSETS = {"0x000": 0x000, "0x200": 0x200, "0x800": 0x800, "0x900": 0x900, "0xe00": 0xE00}
SIZES = {"512 B": 512, "2 KiB": 2048, "4 KiB": 4096, "6000 B": 6000, "12 KiB": 12288}
MIN_ALIGN = {"none": 0, "NVMe 0xfff": 0xFFF}


@dataclass
class SlotChoice:
    """Where :func:`slot_choice` put the third request, and the rule that decided it."""

    kernel: str
    orig: int
    nbytes: int
    mask: int
    tlb: int | None              # None: the mapping failed
    slot: int | None
    first_slot: int | None       # first slot held (padding included)
    nslots: int | None
    cause: str | None
    rule: str                    # the profile's rule family
    why: str                     # the rule in words
    stride: int
    snap: SlotSnapshot

    def lines(self) -> list[str]:
        head = f"{self.kernel}: orig {self.orig:#x}, {self.nbytes} bytes, min_align {self.mask:#x} → "
        if self.tlb is None:
            head += f"mapping failed ({self.cause})"
        else:
            head += (f"slot {self.slot}, bounce address {self.tlb:#x} ({self.nslots} slot(s) held, "
                     f"from slot {self.first_slot}); tlb & 0xfff = {self.tlb & 0xFFF:#05x}, "
                     f"orig & 0xfff = {self.orig & 0xFFF:#05x}")
        return [head, f"  rule ({self.rule} family): {self.why}; an occupied candidate steps by "
                      f"{self.stride} slot(s)"]


def slot_choice(kernel: str = "v6.3", offset: str = "0x800", size: str = "4 KiB",
                min_align: str = "none") -> SlotChoice:
    """After requests 1 and 2 of :data:`SPEC_REQUESTS`, map ``size`` bytes at page offset
    ``offset`` (orig ``0x20000000 + offset``) for a device with ``min_align`` under
    ``kernel``'s rules (keys of :data:`SIZES`, :data:`OFFSETS`, :data:`MIN_ALIGN`)."""
    rows, mem, pool = spec_requests(kernel, SPEC_REQUESTS[:2])
    mask = MIN_ALIGN[min_align]
    nbytes = SIZES[size]
    orig = 0x20000000 + OFFSETS[offset]
    numbers = {r[5]: i for i, r in enumerate(rows)}
    tlb = slot = first = nslots = cause = None
    try:
        tlb = mem.tbl_map_single(_spec_device(mem, mask), orig, nbytes)
        numbers[tlb] = 2
        b = mem.live[tlb]
        slot, first, nslots = pool.slot_of(tlb), b.first_slot, b.nslots
    except DmaMappingError as e:
        cause = e.cause
    alloc = nbytes + (orig & mask & (IO_TLB_SIZE - 1))
    rule = mem.profile.align_rule
    cmp_mask, zero_mask, stride = alignment_rule(rule, mask, 0, alloc >= PAGE_SIZE)
    if zero_mask & ~(IO_TLB_SIZE - 1):
        why = f"the slot address must have bits {zero_mask:#x} clear"
    else:
        why = "any slot start is allowed"
    if cmp_mask:
        why += f"; its bits {cmp_mask:#x} must equal the original's"
    snap = snapshot(pool, [(numbers[t], bb) for t, bb in mem.live.items()])
    return SlotChoice(kernel, orig, nbytes, mask, tlb, slot, first, nslots, cause, rule, why, stride, snap)


# -- partial sync (e8068f2d756d) ------------------------------------------------------------

def partial_sync(kernel: str):
    """NVMe (min_align 0xfff) maps 4 KiB at page offset 0x600 FROM_DEVICE; the device writes
    16 bytes into the buffer's second slot at in-slot offset 0x100 (< the 0x600 offset)
    and the driver syncs just those bytes.  Returns ``(copied, dma, target, cpu_bytes,
    log_lines)``."""
    m = Machine(ram="2G", cpus=1, cmdline="swiotlb=force", kernel=kernel)
    dev = m.add_device("nvme")
    orig = 0x20000000 + 0x600
    m.cpu_write(orig, bytes(4096))
    dma = m.dma.map_single(dev, orig, 4096, DMA_FROM_DEVICE)
    target = (((dma >> IO_TLB_SHIFT) + 1) << IO_TLB_SHIFT) + 0x100
    before = len(m.log.lines)
    m.device_write(dev, target, b"Q" * 16)
    m.dma.sync_single_for_cpu(dev, target, 16, DMA_FROM_DEVICE)
    got = m.cpu_read(orig + (target - dma), 16)
    return got == b"Q" * 16, dma, target, got, m.log.lines[before:]


def partial_syncs(kernels=("v6.3", "v6.6", "v6.11")) -> dict:
    """:func:`partial_sync` on each profile: ``{kernel: (copied, dma, target, got, log)}``."""
    return {k: partial_sync(k) for k in kernels}


def partial_sync_lines(res: dict) -> list[str]:
    """:func:`partial_syncs` as text: copied or not per profile, and the kernel lines."""
    out = []
    for kernel, (copied, dma, target, got, log) in res.items():
        out.append(f"{kernel:6} buffer {dma:#x}, sync at {target:#x}: "
                   f"{'copied' if copied else 'NOT copied'}, CPU sees {got[:4]!r}...")
        out += ["        " + line for line in log]
    return out


# -- the registry ------------------------------------------------------------------------

register(Experiment("dma-decisions", map_decisions, "direct, bounce or fail for each device and buffer",
                    chapter="ch02", seeded=False, lines=decision_lines))
register(Experiment("slot-walk", slot_walk, "a map/unmap sequence on a 512-slot, 2-area pool",
                    chapter="ch03", kernels="one", seeded=False, lines=slot_walk_lines))
register(Experiment("worked-requests", spec_slots, "six requests worked by hand, slot per profile",
                    chapter="ch03", kernels="many", seeded=False, lines=spec_lines))
register(Experiment("slot-choice", slot_choice, "which slot the third request gets, and the rule",
                    chapter="ch03", kernels="one", seeded=False,
                    defaults={"offset": "0x800", "size": "4 KiB", "min_align": "none"}))
register(Experiment("sync-cases", sync_cases, "real bytes through a bounce buffer, with and without sync",
                    chapter="ch03", kernels="one", seeded=False, lines=sync_cases_lines))
register(Experiment("partial-sync", partial_syncs, "a 16-byte sync before the in-slot offset (e8068f2d756d)",
                    chapter="ch03", kernels="many", seeded=False, lines=partial_sync_lines))
