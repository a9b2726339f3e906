"""Convergence checks: the main statistics on growing prefixes of the design, and a recommended
N."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nqpf_sens.uncertainty.designs import Design
from nqpf_sens.uncertainty.sobol import sobol_indices
from nqpf_sens.uncertainty.study import ChunkStats

FRACTIONS = (0.125, 0.25, 0.5, 1.0)


def _prefix_rows(
    stats: ChunkStats, design: Design, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``stats.outputs`` in the first ``fraction`` of the design: (for statistics, for
    Sobol)."""
    n = len(stats.outputs)
    if design.method != "saltelli":
        rows = np.arange(int(round(n * fraction)))
        return rows, rows
    per_sample = len(design.factor_names) + 2
    base = int(round(design.n * fraction))
    rows = np.arange(base * per_sample)
    position = rows % per_sample
    return rows[(position == 0) | (position == per_sample - 1)], rows


def convergence(
    stats: ChunkStats, design: Design, units: tuple[str, ...], tolerance: float, seed: int
) -> tuple[pd.DataFrame, list[str], int]:
    """Main statistics on growing prefixes of the design, warnings where the first half and the
    whole sample disagree by more than ``tolerance`` (Sobol indices) or one place (rank quantiles),
    and a recommended N (the current one, or four times it: Monte Carlo error halves with 4x N)."""
    n_units = len(units)
    records = []
    by_fraction = {}
    for fraction in FRACTIONS:
        statistic_rows, sobol_rows = _prefix_rows(stats, design, fraction)
        ranks = stats.outputs[statistic_rows, :n_units]
        summary = {
            "median": np.median(ranks, axis=0),
            "p05": np.quantile(ranks, 0.05, axis=0, method="inverted_cdf"),
            "p95": np.quantile(ranks, 0.95, axis=0, method="inverted_cdf"),
        }
        scenarios = int(len(sobol_rows))
        for name, values in summary.items():
            records += [
                {"scenarios": scenarios, "statistic": f"{name}_rank", "item": u, "value": float(v)}
                for u, v in zip(units, values, strict=True)
            ]
        records.append(
            {
                "scenarios": scenarios,
                "statistic": "rank_shift_mean",
                "item": "all",
                "value": float(stats.outputs[statistic_rows, -1].mean()),
            }
        )
        if design.method == "saltelli" and fraction >= 0.25:
            indices = sobol_indices(
                stats.outputs[sobol_rows, -1:],
                ["rank_shift"],
                design.problem(),
                len(design.factor_names),
                20,
                0.95,
                seed,
            )
            summary["ST"] = indices.set_index("factor").ST
            records += [
                {"scenarios": scenarios, "statistic": "ST_rank_shift", "item": f, "value": float(v)}
                for f, v in summary["ST"].items()
            ]
        by_fraction[fraction] = summary
    warnings_found = []
    half, full = by_fraction[0.5], by_fraction[1.0]
    moved = max(np.abs(half[k] - full[k]).max() for k in ("median", "p05", "p95"))
    if moved > 1:
        warnings_found.append(
            f"rank quantiles moved by up to {moved:g} places "
            "between the first half and the whole sample"
        )
    if "ST" in full:
        top = full["ST"].sort_values(ascending=False).index[:3]
        drift = (half["ST"][top] - full["ST"][top]).abs()
        for factor, change in drift[drift > tolerance].items():
            warnings_found.append(
                f"ST of '{factor}' (rank shift) changed by {change:.2f} "
                f"between the first half and the whole sample (tolerance {tolerance:g})"
            )
    recommended = design.n * (4 if warnings_found else 1)
    return pd.DataFrame(records), warnings_found, recommended
