"""Run configuration: a TOML file read into plain dataclasses, every key checked with a one-line
error."""

from __future__ import annotations

import copy
import difflib
import math
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nqpf_sens.audit.optimal_weights import TARGETS
from nqpf_sens.engine.cells import control_character, not_a_file
from nqpf_sens.engine.pipeline import Pipeline
from nqpf_sens.engine.rank import TIES, TierRule
from nqpf_sens.errors import UserError, quoted
from nqpf_sens.outputs import check_run_name

_NUMBER = (int, float)

#: section -> key -> accepted Python types of the TOML value
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "run": {
        "name": (str,),
        "kind": (str,),
        "seed": (int,),
        "jobs": (int,),
        "chunk_size": (int,),
        "backend": (str,),
        "scheduler": (str,),
    },
    "data": {
        "metadata": (str,),
        "values": (str,),
        "year": (int,),
        "compare_with_paper": (bool,),
        "alternatives": (list,),
        "units": (str,),
        "unit_column": (str,),
        "year_column": (str,),
        "allow_empty_units": (bool,),
        "shipped": (str,),
    },
    "pipeline": {
        "imputation": (str,),
        "imputation_fallback": (str,),
        "imputation_group": (str,),
        "denominate": (bool,),
        "transformation": (str,),
        "transform_target": (str,),
        "winsor_limit": _NUMBER,
        "winsor_max": (int,),
        "skew_threshold": _NUMBER,
        "kurtosis_threshold": _NUMBER,
        "treat_fallback": (str,),
        "force_winsorise": (bool,),
        "boxcox_lambda": _NUMBER,
        "normalisation": (str,),
        "minmax_range": (list,),
        "zscore_scale": (list,),
        "zscore_ddof": (int,),
        "reference_unit": (str,),
        "distance_scale": _NUMBER,
        "base_year": (int,),
        "aggregation": (str, list),
        "nonpositive": (str,),
        "mean_shift": _NUMBER,
        "power": _NUMBER,
        "data_threshold": (*_NUMBER, list),
        "weighting": (str,),
        "ties": (str,),
    },
    "tiers": {"scheme": (str,), "bounds": (list,), "thresholds": (list,), "classes": (int,)},
    "sampling": {"n": (int,), "method": (str,), "bootstrap": (int,), "confidence": _NUMBER},
    "outputs": {
        "interval": _NUMBER,
        "within": (int,),
        "top": (int,),
        "convergence_tolerance": _NUMBER,
        "focus_unit": (str,),
        "labels": (str,),
        "figures": (bool,),
        "svg": (bool,),
    },
    "audit": {
        "coherence": (bool,),
        "importance": (bool,),
        "what_if": (bool,),
        "rank_bounds": (bool,),
        "optimal_weights": (str,),
        "bootstrap": (int,),
        "confidence": _NUMBER,
    },
}
FACTOR_KEYS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "kind": (str,),
    "key": (str,),
    "options": (list,),
    "probabilities": (list,),
    "level": (int,),
    "distribution": (str,),
    "spread": _NUMBER,
    "spread_by_status": (dict,),
    "concentration": _NUMBER,
    "cells": (int,),
    "count": (int,),
    "description": (str,),
    "group": (str,),
}
#: key -> accepted types of each element of a list value
LIST_ITEMS: dict[str, tuple[type, ...]] = {
    "alternatives": (str,),
    "aggregation": (str,),
    "bounds": (int,),
    "thresholds": _NUMBER,
    "minmax_range": _NUMBER,
    "zscore_scale": _NUMBER,
    "data_threshold": _NUMBER,
    "probabilities": _NUMBER,
    "options": (str, int, float, list),
}
#: key -> accepted types of each value of a table value (its keys are labels, any text)
TABLE_ITEMS: dict[str, tuple[type, ...]] = {"spread_by_status": _NUMBER}
MAX_JOBS = 1024
MAX_BOOTSTRAP = 100_000  # resamples of a few dozen units: more cannot change an interval
IN_MEMORY = "<config dict>"  # the file name errors give for a config built in code
DEFAULT_NAME = "run"  # the run name of a config built in code that gives none
KINDS = ("baseline", "montecarlo", "sobol")
BACKENDS = ("auto", "threading", "fork", "loky", "dask")


