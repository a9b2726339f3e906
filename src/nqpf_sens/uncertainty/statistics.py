"""From accumulated run statistics to the tables a reader uses: rank stability, tier bands, region
bands and quadrants, rank shifts (Saisana et al.'s R_S).

Rank quantiles come from exact rank counts: the q-quantile is the smallest rank whose cumulative
share reaches q (the inverse of the empirical distribution function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nqpf_sens.uncertainty.study import MOVE_LIMITS, ChunkStats


@dataclass(frozen=True)
class Labels:
    """Names that turn arrays back into tables."""

    units: tuple[str, ...]
    years: tuple[int | None, ...]
    aggregates: tuple[str, ...]
    regions: tuple[str, ...]


def count_quantile(counts: np.ndarray, q: float) -> np.ndarray:
    """q-quantile (inverted CDF) of the values 0, 1, 2, ... from their counts on the last axis."""
    cdf = np.cumsum(counts, axis=-1) / np.maximum(counts.sum(axis=-1, keepdims=True), 1)
    return np.argmax(cdf >= q - 1e-12, axis=-1)


def rank_quantile(counts: np.ndarray, q: float) -> np.ndarray:
    """q-quantile of ranks (1-based) from counts over ranks on the last axis."""
    return 1 + count_quantile(counts, q)


def _frame(labels: Labels, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows (year, unit) from arrays shaped (years, units); the year column only for several
    years."""
    n_years, n_units = len(labels.years), len(labels.units)
    frame = pd.DataFrame({"unit": np.tile(labels.units, n_years)})
    if len(labels.years) > 1:
        frame.insert(0, "year", np.repeat(np.asarray(labels.years), n_units))
    for name, values in columns.items():
        frame[name] = np.asarray(values).reshape(-1)
    return frame


def rank_stability(
    stats: ChunkStats, nominal: np.ndarray, labels: Labels, interval: float, within: int, top: int
) -> pd.DataFrame:
    counts = stats.rank_counts
    n = counts.sum(axis=-1)
    places = np.arange(1, counts.shape[-1] + 1)
    share = counts / np.maximum(n[..., None], 1)
    low, high = (1 - interval) / 2, 1 - (1 - interval) / 2
    distance = np.abs(places[None, None, :] - nominal[..., None])
    return _frame(
        labels,
        {
            "nominal_rank": nominal,
            "median_rank": rank_quantile(counts, 0.5),
            "mean_rank": (share * places).sum(axis=-1),
            "p05_rank": rank_quantile(counts, 0.05),
            "p95_rank": rank_quantile(counts, 0.95),
            **(
                {}
                if np.isclose(interval, 0.9)
                else {
                    "interval_low_rank": rank_quantile(counts, low),
                    "interval_high_rank": rank_quantile(counts, high),
                }
            ),
            "iqr_rank": rank_quantile(counts, 0.75) - rank_quantile(counts, 0.25),
            "p_nominal_rank": (share * (distance == 0)).sum(axis=-1),
            f"p_within_{within}": (share * (distance <= within)).sum(axis=-1),
            f"p_top_{top}": share[..., :top].sum(axis=-1),
        },
    )


def tier_bands(
    stats: ChunkStats,
    nominal_tiers: np.ndarray,
    nominal_ranks: np.ndarray,
    nominal_scores: np.ndarray,
    labels: Labels,
    interval: float,
) -> pd.DataFrame:
    """Tier probabilities and score bands. When the normalisation is a factor, scores of different
    scales are first mapped onto the nominal scale (see ``uncertainty.on_nominal_scale``)."""
    counts = stats.tier_counts
    share = counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1)
    columns: dict[str, np.ndarray] = {"nominal_tier": nominal_tiers, "nominal_rank": nominal_ranks}
    for k in range(share.shape[-1]):
        columns[f"p_tier_{k + 1}"] = share[..., k]
    columns["most_likely_tier"] = 1 + share.argmax(axis=-1)
    columns["p_nominal_tier"] = np.take_along_axis(share, (nominal_tiers - 1)[..., None], axis=-1)[
        ..., 0
    ]
    low, high = (1 - interval) / 2, 1 - (1 - interval) / 2
    for a, code in enumerate(labels.aggregates):
        name = "total" if a == len(labels.aggregates) - 1 else code
        median, p05, p95, interval_low, interval_high = np.quantile(
            stats.scores[..., a].astype(np.float64), [0.5, 0.05, 0.95, low, high], axis=0
        )
        columns[f"{name}_nominal"] = nominal_scores[..., a]
        columns[f"{name}_median"] = median
        columns[f"{name}_p05"] = p05
        columns[f"{name}_p95"] = p95
        if not np.isclose(interval, 0.9):
            columns[f"{name}_interval_low"] = interval_low
            columns[f"{name}_interval_high"] = interval_high
    return _frame(labels, columns)


def region_bands(
    stats: ChunkStats, nominal_means: np.ndarray, labels: Labels, expected_order: tuple[str, ...]
) -> pd.DataFrame:
    """Regional mean index scores per year, with bands and the probability that the regions keep
    ``expected_order`` (best first; the column ``p_paper_order``, NaN unless every region of the
    order is present), from the systematic subsample of scenarios whose scores are kept."""
    means = stats.region_means
    rows = []
    order = [labels.regions.index(r) for r in expected_order if r in labels.regions]
    paper_order = np.nan
    for t, year in enumerate(labels.years):
        if order and len(order) == len(expected_order):
            ordered = means[:, t, order]
            paper_order = float(np.all(ordered[:, :-1] > ordered[:, 1:], axis=1).mean())
        for r, region in enumerate(labels.regions):
            median, p05, p95 = np.quantile(means[:, t, r], [0.5, 0.05, 0.95])
            rows.append(
                {
                    "year": year,
                    "region": region,
                    "nominal_mean": nominal_means[t, r],
                    "median": median,
                    "p05": p05,
                    "p95": p95,
                    "p_paper_order": paper_order,
                }
            )
    frame = pd.DataFrame(rows)
    return frame.drop(columns="year") if len(labels.years) == 1 else frame


def quadrants(stats: ChunkStats, labels: Labels) -> pd.DataFrame:
    counts = stats.quadrant_counts
    share = counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1)
    names = (
        "p_high_index_high_gdp",
        "p_high_index_low_gdp",
        "p_low_index_high_gdp",
        "p_low_index_low_gdp",
    )
    frame = _frame(labels, {name: share[..., k] for k, name in enumerate(names)})
    known = counts.sum(axis=-1).reshape(-1) > 0
    return frame[known].reset_index(drop=True)


def rank_shift(stats: ChunkStats, n_cells: int) -> pd.DataFrame:
    """R_S (mean absolute rank shift against the nominal ranking over ``n_cells`` unit-years) and
    shares of small moves; quantiles are exact, from the histogram of total shifts."""
    counts = stats.shift_counts
    rows = [("rank_shift_mean", counts @ np.arange(len(counts)) / max(counts.sum(), 1) / n_cells)]
    rows += [
        (f"rank_shift_{name}", count_quantile(counts, q) / n_cells)
        for name, q in (("median", 0.5), ("p05", 0.05), ("p95", 0.95))
    ]
    rows += [
        (f"share_moving_less_than_{k}", stats.moved_counts[i] / max(counts.sum() * n_cells, 1))
        for i, k in enumerate(MOVE_LIMITS)
    ]
    return pd.DataFrame(rows, columns=["statistic", "value"])
