"""Aggregation up the index tree: weighted arithmetic, geometric, harmonic or generalised means
of the children. The generalised (power) mean of order p, (sum w x^p / sum w)^(1/p), is COINr's
``a_genmean``: p = 1 is the arithmetic mean, p = -1 the harmonic, p -> 0 the geometric; |p| below
``MIN_POWER`` is refused (use the geometric mean). ``copeland`` is COINr's ``a_copeland``, an
outranking count rather than a mean: each unit's score is the number of units of the same year it
outranks (on more than half of the children's weight, ties counting half) minus the number that
outrank it.

Children are laid out children-first, (..., children, rows), where leading axes are scenarios and
rows are (year, unit) pairs. A batch of weight vectors goes up the whole tree in one compiled pass
(``kernels.tree_kernel``): each scenario's nodes stay in a small buffer from the leaves to the
root, which is ranked there and then; leaves shared by all scenarios are read in place and, for a
geometric or harmonic first level, transformed once. Over few shared rows, a batch of plain means
goes up 32 scenarios side by side instead (``kernels.aggregate_shared``, see ``LANES_BYTES``),
with the same scores bit for bit.

Geometric and harmonic means (and generalised means of negative order) need positive inputs, a
generalised mean of positive order non-negative ones. The pipeline's ``nonpositive`` names the rule
for a child outside that domain:

- ``shift`` (the default): a child whose values are not all positive across the rows is shifted by
  ``-min + shift_fraction`` of its range (the pipeline's ``mean_shift``, default 1%: ``+1`` on the
  0-100 min-max scale, so [1, 101]; ``-min + 1`` if it is constant), so that a zero never collapses
  a product and a z-score never enters a logarithm. The fraction is a choice like any other: the
  smaller it is, the more a unit at an indicator's minimum is punished, so it can be varied.
- ``refuse`` (COINr's ``a_gmean``/``a_hmean``, which stop on a value <= 0): no shift; the
  normalisation must keep every value positive (COINr's vignette: min-max to [1, 100], z-scores
  with mean 10 and sd 2), and a run that meets a value <= 0 stops with an error naming it.

Aggregation without imputation (COINr's ``dat_thresh``): given a ``threshold`` in [0, 1] (the
pipeline's ``data_threshold``, one for every level or one per level), a mean skips missing
children and renormalises the weights of those observed, as COINr's ``a_amean``, ``a_gmean`` and
``a_hmean`` do, and a parent with fewer than that share of its children observed (counted,
whatever their weights) is itself missing. COINr's ``a_genmean`` returns NA for any missing
child; here it skips them like the other means. Copeland compares units on every child, so a
missing child leaves its parent missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nqpf_sens.engine.kernels import (
    COPELAND,
    aggregate_shared,
    prepare_children,
    rank_rows,
    sorts_ranks,
    tree_kernel,
)
from nqpf_sens.engine.rank import TIES

METHODS = ("arithmetic", "geometric", "harmonic", "generalised", "copeland")
POWER = 2.0  # the default order of the generalised mean (COINr's a_genmean p)
#: the smallest |p| of a generalised mean: sum w x^p is 1 + p ln x to within rounding, so its
#: relative error is about 6e-16 / |p| (the largest over 2,000 weighted means of 3-15 values in
#: (0, 100] against a 60-digit reference: 5e-12 at 1e-4, 6e-10 at 1e-6, 5e-6 at 1e-10), which
#: must stay well below the ranks' tolerance (1e-9); there the mean is the geometric one anyway
MIN_POWER = 1e-4
SHIFT_FRACTION = 0.01  # the default of Pipeline.mean_shift
NONPOSITIVE = ("shift", "refuse")  # what geometric and harmonic means do with values <= 0
ROW_STEP = 16  # shared leaves' rows are padded to a multiple of this (see _padded)
#: a batch of at least this many scenarios over shared leaves goes up the tree this many side by
#: side (``kernels.aggregate_shared``; 8 or 16 lanes were slower for 31 rows); fewer, such as a
#: nominal run's one, take the tree kernel, and the study's kernels compile meanwhile
SCENARIO_LANES = 32
#: side by side while the lanes of every aggregate node take at most this many bytes, about a
#: core's first-level cache: arithmetic means of 8-40 rows and 15 or 40 indicators took 0.54-0.93
#: of the tree kernel's time up to 40 KiB (one pair of ten at 32 KiB: 1.10), 1.04-1.31 times from
#: 42 KiB (docs/speed.md); a geometric or harmonic level above the first adds a buffer of its
#: children's lanes, not counted here
LANES_BYTES = 40 * 2**10


def aggregate_tree(
    leaves: np.ndarray,
    weights: Sequence[np.ndarray],
    memberships: Sequence[np.ndarray],
    methods: Sequence[str],
    n_units: int | None = None,
    ties: str = "min",
    shift_fraction: float = SHIFT_FRACTION,
    power: float = POWER,
    threshold: float | Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Scores of every aggregate node for a batch of weight vectors, the root's ranks, and
    whether every score is a finite number.

    ``leaves`` (S, C, R) or (C, R) when all scenarios share them; ``weights`` one (S, nodes) array
    per level, or (nodes,) shared (a level's weights are divided by their parent's sum); a count
    of 1 is shared by every scenario, as numpy broadcasts; ``memberships`` the (children,
    parents) 0/1 matrix of each level, any: a child may belong to several parents or to none, and
    a parent without children is the mean of nothing (its weights sum to 0, divided by 1: 0 for
    an arithmetic mean, +inf for a harmonic one; missing under a threshold or Copeland);
    ``methods`` one name per level. Returns scores (S,
    aggregates: level by level, root last, R; on the tree kernel's path a view of rows padded in
    memory, see :func:`_padded`) and, given ``n_units`` (not None or 0), ranks (S, R) of the root
    within each block of ``n_units`` rows (ties as in :func:`nqpf_sens.engine.rank.rank_scores`).
    ``threshold`` (None: every child must be present; one number, or one per level) lets means skip
    missing children (see the module docstring).
    """
    if not len(weights) == len(memberships) == len(methods):
        raise ValueError(
            f"one weight array and one method per level: {len(memberships)} levels, "
            f"{len(weights)} weight arrays, {len(methods)} methods"
        )
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown aggregation {unknown[0]!r}: one of {', '.join(METHODS)}")
    if ties not in TIES:
        raise ValueError(f"unknown ties {ties!r}: one of {', '.join(TIES)}")
    if abs(power) < MIN_POWER and "generalised" in methods:
        raise ValueError(
            f"a generalised mean of order {power:g} is the geometric mean (|order| < {MIN_POWER:g}"
            " loses precision): use 'geometric'"
        )
    codes = np.array([METHODS.index(m) for m in methods], dtype=np.int64)
    weights = [np.asarray(w, dtype=float) for w in weights]
    weights = [w[None] if w.ndim == 1 else w for w in weights]
    leaves = np.asarray(leaves, dtype=float)
    leaves = np.ascontiguousarray(leaves[None] if leaves.ndim == 2 else leaves)
    n_scenarios = _scenario_count(leaves, weights, memberships, n_units)
    sizes = np.array([len(memberships[0]), *(m.shape[1] for m in memberships)], dtype=np.int64)
    flat_weights = np.ascontiguousarray(
        np.concatenate(
            [
                np.broadcast_to(w, (n_scenarios, m.shape[0]))
                for w, m in zip(weights, memberships, strict=True)
            ],
            axis=1,
        ),
        dtype=float,
    )
    starts, children = [], []
    for membership in memberships:
        parents, members = np.nonzero(membership.T)
        starts.append(np.searchsorted(parents, np.arange(membership.shape[1] + 1)))
        children.append(members)
    skip_missing = threshold is not None
    thresholds = np.broadcast_to(
        np.asarray(-1.0 if threshold is None else threshold, dtype=float), len(methods)
    ).copy()
    # shared leaves are prepared once, unless missing cells must be told from rejected values
    prepared = bool(leaves.shape[0] == 1 and codes[0] in (1, 2, 3) and not skip_missing)
    if prepared:  # logarithms or reciprocals once, not once per scenario
        shared = np.empty_like(leaves)
        prepare_children(leaves[0], codes[0], shift_fraction, power, shared[0])
        leaves = shared
    n_rows = leaves.shape[-1]
    copeland = bool((codes == COPELAND).any())
    plain_shared = leaves.shape[0] == 1 and not (copeland or skip_missing)
    n_aggregates = int(sizes[1:].sum())
    lane_bytes = 8 * SCENARIO_LANES * n_rows * n_aggregates
    side_by_side = plain_shared and n_scenarios >= SCENARIO_LANES and lane_bytes <= LANES_BYTES
    if plain_shared and not side_by_side:
        leaves = _padded(leaves)
    scores = np.empty((n_scenarios, n_aggregates, leaves.shape[-1]))
    finite = np.empty(1, dtype=np.bool_)
    block = n_units or max(n_rows, 1)  # Copeland compares a year's units: all rows if not told
    sorting = bool(n_units) and sorts_ranks(block)  # after the kernel, by numpy's sort
    ranks = np.empty((n_scenarios, n_rows if n_units and not sorting else 0), dtype=np.int64)
    tree = (
        np.concatenate(starts).astype(np.int64),
        np.concatenate(children).astype(np.int64),
        codes,
        shift_fraction,
        power,
        block,
    )
    ordinal = ties == "ordinal"
    if side_by_side:
        aggregate_shared(
            leaves[0], flat_weights, sizes, *tree, ordinal, SCENARIO_LANES, scores, ranks, finite
        )
    else:
        kernel = tree_kernel(copeland=copeland, skip_missing=skip_missing)
        kernel(
            leaves,
            prepared,
            flat_weights,
            sizes,
            *tree,
            n_rows,
            ordinal,
            thresholds,
            scores,
            ranks,
            finite,
        )
    if sorting:
        index = scores[:, -1, :n_rows]
        ranks = np.empty((n_scenarios, n_rows), dtype=np.int64)
        for k in range(0, n_rows, block):
            ranks[:, k : k + block] = rank_rows(index[:, k : k + block], ties == "ordinal")
    return scores[..., :n_rows], ranks if n_units else None, bool(finite[0])


