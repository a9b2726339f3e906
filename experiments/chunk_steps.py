"""What one chunk of a weights-only study costs, step by step, per scenario.

Usage: ``python experiments/chunk_steps.py [--rows 16384] [--chunks 40]``. Evaluates ``--chunks``
chunks of the NQPF weights-only Monte Carlo design that ``bench.py`` uses (one thread, rows from
163,840 on, past the scenarios that keep their scores), timing each step of the study's own
functions in turn on fresh rows, as a study runs them: the design rows, their decoding into a
batch, the engine, the chunk's statistics and its file for ``--resume``; then the whole chunk as
the study evaluates it, its file included. Prints the best and the median nanoseconds per scenario
of each step; of the statistics' compiled loops alone (``kernels``: these statistics' cost without
the study's bookkeeping); and the ``budget``, what the study may add to the engine's time to run
at 80% of the engine's rate (a quarter of the engine's time). Run it against another checkout with
``PYTHONPATH=<checkout>/src`` to compare versions: alternate the two, as the machine's speed
drifts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench import WEIGHTS_ONLY

from nqpf_sens.config import load_config
from nqpf_sens.engine import kernels
from nqpf_sens.engine.batch import evaluate
from nqpf_sens.inputs import load_inputs
from nqpf_sens.plan import prepare_study
from nqpf_sens.uncertainty import study as uncertainty
from nqpf_sens.uncertainty.chunks import chunk_key, chunk_path

FIRST_ROW = 163_840  # past the first 65,536 scenarios, whose scores a study keeps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16_384, help="rows per chunk")
    parser.add_argument("--chunks", type=int, default=40, help="chunks timed")
    options = parser.parse_args()
    size = options.rows
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "study.toml"
        path.write_text(WEIGHTS_ONLY.format(n=FIRST_ROW + size * (options.chunks + 1), jobs=1))
        config = load_config(path)
        spec, table = load_inputs(config)
        nominal = evaluate(spec, table, config.pipeline, config.ties)
        study = prepare_study(config, spec, table, nominal).study
        engine = study.engine()
        work = Path(folder) / "work"
        work.mkdir()
        seconds: dict[str, list[float]] = {}

        def timed(step: str, function, *arguments):
            started = time.perf_counter()
            result = function(*arguments)
            seconds.setdefault(step, []).append(time.perf_counter() - started)
            return result

        for chunk in range(options.chunks + 1):  # the first warms the engine and the kernels
            start = FIRST_ROW + chunk * size
            rows = timed("design rows", study.design.rows, start, start + size)
            batch = timed("decoding", uncertainty.batch_for_rows, study, rows)
            result = timed("engine", engine.evaluate, batch)
            stats = timed("statistics", summarised, study, result, start, start + size)
            timed("  kernels", statistics_kernels, study, result, start, start + size)
            key = chunk_key("steps", start, start + size)
            timed("chunk file", stats.save, chunk_path(work, start), key)
            chunk_path(work, start).unlink()
            timed("whole chunk", uncertainty._evaluate_span, study, start, start + size, work, key)
            chunk_path(work, start).unlink()
    print(f"{'step':12s} {'best':>6s} {'median':>7s}  (ns per scenario, chunks of {size:,})")
    for step, values in seconds.items():
        best, median = min(values[1:]), statistics.median(values[1:])
        print(f"{step:12s} {best / size * 1e9:6.0f} {median / size * 1e9:7.0f}")
    engine_ns = [value / size * 1e9 for value in seconds["engine"][1:]]
    budget = f"{min(engine_ns) / 4:6.0f} {statistics.median(engine_ns) / 4:7.0f}"
    print(f"{'budget':12s} {budget}  (all but the engine, at 80% of its rate)")


def statistics_kernels(study, result, start: int, stop: int) -> None:
    """The compiled loops of :meth:`ChunkTally.add` alone, into counts of their own: the ranks
    and tiers tallied, both rank correlations and their histogram, the units above the mean."""
    tally = uncertainty.ChunkTally(study)
    n_rows, n_years, n_units = result.ranks.shape
    ranks = result.ranks.reshape(n_rows, n_years * n_units)
    tiers = result.tiers.reshape(ranks.shape)
    nominal = study.nominal_ranks.ravel()
    counted = study.design.uncertainty_rows(start, stop)
    kernels.tally_ranks(
        ranks, tiers, nominal, counted, tally.rank_counts, tally.tier_counts, tally.shift_counts
    )
    agreement = kernels.rank_agreement(ranks, nominal, n_units, counted)
    kernels.bin_correlations(agreement, uncertainty.AGREEMENT_GRID, tally.agreement_counts)
    index = np.ascontiguousarray(result.index)
    kernels.count_above_mean(index, np.full(n_units, 1 / n_units), tally.above_mean)


def summarised(study, result, start: int, stop: int) -> uncertainty.ChunkStats:
    """One batch's statistics, as a chunk of one batch has them."""
    tally = uncertainty.ChunkTally(study)
    tally.add(result, start, stop)
    return tally.stats()


if __name__ == "__main__":
    main()
