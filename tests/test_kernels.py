"""The compiled kernels equal the plain numpy formulations they replace."""

import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import kendalltau, spearmanr

from nqpf_sens.engine.aggregate import (
    LANES_BYTES,
    METHODS,
    MIN_POWER,
    POWER,
    SCENARIO_LANES,
    SHIFT_FRACTION,
    aggregate_tree,
)
from nqpf_sens.engine.kernels import (
    COPELAND,
    PAIRWISE_LIMIT,
    RANK_TOLERANCE,
    bin_correlations,
    count_above_mean,
    natural_break_rows,
    rank_agreement,
    rank_rows,
    ranks_from_order,
    tree_kernel,
)
from nqpf_sens.engine.rank import TIES


def argsort_ranks(scores: np.ndarray, ordinal: bool) -> np.ndarray:
    """Ranks by counting, for each unit, the scores above it by more than the tolerance (relative
    to the largest finite score); NaN last in data order; ``ordinal`` sorts by (shared place,
    position)."""
    finite = np.where(np.isfinite(scores), np.abs(scores), 0.0)
    largest = finite.max(axis=-1, keepdims=True, initial=0.0)
    with np.errstate(over="ignore"):
        cutoffs = scores + RANK_TOLERANCE * largest
    biggest = np.finfo(float).max  # a finite score's cutoff stays finite: +inf ranks above it
    cutoffs = np.where(np.isinf(cutoffs) & np.isfinite(scores), biggest, cutoffs)
    better = scores[..., None, :] > cutoffs[..., :, None]
    unscored = np.isnan(scores)
    scored = (~unscored).sum(axis=-1, keepdims=True)
    places = np.where(unscored, scored + np.cumsum(unscored, axis=-1), 1 + better.sum(axis=-1))
    if not ordinal:
        return places
    order = np.argsort(places, axis=-1, kind="stable")
    ranks = np.empty(scores.shape, dtype=np.int64)
    np.put_along_axis(
        ranks, order, np.broadcast_to(np.arange(1, scores.shape[-1] + 1), scores.shape), axis=-1
    )
    return ranks


def test_scores_within_the_tolerance_tie():
    scores = np.array([[70.0, 70.0 + 1e-12, 69.0, 70.0 - 1e-12]])
    np.testing.assert_array_equal(rank_rows(scores, False), [[1, 1, 4, 1]])
    np.testing.assert_array_equal(rank_rows(scores, True), [[1, 2, 4, 3]])
    wide = np.repeat(scores, 30, axis=1)  # the sorting algorithm
    np.testing.assert_array_equal(rank_rows(wide, False), argsort_ranks(wide, False))


def copeland_by_definition(w, membership, current, n_units):
    """COINr's outranking matrix and Copeland score, pair by pair, within each year's units."""
    n_scenarios, _, n_rows = current.shape
    out = np.zeros((n_scenarios, membership.shape[1], n_rows))
    for s, p in np.ndindex(n_scenarios, membership.shape[1]):
        members = np.flatnonzero(membership[:, p])
        total = w[s, members].sum()
        if total <= 0:  # nothing to outrank on: undefined, as the kernel says
            out[s, p] = np.nan
            continue
        for first in range(0, n_rows, n_units):
            for i, j in itertools.combinations(range(first, first + n_units), 2):
                share = 0.0
                for c in members:  # in the kernel's order, so that ties at 0.5 agree exactly
                    a, b = current[s, c, i], current[s, c, j]
                    undefined = np.isnan(a) or np.isnan(b)  # a comparison with NaN: NaN
                    share += (
                        np.nan if undefined else (w[s, c] if a > b else 0.5 * w[s, c] * (a == b))
                    )
                sign = np.sign(share / total - 0.5)
                out[s, p, i] += sign
                out[s, p, j] -= sign
    return out


