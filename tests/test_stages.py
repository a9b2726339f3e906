"""Each pipeline option against a small case computed by hand."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from nqpf_sens.engine.aggregate import SHIFT_FRACTION, aggregate, aggregate_tree
from nqpf_sens.engine.impute import impute
from nqpf_sens.engine.kernels import prepare_children
from nqpf_sens.engine.normalise import ascending_ranks, domain_problem, normalise
from nqpf_sens.engine.rank import TierRule, natural_breaks, rank_scores
from nqpf_sens.engine.transform import transform, treat_outliers
from nqpf_sens.engine.weights import critic_weights, entropy_weights

NAN = np.nan


def series(*values):
    """A single unit's single indicator over years: shape (years, 1, 1)."""
    return np.array(values, dtype=float)[:, None, None]


@pytest.mark.parametrize(
    "rule, expected",
    [
        (
            "growth",
            [1, 2, 4, 8, 16, 32],
        ),  # 2 -> 8 over two years is x2 a year; extrapolated at the span's x2
        ("linear", [-1, 2, 5, 8, 11, 14]),
        ("locf", [2, 2, 2, 8, 8, 8]),
        ("loglinear_trend", [1, 2, 4, 8, 16, 32]),
    ],
)
def test_time_series_rules(rule, expected):
    filled = impute(series(NAN, 2, NAN, 8, NAN, NAN), rule)
    np.testing.assert_allclose(filled.ravel(), expected)


def test_growth_uses_average_rate_over_the_whole_observed_span():
    # 100 -> 130 -> 121 averages 10% a year over the span; the next years continue at 10%
    filled = impute(series(100, 130, 121, NAN, NAN), "growth")
    np.testing.assert_allclose(filled.ravel(), [100, 130, 121, 133.1, 146.41])


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("linear", [10, 20, 50, 60]),  # 40 over 4 years: 10 a year
        ("growth", [10, 10 * 5 ** (1 / 4), 50, 50 * 5 ** (1 / 4)]),  # x5 over 4 years
        ("loglinear_trend", [10, 10 * 5 ** (1 / 4), 50, 50 * 5 ** (1 / 4)]),
    ],
)
def test_time_series_rules_measure_time_in_years(rule, expected):
    """Years 2018, 2019, 2022, 2023: a gap of three years is three years of growth, not one."""
    filled = impute(series(10, NAN, 50, NAN), rule, years=(2018, 2019, 2022, 2023))
    np.testing.assert_allclose(filled.ravel(), expected)


def test_growth_falls_back_to_linear_where_a_value_is_not_positive():
    filled = impute(series(0, NAN, 4), "growth")
    np.testing.assert_allclose(filled.ravel(), [0, 2, 4])


def test_cross_section_rules_and_fallback():
    values = np.array([[[1.0, NAN], [3.0, 4.0], [8.0, 6.0]]])  # 1 year, 3 units, 2 indicators
    np.testing.assert_allclose(impute(values, "mean")[0, :, 1], [5, 4, 6])
    values[0, 1, 0] = NAN
    np.testing.assert_allclose(impute(values, "median")[0, 1, 0], 4.5)
    # a single year leaves a time-series rule nothing to work with: the fallback fills it
    assert np.isnan(impute(values, "growth")).any()
    np.testing.assert_allclose(impute(values, "growth", fallback="mean")[0, 1, 0], 4.5)


