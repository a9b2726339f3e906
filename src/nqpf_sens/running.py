"""Running a config: everything is checked first, then computed, then (for the command line) the
whole output folder is written at once; :func:`run` returns the tables without writing anything."""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens.audit.coherence import coherence_tables, nominal_levels
from nqpf_sens.audit.coherence import peak_bytes as coherence_bytes
from nqpf_sens.audit.importance import importance_tables
from nqpf_sens.audit.importance import peak_bytes as importance_bytes
from nqpf_sens.audit.optimal_weights import optimal_weights_tables
from nqpf_sens.audit.rank_bounds import SolverFailed, TooManyUndecided, rank_bounds, weight_spreads
from nqpf_sens.audit.rank_bounds import peak_bytes as rank_bounds_bytes
from nqpf_sens.audit.whatif import leave_one_out, one_at_a_time
from nqpf_sens.config import MAX_JOBS, RunConfig, load_config
from nqpf_sens.engine.batch import Engine, evaluate
from nqpf_sens.engine.kernels import RANK_TOLERANCE
from nqpf_sens.engine.pipeline import option_problem
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable
from nqpf_sens.errors import RunInterrupted, UserError, quoted, system_problem
from nqpf_sens.glossary import glossary_table
from nqpf_sens.indices.nqpf.paper import compare_with_table3, paper_problem, paper_summary
from nqpf_sens.inputs import (
    describe_inputs,
    empty_units,
    input_files,
    load_inputs,
    unit_attributes,
)
from nqpf_sens.outputs import (
    check_destination,
    destination_lock,
    make_folders,
    remove_empty_folders,
    staged_directory,
    write_json,
    write_table,
)
from nqpf_sens.plan import Prepared, prepare_study, tables_from
from nqpf_sens.processes import WorkerDied
from nqpf_sens.uncertainty.chunks import check_work_folder, input_digests, remove_work
from nqpf_sens.uncertainty.compiling import (
    interrupts_deferred_while_compiling,
    start_compiling,
)
from nqpf_sens.uncertainty.convergence import RANK_ERROR
from nqpf_sens.uncertainty.factors import OWN_DATA_KINDS
from nqpf_sens.uncertainty.memory import retain_freed_memory
from nqpf_sens.uncertainty.resources import check_step_memory
from nqpf_sens.uncertainty.study import ChunkStats, resolved_backend, run_study
from nqpf_sens.wording import fixed, plural

#: every package whose code computes or draws results
PACKAGES = (
    "nqpf_sens",
    "numpy",
    "scipy",
    "pandas",
    "numba",
    "SALib",
    "joblib",
    "dask",
    "matplotlib",
)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def code_revision() -> str | None:
    """The git commit of the code that ran (with ``+changes`` when the work tree differs from it),
    when the package runs from a git checkout; None for an installed copy."""
    source = Path(__file__).resolve().parent
    try:
        tracked = subprocess.run(  # this very file: not a repository an install sits inside
            ["git", "-C", str(source), "ls-files", "--error-unmatch", Path(__file__).name],
            capture_output=True,
            timeout=5,
        )
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if tracked.returncode != 0 or commit.returncode != 0:
            return None
        changed = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


@dataclass
class Results:
    """What a run computed: its tables as DataFrames, by file name without ``.csv``
    (``results["rank_stability"]``), with the notes, the convergence verdict and the scenario
    count that a run's manifest records, and ``about``: the index and its data (see
    :func:`nqpf_sens.inputs.describe_inputs`)."""

    config: RunConfig
    tables: dict[str, pd.DataFrame]
    notes: list[str]
    convergence: dict
    scenarios: int
    dimensions: list[str]
    jobs: int
    about: dict
    backend: str | None = None  # the study's workers (``auto`` resolved), None without a study

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


@dataclass
class _Plan:
    """A checked run, ready to compute: inputs read, nominal run done, study built."""

    config: RunConfig
    jobs: int
    tables: dict[str, pd.DataFrame]
    notes: list[str]
    dimensions: list[str]
    prepared: Prepared | None
    about: dict


def run(config: RunConfig | str | Path, jobs: int | None = None, progress: bool = False) -> Results:
    """Run a config (a :class:`RunConfig` or the path of a TOML file) and return its tables,
    writing nothing: no results folder, no figures, no chunk files (so no ``--resume`` either).

    Problems raise :class:`UserError` with the same one-line message as the command line; a
    Ctrl-C while a kernel compiles is raised once it is compiled (see
    :func:`~nqpf_sens.uncertainty.compiling.interrupts_deferred_while_compiling`)."""
    if not isinstance(config, (RunConfig, str, os.PathLike)):
        raise UserError("give a RunConfig or the path of a TOML file", where="run config")
    retain_freed_memory()  # before any thread allocates (the audit's threads, the study's)
    config = config if isinstance(config, RunConfig) else load_config(Path(config))
    with _one_line_errors(config, keeps_chunks=False), interrupts_deferred_while_compiling():
        return _compute(_plan(config, *_inputs(config, jobs), work=None), None, False, progress)


