"""Run configuration: a TOML file read into plain dataclasses, every key checked with a one-line error."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nqpf_sens.errors import UserError
from nqpf_sens.pipeline import Pipeline
from nqpf_sens.rank import TIES, TierRule

_NUMBER = (int, float)

#: section -> key -> accepted Python types of the TOML value
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "run": {"name": (str,), "kind": (str,), "seed": (int,), "jobs": (int,)},
    "data": {"metadata": (str,), "values": (str,), "year": (int,), "paper_scores": (str,)},
    "pipeline": {
        "imputation": (str,),
        "imputation_fallback": (str,),
        "transformation": (str,),
        "transform_target": (str,),
        "winsor_limit": _NUMBER,
        "normalisation": (str,),
        "base_year": (int,),
        "aggregation": (str, list),
        "weighting": (str,),
        "ties": (str,),
    },
    "tiers": {"scheme": (str,), "bounds": (list,), "thresholds": (list,), "classes": (int,)},
}
KINDS = ("baseline",)


@dataclass(frozen=True)
class DataConfig:
    metadata: Path | None = None
    values: Path | None = None
    year: int | None = None
    paper_scores: Path | None = None


@dataclass(frozen=True)
class RunConfig:
    path: Path
    raw: dict[str, Any]
    name: str
    kind: str = "baseline"
    seed: int = 0
    jobs: int = 1
    data: DataConfig = field(default_factory=DataConfig)
    pipeline: Pipeline = field(default_factory=Pipeline)
    ties: str = "min"


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _check_keys(raw: dict[str, Any], path: Path) -> None:
    for section, content in raw.items():
        if section not in SCHEMA:
            hint = difflib.get_close_matches(section, SCHEMA, n=1)
            raise UserError(f"unknown section{f' (did you mean [{hint[0]}]?)' if hint else ''}; known: {', '.join(SCHEMA)}", path, f"[{section}]")
        if not isinstance(content, dict):
            raise UserError("must be a table of keys", path, f"[{section}]")
        for key, value in content.items():
            allowed = SCHEMA[section]
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                raise UserError(f"unknown key{f' (did you mean {hint[0]!r}?)' if hint else ''}", path, f"[{section}] {key}")
            types = allowed[key]
            if isinstance(value, bool) or not isinstance(value, types):
                raise UserError(f"expected {_type_name(types)}, got {value!r}", path, f"[{section}] {key}")


def _path(value: str | None, base: Path) -> Path | None:
    return None if value is None else (base / value).resolve()


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
    if options.get("imputation_fallback") == "none":
        options["imputation_fallback"] = None
    return Pipeline(**options, tiers=tiers)


def load_config(path: str | Path) -> RunConfig:
    """Read and check a run configuration; paths inside it are relative to the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError("config file not found", path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", path) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"not valid TOML ({exc})", path) from None
    _check_keys(raw, path)
    run = raw.get("run", {})
    data = raw.get("data", {})
    section = raw.get("pipeline", {})
    kind = run.get("kind", "baseline")
    if kind not in KINDS:
        raise UserError(f"unknown kind {kind!r} (choose from {', '.join(KINDS)})", path, "[run] kind")
    ties = section.get("ties", "min")
    if ties not in TIES:
        raise UserError(f"unknown tie rule {ties!r} (choose from {', '.join(TIES)})", path, "[pipeline] ties")
    if run.get("jobs", 1) < 1:
        raise UserError("must be at least 1", path, "[run] jobs")
    base = path.resolve().parent
    return RunConfig(
        path=path,
        raw=raw,
        name=run.get("name", path.stem),
        kind=kind,
        seed=run.get("seed", 0),
        jobs=run.get("jobs", 1),
        data=DataConfig(
            metadata=_path(data.get("metadata"), base),
            values=_path(data.get("values"), base),
            year=data.get("year"),
            paper_scores=_path(data.get("paper_scores"), base),
        ),
        pipeline=pipeline_from(section, _tier_rule(raw.get("tiers", {}), path)),
        ties=ties,
    )
