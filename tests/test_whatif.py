"""What-ifs, one change at a time, everything else nominal: a part left out, or an alternative
pipeline."""

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_frame
from scipy import stats

from nqpf_sens import IndicatorTable, Pipeline, evaluate
from nqpf_sens.audit.whatif import leave_one_out, one_at_a_time
from nqpf_sens.engine.batch import Engine, ScenarioBatch
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import table_from_frame
from nqpf_sens.errors import UserError
from nqpf_sens.indices.nqpf.data import province_table
from nqpf_sens.uncertainty.factors import FactorSet, build_factor


@pytest.mark.parametrize("code", ["ns_papers", "green_factories_parks"])
def test_leaving_an_indicator_out_equals_the_index_built_without_it(spec, table, code):
    found = leave_one_out(spec, table, Pipeline())
    mine = found[found.change == f"without {code}"].set_index("unit")
    keep = [c != code for c in spec.indicators]
    smaller = IndicatorTable(
        table.values[..., keep], table.years, table.units, tuple(np.array(spec.indicators)[keep])
    )
    expected = evaluate(spec.drop([code]), smaller).ranks[0, 0]
    np.testing.assert_array_equal(mine.loc[list(table.units), "rank"].to_numpy(), expected)
    nominal = evaluate(spec, table).ranks[0, 0]
    np.testing.assert_array_equal(mine.loc[list(table.units), "nominal_rank"], nominal)
    assert (mine["shift"] == mine["rank"] - mine.nominal_rank).all()


def test_every_part_that_has_siblings_is_left_out_once(spec, table):
    found = leave_one_out(spec, table, Pipeline())
    expected = {f"without {c}" for c in (*spec.indicators, *spec.dimensions)}
    assert set(found.change) == expected
    assert (found.groupby("change").size() == len(table.units)).all()


def test_a_change_identical_to_the_nominal_moves_nothing(spec, table):
    units, summary = one_at_a_time(spec, table, Pipeline(), [("same", Pipeline())])
    assert len(units) == len(table.units)
    assert (units["shift"] == 0).all()
    row = summary.iloc[0]
    assert (row.mean_abs_shift, row.max_abs_shift, row.spearman) == (0, 0, 1)
    assert row[["share_moved_over_1", "share_moved_over_3", "share_moved_over_5"]].eq(0).all()
    assert row.units == len(table.units)
    assert pd.isna(row.problem)


@pytest.mark.parametrize("shipped", [False, True], ids=["synthetic", "provinces_2022"])
def test_a_change_equals_the_index_built_with_that_pipeline(spec, table, shipped):
    table = province_table(spec) if shipped else table
    zscore = Pipeline(normalisation="zscore")
    units, summary = one_at_a_time(spec, table, Pipeline(), [("z-score", zscore)])
    mine = units.set_index("unit").loc[list(table.units)]
    np.testing.assert_array_equal(mine["rank"], evaluate(spec, table, zscore).ranks[0, 0])
    np.testing.assert_array_equal(mine.nominal_rank, evaluate(spec, table).ranks[0, 0])
    assert (mine["shift"] == mine["rank"] - mine.nominal_rank).all()
    rho = stats.spearmanr(mine["rank"], mine.nominal_rank).statistic
    assert summary.spearman.iloc[0] == pytest.approx(rho)
    assert summary.mean_abs_shift.iloc[0] == pytest.approx(mine["shift"].abs().mean())
    assert summary.mean_abs_shift.iloc[0] > 0  # z-scores reorder some units


def test_the_summary_restates_the_unit_shifts(spec, table):
    changes = [
        ("rank", Pipeline(normalisation="rank")),
        ("geometric", Pipeline(aggregation="geometric")),
        ("geometric index only", Pipeline(aggregation=("arithmetic", "geometric"))),
        ("equal weights", Pipeline(weighting="equal")),
    ]
    units, summary = one_at_a_time(spec, table, Pipeline(), changes, within=(0, 2))
    moved = units.assign(moved=units["shift"].abs()).groupby("change", sort=False).moved
    summary = summary.set_index("change")
    assert list(summary.index) == [label for label, _ in changes]
    assert summary.mean_abs_shift.gt(0).all()  # every change moves some unit
    pd.testing.assert_series_equal(summary.mean_abs_shift, moved.mean(), check_names=False)
    np.testing.assert_array_equal(summary.max_abs_shift, moved.max())
    np.testing.assert_allclose(summary.share_moved_over_0, moved.apply(lambda m: (m > 0).mean()))
    np.testing.assert_allclose(summary.share_moved_over_2, moved.apply(lambda m: (m > 2).mean()))


def test_a_change_that_cannot_run_is_reported_not_raised(spec, table):
    values = table.values.copy()
    values[0, 0, 0] = -1.0  # the square root of every indicator is then undefined
    negative = IndicatorTable(values, table.years, table.units, table.indicators)
    changes = [
        ("z-score", Pipeline(normalisation="zscore")),
        ("square root of all", Pipeline(transformation="sqrt", transform_target="all")),
        ("equal weights", Pipeline(weighting="equal")),
    ]
    units, summary = one_at_a_time(spec, negative, Pipeline(), changes)
    assert set(units.change) == {"z-score", "equal weights"}
    failed = summary.set_index("change").loc["square root of all"]
    assert "square root" in failed.problem
    assert failed.drop(["problem", "units"]).isna().all()
    assert failed.units == 0
    assert summary.problem.isna().sum() == 2