@dataclass(frozen=True)
class DataConfig:
    metadata: Path | None = None
    values: Path | None = None
    year: int | None = None
    compare_with_paper: bool = False
    allow_empty_units: bool = False
    alternatives: tuple[Path, ...] = ()
    units: Path | None = None
    unit_column: str = "unit"
    year_column: str = "year"
    shipped: str = "provinces"


@dataclass(frozen=True)
class SamplingConfig:
    n: int = 1024
    method: str = "random"
    bootstrap: int = 200
    confidence: float = 0.95


@dataclass(frozen=True)
class OutputConfig:
    interval: float = 0.90
    within: int = 3
    top: int = 5
    convergence_tolerance: float = 0.10
    chinese_labels: bool = False
    figures: bool = True
    svg: bool = False


@dataclass(frozen=True)
class AuditConfig:
    """Which audit steps run where they apply (see the README's "Audit" section), and the
    bootstrap behind the importance intervals."""

    coherence: bool = True
    importance: bool = True
    what_if: bool = True
    rank_bounds: bool = True
    optimal_weights: str = "none"
    bootstrap: int = 200
    confidence: float = 0.95


@dataclass(frozen=True)
class RunConfig:
    path: Path
    raw: dict[str, Any]
    name: str
    kind: str = "baseline"
    seed: int = 0
    jobs: int = 1
    chunk_size: int | None = None  # None: the study's default (uncertainty.study)
    backend: str = "auto"
    scheduler: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    pipeline: Pipeline = field(default_factory=Pipeline)
    ties: str = "min"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    outputs: OutputConfig = field(default_factory=OutputConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    factors: tuple[dict[str, Any], ...] = ()


def _check_value(value: Any, types: tuple[type, ...], path: Path, where: str) -> None:
    if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
        raise UserError(f"expected {_type_name(types)}, got {_toml(value)}", path, where)
    key = where.split()[-1]
    if isinstance(value, list) and key in LIST_ITEMS:
        for k, item in enumerate(value, start=1):
            _check_value(item, LIST_ITEMS[key], path, f"{where} item {k}")
            if isinstance(item, list):  # an option per level of the tree: aggregation methods
                for level, method in enumerate(item, start=1):
                    _check_value(method, (str,), path, f"{where} item {k} level {level}")
    if isinstance(value, dict) and key in TABLE_ITEMS:
        for label, item in value.items():
            _check_value(item, TABLE_ITEMS[key], path, f"{where} {label}")


def _toml(value: Any) -> str:
    """A value as it is written in TOML (how the user typed it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    if not isinstance(value, (int, float)):  # from Python: numpy's numbers, paths
        return f"{value} (a {type(value).__module__}.{type(value).__name__})"
    return str(value)


def _check_values(value: Any, path: Path, where: str) -> None:
    """Refuse nan, inf and integers beyond any float anywhere in a config (TOML allows them; no
    key means them), and text holding a control character (TOML allows "\\u0001"; no figure or
    report could show it)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"not a finite number: {value}", path, where)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:
        raise UserError("a number too large to compute with (beyond 1.8e308)", path, where)
    found = control_character(value) if isinstance(value, str) else None
    if found:
        raise UserError(f"a control character ({found})", path, where)
    if isinstance(value, list):
        for k, item in enumerate(value, start=1):
            _check_values(item, path, f"{where} item {k}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, path, f"{where} {key}")


def _check_factors(entries: Any, path: Path) -> None:
    if not isinstance(entries, list):
        raise UserError("factors are written as [[factors]] tables", path, "factors")
    for k, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise UserError("each [[factors]] entry is a table of keys", path, f"[[factors]] #{k}")
        for key, value in entry.items():
            where = f"[[factors]] #{k} {key}"
            if key not in FACTOR_KEYS:
                hint = difflib.get_close_matches(key, FACTOR_KEYS, n=1)
                raise UserError(
                    f"unknown key{f' (did you mean {hint[0]!r}?)' if hint else ''}", path, where
                )
            _check_value(value, FACTOR_KEYS[key], path, where)
        for required in ("name", "kind"):
            if required not in entry:
                raise UserError(f"missing key '{required}'", path, f"[[factors]] #{k}")


def _type_name(types: tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
        bool: "true or false",
    }
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _check_keys(raw: dict[str, Any], path: Path) -> None:
    for section, content in raw.items():
        if isinstance(content, list):
            for k, entry in enumerate(content, start=1):
                _check_values(entry, path, f"[[{section}]] #{k}")
        else:
            _check_values(content, path, f"[{section}]")
        if section == "factors":
            _check_factors(content, path)
            continue
        if section not in SCHEMA:
            hint = difflib.get_close_matches(section, [*SCHEMA, "factors"], n=1)
            raise UserError(
                f"unknown section{f' (did you mean [{hint[0]}]?)' if hint else ''}; "
                f"known: {', '.join(SCHEMA)}, [[factors]]",
                path,
                f"[{section}]",
            )
        if not isinstance(content, dict):
            raise UserError("must be a table of keys", path, f"[{section}]")
        for key, value in content.items():
            allowed = SCHEMA[section]
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                raise UserError(
                    f"unknown key{f' (did you mean {hint[0]!r}?)' if hint else ''}",
                    path,
                    f"[{section}] {key}",
                )
            _check_value(value, allowed[key], path, f"[{section}] {key}")


def _path(value: str | None, base: Path, config: Path, key: str) -> Path | None:
    return None if value is None else _resolved(value, base, config, key)


def _resolved(value: str, base: Path, config: Path, key: str) -> Path:
    """A path of the config, relative to its folder, resolved (or refused in one line: a loop of
    symbolic links, a name too long)."""
    try:
        return (base / value).resolve()
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(
            f"cannot be resolved ({reason}): {value}", config, f"[data] {key}"
        ) from None


def _tier_rule(section: dict[str, Any], path: Path) -> TierRule:
    try:
        return TierRule(
            scheme=section.get("scheme", "fixed_ranks"),
            bounds=tuple(int(b) for b in section.get("bounds", (2, 5))),
            thresholds=tuple(float(t) for t in section.get("thresholds", ())),
            classes=section.get("classes", 3),
        )
    except (TypeError, ValueError):
        raise UserError("bounds and thresholds must be lists of numbers", path, "[tiers]") from None


def pipeline_from(section: dict[str, Any], tiers: TierRule) -> Pipeline:
    """The nominal pipeline: the paper's choices, overridden by the config's ``[pipeline]`` keys."""
    options = {k: v for k, v in section.items() if k != "ties"}
    if isinstance(options.get("aggregation"), list):
        options["aggregation"] = tuple(options["aggregation"])
    for key in ("minmax_range", "zscore_scale"):
        if key in options:
            options[key] = tuple(float(v) for v in options[key])
    if options.get("imputation_fallback") == "none":
        options["imputation_fallback"] = None
    return Pipeline(**options, tiers=tiers)


def _sampling(section: dict[str, Any], kind: str, path: Path) -> SamplingConfig:
    method = section.get("method", "saltelli" if kind == "sobol" else "random")
    n = section.get("n", 1024)
    if kind == "sobol" and method != "saltelli":
        raise UserError("a sobol run uses the 'saltelli' design", path, "[sampling] method")
    if kind == "montecarlo" and method not in ("random", "sobol"):
        raise UserError(
            f"unknown method {method!r} for a montecarlo run (choose random or sobol)",
            path,
            "[sampling] method",
        )
    if n < 2:
        raise UserError("must be at least 2", path, "[sampling] n")
    if kind == "sobol" and n & (n - 1):
        raise UserError(
            "must be a power of two for the Sobol design "
            f"(nearest: {1 << (n.bit_length() - 1)} or {1 << n.bit_length()})",
            path,
            "[sampling] n",
        )
    confidence = float(section.get("confidence", 0.95))
    if not 0 < confidence < 1:
        raise UserError("must be between 0 and 1", path, "[sampling] confidence")
    bootstrap = section.get("bootstrap", 200)
    if bootstrap < 10:
        raise UserError("must be at least 10", path, "[sampling] bootstrap")
    return SamplingConfig(n=n, method=method, bootstrap=bootstrap, confidence=confidence)


def _outputs(section: dict[str, Any], path: Path) -> OutputConfig:
    interval = float(section.get("interval", 0.90))
    if not 0 < interval < 1:
        raise UserError("must be between 0 and 1", path, "[outputs] interval")
    if section.get("within", 0) < 0:
        raise UserError("must not be negative", path, "[outputs] within")
    if section.get("top", 1) < 1:
        raise UserError(
            "must be at least 1 (the top places a unit may reach)", path, "[outputs] top"
        )
    tolerance = float(section.get("convergence_tolerance", 0.10))
    if not 0 < tolerance <= 1:
        raise UserError("must be in (0, 1]", path, "[outputs] convergence_tolerance")
    labels = section.get("labels", "en")
    if labels not in ("en", "zh"):
        raise UserError(f"unknown labels {labels!r} (choose en or zh)", path, "[outputs] labels")
    return OutputConfig(
        interval=interval,
        within=section.get("within", 3),
        top=section.get("top", 5),
        convergence_tolerance=tolerance,
        chinese_labels=labels == "zh",
        figures=section.get("figures", True),
        svg=section.get("svg", False),
    )


def _audit(section: dict[str, Any], path: Path) -> AuditConfig:
    confidence = float(section.get("confidence", 0.95))
    if not 0 < confidence < 1:
        raise UserError("must be between 0 and 1", path, "[audit] confidence")
    bootstrap = section.get("bootstrap", 200)
    if not 10 <= bootstrap <= MAX_BOOTSTRAP:
        raise UserError(f"must be between 10 and {MAX_BOOTSTRAP}", path, "[audit] bootstrap")
    target = section.get("optimal_weights", "none")
    if target not in ("none", *TARGETS):
        raise UserError(
            f"unknown target {target!r} (choose none, {', '.join(TARGETS)})",
            path,
            "[audit] optimal_weights",
        )
    switches = {k: v for k, v in section.items() if isinstance(v, bool)}
    return AuditConfig(
        **switches, optimal_weights=target, bootstrap=bootstrap, confidence=confidence
    )


def load_config(path: str | Path) -> RunConfig:
    """Read and check a run configuration; paths inside it are relative to the file."""
    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise UserError(f"the config file: {problem}", path)
    try:
        # a byte-order mark (Notepad writes one) is dropped, as the CSV files' is
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"not valid TOML ({exc})", path) from None
    except RecursionError:  # tomllib parses nested arrays and tables by recursion
        raise UserError(TOO_DEEP, path) from None
    except ValueError:  # an integer of more digits than Python converts
        raise UserError("not valid TOML (an integer of more than 4300 digits)", path) from None
    _check_plain(raw, path)
    return _config(raw, path, path.resolve().parent)


