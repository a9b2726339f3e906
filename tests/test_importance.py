"""Importance against weights: the correlation ratio on known curves, shares, the NQPF tables."""

import numpy as np
import pandas as pd

import nqpf_sens as ns
from nqpf_sens import Pipeline
from nqpf_sens.audit.coherence import nominal_levels
from nqpf_sens.audit.importance import (
    BANDWIDTHS,
    bootstrap_correlation_ratios,
    correlation_ratio,
    divergence_by_level,
    importance_tables,
    local_linear,
    resampled_correlation_ratios,
)


def test_local_linear_reproduces_a_straight_line_exactly():
    """A local-linear fit is exact on a line whatever the bandwidth (its bias is second order)."""
    x = np.linspace(0, 1, 21)
    y = 3 * x - 1
    for bandwidth in (0.01, 0.2, 5.0):
        np.testing.assert_allclose(local_linear(x, y, bandwidth, x), y, atol=1e-9)


def test_correlation_ratio_sees_a_curve_that_correlation_misses():
    """y = (x - 0.5)^2 on a symmetric grid: Pearson's r is 0, yet y is a function of x, so the
    correlation ratio is close to 1; pure noise gives a small one; a line gives 1."""
    x = np.linspace(0, 1, 31)
    curve = (x - 0.5) ** 2
    assert abs(np.corrcoef(x, curve)[0, 1]) < 1e-12
    assert correlation_ratio(x, curve) > 0.95
    noise = np.random.default_rng(0).permutation(curve)
    assert correlation_ratio(x, noise) < 0.35
    assert correlation_ratio(x, 2 * x + 1) > 1 - 1e-9
    assert correlation_ratio(np.ones(5), np.arange(5.0)) == 0.0


def test_nqpf_importance_shares_sum_to_one_within_each_parent(spec, table):
    levels, weights = nominal_levels(spec, table, Pipeline())
    found = importance_tables(levels, spec, weights)["importance"]
    assert len(found) == len(spec.indicators) + len(spec.dimensions)
    for column in ("importance_share", "nominal_share", "effective_share"):
        sums = found.groupby(["level", "parent"])[column].sum()
        np.testing.assert_allclose(sums, 1.0)
    assert ((found.eta2_low <= found.eta2) & (found.eta2 <= found.eta2_high)).all()
    assert (found.importance_share_low <= found.importance_share_high).all()
    assert found[["importance_share_low", "importance_share_high"]].stack().between(0, 1).all()
    assert found.eta2.between(0, 1).all()
    np.testing.assert_allclose(
        found.importance_minus_nominal, found.importance_share - found.nominal_share
    )


def test_the_bootstrap_from_counts_equals_one_resample_at_a_time():
    """Every resample's ratio from the units' kernel weighted by its counts is the ratio of a fit
    on the resampled units themselves; a resample of one repeated unit (no spread) gives 0."""
    rng = np.random.default_rng(4)
    x, y = rng.random(12), rng.random(12)
    resamples = np.vstack([rng.integers(0, 12, size=(30, 12)), np.full((1, 12), 5)])
    counts = np.stack([np.bincount(r, minlength=12) for r in resamples]).astype(float)
    for bandwidth in (0.02, 0.2, 3.0):
        found = resampled_correlation_ratios(x, y, bandwidth, counts)
        single = [correlation_ratio(x[r], y[r], bandwidth) for r in resamples]
        np.testing.assert_allclose(found, single, rtol=1e-9, atol=1e-12)
    assert found[-1] == 0.0


