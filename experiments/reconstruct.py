"""Reconstruct the paper's unpublished 2022 provincial data, and draw alternative reconstructions.

The paper publishes its method (Table 1), the descriptive statistics of its raw data (Table 2) and
its results (Table 3), but not the raw data. This script holds every sourced value fixed
(``data/sourced_values.csv``, written by ``compile_sources.py``) and solves the remaining cells as
one mixed-integer linear programme (scipy's ``milp``, HiGHS) so that:

- every Table 3 sub-index and total is reproduced within printing precision, with the ranks;
- each indicator's minimum and maximum equal Table 2's (exact where a source or the text pins them),
  and its mean rounds to Table 2's printed mean;
- orderings and shares stated in the text hold (see ``text_constraints``);
- counts are integers, nothing is negative, and values stay as close as possible (normalised L1
  distance) to a documented prior: a cited prior where one exists (an earlier cumulative count, a
  count under another definition), otherwise the unit's own Table 3 sub-index score placed on the
  indicator's range (``min + score / 100 * (max - min)``).

Standard deviations are not linear and are not constrained; the script reports how they compare.
Alternative datasets are solved from randomly perturbed priors (log-normal noise), giving a sample
of feasible reconstructions that the uncertainty analysis can treat as one more factor.

Usage: ``python experiments/reconstruct.py [--alternatives 200] [--seed 2024]`` (writes the
package data).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
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
#: tangent points (in units of the indicator's range) of the piecewise-linear quadratic distance
TANGENTS = np.array([-0.8, -0.4, -0.2, -0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8])


@dataclass
class Problem:
    """The cells of the 2022 cross-section, what is fixed, and the range of every indicator."""

    units: list[str]
    indicators: list[str]
    fixed: dict[tuple[str, str], tuple[float, str, str]]  # (unit, code) -> value, status, source
    lower: dict[tuple[str, str], float]
    prior_facts: dict[tuple[str, str], float]
    low: dict[str, float]
    high: dict[str, float]
    table2: pd.DataFrame
    table3: pd.DataFrame


def load_problem() -> Problem:
    spec = nqpf_spec()
    table2 = pd.read_csv(packaged("paper/table2_descriptive_2022.csv")).set_index("code")
    table3 = pd.read_csv(packaged("paper/table3_scores_2022.csv"))
    facts = pd.read_csv(SOURCED)
    facts = facts[facts.indicator.isin(spec.indicators) & (facts.unit != "China")].copy()
    facts["value"] = pd.to_numeric(facts["value"])
    current = facts[facts.year == YEAR]
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
        (r.unit, r.indicator): float(r.value)
        for r in current[current.use == "lower_bound"].itertuples()
    }
    prior_facts = _scaled_priors(facts[facts.use == "prior"], table2)
    low, high = {}, {}
    for code in spec.indicators:
        values = [v for (u, c), (v, _, _) in fixed.items() if c == code]
        printed_min, printed_max = float(table2.loc[code, "min"]), float(table2.loc[code, "max"])
        high[code] = (
            max(values)
            if values
            and round(max(values)) == printed_max
            or (values and max(values) > printed_max)
            else printed_max
        )
        low[code] = min(values) if values and round(min(values)) == printed_min else printed_min
        if code in STRICTLY_POSITIVE and low[code] == 0:
            low[code] = 0.25
    return Problem(
        list(table3.province),
        list(spec.indicators),
        fixed,
        lower,
        prior_facts,
        low,
        high,
        table2,
        table3,
    )


def _scaled_priors(priors: pd.DataFrame, table2: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Cited priors; a count at an earlier date is scaled to the total implied by Table 2's mean."""
    result = {}
    for code, group in priors.groupby("indicator"):
        scale = 1.0
        if (group.year < YEAR).all():
            scale = 31 * float(table2.loc[code, "mean"]) / group.value.sum()
        for row in group.itertuples():
            result[(row.unit, code)] = float(row.value) * scale
    return result


def default_prior(problem: Problem) -> np.ndarray:
    """Prior value of every (unit, indicator) cell (units x indicators)."""
    spec = nqpf_spec()
    scores = problem.table3.set_index("province")
    prior = np.empty((len(problem.units), len(problem.indicators)))
    for j, code in enumerate(problem.indicators):
        dimension = spec.dimensions[spec.parents[0][j]]
        for i, unit in enumerate(problem.units):
            level = problem.low[code] + scores.loc[unit, dimension] / 100 * (
                problem.high[code] - problem.low[code]
            )
            prior[i, j] = problem.prior_facts.get((unit, code), level)
    return prior


