"""Experiments of chapter 11: the cover letter's claims against the model, and the scorecard.

The concern of this module is the review's numbers: :func:`claim_evidence` (one table per
claim of the RFC v1 cover letter, Message-ID ``cover.1679309810.git.petr.tesarik.ext@huawei.com``,
and Petr Tesarik's follow-up ``630334b5-05d0-0152-7c2c-79174703f0ed@huaweicloud.com``),
:func:`claim_summary_rows`, :func:`may_sleep_rows` (RFC patch 1/4, ``DMA_ATTR_MAY_SLEEP``)
and :func:`scorecard`.  They reuse the experiments of chapters 7 and 9
(:mod:`swiotlb_lib.scenarios.dynamic`), the named systems
(:mod:`swiotlb_lib.scenarios.systems`) and what the Raspberry Pi's screen shows
(:func:`~swiotlb_lib.scenarios.three_systems.rpi_screen`); :mod:`swiotlb_lib.widgets.dynamic`
shows them.
"""
from __future__ import annotations

import textwrap
from functools import lru_cache

from ..constants import MiB
from ..report import text_table
from . import Experiment, register
from .dynamic import (INTENSITIES, KERNEL_LABELS, footprint_state, lookup_costs, oversize_growth, size_label,
                      three_systems)
from .systems import run_scenario
from .three_systems import RPI_4K_BYTES, rpi_screen


#: The claims of the explorer, in order: (key, short title, what the cover letter says,
#: in our words).
CLAIMS = (
    ("rpi", "Raspberry Pi 4 frames cannot be bounced",
     "dma-buf frames from v3d to vc4 (8 MiB FullHD, 34 MiB 4K) exceed the 256 KiB segment "
     "limit, so SWIOTLB cannot handle them."),
    ("coco", "6 % of RAM is only a guess for confidential guests",
     "SEV sizes SWIOTLB at 6 % of memory, an approximation: real needs depend on the I/O "
     "and the drivers, which are not known at boot."),
    ("oom", "A smaller SWIOTLB avoids OOM kills on an Arm board",
     "Colleagues got rid of OOM kills on an embedded Arm device by shrinking SWIOTLB; a "
     "pool that starts small and grows would spare them the sizing."),
    ("off", "Zero impact when the patches are applied but not enabled",
     "Petr's follow-up (630334b5-05d0-0152-7c2c-79174703f0ed@huaweicloud.com): with the "
     "series applied and swiotlb=dynamic not given, nothing changes."),
    ("cost", "Some slowdown is acceptable when dynamic buffers are enabled",
     "The cover letter asks how to measure the performance impact; the follow-up proposes "
     "to accept some slowdown when the feature is opted in."),
)


