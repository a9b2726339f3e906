"""Mutation testing: do the tests catch small, realistic faults in the source?

Each mutation below replaces one exact snippet of one source file (the snippet must occur exactly
once, or the script refuses to start) and runs the test files that cover that code. A mutant is
*caught* when those tests fail, *SURVIVED* when they pass; *equivalent* mutants (marked with the
reason) change no result a test could see and are left out of the score, caught / non-equivalent.

The project itself is never modified: ``src/``, ``tests/`` and what the tests read (``configs/``,
``docs/``, ``data/``, ``pyproject.toml``) are copied, modification times kept, into a temporary
folder beside a link to ``../shared``; each mutant is applied there, one at a time, and the file
restored (bytes and modification time) after its tests. The tests import the copy: it comes first
on ``PYTHONPATH`` (before the editable install; a probe checks it), bytecode is not written (a
mutant never leaves a stale ``.pyc``) and one ``NUMBA_CACHE_DIR`` inside the temporary folder
keeps the compiled kernels from one mutant to the next (a mutant of a file with kernels gets a
throwaway copy of it, so the shared cache stays the unmutated code's). Before the mutants, every
distinct test command runs once unmutated and must pass, or its mutants are reported as errors.

Usage::

    python experiments/mutation.py                      # every mutation (16-21 minutes here)
    python experiments/mutation.py --list               # the mutations, checked, without running
    python experiments/mutation.py --only NAME --only NAME2 --csv results.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("src", "tests", "configs", "docs", "data", "pyproject.toml", "README.md", "DATA.md")
PYTEST = ("-x", "-q", "-p", "no:cacheprovider")
PACKAGE = "src/nqpf_sens/"

# Test commands (pytest arguments) by the code they cover. The sensitivity module's four
# multi-run comparisons (chunking, workers, backends: 2 minutes) are left out where they test
# nothing the mutated code decides.
SLOW_RUNS = "not (same_seed or dask_backend or chunks_shrink or kept_subsample)"
STAGES = ("tests/test_stages.py", "tests/test_engine.py")
KERNELS = ("tests/test_kernels.py", "tests/test_stages.py", "tests/test_engine.py")
FACTORS = ("tests/test_noise.py", "tests/test_whatif.py", "tests/test_sobol.py")
DESIGN = ("tests/test_sobol.py", "tests/test_sensitivity.py", "-k", SLOW_RUNS)
STATISTICS = ("tests/test_statistics.py", "tests/test_sensitivity.py", "-k", SLOW_RUNS)
STUDY = ("tests/test_sensitivity.py", "-k", SLOW_RUNS)
PAPER = ("tests/test_dataset.py",)
REPORT = ("tests/test_report.py", "tests/test_safety.py", "-k", "hostile")


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to src/nqpf_sens/
    original: str
    replacement: str
    tests: tuple[str, ...]
    equivalent: str = ""  # why no test can tell it from the original, if so


MUTATIONS = (
    # --- the 15 survivors of a first, ad hoc measurement (two of them in two places each) ---
    Mutation(
        "tier-threshold-boundary",
        "engine/rank.py",
        "(scores[..., None] < np.asarray(self.thresholds",
        "(scores[..., None] <= np.asarray(self.thresholds",
        STAGES,
    ),
    Mutation(
        "design-groups-sorted",
        "uncertainty/designs.py",
        "self.factor_names = list(dict.fromkeys(groups))",
        "self.factor_names = sorted(set(groups))",
        DESIGN,
    ),
    Mutation(
        "sobol-groups-sorted",
        "uncertainty/sobol.py",
        'factors = list(dict.fromkeys(problem["groups"]))',
        'factors = sorted(set(problem["groups"]))',
        DESIGN,
    ),
    Mutation(
        "uncertainty-rows-a-and-ab1",
        "uncertainty/designs.py",
        "return (position == 0) | (position == len(self.factor_names) + 1)",
        "return (position == 0) | (position == 1)",
        DESIGN,
    ),
    Mutation(  # first measured on per-block streams: one seed for every block of 4,096 rows
        "random-design-ranges-restart-at-row-0",
        "uncertainty/designs.py",
        "stream.advance(start)",
        "stream.advance(0)",
        DESIGN,
    ),
    Mutation(
        "random-design-group-columns-share-a-stream",
        "uncertainty/designs.py",
        "spawn_key=key)",
        "spawn_key=key[:1])",
        DESIGN,
    ),
    Mutation(
        "noise-one-sided",
        "uncertainty/factors.py",
        "noise = 1.0 + spread * (2.0 * draws - 1.0)",
        "noise = 1.0 + spread * draws",
        FACTORS,
    ),
    Mutation(
        "exclude-ignores-level-offset",
        "uncertainty/factors.py",
        "enumerate(factor.elements[start : start + size])",
        "enumerate(factor.elements[:size])",
        FACTORS,
    ),
    Mutation(
        "region-mean-over-all-units",
        "uncertainty/study.py",
        "weights = membership / np.maximum(membership.sum(axis=0), 1.0)",
        "weights = membership / len(self.region_codes)",
        STUDY,
    ),
    Mutation(
        "paper-region-order-reversed",
        "uncertainty/statistics.py",
        "np.all(ordered[:, :-1] > ordered[:, 1:], axis=1)",
        "np.all(ordered[:, :-1] < ordered[:, 1:], axis=1)",
        STATISTICS,
    ),
    Mutation(
        "most-likely-tier-off-by-one",
        "uncertainty/statistics.py",
        'columns["most_likely_tier"] = 1 + share.argmax(axis=-1)',
        'columns["most_likely_tier"] = share.argmax(axis=-1)',
        STATISTICS,
    ),
    Mutation(
        "interval-high-rank-from-low",
        "uncertainty/statistics.py",
        '_with_interval("interval_high_rank", counts, high, _rank)',
        '_with_interval("interval_high_rank", counts, low, _rank)',
        STATISTICS,
    ),
    Mutation(
        "interval-high-score-from-low",
        "uncertainty/statistics.py",
        '("interval_high", high)]',
        '("interval_high", low)]',
        STATISTICS,
    ),
    Mutation(
        "distance-to-mean-signed-mean",
        "engine/normalise.py",
        "(values - mean) / np.abs(mean))",
        "(values - mean) / mean)",
        STAGES,
    ),
    Mutation(
        "table3-every-rank-mismatch-excused",
        "indices/nqpf/paper.py",
        "tied = (paper[output] == printed).sum() > 1",
        "tied = (paper[output] == printed).sum() >= 1",
        PAPER,
    ),
    Mutation(
        "html-about-rows-unescaped",
        "report/html.py",
        "<td>{html.escape(str(v))}</td>",
        "<td>{v}</td>",
        REPORT,
    ),
    Mutation(
        "html-table-cells-unescaped",
        "report/html.py",
        'classes="sortable", border=0, escape=True',
        'classes="sortable", border=0, escape=False',
        REPORT,
    ),
    Mutation(
        "html-reading-lines-unescaped",
        "report/html.py",
        "{html.escape(line)}</li>",
        "{line}</li>",
        REPORT,
    ),
    # --- engine: imputation ---
    Mutation(
        "growth-rate-over-one-year-too-many",
        "engine/impute.py",
        "(1.0 / np.where(span > 0, span, 1))",
        "(1.0 / np.where(span > 0, span + 1, 1))",
        STAGES,
    ),
    Mutation(
        "locf-carries-backward",
        "engine/impute.py",
        "np.where(previous >= 0, _take(series, previous), _take(series, following))",
        "np.where(following < n_years, _take(series, following), _take(series, previous))",
        STAGES,
    ),
    Mutation(
        "group-imputation-from-whole-cross-section",
        "engine/impute.py",
        "_cross_section(values[..., members, :], rule)",
        "_cross_section(values, rule)[..., members, :]",
        ("tests/test_stages.py", "tests/test_general_index.py"),
    ),
    Mutation(
        "cross-section-rule-tested-by-exclusion",
        "engine/impute.py",
        'if rule == "mean"\n            else np.nanmedian',
        'if rule != "median"\n            else np.nanmedian',
        STAGES,
        equivalent="only 'mean' or 'median' reach _cross_section ('flat' is handled before it)",
    ),
    # --- engine: normalisation ---
    Mutation(
        "zscore-ignores-ddof",
        "engine/normalise.py",
        "sd = np.sqrt(squares / (n - zscore_ddof))",
        "sd = np.sqrt(squares / n)",
        STAGES,
    ),
    Mutation(
        "rank-percentile-over-n",
        "engine/normalise.py",
        "100.0 * (ranks - 1.0) / (n_units - 1.0)",
        "100.0 * (ranks - 1.0) / n_units",
        STAGES,
    ),
    # --- engine: aggregation and weights ---
    Mutation(
        "data-threshold-boundary",
        "engine/kernels.py",
        "if count / (last - first) < threshold or total <= 0:",
        "if count / (last - first) <= threshold or total <= 0:",
        (*KERNELS, "tests/test_general_index.py"),
    ),
    Mutation(
        "shared-generalised-leaves-prepared-per-scenario",
        "engine/aggregate.py",
        "codes[0] in (1, 2, 3) and not skip_missing",
        "codes[0] in (1, 2) and not skip_missing",
        STAGES,
        equivalent="the kernel prepares unprepared leaves per scenario: same numbers, slower",
    ),
    Mutation(
        "critic-population-sd",
        "engine/weights.py",
        "sd = x.std(axis=0, ddof=1)",
        "sd = x.std(axis=0, ddof=0)",
        STAGES,
        equivalent="every column's sd scales by sqrt((n - 1) / n), which the final sum cancels",
    ),
    Mutation(
        "entropy-normalised-by-indicator-count",
        "engine/weights.py",
        "-plogp.sum(axis=0) / np.log(n)",
        "-plogp.sum(axis=0) / np.log(x.shape[1])",
        STAGES,
    ),
    # --- engine: ranks and tiers ---
    Mutation(
        "rank-tolerance-ignored",
        "engine/kernels.py",
        "place += row[v] > value + tolerance",
        "place += row[v] > value",
        KERNELS,
    ),
    Mutation(
        "fixed-rank-bound-to-the-next-tier",
        "engine/rank.py",
        'np.arange(ranks.shape[-1] + 1), side="left"',
        'np.arange(ranks.shape[-1] + 1), side="right"',
        STAGES,
    ),
    # --- factor decoding ---
    Mutation(
        "weight-multipliers-one-sided",
        "uncertainty/factors.py",
        "return 1.0 + factor.spread * (2.0 * block - 1.0)",
        "return 1.0 + factor.spread * block",
        FACTORS,
    ),
    Mutation(
        "option-probabilities-shifted",
        "uncertainty/factors.py",
        "np.cumsum(self.probabilities)[:-1]",
        "np.cumsum(self.probabilities)[1:]",
        FACTORS,
    ),
    Mutation(
        "mask-one-cell-short",
        "uncertainty/factors.py",
        "[:, : factor.cells]]",
        "[:, : factor.cells - 1]]",
        (*FACTORS, "tests/test_engine.py"),
    ),
    # --- designs ---
    Mutation(
        "sobol-fast-forward-one-short",
        "uncertainty/designs.py",
        "engine.fast_forward(start)",
        "engine.fast_forward(start - 1)",
        DESIGN,
    ),
    # --- statistics ---
    Mutation(
        "order-statistic-upper-bound-one-short",
        "uncertainty/statistics.py",
        "binomial_quantile(1 - tail, n, q) + 1",
        "binomial_quantile(1 - tail, n, q)",
        STATISTICS,
    ),
    Mutation(
        "count-quantile-strict",
        "uncertainty/statistics.py",
        "np.argmax(cdf >= q - 1e-12, axis=-1)",
        "np.argmax(cdf > q, axis=-1)",
        STATISTICS,
    ),
    Mutation(
        "p-within-strict",
        "uncertainty/statistics.py",
        "(share * (distance <= within))",
        "(share * (distance < within))",
        STATISTICS,
    ),
    Mutation(
        "rank-shift-not-per-cell",
        "uncertainty/statistics.py",
        "/ max(n, 1) / n_cells)",
        "/ max(n, 1))",
        STATISTICS,
    ),
    Mutation(
        "kept-subsample-counted-from-chunk-start",
        "uncertainty/study.py",
        "rows = start + positions",
        "rows = positions",
        (
            "tests/test_sensitivity.py::test_the_kept_subsample_does_not_depend_on_the_chunk_size",
            "tests/test_sensitivity.py::test_accumulated_statistics_equal_direct_computation",
        ),
    ),
    # --- Sobol estimators ---
    Mutation(
        "jansen-total-without-half",
        "uncertainty/sobol.py",
        "0.5 * difference * difference",
        "difference * difference",
        DESIGN,
    ),
    Mutation(
        "variance-from-rows-a-only",
        "uncertainty/sobol.py",
        "variance = (sums[:, -2] + sums[:, -1]) / 2 - mean**2",
        "variance = sums[:, -2] - mean**2",
        DESIGN,
    ),
    # --- report escaping ---
    Mutation(
        "html-figure-warnings-unescaped",
        "report/html.py",
        '<p class="warning">{html.escape(warning)}</p>',
        '<p class="warning">{warning}</p>',
        REPORT,
    ),
    Mutation(
        "html-pipeline-values-unescaped",
        "report/html.py",
        "{html.escape(k)} = {html.escape(str(v))}</code>",
        "{html.escape(k)} = {v}</code>",
        REPORT,
    ),
    Mutation(
        "html-run-name-unescaped",
        "report/html.py",
        "<h1>nqpf_sens: {html.escape(str(name))}</h1>",
        "<h1>nqpf_sens: {name}</h1>",
        REPORT,
    ),
    # --- the paper ---
    Mutation(
        "paper-region-order-constant-reversed",
        "indices/nqpf/paper.py",
        'REGION_ORDER = ("East", "Central", "West", "Northeast")',
        'REGION_ORDER = ("Northeast", "West", "Central", "East")',
        PAPER,
    ),
)


def check(mutations: list[Mutation]) -> list[str]:
    """Why some mutations cannot be applied (names unique, each snippet exactly once)."""
    problems = []
    names = [m.name for m in mutations]
    problems += [
        f"{n}: the name is used twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    for m in mutations:
        path = ROOT / PACKAGE / m.file
        if not path.is_file():
            problems.append(f"{m.name}: no file {PACKAGE}{m.file}")
            continue
        count = path.read_text(encoding="utf-8").count(m.original)
        if count != 1:
            problems.append(f"{m.name}: the snippet occurs {count} times in {m.file}, not once")
        if m.original == m.replacement:
            problems.append(f"{m.name}: the replacement equals the snippet")
    return problems


def copy_project(temporary: Path) -> Path:
    """The project's source, tests and what they read, under ``temporary/main`` (modification
    times kept), with ``temporary/shared`` linking to the project's ``../shared``."""
    copy = temporary / "main"
    ignore = shutil.ignore_patterns(".mypy_cache", "*.egg-info", ".hypothesis", ".pytest_cache")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, copy_function=shutil.copy2, ignore=ignore)
        elif source.is_file():
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (temporary / "shared").symlink_to(shared, target_is_directory=True)
    return copy


