"""Experiments of chapter 4, "Three systems the fixed pool fails".

The cover letter of the RFC (cover.1679309810.git.petr.tesarik.ext@huawei.com) names
three assumptions of the fixed pool and three systems that break them.  Each part here
runs the model on one of them:

(a) a confidential guest -- :func:`coco_boot`, :func:`coco_sizing`, :func:`coco_pool`,
    :func:`coco_need`, :func:`coco_ram_rows`, :func:`coco_small_pool`: the pool sized by
    ``mem_encrypt_init()`` / ``swiotlb_adjust_size()`` (6 % of memory, clamped) and what a
    burst of I/O really holds;
(b) the Raspberry Pi 4 display path -- :func:`frame_sizes`, :func:`rpi_frame`,
    :func:`rpi_segments`: a scattered display buffer imported by vc4 with ``dma_map_sg()``;
    :func:`rpi_screen`: what vc4 scans out over several frames rendered into the same buffers;
(c) a small Arm board -- :func:`board_run`, :func:`board_rows`, :func:`board_grid`: the
    pool against the applications' memory on 512 MiB.

The functions are small wrappers over :class:`~swiotlb_lib.boot.Machine` and
:func:`~swiotlb_lib.scenarios.systems.run_scenario`; results are cached, so the chapter's
figures and widgets share runs.  Each result has a text form here (``*_lines``,
``*_table``); figures and widget states are in :mod:`swiotlb_lib.plots.systems`.
"""
from __future__ import annotations

import random
from functools import lru_cache

from ..boot import Machine, coco_swiotlb_size
from ..cmdline import SwiotlbSetup
from ..constants import (DMA_ATTR_MAY_SLEEP, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, DMA_TO_DEVICE,
                         IO_TLB_SEGMENT_BYTES, IO_TLB_SHIFT, GiB, MiB)
from ..debug import KernelLog
from ..memory import layout_for
from ..report import mib
from ..report import compare_table
from ..swiotlb import DmaMappingError
from .systems import Recorder, ScenarioResult, rpi4_machine, run_scenario, scattered_buffer
from . import Experiment, register


def brief(table: str, keep=("cmdline", "attempted", "mapped", "failed", "  ", "peak", "pools added",
                            "transient", "imports", "OOM")) -> str:
    """The header and the rows of a :func:`swiotlb_lib.report.compare_table` whose label
    starts with one of ``keep`` (the long cost rows are left out)."""
    lines = table.splitlines()
    return "\n".join(lines[:1] + [ln for ln in lines[1:] if ln.startswith(keep)])


def brief_lines(results) -> list[str]:
    """:func:`brief` of the :func:`~swiotlb_lib.report.compare_table` of ``results``."""
    return brief(compare_table(results)).splitlines()


# ================================================================== (a) confidential guest

