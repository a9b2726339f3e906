"""The shipped NQPF data: provinces 2022, alternative reconstructions, the national panel, units.

Every cell carries its provenance (``status``: official, paper, derived, reconstructed; ``source``);
see DATA.md for how the dataset was built.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from nqpf_sens.engine.spec import IndexSpec, load_spec
from nqpf_sens.engine.table import IndicatorTable, load_table

CITATION = (
    "China New Quality Productive Forces Index of Ye Zhenyu & Xu Pengcheng (2024), \"China's New "
    'Quality Productive Forces Index: Theoretical Basis and Evaluation Analysis", '
    "doi:10.13885/j.issn.1000-2804.2024.03.003"
)
INDICATORS = "nqpf_indicators.csv"
PROVINCES = "nqpf_provinces.csv"
ALTERNATIVES = "nqpf_alternatives.csv.gz"
NATIONAL = "nqpf_national.csv"
#: the shipped values a config names with ``[data] shipped`` when it gives no values file
SHIPPED = {"provinces": PROVINCES, "national": NATIONAL}
UNITS = "nqpf_units.csv"
#: indicators that count things (whole numbers in the data)
COUNT_INDICATORS = (
    "ns_papers",
    "sei_patents",
    "pct_apps",
    "sci_awards",
    "unicorns",
    "clusters_centres",
    "smart_5g_factories",
    "green_factories_parks",
)


def packaged(name: str) -> Path:
    """Path of a data file shipped with the NQPF case."""
    return Path(str(resources.files(__package__) / "data" / name))


def nqpf_spec() -> IndexSpec:
    """The NQPF index of Table 1 (Ye & Xu 2024): 15 indicators, 3 dimensions, weights 40/40/20."""
    return load_spec(packaged(INDICATORS))


def province_table(spec: IndexSpec) -> IndicatorTable:
    """The 31 provinces in 2022, as the baseline uses them."""
    return load_table(packaged(PROVINCES), spec)


def national_table(spec: IndexSpec) -> IndicatorTable:
    """China 2012-2022 with the cells no source gives left missing."""
    return load_table(packaged(NATIONAL), spec)


def units() -> pd.DataFrame:
    """Chinese name, region and GDP per capita (with provenance) of every province."""
    return pd.read_csv(packaged(UNITS))


def alternative_tables(spec: IndexSpec, base: IndicatorTable | None = None) -> list[IndicatorTable]:
    """The alternative reconstructions: the base table with its reconstructed cells redrawn."""
    base = province_table(spec) if base is None else base
    draws = pd.read_csv(packaged(ALTERNATIVES))
    units_index = {u: i for i, u in enumerate(base.units)}
    codes_index = {c: j for j, c in enumerate(base.indicators)}
    rows = draws.unit.map(units_index).to_numpy()
    columns = draws.indicator.map(codes_index).to_numpy()
    tables = []
    for name in (c for c in draws.columns if c.startswith("draw_")):
        values = base.values.copy()
        values[0, rows, columns] = draws[name].to_numpy(dtype=float)
        tables.append(
            IndicatorTable(
                values,
                base.years,
                base.units,
                base.indicators,
                base.attributes,
                statuses=base.statuses,  # a redrawn cell is still the reconstruction it was
            )
        )
    return tables