def calibrated_prior(
    problem: Problem, base: np.ndarray, pinned: dict[tuple[int, int], float], rounds: int = 25
) -> np.ndarray:
    """Stretch each indicator's prior about its mean until the solution's sd matches Table 2's.

    The sd is not linear in the data, so it is matched by a fixed-point iteration on the spread of
    the prior (factor ``target sd / achieved sd`` per round, kept within [0.2, 5]).
    """
    low = np.array([problem.low[c] for c in problem.indicators])
    high = np.array([problem.high[c] for c in problem.indicators])
    target = problem.table2.loc[problem.indicators, "sd"].to_numpy(dtype=float)
    centre = base.mean(axis=0)
    stretch = np.ones(len(problem.indicators))
    prior = base
    for _ in range(rounds):
        prior = np.clip(centre + stretch * (base - centre), low, high)
        achieved = solve(problem, prior, pinned).std(axis=0)
        if np.all(np.round(achieved) == target):
            break
        stretch = np.clip(stretch * target / np.maximum(achieved, 1e-9), 0.2, 5.0)
    return prior


def text_constraints() -> list[tuple[str, list[str], float]]:
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


class Model:
    """Variables: one per free cell, its absolute deviation from the prior, and extreme-value
    binaries."""

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
        self.n = 2 * len(self.free)

    def cell(self, i: int, j: int) -> tuple[int | None, float]:
        """(variable index, None) for a free cell; (None, value) for a fixed one."""
        key = (self.p.units[i], self.p.indicators[j])
        if key in self.p.fixed:
            return None, self.p.fixed[key][0]
        return self.position[(i, j)], 0.0

    def add(self, terms: dict[int, float], low: float, high: float) -> None:
        self.rows.append((terms, low, high))

    def linear_in_cells(
        self, coefficients: dict[tuple[int, int], float]
    ) -> tuple[dict[int, float], float]:
        terms: dict[int, float] = {}
        constant = 0.0
        for (i, j), a in coefficients.items():
            var, value = self.cell(i, j)
            if var is None:
                constant += a * value
            else:
                terms[var] = terms.get(var, 0.0) + a
        return terms, constant


def build(problem: Problem, prior: np.ndarray) -> tuple[Model, np.ndarray]:
    spec = nqpf_spec()
    model = Model(problem)
    codes = problem.indicators
    span = np.array([problem.high[c] - problem.low[c] for c in codes])
    scores = problem.table3.set_index("province")
    dim_weight = {d: spec.weights[1][k] for k, d in enumerate(spec.dimensions)}

    def sub_index(i: int, dimension: str) -> dict[tuple[int, int], float]:
        members = [
            j for j, c in enumerate(codes) if spec.dimensions[spec.parents[0][j]] == dimension
        ]
        return {(i, j): 100 * spec.weights[0][j] / dim_weight[dimension] / span[j] for j in members}

    def offset(coefficients: dict[tuple[int, int], float]) -> float:
        return sum(a * problem.low[codes[j]] for (_, j), a in coefficients.items())

    outputs = {}
    for i, unit in enumerate(problem.units):
        total: dict[tuple[int, int], float] = {}
        total_offset = 0.0
        for dimension in spec.dimensions:
            coefficients = sub_index(i, dimension)
            terms, constant = model.linear_in_cells(coefficients)
            shift = constant - offset(coefficients)
            target = scores.loc[unit, dimension]
            model.add(terms, target - TOLERANCE - shift, target + TOLERANCE - shift)
            outputs[(unit, dimension)] = (coefficients, offset(coefficients))
            share = dim_weight[dimension] / sum(dim_weight.values())
            for key, a in coefficients.items():
                total[key] = total.get(key, 0.0) + share * a
            total_offset += share * offset(coefficients)
        terms, constant = model.linear_in_cells(total)
        target = scores.loc[unit, "total"]
        model.add(
            terms,
            target - TOLERANCE - constant + total_offset,
            target + TOLERANCE - constant + total_offset,
        )
        outputs[(unit, "total")] = (total, total_offset)
    _rank_constraints(model, problem, outputs)
    _mean_constraints(model, problem)
    _text_constraints(model, problem)
    return model, span


