"""Runs a config: checks everything first, computes, then writes the whole output folder at once."""

from __future__ import annotations

import errno
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from nqpf_sens.config import MAX_JOBS, RunConfig, load_config
from nqpf_sens.engine.batch import evaluate
from nqpf_sens.engine.pipeline import option_problem
from nqpf_sens.errors import RunInterrupted, UserError
from nqpf_sens.indices.nqpf.paper import compare_with_table3, paper_problem, paper_summary
from nqpf_sens.inputs import empty_units, input_files, load_inputs, unit_attributes
from nqpf_sens.outputs import (
    check_destination,
    destination_lock,
    make_folders,
    remove_empty_folders,
    staged_directory,
    write_json,
    write_table,
)
from nqpf_sens.uncertainty.chunks import check_work_folder, remove_work
from nqpf_sens.uncertainty.study import run_study

PACKAGES = ("nqpf_sens", "numpy", "scipy", "pandas", "SALib", "joblib")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def run_config(
    path: str | Path,
    out: str | Path | None = None,
    jobs: int | None = None,
    quiet: bool = False,
    resume: bool = False,
) -> Path:
    """Run the config at ``path``; returns the output folder.

    Every problem is a :class:`UserError` naming the file and the key or cell (a failure of the
    system, such as a full disk, included); an interrupted run raises :class:`RunInterrupted`."""
    started = time.perf_counter()
    config = load_config(Path(path))
    try:
        return _run(config, started, out, jobs, quiet, resume)
    except UserError as error:
        if error.source is None:  # a problem of the configured options: name the config file
            raise UserError(error.message, config.path, error.where) from None
        raise
    except MemoryError:
        raise UserError(
            "out of memory: lower [sampling] n, [run] chunk_size or [run] jobs", config.path
        ) from None
    except OSError as error:
        raise UserError(system_problem(error), error.filename or config.path) from None


def system_problem(error: OSError) -> str:
    """One line for a failure of the system while a run reads or writes."""
    if error.errno == errno.ENOSPC:
        return "the disk is full: free space and run again (--resume keeps the finished chunks)"
    if error.errno == errno.ENOENT:
        return "disappeared while the run was writing (was a folder deleted?); run again"
    return f"{error.strerror or error}; run again"


def _run(
    config: RunConfig,
    started: float,
    out: str | Path | None,
    jobs: int | None,
    quiet: bool,
    resume: bool,
) -> Path:
    spec, table = load_inputs(config)
    notes = empty_units(config, table)
    problem = option_problem(config.pipeline, spec)
    if problem:
        key, message = problem.split(": ", 1)
        raise UserError(message, config.path, f"[pipeline] {key}")
    if config.data.compare_with_paper:
        problem = paper_problem(spec, table)
        if problem:
            raise UserError(problem, config.path, "[data] compare_with_paper")
    jobs = jobs or config.jobs
    if jobs > MAX_JOBS:
        raise UserError(f"at most {MAX_JOBS} workers", where="--jobs")
    destination = check_destination(
        Path(out) if out is not None else Path("results") / config.name,
        [config.path, *input_files(config)],
    )
    work = destination.with_name(f".{destination.name}.work")
    check_work_folder(work)
    nominal = evaluate(spec, table, config.pipeline, config.ties)
    scores = nominal.to_frame()
    tables: dict[str, pd.DataFrame] = {"baseline_scores": scores}
    if config.data.compare_with_paper:
        tables["paper_comparison"] = compare_with_table3(scores)
    attributes = unit_attributes(config, table)
    if not attributes.empty and len(attributes.columns):
        tables["unit_attributes"] = attributes.reset_index()
    prepared = None
    if config.kind != "baseline":
        from nqpf_sens.plan import prepare_study

        prepared = prepare_study(config, spec, table, nominal, jobs, work)
        notes += prepared.notes
    created = make_folders(destination.parent)
    try:
        with destination_lock(destination):
            convergence: dict = {}
            scenarios = 1
            if prepared is not None:
                from nqpf_sens.plan import tables_from

                stats = _study(prepared, config, work, jobs, resume, quiet)
                tables.update(tables_from(prepared, stats, config))
                scenarios = prepared.study.design.n_rows
                convergence = {
                    "warnings": prepared.warnings,
                    "recommended_n": prepared.recommended_n,
                    "n": config.sampling.n,
                }
            with staged_directory(destination) as folder:
                for name, frame in tables.items():
                    write_table(frame, folder, name)
                write_json(
                    _manifest(
                        config,
                        jobs,
                        scenarios,
                        time.perf_counter() - started,
                        notes,
                        convergence,
                        list(spec.dimensions),
                    ),
                    folder / "manifest.json",
                )
                if config.outputs.figures:
                    from nqpf_sens.report import (
                        build_report,
                    )  # here: matplotlib takes a second to import

                    build_report(folder, config.outputs.chinese_labels)
            remove_work(work)
    except BaseException:
        remove_empty_folders(created)
        raise
    if not quiet:
        _print_summary(tables, notes, convergence)
        print(
            f"\nwrote {destination} ({scenarios:,} scenarios, {time.perf_counter() - started:.1f} s)"
        )
    return destination


def _study(prepared, config: RunConfig, work: Path, jobs: int, resume: bool, quiet: bool):
    """Run the study; a refused chunk discards the work folder, an interruption keeps it."""
    try:
        return run_study(
            prepared.study,
            work,
            config.chunk_size,
            jobs,
            config.backend,
            config.scheduler,
            resume,
            progress=not quiet,
            say=_say,
        )
    except UserError:
        remove_work(work)
        raise
    except KeyboardInterrupt:
        kept = any(work.glob("chunk_*.npz")) if work.is_dir() else False
        hint = (
            "; the finished chunks are kept: run the same command with --resume to continue"
            if kept
            else ""
        )
        raise RunInterrupted(f"interrupted: no results were written{hint}") from None


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _print_summary(tables: dict[str, pd.DataFrame], notes: list[str], convergence: dict) -> None:
    number = lambda v: f"{v:.2f}"  # noqa: E731
    if "rank_stability" in tables:
        columns = [
            c
            for c in tables["rank_stability"].columns
            if c
            in (
                "year",
                "unit",
                "nominal_rank",
                "median_rank",
                "p05_rank",
                "p95_rank",
                "p_nominal_rank",
            )
            or c.startswith("p_within")
        ]
        print("Rank stability (5th-95th percentile ranks):")
        print(tables["rank_stability"][columns].to_string(index=False, float_format=number))
    else:
        print(
            tables["baseline_scores"]
            .sort_values("rank")
            .to_string(index=False, float_format=lambda v: f"{v:.1f}")
        )
    if "sobol_summary" in tables:
        print(
            "\nSobol indices (R_S = mean absolute rank shift; ST summarised over the units' ranks):"
        )
        print(tables["sobol_summary"].to_string(index=False, float_format=number))
    if "paper_comparison" in tables:
        print("\n" + paper_summary(tables["paper_comparison"]))
    for note in notes:
        print(f"note: {note}")
    for warning in convergence.get("warnings", []):
        print(f"warning: {warning}")
    if convergence.get("warnings"):
        print(
            f"warning: N = {convergence['n']} may be too small; try n = {convergence['recommended_n']}"
        )


def _manifest(
    config: RunConfig,
    jobs: int,
    scenarios: int,
    seconds: float,
    notes: list[str],
    convergence: dict,
    dimensions: list[str],
) -> dict:
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