def _scenario_count(
    leaves: np.ndarray,
    weights: Sequence[np.ndarray],
    memberships: Sequence[np.ndarray],
    n_units: int | None,
) -> int:
    """The batch's scenario count, after checking that the arrays describe one tree: the compiled
    kernel trusts every shape it is given, so a mismatch would read or write past an array."""
    if leaves.ndim != 3:
        raise ValueError(
            f"leaves must be (children, rows) or (scenarios, children, rows), not "
            f"{leaves.ndim - 1} axes"
        )
    counts = [leaves.shape[1], *(np.shape(m)[-1] for m in memberships)]
    for level, (membership, w) in enumerate(zip(memberships, weights, strict=True)):
        if np.ndim(membership) != 2 or np.shape(membership)[0] != counts[level]:
            raise ValueError(
                f"level {level}: the membership must be ({counts[level]} children, "
                f"parents), not {np.shape(membership)}"
            )
        if np.ndim(w) != 2 or np.shape(w)[1] != counts[level]:
            raise ValueError(
                f"level {level}: the weights must be (scenarios, {counts[level]} "
                f"children), not {np.shape(w)}"
            )
    batches = [len(leaves), *(len(w) for w in weights)]
    counted = set(batches) - {1}  # a count of 1 is shared, as numpy broadcasts it (even to 0)
    if len(counted) > 1:
        raise ValueError(f"leaves and weights must share one scenario count (or 1): {batches}")
    if n_units is not None and n_units < 0:
        raise ValueError(f"n_units must be a count of units, not {n_units}")
    if n_units and counts[-1] != 1:
        raise ValueError(f"ranks are of one root, but the top level has {counts[-1]} parents")
    return counted.pop() if counted else 1