def numpy_tree(leaves, weights, memberships, methods, n_units):
    """The tree level by level in numpy: shift, transform, normalised weights, einsum, back."""
    current = np.broadcast_to(leaves, (len(weights[0]), *leaves.shape[-2:]))
    columns = []
    for w, membership, method in zip(weights, memberships, methods, strict=True):
        if method == "copeland":
            current = copeland_by_definition(w, membership, current, n_units)
            columns.append(current)
            continue
        if method != "arithmetic":
            low, high = current.min(axis=-1, keepdims=True), current.max(axis=-1, keepdims=True)
            shift = np.where(high > low, SHIFT_FRACTION * (high - low), 1.0) - low
            inside = low >= 0 if method == "generalised" else low > 0  # the power is positive
            current = np.where(inside, current, current + shift)
            current = {
                "geometric": np.log,
                "harmonic": lambda x: 1 / x,
                "generalised": lambda x: x**POWER,
            }[method](current)
        totals = w @ membership
        means = (
            np.einsum("sc,cp,scr->spr", w, membership, current)
            / np.where(totals > 0, totals, 1.0)[..., None]
        )
        current = {
            "arithmetic": lambda m: m,
            "geometric": np.exp,
            "harmonic": lambda m: 1 / m,
            "generalised": lambda m: m ** (1 / POWER),
        }[method](means)
        columns.append(current)
    return np.concatenate(columns, axis=1)


few_distinct = st.sampled_from(
    [0.0, 1.0, 2.5, -3.0, np.nan, 1e-300, 7.0, np.inf, -np.inf, np.finfo(float).max]
    # the tolerance is found on the bits: a NaN with its sign bit set, -0, a subnormal, and a
    # score within the tolerance of another (or just outside it) where the largest is 7
    + [-np.nan, -0.0, 5e-324, 1.0 + 2e-9, 1.0 + 8e-9]
)


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(
        st.integers(1, 5), st.sampled_from([1, 2, 7, 31, PAIRWISE_LIMIT, PAIRWISE_LIMIT + 1, 150])
    ).flatmap(lambda shape: arrays(float, shape, elements=few_distinct)),
    st.booleans(),
)
def test_rank_rows_equals_sorting(scores, ordinal):
    np.testing.assert_array_equal(rank_rows(scores, ordinal), argsort_ranks(scores, ordinal))


def test_a_tree_kernel_refuses_a_level_it_was_made_without():
    """The variant is chosen from the levels' methods and thresholds; one that does not cover
    them says so rather than averaging every child."""
    leaves, weights = np.ones((1, 2, 3)), np.ones((1, 3))
    sizes, child_start, children = np.array([2, 1]), np.array([0, 2]), np.array([0, 1])
    scores, ranks = np.empty((1, 1, 3)), np.empty((1, 3), dtype=np.int64)

    def arguments(method: int, threshold: float) -> tuple:
        shape = (leaves, False, weights, sizes, child_start, children, np.array([method]))
        finite = np.empty(1, dtype=bool)
        return shape + (0.01, 2.0, 3, 3, False, np.array([threshold]), scores, ranks, finite)

    plain = tree_kernel(copeland=False, skip_missing=False)
    for method, threshold in ((COPELAND, -1.0), (0, 0.5)):
        with pytest.raises(ValueError, match="made without"):
            plain(*arguments(method, threshold))
    tree_kernel(copeland=True, skip_missing=False)(*arguments(COPELAND, -1.0))
    np.testing.assert_array_equal(scores, 0.0)  # three units tied on every child
    tree_kernel(copeland=False, skip_missing=True)(*arguments(0, 0.5))
    np.testing.assert_array_equal(scores, 1.0)


