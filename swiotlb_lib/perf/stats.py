"""Statistics for comparing two kernels on noisy benchmark runs.

What a sound comparison of two kernels needs (confidence intervals over independent runs
rather than a best-of-N or a bare mean: Georges, Buytaert & Eeckhout, OOPSLA 2007,
https://doi.org/10.1145/1297027.1297033), as small pure functions over numpy arrays:

* :func:`welch_diff_ci` / :func:`welch_diff_ci_from_stats` -- Welch's t interval of a
  difference of means (unequal variances, Welch--Satterthwaite degrees of freedom);
* :func:`fieller_ratio_ci` -- an interval for a *ratio* of means by **Fieller's
  theorem** (not the delta method), Welch-style degrees of freedom; Kalibera & Jones
  (ISMM 2013, https://kar.kent.ac.uk/33611/) recommend reporting a change as a ratio
  with its interval;
* :func:`bootstrap_median_ratio_ci` -- a seeded **percentile** bootstrap (not BCa) of
  the ratio of medians (Laaber, Scheuner & Leitner, EMSE 2019,
  https://doi.org/10.1007/s10664-019-09681-1);
* :func:`mann_whitney` -- the Mann--Whitney U test (scipy) with the Hodges--Lehmann
  shift estimate and its distribution-free (Moses) interval (Hoefler & Belli, SC15,
  https://doi.org/10.1145/2807591.2807644: non-parametric tests for non-normal data);
* :func:`runs_needed` -- runs per arm for a two-sided test (normal approximation,
  ``n = 2 (z_{1-α/2} + z_{1-β})² (CoV/Δ)²``; Lehr, Statistics in Medicine 1992,
  doi:10.1002/sim.4780110811);
* :func:`rmit_schedule` -- randomized multiple interleaved trials (Abedi & Brecht,
  ICPE 2017, as cited by Laaber et al.);
* :data:`PETR_V3_TABLE` and :func:`reanalyse` -- Petr Tesarik's published v3 figures
  (``cover.1687859323.git.petr.tesarik.ext@huawei.com``) and **our** re-analysis of
  them (the book's, not Petr's: he published CoVs and differences, no intervals).

Every random function takes a ``seed``; bad arguments raise ``ValueError`` naming the
parameter and its allowed range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Hashable, Sequence

import numpy as np
from scipy import special as _sc
from scipy import stats as _st

from ..checks import check_int_at_least, check_positive

__all__ = [
    "Interval", "MannWhitney", "Reanalysis", "PetrV3Row",
    "welch_diff_ci", "welch_diff_ci_from_stats", "fieller_ratio_ci", "bootstrap_median_ratio_ci",
    "welch_dof", "welch_p_value", "hodges_lehmann", "mann_whitney", "runs_needed", "rmit_schedule",
    "PETR_V3_MESSAGE_ID", "PETR_V3_REPEATED_IN", "PETR_V3_TABLE", "petr_v3_rows",
    "reanalyse_row", "verdict", "reanalyse",
]


# ------------------------------------------------------------------ checks ---------

def _check_conf(conf) -> float:
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 < conf < 1:
        raise ValueError(f"conf: must be a number in (0, 1), got {conf!r}")
    return float(conf)


def _sample(name: str, x, min_n: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or a.size < min_n:
        raise ValueError(f"{name}: must be a 1-d sequence of at least {min_n} numbers, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: all values must be finite numbers")
    return a


# ------------------------------------------------------------------ results --------

@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval.

    ``dof`` is the degrees of freedom used for the t quantile (``nan`` for methods that
    have none); ``method`` names the construction.  ``low``/``high`` may be infinite
    (Fieller's interval when the denominator mean is not clearly non-zero).
    """

    estimate: float
    low: float
    high: float
    conf: float
    dof: float
    method: str

    @property
    def half_width(self) -> float:
        """Half the interval's width (symmetric intervals: the ``±`` value)."""
        return (self.high - self.low) / 2

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class MannWhitney:
    """Mann--Whitney U (two-sided, scipy's default method) plus the Hodges--Lehmann shift.

    ``u`` is the U statistic of ``x`` (scipy's convention); ``shift`` the median of all
    pairwise differences ``x_i - y_j``; ``shift_low``/``shift_high`` Moses' interval for
    it (normal approximation of the U distribution, no tie correction).
    """

    u: float
    p_value: float
    shift: float
    shift_low: float
    shift_high: float
    conf: float


# ------------------------------------------------------------------ Welch ----------

