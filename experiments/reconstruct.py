"""Reconstruct the paper's unpublished 2022 provincial data, and draw alternatives that span it.

The paper publishes its method (Table 1), the descriptive statistics of its raw data (Table 2) and
its results (Table 3), but not the raw data. This script holds every sourced value fixed
(``data/sourced_values.csv``, written by ``compile_sources.py``) and solves the other cells as one
mixed-integer linear programme (scipy's ``milp``, HiGHS) in which:

- every Table 3 sub-index and total is reproduced within printing precision (0.049), with the
  printed ranks, and the text's dimension means, region means and ratios hold;
- each indicator's minimum and maximum are Table 2's (a sourced value where one rounds to it, else
  the middle of the printed value's rounding interval), held by whichever cell the solver chooses;
  each mean rounds to Table 2's; orderings, totals and shares stated in the text hold;
- every unknown cell stays inside its plausible band from related official statistics
  (``plausibility.py``), counts are integers, sourced bounds hold;
- the solution is the closest to the related-data priors (squared distance in units of each cell's
  band, as tangent lines) plus a penalty on each reproduced score's distance from the printed one.

Alternatives aim at a random point of every cell's band instead of its prior (and draw each
unsourced extreme inside its rounding interval), so that together they span the feasible set; the
script reports, per cell, the feasible range (linear relaxation) and the share the alternatives
cover. HiGHS runs without time limits, so regeneration gives the same files.

Usage: ``python experiments/reconstruct.py [--alternatives 200] [--seed 2024] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from plausibility import RULES, plausible_bands, related_statistics
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix
from shipped_tables import national_panel, units_table

from nqpf_sens import nqpf_spec
from nqpf_sens.indices.nqpf.data import COUNT_INDICATORS, packaged

ROOT = Path(__file__).resolve().parents[1]
SOURCED = ROOT / "data" / "sourced_values.csv"
YEAR = 2022
TOLERANCE = 0.049  # printed to one decimal: the true value lies within 0.05
STRICTLY_POSITIVE = ("rd_intensity", "rd_fte")  # a printed minimum of 0 means a value in (0, 0.5)
DECIMALS = 4
STATUS_ORDER = ("official", "paper", "derived")
ERROR_PENALTY = 2.0  # objective cost of one point of difference from a printed score
BAND_PENALTY = 100.0  # objective cost of leaving a cell's plausible band, per band width
#: tangent points (in units of the cell's band) of the piecewise-linear squared distance
TANGENTS = np.array([-0.8, -0.4, -0.2, -0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8])
#: means the text states: dimension means of all provinces, total means per region
TEXT_MEANS = {"tech": 11.5, "factor": 31.8, "industry": 26.8}
REGION_MEANS = {"East": 39.9, "Central": 19.7, "West": 13.3, "Northeast": 8.5}
RECONSTRUCTED = "experiments/reconstruct.py: consistent with Tables 2-3 and the text"


@dataclass(frozen=True)
class Problem:
    """The cells of the 2022 cross-section: what is fixed, bounded, plausible and extreme."""

    units: list[str]
    indicators: list[str]
    fixed: dict[tuple[str, str], tuple[float, str, str]]  # (unit, code) -> value, status, source
    lower: dict[tuple[str, str], float]
    upper: dict[tuple[str, str], float]
    bands: pd.DataFrame  # (unit, code) -> prior, band_low, band_high, basis
    low: dict[str, float]  # each indicator's minimum and maximum (the normalisation's ends)
    high: dict[str, float]
    rounding: dict[tuple[str, str], tuple[float, float]]  # (code, "low"|"high") -> interval
    table2: pd.DataFrame
    table3: pd.DataFrame


def load_problem() -> Problem:
    spec = nqpf_spec()
    table2 = pd.read_csv(packaged("paper/table2_descriptive_2022.csv")).set_index("code")
    table3 = pd.read_csv(packaged("paper/table3_scores_2022.csv"))
    units = list(table3.province)
    facts = pd.read_csv(SOURCED)
    facts = facts[(facts.unit != "China") & (facts.indicator != "region")].copy()
    facts["value"] = pd.to_numeric(facts["value"])
    current = facts[(facts.year == YEAR) & facts.indicator.isin(spec.indicators)]
    fixed: dict[tuple[str, str], tuple[float, str, str]] = {}
    for row in (
        current[current.use == "fixed"]
        .sort_values("status", key=lambda s: s.map(STATUS_ORDER.index))
        .itertuples()
    ):
        key = (row.unit, row.indicator)
        if key in fixed and abs(fixed[key][0] - row.value) > 1e-9:
            raise ValueError(f"sources disagree on {key}: {fixed[key][0]} vs {row.value}")
        fixed.setdefault(key, (float(row.value), row.status, row.source))
    lower = {
        (r.unit, r.indicator): r.value for r in current[current.use == "lower_bound"].itertuples()
    }
    upper = {
        (r.unit, r.indicator): r.value for r in current[current.use == "upper_bound"].itertuples()
    }
    cited = {
        (r.unit, r.indicator): r.value
        for r in current[current.use == "prior"].itertuples()
        if RULES[r.indicator].kind != "count_since"
    }
    bands = plausible_bands(
        related_statistics(facts, units), table2, {k: v[0] for k, v in fixed.items()}, cited
    )
    low, high, rounding = {}, {}, {}
    for code in spec.indicators:
        values = [v for (_, c), (v, _, _) in fixed.items() if c == code]
        for side, pick in (("low", min), ("high", max)):
            printed = float(table2.loc[code, "min" if side == "low" else "max"])
            interval = (max(printed - 0.5, 0.0), printed + 0.5)
            if code in COUNT_INDICATORS:
                interval = (printed, printed)
            sourced = [v for v in values if interval[0] <= v <= interval[1]]
            if sourced:
                value, interval = pick(sourced), (pick(sourced), pick(sourced))
            else:
                value = (interval[0] + interval[1]) / 2 if code in STRICTLY_POSITIVE else printed
                if code in STRICTLY_POSITIVE and printed == 0:
                    value = 0.25  # the middle of (0, 0.5): neither can be zero
            (low if side == "low" else high)[code] = value
            rounding[(code, side)] = interval
    return Problem(
        units,
        list(spec.indicators),
        fixed,
        lower,
        upper,
        bands,
        low,
        high,
        rounding,
        table2,
        table3,
    )


class Model:
    """A linear model over the free cells: each expression is ``({variable: coefficient}, c)``."""

    def __init__(self, problem: Problem):
        self.p = problem
        self.free = [
            (i, j)
            for i, u in enumerate(problem.units)
            for j, c in enumerate(problem.indicators)
            if (u, c) not in problem.fixed
        ]
        self.position = {cell: k for k, cell in enumerate(self.free)}
        self.rows: list[tuple[dict[int, float], float, float]] = []
        self.n = len(self.free)

    def new_variable(self) -> int:
        self.n += 1
        return self.n - 1

    def cells(self, coefficients: dict[tuple[int, int], float]) -> tuple[dict[int, float], float]:
        """The expression ``sum a * cell``: free cells as variables, fixed ones as a constant."""
        terms: dict[int, float] = {}
        constant = 0.0
        for (i, j), a in coefficients.items():
            key = (self.p.units[i], self.p.indicators[j])
            if key in self.p.fixed:
                constant += a * self.p.fixed[key][0]
            else:
                k = self.position[(i, j)]
                terms[k] = terms.get(k, 0.0) + a
        return terms, constant

    def add(self, expression: tuple[dict[int, float], float], low: float, high: float) -> None:
        """``low <= expression <= high``."""
        terms, constant = expression
        if terms:
            self.rows.append((terms, low - constant, high - constant))


def scores(problem: Problem) -> dict[tuple[str, str], dict[tuple[int, int], float]]:
    """Each unit's sub-indices and total as linear maps of the cells (plus a constant, returned
    under the key ``(-1, -1)``), min-max normalised with the problem's extremes."""
    spec = nqpf_spec()
    codes = problem.indicators
    dim_weight = dict(zip(spec.dimensions, spec.weights[1], strict=True))
    outputs = {}
    for i, unit in enumerate(problem.units):
        total: dict[tuple[int, int], float] = {}
        for dimension in spec.dimensions:
            score: dict[tuple[int, int], float] = {(-1, -1): 0.0}
            for j, code in enumerate(codes):
                if spec.dimensions[spec.parents[0][j]] != dimension:
                    continue
                span = problem.high[code] - problem.low[code]
                a = 100 * spec.weights[0][j] / dim_weight[dimension] / span
                score[(i, j)] = a
                score[(-1, -1)] -= a * problem.low[code]
            outputs[(unit, dimension)] = score
            share = dim_weight[dimension] / sum(dim_weight.values())
            for key, a in score.items():
                total[key] = total.get(key, 0.0) + share * a
        outputs[(unit, "total")] = total
    return outputs


