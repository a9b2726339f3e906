"""Speed and memory of the batched engine and the runner, against a plain one-scenario pandas loop.

Usage: ``python experiments/bench.py [--quick]``; writes ``experiments/results/bench.csv``.

Measured on this machine with ``time.perf_counter`` (wall time) and, for whole runs, the peak of the
summed resident memory of the run's process tree (main process and workers), polled every 50 ms with
psutil (installed with dask.distributed):

- ``reference``: ``nqpf_sens.reference.reference_scores``, one pandas DataFrame per scenario
  (weights perturbed), the straightforward implementation every speed is compared with;
- ``engine``: ``Engine.evaluate`` on batches of 8,192 weight-perturbed scenarios (scores, ranks,
  tiers), one process;
- ``engine_2_workers``: the same batches split over two joblib (loky) worker processes;
- ``runner``: ``python -m nqpf_sens run`` on a weights-only Monte Carlo config, end to end (sampling,
  engine, statistics, files; figures and report off), with 1 and 2 workers;
- ``sobol_default``: ``configs/sobol.toml`` end to end (2 workers, figures and report included).

Cases: the NQPF index (31 provinces x 15 indicators) and a synthetic 3,000 units x 100 indicators.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from nqpf_sens import IndicatorTable, Pipeline, ScenarioBatch, nqpf_spec
from nqpf_sens.datasets import province_table
from nqpf_sens.engine import Engine
from nqpf_sens.reference import reference_scores
from nqpf_sens.spec import spec_from_frame

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "bench.csv"
BATCH = 8192


def synthetic_case(n_units: int, n_indicators: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame({"code": [f"x{j}" for j in range(n_indicators)], "dimension": [f"d{j % 5}" for j in range(n_indicators)], "weight": 1.0, "direction": "positive"})
    spec = spec_from_frame(meta, "synthetic")
    values = rng.gamma(1.5, 10.0, size=(1, n_units, n_indicators))
    return spec, IndicatorTable(values, (None,), tuple(f"u{i}" for i in range(n_units)), spec.indicators)


def weight_batch(spec, size: int, seed: int) -> ScenarioBatch:
    rng = np.random.default_rng(seed)
    factors = tuple(rng.uniform(0.75, 1.25, size=(size, len(level))) for level in spec.levels[:-1])
    return ScenarioBatch((Pipeline(imputation="none"),), np.zeros(size, dtype=np.int64), weight_factors=factors)


def engine_rate(spec, table, n: int) -> float:
    engine = Engine(spec, table)
    batch = weight_batch(spec, min(BATCH, n), 0)
    engine.evaluate(batch)
    started = time.perf_counter()
    done = 0
    while done < n:
        done += engine.evaluate(batch).ranks.shape[0]
    return done / (time.perf_counter() - started)


def _evaluate_many(spec, table, n: int) -> int:
    engine = Engine(spec, table)
    batch = weight_batch(spec, min(BATCH, n), 1)
    done = 0
    while done < n:
        done += engine.evaluate(batch).ranks.shape[0]
    return done


def engine_rate_parallel(spec, table, n: int, jobs: int) -> float:
    Parallel(n_jobs=jobs)(delayed(_evaluate_many)(spec, table, BATCH) for _ in range(jobs))  # warm the workers
    started = time.perf_counter()
    done = sum(Parallel(n_jobs=jobs)(delayed(_evaluate_many)(spec, table, n // jobs) for _ in range(jobs)))
    return done / (time.perf_counter() - started)


def reference_rate(spec, table, n: int) -> float:
    frame = pd.DataFrame(table.values[0], index=table.units, columns=list(table.indicators))
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(n):
        weights = tuple(w * rng.uniform(0.75, 1.25, size=w.shape) for w in spec.weights)
        reference_scores(frame, spec, weights)
    return n / (time.perf_counter() - started)


WEIGHTS_ONLY = """[run]
name = "bench"
kind = "montecarlo"
seed = 1
jobs = {jobs}
chunk_size = 16384
[data]
year = 2022
[pipeline]
imputation = "none"
[sampling]
n = {n}
method = "random"
[outputs]
figures = false
[[factors]]
name = "indicator_weights"
kind = "weights"
level = 0
spread = 0.25
[[factors]]
name = "dimension_weights"
kind = "weights"
level = 1
spread = 0.25
"""


def run_command(config: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak memory (MiB, process tree) of one ``run`` in a fresh interpreter."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "nqpf_sens", "run", str(config), "--out", str(out), "--quiet"], cwd=ROOT)
    tree = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            members = [tree, *tree.children(recursive=True)]
            peak = max(peak, sum(m.memory_info().rss for m in members if m.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(f"run failed: {config}")
    return seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, for a smoke test")
    args = parser.parse_args()
    sizes = [10**3, 10**4, 10**5] if args.quick else [10**3, 10**4, 10**5, 10**6]
    rows = []
    cases = {"nqpf_31x15": (nqpf_spec(), province_table(nqpf_spec())), "synthetic_3000x100": synthetic_case(3000, 100)}
    for case, (spec, table) in cases.items():
        reference = reference_rate(spec, table, 200 if case.startswith("nqpf") else 20)
        rows.append({"case": case, "what": "reference", "scenarios": 200 if case.startswith("nqpf") else 20, "jobs": 1, "scenarios_per_second": reference, "ratio_to_reference": 1.0})
        scale = 1 if case.startswith("nqpf") else 100
        for n in sizes:
            n_case = max(1000, n // scale)
            rate = engine_rate(spec, table, n_case)
            rows.append({"case": case, "what": "engine", "scenarios": n_case, "jobs": 1, "scenarios_per_second": rate, "ratio_to_reference": rate / reference})
            rate2 = engine_rate_parallel(spec, table, n_case, 2)
            rows.append({"case": case, "what": "engine", "scenarios": n_case, "jobs": 2, "scenarios_per_second": rate2, "ratio_to_reference": rate2 / reference})
            print(rows[-2], rows[-1], flush=True)
    reference = rows[0]["scenarios_per_second"]
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            for jobs in (1, 2):
                config = Path(folder) / f"bench_{n}_{jobs}.toml"
                config.write_text(WEIGHTS_ONLY.format(n=n, jobs=jobs))
                seconds, memory = run_command(config, Path(folder) / "out")
                rows.append({"case": "nqpf_31x15", "what": "runner_weights_only", "scenarios": n, "jobs": jobs, "scenarios_per_second": n / seconds, "ratio_to_reference": n / seconds / reference, "wall_seconds": seconds, "peak_mib": memory})
                print(rows[-1], flush=True)
        seconds, memory = run_command(ROOT / "configs" / "sobol.toml", Path(folder) / "sobol")
        n_sobol = 1024 * 13
        rows.append({"case": "nqpf_31x15", "what": "sobol_default", "scenarios": n_sobol, "jobs": 2, "scenarios_per_second": n_sobol / seconds, "ratio_to_reference": n_sobol / seconds / reference, "wall_seconds": seconds, "peak_mib": memory})
        print(rows[-1], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame["cpus"] = os.cpu_count()
    frame.to_csv(OUT, index=False, float_format="%.4g")
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
