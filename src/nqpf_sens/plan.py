"""The plan of an uncertainty run: from a config to a checked study (factors, design, resources),
and from the study's statistics to the output tables."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens.config import RunConfig
from nqpf_sens.engine.batch import BatchResult, Engine
from nqpf_sens.engine.impute import TIME_SERIES_RULES
from nqpf_sens.engine.pipeline import Pipeline, normalisation_methods, pipeline_weights
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable, load_table
from nqpf_sens.errors import UserError
from nqpf_sens.indices.nqpf.data import alternative_tables
from nqpf_sens.indices.nqpf.paper import REGION_ORDER
from nqpf_sens.inputs import check_data_file, input_files, unit_attributes
from nqpf_sens.uncertainty import statistics
from nqpf_sens.uncertainty.cell_draws import cell_keys
from nqpf_sens.uncertainty.chunks import fingerprint, input_digests
from nqpf_sens.uncertainty.convergence import convergence
from nqpf_sens.uncertainty.designs import Design, design_rows
from nqpf_sens.uncertainty.factors import FactorSet, build_factor
from nqpf_sens.uncertainty.resources import RunSize, check_resources, fits_in_memory, kept_values
from nqpf_sens.uncertainty.sobol import (
    INTERACTION_INTERVAL,
    SobolSums,
    bootstrap_seed,
    indices_table,
    output_reliability,
    resample_counts,
    sobol_summary,
)
from nqpf_sens.uncertainty.study import (
    Chunking,
    ChunkStats,
    Study,
    chunk_row_bytes,
    kept_base_samples,
    kept_scenarios,
    per_scenario_bytes,
    resolved_backend,
)

DATA_KEYS = ("imputation", "transformation", "normalisation")
FORKS_DO_NOT_FIT = (
    "the study runs on threads: forked workers, faster here, would need more memory than is "
    "available"
)


@dataclass
class Prepared:
    study: Study
    nominal: BatchResult
    labels: statistics.Labels
    notes: list[str]
    sobol: SobolSums | None = None  # a Saltelli design's sums, filled by the study
    backend: str = "threading"  # the study's workers, ``auto`` resolved (see ``run._compute``)
    warnings: list[str] = field(default_factory=list)
    recommended_n: int = 0


def _tables(
    config: RunConfig, spec: IndexSpec, table: IndicatorTable
) -> tuple[IndicatorTable, ...]:
    if config.data.alternatives:
        others = []
        for path in config.data.alternatives:
            check_data_file(config, "alternatives", path)
            other = load_table(path, spec, config.data.unit_column, config.data.year_column)
            if set(other.units) == set(table.units):
                other = other.in_unit_order(table.units)  # rows in another order: the same data
            if other.units != table.units or other.values.shape[-1] != table.values.shape[-1]:
                raise UserError(
                    "an alternative table must have the same units and indicators as [data] values",
                    path,
                )
            others.append(other.year(config.data.year) if config.data.year is not None else other)
        return (table, *others)
    wanted = any(entry.get("kind") == "dataset" for entry in config.factors)
    if wanted and config.data.values is None and config.data.metadata is None:
        return (table, *alternative_tables(spec, table))
    return (table,)


def _check_combinations(engine: Engine, factors: FactorSet, config: RunConfig) -> None:
    """Refuse, before anything runs, a combination of options the data cannot support."""
    choices = [f for f in factors.choices if f.key in (*DATA_KEYS, "weighting", "aggregation")]
    options = [
        [(f.key, tuple(o) if isinstance(o, list) else o) for o in f.options] for f in choices
    ]
    for combination in itertools.product(*options) if options else [()]:
        pipeline = config.pipeline.with_(**dict(combination))
        try:
            engine.check([pipeline])
        except UserError as error:
            chosen = ", ".join(f"{k}={v}" for k, v in combination) or "the nominal pipeline"
            raise UserError(f"{chosen}: {error.one_line()}", config.path, "[[factors]]") from None


THRESHOLDS_AND_BANDS = (
    "the normalisation varies: score thresholds cut a scenario normalised as the nominal run on "
    "its own scores and any other on the nominal scale, while the score bands put every scenario "
    "on the nominal scale (standing among the units), so a unit's band can clear a threshold that "
    "some of its scenarios' own scores do not"
)


def _not_exercised(
    factors: FactorSet,
    table: IndicatorTable,
    spec: IndexSpec,
    config: RunConfig,
    normalisation_varies: bool,
) -> list[str]:
    """Factors the config names but the data cannot exercise (reported, not silently ignored)."""
    notes = []
    kinds = {f.kind for f in factors.factors}
    for factor in factors.choices:
        if factor.key == "imputation" and not np.isnan(table.values).any() and "mask" not in kinds:
            notes.append(
                f"factor '{factor.name}': no cell is missing and no 'mask' factor blanks any, "
                "so the imputation rule cannot matter"
            )
        if (
            factor.key == "transformation"
            and config.pipeline.transform_target == "flagged"
            and not spec.transform_flag.any()
        ):
            notes.append(
                f"factor '{factor.name}': "
                "no indicator is flagged for transformation in the metadata"
            )
    if not normalisation_varies:
        notes += [
            f"factor '{f.name}': the metadata fixes every indicator's normalisation, so this "
            "choice cannot matter"
            for f in factors.choices
            if f.key == "normalisation"
        ]
    for factor in factors.choices:
        governing = SETTING_NEEDS.get(factor.key)
        if governing is None:
            continue
        key, enabling = governing
        reachable = _values(getattr(config.pipeline, key)) | {
            value for f in factors.choices if f.key == key for value in _values(f.options)
        }
        if not reachable & set(enabling):
            notes.append(
                f"factor '{factor.name}': {factor.key} only matters under {key} = "
                f"{' or '.join(enabling)}, which neither the pipeline nor any factor chooses"
            )
    return notes


def _normalisation_varies(factors: FactorSet, nominal: Pipeline, spec: IndexSpec) -> bool:
    """Whether some normalisation option normalises an indicator otherwise than another (the
    metadata may fix some or all indicators' method, whatever the pipeline says)."""
    options = {nominal.normalisation} | {
        option for f in factors.choices if f.key == "normalisation" for option in f.options
    }
    methods = {normalisation_methods(nominal.with_(normalisation=o), spec) for o in options}
    return len(methods) > 1


#: choices that only matter under some values of another: (that key, those values)
_TREAT = ("transformation", ("treat",))
_SHIFTED_MEANS = ("aggregation", ("geometric", "harmonic", "generalised"))
SETTING_NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "winsor_limit": ("transformation", ("winsorise",)),
    "winsor_max": _TREAT,
    "skew_threshold": _TREAT,
    "kurtosis_threshold": _TREAT,
    "treat_fallback": _TREAT,
    "force_winsorise": _TREAT,
    "boxcox_lambda": _TREAT,
    "power": ("aggregation", ("generalised",)),
    "mean_shift": _SHIFTED_MEANS,
    "nonpositive": _SHIFTED_MEANS,
}