def linear(model: Model, score: dict[tuple[int, int], float]) -> tuple[dict[int, float], float]:
    cells = {k: a for k, a in score.items() if k != (-1, -1)}
    terms, constant = model.cells(cells)
    return terms, constant + score.get((-1, -1), 0.0)


def combine(*parts: tuple[float, dict[tuple[int, int], float]]) -> dict[tuple[int, int], float]:
    result: dict[tuple[int, int], float] = {}
    for weight, score in parts:
        for key, a in score.items():
            result[key] = result.get(key, 0.0) + weight * a
    return result


def build(problem: Problem) -> tuple[Model, list[int]]:
    """The constraints of the reconstruction; returns the model and its error variables."""
    model = Model(problem)
    outputs = scores(problem)
    table3 = problem.table3.set_index("province")
    errors = []
    for (unit, output), score in outputs.items():
        terms, constant = linear(model, score)
        error = model.new_variable()  # error >= |score - printed|
        errors.append(error)
        printed = float(table3.loc[unit, output])
        model.add(({**terms, error: 1.0}, constant), printed, np.inf)
        model.add(({**terms, error: -1.0}, constant), -np.inf, printed)
    _rank_constraints(model, outputs)
    n = len(problem.units)
    for output, mean in TEXT_MEANS.items():
        average = combine(*((1 / n, outputs[(u, output)]) for u in problem.units))
        model.add(linear(model, average), mean - TOLERANCE, mean + TOLERANCE)
    regions = table3.region
    for region, mean in REGION_MEANS.items():
        members = list(regions[regions == region].index)
        average = combine(*((1 / len(members), outputs[(u, "total")]) for u in members))
        model.add(linear(model, average), mean - TOLERANCE, mean + TOLERANCE)
    for j, code in enumerate(problem.indicators):
        mean = float(problem.table2.loc[code, "mean"])
        model.add(
            model.cells({(i, j): 1.0 for i in range(n)}), n * (mean - 0.499), n * (mean + 0.499)
        )
    _text_constraints(model, problem)
    return model, errors


