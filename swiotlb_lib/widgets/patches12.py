"""Chapters 5 and 6 (RFC v1 patches 1/4 and 2/4): the data behind their tables,
figures and widgets, and the widgets themselves.

Chapter 5, ``DMA_ATTR_MAY_SLEEP``
(ea0646e0e63380bb8595fbac81c23aeca30feae9.1679309810.git.petr.tesarik.ext@huawei.com):
which allocator can give the RFC's dynamic path a bounce buffer, for a calling context,
a size, a CMA area and a state of memory -- computed by the RFC profile's own
``dma_direct_alloc_pages`` (:meth:`swiotlb_lib.dynamic.RfcDynamic.dma_direct_alloc_pages`)
on the model's page allocator (:mod:`swiotlb_lib.page_alloc`).

Chapter 6, moving code
(932dee179c950e98713f8636f0c9d95a6a37b640.1679309810.git.petr.tesarik.ext@huawei.com):
the differential replay of :mod:`swiotlb_lib.replay_diff`, precomputed for a few seeds
and lengths.
"""
from __future__ import annotations

import html
from functools import lru_cache

import ipywidgets as W

from ..boot import Machine
from ..constants import PAGE_SIZE, KiB, MiB
from ..page_alloc import GFP_ATOMIC, GFP_KERNEL, GFP_NOFS, GFP_NOIO, GFP_NOWAIT, Gfp
from ..plots import patches12 as P
from ..plots.common import img_html, mib
from ..replay_diff import compare, generate_ops, run_ops
from ..scenarios.systems import run_scenario
from .common import live, precomputed


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


def _state_key(cma: str, state: str) -> str:
    return f"cma={cma}, {state}"


ALLOC_KEYS = tuple(_state_key(c, s) for c in CMA_OPTIONS for s in MEMORY_STATES)


def allocator_state_html(key: str) -> str:
    cma, state = key[4:].split(", ")
    grid = allocator_grid(cma, state)
    fig = P.allocator_grid(grid, SIZES, f"RFC v1 dynamic bounce buffer: cma={cma}, {state}", width=6.5,
                           height=2.6)
    served = {ctx: sum(c["kind"] != "none" for c in cells) for ctx, cells in grid}
    alt = (f"Allocator grid for cma={cma}, {state}: " +
           "; ".join(f"{ctx} served {n} of {len(SIZES)} sizes" for ctx, n in served.items()))
    return img_html(fig, alt) + "<pre style='font-size:80%'>" + html.escape(grid_text(grid)) + "</pre>"


def allocator_widget(value: str = _state_key("256M", "page cache full")) -> W.VBox:
    """Precomputed: CMA size and memory state -> which allocator serves each context
    and size."""
    return precomputed(ALLOC_KEYS, allocator_state_html, "CMA and memory", value=value, kind="dropdown")


def serve_html(size_kib: int = 8192, context: str = "may sleep (GFP_KERNEL)", cma: str = "256M",
               state: str = "page cache full") -> str:
    """Live: one size, one context."""
    r = serve(context, int(size_kib) * KiB, cma, state)
    where = f" at {r['paddr']:#x}" if r["paddr"] is not None else ""
    extra = f", after reclaiming {r['reclaimed']} pages" if r["reclaimed"] else ""
    return (f"<b>{mib(int(size_kib) * KiB)}, {html.escape(context)}, cma={cma}, {state}: "
            f"{html.escape(r['kind'])}{where}{extra}</b>")


def serve_live() -> W.VBox:
    """Kernel-side: any size (KiB), context, CMA size and memory state."""
    controls = {
        "size_kib": W.BoundedIntText(value=8192, min=1, max=65536, description="size (KiB)"),
        "context": W.Dropdown(options=list(CONTEXTS), value="may sleep (GFP_KERNEL)", description="context"),
        "cma": W.Dropdown(options=list(CMA_OPTIONS), value="256M", description="cma="),
        "state": W.Dropdown(options=list(MEMORY_STATES), value="page cache full", description="memory"),
    }
    return live(controls, serve_html, "Who can allocate this bounce buffer?")


def gfp_table() -> str:
    """Plain text: the GFP masks of the chapter and what each allows (model bit values,
    ``include/linux/gfp_types.h`` of 6.6)."""
    rows = [("GFP_KERNEL", GFP_KERNEL), ("GFP_NOFS", GFP_NOFS), ("GFP_NOIO", GFP_NOIO),
            ("GFP_NOWAIT", GFP_NOWAIT), ("GFP_ATOMIC", GFP_ATOMIC)]
    out = [f"{'mask':<11} {'value':>7}  {'may sleep':>9} {'start I/O':>9} {'call FS':>8} {'reserves':>8}"]
    yn = lambda b: "yes" if b else "no"  # noqa: E731
    for name, g in rows:
        out.append(f"{name:<11} {int(g):#07x}  {yn(g & Gfp.DIRECT_RECLAIM):>9} {yn(g & Gfp.IO):>9} "
                   f"{yn(g & Gfp.FS):>8} {yn(g & Gfp.ATOMIC_HIGH):>8}")
    return "\n".join(out)


