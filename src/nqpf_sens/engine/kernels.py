"""Compiled inner loops (numba): the index tree and ranks of a batch, and the study's tallies.

Each is a plain loop over scenarios that numpy can only express with a sort per row (``argsort``),
a copy per parent (fancy indexing, then ``einsum``) or temporaries as large as the chunk: compiled,
each scenario's numbers stay in cache from the indicators to its rank and nothing is allocated per
row. They release the GIL, so threads run them in parallel, and take C-contiguous arrays where
speed matters (the compiler vectorises only those). ``tests/test_kernels.py`` checks each against
the plain numpy formulation it replaces.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import njit

PAIRWISE_LIMIT = 100  # up to this many units counting is as fast as sorting (rank_methods.py)
PAIRWISE_LANES = 8  # doubles in a 512-bit vector: a padded row of scores is whole steps
RANK_TOLERANCE = 1e-9  # relative: scores closer than this share a place (rounding is not a ranking)
MAGNITUDE_BITS = 0x7FFF_FFFF_FFFF_FFFF  # a double's bits but its sign
INFINITY_BITS = 0x7FF0_0000_0000_0000  # +inf's bits: a finite magnitude's are fewer
INSERTION_RUN = 32  # merge sorts start from runs this long, sorted by insertion
BITMASK_UNITS = 63  # up to this many units, Kendall's count of an untied ranking uses a bitmask
WORDS_UNITS = 1 << 15  # up to this many, several words (O(n^2 / 64): a merge sort beyond)

kernel = njit(cache=True, nogil=True, error_model="numpy")
#: for functions only compiled code calls: no Python entry points to build (a fifth of the time
#: their callers take to compile); options numba's type stubs do not list
_NO_ENTRY_POINTS: dict[str, Any] = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}
compiled_helper = njit(cache=True, nogil=True, error_model="numpy", **_NO_ENTRY_POINTS)
#: for the index tree's innermost helpers: inlined where they are called, so that the compiler
#: sees the buffers they read and write (the tree of a weights-only batch took 10% less time)
inlined_helper = njit(
    cache=True, nogil=True, error_model="numpy", inline="always", **_NO_ENTRY_POINTS
)


@inlined_helper
def _tolerance(row):
    """Scores closer than this tie: ``RANK_TOLERANCE`` times the largest finite absolute score
    of ``row`` (an infinite one would tie every score: +inf ranks above every number, -inf
    below). Found on the doubles' bits: those of a magnitude order as it does, those
    of +inf and NaN above every finite one's, and a maximum of integers is vectorised where one of
    doubles is not (a tenth of a weights-only batch's aggregation, with the ranks)."""
    bits = row.view(np.int64)
    largest = 0
    for v in range(bits.size):
        magnitude = bits[v] & MAGNITUDE_BITS
        largest = max(largest, magnitude if magnitude < INFINITY_BITS else 0)
    return RANK_TOLERANCE * np.int64(largest).view(np.float64)


@inlined_helper
def _cutoff(score, tolerance):
    """What a score must exceed to rank above ``score``: ``score + tolerance``, kept finite for a
    finite score (near the largest double the sum overflows, and +inf would tie it)."""
    cutoff = score + tolerance
    if cutoff == np.inf and score < np.inf:
        return np.finfo(np.float64).max
    return cutoff


@inlined_helper
def _rank_row_pairwise(row, ordinal, out, work, cutoffs, padded):
    """Ranks of one row by counting, for each unit, the scores above it: O(n^2) without a branch
    per step, the faster way up to ``PAIRWISE_LIMIT`` units. Each unit's cutoff (its score plus
    the tolerance) is compared with the whole row at once and summed across the vector: the row
    is copied into ``padded``, its tail -inf (above no cutoff) up to whole vector steps
    (:func:`_pairwise_width`), so that no step is left to scalar code. Inlined, as are its
    helpers: a call passes every array as several words. Counting every unit's at once, one score
    at a time, with the helpers called, took 1.7-3 times as long for 4 to 31 units and 1.1-1.5
    times for 47 to 100 (``rank_rows`` on random scores)."""
    n, width = row.size, _pairwise_width(row.size)
    scored = 0
    for u in range(n):
        padded[u] = row[u]
        scored += not np.isnan(row[u])
    for v in range(n, width):
        padded[v] = -np.inf
    tolerance = _tolerance(padded[:n])
    for u in range(n):
        cutoffs[u] = _cutoff(padded[u], tolerance)
    for u in range(n):
        cutoff, above = cutoffs[u], 1
        for v in range(width):  # a NaN score is above nothing
            above += padded[v] > cutoff
        out[u] = above
    unscored_before = 0
    for u in range(n if scored < n else 0):
        if np.isnan(row[u]):
            out[u] = 1 + scored + unscored_before
            unscored_before += 1
    if ordinal:
        _in_data_order(out, work)


@inlined_helper
def _rank_scratch(n_units):
    """The scratch arrays of :func:`_rank_row_pairwise` for rows of up to ``n_units``: ``work``
    (ordinal ties), ``cutoffs`` and the ``padded`` row."""
    work = np.empty(2 * n_units + 1, dtype=np.int64)
    return work, np.empty(n_units), np.empty(_pairwise_width(n_units))


@inlined_helper
def _pairwise_width(n_units):
    """The padded row of :func:`_rank_row_pairwise`: ``n_units`` padded to whole vector steps."""
    return -(-n_units // PAIRWISE_LANES) * PAIRWISE_LANES


@compiled_helper
def _in_data_order(out, work):
    """Break each tie of shared places in data order (ties ``ordinal``)."""
    n = out.size
    order = work[:n]
    _counting_order(out, order, work[n : 2 * n + 1])
    for position in range(n):
        out[order[position]] = position + 1


def sorts_ranks(n_units: int) -> bool:
    """Whether rows of ``n_units`` are ranked by sorting rather than by counting."""
    return n_units > PAIRWISE_LIMIT


def rank_rows(scores: np.ndarray, ordinal: bool) -> np.ndarray:
    """Ranks (1 = highest) of each row of a 2-D float array; NaN ranks after every score, in data
    order.

    Ties: scores within ``RANK_TOLERANCE`` times the row's largest finite absolute score of each
    other count as equal; a unit's place is one more than the number of scores above it by more
    than that (+inf ranks above every number, -inf below). Equal scores share their best place
    (``ordinal`` False) or take consecutive places in data order (``ordinal`` True).
    """
    scores = np.ascontiguousarray(scores, dtype=float)
    ranks = np.empty(scores.shape, dtype=np.int64)
    if sorts_ranks(scores.shape[1]):
        # numpy's sort is vectorised: 3,000 units took a sixth of a compiled merge sort's time
        ranks_from_order(scores, np.argsort(scores, axis=1), ordinal, ranks)
    else:
        rank_rows_by_counting(scores, ordinal, ranks)
    return ranks


@kernel
def rank_rows_by_counting(scores, ordinal, ranks):
    """:func:`rank_rows` by counting (:func:`_rank_row_pairwise`), into ``ranks``. It returns no
    array: of two ranking kernels, one compiled in a process that had loaded the other from the
    cache, the second to return an array failed once both were loaded from the cache (numba's
    "'descr' is NULL"), as kernels that return nothing do not."""
    work, cutoffs, padded = _rank_scratch(scores.shape[1])
    for r in range(scores.shape[0]):
        _rank_row_pairwise(scores[r], ordinal, ranks[r], work, cutoffs, padded)


@kernel
def ranks_from_order(scores, order, ordinal, ranks):
    """:func:`rank_rows` into ``ranks`` from ``order``, each row's positions in ascending order of
    score with NaN last (``np.argsort``; equal scores in any order): O(n) a row. From the highest
    score down, the scores above the current one by more than the tolerance are a suffix of the
    order that only grows, so one pointer counts them. A place depends on the scores alone, never
    on how the sort ordered equal ones; NaN take the places after every score in data order."""
    n = scores.shape[1]
    work = np.empty(2 * n + 1, dtype=np.int64)
    for r in range(scores.shape[0]):
        row, ascending, out = scores[r], order[r], ranks[r]
        scored = 0
        for u in range(n):
            scored += not np.isnan(row[u])
        tolerance = _tolerance(row)
        above = scored  # ascending[above:scored]: the scores above the current one
        for p in range(scored - 1, -1, -1):
            value = row[ascending[p]]
            cutoff = _cutoff(value, tolerance)
            while above > p + 1 and row[ascending[above - 1]] > cutoff:
                above -= 1
            out[ascending[p]] = 1 + scored - above
        unscored_before = 0
        for u in range(n):
            if np.isnan(row[u]):
                out[u] = 1 + scored + unscored_before
                unscored_before += 1
        if ordinal:
            _in_data_order(out, work)


@kernel
def prepare_children(values, method, shift_fraction, power, out):
    """Children rows (C, R) as ``method`` averages them: the logarithm (geometric, 1), reciprocal
    (harmonic, 2) or ``power``-th power (generalised, 3) of values made admissible. A child with a
    value out of the method's domain (<= 0; < 0 for a positive ``power``) is shifted by ``-min +
    shift_fraction * range`` (``-min + 1`` if constant); with ``shift_fraction`` 0 it is not
    shifted and such a value becomes NaN. Arithmetic (0) copies."""
    _prepare(values, values.shape[0], values.shape[1], method, shift_fraction, power, out)


@inlined_helper
def _zero_allowed(method, power):
    """Whether a mean's domain takes 0: x^p with p > 0 is defined there."""
    return method == 3 and power > 0


@inlined_helper
def _domain_shift(low, high, method, power, shift_fraction):
    """What a child whose observed values span ``low .. high`` is shifted by (see
    :func:`prepare_children`): 0 if the mean's domain takes them or ``shift_fraction`` is 0."""
    outside = low < 0 if _zero_allowed(method, power) else low <= 0
    if outside and shift_fraction > 0:
        return (shift_fraction * (high - low) if high > low else 1.0) - low
    return 0.0


@inlined_helper
def _in_domain(x, method, power):
    """A shifted value as a geometric (1), harmonic (2) or generalised (3) mean averages it: its
    logarithm, reciprocal or power; NaN outside the domain."""
    if x < 0 or (x == 0 and not _zero_allowed(method, power)):
        return np.nan
    if method == 1:
        return np.log(x)
    if method == 2:
        return 1.0 / x
    return x**power


@compiled_helper
def _prepare(values, n_children, n_rows, method, shift_fraction, power, out):
    """The first ``n_rows`` rows of :func:`prepare_children` (any further ones are padding)."""
    for c in range(n_children):
        shift = 0.0
        if method != 0:
            low, high = np.inf, -np.inf  # over the rows observed: a missing cell stays missing
            for r in range(n_rows):
                if values[c, r] == values[c, r]:
                    low = min(low, values[c, r])
                    high = max(high, values[c, r])
            shift = _domain_shift(low, high, method, power, shift_fraction)
        for r in range(n_rows):
            x = values[c, r] + shift
            out[c, r] = x if method == 0 else _in_domain(x, method, power)


COPELAND = 4


@inlined_helper
def _children_weight(weights, node, children, first, last):
    """The summed weight of one parent's children ``first .. last - 1`` in its level's list
    ``children`` (the level's weights from ``node``)."""
    total = 0.0
    for k in range(first, last):
        total += weights[node + children[k]]
    return total


@inlined_helper
def _weight_divisor(total):
    """What a parent's children's weights are divided by: their sum, or 1 if it is not positive
    (the children then weigh nothing; a NaN sum stays NaN)."""
    return 1.0 if total <= 0 else total


@compiled_helper
def _copeland(children_values, weights, node, child_start, children, start, n_parents, block, out):
    """Copeland scores of one level of one scenario (COINr's ``a_copeland``): within each block
    of ``block`` rows (a year), unit i's score is the number of units it outranks minus the number
    that outrank it, where i outranks j when the weights of the children on which i is higher,
    plus half those on which they tie, exceed half the total weight."""
    n_rows = children_values.shape[1]
    for p in range(n_parents):
        first, last = child_start[start + p], child_start[start + p + 1]
        total = _children_weight(weights, node, children, first, last)
        for r in range(n_rows):
            out[p, r] = 0.0 if total > 0 else np.nan  # no weight: nothing to outrank on
        if total <= 0:
            continue
        for block_start in range(0, n_rows, block):
            block_end = min(block_start + block, n_rows)  # a last block may be cut short
            for i in range(block_start, block_end):
                for j in range(i + 1, block_end):
                    share = 0.0
                    for k in range(first, last):
                        c = children[k]
                        a, b = children_values[c, i], children_values[c, j]
                        if a != a or b != b:  # NaN: the comparison is undefined
                            share = np.nan
                        elif a > b:
                            share += weights[node + c]
                        elif a == b:
                            share += 0.5 * weights[node + c]
                    share /= total
                    if share != share:
                        out[p, i] = np.nan
                        out[p, j] = np.nan
                    elif share > 0.5:
                        out[p, i] += 1.0
                        out[p, j] -= 1.0
                    elif share < 0.5:
                        out[p, i] -= 1.0
                        out[p, j] += 1.0


@compiled_helper
def _finish_mean(value, method, power):
    """A weighted mean of prepared children back on the children's scale."""
    if method == 1:
        return np.exp(value)
    if method == 2:
        return 1.0 / value
    if method == 3:
        return value ** (1.0 / power)
    return value


@compiled_helper
def _available_means(
    observed,
    children_values,
    weights,
    node,
    child_start,
    children,
    start,
    n_parents,
    method,
    power,
    threshold,
    out,
):
    """The means of one level over the children observed in each row (``observed`` before
    preparation, so that a value a mean's domain rejects is not mistaken for a missing one), their
    weights renormalised, as COINr's ``a_amean`` and ``a_gmean``: a parent is missing (NaN) where
    fewer than ``threshold`` of its children are observed (COINr's ``dat_thresh``) or those
    observed weigh nothing; a mean the domain rejects is +inf, so that it is told from missing."""
    n_rows = children_values.shape[1]
    for p in range(n_parents):
        first, last = child_start[start + p], child_start[start + p + 1]
        for r in range(n_rows):
            count, total, value = 0, 0.0, 0.0
            for k in range(first, last):
                c = children[k]
                if observed[c, r] != observed[c, r]:
                    continue
                count += 1
                total += weights[node + c]
                value += weights[node + c] * children_values[c, r]
            if count / (last - first) < threshold or total <= 0:
                out[p, r] = np.nan
            else:
                mean = _finish_mean(value / total, method, power)
                out[p, r] = mean if mean == mean else np.inf


@inlined_helper
def _weighted_means(
    children_values,
    weights,
    node,
    child_start,
    children,
    start,
    n_parents,
    method,
    power,
    out,
):
    """One level of one scenario: rows 0..n_parents-1 of ``out`` get each parent's weighted mean of
    its (prepared) children, found in the level's list ``children``; the level's weights and
    parents start at ``node``/``start``. Whole buffers and offsets, no slices of the values: every
    array stays contiguous for the compiler."""
    n_rows = children_values.shape[1]
    for p in range(n_parents):
        first, last = child_start[start + p], child_start[start + p + 1]
        total = _weight_divisor(_children_weight(weights, node, children, first, last))
        for r in range(n_rows):
            out[p, r] = 0.0
        for k in range(first, last):
            c = children[k]
            w = weights[node + c] / total
            for r in range(n_rows):
                out[p, r] += w * children_values[c, r]
        if method != 0:
            for r in range(n_rows):
                out[p, r] = _finish_mean(out[p, r], method, power)


@functools.cache
def tree_kernel(*, copeland: bool, skip_missing: bool):
    """The index tree's kernel (below) with only the paths an index takes compiled in: Copeland
    levels, means over the children observed. Each is a third or more of the kernel's
    compilation on a first run; numba drops a branch on a closure's constant before compiling
    what it calls, and caches each variant under its constants. A variant must cover its call: a
    Copeland level, or a threshold, it was made without is refused."""

    @kernel
    def aggregate_tree(
        leaves,
        leaves_prepared,
        weights,
        sizes,
        child_start,
        children,
        methods,
        shift_fraction,
        power,
        n_units,
        n_rows,
        ordinal,
        thresholds,
        scores,
        ranks,
        finite,
    ):
        """Every aggregate node of every scenario, and the root's ranks, one scenario at a time.

        ``leaves``: (S, C0, R), or (1, C0, R) shared by all scenarios (already prepared for the
        first level's method when ``leaves_prepared``), of which the first ``n_rows`` rows are data
        and the rest, if any, padding (zeros) that makes the rows a whole number of the compiler's
        vector steps; means of plain levels only, no Copeland level or threshold. The padding's
        scores are meaningless and neither checked nor ranked. ``sizes``: node count of each level,
        leaves first, root last. Level k's weights are columns ``sum(sizes[:k])`` onwards of
        ``weights`` (S, ...), one per child; its children lists follow the lists of the levels
        below in ``children`` (a child may be in several parents' lists, or in none), delimited by
        ``child_start[sum(sizes[1:k+1]) + k:]`` (both concatenated level by level, positions local
        to the level: the level's last delimiter is its count of list entries). ``methods[k]``:
        0/1/2/3/4 = arithmetic/geometric/harmonic/generalised (of order ``power``)/Copeland
        (within each block of ``n_units`` rows). ``thresholds[k]`` >= 0 lets level k's means skip
        missing children (see ``_available_means``; Copeland needs every child); below 0 every
        child is present. Writes ``scores`` (S, aggregates level by level,
        root last, R) and, if it has columns, ``ranks`` (S, R): the root ranked within each block of
        ``n_units`` rows (a year), by counting (more units than ``PAIRWISE_LIMIT`` are ranked
        after the kernel, by sorting: see :func:`rank_rows`); ``finite[0]``: whether every score
        is a finite number, checked while the scores are in cache (a pass over a chunk's scores
        afterwards took a tenth of the engine's time).
        """
        n_levels = sizes.size - 1
        width = leaves.shape[2]
        if width != n_rows and (copeland or skip_missing):
            raise ValueError("rows padded for a kernel of plain means only")
        widest = 0
        for k in range(sizes.size):
            widest = max(widest, sizes[k])
            if k < n_levels and (
                (not copeland and methods[k] == COPELAND)
                or (not skip_missing and thresholds[k] >= 0)
            ):
                raise ValueError("a Copeland level or a threshold the kernel was made without")
        prepared = np.zeros((widest, width))  # its padding stays 0: never a subnormal
        work, cutoffs, padded = _rank_scratch(n_units)
        every_finite = True
        for s in range(weights.shape[0]):
            leaf = leaves[0] if leaves.shape[0] == 1 else leaves[s]
            row_weights = weights[s]
            # typed int64 from the start: a literal 0 would compile every helper twice, once for it
            node, start, column, entry = np.int64(0), np.int64(0), np.int64(0), np.int64(0)
            current = leaf
            for k in range(n_levels):
                n_children, n_parents = sizes[k], sizes[k + 1]
                level_children = children[entry:]
                # each level's means go straight to its rows of the scores, which the next reads
                following = scores[s, column : column + n_parents]
                source = current  # the children, or their prepared values below
                if methods[k] in (1, 2, 3) and not (k == 0 and leaves_prepared):
                    _prepare(
                        source, n_children, n_rows, methods[k], shift_fraction, power, prepared
                    )
                    source = prepared
                if copeland and methods[k] == COPELAND:
                    _copeland(
                        source,
                        row_weights,
                        node,
                        child_start,
                        level_children,
                        start,
                        n_parents,
                        n_units,
                        following,
                    )
                elif skip_missing and thresholds[k] >= 0:
                    _available_means(
                        current,
                        source,
                        row_weights,
                        node,
                        child_start,
                        level_children,
                        start,
                        n_parents,
                        methods[k],
                        power,
                        thresholds[k],
                        following,
                    )
                else:
                    _weighted_means(
                        source,
                        row_weights,
                        node,
                        child_start,
                        level_children,
                        start,
                        n_parents,
                        methods[k],
                        power,
                        following,
                    )
                for p in range(n_parents):
                    for r in range(n_rows):  # 0 * x is 0 unless x is infinite or NaN
                        every_finite &= following[p, r] * 0.0 == 0.0
                current = following
                node += n_children
                entry += child_start[start + n_parents]
                start += n_parents + 1
                column += n_parents
            if ranks.shape[1]:
                for first in range(0, n_rows, n_units):
                    row = current[0, first : min(first + n_units, n_rows)]  # not the padding
                    out = ranks[s, first : first + n_units]
                    _rank_row_pairwise(row, ordinal, out, work, cutoffs, padded)
        finite[0] = every_finite

    return aggregate_tree


@inlined_helper
def _lane_weights(weights, first_scenario, out):
    """The weights of scenarios ``first_scenario`` onwards, one per lane of ``out`` (nodes,
    lanes); lanes past the last scenario repeat it (computed, never written out)."""
    last = weights.shape[0] - 1
    for j in range(weights.shape[1]):
        for lane in range(out.shape[1]):
            out[j, lane] = weights[min(first_scenario + lane, last), j]


@inlined_helper
def _lane_shares(lane_weights, node, children, first, last, shares):
    """Rows ``0 .. last - first - 1`` of ``shares``: each of a parent's children's weight over
    their sum (:func:`_weight_divisor`), lane by lane, summed in the order the tree kernel sums
    them; the row after them holds the sums."""
    total = shares[last - first]
    for lane in range(total.size):
        total[lane] = 0.0
    for k in range(first, last):
        for lane in range(total.size):
            total[lane] += lane_weights[node + children[k], lane]
    for lane in range(total.size):
        total[lane] = _weight_divisor(total[lane])
    for k in range(first, last):
        for lane in range(total.size):
            shares[k - first, lane] = lane_weights[node + children[k], lane] / total[lane]


@inlined_helper
def _prepare_lanes(values, first, n_children, method, shift_fraction, power, span, out):
    """:func:`_prepare` of rows ``first .. first + n_children - 1`` of ``values`` (nodes, rows,
    lanes) into ``out``, each lane (scenario) shifted by its own span; ``span`` (3, lanes) is
    scratch for each lane's lowest and highest value and shift."""
    n_rows, lanes = values.shape[1], values.shape[2]
    low, high, shift = span[0], span[1], span[2]
    for c in range(n_children):
        child = values[first + c]
        for lane in range(lanes):
            low[lane], high[lane] = np.inf, -np.inf
        for r in range(n_rows):
            for lane in range(lanes):
                if child[r, lane] == child[r, lane]:
                    low[lane] = min(low[lane], child[r, lane])
                    high[lane] = max(high[lane], child[r, lane])
        for lane in range(lanes):
            shift[lane] = _domain_shift(low[lane], high[lane], method, power, shift_fraction)
        for r in range(n_rows):
            for lane in range(lanes):
                x = child[r, lane] + shift[lane]
                out[c, r, lane] = _in_domain(x, method, power)


@kernel
def aggregate_shared(
    leaves,
    weights,
    sizes,
    child_start,
    children,
    methods,
    shift_fraction,
    power,
    n_units,
    ordinal,
    lanes,
    scores,
    ranks,
    finite,
):
    """The tree kernel's scores, ranks and check for leaves (C0, R) shared by every scenario,
    already prepared for the first level's method, and levels of plain means (no Copeland level,
    no threshold), ``lanes`` scenarios side by side: a node's rows are rows of lanes, so that the
    compiler's vector steps go across scenarios and each leaf value is read once for all of them.
    Along a row of scores, as the tree kernel goes, a short row is a few vector steps, each loop
    first checking that its arrays do not overlap (numba cannot say they never do); side by
    side, the loops are fewer while the lanes of every node stay in the first-level cache (see
    ``aggregate.LANES_BYTES``). Other arguments as the tree kernel's, but ``scores`` (S,
    aggregates, R) unpadded. Every score equals the tree kernel's bit for bit (the same
    operations in the same order, lane by lane; a NaN's sign bit may differ); the root is then
    ranked row by row, as there. ``lanes`` is a runtime number: a constant trip count would be
    unrolled and left scalar."""
    n_levels = sizes.size - 1
    n_rows = leaves.shape[1]
    n_scenarios = weights.shape[0]
    widest_family, widest_level = 0, 0  # a parent's children; the children of a level past 0
    for k in range(n_levels):
        if methods[k] == COPELAND:
            raise ValueError("side by side, means only: a Copeland level takes the tree kernel")
        widest_family = max(widest_family, sizes[k])
        if k > 0:
            widest_level = max(widest_level, sizes[k])
    values = np.zeros((scores.shape[1], n_rows, lanes))  # every aggregate node, lanes innermost
    prepared = np.zeros((widest_level, n_rows, lanes))
    lane_weights = np.empty((weights.shape[1], lanes))
    shares = np.empty((widest_family + 1, lanes))
    span = np.empty((3, lanes))
    work, cutoffs, padded = _rank_scratch(n_units)
    every_finite = True
    for first_scenario in range(0, n_scenarios, lanes):
        _lane_weights(weights, first_scenario, lane_weights)
        node, start, column, entry = np.int64(0), np.int64(0), np.int64(0), np.int64(0)
        for k in range(n_levels):
            n_children, n_parents = sizes[k], sizes[k + 1]
            level_children = children[entry:]
            below = column - n_children  # the children's rows of values (k > 0)
            if k > 0 and methods[k] != 0:
                _prepare_lanes(
                    values, below, n_children, methods[k], shift_fraction, power, span, prepared
                )
            for p in range(n_parents):
                first, last = child_start[start + p], child_start[start + p + 1]
                _lane_shares(lane_weights, node, level_children, first, last, shares)
                mean = values[column + p]
                for r in range(n_rows):
                    for lane in range(lanes):
                        mean[r, lane] = 0.0
                for position in range(last - first):
                    c = level_children[first + position]
                    share = shares[position]
                    if k == 0:
                        for r in range(n_rows):
                            leaf = leaves[c, r]
                            for lane in range(lanes):
                                mean[r, lane] += share[lane] * leaf
                    else:
                        child = prepared[c] if methods[k] != 0 else values[below + c]
                        for r in range(n_rows):
                            for lane in range(lanes):
                                mean[r, lane] += share[lane] * child[r, lane]
                if methods[k] != 0:
                    for r in range(n_rows):
                        for lane in range(lanes):
                            mean[r, lane] = _finish_mean(mean[r, lane], methods[k], power)
                for r in range(n_rows):
                    for lane in range(lanes):  # 0 * x is 0 unless x is infinite or NaN
                        every_finite &= mean[r, lane] * 0.0 == 0.0
            node += n_children
            entry += child_start[start + n_parents]
            start += n_parents + 1
            column += n_parents
        for lane in range(min(lanes, n_scenarios - first_scenario)):
            s = first_scenario + lane
            for a in range(values.shape[0]):
                for r in range(n_rows):
                    scores[s, a, r] = values[a, r, lane]
            if ranks.shape[1]:
                index = scores[s, scores.shape[1] - 1]
                for block_start in range(0, n_rows, n_units):
                    block = slice(block_start, block_start + n_units)
                    _rank_row_pairwise(
                        index[block], ordinal, ranks[s, block], work, cutoffs, padded
                    )
    finite[0] = every_finite


@kernel
def count_above_mean(index, mean_weights, above):
    """``above[y * units + u] +=`` 1 for each scenario where unit u's index exceeds that scenario's
    weighted mean index (``mean_weights`` over units) in year y. The counts are kept in an array
    of the kernel's own until the end: nothing else can alias them, so the compiler vectorises
    the count (50 -> 28 ns per 31-unit scenario against adding to ``above`` as it goes)."""
    n_scenarios, n_years, n_units = index.shape
    counts = np.zeros((n_years, n_units), dtype=np.int64)
    for s in range(n_scenarios):
        for y in range(n_years):
            mean = 0.0
            for u in range(n_units):
                mean += mean_weights[u] * index[s, y, u]
            for u in range(n_units):
                counts[y, u] += index[s, y, u] > mean
    for y in range(n_years):
        for u in range(n_units):
            above[y * n_units + u] += counts[y, u]


@kernel
def bin_correlations(values, grid, counts):
    """Add each defined correlation of ``values`` (S, years, 2) to ``counts`` (years, 2, bins) at
    its nearest point of a grid of ``grid`` bins per unit from -1 (rounded half to even, as
    ``np.rint``; values beyond the grid in its end bins); NaN (undefined) is left out."""
    n_bins = counts.shape[2]
    for s in range(values.shape[0]):
        for t in range(values.shape[1]):
            for m in range(values.shape[2]):
                value = values[s, t, m]
                if value == value:
                    place = min(max(np.rint((value + 1) * grid), 0.0), n_bins - 1.0)
                    counts[t, m, int(place)] += 1


@compiled_helper
def _add_level(counts, cell, level):
    if level < 1 or level > counts.shape[1]:
        raise ValueError("rank or tier out of range")
    counts[cell, level - 1] += 1


@kernel
def tally_ranks(ranks, tiers, nominal, counted, rank_counts, tier_counts, shift_counts):
    """One pass over a batch's ranks and tiers (S, cells): returns each scenario's total absolute
    rank change against ``nominal``; for the ``counted`` scenarios, adds to the histograms
    ``rank_counts`` (cells, ranks), ``tier_counts`` (cells, tiers) and ``shift_counts`` (totals
    0..cells x (ranks - 1))."""
    n_scenarios, n_cells = ranks.shape
    totals = np.empty(n_scenarios, dtype=np.int64)
    for s in range(n_scenarios):
        total = 0
        for c in range(n_cells):
            total += abs(ranks[s, c] - nominal[c])
        totals[s] = total
        if not counted[s]:
            continue
        for c in range(n_cells):
            _add_level(rank_counts, c, ranks[s, c])
            _add_level(tier_counts, c, tiers[s, c])
        if total >= shift_counts.size:
            raise ValueError("rank shift out of range")
        shift_counts[total] += 1
    return totals


@compiled_helper
def _twice_average_ranks(ranks, tally, twice_places):
    """Tally integer ranks 1..n into ``twice_places`` (n + 1): each value's average rank, ties
    sharing the mean of the places they span (as ``scipy.stats.rankdata``), doubled so that it is
    an integer, by counting: O(n). Returns the tied pairs and the sum of t^3 - t over groups of t
    ties (Spearman's tie correction)."""
    n = ranks.size
    for v in range(n + 1):
        tally[v] = 0
    for u in range(n):
        if ranks[u] < 1 or ranks[u] > n:
            raise ValueError("rank out of range")
        tally[ranks[u]] += 1
    below, pairs, cubes = 0, 0, 0.0
    for v in range(1, n + 1):
        t = tally[v]
        twice_places[v] = 2 * below + t + 1
        below += t
        pairs += t * (t - 1) // 2
        cubes += float(t) ** 3 - t
    return pairs, cubes


@compiled_helper
def _precedes(a, b):
    """Whether a key sorts strictly before another: higher first, NaN after every number."""
    return a > b or (b != b and a == a)


@compiled_helper
def _merge_sort(keys, order, lo, hi, key_scratch, order_scratch):
    """Sort ``keys[lo:hi]`` highest first, NaN last, equal keys in their given order, moving
    ``order[lo:hi]`` alike unless it is empty (from positions, it becomes ``np.argsort(-keys,
    kind="stable")``); return the pairs the sort reversed (a later key strictly before an earlier
    one): insertion sort within runs of ``INSERTION_RUN`` (each shift one pair; fast on the nearly
    sorted rankings of a study), then bottom-up merges counting the pairs they cross."""
    carry = order.size > 0
    reversed_pairs = 0
    for first in range(lo, hi, INSERTION_RUN):
        last = min(first + INSERTION_RUN, hi)
        for i in range(first + 1, last):
            key, item = keys[i], order[i] if carry else 0
            j = i
            while j > first and _precedes(key, keys[j - 1]):
                keys[j] = keys[j - 1]
                if carry:
                    order[j] = order[j - 1]
                j -= 1
            keys[j] = key
            if carry:
                order[j] = item
            reversed_pairs += i - j
    source, target = keys, key_scratch
    source_order, target_order = order, order_scratch
    in_scratch = False
    width = INSERTION_RUN
    while width < hi - lo:
        for left in range(lo, hi, 2 * width):
            middle, right = min(left + width, hi), min(left + 2 * width, hi)
            i, j = left, middle
            in_order = middle >= right or not _precedes(source[middle], source[middle - 1])
            for k in range(left, right):
                if not in_order and j < right and (i >= middle or _precedes(source[j], source[i])):
                    target[k] = source[j]
                    if carry:
                        target_order[k] = source_order[j]
                    reversed_pairs += middle - i
                    j += 1
                else:
                    target[k] = source[i]
                    if carry:
                        target_order[k] = source_order[i]
                    i += 1
        source, target = target, source
        source_order, target_order = target_order, source_order
        in_scratch = not in_scratch
        width *= 2
    if in_scratch:
        for k in range(lo, hi):
            keys[k] = key_scratch[k]
            if carry:
                order[k] = order_scratch[k]
    return reversed_pairs


@compiled_helper
def _counting_order(keys, order, tally):
    """The positions of integer ``keys`` in 1..n (n = ``keys.size``) in ascending order, equal keys
    in data order (as ``np.argsort(keys, kind="stable")``), by counting: O(n). ``tally``: n + 1
    integers of scratch."""
    n = keys.size
    for v in range(n + 1):
        tally[v] = 0
    for u in range(n):
        tally[keys[u]] += 1
    below = 0
    for v in range(n + 1):
        below, tally[v] = below + tally[v], below
    for u in range(n):
        order[tally[keys[u]]] = u
        tally[keys[u]] += 1


@compiled_helper
def _tied_pairs(ordered, lo, hi):
    """Pairs of equal values in sorted ``ordered[lo:hi]``."""
    pairs, run = 0, 1
    for k in range(lo + 1, hi + 1):
        if k < hi and ordered[k] == ordered[k - 1]:
            run += 1
        else:
            pairs += run * (run - 1) // 2
            run = 1
    return pairs


@compiled_helper
def _discordant_by_bits(y, order):
    """The discordant pairs of a ranking y of at most ``BITMASK_UNITS`` units against an untied x
    that ``order`` sorts, and whether y is untied: the ranks of the units before each are the bits
    of one word, so its discordant pairs are the bits above its rank, counted at once, and y is
    untied when its ranks fill the word's n lowest bits. O(n), against the merge sort's
    O(n log n) with a branch per step. (-1, False) for a rank out of 1..n."""
    n = y.size
    one = np.uint64(1)
    before = np.uint64(0)
    discordant = 0
    for p in range(n):
        rank = y[order[p]]
        if rank < 1 or rank > n:
            return -1, False
        bit = np.uint64(rank)
        discordant += _bit_count(before >> bit)  # earlier units ranked below (rank r: bit r - 1)
        before |= one << (bit - one)
    return discordant, before == (one << np.uint64(n)) - one


@compiled_helper
def _discordant_by_words(y, order, x_sorted, words, above):
    """:func:`_discordant_by_bits` for any number of units and an x with ties: ranks in ``words``
    of 64 bits (ceil(n / 64) of them, uint64), and in ``above`` (int32) each word's count of the
    ranks set in the words after it, raised for each rank in O(n / 64) steps that the compiler
    vectorises; the units of a run of tied x (``x_sorted``, in ``order``) are all counted before
    any is set, so that no pair tied in x counts. O(n^2 / 64), yet the rank agreement took a
    half to a quarter of the time it took by merge sort, O(n log n) with a branch per step, from
    64 to 20,000 units (``experiments/rank_agreement.py``)."""
    n = y.size
    for b in range(words.size):
        words[b] = 0
        above[b] = 0
    one = np.uint64(1)
    discordant = 0
    first = 0
    while first < n:
        last = first + 1
        while last < n and x_sorted[last] == x_sorted[first]:
            last += 1
        for p in range(first, last):  # units before this run of x ranked worse (rank above)
            rank = y[order[p]]
            if rank < 1 or rank > n:
                return -1, False
            block, bit = (rank - 1) >> 6, np.uint64((rank - 1) & 63)
            discordant += above[block] + _bit_count(words[block] >> bit >> one)
        for p in range(first, last):
            rank = y[order[p]]
            block, bit = (rank - 1) >> 6, np.uint64((rank - 1) & 63)
            words[block] |= one << bit
            for earlier in range(block):
                above[earlier] += 1
        first = last
    untied = True
    for b in range(words.size):  # every word full but the last, which holds n % 64 bits
        bits = np.uint64(min(64, n - 64 * b))
        untied &= words[b] == (~np.uint64(0) if bits == 64 else (one << bits) - one)
    return discordant, untied


@compiled_helper
def _bit_count(word):
    """Set bits of a 64-bit word (the classic SWAR sum, which the compiler turns into popcnt)."""
    word = word - ((word >> np.uint64(1)) & np.uint64(0x5555555555555555))
    word = (word & np.uint64(0x3333333333333333)) + (
        (word >> np.uint64(2)) & np.uint64(0x3333333333333333)
    )
    word = (word + (word >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((word * np.uint64(0x0101010101010101)) >> np.uint64(56))


@compiled_helper
def _kendall_tau_b(y, order, x_sorted, x_ties, y_ties, y_by_x, scratch):
    """Kendall's tau-b of (x, y) by Knight's merge-sort count, O(n log n): ``order`` sorts x
    (``x_sorted``, with ``x_ties`` tied pairs; y has ``y_ties``); y, negated (so that the
    descending merge sort puts it in ascending order) into ``y_by_x`` in that order, is sorted
    within tied x, then sorted whole, reversing each discordant pair once. Neither may be all
    tied."""
    n = y.size
    for p in range(n):
        y_by_x[p] = -y[order[p]]
    unordered = scratch[:0]  # nothing to move alongside
    first = np.int64(0)  # not a literal 0: one compilation of each helper (see aggregate_tree)
    joint_ties = first
    if x_ties:  # sort y within each run of tied x
        start = first
        for p in range(1, n + 1):
            if p == n or x_sorted[p] != x_sorted[start]:
                if p - start > 1:
                    _merge_sort(y_by_x, unordered, start, p, scratch, unordered)
                    joint_ties += _tied_pairs(y_by_x, start, p)
                start = p
    discordant = _merge_sort(y_by_x, unordered, first, n, scratch, unordered)
    return _tau_b(n, x_ties, y_ties, joint_ties, discordant)


@compiled_helper
def _tau_b(n, x_ties, y_ties, joint_ties, discordant):
    """Kendall's tau-b of n units from its counts of pairs."""
    pairs = n * (n - 1) // 2
    numerator = pairs - x_ties - y_ties + joint_ties - 2 * discordant
    return numerator / np.sqrt(float(pairs - x_ties) * float(pairs - y_ties))


@kernel
def rank_agreement(ranks, nominal, n_units, counted):
    """Spearman's rho and Kendall's tau-b (ties handled) between each ``counted`` scenario's ranking
    and ``nominal``, per block of ``n_units`` cells (a year): (S, years, 2), NaN where not counted
    or either ranking is all tied. Ranks are integers 1..n_units. For an untied ranking, the usual
    case, a count of bits gives Kendall's discordant pairs and tells that the ranking is untied: in
    one word, O(n), up to ``BITMASK_UNITS`` units against an untied nominal ranking, in several
    words, O(n^2 / 64), up to ``WORDS_UNITS`` units; otherwise (a tied ranking, found so by that
    count) Spearman's average ranks come from counts, O(n), and Kendall's count is a merge sort,
    O(n log n). Average ranks are doubled, so that Spearman's sum of products is an integer sum
    (vectorised; a sum of floats is added one by one), exact as the float sum of these
    quarter-integers was."""
    n_scenarios, n_cells = ranks.shape
    n = n_units
    n_years = n_cells // n
    result = np.full((n_scenarios, n_years, 2), np.nan)
    tally = np.empty(n + 1, dtype=np.int64)
    twice_places = np.empty(n + 1, dtype=np.int64)
    # twice the nominal average ranks minus their mean (any n average ranks have mean (n + 1) / 2)
    x_centred = np.empty((n_years, n), dtype=np.int64)
    x_squares = np.empty(n_years)
    orders = np.empty((n_years, n), dtype=np.int64)
    x_sorted = np.empty((n_years, n), dtype=np.int64)
    x_ties = np.empty(n_years, dtype=np.int64)
    for t in range(n_years):
        x = nominal[t * n : (t + 1) * n]
        x_ties[t], cubes = _twice_average_ranks(x, tally, twice_places)
        x_squares[t] = (float(n) ** 3 - n - cubes) / 12
        for u in range(n):
            x_centred[t, u] = twice_places[x[u]] - (n + 1)
        _counting_order(x, orders[t], tally)
        for p in range(n):
            x_sorted[t, p] = x[orders[t, p]]
    pairs = n * (n - 1) // 2
    untied_squares = (float(n) ** 3 - n) / 12
    untied_rho_divisors = np.sqrt(x_squares * untied_squares)
    untied_tau_divisors = np.sqrt((pairs - x_ties) * float(pairs))
    y_by_x = np.empty(n, dtype=np.int64)
    scratch = np.empty(n, dtype=np.int64)
    by_words = n <= WORDS_UNITS
    words = np.empty((n + 63) // 64, dtype=np.uint64)
    above = np.empty(words.size, dtype=np.int32)
    for s in range(n_scenarios):
        if not counted[s]:
            continue
        for t in range(n_years):
            y = ranks[s, t * n : (t + 1) * n]
            discordant, untied = -1, False
            if n <= BITMASK_UNITS and x_ties[t] == 0:  # the usual case
                discordant, untied = _discordant_by_bits(y, orders[t])
            elif by_words:
                discordant, untied = _discordant_by_words(y, orders[t], x_sorted[t], words, above)
            products = 0  # four times the sum of products of centred average ranks
            if untied:  # average rank = rank
                y_ties, y_squares = 0, untied_squares
                for u in range(n):
                    products += x_centred[t, u] * (2 * y[u] - (n + 1))
            else:
                y_ties, cubes = _twice_average_ranks(y, tally, twice_places)
                y_squares = (float(n) ** 3 - n - cubes) / 12
                for u in range(n):
                    products += x_centred[t, u] * (twice_places[y[u]] - (n + 1))
            if x_squares[t] <= 0 or y_squares <= 0:
                continue  # a ranking all tied: undefined
            if untied:  # the divisors of every untied ranking, computed once (as _tau_b would)
                result[s, t, 0] = products / 4 / untied_rho_divisors[t]
                result[s, t, 1] = (pairs - x_ties[t] - 2 * discordant) / untied_tau_divisors[t]
            else:
                result[s, t, 0] = products / 4 / np.sqrt(x_squares[t] * y_squares)
                result[s, t, 1] = _kendall_tau_b(
                    y, orders[t], x_sorted[t], x_ties[t], y_ties, y_by_x, scratch
                )
    return result


@kernel
def natural_break_rows(scores, classes):
    """Fisher-Jenks classes of each row (1 = highest scores): the split into ``classes`` runs of the
    sorted scores with the least within-class sum of squares, by dynamic programming on prefix
    sums (ties between equally good splits go to the earliest start, as ``argmin``)."""
    n_rows, n = scores.shape
    tiers = np.empty((n_rows, n), dtype=np.int64)
    ordered = np.empty(n)
    s1 = np.zeros(n + 1)
    s2 = np.zeros(n + 1)
    best = np.empty(n)
    following = np.empty(n)
    starts = np.empty((classes, n), dtype=np.int64)
    class_ascending = np.empty(n, dtype=np.int64)
    order = np.empty(n, dtype=np.int64)
    order_scratch = np.empty(n, dtype=np.int64)
    descending = np.empty(n)
    for row in range(n_rows):
        for p in range(n):
            order[p], descending[p] = p, scores[row, p]
        _merge_sort(descending, order, 0, n, ordered, order_scratch)  # ``ordered``: scratch
        for p in range(n):
            ordered[p] = descending[n - 1 - p]  # ascending
        for p in range(n):
            s1[p + 1] = s1[p] + ordered[p]
            s2[p + 1] = s2[p] + ordered[p] ** 2
        for j in range(n):
            best[j] = _run_cost(s1, s2, np.int64(0), j)  # not a literal 0: see aggregate_tree
        for m in range(1, classes):
            for j in range(n):
                chosen, lowest = 0, np.inf
                for i in range(n):  # i > j: an empty run, infinitely costly
                    candidate = (best[i - 1] if i > 0 else np.inf) + (
                        _run_cost(s1, s2, i, j) if i <= j else np.inf
                    )
                    if candidate < lowest:
                        chosen, lowest = i, candidate
                starts[m, j] = chosen
                following[j] = lowest
            for j in range(n):
                best[j] = following[j]
        class_ascending[:] = 1
        end = n - 1
        for m in range(classes - 1, 0, -1):
            first = starts[m, end]
            for p in range(first, n):
                class_ascending[p] += 1
            end = first - 1
        for p in range(n):
            tiers[row, order[p]] = classes + 1 - class_ascending[n - 1 - p]
    return tiers


@compiled_helper
def _run_cost(s1, s2, i, j):
    """Within-run sum of squares of sorted values i..j from prefix sums (never negative)."""
    total = s1[j + 1] - s1[i]
    return max(s2[j + 1] - s2[i] - total**2 / (j - i + 1), 0.0)
