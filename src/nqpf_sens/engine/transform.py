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
    if method == "sqrt":
        changed = np.sqrt(np.where(values == 0, 1.0, values))
    elif method == "log1p":
        changed = np.log1p(values)
    elif method == "treat":
        n = values.shape[-1]
        points = np.broadcast_to(winmax, n)
        fallbacks = [fallback] * n if isinstance(fallback, str) else list(fallback)
        lambdas = np.broadcast_to(boxcox_lambda, n)
        changed = values.copy()
        for j in np.flatnonzero(mask):  # each indicator with its own parameters
            changed[..., j] = np.apply_along_axis(
                treat_outliers,
                -1,
                values[..., j],
                int(points[j]),
                skew_threshold,
                kurtosis_threshold,
                fallbacks[j],
                force,
                float(lambdas[j]),
            )
    else:
        if not 0 <= limit < 0.5:
            raise ValueError("the winsorisation limit is a quantile in [0, 0.5)")
        low, high = np.nanquantile(values, [limit, 1 - limit], axis=-2, keepdims=True)
        changed = np.clip(values, low, high)
    return np.where(mask, changed, values)


def skewness(x: np.ndarray) -> float:
    """Sample skewness (type 2: Excel, e1071)."""
    n = x.size
    d = x - x.mean()
    m2 = (d**2).sum()
    return (
        float(np.sqrt(n) * (d**3).sum() / m2**1.5 * np.sqrt(n * (n - 1)) / (n - 2))
        if m2 > 0 and n > 2
        else 0.0
    )


def kurtosis(x: np.ndarray) -> float:
    """Sample excess kurtosis (type 2: Excel, e1071)."""
    n = x.size
    d = x - x.mean()
    m2 = (d**2).sum()
    if m2 == 0 or n < 4:
        return 0.0
    r = n * (d**4).sum() / m2**2
    return float(((n + 1) * (r - 3) + 6) * (n - 1) / ((n - 2) * (n - 3)))


def _passes(x: np.ndarray, skew_threshold: float, kurtosis_threshold: float) -> bool:
    return abs(skewness(x)) < skew_threshold or kurtosis(x) < kurtosis_threshold


def treat_outliers(
    column: np.ndarray,
    winmax: int = 5,
    skew_threshold: float = 2.0,
    kurtosis_threshold: float = 3.5,
    fallback: str = "log_CT",
    force: bool = False,
    boxcox_lambda: float = 0.5,
) -> np.ndarray:
    """One indicator across units, treated as the module docstring describes (NaN cells
    untouched)."""
    column = np.asarray(column, dtype=float)
    observed = ~np.isnan(column)
    x = column[observed].copy()
    if x.size < 4 or _passes(x, skew_threshold, kurtosis_threshold):
        return column  # COINr's Treat checks first: even force_win leaves a passing one alone
    treated: set[int] = set()
    while (force or not _passes(x, skew_threshold, kurtosis_threshold)) and len(treated) < winmax:
        high = skewness(x) >= 0
        extreme = x.max() if high else x.min()
        at_extreme = np.flatnonzero(x == extreme)
        rest = np.delete(x, at_extreme)
        if rest.size == 0:
            break
        x[at_extreme] = rest.max() if high else rest.min()
        treated.update(at_extreme.tolist())
    if not _passes(x, skew_threshold, kurtosis_threshold) and fallback != "none":
        x = _fallback(column[observed], fallback, boxcox_lambda)
    result = column.copy()
    result[observed] = x
    return result


def _fallback(x: np.ndarray, method: str, boxcox_lambda: float) -> np.ndarray:
    """The transformation an indicator gets when winsorisation cannot make it pass."""
    low, high = x.min(), x.max()
    a = 0.01 * (high - low)
    if method == "boxcox":
        y = x - low + 1.0
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by the caller
            return np.log(y) if boxcox_lambda == 0 else (y**boxcox_lambda - 1.0) / boxcox_lambda
    if method == "log_CT_plus" and skewness(x) <= 0:
        return -np.log(high + a - x)
    return np.log(x - low + a)
