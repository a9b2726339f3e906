"""The batched engine: equal to the plain path, faithful to the paper's identities."""

import dataclasses
import tracemalloc
import warnings

import numpy as np
import pytest

from nqpf_sens import Pipeline, ScenarioBatch, evaluate, evaluate_batch
from nqpf_sens.engine import batch
from nqpf_sens.engine.aggregate import aggregate_tree
from nqpf_sens.engine.batch import Engine
from nqpf_sens.engine.kernels import PAIRWISE_LIMIT
from nqpf_sens.engine.pipeline import option_problem, pipeline_weights, prepare
from nqpf_sens.engine.rank import TierRule
from nqpf_sens.engine.reference import reference_scores
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable
from nqpf_sens.errors import UserError
from nqpf_sens.uncertainty.study import per_scenario_bytes


def test_paper_identity_total_is_40_40_20_of_the_sub_indices(spec, table):
    scores = evaluate(spec, table).scores[0, 0]
    tech, factor, industry, total = scores.T
    np.testing.assert_allclose(total, 0.4 * tech + 0.4 * factor + 0.2 * industry, rtol=1e-12)
    assert spec.aggregates == ("tech", "factor", "industry", "total")


def test_sub_indices_are_weighted_means_on_0_100(spec, table):
    frame = table.to_frame()
    normalised = (frame - frame.min()) / (frame.max() - frame.min()) * 100
    tech = normalised[["ns_papers", "sei_patents", "pct_apps", "sci_awards"]].mean(axis=1)
    np.testing.assert_allclose(evaluate(spec, table).scores[0, 0, :, 0], tech.to_numpy())


@pytest.mark.parametrize("bad", [np.nan, -np.nan, np.inf, -np.inf, -1e-300, -2.0])
def test_a_batch_refuses_weight_factors_not_finite_or_negative(bad):
    """Every weight factor must be a finite number at least 0, wherever it sits in its row."""
    factors = np.ones((3, 4))
    factors[2, 3] = bad
    with pytest.raises(ValueError, match="must be finite and not negative"):
        ScenarioBatch((Pipeline(),), np.zeros(3, dtype=int), weight_factors=(factors,))
    factors[2, 3] = 0.0  # what a factor that leaves its node out gives
    factors[0, 0] = np.finfo(float).max
    ScenarioBatch((Pipeline(),), np.zeros(3, dtype=int), weight_factors=(factors,))


@pytest.mark.parametrize("normalisation", ["minmax", "zscore"])
@pytest.mark.parametrize("aggregation", ["arithmetic", "geometric"])
def test_single_scenario_equals_plain_reference(spec, table, normalisation, aggregation):
    rng = np.random.default_rng(3)
    factors = (rng.uniform(0.5, 1.5, size=(5, 15)), rng.uniform(0.5, 1.5, size=(5, 3)))
    pipeline = Pipeline(normalisation=normalisation, aggregation=aggregation)
    batch = ScenarioBatch((pipeline,), np.zeros(5, dtype=int), weight_factors=factors)
    result = evaluate_batch(spec, table, batch)
    for s in range(5):
        weights = (spec.weights[0] * factors[0][s], spec.weights[1] * factors[1][s])
        expected = reference_scores(table.to_frame(), spec, weights, normalisation, aggregation)
        np.testing.assert_allclose(
            result.scores[s, 0], expected[list(spec.aggregates)].to_numpy(), rtol=1e-10
        )
        np.testing.assert_array_equal(result.ranks[s, 0], expected["rank"].to_numpy())


def test_mixed_batch_equals_each_scenario_alone(spec, table):
    pipelines = (
        Pipeline(),
        Pipeline(normalisation="rank", aggregation=("geometric", "arithmetic")),
        Pipeline(normalisation="zscore", aggregation="geometric", mean_shift=0.1),
        Pipeline(weighting="entropy", tiers=TierRule("natural_breaks", classes=4)),
        Pipeline(weighting="critic", normalisation="distance_to_leader", aggregation="harmonic"),
        Pipeline(weighting="equal", tiers=TierRule("score_thresholds", thresholds=(50.0, 30.0))),
    )
    rng = np.random.default_rng(5)
    n = 40
    index = rng.integers(0, len(pipelines), size=n)
    factors = (rng.uniform(0.7, 1.3, size=(n, 15)), rng.uniform(0.7, 1.3, size=(n, 3)))
    factors[0][rng.random((n, 15)) < 0.05] = 0.0  # some indicators left out
    result = evaluate_batch(spec, table, ScenarioBatch(pipelines, index, weight_factors=factors))
    engine = Engine(spec, table)
    for s in range(n):
        alone = engine.evaluate(
            ScenarioBatch(
                (pipelines[index[s]],),
                np.zeros(1, dtype=int),
                weight_factors=(factors[0][s : s + 1], factors[1][s : s + 1]),
            )
        )
        np.testing.assert_allclose(result.scores[s], alone.scores[0], rtol=1e-12)

        np.testing.assert_array_equal(result.ranks[s], alone.ranks[0])
        np.testing.assert_array_equal(result.tiers[s], alone.tiers[0])


