"""The best and worst rank each unit can reach over a whole region of weights, exactly.

A Monte Carlo rank interval says where ranks fell in the scenarios drawn; these bounds say where
they can fall. For arithmetic aggregation on a fixed normalised table, a unit's index is linear in
the *effective* weights of the indicators (the products of the normalised weights on the path to
the index). With each weight allowed in ``[w (1 - s), w (1 + s)]`` before renormalisation within its
parent (the ``weights`` factors' spread ``s`` per level), the set of effective weights is exactly
the polytope of node masses ``m`` with ``m(index) = 1``, ``sum of a node's children = m(node)``
and ``low_c t_p <= m_c <= high_c t_p`` for one free ``t_p >= 0`` per parent ``p`` (dividing by
``m_p`` recovers normalised weights ``m_c / m_p`` of a weight vector in the box, scaled by
``1 / t_p``). So every level and any depth stay linear, and each bound is one small mixed-integer
programme (HiGHS): the fewest (most) other units that beat the unit anywhere in the region.

Ties follow the engine's ``min`` rule (a unit tied with another shares the better place); score
differences within the solver's feasibility tolerance (1e-7 of the score scale) may count either
way, which can only widen the bounds: they are exact up to such near-ties, else outer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from nqpf_sens.engine.spec import IndexSpec

MARGIN = 1e-9  # a unit beats another when its score is larger by at least this (x score scale)


def weight_spreads(factors: Sequence[dict], n_levels: int) -> list[float] | None:
    """Per weighted level, the relative spread of the uniform ``weights`` factors (0: fixed), or
    None when no level varies or a level's weights are drawn otherwise (a Dirichlet region is not
    a box)."""
    spreads = [0.0] * n_levels
    for factor in factors:
        if factor.get("kind") != "weights":
            continue
        if factor.get("distribution", "uniform") != "uniform":
            return None
        level = int(factor.get("level", 0))
        spreads[level] = max(spreads[level], float(factor.get("spread", 0.25)))
    return spreads if any(spreads) else None


def weight_region(
    spec: IndexSpec, weights: Sequence[np.ndarray], spreads: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Lower and upper weight of every node below the index (levels concatenated) and, per level,
    the position of each node's parent among all aggregate nodes."""
    if len(spreads) != len(spec.levels) - 1:
        raise ValueError(f"one spread per weighted level: {len(spec.levels) - 1} expected")
    if any(not 0 <= s <= 1 for s in spreads):
        raise ValueError("spreads must lie in [0, 1]")
    low = np.concatenate([np.asarray(w) * (1 - s) for w, s in zip(weights, spreads, strict=True)])
    high = np.concatenate([np.asarray(w) * (1 + s) for w, s in zip(weights, spreads, strict=True)])
    offsets = np.cumsum([0, *(len(level) for level in spec.levels[1:])])
    parents = [offsets[k] + np.asarray(spec.parents[k]) for k in range(len(spec.levels) - 1)]
    return low, high, parents


def _region_rows(spec: IndexSpec, low: np.ndarray, high: np.ndarray, parents: list[np.ndarray]):
    """Equality and inequality rows over (child masses, aggregate masses, scales t_p).

    Variables: one mass per node below the index (``n_below``), one per aggregate node (root
    last), one scale per aggregate node.
    """
    n_below = len(low)
    n_aggregates = sum(len(level) for level in spec.levels[1:])
    rows, cols, vals, lows, highs = [], [], [], [], []
    row = 0
    child_start = 0
    for k in range(len(spec.levels) - 1):
        members = len(spec.levels[k])
        for i in range(members):
            child = child_start + i
            parent = parents[k][i]
            # child mass sums into the parent's: handled below; here the box in t_p units
            for bound, sign in ((low[child], 1.0), (high[child], -1.0)):
                rows += [row, row]
                cols += [child, n_below + n_aggregates + parent]
                vals += [sign, -sign * bound]
                lows.append(0.0)
                highs.append(np.inf)
                row += 1
        child_start += members
    child_start = 0
    # the mass of a node below the index that is itself an aggregate equals its own variable
    for k in range(len(spec.levels) - 1):
        members = len(spec.levels[k])
        for parent in np.unique(parents[k]):
            children = child_start + np.flatnonzero(parents[k] == parent)
            rows += [row] * (len(children) + 1)
            cols += [*children, n_below + parent]
            vals += [1.0] * len(children) + [-1.0]
            lows.append(0.0)
            highs.append(0.0)
            row += 1
        child_start += members
    aggregate_start = len(spec.levels[0])
    for position in range(n_aggregates - 1):  # an aggregate below the index: same node twice
        rows += [row, row]
        cols += [aggregate_start + position, n_below + position]
        vals += [1.0, -1.0]
        lows.append(0.0)
        highs.append(0.0)
        row += 1
    rows.append(row)
    cols.append(n_below + n_aggregates - 1)
    vals.append(1.0)
    lows.append(1.0)
    highs.append(1.0)
    row += 1
    n_vars = n_below + 2 * n_aggregates
    matrix = coo_array((vals, (rows, cols)), shape=(row, n_vars)).tocsr()
    return matrix, np.array(lows), np.array(highs), n_vars