@given(
    hnp.arrays(
        float,
        st.one_of(  # (years, units, indicators), or a batch of scenarios of them
            st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 3)),
            st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(1, 9), st.integers(1, 3)),
        ),
        elements=st.sampled_from([-1.0, 0.0, 2.0, 2.5, 9.0, np.nan]),
    ),
    st.sampled_from(["mean", "median"]),
)
def test_cross_sectional_imputation_fills_with_numpys_nan_statistics(values, rule):
    """Each missing cell takes its indicator's mean or median over the observed units (numpy's
    nanmean and nanmedian, ties and even counts included), in every scenario of a batch; a column
    with none stays missing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with nothing observed
        centre = getattr(np, f"nan{rule}")(values, axis=-2, keepdims=True)
    expected = np.where(np.isnan(values), centre, values)
    np.testing.assert_array_equal(impute(values, rule), expected)


def test_imputation_leaves_observed_cells_alone(table):
    values = table.values.copy()
    values[0, 3, 4] = NAN
    filled = impute(values, "median")
    observed = ~np.isnan(values)
    np.testing.assert_array_equal(filled[observed], values[observed])


def test_transformations():
    values = np.array([[[0.0, 4.0], [9.0, 16.0], [1.0, 100.0]]])
    flagged = np.array([True, False])
    np.testing.assert_allclose(
        transform(values, "sqrt", flagged)[0, :, 0], [1, 3, 1]
    )  # zero -> 1 -> 1
    np.testing.assert_allclose(transform(values, "sqrt", flagged)[0, :, 1], [4, 16, 100])
    np.testing.assert_allclose(transform(values, "log1p")[0, :, 1], np.log1p([4, 16, 100]))
    x = np.arange(1.0, 21.0)[None, :, None]  # 20 units: the 10% / 90% quantiles are 2.9 and 18.1
    clipped = transform(x, "winsorise", limit=0.1).ravel()
    assert clipped.min() == pytest.approx(2.9) and clipped.max() == pytest.approx(18.1)
    np.testing.assert_allclose(clipped[5:15], np.arange(6.0, 16.0))


@pytest.mark.parametrize("method", ["sqrt", "log1p"])
def test_an_indicator_left_untransformed_may_be_negative_without_a_warning(method):
    """The transformation applies to the flagged indicators only; computed on the others too, a
    negative one put numpy's warnings on the terminal of a run that was fine."""
    values = np.array([[[4.0, -5.0], [9.0, -1.0], [1.0, 2.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        changed = transform(values, method, np.array([True, False]))
    np.testing.assert_array_equal(changed[..., 1], values[..., 1])


def test_normalisations_by_hand():
    x = np.array([[[2.0], [4.0], [10.0]]])
    up, down = np.array([1.0]), np.array([-1.0])
    np.testing.assert_allclose(normalise(x, "minmax", up).ravel(), [0, 25, 100])
    np.testing.assert_allclose(normalise(x, "minmax", down).ravel(), [100, 75, 0])
    sd = np.sqrt(((np.array([2, 4, 10]) - 16 / 3) ** 2).mean())
    np.testing.assert_allclose(
        normalise(x, "zscore", up).ravel(), (np.array([2, 4, 10]) - 16 / 3) / sd
    )
    np.testing.assert_allclose(normalise(x, "rank", up).ravel(), [0, 50, 100])
    np.testing.assert_allclose(normalise(x, "rank", down).ravel(), [100, 50, 0])
    np.testing.assert_allclose(normalise(x, "distance_to_leader", up).ravel(), [20, 40, 100])
    np.testing.assert_allclose(normalise(x, "distance_to_leader", down).ravel(), [100, 50, 20])
    np.testing.assert_allclose(normalise(x, "distance_to_mean", up).ravel(), [37.5, 75, 187.5])
    np.testing.assert_allclose(normalise(x, "distance_to_mean", down).ravel(), [162.5, 125, 12.5])


def test_distance_to_mean_keeps_the_order_when_the_mean_is_negative():
    """100 (1 + d (x - mean) / |mean|): of (-3, -2, -1), mean -2, the highest value still scores
    highest (50, 100, 150); dividing by the signed mean would turn the ranking upside down."""
    x = np.array([[[-3.0], [-2.0], [-1.0]]])
    up, down = np.array([1.0]), np.array([-1.0])
    np.testing.assert_allclose(normalise(x, "distance_to_mean", up).ravel(), [50, 100, 150])
    np.testing.assert_allclose(normalise(x, "distance_to_mean", down).ravel(), [150, 100, 50])


def test_normalisation_parameters_as_coinr_defines_them():
    """COINr's n_minmax(x, l_u = c(1, 100)) maps the minimum to 1 and the maximum to 100;
    n_zscore(x, m_sd = c(10, 2)) gives 10 + 2 z (with R's sd when zscore_ddof = 1); a constant
    indicator gets the middle of the range and the mean."""
    x = np.array([[[2.0], [4.0], [10.0]]])
    up, down = np.array([1.0]), np.array([-1.0])
    found = normalise(x, "minmax", up, minmax_range=(1, 100)).ravel()
    np.testing.assert_allclose(found, [1, 1 + 99 * 2 / 8, 100])
    found = normalise(x, "minmax", down, minmax_range=(1, 100)).ravel()
    np.testing.assert_allclose(found, [100, 1 + 99 * 6 / 8, 1])
    z = (np.array([2, 4, 10]) - 16 / 3) / np.sqrt(((np.array([2, 4, 10]) - 16 / 3) ** 2).mean())
    np.testing.assert_allclose(normalise(x, "zscore", up, zscore_scale=(10, 2)).ravel(), 10 + 2 * z)
    sample = (np.array([2, 4, 10]) - 16 / 3) / np.std([2, 4, 10], ddof=1)  # R's sd, as COINr
    found = normalise(x, "zscore", up, zscore_scale=(10, 2), zscore_ddof=1).ravel()
    np.testing.assert_allclose(found, 10 + 2 * sample)
    constant = np.full((1, 4, 1), 0.1)
    np.testing.assert_array_equal(normalise(constant, "minmax", up, minmax_range=(1, 100)), 50.5)
    np.testing.assert_array_equal(normalise(constant, "zscore", up, zscore_scale=(10, 2)), 10.0)


def test_the_default_range_is_bit_identical_to_the_plain_formula():
    """The parametrised min-max keeps the paper's 100 (x - min) / (max - min) to the last bit."""
    x = np.random.default_rng(0).random((1, 31, 5)) * 1e3
    low, high = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    np.testing.assert_array_equal(
        normalise(x, "minmax", np.ones(5)), 100.0 * (x - low) / (high - low)
    )


def test_borda_goalposts_targets_and_reference_by_hand():
    """COINr's n_borda, n_goalposts (trunc2posts), n_dist2targ and n_dist2ref, on the 0-100
    scale of the other methods (goalposts: their own scale)."""
    x = np.array([[[2.0], [4.0], [10.0], [4.0]]])
    up, down = np.array([1.0]), np.array([-1.0])
    np.testing.assert_array_equal(normalise(x, "borda", up).ravel(), [0, 1, 3, 1])
    np.testing.assert_array_equal(normalise(x, "borda", down).ravel(), [3, 1, 0, 1])
    posts = {"goalpost_lower": np.array([0.0]), "goalpost_upper": np.array([8.0])}
    found = normalise(x, "goalposts", up, parameters=posts).ravel()
    np.testing.assert_allclose(found, [25, 50, 100, 50])  # 10 is beyond the upper post: cut
    found = normalise(x, "goalposts", down, parameters=posts).ravel()
    np.testing.assert_allclose(found, [75, 50, 0, 50])  # negative: full score at the lower post
    scaled = {**posts, "goalpost_scale": np.array([1.0])}
    np.testing.assert_allclose(
        normalise(x, "goalposts", up, parameters=scaled).ravel(), [0.25, 0.5, 1, 0.5]
    )
    target = {"Target": np.array([8.0])}
    found = normalise(x, "distance_to_target", up, parameters=target).ravel()
    np.testing.assert_allclose(found, [0, 100 / 3, 400 / 3, 100 / 3])
    found = normalise(x, "distance_to_target", down, parameters={"Target": np.array([4.0])})
    np.testing.assert_allclose(found.ravel(), [400 / 3, 100, 0, 100])
    found = normalise(x, "distance_to_reference", up, reference=1).ravel()
    np.testing.assert_allclose(found, [0, 100, 400, 100])
    found = normalise(x, "distance_to_reference", down, reference=1).ravel()
    np.testing.assert_allclose(found, [400 / 3, 100, 0, 100])


@pytest.mark.parametrize(
    "method, parameters, reference, problem",
    [
        ("goalposts", {}, None, "needs a 'goalpost_lower' column"),
        ("goalposts", {"goalpost_lower": [1.0], "goalpost_upper": [1.0]}, None, "equal"),
        ("distance_to_target", {"Target": [float("nan")]}, None, "for every indicator"),
        ("distance_to_target", {"Target": [2.0]}, None, "the target is the worst value"),
        ("distance_to_reference", {}, None, "needs [pipeline] reference_unit"),
        ("distance_to_reference", {}, 0, "reference unit has the worst value"),
    ],
)
def test_what_each_method_needs_is_checked_first(method, parameters, reference, problem):
    x = np.array([[[2.0], [4.0], [10.0]]])
    given = {k: np.asarray(v) for k, v in parameters.items()}
    found = domain_problem(method, x, np.array([1.0]), 0, given, reference)
    assert found is not None and problem in found


def test_base_year_normalisation():
    years = series(2.0, 3.0, 5.0)
    np.testing.assert_allclose(
        normalise(years, "base_year", np.array([1.0])).ravel(), [100, 150, 250]
    )
    np.testing.assert_allclose(
        normalise(years, "base_year", np.array([1.0]), base_index=1).ravel(),
        [200 / 3, 100, 500 / 3],
    )


def test_rank_percentile_ties_share_the_average_place():
    x = np.array([[[1.0], [1.0], [3.0]]])
    np.testing.assert_allclose(normalise(x, "rank", np.array([1.0])).ravel(), [25, 25, 100])


@pytest.mark.parametrize("method, midpoint", [("minmax", 50.0), ("zscore", 0.0), ("rank", 50.0)])
def test_constant_indicator_gets_the_midpoint(method, midpoint):
    x = np.full((1, 4, 1), 0.1)
    np.testing.assert_array_equal(normalise(x, method, np.array([1.0])).ravel(), midpoint)


def test_arithmetic_geometric_harmonic_by_hand():
    scores = np.array([[20.0, 80.0], [50.0, 50.0]]).T  # two children of one parent, two rows
    membership = np.ones((2, 1))
    weights = np.array([1.0, 3.0])
    np.testing.assert_allclose(aggregate(scores, weights, membership).ravel(), [65, 50])
    np.testing.assert_allclose(
        aggregate(scores, weights, membership, "geometric").ravel(), [20**0.25 * 80**0.75, 50]
    )
    np.testing.assert_allclose(
        aggregate(scores, weights, membership, "harmonic").ravel(),
        [1 / (0.25 / 20 + 0.75 / 80), 50],
    )


def test_copeland_counts_who_outranks_whom():
    """COINr's a_copeland with weights (2, 1): A = (3, 1) outranks B = (2, 5) on 2/3 of the
    weight and C = (1, 1) on 2.5/3 (a tie counts half); B outranks C on all: +2, 0, -2."""
    children = np.array([[3.0, 2.0, 1.0], [1.0, 5.0, 1.0]])  # children x units
    found = aggregate(children, np.array([2.0, 1.0]), np.ones((2, 1)), "copeland").ravel()
    np.testing.assert_array_equal(found, [2, 0, -2])
    equal = aggregate(children, np.array([1.0, 1.0]), np.ones((2, 1)), "copeland").ravel()
    np.testing.assert_array_equal(equal, [1, 1, -2])  # A ~ B at exactly half: neither counts


def test_generalised_mean_as_coinr_a_genmean():
    """(sum w x^p / sum w)^(1/p): order 2 of (20, 80) weighted (1, 3) is sqrt(100 + 4800) = 70;
    order -1 is the harmonic mean and order 1 the arithmetic."""
    scores = np.array([[20.0, 80.0], [50.0, 50.0]]).T
    membership, weights = np.ones((2, 1)), np.array([1.0, 3.0])

    def mean(order):
        return aggregate_tree(scores, [weights[None]], [membership], ["generalised"], power=order)

    np.testing.assert_allclose(mean(2.0)[0].ravel(), [70, 50])
    harmonic = aggregate(scores, weights, membership, "harmonic").ravel()
    np.testing.assert_allclose(mean(-1.0)[0].ravel(), harmonic)
    np.testing.assert_allclose(mean(1.0)[0].ravel(), [65, 50])


def test_shift_keeps_zeros_from_collapsing_a_product():
    scores = np.array([[0.0, 100.0], [100.0, 100.0], [50.0, 100.0]]).T  # children x rows
    reciprocal = np.empty_like(scores)
    prepare_children(scores, 2, SHIFT_FRACTION, 1.0, reciprocal)  # harmonic: 1 / shifted values
    np.testing.assert_allclose(1 / reciprocal[0], [1, 101, 51])  # +1% of the 0-100 range
    np.testing.assert_allclose(1 / reciprocal[1], 100)  # positive child unchanged
    geometric = aggregate(scores, np.ones(2), np.ones((2, 1)), "geometric").ravel()
    assert geometric[0] > 0 and np.argsort(geometric).tolist() == [0, 2, 1]


def test_refusing_the_shift_takes_logarithms_of_the_values_themselves():
    """With no shift (COINr's geometric mean) positive children enter as they are, and a value
    <= 0 becomes NaN (the engine then stops the run, naming the cause)."""
    scores = np.array([[1.0, 100.0], [4.0, 25.0]]).T  # children x rows, all positive
    logs = np.empty_like(scores)
    prepare_children(scores, 1, 0.0, 1.0, logs)
    np.testing.assert_allclose(logs, np.log(scores))
    prepare_children(np.array([[0.0, 3.0]]), 1, 0.0, 1.0, logs[:1])
    assert np.isnan(logs[0, 0]) and logs[0, 1] == np.log(3.0)


def test_batched_weights_match_one_at_a_time():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 100, size=(5, 7))  # children x rows
    membership = np.zeros((5, 2))
    membership[[0, 1, 2], 0] = 1
    membership[[3, 4], 1] = 1
    weights = rng.uniform(0.1, 1, size=(4, 5))
    for method in ("arithmetic", "geometric", "harmonic"):
        batch = aggregate(scores, weights, membership, method)
        for s in range(4):
            np.testing.assert_allclose(
                batch[s], aggregate(scores, weights[s], membership, method), rtol=1e-12
            )


def test_ranks_and_tie_rules():
    scores = np.array([3.0, 7.0, 7.0, 1.0, 5.0])
    np.testing.assert_array_equal(rank_scores(scores, "min"), [4, 1, 1, 5, 3])
    np.testing.assert_array_equal(rank_scores(scores, "ordinal"), [4, 1, 2, 5, 3])
    batch = np.stack([scores, -scores])
    np.testing.assert_array_equal(rank_scores(batch, "min")[1], [2, 4, 4, 1, 3])


def test_tier_rules():
    scores = np.array([69.8, 59.7, 54.5, 53.3, 43.9, 33.2, 31.0])
    ranks = rank_scores(scores)
    np.testing.assert_array_equal(
        TierRule("fixed_ranks", bounds=(2, 5)).assign(scores, ranks), [1, 1, 2, 2, 2, 3, 3]
    )
    np.testing.assert_array_equal(
        TierRule("score_thresholds", thresholds=(55.0, 40.0)).assign(scores, ranks),
        [1, 1, 2, 2, 2, 3, 3],
    )


def test_a_score_exactly_on_a_threshold_takes_the_tier_above():
    """Thresholds [55, 40]: score >= 55 is tier 1 and 40 <= score < 55 tier 2, so 55 and 40
    themselves are tiers 1 and 2, and scores just below them tiers 2 and 3."""
    scores = np.array([55.0, 54.999, 40.0, 39.999])
    rule = TierRule("score_thresholds", thresholds=(55.0, 40.0))
    np.testing.assert_array_equal(rule.assign(scores, rank_scores(scores)), [1, 2, 2, 3])


def _brute_force_jenks(values, k):
    from itertools import combinations

    ordered = np.sort(values)
    best, best_cuts = np.inf, None
    for cuts in combinations(range(1, len(ordered)), k - 1):
        parts = np.split(ordered, cuts)
        cost = sum(((p - p.mean()) ** 2).sum() for p in parts)
        if cost < best - 1e-12:
            best, best_cuts = cost, cuts
    thresholds = [ordered[c] for c in best_cuts]
    return k - np.searchsorted(thresholds, values, side="right")


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 3, 4])
def test_natural_breaks_is_the_exact_optimum(seed, k):
    values = np.random.default_rng(seed).gamma(1.0, 10.0, size=9)
    np.testing.assert_array_equal(natural_breaks(values, k), _brute_force_jenks(values, k))


def test_natural_breaks_vectorised_over_scenarios():
    values = np.random.default_rng(7).gamma(1.0, 10.0, size=(6, 10))
    batch = natural_breaks(values, 3)
    for row, expected in zip(values, batch, strict=True):
        np.testing.assert_array_equal(natural_breaks(row, 3), expected)


def test_entropy_weights_by_hand():
    values = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 2.0]])
    # column 0 -> [0, .5, 1] shares [0, 1/3, 2/3]; column 1 -> [0, 1, 1] shares [0, .5, .5]
    e0 = -(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3)) / np.log(3)
    e1 = -(np.log(0.5)) / np.log(3)
    d = np.array([1 - e0, 1 - e1])
    np.testing.assert_allclose(entropy_weights(values), d / d.sum())