def _rank_constraints(model: Model, outputs) -> None:
    """Consecutive ranks keep their order unless the printed scores are equal."""
    table3 = model.p.table3
    for output in ("tech", "factor", "industry", "total"):
        ordered = table3.sort_values(f"{output}_rank")
        for upper, lower in zip(ordered.itertuples(), ordered.iloc[1:].itertuples(), strict=False):
            if getattr(upper, output) == getattr(lower, output):
                continue
            difference = combine(
                (1.0, outputs[(upper.province, output)]), (-1.0, outputs[(lower.province, output)])
            )
            model.add(linear(model, difference), 1e-4, np.inf)


def text_orderings() -> list[tuple[str, list[str], float]]:
    """Orderings the paper's text states: (indicator, units from first down, strict margin)."""
    return [
        ("sei_patents", ["Guangdong", "Beijing", "Jiangsu", "*"], 1),
        ("data_openness", ["Shandong", "Zhejiang", "Shanghai", "*"], 0.01),
        ("sei_output_share", ["Shanghai", "Jiangsu", "*"], 0.01),
        ("labour_productivity", ["Beijing", "Shanghai", "*"], 0.01),
        ("unicorns", ["Beijing", "Shanghai", "Guangdong", "*"], 0),
        ("clusters_centres", ["Jiangsu", "Guangdong", "*"], 1),
        ("smart_5g_factories", ["Jiangsu", "Shandong", "*"], 1),
        ("green_factories_parks", ["Guangdong", "Shandong", "*"], 1),
    ]