def _values(setting: object) -> set[object]:
    """The values a setting holds: itself, or each of a per-level tuple's (or an option's)."""
    if isinstance(setting, (list, tuple)):
        return {value for item in setting for value in _values(item)}
    return {setting}


def prepare_study(
    config: RunConfig,
    spec: IndexSpec,
    table: IndicatorTable,
    nominal: BatchResult,
    jobs: int = 1,
    work: Path | None = None,
    inputs: dict[Path, str] | None = None,
) -> Prepared:
    """Factors, design and checks of a run around its ``nominal`` result (the config's pipeline);
    the run's memory and disk (chunk files under ``work``, if any) are checked against the
    machine. ``inputs``: the digests of the input files as the run read them (a run compares
    them with the files afterwards), for the chunks' fingerprint; computed here if not given."""
    tables = _tables(config, spec, table)
    entries = [
        build_factor(entry, k, spec, config.pipeline, len(tables), config.path, table.statuses)
        for k, entry in enumerate(config.factors, start=1)
    ]
    engine = Engine(spec, tables, config.ties)
    base_weights = list(pipeline_weights(config.pipeline, table, spec))
    factors = FactorSet(
        entries,
        config.pipeline,
        [len(level) for level in spec.levels[:-1]],
        base_weights,
        table.values.shape,
        ~np.isnan(table.values),
        cell_keys(table.years, table.units, table.indicators),
    )
    _check_combinations(engine, factors, config)
    mask = next((f for f in entries if f.kind == "mask"), None)
    if mask is not None:
        if mask.cells >= len(table.units):
            raise UserError(
                f"a mask of {mask.cells} cells could blank a whole indicator "
                f"of {len(table.units)} units",
                config.path,
                "[[factors]]",
            )
        rules = {o for f in factors.choices if f.key == "imputation" for o in f.options} | {
            config.pipeline.imputation
        }
        if (
            len(table.years) == 1
            and config.pipeline.imputation_fallback is None
            and rules & set(TIME_SERIES_RULES)
        ):
            raise UserError(
                f"imputation rules {sorted(rules & set(TIME_SERIES_RULES))} need several years "
                "to refill masked cells; the data have one year: "
                "set [pipeline] imputation_fallback",
                config.path,
                "[[factors]]",
            )
        if rules == {"none"}:
            raise UserError(
                "a 'mask' factor needs an imputation rule to refill the cells",
                config.path,
                "[[factors]]",
            )
    attributes = unit_attributes(config, table)
    regions = (
        tuple(sorted(attributes["region"].dropna().unique())) if "region" in attributes else ()
    )
    n_rows = design_rows(config.sampling.method, config.sampling.n, len(entries))
    per_sample = 2 if config.sampling.method == "saltelli" else 1  # rows A and B of each
    n_uncertain = config.sampling.n * per_sample
    per_scenario = per_scenario_bytes(
        table.values.shape, len(spec.aggregates), factors.per_scenario_data
    )
    kept = kept_scenarios(  # float32 scores and region means
        n_uncertain,
        4 * kept_values(len(table.years), len(table.units), len(spec.aggregates), len(regions)),
    )
    kept_samples = kept_base_samples(config.sampling.n, per_sample, kept)
    backend = resolved_backend(config.backend, jobs, factors)
    size = RunSize(
        rows=n_rows,
        columns=factors.n_columns,
        saltelli=config.sampling.method == "saltelli",
        base_n=config.sampling.n,
        bootstrap=config.sampling.bootstrap,
        kept=kept,
        years=len(table.years),
        units=len(table.units),
        aggregates=len(spec.aggregates) + 1,
        regions=len(regions),
        tiers=config.pipeline.tiers.n_tiers,
        chunking=Chunking.plan(
            config.chunk_size,
            n_rows,
            config.sampling.method == "saltelli",
            kept_samples,
            chunk_row_bytes(len(table.years), len(table.units), len(spec.aggregates), len(regions)),
        ),
        per_scenario=per_scenario,
        jobs=jobs,
        forked=backend == "fork",
    )
    notes = []
    if backend == "fork" and config.backend == "auto" and not fits_in_memory(size):
        # threads share the run's pages: slower here, but they may fit (if not, that is the error)
        size, backend = replace(size, forked=False), "threading"
        notes.append(FORKS_DO_NOT_FIT)
    check_resources(size, work)
    design = Design(config.sampling.method, config.sampling.n, factors.groups, config.seed)
    region_codes = (
        attributes["region"]
        .map({r: i for i, r in enumerate(regions)})
        .fillna(-1)
        .to_numpy(dtype=np.int64)
        if regions
        else np.full(len(table.units), -1)
    )
    gdp = (
        pd.to_numeric(attributes["gdp_per_capita"], errors="coerce").to_numpy(dtype=float)
        if "gdp_per_capita" in attributes
        else None
    )
    study = Study(
        token=fingerprint(config.raw, inputs or input_digests(input_files(config))),
        spec=spec,
        tables=tables,
        factors=factors,
        design=design,
        ties=config.ties,
        nominal_ranks=nominal.ranks[0],
        nominal_scores=nominal.scores[0],
        rescale_scores=len(table.units) > 1
        and any(f.key == "normalisation" for f in factors.choices),
        n_tiers=config.pipeline.tiers.n_tiers,
        region_codes=region_codes,
        n_regions=len(regions),
        gdp=gdp,
        kept_samples=kept_samples,
    )
    labels = statistics.Labels(table.units, table.years, spec.aggregates, regions)
    varies = _normalisation_varies(factors, config.pipeline, spec)
    notes += _not_exercised(factors, table, spec, config, varies)
    if study.rescale_scores and varies and config.pipeline.tiers.scheme == "score_thresholds":
        notes.append(THRESHOLDS_AND_BANDS)
    return Prepared(study, nominal, labels, notes, _sobol_sums(design, config, nominal), backend)


