"""swiotlb_lib.perf.stats against scipy, textbook identities and the published tables.

Expected values come from scipy, from hand computation (the runs-needed table below, worked
out from the normal-approximation sample-size formula), or from published figures (Petr
Tesarik's v3 cover letter, cover.1687859323.git.petr.tesarik.ext@huawei.com), never from the
code under test.
"""
import math

import numpy as np
import pytest
from scipy import stats as st

from swiotlb_lib.perf import stats as ps


def _samples(seed=7):
    rng = np.random.default_rng(seed)
    return rng.normal(100, 3, 12), rng.normal(96, 5, 9)


# ------------------------------------------------------------------ Welch ---------

def test_welch_matches_scipy_ttest_interval():
    x, y = _samples()
    ref = st.ttest_ind(x, y, equal_var=False)
    lo, hi = ref.confidence_interval(0.95)
    ci = ps.welch_diff_ci(x, y)
    assert ci.method == "welch"
    assert ci.estimate == pytest.approx(x.mean() - y.mean())
    assert (ci.low, ci.high) == (pytest.approx(lo), pytest.approx(hi))
    assert ci.dof == pytest.approx(ref.df)
    lo90, hi90 = ref.confidence_interval(0.90)
    ci90 = ps.welch_diff_ci(x, y, conf=0.90)
    assert (ci90.low, ci90.high) == (pytest.approx(lo90), pytest.approx(hi90))


def test_welch_from_stats_equals_from_samples():
    x, y = _samples(3)
    a = ps.welch_diff_ci(x, y)
    b = ps.welch_diff_ci_from_stats(x.mean(), x.std(ddof=1), x.size, y.mean(), y.std(ddof=1), y.size)
    assert (a.low, a.high, a.dof) == (pytest.approx(b.low), pytest.approx(b.high), pytest.approx(b.dof))


def test_welch_textbook_dof_equal_variances_equal_n():
    # equal variances and sizes: Welch-Satterthwaite gives 2(n-1) degrees of freedom
    ci = ps.welch_diff_ci_from_stats(10.0, 2.0, 6, 9.0, 2.0, 6)
    assert ci.dof == pytest.approx(10.0)
    se = math.sqrt(4 / 6 + 4 / 6)
    assert ci.half_width == pytest.approx(st.t.ppf(0.975, 10) * se)


# ------------------------------------------------------------------ Fieller -------

def test_fieller_with_exact_denominator_is_a_scaled_t_interval():
    # y without variance: Fieller reduces to the one-sample t interval of mean(x) / c
    rng = np.random.default_rng(11)
    x = rng.normal(50, 4, 10)
    y = np.full(8, 2.0)
    ci = ps.fieller_ratio_ci(x, y)
    assert ci.method == "fieller"
    half = st.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    assert ci.estimate == pytest.approx(x.mean() / 2)
    assert ci.low == pytest.approx((x.mean() - half) / 2)
    assert ci.high == pytest.approx((x.mean() + half) / 2)
    assert ci.dof == pytest.approx(x.size - 1)


def test_fieller_endpoints_solve_the_defining_equation():
    x, y = _samples(5)
    ci = ps.fieller_ratio_ci(x, y)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    t2 = st.t.ppf(0.975, ci.dof) ** 2
    for rho in (ci.low, ci.high):
        assert (x.mean() - rho * y.mean()) ** 2 == pytest.approx(t2 * (vx + rho * rho * vy))
    assert ci.low < ci.estimate < ci.high
    # asymmetric around the ratio, as Fieller intervals are
    assert ci.high - ci.estimate != pytest.approx(ci.estimate - ci.low, rel=1e-6)


def test_fieller_unbounded_when_denominator_not_away_from_zero():
    ci = ps.fieller_ratio_ci([1.0, 2.0, 3.0], [-1.0, 0.5, 1.0])
    assert ci.low == -math.inf and ci.high == math.inf


# ------------------------------------------------------------------ bootstrap -----

