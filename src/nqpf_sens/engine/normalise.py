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
- ``distance_to_leader``: 100 x / max (negative direction: 100 min / x); needs positive values
  (COINr's ``n_fracmax``, which scores 1 where this scores 100: the pipeline's ``distance_scale``
  sets it for the three distance methods, 1 for COINr's scale).
- ``distance_to_mean``: 100 (1 + d (x - mean) / |mean|), so the mean unit scores 100.
- ``borda``: the unit's rank from the bottom minus 1, ties sharing the lowest (COINr's
  ``n_borda``): the number of units it beats, in [0, n - 1].
- ``goalposts``: s (x - l) / (u - l), cut to [0, s], with each indicator's goalposts ``l``, ``u``
  and scale ``s`` from the metadata (``goalpost_lower``, ``goalpost_upper``, ``goalpost_scale``,
  100 where empty; a negative indicator scores s at ``l``): COINr's ``n_goalposts`` with
  ``trunc2posts``.
- ``distance_to_target``: 100 (x - min) / (target - min) (negative direction: 100 (max - x) /
  (max - target)) with each indicator's ``Target`` from the metadata (COINr's ``n_dist2targ``);
  beyond the target a unit scores above 100.
- ``distance_to_reference``: 100 (x - min) / (x_ref - min) against the pipeline's
  ``reference_unit`` (negative: 100 (max - x) / (max - x_ref); COINr's ``n_dist2ref``).
- ``base_year`` (the paper, national series): 100 x_t / x_base (negative direction: 100 x_base /
  x_t); as in the paper, a zero (a count before its first award year) is replaced by 1 first.

Missing cells (NaN, left by ``imputation = "none"`` when the pipeline's ``data_threshold`` lets
them through) stay missing, and every statistic a method takes across units (min, max, mean, sd,
ranks) is taken over the units observed, as COINr's ``n_*`` functions do with ``na.rm``.

A constant indicator carries no information: under ``minmax``, ``rank`` and ``zscore`` every unit
gets the scale's midpoint (the middle of the min-max range, 50, the z-score mean), so it shifts all
scores alike and never divides by zero.
"""

from __future__ import annotations

import numpy as np

METHODS = (
    "minmax",
    "zscore",
    "rank",
    "borda",
    "goalposts",
    "distance_to_target",
    "distance_to_reference",
    "distance_to_leader",
    "distance_to_mean",
    "base_year",
)
#: the metadata columns each method needs
NEEDS = {"goalposts": ("goalpost_lower", "goalpost_upper"), "distance_to_target": ("Target",)}
MINMAX_RANGE = (0.0, 100.0)
ZSCORE_SCALE = (0.0, 1.0)
DISTANCE_SCALE = 100.0  # COINr's n_dist2targ, n_dist2ref and n_fracmax score 1
UNIT_AXIS = -2
YEAR_AXIS = -3


def domain_problem(
    method: str,
    values: np.ndarray,
    direction: np.ndarray,
    base_index: int = 0,
    parameters: dict[str, np.ndarray] | None = None,
    reference: int | None = None,
) -> str | None:
    """Why ``method`` cannot normalise ``values``, or None; checked before anything runs."""
    direction = np.asarray(direction)
    parameters = parameters or {}
    for column in NEEDS.get(method, ()):
        if column not in parameters:
            return f"needs a '{column}' column in the metadata"
        if np.isnan(parameters[column]).any():
            return f"needs a '{column}' for every indicator (the metadata leaves some empty)"
    if method == "goalposts" and np.any(
        parameters["goalpost_lower"] == parameters["goalpost_upper"]
    ):
        return "an indicator's goalposts are equal"
    if method in ("distance_to_target", "distance_to_reference"):
        if method == "distance_to_reference" and reference is None:
            return "needs [pipeline] reference_unit"
        worst, best = _distance_ends(method, values, direction, parameters, reference)
        if method == "distance_to_reference" and np.isnan(best).any():
            return "the reference unit has a missing value"
        if np.any(best == worst):
            return (
                "the target is the worst value of an indicator"
                if method == "distance_to_target"
                else "the reference unit has the worst value of an indicator"
            )
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
    minmax_range: tuple[float | np.ndarray, float | np.ndarray] = MINMAX_RANGE,
    zscore_scale: tuple[float | np.ndarray, float | np.ndarray] = ZSCORE_SCALE,
    zscore_ddof: int = 0,
    parameters: dict[str, np.ndarray] | None = None,
    reference: int | None = None,
    distance_scale: float = DISTANCE_SCALE,
) -> np.ndarray:
    """Return normalised values of the same shape; ``base_index`` is the base year's position,
    ``minmax_range`` the min-max target range, ``zscore_scale`` the z-scores' mean and sd (each
    one number or one per indicator) and
    ``zscore_ddof`` the delta degrees of freedom of their sd (numpy's, R's ``sd`` is 1);
    ``parameters`` the per-indicator metadata columns and ``reference`` the reference unit's
    position (see :func:`domain_problem` for what each method needs); ``distance_scale`` the
    score of the leader, target or reference unit under the distance methods."""
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
            leader, laggard = _highest(values), _lowest(values)
            return distance_scale * np.where(d > 0, values / leader, laggard / values)
        if method in ("distance_to_target", "distance_to_reference"):
            worst, best = _distance_ends(method, values, d, parameters or {}, reference)
            return distance_scale * (values - worst) / (best - worst)
        if method == "goalposts":
            given = parameters or {}
            low, high = given["goalpost_lower"], given["goalpost_upper"]
            good, bad = np.where(d > 0, high, low), np.where(d > 0, low, high)
            ceiling = given.get("goalpost_scale", np.full(d.shape, np.nan))
            share = np.clip((values - bad) / (good - bad), 0.0, 1.0)
            return share * np.where(np.isnan(ceiling), 100.0, ceiling)
        if method == "distance_to_mean":
            mean = _mean(values)
            return 100.0 * (1.0 + d * (values - mean) / np.abs(mean))
        oriented = values * d
        if method == "minmax":
            bottom, top = minmax_range
            lowest = _lowest(oriented)
            spread = _highest(oriented) - lowest
            width = top - bottom
            # a constant indicator: 0 / inf, plus the midpoint (a missing cell stays missing)
            scaled = width * (oriented - lowest) / np.where(spread > 0, spread, np.inf)
            scaled += np.where(spread > 0, 0.0, width / 2)
            return scaled if np.all(np.equal(bottom, 0)) else bottom + scaled
        if method == "zscore":
            centre, scale = zscore_scale
            constant = _highest(oriented) == _lowest(oriented)
            centred = oriented - _mean(oriented)
            squares, n = _sum_and_count(centred**2)
            sd = np.sqrt(squares / (n - zscore_ddof))
            return centre + scale * np.where(constant, 0.0 * centred, centred / sd)
    if method == "borda":
        return ascending_ranks(oriented, UNIT_AXIS, "min") - 1.0
    n_units = np.sum(~np.isnan(values), axis=UNIT_AXIS, keepdims=True)
    ranks = ascending_ranks(oriented, UNIT_AXIS, "average")
    with np.errstate(divide="ignore", invalid="ignore"):
        percentile = np.where(n_units < 2, 50.0, 100.0 * (ranks - 1.0) / (n_units - 1.0))
    return np.where(np.isnan(values), np.nan, percentile)


def ascending_ranks(values: np.ndarray, axis: int = -1, ties: str = "average") -> np.ndarray:
    """Ranks along ``axis``, 1 for the lowest value; tied values share the mean of their places
    (``average``) or the first (``min``); NaN cells are left out and stay NaN. As
    ``scipy.stats.rankdata(nan_policy="omit")``, without its second of import time."""
    x = np.moveaxis(np.asarray(values, dtype=float), axis, -1)
    # NaN last, so the others' places are unchanged; not a stable sort (three to four times
    # slower here): tied values share a place, in whatever order they are sorted
    order = np.argsort(x, axis=-1)
    ordered = np.take_along_axis(x, order, axis=-1)
    places = np.broadcast_to(np.arange(x.shape[-1]), x.shape)
    starts = np.ones(x.shape, dtype=bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    first = np.maximum.accumulate(np.where(starts, places, 0), axis=-1)
    if ties == "min":
        place = first + 1.0
    else:
        ends = np.ones(x.shape, dtype=bool)
        ends[..., :-1] = starts[..., 1:]
        last = np.flip(
            np.minimum.accumulate(np.flip(np.where(ends, places, x.shape[-1]), -1), axis=-1), -1
        )
        place = (first + last) / 2 + 1.0
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, place, axis=-1)
    return np.moveaxis(np.where(np.isnan(x), np.nan, ranks), -1, axis)


def _lowest(values: np.ndarray) -> np.ndarray:
    """Each indicator's minimum over the units observed (``fmin`` skips NaN at ``min``'s speed)."""
    return np.fmin.reduce(values, axis=UNIT_AXIS, keepdims=True)


def _highest(values: np.ndarray) -> np.ndarray:
    return np.fmax.reduce(values, axis=UNIT_AXIS, keepdims=True)


def _sum_and_count(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | int]:
    """Each indicator's sum over the units observed, and their number (the slower NaN-aware
    sums only where a cell is missing)."""
    if np.isnan(values).any():
        observed = ~np.isnan(values)
        total = np.sum(values, axis=UNIT_AXIS, keepdims=True, where=observed)
        return total, np.sum(observed, axis=UNIT_AXIS, keepdims=True)
    return np.sum(values, axis=UNIT_AXIS, keepdims=True), values.shape[UNIT_AXIS]


def _mean(values: np.ndarray) -> np.ndarray:
    """Each indicator's mean over the units observed."""
    total, count = _sum_and_count(values)
    return total / count


def _distance_ends(
    method: str,
    values: np.ndarray,
    direction: np.ndarray,
    parameters: dict[str, np.ndarray],
    reference: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each indicator's worst value and the value that scores 100: its target, or the reference
    unit's value."""
    worst = np.where(direction > 0, _lowest(values), _highest(values))
    if method == "distance_to_target":
        best = np.asarray(parameters["Target"], dtype=float)
    else:
        best = np.take(values, [int(reference or 0)], axis=UNIT_AXIS)
    return worst, best