def test_options_a_scenario_does_not_use_neither_split_its_work_nor_change_it(
    spec, table, monkeypatch
):
    """The outlier treatment's parameters matter only under it, the winsorisation's quantile only
    under winsorisation, the shift and power only under the means that use them: scenarios that
    differ only there are prepared and aggregated together, and each gets what it gets alone."""
    pipelines = tuple(
        Pipeline(
            imputation="median",
            transformation=transformation,
            winsor_max=winsor_max,
            winsor_limit=limit,
            treat_fallback=fallback,
            aggregation=aggregation,
            mean_shift=shift,
            power=power,
        )
        for transformation in ("sqrt", "winsorise", "treat")
        for winsor_max, fallback in ((3, "log_CT"), (5, "boxcox"))
        for limit in (0.05, 0.1)
        for aggregation in ("arithmetic", "geometric", "generalised")
        for shift, power in ((0.01, 0.5), (0.1, 2.0))
    )
    n = len(pipelines)
    rng = np.random.default_rng(3)
    noise = rng.uniform(0.95, 1.05, size=(n, *table.values.shape))
    batch_of_all = ScenarioBatch(pipelines, np.arange(n), value_factors=noise)
    prepared, aggregated = [], []
    monkeypatch.setattr(batch, "prepare", lambda *a: prepared.append(a) or prepare(*a))
    monkeypatch.setattr(
        batch, "aggregate_tree", lambda *a: aggregated.append(a) or aggregate_tree(*a)
    )
    result = Engine(spec, table).evaluate(batch_of_all)
    # sqrt: 1; winsorise: 2 quantiles; treat: 2 (points, fallback) pairs
    assert len(prepared) == 1 + 2 + 2
    # arithmetic: 1; geometric: 2 shifts; generalised: 2 (shift, power) pairs
    assert len(aggregated) == 1 + 2 + 2
    for s, pipeline in enumerate(pipelines):
        alone = Engine(spec, table).evaluate(
            ScenarioBatch((pipeline,), np.zeros(1, dtype=int), value_factors=noise[s : s + 1])
        )
        np.testing.assert_array_equal(result.scores[s], alone.scores[0])


def test_a_batch_with_its_own_data_prepares_no_clean_matrix(spec, table):
    """Noise gives every scenario its own data: the tables' clean normalised matrices would be
    computed only to be thrown away (they once took half the main job's evaluation), so none is;
    a pipeline whose options are wrong is still refused before anything runs."""
    engine = Engine(spec, table)
    noise = np.ones((2, *table.values.shape))
    batch = ScenarioBatch(
        (Pipeline(imputation="median"),), np.zeros(2, dtype=int), value_factors=noise
    )
    engine.evaluate(batch)
    assert engine._matrix_cache == {}
    wrong = ScenarioBatch(
        (Pipeline(normalisation="maxmin"),), np.zeros(2, dtype=int), value_factors=noise
    )
    with pytest.raises(UserError, match="normalisation: unknown option 'maxmin'"):
        engine.evaluate(wrong)


def test_per_scenario_noise_and_masks_equal_precomputed_data(spec, table):
    pipeline = Pipeline(imputation="median")
    rng = np.random.default_rng(11)
    noise = rng.uniform(0.9, 1.1, size=(3, *table.values.shape))
    masked = rng.random((3, *table.values.shape)) < 0.05
    result = evaluate_batch(
        spec,
        table,
        ScenarioBatch((pipeline,), np.zeros(3, dtype=int), value_factors=noise, masked=masked),
    )
    from nqpf_sens.engine.table import IndicatorTable

    for s in range(3):
        values = np.where(masked[s], np.nan, table.values * noise[s])
        alone = evaluate(
            spec, IndicatorTable(values, table.years, table.units, table.indicators), pipeline
        )
        np.testing.assert_allclose(result.scores[s], alone.scores[0], rtol=1e-12)


