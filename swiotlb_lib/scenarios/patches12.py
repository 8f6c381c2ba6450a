"""Experiments of chapters 5 and 6 (RFC v1 patches 1/4 and 2/4).

Chapter 5, ``DMA_ATTR_MAY_SLEEP``
(ea0646e0e63380bb8595fbac81c23aeca30feae9.1679309810.git.petr.tesarik.ext@huawei.com):
which allocator can give the RFC's dynamic path a bounce buffer, for a calling context,
a size, a CMA area and a state of memory -- computed by the RFC profile's own
``dma_direct_alloc_pages`` (:meth:`swiotlb_lib.dynamic.RfcDynamic.dma_direct_alloc_pages`)
on the model's page allocator (:mod:`swiotlb_lib.page_alloc`): :func:`serve`,
:func:`allocator_grid`, :func:`gfp_masks`, :func:`before_after`.

Chapter 6, moving code
(932dee179c950e98713f8636f0c9d95a6a37b640.1679309810.git.petr.tesarik.ext@huawei.com):
the differential replay of :mod:`swiotlb_lib.scenarios.replay_diff` for a few seeds and
lengths (:func:`replay_verdicts`), the golden vectors replayed on the RFC and on its
control (:func:`golden_checks`), and the boot-time parser difference
(:func:`~swiotlb_lib.scenarios.replay_diff.compare_boot`).

Text forms are here (``*_text``, ``*_lines``); figures and widget states are in
:mod:`swiotlb_lib.plots.patches12`.
"""
from __future__ import annotations

from functools import lru_cache

from ..boot import Machine
from ..constants import PAGE_SIZE, KiB, MiB
from ..page_alloc import GFP_ATOMIC, GFP_KERNEL, GFP_NOFS, GFP_NOIO, GFP_NOWAIT, Gfp
from ..report import mib
from ..report import compare_table
from .systems import run_scenario
from . import Experiment, register
from .replay_diff import compare, compare_boot, generate_ops, golden_check, run_ops
from .three_systems import RPI_4K_BYTES, brief, rpi_screen, screen_text


# ================================================================== chapter 5

#: Calling contexts: label -> (machine kind, gfp the RFC passes).  The RFC's
#: ``swiotlb_dyn_map`` uses GFP_KERNEL when the caller passed DMA_ATTR_MAY_SLEEP, else
#: GFP_NOWAIT (0334a54332ab75312c9de825548b616439dcc9f5.1679309810.git.petr.tesarik.ext@huawei.com).
CONTEXTS = {
    "may sleep (GFP_KERNEL)": ("rpi4", GFP_KERNEL),
    "atomic (GFP_NOWAIT)": ("rpi4", GFP_NOWAIT),
    "atomic, confidential guest": ("coco", GFP_NOWAIT),
}
#: Buffer sizes of the grid: 4 KiB ... 34 MiB (the cover letter's 4K framebuffer).
SIZES = (4 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 34 * MiB)
#: CMA sizes (``cma=`` on the command line; 256M is what the RPi overlay reserves).
CMA_OPTIONS = ("0", "64M", "256M")
#: States of memory before the allocation.
MEMORY_STATES = ("fresh boot", "page cache full", "fragmented")


def make_machine(kind: str, cma: str = "256M", state: str = "fresh boot", seed: int = 1) -> Machine:
    """A machine running the RFC with ``swiotlb=dynamic`` and ``cma=<cma>``.

    ``kind`` ``"rpi4"``: a 4 GiB Raspberry Pi 4 (vc4 reaches the first GiB, ZONE_DMA).
    ``"coco"``: a 4 GiB confidential x86 guest.  ``state`` (applied to the RPi's ZONE_DMA
    only): ``"page cache full"`` fills the zone with page cache using non-blocking
    allocations until the min watermark stops them; ``"fragmented"`` pins 2 % of its
    pages at random (:meth:`~swiotlb_lib.page_alloc.PageAllocator.fragment`)."""
    if cma not in CMA_OPTIONS:
        raise ValueError(f"cma: must be one of {CMA_OPTIONS}, got {cma!r}")
    if state not in MEMORY_STATES:
        raise ValueError(f"state: must be one of {MEMORY_STATES}, got {state!r}")
    cmd = "swiotlb=dynamic" + ("" if cma == "0" else f" cma={cma}")
    if kind == "rpi4":
        m = Machine(ram="4G", cpus=4, arch="arm64-rpi4", kernel="rfc-v1", cmdline=cmd, cma=0)
        m.add_device("rpi4-vc4")
    elif kind == "coco":
        m = Machine(ram="4G", cpus=4, mem_encrypt=True, kernel="rfc-v1", cmdline=cmd, cma=0)
        m.add_device("virtio-coco")
        return m
    else:
        raise ValueError(f"kind: must be 'rpi4' or 'coco', got {kind!r}")
    pages = m.pages
    if state == "page cache full":
        for order in range(9, -1, -1):
            while pages.alloc_pages(GFP_NOWAIT | Gfp.DMA, order, owner="pagecache") is not None:
                pass
    elif state == "fragmented":
        pages.fragment(seed, 0.02, zone="DMA")
    return m