#: RAM sizes (GiB) of the sizing curve and of the widget's states.
COCO_CURVE_GIB = (0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
COCO_WIDGET_GIB = (1, 2, 4, 8, 12, 16, 24, 32, 64)


@lru_cache(maxsize=None)
def coco_boot(ram_gib: float, cpus: int = 8, kernel: str = "v6.3", cmdline: str = "") -> dict:
    """Boot a confidential x86 guest (``mem_encrypt=True``) and report its sizing.

    Keys: ``label``, ``ram`` (nominal bytes), ``memblock`` (what the model's e820 map
    gives ``memblock_phys_mem_size()``), ``six_percent``, ``clamped`` (both from that
    memblock size), ``pool`` (bytes of the boot pool), ``nareas``, ``lines`` (the
    SWIOTLB boot-log lines, as the realkernel boots grepped them), ``force`` (every
    mapping bounces)."""
    ram = int(ram_gib * GiB)
    m = Machine(ram=ram, cpus=cpus, mem_encrypt=True, kernel=kernel, cmdline=cmdline)
    total = m.layout.total_ram
    pool = m.swiotlb.defpool
    return {"label": f"{ram_gib:g} GiB", "ram": ram, "memblock": total,
            "six_percent": total * 6 // 100, "clamped": coco_swiotlb_size(total),
            "pool": pool.nslabs << IO_TLB_SHIFT if pool else 0,
            "nareas": pool.nareas if pool else 0,
            "lines": tuple(ln for ln in m.swiotlb_lines() if "ommand line" not in ln),
            "force": m.swiotlb.force_bounce}


def coco_sizing(gib=COCO_CURVE_GIB, cpus: int = 8, kernel: str = "v6.3") -> list[dict]:
    """:func:`coco_boot` for each RAM size."""
    return [coco_boot(g, cpus, kernel) for g in gib]


def coco_lines(rows) -> list[str]:
    """Rows of :func:`coco_sizing` as text: RAM, 6 %, the two boot-log sizing lines, pool,
    share of RAM."""
    out = [f"{'RAM':>8} {'6 % of memblock':>16} {'adjusted to':>12} {'roundup to':>11} {'pool':>9} {'% RAM':>6}"]
    for r in rows:
        adj = next((ln.split("adjusted to ")[1] for ln in r["lines"] if "adjusted to" in ln), "-")
        rnd = next((ln.split("roundup to ")[1] for ln in r["lines"] if "roundup to" in ln), "-")
        out.append(f"{r['label']:>8} {r['six_percent'] / MiB:>13.1f} MiB {adj:>12} {rnd:>11} "
                   f"{mib(r['pool']):>9} {100 * r['pool'] / r['ram']:>5.1f}%")
    return out


def coco_table(gib=COCO_WIDGET_GIB, cpus: int = 8) -> str:
    """A plain-text table: RAM, 6 %, the two boot-log sizing lines, pool, share of RAM."""
    return "\n".join(coco_lines(coco_sizing(gib, cpus)))


def coco_pool(ram_gib: float = 12.0, cpus: int = 8) -> dict:
    """The sizing steps only (no boot), fast enough for a slider.

    Runs the model's ``swiotlb_adjust_size`` with 6 % of the e820 RAM clamped, then
    ``swiotlb_adjust_nareas(cpus)`` as ``swiotlb_init_remap`` does.  Keys: ``ram_gib``,
    ``cpus``, ``ram`` (bytes), ``pool`` (bytes), ``nareas``, ``lines`` (what the kernel logs)."""
    ram = int(ram_gib * GiB)
    total = layout_for("x86_64", ram).total_ram
    st = SwiotlbSetup(log=KernelLog())
    st.adjust_size(coco_swiotlb_size(total))
    st.adjust_nareas(cpus)
    return {"ram_gib": ram_gib, "cpus": cpus, "ram": ram, "pool": st.default_nslabs << IO_TLB_SHIFT,
            "nareas": st.default_nareas, "lines": tuple(st.log.lines)}


#: Mappings in flight during the coco-guest scenario's bursts.
COCO_DEPTHS = (32, 128, 256, 512)


@lru_cache(maxsize=None)
def coco_need(depths=COCO_DEPTHS, kernel: str = "v6.3", ram: str = "8G", seed: int = 1) -> tuple:
    """Run the ``coco-guest`` scenario with each burst depth; return rows with
    ``depth``, ``peak_slots``, ``peak_bytes``, ``failed``, ``pool`` (bytes)."""
    rows = []
    for d in depths:
        r = run_scenario("coco-guest", kernel=kernel, seed=seed, burst_depth=d, ram=ram)
        rows.append({"depth": d, "peak_slots": r.peak_used_slots,
                     "peak_bytes": r.peak_used_slots << IO_TLB_SHIFT, "failed": r.failed,
                     "mapped": r.mapped, "bounced": r.bounced,
                     "all_bounced": r.extra.get("every_mapping_bounced"),
                     "pool": r.peak_bounce_bytes})
    return tuple(rows)


def coco_need_lines(rows) -> list[str]:
    """One line per burst depth of :func:`coco_need`."""
    return [f"burst depth {r['depth']:4}: peak {r['peak_slots']:5} slots "
            f"({r['peak_bytes'] / MiB:.1f} MiB), failed {r['failed']}, "
            f"all {r['mapped']} mappings bounced: {r['all_bounced']}; pool {mib(r['pool'])}" for r in rows]


def coco_ram_rows(rams=("2G", "8G", "32G"), depth: int = 256, seed: int = 1) -> list[dict]:
    """The same workload on guests of different RAM: ``ram`` and the :func:`coco_need` row."""
    return [dict(coco_need((depth,), ram=ram, seed=seed)[0], ram=ram) for ram in rams]


def coco_ram_lines(rows) -> list[str]:
    """Rows of :func:`coco_ram_rows` as text: pool vs peak use."""
    out = [f"{'RAM':>5} {'pool (6 % rule)':>16} {'peak in use':>12} {'used share':>11} {'failed':>7}"]
    for r in rows:
        out.append(f"{r['ram']:>5} {mib(r['pool']):>16} {mib(r['peak_bytes']):>12} "
                   f"{100 * r['peak_bytes'] / r['pool']:>10.2f}% {r['failed']:>7}")
    return out


def coco_ram_need(rams=("2G", "8G", "32G"), depth: int = 256, seed: int = 1) -> str:
    """Plain text: the same workload on guests of different RAM: pool vs peak use."""
    return "\n".join(coco_ram_lines(coco_ram_rows(rams, depth, seed)))


@lru_cache(maxsize=None)
def coco_small_pool(cmdline: str = "swiotlb=2048", depth: int = 512, seed: int = 1,
                    kernels=("v6.3", "v6.6-dynamic")) -> tuple:
    """The coco-guest scenario with a pool set by hand, fixed vs growing."""
    return tuple(run_scenario("coco-guest", kernel=k, cmdline=cmdline, burst_depth=depth, seed=seed)
                 for k in kernels)


# ================================================================== (b) Raspberry Pi 4

#: Display resolutions of the widget (1680x1050 is Petr Tesarik's monitor,
#: 20230331110043.7b1ddfa3@meshulam.tesarici.cz).
RESOLUTIONS = ((1280, 720), (1680, 1050), (1920, 1080), (2560, 1440), (3840, 2160))
#: Pixel formats: bytes per pixel.
FORMATS = {"XRGB8888": 4, "RGB565": 2}
#: The display modes of the widget: ``"WxH FORMAT"`` -> ``(width, height, format)``.
RPI_MODES = {f"{w}x{h} {fmt}": (w, h, fmt) for w, h in RESOLUTIONS for fmt in FORMATS}


def frame_bytes(width: int, height: int, fmt: str = "XRGB8888") -> int:
    """Bytes of one linear framebuffer (no padding): width x height x bytes per pixel."""
    return width * height * FORMATS[fmt]


def frame_sizes() -> list[tuple]:
    """``(width, height, format, bytes)`` for :data:`RESOLUTIONS` x :data:`FORMATS`."""
    return [(w, h, fmt, frame_bytes(w, h, fmt)) for w, h in RESOLUTIONS for fmt in FORMATS]


def frame_lines(rows) -> list[str]:
    """Rows of :func:`frame_sizes` as text, with each size in 256 KiB bounce-buffer units."""
    out = [f"{'resolution':>10} {'format':>9} {'bytes':>11} {'MiB':>6} {'x 256 KiB':>10}"]
    for w, h, fmt, n in rows:
        out.append(f"{w}x{h:<5} {fmt:>9} {n:>11} {n / MiB:>6.2f} {n / IO_TLB_SEGMENT_BYTES:>10.1f}")
    return out


def frame_table() -> str:
    """Plain-text table of buffer sizes for :data:`RESOLUTIONS` x :data:`FORMATS`."""
    return "\n".join(frame_lines(frame_sizes()))


@lru_cache(maxsize=None)
def rpi_frame(width: int, height: int, fmt: str = "XRGB8888", kernel: str = "v6.3", seed: int = 1,
              ram: str = "4G") -> dict:
    """One display buffer on a Raspberry Pi 4: v3d's pages, vc4's import.

    The buffer is allocated page by page with
    :func:`~swiotlb_lib.scenarios.systems.scattered_buffer` (its run lengths are the model's
    assumption, see ``scenarios.systems.RUN_PAGES``), then vc4 (1 GiB bus limit) maps its
    scatter-gather table with ``DMA_ATTR_SKIP_CPU_SYNC`` as ``drm_gem_map_dma_buf``
    does.  Returns ``nbytes``, ``segments`` (``(paddr, nbytes, fate)`` with fate
    ``direct``/``bounce``/``too big``), ``imported``, ``log`` (the kernel lines of the
    import), ``pool_lines`` (boot)."""
    m = Machine(ram=ram, cpus=4, arch="arm64-rpi4", kernel=kernel)
    vc4 = m.add_device("rpi4-vc4")
    nbytes = frame_bytes(width, height, fmt)
    _, runs = scattered_buffer(m, random.Random(seed), nbytes)
    if runs is None:
        raise ValueError(f"ram: {ram} is too small for a {nbytes}-byte buffer")
    limit = m.swiotlb.max_mapping_size(vc4)
    boot_lines = tuple(ln for ln in m.swiotlb_lines() if "ommand line" not in ln)
    segs = []
    for a, n in runs:
        fate = "direct" if a + n - 1 <= vc4.reach else ("too big" if n > limit else "bounce")
        segs.append((a, n, fate))
    before = len(m.log.lines)
    try:
        mapped = m.dma.map_sg(vc4, runs, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
    except DmaMappingError:
        imported = False
    else:
        imported = True
        m.dma.unmap_sg(vc4, mapped, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
    return {"width": width, "height": height, "fmt": fmt, "nbytes": nbytes, "segments": tuple(segs),
            "imported": imported, "log": tuple(m.log.lines[before:]),
            "pool_lines": boot_lines, "reach": vc4.reach}


def rpi_summary(fr: dict) -> list[str]:
    """Plain-text facts about one :func:`rpi_frame`."""
    segs = fr["segments"]
    count = {f: sum(1 for *_, x in segs if x == f) for f in ("direct", "bounce", "too big")}
    big = [n for _, n, f in segs if f == "too big"]
    out = [f"{fr['width']}x{fr['height']} {fr['fmt']}: {fr['nbytes']} bytes ({fr['nbytes'] / MiB:.2f} MiB) "
           f"in {len(segs)} segments",
           f"  above vc4's 1 GiB limit: {sum(1 for a, n, _ in segs if a + n - 1 > fr['reach'])}; "
           f"direct {count['direct']}, bounce {count['bounce']}, too big to bounce {count['too big']}",
           f"  largest segment {max(n for _, n, _ in segs)} bytes"
           + (f"; too-big segments: {', '.join(str(n) for n in big)}" if big else ""),
           f"  import {'succeeded (what the screen then shows over several frames: rpi-screen)' if fr['imported'] else 'FAILED: vc4 cannot display the buffer'}"]
    return out


def rpi_frame_lines(fr: dict) -> list[str]:
    """:func:`rpi_summary`, then the boot lines and the kernel lines of the import."""
    return rpi_summary(fr) + list(fr["pool_lines"] + fr["log"])


def rpi_segments(width: int = 1920, height: int = 1080, fmt: str = "XRGB8888", seeds=range(1, 11)) -> list:
    """The segments of one buffer for each seed, pooled (for the distribution figure)."""
    out = []
    for s in seeds:
        out += list(rpi_frame(width, height, fmt, seed=s)["segments"])
    return out


def segment_lines(segments) -> list[str]:
    """Counts of :func:`rpi_segments` by fate, and the largest segment."""
    count = {f: sum(1 for *_, x in segments if x == f) for f in ("direct", "bounce", "too big")}
    return [f"{len(segments)} segments: direct {count['direct']}, bounce {count['bounce']}, "
            f"too big to bounce {count['too big']}; largest {max(n for _, n, _ in segments)} bytes"]


#: The 4K buffer of the RFC cover letter ("34 MiB"), as the ``rpi4-4k`` scenario uses it.
RPI_4K_BYTES = 34 * MiB
#: Stamp offsets inside each contiguous run: its first and its last 8 bytes.
_STAMP = 8


@lru_cache(maxsize=None)
def rpi_screen(kernel: str = "rfc-v1", nbytes: int = RPI_4K_BYTES, frames: int = 8, buffers: int = 2,
               may_sleep: bool = True, sync: bool = False, seed: int = 1) -> dict:
    """What the Raspberry Pi 4's display shows over ``frames`` frames.

    A compositor allocates ``buffers`` display buffers once (double buffering) and renders
    frame *f* into buffer *f* mod ``buffers``.  v3d renders through its own mapping (it
    reaches all memory, so it writes the buffer's pages); the model stands for the pixels
    with a stamp, the frame number, at both ends of every contiguous run.  vc4 imports a
    buffer once, the first time it is shown: ``drm_gem_prime_fd_to_handle()`` imports a
    dma-buf it has not seen and afterwards finds the handle in its cache, and
    ``drm_gem_prime_import_dev()`` maps the attachment at import and keeps the mapping
    (``drivers/gpu/drm/drm_prime.c``).  The map is ``dma_map_sgtable()`` with
    ``DMA_ATTR_SKIP_CPU_SYNC`` (``drm_gem_map_dma_buf()``, quoted with Petr Tesarik's
    ``DMA_ATTR_MAY_SLEEP`` addition in f42723f3-6dda-037d-3dd2-dc60ac0dcc3d@huaweicloud.com),
    and DRM calls no ``dma_sync_*()`` afterwards.  SWIOTLB's map-time copy is unconditional
    since 5.18 (901c7280ca0d), so a bounced segment holds what the buffer held at import;
    every later frame stays in the original pages.  vc4 then scans out each segment at its
    DMA address (the bounce buffer, if it bounced) and the model reads the stamps there.

    ``sync=True`` adds what DRM does not do, a ``dma_sync_sg_for_device()`` of the buffer
    before each scan-out, to show that the missing sync is the cause.

    Returns ``kernel``, ``cmdline``, ``frames``, ``shown`` (for each frame, the frame
    number the screen shows in every segment, ``None`` when the buffer could not be
    imported, ``"torn"`` when segments disagree), ``frames_shown`` (frames whose every
    segment shows that frame), ``imports_ok``, ``imports_failed``, ``bounced_segments``,
    ``direct_segments``."""
    if frames < 1 or buffers < 1:
        raise ValueError(f"frames, buffers: positive counts expected, got {frames}, {buffers}")
    rng = random.Random(seed)
    m = rpi4_machine(kernel)
    rec = Recorder(m, ScenarioResult("rpi-screen", m.profile.name, m.cmdline, seed))
    v3d = m.add_device("rpi4-v3d")
    vc4 = m.add_device("rpi4-vc4")
    attrs = DMA_ATTR_SKIP_CPU_SYNC | (DMA_ATTR_MAY_SLEEP if may_sleep else 0)
    bufs = []
    for _ in range(buffers):
        _, runs = scattered_buffer(m, rng, nbytes, owner="gpu")
        if runs is None:
            raise ValueError(f"nbytes: {buffers} buffers of {nbytes} bytes do not fit the Pi's memory")
        rec.map_sg(v3d, runs, DMA_BIDIRECTIONAL, DMA_ATTR_SKIP_CPU_SYNC)
        bufs.append({"runs": runs, "vc4": None, "tried": False})
    shown, ok, failed = [], 0, 0
    for f in range(frames):
        b = bufs[f % buffers]
        stamp = (f + 1).to_bytes(_STAMP, "little")
        for a, n in b["runs"]:                          # v3d renders frame f
            m.memory.write(a, stamp)
            m.memory.write(a + n - _STAMP, stamp)
        if not b["tried"]:                              # first use: vc4 imports the buffer
            b["tried"] = True
            b["vc4"] = rec.map_sg(vc4, b["runs"], DMA_BIDIRECTIONAL, attrs, cpu=f % 4)
            ok, failed = (ok + 1, failed) if b["vc4"] is not None else (ok, failed + 1)
        if b["vc4"] is None:
            shown.append(None)
            continue
        seen = set()
        for (a, n), (dma, _) in zip(b["runs"], b["vc4"]):
            if sync:
                m.dma.sync_single_for_device(vc4, dma, n, DMA_TO_DEVICE)
            seen.add(int.from_bytes(m.memory.read(dma, _STAMP), "little"))
            seen.add(int.from_bytes(m.memory.read(dma + n - _STAMP, _STAMP), "little"))
        shown.append(seen.pop() if len(seen) == 1 else "torn")
    bounced = sum(1 for b in bufs if b["vc4"] for (a, _), (d, _) in zip(b["runs"], b["vc4"]) if a != d)
    direct = sum(1 for b in bufs if b["vc4"] for (a, _), (d, _) in zip(b["runs"], b["vc4"]) if a == d)
    return {"kernel": m.profile.name, "cmdline": m.cmdline, "frames": frames, "buffers": buffers,
            "may_sleep": may_sleep, "sync": sync, "shown": tuple(shown),
            "frames_shown": sum(1 for f, s in enumerate(shown) if s == f + 1),
            "imports_ok": ok, "imports_failed": failed, "bounced_segments": bounced, "direct_segments": direct}


def screen_text(s) -> str:
    """``shown`` of :func:`rpi_screen` in a few words: what each frame put on the screen."""
    def one(f, x):
        return "-" if x is None else ("torn" if x == "torn" else ("ok" if x == f + 1 else f"f{x}"))
    return " ".join(one(f, x) for f, x in enumerate(s))


def rpi_screen_lines(r: dict) -> list[str]:
    """:func:`rpi_screen` as text."""
    return [f"{r['kernel']} ({r['cmdline'] or 'no swiotlb= option'}), {r['buffers']} buffers, "
            f"MAY_SLEEP {'on' if r['may_sleep'] else 'off'}, sync before scan-out {'yes' if r['sync'] else 'no'}",
            f"  imports: {r['imports_ok']} ok, {r['imports_failed']} failed; segments: "
            f"{r['bounced_segments']} bounced, {r['direct_segments']} direct",
            f"  screen per frame (ok = the frame just rendered, fN = frame N again, - = nothing): "
            f"{screen_text(r['shown'])}",
            f"  frames shown: {r['frames_shown']} of {r['frames']}"]


def rpi_screens(kernels=("v6.3", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic"), **kw) -> list[dict]:
    """:func:`rpi_screen` for each kernel profile, then RFC v1 with a sync before each scan-out."""
    return [rpi_screen(k, **kw) for k in kernels] + [rpi_screen("rfc-v1", sync=True, **kw)]


# ================================================================== (c) the small board

#: (label, kernel profile, command line) of the board's configurations.
BOARD_CONFIGS = (
    ("v6.3, default (64 MiB)", "v6.3", ""),
    ("v6.3, swiotlb=16384 (32 MiB)", "v6.3", "swiotlb=16384"),
    ("v6.3, swiotlb=512 (1 MiB)", "v6.3", "swiotlb=512"),
    ("v6.6-dynamic, swiotlb=512", "v6.6-dynamic", "swiotlb=512"),
)
#: Application demands (MiB) tried on each configuration.
BOARD_DEMANDS = (380, 420, 460)


@lru_cache(maxsize=None)
def _board_scenario(kernel: str, cmdline: str, app_mib: int, seed: int) -> dict:
    r = run_scenario("arm-board-oom", kernel=kernel, cmdline=cmdline, seed=seed, app_mib=app_mib)
    total = Machine(ram="512M", cpus=4, arch="arm64-board", kernel=kernel, cmdline=cmdline).layout.total_ram
    apps = r.extra["app_mib_resident"] * MiB
    free = r.extra["free_mib_end"] * MiB
    pool = r.end_bounce_bytes
    return {"kernel": kernel, "cmdline": cmdline,
            "app_mib": app_mib, "total": total, "apps": apps, "pool": pool, "free": free,
            "other": total - apps - pool - free, "oom": r.oom_events, "failed": r.failed,
            "peak_pool": r.peak_bounce_bytes, "pools_added": r.pools_added,
            "lines": tuple(ln for ln in r.log if "software IO TLB" in ln or "swiotlb" in ln)}


def board_run(kernel: str, cmdline: str, app_mib: int, seed: int = 1, label: str = "") -> dict:
    """Run ``arm-board-oom`` and split the board's RAM at the end of the run into
    ``apps``, ``pool`` (memory held for bouncing), ``free`` and ``other`` (kernel, page
    cache, reserved: the rest), in bytes; plus ``oom`` events and mapping ``failed``.
    Runs are cached by ``(kernel, cmdline, app_mib, seed)``."""
    return {"label": label or f"{kernel} {cmdline}".strip(),
            **_board_scenario(kernel, cmdline, app_mib, seed)}


def board_rows(app_mib: int = 420, configs=BOARD_CONFIGS) -> list[dict]:
    """:func:`board_run` of every configuration at one application demand."""
    return [board_run(k, c, app_mib, label=lab) for lab, k, c in configs]


def board_config_rows(label: str) -> list[dict]:
    """:func:`board_run` of the configuration ``label`` at every demand of
    :data:`BOARD_DEMANDS`, each row labelled ``"apps want N MiB"``."""
    cfg = next(c for c in BOARD_CONFIGS if c[0] == label)
    return [dict(board_run(cfg[1], cfg[2], d, label=cfg[0]), label=f"apps want {d} MiB") for d in BOARD_DEMANDS]


def board_grid(configs=BOARD_CONFIGS, demands=BOARD_DEMANDS, seed: int = 1) -> list[tuple]:
    """``(label, [board_run per demand])`` for every configuration."""
    return [(lab, [board_run(k, c, d, seed, label=lab) for d in demands]) for lab, k, c in configs]


def board_lines(grid) -> list[str]:
    """:func:`board_grid` as text: OOM events (and mapping failures) per configuration and demand."""
    demands = [r["app_mib"] for r in grid[0][1]]
    out = [f"{'configuration':<30}" + "".join(f"{f'apps {d} MiB':>15}" for d in demands)]
    for lab, runs in grid:
        cells = [f"OOM {r['oom']}, fail {r['failed']}" for r in runs]
        out.append(f"{lab:<30}" + "".join(f"{x:>15}" for x in cells))
    return out


def board_table(configs=BOARD_CONFIGS, demands=BOARD_DEMANDS) -> str:
    """Plain text: OOM events (and mapping failures) per configuration and demand."""
    return "\n".join(board_lines(board_grid(configs, demands)))


# ================================================================== the registry

register(Experiment("coco-sizing", coco_sizing, "confidential guest: SWIOTLB pool from RAM (6 % rule)",
                    chapter="ch04", kernels="one", seeded=False, lines=coco_lines,
                    defaults={"gib": COCO_WIDGET_GIB}))
register(Experiment("coco-need", coco_need, "confidential guest: peak slots against I/O in flight",
                    chapter="ch04", kernels="one", lines=coco_need_lines))
register(Experiment("coco-ram-need", coco_ram_rows, "confidential guest: pool vs peak use by RAM size",
                    chapter="ch04", lines=coco_ram_lines))
register(Experiment("coco-small-pool", coco_small_pool, "confidential guest: a small pool, fixed vs growing",
                    chapter="ch04", kernels="many", lines=brief_lines))
register(Experiment("frame-sizes", frame_sizes, "display buffer bytes per resolution and format",
                    chapter="ch04", seeded=False, lines=frame_lines))
register(Experiment("rpi-frame", rpi_frame, "one display buffer imported by the RPi 4's vc4",
                    chapter="ch04", kernels="one", lines=rpi_frame_lines,
                    defaults={"width": 1920, "height": 1080}))
register(Experiment("rpi-screen", rpi_screens, "RPi 4: what vc4 shows over eight 4K frames, per kernel",
                    chapter="ch04", kernels="many",
                    lines=lambda rows: [ln for r in rows for ln in rpi_screen_lines(r)]))
register(Experiment("rpi-segments", rpi_segments, "segment sizes of ten FullHD buffers, by fate",
                    chapter="ch04", seeded=False, lines=segment_lines))
register(Experiment("board-oom", board_grid, "a 512 MiB board: OOM events per pool configuration",
                    chapter="ch04", lines=board_lines))