def _text_constraints(model: Model, problem: Problem) -> None:
    units = problem.units
    n = len(units)
    for code, order, margin in text_orderings():
        j = problem.indicators.index(code)
        named = [u for u in order if u != "*"]
        chain = [[units.index(u)] for u in named] + [
            [i for i, u in enumerate(units) if u not in named]
        ]
        for above, below in zip(chain, chain[1:], strict=False):
            for a in above:
                for b in below:
                    model.add(model.cells({(a, j): 1.0, (b, j): -1.0}), margin, np.inf)

    def column(code: str) -> dict[tuple[int, int], float]:
        return {(i, problem.indicators.index(code)): 1.0 for i in range(n)}

    # "79 ... a quarter of the national total"; with 66 and 59, "64.6%": 204 / 316
    model.add(model.cells(column("unicorns")), 316, 316)
    # Beijing's 56 awards are "28% of the total": 56 / total rounds to 28%, total 197..203
    model.add(model.cells(column("sci_awards")), 197, 203)
    j = problem.indicators.index("green_factories_parks")
    four = {units.index(u) for u in ("Guangdong", "Shandong", "Zhejiang", "Jiangsu")}
    # the four provinces hold 29.1% of all green factories and parks: 0.2905 <= share < 0.2915
    for share, sign in ((0.2905, 1.0), (0.2915, -1.0)):
        model.add(model.cells({(i, j): sign * ((i in four) - share) for i in range(n)}), 0, np.inf)
    for unit in ("Zhejiang", "Jiangsu"):  # "both above 300", below Shandong's 403
        model.add(model.cells({(units.index(unit), j): 1.0}), 301, 402)


def cell_bounds(problem: Problem, model: Model) -> tuple[np.ndarray, ...]:
    """Each free cell's hard bounds (the indicator's extremes, sourced bounds) and its band."""
    shape = len(model.free)
    lower, upper, band_low, band_high = (np.empty(shape) for _ in range(4))
    for k, (i, j) in enumerate(model.free):
        key = (problem.units[i], problem.indicators[j])
        band = problem.bands.loc[key]
        lower[k] = max(problem.low[key[1]], problem.lower.get(key, -np.inf))
        upper[k] = min(problem.high[key[1]], problem.upper.get(key, np.inf))
        band_low[k] = min(max(band.band_low, lower[k]), upper[k])
        band_high[k] = max(min(band.band_high, upper[k]), lower[k])
        if key[1] in COUNT_INDICATORS:
            band_low[k], band_high[k] = np.ceil(band_low[k] - 1e-9), np.floor(band_high[k] + 1e-9)
            band_high[k] = max(band_high[k], band_low[k])
        if lower[k] > upper[k]:
            raise ValueError(f"{key}: its bounds leave no value ({lower[k]} > {upper[k]})")
    return lower, upper, band_low, band_high


def extreme_holders(
    problem: Problem, model: Model, band_low: np.ndarray, band_high: np.ndarray
) -> list[tuple[list[int], str, float]]:
    """For each extreme no sourced value holds: the free cells that could take it (those whose
    band contains it, else every free cell of the indicator)."""
    holders = []
    for j, code in enumerate(problem.indicators):
        for side in ("low", "high"):
            value = (problem.low if side == "low" else problem.high)[code]
            if any(
                abs(v - value) < 1e-9 for (_, c), (v, _, _) in problem.fixed.items() if c == code
            ):
                continue
            column = [k for k, (_, jj) in enumerate(model.free) if jj == j]
            cells = [k for k in column if band_low[k] - 1e-9 <= value <= band_high[k] + 1e-9]
            holders.append((cells or column, side, value))
    return holders