def serve(context: str, nbytes: int, cma: str = "256M", state: str = "fresh boot") -> dict:
    """Ask the RFC's ``dma_direct_alloc_pages`` for one bounce buffer of ``nbytes`` on a
    freshly prepared machine.  Returns ``kind`` (``buddy``, ``buddy + reclaim``,
    ``CMA``, ``atomic pool``, ``none``), ``text`` (short label), ``order``,
    ``reclaimed`` (pages reclaimed), ``paddr``."""
    if context not in CONTEXTS:
        raise ValueError(f"context: must be one of {list(CONTEXTS)}, got {context!r}")
    if type(nbytes) is not int or not 1 <= nbytes <= 1 << 30:
        raise ValueError(f"nbytes: must be an integer in 1..2**30, got {nbytes!r}")
    kind, gfp = CONTEXTS[context]
    m = make_machine(kind, cma, state)
    dev = next(iter(m.devices.values()))
    nbytes = (nbytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)         # PAGE_ALIGN, as the RFC does
    before = m.pages.costs["reclaimed_pages"]
    got = m.swiotlb.dyn.dma_direct_alloc_pages(dev, nbytes, gfp | Gfp.NOWARN)
    reclaimed = m.pages.costs["reclaimed_pages"] - before
    if got is None:
        return {"kind": "none", "text": "none", "order": None, "reclaimed": reclaimed, "paddr": None}
    paddr, how = got
    if how == "cma":
        return {"kind": "CMA", "text": "CMA", "order": None, "reclaimed": reclaimed, "paddr": paddr}
    if how == "atomic":
        return {"kind": "atomic pool", "text": "atomic\npool", "order": None, "reclaimed": reclaimed,
                "paddr": paddr}
    k = "buddy + reclaim" if reclaimed else "buddy"
    return {"kind": k, "text": f"order {how}" + ("\n+reclaim" if reclaimed else ""), "order": how,
            "reclaimed": reclaimed, "paddr": paddr}


@lru_cache(maxsize=None)
def allocator_grid(cma: str = "256M", state: str = "page cache full", sizes=SIZES) -> tuple:
    """:func:`serve` for every context and size: ``((context, (cell, ...)), ...)``."""
    return tuple((ctx, tuple(serve(ctx, n, cma, state) for n in sizes)) for ctx in CONTEXTS)


def grid_text(grid, sizes=SIZES) -> str:
    """Plain-text form of :func:`allocator_grid`."""
    w = 17
    out = [f"{'':<28}" + "".join(f"{mib(s):>{w}}" for s in sizes)]
    for ctx, cells in grid:
        out.append(f"{ctx:<28}" + "".join(f"{c['text'].replace(chr(10), ' '):>{w}}" for c in cells))
    return "\n".join(out)


def atomic_pool_sizes(cma: str = "256M") -> dict:
    """``{pool name: size in KiB}`` of the confidential guest used by :data:`CONTEXTS`."""
    m = make_machine("coco", cma)
    return {k: v["size"] >> 10 for k, v in m.pages.atomic_pools().items()}


