"""Runs a config: checks everything first, computes, then writes the whole output folder at once."""

from __future__ import annotations

import platform
import time
from importlib import metadata
from pathlib import Path

from nqpf_sens.baseline import score_frame
from nqpf_sens.config import RunConfig, load_config
from nqpf_sens.engine import Engine, ScenarioBatch
from nqpf_sens.errors import UserError
from nqpf_sens.inputs import load_inputs
from nqpf_sens.outputs import staged_directory, write_json, write_table
from nqpf_sens.pipeline import option_problem

import numpy as np

PACKAGES = ("nqpf_sens", "numpy", "scipy", "pandas", "SALib", "joblib")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def run_config(path: Path, out: Path | None = None, jobs: int | None = None, quiet: bool = False) -> Path:
    """Run the config at ``path``; returns the output folder."""
    started = time.perf_counter()
    config = load_config(path)
    spec, table = load_inputs(config)
    problem = option_problem(config.pipeline, spec)
    if problem:
        key = problem.split(":")[0]
        raise UserError(problem.split(": ", 1)[1], config.path, f"[pipeline] {key}")
    engine = Engine(spec, table, config.ties)
    nominal = engine.evaluate(ScenarioBatch((config.pipeline,), np.zeros(1, dtype=np.int64)))
    scores = score_frame(nominal)
    destination = out if out is not None else Path("results") / config.name
    with staged_directory(destination) as folder:
        write_table(scores, folder, "baseline_scores")
        write_json(_manifest(config, jobs or config.jobs, 1, time.perf_counter() - started), folder / "manifest.json")
    if not quiet:
        print(scores.sort_values(["rank"]).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        print(f"\nwrote {destination}")
    return destination


def _manifest(config: RunConfig, jobs: int, scenarios: int, seconds: float) -> dict:
    return {
        "config_file": str(config.path),
        "config": config.raw,
        "kind": config.kind,
        "seed": config.seed,
        "jobs": jobs,
        "scenarios": scenarios,
        "wall_seconds": round(seconds, 3),
        "versions": versions(),
    }
