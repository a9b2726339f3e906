"""Speed of the Sobol analysis: the vectorised estimator against SALib, output by output.

Usage: ``python experiments/bench_sobol.py [--quick]``; writes
``experiments/results/bench_sobol.csv``.

Two cases, each timed as the median of 3 repeats in one process:
- ``sobol.toml``: the analysis step of ``configs/sobol.toml`` on the outputs of its own study (every
  unit's rank and score and R_S, 200 bootstrap resamples): indices, the variance-weighted indices
  of all ranks, the reliability flags and the summary.
- ``synthetic``: 1,000 outputs of a design with N = 2^14 and 20 factors (200 resamples). SALib is
  timed on the first 10 outputs and scaled to 1,000 (its time is the same for every output).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from SALib.analyze import sobol as salib

from nqpf_sens.config import load_config
from nqpf_sens.engine.batch import evaluate
from nqpf_sens.inputs import load_inputs
from nqpf_sens.plan import output_names, prepare_study
from nqpf_sens.uncertainty.designs import Design
from nqpf_sens.uncertainty.sobol import output_reliability, sobol_indices, sobol_summary
from nqpf_sens.uncertainty.study import run_study

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "bench_sobol.csv"
REPEATS = 3


def median_seconds(function, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def salib_seconds(outputs: np.ndarray, problem: dict, bootstrap: int) -> float:
    """SALib's analysis of every column, one after the other (as the runs did before)."""
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(outputs.shape[1]):
            salib.analyze(problem, outputs[:, k], False, num_resamples=bootstrap, seed=1)
    return time.perf_counter() - started


def sobol_toml_case() -> dict:
    config = load_config(ROOT / "configs" / "sobol.toml")
    spec, table = load_inputs(config)
    nominal = evaluate(spec, table, config.pipeline, config.ties)
    prepared = prepare_study(config, spec, table, nominal, jobs=2)
    stats = run_study(prepared.study, None, config.chunk_size, 2, "threading", None, False, False)
    design, units = prepared.study.design, table.units
    bootstrap = config.sampling.bootstrap

    def analyse() -> None:
        indices = sobol_indices(
            stats.outputs,
            output_names(units),
            design.problem(),
            bootstrap,
            0.95,
            1,
            aggregates={"all_ranks": np.arange(len(units))},
        )
        sobol_summary(indices, output_reliability(indices, design.n))

    ours = median_seconds(analyse)
    reference = salib_seconds(stats.outputs, design.problem(), bootstrap)
    return _row("sobol.toml", stats.outputs, design, bootstrap, ours, reference)


def synthetic_case(quick: bool) -> dict:
    n, factors, n_outputs, bootstrap = (2**11, 20, 100, 200) if quick else (2**14, 20, 1000, 200)
    design = Design("saltelli", n, [f"x{i}" for i in range(factors)], 1)
    u = design.rows(0, design.n_rows)
    weights = np.random.default_rng(0).gamma(1.0, 1.0, size=(factors, n_outputs))
    outputs = np.sin(3 * u) @ weights + (u[:, :1] * u[:, 1:2]) * weights[0]
    names = [f"y{k}" for k in range(n_outputs)]
    ours = median_seconds(
        lambda: sobol_indices(outputs, names, design.problem(), bootstrap, 0.95, 1), repeats=1
    )
    sampled = 10
    reference = salib_seconds(outputs[:, :sampled], design.problem(), bootstrap) * (
        n_outputs / sampled
    )
    return _row("synthetic", outputs, design, bootstrap, ours, reference)


def _row(
    case: str, outputs: np.ndarray, design: Design, bootstrap: int, ours: float, reference: float
) -> dict:
    return {
        "case": case,
        "outputs": outputs.shape[1],
        "base_n": design.n,
        "factors": len(design.factor_names),
        "bootstrap": bootstrap,
        "seconds": round(ours, 3),
        "salib_seconds": round(reference, 2),
        "speedup": round(reference / ours, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller synthetic case")
    args = parser.parse_args()
    rows = [sobol_toml_case(), synthetic_case(args.quick)]
    frame = pd.DataFrame(rows)
    print(frame.to_string(index=False))
    if not args.quick:
        frame.to_csv(RESULTS, index=False)


if __name__ == "__main__":
    main()
