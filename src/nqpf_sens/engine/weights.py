"""Weighting schemes: the weight of every node within its parent, level by level.

- ``expert``: the weights of the metadata (Table 1 of the paper, dimensions 40/40/20).
- ``equal``: every node weighs the same within its parent, at every level (the JRC default).
- ``entropy``: Shannon-entropy weights of the indicators, as widely used in the NQPF literature.
- ``critic``: CRITIC weights (contrast times conflict; Diakoulaki et al. 1995).

The data-driven schemes weigh all indicators against each other from the min-max normalised data
(years and units pooled as observations); an aggregate then weighs the sum of its indicators'
weights, so the index equals the flat weighted mean of the indicators as in that literature.
"""

from __future__ import annotations

import numpy as np

from nqpf_sens.engine.spec import IndexSpec

SCHEMES = ("expert", "equal", "entropy", "critic")


def _unit_interval(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] over all rows; a constant column becomes 0."""
    low, high = values.min(axis=0), values.max(axis=0)
    spread = np.where(high > low, high - low, 1.0)
    return (values - low) / spread


def entropy_weights(values: np.ndarray) -> np.ndarray:
    """Entropy weights of the columns of an (observations x indicators) array."""
    x = _unit_interval(values)
    n = x.shape[0]
    totals = x.sum(axis=0)
    shares = np.where(totals > 0, x / np.where(totals > 0, totals, 1.0), 1.0 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(shares > 0, shares * np.log(shares), 0.0)
    entropy = -plogp.sum(axis=0) / np.log(n) if n > 1 else np.ones(x.shape[1])
    diversity = np.clip(1.0 - entropy, 0.0, None)
    return (
        diversity / diversity.sum()
        if diversity.sum() > 0
        else np.full(x.shape[1], 1.0 / x.shape[1])
    )


def critic_weights(values: np.ndarray) -> np.ndarray:
    """CRITIC weights: sd of each normalised column times its total conflict sum(1 - r) with the
    others."""
    x = _unit_interval(values)
    sd = x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros(x.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.nan_to_num(np.corrcoef(x, rowvar=False), nan=0.0)
    information = sd * (1.0 - np.atleast_2d(correlation)).sum(axis=0)
    return (
        information / information.sum()
        if information.sum() > 0
        else np.full(x.shape[1], 1.0 / x.shape[1])
    )


def scheme_weights(
    spec: IndexSpec, scheme: str, values: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Weights per level for ``scheme``; ``values`` (..., units, indicators) are needed by the
    data-driven ones."""
    if scheme == "expert":
        return spec.weights
    if scheme == "equal":
        return tuple(np.ones(len(level)) for level in spec.levels[:-1])
    if scheme not in SCHEMES:
        raise ValueError(f"unknown weighting scheme {scheme!r}")
    if values is None:
        raise ValueError(f"the {scheme} scheme needs the data")
    rows = np.asarray(values, dtype=float).reshape(-1, len(spec.indicators))
    leaf = entropy_weights(rows) if scheme == "entropy" else critic_weights(rows)
    levels = [leaf]
    for k in range(len(spec.levels) - 2):
        levels.append(levels[-1] @ spec.membership(k))
    return tuple(levels)