def run_config(
    path: str | Path,
    out: str | Path | None = None,
    jobs: int | None = None,
    quiet: bool = False,
    resume: bool = False,
) -> Path:
    """Run the config at ``path`` and write its results folder; returns the folder.

    Every problem is a :class:`UserError` naming the file and the key or cell (a failure of the
    system, such as a full disk, included); an interrupted run raises :class:`RunInterrupted`
    (a Ctrl-C while a kernel compiles, once it is compiled)."""
    started = time.perf_counter()
    for name, value in (("path", path), ("out", out)):
        if not isinstance(value, (str, os.PathLike)) and (name == "path" or value is not None):
            what = type(value).__name__
            raise UserError(
                f"must be a path (text or a Path), got {what}", where=f"run_config {name}"
            )
    retain_freed_memory()  # before any thread allocates (the audit's threads, the study's)
    config = load_config(Path(path))
    keeps_chunks = config.kind != "baseline"  # a baseline run evaluates no chunks
    with _one_line_errors(config, keeps_chunks), interrupts_deferred_while_compiling():
        read = input_digests(input_files(config))  # before reading, to compare after
        spec, table, notes, jobs = _inputs(config, jobs)
        destination = check_destination(
            Path(out) if out is not None else Path("results") / config.name,
            [config.path, *input_files(config)],
        )
        work = destination.with_name(f".{destination.name}.work")
        check_work_folder(work)
        plan = _plan(config, spec, table, notes, jobs, work, read)
        _check_unchanged(read)
        created = make_folders(destination.parent)
        published = False
        try:
            with destination_lock(destination):
                results = _compute(plan, work, resume, progress=not quiet)
                seconds = round(time.perf_counter() - started, 3)  # the one wall time reported
                try:
                    with staged_directory(destination) as folder:
                        _write(results, folder, seconds, quiet)
                except KeyboardInterrupt:  # while the tables, figures or report are written
                    raise _interrupted(work) from None
                except OSError as error:  # a write names no file: the results' folder, then
                    error.filename = error.filename or str(destination)
                    raise
                published = True
                remove_work(work)
            if not quiet:
                _print_summary(results)
                print(
                    f"\nwrote {destination} ({plural(results.scenarios, 'scenario')} computed "
                    f"in {seconds:.1f} s)"
                )
        except BaseException as stop:
            remove_empty_folders(created)
            # published, the result is whole: only the tidying or the summary was cut short
            if published and isinstance(stop, KeyboardInterrupt):
                raise RunInterrupted(f"interrupted after {destination} was written") from None
            raise
    return destination


def _check_unchanged(read: dict[Path, str]) -> None:
    """Refuse a run whose input files changed while it read them: its chunk files would be
    stamped with the new bytes' fingerprint and a resume would mix them with the new data."""
    now = input_digests(list(read))
    for path, digest in read.items():
        if now[path] != digest:
            raise UserError("changed while the run was reading it; run again", path)


@contextmanager
def _one_line_errors(config: RunConfig, keeps_chunks: bool) -> Iterator[None]:
    """Name the config file in an error about its options; turn failures of the system into
    one-line errors too (a run that ``keeps_chunks`` says that --resume can use them)."""
    try:
        yield
    except UserError as error:
        if error.source is None:  # a problem of the configured options: name the config file
            raise UserError(error.message, config.path, error.where) from None
        raise
    except MemoryError:
        raise UserError(
            "out of memory: lower [sampling] n, [run] chunk_size or [run] jobs", config.path
        ) from None
    except BrokenProcessPool as error:  # loky's lost workers too
        died = error if isinstance(error, WorkerDied) else WorkerDied(None)
        if not died.killed_outright:
            advice = ""
        elif died.doing:  # the figures': the study's chunks have no part in it
            advice = ": lower [run] jobs, or set [outputs] figures = false"
        else:
            advice = ": lower [run] chunk_size or [run] jobs"
        resume = "; --resume keeps the finished chunks" if keeps_chunks else ""
        raise UserError(f"{died}{advice}{resume}", config.path) from None
    except OSError as error:  # without a file's name (numba's cache, say), not the config's
        where = error.filename or f"{config.path}: a file the system did not name"
        raise UserError(system_problem(error, keeps_chunks), where) from None