def gfp_masks() -> list[tuple]:
    """The GFP masks of the chapter and what each allows (model bit values,
    ``include/linux/gfp_types.h`` of 6.6): ``(name, value, may sleep, may start I/O,
    may call the file system, may use the reserves)``."""
    rows = [("GFP_KERNEL", GFP_KERNEL), ("GFP_NOFS", GFP_NOFS), ("GFP_NOIO", GFP_NOIO),
            ("GFP_NOWAIT", GFP_NOWAIT), ("GFP_ATOMIC", GFP_ATOMIC)]
    return [(name, int(g), bool(g & Gfp.DIRECT_RECLAIM), bool(g & Gfp.IO), bool(g & Gfp.FS),
             bool(g & Gfp.ATOMIC_HIGH)) for name, g in rows]


def gfp_lines(rows) -> list[str]:
    """Rows of :func:`gfp_masks` as text."""
    out = [f"{'mask':<11} {'value':>7}  {'may sleep':>9} {'start I/O':>9} {'call FS':>8} {'reserves':>8}"]
    yn = lambda b: "yes" if b else "no"  # noqa: E731
    for name, g, sleep, io, fs, reserves in rows:
        out.append(f"{name:<11} {g:#07x}  {yn(sleep):>9} {yn(io):>9} {yn(fs):>8} {yn(reserves):>8}")
    return out


def gfp_table() -> str:
    """Plain text: the GFP masks of the chapter and what each allows (:func:`gfp_masks`)."""
    return "\n".join(gfp_lines(gfp_masks()))


#: (label, scenario, kernel, may_sleep) of the before/after comparison.
BEFORE_AFTER = (
    ("FullHD, v6.3rc", "rpi4-fullhd", "v6.3rc", True),
    ("FullHD, RFC, no MAY_SLEEP", "rpi4-fullhd", "rfc-v1", False),
    ("FullHD, RFC, MAY_SLEEP", "rpi4-fullhd", "rfc-v1", True),
    ("4K, v6.3rc", "rpi4-4k", "v6.3rc", True),
    ("4K, RFC, no MAY_SLEEP", "rpi4-4k", "rfc-v1", False),
    ("4K, RFC, MAY_SLEEP", "rpi4-4k", "rfc-v1", True),
)
#: Rows of the comparison table the chapter prints.
BEFORE_AFTER_KEEP = ("cmdline", "failed", "  too_big", "  no_memory", "peak bounce", "imports", "may_sleep",
                     "largest_segment", "cost: cma_attempts")


@lru_cache(maxsize=None)
def before_after(seed: int = 1) -> tuple:
    """Run :data:`BEFORE_AFTER`; returns ``((label, ScenarioResult), ...)``."""
    return tuple((lab, run_scenario(sc, kernel=k, may_sleep=ms, seed=seed)) for lab, sc, k, ms in BEFORE_AFTER)


def before_after_rows(seed: int = 1) -> list:
    """Rows for :func:`swiotlb_lib.plots.patches12.before_after`."""
    return [(lab, r.extra["imports_ok"], r.extra["imports_failed"], r.peak_bounce_bytes)
            for lab, r in before_after(seed)]


def before_after_lines(runs) -> list[str]:
    """The labels of the columns, then the comparison table of :func:`before_after` (the
    rows of :data:`BEFORE_AFTER_KEEP`)."""
    return (["columns: " + " | ".join(lab for lab, _ in runs)]
            + brief(compare_table([r for _, r in runs]), keep=BEFORE_AFTER_KEEP).splitlines())


#: Buffer bytes of the two display scenarios of :data:`BEFORE_AFTER`.
SCREEN_BYTES = {"rpi4-fullhd": 1920 * 1080 * 4, "rpi4-4k": RPI_4K_BYTES}


@lru_cache(maxsize=None)
def before_after_screens(seed: int = 1) -> tuple:
    """What the screen shows in each configuration of :data:`BEFORE_AFTER` when 8 frames
    are rendered into 2 reused buffers (:func:`~swiotlb_lib.scenarios.three_systems.rpi_screen`):
    ``((label, result), ...)``."""
    return tuple((lab, rpi_screen(k, nbytes=SCREEN_BYTES[sc], may_sleep=ms, seed=seed))
                 for lab, sc, k, ms in BEFORE_AFTER)


