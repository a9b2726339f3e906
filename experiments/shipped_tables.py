"""The shipped tables that need no solving: units (region, GDP per capita) and the national panel.

Both are read from ``data/sourced_values.csv``; cells no source gives stay missing (the national
series are filled at run time by the configured imputation rule, as the paper did).
"""

from __future__ import annotations

import pandas as pd

from nqpf_sens.indices.nqpf.data import packaged

NATIONAL = "China"
YEARS = range(2012, 2023)


def units_table(facts: pd.DataFrame) -> pd.DataFrame:
    """One row per province: Chinese name, region, GDP per capita with its provenance."""
    table3 = pd.read_csv(packaged("paper/table3_scores_2022.csv"))
    frame = table3[["province", "province_zh"]].rename(
        columns={"province": "unit", "province_zh": "unit_zh"}
    )
    regions = facts[facts.indicator == "region"].set_index("unit")
    gdp = facts[facts.indicator == "gdp_per_capita"].set_index("unit")
    frame["region"] = frame.unit.map(regions.value)
    frame["region_source"] = frame.unit.map(regions.source)
    frame["gdp_per_capita"] = frame.unit.map(pd.to_numeric(gdp.value)).round(0)
    frame["gdp_per_capita_status"] = frame.unit.map(gdp.status).fillna("missing")
    frame["gdp_per_capita_trust"] = frame.unit.map(gdp.trust).fillna("")
    frame["gdp_per_capita_source"] = frame.unit.map(gdp.source).fillna(
        "no source found: left missing"
    )
    return frame


def national_panel(facts: pd.DataFrame, indicators: tuple[str, ...]) -> pd.DataFrame:
    """Tidy ``unit, indicator, year, value, status, source`` rows for China 2012-2022; a cell no
    source gives has an empty value and status ``missing``."""
    national = facts[
        (facts.unit == NATIONAL) & facts.year.isin(YEARS) & (facts.use == "fixed")
    ].copy()
    national["value"] = pd.to_numeric(national["value"])
    national = national.sort_values(
        "status", key=lambda s: s.map({"paper": 0, "official": 1, "derived": 2})
    )
    national = national.drop_duplicates(["indicator", "year"]).set_index(["indicator", "year"])
    cells = pd.MultiIndex.from_product([indicators, YEARS], names=["indicator", "year"])
    panel = national.reindex(cells)[["value", "status", "source"]].reset_index()
    panel["status"] = panel["status"].fillna("missing")
    panel["source"] = panel["source"].fillna(
        "no source found: filled by the imputation rule at run time"
    )
    panel.insert(0, "unit", NATIONAL)
    return panel