def test_several_years_are_compared_year_by_year(spec):
    frame = pd.concat(
        [
            synthetic_frame(spec, seed=seed).assign(year=year)
            for seed, year in ((1, 2021), (2, 2022))
        ]
    )
    two_years = table_from_frame(frame, spec)
    zscore = Pipeline(normalisation="zscore")
    units, summary = one_at_a_time(spec, two_years, Pipeline(), [("z-score", zscore)])
    assert list(units.columns) == ["change", "year", "unit", "nominal_rank", "rank", "shift"]
    expected = evaluate(spec, two_years, zscore).ranks[0]
    for y, year in enumerate((2021, 2022)):
        mine = units[units.year == year].set_index("unit").loc[list(two_years.units), "rank"]
        np.testing.assert_array_equal(mine, expected[y])
    assert list(summary.year) == [2021, 2022]
    by_year = units.assign(moved=units["shift"].abs()).groupby("year").moved.mean()
    np.testing.assert_allclose(summary.mean_abs_shift, by_year)


@pytest.mark.parametrize("element", ["ns_papers", "industry"])
def test_an_exclude_factor_drops_any_element_as_the_what_if_does(spec, table, element):
    """Choosing an element of an ``exclude`` factor (an indicator or a dimension) zeroes that
    element's weight only, and the ranks equal the leave-one-out what-if without it."""
    entry = {"name": "drop", "kind": "exclude", "options": ["none", element]}
    factor = build_factor(entry, 1, spec, Pipeline(), 1, "run.toml")
    sizes = [len(level) for level in spec.levels[:-1]]
    factors = FactorSet(
        [factor], Pipeline(), sizes, [], table.values.shape, ~np.isnan(table.values)
    )
    decoded = factors.decode(np.array([[0.25], [0.75]]))  # option 0 ('none'), then the element
    dropped = [
        (k, j) for k, f in enumerate(decoded.weight_factors) for j in np.flatnonzero(f[1] == 0)
    ]
    level = next(k for k, nodes in enumerate(spec.levels) if element in nodes)
    assert dropped == [(level, spec.levels[level].index(element))]
    assert all((f[0] == 1).all() for f in decoded.weight_factors)
    engine = Engine(spec, table)
    batch = ScenarioBatch((Pipeline(),), np.zeros(2, dtype=np.int64), tuple(decoded.weight_factors))
    ranks = engine.evaluate(batch).ranks[1, 0]
    expected = leave_one_out(spec, table, Pipeline())
    expected = expected[expected.change == f"without {element}"]
    np.testing.assert_array_equal(ranks, expected.set_index("unit").loc[list(table.units), "rank"])


def test_an_only_child_cannot_be_excluded():
    """A parent with one child would be emptied: the factor is refused when it is built."""
    spec = IndexSpec(
        levels=(("a", "b", "c"), ("x", "y"), ("index",)),
        parents=(np.array([0, 0, 1]), np.array([0, 0])),
        weights=(np.ones(3), np.ones(2)),
        direction=np.ones(3),
        transform_flag=np.zeros(3, dtype=bool),
    )
    entry = {"name": "drop", "kind": "exclude", "options": ["none", "c"]}
    with pytest.raises(UserError, match="no sibling of positive weight"):
        build_factor(entry, 1, spec, Pipeline(), 1, "run.toml")


def test_an_element_whose_siblings_weigh_nothing_cannot_be_excluded():
    spec = IndexSpec(
        levels=(("a", "b", "c", "d"), ("x", "y"), ("index",)),
        parents=(np.array([0, 0, 1, 1]), np.array([0, 0])),
        weights=(np.array([1.0, 0.0, 1.0, 1.0]), np.ones(2)),
        direction=np.ones(4),
        transform_flag=np.zeros(4, dtype=bool),
    )
    entry = {"name": "drop", "kind": "exclude", "options": ["none", "a"]}
    with pytest.raises(UserError, match="no sibling of positive weight"):
        build_factor(entry, 1, spec, Pipeline(), 1, "run.toml")


def test_leave_one_out_skips_a_part_whose_siblings_weigh_nothing(spec, table):
    """The what-if follows the exclude factor's rule: dropping a part whose siblings all weigh
    zero would empty its parent, so it is not a change the what-if reports."""
    weights = (spec.weights[0].copy(), spec.weights[1])
    first = np.flatnonzero(spec.parents[0] == 0)
    weights[0][first[1:]] = 0.0  # one weighted indicator left in the first dimension
    lopsided = IndexSpec(spec.levels, spec.parents, weights, spec.direction, spec.transform_flag)
    changes = set(leave_one_out(lopsided, table, Pipeline()).change)
    assert f"without {spec.indicators[first[0]]}" not in changes
    assert f"without {spec.indicators[first[1]]}" in changes  # its sibling still weighs