def _sobol_sums(design: Design, config: RunConfig, nominal: BatchResult) -> SobolSums | None:
    """The sums of a Saltelli design's outputs (see ``output_names``), centred by the nominal
    run's, with the bootstrap's resamples drawn ahead; each row's rank shift kept for the
    convergence check."""
    if design.method != "saltelli":
        return None
    centre = np.concatenate([nominal.ranks[0, -1], nominal.index[0, -1], [0.0]])
    sampling = config.sampling
    counts = resample_counts(sampling.n, sampling.bootstrap, bootstrap_seed(config.seed))
    return SobolSums(len(design.factor_names), centre, counts, keep=(len(centre) - 1,))


def output_names(units: tuple[str, ...]) -> list[str]:
    return [f"rank:{u}" for u in units] + [f"score:{u}" for u in units] + ["rank_shift"]


def tables_from(
    prepared: Prepared, stats: ChunkStats, config: RunConfig, jobs: int = 1
) -> dict[str, pd.DataFrame]:
    """Every output table of a run, by file name (the score bands in ``jobs`` threads)."""
    out = config.outputs
    labels, nominal = prepared.labels, prepared.nominal
    tables = {
        "rank_stability": _by_nominal_rank(
            statistics.rank_stability(
                stats, nominal.ranks[0], labels, out.interval, out.within, out.top
            )
        ),
        "tier_bands": _by_nominal_rank(
            statistics.tier_bands(
                stats,
                nominal.tiers[0],
                nominal.ranks[0],
                nominal.scores[0],
                labels,
                out.interval,
                jobs,
            )
        ),
        "rank_shift": statistics.rank_shift(stats, nominal.ranks[0]),
    }
    if len(labels.units) > 1:  # a ranking of one unit agrees with anything
        tables["rank_agreement"] = statistics.rank_agreement(stats, nominal.ranks[0], labels)
    if labels.regions:
        tables["region_bands"] = statistics.region_bands(
            stats, prepared.study.region_means(nominal.index[0]), labels, REGION_ORDER
        )
    if prepared.study.gdp is not None:
        tables["quadrants"] = statistics.quadrants(stats, labels)
    sums = prepared.sobol
    tables["convergence"], prepared.warnings, prepared.recommended_n = convergence(
        stats,
        prepared.study.design,
        labels.units,
        out.convergence_tolerance,
        None if sums is None else sums.kept[:, 0],
    )
    if sums is not None:
        indices = indices_table(
            sums.estimates(),
            output_names(labels.units),
            prepared.study.design.factor_names,
            config.sampling.confidence,
            aggregates={"all_ranks": np.arange(len(labels.units))},
        )
        reliability = output_reliability(indices, prepared.study.design.n)
        indices = indices.drop(columns=list(INTERACTION_INTERVAL))  # an output's, not a factor's
        tables["sobol_indices"] = indices.merge(reliability[["output", "reliable"]], on="output")
        tables["sobol_outputs"] = reliability
        tables["sobol_summary"] = sobol_summary(indices, reliability)
        for name in ("sobol_indices", "sobol_outputs", "sobol_summary"):  # the sample behind them
            tables[name]["base_samples"] = prepared.study.design.n
    return tables


def _by_nominal_rank(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(
        [c for c in ("year", "nominal_rank") if c in frame], kind="stable"
    ).reset_index(drop=True)