def _inputs(
    config: RunConfig, jobs: int | None
) -> tuple[IndexSpec, IndicatorTable, list[str], int]:
    """The spec and data of a run, checked with its options; notes; the number of workers."""
    spec, table = load_inputs(config)
    notes = empty_units(config, table)
    problem = option_problem(config.pipeline, spec)
    if problem:
        key, message = problem.split(": ", 1)
        raise UserError(message, config.path, f"[pipeline] {key}")
    written = config.raw.get("outputs", {})  # the [outputs] keys the config sets
    focus = written.get("focus_unit")
    if focus and focus not in table.units:
        raise UserError(
            f"{quoted(focus)} is not a unit of the data", config.path, "[outputs] focus_unit"
        )
    n_units = len(table.units)
    top_set = "top" in written  # the default, 5, suits any index
    if top_set and config.kind != "baseline" and 1 < n_units <= config.outputs.top:
        raise UserError(
            f"{config.outputs.top} is not fewer than the {n_units} units (every unit would be in "
            "the top)",
            config.path,
            "[outputs] top",
        )
    within = config.outputs.within
    if "within" in written and config.kind != "baseline" and 1 < n_units <= within + 1:
        raise UserError(
            f"{within} is not fewer than the {n_units - 1} places a unit can move (every unit "
            "would be within it)",
            config.path,
            "[outputs] within",
        )
    tiers = config.pipeline.tiers
    bounds_set = "bounds" in config.raw.get("tiers", {})
    by_rank = tiers.scheme == "fixed_ranks" and tiers.bounds  # none: refused as not increasing
    if bounds_set and by_rank and 1 < n_units <= tiers.bounds[-1]:
        raise UserError(
            f"{tiers.bounds[-1]} is not fewer than the {n_units} units (tier "
            f"{tiers.n_tiers} would always be empty)",
            config.path,
            "[tiers] bounds",
        )
    if config.data.compare_with_paper:
        problem = paper_problem(spec, table)
        if problem:
            raise UserError(problem, config.path, "[data] compare_with_paper")
    jobs = config.jobs if jobs is None else jobs
    whole = isinstance(jobs, (int, np.integer)) and not isinstance(jobs, bool)
    if not whole or not 1 <= jobs <= MAX_JOBS:
        raise UserError(f"from 1 to {MAX_JOBS} workers", where="--jobs")
    return spec, table, notes, int(jobs)


INCOMPLETE = (
    "{step} skipped: they need every unit's every part, and aggregation without imputation "
    "leaves some missing"
)
CONSTANT_INDEX = (
    "{step} skipped: every unit has the same index score, so there is no variance across units "
    "for the parts to explain"
)