def test_bootstrap_is_seeded_and_percentile():
    rng = np.random.default_rng(9)
    x, y = rng.lognormal(4.6, 0.1, 300), rng.lognormal(4.5, 0.1, 301)
    a = ps.bootstrap_median_ratio_ci(x, y, seed=4)
    b = ps.bootstrap_median_ratio_ci(x, y, seed=4)
    c = ps.bootstrap_median_ratio_ci(x, y, seed=5)
    assert (a.estimate, a.low, a.high) == (b.estimate, b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)
    assert a.method == "bootstrap-percentile"
    assert a.estimate == pytest.approx(np.median(x) / np.median(y))
    assert a.low <= a.estimate <= a.high


def test_bootstrap_agrees_with_scipy_percentile_bootstrap():
    x, y = _samples(21)

    def ratio(a, b, axis):
        return np.median(a, axis=axis) / np.median(b, axis=axis)

    ref = st.bootstrap((x, y), ratio, method="percentile", n_resamples=20000,
                       random_state=np.random.default_rng(1), vectorized=True)
    ci = ps.bootstrap_median_ratio_ci(x, y, n_boot=20000, seed=1)
    assert ci.low == pytest.approx(ref.confidence_interval.low, abs=0.006)
    assert ci.high == pytest.approx(ref.confidence_interval.high, abs=0.006)


def test_bootstrap_of_constant_samples_is_a_point():
    ci = ps.bootstrap_median_ratio_ci([4.0] * 6, [2.0] * 5, n_boot=200, seed=0)
    assert (ci.estimate, ci.low, ci.high) == (2.0, 2.0, 2.0)


# ------------------------------------------------------------------ Mann-Whitney --

def test_mann_whitney_hand_example():
    # pairwise differences x_i - y_j: 4 3 6 5 8 7 -> median 5.5; every x beats every y: U = 6
    r = ps.mann_whitney([5, 7, 9], [1, 2])
    assert r.shift == 5.5
    assert r.u == 6.0
    assert r.p_value == pytest.approx(st.mannwhitneyu([5, 7, 9], [1, 2], alternative="two-sided").pvalue)
    assert ps.hodges_lehmann([5, 7, 9], [1, 2]) == 5.5


def test_mann_whitney_matches_scipy_and_recovers_a_pure_shift():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 1, 30)
    y = x - 10.0
    r = ps.mann_whitney(x, y)
    ref = st.mannwhitneyu(x, y, alternative="two-sided")
    assert r.u == pytest.approx(ref.statistic) and r.p_value == pytest.approx(ref.pvalue)
    assert r.shift == pytest.approx(10.0)
    assert r.shift_low <= 10.0 <= r.shift_high


def test_moses_interval_covers_shift():
    x, y = _samples(8)
    r = ps.mann_whitney(x, y)
    assert r.shift_low <= r.shift <= r.shift_high


# ------------------------------------------------------------------ runs needed ---

#: Runs per arm for a two-sided test at alpha = 0.05 with 80 % power:
#: n = 2 (z_0.975 + z_0.8)^2 (CoV / effect)^2 = 15.698 (CoV / effect)^2, rounded up, at least 2
#: (the normal approximation behind Lehr's "sixteen s-squared over d-squared", Statistics in
#: Medicine 11(8):1099-1102, 1992, doi:10.1002/sim.4780110811).  Worked out by hand: for example
#: CoV 3 %, effect 1 %: 15.698 * 9 = 141.3 -> 142; CoV 10 %, effect 1 %: 1569.8 -> 1570.
RUNS_TABLE = {          # CoV %: {detectable effect %: runs per arm}
    0.5: {1: 4, 2: 2, 3: 2, 5: 2, 10: 2},
    1: {1: 16, 2: 4, 3: 2, 5: 2, 10: 2},
    2: {1: 63, 2: 16, 3: 7, 5: 3, 10: 2},
    3: {1: 142, 2: 36, 3: 16, 5: 6, 10: 2},
    5: {1: 393, 2: 99, 3: 44, 5: 16, 10: 4},
    10: {1: 1570, 2: 393, 3: 175, 5: 63, 10: 16},
}


