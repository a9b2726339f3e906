"""A deliberately plain one-scenario implementation with pandas: the yardstick that tests compare
the batched engine with, and the simple reference run that benchmarks report speed against.

It covers the paper's path (min-max or z-score, arithmetic or geometric means, expert weights or any
weights per level) for a cross-section, one DataFrame at a time, with no caching or vectorisation
across scenarios.
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
) -> pd.DataFrame:
    """Scores of every aggregate node and the index rank (ties share the best place) for one
    scenario.

    ``frame`` is units x indicators (wide, indexed by unit).
    """
    weights = spec.weights if weights is None else weights
    data = frame[list(spec.indicators)].astype(float) * spec.direction
    if normalisation == "minmax":
        spread = data.max() - data.min()
        normalised = ((data - data.min()) / spread.where(spread > 0)).fillna(0.5) * 100
    else:
        centred = data - data.mean()
        normalised = (centred / data.std(ddof=0).where(data.max() > data.min())).fillna(0.0)
    current = normalised
    result = pd.DataFrame(index=frame.index)
    for level in range(len(spec.levels) - 1):
        parents = spec.levels[level + 1]
        children = pd.Series(spec.levels[level])
        next_level = pd.DataFrame(index=frame.index)
        for p, parent in enumerate(parents):
            members = children[spec.parents[level] == p].tolist()
            w = pd.Series(weights[level][spec.parents[level] == p], index=members)
            block = current[members]
            if aggregation == "arithmetic":
                next_level[parent] = (block * w).sum(axis=1) / w.sum()
            else:
                low, spread = block.min(), block.max() - block.min()
                shift = (0.01 * spread).where(spread > 0, 1.0) - low
                block = block + shift.where(low <= 0, 0.0)
                next_level[parent] = np.exp((np.log(block) * w).sum(axis=1) / w.sum())
        result = pd.concat([result, next_level], axis=1)
        current = next_level
    index = current.iloc[:, 0]
    tolerance = RANK_TOLERANCE * index.abs().max()  # scores this close share a place
    result["rank"] = [1 + int((index > value + tolerance).sum()) for value in index]
    return result
