"""A deliberately plain one-scenario implementation with pandas: the yardstick that tests compare
the batched engine with, and the simple reference run that benchmarks report speed against.

It covers the paper's path (min-max or z-score, arithmetic or geometric means, expert weights or any
weights per level) for a cross-section, one DataFrame at a time, with no caching or vectorisation
across scenarios. Missing cells are refused unless ``data_threshold`` is given (aggregation
without imputation, one share or one per level): then statistics skip them, means renormalise
the weights of the children observed, and a parent with fewer than that share of its children
observed is missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nqpf_sens.engine.kernels import RANK_TOLERANCE
from nqpf_sens.engine.spec import IndexSpec


def reference_scores(
    frame: pd.DataFrame,
    spec: IndexSpec,
    weights: tuple[np.ndarray, ...] | None = None,
    normalisation: str = "minmax",
    aggregation: str = "arithmetic",
    data_threshold: float | tuple[float, ...] | None = None,
) -> pd.DataFrame:
    """Scores of every aggregate node and the index rank (ties share the best place) for one
    scenario.

    ``frame`` is units x indicators (wide, indexed by unit).
    """
    weights = spec.weights if weights is None else weights
    data = frame[list(spec.indicators)].astype(float) * spec.direction
    if data_threshold is None and data.isna().any().any():
        raise ValueError("missing cells need a data_threshold")
    if normalisation == "minmax":
        spread = data.max() - data.min()
        normalised = ((data - data.min()) / spread.where(spread > 0)).fillna(0.5) * 100
    else:
        centred = data - data.mean()
        normalised = (centred / data.std(ddof=0).where(data.max() > data.min())).fillna(0.0)
    normalised = normalised.where(data.notna())
    current = normalised
    result = pd.DataFrame(index=frame.index)
    n_levels = len(spec.levels) - 1
    thresholds = np.broadcast_to(0.0 if data_threshold is None else data_threshold, n_levels)
    for level in range(n_levels):
        parents = spec.levels[level + 1]
        children = pd.Series(spec.levels[level])
        next_level = pd.DataFrame(index=frame.index)
        for p, parent in enumerate(parents):
            members = children[spec.parents[level] == p].tolist()
            w = pd.Series(weights[level][spec.parents[level] == p], index=members)
            block = current[members]
            observed = block.notna()
            weight = observed.astype(float) @ w  # the weight of the children observed per unit
            if aggregation == "arithmetic":
                mean = (block * w).sum(axis=1) / weight
            else:
                low, spread = block.min(), block.max() - block.min()
                shift = (0.01 * spread).where(spread > 0, 1.0) - low
                block = block + shift.where(low <= 0, 0.0)
                mean = np.exp((np.log(block) * w).sum(axis=1) / weight)
            enough = observed.mean(axis=1) >= thresholds[level]
            next_level[parent] = mean.where(enough & (weight > 0))
        result = pd.concat([result, next_level], axis=1)
        current = next_level
    index = current.iloc[:, 0]
    finite = index.abs()[np.isfinite(index)]
    tolerance = RANK_TOLERANCE * finite.max() if len(finite) else 0.0  # this close: one place
    biggest = np.finfo(float).max  # a finite score's cutoff stays finite: +inf ranks above it
    cutoffs = [min(value + tolerance, biggest) if np.isfinite(value) else value for value in index]
    result["rank"] = [1 + int((index > cutoff).sum()) for cutoff in cutoffs]
    return result
