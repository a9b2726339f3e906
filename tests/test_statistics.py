"""Monte Carlo error of the statistics tables: standard errors and order-statistic intervals
against known answers (exact binomial probabilities, and simulation with a fixed seed)."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import binom

from nqpf_sens.uncertainty.statistics import (
    CountedValues,
    Labels,
    binomial_se,
    order_statistics,
    rank_stability,
    region_bands,
    sample_quantiles,
    tier_bands,
)


def test_binomial_se_is_the_spread_of_a_simulated_share_and_never_zero():
    """Agresti and Coull's: the spread of a simulated share, and for a share of 0 or 1 (every
    scenario agrees) not 0, which claimed certainty, but of the size of the exact bound."""
    assert binomial_se(0.5, 100) == pytest.approx(0.05, rel=0.02)
    assert np.isnan(binomial_se(0.5, 0))
    shares = np.random.default_rng(1).binomial(500, 0.3, size=20_000) / 500
    assert binomial_se(0.3, 500) == pytest.approx(shares.std(), rel=0.02)
    upper = 1 - 0.025 ** (1 / 2048)  # exact: 0 of 2,048 scenarios, one-sided 97.5%
    for p in (0.0, 1.0):
        assert upper / 3 < binomial_se(p, 2048) < upper


@pytest.mark.parametrize("n", [100, 1000, 2048, 65_536])
@pytest.mark.parametrize("q", [0.05, 0.25, 0.5, 0.95])
def test_order_statistics_have_exact_binomial_coverage(n, q):
    """X_(r) <= xi_q <= X_(s) fails below with probability P(B < r) and above with P(B >= s), B ~
    binomial(n, q): each tail is at most 2.5%, and neither bound can move inward."""
    r, s = order_statistics(n, q)
    below, above = binom.cdf(r - 1, n, q), binom.sf(s - 1, n, q)
    assert below <= 0.025 and above <= 0.025
    assert binom.cdf(r, n, q) > 0.025 and binom.sf(s - 2, n, q) > 0.025
    assert 1 - below - above >= 0.95


def test_sample_intervals_cover_the_true_quantile_as_often_as_the_binomial_says():
    draws = np.random.default_rng(7).random((400, 4000))  # 4,000 samples of 400 uniforms
    quantiles = (0.05, 0.5, 0.95)
    for q, (low, high) in zip(quantiles, sample_quantiles(draws, quantiles)[1], strict=True):
        r, s = order_statistics(400, q)
        exact = binom.cdf(s - 1, 400, q) - binom.cdf(r - 1, 400, q)  # 0.96-0.962
        coverage = np.mean((low <= q) & (q <= high))
        assert coverage == pytest.approx(exact, abs=0.01), (q, coverage, exact)


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=40),
        elements=st.floats(-1e6, 1e6) | st.sampled_from([0.0, 1.0, np.nan]),
    ),
    st.lists(st.floats(0.001, 0.999), min_size=1, max_size=4).map(tuple),
)
def test_sample_quantiles_are_numpys_and_the_order_statistics(samples, quantiles):
    """One partial sort gives ``np.quantile``'s values to the bit (NaN where a column holds one)
    and each interval's order statistics, whatever the sample size (one draw included), ties and
    quantiles."""
    values, intervals = sample_quantiles(samples, quantiles)
    np.testing.assert_array_equal(values, np.quantile(samples, quantiles, axis=0))
    ordered = np.sort(samples, axis=0)
    for q, (low, high) in zip(quantiles, intervals, strict=True):
        r, s = order_statistics(len(samples), q)
        np.testing.assert_array_equal((low, high), (ordered[r - 1], ordered[s - 1]))


def test_counted_values_give_the_quantiles_and_order_statistics_of_their_draws():
    draws = np.random.default_rng(3).integers(0, 12, size=(2000, 5))  # values 0..11, 5 units
    counted = CountedValues(np.stack([np.bincount(d, minlength=12) for d in draws.T]))
    for q in (0.05, 0.25, 0.5, 0.95):
        (low, high), *_ = sample_quantiles(draws, (q,))[1]
        np.testing.assert_array_equal(counted.interval(q), (low, high))
        expected = np.quantile(draws, q, axis=0, method="inverted_cdf")
        np.testing.assert_array_equal(counted.quantile(q), expected)
    spread = np.random.default_rng(4).integers(0, 1000, size=(400, 3))  # order statistics differ
    counted = CountedValues(np.stack([np.bincount(d, minlength=1000) for d in spread.T]))
    for q in (0.05, 0.5, 0.95):
        (low, high), *_ = sample_quantiles(spread, (q,))[1]
        np.testing.assert_array_equal(counted.interval(q), (low, high))
        expected = np.quantile(spread, q, axis=0, method="inverted_cdf")
        np.testing.assert_array_equal(counted.quantile(q), expected)


def test_a_quantile_at_a_share_the_counts_reach_exactly_is_that_value():
    """3 of 20 draws are 0: the 15% quantile is 0, though 3 / 20 in floating point falls short
    of 0.15 computed as (1 - 0.7) / 2."""
    assert CountedValues(np.array([3, 17])).quantile((1 - 0.7) / 2) == 0


def test_rank_agreement_without_any_defined_correlation_is_missing_not_minus_one():
    """When every scenario ties all units, no correlation is defined: no statistic, not -1."""
    from types import SimpleNamespace

    from nqpf_sens.uncertainty.statistics import Labels, rank_agreement
    from nqpf_sens.uncertainty.study import AGREEMENT_GRID

    stats = SimpleNamespace(
        agreement_counts=np.zeros((1, 2, 2 * AGREEMENT_GRID + 1), dtype=np.int64),
        rank_counts=np.array([[[10, 0], [10, 0]]]),
    )
    table = rank_agreement(stats, np.array([[1, 1]]), Labels(("a", "b"), (None,), ("total",), ()))
    assert table.scenarios.iloc[0] == 0
    correlations = table[[c for c in table if c.startswith(("spearman", "kendall"))]]
    assert correlations.isna().all().all()


def counts_of(draws: np.ndarray, size: int) -> np.ndarray:
    """Counts of the values 1..size of each column of (scenarios, units) draws: (1, units, size)."""
    return np.stack([np.bincount(column - 1, minlength=size) for column in draws.T])[None]


@pytest.mark.parametrize("interval", [0.8, 0.5])
def test_rank_intervals_and_shares_are_those_of_the_ranks_drawn(interval):
    """Any ``interval`` (not only the default 0.9) is read off the rank counts as the quantiles
    (1 -/+ interval) / 2 of the ranks themselves; p_within_k and p_top_k are the shares of
    scenarios within k places of the nominal rank and at rank k or better."""
    ranks = np.random.default_rng(2).integers(1, 6, size=(203, 5))  # 203 scenarios, 5 units
    nominal = np.array([[1, 2, 3, 4, 5]])
    labels = Labels(tuple("abcde"), (None,), ("total",), ())
    stats = SimpleNamespace(rank_counts=counts_of(ranks, 5))
    table = rank_stability(stats, nominal, labels, interval, within=1, top=2)
    for column, q in (("low", (1 - interval) / 2), ("high", (1 + interval) / 2)):
        expected = np.quantile(ranks, q, axis=0, method="inverted_cdf")
        np.testing.assert_array_equal(table[f"interval_{column}_rank"], expected)
    np.testing.assert_allclose(table.p_within_1, (np.abs(ranks - nominal) <= 1).mean(axis=0))
    np.testing.assert_allclose(table.p_top_2, (ranks <= 2).mean(axis=0))
    np.testing.assert_allclose(table.p_nominal_rank, (ranks == nominal).mean(axis=0))
    quartiles = np.quantile(ranks, [0.25, 0.5, 0.75], axis=0, method="inverted_cdf")
    np.testing.assert_array_equal(table.median_rank, quartiles[1])
    np.testing.assert_array_equal(table.iqr_rank, quartiles[2] - quartiles[0])


def test_the_share_of_nominal_ranks_inside_their_interval_counts_its_ends_as_inside():
    """``share_nominal_rank_in_p05_p95``: units whose nominal rank lies in their own 5th-95th
    percentile rank interval, ends included. Of 20 scenarios, unit a ranks 1 in 19 and 2 in one
    (interval [1, 1]); b ranks 2 or 3 ten times each ([2, 3]); c ranks 3 in 18 and 4 twice
    ([3, 4]). Nominal ranks 2, 3, 3: a outside, b on its upper end, c on its lower end."""
    from nqpf_sens.uncertainty.statistics import rank_agreement
    from nqpf_sens.uncertainty.study import AGREEMENT_GRID

    ranks = np.array([[1] * 19 + [2], [2] * 10 + [3] * 10, [3] * 18 + [4] * 2]).T
    stats = SimpleNamespace(
        agreement_counts=np.ones((1, 2, 2 * AGREEMENT_GRID + 1), dtype=np.int64),
        rank_counts=counts_of(ranks, 4),
    )
    labels = Labels(tuple("abc"), (None,), ("total",), ())
    table = rank_agreement(stats, np.array([[2, 3, 3]]), labels)
    assert table.share_nominal_rank_in_p05_p95.iloc[0] == pytest.approx(2 / 3)
    table = rank_agreement(stats, np.array([[1, 2, 4]]), labels)
    assert table.share_nominal_rank_in_p05_p95.iloc[0] == 1


@pytest.mark.parametrize("interval", [0.8, 0.5])
def test_score_bands_of_any_interval_are_quantiles_of_the_scores(interval):
    """total_interval_low / _high are the (1 -/+ interval) / 2 quantiles of the kept scores."""
    scores = np.random.default_rng(3).gamma(2.0, 10.0, size=(203, 1, 3, 1))
    stats = SimpleNamespace(tier_counts=np.ones((1, 3, 2), dtype=np.int64), scores=scores)
    labels = Labels(tuple("abc"), (None,), ("total",), ())
    tiers = np.ones((1, 3), dtype=np.int64)
    table = tier_bands(stats, tiers, tiers, np.zeros((1, 3, 1)), labels, interval)
    for column, q in (("low", (1 - interval) / 2), ("high", (1 + interval) / 2)):
        expected = np.quantile(scores[:, 0, :, 0], q, axis=0)
        np.testing.assert_allclose(table[f"total_interval_{column}"], expected)


def test_most_likely_tier_is_the_tier_counted_most_often():
    """Tier counts (5, 3, 2), (1, 2, 7) and (0, 6, 4): the most likely tiers are 1, 3 and 2."""
    counts = np.array([[[5, 3, 2], [1, 2, 7], [0, 6, 4]]])
    stats = SimpleNamespace(tier_counts=counts, scores=np.zeros((4, 1, 3, 1)))
    labels = Labels(tuple("abc"), (None,), ("total",), ())
    tiers = np.ones((1, 3), dtype=np.int64)
    table = tier_bands(stats, tiers, tiers, np.zeros((1, 3, 1)), labels, 0.9)
    assert table.most_likely_tier.tolist() == [1, 3, 2]


def test_paper_order_counts_the_scenarios_that_keep_it_best_first():
    """Regions listed alphabetically, as a run lists them; of four scenarios two rank East >
    Central > West > Northeast, one the reverse and one ties East with Central: p = 0.5."""
    regions = ("Central", "East", "Northeast", "West")
    means = {"paper": (30, 40, 10, 20), "reversed": (20, 10, 40, 30), "tie": (40, 40, 10, 20)}
    order = [means[k] for k in ("paper", "reversed", "tie", "paper")]
    stats = SimpleNamespace(region_means=np.array(order, dtype=float)[:, None, :])
    labels = Labels((), (None,), ("total",), regions)
    table = region_bands(stats, np.zeros((1, 4)), labels, ("East", "Central", "West", "Northeast"))
    assert (table.p_paper_order == 0.5).all()


def test_a_large_index_keeps_fewer_scores_within_the_memory_set_aside():
    """Score bands come from a subsample: 65,536 scenarios for a small index, as many as fit in
    512 MiB of float32 scores for a large one (3,000 units x 6 aggregates: 72 KB a scenario),
    never fewer than 4,096."""
    from nqpf_sens.uncertainty.study import kept_scenarios

    assert kept_scenarios(10**6, 31 * 4 * 4) == 65_536
    assert kept_scenarios(1_000, 31 * 4 * 4) == 1_000
    assert kept_scenarios(10**5, 3_000 * 6 * 4) == 512 * 2**20 // 72_000 == 7_456
    assert kept_scenarios(10**5, 10**8) == 4_096