def rank_bounds(
    leaves: np.ndarray,
    spec: IndexSpec,
    weights: Sequence[np.ndarray],
    spreads: Sequence[float],
    units: Sequence[str],
) -> pd.DataFrame:
    """Per unit: its nominal rank and the best and worst rank it can reach when each level's
    weights move within ``+/- spreads[k]`` (relative) of ``weights[k]``, renormalised within each
    parent, under arithmetic aggregation of ``leaves`` (units x indicators, normalised)."""
    leaves = np.asarray(leaves, dtype=float)
    n_units, n_indicators = leaves.shape
    low, high, parents = weight_region(spec, weights, spreads)
    region, region_low, region_high, n_vars = _region_rows(spec, low, high, parents)
    nominal = _nominal_index(leaves, spec, weights)
    scale = max(float(np.ptp(leaves)), 1e-12)
    nominal_rank = 1 + (nominal[None, :] > nominal[:, None]).sum(axis=1)
    best, worst = np.empty(n_units, dtype=np.int64), np.empty(n_units, dtype=np.int64)
    for u in range(n_units):
        others = np.delete(np.arange(n_units), u)
        difference = leaves[others] - leaves[u]  # (others, indicators): > 0 where v leads
        big = np.abs(difference).max(axis=1) + 2 * MARGIN * scale
        best[u] = 1 + _count(region, region_low, region_high, n_vars, difference, big, scale, 1)
        worst[u] = 1 + _count(region, region_low, region_high, n_vars, difference, big, scale, -1)
    return pd.DataFrame(
        {"unit": list(units), "nominal_rank": nominal_rank, "best_rank": best, "worst_rank": worst}
    )


def _count(region, region_low, region_high, n_vars, difference, big, scale, sense) -> int:
    """The fewest (``sense = 1``) or most (``-1``) other units that beat the unit in the region.

    With ``b_v`` binary: fewest needs ``score_v - score_u <= big_v b_v`` (v may lead only where
    counted); most needs ``score_v - score_u >= margin - big_v (1 - b_v)`` (counted only where
    v leads).
    """
    n_others, n_indicators = difference.shape
    leaf_block = np.zeros((n_others, n_vars))
    leaf_block[:, :n_indicators] = difference
    if sense == 1:
        beat = np.hstack([leaf_block, -np.diag(big)])
        beat_low, beat_high = np.full(n_others, -np.inf), np.zeros(n_others)
    else:
        beat = np.hstack([leaf_block, -np.diag(big)])
        beat_low, beat_high = MARGIN * scale - big, np.full(n_others, np.inf)
    padded = np.hstack([region.toarray(), np.zeros((region.shape[0], n_others))])
    constraints = [
        LinearConstraint(padded, region_low, region_high),
        LinearConstraint(beat, beat_low, beat_high),
    ]
    objective = np.r_[np.zeros(n_vars), np.full(n_others, float(sense))]
    integrality = np.r_[np.zeros(n_vars), np.ones(n_others)]
    bounds = Bounds(np.zeros(n_vars + n_others), np.r_[np.full(n_vars, np.inf), np.ones(n_others)])
    result = milp(objective, constraints=constraints, integrality=integrality, bounds=bounds)
    if result.x is None:
        raise RuntimeError(f"rank bounds: {result.message}")
    return int(round(result.x[n_vars:].sum()))


def _nominal_index(leaves: np.ndarray, spec: IndexSpec, weights: Sequence[np.ndarray]):
    """Arithmetic index of every unit under ``weights`` (each level normalised in its parent)."""
    scores = leaves
    for k in range(len(spec.levels) - 1):
        membership = spec.membership(k)
        w = np.asarray(weights[k], dtype=float)
        totals = w @ membership
        scores = (scores * w) @ membership / totals
    return scores[:, 0]
