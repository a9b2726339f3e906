"""The vectorised Sobol estimator: SALib's numbers, the generalised indices' definition, flags."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from SALib.analyze import sobol as salib

from nqpf_sens.uncertainty import sobol
from nqpf_sens.uncertainty.designs import Design
from nqpf_sens.uncertainty.factors import matching_concentration
from nqpf_sens.uncertainty.sobol import (
    MIN_BASE_SAMPLES,
    MIN_RANK_SD,
    bootstrap_seed,
    output_reliability,
    sobol_indices,
    sobol_summary,
)

GROUPS = ["a", "a", "b", "c"]


def outputs_of(u: np.ndarray) -> np.ndarray:
    """Smooth, interacting, discrete and constant outputs of a grouped design."""
    return np.column_stack(
        [
            np.sin(6 * u[:, 0]) + 7 * np.sin(6 * u[:, 1]) ** 2 + u[:, 2] ** 4 * np.sin(6 * u[:, 0]),
            u[:, 2] * u[:, 3] + u[:, 3] ** 2,
            np.floor(5 * u[:, 0] + 3 * u[:, 3]),  # a rank-like discrete output
            np.full(len(u), 3.0),
        ]
    )


@pytest.fixture(scope="module")
def design():
    return Design("saltelli", 512, GROUPS, 3)


@pytest.mark.parametrize(("seed", "one_output_per_block"), [(1, False), (2024, True)])
def test_equals_salib_on_the_same_resamples(design, seed, one_output_per_block, monkeypatch):
    if one_output_per_block:  # as outputs are processed when their terms would not fit at once
        monkeypatch.setattr(sobol, "TERMS_BLOCK", 1)
    y = outputs_of(design.rows(0, design.n_rows))[:, :3]
    ours = sobol_indices(y, ["f", "g", "h"], design.problem(), 100, 0.9, seed)
    for k, name in enumerate(["f", "g", "h"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = salib.analyze(
                design.problem(), y[:, k], False, num_resamples=100, conf_level=0.9, seed=seed
            )
        mine = ours[ours.output == name]
        for key in ("S1", "S1_conf", "ST", "ST_conf"):
            np.testing.assert_allclose(mine[key], reference[key], rtol=0, atol=1e-10)


def test_generalised_indices_are_the_variance_weighted_definition(design):
    """sum_k E[B_k (AB_k - A_k)] / sum_k Var(Y_k) on centred outputs (Gamboa et al. 2014)."""
    y = outputs_of(design.rows(0, design.n_rows))[:, :3]
    table = sobol_indices(
        y, ["f", "g", "h"], design.problem(), 50, 0.95, 1, aggregates={"all": np.arange(3)}
    )
    found = table[table.output == "all"].set_index("factor")
    centred = y - y.mean(axis=0)
    per_sample = len(found) + 2
    a, b = centred[0::per_sample], centred[per_sample - 1 :: per_sample]
    variance = np.concatenate([a, b]).var(axis=0).sum()
    for j, factor in enumerate(found.index):
        ab = centred[j + 1 :: per_sample]
        first = (b * (ab - a)).mean(axis=0).sum() / variance
        total = (0.5 * (a - ab) ** 2).mean(axis=0).sum() / variance
        assert found.S1[factor] == pytest.approx(first, abs=1e-12)
        assert found.ST[factor] == pytest.approx(total, abs=1e-12)


def test_generalised_indices_of_two_linear_outputs():
    """Y1 = X1, Y2 = 10 X2: the variances weigh 1 : 100, so the indices are 1/101 and 100/101."""
    design = Design("saltelli", 4096, ["x1", "x2"], 5)
    u = design.rows(0, design.n_rows)
    y = np.column_stack([u[:, 0], 10 * u[:, 1]])
    table = sobol_indices(y, ["y1", "y2"], design.problem(), 50, 0.95, 1, {"all": np.arange(2)})
    found = table[table.output == "all"].set_index("factor")
    np.testing.assert_allclose(found.ST, [1 / 101, 100 / 101], atol=0.01)
    np.testing.assert_allclose(found.S1, [1 / 101, 100 / 101], atol=0.01)


def test_intervals_reproducible_unclipped_and_constant_outputs_are_missing(design):
    """Percentile intervals as the resamples give them: an index near 1 (f's S1 for a) keeps an
    upper end above 1 and one near 0 a lower end below 0 (clipped to [0, 1], the interval of an
    estimate of 0.99 would be narrower than its resamples' spread, and could leave the estimate
    outside); each contains its estimate here."""
    y = outputs_of(design.rows(0, design.n_rows))
    names = ["f", "g", "h", "constant"]
    first = sobol_indices(y, names, design.problem(), 80, 0.95, bootstrap_seed(0))
    again = sobol_indices(y, names, design.problem(), 80, 0.95, bootstrap_seed(0))
    assert first.equals(again)  # seed 0 is a seed like any other
    varying = first[first.output != "constant"]
    for index in ("S1", "ST"):
        low, high = varying[f"{index}_low"], varying[f"{index}_high"]
        assert ((low <= varying[index] + 1e-12) & (varying[index] <= high + 1e-12)).all()
    assert (varying.S1_high > 1).any() and (varying.S1_low < 0).any()
    assert first[first.output == "constant"][["S1", "ST", "S1_low"]].isna().all().all()


def test_too_few_base_samples_make_every_varying_output_unreliable(design):
    """Below ``MIN_BASE_SAMPLES`` a bootstrap over so few samples cannot measure the error, however
    narrow the intervals it gives (at N = 2 only three distinct resamples exist)."""
    small = Design("saltelli", 2, GROUPS, 3)
    y = outputs_of(small.rows(0, small.n_rows))
    indices = sobol_indices(y, ["f", "g", "h", "constant"], small.problem(), 50, 0.95, 1)
    reliability = output_reliability(indices, small.n).set_index("output")
    assert not reliability.reliable.any()
    assert reliability.why_not["constant"] == "does not vary"
    varying = reliability.drop(index="constant")
    assert varying.why_not.str.startswith(f"fewer than {MIN_BASE_SAMPLES} base samples").all()
    enough = output_reliability(indices, MIN_BASE_SAMPLES).set_index("output")
    assert not enough.why_not.drop(index="constant").str.contains("base samples").any()


def test_unreliable_outputs_are_flagged_and_never_top(design):
    u = design.rows(0, design.n_rows)
    steady = np.where(u[:, 2] > 0.99, 2.0, 1.0)  # a rank that almost never moves
    y = np.column_stack([np.floor(10 * u[:, 0]) + u[:, 3], steady, np.full(len(u), 5.0)])
    names = ["rank:moving", "rank:steady", "rank:fixed"]
    indices = sobol_indices(y, names, design.problem(), 50, 0.95, 1)
    reliability = output_reliability(indices, design.n).set_index("output")
    assert reliability.reliable.tolist() == [True, False, False]
    assert reliability.output_sd["rank:steady"] < MIN_RANK_SD
    even = np.arange(len(u)) % 2 + 1.0  # places 1 and 2, exactly half each: sd 0.5
    flipping = sobol_indices(even[:, None], ["rank:flips"], design.problem(), 50, 0.95, 1)
    flips = output_reliability(flipping, design.n).set_index("output").loc["rank:flips"]
    assert flips.output_sd == pytest.approx(MIN_RANK_SD, rel=1e-12)
    assert flips.why_not == f"rank standard deviation at most {MIN_RANK_SD} places"
    assert reliability.why_not["rank:fixed"] == "does not vary"
    shift = indices[indices.output == "rank:moving"].assign(output="rank_shift")
    both = pd.concat([indices, shift, shift.assign(output="all_ranks")])
    summary = sobol_summary(both, reliability.reset_index()).set_index("factor")
    assert summary.units_where_top.sum() == 1  # the steady rank's top factor is not counted
    assert summary.units_where_top["a"] == 1
    moving = reliability.loc["rank:moving"]
    assert moving.interaction_share == pytest.approx(1 - moving.sum_S1)


@pytest.mark.parametrize("spread", [0.1, 0.25])
@pytest.mark.parametrize("shares", [(0.4, 0.4, 0.2), (0.5, 0.5), (0.1,) * 10])
def test_default_dirichlet_varies_weights_as_much_as_the_uniform(spread, shares):
    """After renormalisation (only ratios matter) the calibrated Dirichlet's weights have the
    mean coefficient of variation of the uniform multipliers' weights."""
    shares = np.array(shares)
    rng = np.random.default_rng(0)
    uniform = shares * rng.uniform(1 - spread, 1 + spread, size=(200_000, len(shares)))
    uniform /= uniform.sum(axis=1, keepdims=True)
    dirichlet = rng.dirichlet(matching_concentration(shares, spread) * shares, size=200_000)

    def mean_cv(weights):
        return (weights.std(axis=0) / weights.mean(axis=0)).mean()

    assert mean_cv(dirichlet) == pytest.approx(mean_cv(uniform), rel=0.03)


def test_a_rare_event_output_gets_finite_intervals(design):
    """Resamples that draw only equal values of A and B define no index: they are skipped, not
    turned into infinite replicates that make the interval undefined."""
    u = design.rows(0, design.n_rows)
    rare = (u[:, 0] > 0.998).astype(float)  # about 2 of the 1,024 A and B rows
    table = sobol_indices(rare[:, None], ["rare"], design.problem(), 200, 0.95, 3)
    assert np.isfinite(table[["S1_conf", "ST_conf", "S1_low", "S1_high"]].to_numpy()).all()


def test_grouped_columns_move_together_in_the_saltelli_design():
    """Columns of one group switch from A to B together (SALib's groups): rows per base sample
    are A, AB_g, AB_h, B, and AB_g takes both of g's columns from B and h's from A."""
    design = Design("saltelli", 8, ["g", "g", "h"], seed=1)
    assert design.factor_names == ["g", "h"] and design.n_rows == 8 * 4
    rows = design.rows(0, design.n_rows).reshape(8, 4, 3)
    a, ab_g, ab_h, b = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    np.testing.assert_array_equal(ab_g[:, :2], b[:, :2])
    np.testing.assert_array_equal(ab_g[:, 2], a[:, 2])
    np.testing.assert_array_equal(ab_h[:, :2], a[:, :2])
    np.testing.assert_array_equal(ab_h[:, 2], b[:, 2])


@pytest.mark.parametrize("step", [1, 5, 7, 64])
def test_saltelli_rows_computed_chunk_by_chunk_are_the_whole_designs(step):
    """Each chunk's rows come from the base points it needs (the design is never held whole), so
    a chunk may start or stop inside a base sample's rows."""
    design = Design("saltelli", 32, ["g", "g", "h", "k"], seed=3)
    n = design.n_rows
    pieces = [design.rows(a, min(a + step, n)) for a in range(0, n, step)]
    np.testing.assert_array_equal(np.concatenate(pieces), design.rows(0, n))


def test_the_uncertainty_statistics_take_rows_a_and_b():
    """Of each base sample's rows A, AB_zeta, AB_alpha, B the statistics take A and B, 2 N rows
    in all (in any chunking): two independent draws, which differ in every column, whereas A and
    AB_zeta share alpha's columns."""
    design = Design("saltelli", 16, ["zeta", "alpha", "alpha"], seed=2)
    n = design.n_rows
    chosen = design.uncertainty_rows(0, n)
    pieces = [design.uncertainty_rows(a, min(a + 7, n)) for a in range(0, n, 7)]
    np.testing.assert_array_equal(np.concatenate(pieces), chosen)
    pairs = design.rows(0, n)[chosen].reshape(16, 2, 3)
    assert np.all(pairs[:, 0] != pairs[:, 1])


def test_indices_are_labelled_by_groups_in_order_of_first_appearance():
    """Groups named ["zeta", "alpha"], not in alphabetical order: the output is zeta's column, so
    zeta's ST is 1 and alpha's 0, and the table lists zeta first, as the design and SALib do."""
    design = Design("saltelli", 256, ["zeta", "alpha"], seed=4)
    y = design.rows(0, design.n_rows)[:, :1]
    table = sobol_indices(y, ["y"], design.problem(), 20, 0.95, 1).set_index("factor")
    assert list(table.index) == ["zeta", "alpha"]
    np.testing.assert_allclose(table.ST, [1, 0], atol=0.05)


@pytest.mark.parametrize(
    "groups, n, seed",
    [
        (["b", "a", "b", "c"], 64, 1),  # groups in an order that does not sort
        (["x0", "x1", "x2"], 100, 7),  # every column its own group; N not a power of two
        (["w"] * 5 + ["n", "m"], 8, 0),
    ],
)
def test_the_saltelli_design_is_salibs_bit_for_bit(groups, n, seed):
    """SALib stays the reference: its sampler, without second-order rows, gives the same bytes."""
    from SALib.sample import sobol

    design = Design("saltelli", n, groups, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = sobol.sample(
            design.problem(), n, calc_second_order=False, scramble=True, seed=seed
        )
    assert np.array_equal(design.rows(0, design.n_rows), expected)


@settings(max_examples=25, deadline=None)
@given(
    pieces=st.lists(st.integers(1, 60), min_size=1, max_size=40),
    n=st.integers(1, 40),
    offset=st.floats(-50, 50),
)
def test_sums_are_the_same_bytes_however_the_rows_arrive(pieces, n, offset):
    """A study adds each chunk's rows as it is merged: blocks of base samples at fixed places make
    the sums independent of the chunking, and any centre gives the mean-centred estimates."""
    design = Design("saltelli", n, GROUPS, 5)
    y = outputs_of(design.rows(0, design.n_rows))[:, :3]
    counts = sobol.resample_counts(n, 30, 9)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sobol, "SAMPLES_BLOCK", 3)  # many blocks, the last one partial
        whole = sobol.SobolSums(3, y[0] + offset, counts, keep=(2,))
        whole.add(y, 0)
        split = sobol.SobolSums(3, y[0] + offset, counts, keep=(2,))
        edges = np.minimum(np.cumsum([0, *pieces]), len(y))
        for start, stop in zip(edges[:-1], edges[1:], strict=True):
            split.add(y[start:stop], start)
        split.add(y[edges[-1] :], edges[-1])
    for name in ("sums", "row_sums", "kept"):
        np.testing.assert_array_equal(getattr(split, name), getattr(whole, name))
    np.testing.assert_array_equal(whole.kept[:, 0], y[:, 2])
    mean_centred = sobol.estimate(y, 3, counts)
    found = whole.estimates()
    for name in ("variance", "first", "total", "first_replicates", "total_replicates"):
        scale = np.abs(getattr(mean_centred, name)).max() + 1.0
        np.testing.assert_allclose(
            getattr(found, name), getattr(mean_centred, name), atol=1e-12 * scale
        )
    np.testing.assert_allclose(found.level, mean_centred.level, rtol=1e-12)


def test_sums_refuse_rows_out_of_order_or_too_many_and_estimates_before_the_last():
    design = Design("saltelli", 4, GROUPS, 5)
    y = outputs_of(design.rows(0, design.n_rows))
    sums = sobol.SobolSums(3, y.mean(axis=0), sobol.resample_counts(4, 5, 1))
    sums.add(y[:-1], 0)
    with pytest.raises(ValueError, match="3 of 4 base samples"):
        sums.estimates()
    with pytest.raises(ValueError, match="rows from 3 given after 19: not in order"):
        sums.add(y[3:], 3)
    with pytest.raises(ValueError, match="more rows than the design has"):
        sums.add(y[-1:].repeat(2, axis=0), len(y) - 1)


@pytest.mark.parametrize("concentration", [0.001, 0.05, 5.0])
def test_dirichlet_weights_of_any_concentration_are_weights_with_the_nominal_mean(
    spec, table, concentration
):
    """Drawn Dirichlet weights are finite, sum to 1 and average the nominal shares, however small
    the concentration (below about 0.05 a whole row of gamma draws underflowed to 0: 0 / 0)."""
    from nqpf_sens import Pipeline
    from nqpf_sens.uncertainty.factors import FactorSet, build_factor

    entry = {"name": "w", "kind": "weights", "level": 1, "distribution": "dirichlet"}
    factor = build_factor(
        {**entry, "concentration": concentration}, 1, spec, Pipeline(), 1, "r.toml", None
    )
    sizes = [len(level) for level in spec.levels[:-1]]
    observed = ~np.isnan(table.values)
    factors = FactorSet([factor], Pipeline(), sizes, list(spec.weights), observed.shape, observed)
    u = np.random.default_rng(1).random((20_000, factors.n_columns))
    multipliers = factors.decode(u).weight_factors[1]
    shares = spec.weights[1] / spec.weights[1].sum()
    weights = multipliers * shares
    assert np.isfinite(weights).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights.mean(axis=0), shares, atol=0.01)