@lru_cache(maxsize=None)
def claim_evidence(key: str) -> dict:
    """The model's numbers for one claim (see :data:`CLAIMS`); cached."""
    if key == "rpi":
        rows = []
        known = {r.kernel: r for r in three_systems()["rpi4-4k"]}
        for name in ("rpi4-fullhd", "rpi4-4k"):
            for k in ("v6.3", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic"):
                r = known[k] if name == "rpi4-4k" else run_scenario(name, kernel=k)
                rows.append((name, k, r.extra["imports_ok"], r.extra["imports_failed"],
                             round(r.peak_bounce_bytes / MiB, 1)))
        screens = {k: rpi_screen(k) for k in ("v6.3", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic")}
        note = ("what the screen shows over 8 frames rendered into 2 reused 34 MiB buffers: "
                + ", ".join(f"{KERNEL_LABELS[k]} {s['frames_shown']} of {s['frames']}" for k, s in screens.items())
                + "; an import maps the buffer once with DMA_ATTR_SKIP_CPU_SYNC and DRM never syncs, so "
                  "a bounced buffer keeps the frame it held at import")
        return {"header": ["scenario", "kernel", "imports ok", "imports failed", "peak MiB held"], "rows": rows,
                "note": note}
    if key == "coco":
        rows = []
        for intensity in INTENSITIES:
            for r in footprint_state("coco", intensity):
                rows.append((intensity, r["label"], r["pool_bytes"] // MiB, round(r["peak"] / MiB, 1),
                             r["failed"], r["attempted"]))
        return {"header": ["load", "configuration", "pool MiB", "peak MiB held", "failed", "attempted"],
                "rows": rows}
    if key == "oom":
        rows = []
        for r in three_systems()["arm-board-oom"]:
            rows.append((r.kernel, r.cmdline or "(none)", round(r.peak_bounce_bytes / MiB, 1), r.oom_events,
                         r.extra["app_mib_resident"], r.failed))
        return {"header": ["kernel", "cmdline", "peak MiB held", "OOM events", "app MiB resident",
                           "failed maps"], "rows": rows}
    if key == "off":
        rows = []
        for device in ("nvme", "pci32"):
            costs = lookup_costs(device)
            for label in ("v6.3-rc", "RFC v1, dynamic off"):
                c = costs[label]
                rows.append((device, label, c["unmap_sync_lookups"], c["tree_lookups"], c["slots_examined"],
                             c["lock_acquisitions"]))
        a = run_scenario("storage", kernel="v6.3rc", cmdline="swiotlb=1024,force").to_dict()
        b = run_scenario("storage", kernel="rfc-v1", cmdline="swiotlb=1024,force").to_dict()
        same = all(a[k] == b[k] for k in a if k not in ("kernel", "costs")) and \
            all(a["costs"][k] == b["costs"].get(k) for k in a["costs"])
        return {"header": ["device", "configuration", "unmap/sync lookups", "tree lookups", "slots examined",
                           "area lock acquisitions"], "rows": rows,
                "note": f"storage scenario (swiotlb=1024,force), v6.3-rc vs RFC v1 without dynamic: "
                        f"{'identical' if same else 'DIFFERENT'} results and cost counters"}
    if key == "cost":
        rows = []
        for device in ("nvme", "pci32"):
            for label, c in lookup_costs(device).items():
                if label == "RFC v1, dynamic off":
                    continue
                rows.append((device, label, c["unmap_sync_lookups"], c["tree_lookups"], c["tree_node_visits"],
                             c["dyn_lock_acquisitions"], sum(c["page_alloc_orders"].values()),
                             c["lookup_steps"]))
        return {"header": ["device", "configuration", "unmap/sync lookups", "tree lookups", "tree node visits",
                           "dyn lock acquisitions", "page allocations", "pool-walk steps"], "rows": rows}
    raise ValueError(f"key: one of {', '.join(k for k, *_ in CLAIMS)}, got {key!r}")


def held_label(nbytes: int) -> str:
    """Memory held for bouncing as chapter 9's comparison prints it: MiB with two decimals
    below 10 MiB, whole MiB above."""
    return f"{nbytes / MiB:.2f} MiB" if nbytes < 10 * MiB else f"{nbytes / MiB:.0f} MiB"


def claim_summary_rows() -> list:
    """One row per claim: the claim and the model's answer in one line, from :func:`claim_evidence`."""
    rows = []
    ev = claim_evidence("rpi")["rows"]
    four_k = {r[1]: f"{r[2]}/{r[2] + r[3]}" for r in ev if r[0] == "rpi4-4k"}
    shown = {k: rpi_screen(k) for k in four_k}
    rows.append([CLAIMS[0][1], "4K frames imported: " + ", ".join(f"{KERNEL_LABELS[k]} {v}" for k, v in four_k.items())
                 + "; 4K frames shown (8 frames, 2 reused buffers): "
                 + ", ".join(f"{KERNEL_LABELS[k]} {s['frames_shown']}/{s['frames']}" for k, s in shown.items())])
    ev = claim_evidence("coco")["rows"]
    big = next(r for r in ev if r[0] == "heavy" and r[1].startswith("v6.3-rc") and r[2] > 64)
    guest = three_systems()["coco-guest"]
    v63 = next(r for r in guest if r.kernel == "v6.3")
    rows.append([CLAIMS[1][1], f"6 % pool: {big[2]} MiB, of which at most {v63.peak_used_slots * 2048 / MiB:.2f} MiB "
                 f"in use at once (coco-guest scenario); the same scenario from a 1 MiB pool (swiotlb=512) on "
                 f"the dynamic kernels: "
                 + ", ".join(f"{KERNEL_LABELS[r.kernel]} {r.failed} failed, {held_label(r.peak_bounce_bytes)} held"
                             for r in guest if r.kernel != "v6.3")])
    ev = three_systems()["arm-board-oom"]
    rows.append([CLAIMS[2][1], ", ".join(f"{KERNEL_LABELS[r.kernel]}: {r.oom_events} OOM events, "
                                         f"{held_label(r.peak_bounce_bytes)} held" for r in ev)])
    rows.append([CLAIMS[3][1], claim_evidence("off")["note"]])
    ev = claim_evidence("cost")["rows"]
    n = next(r for r in ev if r[0] == "nvme" and r[1].startswith("RFC"))
    b = next(r for r in ev if r[0] == "pci32" and r[1].startswith("RFC"))
    rows.append([CLAIMS[4][1], f"RFC with dynamic on: {n[3]} tree lookups for {n[2]} unmap/sync calls of a device "
                 f"that never bounces; {b[3]} tree lookups, {b[5]} lock acquisitions and {b[6]} page allocations "
                 f"for {b[2] // 2} rounds of one that does"])
    return rows


MAY_SLEEP_HEADER = ["scenario", "MAY_SLEEP", "imports", "failed maps", "largest segment", "peak MiB",
                    "frames shown"]


def may_sleep_rows() -> list:
    """RFC v1 patch 1/4 in numbers: the Raspberry Pi scenarios on rfc-v1 with and without
    ``DMA_ATTR_MAY_SLEEP``: imports of a new buffer per frame (``rpi4-*``), and what the
    screen shows when 8 frames are rendered into 2 reused buffers
    (:func:`~swiotlb_lib.scenarios.three_systems.rpi_screen`)."""
    rows = []
    for name in ("rpi4-fullhd", "rpi4-4k"):
        for ms in (True, False):
            r = run_scenario(name, kernel="rfc-v1", may_sleep=ms)
            s = rpi_screen("rfc-v1", nbytes=r.extra["frame_bytes"], may_sleep=ms)
            rows.append([name, "yes" if ms else "no", f"{r.extra['imports_ok']}/{r.extra['imports_ok'] + r.extra['imports_failed']}",
                         r.failed, size_label(r.extra["largest_segment"]), f"{r.peak_bounce_bytes / MiB:.0f}",
                         f"{s['frames_shown']}/{s['frames']}"])
    return rows


def summary_text(rows, width: int = 88) -> str:
    """Rows of :func:`claim_summary_rows` as text: each claim, then its answer wrapped to ``width``."""
    out = []
    for claim, answer in rows:
        out.append("* " + claim)
        out.append(textwrap.fill(answer, width, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(out)


def claim_summary_text(width: int = 88) -> str:
    """:func:`claim_summary_rows` as wrapped text."""
    return summary_text(claim_summary_rows(), width)


SCORE_KERNELS = ("v6.3", "rfc-v1", "v6.6-dynamic", "v6.11-dynamic")
SCORE_ROWS = ("RPi 4: 4K frames shown", "CoCo guest, 8 GiB", "Arm board: OOM kills",
              "never-bouncing device,\n400 unmap/sync calls", "512 KiB request")


def scorecard() -> tuple:
    """Chapter 11's summary: ``(cells, rows, cols)`` for :func:`~swiotlb_lib.plots.dynamic.plot_scorecard`,
    every cell ``(verdict, text)`` computed from the experiments above.  The Raspberry Pi
    row counts the frames the screen shows (:func:`~swiotlb_lib.scenarios.three_systems.rpi_screen`,
    8 frames into 2 reused 34 MiB buffers), not the imports that succeeded."""
    sysr = {name: {r.kernel: r for r in res} for name, res in three_systems().items()}
    nvme = lookup_costs("nvme")
    nvme_by_kernel = {"v6.3": nvme["v6.3-rc"], "rfc-v1": nvme["RFC v1, swiotlb=dynamic"],
                      "v6.6-dynamic": nvme["v6.6 dynamic"], "v6.11-dynamic": nvme["v6.11 dynamic"]}
    cells = {}
    cols = [KERNEL_LABELS[k] for k in SCORE_KERNELS]
    for k, col in zip(SCORE_KERNELS, cols):
        s = rpi_screen(k, nbytes=RPI_4K_BYTES)
        stale = s["imports_ok"] and s["frames_shown"] < s["frames"]
        cells[(SCORE_ROWS[0], col)] = ("good" if s["frames_shown"] == s["frames"] else "bad",
                                       f"{s['frames_shown']} of {s['frames']}" + ("\nthen stale" if stale else ""))
        r = sysr["coco-guest"][k]
        held = r.peak_bounce_bytes / MiB
        verdict = "bad" if r.failed and held < 64 else ("mixed" if held >= 64 else "good")
        cells[(SCORE_ROWS[1], col)] = (verdict, f"{r.failed} failed\n{held_label(r.peak_bounce_bytes)} held")
        r = sysr["arm-board-oom"][k]
        cells[(SCORE_ROWS[2], col)] = ("bad" if r.oom_events else "good",
                                       f"{r.oom_events} OOM\n{held_label(r.peak_bounce_bytes)} held")
        c = nvme_by_kernel[k]
        extra = c["tree_lookups"] + c["lookup_steps"]
        cells[(SCORE_ROWS[3], col)] = ("bad" if c["tree_lookups"] else "good",
                                       f"{c['tree_lookups']} tree lookups" if c["tree_lookups"]
                                       else f"{extra} extra steps")
        growth = oversize_growth(k)
        g = growth[-1]
        added = g[1] - growth[0][1]
        if g[5]:
            cells[(SCORE_ROWS[4], col)] = ("good", f"served ({g[5]} of {g[0]})")
        else:
            cells[(SCORE_ROWS[4], col)] = ("bad" if added else "n/a",
                                           f"fails, +{added:.0f} MiB\nnever freed" if added else "fails, +0 MiB")
    return cells, list(SCORE_ROWS), cols


def scorecard_text(cells, rows, cols) -> str:
    """The scorecard as text: one block per question, one line per kernel."""
    out = []
    for r in rows:
        out.append(r.replace("\n", " "))
        for c in cols:
            verdict, text = cells[(r, c)]
            out.append(f"    {c:14} {verdict:6} {text.replace(chr(10), ', ')}")
    return "\n".join(out)


def evidence_lines(ev: dict) -> list[str]:
    """One :func:`claim_evidence` answer as text: its table, then its note."""
    return text_table(ev["header"], ev["rows"]).splitlines() + ([ev["note"]] if ev.get("note") else [])


for _exp in (
    Experiment("claims", claim_summary_rows, "the cover letter's claims and the model's answer to each",
               chapter="ch11", seeded=False, lines=lambda rows: summary_text(rows).splitlines()),
    *(Experiment(f"claim-{key}", claim_evidence, f"model evidence for the claim: {title}",
                 chapter="ch11", seeded=False, lines=evidence_lines, defaults={"key": key})
      for key, title, _ in CLAIMS),
    Experiment("may-sleep-frames", may_sleep_rows, "Raspberry Pi frames on RFC v1 with and without MAY_SLEEP",
               chapter="ch11", seeded=False, lines=lambda rows: text_table(MAY_SLEEP_HEADER, rows).splitlines()),
    Experiment("scorecard", scorecard, "the review's scorecard: five questions, four kernels",
               chapter="ch11", seeded=False, lines=lambda v: scorecard_text(*v).splitlines()),
):
    register(_exp)
