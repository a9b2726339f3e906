"""Do the estimators find known answers? Sobol indices on analytic test functions and rank quantiles
against exhaustive enumeration, through the functions the runs use (``Design``, ``sobol_indices``,
``CountedValues``).

Usage: ``python experiments/validate_estimators.py [--quick]``; writes
``experiments/results/sobol_validation.csv`` (absolute error and the share of 95% bootstrap
intervals covering the truth, over repeated seeds) and ``experiments/results/rank_validation.csv``.
With ``--small``, only ``experiments/results/small_sample_validation.csv``: at N = 4 to 128 (30
designs each), the share of percentile intervals covering the true S1 and ST, of every output and
of those that pass the reliability tests of variation and width (why fewer than
``MIN_BASE_SAMPLES`` base samples make an output unreliable).

Test functions (inputs uniform on the unit hypercube):
- Ishigami (a = 7, b = 0.1) on [-pi, pi]^3;
- Sobol G with a = (0, 1, 4.5, 9, 99, 99);
- a linear composite y = sum w_i x_i (w = 4, 2, 1, 0.5): S1 = ST = w_i^2 / sum w^2;
- discrete: the ranks of the 31 provinces under 4 normalisations x 2 aggregations x 4 weighting
  schemes, whose exact indices follow from the full factorial of 32 pipelines
  (``experiments/results/discrete_validation.csv``: error and the coverage of both the normal and
  the percentile intervals).

Importance (``experiments/results/importance_validation.csv``): the correlation ratio eta^2 of
y = f(x) + noise on 31 units (f a line or a sine wave over uniform x, or a line over lognormal x),
noise scaled to a known eta^2; the estimate's bias and the coverage of its 95% bootstrap interval
as the runs compute it (each resample choosing its bandwidth) and with the bandwidth held at the
one chosen on all units.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens import Pipeline, ScenarioBatch, nqpf_spec
from nqpf_sens.audit.importance import (
    bootstrap_correlation_ratios,
    choose_bandwidth,
    correlation_ratio,
    resampled_correlation_ratios,
)
from nqpf_sens.engine.batch import Engine
from nqpf_sens.indices.nqpf.data import province_table
from nqpf_sens.uncertainty.designs import Design
from nqpf_sens.uncertainty.sobol import output_reliability, sobol_indices
from nqpf_sens.uncertainty.statistics import CountedValues

OUT = Path(__file__).resolve().parents[1] / "experiments" / "results"
MIN_TESTED = 1 << 20  # as many base samples as reliability's own test of N passes
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
                found = sobol_indices(y, ["y"], design.problem(), 100, 0.95, seed)
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
                                "percentile_covered": getattr(row, f"{index}_low") - 1e-12
                                <= truth
                                <= getattr(row, f"{index}_high") + 1e-12,
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
            percentile_coverage=("percentile_covered", "mean"),
            estimates=("covered", "size"),
        )
        .reset_index()
    )


def validate_small_samples(exponents: list[int], seeds: int) -> pd.DataFrame:
    """How the bootstrap's percentile intervals cover the true indices at small N, over every
    output and over those that :func:`output_reliability`'s tests of variation and width pass
    (its test of N left out): the analytic functions and the provinces' discrete ranks."""
    ranks, shape = exact_choice_ranks()
    exact = exact_indices(ranks)
    varying = np.flatnonzero(ranks.reshape(-1, ranks.shape[-1]).std(axis=0) >= 0.5)
    choices = ["normalisation", "aggregation", "weights"]
    cases = {
        name: (
            function,
            [f"x{i}" for i in range(d)],
            (np.array(s1)[:, None], np.array(st)[:, None]),
        )
        for name, (function, d, s1, st) in truths().items()
    }
    cases["discrete"] = (
        lambda u: ranks[
            tuple(np.minimum((u[:, j] * k).astype(int), k - 1) for j, k in enumerate(shape))
        ][:, varying].astype(float),
        choices,
        tuple(e[:, varying] for e in exact),
    )
    rows = []
    for name, (function, groups, (s1, st)) in cases.items():
        for exponent in exponents:
            for seed in range(seeds):
                design = Design("saltelli", 2**exponent, groups, seed)
                y = function(design.rows(0, design.n_rows))
                y = y if y.ndim == 2 else y[:, None]
                outputs = [f"rank:{k}" for k in range(y.shape[1])]
                found = sobol_indices(y, outputs, design.problem(), 100, 0.95, seed + 1)
                reliability = output_reliability(found, MIN_TESTED).set_index("output")
                for row in found.itertuples():
                    k, j = int(row.output.split(":")[1]), groups.index(row.factor)
                    for index, truth in (("S1", s1[j, k]), ("ST", st[j, k])):
                        low, high = getattr(row, f"{index}_low"), getattr(row, f"{index}_high")
                        rows.append(
                            {
                                "case": name,
                                "n": 2**exponent,
                                "passes_other_tests": reliability.reliable[row.output],
                                "covered": low - 1e-12 <= truth <= high + 1e-12,
                            }
                        )
        print(name, flush=True)
    detail = pd.DataFrame(rows)
    every = detail.groupby("n").covered.agg(coverage="mean", intervals="size")
    passing = detail[detail.passes_other_tests].groupby("n").covered
    return every.join(
        passing.agg(coverage_passing="mean", intervals_passing="size"), how="left"
    ).reset_index()