def screen_lines(runs) -> list[str]:
    """:func:`before_after_screens` as text: imports, then the screen frame by frame."""
    out = [f"{'configuration':<26} {'imports':>7}  {'shown':>5}  screen per frame (ok, fN = frame N again, - = nothing)"]
    for lab, r in runs:
        out.append(f"{lab:<26} {r['imports_ok']:>3} of {r['imports_ok'] + r['imports_failed']}  "
                   f"{r['frames_shown']:>1} of {r['frames']}  {screen_text(r['shown'])}")
    return out


# ================================================================== chapter 6

#: Seeds and lengths of the replay widget.
REPLAY_SEEDS = (1, 2, 3)
REPLAY_LENGTHS = (500, 3000)
#: The pair that must agree and the control pair.
SAME_PAIR = ("v6.3rc", "rfc-v1")
CONTROL_PAIR = ("v6.3rc", "v6.3")


@lru_cache(maxsize=None)
def replay_runs(seed: int, length: int = max(REPLAY_LENGTHS)) -> tuple:
    """The operations for ``seed`` and one :class:`~swiotlb_lib.scenarios.replay_diff.Run`
    per profile (v6.3rc, rfc-v1, v6.3); shorter lengths compare prefixes of these."""
    ops = generate_ops(seed, length)
    return ops, {k: run_ops(k, ops) for k in {*SAME_PAIR, *CONTROL_PAIR}}


def replay_verdicts(seed: int, length: int) -> tuple:
    """``(verdict of the pair that must agree, verdict of the control pair)``."""
    full = max(REPLAY_LENGTHS) if length <= max(REPLAY_LENGTHS) else length
    ops, runs = replay_runs(seed, full)
    ops = ops[:length]
    return (compare(runs[SAME_PAIR[0]], runs[SAME_PAIR[1]], ops, seed),
            compare(runs[CONTROL_PAIR[0]], runs[CONTROL_PAIR[1]], ops, seed))


def joined_lines(results) -> list[str]:
    """The ``lines()`` of each result (verdicts, golden checks), one after another."""
    return [ln for v in results for ln in v.lines()]


#: The golden-vector file of chapter 6 and the profiles it is replayed on.
GOLDEN_FILE = "vectors-v6.3rc-handmade.jsonl"
GOLDEN_KERNELS = ("rfc-v1", "v6.3")


def golden_checks(kernels=GOLDEN_KERNELS, name: str = GOLDEN_FILE) -> list:
    """:func:`~swiotlb_lib.scenarios.replay_diff.golden_check` of ``name`` on each profile."""
    return [golden_check(name, kernel=k) for k in kernels]


# ================================================================== the registry

register(Experiment("gfp-masks", gfp_masks, "the GFP masks and what each lets the allocator do",
                    chapter="ch05", seeded=False, lines=gfp_lines))
register(Experiment("allocator-grid", allocator_grid, "who allocates an RFC dynamic bounce buffer, by context and size",
                    chapter="ch05", seeded=False, lines=lambda grid: grid_text(grid).splitlines(),
                    defaults={"cma": "256M", "state": "page cache full"}))
register(Experiment("atomic-pools", atomic_pool_sizes, "atomic pools of the confidential guest (KiB)",
                    chapter="ch05", seeded=False,
                    lines=lambda pools: [f"atomic pools of the confidential guest: {pools}"]))
register(Experiment("may-sleep-imports", before_after, "display imports before the RFC and with or without MAY_SLEEP",
                    chapter="ch05", lines=before_after_lines))
register(Experiment("may-sleep-screen", before_after_screens,
                    "what the Pi's screen shows over 8 frames before the RFC and with or without MAY_SLEEP",
                    chapter="ch05", lines=screen_lines))
register(Experiment("replay-diff", replay_verdicts, "differential replay: v6.3rc vs rfc-v1, and the v6.3 control",
                    chapter="ch06", lines=joined_lines, defaults={"seed": 1, "length": 3000}))
register(Experiment("golden-check", golden_checks, "the hand-made golden vectors replayed per profile",
                    chapter="ch06", kernels="many", seeded=False, lines=joined_lines))
register(Experiment("boot-compare", compare_boot, "what each kernel's parser makes of one command line",
                    chapter="ch06", seeded=False, lines=list,
                    defaults={"cmdline": "swiotlb=1024,force,foo"}))