def _rank_constraints(model: Model, problem: Problem, outputs) -> None:
    """Consecutive ranks keep their order unless the printed scores are equal."""
    table3 = problem.table3
    for output in ("tech", "factor", "industry", "total"):
        ordered = table3.sort_values(f"{output}_rank")
        for upper, lower in zip(ordered.itertuples(), ordered.iloc[1:].itertuples(), strict=False):
            if getattr(upper, output) == getattr(lower, output):
                continue
            a, _ = outputs[(upper.province, output)]
            b, _ = outputs[(lower.province, output)]
            difference = dict(a)
            for key, value in b.items():
                difference[key] = difference.get(key, 0.0) - value
            terms, constant = model.linear_in_cells(difference)
            model.add(terms, 1e-4 - constant, np.inf)


def extreme_cells(problem: Problem, prior: np.ndarray) -> dict[tuple[int, int], float]:
    """Where no fixed value reaches an indicator's Table 2 minimum (maximum), the free cell with the
    lowest (highest) prior takes it exactly; the unit the text names first takes the maximum."""
    pinned = {}
    leaders = {code: order[0] for code, order, _ in text_constraints()}
    for j, code in enumerate(problem.indicators):
        fixed = [v for (u, c), (v, _, _) in problem.fixed.items() if c == code]
        free = [i for i, u in enumerate(problem.units) if (u, code) not in problem.fixed]
        for extreme, pick in ((problem.high[code], np.argmax), (problem.low[code], np.argmin)):
            if free and not any(abs(v - extreme) < 1e-9 for v in fixed):
                i = free[int(pick(prior[free, j]))]
                if pick is np.argmax and code in leaders:
                    i = problem.units.index(leaders[code])
                pinned[(i, j)] = extreme
    return pinned


def _mean_constraints(model: Model, problem: Problem) -> None:
    n = len(problem.units)
    for j, code in enumerate(problem.indicators):
        terms, constant = model.linear_in_cells({(i, j): 1.0 for i in range(n)})
        if not terms:
            continue
        mean = float(problem.table2.loc[code, "mean"])
        model.add(terms, n * (mean - 0.499) - constant, n * (mean + 0.499) - constant)


def _text_constraints(model: Model, problem: Problem) -> None:
    units = problem.units
    for code, order, margin in text_constraints():
        j = problem.indicators.index(code)
        named = [u for u in order if u != "*"]
        chain = [[units.index(u)] for u in named] + [
            [i for i, u in enumerate(units) if u not in named]
        ]
        for above, below in zip(chain, chain[1:], strict=False):
            for a in above:
                for b in below:
                    terms, constant = model.linear_in_cells({(a, j): 1.0, (b, j): -1.0})
                    if terms:
                        model.add(terms, margin - constant, np.inf)
    n = len(units)
    j = problem.indicators.index("unicorns")
    terms, constant = model.linear_in_cells({(i, j): 1.0 for i in range(n)})
    model.add(terms, 316 - constant, 316 - constant)  # 79 + 66 + 59 = 204 is 64.6% of 316
    j = problem.indicators.index("green_factories_parks")
    four = {units.index(u) for u in ("Guangdong", "Shandong", "Zhejiang", "Jiangsu")}
    # the four provinces hold 29.1% of all green factories and parks: 0.2905 <= share < 0.2915
    for share, sign in ((0.2905, 1.0), (0.2915, -1.0)):
        terms, constant = model.linear_in_cells(
            {(i, j): sign * ((i in four) - share) for i in range(n)}
        )
        model.add(terms, -constant, np.inf)
    for unit in ("Zhejiang", "Jiangsu"):
        terms, constant = model.linear_in_cells({(units.index(unit), j): 1.0})
        model.add(terms, 301 - constant, 402 - constant)


