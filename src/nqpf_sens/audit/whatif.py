"""What if one part of the index were left out? One structural change at a time, per unit.

Leaving an indicator (or a dimension) out is a change of what the index measures, not an
uncertainty about how to measure it, so the JRC audits and COINr report it apart from the Monte
Carlo: each indicator, then each aggregate below the index, is dropped in turn (its weight set to
zero, its siblings' weights renormalised), everything else as in the nominal pipeline. A part that
is the only child of its parent cannot be dropped without emptying the parent and is skipped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nqpf_sens.engine.batch import Engine, ScenarioBatch
from nqpf_sens.engine.pipeline import Pipeline
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable


def leave_one_out(
    spec: IndexSpec, table: IndicatorTable, pipeline: Pipeline, ties: str = "min"
) -> pd.DataFrame:
    """Per change and unit (and year, when there are several): the nominal rank, the rank
    without that part, and the shift (positive: the unit falls)."""
    levels = spec.levels[:-1]
    changes, multipliers = [], []
    for k, level in enumerate(levels):
        siblings = np.bincount(spec.parents[k], minlength=len(spec.levels[k + 1]))
        for j, code in enumerate(level):
            if siblings[spec.parents[k][j]] < 2:
                continue
            factors = [np.ones(len(nodes)) for nodes in levels]
            factors[k][j] = 0.0
            changes.append(f"without {code}")
            multipliers.append(factors)
    if not changes:
        return pd.DataFrame(columns=["change", "unit", "nominal_rank", "rank", "shift"])
    weight_factors = tuple(np.stack([m[k] for m in multipliers]) for k in range(len(levels)))
    engine = Engine(spec, table, ties)
    nominal = engine.evaluate(ScenarioBatch((pipeline,), np.zeros(1, dtype=np.int64)))
    batch = ScenarioBatch((pipeline,), np.zeros(len(changes), dtype=np.int64), weight_factors)
    ranks = engine.evaluate(batch).ranks  # (changes, years, units)
    n_changes, n_years, n_units = ranks.shape
    frame = pd.DataFrame(
        {
            "change": np.repeat(changes, n_years * n_units),
            "unit": np.tile(table.units, n_changes * n_years),
            "nominal_rank": np.tile(nominal.ranks[0].ravel(), n_changes),
            "rank": ranks.ravel(),
        }
    )
    if n_years > 1:
        frame.insert(1, "year", np.tile(np.repeat(np.asarray(table.years), n_units), n_changes))
    frame["shift"] = frame["rank"] - frame.nominal_rank
    return frame
