"""Normalisation of (transformed) values shaped (..., years, units, indicators).

Cross-sectional methods compare units within a year; ``base_year`` compares a unit's years.
``direction`` (+1 / -1 per indicator) makes "higher is better" hold after normalisation.

- ``minmax`` (the paper, provinces): 100 (x - min) / (max - min), in [0, 100]; with ``minmax_range``
  ``(l, u)``, l + (u - l) (x - min) / (max - min) (COINr's ``n_minmax(x, l_u)``; its sensitivity
  vignette uses [1, 100]).
- ``zscore``: (x - mean) / sd, population sd (``zscore_ddof`` 0); with ``zscore_scale`` ``(m, s)``,
  m + s (x - mean) / sd (COINr's ``n_zscore(x, m_sd)``, which uses R's ``sd``: ``zscore_ddof``
  1). The sd's divisor scales every z-score alike, which no arithmetic ranking can see, but with a
  mean of 10 (COINr's vignette: ``(10, 2)``, positive for a geometric mean) it changes the ratios
  a geometric mean compares.
- ``rank``: percentile rank, 100 (r - 1) / (n - 1) with average ranks for ties, in [0, 100].
- ``distance_to_leader``: 100 x / max (negative direction: 100 min / x); needs positive values.
- ``distance_to_mean``: 100 (1 + d (x - mean) / |mean|), so the mean unit scores 100.
- ``base_year`` (the paper, national series): 100 x_t / x_base (negative direction: 100 x_base /
  x_t); as in the paper, a zero (a count before its first award year) is replaced by 1 first.

A constant indicator carries no information: under ``minmax``, ``rank`` and ``zscore`` every unit
gets the scale's midpoint (the middle of the min-max range, 50, the z-score mean), so it shifts all
scores alike and never divides by zero.
"""

from __future__ import annotations

import numpy as np

METHODS = ("minmax", "zscore", "rank", "distance_to_leader", "distance_to_mean", "base_year")
#: Methods whose output can be zero or negative (a geometric or harmonic mean needs the
#: documented shift).
NON_POSITIVE_OUTPUT = ("minmax", "zscore", "rank", "distance_to_leader", "distance_to_mean")
MINMAX_RANGE = (0.0, 100.0)
ZSCORE_SCALE = (0.0, 1.0)
UNIT_AXIS = -2
YEAR_AXIS = -3


def domain_problem(
    method: str, values: np.ndarray, direction: np.ndarray, base_index: int = 0
) -> str | None:
    """Why ``method`` cannot normalise ``values``, or None; checked before anything runs."""
    direction = np.asarray(direction)
    if method == "distance_to_leader":
        positive = values[..., direction > 0]
        negative = values[..., direction < 0]
        if positive.size and np.nanmin(positive) < 0:
            return "distance to the leader needs non-negative values"
        if positive.size and np.any(np.nanmax(positive, axis=UNIT_AXIS) <= 0):
            return "distance to the leader needs a positive maximum for every indicator"
        if negative.size and np.nanmin(negative) <= 0:
            return "distance to the leader needs positive values for negative-direction indicators"
    if method == "distance_to_mean":
        with np.errstate(all="ignore"):
            if np.any(np.nanmean(values, axis=UNIT_AXIS) == 0):
                return "distance to the mean needs a non-zero mean for every indicator"
    if method == "base_year":
        base = np.take(np.where(values == 0, 1.0, values), base_index, axis=YEAR_AXIS)
        if np.any(~(base > 0)):
            return "the base year needs a positive value for every unit and indicator"
        if np.any(direction < 0) and np.nanmin(values) <= 0:
            return "the base year method needs positive values for negative-direction indicators"
    return None


def normalise(
    values: np.ndarray,
    method: str = "minmax",
    direction: np.ndarray | None = None,
    base_index: int = 0,
    minmax_range: tuple[float, float] = MINMAX_RANGE,
    zscore_scale: tuple[float, float] = ZSCORE_SCALE,
    zscore_ddof: int = 0,
) -> np.ndarray:
    """Return normalised values of the same shape; ``base_index`` is the base year's position,
    ``minmax_range`` the min-max target range, ``zscore_scale`` the z-scores' mean and sd and
    ``zscore_ddof`` the delta degrees of freedom of their sd (numpy's, R's ``sd`` is 1)."""
    if method not in METHODS:
        raise ValueError(f"unknown normalisation {method!r}")
    values = np.asarray(values, dtype=float)
    d = np.ones(values.shape[-1]) if direction is None else np.asarray(direction, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "base_year":
            values = np.where(values == 0, 1.0, values)
            ratio = values / np.take(values, [base_index], axis=YEAR_AXIS)
            return 100.0 * np.where(d > 0, ratio, 1.0 / ratio)
        if method == "distance_to_leader":
            top = np.max(values, axis=UNIT_AXIS, keepdims=True)
            bottom = np.min(values, axis=UNIT_AXIS, keepdims=True)
            return 100.0 * np.where(d > 0, values / top, bottom / values)
        if method == "distance_to_mean":
            mean = np.mean(values, axis=UNIT_AXIS, keepdims=True)
            return 100.0 * (1.0 + d * (values - mean) / np.abs(mean))
        oriented = values * d
        if method == "minmax":
            bottom, top = minmax_range
            low = np.min(oriented, axis=UNIT_AXIS, keepdims=True)
            spread = np.max(oriented, axis=UNIT_AXIS, keepdims=True) - low
            width = top - bottom
            scaled = np.where(spread > 0, width * (oriented - low) / spread, width / 2)
            return scaled if bottom == 0 else bottom + scaled
        if method == "zscore":
            mean, scale = zscore_scale
            constant = np.ptp(oriented, axis=UNIT_AXIS, keepdims=True) == 0
            centred = oriented - np.mean(oriented, axis=UNIT_AXIS, keepdims=True)
            n = values.shape[UNIT_AXIS]
            sd = np.sqrt(np.sum(centred**2, axis=UNIT_AXIS, keepdims=True) / (n - zscore_ddof))
            return mean + scale * np.where(constant, 0.0, centred / sd)
    n_units = values.shape[UNIT_AXIS]
    if n_units < 2:
        return np.full_like(values, 50.0)
    from scipy.stats import (
        rankdata,
    )  # here: scipy.stats takes a second to import, workers rarely need it

    ranks = rankdata(oriented, method="average", axis=UNIT_AXIS)
    return 100.0 * (ranks - 1.0) / (n_units - 1.0)
