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
    """Min-max to [0, 1] over the observations (axis -2); a constant column becomes 0."""
    low, high = values.min(axis=-2, keepdims=True), values.max(axis=-2, keepdims=True)
    spread = np.where(high > low, high - low, 1.0)
    return (values - low) / spread


def _shares(parts: np.ndarray) -> np.ndarray:
    """Parts (..., indicators) as shares of their sum; equal shares where nothing is positive."""
    total = parts.sum(axis=-1, keepdims=True)
    return np.where(total > 0, parts / np.where(total > 0, total, 1.0), 1.0 / parts.shape[-1])


def entropy_weights(values: np.ndarray) -> np.ndarray:
    """Entropy weights of the columns of (..., observations, indicators) ``values``."""
    x = _unit_interval(values)
    n = x.shape[-2]
    totals = x.sum(axis=-2, keepdims=True)
    shares = np.where(totals > 0, x / np.where(totals > 0, totals, 1.0), 1.0 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(shares > 0, shares * np.log(shares), 0.0)
    entropy = -plogp.sum(axis=-2) / np.log(n) if n > 1 else np.ones(plogp.sum(axis=-2).shape)
    return _shares(np.clip(1.0 - entropy, 0.0, None))


def critic_weights(values: np.ndarray) -> np.ndarray:
    """CRITIC weights of the columns of (..., observations, indicators) ``values``: sd of each
    normalised column times its total conflict sum(1 - r) with the others."""
    x = _unit_interval(values)
    n = x.shape[-2]
    centred = x - x.mean(axis=-2, keepdims=True)
    sums = (centred * centred).sum(axis=-2)
    sd = np.sqrt(sums / (n - 1)) if n > 1 else np.zeros(sums.shape)
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant column: no correlation
        scale = np.sqrt(sums)
        correlation = centred.swapaxes(-1, -2) @ centred / scale[..., :, None] / scale[..., None, :]
    correlation = np.nan_to_num(np.clip(correlation, -1.0, 1.0), nan=0.0)
    return _shares(sd * (1.0 - correlation).sum(axis=-2))


def scheme_weights(
    spec: IndexSpec, scheme: str, values: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Weights per level for ``scheme``; the data-driven ones need ``values`` (..., observations,
    indicators), one set of weights per leading index (years and units pooled into observations
    by the caller)."""
    if scheme == "expert":
        return spec.weights
    if scheme == "equal":
        return tuple(np.ones(len(level)) for level in spec.levels[:-1])
    if scheme not in SCHEMES:
        raise ValueError(f"unknown weighting scheme {scheme!r}")
    if values is None:
        raise ValueError(f"the {scheme} scheme needs the data")
    rows = np.asarray(values, dtype=float)
    leaf = entropy_weights(rows) if scheme == "entropy" else critic_weights(rows)
    levels = [leaf]
    for k in range(len(spec.levels) - 2):
        levels.append(levels[-1] @ spec.membership(k))
    return tuple(levels)