#: (label, scenario, kernel, may_sleep) of the before/after comparison.
BEFORE_AFTER = (
    ("FullHD, v6.3rc", "rpi4-fullhd", "v6.3rc", True),
    ("FullHD, RFC, no MAY_SLEEP", "rpi4-fullhd", "rfc-v1", False),
    ("FullHD, RFC, MAY_SLEEP", "rpi4-fullhd", "rfc-v1", True),
    ("4K, v6.3rc", "rpi4-4k", "v6.3rc", True),
    ("4K, RFC, no MAY_SLEEP", "rpi4-4k", "rfc-v1", False),
    ("4K, RFC, MAY_SLEEP", "rpi4-4k", "rfc-v1", True),
)


@lru_cache(maxsize=None)
def before_after(seed: int = 1) -> tuple:
    """Run :data:`BEFORE_AFTER`; returns ``((label, ScenarioResult), ...)``."""
    return tuple((lab, run_scenario(sc, kernel=k, may_sleep=ms, seed=seed)) for lab, sc, k, ms in BEFORE_AFTER)


def before_after_rows(seed: int = 1) -> list:
    """Rows for :func:`swiotlb_lib.plots.patches12.before_after`."""
    return [(lab, r.extra["imports_ok"], r.extra["imports_failed"], r.peak_bounce_bytes)
            for lab, r in before_after(seed)]


# ================================================================== chapter 6

#: Seeds and lengths of the replay widget.
REPLAY_SEEDS = (1, 2, 3)
REPLAY_LENGTHS = (500, 3000)
#: The pair that must agree and the control pair.
SAME_PAIR = ("v6.3rc", "rfc-v1")
CONTROL_PAIR = ("v6.3rc", "v6.3")


@lru_cache(maxsize=None)
def replay_runs(seed: int, length: int = max(REPLAY_LENGTHS)) -> tuple:
    """The operations for ``seed`` and one :class:`~swiotlb_lib.replay_diff.Run` per
    profile (v6.3rc, rfc-v1, v6.3); shorter lengths compare prefixes of these."""
    ops = generate_ops(seed, length)
    return ops, {k: run_ops(k, ops) for k in {*SAME_PAIR, *CONTROL_PAIR}}


def replay_verdicts(seed: int, length: int) -> tuple:
    """``(verdict of the pair that must agree, verdict of the control pair)``."""
    full = max(REPLAY_LENGTHS) if length <= max(REPLAY_LENGTHS) else length
    ops, runs = replay_runs(seed, full)
    ops = ops[:length]
    return (compare(runs[SAME_PAIR[0]], runs[SAME_PAIR[1]], ops, seed),
            compare(runs[CONTROL_PAIR[0]], runs[CONTROL_PAIR[1]], ops, seed))


def _replay_key(seed: int, length: int) -> str:
    return f"seed {seed}, {length} operations"


REPLAY_KEYS = tuple(_replay_key(s, n) for s in REPLAY_SEEDS for n in REPLAY_LENGTHS)


def replay_state_html(key: str) -> str:
    seed = int(key.split(",")[0].split()[1])
    length = int(key.split(", ")[1].split()[0])
    same, ctl = replay_verdicts(seed, length)
    fig = P.replay_panels(same, ctl, width=6.5, height=3.4)
    alt = (f"Slots in use over {length} operations of seed {seed}: {same.kernel_a} and {same.kernel_b} "
           f"coincide ({'identical' if same.identical else 'different'}); {ctl.kernel_a} and "
           f"{ctl.kernel_b} split at operation {ctl.first.index if ctl.first else 'none'}.")
    pre = "<pre style='font-size:78%;line-height:1.2'>{}</pre>"
    return (pre.format(html.escape(str(same))) + img_html(fig, alt)
            + "<b>control</b>" + pre.format(html.escape(str(ctl))))


def replay_widget(value: str = _replay_key(1, max(REPLAY_LENGTHS))) -> W.VBox:
    """Precomputed: seed and length -> the replay and its verdicts."""
    return precomputed(REPLAY_KEYS, replay_state_html, "replay", value=value, kind="dropdown")


#: Live callbacks of chapters 5 and 6 with typical arguments (for the 250 ms benchmark).
LIVE_CALLBACKS = {
    "serve": (serve_html, {"size_kib": 8192, "context": "may sleep (GFP_KERNEL)", "cma": "256M",
                           "state": "page cache full"}),
    "serve_fragmented": (serve_html, {"size_kib": 4096, "context": "atomic (GFP_NOWAIT)", "cma": "0",
                                      "state": "fragmented"}),
}


def atomic_pool_sizes(cma: str = "256M") -> dict:
    """``{pool name: size in KiB}`` of the confidential guest used by :data:`CONTEXTS`."""
    m = make_machine("coco", cma)
    return {k: v["size"] >> 10 for k, v in m.pages.atomic_pools().items()}
