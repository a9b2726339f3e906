"""The self-contained ``report.html`` of a run, rebuilt from its saved files only.

The report embeds its figures (base64 PNG), needs no network, and opens from disk; every text that
comes from the user (unit, factor and run names) is escaped.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nqpf_sens.errors import UserError, system_problem
from nqpf_sens.outputs import (
    check_destination,
    check_replaceable,
    destination_lock,
    result_digests,
    result_files,
    staged_directory,
)
from nqpf_sens.processes import WorkerDied
from nqpf_sens.report.figures import make_figures
from nqpf_sens.report.reading import reading
from nqpf_sens.report.saved_run import load_run
from nqpf_sens.wording import fixed, plural

ERROR_TRAP = (
    "window.reportErrors = []; window.addEventListener('error', "
    "function (e) { window.reportErrors.push(String(e.message)); });"
)
SORT_SCRIPT = """
function sortKey(cell) {  // empty: null (always last); a number: its value; else the text
  var text = cell.textContent.trim();
  if (text === '') { return null; }
  var number = Number(text.replace(/,/g, ''));
  return isNaN(number) ? text : number;
}
function compareKeys(x, y, sign) {
  if (x === null || y === null) { return (x === null) - (y === null); }
  if (typeof x !== typeof y) { return typeof x === 'number' ? -1 : 1; }
  return sign * (typeof x === 'number' ? x - y : x.localeCompare(y));
}
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.title = 'Sort by this column';
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], column = th.cellIndex;
    var sign = th.dataset.order === 'asc' ? -1 : 1;
    var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
      return {row: row, key: sortKey(row.cells[column]), position: position};
    });
    rows.sort(function (a, b) {
      return compareKeys(a.key, b.key, sign) || a.position - b.position;
    });
    table.querySelectorAll('th').forEach(function (other) { delete other.dataset.order; });
    th.dataset.order = sign > 0 ? 'asc' : 'desc';
    rows.forEach(function (item) { body.appendChild(item.row); });
  });
});
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.dataset.imagesLoaded = images.every(function (i) {\
 return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imageCount = images.length;
  document.body.dataset.errors = window.reportErrors.length;
});
"""

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; \
margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } \
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: .82em; margin: .6em 0; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; cursor: pointer; position: sticky; top: 0; white-space: nowrap; }
th::after { content: " \\2195"; color: #aaa; } th[data-order=asc]::after { content: " \\25B2"; }
th[data-order=desc]::after { content: " \\25BC"; }
td:first-child, th:first-child { text-align: left; }
.scroll { max-height: 480px; max-width: 100%; overflow: auto; display: block; width: fit-content; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.reading li { margin: .3em 0; } .warning { color: #8a4b00; } \
code { background: #f5f5f5; padding: 0 .2em; }
"""


def _decimals(values: pd.Series) -> int:
    """One number of decimals per column: none for whole numbers, 3 for shares and probabilities
    (0-1), 2 otherwise."""
    finite = values.dropna()
    if finite.empty or (finite == finite.round()).all():
        return 0
    return 3 if finite.abs().max() <= 1 else 2


def _table(frame: pd.DataFrame) -> str:
    formatted = frame.copy()
    for column in formatted.columns:
        if pd.api.types.is_float_dtype(formatted[column]):
            digits = _decimals(formatted[column])
            formatted[column] = formatted[column].map(
                lambda v, d=digits: "" if pd.isna(v) else fixed(v, d)
            )
        elif formatted[column].isna().any():  # a missing text is an empty cell, not "None"
            formatted[column] = (
                formatted[column].astype(object).where(formatted[column].notna(), "")
            )
    return (
        '<div class="scroll">'
        + formatted.to_html(index=False, classes="sortable", border=0, escape=True)
        + "</div>"
    )


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = html.escape(caption)
    image = f'<img alt="{caption}" src="data:image/png;base64,{data}">'
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"


