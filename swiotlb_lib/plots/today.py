"""Figures and widget states of the chapter "SWIOTLB beyond the RFC".  Data come from
:mod:`swiotlb_lib.scenarios.today`; these functions only draw and lay out."""
from __future__ import annotations

from matplotlib.patches import Patch, Rectangle

from ..constants import IO_TLB_SIZE
from ..report import html_table, mib
from .common import COLORS, figure, img_html

#: colours of the slot strip
SLOT_COLORS = {"padding slot": COLORS["dma32"], "data slot": COLORS["pool_used"],
               "free": COLORS["free"], "other device": COLORS["kernel"]}


def slot_strip(case: dict, width: float = 7.0, height: float = 1.9):
    """The slots one IOMMU case takes (:func:`~swiotlb_lib.scenarios.today.iommu_case`):
    the first slots of the pool, padding and data slots coloured, the bytes dma-iommu
    zeroes hatched, IOMMU granule boundaries as vertical lines."""
    fig, ax = figure(width, height)
    n = max(8, case["nslots"] + 2 if case["bounce"] else 8)
    for i in range(n):
        kind = "free"
        if case["bounce"] and case["first_slot"] <= i < case["first_slot"] + case["nslots"]:
            kind = "padding slot" if i < case["data_slot"] else "data slot"
        ax.add_patch(Rectangle((i, 0), 1, 1, facecolor=SLOT_COLORS[kind], edgecolor="white", lw=1.5))
    if case["bounce"]:
        base = case["first_slot"]
        start = (case["data_slot"] - base) + case["tlb_offset"] / IO_TLB_SIZE + base
        ax.add_patch(Rectangle((start, 0.25), case["size"] / IO_TLB_SIZE, 0.5, facecolor=COLORS["app"],
                               edgecolor="black", lw=0.8, label="the buffer's bytes"))
        gran = case["granule"] / IO_TLB_SIZE
        g = 0.0
        while g <= n:
            ax.axvline(g, color=COLORS["reach"], lw=1.2, ls="--")
            g += gran
        ax.text(start, 1.08, f"bounce buffer {case['tlb_addr']:#x}", fontsize=7)
    ax.set_xlim(0, n)
    ax.set_ylim(0, 1.3)
    ax.set_yticks([])
    ax.set_xlabel("slot (2 KiB each); dashed lines: IOMMU granule boundaries")
    handles = [Patch(color=v, label=k) for k, v in SLOT_COLORS.items() if k != "other device"]
    handles.append(Patch(color=COLORS["app"], label="buffer bytes"))
    ax.legend(handles=handles, fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.12), frameon=False)
    return fig


def iommu_state_html(case: dict) -> str:
    """One state of the main widget: the decision as a table, then the slot strip."""
    yes = "yes" if case["bounce"] else "no"
    rows = [("granule", mib(case["granule"])), ("phys, size", f"{case['phys']:#x}, {case['size']} B"),
            ("device", ("untrusted" if case["untrusted"] else "trusted")
             + (f", min_align_mask {case['min_align_mask']:#x}" if case["min_align_mask"] else "")),
            ("bounce through swiotlb", yes), ("why", case["reason"])]
    if case["bounce"]:
        rows += [("alloc_align_mask = iova_mask()", f"{case['alloc_align_mask']:#x}"),
                 ("alloc size (ALIGN(size + offset, granule))", f"{case['alloc_size']} B = {case['nslots']} slots"),
                 ("padding slots (pad_slots)", case["pad_slots"]),
                 ("bytes zeroed before / after", f"{case['pre_zero']} / {case['post_zero']}"),
                 ("slots freed at unmap", case["freed_at_unmap"])]
        if case["warns_align"]:
            rows.append(("warning", "Alloc alignment may prevent fulfilling requests with max mapping_size"))
    table = html_table(("", ""), rows, caption=case["label"])
    fig = slot_strip(case)
    alt = (f"Slots taken by {case['label']}: " + (f"{case['nslots']} slots, {case['pad_slots']} padding"
                                                   if case["bounce"] else "no bounce, no slots"))
    return table + img_html(fig, alt)


def leak_curve(result: dict, width: float = 6.5, height: float = 2.8):
    """``io_tlb_used`` against requests for the leaking driver, with the pool size."""
    fig, ax = figure(width, height)
    xs = [x for x, _ in result["series"]]
    ys = [y for _, y in result["series"]]
    ax.plot(xs, ys, color=COLORS["fail"], marker=".", label="io_tlb_used")
    ax.axhline(result["nslabs"], color=COLORS["pool"], ls="--", label=f"pool: {result['nslabs']} slots")
    if result["first_fail"]:
        ax.axvline(result["first_fail"], color=COLORS["kernel"], ls=":", label=f"first failure: request {result['first_fail']}")
    ax.set_xlabel("requests (4 KiB each; one in ten never unmapped)")
    ax.set_ylabel("slots in use")
    ax.legend(fontsize=8)
    return fig


def coco_bars(result: dict, width: float = 6.5, height: float = 2.8):
    """A confidential guest's default pool against RAM: 6 % clamped, and what boot builds."""
    fig, ax = figure(width, height)
    rows = result["rows"]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [r["six_percent_clamped"] / 2**20 for r in rows], 0.4,
           color=COLORS["dma32"], label="6 % of RAM, clamped to [64 MiB, 1 GiB]")
    ax.bar([i + 0.2 for i in x], [r["pool_bytes"] / 2**20 for r in rows], 0.4,
           color=COLORS["pool"], label="pool built (after area rounding)")
    ax.set_xticks(list(x), [r["ram"] for r in rows])
    ax.set_xlabel("guest RAM")
    ax.set_ylabel("MiB")
    ax.legend(fontsize=8)
    return fig


__all__ = ["slot_strip", "iommu_state_html", "leak_curve", "coco_bars"]