def test_rank_rows_both_algorithms_on_continuous_scores():
    rng = np.random.default_rng(3)
    for n in (31, PAIRWISE_LIMIT + 1, 500):
        scores = rng.normal(size=(40, n)).round(1)  # many ties
        for ordinal in (False, True):
            np.testing.assert_array_equal(
                rank_rows(scores, ordinal), argsort_ranks(scores, ordinal)
            )


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 3),
    st.booleans(),
    st.lists(st.sampled_from(METHODS), min_size=2, max_size=2),
    st.integers(0, 2**32 - 1),
)
def test_aggregate_tree_equals_numpy(n_scenarios, n_years, shared, methods, seed):
    rng = np.random.default_rng(seed)
    n_units, n_leaves, n_middle = 4, 6, 3
    memberships = [
        np.eye(n_middle)[rng.permutation(np.arange(n_leaves) % n_middle)],
        np.ones((n_middle, 1)),
    ]
    weights = [
        rng.uniform(0, 2, size=(n_scenarios, n_leaves))
        * (rng.random((n_scenarios, n_leaves)) > 0.2),
        rng.uniform(0.1, 1, size=(n_scenarios, n_middle)),
    ]
    leaves = rng.normal(
        50, 30, size=(1 if shared else n_scenarios, n_leaves, n_years * n_units)
    ).round(1)
    scores, ranks, finite = aggregate_tree(
        leaves[0] if shared else leaves, weights, memberships, methods, n_units, "min"
    )
    assert finite == np.isfinite(scores).all()
    with np.errstate(
        divide="ignore", invalid="ignore"
    ):  # all-zero weights: a harmonic mean of nothing
        expected = numpy_tree(leaves, weights, memberships, methods, n_units)
    np.testing.assert_allclose(scores, expected, rtol=1e-10, atol=1e-9)
    index = scores[:, -1].reshape(n_scenarios, n_years, n_units)
    np.testing.assert_array_equal(
        ranks.reshape(index.shape),
        argsort_ranks(index.reshape(-1, n_units), False).reshape(index.shape),
    )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(LANES_BYTES // (8 * SCENARIO_LANES * 3) + 1, 120),
    st.integers(1, 45),
    st.lists(st.sampled_from(METHODS[:4]), min_size=2, max_size=2),
    st.integers(0, 2**32 - 1),
)
def test_shared_leaves_padded_in_memory_give_the_same_bits(n_rows, n_units, methods, seed):
    """Many rows of leaves shared by every scenario are padded to whole vector steps; the scores and
    ranks are those of the same leaves given to each scenario, which are not padded, whatever
    the blocks of ``n_units`` rows ranked (a last block cut short, or one longer than the rows,
    must not rank the padding)."""
    rng = np.random.default_rng(seed)
    memberships = [np.eye(2)[np.arange(5) % 2], np.ones((2, 1))]
    weights = [rng.uniform(0, 2, size=(40, 5)), rng.uniform(0.1, 1, size=(40, 2))]
    leaves = rng.normal(50, 30, size=(5, n_rows))
    with np.errstate(divide="ignore", invalid="ignore"):
        shared = aggregate_tree(leaves, weights, memberships, methods, n_units)
        apart = aggregate_tree(
            np.repeat(leaves[None], 40, axis=0), weights, memberships, methods, n_units
        )
    np.testing.assert_array_equal(shared[0], apart[0])
    np.testing.assert_array_equal(shared[1], apart[1])
    index = apart[0][:, -1]
    blocks = [rank_rows(index[:, k : k + n_units], False) for k in range(0, n_rows, n_units)]
    np.testing.assert_array_equal(shared[1], np.hstack(blocks))
    assert shared[2] == apart[2] == np.isfinite(shared[0]).all()