def _plan(
    config: RunConfig,
    spec: IndexSpec,
    table: IndicatorTable,
    notes: list[str],
    jobs: int,
    work: Path | None,
    inputs: dict[Path, str] | None = None,
) -> _Plan:
    """The nominal run and its tables, and the study of an uncertainty run (checked against the
    machine's memory, and the disk under ``work`` when chunk files are kept; ``inputs``: the
    digests of the input files as read, for the chunks' fingerprint)."""
    if config.kind != "baseline" and jobs > 1:
        # the study's kernels, on another core while the audits run
        start_compiling(not any(f["kind"] in OWN_DATA_KINDS for f in config.factors))
    nominal = evaluate(spec, table, config.pipeline, config.ties)
    scores = nominal.to_frame()
    tables: dict[str, pd.DataFrame] = {"baseline_scores": scores}
    if config.data.compare_with_paper:
        tables["paper_comparison"] = compare_with_table3(scores)
    attributes = unit_attributes(config, table)
    if not attributes.empty and len(attributes.columns):
        tables["unit_attributes"] = attributes.reset_index()
    audit = config.audit
    levels = None
    if len(table.years) == 1 and len(table.units) >= 2:
        levels, weights = nominal_levels(spec, table, config.pipeline, config.ties)
    if levels is not None and len(table.units) >= 3:  # correlations need three units
        n_units = len(table.units)
        if audit.coherence:
            what = f"the coherence audit of {len(spec.indicators):,} indicators"
            check_step_memory(coherence_bytes(spec, n_units), what, "[audit] coherence")
            tables.update(coherence_tables(levels, spec, table))
        index = levels[-1]
        varies = bool(np.nanmax(index) - np.nanmin(index) > RANK_TOLERANCE * np.nanmax(abs(index)))
        if audit.importance and not varies:
            notes = [*notes, CONSTANT_INDEX.format(step="importance")]
        elif audit.importance:
            what = f"the importance audit of {n_units:,} units"
            needed = importance_bytes(n_units, audit.bootstrap)
            check_step_memory(needed, what, "[audit] importance")
            tables.update(
                importance_tables(
                    levels, spec, weights, audit.confidence, config.seed, audit.bootstrap
                )
            )
        complete = not any(np.isnan(level).any() for level in levels)
        if audit.optimal_weights != "none" and not varies:
            notes = [*notes, CONSTANT_INDEX.format(step="optimal weights")]
        elif audit.optimal_weights != "none" and not complete:
            notes = [*notes, INCOMPLETE.format(step="optimal weights")]
        elif audit.optimal_weights != "none":
            engine = Engine(spec, table, config.ties)
            optimal, skipped = optimal_weights_tables(
                engine, config.pipeline, levels, audit.optimal_weights
            )
            tables.update(optimal)
            notes = [*notes, *skipped]
    if audit.what_if and len(table.units) > 1:
        what_if = leave_one_out(spec, table, config.pipeline, config.ties)
        if len(what_if):
            tables["what_if"] = what_if
    prepared = None
    if config.kind != "baseline":
        prepared = prepare_study(config, spec, table, nominal, jobs, work, inputs)
        notes = notes + prepared.notes
        changes = prepared.study.factors.single_changes()
        if audit.what_if and changes and len(table.units) > 1:
            per_unit, summary = one_at_a_time(
                spec, prepared.study.tables, config.pipeline, changes, config.ties
            )
            tables["one_at_a_time"], tables["one_at_a_time_summary"] = per_unit, summary
        if audit.rank_bounds and levels is not None:  # after the study has checked the factors
            bounds = _rank_bounds(config, spec, levels[0], weights, table.units, notes, jobs)
            if bounds is not None:
                tables["rank_bounds"] = bounds
    n_tables = 1 if prepared is None else len(prepared.study.tables)
    about = describe_inputs(config, spec, table, n_tables)
    if "paper_comparison" in tables:
        about["comparison"] = {
            "title": "Reproduction of the paper's Table 3",
            "summary": paper_summary(tables["paper_comparison"]) + ".",
        }
    return _Plan(config, jobs, tables, notes, list(spec.dimensions), prepared, about)


def _rank_bounds(
    config: RunConfig,
    spec: IndexSpec,
    leaves: np.ndarray,
    weights: tuple[np.ndarray, ...],
    units: tuple[str, ...],
    notes: list[str],
    jobs: int,
) -> pd.DataFrame | None:
    """Exact best and worst ranks over the weights the config's uniform ``weights`` factors
    allow, when they apply: arithmetic aggregation at every level, ties shared, and (said in
    ``notes`` otherwise) every indicator observed for every unit."""
    spreads = weight_spreads(config.factors, len(spec.levels) - 1)
    levels = range(len(spec.levels) - 1)
    arithmetic = all(config.pipeline.aggregation_at(k) == "arithmetic" for k in levels)
    if spreads is None or not arithmetic or config.ties != "min":
        return None
    if np.isnan(leaves).any():
        notes.append(INCOMPLETE.format(step="exact rank bounds"))
        return None
    what = f"the exact rank bounds of {len(units):,} units"
    check_step_memory(rank_bounds_bytes(*leaves.shape), what, "[audit] rank_bounds")
    try:
        bounds = rank_bounds(leaves, spec, weights, spreads, units, jobs)
    except SolverFailed as failed:
        notes.append(f"exact rank bounds skipped: the solver failed ({failed})")
        return None
    except TooManyUndecided as many:
        notes.append(f"exact rank bounds skipped: {many}; the Monte Carlo rank intervals stand")
        return None
    return bounds.sort_values(["nominal_rank", "unit"], kind="stable", ignore_index=True)