@pytest.mark.parametrize("weighting", ["entropy", "critic"])
def test_data_driven_weights_of_stacked_tables_are_each_tables_own(
    spec, table, weighting, monkeypatch
):
    """Alternative tables differing only in their values get the data-driven weights a batch
    needs in one stacked pass over their block of tables: the same weights as each table alone,
    and the same bits whichever tables a batch draws, in whatever order (a chunk's draw must not
    change another chunk's numbers)."""
    rng = np.random.default_rng(5)
    tables = [
        dataclasses.replace(table, values=table.values * rng.uniform(0.5, 2.0, table.values.shape))
        for _ in range(4)
    ]
    pipelines = [
        Pipeline(imputation="none", transformation="treat", weighting=weighting, dataset=dataset)
        for dataset in (3, 0, 2)
    ]
    alone = [pipeline_weights(p, tables[p.dataset], spec) for p in pipelines]
    passes = []
    monkeypatch.setattr(
        batch, "pipeline_weights", lambda *args: passes.append(args) or pipeline_weights(*args)
    )
    engine = Engine(spec, tables)
    engine.check(pipelines)
    assert len(passes) == 1 and passes[0][3].shape[0] == 4  # one pass over the block
    for pipeline, own in zip(pipelines, alone, strict=True):
        for stacked, expected in zip(engine.scheme_weights(pipeline), own, strict=True):
            np.testing.assert_allclose(stacked, expected, rtol=1e-12)
    for drawn in ([pipelines[1]], pipelines[::-1], pipelines[2:]):
        other = Engine(spec, tables)
        other.check(drawn)
        for pipeline in pipelines:
            for got, first in zip(
                other.scheme_weights(pipeline), engine.scheme_weights(pipeline), strict=True
            ):
                np.testing.assert_array_equal(got, first)


def test_a_table_the_weights_cannot_come_from_leaves_the_others_of_its_block_their_own(spec, table):
    """A table of the block that no scenario draws, missing a cell (entropy needs complete data),
    costs the others nothing: their weights are computed table by table."""
    broken = table.values.copy()
    broken[0, 0, 0] = np.nan
    tables = [table, dataclasses.replace(table, values=table.values * 1.5)]
    tables.append(dataclasses.replace(table, values=broken))
    pipeline = Pipeline(imputation="none", weighting="entropy", dataset=1)
    engine = Engine(spec, tables)
    engine.check([pipeline])
    for got, expected in zip(
        engine.scheme_weights(pipeline), pipeline_weights(pipeline, tables[1], spec), strict=True
    ):
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(UserError, match="missing value"):
        engine.check([pipeline.with_(dataset=2)])