SIDE_BY_SIDE_TREE = [np.eye(3)[np.arange(7) % 3], np.eye(2)[[0, 1, 1]], np.ones((2, 1))]
#: the most rows a batch of SIDE_BY_SIDE_TREE's goes up side by side (six aggregates a row)
SIDE_BY_SIDE_ROWS = LANES_BYTES // (8 * SCENARIO_LANES * 6)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 100),
    st.integers(1, SIDE_BY_SIDE_ROWS),
    st.integers(1, 14),
    st.lists(st.sampled_from(METHODS[:4]), min_size=3, max_size=3),
    st.sampled_from(TIES),
    st.sampled_from(
        ["plain", "ties", "zeros", "missing", "infinite", "zero weights", "NaN weights"]
    ),
    st.sampled_from([(0.01, 2.0), (0.0, 2.0), (0.01, -1.0), (0.01, 0.5), (0.3, 3.0)]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
@example(33, 4, 4, ["arithmetic", "geometric", "generalised"], "min", "zeros", (0.0, 2.0), False, 1)
def test_shared_leaves_side_by_side_give_the_same_bits(
    n_scenarios, n_rows, n_units, methods, ties, values, shift_and_power, one_vector, seed
):
    """Few rows of leaves shared by every scenario go up the tree many scenarios side by side (a
    kernel of its own); the scores, ranks and check equal those of the same leaves given to each
    scenario bit for bit, for any scenario count (fewer than the lanes take the tree kernel; a
    last block of lanes cut short), blocks of ``n_units`` rows (a last one cut short, or one
    longer than the rows), tied, zero, missing or infinite values, parents whose weights sum to
    nothing or to NaN, one weight vector for every scenario, and each mean's shift and order."""
    rng = np.random.default_rng(seed)
    weights = [rng.uniform(0, 2, size=(n_scenarios, m.shape[0])) for m in SIDE_BY_SIDE_TREE]
    leaves = rng.normal(50, 30, size=(7, n_rows))
    if values == "ties":
        leaves = leaves.round(-1)
    elif values == "zeros":  # whole rows: their means are exactly 0 (in a power mean's domain)
        leaves[:, rng.random(n_rows) < 0.5] = 0.0
    elif values in ("missing", "infinite"):
        leaves[rng.random(leaves.shape) < 0.1] = np.nan if values == "missing" else np.inf
    elif values != "plain":
        cells = rng.random(weights[0].shape) < 0.4
        weights[0][cells] = 0.0 if values == "zero weights" else np.nan
    if one_vector:
        weights[1] = weights[1][0] if n_scenarios else rng.uniform(0, 2, size=3)
    shift, power = shift_and_power
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shared, apart = (
            aggregate_tree(given, weights, SIDE_BY_SIDE_TREE, methods, n_units, ties, shift, power)
            for given in (leaves, np.repeat(leaves[None], n_scenarios, axis=0))
        )
    np.testing.assert_array_equal(shared[0], apart[0])
    np.testing.assert_array_equal(shared[1], apart[1])
    assert shared[2] == apart[2] == np.isfinite(shared[0]).all()


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([PAIRWISE_LIMIT + 1, 2 * PAIRWISE_LIMIT + 3]),
    st.integers(1, 3),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_the_tree_ranks_many_units_by_sorting_within_each_year(
    n_units, n_years, shared, ordinal, seed
):
    """Past ``PAIRWISE_LIMIT`` units the root is ranked after the kernel, year by year: the ranks
    of the rule (ties within the tolerance, ``ordinal`` in data order), whatever the padding."""
    rng = np.random.default_rng(seed)
    memberships = [np.eye(2)[np.arange(5) % 2], np.ones((2, 1))]
    weights = [rng.integers(1, 3, size=(4, 5)).astype(float), np.ones((4, 2))]
    shape = (5, n_years * n_units) if shared else (4, 5, n_years * n_units)
    leaves = rng.integers(0, 4, size=shape).astype(float)  # many ties
    scores, ranks, _ = aggregate_tree(
        leaves, weights, memberships, ["arithmetic"] * 2, n_units, "ordinal" if ordinal else "min"
    )
    index = scores[:, -1].reshape(-1, n_units)
    expected = argsort_ranks(index, ordinal).reshape(4, n_years * n_units)
    np.testing.assert_array_equal(ranks, expected)


def test_the_tree_ranks_no_rows_of_many_units():
    """Ranks by sorting of an empty table: none, as by counting."""
    memberships = [np.eye(2)[np.arange(4) % 2], np.ones((2, 1))]
    weights = [np.ones((3, 4)), np.ones((3, 2))]
    for n_units in (5, PAIRWISE_LIMIT + 1):
        _, ranks, _ = aggregate_tree(
            np.empty((4, 0)), weights, memberships, ["arithmetic"] * 2, n_units
        )
        assert ranks.shape == (3, 0)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_copeland_compares_within_a_last_block_cut_short(n_rows, n_units, seed):
    """Rows that are not whole blocks of ``n_units``: each block, the last one cut short, is scored
    and ranked as if given alone (the kernel never reads past the rows)."""
    rng = np.random.default_rng(seed)
    memberships = [np.eye(2)[np.arange(4) % 2], np.ones((2, 1))]
    weights = [rng.uniform(0.5, 2, size=(3, 4)), rng.uniform(0.5, 1, size=(3, 2))]
    leaves = rng.integers(0, 5, size=(4, n_rows)).astype(float)
    methods = ["copeland", "arithmetic"]
    scores, ranks, _ = aggregate_tree(leaves, weights, memberships, methods, n_units)
    for start in range(0, n_rows, n_units):
        block = leaves[:, start : start + n_units]
        alone = aggregate_tree(block, weights, memberships, methods, block.shape[1])
        np.testing.assert_array_equal(scores[..., start : start + n_units], alone[0])
        np.testing.assert_array_equal(ranks[:, start : start + n_units], alone[1])


@pytest.mark.parametrize(
    ("leaves", "weights", "memberships", "n_units", "message"),
    [
        ((3, 7), [(1, 3), (1, 2)], [(3, 2), (2, 1)], -1, "n_units must be a count"),
        ((2, 7), [(1, 3), (1, 2)], [(3, 2), (2, 1)], 7, "level 0: the membership"),
        ((3, 7), [(1, 3), (1, 2)], [(3, 2), (3, 1)], 7, "level 1: the membership"),
        ((3, 7), [(1, 2), (1, 2)], [(3, 2), (2, 1)], 7, "level 0: the weights"),
        ((3, 7), [(1, 1, 3), (1, 2)], [(3, 2), (2, 1)], 7, "level 0: the weights"),
        ((4, 3, 7), [(2, 3), (1, 2)], [(3, 2), (2, 1)], 7, "one scenario count"),
        ((3, 7), [(1, 3)], [(3, 2)], 7, "ranks are of one root"),
        ((7,), [(1, 3)], [(3, 1)], 7, "leaves must be"),
    ],
)
def test_a_tree_of_mismatched_shapes_is_refused(leaves, weights, memberships, n_units, message):
    """The compiled kernel trusts its shapes: a mismatch would read or write past an array, so
    the function refuses it, naming what does not fit."""
    with pytest.raises(ValueError, match=message):
        aggregate_tree(
            np.ones(leaves),
            [np.ones(w) for w in weights],
            [np.eye(parents)[np.arange(children) % parents] for children, parents in memberships],
            ["arithmetic"] * len(memberships),
            n_units,
        )


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from([1, 3, 40]),
    st.booleans(),
    st.lists(st.sampled_from(METHODS), min_size=3, max_size=3),
    st.integers(0, 2**32 - 1),
)
def test_a_child_of_several_parents_or_none_at_any_level(n_scenarios, shared, methods, seed):
    """A level's children lists follow those of the levels below, however long they are: a child
    of two parents, or of none, below the top no longer shifts the children of the levels above
    (the tree kernel misread them; counted side by side, it wrote past its arrays), in either
    kernel, for every mean, Copeland levels and a threshold among them."""
    rng = np.random.default_rng(seed)
    n_units, sizes = 5, (7, 4, 3, 1)
    memberships = [(rng.random(sizes[k : k + 2]) < 0.45).astype(float) for k in range(2)]
    memberships[0][0] = [1, 1, 0, 1]  # a leaf of three parents
    memberships[0][1] = 0  # and one of none
    memberships[1][0] = [1, 1, 1]
    memberships[1][1] = 0
    for membership in memberships:  # every parent has a child (or a threshold leaves it missing)
        childless = ~membership.any(axis=0)
        membership[-1, childless] = 1
    memberships.append(np.ones((3, 1)))
    weights = [rng.uniform(0.1, 2, size=(n_scenarios, n)) for n in sizes[:-1]]
    leaves = rng.normal(50, 30, size=(1 if shared else n_scenarios, 7, 2 * n_units)).round(1)
    arguments = (leaves[0] if shared else leaves, weights, memberships, methods, n_units)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scores, ranks, _ = aggregate_tree(*arguments)
        expected = numpy_tree(leaves, weights, memberships, methods, n_units)
    np.testing.assert_allclose(scores, expected, rtol=1e-10, atol=1e-9)
    if "copeland" not in methods:  # a threshold of 0: every child observed, the same means
        thresholded = aggregate_tree(*arguments, "min", threshold=0.0)[0]
        np.testing.assert_allclose(thresholded, expected, rtol=1e-10, atol=1e-9)
    index = scores[:, -1].reshape(-1, n_units)
    np.testing.assert_array_equal(ranks.reshape(index.shape), argsort_ranks(index, False))