def _runs_cases():
    return [(c, e, n) for c, row in RUNS_TABLE.items() for e, n in row.items()]


@pytest.mark.parametrize("cov,effect,expected", _runs_cases())
def test_runs_needed_reproduces_every_cell(cov, effect, expected):
    assert ps.runs_needed(cov, effect) == expected


def test_runs_needed_units_cancel_and_level_matters():
    assert ps.runs_needed(0.03, 0.01) == ps.runs_needed(3, 1) == 142
    assert ps.runs_needed(3, 1, alpha=0.01) > 142
    assert ps.runs_needed(3, 1, power=0.9) > 142


@pytest.mark.parametrize("kw,name", [({"cov": 0}, "cov"), ({"cov": -1}, "cov"), ({"effect": 0}, "effect"),
                                     ({"alpha": 0}, "alpha"), ({"alpha": 1.5}, "alpha"),
                                     ({"power": 1}, "power"), ({"cov": float("nan")}, "cov")])
def test_runs_needed_bad_arguments(kw, name):
    args = {"cov": 3, "effect": 1, **kw}
    with pytest.raises(ValueError, match=name):
        ps.runs_needed(**args)


# ------------------------------------------------------------------ RMIT ----------

def test_rmit_blocks_are_permutations_and_seeded():
    arms = ["v6.6", "v6.6-dynamic", "v6.11"]
    s = ps.rmit_schedule(arms, 20, seed=3)
    assert len(s) == 60
    for b in range(20):
        assert sorted(s[3 * b:3 * b + 3]) == sorted(arms)
    assert s == ps.rmit_schedule(arms, 20, seed=3)
    assert s != ps.rmit_schedule(arms, 20, seed=4)
    # randomized, not a fixed rotation: more than one arm opens a block
    assert len({s[3 * b] for b in range(20)}) > 1


@pytest.mark.parametrize("arms,runs,seed,name", [([], 3, 0, "arms"), (["a", "a"], 3, 0, "arms"),
                                                 ("ab", 3, 0, "arms"), (["a", "b"], 0, 0, "runs_per_arm"),
                                                 (["a", "b"], 2, -1, "seed"), ([["x"], "b"], 2, 0, "arms")])
def test_rmit_bad_arguments(arms, runs, seed, name):
    with pytest.raises(ValueError, match=name):
        ps.rmit_schedule(arms, runs, seed)


# ------------------------------------------------------------------ Petr's v3 table ---

def test_published_table_is_stored_with_its_source():
    assert ps.PETR_V3_MESSAGE_ID == "cover.1687859323.git.petr.tesarik.ext@huawei.com"
    rows = {(r.platform, r.test): r for r in ps.PETR_V3_TABLE}
    assert len(rows) == 10
    # spot checks against the table of the v3 cover letter (Message-ID above)
    r = rows[("CoCo VM", "24way")]
    assert (r.base_cov, r.default_cov, r.default_diff, r.growing_cov, r.growing_diff) == (3.19, 6.19, 4.4, 4.08, -5.9)
    r = rows[("RPi4", "big")]
    assert (r.base_cov, r.default_cov, r.growing_cov) == (0.03, 0.28, 0.03)
    assert rows[("x86 VM", "4way")].growing_diff_text == "<0.1 %"


#: (platform, test, half-width %, verdict), worked out by hand from the CoVs of the v3 cover
#: letter's table with 5 runs per arm: the Welch 95 % interval of the difference of the means,
#: t(0.975, dof) * sqrt((CoV_base^2 + CoV_patched^2) / 5), in % of the base
REANALYSIS = [
    ("x86 VM", "small default", 2.4, "noise"),
    ("x86 VM", "small growing", 2.4, "noise"),
    ("x86 VM", "big growing", 3.1, "noise"),
    ("RPi4", "big default", 0.35, None),
    ("RPi4", "big growing", 0.04, None),
    ("RPi4", "4way default", 6.3, "noise"),
    ("RPi4", "4way growing", 6.3, "noise"),
    ("CoCo VM", "small growing", 12.7, "noise"),
    ("CoCo VM", "24way default", 7.6, "noise"),
    ("CoCo VM", "4way growing", 2.7, "signal"),
    ("CoCo VM", "24way growing", 5.4, "marginal"),
]


