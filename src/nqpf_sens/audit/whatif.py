"""What if one judgement were made otherwise? One change at a time, per unit, against the nominal.

Leaving an indicator (or a dimension) out is a change of what the index measures, not an
uncertainty about how to measure it, so the JRC audits and COINr report it apart from the Monte
Carlo: each indicator, then each aggregate below the index, is dropped in turn (its weight set to
zero, its siblings' weights renormalised), everything else as in the nominal pipeline. A part
without a sibling of positive weight cannot be dropped without emptying its parent and is skipped.

The same one-at-a-time reading serves the analyst's choices (another normalisation, aggregation,
weighting, ...): each alternative alone shows which judgement moves which unit, which a Sobol
index, averaged over every combination, cannot. The alternatives come as whole pipelines, so
this layer needs nothing of how the uncertainty layer describes its factors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nqpf_sens.engine.batch import BatchResult, Engine, ScenarioBatch
from nqpf_sens.engine.pipeline import Pipeline
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable
from nqpf_sens.errors import UserError

UNIT_COLUMNS = ["change", "unit", "nominal_rank", "rank", "shift"]


def leave_one_out(
    spec: IndexSpec, table: IndicatorTable, pipeline: Pipeline, ties: str = "min"
) -> pd.DataFrame:
    """Per change and unit (and year, when there are several): the nominal rank, the rank
    without that part, and the shift (positive: the unit falls)."""
    levels = spec.levels[:-1]
    changes, multipliers = [], []
    for k, level in enumerate(levels):
        for j, code in enumerate(level):
            if not spec.can_leave_out(k, j):
                continue
            factors = [np.ones(len(nodes)) for nodes in levels]
            factors[k][j] = 0.0
            changes.append(f"without {code}")
            multipliers.append(factors)
    if not changes:
        return pd.DataFrame(columns=UNIT_COLUMNS)
    weight_factors = tuple(np.stack([m[k] for m in multipliers]) for k in range(len(levels)))
    engine = Engine(spec, table, ties)
    nominal = engine.evaluate(ScenarioBatch((pipeline,), np.zeros(1, dtype=np.int64)))
    batch = ScenarioBatch((pipeline,), np.zeros(len(changes), dtype=np.int64), weight_factors)
    return _unit_rows(changes, engine.evaluate(batch).ranks, nominal)


def one_at_a_time(
    spec: IndexSpec,
    table: IndicatorTable | Sequence[IndicatorTable],
    pipeline: Pipeline,
    changes: Sequence[tuple[str, Pipeline]],
    ties: str = "min",
    within: Sequence[int] = (1, 3, 5),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each alternative ``(label, pipeline)`` evaluated alone against the nominal ``pipeline``.

    ``table`` may be several alternative tables (a pipeline's ``dataset`` picks one). Returns
    (1) per change and unit: ``nominal_rank``, ``rank`` and ``shift`` (positive: the unit falls);
    (2) per change: ``mean_abs_shift`` (R_S, Saisana et al. 2005), ``max_abs_shift``,
    ``spearman`` (rho against the nominal ranking), ``share_moved_over_k`` (|shift| > k) for each k
    in ``within``, ``units`` and ``problem``. Both tables are per year too when there are several.
    A change the engine refuses (a :class:`UserError`, e.g. a transformation the data's domain
    forbids) is not fatal: its message goes to ``problem``, its statistics are NaN, it has no unit
    rows and ``units`` is 0, so that the other changes are still reported.
    """
    labels = [label for label, _ in changes]
    if len(set(labels)) < len(labels):
        raise ValueError("one_at_a_time: change labels must be unique")
    engine = Engine(spec, table, ties)
    single = np.zeros(1, dtype=np.int64)
    nominal = engine.evaluate(ScenarioBatch((pipeline,), single))
    ranks = np.full((len(changes), *nominal.ranks.shape[1:]), np.nan)
    problems: list[str | None] = []
    for row, (_, alternative) in zip(ranks, changes, strict=True):
        try:
            row[:] = engine.evaluate(ScenarioBatch((alternative,), single)).ranks[0]
            problems.append(None)
        except UserError as error:
            problems.append(str(error))
    ran = np.array([p is None for p in problems], dtype=bool)
    units = _unit_rows(
        [label for label, ok in zip(labels, ran, strict=True) if ok],
        ranks[ran].astype(np.int64),
        nominal,
    )
    return units, _summary(labels, ranks, problems, nominal, within)


def _unit_rows(changes: Sequence[str], ranks: np.ndarray, nominal: BatchResult) -> pd.DataFrame:
    """Per change and unit (a year column when several years) from (changes, years, units)
    ranks."""
    n_changes, n_years, n_units = ranks.shape
    frame = pd.DataFrame(
        {
            "change": np.repeat(np.asarray(changes, dtype=object), n_years * n_units),
            "unit": np.tile(nominal.units, n_changes * n_years),
            "nominal_rank": np.tile(nominal.ranks[0].ravel(), n_changes),
            "rank": ranks.ravel(),
        }
    )
    if n_years > 1:
        frame.insert(1, "year", np.tile(np.repeat(np.asarray(nominal.years), n_units), n_changes))
    frame["shift"] = frame["rank"] - frame.nominal_rank
    return frame


def _summary(
    changes: Sequence[str],
    ranks: np.ndarray,
    problems: Sequence[str | None],
    nominal: BatchResult,
    within: Sequence[int],
) -> pd.DataFrame:
    """Per change (and year) from (changes, years, units) ranks, NaN for a change that did not
    run."""
    n_changes, n_years, n_units = ranks.shape
    failed = np.array([p is not None for p in problems], dtype=bool)[:, None]
    moved = np.abs(ranks - nominal.ranks[0])
    statistics = {
        "mean_abs_shift": moved.mean(axis=-1),
        "max_abs_shift": moved.max(axis=-1, initial=0),
        "spearman": _spearman(ranks, nominal.ranks[0]),
        **{f"share_moved_over_{k}": (moved > k).mean(axis=-1) for k in within},
    }
    frame = pd.DataFrame(
        {name: np.where(failed, np.nan, value).ravel() for name, value in statistics.items()}
    )
    frame.insert(0, "change", np.repeat(np.asarray(changes, dtype=object), n_years))
    if n_years > 1:
        frame.insert(1, "year", np.tile(np.asarray(nominal.years), n_changes))
    frame["units"] = np.repeat(np.where(failed[:, 0], 0, n_units), n_years)
    # a change that ran has no problem: missing (NaN), as it reads back from a CSV
    frame["problem"] = pd.Series(np.repeat(np.asarray(problems, dtype=object), n_years)).astype(
        "str"
    )
    return frame


def _spearman(ranks: np.ndarray, nominal: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis: Pearson's r of the ranks, ties sharing their mean rank
    (the engine's ``ties`` rule must not change rho); NaN where a ranking is all ties."""
    n_units = ranks.shape[-1]
    pairs = [
        pd.DataFrame(np.broadcast_to(r, ranks.shape).reshape(-1, n_units)).rank(axis=1).to_numpy()
        for r in (ranks, nominal)
    ]
    a, b = (p - p.mean(axis=1, keepdims=True) for p in pairs)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return rho.reshape(ranks.shape[:-1])
