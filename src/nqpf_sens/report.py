"""The figures and the self-contained ``report.html`` of a run, rebuilt from its saved files only.

The report embeds its figures (base64 PNG), needs no network, and opens from disk. Its reading of
the results is generated from the numbers; nothing in it is written about particular units.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
from pathlib import Path

import pandas as pd

from nqpf_sens import plots
from nqpf_sens.errors import UserError
from nqpf_sens.outputs import check_destination, destination_lock, result_files, staged_directory

ERROR_TRAP = "window.reportErrors = []; window.addEventListener('error', function (e) { window.reportErrors.push(String(e.message)); });"
SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], column = th.cellIndex;
    var rows = Array.prototype.slice.call(body.rows);
    var ascending = th.dataset.order !== 'asc';
    rows.sort(function (a, b) {
      var x = a.cells[column].textContent, y = b.cells[column].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var result = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return ascending ? result : -result;
    });
    th.dataset.order = ascending ? 'asc' : 'desc';
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.dataset.imagesLoaded = images.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imageCount = images.length;
  document.body.dataset.errors = window.reportErrors.length;
});
"""

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: .82em; margin: .6em 0; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; cursor: pointer; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
.scroll { max-height: 480px; overflow: auto; display: inline-block; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.reading li { margin: .3em 0; } .warning { color: #8a4b00; } code { background: #f5f5f5; padding: 0 .2em; }
"""


def _table(frame: pd.DataFrame, digits: int = 3) -> str:
    formatted = frame.copy()
    for column in formatted.columns:
        if pd.api.types.is_float_dtype(formatted[column]):
            formatted[column] = formatted[column].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}f}".rstrip("0").rstrip(".") if v != 0 else "0")
    return '<div class="scroll">' + formatted.to_html(index=False, classes="sortable", border=0, escape=True) + "</div>"


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'


NUMBER, TEXT = "number", "text"
#: the columns the figures and the report read, per saved table
COLUMNS: dict[str, dict[str, str]] = {
    "baseline_scores": {"unit": TEXT, "total": NUMBER, "rank": NUMBER, "tier": NUMBER},
    "paper_comparison": {"unit": TEXT, "output": TEXT, "paper": NUMBER, "reproduced": NUMBER, "difference": NUMBER},
    "unit_attributes": {"unit": TEXT},
    "rank_stability": {"unit": TEXT, "nominal_rank": NUMBER, "median_rank": NUMBER, "p05_rank": NUMBER, "p95_rank": NUMBER},
    "tier_bands": {"unit": TEXT, "nominal_tier": NUMBER, "nominal_rank": NUMBER, "most_likely_tier": NUMBER, "p_nominal_tier": NUMBER, "total_nominal": NUMBER, "total_median": NUMBER, "total_p05": NUMBER, "total_p95": NUMBER},
    "region_bands": {"region": TEXT, "nominal_mean": NUMBER, "median": NUMBER, "p05": NUMBER, "p95": NUMBER, "p_paper_order": NUMBER},
    "quadrants": {"unit": TEXT},
    "rank_shift": {"statistic": TEXT, "value": NUMBER},
    "convergence": {"scenarios": NUMBER, "statistic": TEXT, "item": TEXT, "value": NUMBER},
    "sobol_indices": {"output": TEXT, "factor": TEXT, "S1": NUMBER, "S1_conf": NUMBER, "ST": NUMBER, "ST_conf": NUMBER, "output_sd": NUMBER},
    "sobol_summary": {"factor": TEXT, "S1_rank_shift": NUMBER, "ST_rank_shift": NUMBER, "ST_rank_shift_conf": NUMBER, "max_ST_ranks": NUMBER, "units_where_top": NUMBER},
}
REQUIRED_TABLES = {
    "baseline": ("baseline_scores",),
    "montecarlo": ("baseline_scores", "rank_stability", "tier_bands", "rank_shift", "convergence"),
    "sobol": ("baseline_scores", "rank_stability", "tier_bands", "rank_shift", "convergence", "sobol_indices", "sobol_summary"),
}
MANIFEST_KEYS = {"config": dict, "config_file": str, "kind": str, "seed": int, "jobs": int, "scenarios": int, "wall_seconds": (int, float), "versions": dict, "dimensions": list, "notes": list, "convergence": dict}
SHIFT_STATISTICS = ("rank_shift_mean", "share_moving_less_than_3")


def load_run(folder: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The manifest and tables of a finished run, every one checked before anything is drawn."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise UserError("not a complete run (no manifest.json)", folder)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"damaged manifest ({type(exc).__name__}); run the config again", manifest_path) from None
    if not isinstance(manifest, dict):
        raise UserError("damaged manifest (not a JSON object); run the config again", manifest_path)
    for key, kind in MANIFEST_KEYS.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise UserError(f"damaged manifest: '{key}' is missing or of the wrong type; run the config again", manifest_path)
    if manifest["kind"] not in REQUIRED_TABLES:
        raise UserError(f"damaged manifest: unknown kind {manifest['kind']!r}", manifest_path)
    config = manifest["config"]
    shapes = {"run": dict, "outputs": dict, "pipeline": dict, "factors": list}
    if any(not isinstance(config.get(key, kind()), kind) for key, kind in shapes.items()):
        raise UserError("damaged manifest: its config is not a run config", manifest_path)
    interval, focus = config.get("outputs", {}).get("interval", 0.9), config.get("outputs", {}).get("focus_unit", "")
    factors_ok = all(isinstance(f, dict) for f in config.get("factors", []))
    warnings_ok = all(isinstance(w, str) for w in manifest["convergence"].get("warnings", []))
    if not (isinstance(interval, (int, float)) and isinstance(focus, str) and factors_ok and warnings_ok):
        raise UserError("damaged manifest: its config is not a run config", manifest_path)
    tables = {}
    for name in REQUIRED_TABLES[manifest["kind"]]:
        if not (folder / f"{name}.csv").is_file():
            raise UserError(f"missing {name}.csv; run the config again", folder)
    for path in sorted(folder.glob("*.csv")):
        if path.stem in COLUMNS:
            tables[path.stem] = _read_table(path)
    if "rank_shift" in tables and not set(SHIFT_STATISTICS) <= set(tables["rank_shift"].statistic):
        raise UserError(f"damaged table: the statistics {', '.join(SHIFT_STATISTICS)} are missing", folder / "rank_shift.csv")
    return manifest, tables


def _read_table(path: Path) -> pd.DataFrame:
    """A saved table (unit names such as ``NA`` stay names) with the columns the report reads."""
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"damaged table ({type(exc).__name__}); run the config again", path) from None
    if frame.empty:
        raise UserError("damaged table (no rows); run the config again", path)
    for column, kind in COLUMNS[path.stem].items():
        if column not in frame:
            raise UserError(f"damaged table: no column '{column}'; run the config again", path)
        if kind == TEXT:
            frame[column] = frame[column].astype(str)
        elif not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            raise UserError(f"damaged table: column '{column}' is not numeric; run the config again", path)
    return frame


def unit_labels(tables: dict[str, pd.DataFrame], chinese: bool) -> tuple[dict[str, str], str | None]:
    use_chinese, warning = plots.label_font(chinese)
    attributes = tables.get("unit_attributes")
    if use_chinese and attributes is not None and "unit_zh" in attributes:
        return dict(zip(attributes.unit, attributes.unit_zh)), warning
    return {}, warning


def make_figures(folder: Path, manifest: dict, tables: dict[str, pd.DataFrame], chinese: bool) -> tuple[list[tuple[Path, str]], list[str]]:
    """Draw every figure the saved tables allow; returns (png, caption) pairs and warnings."""
    target = folder / "figures"
    labels, warning = unit_labels(tables, chinese)
    warnings = [warning] if warning else []
    interval = f"{100 * manifest['config'].get('outputs', {}).get('interval', 0.9):g}%"
    drawn: list[tuple[Path, str]] = []
    stability, bands = tables.get("rank_stability"), tables.get("tier_bands")
    multi_year = bands is not None and "year" in bands and bands.year.nunique() > 1
    if stability is not None and not multi_year:
        drawn.append((plots.rank_intervals(stability, labels, "5th-95th percentile", target / "rank_intervals"), f"Rank intervals: nominal rank, median rank and 5th-95th percentile ({interval} configured) per unit, sorted by nominal rank."))
    aggregates = ["total"] + [d for d in manifest.get("dimensions", []) if bands is not None and f"{d}_median" in bands]
    if bands is not None and not multi_year:
        drawn.append((plots.tier_probabilities(bands, labels, target / "tier_probabilities"), "Probability of each tier; the nominal tier is outlined."))
        drawn.append((plots.score_bands(bands, aggregates, labels, target / "score_bands"), "Index and sub-index scores: nominal, median and 5th-95th percentile."))
        attributes = tables.get("unit_attributes")
        if attributes is not None and "gdp_per_capita" in attributes and attributes.gdp_per_capita.notna().any():
            drawn.append((plots.quadrant(bands, attributes.set_index("unit").gdp_per_capita, labels, target / "quadrant"), "The paper's Figure 3: index against GDP per capita with the index's 5th-95th percentile; units without GDP per capita are left out."))
    if multi_year:
        drawn.append((plots.trajectory(bands, aggregates, target / "trajectory"), "Trajectory of the index and sub-indices with the 5th-95th percentile band."))
    indices = tables.get("sobol_indices")
    if indices is not None:
        drawn.append((plots.sobol_bars(indices, "rank_shift", "Sobol indices of the mean rank shift R_S", target / "sobol_rank_shift"), "First- and total-order Sobol indices of the mean absolute rank shift, with bootstrap confidence intervals."))
        focus = manifest["config"].get("outputs", {}).get("focus_unit") or (stability.sort_values("nominal_rank").unit.iloc[0] if stability is not None else None)
        if focus is not None and f"rank:{focus}" in set(indices.output):
            drawn.append((plots.sobol_bars(indices, f"rank:{focus}", f"Sobol indices of the rank of {labels.get(focus, focus)}", target / "sobol_focus_unit"), f"Sobol indices of the rank of {focus}."))
        order = stability.sort_values("nominal_rank").unit.tolist() if stability is not None else None
        drawn.append((plots.sobol_heatmap(indices, order, labels, target / "sobol_heatmap"), "Total-order index of each unit's rank for each factor."))
    if "convergence" in tables:
        drawn.append((plots.convergence(tables["convergence"], target / "convergence"), "Main statistics against the number of scenarios: flat lines mean N was enough."))
    return drawn, warnings


def reading(manifest: dict, tables: dict[str, pd.DataFrame]) -> list[tuple[str, bool]]:
    """Plain-language findings generated from the numbers: (plain text, is a warning) pairs; the
    page escapes them, since unit and factor names are the user's text."""
    lines = []
    if "paper_comparison" in tables:
        from nqpf_sens.paper import paper_summary

        lines.append(paper_summary(tables["paper_comparison"]) + ".")
    bands = tables.get("tier_bands")
    if bands is not None and ("year" not in bands or bands.year.nunique() == 1):
        robust = bands[bands.p_nominal_tier >= 0.9]
        fragile = bands[bands.p_nominal_tier < 0.9].sort_values("p_nominal_tier")
        lines.append(f"{len(robust)} of {len(bands)} units keep their nominal tier in at least 90% of scenarios" + (f": {', '.join(robust.unit)}." if 0 < len(robust) <= 12 else "."))
        if len(fragile):
            described = [f"{r.unit} (tier {r.nominal_tier} in {100 * r.p_nominal_tier:.0f}%, most likely tier {r.most_likely_tier})" for r in fragile.head(8).itertuples()]
            lines.append(f"{len(fragile)} units' tiers are not robust at 90%; the least robust: " + "; ".join(described) + ".")
    stability = tables.get("rank_stability")
    if stability is not None and ("year" not in stability or stability.year.nunique() == 1):
        width = stability.p95_rank - stability.p05_rank
        widest = stability.loc[width.idxmax()]
        lines.append(f"The widest 5th-95th percentile rank interval is {widest.unit}'s ({int(widest.p05_rank)}-{int(widest.p95_rank)}, nominal {int(widest.nominal_rank)}); {int((width <= 2).sum())} units stay within an interval of at most 2 places.")
    shift = tables.get("rank_shift")
    if shift is not None:
        values = shift.set_index("statistic").value
        lines.append(f"On average a unit moves {values['rank_shift_mean']:.2f} places from its nominal rank (R_S); {100 * values['share_moving_less_than_3']:.0f}% of units move fewer than 3 places.")
    regions = tables.get("region_bands")
    if regions is not None and regions.p_paper_order.notna().any():
        lines.append(f"The paper's regional ordering East > Central > West > Northeast holds in {100 * regions.p_paper_order.iloc[0]:.0f}% of scenarios.")
    summary = tables.get("sobol_summary")
    if summary is not None:
        top = summary.sort_values("ST_rank_shift", ascending=False).iloc[0]
        most = summary.sort_values("units_where_top", ascending=False).iloc[0]
        lines.append(f"'{top.factor}' explains most of the variance of the mean rank shift (ST = {top.ST_rank_shift:.2f} +/- {top.ST_rank_shift_conf:.2f}, S1 = {top.S1_rank_shift:.2f}); '{most.factor}' is the largest driver of {int(most.units_where_top)} units' ranks.")
        inert = summary[summary.max_ST_ranks < 0.05].factor.tolist()
        if inert:
            lines.append(f"Factors that barely matter for any unit (ST < 0.05): {', '.join(inert)}.")
    findings = [(line, False) for line in lines]
    convergence = manifest.get("convergence", {})
    for warning in convergence.get("warnings", []):
        findings.append((f"Convergence: {warning}; consider n = {convergence.get('recommended_n')}.", True))
    if convergence and not convergence.get("warnings"):
        findings.append((f"Convergence: the first half of the sample and the whole agree (rank quantiles within a place, top factors' ST within the tolerance), so n = {convergence.get('n')} was enough.", False))
    return findings


def _run_description(manifest: dict) -> str:
    config = manifest["config"]
    factors = pd.DataFrame(config.get("factors", []))
    keep = [c for c in ("name", "kind", "key", "options", "level", "distribution", "spread", "concentration", "cells", "description") if c in factors]
    rows = [("config", manifest["config_file"]), ("kind", manifest["kind"]), ("seed", manifest["seed"]), ("scenarios", f"{manifest['scenarios']:,}"), ("wall time", f"{manifest['wall_seconds']:.1f} s"), ("workers", manifest["jobs"]), ("versions", ", ".join(f"{k} {v}" for k, v in manifest["versions"].items()))]
    head = "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>"
    pipeline = config.get("pipeline", {})
    head += "<p>Nominal pipeline: " + (", ".join(f"<code>{html.escape(k)} = {html.escape(str(v))}</code>" for k, v in pipeline.items()) or "the defaults (the paper's method)") + "</p>"
    if keep:
        head += "<h3>Uncertain factors</h3>" + _table(factors[keep].astype(object).where(factors[keep].notna(), "").astype(str))
    return head


def build_report(folder: str | Path, chinese: bool = False) -> Path:
    """Draw ``figures/`` and write ``report.html`` into a run's folder from its saved files."""
    folder = Path(folder)
    return _render(folder, *load_run(folder), chinese)


def _render(folder: Path, manifest: dict, tables: dict[str, pd.DataFrame], chinese: bool) -> Path:
    """Draw the figures and write the page of a run's checked manifest and tables into ``folder``."""
    figures, warnings = make_figures(folder, manifest, tables, chinese)
    name = manifest["config"].get("run", {}).get("name", Path(manifest["config_file"]).stem)  # the run's default name
    parts = [f"<h1>nqpf_sens: {html.escape(str(name))}</h1>"]
    items = [f"<li class='{'warning' if warning else 'finding'}'>{html.escape(line)}</li>" for line, warning in reading(manifest, tables)]
    parts.append("<h2>Reading</h2><ul class='reading'>" + "".join(items) + "</ul>")
    parts.append("<h2>What was run</h2>" + _run_description(manifest))
    for warning in warnings:
        parts.append(f'<p class="warning">{html.escape(warning)}</p>')
    if "paper_comparison" in tables:
        comparison = tables["paper_comparison"]
        parts.append("<h2>Reproduction of the paper's Table 3</h2>" + _table(comparison.assign(difference=comparison.difference.round(3))))
    parts.append("<h2>Baseline scores</h2>" + _table(tables["baseline_scores"]))
    for name, title in (("rank_stability", "Rank stability"), ("tier_bands", "Tiers and score bands"), ("region_bands", "Regions"), ("quadrants", "Quadrants"), ("rank_shift", "Rank shift"), ("sobol_summary", "Sobol indices: summary")):
        if name in tables:
            parts.append(f"<h2>{title}</h2>" + _table(tables[name]))
    if figures:
        parts.append("<h2>Figures</h2>" + "".join(_image(path, caption) for path, caption in figures))
    page = f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>nqpf_sens report</title><script>{ERROR_TRAP}</script><style>{STYLE}</style></head><body>{''.join(parts)}<script>{SORT_SCRIPT}</script></body></html>"
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def rebuild_report(folder: str | Path, chinese: bool = False) -> Path:
    """The ``report`` command: redraw a finished run's figures and report without touching it
    until the new version is complete. Its saved files are checked first, then copied with the
    new figures and report into a staging folder that replaces the run's folder as a run does."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("no such folder", folder)
    listed = result_files(folder)
    if listed is None:
        raise UserError("not a complete run (no nqpf_sens marker file)", folder)
    folder = check_destination(folder)
    manifest, tables = load_run(folder)
    keep = [name for name in listed if not name.startswith("figures/") and name != "report.html"]
    with destination_lock(folder), staged_directory(folder) as staging:
        for name in keep:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / name, staging / name)
        _render(staging, manifest, tables, chinese)
    return folder / "report.html"