def solve(problem: Problem, prior: np.ndarray, pinned: dict[tuple[int, int], float]) -> np.ndarray:
    """The reconstruction closest to ``prior`` (squared distance in units of each indicator's range,
    as tangent lines), with the ``pinned`` cells at their indicator's extremes; returns units x
    indicators values."""
    model, span = build(problem, prior)
    n_free = len(model.free)
    lower = np.zeros(model.n)
    upper = np.full(model.n, np.inf)
    objective = np.r_[np.zeros(n_free), np.ones(n_free)]
    integrality = np.zeros(model.n)
    for k, (i, j) in enumerate(model.free):
        code = problem.indicators[j]
        lower[k] = max(problem.low[code], problem.lower.get((problem.units[i], code), -np.inf))
        upper[k] = problem.high[code]
        if (i, j) in pinned:
            lower[k] = upper[k] = pinned[(i, j)]
        integrality[k] = code in COUNT_INDICATORS
    n_tangents = len(TANGENTS)
    matrix = lil_matrix((len(model.rows) + n_tangents * n_free, model.n))
    row_low, row_high = [], []
    for r, (terms, low, high) in enumerate(model.rows):
        for var, a in terms.items():
            matrix[r, var] = a
        row_low.append(low)
        row_high.append(high)
    base = len(model.rows)
    for k, (i, j) in enumerate(model.free):
        # t >= 2 u0 (x - prior) / span - u0^2 for each tangent point u0:
        # t >= ((x - prior) / span)^2 from below
        for m, u0 in enumerate(TANGENTS):
            row = base + n_tangents * k + m
            matrix[row, k] = 2 * u0 / span[j]
            matrix[row, n_free + k] = -1.0
            row_low.append(-np.inf)
            row_high.append(u0**2 + 2 * u0 * prior[i, j] / span[j])
    result = milp(
        objective,
        constraints=LinearConstraint(matrix.tocsr(), row_low, row_high),
        integrality=integrality,
        bounds=Bounds(lower, upper),
        options={"time_limit": 300, "mip_rel_gap": 1e-2},
    )
    if result.x is None:
        raise RuntimeError(f"no feasible reconstruction: {result.message}")
    values = np.empty((len(problem.units), len(problem.indicators)))
    for (u, c), (v, _, _) in problem.fixed.items():
        values[problem.units.index(u), problem.indicators.index(c)] = v
    for k, (i, j) in enumerate(model.free):
        values[i, j] = (
            round(result.x[k])
            if problem.indicators[j] in COUNT_INDICATORS
            else round(result.x[k], DECIMALS)
        )
    return values


def provenance(problem: Problem, values: np.ndarray) -> pd.DataFrame:
    """Tidy rows ``unit, indicator, year, value, status, source`` for the 2022 cross-section."""
    rows = []
    for i, unit in enumerate(problem.units):
        for j, code in enumerate(problem.indicators):
            if (unit, code) in problem.fixed:
                _, status, source = problem.fixed[(unit, code)]
            else:
                status, source = (
                    "reconstructed",
                    "experiments/reconstruct.py: consistent with Tables 2-3, closest to the prior",
                )
                if (unit, code) in problem.prior_facts:
                    source += " (prior from data/sourced_values.csv)"
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


def alternatives(problem: Problem, count: int, seed: int, jobs: int = 2) -> pd.DataFrame:
    """Reconstructions from priors perturbed by log-normal noise (sd 0.3), one column per draw."""
    from joblib import Parallel, delayed

    pinned = extreme_cells(problem, default_prior(problem))
    base = calibrated_prior(problem, default_prior(problem), pinned)
    spans = np.array([problem.high[c] - problem.low[c] for c in problem.indicators])
    streams = np.random.SeedSequence(seed).spawn(count)

    def draw(stream: np.random.SeedSequence) -> np.ndarray:
        rng = np.random.default_rng(stream)
        prior = base * np.exp(rng.normal(0.0, 0.3, size=base.shape)) + 0.01 * spans * rng.random(
            base.shape
        )
        low = np.array([problem.low[c] for c in problem.indicators])
        return solve(problem, np.clip(prior, low, low + spans), pinned)

    draws = Parallel(n_jobs=jobs)(delayed(draw)(s) for s in streams)
    free = [
        (i, j)
        for i, u in enumerate(problem.units)
        for j, c in enumerate(problem.indicators)
        if (u, c) not in problem.fixed
    ]
    frame = pd.DataFrame(
        {
            "unit": [problem.units[i] for i, _ in free],
            "indicator": [problem.indicators[j] for _, j in free],
        }
    )
    columns = {f"draw_{d:03d}": [values[i, j] for i, j in free] for d, values in enumerate(draws)}
    return pd.concat([frame, pd.DataFrame(columns)], axis=1)


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
    base = default_prior(problem)
    pinned = extreme_cells(problem, base)
    prior = calibrated_prior(problem, base, pinned)
    values = solve(problem, prior, pinned)
    provenance(problem, values).to_csv(packaged("nqpf_provinces.csv"), index=False)
    print(f"wrote {packaged('nqpf_provinces.csv')}")
    if args.alternatives:
        alternatives(problem, args.alternatives, args.seed, args.jobs).to_csv(
            packaged("nqpf_alternatives.csv.gz"),
            index=False,
            compression={"method": "gzip", "mtime": 0},
        )
        alternatives_path = packaged("nqpf_alternatives.csv.gz")
        print(f"wrote {args.alternatives} alternative reconstructions to {alternatives_path}")


if __name__ == "__main__":
    main()
