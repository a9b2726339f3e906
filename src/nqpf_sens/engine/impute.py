"""Imputation of missing cells (NaN) in arrays shaped (..., years, units, indicators).

Time-series rules fill each unit's series along the years; cross-sectional rules fill from the
other units of the same year. A cell that a time-series rule cannot reach (a series with no
observation, or too few for the rule) is left for ``fallback`` (a cross-sectional rule) or stays
NaN for the caller to report.

- ``growth`` (the paper): a gap between two observed years is filled at the constant annual growth
  rate between them; years after the last (before the first) observation are extrapolated at the
  average annual growth rate over the whole observed span. Where an end point is not positive the
  rate is undefined and the rule falls back to ``linear`` for that cell.
- ``linear``: straight line between neighbours; extrapolation continues the line through the two
  nearest observations.
- ``locf``: last observation carried forward; leading gaps take the first observation.
- ``loglinear_trend``: exponential trend fitted by least squares on log values of the whole series
  (a linear trend where a value is not positive).
- ``mean`` / ``median``: the cross-sectional mean / median of the same indicator and year; with
  ``groups`` (a group label per unit, e.g. COINr's GDP-per-capita or region groups) the mean /
  median of the unit's own group.

Fallbacks for what the rule leaves: ``mean`` / ``median`` (cross-sectional) or ``flat``, which holds
a series with no observation at all constant (1), so that under base-year normalisation it stays
at 100 and carries no trend: the neutral reading for the national series the paper uses but whose
values it never states.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TIME_SERIES_RULES = ("growth", "linear", "locf", "loglinear_trend")
CROSS_SECTION_RULES = ("mean", "median")
RULES = ("none", *TIME_SERIES_RULES, *CROSS_SECTION_RULES)
FALLBACKS = (*CROSS_SECTION_RULES, "flat")


def impute(
    values: np.ndarray,
    rule: str = "growth",
    fallback: str | None = None,
    groups: np.ndarray | None = None,
    years: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Return a copy of ``values`` with missing cells filled by ``rule`` (then ``fallback``).
    Time-series rules measure time in ``years`` (the years of the second-to-last axis of values;
    default: one apart), so that a gap of three years grows three years' worth."""
    if rule not in RULES:
        raise ValueError(f"unknown imputation rule {rule!r}")
    if fallback is not None and fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}")
    filled = np.array(values, dtype=float)
    if rule == "none" or not np.isnan(filled).any():
        return filled
    if rule in CROSS_SECTION_RULES:
        filled = (
            _cross_section(filled, rule) if groups is None else _within_groups(filled, rule, groups)
        )
    else:
        series = np.moveaxis(filled, -3, -1)
        shape = series.shape
        times = (
            np.arange(shape[-1], dtype=float)
            if years is None or None in years
            else np.asarray(years, dtype=float)
        )
        series = _fill_series(series.reshape(-1, shape[-1]), rule, times).reshape(shape)
        filled = np.moveaxis(series, -1, -3)
    if fallback is not None and np.isnan(filled).any():
        filled = (
            np.where(np.isnan(filled), 1.0, filled)
            if fallback == "flat"
            else _cross_section(filled, fallback)
        )
    return filled


def _cross_section(values: np.ndarray, rule: str) -> np.ndarray:
    missing = np.isnan(values)
    if rule == "median":  # a median sorts its column: only those with a cell to fill are sorted
        lacking = missing.any(axis=-2)  # (..., indicators)
        centre = np.full(lacking.shape, np.nan)
        centre[lacking] = _nanmedian(np.moveaxis(values, -2, -1)[lacking])
        return np.where(missing, centre[..., None, :], values)
    with np.errstate(all="ignore"), _quiet_all_nan():
        centre = np.nanmean(values, axis=-2, keepdims=True)
    return np.where(missing, np.broadcast_to(centre, values.shape), values)


