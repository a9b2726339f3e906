"""Transformations of raw values before normalisation, on arrays shaped (..., years, units,
indicators).

- ``none``: values as they are.
- ``sqrt``: the paper's treatment of the fast-growing award counts (indicators 13-15 in the national
  series): zeros (years before the first award) become 1, then the square root is taken.
- ``log1p``: log(1 + x), a common alternative for skewed counts.
- ``winsorise``: each indicator clipped to its cross-sectional ``[q, 1 - q]`` quantiles
  (q = ``limit``).
- ``treat``: the outlier treatment of the JRC and COINr: an indicator whose |skewness| >= 2 and
  kurtosis >= 3.5 (sample definitions, as Excel and e1071 type 2) has its most extreme value
  (high side if skewness >= 0) replaced by the next one, repeatedly, until it passes or ``winmax``
  points are treated (``force``: an indicator that fails gets ``winmax`` points even once it
  passes, COINr's ``force_win``, which ``Treat`` applies only to an indicator failing its first
  check); if it still fails, the original values get the ``fallback`` transformation:

  - ``log_CT`` (COINr's default): log(x - min + a), a = 0.01 (max - min);
  - ``log_CT_plus`` (COINr's ``log_CT_plus``): the same for positive skew, -log(max + a - x) for
    negative skew, so that a low outlier is pulled in too;
  - ``boxcox`` (COINr's ``boxcox`` with ``makepos``): y = x - min + 1, then (y^l - 1) / l, or
    log y when l (``boxcox_lambda``) is 0;
  - ``none``: the winsorised values are kept even though they still fail.

Only the indicators in ``mask`` are changed (those flagged in the metadata, or all). ``winmax``,
``fallback`` and ``boxcox_lambda`` may be given per indicator (COINr's ``indiv_specs``: the
pipeline fills them from the metadata columns of the same names).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("none", "sqrt", "log1p", "winsorise", "treat")
FALLBACKS = ("log_CT", "log_CT_plus", "boxcox", "none")


def domain_problem(method: str, values: np.ndarray) -> str | None:
    """Why ``method`` cannot be applied to ``values`` (already restricted to the targeted
    indicators), or None."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return None
    if method == "sqrt" and finite.min() < 0:
        return f"the square root needs non-negative values (found {finite.min():g})"
    if method == "log1p" and finite.min() <= -1:
        return f"log(1 + x) needs values above -1 (found {finite.min():g})"
    return None