@pytest.mark.parametrize("n_scenarios", [1, 40])
def test_the_top_level_may_share_children_or_leave_some_out(n_scenarios):
    """At the top, each parent is the weighted mean of its own children, whether a child belongs
    to two parents or to none (both kernels: one scenario, and 40 side by side)."""
    leaves = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    weights = np.tile([1.0, 1.0, 2.0], (n_scenarios, 1))
    shared = np.array([[1, 0], [1, 1], [0, 1]])
    scores = aggregate_tree(leaves, [weights], [shared], ["arithmetic"])[0]
    np.testing.assert_allclose(scores, np.broadcast_to([[2, 3], [13 / 3, 16 / 3]], scores.shape))
    left_out = np.array([[1, 0], [0, 0], [0, 1]])
    scores = aggregate_tree(leaves, [weights], [left_out], ["arithmetic"])[0]
    np.testing.assert_allclose(scores, np.broadcast_to([[1, 2], [5, 6]], scores.shape))


def test_counts_of_one_are_shared_as_numpy_broadcasts_them():
    """Weights of one scenario (or one vector) go with every scenario's leaves, shared leaves with
    every scenario's weights, even none; ``n_units`` 0 asks for no ranks, as None does."""
    rng = np.random.default_rng(0)
    memberships = [np.eye(2)[np.arange(4) % 2], np.ones((2, 1))]
    leaves = rng.random((5, 4, 6))
    weights = [rng.random(4), rng.random((1, 2))]
    scores, ranks, _ = aggregate_tree(leaves, weights, memberships, ["arithmetic"] * 2, 6)
    alone = [aggregate_tree(one, weights, memberships, ["arithmetic"] * 2, 6) for one in leaves]
    np.testing.assert_array_equal(scores, np.concatenate([a[0] for a in alone]))
    np.testing.assert_array_equal(ranks, np.concatenate([a[1] for a in alone]))
    none = [np.ones((0, 4)), np.ones((0, 2))]
    scores, ranks, _ = aggregate_tree(leaves[0], none, memberships, ["arithmetic"] * 2, 6)
    assert scores.shape == (0, 3, 6) and ranks.shape == (0, 6)
    _, ranks, _ = aggregate_tree(leaves, weights, memberships, ["arithmetic"] * 2, 0)
    assert ranks is None