def solve(
    problem: Problem,
    target: np.ndarray | None = None,
    relax: bool = False,
    direction: np.ndarray | None = None,
) -> np.ndarray:
    """The reconstruction closest to ``target`` (free cells; default: their priors).

    With ``direction``, minimise ``direction @ cells`` instead (a feasible extreme); ``relax``
    drops integrality (the linear relaxation). Returns the free cells' values.
    """
    model, errors = build(problem)
    lower, upper, band_low, band_high = cell_bounds(problem, model)
    n_free = len(model.free)
    if target is None:
        target = np.array(
            [
                problem.bands.loc[(problem.units[i], problem.indicators[j]), "prior"]
                for i, j in model.free
            ]
        )
    target = np.clip(target, band_low, band_high)
    width = np.maximum(band_high - band_low, 1e-3 * np.maximum(upper - lower, 1e-6))
    distance = [model.new_variable() for _ in range(n_free)] if direction is None else []
    for k, t in enumerate(distance):
        # t >= ((x - target) / width)^2 from below: t >= 2 u0 (x - target) / width - u0^2
        for u0 in TANGENTS:
            model.add(
                ({k: 2 * u0 / width[k], t: -1.0}, 0.0),
                -np.inf,
                u0**2 + 2 * u0 * target[k] / width[k],
            )
    outside = []  # how far each cell leaves its band, below and above (soft: heavily penalised)
    for k in range(n_free):
        below, above = model.new_variable(), model.new_variable()
        outside += [below, above]
        model.add(({k: 1.0, below: 1.0}, 0.0), band_low[k], np.inf)
        model.add(({k: 1.0, above: -1.0}, 0.0), -np.inf, band_high[k])
    holders = extreme_holders(problem, model, band_low, band_high)
    binaries = []
    for cells, side, value in holders:
        picks = [model.new_variable() for _ in cells]
        binaries += picks
        model.add(({z: 1.0 for z in picks}, 0.0), 1, 1)
        for k, z in zip(cells, picks, strict=True):
            if side == "high":  # x >= value * z
                model.add(({k: 1.0, z: -(value - lower[k])}, 0.0), lower[k], np.inf)
            else:  # x <= value + (upper - value) (1 - z)
                model.add(({k: 1.0, z: upper[k] - value}, 0.0), -np.inf, upper[k])
    n = model.n
    objective = np.zeros(n)
    objective[outside] = BAND_PENALTY / np.repeat(width, 2)
    if direction is None:
        objective[distance] = 1.0
        objective[errors] = ERROR_PENALTY
    else:
        objective[:n_free] = direction / width  # per band width: bands still bind
    low_bounds = np.zeros(n)
    high_bounds = np.full(n, np.inf)
    low_bounds[:n_free], high_bounds[:n_free] = lower, upper
    high_bounds[errors] = TOLERANCE
    high_bounds[binaries] = 1.0
    integrality = np.zeros(n)
    if not relax:
        integrality[binaries] = 1
        for k, (_, j) in enumerate(model.free):
            integrality[k] = problem.indicators[j] in COUNT_INDICATORS
    matrix = lil_matrix((len(model.rows), n))
    for r, (terms, _, _) in enumerate(model.rows):
        for var, a in terms.items():
            matrix[r, var] = a
    result = milp(
        objective,
        constraints=LinearConstraint(
            matrix.tocsr(), [r[1] for r in model.rows], [r[2] for r in model.rows]
        ),
        integrality=integrality,
        bounds=Bounds(low_bounds, high_bounds),
        options={"mip_rel_gap": 0.05},
    )
    if result.x is None:
        raise RuntimeError(f"no feasible reconstruction: {result.message}")
    values = result.x[:n_free]
    return np.array(
        [
            round(v) if problem.indicators[j] in COUNT_INDICATORS else round(v, DECIMALS)
            for v, (_, j) in zip(values, model.free, strict=True)
        ]
    )