def config_from_dict(raw: dict[str, Any], folder: str | Path = ".") -> RunConfig:
    """A run configuration built in code: the sections and keys of a TOML config as nested dicts
    (lists for arrays), checked the same way; relative paths are relative to ``folder``."""
    if not isinstance(raw, dict):
        raise UserError("a config is a dict of sections", where="config_from_dict")
    if not isinstance(folder, (str, os.PathLike)) or "\0" in str(folder):
        raise UserError("must be a path (without NUL characters)", where="config_from_dict folder")
    _check_plain(raw, Path(IN_MEMORY))
    return _config(copy.deepcopy(raw), Path(IN_MEMORY), Path(folder).resolve())


MAX_NESTING = 8  # a config's deepest value: [[factors]] -> a table -> options -> an option's list
TOO_DEEP = f"nested more than {MAX_NESTING} levels deep, deeper than any config"


def _check_plain(value: Any, path: Path, where: str = "", depth: int = 0) -> None:
    """Refuse what no config can hold before anything walks it (the checks and the errors
    recurse into values): keys that are not text (from code), and nesting deeper than a
    config's (a file's hundreds of brackets, a dict that holds itself)."""
    if depth > MAX_NESTING:
        raise UserError(TOO_DEEP, path, where)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UserError(f"keys are text, got {key!r}", path, where or None)
            _check_plain(item, path, f"{where} {key}" if where else f"[{key}]", depth + 1)
    elif isinstance(value, list):
        for k, item in enumerate(value, start=1):
            _check_plain(item, path, f"{where} item {k}", depth + 1)


