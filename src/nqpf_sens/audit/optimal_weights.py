"""Weights that give each part the influence a target asks for (Becker et al. 2017).

A weight says how much a part should count; its correlation with the index says how much it
does. Like COINr's ``get_opt_weights`` (``optype = "balance"``), the influence of each node of one
level is its Pearson correlation with the index, normalised to sum to one over the level, and the
level's weights are searched so that these shares come as close as possible (least squares) to a
target: by default the nominal effective weights (the influence the weights intend), or equal
shares. Every other level keeps its nominal weights, and the whole pipeline (normalisation,
aggregation method) is the engine's, so any index can be treated.

Unlike COINr (Nelder-Mead on the raw weights, relative tolerance 0.1), weights are kept positive
(searched as ``log`` multipliers within a factor ``BOUND`` of the nominal ones) and the search is
L-BFGS-B with central-difference gradients, each step one batch of the engine: a target that no
positive weights reach is reported with the distance left, not forced. The objective is not
convex, and L-BFGS-B's memory of its curvature stalls on it far from a minimum (on COINr's ASEM
example, 14% above the distance a restart reaches), so the search is restarted from where it
stops until ``SETTLED_RESTARTS`` restarts in a row each gain less than ``RESTART_GAIN`` of the
distance (one such restart is no proof: on ASEM under min-max to [1, 100] one gained 0.003%, the
next 0.2%). The result is a local optimum, the closest weights found from the nominal ones: other
starting weights may lead to another.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nqpf_sens.engine.batch import Engine, ScenarioBatch
from nqpf_sens.engine.pipeline import Pipeline

TARGETS = ("weights", "equal")
BOUND = 100.0  # a weight may move at most this factor away from its nominal value
LOG_BOUND = float(np.log(BOUND))
STEP = 1e-6  # central-difference step on the log multipliers
FTOL = 1e-12  # stop when a step (or the gradient) gains less than this on the squared distance
RESTART_GAIN = 1e-4  # restart the search until restarts gain less than this share of the distance
SETTLED_RESTARTS = 2  # this many in a row
MAX_RESTARTS = 20  # and at most this often (then it has not converged)


#: the smallest sum of a level's correlations with the index that gives meaningful shares
MIN_CORRELATION_TOTAL = 1e-6


def correlations(index: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Each node's Pearson correlation with the index, 0 for a constant node (or index): it
    carries no influence. ``index`` (scenarios, units), ``nodes`` (units, nodes) -> (scenarios,
    nodes)."""
    centred = nodes - nodes.mean(axis=0)
    index = index - index.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (index @ centred) / np.outer(
            np.linalg.norm(index, axis=1), np.linalg.norm(centred, axis=0)
        )
    return np.nan_to_num(r)