def _compute(plan: _Plan, work: Path | None, resume: bool, progress: bool) -> Results:
    tables = dict(plan.tables)
    convergence: dict = {}
    scenarios = 1
    prepared, config = plan.prepared, plan.config
    backend = None
    if prepared is not None:
        # the workers the memory check counted; auto turns forks into threads if a thread has
        # appeared since (a fork copies no thread), and never threads into forks
        backend = prepared.backend
        if backend == "fork":
            backend = resolved_backend(config.backend, plan.jobs, prepared.study.factors)
        stats = _study(prepared, config, backend, work, plan.jobs, resume, progress)
        tables.update(tables_from(prepared, stats, config, plan.jobs))
        if "rank_bounds" in tables:  # beside the Monte Carlo interval of every factor together
            quantiles = [f"p{q}_rank{end}" for q in ("05", "95") for end in ("", "_low", "_high")]
            interval = tables["rank_stability"][["unit", *quantiles, "scenarios"]]
            tables["rank_bounds"] = tables["rank_bounds"].merge(
                interval.rename(columns=lambda c: c if c == "unit" else f"monte_carlo_{c}"),
                on="unit",
                how="left",
            )
        scenarios = prepared.study.design.n_rows
        convergence = {
            "warnings": prepared.warnings,
            "recommended_n": prepared.recommended_n,
            "n": config.sampling.n,
            "rank_error_target": RANK_ERROR,
            "tolerance": config.outputs.convergence_tolerance,
        }
    tables["glossary"] = glossary_table(tables, config.outputs.interval, config.sampling.confidence)
    return Results(
        config,
        tables,
        plan.notes,
        convergence,
        scenarios,
        plan.dimensions,
        plan.jobs,
        plan.about,
        backend,
    )


def _write(results: Results, folder: Path, seconds: float, quiet: bool = True) -> None:
    """Every table, the manifest and (when configured) the figures and report, into ``folder``."""
    for name, frame in results.tables.items():
        write_table(frame, folder, name)
    write_json(_manifest(results, seconds), folder / "manifest.json")
    if results.config.outputs.figures:
        from nqpf_sens.report import build_report  # here: matplotlib takes a second to import

        build_report(folder, results.config.outputs.chinese_labels, quiet)


def _study(
    prepared: Prepared,
    config: RunConfig,
    backend: str,
    work: Path | None,
    jobs: int,
    resume: bool,
    progress: bool,
) -> ChunkStats:
    """Run the study; a refused chunk discards the work folder, an interruption keeps it."""
    try:
        return run_study(
            prepared.study,
            work,
            config.chunk_size,
            jobs,
            backend,
            config.scheduler,
            resume,
            progress=progress,
            say=_say,
            sobol=prepared.sobol,
        )
    except UserError:
        if work is not None:
            remove_work(work)
        raise
    except KeyboardInterrupt:
        raise _interrupted(work) from None


def _interrupted(work: Path | None) -> RunInterrupted:
    """The stop of an interrupted run, saying whether --resume can use finished chunks."""
    kept = work is not None and work.is_dir() and any(work.glob("chunk_*.npz"))
    hint = (
        "; the finished chunks are kept: run the same command with --resume to continue"
        if kept
        else ""
    )
    return RunInterrupted(f"interrupted: no results were written{hint}")


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _print_summary(results: Results) -> None:
    tables, notes, convergence = results.tables, results.notes, results.convergence

    def number(value: float) -> str:  # a share short of 1 never reads 1.00
        return fixed(value, 2)

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
            or (c.startswith("p_within") and not c.endswith("_se"))
        ]
        print("Rank stability (5th-95th percentile ranks):")
        print(tables["rank_stability"][columns].to_string(index=False, float_format=number))
    else:
        print(
            tables["baseline_scores"]
            .sort_values("rank")
            .to_string(index=False, float_format="{:.1f}".format)
        )
    if "sobol_summary" in tables:
        print(
            "\nSobol indices (R_S = mean absolute rank shift; ST summarised over the units' ranks):"
        )
        print(tables["sobol_summary"].to_string(index=False, float_format=number))
    if "comparison" in results.about:
        print("\n" + results.about["comparison"]["summary"])
    for note in notes:
        print(f"note: {note}")
    for warning in convergence.get("warnings", []):
        print(f"warning: {warning}")
    if convergence.get("warnings") and convergence["recommended_n"] > convergence["n"]:
        n, recommended = convergence["n"], convergence["recommended_n"]
        print(f"warning: N = {n} may be too small; try n = {recommended}")


def _manifest(results: Results, seconds: float) -> dict:
    config = results.config
    return {
        "config_file": str(config.path),
        "config": config.raw,
        "kind": config.kind,
        "seed": config.seed,
        "jobs": results.jobs,
        "backend": results.backend,
        "scenarios": results.scenarios,
        "dimensions": results.dimensions,
        "wall_seconds": seconds,
        "notes": results.notes,
        "about": results.about,
        "design": {
            "kind": config.kind,
            "n": config.sampling.n,
            "method": config.sampling.method,
            "bootstrap": config.sampling.bootstrap,
            "confidence": config.sampling.confidence,
            "interval": config.outputs.interval,
            "seed": config.seed,
        },
        "tiers": {
            **dataclasses.asdict(config.pipeline.tiers),
            "definition": config.pipeline.tiers.describe(),
        },
        "convergence": results.convergence,
        "versions": versions(),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "code_revision": code_revision(),
    }
