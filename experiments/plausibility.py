"""Plausible values of every NQPF cell from related official statistics, not from the results.

Each indicator has one documented rule (``RULES``) that turns statistics of the same province
(R&D expenditure, GDP, GDP per capita, PCT applications, counts at another date) into a prior
value and a plausible band. Indicators that count or sum over provinces share Table 2's implied
national total (31 x its mean, less what sources fix) in proportion to a proxy; ratios follow from
the national relation between the indicator and its proxy. A band is the prior times and divided by
a factor that says how loosely the proxy ties the indicator, intersected with Table 2's range.

The reconstruction keeps every unknown cell inside its band; ``plausibility_table`` reports each
cell's band so a reader can check any value against the statistics around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NATIONAL_GDP_PER_CAPITA = 85_698  # yuan, NBS 2022 communique
NATIONAL_RD_PER_FTE = 48.4  # 10k yuan of R&D expenditure per full-time equivalent, NBS 2022
#: national labour productivity over GDP per capita (152,977 / 85,698 yuan, NBS 2022 communique)
PRODUCTIVITY_PER_GDP_PER_CAPITA = 152_977 / 85_698


@dataclass(frozen=True)
class Rule:
    """How an indicator follows its proxy.

    ``kind``: ``share`` (the national total split in proportion to ``proxy ** exponent``),
    ``level`` (the national mean scaled by ``(proxy / mean proxy) ** exponent``), ``ratio``
    (``scale * proxy``), or ``count_since`` (a cumulative count at an earlier date, grown to the
    total if that is larger; the band starts at ``floor`` times the earlier count: entries can be
    withdrawn). ``factor`` widens the band multiplicatively, ``slack`` additively (counts of a few).
    """

    kind: str
    proxy: str
    basis: str
    exponent: float = 1.0
    factor: float = 2.0
    slack: float = 0.0
    scale: float = 1.0
    floor: float = 1.0


RULES = {
    "ns_papers": Rule(
        "share", "rd_expenditure", "R&D expenditure squared: top papers concentrate", 2.0, 3.0, 3
    ),
    "sei_patents": Rule(
        "share",
        "invention_patents_granted",
        "invention patents granted (S&T yearbook 8-8)",
        1.0,
        1.65,
    ),
    "pct_apps": Rule("share", "invention_patents_granted", "invention patents granted", 1.4, 3.0),
    "sci_awards": Rule(
        "share",
        "rd_expenditure",
        "R&D expenditure to the power 1.5 (awards concentrate)",
        1.5,
        3.0,
        3,
    ),
    "rd_intensity": Rule("ratio", "rd_over_gdp", "R&D expenditure / GDP", factor=1.15),
    "rd_fte": Rule(
        "ratio",
        "rd_expenditure",
        "R&D expenditure / national expenditure per FTE (48.4)",
        scale=1 / NATIONAL_RD_PER_FTE,
    ),
    "va_per_mu": Rule("level", "gdp_per_capita", "GDP per capita", 1.0, 2.5),
    "labour_productivity": Rule(
        "ratio",
        "gdp_per_capita",
        "GDP per capita x national productivity / GDP per capita",
        factor=1.3,
        scale=PRODUCTIVITY_PER_GDP_PER_CAPITA / 1e4,
    ),
    "data_openness": Rule(
        "level",
        "gdp_per_capita",
        "none: square root of GDP per capita, Table 2's range",
        0.5,
        np.inf,
    ),
    "sei_output_share": Rule(
        "level",
        "gdp_per_capita",
        "square root of GDP per capita (industrial upgrading)",
        0.5,
        2.5,
    ),
    "digital_core_revenue": Rule(
        "share", "gdp_x_sqrt_gdp_per_capita", "GDP x square root of GDP per capita", 1.0, 4.0
    ),
    "unicorns": Rule(
        "share", "rd_expenditure", "R&D expenditure squared: unicorns concentrate", 2.0, 3.0, 3
    ),
    "clusters_centres": Rule(
        "count_since", "clusters_centres_2022", "end-2022 clusters + centres (MIIT)", 1.0, 1.5, 2
    ),
    "smart_5g_factories": Rule("share", "gdp", "GDP (industrial size)", 1.0, 3.0, 3),
    "green_factories_parks": Rule(
        "count_since",
        "green_factories_parks_2021",
        "green factories + parks to the 2021 batch",
        1.0,
        3.0,
        10,
        floor=0.95,  # 44 of the first 3,007 were withdrawn in 2023
    ),
}


def related_statistics(facts: pd.DataFrame, units: list[str]) -> pd.DataFrame:
    """Units x proxies, from the sourced facts (``NaN`` where no source gives one)."""
    facts = facts[facts.unit.isin(units)].copy()
    facts["value"] = pd.to_numeric(facts["value"])

    def series(indicator: str, use: str, year: int = 2022) -> pd.Series:
        rows = facts[(facts.indicator == indicator) & (facts.use == use) & (facts.year == year)]
        return rows.drop_duplicates("unit").set_index("unit").value.reindex(units)

    frame = pd.DataFrame(index=pd.Index(units, name="unit"))
    frame["rd_expenditure"] = series("rd_expenditure", "related")
    frame["gdp"] = series("gdp", "related")
    frame["gdp_per_capita"] = series("gdp_per_capita", "fixed")
    frame["gdp_per_capita_sourced"] = frame.gdp_per_capita.notna()
    frame["gdp_per_capita"] = frame.gdp_per_capita.fillna(NATIONAL_GDP_PER_CAPITA)
    frame["invention_patents_granted"] = series("invention_patents_granted", "related")
    frame["rd_over_gdp"] = 100 * frame.rd_expenditure / frame.gdp
    frame["gdp_x_sqrt_gdp_per_capita"] = frame.gdp * np.sqrt(frame.gdp_per_capita)
    frame["clusters_centres_2022"] = series("clusters_centres", "prior").fillna(0)
    frame["green_factories_parks_2021"] = series("green_factories_parks", "prior", 2021)
    return frame


def plausible_bands(
    related: pd.DataFrame,
    table2: pd.DataFrame,
    fixed: dict[tuple[str, str], float],
    priors: dict[tuple[str, str], float],
) -> pd.DataFrame:
    """Prior and plausible band of every (unit, indicator) cell with the rule's basis.

    ``fixed`` cells (sourced values) do not take a share of a national total; ``priors`` are cited
    figures for a cell (e.g. awards a provincial press report names) that replace the rule's prior.
    """
    units = list(related.index)
    rows = []
    for code, rule in RULES.items():
        low, high = float(table2.loc[code, "min"]), float(table2.loc[code, "max"])
        proxy = related[rule.proxy]
        known = {u: fixed[(u, code)] for u in units if (u, code) in fixed}
        prior = _rule_prior(rule, proxy, 31 * float(table2.loc[code, "mean"]), known)
        for unit in units:
            value = priors.get((unit, code), prior[unit])
            if np.isnan(value):
                band, basis = (low, high), "no related statistic: Table 2's range"
                value = float(table2.loc[code, "mean"])
            else:
                factor, basis = rule.factor, rule.basis
                if "gdp_per_capita" in rule.proxy and not related.gdp_per_capita_sourced[unit]:
                    factor, basis = 1.5 * factor, f"{basis} (national: the province's is unsourced)"
                band = (value / factor - rule.slack, value * factor + rule.slack)
                if rule.kind == "count_since":
                    since = related.loc[unit, rule.proxy]
                    band = (np.floor(rule.floor * since), band[1])
            ends = np.clip(band, max(low - 0.5, 0.0), high + 0.5)
            rows.append(
                {
                    "unit": unit,
                    "indicator": code,
                    "prior": value,
                    "band_low": ends[0],
                    "band_high": ends[1],
                    "basis": basis,
                }
            )
    return pd.DataFrame(rows).set_index(["unit", "indicator"])


def _rule_prior(rule: Rule, proxy: pd.Series, total: float, known: dict[str, float]) -> pd.Series:
    """The rule's prior for every unit: free units share what the sourced cells leave of the
    total; a sourced unit gets what the rule would predict for it (to check the rule)."""
    if rule.kind == "ratio":
        return rule.scale * proxy
    weight = proxy**rule.exponent
    free = [u for u in proxy.index if u not in known]
    remaining = total - sum(known.values())
    if rule.kind == "level":
        predicted = total / len(proxy) * weight / weight.mean()
        free_prior = remaining / len(free) * weight[free] / weight[free].mean()
    elif rule.kind == "share":
        predicted = total * weight / weight.sum()
        free_prior = remaining * weight[free] / weight[free].sum()
    else:  # a cumulative count does not shrink
        predicted = weight * max(1.0, total / weight.sum())
        free_prior = weight[free] * max(1.0, remaining / weight[free].sum())
    return free_prior.reindex(proxy.index).fillna(predicted)
