"""Uncertain factors: each maps columns of the unit hypercube to one part of a scenario.

A design row u in [0, 1)^D is decoded factor by factor, so any sampler (plain Monte Carlo, Sobol
low-discrepancy points, Saltelli's design) drives the same code. Kinds:

- ``choice``: a discrete engine option (``key`` = imputation, transformation, normalisation,
  aggregation, weighting) over ``options``, equiprobable or with ``probabilities``; one column.
- ``weights``: the weights of one tree level (``level``: 0 = indicators, 1 = dimensions, ...)
  perturbed around the scheme's weights: ``uniform`` multiplicative noise
  w (1 + U[-spread, spread]), or ``dirichlet`` with mean at the scheme's weights and
  ``concentration`` alpha (sampled through the inverse gamma CDF of each column; by default the
  alpha whose multipliers vary as much as the uniform ones of the same ``spread``, see
  :func:`matching_concentration`); only ratios matter, so renormalisation is implicit.
- ``exclude``: leave one indicator out (weight 0) or none, equiprobable over ``options``.
- ``dataset``: which of the alternative data tables (0 = the nominal one); one column.
- ``noise``: multiplicative measurement noise U[1 - spread, 1 + spread] on every raw cell, or
  with ``spread_by_status`` each cell's spread from its provenance (the data's ``status``), so
  that a cell another factor already varies (``dataset``: the reconstructed cells) is not
  perturbed twice; statuses not listed get ``spread`` (then 0 by default).
- ``mask``: ``cells`` observed cells blanked at random and refilled by the scenario's imputation
  rule.

``noise`` and ``mask`` use one column each: its value seeds a counter-based hash (splitmix64) that
draws the whole realisation, a deterministic function of the coordinate as the Sobol estimators
need, each cell's draw keyed by the cell's year, unit and indicator names, not by where it sits in
the data file (``uncertainty.cell_draws``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nqpf_sens.engine.pipeline import Pipeline
from nqpf_sens.errors import UserError
from nqpf_sens.uncertainty.cell_draws import masked_cells, noise_multipliers, scenario_keys

CHOICE_KEYS = (
    "imputation",
    "transformation",
    "normalisation",
    "aggregation",
    "mean_shift",
    "nonpositive",
    "power",
    "weighting",
    "winsor_max",
    "winsor_limit",
    "treat_fallback",
    "boxcox_lambda",
    "imputation_group",
    "data_threshold",
)
#: the keys each kind of factor takes besides name, kind, group and description (any other is a
#: mistake: it would be ignored without a word)
KIND_KEYS = {
    "choice": ("key", "options", "probabilities"),
    "weights": ("level", "distribution", "spread", "concentration"),
    "exclude": ("options", "probabilities"),
    "dataset": ("count", "probabilities"),
    "noise": ("spread", "spread_by_status"),
    "mask": ("cells",),
}
KINDS = tuple(KIND_KEYS)
NONE = "none"


#: factors that give every scenario its own copy of the data
OWN_DATA_KINDS = ("noise", "mask")


@dataclass(frozen=True)
class Factor:
    """One uncertain factor (a group of columns in Sobol analysis)."""

    name: str
    kind: str
    group: str = ""  # the Sobol group it belongs to (its own name when empty)
    key: str = ""
    options: tuple = ()
    probabilities: tuple[float, ...] = ()
    level: int = 0
    distribution: str = "uniform"
    spread: float = 0.25
    concentration: float | None = None  # None: calibrated to the uniform spread
    cells: int = 1
    n_columns: int = 1
    #: exclude: every element below the index, level by level (the order of the weight columns)
    elements: tuple[str, ...] = ()
    #: noise: each cell's spread (the data's shape) when it depends on the cell's status
    cell_spread: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def sobol_group(self) -> str:
        return self.group or self.name

    def option_index(self, u: np.ndarray) -> np.ndarray:
        """Map a column of uniforms to option indices (equiprobable or weighted)."""
        edges = (
            np.cumsum(self.probabilities)[:-1]
            if self.probabilities
            else np.arange(1, len(self.options)) / len(self.options)
        )
        return np.searchsorted(edges, u, side="right")


def matching_concentration(shares: np.ndarray, spread: float) -> float:
    """The Dirichlet concentration c whose weights vary, on average over the nodes, as much as the
    renormalised weights of the uniform multipliers 1 + U[-spread, spread] (only ratios matter).

    Renormalised, a uniform weight's coefficient of variation is about (spread / sqrt 3) sqrt(1 -
    2 s_i + sum_j s_j^2) (delta method); component i of Dirichlet(c s) has mean s_i and CV
    sqrt((1 - s_i) / (s_i (c + 1))). Equating their means over the nodes gives c."""
    positive = shares[shares > 0]
    uniform = spread / np.sqrt(3) * np.sqrt(1 - 2 * positive + (positive**2).sum()).mean()
    dirichlet = np.sqrt((1 - positive) / positive).mean()
    return max(float((dirichlet / uniform) ** 2 - 1), 1e-6)


@dataclass
class Decoded:
    """Scenario components decoded from design rows."""

    choice_index: np.ndarray  # (S, n_choice_factors): each choice factor's option
    datasets: np.ndarray  # (S,): each scenario's table
    weight_factors: list[np.ndarray]
    value_factors: np.ndarray | None = None
    masked: np.ndarray | None = None


class FactorSet:
    """The factors of a run, their column layout and decoding."""

    def __init__(
        self,
        factors: list[Factor],
        nominal: Pipeline,
        level_sizes: list[int],
        base_weights: list[np.ndarray],
        data_shape: tuple[int, int, int],
        observed: np.ndarray,
        cells: np.ndarray | None = None,
    ):
        names = [f.name for f in factors]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise UserError(f"factor names must be unique: {sorted(duplicated)[0]!r} is used twice")
        groups = [f.sobol_group for f in factors]
        for name, group in zip(names, groups, strict=True):
            if group in names and groups[names.index(group)] != group:
                raise UserError(
                    f"factor {name!r} joins group {group!r}, the name of a factor outside it: "
                    "name the group differently"
                )
        self.factors = factors
        self.nominal = nominal
        self.level_sizes = level_sizes
        self.base_weights = base_weights
        self.data_shape = data_shape
        self.observed = observed
        #: each cell's key for noise and masks (see ``cell_keys``; by default its position)
        self.cells = (
            np.arange(1, observed.size + 1, dtype=np.uint64) if cells is None else cells.ravel()
        )
        self.columns: list[slice] = []
        start = 0
        for factor in factors:
            self.columns.append(slice(start, start + factor.n_columns))
            start += factor.n_columns
        self.n_columns = start
        self.choices = [f for f in factors if f.kind == "choice"]
        self.per_scenario_data = any(f.kind in OWN_DATA_KINDS for f in factors)
        #: scenarios differ in their weights alone (one pipeline and the data for all)
        self.weights_alone = all(f.kind in ("weights", "exclude") for f in factors)

    def single_changes(self) -> list[tuple[str, Pipeline]]:
        """Every alternative of every choice factor alone, the rest nominal (the what-if)."""
        changes = []
        for factor in self.choices:
            for option in factor.options:
                value = tuple(option) if isinstance(option, list) else option
                if value != getattr(self.nominal, factor.key):
                    changes.append(
                        (f"{factor.name} = {option}", self.nominal.with_(**{factor.key: value}))
                    )
        return changes

    @property
    def groups(self) -> list[str]:
        """The Sobol group of every column (SALib's ``groups``): the factor's ``group``, by
        default its name, so that factors sharing a group move together in the design."""
        return [f.sobol_group for f in self.factors for _ in range(f.n_columns)]

    def decode(self, u: np.ndarray) -> Decoded:
        n = len(u)
        choice_index = np.zeros((n, len(self.choices)), dtype=np.int64)
        datasets = np.full(n, self.nominal.dataset, dtype=np.int64)
        weight_factors: list[np.ndarray | None] = [None] * len(self.level_sizes)  # None: ones
        value_factors = None
        masked = None
        for factor, columns in zip(self.factors, self.columns, strict=True):
            block = u[:, columns]
            if factor.kind == "choice":
                choice_index[:, self.choices.index(factor)] = factor.option_index(block[:, 0])
            elif factor.kind == "dataset":
                datasets = factor.option_index(block[:, 0])
            elif factor.kind == "weights":
                multipliers = self._weight_multipliers(factor, block)  # a new array
                current = weight_factors[factor.level]
                weight_factors[factor.level] = (
                    multipliers if current is None else current * multipliers
                )
            elif factor.kind == "exclude":
                chosen = np.asarray(factor.options, dtype=object)[factor.option_index(block[:, 0])]
                start = 0
                for k, size in enumerate(self.level_sizes):
                    level = weight_factors[k]
                    if level is None:
                        level = weight_factors[k] = np.ones((n, size))
                    for j, code in enumerate(factor.elements[start : start + size]):
                        level[chosen == code, j] = 0.0
                    start += size
            elif factor.kind == "noise":
                spread = (
                    np.full(self.cells.size, factor.spread)
                    if factor.cell_spread is None
                    else factor.cell_spread.ravel()
                )
                noise = noise_multipliers(scenario_keys(block[:, 0]), self.cells, spread)
                noise = noise.reshape(n, *self.data_shape)
                value_factors = noise if value_factors is None else value_factors * noise
            elif factor.kind == "mask":
                masked = self._mask(factor, block[:, 0])
        every_level = [
            np.ones((n, size)) if level is None else level
            for level, size in zip(weight_factors, self.level_sizes, strict=True)
        ]
        return Decoded(choice_index, datasets, every_level, value_factors, masked)

    def _weight_multipliers(self, factor: Factor, block: np.ndarray) -> np.ndarray:
        base = self.base_weights[factor.level]
        if factor.distribution == "uniform":
            return 1.0 + factor.spread * (2.0 * block - 1.0)
        from scipy.special import gammaln
        from scipy.stats import gamma  # here: scipy.stats takes a second to import

        shares = base / base.sum()
        if factor.spread == 0 and factor.concentration is None:
            return np.ones_like(block)
        concentration = factor.concentration or matching_concentration(shares, factor.spread)
        alpha = np.maximum(concentration * shares, 1e-6)
        u = np.clip(block, 1e-12, 1 - 1e-12)
        draws = gamma.ppf(u, alpha)
        # a small alpha's draws underflow to 0 (a whole row of them, for a small concentration):
        # their logarithms from the gamma CDF's leading term u = x^a / Gamma(a + 1), exact there
        with np.errstate(divide="ignore"):
            logs = np.where(draws > 0, np.log(draws), (np.log(u) + gammaln(alpha + 1)) / alpha)
        dirichlet = np.exp(logs - logs.max(axis=1, keepdims=True))
        dirichlet /= dirichlet.sum(axis=1, keepdims=True)
        return np.where(shares > 0, dirichlet / np.where(shares > 0, shares, 1.0), 0.0)

    def _mask(self, factor: Factor, u: np.ndarray) -> np.ndarray:
        observed = self.observed.reshape(-1)
        candidates = np.flatnonzero(observed)
        masked = masked_cells(scenario_keys(u), self.cells, candidates, factor.cells, observed.size)
        return masked.reshape(len(u), *self.data_shape)

    def pipeline(self, combination: np.ndarray) -> Pipeline:
        """The pipeline of one row of ``choice_index`` (its table is the scenario's own, drawn
        apart: see ``Decoded.datasets``)."""
        changes = {
            factor.key: factor.options[int(i)]
            for factor, i in zip(self.choices, combination, strict=True)
        }
        if isinstance(changes.get("aggregation"), list):
            changes["aggregation"] = tuple(changes["aggregation"])
        return self.nominal.with_(**changes)


def _cell_spread(
    by_status: dict, fallback: float, statuses: np.ndarray | None, source, where: str
) -> np.ndarray:
    """Each cell's noise spread from its status (``fallback`` for a status not listed); a listed
    status that no cell has is refused, as it is most likely a typo."""
    if not by_status:
        raise UserError("spread_by_status lists no status", source, where)
    for status, value in by_status.items():
        if not 0 <= value < 1:
            raise UserError(f"spread_by_status: {status} must be in [0, 1)", source, where)
    if statuses is None:
        raise UserError(
            "spread_by_status needs each cell's status: the data have no 'status' column "
            "(tidy files only)",
            source,
            where,
        )
    present = sorted(set(statuses.ravel()) - {None})
    unknown = [s for s in by_status if s not in present]
    if unknown:
        raise UserError(
            f"spread_by_status: no cell has status {unknown[0]!r} "
            f"(statuses in the data: {', '.join(present) or 'none'})",
            source,
            where,
        )
    spread = np.full(statuses.shape, fallback)
    for status, value in by_status.items():
        spread[statuses == status] = float(value)
    return spread


def _refuse_repeated(options: tuple, source, where: str) -> None:
    """An option listed twice would be drawn twice as often as the others, without a word."""
    seen: list = []
    for option in options:
        value = (type(option), tuple(option) if isinstance(option, list) else option)
        if value in seen:
            raise UserError(f"options: {option!r} is listed twice", source, where)
        seen.append(value)


def build_factor(
    entry: dict,
    number: int,
    spec,
    nominal: Pipeline,
    n_datasets: int,
    source,
    statuses: np.ndarray | None = None,
) -> Factor:
    """A :class:`Factor` from one ``[[factors]]`` table, every value checked against the index and
    data (``statuses``: the data's cell statuses, for a noise factor's ``spread_by_status``)."""
    from nqpf_sens.engine.pipeline import option_problem

    where = f"[[factors]] #{number} ({entry['name']})"
    kind = entry["kind"]
    if kind not in KINDS:
        raise UserError(f"unknown kind {kind!r} (choose from {', '.join(KINDS)})", source, where)
    stray = [
        k for k in entry if k not in ("name", "kind", "group", "description", *KIND_KEYS[kind])
    ]
    if stray:
        takes = ", ".join(KIND_KEYS[kind])
        raise UserError(
            f"{stray[0]!r} does not apply to a {kind} factor (it takes {takes})", source, where
        )
    fields = {"name": entry["name"], "kind": kind, "group": entry.get("group", entry["name"])}
    for label in ("name", "group"):
        if not fields[label].strip():
            raise UserError(f"{label} must be a non-empty name", source, where)
    probabilities = tuple(float(p) for p in entry.get("probabilities", ()))
    if kind == "choice":
        key = entry.get("key")
        if key not in CHOICE_KEYS:
            raise UserError(f"key must be one of {', '.join(CHOICE_KEYS)}", source, where)
        options = tuple(entry.get("options", ()))
        if len(options) < 2:
            raise UserError("a choice needs at least two options", source, where)
        _refuse_repeated(options, source, where)
        for option in options:
            value = tuple(option) if isinstance(option, list) else option
            problem = option_problem(nominal.with_(**{key: value}), spec)
            if problem:
                raise UserError(problem, source, where)
        fields.update(key=key, options=options)
    elif kind == "weights":
        level = entry.get("level", 0)
        if not 0 <= level < len(spec.levels) - 1:
            raise UserError(
                f"level must be between 0 (indicators) and {len(spec.levels) - 2}", source, where
            )
        distribution = entry.get("distribution", "uniform")
        if distribution not in ("uniform", "dirichlet"):
            raise UserError("distribution must be 'uniform' or 'dirichlet'", source, where)
        spread = float(entry.get("spread", 0.25))
        concentration = entry.get("concentration")
        if concentration is not None and distribution == "uniform":
            raise UserError("concentration applies to the dirichlet distribution", source, where)
        if concentration is not None and "spread" in entry:
            raise UserError(
                "give the dirichlet distribution its spread or its concentration, not both",
                source,
                where,
            )
        if concentration is not None:
            concentration = float(concentration)
        if not 0 <= spread < 1 or (concentration is not None and concentration <= 0):
            raise UserError("spread must be in [0, 1) and concentration positive", source, where)
        fields.update(
            level=level,
            distribution=distribution,
            spread=spread,
            concentration=concentration,
            n_columns=len(spec.levels[level]),
        )
    elif kind == "exclude":
        options = tuple(entry.get("options", (NONE, *spec.indicators)))
        if len(options) < 2:
            raise UserError(
                "an exclude factor needs at least two options ('none' and an element)",
                source,
                where,
            )
        _refuse_repeated(options, source, where)
        below = [code for level in spec.levels[:-1] for code in level]
        unknown = [o for o in options if o != NONE and o not in below]
        if unknown:
            raise UserError(
                f"unknown element {unknown[0]!r} (an indicator or an aggregate below the index)",
                source,
                where,
            )
        place = {
            code: (k, j) for k, nodes in enumerate(spec.levels[:-1]) for j, code in enumerate(nodes)
        }
        for option in options:
            if option != NONE and not spec.can_leave_out(*place[option]):
                raise UserError(
                    f"{option!r} has no sibling of positive weight: leaving it out empties its "
                    "parent",
                    source,
                    where,
                )
        fields.update(options=options, elements=tuple(below))
    elif kind == "dataset":
        count = entry.get("count", n_datasets - 1)
        if n_datasets < 2:
            raise UserError("no alternative datasets: give [data] alternatives", source, where)
        if not 1 <= count <= n_datasets - 1:
            raise UserError(f"count must be between 1 and {n_datasets - 1}", source, where)
        fields.update(options=tuple(range(count + 1)))
    elif kind == "noise":
        by_status = entry.get("spread_by_status")
        spread = float(entry.get("spread", 0.05 if by_status is None else 0.0))
        if not 0 <= spread < 1:
            raise UserError("spread must be in [0, 1)", source, where)
        fields.update(spread=spread)
        if by_status is not None:
            fields.update(cell_spread=_cell_spread(by_status, spread, statuses, source, where))
    else:
        cells = entry.get("cells", 1)
        if cells < 1:
            raise UserError("cells must be at least 1", source, where)
        fields.update(cells=cells)
    if probabilities:
        if (
            len(probabilities) != len(fields.get("options", ()))
            or abs(sum(probabilities) - 1) > 1e-9
            or min(probabilities) < 0
        ):
            raise UserError(
                "probabilities need one non-negative value per option, summing to 1", source, where
            )
        fields["probabilities"] = probabilities
    return Factor(**fields)