def free_cells(problem: Problem) -> list[tuple[int, int]]:
    return Model(problem).free


def full_table(problem: Problem, free_values: np.ndarray) -> np.ndarray:
    """Units x indicators: the sourced values with the free cells filled in."""
    values = np.empty((len(problem.units), len(problem.indicators)))
    for (u, c), (v, _, _) in problem.fixed.items():
        values[problem.units.index(u), problem.indicators.index(c)] = v
    for (i, j), v in zip(free_cells(problem), free_values, strict=True):
        values[i, j] = v
    return values


def provenance(problem: Problem, values: np.ndarray) -> pd.DataFrame:
    """Tidy rows ``unit, indicator, year, value, status, source`` for the 2022 cross-section."""
    rows = []
    for i, unit in enumerate(problem.units):
        for j, code in enumerate(problem.indicators):
            if (unit, code) in problem.fixed:
                _, status, source = problem.fixed[(unit, code)]
            else:
                status = "reconstructed"
                basis = problem.bands.loc[(unit, code), "basis"]
                source = f"{RECONSTRUCTED}; plausible band from: {basis}"
            rows.append(
                {
                    "unit": unit,
                    "indicator": code,
                    "year": YEAR,
                    "value": values[i, j],
                    "status": status,
                    "source": source,
                }
            )
    return pd.DataFrame(rows)


def is_feasible(problem: Problem) -> bool:
    """Whether the linear relaxation of the reconstruction has a solution."""
    try:
        solve(problem, relax=True, direction=np.zeros(len(free_cells(problem))))
    except RuntimeError:
        return False
    return True


def with_extreme(problem: Problem, code: str, side: str, value: float) -> Problem:
    ends = dict(problem.low if side == "low" else problem.high)
    ends[code] = value
    return replace(problem, **{side: ends})


def feasible_extremes(problem: Problem, steps: int = 6) -> Problem:
    """The problem with each unsourced extreme's rounding interval narrowed (by bisection on the
    linear relaxation, the other extremes at their defaults) to the values Table 3 allows."""
    rounding = dict(problem.rounding)
    for (code, side), (a, b) in sorted(problem.rounding.items()):
        if a == b:
            continue
        middle = (problem.low if side == "low" else problem.high)[code]
        ends = []
        for far in (max(a, 0.01), b - 1e-3):
            near = middle  # feasible; move towards ``far`` while the problem stays feasible
            if is_feasible(with_extreme(problem, code, side, far)):
                near = far
            else:
                for _ in range(steps):
                    trial = (near + far) / 2
                    if is_feasible(with_extreme(problem, code, side, trial)):
                        near = trial
                    else:
                        far = trial
            ends.append(round(near, DECIMALS))
        rounding[(code, side)] = (ends[0], ends[1])
    return replace(problem, rounding=rounding)


def draw_problem(problem: Problem, rng: np.random.Generator) -> Problem:
    """The problem with every unsourced continuous extreme drawn inside its feasible interval."""
    for (code, side), (a, b) in sorted(problem.rounding.items()):
        if a < b:
            problem = with_extreme(problem, code, side, round(rng.uniform(a, b), DECIMALS))
    return problem


def alternative(problem: Problem, stream: np.random.SeedSequence) -> np.ndarray:
    """One alternative: the reconstruction closest to a uniformly random point of the bands, with
    the unsourced extremes drawn (drawn again if the draw leaves no feasible reconstruction)."""
    rng = np.random.default_rng(stream)
    model = Model(problem)
    _, _, band_low, band_high = cell_bounds(problem, model)
    for attempt in range(10):
        target = rng.uniform(band_low, band_high)
        try:
            return solve(draw_problem(problem, rng), target)
        except RuntimeError:
            if attempt == 9:
                raise
    raise AssertionError("unreachable")


