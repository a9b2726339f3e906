"""A finished run's saved files, read and checked before anything is drawn from them.

A damaged or hand-edited folder gets one line naming the file and what is wrong, never a traceback.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

from nqpf_sens.errors import UserError

NUMBER, TEXT = "number", "text"
#: the columns the figures and the report read, per saved table
COLUMNS: dict[str, dict[str, str]] = {
    "baseline_scores": {"unit": TEXT, "total": NUMBER, "rank": NUMBER, "tier": NUMBER},
    "paper_comparison": {
        "unit": TEXT,
        "output": TEXT,
        "paper": NUMBER,
        "reproduced": NUMBER,
        "difference": NUMBER,
    },
    "unit_attributes": {"unit": TEXT},
    "glossary": {"column": TEXT, "meaning": TEXT},
    "rank_stability": {
        "unit": TEXT,
        "nominal_rank": NUMBER,
        "median_rank": NUMBER,
        "p05_rank": NUMBER,
        "p95_rank": NUMBER,
        "scenarios": NUMBER,
    },
    "tier_bands": {
        "unit": TEXT,
        "nominal_tier": NUMBER,
        "nominal_rank": NUMBER,
        "most_likely_tier": NUMBER,
        "p_nominal_tier": NUMBER,
        "total_nominal": NUMBER,
        "total_median": NUMBER,
        "total_p05": NUMBER,
        "total_p95": NUMBER,
    },
    "region_bands": {
        "region": TEXT,
        "nominal_mean": NUMBER,
        "median": NUMBER,
        "p05": NUMBER,
        "p95": NUMBER,
        "p_paper_order": NUMBER,
    },
    "quadrants": {"unit": TEXT},
    "rank_shift": {"statistic": TEXT, "value": NUMBER},
    "what_if": {
        "change": TEXT,
        "unit": TEXT,
        "nominal_rank": NUMBER,
        "rank": NUMBER,
        "shift": NUMBER,
    },
    "indicator_statistics": {
        "indicator": TEXT,
        "skewness": NUMBER,
        "kurtosis": NUMBER,
        "outlier_flag": TEXT,
    },
    "correlations": {
        "level": NUMBER,
        "node_a": TEXT,
        "node_b": TEXT,
        "kind": TEXT,
        "r": NUMBER,
        "flag": TEXT,
        "method": TEXT,
    },
    "cronbach": {"node": TEXT, "alpha_children": NUMBER, "alpha_indicators": NUMBER},
    "pca_variance": {"node": TEXT, "component": NUMBER, "eigenvalue": NUMBER, "share": NUMBER},
    "importance": {
        "level": NUMBER,
        "node": TEXT,
        "parent": TEXT,
        "eta2": NUMBER,
        "eta2_low": NUMBER,
        "eta2_high": NUMBER,
        "importance_share": NUMBER,
        "importance_share_low": NUMBER,
        "importance_share_high": NUMBER,
        "nominal_share": NUMBER,
        "effective_share": NUMBER,
        "units": NUMBER,
        "confidence": NUMBER,
    },
    "importance_divergence": {"level": NUMBER, "mean_abs_difference": NUMBER},
    "optimal_weights": {
        "level": NUMBER,
        "node": TEXT,
        "parent": TEXT,
        "nominal_weight": NUMBER,
        "optimised_weight": NUMBER,
        "target_share": NUMBER,
        "nominal_influence_share": NUMBER,
        "optimised_influence_share": NUMBER,
        "at_bound": TEXT,
    },
    "optimal_weights_summary": {
        "level": NUMBER,
        "target": TEXT,
        "nominal_distance": NUMBER,
        "optimised_distance": NUMBER,
        "largest_weight_change": NUMBER,
        "mean_rank_shift": NUMBER,
    },
    "one_at_a_time": {
        "change": TEXT,
        "unit": TEXT,
        "nominal_rank": NUMBER,
        "rank": NUMBER,
        "shift": NUMBER,
    },
    "one_at_a_time_summary": {
        "change": TEXT,
        "mean_abs_shift": NUMBER,
        "max_abs_shift": NUMBER,
        "spearman": NUMBER,
    },
    "rank_bounds": {
        "unit": TEXT,
        "nominal_rank": NUMBER,
        "best_rank": NUMBER,
        "worst_rank": NUMBER,
    },
    "rank_agreement": {
        "spearman_median": NUMBER,
        "kendall_median": NUMBER,
        "share_nominal_rank_in_p05_p95": NUMBER,
        "scenarios": NUMBER,
    },
    "convergence": {
        "scenarios": NUMBER,
        "statistic": TEXT,
        "item": TEXT,
        "value": NUMBER,
        "standard_error": NUMBER,
    },
    "sobol_indices": {
        "output": TEXT,
        "factor": TEXT,
        "S1": NUMBER,
        "S1_low": NUMBER,
        "S1_high": NUMBER,
        "ST": NUMBER,
        "ST_low": NUMBER,
        "ST_high": NUMBER,
        "output_sd": NUMBER,
        "reliable": TEXT,
    },
    "sobol_summary": {
        "factor": TEXT,
        "S1_rank_shift": NUMBER,
        "ST_rank_shift": NUMBER,
        "ST_rank_shift_low": NUMBER,
        "ST_rank_shift_high": NUMBER,
        "ST_ranks": NUMBER,
        "ST_ranks_low": NUMBER,
        "ST_ranks_high": NUMBER,
        "max_ST_ranks": NUMBER,
        "max_ST_high_ranks": NUMBER,
        "units_where_top": NUMBER,
    },
    "sobol_outputs": {
        "output": TEXT,
        "output_sd": NUMBER,
        "sum_S1": NUMBER,
        "interaction_share": NUMBER,
        "reliable": TEXT,
    },
}
#: columns that hold names (of units, indicators, factors, ...) wherever they appear: read as
#: written, so that a unit '01' or a factor '1e3' is not shown as the number 1 or 1000.0
NAME_COLUMNS = frozenset(
    {
        "unit",
        "unit_zh",
        "region",
        "indicator",
        "node",
        "node_a",
        "node_b",
        "parent",
        "child",
        "furthest",
        "factor",
        "output",
        "item",
        "change",
        "statistic",
        "column",
    }
)
REQUIRED_TABLES = {
    "baseline": ("baseline_scores",),
    "montecarlo": ("baseline_scores", "rank_stability", "tier_bands", "rank_shift", "convergence"),
    "sobol": (
        "baseline_scores",
        "rank_stability",
        "tier_bands",
        "rank_shift",
        "convergence",
        "sobol_indices",
        "sobol_summary",
    ),
}
MANIFEST_KEYS: dict[str, type | tuple[type, ...]] = {
    "config": dict,
    "config_file": str,
    "kind": str,
    "seed": int,
    "jobs": int,
    "scenarios": int,
    "wall_seconds": (int, float),
    "versions": dict,
    "dimensions": list,
    "notes": list,
    "convergence": dict,
}
SHIFT_STATISTICS = ("rank_shift_mean", "share_within_3")
#: what no input cell may hold, so no run writes (engine.cells refuses it in the input files)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\ufffe\uffff]")


def load_run(folder: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The manifest and tables of a finished run, every one checked before anything is drawn."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise UserError("not a complete run (no manifest.json)", folder)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"damaged manifest ({type(exc).__name__}); run the config again", manifest_path
        ) from None
    except RecursionError:  # json parses nested arrays and objects by recursion
        raise UserError(
            "damaged manifest (nested too deeply to read); run the config again", manifest_path
        ) from None
    if not isinstance(manifest, dict):
        raise UserError("damaged manifest (not a JSON object); run the config again", manifest_path)
    for key, kind in MANIFEST_KEYS.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            raise UserError(
                f"damaged manifest: '{key}' is missing or of the wrong type; run the config again",
                manifest_path,
            )
    if manifest["kind"] not in REQUIRED_TABLES:
        raise UserError(f"damaged manifest: unknown kind {manifest['kind']!r}", manifest_path)
    config = manifest["config"]
    shapes = {"run": dict, "outputs": dict, "pipeline": dict, "factors": list}
    if any(not isinstance(config.get(key, kind()), kind) for key, kind in shapes.items()):
        raise UserError("damaged manifest: its config is not a run config", manifest_path)
    interval, focus = (
        config.get("outputs", {}).get("interval", 0.9),
        config.get("outputs", {}).get("focus_unit", ""),
    )
    factors_ok = all(isinstance(f, dict) for f in config.get("factors", []))
    verdict = manifest["convergence"]
    warnings_ok = all(isinstance(w, str) for w in verdict.get("warnings", [])) and isinstance(
        verdict.get("rank_error_target", 0.5), (int, float)
    )
    if not (
        isinstance(interval, (int, float)) and isinstance(focus, str) and factors_ok and warnings_ok
    ):
        raise UserError("damaged manifest: its config is not a run config", manifest_path)
    tables = {}
    for name in REQUIRED_TABLES[manifest["kind"]]:
        if not (folder / f"{name}.csv").is_file():
            raise UserError(f"missing {name}.csv; run the config again", folder)
    for name in sorted(COLUMNS):  # by name: a folder that cannot be listed would look empty
        path = folder / f"{name}.csv"
        if path.is_file():
            tables[name] = _read_table(path)
    if "rank_shift" in tables and not set(SHIFT_STATISTICS) <= set(tables["rank_shift"].statistic):
        raise UserError(
            f"damaged table: the statistics {', '.join(SHIFT_STATISTICS)} are missing",
            folder / "rank_shift.csv",
        )
    if manifest["scenarios"] < 0:
        raise UserError("damaged manifest: a negative number of scenarios", manifest_path)
    problem = _impossible_design(manifest.get("design"))
    if problem:
        raise UserError(f"edited manifest: {problem}; run the config again", manifest_path)
    wrong = _wrong_about(manifest.get("about"))
    if wrong:
        raise UserError(
            f"damaged manifest: {wrong} is of the wrong type; run the config again", manifest_path
        )
    baseline, bands = tables["baseline_scores"], tables.get("tier_bands")
    units = set(baseline.unit)
    nodes = set(baseline.columns) - {"unit", "unit_zh", "year", "total", "rank", "tier"}
    n_tiers = 0 if bands is None else sum(bool(re.match(r"p_tier_\d+$", c)) for c in bands)
    for name, frame in tables.items():
        problem = _impossible(name, frame, units, nodes, n_tiers)
        if problem:
            raise UserError(
                f"edited table: {problem}; run the config again", folder / f"{name}.csv"
            )
    return manifest, tables


def _impossible_design(design: object) -> str | None:
    """What no run records of its design: a share outside (0, 1), a sample size below 1."""
    if not isinstance(design, dict):
        return None
    for key in ("interval", "confidence"):
        value = design.get(key, 0.5)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 < value < 1:
            return f"design {key} {value:g} is not a share in (0, 1)"
    for key, least in (("n", 1), ("bootstrap", 0)):
        value = design.get(key, least)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < least:
            return f"design {key} {value:g} is below {least}"
    return None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object) -> bool:
    return isinstance(value, str)


def _list_of(test: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: isinstance(value, list) and all(test(item) for item in value)


def _record(**tests: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: (
        isinstance(value, dict) and all(test(value.get(key)) for key, test in tests.items())
    )


def _published(values: object) -> bool:
    """output -> [year, value], the value a finite number"""
    return isinstance(values, dict) and all(
        isinstance(pair, list)
        and len(pair) == 2
        and _whole(pair[0])
        and isinstance(pair[1], (int, float))
        and not isinstance(pair[1], bool)
        and math.isfinite(pair[1])
        for pair in values.values()
    )


#: what a manifest's ``about`` records for the page, each key optional
ABOUT: dict[str, Callable[[object], bool]] = {
    "index": _text,
    "values": _text,
    "shipped": lambda value: value is None or _text(value),
    "units": _whole,
    "indicators": _whole,
    "alternative_datasets": _whole,
    "levels": _list_of(_whole),
    "years": _list_of(lambda year: _whole(year) or _text(year)),
    "cells": lambda value: isinstance(value, dict) and all(map(_whole, value.values())),
    "regional_ordering": _record(label=_text, order=_list_of(_text)),
    "published": _record(label=_text, note=_text, values=_published),
    "comparison": _record(title=_text, summary=_text),
}


def _wrong_about(about: object) -> str | None:
    """The key of ``about`` that no run records as it is (the page would fail on it), or None."""
    if about is None:
        return None
    if not isinstance(about, dict):
        return "'about'"
    wrong = [key for key, test in ABOUT.items() if key in about and not test(about[key])]
    return f"'about.{wrong[0]}'" if wrong else None


#: a rank (a place, a percentile or mean of places), not a width or an error of one
RANK = re.compile(r"^(?!iqr_).*(^|_)rank(_low|_high)?$")
#: the units of a saved table appear once each (per year), as in the baseline scores
PER_UNIT = ("baseline_scores", "rank_stability", "tier_bands", "rank_bounds", "quadrants")


def _impossible(
    name: str, frame: pd.DataFrame, units: set[str], nodes: set[str], n_tiers: int
) -> str | None:
    """What no run writes, in a table a hand may have edited: a unit of no other table or twice,
    a rank beyond the ``units``, a probability outside [0, 1], a tier beyond the ``n_tiers`` (0:
    unknown), a negative count of scenarios. The page would state it as a finding. Columns named
    after an aggregate of ``nodes`` hold its scores, not statistics."""
    statistics = [  # not a node's scores, whose code may read as a statistic ('p_env')
        c for c in frame if not any(c == node or c.startswith(f"{node}_") for node in nodes)
    ]
    if "unit" in frame:
        unknown = set(frame.unit) - units
        if unknown:
            return f"unit {sorted(unknown)[0]!r} is in no other table"
        keys = ["year", "unit"] if "year" in frame else ["unit"]
        if name in PER_UNIT and frame.duplicated(keys).any():
            return f"unit {frame.unit[frame.duplicated(keys)].iloc[0]!r} appears twice"
    bounds = {c: (1, len(units)) for c in statistics if RANK.match(c)}
    bounds |= {c: (0, 1) for c in statistics if c.startswith("p_") and not c.endswith("_se")}
    bounds |= {c: (0, np.inf) for c in statistics if c == "scenarios" or c.endswith("_scenarios")}
    if n_tiers:
        tiers = ("tier", "nominal_tier", "most_likely_tier")
        bounds |= {c: (1, n_tiers) for c in tiers if c in statistics}
    for column, (low, high) in bounds.items():
        if not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = frame[column].to_numpy(dtype=float)
        outside = ~np.isnan(values) & ((values < low - 1e-9) | (values > high + 1e-9))
        if outside.any():
            return f"column '{column}' holds {values[outside][0]:g}, outside [{low}, {high:g}]"
    return None


def _read_table(path: Path) -> pd.DataFrame:
    """A saved table (names such as ``NA`` or ``01`` stay as written) with the columns the report
    reads."""
    try:
        text = NAME_COLUMNS | {c for c, kind in COLUMNS[path.stem].items() if kind == TEXT}
        frame = pd.read_csv(  # utf-8-sig: a table saved again by a spreadsheet starts with a BOM
            path,
            keep_default_na=False,
            na_values=[""],
            dtype=dict.fromkeys(text, str),
            encoding="utf-8-sig",
        )
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(
            f"damaged table ({type(exc).__name__}); run the config again", path
        ) from None
    if frame.empty:
        raise UserError("damaged table (no rows); run the config again", path)
    for column in frame.columns:  # text no run writes: it would make every SVG invalid
        cells = [] if is_numeric_dtype(frame[column]) else frame[column].dropna().astype(str)
        found = next((m for t in (str(column), *cells) if (m := CONTROL.search(t))), None)
        if found:
            raise UserError(
                f"edited table: a control character (U+{ord(found.group()):04X}) in column "
                f"'{column}'; run the config again",
                path,
            )
    for column, kind in COLUMNS[path.stem].items():
        if column not in frame:
            raise UserError(f"damaged table: no column '{column}'; run the config again", path)
        if kind == TEXT:
            frame[column] = frame[column].astype(str)
        elif not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(
            frame[column]
        ):
            raise UserError(
                f"damaged table: column '{column}' is not numeric; run the config again", path
            )
        elif np.isinf(frame[column]).any():  # a run writes NaN where a number is undefined
            raise UserError(
                f"damaged table: column '{column}' holds an infinite value; run the config again",
                path,
            )
    return frame
