"""Aggregation up the index tree: weighted arithmetic, geometric or harmonic means of the children.

Scores enter as (..., rows, children) and weights as (..., children), where leading axes are
scenarios; a level is one batched matrix product, so a whole batch of weight vectors costs one call.

Geometric and harmonic means need positive inputs. Documented rule: a child whose values are not all
positive across the rows is shifted by ``-min + 1%`` of its range (``+1`` on the 0-100 min-max
scale, like COINr's [1, 100] rescaling; ``-min + 1`` if it is constant), so that a zero never
collapses a product and a z-score never enters a logarithm.
"""

from __future__ import annotations

import numpy as np

METHODS = ("arithmetic", "geometric", "harmonic")
SHIFT_FRACTION = 0.01


def positive_shift(values: np.ndarray) -> np.ndarray:
    """Apply the documented shift to children (last axis) that are not all positive over rows (axis -2)."""
    low = values.min(axis=-2, keepdims=True)
    spread = values.max(axis=-2, keepdims=True) - low
    shift = np.where(spread > 0, SHIFT_FRACTION * spread, 1.0) - low
    return np.where(low > 0, values, values + shift)


def weight_matrix(weights: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """(..., children, parents) matrix whose columns are each parent's normalised child weights."""
    weighted = weights[..., :, None] * membership
    totals = weighted.sum(axis=-2, keepdims=True)
    return weighted / np.where(totals > 0, totals, 1.0)


def aggregate(scores: np.ndarray, weights: np.ndarray, membership: np.ndarray, method: str = "arithmetic") -> np.ndarray:
    """Scores of the parents, (..., rows, parents), from children scores (..., rows, children)."""
    if method not in METHODS:
        raise ValueError(f"unknown aggregation {method!r}")
    matrix = weight_matrix(np.asarray(weights, dtype=float), membership)
    if method == "arithmetic":
        return _product(scores, matrix)
    shifted = positive_shift(scores)
    if method == "geometric":
        return np.exp(_product(np.log(shifted), matrix))
    return 1.0 / _product(1.0 / shifted, matrix)


def _product(scores: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """scores @ matrix; scores shared by all scenarios make one (rows x children) @ (children x S*parents) GEMM."""
    if scores.ndim == 2 and matrix.ndim == 3:
        n_scenarios, n_children, n_parents = matrix.shape
        flat = scores @ matrix.transpose(1, 0, 2).reshape(n_children, n_scenarios * n_parents)
        return flat.reshape(scores.shape[0], n_scenarios, n_parents).transpose(1, 0, 2)
    return np.matmul(scores, matrix)