def _padded(leaves: np.ndarray) -> np.ndarray:
    """Shared leaves (1, C, R) with zero rows appended up to a multiple of ``ROW_STEP``: the
    compiler's loop over rows takes 16 of them a step (four vector registers of four) and the
    rest one by one, so 31 provinces were 16 at once and 15 singly, level after level (the tree
    of a weights-only NQPF chunk: 350 -> 307 ns per scenario)."""
    n_rows = leaves.shape[-1]
    width = -(-n_rows // ROW_STEP) * ROW_STEP
    if width == n_rows:
        return leaves
    padded = np.zeros((*leaves.shape[:-1], width))
    padded[..., :n_rows] = leaves
    return padded


def aggregate(
    scores: np.ndarray, weights: np.ndarray, membership: np.ndarray, method: str = "arithmetic"
) -> np.ndarray:
    """One level: parents (..., parents, rows) from children (..., children, rows) and weights
    (..., children)."""
    scores, weights = np.asarray(scores, dtype=float), np.asarray(weights, dtype=float)
    n_children, n_rows = scores.shape[-2:]
    batch_shape = np.broadcast_shapes(weights.shape[:-1], scores.shape[:-2])
    leaves = (
        scores
        if scores.ndim == 2
        else np.broadcast_to(scores, (*batch_shape, n_children, n_rows)).reshape(
            -1, n_children, n_rows
        )
    )
    flat_weights = np.broadcast_to(weights, (*batch_shape, n_children)).reshape(-1, n_children)
    parents, _, _ = aggregate_tree(leaves, [flat_weights], [membership], [method])
    # contiguous: a view would keep the padded rows of the scores alive (see _padded)
    return np.ascontiguousarray(parents.reshape(*batch_shape, membership.shape[1], n_rows))