def _config(raw: dict[str, Any], path: Path, base: Path) -> RunConfig:
    """Check the sections of a config read from ``path`` (named in errors) and build the run
    configuration; relative paths in it are relative to ``base``."""
    _check_keys(raw, path)
    run = raw.get("run", {})
    data = raw.get("data", {})
    section = raw.get("pipeline", {})
    kind = run.get("kind", "baseline")
    if kind not in KINDS:
        raise UserError(
            f"unknown kind {kind!r} (choose from {', '.join(KINDS)})", path, "[run] kind"
        )
    ties = section.get("ties", "min")
    if ties not in TIES:
        raise UserError(
            f"unknown tie rule {ties!r} (choose from {', '.join(TIES)})", path, "[pipeline] ties"
        )
    for key in ("jobs", "chunk_size"):
        if run.get(key, 1) < 1:
            raise UserError("must be at least 1", path, f"[run] {key}")
    if run.get("jobs", 1) > MAX_JOBS:
        raise UserError(f"must be at most {MAX_JOBS}", path, "[run] jobs")
    if run.get("seed", 0) < 0:
        raise UserError("must be a non-negative integer", path, "[run] seed")
    name = check_run_name(
        run.get("name", DEFAULT_NAME if path == Path(IN_MEMORY) else path.stem), path
    )
    backend = run.get("backend", "auto")
    if backend not in BACKENDS:
        raise UserError(
            f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})",
            path,
            "[run] backend",
        )
    if backend == "fork" and not sys.platform.startswith("linux"):
        raise UserError("fork needs Linux; use auto or threading", path, "[run] backend")
    sampling = _sampling(raw.get("sampling", {}), kind, path)
    outputs = _outputs(raw.get("outputs", {}), path)
    if kind != "baseline" and not raw.get("factors"):
        raise UserError(f"a {kind} run needs at least one [[factors]] table", path)
    return RunConfig(
        path=path,
        raw=raw,
        name=name,
        kind=kind,
        seed=run.get("seed", 0),
        jobs=run.get("jobs", 1),
        chunk_size=run.get("chunk_size"),
        backend=backend,
        scheduler=run.get("scheduler"),
        sampling=sampling,
        outputs=outputs,
        audit=_audit(raw.get("audit", {}), path),
        factors=tuple(raw.get("factors", ())),
        data=DataConfig(
            metadata=_path(data.get("metadata"), base, path, "metadata"),
            values=_path(data.get("values"), base, path, "values"),
            year=data.get("year"),
            compare_with_paper=data.get("compare_with_paper", False),
            allow_empty_units=data.get("allow_empty_units", False),
            alternatives=tuple(
                _resolved(p, base, path, "alternatives") for p in data.get("alternatives", ())
            ),
            units=_path(data.get("units"), base, path, "units"),
            unit_column=data.get("unit_column", "unit").strip(),  # as the header is read
            year_column=data.get("year_column", "year").strip(),
            shipped=data.get("shipped", "provinces"),
        ),
        pipeline=pipeline_from(section, _tier_rule(raw.get("tiers", {}), path)),
        ties=ties,
    )
