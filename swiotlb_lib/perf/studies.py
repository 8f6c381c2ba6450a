"""The measuring studies of chapter 10, "How to measure SWIOTLB": what its tables,
figures and widgets show, computed (seeded or deterministic) and written out as text.

The RFC cover letter (``cover.1679309810.git.petr.tesarik.ext@huawei.com``) asked for
"suggestions for measuring the performance impact of changes in SWIOTLB".  The chapter
answers in four parts:

(1) noise and bias -- :func:`runs_table` (``runs_needed`` over a grid of CoVs and effects,
    compared with :data:`RUNS_TABLE_BY_HAND`), :func:`detectable_effect`,
    :func:`example_runs` and :func:`analyse_two`, :func:`rmit_lines`,
    :func:`design_study` (a seeded simulation of two *identical* kernels measured with
    three experimental designs), :func:`force_vs_direct`;
(2) the book's own analysis of the figures in Petr Tesarik's v3 cover letter
    (``cover.1687859323.git.petr.tesarik.ext@huawei.com``) -- :func:`reanalysis_rows`;
(3) noise-free comparison by cost counters -- :func:`cost_run`, :func:`cost_grid`,
    :func:`cost_table`, :func:`growth_table`;
(4) the concurrency model -- :func:`scaling_grid`, :func:`scaling_table`,
    :func:`latency_table`, :func:`small_pool_rows`, :func:`map_benchmark_lines`.

The statistics are :mod:`swiotlb_lib.perf.stats`, the simulation
:mod:`swiotlb_lib.perf.concurrency` and :mod:`swiotlb_lib.perf.map_benchmark`.  Long
runs are cached (``functools.lru_cache``) and seeded, so the chapter's cells share them.
Each study is registered as an experiment (``python -m swiotlb_lib experiment NAME``);
the figures of these results are in :mod:`swiotlb_lib.plots.measuring`.
"""
from __future__ import annotations

import math
from dataclasses import fields
from functools import lru_cache

import numpy as np

from ..boot import Machine
from ..checks import check_int_at_least, check_positive
from ..constants import DMA_BIDIRECTIONAL, IO_TLB_SHIFT, MiB
from ..report import mib
from ..scenarios import Experiment, register
from ..scenarios.systems import run_scenario
from . import stats as S
from .concurrency import DEFAULT_COSTS, CostModel, simulate
from .map_benchmark import DIRECTIONS, run_map_benchmark


# ================================================================== (1) how many runs ======

#: Runs per arm for alpha 0.05, power 0.8: {CoV: {effect: n}} (percent).  Not a published
#: table: values worked out by hand from n = 2 (z_{1-α/2} + z_{1-β})² (CoV/Δ)² ≈ 15.7 (CoV/Δ)²,
#: rounded up, at least 2 (normal approximation; Lehr, "Sixteen S-squared over D-squared: a
#: relation for crude sample size estimates", Statistics in Medicine 11(8):1099-1102, 1992,
#: doi:10.1002/sim.4780110811), kept as data to check :func:`runs_table`.
RUNS_TABLE_BY_HAND = {
    0.5: {1: 4, 2: 2, 3: 2, 5: 2, 10: 2},
    1: {1: 16, 2: 4, 3: 2, 5: 2, 10: 2},
    2: {1: 63, 2: 16, 3: 7, 5: 3, 10: 2},
    3: {1: 142, 2: 36, 3: 16, 5: 6, 10: 2},
    5: {1: 393, 2: 99, 3: 44, 5: 16, 10: 4},
    10: {1: 1570, 2: 393, 3: 175, 5: 63, 10: 16},
}
#: The name chapter 10 compares :func:`runs_table` with (the same table).
PUBLISHED_RUNS_TABLE = RUNS_TABLE_BY_HAND
RUNS_COVS = tuple(RUNS_TABLE_BY_HAND)
RUNS_EFFECTS = (1, 2, 3, 5, 10)


def runs_table(covs=RUNS_COVS, effects=RUNS_EFFECTS, alpha: float = 0.05, power: float = 0.8) -> dict:
    """``{cov: {effect: runs_needed(cov, effect)}}`` (percent), computed."""
    return {c: {e: S.runs_needed(c, e, alpha, power) for e in effects} for c in covs}


def runs_table_lines(table: dict) -> list[str]:
    """A table of :func:`runs_table` as text, laid out like :data:`RUNS_TABLE_BY_HAND`
    (one row per CoV, one column per effect)."""
    effects = list(next(iter(table.values())))
    out = ["CoV \\ detect " + "".join(f"{e:>7g} %" for e in effects)]
    for c, row in table.items():
        out.append(f"{c:>10g} % " + "".join(f"{row[e]:>9}" for e in effects))
    return out


