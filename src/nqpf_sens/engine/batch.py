"""Batched evaluation: many scenarios of discrete choices and weights in a few array operations.

Scenarios are grouped by pipeline (their discrete choices); each distinct pipeline's normalised
matrix and scheme weights are computed once and cached on the :class:`Engine`. Within a group the
weights of all scenarios go up the tree in one compiled pass that ranks the index on the way
(``aggregate.aggregate_tree``); tiers follow for the whole group at once. Per-scenario raw-data
changes (multiplicative noise, cells masked for an imputation stress test) are supported as arrays
with a leading scenario axis; they are processed vectorised, group by group.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nqpf_sens.engine.aggregate import aggregate_tree
from nqpf_sens.engine.pipeline import Pipeline, option_problem, pipeline_weights, prepare
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable
from nqpf_sens.errors import UserError

INDEX_COLUMN = "total"  # the index's column in tables, whatever its code in the metadata
WEIGHT_BLOCK = 32  # alternative tables whose data-driven weights are computed in one pass
SHARED_LEAVES_CELLS = 16384  # a group shares its matrix from scenarios x leaf cells this many


@dataclass(frozen=True, eq=False)
class ScenarioBatch:
    """A batch of S scenarios.

    ``pipeline_index[s]`` picks scenario s's pipeline; ``weight_factors[k]`` (S, nodes at level k)
    multiply the scheme's weights (a zero drops a node: leave-one-out); ``value_factors`` (S, years,
    units, indicators) multiply the raw values; ``masked`` (same shape, bool) blanks raw cells
    before imputation; ``datasets`` (S,) picks each scenario's table in place of its pipeline's
    ``dataset``, so that scenarios differing in their table alone share a pipeline (a study draws
    one of hundreds of tables per scenario, and per-pipeline work is Python work).
    """

    pipelines: tuple[Pipeline, ...]
    pipeline_index: np.ndarray
    weight_factors: tuple[np.ndarray, ...] | None = None
    value_factors: np.ndarray | None = None
    masked: np.ndarray | None = None
    datasets: np.ndarray | None = None

    def __post_init__(self) -> None:
        """A batch built in code: every index names one of its pipelines (-1 no longer wraps to
        the last), and weight factors are finite and not negative, one row per scenario."""
        index = np.asarray(self.pipeline_index)
        if not self.pipelines or index.ndim != 1 or index.size == 0 or index.dtype.kind not in "iu":
            raise ValueError("a batch needs pipelines and a 1-D integer pipeline_index")
        if index.min() < 0 or index.max() >= len(self.pipelines):
            raise ValueError(f"pipeline_index must lie in 0..{len(self.pipelines) - 1}")
        if self.datasets is not None:
            datasets = np.asarray(self.datasets)
            if datasets.shape != index.shape or datasets.dtype.kind not in "iu":
                raise ValueError("datasets hold one integer per scenario")
        for factors in self.weight_factors or ():
            if np.ndim(factors) != 2 or len(factors) != index.size:
                raise ValueError("weight_factors hold one row per scenario")
            # NaN fails the first test, +inf the second: two reductions, no array of flags
            if not (np.min(factors, initial=0.0) >= 0 and np.max(factors, initial=0.0) < np.inf):
                raise ValueError("weight_factors must be finite and not negative")

    @property
    def size(self) -> int:
        return len(self.pipeline_index)


@dataclass(frozen=True, eq=False)
class BatchResult:
    """Scores of every aggregate node (dimensions ..., index last), ranks and tiers of the index.

    Shapes: ``scores`` (S, years, units, aggregates), a view of node-major memory so that each
    node's scores (the index's above all) are contiguous per scenario; ``ranks`` and ``tiers`` (S,
    years, units).
    """

    scores: np.ndarray
    ranks: np.ndarray
    tiers: np.ndarray
    aggregates: tuple[str, ...]
    units: tuple[str, ...]
    years: tuple[int | None, ...]

    @property
    def index(self) -> np.ndarray:
        """Index scores, (S, years, units)."""
        return self.scores[..., -1]

    def to_frame(self, scenario: int = 0) -> pd.DataFrame:
        """One scenario as a tidy table: ``unit``, ``total``, one column per aggregate, ``rank``,
        ``tier`` (with a leading ``year`` column when the data hold several years)."""
        scores = self.scores[scenario]
        n_years, n_units, _ = scores.shape
        columns = {"unit": np.tile(self.units, n_years), INDEX_COLUMN: scores[..., -1].ravel()}
        if len(self.years) > 1:
            columns = {"year": np.repeat(np.asarray(self.years), n_units), **columns}
        for k, code in enumerate(self.aggregates[:-1]):
            columns[code] = scores[..., k].ravel()
        columns["rank"] = self.ranks[scenario].ravel()
        columns["tier"] = self.tiers[scenario].ravel()
        return pd.DataFrame(columns)  # at once: a column at a time fragments a wide frame


class Engine:
    """Evaluates scenario batches for one index spec and one or more alternative data tables."""

    def __init__(
        self, spec: IndexSpec, tables: IndicatorTable | Sequence[IndicatorTable], ties: str = "min"
    ):
        self.spec = spec
        self.tables = (tables,) if isinstance(tables, IndicatorTable) else tuple(tables)
        self.ties = ties
        self._matrix_cache: dict[tuple, np.ndarray] = {}
        self._weight_cache: dict[tuple, tuple[np.ndarray, ...]] = {}
        self._unstackable: set[tuple] = set()  # blocks of tables left to scheme_weights
        self.memberships = tuple(spec.membership(k) for k in range(len(spec.levels) - 1))

    def table(self, pipeline: Pipeline, dataset: int | None = None) -> IndicatorTable:
        """The pipeline's table, or table ``dataset`` (a batch may give each scenario its own)."""
        return self.tables[self._table_number(pipeline, dataset)]

    def _table_number(self, pipeline: Pipeline, dataset: int | None) -> int:
        """``dataset``, by default the pipeline's, checked to exist."""
        dataset = pipeline.dataset if dataset is None else dataset
        if not 0 <= dataset < len(self.tables):
            raise self._no_such_table(dataset)
        return dataset

    def _no_such_table(self, dataset: int) -> UserError:
        return UserError(f"dataset {dataset} does not exist ({len(self.tables)} available)")

    def normalised(self, pipeline: Pipeline, dataset: int | None = None) -> np.ndarray:
        """The pipeline's normalised (years, units, indicators) matrix of its table (or table
        ``dataset``), computed once."""
        dataset = self._table_number(pipeline, dataset)
        key = (dataset, pipeline.data_key)
        if key not in self._matrix_cache:
            self._matrix_cache[key] = prepare(pipeline, self.tables[dataset], self.spec)
        return self._matrix_cache[key]

    def scheme_weights(
        self, pipeline: Pipeline, dataset: int | None = None
    ) -> tuple[np.ndarray, ...]:
        """The pipeline's scheme weights per level (data-driven ones from its table, or table
        ``dataset``), computed once."""
        dataset = self._table_number(pipeline, dataset)
        key = _weights_key(pipeline, dataset)
        if key not in self._weight_cache:
            self._weight_cache[key] = pipeline_weights(pipeline, self.tables[dataset], self.spec)
        return self._weight_cache[key]

    def _stack_weights(self, cases: Sequence[tuple[Pipeline, int]]) -> None:
        """Cache the data-driven weights that (pipeline, table) ``cases`` need. Alternative tables
        that differ in their values alone are imputed, transformed and weighted as one stack, in
        blocks of ``WEIGHT_BLOCK`` tables at fixed places (one pass per block, scheme and
        treatment): a stacked pass can change the last bits of a table's weights with the other
        tables in it, so a table's weights must not depend on which tables a chunk happened to
        draw, or on which chunk, thread or worker needed them first."""
        if not self._values_alone_differ:
            return
        for pipeline, dataset in cases:
            if (
                pipeline.weights_from_data
                and 0 <= dataset < len(self.tables)
                and _weights_key(pipeline, dataset) not in self._weight_cache
            ):
                self._weight_block(pipeline, dataset)

    def _weight_block(self, pipeline: Pipeline, dataset: int) -> None:
        """The data-driven weights of every table in ``dataset``'s block, in one pass; a block
        with a table they cannot be derived from is left to :meth:`scheme_weights`, table by
        table (which names the table when it is one a scenario uses)."""
        first = dataset - dataset % WEIGHT_BLOCK
        block = (first, pipeline.weights_key)
        if block in self._unstackable:
            return
        datasets = range(first, min(first + WEIGHT_BLOCK, len(self.tables)))
        raw = np.stack([self.tables[d].values for d in datasets])
        try:
            every = pipeline_weights(pipeline, self.tables[dataset], self.spec, raw)
        except UserError:
            self._unstackable.add(block)
            return
        for place, other in enumerate(datasets):
            self._weight_cache[_weights_key(pipeline, other)] = tuple(
                level[place] for level in every
            )

    @functools.cached_property
    def _values_alone_differ(self) -> bool:
        """Whether the alternative tables share everything but their values (so that they can be
        imputed and transformed as one stack)."""
        first = self.tables[0]
        return len(self.tables) > 1 and all(
            t.values.shape == first.values.shape
            and (t.years, t.units) == (first.years, first.units)
            and t.attributes.equals(first.attributes)
            and (
                t.denominators is first.denominators
                or (
                    t.denominators is not None
                    and first.denominators is not None
                    and np.array_equal(t.denominators, first.denominators)
                )
            )
            for t in self.tables[1:]
        )

    def check(self, pipelines: Sequence[Pipeline], data: bool = True) -> None:
        """Raise a :class:`UserError` for the first pipeline that cannot run, before anything
        runs. Without ``data`` the tables' own normalised matrices are not computed: a batch that
        brings its own data (noise, masks) never uses them, and its data are checked as they are
        prepared."""
        distinct = list(dict.fromkeys(pipelines))
        self._stack_weights([(p, p.dataset) for p in distinct])
        for pipeline in distinct:
            self._check_options(pipeline)
            if data:
                self.normalised(pipeline)
            self.scheme_weights(pipeline)

    def _check_options(self, pipeline: Pipeline) -> None:
        """Refuse options that are invalid whatever the data (every table has the same units)."""
        problem = option_problem(pipeline, self.spec)
        if problem:
            raise UserError(problem)
        problem = pipeline.tiers.problem(len(self.tables[0].units))
        if problem:
            raise UserError(f"tiers: {problem}")

    def evaluate(self, batch: ScenarioBatch) -> BatchResult:
        """Scores, ranks and tiers of every scenario in ``batch``. Every problem is found before
        anything is aggregated: the options first, then the data each scenario uses."""
        datasets = self._datasets(batch)
        self._check_shapes(batch)
        for pipeline in dict.fromkeys(batch.pipelines):
            self._check_options(pipeline)
        first = self.tables[int(datasets[0])]  # every table has the same units and years
        n_years, n_units = len(first.years), len(first.units)
        pipelines = batch.pipelines
        leaf_case, normalised = self._normalised_rows(batch, datasets)
        weights = self._weights(batch, datasets)
        scores: np.ndarray | None = None  # the groups' arrays, or the one group's own
        ranks: np.ndarray | None = None
        levels = range(len(self.memberships))
        aggregation = _ids([p.aggregation_key(len(levels)) for p in pipelines])
        every_finite = True
        aggregated_by = aggregation[0][batch.pipeline_index]
        cells = len(self.spec.indicators) * n_years * n_units  # the leaves of a scenario
        for _, members in _groups(_tree_groups(aggregated_by, leaf_case, cells)):
            methods = int(aggregated_by[members][0])
            group_scores, group_ranks, group_finite = aggregate_tree(
                normalised(members),
                [w[members] for w in weights],
                self.memberships,
                aggregation[1][methods][0],
                n_units,
                self.ties,
                *aggregation[1][methods][1:],
            )
            assert group_ranks is not None  # n_units was given
            every_finite &= group_finite
            scores = _place(scores, batch.size, members, group_scores)
            ranks = _place(ranks, batch.size, members, group_ranks)
        assert scores is not None and ranks is not None  # a batch has at least one group
        if not every_finite:
            failed = self._failed(scores, batch)  # even a node that cannot reach the index's value
            if failed.any():
                raise UserError(self._aggregation_problem(failed, first, batch))
        scores = scores.reshape(batch.size, -1, n_years, n_units).transpose(
            0, 2, 3, 1
        )  # a view: each node's scores stay contiguous
        ranks = ranks.reshape(batch.size, n_years, n_units)
        tiers: np.ndarray | None = None
        tier_rules = _ids([p.tiers for p in pipelines])
        for rule, members in _groups(tier_rules[0][batch.pipeline_index]):
            tiers = _place(
                tiers,
                batch.size,
                members,
                tier_rules[1][rule].assign(scores[members, ..., -1], ranks[members]),
            )
        assert tiers is not None
        return BatchResult(scores, ranks, tiers, self.spec.aggregates, first.units, first.years)

    @staticmethod
    def _failed(scores: np.ndarray, batch: ScenarioBatch) -> np.ndarray:
        """Aggregates (S, nodes, rows) that are not finite numbers, except those a pipeline's
        ``data_threshold`` leaves missing below the index (an index must have a value)."""
        failed = ~np.isfinite(scores)
        skipping = np.array([p.data_threshold is not None for p in batch.pipelines])
        skipping = skipping[batch.pipeline_index]
        if skipping.any():
            failed[skipping, :-1] &= ~np.isnan(scores[skipping, :-1])
        return failed

    def _aggregation_problem(
        self, failed: np.ndarray, table: IndicatorTable, batch: ScenarioBatch
    ) -> str:
        """Name the first scenario, unit and node whose aggregate failed, and the likely cause."""
        scenario, node, row = np.argwhere(failed)[0]
        year, unit = divmod(int(row), len(table.units))
        when = "" if table.years[year] is None else f" in {table.years[year]}"
        pipeline = batch.pipelines[batch.pipeline_index[scenario]]
        level = next(
            k for k, level in enumerate(self.spec.levels[1:]) if self.spec.aggregates[node] in level
        )
        method = pipeline.aggregation_at(level)
        where = f"for unit '{table.units[unit]}'{when} at node '{self.spec.aggregates[node]}'"
        if pipeline.data_threshold is not None and node == len(self.spec.aggregates) - 1:
            return (
                f"aggregation leaves the index missing {where} (scenario {scenario}): too few "
                f"of its parts have data at data_threshold = {pipeline.threshold_at(level)} "
                "(remove the unit from the data, lower the threshold or impute)"
            )
        if pipeline.nonpositive == "refuse" and method != "arithmetic":
            cause = (
                f"a {method} mean met a value <= 0 with nonpositive = 'refuse' (keep the "
                "normalised values positive, e.g. minmax_range = [1, 100], or use nonpositive = "
                "'shift')"
            )
        elif method == "generalised":  # its values raised to the power overflow first
            cause = f"is power = {pipeline.power:g} too large in size, or are the values?"
        else:
            cause = "are the weights or values too large?"
        return f"aggregation gives a non-finite score {where} (scenario {scenario}): {cause}"

    def _datasets(self, batch: ScenarioBatch) -> np.ndarray:
        """(S,) each scenario's table: the batch's ``datasets``, else its pipeline's."""
        if batch.datasets is None:
            datasets = np.array([p.dataset for p in batch.pipelines])[batch.pipeline_index]
        else:
            datasets = np.asarray(batch.datasets, dtype=np.int64)
        outside = (datasets < 0) | (datasets >= len(self.tables))
        if outside.any():
            raise self._no_such_table(int(datasets[outside][0]))
        return datasets

    def _cases(
        self,
        batch: ScenarioBatch,
        datasets: np.ndarray,
        key: Callable[[Pipeline], tuple],
        by_table: Callable[[Pipeline], bool],
    ) -> tuple[np.ndarray, list[tuple[Pipeline, int]]]:
        """Each scenario's case and the (pipeline, table) of each case: scenarios share a case
        when ``key`` of their pipelines agrees and, where ``by_table`` of the pipeline holds, so
        do their tables. The work per case is done once."""
        ids, _, first = _ids([key(p) for p in batch.pipelines])
        keyed = [batch.pipelines[i] for i in first]
        per_table = np.array([by_table(p) for p in keyed])
        scenario_key = ids[batch.pipeline_index]
        n_tables = len(self.tables)
        codes = scenario_key * n_tables + np.where(per_table[scenario_key], datasets, 0)
        distinct, case, _ = _distinct(codes)
        cases = [(keyed[code // n_tables], code % n_tables) for code in distinct.tolist()]
        return case, cases

    def _normalised_rows(self, batch: ScenarioBatch, datasets: np.ndarray):
        """Each scenario's case of leaves (S,), and a function giving the normalised leaves of
        some scenarios: (indicators, rows) when they share a case, else (members, indicators,
        rows).

        Without per-scenario data each distinct (table, method) matrix is a case, computed once
        and shared by its scenarios; with noise or masks every scenario is of case 0 and has its
        own leaves: the raw data of each method group are processed together, vectorised (and
        table by table where the tables differ in more than their values: each is denominated and
        grouped by its own metadata).
        """
        pipelines = batch.pipelines
        if batch.value_factors is None and batch.masked is None:
            case, cases = self._cases(batch, datasets, lambda p: p.data_key, lambda p: True)
            stack = np.stack([self.normalised(*c) for c in cases])
            stack = np.ascontiguousarray(
                stack.reshape(stack.shape[0], -1, stack.shape[-1]).transpose(0, 2, 1)
            )

            def leaves(members) -> np.ndarray:
                cases = case[members]
                if (cases == cases[0]).all():  # shared, read in place by the kernel
                    return stack[cases[0]]
                return stack[cases]

            return case, leaves
        raw_stack = np.stack([t.values for t in self.tables])
        methods = _ids([p.data_key for p in pipelines])[0]
        groups = methods[batch.pipeline_index]
        if not self._values_alone_differ:
            groups = groups * len(self.tables) + datasets
        rows: np.ndarray | None = None
        for _, members in _groups(groups):
            pipeline = pipelines[batch.pipeline_index[members][0]]
            raw = raw_stack[datasets[members]]
            if batch.value_factors is not None:
                raw = raw * batch.value_factors[members]
            if batch.masked is not None:
                raw = np.where(batch.masked[members], np.nan, raw)
            try:
                prepared = prepare(pipeline, self.tables[datasets[members][0]], self.spec, raw)
            except UserError:
                self._name_the_table(pipeline, raw, datasets[members])
                raise
            if rows is None:
                rows = np.empty(
                    (batch.size, prepared.shape[-1], prepared.shape[-3] * prepared.shape[-2])
                )
            rows[members] = prepared.reshape(prepared.shape[0], -1, prepared.shape[-1]).transpose(
                0, 2, 1
            )
        assert rows is not None  # every scenario belongs to a group
        return np.zeros(batch.size, dtype=np.int64), lambda members: rows[members]

    def _name_the_table(self, pipeline: Pipeline, raw: np.ndarray, datasets: np.ndarray) -> None:
        """Raise the error of the first of a group's scenarios whose data cannot be prepared,
        naming that scenario's own table (the group's error names the group's first table)."""
        for scenario_raw, dataset in zip(raw, datasets.tolist(), strict=True):
            prepare(pipeline, self.tables[dataset], self.spec, scenario_raw[None])

    def _check_shapes(self, batch: ScenarioBatch) -> None:
        """Refuse a batch whose arrays do not fit the index: a missing or extra level of weight
        factors would otherwise be ignored or misapplied without a word."""
        sizes = [m.shape[0] for m in self.memberships]
        expected = [(batch.size, n) for n in sizes]
        if batch.weight_factors is not None:
            found = [np.shape(f) for f in batch.weight_factors]
            if found != expected:
                raise ValueError(
                    f"weight_factors: one (scenarios, nodes) array per level below the index, "
                    f"shapes {expected}; got {found}"
                )
        first = self.tables[0].values.shape
        for name in ("value_factors", "masked"):
            array = getattr(batch, name)
            if array is not None and np.shape(array) != (batch.size, *first):
                raise ValueError(f"{name}: shape {(batch.size, *first)}; got {np.shape(array)}")

    def _weights(self, batch: ScenarioBatch, datasets: np.ndarray) -> list[np.ndarray]:
        """(scenarios, nodes) weights per level: the scheme's weights times the batch's factors."""
        case, cases = self._cases(
            batch, datasets, lambda p: p.weights_key, lambda p: p.weights_from_data
        )
        self._stack_weights(cases)
        every = [self.scheme_weights(*c) for c in cases]
        tables = [np.stack([w[k] for w in every]) for k in range(len(self.memberships))]
        weights = [
            table[case]
            if len(table) > 1
            else np.broadcast_to(table[0], (batch.size, table.shape[1]))
            for table in tables
        ]
        if batch.weight_factors is not None:
            weights = [w * f for w, f in zip(weights, batch.weight_factors, strict=True)]
        return weights


def _weights_key(pipeline: Pipeline, dataset: int) -> tuple:
    """What a pipeline's scheme weights depend on: its choices and, if derived from data, the
    table."""
    return (dataset if pipeline.weights_from_data else None, pipeline.weights_key)


def _ids(keys: list) -> tuple[np.ndarray, list, list[int]]:
    """Integer id of each key (in order of first appearance), the distinct keys and where each
    first appears."""
    distinct: dict = {}
    first: list[int] = []
    ids = np.empty(len(keys), dtype=np.int64)
    for position, key in enumerate(keys):
        if key not in distinct:
            distinct[key] = len(distinct)
            first.append(position)
        ids[position] = distinct[key]
    return ids, list(distinct), first


def _tree_groups(aggregated_by: np.ndarray, leaf_case: np.ndarray, cells: int) -> np.ndarray:
    """Each scenario's group for the tree kernel: the scenarios of one aggregation and one case of
    leaves where they are many enough to share its matrix (``SHARED_LEAVES_CELLS``), those of one
    aggregation otherwise, each with a copy of its leaves. Shared leaves are read in place, but
    each group is a call of the tree (tens of microseconds), which a few scenarios' copies of a
    small matrix cost less than (measured in docs/speed.md)."""
    by_leaves = aggregated_by * (int(leaf_case.max()) + 1) + leaf_case
    _, group, sizes = _distinct(by_leaves)
    shares = sizes[group] * cells >= SHARED_LEAVES_CELLS
    return np.where(shares, by_leaves, by_leaves.max() + 1 + aggregated_by)


def _distinct(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct integer ``codes``, each code's place among them and their counts (as
    ``np.unique``), without sorting the batch where every scenario has the same code (a
    weights-only batch sorted three times)."""
    if codes.size and (codes == codes[0]).all():
        return codes[:1], np.zeros(codes.size, dtype=np.intp), np.array([codes.size])
    distinct, place, counts = np.unique(codes, return_inverse=True, return_counts=True)
    return distinct, place.ravel(), counts


def _place(whole: np.ndarray | None, size: int, members, part: np.ndarray) -> np.ndarray:
    """``whole`` (None: not yet allocated, for ``size`` scenarios) with a group's ``part``
    written in; a group of every scenario (a slice, see :func:`_groups`) is the batch, so its
    array is used as it is, without a copy or an array to copy into."""
    if isinstance(members, slice):
        return part
    if whole is None:
        whole = np.empty((size, *part.shape[1:]), dtype=part.dtype)
    whole[members] = part
    return whole


def _groups(ids: np.ndarray):
    """(id, members) for each distinct id, members in increasing order (a full slice when all
    share one)."""
    if ids.size and np.all(ids == ids[0]):
        yield int(ids[0]), slice(None)
        return
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    bounds = np.flatnonzero(np.diff(sorted_ids)) + 1
    for members in np.split(order, bounds):
        if members.size:
            yield int(ids[members[0]]), members


def evaluate_batch(
    spec: IndexSpec,
    tables: IndicatorTable | Sequence[IndicatorTable],
    batch: ScenarioBatch,
    ties: str = "min",
) -> BatchResult:
    """Evaluate a batch of scenarios (see :class:`ScenarioBatch`)."""
    return Engine(spec, tables, ties).evaluate(batch)


def evaluate(
    spec: IndexSpec, table: IndicatorTable, pipeline: Pipeline | None = None, ties: str = "min"
) -> BatchResult:
    """Evaluate one scenario: the pipeline (default: the paper's method) with its scheme's
    weights."""
    batch = ScenarioBatch((pipeline or Pipeline(),), np.zeros(1, dtype=np.int64))
    return Engine(spec, table, ties).evaluate(batch)