def _nanmedian(rows: np.ndarray) -> np.ndarray:
    """The median of each row's observed values (NaN for a row without any) by one sort, missing
    cells sorting last: ``np.nanmedian`` is many times slower on many short rows."""
    ordered = np.sort(rows, axis=-1)
    n = (~np.isnan(ordered)).sum(axis=-1, keepdims=True)
    low = np.take_along_axis(ordered, np.maximum(n - 1, 0) // 2, axis=-1)
    high = np.take_along_axis(ordered, np.minimum(n // 2, ordered.shape[-1] - 1), axis=-1)
    return ((low + high) / 2)[..., 0]


def _within_groups(values: np.ndarray, rule: str, groups: np.ndarray) -> np.ndarray:
    filled = values.copy()
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        filled[..., members, :] = _cross_section(values[..., members, :], rule)
    return filled


class _quiet_all_nan:
    """Silence numpy's 'mean of empty slice' warnings: an all-missing column stays NaN and is
    reported."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


def _neighbours(observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the last observation at or before t and of the first at or after t (-1 / T if
    none)."""
    n_rows, n_years = observed.shape
    steps = np.broadcast_to(np.arange(n_years), observed.shape)
    previous = np.maximum.accumulate(np.where(observed, steps, -1), axis=1)
    following = np.minimum.accumulate(np.where(observed, steps, n_years)[:, ::-1], axis=1)[:, ::-1]
    return previous, following


def _take(series: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(series, np.clip(index, 0, series.shape[1] - 1), axis=1)


def _fill_series(series: np.ndarray, rule: str, times: np.ndarray) -> np.ndarray:
    """Fill rows of a (rows, years) array, its columns at ``times``; rows without any
    observation stay NaN."""
    observed = ~np.isnan(series)
    t = np.broadcast_to(times, series.shape)
    previous, following = _neighbours(observed)
    first = following[:, :1]
    last = previous[:, -1:]
    if rule == "loglinear_trend":
        estimate = _trend(series, observed, t)
    elif rule == "locf":
        estimate = np.where(previous >= 0, _take(series, previous), _take(series, following))
    else:
        estimate = _linear(series, times, previous, following, first, last)
        if rule == "growth":
            geometric = _growth(series, times, previous, following, first, last)
            estimate = np.where(np.isnan(geometric), estimate, geometric)
    has_any = observed.any(axis=1, keepdims=True)
    return np.where(observed, series, np.where(has_any, estimate, np.nan))


def _time(times: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The time of each column index (clipped to the columns, as :func:`_take`)."""
    return times[np.clip(index, 0, times.size - 1)]


def _linear(series, times, previous, following, first, last):
    """Interpolate between neighbours; extrapolate through the two nearest observations."""
    n_years = series.shape[1]
    steps = np.arange(n_years)
    t = np.broadcast_to(times, series.shape)
    second_last = np.where(last >= 1, _take(previous, last - 1), -1)
    second = np.where(first + 1 < n_years, _take(following, first + 1), n_years)
    y_previous, y_following = _take(series, previous), _take(series, following)
    y_first, y_last = _take(series, first), _take(series, last)
    with np.errstate(all="ignore"):
        inner = y_previous + (y_following - y_previous) * (t - _time(times, previous)) / (
            _time(times, following) - _time(times, previous)
        )
        slope_end = np.where(
            second_last >= 0,
            (y_last - _take(series, second_last))
            / (_time(times, last) - _time(times, second_last)),
            0.0,
        )
        slope_start = np.where(
            second < n_years,
            (_take(series, second) - y_first) / (_time(times, second) - _time(times, first)),
            0.0,
        )
    after = y_last + slope_end * (t - _time(times, last))
    before = y_first + slope_start * (t - _time(times, first))
    return np.where(steps > last, after, np.where(steps < first, before, inner))


def _growth(series, times, previous, following, first, last):
    """Constant growth between neighbours; average growth over the observed span outside it (NaN
    if undefined)."""
    steps = np.arange(series.shape[1])
    t = np.broadcast_to(times, series.shape)
    with np.errstate(all="ignore"):
        y_prev, y_next = _take(series, previous), _take(series, following)
        t_prev = _time(times, previous)
        inner = y_prev * (y_next / y_prev) ** ((t - t_prev) / (_time(times, following) - t_prev))
        inner = np.where((y_prev > 0) & (y_next > 0), inner, np.nan)
        y_first, y_last = _take(series, first), _take(series, last)
        t_first, t_last = _time(times, first), _time(times, last)
        span = t_last - t_first
        rate = np.where(span > 0, (y_last / y_first) ** (1.0 / np.where(span > 0, span, 1)), 1.0)
        positive = (y_first > 0) & (y_last > 0)
        after = np.where(positive, y_last * rate ** (t - t_last), np.nan)
        before = np.where(positive, y_first * rate ** (t - t_first), np.nan)
    return np.where(steps > last, after, np.where(steps < first, before, inner))


def _trend(series, observed, t):
    """Least-squares trend per row: exponential where all observations are positive, linear
    otherwise."""
    positive = np.all(np.where(observed, series > 0, True), axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        target = np.where(positive, np.log(np.where(series > 0, series, 1.0)), series)
    weight = observed.astype(float)
    count = weight.sum(axis=1, keepdims=True)
    safe = np.maximum(count, 1)
    t_mean = (weight * t).sum(axis=1, keepdims=True) / safe
    y_mean = (weight * np.nan_to_num(target)).sum(axis=1, keepdims=True) / safe
    s_tt = (weight * (t - t_mean) ** 2).sum(axis=1, keepdims=True)
    s_ty = (weight * (t - t_mean) * (np.nan_to_num(target) - y_mean)).sum(axis=1, keepdims=True)
    slope = np.where(s_tt > 0, s_ty / np.where(s_tt > 0, s_tt, 1), 0.0)
    fitted = y_mean + slope * (t - t_mean)
    with np.errstate(over="ignore"):  # a trend that overflows is refused where it is checked
        grown = np.exp(np.where(positive, fitted, 0.0))
    return np.where(positive, grown, fitted)