def test_unknown_methods_and_ties_are_named():
    tree = (np.ones((2, 3)), [np.ones((1, 2))], [np.ones((2, 1))])
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        aggregate_tree(*tree, ["median"], 3)
    with pytest.raises(ValueError, match="unknown ties 'max'"):
        aggregate_tree(*tree, ["arithmetic"], 3, "max")
    with pytest.raises(ValueError, match="order 0 is the geometric mean"):
        aggregate_tree(*tree, ["generalised"], 3, power=0.0)


@pytest.mark.parametrize("power", [MIN_POWER, -MIN_POWER])
def test_a_generalised_mean_of_the_smallest_order_keeps_its_precision(power):
    """At |p| = MIN_POWER the mean is within 1e-11 of a 60-digit reference (its rounding error
    grows as 6e-16 / |p|: at 1e-16 six of eight units tied); below it, it is refused."""
    from decimal import Decimal, localcontext

    rng = np.random.default_rng(0)
    values, weights = rng.uniform(1e-3, 100, (15, 200)), rng.uniform(0.1, 1, 15)
    tree = (values, [weights[None]], [np.ones((15, 1))])
    scores = aggregate_tree(*tree, ["generalised"], 200, power=power)[0].ravel()
    with localcontext() as context:
        context.prec = 60
        p, w = Decimal(power), [Decimal(x) for x in weights]
        for score, column in zip(scores, values.T, strict=True):
            mean = sum(wi * (p * Decimal(x).ln()).exp() for wi, x in zip(w, column, strict=True))
            mean /= sum(w)
            assert score == pytest.approx(float((mean.ln() / p).exp()), rel=1e-11, abs=0)
    with pytest.raises(ValueError, match="is the geometric mean"):
        aggregate_tree(*tree, ["generalised"], 200, power=power / 2)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 4).flatmap(lambda rows: arrays(float, (rows, 9), elements=few_distinct)),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_ranks_from_an_order_do_not_depend_on_how_it_orders_equal_scores(scores, ordinal, seed):
    """Any ascending order with NaN last gives the ranks of the rule: numpy's sort may put equal
    scores in any order."""
    rng = np.random.default_rng(seed)
    shuffled = np.empty(scores.shape, dtype=np.int64)
    for r, row in enumerate(scores):
        keys = np.where(np.isnan(row), np.inf, row)  # NaN last, as np.argsort puts them
        tiebreak = rng.permutation(row.size)
        shuffled[r] = np.lexsort((tiebreak, np.isnan(row), keys))
    ranks = np.empty(scores.shape, dtype=np.int64)
    ranks_from_order(scores, shuffled, ordinal, ranks)
    np.testing.assert_array_equal(ranks, argsort_ranks(scores, ordinal))


