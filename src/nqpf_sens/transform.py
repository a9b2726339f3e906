"""Transformations of raw values before normalisation, on arrays shaped (..., years, units, indicators).

- ``none``: values as they are.
- ``sqrt``: the paper's treatment of the fast-growing award counts (indicators 13-15 in the national
  series): zeros (years before the first award) become 1, then the square root is taken.
- ``log1p``: log(1 + x), a common alternative for skewed counts.
- ``winsorise``: each indicator clipped to its cross-sectional ``[q, 1 - q]`` quantiles (q = ``limit``).

Only the indicators in ``mask`` are changed (those flagged in the metadata, or all).
"""

from __future__ import annotations

import numpy as np

METHODS = ("none", "sqrt", "log1p", "winsorise")


def domain_problem(method: str, values: np.ndarray) -> str | None:
    """Why ``method`` cannot be applied to ``values`` (already restricted to the targeted indicators), or None."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return None
    if method == "sqrt" and finite.min() < 0:
        return f"the square root needs non-negative values (found {finite.min():g})"
    if method == "log1p" and finite.min() <= -1:
        return f"log(1 + x) needs values above -1 (found {finite.min():g})"
    return None


def transform(values: np.ndarray, method: str = "none", mask: np.ndarray | None = None, limit: float = 0.05) -> np.ndarray:
    """Return transformed values; indicators outside ``mask`` (bool per indicator) are unchanged."""
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
    else:
        if not 0 <= limit < 0.5:
            raise ValueError("the winsorisation limit is a quantile in [0, 0.5)")
        low, high = np.nanquantile(values, [limit, 1 - limit], axis=-2, keepdims=True)
        changed = np.clip(values, low, high)
    return np.where(mask, changed, values)