def environment(copy: Path, numba_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(copy / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["NUMBA_CACHE_DIR"] = str(numba_cache)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def probe(copy: Path, env: dict[str, str]) -> None:
    """Stop unless the copy, not the editable install, is what the tests import."""
    found = subprocess.run(
        [sys.executable, "-c", "import nqpf_sens; print(nqpf_sens.__file__)"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to((copy / "src").resolve()):
        sys.exit(f"the tests would import {found}, not the copy under {copy}")


def run_tests(
    tests: tuple[str, ...], copy: Path, env: dict[str, str], timeout: float
) -> tuple[str, str]:
    """(outcome, detail) of pytest on ``tests`` in the copy: 'pass', 'fail', 'none' (no test
    selected), 'timeout' or 'error' (pytest itself failed); detail names the first failure."""
    command = [sys.executable, "-m", "pytest", *PYTEST, "--basetemp", str(copy.parent / "pytest")]
    process = subprocess.Popen(
        [*command, *tests],
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends its workers too
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return "timeout", f"no result within {timeout:g} s"
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
    tail = output.strip().splitlines()[-1] if output.strip() else ""
    outcome = {0: "pass", 1: "fail", 2: "fail", 5: "none"}.get(process.returncode, "error")
    return outcome, failed[0] if failed else tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME", help="run only these")
    parser.add_argument("--list", action="store_true", help="list the mutations and stop")
    parser.add_argument("--csv", type=Path, help="write one row per mutation to this file")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per test command")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)
    chosen = list(MUTATIONS)
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTATIONS})
        if unknown:
            parser.error(f"unknown mutation {unknown[0]!r} (see --list)")
        chosen = [m for m in MUTATIONS if m.name in args.only]
    problems = check(chosen)
    if problems:
        print("refused:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            note = f"  [equivalent: {m.equivalent}]" if m.equivalent else ""
            print(f"{m.name:48} {m.file:28} {' '.join(m.tests)}{note}")
        print(f"{len(chosen)} mutations, {sum(not m.equivalent for m in chosen)} non-equivalent")
        return 0

    started = time.perf_counter()
    temporary = Path(tempfile.mkdtemp(prefix="nqpf-mutation-"))
    try:
        rows = run_all(chosen, temporary, args.timeout)
    finally:
        if args.keep:
            print(f"copy kept in {temporary}")
        else:
            shutil.rmtree(temporary, ignore_errors=True)
    scored = [r for r in rows if r["status"] in ("caught", "SURVIVED")]
    caught = sum(r["status"] == "caught" for r in scored)
    errors = sum(r["status"] == "error" for r in rows)
    score = f"{caught}/{len(scored)} = {100 * caught / len(scored):.1f}%" if scored else "n/a"
    print(
        f"\nscore (caught / non-equivalent): {score}; "
        f"{sum(r['status'] == 'equivalent' for r in rows)} equivalent, {errors} errors; "
        f"{time.perf_counter() - started:.0f} s"
    )
    survivors = [r["name"] for r in scored if r["status"] == "SURVIVED"]
    if survivors:
        print("survivors:", ", ".join(survivors))
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 1 if errors else 0


def run_all(mutations: list[Mutation], temporary: Path, timeout: float) -> list[dict]:
    """Copy the project, check the copy is imported and each test command passes unmutated, then
    apply and test every mutant in turn; one result row per mutation."""
    copy = copy_project(temporary)
    cache = temporary / "numba-cache"
    env = environment(copy, cache)
    probe(copy, env)
    print(f"copy of the project in {copy}; baseline of each test command:")
    baseline = {}
    for tests in dict.fromkeys(m.tests for m in mutations):
        clock = time.perf_counter()
        baseline[tests], detail = run_tests(tests, copy, env, timeout)
        print(f"  {baseline[tests]:8} {time.perf_counter() - clock:6.1f} s  {' '.join(tests)}")
        if baseline[tests] not in ("pass", "none"):
            print(f"           {detail}")
    rows = []
    for m in mutations:
        clock = time.perf_counter()
        status, detail = mutate_and_test(m, copy, env, cache, baseline[m.tests], timeout)
        seconds = time.perf_counter() - clock
        print(f"{status:10} {seconds:6.1f} s  {m.name:48} {detail}", flush=True)
        rows.append(
            {
                "name": m.name,
                "file": m.file,
                "status": status,
                "seconds": round(seconds, 1),
                "detail": detail,
                "tests": " ".join(m.tests),
                "equivalent": m.equivalent,
            }
        )
    return rows


def mutate_and_test(
    m: Mutation, copy: Path, env: dict[str, str], cache: Path, baseline: str, timeout: float
) -> tuple[str, str]:
    """Apply one mutant in the copy, run its tests, restore the file: (status, detail)."""
    if baseline != "pass":
        if baseline == "none":  # no test selected: nothing can catch it
            return ("equivalent" if m.equivalent else "SURVIVED"), "no test selected"
        return "error", f"its tests do not pass unmutated ({baseline})"
    path = copy / PACKAGE / m.file
    original = path.read_bytes()
    stat = path.stat()
    text = original.decode("utf-8")
    if text.count(m.original) != 1:  # the file changed between the check and the copy
        return "error", f"the snippet occurs {text.count(m.original)} times in the copy"
    own_cache = "numba" in text  # compiled kernels of the mutant must not replace the shared ones
    mutant_env = env
    if own_cache:
        mutant_env = {**env, "NUMBA_CACHE_DIR": str(cache.parent / f"numba-{m.name}")}
        if cache.is_dir():
            shutil.copytree(cache, mutant_env["NUMBA_CACHE_DIR"])
    try:
        path.write_text(text.replace(m.original, m.replacement, 1), encoding="utf-8")
        outcome, detail = run_tests(m.tests, copy, mutant_env, timeout)
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        if own_cache:
            shutil.rmtree(mutant_env["NUMBA_CACHE_DIR"], ignore_errors=True)
    if outcome == "error":
        return "error", detail
    if outcome in ("fail", "timeout"):
        status = "caught"
        if m.equivalent:  # a test told it apart: the equivalence claim is wrong
            return "error", f"marked equivalent but caught by {detail}"
        return status, detail if outcome == "fail" else f"timeout ({detail})"
    return ("equivalent" if m.equivalent else "SURVIVED"), m.equivalent or ""


if __name__ == "__main__":
    sys.exit(main())
