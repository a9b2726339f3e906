"""Sobol sensitivity indices of a Saltelli design's outputs, and their summary per factor."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def sobol_indices(
    outputs: np.ndarray,
    names: list[str],
    problem: dict,
    n_factors: int,
    bootstrap: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """First- and total-order indices (SALib: Saltelli 2010 S1, Jansen ST) with bootstrap intervals.

    ``output_sd`` says how much there is to explain: indices of an output that hardly varies (a unit
    almost always at the same rank) describe a tiny variance and deserve little weight."""
    from SALib.analyze import sobol

    factor_names = list(dict.fromkeys(problem["groups"]))
    rows = []
    for k, name in enumerate(names):
        y = outputs[:, k].astype(np.float64)
        if np.ptp(y) == 0:
            rows += [
                {
                    "output": name,
                    "factor": f,
                    "S1": np.nan,
                    "S1_conf": np.nan,
                    "ST": np.nan,
                    "ST_conf": np.nan,
                    "output_sd": 0.0,
                }
                for f in factor_names
            ]
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sobol.analyze(
                problem,
                y,
                calc_second_order=False,
                num_resamples=bootstrap,
                conf_level=confidence,
                seed=seed,
                print_to_console=False,
            )
        for g, factor in enumerate(factor_names):
            rows.append(
                {
                    "output": name,
                    "factor": factor,
                    "S1": result["S1"][g],
                    "S1_conf": result["S1_conf"][g],
                    "ST": result["ST"][g],
                    "ST_conf": result["ST_conf"][g],
                    "output_sd": float(y.std()),
                }
            )
    return pd.DataFrame(rows)


def sobol_summary(indices: pd.DataFrame) -> pd.DataFrame:
    """Per factor: indices of R_S, and ST of the units' ranks summarised across units."""
    ranks = indices[indices.output.str.startswith("rank:")]
    shift = indices[indices.output == "rank_shift"].set_index("factor")
    by_factor = ranks.groupby("factor", sort=False)
    top = ranks.dropna(subset=["ST"]).loc[lambda f: f.groupby("output").ST.transform("max") == f.ST]
    summary = pd.DataFrame(
        {
            "S1_rank_shift": shift["S1"],
            "S1_rank_shift_conf": shift["S1_conf"],
            "ST_rank_shift": shift["ST"],
            "ST_rank_shift_conf": shift["ST_conf"],
            "mean_ST_ranks": by_factor.ST.mean(),
            "max_ST_ranks": by_factor.ST.max(),
            "mean_S1_ranks": by_factor.S1.mean(),
            "units_where_top": top.factor.value_counts(),
        }
    )
    summary["units_where_top"] = summary["units_where_top"].fillna(0).astype(int)
    return summary.rename_axis("factor").reset_index().sort_values("ST_rank_shift", ascending=False)