def _scenarios(manifest: dict, tables: dict[str, pd.DataFrame]) -> str:
    """Scenarios evaluated, and those behind the uncertainty statistics when fewer (rows A and B
    of a Saltelli design)."""
    evaluated = plural(manifest["scenarios"], "scenario")
    stability = tables.get("rank_stability")
    if stability is None or "scenarios" not in stability:
        return evaluated
    used = int(stability.scenarios.iloc[0])
    if used == manifest["scenarios"]:
        return evaluated
    return f"{evaluated} evaluated; {used:,} behind the uncertainty statistics (rows A and B)"


def _toml_text(value: object) -> str:
    """A config value as a reader would write it: ``0.25``, ``minmax, zscore``, ``3``."""
    if isinstance(value, list):
        return ", ".join(
            "/".join(map(_toml_text, v)) if isinstance(v, list) else _toml_text(v) for v in value
        )
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_toml_text(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


#: what a factor varies, and how, by kind (the config keys that say it)
FACTOR_SETTINGS = (
    "key",
    "options",
    "probabilities",
    "level",
    "distribution",
    "spread",
    "spread_by_status",
    "concentration",
    "cells",
    "count",
    "group",
)


def _factor_table(factors: list[dict]) -> pd.DataFrame:
    """One row per factor: its name, kind, settings as written in the config, and why."""
    return pd.DataFrame(
        [
            {
                "factor": factor.get("name", ""),
                "kind": factor.get("kind", ""),
                "settings": "; ".join(
                    f"{key} = {_toml_text(factor[key])}" for key in FACTOR_SETTINGS if key in factor
                ),
                "justification": factor.get("description", "(none given in the config)"),
            }
            for factor in factors
        ]
    )


def _about(manifest: dict, tables: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    """What a referee needs before any number: the index, its data and their provenance, the
    design and its sample sizes, and the tiers (from manifests that record them)."""
    rows: list[tuple[str, str]] = []
    about = manifest.get("about")
    if isinstance(about, dict):
        years = about.get("years") or []
        span = f", {years[0]}-{years[-1]}" if len(years) > 1 else f", {years[0]}" if years else ""
        rows.append(("index", str(about.get("index", ""))))
        rows.append(
            (
                "data",
                f"{plural(about.get('units', 0), 'unit')}, "
                f"{plural(about.get('indicators', 0), 'indicator')} "
                f"(tree levels of {', '.join(map(str, about.get('levels', [])))} nodes){span}; "
                f"values: {about.get('values', '')}",
            )
        )
        cells = about.get("cells", {})
        total = sum(cells.values()) or 1
        rows.append(
            (
                "cells by provenance",
                ", ".join(
                    f"{name} {count:,} ({100 * count / total:.0f}%)"
                    for name, count in cells.items()
                ),
            )
        )
        if about.get("alternative_datasets"):
            rows.append(("alternative datasets", f"{about['alternative_datasets']:,}"))
    design = manifest.get("design")
    if isinstance(design, dict) and manifest["kind"] != "baseline":
        text = (
            f"{manifest['kind']} ({design['method']} design), N = {design['n']:,}, "
            f"{_scenarios(manifest, tables)}"
        )
        bands = tables.get("tier_bands")
        if bands is not None and "score_scenarios" in bands:
            text += f"; score bands from {plural(int(bands.score_scenarios.iloc[0]), 'scenario')}"
        if manifest["kind"] == "sobol":
            text += (
                f"; Sobol intervals from {design['bootstrap']:,} bootstrap resamples at "
                f"{100 * design['confidence']:g}% confidence"
            )
        text += f"; reported rank and score intervals: central {100 * design['interval']:g}%"
        rows.append(("design", text + f"; seed {design['seed']}"))
    tiers = manifest.get("tiers")
    if isinstance(tiers, dict) and "definition" in tiers:
        rows.append(("tiers", str(tiers["definition"])))
    return rows


def _rows_table(rows: Sequence[tuple[str, object]]) -> str:
    return (
        "<table>"
        + "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        + "</table>"
    )


def _run_description(manifest: dict, tables: dict[str, pd.DataFrame]) -> str:
    config = manifest["config"]
    rows = [
        ("config", manifest["config_file"]),
        ("kind", manifest["kind"]),
        ("seed", manifest["seed"]),
        ("scenarios", _scenarios(manifest, tables)),
        ("wall time", f"{manifest['wall_seconds']:.1f} s (computing; figures and report after)"),
        ("workers", manifest["jobs"]),
        ("versions", ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())),
    ]
    rows += [
        (label, manifest[key])
        for key, label in (
            ("finished_utc", "finished (UTC)"),
            ("platform", "platform"),
            ("code_revision", "code revision"),
        )
        if manifest.get(key)  # absent from the manifests of earlier versions
    ]
    head = _rows_table(rows)
    pipeline = config.get("pipeline", {})
    head += (
        "<p>Nominal pipeline: "
        + (
            ", ".join(
                f"<code>{html.escape(k)} = {html.escape(str(v))}</code>"
                for k, v in pipeline.items()
            )
            or "the defaults (the paper's method)"
        )
        + "</p>"
    )
    if config.get("factors"):
        head += "<h3>Uncertain factors</h3>" + _table(_factor_table(config["factors"]))
    return head


def build_report(folder: str | Path, chinese: bool = False, quiet: bool = True) -> Path:
    """Draw ``figures/`` and write ``report.html`` into a run's folder from its saved files;
    unless ``quiet``, a warning about them (a missing CJK font) is printed as well."""
    folder = Path(folder)
    return _render(folder, *load_run(folder), chinese, quiet)


def _render(
    folder: Path, manifest: dict, tables: dict[str, pd.DataFrame], chinese: bool, quiet: bool
) -> Path:
    """Draw the figures and write the page of a run's checked manifest and tables to ``folder``:
    the page's text first, so that a saved value it cannot read (in a folder edited by hand)
    fails before any figure is drawn."""
    default_name = Path(manifest["config_file"]).stem  # a run's name when the config gives none
    name = manifest["config"].get("run", {}).get("name", default_name)
    parts = [f"<h1>nqpf_sens: {html.escape(str(name))}</h1>"]
    about = _about(manifest, tables)
    if about:
        parts.append("<h2>About this run</h2>" + _rows_table(about))
    items = [
        f"<li class='{'warning' if warning else 'finding'}'>{html.escape(line)}</li>"
        for line, warning in reading(manifest, tables)
    ]
    parts.append("<h2>Reading</h2><ul class='reading'>" + "".join(items) + "</ul>")
    parts.append("<h2>What was run</h2>" + _run_description(manifest, tables))
    warnings_at = len(parts)  # the figures' warnings, once they are drawn
    if "paper_comparison" in tables:
        comparison = tables["paper_comparison"]
        title = ((manifest.get("about") or {}).get("comparison") or {}).get("title")
        parts.append(
            f"<h2>{html.escape(title or 'Reproduction of the published scores and ranks')}</h2>"
            + _table(comparison.assign(difference=comparison.difference.round(3)))
        )
    baseline = tables["baseline_scores"]
    by_rank = [c for c in ("year", "rank", "unit") if c in baseline]
    parts.append(
        "<h2>Baseline scores</h2>" + _table(baseline.sort_values(by_rank, ignore_index=True))
    )
    if "correlations" in tables:  # the flagged pairs only: the full matrix is in the CSV
        pairs = tables["correlations"]
        shown = {**tables, "correlations": pairs[pairs.flag.fillna("") != ""]}
    else:
        shown = tables
    for name, title in (
        ("indicator_statistics", "Statistical coherence: the indicators (raw data)"),
        ("correlations", "Statistical coherence: flagged correlations (weak, negative, redundant)"),
        ("cronbach", "Statistical coherence: Cronbach's alpha of each aggregate"),
        ("pca_variance", "Statistical coherence: principal components of each aggregate"),
        ("importance", "Importance against weights (correlation ratio, Paruolo et al. 2013)"),
        ("importance_divergence", "Importance against weights: divergence per level"),
        ("optimal_weights_summary", "Weights that would give each part its target influence"),
        ("optimal_weights", "Optimised weights, node by node (influence: Pearson r share)"),
        ("rank_stability", "Rank stability"),
        ("tier_bands", "Tiers and score bands"),
        ("region_bands", "Regions"),
        ("quadrants", "Quadrants"),
        ("rank_shift", "Rank shift"),
        ("rank_agreement", "Rank agreement with the nominal ranking"),
        ("what_if", "What if one part were left out (one at a time)"),
        ("one_at_a_time_summary", "What if one choice changed alone (R_S: mean |rank shift|)"),
        ("rank_bounds", "Best and worst rank over all admissible weights (exact)"),
        ("sobol_summary", "Sobol indices: summary"),
        ("sobol_outputs", "Sobol indices: which outputs can be read"),
    ):
        single = baseline.unit.nunique() == 1 and name in ("rank_stability", "rank_shift")
        if name in shown and not single:  # one unit: its rank is 1 in every scenario
            parts.append(f"<h2>{title}</h2>" + _table(shown[name]))
    figures, warnings = make_figures(folder, manifest, tables, chinese)
    if not quiet:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    parts[warnings_at:warnings_at] = [
        f'<p class="warning">{html.escape(warning)}</p>' for warning in warnings
    ]
    if figures:
        parts.append(
            "<h2>Figures</h2>" + "".join(_image(path, caption) for path, caption in figures)
        )
    if "glossary" in tables:
        parts.append("<h2>Glossary: every column of the tables</h2>" + _table(tables["glossary"]))
    head = (
        "<meta charset='utf-8'><title>nqpf_sens report</title>"
        f"<script>{ERROR_TRAP}</script><style>{STYLE}</style>"
    )
    body = f"{''.join(parts)}<script>{SORT_SCRIPT}</script>"
    page = f"<!DOCTYPE html><html lang='en'><head>{head}</head><body>{body}</body></html>"
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def rebuild_report(folder: str | Path, chinese: bool = False, quiet: bool = False) -> Path:
    """The ``report`` command: redraw a finished run's figures and report without touching it
    until the new version is complete. Its saved files are checked first, then copied with the
    new figures and report into a staging folder that replaces the run's folder as a run does;
    all under the folder's lock, so that no run publishes there between the reading and the
    publication (the copies would be that run's files under the digests read before)."""
    folder = Path(folder)
    try:
        if not folder.is_dir():
            raise UserError("no such folder", folder)
        folder = check_destination(folder, given_as="", carried=_kept_files(folder))
        with destination_lock(folder):
            manifest, tables, carried = _saved_run(folder)
            try:
                with staged_directory(folder, carried) as staging:
                    for name in carried:
                        (staging / name).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(folder / name, staging / name)
                    _render(staging, manifest, tables, chinese, quiet)
            except OSError as exc:  # a full disk, say: the run's folder is as it was
                raise UserError(system_problem(exc), exc.filename or folder) from None
    except OSError as exc:  # a name too long, a folder or file the user may not read
        raise UserError(f"cannot be read ({exc.strerror})", exc.filename or folder) from None
    except WorkerDied as died:  # a figure's worker, killed: the run's folder is as it was
        raise UserError(f"{died}; the folder is as it was", folder) from None
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        # what load_run's checks let through: values no run writes, in a hand-edited folder
        raise UserError(
            f"the saved files hold what no run writes (edited by hand?): {type(exc).__name__}: "
            f"{exc}; run the config again",
            folder,
        ) from None
    return folder / "report.html"


def _kept_files(folder: Path) -> list[str]:
    """The files of a finished run that ``report`` copies as they are: all but the figures and
    the page it draws anew."""
    listed = result_files(folder)
    if listed is None:
        raise UserError("not a complete run (no nqpf_sens marker file)", folder)
    return [n for n in listed if not n.startswith("figures/") and n != "report.html"]


def _saved_run(folder: Path) -> tuple[dict, dict, dict[str, str]]:
    """A finished run's manifest and tables, checked again under the lock, and the files to
    carry with the digests recorded when they were written."""
    kept = _kept_files(folder)
    check_replaceable(folder, kept)
    manifest, tables = load_run(folder)
    for name in kept:
        if os.path.islink(folder / name) or not (folder / name).is_file():
            raise UserError(
                f"lists '{name}', which is missing or not a regular file; run the config again",
                folder,
            )
    recorded = result_digests(folder) or {}  # (none: check_replaceable refused it)
    return manifest, tables, {name: recorded[name] for name in kept}