def _class_costs(ordered: np.ndarray) -> np.ndarray:
    """Within-class sum of squares of every run i..j of sorted values: (..., n, n), inf where
    i > j."""
    n = ordered.shape[-1]
    zero = np.zeros(ordered.shape[:-1] + (1,))
    s1 = np.concatenate([zero, np.cumsum(ordered, axis=-1)], axis=-1)
    s2 = np.concatenate([zero, np.cumsum(ordered**2, axis=-1)], axis=-1)
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    size = np.maximum(j - i + 1, 1)
    total = s1[..., j + 1] - s1[..., i]
    cost = s2[..., j + 1] - s2[..., i] - total**2 / size
    return np.where(j >= i, np.maximum(cost, 0.0), np.inf)


def numpy_natural_breaks(scores: np.ndarray, classes: int) -> np.ndarray:
    """Fisher-Jenks by vectorised dynamic programming over an (n, n) cost matrix per row (the
    formulation the compiled kernel replaced: it needs memory in units squared per scenario)."""
    order = np.argsort(-scores, axis=-1, kind="stable")
    ordered = np.take_along_axis(scores, order, axis=-1)[..., ::-1]
    n = ordered.shape[-1]
    cost = _class_costs(ordered)
    best = cost[..., 0, :]
    starts = []
    for _ in range(1, classes):
        shifted = np.concatenate([np.full(best.shape[:-1] + (1,), np.inf), best[..., :-1]], axis=-1)
        candidates = shifted[..., :, None] + cost
        starts.append(np.argmin(candidates, axis=-2))
        best = np.min(candidates, axis=-2)
    end = np.full(ordered.shape[:-1] + (1,), n - 1)
    boundaries = []
    for start in reversed(starts):
        first = np.take_along_axis(start, end, axis=-1)
        boundaries.append(first)
        end = first - 1
    position = np.arange(n)
    class_ascending = np.ones(ordered.shape, dtype=np.int64)
    for first in boundaries:
        class_ascending += position >= first
    tiers_sorted = (classes + 1 - class_ascending)[..., ::-1]
    tiers = np.empty(scores.shape, dtype=np.int64)
    np.put_along_axis(tiers, order, tiers_sorted, axis=-1)
    return tiers


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(2, 40),
    st.integers(2, 6),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_natural_breaks_equal_numpy_dynamic_programming(n_rows, n_units, classes, rounded, seed):
    classes = min(classes, n_units)
    scores = np.random.default_rng(seed).gamma(1.0, 10.0, size=(n_rows, n_units))
    if rounded:  # ties
        scores = scores.round(-1)
    np.testing.assert_array_equal(
        natural_break_rows(scores, classes), numpy_natural_breaks(scores, classes)
    )


def test_bin_correlations_equal_numpy_rounding_and_clipping():
    """Correlations (S, years, 2) binned on a grid of 1 / grid from -1: numpy's round half to
    even (values half-way between two points included), out-of-grid values in the end bins, NaN
    left out, added to the counts given."""
    rng = np.random.default_rng(4)
    grid = 100
    values = rng.uniform(-1, 1, size=(400, 3, 2))
    values[:50] = np.round(values[:50] * grid * 2) / (grid * 2)  # half-way points
    values[50:60] = np.nan
    values[60, 0] = [-1.0, 1.0]
    values[61, 1] = [1.5, -np.inf]
    counts = np.ones((3, 2, 2 * grid + 1), dtype=np.int64)
    bin_correlations(values, grid, counts)
    bins = np.clip(np.rint((values + 1) * grid), 0, 2 * grid)
    expected = np.ones_like(counts)
    for s, t, m in zip(*np.nonzero(~np.isnan(values)), strict=True):
        expected[t, m, int(bins[s, t, m])] += 1
    np.testing.assert_array_equal(counts, expected)


