"""Convergence from replicates: is N enough, and what would be?

The design's base samples are split into ``BLOCKS`` disjoint, contiguous blocks. Each block is a
complete design of its own (a contiguous block of a scrambled Sobol sequence whose length is a power
of two is itself a net; blocks of a random design are independent draws), so the main statistics
computed block by block are replicates that share no scenario, unlike the first half of a sample
and the whole. Their spread estimates the Monte Carlo error of the whole-sample value: standard
error = sd(blocks) / sqrt(BLOCKS), which halves when N quadruples, with Student's t at BLOCKS - 1
degrees of freedom for intervals. Blocks of a random design are independent; blocks of one
scrambled Sobol sequence share its scramble and balance each other (negatively correlated), so
there the standard error overstates the error of the whole sample and the verdict errs on the
safe side (on a smooth test function by a factor of about 3.7). A Monte Carlo design keeps the
rows of its first scenarios only (at most 65,536): the blocks split those, and their error is
scaled by sqrt(kept / counted) to that of the value the tables give, from every scenario.

A rank quantile is a step function of the sample: where the share of scenarios at or above a rank
lies within sampling error of the quantile's level, the estimate can be either of two ranks, and
the blocks, each flipping alike, understate that (0.17 against 0.51 places across seeds).
:func:`flip_error` gives that error from the run's own rank counts (every scenario, as
``rank_stability.csv``); it assumes independent scenarios, so on a Sobol design it overstates.
A percentile whose flip error is above ``RANK_ERROR`` withholds the verdict that N was enough: its
estimate may be a place or more off. A larger N settles it as sampling error shrinks, unless the
share sits exactly at the level, where no N decides between the two ranks.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import bdtr, bdtrc, stdtrit  # binomial tails, Student's t quantiles

from nqpf_sens.uncertainty.designs import Design
from nqpf_sens.uncertainty.sobol import estimate
from nqpf_sens.uncertainty.statistics import QUANTILES, CountedValues
from nqpf_sens.uncertainty.study import ChunkStats
from nqpf_sens.wording import agreeing, plural

BLOCKS = 8  # replicates (fewer when the base sample is small: at least 4 samples each)
RANK_ERROR = 0.5  # places: a rank quantile whose standard error is larger is not settled


def _blocks(n_base: int) -> int:
    return min(BLOCKS, n_base // 4)


def _spans(n_items: int, blocks: int) -> list[slice]:
    """``blocks`` contiguous, disjoint spans of ``n_items`` base samples."""
    edges = np.linspace(0, n_items, blocks + 1).astype(int)
    return [slice(start, stop) for start, stop in zip(edges[:-1], edges[1:], strict=True)]


RANK_QUANTILES = tuple((f"{name}_rank", q) for name, q in QUANTILES)


def flip_error(counts: np.ndarray, q: float) -> np.ndarray:
    """Root mean square error (places) of each row's q-quantile rank, from its counts over ranks
    1, 2, ... (rows: units): the estimate r, with F(r - 1) < q <= F(r) in the sample, is off where
    the truth lies on the other side of q, by as many places as the nearest rank the sample holds
    on that side. The probability of that is taken as twice the binomial probability of a count as
    far from q under a true share of q (independent scenarios), capped at 1: the one-sided
    probability alone halves the error at a step, where the estimate is off half the time. For
    moves of one place its square averages at least the true squared error over samples, and at
    most about 0.24 more (tests/test_convergence.py)."""
    counted = CountedValues(counts)
    n, cumulative = counted.n, counted.cumulative
    position = counted.quantile(q)  # as rank_stability's
    places = np.arange(counts.shape[-1])
    held = counts > 0
    rows = np.arange(len(counts))
    below = np.where(position > 0, cumulative[rows, np.maximum(position - 1, 0)], 0)
    at = cumulative[rows, position]
    previous = np.where(held & (places < position[:, None]), places, -1).max(axis=-1)
    following = np.where(held & (places > position[:, None]), places, len(places)).min(axis=-1)
    down = np.where(previous >= 0, np.minimum(2 * _tail(below, n, q), 1.0), 0.0)
    up = np.where(following < len(places), np.minimum(2 * _tail(at, n, q), 1.0), 0.0)
    return np.sqrt(down * (position - previous) ** 2 + up * (following - position) ** 2)


def _tail(count: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """The probability of a Binomial(n, q) count at least as far from n q as ``count``, on its
    side."""
    return np.where(count < n * q, bdtr(count, n, q), bdtrc(count - 1, n, q))


def _statistics(
    outputs: np.ndarray, shift_rows: np.ndarray | None, design: Design, n: int
) -> dict[tuple[str, str], float]:
    """The monitored statistics of one sample: rank quantiles and R_S from the uncertainty rows'
    ``outputs``, ST of R_S from every row's rank shift (``shift_rows``, a Saltelli design)."""
    ranks = outputs[:, :n]
    found: dict[tuple[str, str], float] = {}
    every = np.quantile(ranks, [q for _, q in RANK_QUANTILES], axis=0, method="inverted_cdf")
    for (name, _), values in zip(RANK_QUANTILES, every, strict=True):  # one partial sort for all
        found.update({(name, str(k)): float(v) for k, v in enumerate(values.tolist())})
    found[("rank_shift_mean", "all")] = float(outputs[:, -1].mean())
    if shift_rows is not None:
        factors = design.factor_names
        no_resamples = np.empty((0, len(shift_rows) // (len(factors) + 2)))
        indices = estimate(shift_rows[:, None], len(factors), no_resamples)
        with np.errstate(divide="ignore", invalid="ignore"):
            totals = np.where(indices.varies[0], indices.ST[0], np.nan)  # R_S constant: none
        found.update({("ST_rank_shift", f): float(v) for f, v in zip(factors, totals, strict=True)})
    return found


def _counted_statistics(stats: ChunkStats, last_year: np.ndarray) -> dict[tuple[str, str], float]:
    """The monitored rank quantiles and R_S of every counted scenario, as the tables give them:
    quantiles from the last year's rank counts, R_S from the histogram of total shifts."""
    found: dict[tuple[str, str], float] = {}
    ranks = CountedValues(last_year)
    for name, q in RANK_QUANTILES:
        found.update({(name, str(k)): float(v + 1) for k, v in enumerate(ranks.quantile(q))})
    shifts = stats.shift_counts
    cells = stats.rank_counts.shape[0] * stats.rank_counts.shape[1]
    mean = float(np.arange(len(shifts)) @ shifts / max(int(shifts.sum()), 1) / cells)
    found[("rank_shift_mean", "all")] = mean
    return found


def convergence(
    stats: ChunkStats,
    design: Design,
    units: tuple[str, ...],
    tolerance: float,
    shift_rows: np.ndarray | None = None,
) -> tuple[pd.DataFrame, list[str], int]:
    """The monitored statistics on the whole sample and on each block, their standard errors,
    warnings where a rank quantile's standard error or flip error exceeds ``RANK_ERROR`` places or
    the 95% interval of a factor's ST of R_S is wider than ``tolerance`` either side, and the N that
    would meet the targets (a power of two, at least the current N). ``stats.outputs``: the
    uncertainty rows (rows A and B of each base sample of a Saltelli design, whose ``shift_rows``
    give every row's rank shift; the kept rows of a Monte Carlo design). With a single unit, whose
    rank and R_S cannot vary, or too few base samples for replicates, N is not assessed."""
    blocks = _blocks(design.n)
    n_units = len(units)
    outputs = stats.outputs
    saltelli = shift_rows is not None
    n_samples = design.n if saltelli else len(outputs)
    statistic_rows, sobol_rows = (2, len(design.factor_names) + 2) if saltelli else (1, 1)

    def sample(span: slice) -> dict[tuple[str, str], float]:
        start, stop = span.start, span.stop
        rows = outputs[start * statistic_rows : stop * statistic_rows]
        shift = None if shift_rows is None else shift_rows[start * sobol_rows : stop * sobol_rows]
        return _statistics(rows, shift, design, n_units)

    whole = sample(slice(0, n_samples))
    replicates = [sample(span) for span in _spans(n_samples, blocks)] if blocks >= 2 else []
    last_year = stats.rank_counts[-1]  # (units, ranks), every scenario: as rank_stability's
    counted = int(last_year[0].sum()) if n_units else 0
    # a Monte Carlo design keeps the rows of its first scenarios only: the tables' statistics are
    # of every scenario, so their values are read from the counts and the blocks' error scaled
    # to every scenario (1/sqrt(n)); it was that of the subsample, and the N recommended from it
    # as many times too large as the run holds scenarios beyond the subsample
    subsample = not saltelli and 0 < len(outputs) < counted
    scale = math.sqrt(len(outputs) / counted) if subsample else 1.0
    if subsample:
        whole.update(_counted_statistics(stats, last_year))
    flips = {
        (name, str(k)): error
        for name, q in RANK_QUANTILES
        for k, error in enumerate(flip_error(last_year, q))
    }
    records = []
    for (statistic, item), value in whole.items():
        values = np.array([r[(statistic, item)] for r in replicates])
        defined = values[~np.isnan(values)]  # ST of R_S: none in a block where R_S is constant
        error = defined.std(ddof=1) / math.sqrt(len(defined)) if len(defined) >= 2 else math.nan
        error *= scale
        records.append(
            {
                "statistic": statistic,
                "item": units[int(item)] if statistic.endswith("_rank") else item,
                "value": value,
                **{f"block_{b + 1}": v for b, v in enumerate(values)},
                "blocks": len(defined),
                "standard_error": float(error),
                "flip_error": float(flips.get((statistic, item), math.nan)),
                "scenarios": counted
                if subsample
                else len(
                    shift_rows
                    if statistic == "ST_rank_shift" and shift_rows is not None
                    else outputs
                ),
            }
        )
    table = pd.DataFrame(records)
    if n_units == 1:  # the check could not fail: not a verdict that N is enough
        unassessed = (
            "a single unit's rank is always 1 and its R_S always 0, so no statistic monitored "
            "here can vary (the score bands carry their own intervals in tier_bands.csv)"
        )
        return table, [f"not assessed: {unassessed}"], design.n
    if len(replicates) < 2:
        return (
            table,
            [f"not assessed: N = {design.n} is too small to split into replicates"],
            design.n,
        )
    warnings, factor = _verdict(table, tolerance, stdtrit(len(replicates) - 1, 0.975))
    recommended = design.n * max(1, 2 ** math.ceil(math.log2(factor))) if factor > 1 else design.n
    return table, warnings, recommended


def _verdict(table: pd.DataFrame, tolerance: float, z: float) -> tuple[list[str], float]:
    """Warnings, and by how much N must grow to meet the targets (errors fall as 1/sqrt N; a flip
    error falls faster, as the binomial tail beyond the step thins, unless the share is exactly at
    the level)."""
    warnings = []
    growth = 1.0
    ranks = table[table.statistic.str.endswith("_rank")]
    worst = ranks.loc[ranks.standard_error.idxmax()] if ranks.standard_error.notna().any() else None
    if worst is not None and worst.standard_error > RANK_ERROR:
        warnings.append(
            f"the {worst.statistic.replace('_rank', '')} rank of {worst['item']} has a standard "
            f"error of {worst.standard_error:.2f} places (more than {RANK_ERROR})"
        )
        growth = max(growth, (worst.standard_error / RANK_ERROR) ** 2)
    at_step = ranks[ranks.flip_error > RANK_ERROR]
    if len(at_step):
        warnings.append(
            f"{len(at_step)} of {plural(len(ranks), 'rank percentile')} "
            f"{agreeing(len(at_step), 'sits', 'sit')} within sampling error of a step between "
            f"ranks (flip_error above {RANK_ERROR} places, which the blocks understate), so N "
            "was not shown to be enough: read those units' percentile intervals in "
            "rank_stability.csv"
        )
        growth = max(growth, (at_step.flip_error.max() / RANK_ERROR) ** 2)
    sobol = table[table.statistic == "ST_rank_shift"]
    unassessed = sobol[sobol.value.notna() & sobol.standard_error.isna()]
    if len(unassessed):
        warnings.append(
            f"the ST of the rank shift of {len(unassessed)} factor(s) cannot be assessed: the rank "
            "shift varies in fewer than 2 blocks of the design"
        )
    for row in sobol[z * sobol.standard_error > tolerance].itertuples():
        warnings.append(
            f"ST of '{row.item}' (rank shift) is {row.value:.2f} +/- {z * row.standard_error:.2f}"
            f" (95%, from blocks of the design; tolerance {tolerance:g})"
        )
        growth = max(growth, (z * row.standard_error / tolerance) ** 2)
    return warnings, growth
