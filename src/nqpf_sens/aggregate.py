"""Aggregation up the index tree: weighted arithmetic, geometric or harmonic means of the children.

Scores are laid out children-first, (..., children, rows), and weights (..., children), where
leading axes are scenarios and rows are (year, unit) pairs; the result is (..., parents, rows). A
level for a whole batch of weight vectors is one matrix product: with scores shared by all
scenarios it is a single (scenarios x parents, children) @ (children, rows) GEMM.

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
    """Apply the documented shift to children (axis -2) that are not all positive over rows (last axis)."""
    low = values.min(axis=-1, keepdims=True)
    spread = values.max(axis=-1, keepdims=True) - low
    shift = np.where(spread > 0, SHIFT_FRACTION * spread, 1.0) - low
    return np.where(low > 0, values, values + shift)


def aggregate(scores: np.ndarray, weights: np.ndarray, membership: np.ndarray, method: str = "arithmetic") -> np.ndarray:
    """Scores of the parents, (..., parents, rows), from children scores (..., children, rows)."""
    if method not in METHODS:
        raise ValueError(f"unknown aggregation {method!r}")
    weights = np.asarray(weights, dtype=float)
    if method == "arithmetic":
        return _weighted_means(weights, scores, membership)
    shifted = positive_shift(scores)
    if method == "geometric":
        return np.exp(_weighted_means(weights, np.log(shifted), membership))
    return 1.0 / _weighted_means(weights, 1.0 / shifted, membership)


def _weighted_means(weights: np.ndarray, scores: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """Each parent's weighted mean of its children: one product per parent over its own children only."""
    n_parents = membership.shape[1]
    batch_shape = np.broadcast_shapes(weights.shape[:-1], scores.shape[:-2])
    out = np.empty((*batch_shape, n_parents, scores.shape[-1]))
    for p in range(n_parents):
        children = np.flatnonzero(membership[:, p])
        if children.size and np.array_equal(children, np.arange(children[0], children[-1] + 1)):
            children = slice(children[0], children[-1] + 1)  # contiguous children: views, not copies
        w = weights[..., children]
        total = w.sum(axis=-1, keepdims=True)
        w = w / np.where(total > 0, total, 1.0)
        block = scores[..., children, :]
        out[..., p, :] = w @ block if block.ndim == 2 else np.einsum("...c,...cr->...r", w, block)
    return out
