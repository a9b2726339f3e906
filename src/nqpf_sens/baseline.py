"""The nominal run: scores, sub-indices, ranks and tiers under the configured pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nqpf_sens.engine import BatchResult

INDEX_COLUMN = "total"


def score_frame(result: BatchResult, scenario: int = 0) -> pd.DataFrame:
    """One scenario as a tidy table: ``unit``, ``total``, one column per aggregate, ``rank``, ``tier``
    (with a leading ``year`` column when the data hold several years)."""
    scores = result.scores[scenario]
    n_years, n_units, _ = scores.shape
    frame = pd.DataFrame({"unit": np.tile(result.units, n_years)})
    if len(result.years) > 1:
        frame.insert(0, "year", np.repeat(result.years, n_units))
    frame[INDEX_COLUMN] = scores[..., -1].ravel()
    for k, code in enumerate(result.aggregates[:-1]):
        frame[code] = scores[..., k].ravel()
    frame["rank"] = result.ranks[scenario].ravel()
    frame["tier"] = result.tiers[scenario].ravel()
    return frame
