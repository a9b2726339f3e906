"""Monte Carlo error of the statistics tables: standard errors and order-statistic intervals
against known answers (exact binomial probabilities, and simulation with a fixed seed)."""

import numpy as np
import pytest
from scipy.stats import binom

from nqpf_sens.uncertainty.statistics import (
    binomial_se,
    count_interval,
    order_statistics,
    sample_intervals,
)


def test_binomial_se_is_the_spread_of_a_simulated_share():
    assert binomial_se(0.5, 100) == pytest.approx(0.05)
    assert np.isnan(binomial_se(0.5, 0))
    shares = np.random.default_rng(1).binomial(500, 0.3, size=20_000) / 500
    assert binomial_se(0.3, 500) == pytest.approx(shares.std(), rel=0.02)


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
    for q, (low, high) in zip(quantiles, sample_intervals(draws, quantiles), strict=True):
        r, s = order_statistics(400, q)
        exact = binom.cdf(s - 1, 400, q) - binom.cdf(r - 1, 400, q)  # 0.96-0.962
        coverage = np.mean((low <= q) & (q <= high))
        assert coverage == pytest.approx(exact, abs=0.01), (q, coverage, exact)


def test_count_interval_reads_the_same_order_statistics_off_counts():
    draws = np.random.default_rng(3).integers(0, 12, size=(2000, 5))  # values 0..11, 5 units
    counts = np.stack([np.bincount(d, minlength=12) for d in draws.T])
    for q in (0.05, 0.5, 0.95):
        (low, high), *_ = sample_intervals(draws, (q,))
        np.testing.assert_array_equal(count_interval(counts, q), (low, high))


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
