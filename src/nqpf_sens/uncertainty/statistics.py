"""From accumulated run statistics to the tables a reader uses: rank stability, tier bands, region
bands and quadrants, rank shifts (Saisana et al.'s R_S), rank agreement with the nominal ranking.

Rank quantiles come from exact rank counts: the q-quantile is the smallest rank whose cumulative
share reaches q (the inverse of the empirical distribution function). Every table states the
scenarios behind it, counted from the statistics themselves (in a Saltelli design, rows A and B),
and the Monte Carlo error of each estimate: a standard error for a probability, a distribution-free
95% order-statistic interval for a quantile.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nqpf_sens.uncertainty.study import AGREEMENT_GRID, ChunkStats

CONFIDENCE = 0.95  # of the quantiles' order-statistic intervals
QUANTILES = (("median", 0.5), ("p05", 0.05), ("p95", 0.95))  # what every band and table gives
WITHIN_LIMITS = (0, 1, 3, 5)  # R_S companions: shares of unit-years within k places (0: kept)
SAME_MEAN = 1e-9  # regional means closer to the nominal one than this (relative) equal it


@dataclass(frozen=True)
class Labels:
    """Names that turn arrays back into tables."""

    units: tuple[str, ...]
    years: tuple[int | None, ...]
    aggregates: tuple[str, ...]
    regions: tuple[str, ...]


def binomial_se(p: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """Monte Carlo standard error of a probability estimated as the share p of n independent
    scenarios, by Agresti and Coull: sqrt(p~ (1 - p~) / (n + z^2)) with p~ = (p n + z^2 / 2) /
    (n + z^2), z = 1.96 (NaN without scenarios). It is sqrt(p (1 - p) / n) within a few percent
    once p n and (1 - p) n pass about 10, and not 0 where every scenario agrees: that formula's
    0 for a share of 0 or 1 claimed certainty (for 0 of 2,048 scenarios this gives 0.0007; the
    exact upper 97.5% bound is 0.0018). For a share pooled over the units of each scenario
    (rank_shift's) it is an upper bound: a mean of per-scenario shares in [0, 1] has variance
    at most p (1 - p) / n."""
    p, n = np.asarray(p, dtype=float), np.asarray(n, dtype=float)
    z2 = 1.96**2
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (p * n + z2 / 2) / (n + z2)
        return np.where(n > 0, np.sqrt(np.clip(centre * (1 - centre), 0, None) / (n + z2)), np.nan)


def order_statistics(
    n: np.ndarray | int, q: float, level: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (1-based) of the order statistics bounding a distribution-free ``level`` interval
    for the q-quantile of n draws: the binomial(n, q) quantiles at (1 - level) / 2 and, plus one,
    at (1 + level) / 2. Whatever the distribution, the interval covers the quantile with
    probability at least ``level`` (more for discrete values such as ranks), unless a tail is out
    of the sample's reach ((1 - q)^n or q^n above (1 - level) / 2): positions are clipped to
    1..n."""
    n = np.maximum(np.asarray(n, dtype=np.int64), 1)
    tail = (1 - level) / 2
    low = np.clip(binomial_quantile(tail, n, q), 1, n)
    high = np.clip(binomial_quantile(1 - tail, n, q) + 1, 1, n)
    return low.astype(np.int64), high.astype(np.int64)


def binomial_quantile(level: float, n: np.ndarray, p: float) -> np.ndarray:
    """The smallest k with P(Binomial(n, p) <= k) >= ``level`` (0 < level < 1), as
    ``scipy.stats.binom.ppf`` computes it, from ``scipy.special`` (a third of the import time)."""
    from scipy.special import bdtr, bdtrik

    k = np.ceil(bdtrik(level, n, p))
    below = np.maximum(k - 1, 0)
    return np.where(bdtr(below, n, p) >= level, below, k)


class CountedValues:
    """Values 0, 1, 2, ... counted on the last axis of ``counts`` (a histogram per row): their
    quantiles, order statistics and the quantiles' intervals, read off one cumulative count (a
    large index's rank counts, units x ranks, took a cumulative sum for each quantile and each
    bound of its interval)."""

    def __init__(self, counts: np.ndarray):
        self.cumulative = np.cumsum(counts, axis=-1)
        self.n = self.cumulative[..., -1]

    @functools.cached_property
    def _cdf(self) -> np.ndarray:
        return self.cumulative / np.maximum(self.n[..., None], 1)

    def quantile(self, q: float) -> np.ndarray:
        """The q-quantile (inverted CDF): the first value whose cumulative share reaches q."""
        return np.argmax(self._cdf >= q - 1e-12, axis=-1)

    def order_statistic(self, k: np.ndarray) -> np.ndarray:
        """The k-th smallest value (1-based)."""
        return np.argmax(self.cumulative >= np.asarray(k)[..., None], axis=-1)

    def interval(self, q: float, level: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
        """Distribution-free ``level`` interval (low, high) for the q-quantile: the order
        statistics of ``order_statistics``."""
        low, high = order_statistics(self.n, q, level)
        return self.order_statistic(low), self.order_statistic(high)


def sample_quantiles(
    samples: np.ndarray, quantiles: tuple[float, ...], level: float = CONFIDENCE
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Each q-quantile of draws on the first axis, as ``np.quantile`` computes it to the bit
    (linear interpolation between the order statistics around (n - 1) q; NaN where a column holds
    one), and its distribution-free ``level`` interval (low, high): the order statistics of
    ``order_statistics``. One partial sort for all: ``np.quantile`` and the intervals sorting
    apart took twice as long (the score bands of a large index)."""
    n = len(samples)
    virtual = (n - 1) * np.asarray(quantiles, dtype=float)
    below = np.floor(virtual)
    above = below + 1
    at_top = virtual >= n - 1
    below[at_top] = above[at_top] = -1  # the largest value
    below, above = below.astype(np.intp), above.astype(np.intp)
    bounds = [order_statistics(n, q, level) for q in quantiles]
    positions = {n - 1, *(below % n), *(above % n), *(int(k) - 1 for pair in bounds for k in pair)}
    ordered = np.partition(samples, sorted(positions), axis=0)
    weight = (virtual - below).reshape(-1, *(1,) * (samples.ndim - 1))
    left, right = ordered[below], ordered[above]
    step = right - left  # numpy's interpolation, operation for operation
    values = left + step * weight
    np.subtract(right, step * (1 - weight), out=values, where=weight >= 0.5)
    np.copyto(values, ordered[-1], where=np.isnan(ordered[-1]))  # NaN sorts last
    return values, [(ordered[low - 1], ordered[high - 1]) for low, high in bounds]


def _with_interval(name: str, counted: CountedValues, q: float, scale) -> dict[str, np.ndarray]:
    """A quantile of counted values and its interval, ``scale`` mapping values to the table's."""
    low, high = counted.interval(q)
    return {
        name: scale(counted.quantile(q)),
        f"{name}_low": scale(low),
        f"{name}_high": scale(high),
    }


def _mean_with_se(name: str, counts: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """The mean of ``values`` counted on the last axis and its Monte Carlo standard error (the
    standard deviation over the counted scenarios divided by the root of their number)."""
    n = counts.sum(axis=-1)
    mean = (counts @ values) / np.maximum(n, 1)
    squares = (counts * (values - mean[..., None]) ** 2).sum(axis=-1)
    variance = squares / np.maximum(n - 1, 1)
    return {name: mean, f"{name}_se": np.sqrt(variance / np.maximum(n, 1))}


def _with_se(name: str, p: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    return {name: p, f"{name}_se": binomial_se(p, n)}


def _frame(labels: Labels, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows (year, unit) from arrays shaped (years, units); the year column only for several
    years."""
    n_years, n_units = len(labels.years), len(labels.units)
    leading = {"unit": np.tile(labels.units, n_years)}
    if len(labels.years) > 1:
        leading = {"year": np.repeat(np.asarray(labels.years), n_units), **leading}
    flat = {name: np.asarray(values).reshape(-1) for name, values in columns.items()}
    return pd.DataFrame({**leading, **flat})  # at once: a column at a time fragments the frame


def _rank(position: np.ndarray) -> np.ndarray:
    return 1 + position


def rank_stability(
    stats: ChunkStats, nominal: np.ndarray, labels: Labels, interval: float, within: int, top: int
) -> pd.DataFrame:
    counts = stats.rank_counts
    counted = CountedValues(counts)
    n = counted.n
    places = np.arange(1, counts.shape[-1] + 1)
    share = counts / np.maximum(n[..., None], 1)
    low, high = (1 - interval) / 2, 1 - (1 - interval) / 2
    distance = _places_from(nominal, counts.shape[-1])
    return _frame(
        labels,
        {
            "nominal_rank": nominal,
            **_with_interval("median_rank", counted, 0.5, _rank),
            **_mean_with_se("mean_rank", counts, places),
            **_with_interval("p05_rank", counted, 0.05, _rank),
            **_with_interval("p95_rank", counted, 0.95, _rank),
            **(
                {}
                if np.isclose(interval, 0.9)
                else {
                    **_with_interval("interval_low_rank", counted, low, _rank),
                    **_with_interval("interval_high_rank", counted, high, _rank),
                }
            ),
            "iqr_rank": counted.quantile(0.75) - counted.quantile(0.25),
            **_with_se("p_nominal_rank", (share * (distance == 0)).sum(axis=-1), n),
            **_with_se(f"p_within_{within}", (share * (distance <= within)).sum(axis=-1), n),
            **_with_se(f"p_top_{top}", share[..., :top].sum(axis=-1), n),
            "scenarios": n,
        },
    )


def _places_from(nominal: np.ndarray, n_ranks: int) -> np.ndarray:
    """How many places each rank 1..``n_ranks`` lies from each unit-year's ``nominal`` rank:
    (years, units, ranks), beside the rank counts."""
    return np.abs(np.arange(1, n_ranks + 1) - nominal[..., None])


def tier_bands(
    stats: ChunkStats,
    nominal_tiers: np.ndarray,
    nominal_ranks: np.ndarray,
    nominal_scores: np.ndarray,
    labels: Labels,
    interval: float,
    jobs: int = 1,
) -> pd.DataFrame:
    """Tier probabilities (from every counted scenario: ``scenarios``) and score bands (from the
    kept subsample: ``score_scenarios``; none for a part that aggregation without imputation leaves
    missing in some of them), each aggregate's bands in one of :func:`band_threads` threads
    (numpy's partial sorts release the interpreter; their copies of the kept scores are counted
    in ``resources.BAND_COPIES``). When the normalisation is a
    factor, scores of different scales are first mapped onto the nominal scale (see
    ``uncertainty.on_nominal_scale``)."""
    counts = stats.tier_counts
    n = counts.sum(axis=-1)
    share = counts / np.maximum(n[..., None], 1)
    columns: dict[str, np.ndarray] = {"nominal_tier": nominal_tiers, "nominal_rank": nominal_ranks}
    for k in range(share.shape[-1]):
        columns.update(_with_se(f"p_tier_{k + 1}", share[..., k], n))
    columns["most_likely_tier"] = 1 + share.argmax(axis=-1)
    nominal_share = np.take_along_axis(share, (nominal_tiers - 1)[..., None], axis=-1)[..., 0]
    columns.update(_with_se("p_nominal_tier", nominal_share, n))
    columns["scenarios"] = n
    columns["score_scenarios"] = np.full(n.shape, len(stats.scores))
    low, high = (1 - interval) / 2, 1 - (1 - interval) / 2
    named = list(QUANTILES)
    if not np.isclose(interval, 0.9):
        named += [("interval_low", low), ("interval_high", high)]
    quantiles = tuple(q for _, q in named)

    def bands(a: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        scores = nominal_scores[..., a] + stats.scores[..., a]  # kept as differences
        missing = np.isnan(scores).any(axis=0)  # a part left missing: no band rather than a guess
        values, bounds = sample_quantiles(scores, quantiles)
        return np.where(missing, np.nan, values), [
            (np.where(missing, np.nan, low), np.where(missing, np.nan, high))
            for low, high in bounds
        ]

    with ThreadPoolExecutor(band_threads(jobs, len(labels.aggregates))) as pool:
        every_band = list(pool.map(bands, range(len(labels.aggregates))))
    for a, (code, (values, bounds)) in enumerate(zip(labels.aggregates, every_band, strict=True)):
        name = "total" if a == len(labels.aggregates) - 1 else code
        columns[f"{name}_nominal"] = nominal_scores[..., a]
        for (statistic, _), value, (value_low, value_high) in zip(
            named, values, bounds, strict=True
        ):
            columns[f"{name}_{statistic}"] = value
            columns[f"{name}_{statistic}_low"] = value_low
            columns[f"{name}_{statistic}_high"] = value_high
    return _frame(labels, columns)


def band_threads(jobs: int, aggregates: int) -> int:
    """Threads that compute score bands, one aggregate each: no more than cores (each holds
    copies of its aggregate's kept scores)."""
    return max(1, min(jobs, os.cpu_count() or 1, aggregates))


def region_bands(
    stats: ChunkStats, nominal_means: np.ndarray, labels: Labels, expected_order: tuple[str, ...]
) -> pd.DataFrame:
    """Regional mean index scores per year, with bands and the probability that the regions keep
    ``expected_order`` (best first; the column ``p_paper_order``, NaN unless every region of the
    order is present) and that a region's mean is below (above) its nominal one, from the
    scenarios whose scores are kept, those of the design's first base samples (``scenarios``)."""
    means = nominal_means + stats.region_means  # kept as differences
    n = len(means)
    # a scenario within rounding of the nominal mean is neither below nor above it
    tolerance = SAME_MEAN * max(1.0, float(np.nanmax(np.abs(nominal_means), initial=0.0)))
    below, above = ((sign * stats.region_means > tolerance).mean(axis=0) for sign in (-1, 1))
    rows = []
    order = [labels.regions.index(r) for r in expected_order if r in labels.regions]
    paper_order = np.nan
    named = QUANTILES
    for t, year in enumerate(labels.years):
        if order and len(order) == len(expected_order):
            ordered = means[:, t, order]
            paper_order = float(np.all(ordered[:, :-1] > ordered[:, 1:], axis=1).mean())
        values, bounds = sample_quantiles(means[:, t], tuple(q for _, q in named))
        for r, region in enumerate(labels.regions):
            row = {"year": year, "region": region, "nominal_mean": nominal_means[t, r]}
            for (statistic, _), value, (value_low, value_high) in zip(
                named, values, bounds, strict=True
            ):
                row |= {
                    statistic: value[r],
                    f"{statistic}_low": value_low[r],
                    f"{statistic}_high": value_high[r],
                }
            for side, share in (("below", below[t, r]), ("above", above[t, r])):
                row |= {
                    f"p_{side}_nominal": share,
                    f"p_{side}_nominal_se": float(binomial_se(share, n)),
                }
            row |= {
                "p_paper_order": paper_order,
                "p_paper_order_se": float(binomial_se(paper_order, n)),
            }
            rows.append(row | {"scenarios": n})
    frame = pd.DataFrame(rows)
    return frame.drop(columns="year") if len(labels.years) == 1 else frame


def quadrants(stats: ChunkStats, labels: Labels) -> pd.DataFrame:
    counts = stats.quadrant_counts
    n = counts.sum(axis=-1)
    share = counts / np.maximum(n[..., None], 1)
    names = (
        "p_high_index_high_gdp",
        "p_high_index_low_gdp",
        "p_low_index_high_gdp",
        "p_low_index_low_gdp",
    )
    columns: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        columns.update(_with_se(name, share[..., k], n))
    frame = _frame(labels, columns | {"scenarios": n})
    return frame[frame.scenarios > 0].reset_index(drop=True)


def rank_shift(stats: ChunkStats, nominal: np.ndarray) -> pd.DataFrame:
    """R_S (mean absolute rank shift against the ``nominal`` ranks (years, units) over the
    unit-years, with the standard error of that mean over scenarios) and the shares of unit-years
    within k places of their nominal rank (from the rank counts); quantiles are exact, from the
    histogram of total shifts, with their intervals; ``scenarios``: the scenarios counted."""
    counts, n_cells = stats.shift_counts, nominal.size
    distance = _places_from(nominal, stats.rank_counts.shape[-1])
    counted = CountedValues(counts)
    n = counted.n
    rows = list(_mean_with_se("rank_shift_mean", counts, np.arange(len(counts)) / n_cells).items())
    for name, q in QUANTILES:
        rows += _with_interval(f"rank_shift_{name}", counted, q, lambda x: x / n_cells).items()
    for k in WITHIN_LIMITS:
        within = stats.rank_counts[distance <= k].sum()
        name = "share_unchanged" if k == 0 else f"share_within_{k}"
        rows += _with_se(name, within / max(n * n_cells, 1), n).items()
    rows.append(("scenarios", n))
    return pd.DataFrame(
        [(name, float(value)) for name, value in rows], columns=["statistic", "value"]
    )


def rank_agreement(stats: ChunkStats, nominal: np.ndarray, labels: Labels) -> pd.DataFrame:
    """Per year, the distribution over scenarios of Spearman's rho and Kendall's tau-b between each
    scenario's ranking and the nominal one (JRC audits' rank agreement): mean, median, 5th and
    95th percentiles with their intervals, from histograms on a grid of 1 / ``AGREEMENT_GRID``
    (values to within half a step); ``scenarios``: those with a defined correlation (not all
    units tied). ``share_nominal_rank_in_p05_p95``: the share of units whose nominal rank lies in
    their own 5th-95th percentile rank interval."""
    counts = stats.agreement_counts  # (years, 2, bins)
    grid = np.arange(counts.shape[-1]) / AGREEMENT_GRID - 1
    n = counts.sum(axis=-1)
    columns: dict[str, np.ndarray] = {}
    for m, measure in enumerate(("spearman", "kendall")):
        columns |= _mean_with_se(f"{measure}_mean", counts[:, m], grid)
        counted = CountedValues(counts[:, m])
        for name, q in QUANTILES:
            columns |= _with_interval(f"{measure}_{name}", counted, q, grid.take)
    ranks = CountedValues(stats.rank_counts)
    inside = (_rank(ranks.quantile(0.05)) <= nominal) & (nominal <= _rank(ranks.quantile(0.95)))
    columns["share_nominal_rank_in_p05_p95"] = inside.mean(axis=-1)
    columns["scenarios"] = n[:, 0]
    frame = pd.DataFrame(columns)
    for m, measure in enumerate(("spearman", "kendall")):  # no defined correlation: no statistic
        frame.loc[n[:, m] == 0, [c for c in frame if c.startswith(measure)]] = np.nan
    if len(labels.years) > 1:
        frame.insert(0, "year", np.asarray(labels.years))
    return frame