def transform(
    values: np.ndarray,
    method: str = "none",
    mask: np.ndarray | None = None,
    limit: float = 0.05,
    winmax: int | np.ndarray = 5,
    skew_threshold: float = 2.0,
    kurtosis_threshold: float = 3.5,
    fallback: str | Sequence[str] = "log_CT",
    force: bool = False,
    boxcox_lambda: float | np.ndarray = 0.5,
) -> np.ndarray:
    """Return transformed values; indicators outside ``mask`` (bool per indicator) are unchanged.
    ``winmax``, ``fallback``, ``force`` and ``boxcox_lambda`` (one, or one per indicator) steer
    ``treat`` (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"unknown transformation {method!r}")
    values = np.asarray(values, dtype=float)
    if method == "none":
        return values
    mask = np.ones(values.shape[-1], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    # indicators outside the mask are kept as they are, so never computed on (a negative one
    # made numpy warn)
    if method == "sqrt":
        changed = np.sqrt(np.where((values == 0) | ~mask, 1.0, values))
    elif method == "log1p":
        changed = np.log1p(np.where(mask, values, 0.0))
    elif method == "treat":  # every targeted indicator of every scenario and year at once
        targets = np.flatnonzero(mask)
        columns = np.moveaxis(values[..., targets], -1, 0)  # (indicators, ..., units)
        rows = columns.shape[:-1]

        def per_row(setting) -> np.ndarray:
            chosen = np.broadcast_to(np.asarray(setting), values.shape[-1:])[targets]
            return np.broadcast_to(chosen.reshape((-1,) + (1,) * (len(rows) - 1)), rows)

        changed = values.copy()
        changed[..., targets] = np.moveaxis(
            treat_outliers(
                columns,
                per_row(winmax),
                skew_threshold,
                kurtosis_threshold,
                per_row(fallback),
                force,
                per_row(boxcox_lambda),
            ),
            0,
            -1,
        )
    else:
        if not 0 <= limit < 0.5:
            raise ValueError("the winsorisation limit is a quantile in [0, 0.5)")
        low, high = (_unit_quantile(values, q) for q in (limit, 1 - limit))
        changed = np.clip(values, low, high)
    return np.where(mask, changed, values)


def _unit_quantile(values: np.ndarray, q: float) -> np.ndarray:
    """``np.nanquantile(values, q, axis=-2, keepdims=True)`` (its linear interpolation, computed
    as numpy does) by one sort: numpy's loops over the many short columns of a stack of
    tables."""
    ordered = np.sort(np.moveaxis(values, -2, -1), axis=-1)  # missing cells last
    n = (~np.isnan(ordered)).sum(axis=-1, keepdims=True)
    place = (n - 1) * q
    below = np.floor(place)
    last = np.maximum(n - 1, 0)
    a = np.take_along_axis(ordered, np.clip(below, 0, last).astype(int), axis=-1)
    b = np.take_along_axis(ordered, np.clip(below + 1, 0, last).astype(int), axis=-1)
    t = place - below
    between = np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)
    return np.moveaxis(between, -1, -2)


def sample_moments(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample skewness and excess kurtosis (type 2: Excel, e1071, COINr) of each row of
    ``values`` (..., n), skipping NaN; NaN where undefined (fewer than 3, or 4, values; a
    constant row)."""
    observed = ~np.isnan(values)
    n = observed.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(observed, values, 0.0).sum(axis=-1, keepdims=True) / n[..., None]
        deviations = np.where(observed, values - mean, 0.0)
        squares = deviations * deviations
        m2, m3, m4 = ((squares * factor).sum(axis=-1) for factor in (1.0, deviations, squares))
        skewness = np.sqrt(n) * m3 / m2**1.5 * np.sqrt(n * (n - 1)) / (n - 2)
        ratio = n * m4 / m2**2
        kurtosis = ((n + 1) * (ratio - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))
    return np.where(n >= 3, skewness, np.nan), np.where(n >= 4, kurtosis, np.nan)


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_moments` of the rows, those of values far from 1 in size divided by their
    largest first (the moments do not change): the squares of 1e200 overflow, and of 1e-200
    vanish, leaving the moments undefined, so that such an indicator was never treated."""
    largest = np.max(np.where(np.isnan(x), 0.0, np.abs(x)), axis=-1, keepdims=True)
    far = np.isfinite(largest) & ((largest > 1e100) | ((largest < 1e-100) & (largest > 0)))
    return sample_moments(np.where(far, x / np.where(far, largest, 1.0), x))


def _passes(x: np.ndarray, skew_threshold: float, kurtosis_threshold: float) -> np.ndarray:
    """Whether each row passes the outlier rule (an undefined moment passes)."""
    skewness, kurtosis = _moments(x)
    return ~((np.abs(skewness) >= skew_threshold) & (kurtosis >= kurtosis_threshold))


def treat_outliers(
    values: np.ndarray,
    winmax: int | np.ndarray = 5,
    skew_threshold: float = 2.0,
    kurtosis_threshold: float = 3.5,
    fallback: str | np.ndarray = "log_CT",
    force: bool = False,
    boxcox_lambda: float | np.ndarray = 0.5,
) -> np.ndarray:
    """Each row of ``values`` (..., units: one indicator across units, per scenario and year)
    treated as the module docstring describes, all rows at once (NaN cells untouched);
    ``winmax``, ``fallback`` and ``boxcox_lambda`` are one or one per row (``values.shape[:-1]``).
    """
    values = np.asarray(values, dtype=float)
    original = values.reshape(-1, values.shape[-1])

    def per_row(setting) -> np.ndarray:
        return np.broadcast_to(setting, values.shape[:-1]).reshape(-1)

    limits, fallbacks, lambdas = per_row(winmax), per_row(fallback), per_row(boxcox_lambda)
    observed = ~np.isnan(original)
    x = original.copy()
    # COINr's Treat checks first: even force_win leaves a passing indicator alone
    failing = (observed.sum(axis=1) >= 4) & ~_passes(x, skew_threshold, kurtosis_threshold)
    treated = np.zeros(x.shape, dtype=bool)
    rows = np.flatnonzero(failing)
    while True:
        if not force:
            rows = rows[~_passes(x[rows], skew_threshold, kurtosis_threshold)]
        rows = rows[treated[rows].sum(axis=1) < limits[rows]]
        if rows.size == 0:
            break
        part, seen = x[rows], observed[rows]
        high = ~(_moments(part)[0] < 0)  # an undefined skew counts as 0: the high side
        extreme = np.where(
            high,
            np.where(seen, part, -np.inf).max(axis=1),
            np.where(seen, part, np.inf).min(axis=1),
        )
        at_extreme = part == extreme[:, None]
        rest = seen & ~at_extreme
        replacement = np.where(
            high,
            np.where(rest, part, -np.inf).max(axis=1),
            np.where(rest, part, np.inf).min(axis=1),
        )
        moved = rest.any(axis=1)  # a row of equal values has nothing to move to: it stops
        at_extreme &= moved[:, None]
        x[rows] = np.where(at_extreme, replacement[:, None], part)
        treated[rows] |= at_extreme
        rows = rows[moved]
    unresolved = failing & ~_passes(x, skew_threshold, kurtosis_threshold)
    for method in set(fallbacks[unresolved]) - {"none"}:
        chosen = unresolved & (fallbacks == method)
        x[chosen] = _fallback(original[chosen], method, lambdas[chosen])
    return x.reshape(values.shape)


def _fallback(x: np.ndarray, method: str, boxcox_lambda: np.ndarray) -> np.ndarray:
    """The transformation rows (of an indicator) get when winsorisation cannot make them pass;
    ``boxcox_lambda`` has one value per row."""
    low, high = np.nanmin(x, axis=1, keepdims=True), np.nanmax(x, axis=1, keepdims=True)
    a = 0.01 * (high - low)
    if method == "boxcox":
        y = x - low + 1.0
        power = boxcox_lambda[:, None]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # reported later
            return np.where(power == 0, np.log(y), (y**power - 1.0) / power)
    if method == "log_CT_plus":
        negative = _moments(x)[0][:, None] <= 0
        with np.errstate(invalid="ignore", divide="ignore"):  # each row takes one branch
            return np.where(negative, -np.log(high + a - x), np.log(x - low + a))
    return np.log(x - low + a)