def runs_table_text(covs=RUNS_COVS, effects=RUNS_EFFECTS, alpha: float = 0.05, power: float = 0.8) -> str:
    """:func:`runs_table` as text (:func:`runs_table_lines`)."""
    return "\n".join(runs_table_lines(runs_table(covs, effects, alpha, power)))


def detectable_effect(cov: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest relative difference (same unit as ``cov``) that ``n`` runs per arm
    detect at ``alpha`` (two-sided) with ``power``: the inverse of
    :func:`swiotlb_lib.perf.stats.runs_needed`, ``cov * sqrt(2 (z_a + z_b)² / n)``
    (normal approximation, like ``runs_needed``)."""
    n = check_int_at_least("n", n, 2)
    cov = check_positive("cov", cov)
    z = S.z_alpha_power(alpha, power)
    return cov * math.sqrt(2 * z * z / n)


def detection_rows(covs=(3, 5), effects=(3, 5, 7), runs=(2, 5)) -> list[dict]:
    """Per CoV (percent): the runs per kernel needed to detect each of ``effects``, and
    the smallest change detected by each number of ``runs``."""
    return [{"cov": c, "runs_needed": {e: S.runs_needed(c, e) for e in effects},
             "detectable": {n: detectable_effect(c, n) for n in runs}} for c in covs]


def detection_lines(rows) -> list[str]:
    """:func:`detection_rows` as the chapter prints them."""
    out = []
    for r in rows:
        effects = ", ".join(f"{e:g}" for e in r["runs_needed"])
        out.append(f"CoV {r['cov']:g} %: runs per kernel to detect {effects} %: {list(r['runs_needed'].values())}")
        out.append("          smallest change detected by " +
                   ", by ".join(f"{n} runs: {d:.1f} %" for n, d in r["detectable"].items()))
    return out


def example_runs(n: int = 16, cov: float = 3.0, effect: float = -3.0, seed: int = 10):
    """Seeded synthetic bandwidths (mean 100) of a vanilla and a patched kernel, ``n``
    runs each, per-run CoV ``cov`` percent, the patched one ``effect`` percent off:
    ``(vanilla, patched)``.  Only to show the analyses of the recipe's step 6."""
    rng = np.random.default_rng(seed)
    return rng.normal(100.0, cov, n), rng.normal(100.0 + effect, cov, n)


def analyse_two(vanilla, patched, seed: int = 1) -> list[str]:
    """The four analyses of :mod:`swiotlb_lib.perf.stats` for patched vs vanilla, as
    lines: Welch difference, Fieller ratio, bootstrap ratio of medians, Mann-Whitney
    with the Hodges-Lehmann shift (95 % throughout)."""
    w = S.welch_diff_ci(patched, vanilla)
    f = S.fieller_ratio_ci(patched, vanilla)
    b = S.bootstrap_median_ratio_ci(patched, vanilla, seed=seed)
    m = S.mann_whitney(patched, vanilla)
    return [f"Welch, difference of means     {w.estimate:+6.2f}  [{w.low:+6.2f}, {w.high:+6.2f}]",
            f"Fieller, ratio of means         {f.estimate:6.4f}  [{f.low:6.4f}, {f.high:6.4f}]",
            f"bootstrap, ratio of medians     {b.estimate:6.4f}  [{b.low:6.4f}, {b.high:6.4f}]",
            f"Hodges-Lehmann shift            {m.shift:+6.2f}  [{m.shift_low:+6.2f}, {m.shift_high:+6.2f}]",
            f"Mann-Whitney U test             p = {m.p_value:.4f}"]


def example_analysis(n: int = 16, cov: float = 3.0, effect: float = -3.0, seed: int = 10) -> list[str]:
    """:func:`analyse_two` of :func:`example_runs` (the chapter's step 6 example)."""
    return analyse_two(*example_runs(n, cov, effect, seed))


#: The arms of the RMIT example: Petr's v3 comparison (vanilla, patched with the default
#: pool, patched with a 1 MiB pool that grows).
RMIT_ARMS = ("v6.4-rc6", "patched 64 MiB", "patched 1 MiB+grow")


def rmit_lines(arms=RMIT_ARMS, runs_per_arm: int = 4, seed: int = 2023) -> list[str]:
    """One line per block of an RMIT schedule (:func:`swiotlb_lib.perf.stats.rmit_schedule`):
    the boots of the block in order, numbered from the start of the experiment."""
    sched = S.rmit_schedule(arms, runs_per_arm, seed)
    k = len(arms)
    out = []
    for b in range(runs_per_arm):
        cells = [f"#{b * k + i + 1:<2} {sched[b * k + i]}" for i in range(k)]
        out.append(f"block {b + 1}: " + " | ".join(cells))
    return out


def runs_plan(cov: float = 3.0, effect: float = 3.0, power: float = 0.8, arms: int = 2) -> dict:
    """Runs per arm for any CoV, effect and power (alpha 0.05), the first RMIT blocks
    (kernels named A, B, ...) and the change that many runs detect."""
    n = S.runs_needed(cov, effect, 0.05, power)
    names = [chr(ord("A") + i) for i in range(arms)]
    sched = S.rmit_schedule(names, min(n, 4), seed=1)
    return {"cov": cov, "effect": effect, "power": power, "arms": arms, "runs": n,
            "blocks": [" ".join(sched[i:i + arms]) for i in range(0, len(sched), arms)],
            "detectable": detectable_effect(cov, n, 0.05, power)}


# ------------------------------------------------------------------ the design study -----

#: Assumptions of the design study, in percent of the mean: a slow drift of the machine
#: over the session (device wear, temperature, background jobs), an offset drawn per boot
#: (where the pool, the page cache and the buffers land), and run-to-run noise.
DESIGN_ASSUMPTIONS = {"drift": -3.0, "boot_sd": 1.5, "run_cov": 1.0}
#: The three designs: (label, boots per kernel, runs per boot, order)
DESIGNS = (("1 boot per kernel, A then B", 1, 10, "blocked"),
           ("10 boots per kernel, A then B", 10, 1, "blocked"),
           ("10 boots per kernel, RMIT order", 10, 1, "rmit"))


def _session(rng, boots: int, runs: int, order: str, drift: float, boot_sd: float, run_cov: float):
    """One simulated session of two identical kernels; returns ``(t, arm, value)`` arrays
    in time order (``arm`` 0 = A, 1 = B)."""
    if order == "blocked":
        arms = [0] * boots + [1] * boots
    else:   # RMIT: each block of two boots in a fresh random order
        arms = []
        for _ in range(boots):
            arms.extend(rng.permutation(2).tolist())
    nb = len(arms)
    offsets = rng.normal(0.0, boot_sd, nb)
    arm = np.repeat(arms, runs)
    off = np.repeat(offsets, runs)
    t = (np.arange(nb * runs) + 0.5) / (nb * runs)
    value = 100.0 + drift * t + off + rng.normal(0.0, run_cov, nb * runs)
    return t, arm, value


@lru_cache(maxsize=None)
def design_study(experiments: int = 2000, seed: int = 7, drift: float = DESIGN_ASSUMPTIONS["drift"],
                 boot_sd: float = DESIGN_ASSUMPTIONS["boot_sd"],
                 run_cov: float = DESIGN_ASSUMPTIONS["run_cov"]) -> dict:
    """Measure two **identical** kernels ``experiments`` times with each design of
    :data:`DESIGNS` and count how often a Welch 95 % interval of the difference of the
    per-run means (:func:`swiotlb_lib.perf.stats.welch_diff_ci`) excludes 0: the
    false-positive rate, 5 % if the design is sound.

    Returns ``{"rates": {label: rate}, "examples": {label: (t, arm, value, interval)}}``
    with one seeded example session per design.  The model of the machine is in
    :data:`DESIGN_ASSUMPTIONS` (all assumptions, chosen for illustration)."""
    rng = np.random.default_rng(seed)
    rates, examples = {}, {}
    for label, boots, runs, order in DESIGNS:
        hits = 0
        for e in range(experiments):
            t, arm, v = _session(rng, boots, runs, order, drift, boot_sd, run_cov)
            ci = S.welch_diff_ci(v[arm == 1], v[arm == 0])
            hits += not ci.contains(0.0)
            if e == 0:
                examples[label] = (t, arm, v, ci)
        rates[label] = hits / experiments
    return {"rates": rates, "examples": examples, "experiments": experiments}


def design_lines(study: dict) -> list[str]:
    """The false-positive rates of :func:`design_study`, one line per design."""
    return [f"{label:<34} false positives {100 * r:5.1f} % of {study['experiments']} experiments"
            for label, r in study["rates"].items()]


# ------------------------------------------------------------------ force without IOMMU ---

def force_vs_direct(size: int = 65536, kernel: str = "v6.3") -> dict:
    """Map and unmap one ``size``-byte BIDIRECTIONAL buffer for a virtio-blk device on a
    2 GiB machine, once without and once with ``swiotlb=force``; returns
    ``{cmdline: (dma address == physical address, costs())}``."""
    out = {}
    for cmd in ("", "swiotlb=force"):
        m = Machine(ram="2G", cpus=2, kernel=kernel, cmdline=cmd)
        dev = m.add_device("virtio-blk")
        paddr = 0x20000000
        m.cpu_write(paddr, b"\x5a" * size)
        d = m.dma.map_single(dev, paddr, size, DMA_BIDIRECTIONAL, 0, 0)
        m.dma.unmap_single(dev, d, size, DMA_BIDIRECTIONAL)
        c = m.swiotlb.costs()
        out[cmd or "(no swiotlb= option)"] = (d == paddr, {k: v for k, v in c.items() if k != "area_locks"})
    return out


def force_vs_direct_report(result: dict) -> list[str]:
    """A result of :func:`force_vs_direct` as text: per command line, whether the device
    got the buffer's own address, and the counters."""
    out = []
    for cmd, (in_place, counts) in result.items():
        out.append(f"{cmd}: DMA address is the buffer's own address: {in_place}")
        out.append("    " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return out


def force_vs_direct_lines(size: int = 65536, kernel: str = "v6.3") -> list[str]:
    """:func:`force_vs_direct` run and written out (:func:`force_vs_direct_report`)."""
    return force_vs_direct_report(force_vs_direct(size, kernel))


# ================================================================== (2) Petr's v3 table ====

def reanalysis_rows(n: int = 5) -> list[dict]:
    """Our re-analysis (:func:`swiotlb_lib.perf.stats.reanalyse`) of the v3 table, one
    dict per platform/test/configuration: ``platform``, ``test``, ``config``, ``diff``,
    ``low``, ``high``, ``half``, ``dof`` (Welch), ``p``, ``verdict``, ``base_cov``, ``cov`` and ``text``
    (the published difference as printed, "<0.1 %" kept)."""
    published = {}
    for r in S.PETR_V3_TABLE:
        published[(r.platform, f"{r.test} default")] = (r.base_cov, r.default_cov, r.default_diff_text)
        published[(r.platform, f"{r.test} growing")] = (r.base_cov, r.growing_cov, r.growing_diff_text)
    rows = []
    for a in S.reanalyse(n=n):
        test, config = a.test.split()
        base, cov, text = published[(a.platform, a.test)]
        rows.append({"platform": a.platform, "test": test, "config": config, "diff": a.diff,
                     "low": a.diff - a.half_width, "high": a.diff + a.half_width,
                     "half": a.half_width, "dof": a.dof, "p": a.p_value, "verdict": a.verdict,
                     "base_cov": base, "cov": cov, "text": text})
    return rows


def reanalysis_text(rows=None) -> str:
    """:func:`reanalysis_rows` as a text table (CoVs and differences in percent)."""
    rows = reanalysis_rows() if rows is None else rows
    out = [f"{'platform':<9}{'test':<6}{'config':<8}{'CoV':>5}{'CoV':>6}{'diff':>8}"
           f"{'95 % interval':>17}{'dof':>5}{'p':>7}  verdict",
           f"{'':<23}{'base':>5}{'new':>6}"]
    for r in rows:
        out.append(f"{r['platform']:<9}{r['test']:<6}{r['config']:<8}{r['base_cov']:>5.2f}{r['cov']:>6.2f}"
                   f"{r['text'].replace(' %', ''):>8} [{r['low']:+6.1f},{r['high']:+6.1f}]"
                   f"{r['dof']:>5.1f}{r['p']:>7.3f}  {r['verdict']}")
    return "\n".join(out)


# ================================================================== (3) cost counters =====

#: Kernel profiles compared by cost counters, and pool sizes in slots (1 MiB ... 1 GiB).
COST_PROFILES = ("v6.3", "rfc-v1", "v6.6", "v6.6-dynamic", "v6.11-dynamic")
COST_NSLABS = (512, 2048, 8192, 32768, 524288)
#: Requests of the storage scenario per run (each about 45 map/unmap pairs).
COST_REQUESTS = 200


def cost_cmdline(kernel: str, nslabs: int) -> str:
    """``swiotlb=<nslabs>,force``; RFC v1 also gets ``dynamic``, the option its patch 4/4
    adds (without it the RFC behaves like its v6.3-rc base)."""
    return f"swiotlb={nslabs},force,dynamic" if kernel == "rfc-v1" else f"swiotlb={nslabs},force"


@lru_cache(maxsize=None)
def cost_run(kernel: str, nslabs: int, requests: int = COST_REQUESTS, seed: int = 1) -> dict:
    """Run the ``storage`` scenario (virtio-blk, queue depth 32) and summarise the model's
    cost counters.  Keys: ``kernel``, ``nslabs``, ``pool`` (bytes), ``cmdline``,
    ``requests``, ``attempted``, ``mapped``, ``failed`` and the counters ``slots_examined``,
    ``pool_searches`` (6.6 pools searched or 6.11 pool-area searches: 0 without dynamic
    pools), ``area_locks``, ``tree_locks`` (RFC v1 maple-tree lock), ``lookups``
    (unmap/sync ``is_swiotlb_buffer``/``find_pool`` calls), ``lookup_steps`` (pools
    walked by the dynamic lookups, or maple-tree levels visited in RFC v1),
    ``bytes_copied``, ``page_allocs`` and ``page_orders`` (``{order: count}``),
    ``pools_added``, ``transient_pools``, ``dyn_buffers``."""
    cmd = cost_cmdline(kernel, nslabs)
    r = run_scenario("storage", kernel=kernel, cmdline=cmd, seed=seed, requests=requests)
    c = r.costs
    orders = dict(c.get("page_alloc_orders", {}))
    return {"kernel": kernel, "nslabs": nslabs, "pool": nslabs << IO_TLB_SHIFT, "cmdline": cmd,
            "requests": requests, "attempted": r.attempted, "mapped": r.mapped, "failed": r.failed,
            "slots_examined": c["slots_examined"],
            "pool_searches": c.get("pools_searched", 0) + c.get("pool_area_searches", 0),
            "area_locks": c["lock_acquisitions"],
            "tree_locks": c.get("dyn_lock_acquisitions", 0),
            "lookups": c["unmap_sync_lookups"],
            "lookup_steps": c.get("lookup_steps", 0) + c.get("tree_node_visits", 0),
            "bytes_copied": c["bytes_copied"],
            "page_allocs": sum(orders.values()), "page_orders": orders,
            "pools_added": c.get("pools_added", 0), "transient_pools": c.get("transient_pools", 0),
            "dyn_buffers": c.get("dyn_buffers", 0)}


def cost_rows(nslabs: int, profiles=COST_PROFILES, requests: int = COST_REQUESTS) -> list[dict]:
    """:func:`cost_run` of each profile at one pool size (cached)."""
    return [cost_run(k, nslabs, requests) for k in profiles]


def cost_grid(profiles=COST_PROFILES, nslabs=COST_NSLABS, requests: int = COST_REQUESTS) -> list[dict]:
    """:func:`cost_run` for every profile and pool size (cached), pool size by pool size."""
    return [r for n in nslabs for r in cost_rows(n, profiles, requests)]


#: The rows of the cost table: (key, label).
COST_COLUMNS = (("mapped", "mapped"), ("failed", "failed"), ("slots_examined", "slots examined"),
                ("pool_searches", "pool searches"), ("area_locks", "area locks"),
                ("tree_locks", "tree locks"), ("lookups", "lookups"), ("lookup_steps", "lookup steps"),
                ("bytes_copied", "MiB copied"), ("page_allocs", "page allocs"))
#: Short column heads for the profiles.
SHORT = {"v6.3": "v6.3", "rfc-v1": "RFC v1", "v6.6": "v6.6", "v6.6-dynamic": "v6.6 dyn",
         "v6.11-dynamic": "v6.11 dyn"}


def cost_table_of(runs: list[dict]) -> str:
    """Text table of the counters of one pool size (rows of :func:`cost_rows`): one row
    per counter, one column per profile."""
    nslabs, requests = runs[0]["nslabs"], runs[0]["requests"]
    out = [f"pool {mib(nslabs << IO_TLB_SHIFT)} (swiotlb={nslabs},force), storage scenario, "
           f"{requests} requests",
           f"{'':<15}" + "".join(f"{SHORT.get(r['kernel'], r['kernel']):>12}" for r in runs)]
    for key, label in COST_COLUMNS:
        if key == "bytes_copied":
            cells = [f"{r[key] / MiB:>12.1f}" for r in runs]
        else:
            cells = [f"{r[key]:>12}" for r in runs]
        out.append(f"{label:<15}" + "".join(cells))
    return "\n".join(out)


def cost_table(nslabs: int, profiles=COST_PROFILES, requests: int = COST_REQUESTS) -> str:
    """:func:`cost_table_of` one pool size."""
    return cost_table_of(cost_rows(nslabs, profiles, requests))


def cost_grid_lines(grid: list[dict]) -> list[str]:
    """:func:`cost_grid` as one :func:`cost_table_of` per pool size, a blank line apart."""
    sizes = list(dict.fromkeys(r["nslabs"] for r in grid))
    tables = [cost_table_of([r for r in grid if r["nslabs"] == n]) for n in sizes]
    return "\n\n".join(tables).splitlines()


def growth_lines(runs: list[dict]) -> list[str]:
    """How each profile got its memory (rows of :func:`cost_rows`): pools added,
    transient pools, RFC buffers, and the page orders allocated."""
    out = [f"{'kernel':<14}{'pools':>6}{'transient':>10}{'RFC bufs':>9}  page allocations (order: count)"]
    for r in runs:
        orders = ", ".join(f"{o}: {n}" for o, n in r["page_orders"].items()) or "-"
        out.append(f"{r['kernel']:<14}{r['pools_added']:>6}{r['transient_pools']:>10}{r['dyn_buffers']:>9}  {orders}")
    return out


def growth_table(nslabs: int = 512, profiles=COST_PROFILES, requests: int = COST_REQUESTS) -> str:
    """:func:`growth_lines` of one pool size, as text."""
    return "\n".join(growth_lines(cost_rows(nslabs, profiles, requests)))


# ================================================================== (4) concurrency ======

SCALING_THREADS = (1, 2, 4, 8, 16)
SCALING_AREAS = (1, 4, 8, 16)
#: Simulated map+unmap pairs per precomputed point, and CPUs of the model machine.
SCALING_OPS = 2000
SCALING_CPUS = 16
#: Simulated pairs per live redraw (well under 250 ms).
LIVE_OPS = 1000


def cost_model(transfer_ns: float = 0.0) -> CostModel:
    """The default constants, or those with a device transfer time of ``transfer_ns``."""
    return DEFAULT_COSTS if not transfer_ns else CostModel(transfer_ns=float(transfer_ns))


@lru_cache(maxsize=None)
def scaling_point(threads: int, areas: int, ops: int = SCALING_OPS, seed: int = 1,
                  transfer_ns: float = 0.0):
    """:func:`swiotlb_lib.perf.concurrency.simulate` on a 16-CPU machine with
    ``swiotlb=32768,<areas>,force`` and ``threads`` mappers of 4 KiB (cached)."""
    return simulate(threads, areas, ops=ops, seed=seed, cpus=max(SCALING_CPUS, threads),
                    costs=cost_model(transfer_ns))


def scaling_grid(threads=SCALING_THREADS, areas=SCALING_AREAS, ops: int = SCALING_OPS,
                 seed: int = 1) -> dict:
    """``{areas: [ConcurrencyResult per thread count]}`` (cached points)."""
    return {a: [scaling_point(t, a, ops, seed) for t in threads] for a in areas}


def scaling_table(grid: dict, what: str = "throughput") -> str:
    """Text table, areas x threads, of ``throughput`` (million pairs per simulated second),
    ``wait`` (lock-wait share, percent) or ``speedup`` (throughput over one mapper)."""
    areas = list(grid)
    threads = [r.threads for r in grid[areas[0]]]
    unit = {"throughput": "M pairs/s", "wait": "% waiting", "speedup": "x 1 thread"}[what]
    out = [f"{unit:>10} | threads " + "".join(f"{t:>7}" for t in threads)]
    for a in areas:
        rs = grid[a]
        if what == "throughput":
            vals = [f"{r.throughput / 1e6:>7.2f}" for r in rs]
        elif what == "wait":
            vals = [f"{100 * r.lock_wait_share:>7.1f}" for r in rs]
        else:
            vals = [f"{r.throughput / rs[0].throughput:>7.2f}" for r in rs]
        out.append(f"{a:>4} area{'s' if a > 1 else ' '} |         " + "".join(vals))
    return "\n".join(out)


def latency_table(grid: dict, areas=(1, 8)) -> str:
    """Text table of map and unmap latency percentiles (µs) for some area counts."""
    out = [f"{'areas':>5} {'threads':>7} | {'map p50':>8} {'p90':>6} {'p99':>6} | "
           f"{'unmap p50':>9} {'p90':>6} {'p99':>6}"]
    for a in areas:
        for r in grid[a]:
            out.append(f"{a:>5} {r.threads:>7} | {r.map.p50 / 1e3:>8.2f} {r.map.p90 / 1e3:>6.2f} "
                       f"{r.map.p99 / 1e3:>6.2f} | {r.unmap.p50 / 1e3:>9.2f} {r.unmap.p90 / 1e3:>6.2f} "
                       f"{r.unmap.p99 / 1e3:>6.2f}")
    return "\n".join(out)


def scaling_lines(grid: dict) -> list[str]:
    """:func:`scaling_grid` as the chapter prints it: throughput, speedup and lock-wait
    tables, then the latencies of the 1- and 8-area pools (those it has)."""
    lat = tuple(a for a in (1, 8) if a in grid) or tuple(grid)[:1]
    parts = [scaling_table(grid, w) for w in ("throughput", "speedup", "wait")] + [latency_table(grid, lat)]
    return "\n\n".join(parts).splitlines()


def cost_model_lines(costs: CostModel = DEFAULT_COSTS) -> list[str]:
    """The constants of the concurrency model, one per line (all assumptions)."""
    return [f"{f.name:<18} = {getattr(costs, f.name):g}" for f in fields(costs)]


@lru_cache(maxsize=None)
def one_mapper(areas: int, transfer_ns: float, ops: int):
    """The one-mapper baseline of :func:`live_scaling` (cached: it depends on neither the
    thread count nor the CPU count)."""
    return simulate(1, areas, ops=ops, seed=1, cpus=SCALING_CPUS, costs=cost_model(transfer_ns))


def live_scaling(threads: int = 8, areas: int = 4, transfer_ns: float = 0.0, ops: int = LIVE_OPS):
    """One simulated run of ``ops`` pairs and its one-mapper baseline (a quarter of the
    pairs, at least 200): ``(result, baseline)``."""
    r = simulate(threads, areas, ops=ops, seed=1, cpus=max(SCALING_CPUS, threads), costs=cost_model(transfer_ns))
    return r, one_mapper(areas, float(transfer_ns), max(200, ops // 4))


@lru_cache(maxsize=None)
def small_pool_point(threads: int, kernel: str, dynamic: bool, ops: int = 1200, seed: int = 2,
                     transfer_ns: float = 0.0):
    """Petr's "growing" configuration against the default one, on 24 CPUs: with
    ``dynamic`` a ``<kernel>-dynamic`` machine booted with ``swiotlb=512,4,force``
    (1 MiB, 4 areas) and grown to 5 MiB before the run; else ``<kernel>`` with the
    default 64 MiB pool (``swiotlb=32768,force``: one area per CPU, rounded to 32)."""
    costs = cost_model(transfer_ns)
    if dynamic:
        return simulate(threads, cmdline="swiotlb=512,4,force", kernel=kernel + "-dynamic", cpus=24,
                        grow_to=5 * MiB, ops=ops, seed=seed, costs=costs)
    return simulate(threads, cmdline="swiotlb=32768,force", kernel=kernel, cpus=24, ops=ops,
                    seed=seed, costs=costs)


def small_pool_rows(threads=(1, 4, 16, 24), kernels=("v6.6", "v6.11"), transfer_ns: float = 0.0) -> list[dict]:
    """Rows comparing the grown 1 -> 5 MiB dynamic pool with the default pool."""
    rows = []
    for k in kernels:
        for t in threads:
            d = small_pool_point(t, k, True, transfer_ns=transfer_ns)
            f = small_pool_point(t, k, False, transfer_ns=transfer_ns)
            rows.append({"kernel": k, "threads": t, "ratio": d.throughput / f.throughput,
                         "pools": d.pools, "areas_dyn": d.nareas, "areas_def": f.nareas,
                         "wait_dyn": d.lock_wait_share, "wait_def": f.lock_wait_share,
                         "lookup_steps": d.costs.get("lookup_steps", 0), "ops": d.ops})
    return rows


def small_pool_text(rows) -> str:
    """:func:`small_pool_rows` as a text table."""
    out = [f"{'kernel':<6} {'threads':>7} | {'grown/default':>13} | {'pools':>5} {'areas':>9} | "
           f"{'waiting grown':>13} {'default':>8}"]
    for r in rows:
        out.append(f"{r['kernel']:<6} {r['threads']:>7} | {r['ratio']:>13.3f} | {r['pools']:>5} "
                   f"{r['areas_dyn']:>3} vs {r['areas_def']:>2} | {100 * r['wait_dyn']:>12.1f}% "
                   f"{100 * r['wait_def']:>7.1f}%")
    return "\n".join(out)


def map_benchmark_lines(granules=(1, 16, 64), dirs=(0, 1, 2), threads: int = 1,
                        max_loops: int = 500, seed: int = 0) -> list[str]:
    """The model ``dma_map_benchmark`` (``swiotlb=force``) for each granule and direction:
    the command and the two latency lines it prints (or its error)."""
    out = []
    for g in granules:
        for d in dirs:
            r = run_map_benchmark(threads=threads, granule=g, dma_dir=d, max_loops=max_loops, seed=seed)
            out.append(f"$ dma_map_benchmark -t {threads} -g {g} -d {d}    ({DIRECTIONS[d]})")
            text = r.stdout().splitlines()[1:] if not r.errno else [r.stderr().strip()]
            out.extend("    " + ln for ln in text)
    return out


def map_benchmark_grid(granules=(1, 4, 16, 32, 64), dirs=(0, 1, 2), max_loops: int = 300,
                       seed: int = 0) -> dict:
    """``{dir: [(granule, avg map µs, avg unmap µs)]}`` from the model benchmark."""
    out = {}
    for d in dirs:
        rows = []
        for g in granules:
            r = run_map_benchmark(threads=1, granule=g, dma_dir=d, max_loops=max_loops, seed=seed)
            rows.append((g, r.avg_map_100ns / 10, r.avg_unmap_100ns / 10))
        out[d] = rows
    return out


def map_benchmark_grid_lines(grid: dict) -> list[str]:
    """:func:`map_benchmark_grid` as text: average latencies per direction and granule."""
    out = [f"{'direction':<14}{'granule':>8}{'map us':>9}{'unmap us':>10}"]
    for d, rows in grid.items():
        out.extend(f"{DIRECTIONS[d]:<14}{g:>8}{m:>9.1f}{u:>10.1f}" for g, m, u in rows)
    return out


# ================================================================== experiments ==========

def _text(value) -> list[str]:
    return value.splitlines()


for _exp in (
    Experiment("runs-table", runs_table, "runs per kernel against CoV and difference to detect",
               chapter="ch10", seeded=False, lines=runs_table_lines),
    Experiment("detectable-effect", detection_rows, "runs needed for 3-7 % and the change 2 or 5 runs detect",
               chapter="ch10", seeded=False, lines=detection_lines),
    Experiment("rmit-schedule", rmit_lines, "an RMIT boot order for Petr's three v3 arms",
               chapter="ch10", lines=list),
    Experiment("analyse-two", example_analysis, "four analyses of a seeded vanilla/patched example",
               chapter="ch10", lines=list),
    Experiment("design-study", design_study, "false positives of three designs on identical kernels",
               chapter="ch10", lines=design_lines),
    Experiment("force-vs-direct", force_vs_direct, "one mapping with and without swiotlb=force",
               chapter="ch10", kernels="one", seeded=False, lines=force_vs_direct_report),
    Experiment("reanalysis", reanalysis_rows, "the book's re-analysis of Petr's v3 figures",
               chapter="ch10", seeded=False, lines=lambda rows: _text(reanalysis_text(rows))),
    Experiment("cost-counters", cost_grid, "cost counters of the storage scenario per profile and pool size",
               chapter="ch10", seeded=False, lines=cost_grid_lines),
    Experiment("pool-growth", cost_rows, "how each profile got its memory with a 1 MiB pool",
               chapter="ch10", seeded=False, lines=growth_lines, defaults={"nslabs": 512}),
    Experiment("area-scaling", scaling_grid, "simulated throughput and lock waits against threads and areas",
               chapter="ch10", lines=scaling_lines),
    Experiment("small-pool", small_pool_rows, "grown 1 -> 5 MiB dynamic pool against the default pool",
               chapter="ch10", kernels="many", seeded=False, lines=lambda rows: _text(small_pool_text(rows))),
    Experiment("small-pool-slow-device", small_pool_rows, "the small-pool comparison with a 5 us transfer",
               chapter="ch10", kernels="many", seeded=False, lines=lambda rows: _text(small_pool_text(rows)),
               defaults={"threads": (16, 24), "kernels": ("v6.6",), "transfer_ns": 5000}),
    Experiment("map-benchmark", map_benchmark_lines, "dma_map_benchmark on the model per granule and direction",
               chapter="ch10", lines=list),
    Experiment("map-benchmark-latency", map_benchmark_grid, "average map/unmap latency against granule",
               chapter="ch10", lines=map_benchmark_grid_lines),
):
    register(_exp)
