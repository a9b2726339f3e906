"""Convergence from disjoint blocks of the design, and its figure drawn from its table."""

from types import SimpleNamespace

import matplotlib.axes
import matplotlib.pyplot as plt
import numpy as np
import pytest

from nqpf_sens.report import figures
from nqpf_sens.uncertainty.convergence import BLOCKS, RANK_ERROR, convergence, flip_error
from nqpf_sens.uncertainty.designs import Design

UNITS = ("a", "b", "c")


def saltelli_outputs(n: int, noise: float, seed: int = 0):
    """A Saltelli design of 2 factors and outputs shaped like a run's: ranks, scores, R_S; as a
    study keeps them: rows A and B, and every row's R_S."""
    design = Design("saltelli", n, ["f", "g"], seed)
    u = design.rows(0, design.n_rows)
    scores = u[:, :1] * np.array([3.0, 2.0, 1.0]) + noise * u[:, 1:2] * np.array([0, 1, 2])
    ranks = (-scores).argsort(axis=1).argsort(axis=1) + 1.0
    outputs = np.column_stack([ranks, scores, u[:, 0] + 0.1 * u[:, 1]])
    a_and_b = design.uncertainty_rows(0, design.n_rows)
    counts = np.stack([np.bincount(r.astype(int) - 1, minlength=3) for r in ranks[a_and_b].T])
    stats = SimpleNamespace(outputs=outputs[a_and_b], rank_counts=counts[None])
    return design, stats, outputs[:, -1].copy()


