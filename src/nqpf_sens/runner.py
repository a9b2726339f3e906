"""Runs a config: checks everything first, computes, then writes the whole output folder at once."""

from __future__ import annotations

import platform
import shutil
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from nqpf_sens.baseline import score_frame
from nqpf_sens.config import RunConfig, load_config
from nqpf_sens.engine import evaluate
from nqpf_sens.errors import UserError
from nqpf_sens.inputs import load_inputs, unit_attributes
from nqpf_sens.outputs import check_writable, staged_directory, write_json, write_table
from nqpf_sens.paper import compare_with_table3, paper_summary
from nqpf_sens.pipeline import option_problem

PACKAGES = ("nqpf_sens", "numpy", "scipy", "pandas", "SALib", "joblib")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def run_config(path: str | Path, out: str | Path | None = None, jobs: int | None = None, quiet: bool = False, resume: bool = False) -> Path:
    """Run the config at ``path``; returns the output folder."""
    started = time.perf_counter()
    config = load_config(Path(path))
    try:
        return _run(config, started, out, jobs, quiet, resume)
    except UserError as error:
        if error.source is None:  # a problem of the configured options: name the config file
            raise UserError(error.message, config.path, error.where) from None
        raise


def _run(config: RunConfig, started: float, out: str | Path | None, jobs: int | None, quiet: bool, resume: bool) -> Path:
    spec, table = load_inputs(config)
    problem = option_problem(config.pipeline, spec)
    if problem:
        key, message = problem.split(": ", 1)
        raise UserError(message, config.path, f"[pipeline] {key}")
    jobs = jobs or config.jobs
    destination = Path(out) if out is not None else Path("results") / config.name
    nominal = evaluate(spec, table, config.pipeline, config.ties)
    scores = score_frame(nominal)
    tables: dict[str, pd.DataFrame] = {"baseline_scores": scores}
    if config.data.compare_with_paper:
        tables["paper_comparison"] = compare_with_table3(scores)
    attributes = unit_attributes(config, table)
    if not attributes.empty and len(attributes.columns):
        tables["unit_attributes"] = attributes.reset_index()
    notes: list[str] = []
    convergence: dict = {}
    scenarios = 1
    work = destination.parent / f".{destination.name}.work"
    check_writable(destination)
    if config.kind != "baseline":
        from nqpf_sens.audit import run_audit, tables_from

        prepared, stats = run_audit(config, spec, table, nominal, work, jobs, resume, progress=not quiet)
        tables.update(tables_from(prepared, stats, config))
        notes = prepared.notes
        scenarios = prepared.study.design.n_rows
        convergence = {"warnings": prepared.warnings, "recommended_n": prepared.recommended_n, "n": config.sampling.n}
    with staged_directory(destination) as folder:
        for name, frame in tables.items():
            write_table(frame, folder, name)
        write_json(_manifest(config, jobs, scenarios, time.perf_counter() - started, notes, convergence, list(spec.dimensions)), folder / "manifest.json")
        if config.outputs.figures:
            from nqpf_sens.report import build_report  # here: matplotlib takes a second to import

            build_report(folder, config.outputs.chinese_labels)
    shutil.rmtree(work, ignore_errors=True)
    if not quiet:
        _print_summary(tables, notes, convergence)
        print(f"\nwrote {destination} ({scenarios:,} scenarios, {time.perf_counter() - started:.1f} s)")
    return destination


def _print_summary(tables: dict[str, pd.DataFrame], notes: list[str], convergence: dict) -> None:
    number = lambda v: f"{v:.2f}"  # noqa: E731
    if "rank_stability" in tables:
        columns = [c for c in tables["rank_stability"].columns if c in ("year", "unit", "nominal_rank", "median_rank", "p05_rank", "p95_rank", "p_nominal_rank") or c.startswith("p_within")]
        print("Rank stability (5th-95th percentile ranks):")
        print(tables["rank_stability"][columns].to_string(index=False, float_format=number))
    else:
        print(tables["baseline_scores"].sort_values("rank").to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if "sobol_summary" in tables:
        print("\nSobol indices (R_S = mean absolute rank shift; ST summarised over the units' ranks):")
        print(tables["sobol_summary"].to_string(index=False, float_format=number))
    if "paper_comparison" in tables:
        print("\n" + paper_summary(tables["paper_comparison"]))
    for note in notes:
        print(f"note: {note}")
    for warning in convergence.get("warnings", []):
        print(f"warning: {warning}")
    if convergence.get("warnings"):
        print(f"warning: N = {convergence['n']} may be too small; try n = {convergence['recommended_n']}")


def _manifest(config: RunConfig, jobs: int, scenarios: int, seconds: float, notes: list[str], convergence: dict, dimensions: list[str]) -> dict:
    return {
        "config_file": str(config.path),
        "config": config.raw,
        "kind": config.kind,
        "seed": config.seed,
        "jobs": jobs,
        "backend": config.backend,
        "scenarios": scenarios,
        "dimensions": dimensions,
        "wall_seconds": round(seconds, 3),
        "notes": notes,
        "convergence": convergence,
        "versions": versions(),
    }
