"""Speed and memory of the batched engine and the parallel study, against a plain pandas loop.

Usage: ``python experiments/bench.py [--quick]``; writes ``experiments/results/bench.csv``.

Wall times with ``time.perf_counter``; every speed is the median of ``REPEATS`` measurements (this
machine's speed drifts by up to a third between minutes, so one measurement says little). Whole
runs report the peak of the summed proportional set size (PSS: resident memory, each shared page
divided among the processes sharing it) of the process tree, polled every 50 ms with psutil
(installed with dask.distributed).

- ``reference``: ``nqpf_sens.engine.reference.reference_scores``, one pandas DataFrame per scenario
  (weights perturbed): the straightforward implementation every speed is compared with.
- ``numpy_batch``: a plain numpy batch on one thread (:func:`numpy_batch_rate`): one matrix
  product and two argsorts per batch, the index and its ranks only; the engine's yardstick in the
  same run (``ratio_to_numpy_batch``).
- ``engine``: ``Engine.evaluate`` on batches of 16,384 weight-perturbed scenarios (scores of every
  node, ranks, tiers), in one thread, two threads, or two loky worker processes (warm).
- ``study``: the parallel study itself (``uncertainty.study.run_study``: design rows, decoding,
  engine, chunk statistics, chunk files for ``--resume``, merge) on a weights-only Monte Carlo
  design, in process after a warm-up run: what "the study evaluates N scenarios per second" means.
  ``ratio_to_engine``: its rate over the engine's on the same data and workers, the median (and
  ``ratio_to_engine_range``) of ``PAIRS`` ratios of measurements taken one right after the other.
- ``cli``: ``python -m nqpf_sens run`` on the same config in a fresh interpreter, end to end
  (imports, inputs, nominal run, study, tables; figures off).
- ``cli_own_data``: a Monte Carlo of 2^15 scenarios that each prepare their own data (noise,
  masks, one of three normalisations) end to end on two workers: threads, then the default
  (``auto``: forked workers); ``workers`` names what each run used, from its manifest.
- ``sobol_default``: ``configs/sobol.toml`` end to end (figures and report included), warm (the
  compiled kernels cached), the median of ``REPEATS`` runs; ``sobol_default_first_run``: the same
  with an empty kernel cache (``NUMBA_CACHE_DIR`` pointed at a new folder), as after an install.
- ``asem_vignette``: ``configs/asem_sobol.toml`` (COINr's ASEM example, its vignette's Sobol
  study, audit steps and figures), the median of ``REPEATS`` runs; ``asem_vignette_first_run``:
  with an empty kernel cache.
- ``sobol_20_factors``: ``experiments/configs/sobol_20_factors.toml``, 20 factors at N = 2^14
  (360,448 scenarios, every unit's rank and score a Sobol output), and the same at N = 2^13 and
  2^15 to show how memory grows with N.

Cases: the NQPF index (31 provinces x 15 indicators) and a synthetic 3,000 units x 100 indicators.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from nqpf_sens import IndicatorTable, Pipeline, ScenarioBatch, nqpf_spec
from nqpf_sens.config import load_config
from nqpf_sens.engine.batch import Engine, evaluate
from nqpf_sens.engine.reference import reference_scores
from nqpf_sens.engine.spec import spec_from_frame
from nqpf_sens.indices.nqpf.data import province_table
from nqpf_sens.inputs import load_inputs
from nqpf_sens.plan import prepare_study
from nqpf_sens.uncertainty.memory import retain_freed_memory
from nqpf_sens.uncertainty.study import run_study

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "bench.csv"
BATCH = 16384
REPEATS = 3
PAIRS = 6  # study and engine measured one after the other (study_against_engine)


def synthetic_case(n_units: int, n_indicators: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame(
        {
            "code": [f"x{j}" for j in range(n_indicators)],
            "dimension": [f"d{j % 5}" for j in range(n_indicators)],
            "weight": 1.0,
            "direction": "positive",
        }
    )
    spec = spec_from_frame(meta, "synthetic")
    values = rng.gamma(1.5, 10.0, size=(1, n_units, n_indicators))
    return spec, IndicatorTable(
        values, (None,), tuple(f"u{i}" for i in range(n_units)), spec.indicators
    )


def weight_batch(spec, size: int, seed: int) -> ScenarioBatch:
    rng = np.random.default_rng(seed)
    factors = tuple(rng.uniform(0.75, 1.25, size=(size, len(level))) for level in spec.levels[:-1])
    return ScenarioBatch(
        (Pipeline(imputation="none"),), np.zeros(size, dtype=np.int64), weight_factors=factors
    )


def _evaluate_many(spec, table, n: int, batch_size: int) -> int:
    retain_freed_memory()
    engine = Engine(spec, table)
    batch = weight_batch(spec, batch_size, 1)
    done = 0
    while done < n:
        done += engine.evaluate(batch).ranks.shape[0]
    return done


def engine_runner(spec, table, n: int, workers: int, mode: str):
    """A function evaluating ``size`` scenarios in each of ``workers`` threads or loky processes,
    in batches of at most n, and returning how many it evaluated (warm: compiled kernels, worker
    processes)."""
    batch_size = min(BATCH, n)
    if mode == "processes":

        def run(size):
            return sum(
                Parallel(n_jobs=workers)(
                    delayed(_evaluate_many)(spec, table, size, batch_size) for _ in range(workers)
                )
            )
    else:
        pool = ThreadPoolExecutor(workers)

        def run(size):
            return sum(
                pool.map(lambda _: _evaluate_many(spec, table, size, batch_size), range(workers))
            )

    run(batch_size)
    return run


def timed_rate(run, size: int) -> float:
    """Scenarios per second of one call ``run(size)``."""
    started = time.perf_counter()
    done = run(size)
    return done / (time.perf_counter() - started)


def engine_rate(spec, table, n: int, workers: int, mode: str) -> float:
    """Scenarios per second of ``workers`` threads or loky processes, each evaluating
    n / workers.
    """
    run = engine_runner(spec, table, n, workers, mode)
    return statistics.median(timed_rate(run, n // workers) for _ in range(REPEATS))


def numpy_batch_rate(spec, table, n: int) -> float:
    """Scenarios per second of a plain numpy batch on one thread: the yardstick for the engine's
    speed (its goal was set as a multiple of this). Each scenario's effective indicator weights
    (every level's weights divided by their parent's sum, multiplied down the tree) times the
    normalised data in one matrix product gives the index; ranks by two argsorts (ties in data
    order); no other node, no tiers. The product is small: one BLAS thread runs it as fast."""
    pipeline = Pipeline(imputation="none")
    engine = Engine(spec, table)
    leaves = engine.normalised(pipeline)[0]
    scheme = engine.scheme_weights(pipeline)
    batch = weight_batch(spec, BATCH, 1)
    assert batch.weight_factors is not None

    def ranks(factors):
        effective = ancestors = None  # (S, leaves); each leaf's node at the level reached
        for k, membership in enumerate(engine.memberships):
            w = scheme[k] * factors[k]
            share = w / (w @ membership @ membership.T)
            if ancestors is None:
                effective, ancestors = share, membership
            else:
                effective, ancestors = effective * (share @ ancestors.T), ancestors @ membership
        index = effective @ leaves.T
        return np.argsort(np.argsort(-index, axis=1, kind="stable"), axis=1) + 1

    ranks(batch.weight_factors)
    rates = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(max(1, n // BATCH)):
            ranks(batch.weight_factors)
        rates.append(max(1, n // BATCH) * BATCH / (time.perf_counter() - started))
    return statistics.median(rates)


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
[data]
year = 2022
[pipeline]
imputation = "none"
[sampling]
n = {n}
method = "random"
[outputs]
figures = false
"""
#: the weights of both levels, +/-25%: the factors of every weights-only benchmark
WEIGHT_FACTORS = """[[factors]]
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
WEIGHTS_ONLY += WEIGHT_FACTORS
#: scenarios that prepare their own data (noise, masks, a normalisation each): Python-level numpy
#: work, which the default backend (auto) gives to forked workers instead of threads
OWN_DATA = (
    WEIGHTS_ONLY.replace('imputation = "none"', 'imputation = "median"').replace(
        "jobs = {jobs}", 'jobs = {jobs}\nbackend = "{backend}"'
    )
    + """[[factors]]