def test_critic_weights_by_hand():
    values = np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 0.0], [2.0, 2.0, 1.0]])
    x = (values - values.min(0)) / np.ptp(values, 0)
    sd = x.std(0, ddof=1)
    r = np.corrcoef(x, rowvar=False)
    c = sd * (1 - r).sum(0)
    np.testing.assert_allclose(critic_weights(values), c / c.sum())


@given(
    hnp.arrays(
        float,
        st.tuples(st.integers(1, 4), st.integers(1, 12)),
        elements=st.sampled_from([-2.0, 0.0, 1.0, 1.5, 7.0, np.nan]),
    ),
    st.sampled_from(["average", "min"]),
    st.sampled_from([0, 1, -1]),
)
def test_ascending_ranks_are_scipys(values, ties, axis):
    """Ties, missing cells, any axis: the ranks of scipy.stats.rankdata (nan_policy omit)."""
    expected = stats.rankdata(values, method=ties, axis=axis, nan_policy="omit")
    np.testing.assert_array_equal(ascending_ranks(values, axis, ties), expected)


@given(
    hnp.arrays(
        float,
        st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 3)),
        elements=st.sampled_from([-1.0, 0.0, 0.3, 2.0, 9.0, 1e6, np.nan]),
    ),
    st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.25, 0.4]),
)
def test_winsorisation_clips_at_numpys_nan_quantiles(values, limit):
    """Each indicator clipped to its [q, 1 - q] quantiles over the observed units, as numpy's
    nanquantile (linear) computes them, bit for bit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with nothing observed
        low, high = np.nanquantile(values, [limit, 1 - limit], axis=-2, keepdims=True)
    found = transform(values, "winsorise", limit=limit)
    np.testing.assert_array_equal(found, np.clip(values, low, high))


@pytest.mark.parametrize("size", [1e250, 1e-250])
def test_the_outlier_treatment_does_not_depend_on_the_size_of_the_values(size):
    """Skewness and kurtosis are the same at any scale; computed on values of 1e250 their squares
    overflowed (a numpy warning), the moments were undefined and the outlier was never treated."""
    x = np.array([[1.0, 2, 3, 1, 2, 3, 1, 2, 2, 1000]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        treated = treat_outliers(x * size, winmax=5, fallback="none")
    np.testing.assert_allclose(treated / size, treat_outliers(x, winmax=5, fallback="none"))
    assert treated.max() == pytest.approx(3 * size)
