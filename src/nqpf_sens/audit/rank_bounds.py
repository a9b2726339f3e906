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
programme (HiGHS): the fewest (most) other units that beat the unit anywhere in the region. Most
pairs keep their order everywhere; the exact range of each pair's difference (a linear-fractional
programme per parent, solved by sorting) settles them first, so only the others need binaries.

Ties follow the engine's ``min`` rule (tied units share the better place), exact ties included,
such as units tied at some weights and apart at others (common with data on a few levels). The
solver works to a tolerance, so the worst rank counts a lead only from ``LEAD`` (x the range of
the leaves, so that shifting the data changes nothing), a hundred times that tolerance: no exact
tie passes for a lead, and a worst place that needs smaller leads is a near-tie the bound may
miss. The best rank may leave a lead within the tolerance uncounted (outer).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pandas as pd

from nqpf_sens.engine.aggregate import aggregate_tree
from nqpf_sens.engine.kernels import RANK_TOLERANCE
from nqpf_sens.engine.rank import rank_scores
from nqpf_sens.engine.spec import IndexSpec

#: the least lead (x the range of the leaves) the worst rank counts: a hundred times the solver's
#: feasibility tolerances (which the programmes' rows, scaled alike, are held to), so that no
#: exact tie passes for a lead
LEAD = 1e-6
#: HiGHS's defaults are 1e-7 and 1e-6; these solved as fast, within the machine's noise
TOLERANCES = {"primal_feasibility_tolerance": 1e-8, "mip_feasibility_tolerance": 1e-8}
#: HiGHS's searches for feasible points, off: each programme has an obvious one (every undecided
#: unit counted, for the fewest; none, for the most), and they took two thirds of the solver's
#: time, mostly at the root (the optimum does not depend on them). A HiGHS that does not know an
#: option ignores it; scipy warns that it passes them on, which the solve keeps quiet.
SOLVER_OPTIONS = {
    "mip_heuristic_run_feasibility_jump": False,
    "mip_heuristic_run_root_reduced_cost": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_rins": False,
}


#: the most binary variables (undecided pairs, over all programmes) solved: their time grows fast
#: (see ``experiments/rank_bounds_scaling.py``)
MAX_UNDECIDED = 20_000


class SolverFailed(RuntimeError):
    """HiGHS found no solution of a programme that has one (numerical trouble)."""


class TooManyUndecided(RuntimeError):
    """More binary variables (``binaries``: undecided pairs, in each unit's two programmes) than
    the programmes can settle in reasonable time (``MAX_UNDECIDED``)."""

    def __init__(self, binaries: int):
        self.binaries = binaries
        super().__init__(
            f"the integer programmes would hold {binaries:,} binary variables (one per unit "
            "that may or may not beat another, in each unit's two programmes), more than "
            f"{MAX_UNDECIDED:,} (minutes to hours to solve)"
        )


def peak_bytes(n_units: int, n_indicators: int) -> int:
    """The largest arrays of :func:`rank_bounds`: every pair's leaf differences and their sorted
    copies in :func:`difference_range` (tracemalloc: 22-38 bytes per pair and indicator)."""
    return 40 * n_units**2 * n_indicators


def weight_spreads(factors: Sequence[dict], n_levels: int) -> list[tuple[float, float]] | None:
    """Per weighted level, the range ``(low, high)`` of the multipliers the uniform ``weights``
    factors apply to each weight (several factors on one level multiply: the product of their
    ranges), or None when no level varies or a level's weights are drawn otherwise (a Dirichlet
    region is not a box)."""
    ranges = [(1.0, 1.0)] * n_levels
    for factor in factors:
        if factor.get("kind") != "weights":
            continue
        if factor.get("distribution", "uniform") != "uniform":
            return None
        level = int(factor.get("level", 0))
        spread = float(factor.get("spread", 0.25))
        low, high = ranges[level]
        ranges[level] = (low * (1 - spread), high * (1 + spread))
    return ranges if any(r != (1.0, 1.0) for r in ranges) else None


