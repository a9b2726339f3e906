"""Where a run's wall time goes, stage by stage.

Usage: ``python experiments/profile_stages.py [CONFIG] [--out DIR]`` (default
``configs/sobol.toml``); prints one row per stage and writes
``experiments/results/profile_stages.csv``. Run it in a fresh interpreter, twice: the first run
after an install also compiles the kernels (the ``kernels`` row).

The run is the real one (``run_config``): each stage is timed by wrapping, in place, the function
that does it, so nothing is re-implemented here. Stages nest (the study's evaluation inside the
computing, the figures inside the report); ``other`` is the wall time no stage claims.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()
import nqpf_sens.report.html  # noqa: E402  (timed: every import a run with figures needs)
import nqpf_sens.running  # noqa: E402

IMPORTED = time.perf_counter()

import pandas as pd  # noqa: E402

from nqpf_sens import running as run  # noqa: E402
from nqpf_sens.report import html  # noqa: E402

plan = importlib.import_module("nqpf_sens.plan")
SobolSums = importlib.import_module("nqpf_sens.uncertainty.sobol").SobolSums

ROOT = Path(__file__).resolve().parents[1]
#: (module, function, stage): the function whose calls make the stage, patched where it is called
STAGES = (
    (run, "_inputs", "config and data"),
    (run, "evaluate", "nominal index"),
    (run, "coherence_tables", "audit: coherence"),
    (run, "nominal_levels", "audit: nominal levels"),
    (run, "importance_tables", "audit: importance"),
    (run, "optimal_weights_tables", "audit: optimal weights"),
    (run, "leave_one_out", "audit: leave one out"),
    (run, "one_at_a_time", "audit: one at a time"),
    (run, "_rank_bounds", "audit: exact rank bounds"),
    (run, "prepare_study", "study: design and checks"),
    (run, "run_study", "study: evaluation and tallies"),
    (SobolSums, "estimates", "Sobol analysis (from the sums the study added up)"),
    (plan, "indices_table", "Sobol analysis (from the sums the study added up)"),
    (plan, "convergence", "convergence"),
    (run, "tables_from", "statistics (with Sobol and convergence)"),
    (run, "write_table", "writing tables"),
    (html, "make_figures", "figures"),
)


def timed(totals: dict[str, float], stage: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[stage] = totals.get(stage, 0.0) + time.perf_counter() - began

    return wrapper


def kernel_seconds() -> float:
    """Loading (or compiling) the compiled kernels: their first call on a tiny input."""
    import numpy as np

    from nqpf_sens.engine.aggregate import aggregate_tree

    began = time.perf_counter()
    aggregate_tree(np.ones((2, 3)), [np.ones((1, 2))], [np.ones((2, 1))], ["arithmetic"], 3)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", type=Path, default=ROOT / "configs" / "sobol.toml")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    totals: dict[str, float] = {"imports": IMPORTED - STARTED, "kernels": kernel_seconds()}
    for module, name, stage in STAGES:
        setattr(module, name, timed(totals, stage, getattr(module, name)))
    # run._write imports build_report from the report package when it needs it
    nqpf_sens.report.build_report = timed(
        totals, "report (with figures)", nqpf_sens.report.build_report
    )
    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        run.run_config(args.config, out=args.out or Path(folder) / "run", quiet=True)
        totals["run_config (all of the run)"] = time.perf_counter() - began
    whole = time.perf_counter() - STARTED
    frame = pd.DataFrame(
        [(stage, seconds) for stage, seconds in totals.items()], columns=["stage", "seconds"]
    )
    frame.loc[len(frame)] = ["wall time of this process", whole]
    frame["share"] = frame.seconds / whole
    out = ROOT / "experiments" / "results" / "profile_stages.csv"
    out.parent.mkdir(exist_ok=True)
    frame.round(3).to_csv(out, index=False)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
