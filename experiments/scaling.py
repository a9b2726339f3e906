"""How a run's time and memory grow with units, indicators, factors and N.

Usage: ``python experiments/scaling.py [--quick]``; writes ``experiments/results/scaling.csv``.

Each case is a synthetic index (indicators in five dimensions, skewed positive values) written as a
project folder and run end to end with ``python -m nqpf_sens run`` in a fresh interpreter on two
threads, figures and audit steps off: a Monte Carlo study of the weights (two factors), or of the
weights, the normalisation and measurement noise (four factors: every scenario then prepares its
own data). Every case keeps each unit's rank histogram (units x units counts). Wall time and the
peak resident memory of the process tree are measured as in ``experiments/bench.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import WEIGHT_FACTORS, run_command  # noqa: E402  (as the benchmarks measure)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "scaling.csv"
DIMENSIONS = 5

CONFIG = """[run]
name = "scaling"
kind = "montecarlo"
seed = 1
jobs = 2
[data]
metadata = "meta.csv"
values = "values.csv"
[pipeline]
imputation = "none"
[sampling]
n = {n}
method = "random"
[outputs]
figures = false
[audit]
coherence = false
importance = false
what_if = false
rank_bounds = false
optimal_weights = "none"
"""
MORE_FACTORS = """[[factors]]
name = "normalisation"
kind = "choice"
key = "normalisation"
options = ["minmax", "zscore"]
[[factors]]
name = "noise"
kind = "noise"
spread = 0.02
"""


def write_case(folder: Path, units: int, indicators: int, n: int, factors: int) -> Path:
    """A project folder holding the synthetic index and its config; returns the config."""
    folder.mkdir(parents=True)
    codes = [f"x{j}" for j in range(indicators)]
    rows = [(code, f"d{j % DIMENSIONS}", 1.0, 1, "Indicator") for j, code in enumerate(codes)]
    rows += [(f"d{k}", "Index", 1.0, 1, "Aggregate") for k in range(DIMENSIONS)]
    rows.append(("Index", "", 1.0, 1, "Aggregate"))
    meta = pd.DataFrame(rows, columns=["iCode", "Parent", "Weight", "Direction", "Type"])
    meta.to_csv(folder / "meta.csv", index=False)
    rng = np.random.default_rng(units * 1_000 + indicators)
    values = pd.DataFrame(rng.gamma(1.5, 10.0, size=(units, indicators)) + 0.1, columns=codes)
    values.insert(0, "unit", [f"u{i}" for i in range(units)])
    values.to_csv(folder / "values.csv", index=False)
    config = folder / "run.toml"
    config.write_text(CONFIG.format(n=n) + WEIGHT_FACTORS + (MORE_FACTORS if factors == 4 else ""))
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        cases = [(31, 15, 1_000, 2), (300, 100, 1_000, 2), (300, 100, 1_000, 4)]
    else:
        cases = [
            (31, 100, 10_000, 2),
            (300, 100, 10_000, 2),
            (3_000, 100, 10_000, 2),
            (300, 15, 10_000, 2),
            (300, 400, 10_000, 2),
            (300, 100, 10_000, 4),
            (300, 100, 100_000, 2),
            (3_000, 100, 100_000, 2),
            (3_000, 100, 1_000_000, 2),
        ]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, (units, indicators, n, factors) in enumerate(cases):
            config = write_case(Path(scratch) / f"case{number}", units, indicators, n, factors)
            seconds, memory = run_command(config, config.parent / "out")
            row = {
                "units": units,
                "indicators": indicators,
                "scenarios": n,
                "factors": factors,
                "wall_seconds": seconds,
                "peak_mib": memory,
                "scenarios_per_second": n / seconds,
            }
            rows.append(row)
            print(row, flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(OUT, index=False, float_format="%.4g")
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