def t_quantile(q: float, dof: float) -> float:
    """The ``q`` quantile of Student's t with ``dof`` degrees of freedom (``q`` in (0, 1),
    ``dof`` > 0): ``scipy.special.stdtrit``, the function ``scipy.stats.t.ppf`` evaluates,
    without the argument handling that costs that call fifty times more (the design study
    asks for six thousand)."""
    return float(_sc.stdtrit(dof, q))


def welch_dof(v_x: float, n_x: int, v_y: float, n_y: int) -> float:
    """Welch--Satterthwaite degrees of freedom for ``v_x/n_x + v_y/n_y`` (variances)."""
    a, b = v_x / n_x, v_y / n_y
    den = a * a / (n_x - 1) + b * b / (n_y - 1)
    return float("inf") if den == 0 else float((a + b) ** 2 / den)


def welch_diff_ci_from_stats(mean_x: float, sd_x: float, n_x: int, mean_y: float, sd_y: float,
                             n_y: int, conf: float = 0.95) -> Interval:
    """Welch interval for ``mean_x - mean_y`` from summary statistics.

    Standard error ``sqrt(sd_x²/n_x + sd_y²/n_y)``; t quantile at the Welch--Satterthwaite
    degrees of freedom.  ``sd`` are sample standard deviations (``ddof=1``).
    """
    conf = _check_conf(conf)
    n_x, n_y = check_int_at_least("n_x", n_x, 2), check_int_at_least("n_y", n_y, 2)
    sd_x = check_positive("sd_x", sd_x, allow_zero=True)
    sd_y = check_positive("sd_y", sd_y, allow_zero=True)
    for name, v in (("mean_x", mean_x), ("mean_y", mean_y)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise ValueError(f"{name}: must be a finite number, got {v!r}")
    d = float(mean_x) - float(mean_y)
    se = math.sqrt(sd_x ** 2 / n_x + sd_y ** 2 / n_y)
    dof = welch_dof(sd_x ** 2, n_x, sd_y ** 2, n_y)
    if se == 0:
        return Interval(d, d, d, conf, dof, "welch")
    t = t_quantile(0.5 + conf / 2, dof)
    return Interval(d, d - t * se, d + t * se, conf, dof, "welch")


def welch_diff_ci(x, y, conf: float = 0.95) -> Interval:
    """Welch interval for ``mean(x) - mean(y)`` from two samples (each at least 2 runs)."""
    a, b = _sample("x", x), _sample("y", y)
    return welch_diff_ci_from_stats(a.mean(), a.std(ddof=1), a.size, b.mean(), b.std(ddof=1), b.size, conf)


def welch_p_value(diff: float, sd_x: float, n_x: int, sd_y: float, n_y: int) -> float:
    """Two-sided Welch t-test p-value for an observed difference of means."""
    se = math.sqrt(sd_x ** 2 / n_x + sd_y ** 2 / n_y)
    if se == 0:
        return 0.0 if diff else 1.0
    dof = welch_dof(sd_x ** 2, n_x, sd_y ** 2, n_y)
    return float(2 * _st.t.sf(abs(diff) / se, dof))


# ------------------------------------------------------------------ Fieller ---------

def fieller_ratio_ci(x, y, conf: float = 0.95) -> Interval:
    """Interval for ``mean(x) / mean(y)`` by Fieller's theorem (independent samples).

    The interval is every ``rho`` for which ``mean(x) - rho*mean(y)`` is not significant
    at level ``1 - conf``: ``(x̄ - rho ȳ)² <= t² (v_x + rho² v_y)`` with ``v = s²/n``,
    a quadratic in ``rho``.  The t quantile uses Welch--Satterthwaite degrees of freedom
    of ``x - rho_hat*y``.  When ``ȳ² <= t² v_y`` (the denominator mean is not clearly
    away from zero) the set is unbounded and ``(-inf, inf)`` is returned.  This is
    Fieller's method, not the delta method: it is exact for normal data and stays
    asymmetric around the estimate, as ratios are.
    """
    conf = _check_conf(conf)
    a, b = _sample("x", x), _sample("y", y)
    mx, my = a.mean(), b.mean()
    if my == 0:
        raise ValueError("y: mean(y) is 0; a ratio of means is undefined")
    vx, vy = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    rho = mx / my
    dof = welch_dof(a.var(ddof=1), a.size, rho * rho * b.var(ddof=1), b.size)
    t2 = t_quantile(0.5 + conf / 2, dof) ** 2 if math.isfinite(dof) else float(_st.norm.ppf(0.5 + conf / 2)) ** 2
    qa = my * my - t2 * vy
    qb = -2 * mx * my
    qc = mx * mx - t2 * vx
    if qa <= 0:
        return Interval(rho, -math.inf, math.inf, conf, dof, "fieller")
    disc = qb * qb - 4 * qa * qc
    root = math.sqrt(max(disc, 0.0))
    lo, hi = (-qb - root) / (2 * qa), (-qb + root) / (2 * qa)
    return Interval(float(rho), float(lo), float(hi), conf, dof, "fieller")


# ------------------------------------------------------------------ bootstrap -------

def bootstrap_median_ratio_ci(x, y, conf: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> Interval:
    """Seeded **percentile** bootstrap interval of ``median(x) / median(y)``.

    Each of ``n_boot`` replicates resamples ``x`` and ``y`` independently with
    replacement (the arms are independent runs) and takes the ratio of medians; the
    interval is the ``(1-conf)/2`` and ``(1+conf)/2`` percentiles of the replicates.
    Percentile, not BCa: simple, transformation-respecting, adequate for the tens of
    runs the recipe asks for.  Same seed, same interval.
    """
    conf = _check_conf(conf)
    a, b = _sample("x", x), _sample("y", y)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or not 100 <= n_boot <= 10_000_000:
        raise ValueError(f"n_boot: must be an integer in 100..10000000, got {n_boot!r}")
    seed = check_int_at_least("seed", seed, 0)
    if np.median(b) == 0:
        raise ValueError("y: median(y) is 0; a ratio of medians is undefined")
    rng = np.random.default_rng(seed)
    est = float(np.median(a) / np.median(b))
    reps = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(a.size, b.size))
    for s in range(0, n_boot, chunk):
        k = min(chunk, n_boot - s)
        ma = np.median(a[rng.integers(0, a.size, (k, a.size))], axis=1)
        mb = np.median(b[rng.integers(0, b.size, (k, b.size))], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            reps[s:s + k] = ma / mb
    lo, hi = np.quantile(reps, [(1 - conf) / 2, (1 + conf) / 2])
    return Interval(est, float(lo), float(hi), conf, float("nan"), "bootstrap-percentile")


# ------------------------------------------------------------------ Mann-Whitney ------

def hodges_lehmann(x, y) -> float:
    """Hodges--Lehmann shift estimate: the median of all ``x_i - y_j``."""
    a, b = _sample("x", x, 1), _sample("y", y, 1)
    return float(np.median(np.subtract.outer(a, b)))


def mann_whitney(x, y, conf: float = 0.95) -> MannWhitney:
    """Two-sided Mann--Whitney U test (``scipy.stats.mannwhitneyu``) of ``x`` vs ``y``, and
    the Hodges--Lehmann shift ``x - y`` with Moses' distribution-free interval.

    Moses' interval takes the ``k``-th smallest and ``k``-th largest pairwise difference,
    ``k = floor(nm/2 - z sqrt(nm(n+m+1)/12))`` (normal approximation of U's null
    distribution, no tie correction); for very small samples ``k`` may be 0 and the
    interval is then the full range of differences.
    """
    conf = _check_conf(conf)
    a, b = _sample("x", x, 1), _sample("y", y, 1)
    res = _st.mannwhitneyu(a, b, alternative="two-sided")
    d = np.sort(np.subtract.outer(a, b).ravel())
    n, m = a.size, b.size
    z = float(_st.norm.ppf(0.5 + conf / 2))
    k = int(math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12)))
    k = max(k, 1)
    return MannWhitney(float(res.statistic), float(res.pvalue), float(np.median(d)),
                       float(d[k - 1]), float(d[d.size - k]), conf)