@pytest.mark.parametrize("own_data", [False, True])
def test_each_scenario_s_own_table_equals_a_pipeline_per_table(spec, table, own_data, monkeypatch):
    """A batch may give each scenario its table (``datasets``) instead of a pipeline per table: the
    numbers are the same bits, the pipelines' work is shared by every table, and a table that does
    not exist is named."""
    rng = np.random.default_rng(8)
    tables = [table] + [
        dataclasses.replace(table, values=table.values * rng.uniform(0.7, 1.3, table.values.shape))
        for _ in range(5)
    ]
    pipelines = tuple(
        Pipeline(imputation="median", normalisation=normalisation, weighting=weighting)
        for normalisation in ("minmax", "rank")
        for weighting in ("expert", "critic")
    )
    n = 40
    index = rng.integers(0, len(pipelines), n)
    datasets = rng.integers(0, len(tables), n)
    noise = rng.uniform(0.95, 1.05, (n, *table.values.shape)) if own_data else None
    per_table = [p.with_(dataset=d) for p in pipelines for d in range(len(tables))]
    one_each = ScenarioBatch(tuple(per_table), index * len(tables) + datasets, value_factors=noise)
    expected = Engine(spec, tables).evaluate(one_each)
    prepared = []
    monkeypatch.setattr(batch, "prepare", lambda *a: prepared.append(a) or prepare(*a))
    shared = ScenarioBatch(pipelines, index, value_factors=noise, datasets=datasets)
    result = Engine(spec, tables).evaluate(shared)
    for name in ("scores", "ranks", "tiers"):
        np.testing.assert_array_equal(getattr(result, name), getattr(expected, name))
    drawn = len(set(zip(index // 2, datasets, strict=True)))  # (normalisation, table) drawn
    assert len(prepared) == (2 if own_data else drawn)
    with pytest.raises(UserError, match="dataset 6 does not exist"):
        Engine(spec, tables).evaluate(dataclasses.replace(shared, datasets=datasets + 1))


def test_each_table_is_denominated_by_its_own_denominators(spec, table):
    """Alternative tables whose denominators differ (each file has its own columns) are each
    divided by their own, also when every scenario brings its own data."""
    denominators = np.ones_like(table.values)
    tables = [
        dataclasses.replace(table, denominators=denominators),
        dataclasses.replace(table, denominators=denominators * rng_values(table.values.shape)),
    ]
    pipeline = Pipeline(imputation="median")
    ones = np.ones((4, *table.values.shape))
    datasets = np.array([0, 1, 1, 0])
    result = Engine(spec, tables).evaluate(
        ScenarioBatch(
            (pipeline,), np.zeros(4, dtype=np.int64), value_factors=ones, datasets=datasets
        )
    )
    for s, dataset in enumerate(datasets):
        alone = evaluate(spec, tables[dataset], pipeline)
        np.testing.assert_allclose(result.scores[s], alone.scores[0], rtol=1e-12)


def test_data_that_cannot_be_prepared_name_the_scenario_s_own_table(spec, table):
    """Scenarios of several tables are prepared together; a missing cell no rule fills names the
    table it is missing from, not the first table of the group."""
    broken = table.values.copy()
    broken[0, 3, 1] = np.nan
    tables = [dataclasses.replace(table, source=f"t{k}.csv") for k in range(2)]
    tables.append(dataclasses.replace(table, values=broken, source="t2.csv"))
    noise = np.ones((3, *table.values.shape))
    batch = ScenarioBatch(
        (Pipeline(imputation="none"),),
        np.zeros(3, dtype=np.int64),
        value_factors=noise,
        datasets=np.array([1, 2, 0]),
    )
    with pytest.raises(UserError, match="missing value") as error:
        Engine(spec, tables).evaluate(batch)
    assert error.value.one_line().startswith("t2.csv")


def rng_values(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(4).uniform(0.5, 2.0, shape)


def test_paper_tiers_from_the_baseline_setting(spec):
    """Bounds [2, 5] put the two best units in tier 1 and the next three in tier 2."""
    import pandas as pd

    from nqpf_sens.engine.table import table_from_frame

    totals = [69.8, 59.7, 54.5, 53.3, 43.9, 33.2, 31.0]
    frame = pd.DataFrame({code: totals for code in spec.indicators})
    frame.insert(
        0, "unit", ["Beijing", "Guangdong", "Shanghai", "Jiangsu", "Zhejiang", "Shandong", "Fujian"]
    )
    result = evaluate(spec, table_from_frame(frame, spec))
    np.testing.assert_array_equal(result.tiers[0, 0], [1, 1, 2, 2, 2, 3, 3])


def test_national_series_on_base_year_100(spec):
    import pandas as pd

    from nqpf_sens.engine.table import table_from_frame

    years = np.arange(2012, 2016)
    frame = pd.DataFrame({code: 2.0 ** (years - 2012) for code in spec.indicators})
    frame.insert(0, "year", years)
    frame.insert(0, "unit", "China")
    table = table_from_frame(frame, spec)
    result = evaluate(spec, table, Pipeline(normalisation="base_year"))
    np.testing.assert_allclose(result.index[0, :, 0], [100, 200, 400, 800])


def test_a_batch_that_does_not_fit_the_index_is_refused(spec, table):
    """A missing or extra level of weight factors, or data of the wrong shape, is an error, not a
    silently different index."""
    one_level = (np.ones((2, 15)),)
    three_levels = (np.ones((2, 15)), np.ones((2, 3)), np.ones((2, 1)))
    wrong_nodes = (np.ones((2, 15)), np.ones((2, 4)))
    for factors in (one_level, three_levels, wrong_nodes):
        batch = ScenarioBatch((Pipeline(),), np.zeros(2, dtype=np.int64), weight_factors=factors)
        with pytest.raises(ValueError, match="weight_factors"):
            evaluate_batch(spec, table, batch)
    noise = np.ones((2, *table.values.shape[:-1], 14))
    batch = ScenarioBatch((Pipeline(),), np.zeros(2, dtype=np.int64), value_factors=noise)
    with pytest.raises(ValueError, match="value_factors"):
        evaluate_batch(spec, table, batch)


@pytest.mark.parametrize("shift", [0.01, 0.1])
def test_geometric_mean_shift_follows_the_documented_rule(spec, table, shift):
    """A z-scored child is shifted by -min + shift x range before the geometric mean."""
    pipeline = Pipeline(normalisation="zscore", aggregation="geometric", mean_shift=shift)
    found = evaluate(spec, table, pipeline).scores[0, 0, :, 0]  # first dimension
    frame = table.to_frame()
    z = (frame - frame.mean()) / frame.std(ddof=0)
    first = spec.parents[0] == 0
    members = [code for code, inside in zip(spec.indicators, first, strict=True) if inside]
    block = z[members]
    block = block - block.min() + shift * (block.max() - block.min())
    weights = spec.weights[0][first]
    expected = np.exp((np.log(block) * weights).sum(axis=1) / weights.sum())
    np.testing.assert_allclose(found, expected.to_numpy(), rtol=1e-10)


def test_coinr_geometric_mean_on_a_positive_scale_needs_no_shift(spec, table):
    """min-max to [1, 100] and nonpositive = 'refuse': each dimension is the weighted geometric
    mean of the rescaled values themselves, as COINr's a_gmean computes it."""
    pipeline = Pipeline(minmax_range=(1.0, 100.0), aggregation="geometric", nonpositive="refuse")
    found = evaluate(spec, table, pipeline).scores[0, 0, :, 0]  # first dimension
    frame = table.to_frame()
    scaled = 1 + 99 * (frame - frame.min()) / (frame.max() - frame.min())
    first = spec.parents[0] == 0
    members = [code for code, inside in zip(spec.indicators, first, strict=True) if inside]
    weights = spec.weights[0][first]
    expected = np.exp((np.log(scaled[members]) * weights).sum(axis=1) / weights.sum())
    np.testing.assert_allclose(found, expected.to_numpy(), rtol=1e-10)


def test_refusing_the_shift_stops_on_a_zero_with_the_cause(spec, table):
    """On the paper's [0, 100] scale every indicator has a 0: refusing the shift must stop the
    run with a message naming the rule, not return a score."""
    with pytest.raises(UserError, match="nonpositive = 'refuse'"):
        evaluate(spec, table, Pipeline(aggregation="geometric", nonpositive="refuse"))


def test_a_non_finite_node_below_the_index_is_refused_even_if_the_index_is_finite(spec, table):
    """Copeland above a refused geometric mean would rank NaN dimensions in data order: every
    node must be finite, not only the index."""
    pipeline = Pipeline(aggregation=("geometric", "copeland"), nonpositive="refuse")
    with pytest.raises(UserError, match="nonpositive = 'refuse'"):
        evaluate(spec, table, pipeline)
    with pytest.raises(UserError, match="non-finite score"):
        evaluate(spec, table, Pipeline(aggregation=("generalised", "copeland"), power=400.0))


def test_lists_given_in_code_are_accepted_like_tuples(spec, table):
    listed = evaluate(spec, table, Pipeline(minmax_range=[1, 100], aggregation=["arithmetic"] * 2))
    tupled = evaluate(spec, table, Pipeline(minmax_range=(1, 100)))
    np.testing.assert_array_equal(listed.scores, tupled.scores)


def test_a_changed_pipeline_equals_one_built_with_the_same_options():
    nominal = Pipeline(normalisation="zscore")
    changed = nominal.with_(minmax_range=[1, 100], aggregation=["geometric", "arithmetic"])
    built = Pipeline(
        normalisation="zscore", minmax_range=(1, 100), aggregation=("geometric", "arithmetic")
    )
    assert changed == built and hash(changed) == hash(built)
    assert nominal == Pipeline(normalisation="zscore")  # left as it was
    with pytest.raises(TypeError, match="no option 'normalization'"):
        nominal.with_(normalization="rank")


def test_options_that_are_not_numbers_get_a_message_not_a_crash(spec):
    problem = option_problem(Pipeline(minmax_range=("low", 100)), spec)
    assert problem == "minmax_range: must be two finite numbers, not ['low', 100]"


@pytest.mark.parametrize("key", ["skew_threshold", "kurtosis_threshold"])
def test_an_outlier_threshold_that_is_no_number_is_refused_not_never_met(spec, key):
    """NaN would fail every comparison: no indicator would ever be treated, silently."""
    problem = option_problem(Pipeline(transformation="treat", **{key: float("nan")}), spec)
    assert problem == f"{key}: must be a finite number, not nan"


def test_tables_and_batches_built_in_code_are_checked():
    """Built directly, a table with a unit twice or values of another shape, or a batch whose
    index points past its pipelines (-1 picked the last) or whose weights are negative, raises a
    ValueError instead of computing."""
    from nqpf_sens import IndicatorTable

    values = np.ones((1, 2, 3))
    IndicatorTable(values, (None,), ("a", "b"), ("x", "y", "z"))
    for units, array in ((("a", "a"), values), (("a", "b"), values[:, :, :2])):
        with pytest.raises(ValueError):
            IndicatorTable(array, (None,), units, ("x", "y", "z"))
    with pytest.raises(ValueError):
        IndicatorTable([[[1.0]]], (None,), ("a",), ("x",))  # type: ignore[arg-type]
    pipelines = (Pipeline(),)
    ScenarioBatch(pipelines, np.zeros(2, dtype=np.int64), (np.ones((2, 3)),))
    for index in (np.array([0, -1]), np.array([0, 1]), np.array([], dtype=np.int64)):
        with pytest.raises(ValueError):
            ScenarioBatch(pipelines, index)
    for factors in (-np.ones((2, 3)), np.full((2, 3), np.nan), np.ones((3, 3))):
        with pytest.raises(ValueError):
            ScenarioBatch(pipelines, np.zeros(2, dtype=np.int64), (factors,))
    for datasets in (np.zeros(3, dtype=np.int64), np.zeros(2), np.zeros((2, 1), dtype=np.int64)):
        with pytest.raises(ValueError, match="datasets"):
            ScenarioBatch(pipelines, np.zeros(2, dtype=np.int64), datasets=datasets)


#: the pipelines of each kind of batch; of own data the costliest measured (growth imputation with
#: z-scores held the most arrays as large as the data)
BATCH_KINDS = {
    "weights": (Pipeline(),),
    "choices": (
        Pipeline(),
        Pipeline(aggregation=("geometric", "arithmetic")),
        Pipeline(normalisation="zscore"),
    ),
    "tables": (Pipeline(), Pipeline(normalisation="rank")),
    "own data": (  # one pipeline: a batch of several holds one group's temporaries at a time
        Pipeline(
            imputation="growth",
            imputation_fallback="mean",
            normalisation="zscore",
            transformation="winsorise",
            transform_target="all",
        ),
    ),
    "threshold": (  # on a chain of single-child nodes: many nodes below the index missing
        Pipeline(imputation="none", data_threshold=0.5),
        Pipeline(imputation="none", data_threshold=0.4),
    ),
}
SIX_INDICATORS = IndexSpec(
    levels=(tuple("abcdef"), ("x", "y"), ("index",)),
    parents=(np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0])),
    weights=(np.ones(6), np.array([0.6, 0.4])),
    direction=np.ones(6),
    transform_flag=np.zeros(6, dtype=bool),
)
CHAIN = IndexSpec(  # a, b -> one parent each -> one node -> a chain of 20 -> the index
    levels=(("a", "b"), ("pa", "pb"), ("both",), *((f"c{k}",) for k in range(20)), ("index",)),
    parents=(np.array([0, 1]), np.array([0, 0]), *(np.array([0]),) * 21),
    weights=(np.ones(2), np.ones(2), *(np.ones(1),) * 21),
    direction=np.ones(2),
    transform_flag=np.zeros(2, dtype=bool),
)


@pytest.mark.parametrize("n_units", [1, 31, PAIRWISE_LIMIT + 1])
@pytest.mark.parametrize("n_years", [1, 3])
@pytest.mark.parametrize("kind", list(BATCH_KINDS))
def test_a_batch_stays_within_the_bytes_planned_per_scenario(n_units, n_years, kind):
    """What numpy allocates at the peak of a batch grows by at most ``per_scenario_bytes`` per
    scenario (the difference of two batch sizes, so that what every batch shares cancels out):
    the plan sizes batches and checks a run's memory by it. Kinds: weights alone; choices of
    method; 40 tables drawn (groups too small to share their leaves: each scenario a copy);
    noise and masks on data with missing cells, every scenario preparing its own; aggregation
    under a data threshold, nodes below the index missing."""
    rng = np.random.default_rng(0)
    spec = CHAIN if kind == "threshold" else SIX_INDICATORS
    shape = (n_years, n_units, len(spec.indicators))
    years = tuple(range(n_years)) if n_years > 1 else (None,)
    units = [f"u{i}" for i in range(n_units)]
    tables = []
    for _ in range(40 if kind == "tables" else 1):
        values = rng.uniform(1, 2, size=shape)
        if kind == "own data" and n_units > 1:  # a lone unit's cell has nothing to fill it
            values[rng.random(shape) < 0.05] = np.nan
        if kind == "threshold":
            values[..., 0][rng.random(shape[:2]) < 0.3] = np.nan
        tables.append(IndicatorTable(values, years, units, spec.indicators))
    engine = Engine(spec, tables)
    pipelines = BATCH_KINDS[kind]
    own_data = kind == "own data"

    def peak(size: int) -> int:
        factors = tuple(rng.uniform(0.8, 1.2, size=(size, len(k))) for k in spec.levels[:-1])
        noise = rng.uniform(0.9, 1.1, size=(size, *shape)) if own_data else None
        masked = rng.random((size, *shape)) < 0.05 if own_data and n_units > 1 else None
        chosen = np.arange(size) % len(pipelines)
        datasets = rng.integers(0, len(tables), size)
        scenarios = ScenarioBatch(pipelines, chosen, factors, noise, masked, datasets)
        engine.evaluate(scenarios)  # compiled, and every shared matrix cached
        tracemalloc.start()
        engine.evaluate(scenarios)
        found = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return found

    per_scenario = per_scenario_bytes(shape, len(spec.aggregates), own_data)
    assert peak(400) - peak(200) <= 200 * per_scenario


def test_shared_or_copied_leaves_give_the_same_bits(spec, table, monkeypatch):
    """Whether a group of scenarios shares its matrix (large groups) or each scenario gets a copy
    (many small groups: many tables drawn), every score, rank and tier is the same."""
    rng = np.random.default_rng(4)
    tables = [
        dataclasses.replace(table, values=table.values * rng.uniform(0.9, 1.1, table.values.shape))
        for _ in range(5)
    ]
    engine = Engine(spec, tables)
    pipelines = (
        Pipeline(),
        Pipeline(normalisation="rank", aggregation="geometric"),
        Pipeline(normalisation="zscore", aggregation=("harmonic", "copeland")),
    )
    size = 600
    factors = (rng.uniform(0.5, 1.5, size=(size, 15)), rng.uniform(0.5, 1.5, size=(size, 3)))
    chosen = rng.integers(0, len(pipelines), size)
    scenarios = ScenarioBatch(pipelines, chosen, factors, datasets=rng.integers(0, 5, size))
    results = []
    for smallest in (0, 10**9):  # always shared; never
        monkeypatch.setattr(batch, "SHARED_LEAVES_CELLS", smallest)
        results.append(engine.evaluate(scenarios))
    for name in ("scores", "ranks", "tiers"):
        first, second = (getattr(r, name) for r in results)
        assert first.tobytes() == second.tobytes(), name


@pytest.mark.parametrize(
    "codes", [[], [4], [7, 7, 7], [3, 1, 3, 2, 1], list(range(5, -1, -1)), [2**40, 0, 2**40]]
)
def test_distinct_codes_are_numpys_unique(codes):
    """The shortcut for a batch of one code gives what ``np.unique`` gives, as every batch does."""
    codes = np.asarray(codes, dtype=np.int64)
    expected = np.unique(codes, return_inverse=True, return_counts=True)
    for got, want in zip(batch._distinct(codes), expected, strict=True):
        np.testing.assert_array_equal(got, np.ravel(want))


def test_a_winsor_max_beyond_int64_treats_as_many_points_as_there_are_units(spec, table):
    """A count of points past what an int64 holds is as good as unlimited, not wrapped to none."""
    scores = {}
    for points in (0, len(table.units), 2**63 - 1):
        pipeline = Pipeline(
            transformation="treat",
            transform_target="all",
            treat_fallback="none",
            winsor_max=points,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            scores[points] = evaluate(spec, table, pipeline).scores
    assert not np.allclose(scores[0], scores[len(table.units)])
    np.testing.assert_array_equal(scores[2**63 - 1], scores[len(table.units)])