def test_each_resample_chooses_its_bandwidth_leaving_out_every_copy_of_a_unit():
    """A resample's bandwidth is the one of the grid (sd of all units) whose leave-one-out error
    on the resample, each unit left out with all its copies, is smallest; its ratio is the fit's
    at that bandwidth (a loop over resamples, each unit predicted from the units left, by their
    mean where none weighs: a far unit). On all units once each, the choice is the point
    estimate's."""
    rng = np.random.default_rng(6)
    x, y = np.append(rng.random(14), 50.0), rng.random(15)
    y[-1] += 3  # a unit far from the rest, and unlike them
    resamples = rng.integers(0, 15, size=(25, 15))
    counts = np.stack([np.bincount(r, minlength=15) for r in resamples]).astype(float)
    grid = BANDWIDTHS * np.std(x)
    expected = []
    for r in resamples:
        errors = []
        for h in grid:
            left = [r[r != unit] for unit in r]
            predicted = [
                local_linear(x[k], y[k], h, x[[u]])[0] for k, u in zip(left, r, strict=True)
            ]
            errors.append(np.mean((y[r] - predicted) ** 2))
        expected.append(correlation_ratio(x[r], y[r], grid[int(np.argmin(errors))]))
    np.testing.assert_allclose(bootstrap_correlation_ratios(x, y, counts), expected, atol=1e-9)
    once = bootstrap_correlation_ratios(x, y, np.ones((1, 15)))
    np.testing.assert_allclose(once, correlation_ratio(x, y), atol=1e-12)


def test_an_index_equal_for_every_unit_skips_importance_and_says_why(tmp_path):
    """Three units each first on one of three equally weighted indicators tie on the index: there
    is no variance across units for a part to explain, so importance (and the optimised weights,
    which share its measure) are left out with a note instead of a table of undefined ratios."""
    (tmp_path / "values.csv").write_text("unit,a,b,c\nu0,0,1,0\nu1,0,0,1\nu2,1,0,0\n")
    (tmp_path / "meta.csv").write_text(
        "code,dimension,weight,direction\na,P,1,1\nb,P,1,1\nc,P,1,1\n"
    )
    config = ns.config_from_dict(
        {
            "data": {"metadata": "meta.csv", "values": "values.csv"},
            "audit": {"optimal_weights": "equal"},
        },
        tmp_path,
    )
    results = ns.run(config)
    assert "importance" not in results.tables and "optimal_weights" not in results.tables
    assert [n.split(":")[0] for n in results.notes] == [
        "importance skipped",
        "optimal weights skipped",
    ]


def test_parts_whose_covariances_with_the_index_cancel_have_no_effective_share():
    """Parts (0, 0, 1) and (1, 0, 1) average to (0.5, 0, 1), uncorrelated with the index (0.25,
    0.5, 0.5): their weighted covariances with it sum to 0, and each one's share of that sum was
    infinite. They have none; the other dimension's part keeps its whole share."""
    from nqpf_sens.engine.spec import IndexSpec

    spec = IndexSpec(
        levels=(("i0", "i1", "i2"), ("x", "y"), ("index",)),
        parents=(np.array([0, 0, 1]), np.array([0, 0])),
        weights=(np.ones(3), np.ones(2)),
        direction=np.ones(3),
        transform_flag=np.zeros(3, dtype=bool),
    )
    leaves = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    dimensions = np.c_[leaves[:, :2].mean(axis=1), leaves[:, 2]]
    levels = [leaves, dimensions, dimensions.mean(axis=1, keepdims=True)]
    found = importance_tables(levels, spec, spec.weights, bootstrap=20)["importance"]
    shares = found.set_index("node").effective_share
    assert np.isnan(shares[["i0", "i1"]]).all() and shares["i2"] == 1.0
    assert np.isfinite(found.select_dtypes("number").fillna(0)).all().all()


def test_a_level_without_any_defined_share_has_no_node_furthest_off():
    """Scores so small that their variance underflows (a minmax_range of [0, 1e-300]) leave every
    share of a level undefined: no node is named, where pandas' idxmax raised."""
    importance = pd.DataFrame(
        {
            "level": [0, 0, 1],
            "node": ["a", "b", "d"],
            "importance_minus_nominal": [np.nan, np.nan, 0.1],
            "importance_share": [np.nan, np.nan, 0.6],
            "nominal_share": [0.5, 0.5, 0.5],
        }
    )
    divergence = divergence_by_level(importance).set_index("level")
    assert pd.isna(divergence.furthest[0]) and np.isnan(divergence.max_abs_difference[0])
    assert divergence.furthest[1] == "d"