def weight_region(
    spec: IndexSpec,
    weights: Sequence[np.ndarray],
    spreads: Sequence[float | tuple[float, float]],
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Lower and upper weight of every node below the index (levels concatenated) and, per level,
    the position of each node's parent among all aggregate nodes. A level's spread is a relative
    ``s`` (multipliers ``[1 - s, 1 + s]``) or a multiplier range ``(low, high)``."""
    if len(spreads) != len(spec.levels) - 1:
        raise ValueError(f"one spread per weighted level: {len(spec.levels) - 1} expected")
    ranges: list[tuple[float, float]] = []
    for spread in spreads:
        if isinstance(spread, tuple):
            ranges.append((float(spread[0]), float(spread[1])))
        elif 0 <= spread <= 1:
            ranges.append((1 - float(spread), 1 + float(spread)))
        else:
            raise ValueError("spreads must lie in [0, 1]")
    if any(not 0 <= low <= 1 <= high for low, high in ranges):
        raise ValueError("a multiplier range must contain 1 and start at 0 or above")
    low = np.concatenate([np.asarray(w) * r[0] for w, r in zip(weights, ranges, strict=True)])
    high = np.concatenate([np.asarray(w) * r[1] for w, r in zip(weights, ranges, strict=True)])
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
    from scipy.sparse import coo_array  # here: as the solver, imported only by this step

    matrix = coo_array((vals, (rows, cols)), shape=(row, n_vars)).tocsr()
    return matrix, np.array(lows), np.array(highs), n_vars


def rank_bounds(
    leaves: np.ndarray,
    spec: IndexSpec,
    weights: Sequence[np.ndarray],
    spreads: Sequence[float | tuple[float, float]],
    units: Sequence[str],
    jobs: int = 1,
) -> pd.DataFrame:
    """Per unit: its nominal rank and the best and worst rank it can reach when each level's
    weights move within ``+/- spreads[k]`` (relative; or a multiplier range, see
    :func:`weight_region`) of ``weights[k]``, renormalised within each
    parent, under arithmetic aggregation of ``leaves`` (units x indicators, normalised).

    Pairs whose order is the same everywhere in the region (found exactly by
    :func:`difference_range`) are counted directly; only the rest enter the integer programmes,
    solved in ``jobs`` threads (HiGHS releases the interpreter while it solves).
    """
    leaves = np.asarray(leaves, dtype=float)
    n_units = len(leaves)
    low, high, parents = weight_region(spec, weights, spreads)
    region = _Region(*_region_rows(spec, low, high, parents))
    memberships = [spec.membership(k) for k in range(len(spec.levels) - 1)]
    scores, _, _ = aggregate_tree(
        leaves.T,
        [np.asarray(w, dtype=float)[None] for w in weights],
        memberships,
        ["arithmetic"] * len(memberships),
    )
    least, most = difference_range(leaves, spec, low, high)
    # [u, v]: v beats u everywhere (by more than the engine's tie tolerance anywhere: no score is
    # larger than the largest leaf), or nowhere
    always = least > RANK_TOLERANCE * float(np.abs(leaves).max())
    never = most <= 0
    scale = float(np.ptp(leaves)) or 1.0  # of the differences: the same under a shift of the data
    programmes = []  # (unit, fewest, the others' leaves minus the unit's, big M), all / scale
    for u in range(n_units):
        undecided = np.flatnonzero(~always[u] & ~never[u])
        leading = undecided[most[u, undecided] >= LEAD * scale]  # the leads the worst rank counts
        for fewest, others, reach in (
            (True, undecided, most[u, undecided]),
            (False, leading, -least[u, leading]),
        ):
            if others.size:
                difference = (leaves[others] - leaves[u]) / scale
                programmes.append((u, fewest, difference, reach / scale + 2 * LEAD))
    binaries = sum(len(difference) for _, _, difference, _ in programmes)
    if binaries > MAX_UNDECIDED:
        raise TooManyUndecided(binaries)
    with _solver_output_silenced(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unrecognized options detected")  # HiGHS's own
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            counts = list(pool.map(lambda p: region.count(p[2], p[3], p[1]), programmes))
    best, worst = always.sum(axis=1) + 1, always.sum(axis=1) + 1
    for (u, fewest, _, _), count in zip(programmes, counts, strict=True):
        (best if fewest else worst)[u] += count
    return pd.DataFrame(
        {
            "unit": list(units),
            "nominal_rank": rank_scores(scores[0, -1]),
            "best_rank": best,
            "worst_rank": worst,
        }
    )


def difference_range(
    leaves: np.ndarray, spec: IndexSpec, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The least and the largest ``index(v) - index(u)`` over the weight region, for every pair
    (arrays ``[u, v]``), exactly.

    A parent's difference is its children's differences averaged with weights in a box; the
    children's subtrees have their own weights, so the largest difference is the largest weighted
    average of the children's largest differences, and that (a linear-fractional programme over a
    box) puts the children above the optimum at their upper weight and the rest at their lower:
    one of the splits of the children sorted by difference.
    """
    n_units = len(leaves)
    largest = (leaves[None, :, :] - leaves[:, None, :]).reshape(n_units * n_units, -1)
    least = largest
    start = 0
    for k in range(len(spec.levels) - 1):
        members = np.asarray(spec.parents[k])
        box = slice(start, start + len(members))
        parents = range(len(spec.levels[k + 1]))
        largest, least = (
            np.stack(
                [
                    sign
                    * _largest_average(
                        sign * values[:, members == p],
                        low[box][members == p],
                        high[box][members == p],
                    )
                    for p in parents
                ],
                axis=1,
            )
            for values, sign in ((largest, 1.0), (least, -1.0))
        )
        start += len(members)
    return least[:, 0].reshape(n_units, n_units), largest[:, 0].reshape(n_units, n_units)


def _largest_average(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (rows x children), the largest ``sum(w v) / sum(w)`` over weights
    ``low <= w <= high``: the best of the splits that put the top children at ``high``."""
    order = np.argsort(-values, axis=1, kind="stable")
    v = np.take_along_axis(values, order, axis=1)
    up, down = high[order], low[order]
    zero = np.zeros((len(values), 1))
    numerator = np.hstack([zero, np.cumsum(up * v, axis=1)]) + (
        (down * v).sum(axis=1, keepdims=True) - np.hstack([zero, np.cumsum(down * v, axis=1)])
    )
    denominator = np.hstack([zero, np.cumsum(up, axis=1)]) + (
        down.sum(axis=1, keepdims=True) - np.hstack([zero, np.cumsum(down, axis=1)])
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(denominator > 0, numerator / denominator, -np.inf)
    return ratio.max(axis=1)


class _Region:
    """The weight region's constraints, built once, and the integer programme that counts."""

    def __init__(self, matrix, lows: np.ndarray, highs: np.ndarray, n_vars: int) -> None:
        self.matrix, self.lows, self.highs, self.n_vars = matrix.toarray(), lows, highs, n_vars

    def count(self, difference: np.ndarray, big: np.ndarray, fewest: bool) -> int:
        """The fewest (or most) of the units whose leaves lead the unit's by ``difference``
        (others x indicators, in units of the leaves' range) that beat it somewhere in the
        region.

        With ``b_v`` binary: fewest needs ``score_v - score_u <= big_v b_v`` (v may lead only
        where counted); most needs ``score_v - score_u >= LEAD - big_v (1 - b_v)`` (counted
        only where v leads). ``big`` must bound ``score_v - score_u`` (fewest) or its opposite
        (most) over the region: the exact ranges of :func:`difference_range` plus a margin,
        tighter than the largest leaf difference, give HiGHS a tighter linear relaxation to
        branch from (15% less time with 67 units, 30% with 40, in one run each).
        """
        from scipy.optimize import Bounds, LinearConstraint, milp  # a run without the step: none
        from scipy.sparse import csr_array

        n_others, n_indicators = difference.shape
        beat = np.zeros((n_others, self.n_vars + n_others))
        beat[:, :n_indicators] = difference
        beat[:, self.n_vars :] = -np.diag(big)
        if fewest:
            beat_low, beat_high = np.full(n_others, -np.inf), np.zeros(n_others)
        else:
            beat_low, beat_high = LEAD - big, np.full(n_others, np.inf)
        padded = np.hstack([self.matrix, np.zeros((len(self.matrix), n_others))])
        # sparse: scipy checks a dense matrix under a warnings filter set to "error" for the
        # whole process, in which another thread's solve raised its warnings as errors (and two
        # such checks at once could leave the filter set)
        constraints = [
            LinearConstraint(csr_array(padded), self.lows, self.highs),
            LinearConstraint(csr_array(beat), beat_low, beat_high),
        ]
        sense = 1.0 if fewest else -1.0
        objective = np.r_[np.zeros(self.n_vars), np.full(n_others, sense)]
        integrality = np.r_[np.zeros(self.n_vars), np.ones(n_others)]
        upper = np.r_[np.full(self.n_vars, np.inf), np.ones(n_others)]
        bounds = Bounds(np.zeros(self.n_vars + n_others), upper)
        for options in (SOLVER_OPTIONS, {}):  # then HiGHS's own searches, should it fail
            result = milp(
                objective,
                constraints=constraints,
                integrality=integrality,
                bounds=bounds,
                options=TOLERANCES | options,
            )
            if result.x is not None:
                return int(round(result.x[self.n_vars :].sum()))
        raise SolverFailed(str(result.message))


@contextmanager
def _solver_output_silenced() -> Iterator[None]:
    """HiGHS prints some diagnostics from its C++ code straight to the process's standard output,
    past ``sys.stdout`` and its options: file descriptor 1 goes to the null device meanwhile."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no standard output to protect
        yield
        return
    try:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