def test_blocks_are_independent_replicates_and_their_spread_is_the_error():
    design, stats, shift_rows = saltelli_outputs(256, noise=3.0)
    table, _, recommended = convergence(stats, design, UNITS, 0.1, shift_rows)
    blocks = [f"block_{b + 1}" for b in range(BLOCKS)]
    assert set(blocks) <= set(table.columns)
    expected = table[blocks].std(axis=1, ddof=1) / np.sqrt(BLOCKS)
    np.testing.assert_allclose(table.standard_error, expected)
    ranks = table.statistic.str.endswith("_rank")
    assert table.flip_error[ranks].notna().all() and table.flip_error[~ranks].isna().all()
    shift = table[table.statistic == "ST_rank_shift"].set_index("item")
    assert shift.loc["f", "value"] > shift.loc["g", "value"]  # R_S is mostly f
    assert recommended >= design.n and recommended & (recommended - 1) == 0
    # each block on its own: the first block's value is the statistic of its base samples only
    mean_shift = stats.outputs[: 2 * 256 // BLOCKS, -1].mean()  # rows A and B of its samples
    block = table[table.statistic == "rank_shift_mean"].block_1.iloc[0]
    assert block == pytest.approx(mean_shift)


@pytest.mark.parametrize(
    "ranks, probabilities, truth",
    [
        ((1, 2, 3), (0.5, 0.45, 0.05), 2),  # F(2) = 0.95: a step, off half the time
        ((1, 2, 3), (0.5, 0.451, 0.049), 2),
        ((1, 2, 3), (0.5, 0.455, 0.045), 2),
        ((1, 2, 3), (0.5, 0.46, 0.04), 2),
        ((1, 2, 3), (0.5, 0.49, 0.01), 2),
        ((1, 5, 10), (0.5, 0.45, 0.05), 5),  # a gap: off by 5 places, not 1
    ],
)
def test_the_flip_error_is_the_error_of_a_rank_quantile_and_errs_safe(ranks, probabilities, truth):
    """A rank whose share of scenarios at or above it is near the quantile's level: the 95th
    percentile is ``truth`` but samples put it at the next rank they hold as often as sampling
    error puts the share below 0.95; the blocks understated that by 2-3 times. Across 2,000
    samples of 2,048 scenarios, the flip error's square averages at least the true mean squared
    error (within simulation error), and for moves of one place at most 0.25 more. It counted one
    place where the next rank held was 5 away (0.72 against 3.48 places)."""
    rng = np.random.default_rng(4)
    samples = rng.choice(ranks, p=probabilities, size=(2000, 2048))
    estimates = np.quantile(samples, 0.95, axis=1, method="inverted_cdf")
    squared = np.mean((estimates - truth) ** 2)
    counts = np.stack([np.bincount(sample - 1, minlength=10) for sample in samples])
    errors = flip_error(counts, 0.95)
    spread = np.std((estimates - truth) ** 2) / np.sqrt(len(samples))
    assert np.mean(errors**2) >= squared - 3 * spread - 1e-3
    if ranks == (1, 2, 3):
        assert np.mean(errors**2) <= squared + 0.25


def test_a_noisy_small_sample_warns_and_recommends_more():
    design, stats, shift_rows = saltelli_outputs(32, noise=3.0, seed=1)
    table, warnings, recommended = convergence(stats, design, UNITS, 0.01, shift_rows)
    assert warnings and recommended > design.n
    design, stats, shift_rows = saltelli_outputs(1024, noise=0.0)
    settled, _, _ = convergence(stats, design, UNITS, 0.5, shift_rows)
    ranks = settled[settled.statistic.str.endswith("_rank")]
    assert (ranks.standard_error <= RANK_ERROR).all()


def test_the_figure_draws_the_numbers_of_the_table(monkeypatch):
    design, stats, shift_rows = saltelli_outputs(256, noise=3.0)
    table, _, _ = convergence(stats, design, UNITS, 0.1, shift_rows)
    drawn = {"scatter": [], "errorbar": []}
    real_scatter, real_errorbar = matplotlib.axes.Axes.scatter, matplotlib.axes.Axes.errorbar

    def scatter(self, x, y, *args, **kwargs):
        drawn["scatter"].append(np.asarray(y, dtype=float))
        return real_scatter(self, x, y, *args, **kwargs)

    def errorbar(self, x, y, *args, yerr=None, **kwargs):
        drawn["errorbar"].append((np.asarray(y, dtype=float), np.asarray(yerr, dtype=float)))
        return real_errorbar(self, x, y, *args, yerr=yerr, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", scatter)
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", errorbar)
    plt.close(figures.convergence(table, RANK_ERROR))
    for k, name in enumerate(("median_rank", "p05_rank", "p95_rank")):
        expected = table[table.statistic == name].standard_error.to_numpy()
        np.testing.assert_array_equal(drawn["scatter"][k], expected)
    shown = table[table.statistic == "ST_rank_shift"].sort_values("value", ascending=False)
    values, errors = drawn["errorbar"][0]
    np.testing.assert_array_equal(values, shown.value.to_numpy())
    np.testing.assert_allclose(errors, 1.96 * shown.standard_error.to_numpy())
    for b, column in enumerate(c for c in table.columns if c.startswith("block_")):
        np.testing.assert_array_equal(drawn["scatter"][3 + b], shown[column].to_numpy())


def test_too_small_a_sample_is_not_assessed_and_never_called_enough():
    from nqpf_sens.report.reading import reading

    design, stats, shift_rows = saltelli_outputs(4, noise=1.0)
    table, warnings, recommended = convergence(stats, design, UNITS, 0.1, shift_rows)
    assert warnings and warnings[0].startswith("not assessed") and recommended == 4
    verdict = {"warnings": warnings, "recommended_n": recommended, "n": 4}
    lines = [line for line, _ in reading({"convergence": verdict}, {})]
    assert not any("enough" in line for line in lines)
    assert any("not assessed" in line for line in lines)


def test_blocks_where_the_rank_shift_does_not_vary_are_left_out_and_counted():
    """R_S constant on rows A and B of the first half of the base samples (the mixed rows still
    vary): there its variance is 0 and its ST undefined, not infinite, so those blocks are empty,
    ``blocks`` counts the others and the standard error comes from them alone; with a single
    varying block no error can be assessed, and the verdict says so."""
    design, stats, shift_rows = saltelli_outputs(256, noise=3.0)
    rows = np.arange(len(shift_rows) // 2)
    shift_rows[rows[(rows % 4 == 0) | (rows % 4 == 3)]] = 1.0  # rows A and B
    stats.outputs[: len(stats.outputs) // 2, -1] = 1.0
    table, warnings, _ = convergence(stats, design, UNITS, 0.1, shift_rows)
    shift = table[table.statistic == "ST_rank_shift"]
    blocks = [f"block_{b + 1}" for b in range(BLOCKS)]
    assert shift[blocks[: BLOCKS // 2]].isna().all().all() and (shift.blocks == BLOCKS // 2).all()
    later = shift[blocks[BLOCKS // 2 :]]
    np.testing.assert_allclose(
        shift.standard_error, later.std(axis=1, ddof=1) / np.sqrt(BLOCKS // 2)
    )
    assert not any("cannot be assessed" in w for w in warnings)
    shift_rows[: len(shift_rows) * 7 // 8] = 1.0
    stats.outputs[: len(stats.outputs) * 7 // 8, -1] = 1.0
    _, warnings, _ = convergence(stats, design, UNITS, 0.1, shift_rows)
    assert any("cannot be assessed" in w for w in warnings)


def test_a_median_at_a_step_between_ranks_withholds_the_verdict_that_n_was_enough():
    """Two units that swap ranks 1 and 2 in half of the scenarios: the blocks agree closely
    (each flips alike), but the sample's median can be either rank, so the verdict is no longer
    that N was enough and a larger N is recommended."""
    from nqpf_sens.report.reading import reading

    design = Design("random", 40, ["f"], 0)
    first = np.random.default_rng(11).random(design.n) < 0.5
    ranks = np.column_stack([np.where(first, 1, 2), np.where(first, 2, 1), np.full(design.n, 3)])
    shift = np.abs(ranks - np.array([1, 2, 3])).mean(axis=1)
    outputs = np.column_stack([ranks, np.zeros_like(ranks), shift]).astype(float)
    counts = np.stack([np.bincount(r - 1, minlength=3) for r in ranks.T])
    stats = SimpleNamespace(outputs=outputs, rank_counts=counts[None])
    table, warnings, recommended = convergence(stats, design, UNITS, 0.1)
    ranks_only = table[table.statistic.str.endswith("_rank")]
    assert (ranks_only.standard_error <= RANK_ERROR).all()  # the blocks alone would call it enough
    assert warnings == [
        "2 of 9 rank percentiles sit within sampling error of a step between ranks (flip_error "
        "above 0.5 places, which the blocks understate), so N was not shown to be enough: read "
        "those units' percentile intervals in rank_stability.csv"
    ]
    assert recommended > design.n
    verdict = {"warnings": warnings, "recommended_n": recommended, "n": design.n}
    lines = [line for line, _ in reading({"convergence": verdict}, {})]
    assert not any("was enough" in line for line in lines)
    assert any(f"consider n = {recommended}" in line for line in lines)


def test_a_single_unit_is_not_assessed_and_never_called_enough():
    """One unit: its rank is 1 and R_S 0 in every scenario, so the blocks agree by construction
    and the check could not fail; the verdict says it was not assessed."""
    from nqpf_sens.report.reading import reading

    design = Design("random", 16, ["f"], 0)
    outputs = np.column_stack([np.ones(design.n), np.zeros(design.n), np.zeros(design.n)])
    stats = SimpleNamespace(outputs=outputs, rank_counts=np.array([[[design.n]]]))
    _, warnings, recommended = convergence(stats, design, ("only",), 0.1)
    assert len(warnings) == 1 and warnings[0].startswith("not assessed: a single unit")
    assert recommended == design.n
    verdict = {"warnings": warnings, "recommended_n": recommended, "n": design.n}
    lines = [line for line, _ in reading({"convergence": verdict}, {})]
    assert not any("enough" in line for line in lines)


def test_a_monte_carlo_subsample_of_kept_rows_is_scaled_to_every_scenario():
    """A Monte Carlo design keeps the rows of its first scenarios only (here 256 of 4,096): the
    values checked are those of rank_stability.csv, from every scenario, and so is their error
    (the subsample's, 4 times as large, called a rank settled by all 4,096 scenarios unsettled
    and recommended an N beyond what the run already had)."""
    design = Design("random", 4096, ["f"], 0)
    rng = np.random.default_rng(3)
    # 31 places, each held equally often: no quantile sits near a step between ranks
    ranks = np.stack([rng.permutation(np.arange(design.n) % 31 + 1) for _ in UNITS], axis=1)
    totals = np.abs(ranks - np.array([1, 2, 3])).sum(axis=1)
    kept = 256
    outputs = np.column_stack([ranks[:kept], totals[:kept] / 3]).astype(float)
    counts = np.stack([np.bincount(r - 1, minlength=31) for r in ranks.T])
    stats = SimpleNamespace(
        outputs=outputs, rank_counts=counts[None], shift_counts=np.bincount(totals)
    )
    table, warnings, recommended = convergence(stats, design, UNITS, 0.1)
    assert warnings == [] and recommended == design.n
    assert (table.scenarios == design.n).all()
    by = table.set_index(["statistic", "item"])
    for unit, column in zip(UNITS, ranks.T, strict=True):
        for name, q in (("median_rank", 0.5), ("p05_rank", 0.05), ("p95_rank", 0.95)):
            expected = np.quantile(column, q, method="inverted_cdf")
            assert by.loc[(name, unit), "value"] == expected
    assert by.loc[("rank_shift_mean", "all"), "value"] == pytest.approx(totals.mean() / 3)
    blocks = [f"block_{b + 1}" for b in range(BLOCKS)]
    spread = table[blocks].std(axis=1, ddof=1) / np.sqrt(BLOCKS)
    np.testing.assert_allclose(table.standard_error, spread * np.sqrt(kept / design.n))
