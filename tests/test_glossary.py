"""Every column of every table a run writes has a plain-English meaning in the run's glossary."""

import json
import re
import time

import pandas as pd
import pytest
from conftest import write_units_and_values

from nqpf_sens.glossary import describe, glossary_table
from nqpf_sens.running import run_config

FACTORS = """
[[factors]]
name = "normalisation"
kind = "choice"
key = "normalisation"
options = ["minmax", "zscore"]
[[factors]]
name = "weights"
kind = "weights"
level = 0
"""
SOBOL = (
    """
[run]
name = "sobol"
kind = "sobol"
seed = 3
[data]
values = "values.csv"
units = "units.csv"
[sampling]
n = 64
bootstrap = 20
[outputs]
figures = false
"""
    + FACTORS
)
MONTECARLO = (
    """
[run]
name = "montecarlo"
kind = "montecarlo"
seed = 4
[data]
values = "values.csv"
units = "units.csv"
[sampling]
n = 256
[outputs]
interval = 0.8
figures = false
[tiers]
scheme = "natural_breaks"
classes = 4
[audit]
optimal_weights = "weights"
"""
    + FACTORS
)
BASELINE = """
[run]
name = "baseline"
kind = "baseline"
[data]
year = 2022
compare_with_paper = true
[pipeline]
imputation = "growth"
transformation = "none"
normalisation = "minmax"
aggregation = "arithmetic"
weighting = "expert"
[tiers]
scheme = "fixed_ranks"
bounds = [2, 5]
[outputs]
figures = false
"""
#: tables (and columns) each run must write, so that the check below covers them
EXPECTED = {
    "sobol": {
        "sobol_indices": "S1_conf",
        "sobol_outputs": "why_not",
        "sobol_summary": "max_ST_high_ranks",
        "rank_bounds": "monte_carlo_p95_rank",
        "region_bands": "p_paper_order_se",
        "quadrants": "p_low_index_high_gdp_se",
        "one_at_a_time_summary": "share_moved_over_5",
    },
    "montecarlo": {
        "rank_stability": "interval_high_rank_low",
        "tier_bands": "total_interval_low_high",
        "optimal_weights": "at_bound",
        "optimal_weights_summary": "units_moving",
        "importance": "importance_share_high",
    },
    "baseline": {
        "paper_comparison": "difference",
        "indicator_statistics": "status_reconstructed",
        "unit_attributes": "gdp_per_capita_trust",
        "what_if": "shift",
    },
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Results folders of a Sobol and a Monte Carlo run on synthetic data with a units file, and
    of the paper's baseline on the shipped data."""
    folder = tmp_path_factory.mktemp("glossary")
    write_units_and_values(folder)
    folders = {}
    for name, text in (("sobol", SOBOL), ("montecarlo", MONTECARLO), ("baseline", BASELINE)):
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
        folders[name] = run_config(folder / f"{name}.toml", out=folder / name, quiet=True)
    return folders


def _context(folder) -> tuple[list[str], list[str], float, float]:
    """A run's aggregate codes, unit attributes, [outputs] interval and [sampling] confidence."""
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    scores = pd.read_csv(folder / "baseline_scores.csv", nrows=0).columns
    others = ("unit", "year", "total", "rank", "tier")
    aggregates = list(
        dict.fromkeys([*manifest["dimensions"], *scores.drop(others, errors="ignore")])
    )
    units = folder / "unit_attributes.csv"
    attributes = list(pd.read_csv(units, nrows=0).columns) if units.is_file() else []
    config = manifest["config"]
    interval = config.get("outputs", {}).get("interval", 0.9)
    confidence = config.get("sampling", {}).get("confidence", 0.95)
    return aggregates, attributes, interval, confidence


def test_every_column_of_every_table_is_described(runs):
    for name, folder in runs.items():
        aggregates, attributes, interval, confidence = _context(folder)
        tables = {path.stem: pd.read_csv(path) for path in sorted(folder.glob("*.csv"))}
        for table, column in EXPECTED[name].items():
            assert column in tables[table], (name, table, column)
        unknown = [
            (table, column)
            for table, frame in tables.items()
            if table != "glossary"  # the key itself
            for column in frame.columns
            if describe(column, aggregates, attributes, interval, confidence) is None
        ]
        # the statistics named in rows (rank_shift's and convergence's) are explained too
        unknown += [
            (table, statistic)
            for table in ("rank_shift", "convergence")
            if table in tables
            for statistic in tables[table].statistic.unique()
            if describe(statistic, aggregates, attributes, interval, confidence) is None
        ]
        assert not unknown, f"{name}: no description for {unknown}"
        key = tables["glossary"]  # what the run writes for its reader: every column, explained
        described = set(key.column[key.meaning.fillna("") != ""])
        shown = {c for t, frame in tables.items() if t != "glossary" for c in frame.columns}
        assert shown <= described


#: a percentile or median over scenarios (not a share of units, such as those inside theirs)
QUANTILE = re.compile(r"^(?!share_)(.*_)?(p\d\d|median)(_|$)")


def test_every_quantile_over_scenarios_carries_its_interval(runs):
    """A percentile or a median of the scenarios is an estimate: the ends of its confidence
    interval stand beside it, in every table (the Monte Carlo ranks beside the exact rank bounds
    once stood alone)."""
    for name, folder in runs.items():
        for path in sorted(folder.glob("*.csv")):
            columns = list(pd.read_csv(path, nrows=0).columns)
            alone = [
                column
                for column in columns
                if QUANTILE.match(column)
                and not column.endswith(("_low", "_high", "_se"))
                and not {f"{column}_low", f"{column}_high"} <= set(columns)
            ]
            assert not alone, (name, path.stem, alone)


def test_tricky_names_say_what_they_are():
    aggregates, attributes = ["tech", "factor", "industry"], ["region", "gdp_per_capita"]

    def meaning(column: str, interval: float = 0.9, confidence: float = 0.95) -> str:
        text = describe(column, aggregates, attributes, interval, confidence)
        assert text is not None, column
        return text

    assert "within 3 places" in meaning("p_within_3")
    low = meaning("total_p05_low")
    assert "lower end" in low and "confidence interval" in low
    assert "5th percentile" in low and "index score" in low
    assert "standard error" in meaning("p_tier_2_se") and "tier 2" in meaning("p_tier_2_se")
    assert "75th" in meaning("iqr_rank") and "25th" in meaning("iqr_rank")
    # the band of interval = 0.8, not a confidence bound; its confidence bound is one
    band = meaning("total_interval_low", interval=0.8)
    assert "10th percentile" in band and "confidence" not in band
    bound = meaning("tech_interval_high_low", interval=0.8)
    assert "confidence interval" in bound and "90th percentile" in bound and "'tech'" in bound
    assert "90% bootstrap" in meaning("ST_ranks_high", confidence=0.9)
    assert "half-width" in meaning("ST_rank_shift_conf")
    # a dimension named like a column of the Sobol tables gets both meanings
    both = meaning("factor")
    assert "aggregate 'factor'" in both and "uncertain factor" in both
    assert "more than 1 place " in meaning("share_moved_over_1")
    assert describe("no_such_column", aggregates, attributes, 0.9, 0.95) is None
    assert describe("p_within_3_low", aggregates, attributes, 0.9, 0.95) is None


def test_thousands_of_attribute_columns_are_described_in_linear_time():
    """A data file with 20,000 text columns (attributes of the units) took 17 s here, and a run
    on it 75 s: each column's description rebuilt and searched the list of all of them."""
    tables = {
        "baseline_scores": pd.DataFrame(columns=["unit", "total", "d1", "rank", "tier"]),
        "unit_attributes": pd.DataFrame(columns=["unit", *(f"t{k}" for k in range(20_000))]),
    }
    started = time.perf_counter()
    glossary = glossary_table(tables, 0.9, 0.95)
    assert time.perf_counter() - started < 3
    assert glossary.meaning.str.startswith("An attribute of the unit").sum() == 20_000