def influence_shares(index: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Each node's correlation with the index as a share of their sum over the nodes."""
    r = correlations(index, nodes)
    return r / r.sum(axis=1, keepdims=True)


def within_parent(weights: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Each node's weight as a share of its siblings' (the weights the aggregation applies)."""
    parents = np.asarray(parents)
    return weights / np.bincount(parents, weights=weights)[parents]


def effective_weights(engine: Engine, pipeline: Pipeline) -> list[np.ndarray]:
    """Each level's nominal effective weights: the products of the within-parent shares on the
    path to the index (each level sums to one)."""
    spec = engine.spec
    weights = engine.scheme_weights(pipeline)
    shares = [within_parent(w, p) for w, p in zip(weights, spec.parents, strict=True)]
    effective = [np.ones(1)]
    for k in reversed(range(len(shares))):
        effective.insert(0, shares[k] * effective[0][np.asarray(spec.parents[k])])
    return effective[:-1]


def optimise_level(
    engine: Engine, pipeline: Pipeline, level: int, nodes: np.ndarray, target: str = "weights"
) -> tuple[pd.DataFrame, dict]:
    """The weights of ``level`` whose influence shares best match ``target``.

    ``nodes`` are the level's nominal (units x nodes) scores. Returns one row per node (nominal
    and optimised within-parent weight, target, influence share at both, ``at_bound``: "floor"
    or "ceiling" where the search stopped at a weight's limit) and a summary (squared
    distance to the target before and after, convergence, restarts, engine evaluations, rank
    shifts)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    spec = engine.spec
    size = len(spec.levels[level])
    goal = (
        effective_weights(engine, pipeline)[level]
        if target == "weights"
        else np.full(size, 1 / size)
    )
    evaluations = 0

    def run(log_factors: np.ndarray):
        nonlocal evaluations
        evaluations += len(log_factors)
        factors = tuple(
            np.exp(log_factors) if k == level else np.ones((len(log_factors), len(names)))
            for k, names in enumerate(spec.levels[:-1])
        )
        batch = ScenarioBatch((pipeline,), np.zeros(len(log_factors), dtype=np.int64), factors)
        return engine.evaluate(batch)

    def distance(log_factors: np.ndarray) -> np.ndarray:
        shares = influence_shares(run(log_factors).index[:, 0], nodes)
        return np.sum((shares - goal) ** 2, axis=1)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        steps = STEP * np.eye(size)
        values = distance(np.vstack([theta, theta + steps, theta - steps]))
        return float(values[0]), (values[1 : size + 1] - values[size + 1 :]) / (2 * STEP)

    from scipy.optimize import minimize  # here: a run without this step need not import it

    def search(start: np.ndarray):
        return minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * size,
            options={"ftol": FTOL, "gtol": FTOL},
        )

    start = np.zeros(size)
    result, restarts, small_gains = search(start), 0, 0
    while small_gains < SETTLED_RESTARTS and restarts < MAX_RESTARTS:
        again = search(result.x)
        small = result.fun - again.fun <= RESTART_GAIN * result.fun
        small_gains = small_gains + 1 if small else 0
        if again.fun < result.fun:
            result = again
        restarts += 1
    final = run(np.vstack([start, result.x]))
    shares = influence_shares(final.index[:, 0], nodes)
    nominal = engine.scheme_weights(pipeline)[level]
    parents = np.asarray(spec.parents[level])
    within = [within_parent(w, parents) for w in (nominal, nominal * np.exp(result.x))]
    rows = pd.DataFrame(
        {
            "level": level,
            "node": spec.levels[level],
            "parent": [spec.levels[level + 1][p] for p in parents],
            "nominal_weight": within[0],
            "optimised_weight": within[1],
            "target_share": goal,
            "nominal_influence_share": shares[0],
            "optimised_influence_share": shares[1],
            "at_bound": pd.Series(np.where(result.x < 0, "floor", "ceiling"), dtype=object).where(
                np.abs(result.x) >= LOG_BOUND * (1 - 1e-9)
            ),  # missing: inside the limits
        }
    )
    ranks = final.ranks[:, 0]
    shift = np.abs(ranks[1] - ranks[0])
    summary = {
        "level": level,
        "target": target,
        "nominal_distance": float(np.sum((shares[0] - goal) ** 2)),
        "optimised_distance": float(np.sum((shares[1] - goal) ** 2)),
        "converged": bool(result.success) and small_gains == SETTLED_RESTARTS,
        "restarts": restarts,
        "evaluations": evaluations,
        "largest_weight_change": float(np.abs(within[1] - within[0]).max()),
        "mean_rank_shift": float(shift.mean()),
        "max_rank_shift": int(shift.max()),
        "units_moving": int((shift > 0).sum()),
    }
    return rows, summary


def optimal_weights_tables(
    engine: Engine, pipeline: Pipeline, levels: list[np.ndarray], target: str = "weights"
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Optimised weights of every weighted level in turn (the others nominal), by file name, and
    a note per level left out: one whose nodes' correlations with the index do not sum to a
    clearly positive total has no influence shares (COINr divides by that total); one aggregated
    by Copeland's rule on the way to the index is a step function of its weights (votes flip at
    ties), which a gradient search cannot optimise."""
    rows, summaries, notes = [], [], []
    n_levels = len(engine.spec.levels) - 1
    for k, names in enumerate(engine.spec.levels[:-1]):
        if len(names) < 2:
            continue
        copeland = [j for j in range(k, n_levels) if pipeline.aggregation_at(j) == "copeland"]
        if copeland:
            notes.append(
                f"optimal weights of level {k} skipped: Copeland aggregation (level "
                f"{copeland[0]}) makes the index a step function of its weights"
            )
            continue
        if not correlations(levels[-1].T, levels[k]).sum() > MIN_CORRELATION_TOTAL:
            notes.append(
                f"optimal weights of level {k} skipped: its parts' correlations with the index "
                "sum to about 0 or less, so their influence shares are undefined"
            )
            continue
        found, summary = optimise_level(engine, pipeline, k, levels[k], target)
        rows.append(found)
        summaries.append(summary)
    if not rows:
        return {}, notes
    tables = {
        "optimal_weights": pd.concat(rows, ignore_index=True),
        "optimal_weights_summary": pd.DataFrame(summaries),
    }
    return tables, notes
