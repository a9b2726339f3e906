"""The reference of every config key, generated from the schema the validator uses.

Types come from :data:`nqpf_sens.config.SCHEMA` and :data:`~nqpf_sens.config.FACTOR_KEYS`, the
allowed values from the engine's own option lists and the defaults from the config's dataclasses
wherever they hold one, so that the page cannot drift from what a run accepts;
``tests/test_config_reference.py`` checks that every key is described and that ``docs/config.md``
is this module's output (``python -m nqpf_sens.config_reference > docs/config.md``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nqpf_sens.audit.optimal_weights import TARGETS
from nqpf_sens.config import (
    BACKENDS,
    FACTOR_KEYS,
    KINDS,
    SCHEMA,
    AuditConfig,
    DataConfig,
    OutputConfig,
    RunConfig,
    SamplingConfig,
    _type_name,
)
from nqpf_sens.engine import aggregate, impute, normalise, transform, weights
from nqpf_sens.engine.pipeline import TRANSFORM_TARGETS, Pipeline
from nqpf_sens.engine.rank import TIER_SCHEMES, TIES, TierRule
from nqpf_sens.indices.nqpf.data import SHIPPED
from nqpf_sens.uncertainty import factors

#: the dataclass holding each section's defaults (``[run]`` keys live on RunConfig itself)
DEFAULTS: dict[str, Any] = {
    "run": RunConfig,
    "data": DataConfig,
    "pipeline": Pipeline,
    "tiers": TierRule,
    "sampling": SamplingConfig,
    "outputs": OutputConfig,
    "audit": AuditConfig,
    "factors": factors.Factor,
}
#: keys stored under another name, or elsewhere
FIELDS = {("pipeline", "ties"): (RunConfig, "ties"), ("outputs", "labels"): (None, '"en"')}
ALLOWED: dict[tuple[str, str], tuple[Any, ...]] = {
    ("run", "kind"): KINDS,
    ("run", "backend"): BACKENDS,
    ("data", "shipped"): tuple(SHIPPED),
    ("pipeline", "imputation"): impute.RULES,
    ("pipeline", "imputation_fallback"): ("none", *impute.FALLBACKS),
    ("pipeline", "transformation"): transform.METHODS,
    ("pipeline", "transform_target"): TRANSFORM_TARGETS,
    ("pipeline", "treat_fallback"): transform.FALLBACKS,
    ("pipeline", "normalisation"): normalise.METHODS,
    ("pipeline", "aggregation"): aggregate.METHODS,
    ("pipeline", "nonpositive"): aggregate.NONPOSITIVE,
    ("pipeline", "weighting"): weights.SCHEMES,
    ("pipeline", "ties"): TIES,
    ("tiers", "scheme"): TIER_SCHEMES,
    ("sampling", "method"): ("random", "sobol", "saltelli"),
    ("outputs", "labels"): ("en", "zh"),
    ("audit", "optimal_weights"): ("none", *TARGETS),
    ("factors", "kind"): factors.KINDS,
    ("factors", "key"): factors.CHOICE_KEYS,
    ("factors", "distribution"): ("uniform", "dirichlet"),
}
#: what each key does; a default the dataclasses do not hold is given after "Default:"
HELP: dict[str, dict[str, str]] = {
    "run": {
        "name": "Names the results folder (results/<name>). Default: the config file's name.",
        "kind": "baseline (the nominal index only), montecarlo (uncertainty) or sobol "
        "(uncertainty and sensitivity indices).",
        "seed": "Seed of the design and of every random draw: the same seed, the same files.",
        "jobs": "Parallel workers (the command line's --jobs overrides it).",
        "chunk_size": "Scenarios per chunk: the unit of the histograms, of a file for --resume "
        "and of the merge (results do not depend on it; a worker evaluates a chunk in batches "
        "that fit its memory). Default: an eighth of the design, within 1,024 to 16,384 for "
        "the chunks over the rows that keep scores or Sobol outputs (lowered further so that "
        "those rows stay within 192 MiB) and to 65,536 for the later chunks of a Monte Carlo "
        "design, which hold counts alone.",
        "backend": "How workers run: threading (threads sharing one engine), fork (copies of "
        "the run's process, Linux), loky processes or a dask cluster. Default: auto, which "
        "forks where scenarios differ in more than their weights (their preparation is Python "
        "work that threads cannot share) and uses threads otherwise, or where the forks' copies "
        "of the run's memory would not fit.",
        "scheduler": "Address of a dask scheduler (backend dask). Default: a local cluster.",
    },
    "data": {
        "metadata": "Indicator metadata CSV (code, dimension, weight, direction, ...; COINr's "
        "iMeta columns accepted). Default: the shipped NQPF Table 1.",
        "values": "Indicator values CSV, one row per unit (and year). Default: the shipped NQPF "
        "data.",
        "year": "Keep only this year of a panel. Default: every year.",
        "compare_with_paper": "Set the nominal index beside the paper's Table 3 (NQPF only).",
        "alternatives": "Further values files, alternative datasets a dataset factor draws.",
        "units": "Unit attributes CSV (region, Chinese name, group columns).",
        "unit_column": "The values file's unit column.",
        "year_column": "The values file's year column.",
        "allow_empty_units": "Accept units without any value (they are reported, not refused).",
        "shipped": "Without a values file: which shipped NQPF data, the 31 provinces in 2022 "
        "or the national series 2012-2022.",
    },
    "pipeline": {
        "imputation": "How missing cells are filled (growth: the paper's average growth rate).",
        "imputation_fallback": "For cells the rule leaves missing: a cross-sectional rule, or "
        "flat (a series without any observation held constant). Default: none.",
        "imputation_group": "A unit column within whose groups mean / median imputation works. "
        "Default: none (all units).",
        "denominate": "Divide indicators by the column their metadata names (COINr's Denominate).",
        "transformation": "Before normalisation: none, sqrt, log1p, winsorise or treat "
        "(COINr/JRC outlier treatment).",
        "transform_target": "flagged (indicators with a transform cell in the metadata) or all.",
        "winsor_limit": "winsorise: the quantile each tail is clipped at.",
        "winsor_max": "treat: at most this many points winsorised per indicator.",
        "skew_threshold": "treat: |skewness| at or above which an indicator fails.",
        "kurtosis_threshold": "treat: excess kurtosis at or above which an indicator fails.",
        "treat_fallback": "treat: the transformation of an indicator winsorisation cannot fix.",
        "force_winsorise": "treat: winsorise winsor_max points whatever the statistics (COINr's "
        "force_win).",
        "boxcox_lambda": "treat: the Box-Cox exponent (0: the logarithm).",
        "normalisation": "How indicators are put on one scale (minmax: the paper's).",
        "minmax_range": "minmax: the target range [low, high] (COINr's l_u).",
        "zscore_scale": "zscore: the mean and sd [m, s] (COINr's m_sd).",
        "zscore_ddof": "zscore: 0, the population sd, or 1, R's sd as COINr.",
        "reference_unit": "distance_to_reference: the unit scoring 100. Default: none.",
        "distance_scale": "distance_to_leader / _target / _reference: the score of the leader, "
        "target or reference unit (1 on COINr's scale).",
        "base_year": "base_year: the year equal to 100. Default: the first year.",
        "aggregation": "One method, or a list of one per level (indicators to dimensions first).",
        "nonpositive": "What geometric and harmonic means do with values <= 0: shift them, or "
        "refuse the run (COINr).",
        "mean_shift": "nonpositive = shift: the shift, as a fraction of the child's range.",
        "power": "generalised: the order p of the power mean, |p| >= 1e-4 (near 0: geometric).",
        "data_threshold": "Aggregate without imputation: the share of a parent's children that "
        "must be observed (COINr's dat_thresh), one or a list per level. Default: missing "
        "cells are refused.",
        "weighting": "expert (the metadata's weights), equal, or data-driven entropy / critic.",
        "ties": "min (equal scores share the best place) or ordinal (data order).",
    },
    "tiers": {
        "scheme": "fixed_ranks (the paper), score_thresholds or natural_breaks (Fisher-Jenks).",
        "bounds": "fixed_ranks: the last rank of each tier but the last; fewer than the units.",
        "thresholds": "score_thresholds: the lowest score of each tier but the last.",
        "classes": "natural_breaks: the number of tiers.",
    },
    "sampling": {
        "n": "Base sample size (sobol: a power of two; N (factors + 2) scenarios).",
        "method": "montecarlo: random or sobol points; sobol runs use saltelli. Default: random "
        "(sobol runs: saltelli).",
        "bootstrap": "Resamples behind the Sobol indices' intervals (at least 10).",
        "confidence": "Confidence level of the Sobol indices' intervals.",
    },
    "outputs": {
        "interval": "Central probability of the rank and score intervals reported.",
        "within": "Report P(|rank shift| <= within); below the number of units less 1.",
        "top": "Report P(rank <= top).",
        "convergence_tolerance": "Relative change that counts as converged in the convergence "
        "check.",
        "focus_unit": (
            "The unit of the per-unit Sobol figure and, for data of several years, of the "
            "trajectory figure. Default: the first in rank order (of the last year)."
        ),
        "labels": "en or zh (Chinese unit names in the figures, with a CJK font).",
        "figures": "Draw the figures and report.html.",
        "svg": "Also save each figure as SVG (a second rendering: off by default).",
    },
    "audit": {
        "coherence": "Indicator statistics, correlations, Cronbach's alpha and PCA.",
        "importance": "Importance (correlation ratio) against nominal and effective weights.",
        "what_if": "Leave-one-out and one-at-a-time changes.",
        "rank_bounds": "Exact best and worst ranks over the weights factors' ranges.",
        "optimal_weights": "Weights whose influence matches a target (COINr's get_opt_weights).",
        "bootstrap": "Resamples behind the importance intervals (10-100,000).",
        "confidence": "Confidence level of the importance intervals.",
    },
    "factors": {
        "name": "The factor's name in every output. Required.",
        "kind": "What it varies. Required.",
        "key": "choice: the pipeline key it varies. Required for a choice.",
        "options": "choice / exclude: the values it draws from (exclude: element codes or none).",
        "probabilities": "choice: a probability per option. Default: equal.",
        "level": "weights: the tree level (0 = indicators).",
        "distribution": "weights: uniform multipliers or dirichlet shares.",
        "spread": "weights: multipliers in [1 - spread, 1 + spread]; noise: the relative noise "
        "(default 0.05; 0 for statuses spread_by_status does not list).",
        "spread_by_status": "noise: a spread per provenance status of the cells.",
        "concentration": "weights, dirichlet: alpha. Default: matched to the uniform spread.",
        "cells": "mask: observed cells blanked per scenario.",
        "count": "dataset: how many alternatives it draws from. Default: all.",
        "description": "Why the factor is there: shown in the report.",
        "group": "Sobol group: factors sharing one are one factor. Default: its own name.",
    },
}


def default(section: str, key: str) -> str:
    """The default a run uses for a key, from its dataclass (``-``: none there; the help text
    states it)."""
    holder, name = FIELDS.get((section, key), (DEFAULTS[section], key))
    if holder is None:
        return f"`{name}`"
    found = {f.name: f for f in dataclasses.fields(holder)}.get(name)
    stated = "Default:" in HELP.get(section, {}).get(key, "")
    if found is None or found.default is dataclasses.MISSING or stated:
        return "-"
    if found.default is None:
        return "none"
    value = found.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return "`[" + ", ".join(_plain(v) for v in value) + "]`"
    return f"`{_plain(value)}`" if value != "" else "-"


def _plain(value: Any) -> str:
    """A value as TOML writes it."""
    if isinstance(value, str):
        return f'"{value}"'
    return f"{value:g}" if isinstance(value, float) else str(value)


def reference_markdown() -> str:
    """The reference page: per section, each key's type, default, allowed values and meaning."""
    lines = [
        "# Config reference",
        "",
        "Every key a run config accepts, generated by `python -m nqpf_sens.config_reference` from",
        "the schema the validator uses. Paths are relative to the config file.",
    ]
    for section, keys in [*SCHEMA.items(), ("factors", FACTOR_KEYS)]:
        title = "[[factors]]" if section == "factors" else f"[{section}]"
        lines += ["", f"## `{title}`", "", "| key | type | default | allowed | meaning |"]
        lines.append("|---|---|---|---|---|")
        for key, types in keys.items():
            allowed = ", ".join(f"`{v}`" for v in ALLOWED.get((section, key), ())) or ""
            text = HELP[section][key]
            lines.append(
                f"| `{key}` | {_type_name(types)} | {default(section, key)} | {allowed} | {text} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
