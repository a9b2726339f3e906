"""Do the estimators find known answers? Sobol indices on analytic test functions and rank quantiles
against exhaustive enumeration, through the functions the runs use (``Design``, ``sobol_indices``,
``rank_quantile``).

Usage: ``python experiments/validate_estimators.py [--quick]``; writes
``experiments/results/sobol_validation.csv`` (absolute error and the share of 95% bootstrap
intervals covering the truth, over repeated seeds) and ``experiments/results/rank_validation.csv``.

Test functions (inputs uniform on the unit hypercube):
- Ishigami (a = 7, b = 0.1) on [-pi, pi]^3;
- Sobol G with a = (0, 1, 4.5, 9, 99, 99);
- a linear composite y = sum w_i x_i (w = 4, 2, 1, 0.5): S1 = ST = w_i^2 / sum w^2.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens import Pipeline, ScenarioBatch, nqpf_spec
from nqpf_sens.engine.batch import Engine
from nqpf_sens.indices.nqpf.data import province_table
from nqpf_sens.uncertainty.designs import Design
from nqpf_sens.uncertainty.sobol import sobol_indices
from nqpf_sens.uncertainty.statistics import rank_quantile

OUT = Path(__file__).resolve().parents[1] / "experiments" / "results"
G_A = np.array([0.0, 1.0, 4.5, 9.0, 99.0, 99.0])
LINEAR_W = np.array([4.0, 2.0, 1.0, 0.5])


def ishigami(u):
    x = -np.pi + 2 * np.pi * u
    return np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])


def sobol_g(u):
    return np.prod((np.abs(4 * u - 2) + G_A) / (1 + G_A), axis=1)


def linear(u):
    return u @ LINEAR_W


def truths() -> dict[str, tuple]:
    partial = 1 / (3 * (1 + G_A) ** 2)
    total = np.prod(1 + partial) - 1
    share = LINEAR_W**2 / (LINEAR_W**2).sum()
    return {
        "ishigami": (
            ishigami,
            3,
            np.array([0.3139, 0.4424, 0.0]),
            np.array([0.5576, 0.4424, 0.2437]),
        ),
        "sobol_g": (
            sobol_g,
            6,
            partial / total,
            partial * np.prod(1 + partial) / (1 + partial) / total,
        ),
        "linear": (linear, 4, share, share),
    }


def validate_sobol(exponents: list[int], seeds_at: dict[int, int]) -> pd.DataFrame:
    rows = []
    for name, (function, d, s1, st) in truths().items():
        groups = [f"x{i}" for i in range(d)]
        for exponent in exponents:
            n = 2**exponent
            for seed in range(seeds_at[exponent]):
                design = Design("saltelli", n, groups, seed)
                y = function(design.rows(0, design.n_rows))[:, None]
                found = sobol_indices(y, ["y"], design.problem(), d, 100, 0.95, seed)
                for i, row in enumerate(found.itertuples()):
                    for index, truth in (("S1", s1[i]), ("ST", st[i])):
                        value, conf = getattr(row, index), getattr(row, f"{index}_conf")
                        rows.append(
                            {
                                "function": name,
                                "n": n,
                                "seed": seed,
                                "input": i,
                                "index": index,
                                "truth": truth,
                                "estimate": value,
                                "abs_error": abs(value - truth),
                                "covered": abs(value - truth) <= conf,
                            }
                        )
            print(name, n, flush=True)
    detail = pd.DataFrame(rows)
    return (
        detail.groupby(["function", "index", "n"])
        .agg(
            mean_abs_error=("abs_error", "mean"),
            max_abs_error=("abs_error", "max"),
            coverage=("covered", "mean"),
            estimates=("covered", "size"),
        )
        .reset_index()
    )


def validate_ranks(sizes: list[int], seed: int = 0) -> pd.DataFrame:
    """Rank quantiles of a run over 4 x 2 x 4 equiprobable discrete choices, against all 32
    cases."""
    spec = nqpf_spec()
    table = province_table(spec)
    engine = Engine(spec, table)
    options = list(
        itertools.product(
            ["minmax", "zscore", "rank", "distance_to_leader"],
            ["arithmetic", "geometric"],
            ["expert", "equal", "entropy", "critic"],
        )
    )
    pipelines = tuple(
        Pipeline(imputation="none", normalisation=n, aggregation=a, weighting=w)
        for n, a, w in options
    )
    exact = engine.evaluate(ScenarioBatch(pipelines, np.arange(len(pipelines)))).ranks[:, 0, :]
    n_units = exact.shape[1]
    exact_counts = np.stack(
        [np.bincount(exact[:, u] - 1, minlength=n_units) for u in range(n_units)]
    )
    rows = []
    rng = np.random.default_rng(seed)
    for size in sizes:
        picks = rng.integers(0, len(pipelines), size=size)
        sample = exact[picks]
        counts = np.stack(
            [np.bincount(sample[:, u] - 1, minlength=n_units) for u in range(n_units)]
        )
        for q in (0.05, 0.5, 0.95):
            truth, estimate = rank_quantile(exact_counts, q), rank_quantile(counts, q)
            rows.append(
                {
                    "scenarios": size,
                    "quantile": q,
                    "units_exact": int((truth == estimate).sum()),
                    "units": n_units,
                    "max_abs_error": int(np.abs(truth - estimate).max()),
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    exponents = [8, 10, 12] if args.quick else [8, 10, 12, 14, 16]
    seeds_at = {8: 100, 10: 100, 12: 100, 14: 40, 16: 20}
    if args.quick:
        seeds_at = {k: 10 for k in seeds_at}
    OUT.mkdir(parents=True, exist_ok=True)
    sobol = validate_sobol(exponents, seeds_at)
    sobol.to_csv(OUT / "sobol_validation.csv", index=False, float_format="%.4g")
    ranks = validate_ranks([100, 1000, 10000, 100000])
    ranks.to_csv(OUT / "rank_validation.csv", index=False)
    print(sobol.to_string(index=False))
    print(ranks.to_string(index=False))


if __name__ == "__main__":
    main()
