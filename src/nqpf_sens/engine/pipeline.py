"""A pipeline is one combination of the analyst's discrete choices; its defaults are the paper's
method."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from nqpf_sens.engine import aggregate, impute, normalise, transform, weights
from nqpf_sens.engine.rank import TierRule
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable
from nqpf_sens.errors import UserError, quoted

TRANSFORM_TARGETS = ("flagged", "all")


@dataclass(frozen=True)
class Pipeline:
    """Discrete choices of one scenario. ``aggregation`` has one method per level of the tree
    (a single string applies to every level); ``dataset`` picks one of several alternative tables.
    ``denominate`` divides indicators by the columns the metadata names (before imputation, as
    COINr); ``imputation_group`` names a unit attribute within which mean / median imputation
    works; ``winsor_max``, the thresholds, ``treat_fallback``, ``force_winsorise`` and
    ``boxcox_lambda`` drive the ``treat`` transformation (see :mod:`nqpf_sens.engine.transform`);
    ``minmax_range``, ``zscore_scale``, ``zscore_ddof``, ``reference_unit`` and ``distance_scale``
    parametrise those normalisations (see :mod:`nqpf_sens.engine.normalise`); ``nonpositive`` says
    what geometric and harmonic means do with a child that is not all positive: ``shift`` it by
    ``-min + mean_shift`` of its range, or ``refuse`` the run, as COINr does; ``power`` is the
    order of the ``generalised`` mean; ``data_threshold`` (COINr's ``dat_thresh``, one number or
    one per level), when set, lets missing cells through to aggregation without imputation
    instead of refusing them (both: see :mod:`nqpf_sens.engine.aggregate`)."""

    imputation: str = "growth"
    imputation_fallback: str | None = None
    imputation_group: str | None = None
    denominate: bool = True
    transformation: str = "none"
    transform_target: str = "flagged"
    winsor_limit: float = 0.05
    winsor_max: int = 5
    skew_threshold: float = 2.0
    kurtosis_threshold: float = 3.5
    treat_fallback: str = "log_CT"
    force_winsorise: bool = False
    boxcox_lambda: float = 0.5
    normalisation: str = "minmax"
    minmax_range: tuple[float, float] = normalise.MINMAX_RANGE
    zscore_scale: tuple[float, float] = normalise.ZSCORE_SCALE
    zscore_ddof: int = 0
    reference_unit: str | None = None
    distance_scale: float = normalise.DISTANCE_SCALE
    base_year: int | None = None
    aggregation: str | tuple[str, ...] = "arithmetic"
    nonpositive: str = "shift"
    mean_shift: float = aggregate.SHIFT_FRACTION
    power: float = aggregate.POWER
    data_threshold: float | tuple[float, ...] | None = None
    weighting: str = "expert"
    tiers: TierRule = field(default_factory=TierRule)
    dataset: int = 0

    def __post_init__(self) -> None:
        """Lists given in code become tuples (a pipeline is hashed to share cached work)."""
        for name in ("minmax_range", "zscore_scale", "aggregation", "data_threshold"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def aggregation_at(self, level: int) -> str:
        return self.aggregation if isinstance(self.aggregation, str) else self.aggregation[level]

    def threshold_at(self, level: int) -> float | None:
        threshold = self.data_threshold
        return threshold[level] if isinstance(threshold, tuple) else threshold

    @property
    def treatment_key(self) -> tuple:
        """The choices that determine how a table's data are imputed and transformed; a
        transformation's parameters count only with it (scenarios that differ in the others
        share the work)."""
        treat = self.transformation == "treat"
        return (
            self.imputation,
            self.imputation_fallback,
            self.imputation_group,
            self.denominate,
            self.transformation,
            None if self.transformation == "none" else self.transform_target,
            self.winsor_limit if self.transformation == "winsorise" else None,
            self.winsor_max if treat else None,
            self.skew_threshold if treat else None,
            self.kurtosis_threshold if treat else None,
            self.treat_fallback if treat else None,
            self.force_winsorise if treat else None,
            self.boxcox_lambda if treat else None,
        )

    @property
    def weights_from_data(self) -> bool:
        """Whether the scheme derives its weights from the data (see :func:`pipeline_weights`)."""
        return self.weighting not in ("expert", "equal")

    @property
    def weights_key(self) -> tuple:
        """The choices that determine the scheme's weights (data-driven ones also depend on the
        table, whose transformed data they come from)."""
        if not self.weights_from_data:
            return (self.weighting,)
        return (self.weighting, *self.treatment_key)

    @property
    def data_key(self) -> tuple:
        """The choices that determine the normalised matrix of a table (scenarios sharing it
        share the work)."""
        return (
            *self.treatment_key,
            self.normalisation,
            self.minmax_range,
            self.zscore_scale,
            self.zscore_ddof,
            self.reference_unit,
            self.distance_scale,
            self.base_year,
            self.data_threshold is None,  # whether missing cells are refused
        )

    def aggregation_key(self, n_levels: int) -> tuple:
        """Each level's mean, the shift and the power they use (the defaults where no mean uses
        them: scenarios that differ only there aggregate together) and the data threshold."""
        methods = tuple(self.aggregation_at(k) for k in range(n_levels))
        shifted = any(m in ("geometric", "harmonic", "generalised") for m in methods)
        return (
            methods,
            self.shift_fraction if shifted else aggregate.SHIFT_FRACTION,
            self.power if "generalised" in methods else aggregate.POWER,
            self.data_threshold,
        )

    @property
    def shift_fraction(self) -> float:
        """The shift geometric and harmonic means apply (0: none, the values must be positive)."""
        return self.mean_shift if self.nonpositive == "shift" else 0.0

    def with_(self, **changes) -> Pipeline:
        """This pipeline with some options changed: a study builds thousands, so fields are set
        on a copy (a fifth of the time of ``dataclasses.replace``, which re-runs ``__init__``)."""
        unknown = changes.keys() - _FIELD_NAMES
        if unknown:
            raise TypeError(f"Pipeline has no option {sorted(unknown)[0]!r}")
        changed = object.__new__(Pipeline)
        changed.__dict__.update(self.__dict__)
        changed.__dict__.update(changes)
        changed.__post_init__()
        return changed


_FIELD_NAMES = frozenset(f.name for f in fields(Pipeline))


def option_problem(pipeline: Pipeline, spec: IndexSpec) -> str | None:
    """Why the options themselves are invalid (unknown names, wrong number of levels), or None."""
    checks = (
        ("imputation", pipeline.imputation, impute.RULES),
        ("imputation_fallback", pipeline.imputation_fallback or "mean", impute.FALLBACKS),
        ("transformation", pipeline.transformation, transform.METHODS),
        ("transform_target", pipeline.transform_target, TRANSFORM_TARGETS),
        ("treat_fallback", pipeline.treat_fallback, transform.FALLBACKS),
        ("normalisation", pipeline.normalisation, normalise.METHODS),
        ("weighting", pipeline.weighting, weights.SCHEMES),
        ("nonpositive", pipeline.nonpositive, aggregate.NONPOSITIVE),
    )
    for key, value, allowed in checks:
        if value not in allowed:
            return f"{key}: unknown option {quoted(value)} (choose from {', '.join(allowed)})"
    n_levels = len(spec.levels) - 1
    methods = (
        [pipeline.aggregation]
        if isinstance(pipeline.aggregation, str)
        else list(pipeline.aggregation)
    )
    if not isinstance(pipeline.aggregation, str) and len(methods) != n_levels:
        return (
            f"aggregation: give one method or one per level ({n_levels} levels), not {len(methods)}"
        )
    for method in methods:
        if method not in aggregate.METHODS:
            return (
                f"aggregation: unknown option {quoted(method)} "
                f"(choose from {', '.join(aggregate.METHODS)})"
            )
    for key, pair in (
        ("minmax_range", pipeline.minmax_range),
        ("zscore_scale", pipeline.zscore_scale),
    ):
        if len(pair) != 2 or not all(_finite(value) for value in pair):
            return f"{key}: must be two finite numbers, not {list(pair)!r}"
    if not pipeline.minmax_range[0] < pipeline.minmax_range[1]:
        low, high = pipeline.minmax_range
        return f"minmax_range: the lower end must be below the upper, not [{low}, {high}]"
    if not pipeline.zscore_scale[1] > 0:
        return (
            f"zscore_scale: the standard deviation must be positive, not {pipeline.zscore_scale[1]}"
        )
    if pipeline.zscore_ddof not in (0, 1):
        return (
            f"zscore_ddof: must be 0 (population sd) or 1 (sample sd), not {pipeline.zscore_ddof!r}"
        )
    if not _finite_number(pipeline.distance_scale) or not pipeline.distance_scale > 0:
        return f"distance_scale: must be a positive number, not {pipeline.distance_scale!r}"
    for key in ("boxcox_lambda", "power", "skew_threshold", "kurtosis_threshold"):
        if not _finite_number(getattr(pipeline, key)):
            return f"{key}: must be a finite number, not {getattr(pipeline, key)!r}"
    if pipeline.power == 0:
        return "power: 0 is the limit of the geometric mean: use aggregation 'geometric'"
    if abs(pipeline.power) < aggregate.MIN_POWER:
        return (
            f"power: {pipeline.power:g} is too close to 0 to compute (below "
            f"{aggregate.MIN_POWER:g} the scores lose about 6e-16 / |power| to rounding), and the "
            "mean is the geometric one there: use aggregation 'geometric'"
        )
    threshold = pipeline.data_threshold
    if isinstance(threshold, tuple) and len(threshold) != n_levels:
        return (
            f"data_threshold: give one number or one per level ({n_levels} levels), "
            f"not {len(threshold)}"
        )
    for share in threshold if isinstance(threshold, tuple) else (threshold,):
        if share is not None and not (_finite_number(share) and 0 <= share <= 1):
            return f"data_threshold: must be a number in [0, 1], not {share!r}"
    shift = pipeline.mean_shift
    if not _finite_number(shift) or not 0 < shift <= 1:
        return f"mean_shift: must be a number in (0, 1], not {shift!r}"
    if isinstance(pipeline.winsor_max, bool) or not isinstance(pipeline.winsor_max, int):
        return f"winsor_max: must be a whole number, not {pipeline.winsor_max!r}"
    if isinstance(pipeline.winsor_limit, bool) or not isinstance(
        pipeline.winsor_limit, (int, float)
    ):
        return f"winsor_limit: must be a number, not {pipeline.winsor_limit!r}"
    if not 0 <= pipeline.winsor_limit < 0.5:
        return "winsor_limit: must be in [0, 0.5)"
    if pipeline.winsor_max < 0:
        return "winsor_max: must not be negative"
    if (
        pipeline.imputation_group is not None
        and pipeline.imputation not in impute.CROSS_SECTION_RULES
    ):
        rules = ", ".join(impute.CROSS_SECTION_RULES)
        return (
            f"imputation_group: works with the cross-sectional rules {rules}, "
            f"not {pipeline.imputation!r}"
        )
    return None


def _finite(value: object) -> bool:
    """A finite int or float (``math``, not numpy: checked for every pipeline a study builds)."""
    return isinstance(value, (int, float)) and math.isfinite(value)


def _finite_number(value: object) -> bool:
    """A finite int or float (a bool, though an int to Python, is not a number of a config)."""
    return _finite(value) and not isinstance(value, bool)


def _base_index(pipeline: Pipeline, table: IndicatorTable) -> int:
    if pipeline.base_year is None:
        return 0
    if pipeline.base_year not in table.years:
        held = (
            "no year column: one cross-section"
            if table.years == (None,)
            else f"years {table.years[0]}-{table.years[-1]}"
        )
        raise UserError(
            f"base_year: {pipeline.base_year} is not in the data ({held})", table.source
        )
    return table.years.index(pipeline.base_year)


def _reference_index(pipeline: Pipeline, table: IndicatorTable) -> int | None:
    if pipeline.reference_unit is None:
        return None
    if pipeline.reference_unit not in table.units:
        raise UserError(
            f"reference_unit: {quoted(pipeline.reference_unit)} is not a unit of the data",
            table.source,
        )
    return table.units.index(pipeline.reference_unit)


def transform_mask(pipeline: Pipeline, spec: IndexSpec) -> np.ndarray:
    return (
        spec.transform_flag
        if pipeline.transform_target == "flagged"
        else np.ones(len(spec.indicators), dtype=bool)
    )


def _first_missing(values: np.ndarray, table: IndicatorTable) -> str:
    cell = np.argwhere(np.isnan(values))[0]
    year, unit, indicator = cell[-3:]
    when = "" if table.years[year] is None else f", year {table.years[year]}"
    return f"unit '{table.units[unit]}', indicator '{table.indicators[indicator]}'{when}"


def prepare(
    pipeline: Pipeline, table: IndicatorTable, spec: IndexSpec, raw: np.ndarray | None = None
) -> np.ndarray:
    """Impute, transform and normalise ``raw`` (default: the table's values), checking every
    domain first.

    ``raw`` may carry leading scenario axes (noise, masked cells); the result has the same shape.
    """
    problem = option_problem(pipeline, spec)
    if problem:
        raise UserError(problem)
    filled = imputed(pipeline, table, raw)
    missing_allowed = pipeline.data_threshold is not None
    if np.isnan(filled).any() and not missing_allowed:
        reason = (
            "no imputation rule applies"
            if pipeline.imputation == "none"
            else f"imputation '{pipeline.imputation}' cannot fill"
        )
        if pipeline.imputation in impute.TIME_SERIES_RULES and len(table.years) == 1:
            reason += (
                " (a time-series rule needs several years; "
                'add imputation_fallback = "mean" or "median")'
            )
        elif (
            pipeline.imputation in impute.TIME_SERIES_RULES and pipeline.imputation_fallback is None
        ):
            reason += (
                ' (no observation in the series; imputation_fallback = "flat" holds it constant)'
            )
        else:
            reason += " (or set data_threshold to aggregate the data available)"
        raise UserError(f"missing value that {reason}", table.source, _first_missing(filled, table))
    missing = np.isnan(filled) if missing_allowed else None  # cells left for aggregation to skip
    check_finite(filled, table, f"imputation '{pipeline.imputation}'", missing)
    mask = transform_mask(pipeline, spec)
    problem = transform.domain_problem(pipeline.transformation, filled[..., mask])
    if problem:
        raise UserError(f"transformation '{pipeline.transformation}': {problem}", table.source)
    changed = _transform(pipeline, spec, filled)
    check_finite(changed, table, f"transformation '{pipeline.transformation}'", missing)
    base = _base_index(pipeline, table)
    reference = _reference_index(pipeline, table)
    minmax_range, zscore_scale = _own_scales(pipeline, spec, table)
    normalised = np.empty_like(changed)
    for method, columns in _normalisation_groups(pipeline, spec).items():
        parameters = {name: values[columns] for name, values in spec.parameters.items()}
        direction = spec.direction[columns]
        part = changed[..., columns]
        problem = normalise.domain_problem(method, part, direction, base, parameters, reference)
        if problem:
            raise UserError(f"normalisation '{method}': {problem}", table.source)
        with np.errstate(over="ignore", invalid="ignore"):
            normalised[..., columns] = normalise.normalise(
                part,
                method,
                direction,
                base,
                (minmax_range[0][columns], minmax_range[1][columns]),
                (zscore_scale[0][columns], zscore_scale[1][columns]),
                pipeline.zscore_ddof,
                parameters,
                reference,
                pipeline.distance_scale,
            )
        check_finite(
            normalised[..., columns],
            table,
            f"normalisation '{method}'",
            None if missing is None else missing[..., columns],
            limit=MAX_NORMALISED,
        )
    return normalised


def _own_scales(
    pipeline: Pipeline, spec: IndexSpec, table: IndicatorTable
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Each indicator's min-max range and z-score mean and sd: its own from the metadata columns
    ``minmax_lower``, ``minmax_upper``, ``zscore_mean``, ``zscore_sd`` (COINr's per-indicator
    ``l_u`` and ``m_sd``), the pipeline's where a cell is empty; an impossible one is refused."""
    lower, upper = (
        _own_number_or(spec, f"minmax_{end}", value)
        for end, value in zip(("lower", "upper"), pipeline.minmax_range, strict=True)
    )
    mean, sd = (
        _own_number_or(spec, f"zscore_{name}", value)
        for name, value in zip(("mean", "sd"), pipeline.zscore_scale, strict=True)
    )
    for bad, problem in (
        (~(lower < upper), "its min-max range needs minmax_lower below minmax_upper"),
        (~(sd > 0), "its z-score needs a positive zscore_sd"),
    ):
        if bad.any():
            code = spec.indicators[int(np.flatnonzero(bad)[0])]
            raise UserError(f"indicator '{code}': {problem}", table.source)
    return (lower, upper), (mean, sd)


def normalisation_methods(pipeline: Pipeline, spec: IndexSpec) -> tuple[str, ...]:
    """Each indicator's normalisation method: the metadata's own where it names one (COINr's
    per-indicator specs), the pipeline's elsewhere."""
    return tuple(_own_or(spec, "normalisation", pipeline.normalisation))


def _normalisation_groups(pipeline: Pipeline, spec: IndexSpec) -> dict[str, np.ndarray]:
    """The indicators each normalisation method treats (see :func:`normalisation_methods`)."""
    methods = np.array(normalisation_methods(pipeline, spec))
    return {method: np.flatnonzero(methods == method) for method in dict.fromkeys(methods)}


MAX_NORMALISED = 1e100  # beyond this, sums of squares (variances, correlations) overflow


def check_finite(
    values: np.ndarray,
    table: IndicatorTable,
    stage: str,
    missing: np.ndarray | None = None,
    limit: float = np.inf,
) -> None:
    """Stop at the first stage that makes a value infinite or undefined (overflow of huge
    values), or, with a ``limit``, larger than it in absolute value (normalised values every
    statistic squares: a scale of 1e308 in the config, say); the cells of ``missing`` (data left
    missing for aggregation) may stay missing."""
    if limit == np.inf:
        finite = np.isfinite(values)
    else:
        with np.errstate(invalid="ignore"):
            finite = np.abs(values) < limit  # NaN and inf never are
    if missing is not None:
        finite |= missing & np.isnan(values)
    if not finite.all():
        where = _first_missing(np.where(finite, 0.0, np.nan), table)
        scales = ", or a scale or range in the config or metadata," if limit < np.inf else ""
        problem = (
            f"values beyond {limit:g}"
            if np.isfinite(values[~finite]).all()
            else "a non-finite value"
        )
        raise UserError(
            f"{stage} gives {problem} (are the raw values{scales} too large?)", table.source, where
        )


def denominated(
    pipeline: Pipeline, table: IndicatorTable, raw: np.ndarray | None = None
) -> np.ndarray:
    """Raw values, divided by their denominators where the metadata names one and the pipeline
    asks."""
    values = table.values if raw is None else raw
    if pipeline.denominate and table.denominators is not None:
        zero = (table.denominators == 0) & ~np.isnan(table.values)
        if zero.any():  # not a missing value for imputation to invent: the data are wrong
            raise UserError(
                "an observed value divided by a denominator of 0 (the metadata names the column "
                "it is divided by)",
                table.source,
                _first_missing(np.where(zero, np.nan, 0.0), table),
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(table.denominators != 0, values / table.denominators, np.nan)
    return values


def imputed(pipeline: Pipeline, table: IndicatorTable, raw: np.ndarray | None = None) -> np.ndarray:
    """Raw values (default: the table's) denominated and imputed as the pipeline says."""
    return impute.impute(
        denominated(pipeline, table, raw),
        pipeline.imputation,
        pipeline.imputation_fallback,
        unit_groups(pipeline, table),
        table.years,
    )


def unit_groups(pipeline: Pipeline, table: IndicatorTable) -> np.ndarray | None:
    if pipeline.imputation_group is None:
        return None
    if pipeline.imputation_group not in table.attributes:
        raise UserError(
            f"imputation_group: no unit column {pipeline.imputation_group!r} in the data",
            table.source,
        )
    groups = table.attributes[pipeline.imputation_group].reindex(list(table.units))
    if groups.isna().any():
        ungrouped = groups[groups.isna()].index[0]
        raise UserError(
            f"imputation_group: unit {ungrouped!r} has no {pipeline.imputation_group}",
            table.source,
        )
    return groups.astype(str).to_numpy()


def _own_or(spec: IndexSpec, column: str, default: str) -> list[str]:
    """Each indicator's own method from the metadata's ``column``, the pipeline's elsewhere."""
    own = spec.own_methods.get(column) or (None,) * len(spec.indicators)
    return [method or default for method in own]


def _own_number_or(spec: IndexSpec, column: str, default: float) -> np.ndarray:
    """Each indicator's own parameter from the metadata's ``column``, the pipeline's elsewhere."""
    own = spec.parameters.get(column, np.full(len(spec.indicators), np.nan))
    return np.where(np.isnan(own), default, own)


def _transform(pipeline: Pipeline, spec: IndexSpec, values: np.ndarray) -> np.ndarray:
    """The pipeline's transformation, with each indicator's own treatment parameters where the
    metadata gives them (COINr's ``Treat(indiv_specs = ...)``)."""
    return transform.transform(
        values,
        pipeline.transformation,
        transform_mask(pipeline, spec),
        pipeline.winsor_limit,
        # more points than units treat no more, and a count past int64 would wrap to negative
        np.minimum(
            _own_number_or(spec, "winsor_max", pipeline.winsor_max), values.shape[-2]
        ).astype(int),
        pipeline.skew_threshold,
        pipeline.kurtosis_threshold,
        _own_or(spec, "treat_fallback", pipeline.treat_fallback),
        pipeline.force_winsorise,
        _own_number_or(spec, "boxcox_lambda", pipeline.boxcox_lambda),
    )


def pipeline_weights(
    pipeline: Pipeline, table: IndicatorTable, spec: IndexSpec, raw: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """The weighting scheme's weights per level, data-driven schemes computed from the imputed
    and transformed data (default: the table's values; ``raw`` with a leading axis of
    alternative tables gives one set of weights per table)."""
    if not pipeline.weights_from_data:
        return weights.scheme_weights(spec, pipeline.weighting)
    filled = imputed(pipeline, table, raw)
    if np.isnan(filled).any():
        raise UserError(
            f"weighting '{pipeline.weighting}' derives weights from complete data: "
            "impute the missing cells or use expert or equal weights",
            table.source,
            _first_missing(filled, table),
        )
    changed = _transform(pipeline, spec, filled) * spec.direction
    observations = changed.reshape(*changed.shape[:-3], -1, changed.shape[-1])  # years x units
    levels = weights.scheme_weights(spec, pipeline.weighting, observations)
    for k in range(1, len(levels)):  # an aggregate weighing 0: all of its indicators weigh 0
        empty = np.flatnonzero((levels[k] <= 0).reshape(-1, levels[k].shape[-1]).any(axis=0))
        if empty.size:
            node = int(empty[0])
            indicators = np.asarray(spec.indicators)[spec.leaf_parent(k) == node]
            raise UserError(
                f"weighting '{pipeline.weighting}' gives every indicator of "
                f"'{spec.levels[k][node]}' ({', '.join(indicators)}) weight 0: they do not vary "
                "over the data, so its score is undefined; use expert or equal weights, or "
                "leave them out",
                table.source,
            )
    return levels
