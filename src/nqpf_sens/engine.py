"""Batched evaluation: many scenarios of discrete choices and weights in a few array operations.

Scenarios are grouped by pipeline (their discrete choices); each distinct pipeline's normalised
matrix and scheme weights are computed once and cached on the :class:`Engine`. Within a group the
weights of all scenarios go through one matrix product per level of the tree, and ranks and tiers
are computed for the whole group without a loop over scenarios. Per-scenario raw-data changes
(multiplicative noise, cells masked for an imputation stress test) are supported as arrays with a
leading scenario axis; they are processed vectorised, group by group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nqpf_sens.aggregate import aggregate
from nqpf_sens.errors import UserError
from nqpf_sens.pipeline import Pipeline, pipeline_weights, prepare
from nqpf_sens.rank import rank_scores
from nqpf_sens.spec import IndexSpec
from nqpf_sens.table import IndicatorTable


@dataclass(frozen=True, eq=False)
class ScenarioBatch:
    """A batch of S scenarios.

    ``pipeline_index[s]`` picks scenario s's pipeline; ``weight_factors[k]`` (S, nodes at level k)
    multiply the scheme's weights (a zero drops a node: leave-one-out); ``value_factors`` (S, years,
    units, indicators) multiply the raw values; ``masked`` (same shape, bool) blanks raw cells before
    imputation.
    """

    pipelines: tuple[Pipeline, ...]
    pipeline_index: np.ndarray
    weight_factors: tuple[np.ndarray, ...] | None = None
    value_factors: np.ndarray | None = None
    masked: np.ndarray | None = None

    @property
    def size(self) -> int:
        return len(self.pipeline_index)


@dataclass(frozen=True, eq=False)
class BatchResult:
    """Scores of every aggregate node (dimensions ..., index last), ranks and tiers of the index.

    Shapes: ``scores`` (S, years, units, aggregates); ``ranks`` and ``tiers`` (S, years, units).
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


class Engine:
    """Evaluates scenario batches for one index spec and one or more alternative data tables."""

    def __init__(self, spec: IndexSpec, tables: IndicatorTable | Sequence[IndicatorTable], ties: str = "min"):
        self.spec = spec
        self.tables = (tables,) if isinstance(tables, IndicatorTable) else tuple(tables)
        self.ties = ties
        self._normalised: dict[tuple, np.ndarray] = {}
        self._weights: dict[tuple, tuple[np.ndarray, ...]] = {}
        self.memberships = tuple(spec.membership(k) for k in range(len(spec.levels) - 1))

    def table(self, pipeline: Pipeline) -> IndicatorTable:
        if not 0 <= pipeline.dataset < len(self.tables):
            raise UserError(f"dataset {pipeline.dataset} does not exist ({len(self.tables)} available)")
        return self.tables[pipeline.dataset]

    def normalised(self, pipeline: Pipeline) -> np.ndarray:
        """The pipeline's normalised (years, units, indicators) matrix, computed once."""
        key = pipeline.data_key
        if key not in self._normalised:
            self._normalised[key] = prepare(pipeline, self.table(pipeline), self.spec)
        return self._normalised[key]

    def scheme_weights(self, pipeline: Pipeline) -> tuple[np.ndarray, ...]:
        key = (pipeline.weighting, *pipeline.data_key)
        if key not in self._weights:
            self._weights[key] = pipeline_weights(pipeline, self.table(pipeline), self.spec)
        return self._weights[key]

    def check(self, pipelines: Sequence[Pipeline]) -> None:
        """Raise a :class:`UserError` for the first pipeline that cannot run, before anything runs."""
        for pipeline in dict.fromkeys(pipelines):
            self.normalised(pipeline)
            self.scheme_weights(pipeline)
            problem = pipeline.tiers.problem(len(self.table(pipeline).units))
            if problem:
                raise UserError(f"tiers: {problem}")

    def evaluate(self, batch: ScenarioBatch) -> BatchResult:
        """Scores, ranks and tiers of every scenario in ``batch``."""
        self.check(batch.pipelines)
        first = self.table(batch.pipelines[0])
        n_years, n_units = len(first.years), len(first.units)
        n_aggregates = len(self.spec.aggregates)
        scores = np.empty((batch.size, n_years, n_units, n_aggregates))
        ranks = np.empty((batch.size, n_years, n_units), dtype=np.int64)
        tiers = np.empty_like(ranks)
        for g, pipeline in enumerate(batch.pipelines):
            members = np.flatnonzero(batch.pipeline_index == g)
            if members.size == 0:
                continue
            group_scores = self._scores(pipeline, batch, members).reshape(members.size, n_years, n_units, n_aggregates)
            group_ranks = rank_scores(group_scores[..., -1], self.ties)
            scores[members] = group_scores
            ranks[members] = group_ranks
            tiers[members] = pipeline.tiers.assign(group_scores[..., -1], group_ranks)
        return BatchResult(scores, ranks, tiers, self.spec.aggregates, first.units, first.years)

    def _scores(self, pipeline: Pipeline, batch: ScenarioBatch, members: np.ndarray) -> np.ndarray:
        """(members, rows, aggregates) where rows are (year, unit) pairs."""
        if batch.value_factors is None and batch.masked is None:
            current = self.normalised(pipeline)
        else:
            table = self.table(pipeline)
            raw = np.broadcast_to(table.values, (members.size, *table.values.shape))
            if batch.value_factors is not None:
                raw = raw * batch.value_factors[members]
            if batch.masked is not None:
                raw = np.where(batch.masked[members], np.nan, raw)
            current = prepare(pipeline, table, self.spec, raw)
        current = current.reshape(*current.shape[:-3], -1, current.shape[-1])
        levels = []
        for k, (base, membership) in enumerate(zip(self.scheme_weights(pipeline), self.memberships)):
            weights = np.broadcast_to(base, (members.size, base.size))
            if batch.weight_factors is not None:
                weights = weights * batch.weight_factors[k][members]
            current = aggregate(current, weights, membership, pipeline.aggregation_at(k))
            levels.append(current)
        return np.concatenate(levels, axis=-1)


def evaluate_batch(spec: IndexSpec, tables: IndicatorTable | Sequence[IndicatorTable], batch: ScenarioBatch, ties: str = "min") -> BatchResult:
    """Evaluate a batch of scenarios (see :class:`ScenarioBatch`)."""
    return Engine(spec, tables, ties).evaluate(batch)


def evaluate(spec: IndexSpec, table: IndicatorTable, pipeline: Pipeline | None = None, ties: str = "min") -> BatchResult:
    """Evaluate one scenario: the pipeline (default: the paper's method) with its scheme's weights."""
    batch = ScenarioBatch((pipeline or Pipeline(),), np.zeros(1, dtype=np.int64))
    return Engine(spec, table, ties).evaluate(batch)