def test_count_above_mean_equals_numpy():
    """Per year and unit, the scenarios where the unit's index is above that scenario's weighted
    mean, added to the counts given."""
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(500, 2, 7, 3))
    scores[:, :, 0, -1] = scores[:, :, 1:, -1].mean(axis=-1)  # a unit exactly at the mean
    weights = np.full(7, 1 / 7)
    above = np.arange(14)
    count_above_mean(np.ascontiguousarray(scores[..., -1]), weights, above)
    mean = (scores[..., -1] * weights).sum(axis=-1, keepdims=True)
    expected = np.arange(14) + (scores[..., -1] > mean).sum(axis=0).ravel()
    np.testing.assert_array_equal(above, expected)


@pytest.mark.parametrize("ranking", [[1, 2, 0], [1, 2, 4], [2, 3, 65], [1, 1, -1]])
def test_rank_agreement_refuses_a_rank_out_of_range(ranking):
    """A rank outside 1..n is an error, never a correlation (a rank of n + 62 would set the same
    bit of a 64-bit word as rank 1 would)."""
    with pytest.raises(ValueError, match="rank out of range"):
        rank_agreement(np.array([ranking]), np.array([1, 2, 3]), 3, np.ones(1, dtype=bool))


@pytest.mark.parametrize("rank", [0, 101, 165, -1, 2**62])
def test_rank_agreement_refuses_a_rank_out_of_range_past_one_word(rank):
    """Past 63 units the ranks are the bits of several words: a rank outside 1..n is still an
    error, and never a write past the words (165 would set a bit of a word that 100 units do not
    have, 2^62 one far beyond; 101 one of the last word)."""
    ranking = np.arange(1, 101)
    ranking[50] = rank
    with pytest.raises(ValueError, match="rank out of range"):
        rank_agreement(ranking[None], np.arange(1, 101), 100, np.ones(1, dtype=bool))


@pytest.mark.parametrize("tied_nominal", [False, True])
def test_rank_agreement_equals_scipy_with_ties(tied_nominal):
    """Spearman's rho and Kendall's tau-b per scenario and year equal scipy's on competition and
    ordinal rankings with ties (also an untied ranking against a tied nominal one and the reverse,
    and 63 and 64 units, either side of one word's limit, and 40,000, past the words' limit);
    rows not counted, and all-tied rankings, give NaN."""
    rng = np.random.default_rng(5)
    sizes = (
        (1, 3),
        (2, 20),
        (3, 50),
        (31, 200),
        (63, 40),
        (64, 40),
        (200, 30),
        (3000, 3),
        (40_000, 2),
    )
    for n_units, n_scenarios in sizes:
        n_years = 2
        scores = rng.normal(size=(n_scenarios + 1, n_years * n_units)).round(1)  # many ties
        scores[1, :n_units] = 0.0  # one ranking all tied
        ranks = np.concatenate(
            [rank_rows(scores[:, t * n_units : (t + 1) * n_units], t == 1) for t in range(n_years)],
            axis=1,
        )
        if tied_nominal:  # the second year's nominal ranking with ties, the scenarios' without
            ranks[0, n_units:] = rank_rows(scores[:1, n_units:], False)[0]
        else:  # half the scenarios' second-year rankings with ties, the nominal one without
            ranks[2::2, n_units:] = rank_rows(scores[2::2, n_units:], False)
            # and one whose only tie is its last two places (past the first word from 66 units)
            last_two_tied = np.minimum(np.argsort(np.argsort(scores[-1, n_units:])), n_units - 2)
            ranks[-1, n_units:] = last_two_tied + 1 if n_units > 2 else ranks[-1, n_units:]
        nominal, ranks = ranks[0], ranks[1:]
        counted = rng.random(n_scenarios) > 0.2
        counted[-1] = True
        found = rank_agreement(ranks, nominal, n_units, counted)
        assert found.shape == (n_scenarios, n_years, 2)
        assert np.isnan(found[~counted]).all()
        for s in np.flatnonzero(counted):
            for t in range(n_years):
                x, y = nominal[t * n_units : (t + 1) * n_units], ranks[s, t * n_units :][:n_units]
                if n_units == 1 or (s == 0 and t == 0):
                    expected = [np.nan, np.nan]  # undefined (scipy warns and gives NaN)
                else:
                    expected = [spearmanr(x, y).statistic, kendalltau(x, y).statistic]
                np.testing.assert_allclose(found[s, t], expected, rtol=0, atol=1e-12)