name = "noise"
kind = "noise"
spread = 0.02
[[factors]]
name = "missing_cells"
kind = "mask"
cells = 3
[[factors]]
name = "normalisation"
kind = "choice"
key = "normalisation"
options = ["minmax", "zscore", "rank"]
"""
)


def study_against_engine(folder: Path, n: int, jobs: int) -> tuple[float, list[float]]:
    """Median wall seconds of ``run_study`` (the parallel study) on a weights-only design of n
    rows, and its rate divided by the engine's (``jobs`` threads, n scenarios on the same data)
    in each of ``PAIRS`` pairs of measurements taken one right after the other, in alternating
    order: the machine's speed drifts between minutes, so only a pair's ratio is comparable.
    """
    path = folder / f"study_{n}_{jobs}.toml"
    path.write_text(WEIGHTS_ONLY.format(n=n, jobs=jobs))
    config = load_config(path)
    spec, table = load_inputs(config)
    study = prepare_study(
        config, spec, table, evaluate(spec, table, config.pipeline, config.ties)
    ).study
    engine = engine_runner(spec, table, n, jobs, "threads")

    def study_seconds() -> float:
        started = time.perf_counter()
        run_study(
            study, folder / ".work", config.chunk_size, jobs, config.backend, None, False, False
        )
        seconds = time.perf_counter() - started
        shutil.rmtree(folder / ".work")  # as a run does once its outputs are written
        return seconds

    study_seconds()  # warm: the thread pool and the study's engine
    times, ratios = [], []
    for pair in range(PAIRS):
        if pair % 2:
            seconds, engine_speed = study_seconds(), timed_rate(engine, n // jobs)
        else:
            engine_speed, seconds = timed_rate(engine, n // jobs), study_seconds()
        times.append(seconds)
        ratios.append(n / seconds / engine_speed)
    return statistics.median(times), ratios


def _unique_memory(process) -> int:
    """Bytes of memory ``process`` holds, shared pages divided among their sharers (PSS, on
    Linux): figures are drawn in forked processes, whose resident sets count the pages they share
    with the run once each."""
    try:
        return process.memory_full_info().pss
    except AttributeError:  # no PSS on this system
        return process.memory_info().rss


def run_command(config: Path, out: Path, env: dict | None = None) -> tuple[float, float]:
    """Wall seconds and peak memory (MiB, process tree) of one ``run`` in a fresh interpreter
    (``env``: variables to set for it)."""
    import psutil

    shutil.rmtree(out, ignore_errors=True)  # a folder of this benchmark's temporary directory
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "nqpf_sens", "run", str(config), "--out", str(out), "--quiet"],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    tree = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            members = [tree, *tree.children(recursive=True)]
            peak = max(peak, sum(_unique_memory(m) for m in members if m.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(f"run failed: {config}")
    return seconds, peak / 2**20


def used_backend(out: Path) -> str:
    """The workers a finished run used, as its manifest states them (``auto`` resolved)."""
    return str(json.loads((out / "manifest.json").read_text())["backend"])


def end_to_end_cases(folder: Path) -> list[tuple[str, Path, int, dict | None]]:
    """(name, config, repeats, environment) of the whole runs timed in a fresh interpreter."""
    twenty = ROOT / "experiments" / "configs" / "sobol_20_factors.toml"
    half, double = folder / "sobol_20_factors_half.toml", folder / "sobol_20_factors_double.toml"
    half.write_text(twenty.read_text().replace("n = 16384", "n = 8192", 1))
    double.write_text(twenty.read_text().replace("n = 16384", "n = 32768", 1))

    def empty_cache(name: str) -> dict:  # a kernel cache of its own: nothing compiled yet
        return {"NUMBA_CACHE_DIR": str(folder / f"kernel_cache_{name}")}

    return [
        ("sobol_default", ROOT / "configs" / "sobol.toml", REPEATS, None),
        ("sobol_default_first_run", ROOT / "configs" / "sobol.toml", 1, empty_cache("sobol")),
        ("asem_vignette", ROOT / "configs" / "asem_sobol.toml", REPEATS, None),
        ("asem_vignette_first_run", ROOT / "configs" / "asem_sobol.toml", 1, empty_cache("asem")),
        ("sobol_20_factors_n8192", half, 1, None),
        ("sobol_20_factors", twenty, 1, None),
        ("sobol_20_factors_n32768", double, 1, None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, for a smoke test")
    args = parser.parse_args()
    retain_freed_memory()
    rows = []

    def record(**row):
        rows.append(row)
        print(row, flush=True)

    cases = {
        "nqpf_31x15": (
            nqpf_spec(),
            province_table(nqpf_spec()),
            10**5 if args.quick else 10**6,
            200,
        ),
        "synthetic_3000x100": (*synthetic_case(3000, 100), 10**3 if args.quick else 10**4, 20),
    }
    references = {}
    for case, (spec, table, n, n_reference) in cases.items():
        references[case] = reference = reference_rate(spec, table, n_reference)
        record(
            case=case,
            what="reference",
            scenarios=n_reference,
            workers="1",
            scenarios_per_second=reference,
            ratio_to_reference=1.0,
        )
        numpy_batch = numpy_batch_rate(spec, table, n)
        record(
            case=case,
            what="numpy_batch",
            scenarios=n,
            workers="1",
            scenarios_per_second=numpy_batch,
            ratio_to_reference=numpy_batch / reference,
            ratio_to_numpy_batch=1.0,
        )
        for workers, mode in ((1, "threads"), (2, "threads"), (2, "processes")):
            rate = engine_rate(spec, table, n, workers, mode)
            record(
                case=case,
                what="engine",
                scenarios=n,
                workers=f"{workers} {mode}",
                scenarios_per_second=rate,
                ratio_to_reference=rate / reference,
                ratio_to_numpy_batch=rate / numpy_batch,
            )
    reference = references["nqpf_31x15"]
    sizes = [10**5] if args.quick else [10**6, 4 * 10**6]
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            for jobs in (1, 2):
                seconds, ratios = study_against_engine(Path(folder), n, jobs)
                record(
                    case="nqpf_31x15",
                    what="study",
                    scenarios=n,
                    workers=f"{jobs} threads",
                    scenarios_per_second=n / seconds,
                    ratio_to_reference=n / seconds / reference,
                    ratio_to_engine=statistics.median(ratios),
                    ratio_to_engine_range=f"{min(ratios):.2f}-{max(ratios):.2f}",
                    wall_seconds=seconds,
                )

        def command_line(what: str, config: Path, n: int, warm_up: bool) -> None:
            """One ``run`` of ``config`` in a fresh interpreter (after an untimed one that fills
            the kernel cache, when ``warm_up``), recorded with the workers it used."""
            out = Path(folder) / "out"
            if warm_up:
                run_command(config, out)
            seconds, memory = run_command(config, out)
            record(
                case="nqpf_31x15",
                what=what,
                scenarios=n,
                workers=f"{load_config(config).jobs} {used_backend(out)}",
                scenarios_per_second=n / seconds,
                ratio_to_reference=n / seconds / reference,
                wall_seconds=seconds,
                peak_mib=memory,
            )

        for jobs in (1, 2):
            config = Path(folder) / f"cli_{jobs}.toml"
            config.write_text(WEIGHTS_ONLY.format(n=sizes[0], jobs=jobs))
            command_line("cli_weights_only", config, sizes[0], warm_up=jobs == 1)
        n_own = 2**11 if args.quick else 2**15
        for backend in ("threading", "auto"):  # two workers: threads, then forks
            config = Path(folder) / f"own_data_{backend}.toml"
            config.write_text(OWN_DATA.format(n=n_own, jobs=2, backend=backend))
            command_line("cli_own_data", config, n_own, warm_up=backend == "threading")
        if not args.quick:
            for what, config, repeats, env in end_to_end_cases(Path(folder)):
                if env is None and repeats > 1:  # warm means warm: one untimed run first
                    run_command(config, Path(folder) / what)
                runs = [run_command(config, Path(folder) / what, env) for _ in range(repeats)]
                seconds = statistics.median(r[0] for r in runs)
                memory = max(r[1] for r in runs)
                settings = load_config(config)
                n_sobol = settings.sampling.n * (len(settings.factors) + 2)
                record(
                    case=settings.name,
                    what=what,
                    scenarios=n_sobol,
                    workers=f"{settings.jobs} {used_backend(Path(folder) / what)}",
                    scenarios_per_second=n_sobol / seconds,
                    ratio_to_reference=n_sobol / seconds / reference,
                    wall_seconds=seconds,
                    peak_mib=memory,
                )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame["cpus"] = os.cpu_count()
    frame.to_csv(OUT, index=False, float_format="%.4g")
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