def alternatives(problem: Problem, count: int, seed: int, jobs: int) -> list[np.ndarray]:
    from joblib import Parallel, delayed

    streams = np.random.SeedSequence(seed).spawn(count)
    return Parallel(n_jobs=jobs)(delayed(alternative)(problem, s) for s in streams)


def feasible_ranges(problem: Problem, jobs: int) -> np.ndarray:
    """Free cells x (min, max) over the linear relaxation of the constraints, bands included
    (a cell leaves its band only where the constraints force it to)."""
    from joblib import Parallel, delayed

    n_free = len(free_cells(problem))

    def extreme(k: int, sign: float) -> float:
        direction = np.zeros(n_free)
        direction[k] = sign
        return float(solve(problem, relax=True, direction=direction)[k])

    ends = Parallel(n_jobs=jobs)(
        delayed(extreme)(k, sign) for k in range(n_free) for sign in (1.0, -1.0)
    )
    return np.array(ends).reshape(n_free, 2)


def plausibility_table(
    problem: Problem, values: np.ndarray, draws: list[np.ndarray], ranges: np.ndarray | None
) -> pd.DataFrame:
    """Every cell with its plausible band, whether it lies inside, and for the free cells the
    feasible range and the share of it the alternatives cover."""
    frame = provenance(problem, values)[["unit", "indicator", "value", "status"]]
    frame = frame.join(problem.bands, on=["unit", "indicator"])
    frame["inside"] = (frame.value >= frame.band_low - 1e-9) & (
        frame.value <= frame.band_high + 1e-9
    )
    free = free_cells(problem)
    rows = [i * len(problem.indicators) + j for i, j in free]
    if draws:
        stacked = np.array(draws)
        frame.loc[rows, "alternatives_low"] = stacked.min(axis=0)
        frame.loc[rows, "alternatives_high"] = stacked.max(axis=0)
    if ranges is not None:
        frame.loc[rows, "feasible_low"] = ranges[:, 0]
        frame.loc[rows, "feasible_high"] = ranges[:, 1]
        if draws:
            width = ranges[:, 1] - ranges[:, 0]
            covered = stacked.max(axis=0) - stacked.min(axis=0)
            frame.loc[rows, "coverage"] = np.where(
                width > 1e-6, np.minimum(covered / np.maximum(width, 1e-12), 1.0), 1.0
            )
    return frame.round(DECIMALS)


def main() -> None:
    parser = argparse.ArgumentParser(description="Reconstruct the NQPF 2022 provincial data")
    parser.add_argument("--alternatives", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    facts = pd.read_csv(SOURCED)
    for name, table in (
        ("nqpf_units.csv", units_table(facts)),
        ("nqpf_national.csv", national_panel(facts, nqpf_spec().indicators)),
    ):
        table.to_csv(packaged(name), index=False)
        print(f"wrote {packaged(name)}")
    problem = load_problem()
    values = full_table(problem, solve(problem))
    provenance(problem, values).to_csv(packaged("nqpf_provinces.csv"), index=False)
    print(f"wrote {packaged('nqpf_provinces.csv')}")
    draws = []
    if args.alternatives:
        draws = alternatives(feasible_extremes(problem), args.alternatives, args.seed, args.jobs)
    ranges = feasible_ranges(problem, args.jobs)
    if draws:
        free = free_cells(problem)
        frame = pd.DataFrame(
            {
                "unit": [problem.units[i] for i, _ in free],
                "indicator": [problem.indicators[j] for _, j in free],
            }
        )
        columns = {f"draw_{d:03d}": values for d, values in enumerate(draws)}
        pd.concat([frame, pd.DataFrame(columns)], axis=1).to_csv(
            packaged("nqpf_alternatives.csv.gz"),
            index=False,
            compression={"method": "gzip", "mtime": 0},
        )
        print(f"wrote {len(draws)} alternatives to {packaged('nqpf_alternatives.csv.gz')}")
    plausibility_table(problem, values, draws, ranges).to_csv(
        packaged("nqpf_plausibility.csv"), index=False
    )
    print(f"wrote {packaged('nqpf_plausibility.csv')}")


if __name__ == "__main__":
    main()