def exact_choice_ranks() -> tuple[np.ndarray, tuple[int, ...]]:
    """Ranks of the 31 provinces under every combination of 4 normalisations x 2 aggregations x 4
    weighting schemes (32 equiprobable pipelines), shaped (4, 2, 4, units)."""
    spec = nqpf_spec()
    engine = Engine(spec, province_table(spec))
    levels = (
        ["minmax", "zscore", "rank", "distance_to_leader"],
        ["arithmetic", "geometric"],
        ["expert", "equal", "entropy", "critic"],
    )
    pipelines = tuple(
        Pipeline(imputation="none", normalisation=n, aggregation=a, weighting=w)
        for n, a, w in itertools.product(*levels)
    )
    ranks = engine.evaluate(ScenarioBatch(pipelines, np.arange(len(pipelines)))).ranks[:, 0, :]
    shape = tuple(len(level) for level in levels)
    return ranks.reshape(*shape, -1).astype(float), shape


def exact_indices(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S1 and ST of every output (last axis) of a full factorial of equiprobable factors."""
    axes = tuple(range(y.ndim - 1))
    variance = y.var(axis=axes)
    first, total = [], []
    for factor in axes:
        others = tuple(a for a in axes if a != factor)
        first.append(y.mean(axis=others).var(axis=0))
        total.append(y.var(axis=factor).mean(axis=tuple(range(y.ndim - 2))))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array(first) / variance, np.array(total) / variance


def validate_discrete(exponents: list[int], seeds_at: dict[int, int]) -> pd.DataFrame:
    """Sobol indices of the provinces' ranks (a discrete output of discrete factors) against their
    exact values from the full factorial; coverage of both intervals over repeated seeds."""
    ranks, shape = exact_choice_ranks()
    s1, st = exact_indices(ranks)
    varying = np.flatnonzero(ranks.reshape(-1, ranks.shape[-1]).std(axis=0) >= 0.5)
    rows = []
    for exponent in exponents:
        for seed in range(seeds_at[exponent]):
            design = Design(
                "saltelli", 2**exponent, ["normalisation", "aggregation", "weights"], seed
            )
            u = design.rows(0, design.n_rows)
            picks = tuple(np.minimum((u[:, j] * k).astype(int), k - 1) for j, k in enumerate(shape))
            y = ranks[picks][:, varying]
            names = [str(k) for k in varying]
            found = sobol_indices(y, names, design.problem(), 100, 0.95, seed + 1)
            for row in found.itertuples():
                k, j = (
                    int(row.output),
                    ["normalisation", "aggregation", "weights"].index(row.factor),
                )
                for index, truth in (("S1", s1[j, k]), ("ST", st[j, k])):
                    value = getattr(row, index)
                    low, high = getattr(row, f"{index}_low"), getattr(row, f"{index}_high")
                    rows.append(
                        {
                            "n": 2**exponent,
                            "index": index,
                            "abs_error": abs(value - truth),
                            "normal_covered": abs(value - truth) <= getattr(row, f"{index}_conf"),
                            "percentile_covered": low - 1e-12 <= truth <= high + 1e-12,
                        }
                    )
        print("discrete", 2**exponent, flush=True)
    return (
        pd.DataFrame(rows)
        .groupby(["index", "n"])
        .agg(
            mean_abs_error=("abs_error", "mean"),
            normal_coverage=("normal_covered", "mean"),
            percentile_coverage=("percentile_covered", "mean"),
            estimates=("abs_error", "size"),
        )
        .reset_index()
        .assign(outputs=len(varying))
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
            truth, estimate = (1 + CountedValues(c).quantile(q) for c in (exact_counts, counts))
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


#: curves of the importance check: (name, f, a draw of x)
CURVES = (
    ("line", lambda x: x, lambda rng, n: rng.random(n)),
    ("sine", lambda x: np.sin(2 * np.pi * x), lambda rng, n: rng.random(n)),
    ("skewed line", lambda x: x, lambda rng, n: rng.lognormal(0.0, 1.2, n)),
)


def validate_importance(samples: int, units: int = 31, resamples: int = 200) -> pd.DataFrame:
    """Bias of the correlation ratio and coverage of its 95% percentile bootstrap interval on
    curves of known eta^2, over ``samples`` simulated data sets per case."""
    rng = np.random.default_rng(0)
    rows = []
    for name, curve, draw in CURVES:
        signal = np.var(curve(draw(rng, 10**6)))  # Var(E[y | x]), by a large sample
        for eta2 in (0.3, 0.6, 0.9):
            noise = np.sqrt(signal * (1 - eta2) / eta2)
            for _ in range(samples):
                x = draw(rng, units)
                y = curve(x) + rng.normal(0.0, noise, units)
                picks = rng.integers(0, units, size=(resamples, units))
                counts = np.stack([np.bincount(p, minlength=units) for p in picks]).astype(float)
                held = resampled_correlation_ratios(x, y, choose_bandwidth(x, y), counts)
                for method, ratios in (
                    ("each resample's bandwidth", bootstrap_correlation_ratios(x, y, counts)),
                    ("bandwidth held", held),
                ):
                    low, high = np.quantile(ratios, [0.025, 0.975])
                    rows.append(
                        {
                            "curve": name,
                            "eta2": eta2,
                            "interval": method,
                            "error": correlation_ratio(x, y) - eta2,
                            "covered": low <= eta2 <= high,
                            "width": high - low,
                        }
                    )
        print("importance", name, flush=True)
    return (
        pd.DataFrame(rows)
        .groupby(["curve", "eta2", "interval"], sort=False)
        .agg(
            mean_error=("error", "mean"),
            coverage=("covered", "mean"),
            mean_width=("width", "mean"),
            samples=("covered", "size"),
        )
        .reset_index()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--small", action="store_true", help="only the coverage at N = 4 to 128")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.small:
        small = validate_small_samples(list(range(2, 8)), 30)
        small.to_csv(OUT / "small_sample_validation.csv", index=False, float_format="%.4g")
        print(small.to_string(index=False))
        return
    exponents = [8, 10, 12] if args.quick else [8, 10, 12, 14, 16]
    seeds_at = {8: 100, 10: 100, 12: 100, 14: 40, 16: 20}
    if args.quick:
        seeds_at = {k: 10 for k in seeds_at}
    sobol = validate_sobol(exponents, seeds_at)
    sobol.to_csv(OUT / "sobol_validation.csv", index=False, float_format="%.4g")
    ranks = validate_ranks([100, 1000, 10000, 100000])
    ranks.to_csv(OUT / "rank_validation.csv", index=False)
    discrete = validate_discrete(exponents[:4], seeds_at)
    discrete.to_csv(OUT / "discrete_validation.csv", index=False, float_format="%.4g")
    importance = validate_importance(20 if args.quick else 400)
    importance.to_csv(OUT / "importance_validation.csv", index=False, float_format="%.4g")
    print(importance.to_string(index=False))
    print(discrete.to_string(index=False))
    print(sobol.to_string(index=False))
    print(ranks.to_string(index=False))


if __name__ == "__main__":
    main()