@pytest.mark.parametrize("platform,test,half,verdict", REANALYSIS)
def test_reanalysis_reproduces_the_book_table(platform, test, half, verdict):
    got = {(r.platform, r.test): r for r in ps.reanalyse()}[(platform, test)]
    assert got.half_width == pytest.approx(half, abs=0.1)
    if verdict is None:
        # "formally outside" the interval: not noise
        assert abs(got.diff) > got.half_width and got.verdict != "noise"
    else:
        assert got.verdict == verdict


def test_reanalyse_accepts_rows_and_n():
    r5, r20 = ps.reanalyse([("p", "t", 2.0, 2.0, 2.0)]), ps.reanalyse([("p", "t", 2.0, 2.0, 2.0)], n=20)
    # equal CoVs, n = 5: dof 8, half-width t(0.975, 8) * sqrt(2 * 4 / 5)
    assert r5[0].half_width == pytest.approx(st.t.ppf(0.975, 8) * math.sqrt(8 / 5))
    assert r5[0].verdict == "noise" and r20[0].verdict == "signal"


@pytest.mark.parametrize("rows,n,name", [([("p", "t", 2.0, 2.0)], 5, "rows"), ([("p", "t", 0, 2.0, 1.0)], 5, "base_cov"),
                                         ([("p", "t", 2.0, 2.0, 1.0)], 1, "n"),
                                         ([("p", "t", 2.0, 2.0, "x")], 5, "diff")])
def test_reanalyse_bad_rows(rows, n, name):
    with pytest.raises(ValueError, match=name):
        ps.reanalyse(rows, n=n)


# ------------------------------------------------------------------ bad inputs -----

@pytest.mark.parametrize("call,name", [
    (lambda: ps.welch_diff_ci([1.0], [1.0, 2.0]), "x"),
    (lambda: ps.welch_diff_ci([1.0, 2.0], [1.0, float("inf")]), "y"),
    (lambda: ps.welch_diff_ci([1.0, 2.0], [1.0, 2.0], conf=1.0), "conf"),
    (lambda: ps.welch_diff_ci_from_stats(1.0, -1.0, 5, 1.0, 1.0, 5), "sd_x"),
    (lambda: ps.welch_diff_ci_from_stats(1.0, 1.0, 1, 1.0, 1.0, 5), "n_x"),
    (lambda: ps.fieller_ratio_ci([1.0, 2.0], [-1.0, 1.0]), "y"),
    (lambda: ps.bootstrap_median_ratio_ci([1.0, 2.0], [1.0, 2.0], n_boot=10), "n_boot"),
    (lambda: ps.bootstrap_median_ratio_ci([1.0, 2.0], [1.0, 2.0], seed=-3), "seed"),
    (lambda: ps.mann_whitney([], [1.0]), "x"),
])
def test_bad_arguments_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_t_quantile_and_z_factor_match_the_printed_tables():
    # Student's t table (two-sided 95 %, 10 degrees of freedom): 2.228; with 1 degree of
    # freedom: 12.706.  z table: z_0.975 = 1.95996, z_0.8 = 0.84162, so the sample-size
    # factor at alpha 0.05 and power 0.8 is 2.80158 (and 2 * 2.80158² = 15.698, the
    # factor of runs_needed's docstring).
    from swiotlb_lib.perf.stats import t_quantile, z_alpha_power
    assert abs(t_quantile(0.975, 10) - 2.228) < 5e-4
    assert abs(t_quantile(0.975, 1) - 12.706) < 5e-4
    assert abs(z_alpha_power(0.05, 0.8) - 2.80158) < 5e-5
    assert abs(2 * z_alpha_power(0.05, 0.8) ** 2 - 15.698) < 5e-4