# ------------------------------------------------------------------ sizing ----------

@lru_cache(maxsize=None)
def z_alpha_power(alpha: float = 0.05, power: float = 0.8) -> float:
    """``z_{1-alpha/2} + z_{power}`` of the standard normal distribution (1.95996 + 0.84162
    = 2.80158 at alpha 0.05 and power 0.8), the factor of every two-sample sample-size
    formula here; computed once per pair (a chapter asks for it thousands of times)."""
    return float(_st.norm.ppf(1 - alpha / 2) + _st.norm.ppf(power))


def runs_needed(cov: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Runs per arm to detect a relative difference ``effect`` when each run has
    coefficient of variation ``cov`` (both in the same unit, e.g. percent).

    Normal approximation for a two-sided two-sample test with equal arms:
    ``n = 2 (z_{1-alpha/2} + z_{power})² (cov/effect)²``, rounded **up**, at least 2
    (a standard deviation needs two runs).  At alpha 0.05 and power 0.8 the factor is
    ``2 (1.95996 + 0.84162)² = 15.698``, so ``n ≈ 15.7 (cov/effect)²``: the "sixteen s² over
    d²" rule of Lehr, "Sixteen S-squared over D-squared: a relation for crude sample size
    estimates", Statistics in Medicine 11(8):1099-1102, 1992, doi:10.1002/sim.4780110811.
    It reproduces cell by cell the table worked out by hand from that formula,
    :data:`swiotlb_lib.perf.studies.RUNS_TABLE_BY_HAND`.  (Floating-point excess
    below 1e-9 is ignored before rounding up, so an exact integer is never pushed to the next one.)
    """
    cov = check_positive("cov", cov)
    effect = check_positive("effect", effect)
    for name, v in (("alpha", alpha), ("power", power)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValueError(f"{name}: must be a number in (0, 1), got {v!r}")
    z = z_alpha_power(alpha, power)
    n = 2 * z * z * (cov / effect) ** 2
    return max(2, math.ceil(n - 1e-9))


# ------------------------------------------------------------------ RMIT ------------

def rmit_schedule(arms: Sequence[Hashable], runs_per_arm: int, seed: int) -> list:
    """Randomized multiple interleaved trials (Abedi & Brecht, ICPE 2017): the order in
    which to run (boot) each arm.

    The schedule is ``runs_per_arm`` consecutive blocks; each block runs every arm once,
    in an order drawn afresh (seeded) for that block.  So arms never run "all A then all
    B", slow drifts of the machine hit every arm alike, and no arm always runs first.
    Returns a list of ``len(arms) * runs_per_arm`` arm labels.
    """
    arms = list(arms) if not isinstance(arms, (str, bytes)) else None
    if not arms:
        raise ValueError("arms: must be a non-empty sequence of distinct labels (not a string)")
    try:
        distinct = len(set(arms)) == len(arms)
    except TypeError:
        raise ValueError("arms: labels must be hashable") from None
    if not distinct:
        raise ValueError(f"arms: labels must be distinct, got {arms!r}")
    if isinstance(runs_per_arm, bool) or not isinstance(runs_per_arm, (int, np.integer)) \
            or not 1 <= runs_per_arm <= 1_000_000:
        raise ValueError(f"runs_per_arm: must be an integer in 1..1000000, got {runs_per_arm!r}")
    rng = np.random.default_rng(check_int_at_least("seed", seed, 0))
    out = []
    for _ in range(int(runs_per_arm)):
        out.extend(arms[i] for i in rng.permutation(len(arms)))
    return out


# ------------------------------------------------------------------ Petr's v3 table ---

#: Message-ID of the v3 cover letter that first published the table (lore.kernel.org/all/<id>/).
PETR_V3_MESSAGE_ID = "cover.1687859323.git.petr.tesarik.ext@huawei.com"
#: The same table was repeated in the v5 and v7 cover letters.
PETR_V3_REPEATED_IN = ("cover.1690200598.git.petr.tesarik.ext@huawei.com",
                       "cover.1690871004.git.petr.tesarik.ext@huawei.com")


@dataclass(frozen=True)
class PetrV3Row:
    """One row of Petr Tesarik's v3 table, as published (percent values).

    ``base_cov`` is the CoV ("var") of the vanilla v6.4-rc6 runs; ``default_*`` the
    patched kernel with the 64 MiB pool, ``growing_*`` with a 1 MiB pool that grew to
    5 MiB.  A published "<0.1 %" difference is kept as text in ``*_diff_text`` and as
    0.0 in the number.  Five runs per configuration, all booted with ``swiotlb=force``.
    """

    platform: str
    test: str
    base_cov: float
    default_cov: float
    default_diff: float
    growing_cov: float
    growing_diff: float
    default_diff_text: str = ""
    growing_diff_text: str = ""


def _row(platform, test, base, dcov, ddiff, gcov, gdiff) -> PetrV3Row:
    def num(v):
        return (0.0, v) if isinstance(v, str) else (float(v), f"{v:+.1f} %")
    dd, dt = num(ddiff)
    gd, gt = num(gdiff)
    return PetrV3Row(platform, test, base, dcov, dd, gcov, gd, dt, gt)


#: Petr Tesarik's published figures (v3 cover letter, PETR_V3_MESSAGE_ID; data only).
#: Platforms: an x86 QEMU VM with a RAM-backed virtio "SATA" disk; a Raspberry Pi 4 (8 GB)
#: with a class-10 A1 microSD card; a confidential-computing VM (vendor not named).
PETR_V3_TABLE: tuple[PetrV3Row, ...] = (
    _row("x86 VM", "small", 1.96, 0.47, -1.5, 0.52, -2.2),
    _row("x86 VM", "big", 2.03, 1.35, +0.9, 2.22, +2.9),
    _row("x86 VM", "4way", 0.80, 0.45, -0.7, 1.22, "<0.1 %"),
    _row("RPi4", "small", 1.09, 1.69, +0.5, 2.14, -0.2),
    _row("RPi4", "big", 0.03, 0.28, -0.5, 0.03, -0.1),
    _row("RPi4", "4way", 5.15, 2.39, +0.2, 0.66, "<0.1 %"),
    _row("CoCo VM", "small", 2.41, 6.02, +1.1, 10.33, +6.7),
    _row("CoCo VM", "big", 9.20, 2.81, -0.6, 16.84, -0.2),
    _row("CoCo VM", "4way", 0.86, 2.66, -0.1, 2.22, -4.9),
    _row("CoCo VM", "24way", 3.19, 6.19, +4.4, 4.08, -5.9),
)


def petr_v3_rows(table: Sequence[PetrV3Row] = PETR_V3_TABLE) -> list[tuple]:
    """Flatten the published table into ``(platform, test, base CoV, CoV, diff)`` rows,
    ``test`` being e.g. ``"small default"`` or ``"4way growing"`` (percent values)."""
    out = []
    for r in table:
        out.append((r.platform, f"{r.test} default", r.base_cov, r.default_cov, r.default_diff))
        out.append((r.platform, f"{r.test} growing", r.base_cov, r.growing_cov, r.growing_diff))
    return out


@dataclass(frozen=True)
class Reanalysis:
    """Our re-analysis of one row (not Petr's): Welch interval of the difference."""

    platform: str
    test: str
    diff: float
    half_width: float
    dof: float
    p_value: float
    verdict: str


def reanalyse_row(base_cov: float, cov: float, diff: float, n: int = 5,
                  conf: float = 0.95) -> tuple[float, float, float]:
    """``(half_width, dof, p_value)`` of the Welch interval of one published difference.

    **Our assumption, not Petr's statement**: "var" is the CoV of ``n`` independent runs
    per arm; both arms' means are normalised to 100, so each arm's standard deviation is
    its CoV in percentage points and the difference is in percent of the base.  Welch
    standard error ``sqrt(base_cov²/n + cov²/n)``, Welch--Satterthwaite degrees of
    freedom, t quantile from scipy.  This is the book's own analysis of the figures in
    Petr Tesarik's v3 cover letter (``cover.1687859323.git.petr.tesarik.ext@huawei.com``).
    """
    conf = _check_conf(conf)
    n = check_int_at_least("n", n, 2)
    base_cov = check_positive("base_cov", base_cov)
    cov = check_positive("cov", cov)
    if isinstance(diff, bool) or not isinstance(diff, (int, float)) or not math.isfinite(diff):
        raise ValueError(f"diff: must be a finite number (percent), got {diff!r}")
    ci = welch_diff_ci_from_stats(100.0 + diff, cov, n, 100.0, base_cov, n, conf)
    return ci.half_width, ci.dof, welch_p_value(diff, cov, n, base_cov, n)


def verdict(p_value: float) -> str:
    """Our verdict rule: ``"noise"`` if p >= 0.05 (the difference is inside the 95 %
    interval), ``"marginal"`` if 0.01 <= p < 0.05 (outside the 95 % but inside the 99 %
    interval), ``"signal"`` if p < 0.01."""
    if p_value >= 0.05:
        return "noise"
    return "marginal" if p_value >= 0.01 else "signal"


def reanalyse(rows=None, n: int = 5, conf: float = 0.95) -> list[Reanalysis]:
    """Re-analyse rows ``(platform, test, base CoV, CoV, diff)`` (percent) with ``n``
    runs per arm; default: Petr's v3 table (:func:`petr_v3_rows`).  See
    :func:`reanalyse_row` for the assumptions and :func:`verdict` for the rule.

    This is the book's own analysis of the figures in Petr Tesarik's v3 cover letter
    (``cover.1687859323.git.petr.tesarik.ext@huawei.com``), not Petr's (e.g. x86 small
    ±2.4 %, CoCo 4way growing −4.9 ± 2.7 %: signal; CoCo 24way growing −5.9 ± 5.4 %:
    marginal).
    """
    if rows is None:
        rows = petr_v3_rows()
    out = []
    for i, row in enumerate(rows):
        try:
            platform, test, base_cov, cov, diff = row
        except (TypeError, ValueError):
            raise ValueError(f"rows: row {i} must be (platform, test, base CoV, CoV, diff), got {row!r}") from None
        hw, dof, p = reanalyse_row(base_cov, cov, diff, n, conf)
        out.append(Reanalysis(str(platform), str(test), float(diff), hw, dof, p, verdict(p)))
    return out
