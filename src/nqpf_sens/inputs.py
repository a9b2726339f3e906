"""The index spec and data tables a run config points at (defaults: the shipped NQPF index and
data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens.config import RunConfig
from nqpf_sens.engine.cells import not_a_file, parse_numbers, read_csv
from nqpf_sens.engine.spec import IndexSpec, load_spec
from nqpf_sens.engine.table import IndicatorTable, composed_name, load_table
from nqpf_sens.errors import UserError, quoted
from nqpf_sens.indices.nqpf import data as nqpf
from nqpf_sens.indices.nqpf.paper import published_values, regional_ordering


def load_inputs(config: RunConfig) -> tuple[IndexSpec, IndicatorTable]:
    """Spec and (optionally one year of) the data table of a run."""
    for key, path in (("metadata", config.data.metadata), ("values", config.data.values)):
        if path is not None:
            check_data_file(config, key, path)
    spec = nqpf.nqpf_spec() if config.data.metadata is None else load_spec(config.data.metadata)
    values = config.data.values or shipped_values(config)
    table = load_table(values, spec, config.data.unit_column, config.data.year_column)
    if config.data.year is not None:
        if config.data.year not in table.years:
            raise UserError(
                f"year {config.data.year} is not in the data", config.path, "[data] year"
            )
        table = table.year(config.data.year)
    return spec, table


def check_data_file(config: RunConfig, key: str, path: Path) -> None:
    """Refuse a data file the config names under ``[data] key`` that cannot be read as a file,
    naming the key (reading it would name the file alone)."""
    problem = not_a_file(path)
    if problem:
        raise UserError(f"{problem}: {path}", config.path, f"[data] {key}")


def shipped_values(config: RunConfig) -> Path:
    """The shipped values file ``[data] shipped`` names (the 31 provinces in 2022 by default)."""
    if config.data.shipped not in nqpf.SHIPPED:
        raise UserError(
            f"unknown shipped data {config.data.shipped!r} (choose from {', '.join(nqpf.SHIPPED)})",
            config.path,
            "[data] shipped",
        )
    return nqpf.packaged(nqpf.SHIPPED[config.data.shipped])


def unit_attributes(config: RunConfig, table: IndicatorTable) -> pd.DataFrame:
    """Region, Chinese name and GDP per capita of the units (indexed by unit), from
    ``[data] units``, the shipped NQPF file (with the shipped data) or the data's own text
    columns."""
    if config.data.units is not None:
        check_data_file(config, "units", config.data.units)
        frame = read_csv(config.data.units)
        if "unit" not in frame:
            raise UserError("missing column 'unit'", config.data.units)
        # cells trimmed as the data file's unit names are; rows a spreadsheet left blank dropped
        frame = frame.apply(lambda column: column.str.strip()).replace("", None)
        frame = frame.dropna(how="all")
        if frame.unit.isna().any():
            cells = frame[frame.unit.isna()].iloc[0].dropna()
            raise UserError(
                f"a row without a unit name ({', '.join(map(str, cells))})", config.data.units
            )
        twice = frame.unit[frame.unit.map(composed_name).duplicated()]  # as they print
        if len(twice):
            raise UserError(f"unit '{twice.iloc[0]}' is listed twice", config.data.units)
        frame = frame.set_index("unit")
        source: Path | str | None = config.data.units
    elif config.data.values is None and config.data.shipped == "provinces":
        frame = read_csv(nqpf.packaged(nqpf.UNITS)).set_index("unit")
        source = nqpf.packaged(nqpf.UNITS)
    else:
        frame, source = table.attributes, table.source
    frame = frame.reindex(list(table.units)).rename_axis("unit")
    if "gdp_per_capita" in frame:
        frame["gdp_per_capita"] = _positive_numbers(frame.gdp_per_capita, source)
    return frame


def _positive_numbers(column: pd.Series, source: Path | str | None) -> pd.Series:
    """A column of positive finite numbers (missing cells, empty or a token such as ``NA``,
    allowed), or an error naming the cell."""
    numbers, bad = parse_numbers(column)
    bad |= numbers <= 0
    if bad.any():
        unit = column.index[int(np.flatnonzero(bad)[0])]
        raise UserError(
            f"unit '{unit}': {column.name} {quoted(column[unit])} is not a positive number", source
        )
    return pd.Series(numbers, index=column.index, name=column.name)


def input_files(config: RunConfig) -> list[Path]:
    """Every file a run reads (the shipped files where the config gives none): what a resumed run
    must find unchanged, and what an output folder must never contain."""
    data = config.data
    files = [
        data.metadata or nqpf.packaged(nqpf.INDICATORS),
        data.values or shipped_values(config),
    ]
    files += list(data.alternatives)
    shipped = data.values is None and data.metadata is None
    if (
        shipped
        and not data.alternatives
        and any(f.get("kind") == "dataset" for f in config.factors)
    ):
        files.append(nqpf.packaged(nqpf.ALTERNATIVES))
    if data.units is not None:
        files.append(data.units)
    elif data.values is None and data.shipped == "provinces":
        files.append(nqpf.packaged(nqpf.UNITS))
    return [f for f in files if f.is_file()]


def empty_units(config: RunConfig, table: IndicatorTable) -> list[str]:
    """Notes on units without any observed value: refused unless ``[data] allow_empty_units``."""
    empty = [
        u
        for u, observed in zip(table.units, ~np.isnan(table.values).all(axis=(0, 2)), strict=True)
        if not observed
    ]
    if empty and not config.data.allow_empty_units:
        raise UserError(
            f"unit '{empty[0]}' has no observed value "
            "(set [data] allow_empty_units = true to impute all of it)",
            table.source,
        )
    return [f"unit '{u}' has no observed value: every one of its values is imputed" for u in empty]


def describe_inputs(
    config: RunConfig, spec: IndexSpec, table: IndicatorTable, n_tables: int
) -> dict[str, object]:
    """What a reader of the results must know about the index and its data: which index, its
    size, how many cells are observed, missing or of each provenance status, and what the index's
    authors published or expected that the report sets the results beside."""
    shipped = config.data.metadata is None
    if table.statuses is not None:
        statuses, counts = np.unique(table.statuses.astype(str), return_counts=True)
        cells = dict(zip(statuses.tolist(), counts.tolist(), strict=True))
    else:
        missing = int(np.isnan(table.values).sum())
        cells = {"observed": int(table.values.size) - missing, "missing": missing}
    about: dict[str, object] = {
        "index": nqpf.CITATION if shipped else f"the index described by {config.data.metadata}",
        "values": str(config.data.values or f"the shipped NQPF data, {config.data.shipped}"),
        "shipped": None if config.data.values else config.data.shipped,
        "units": len(table.units),
        "indicators": len(spec.indicators),
        "levels": [len(level) for level in spec.levels],
        "years": [year for year in table.years if year is not None],
        "cells": cells,
        "alternative_datasets": n_tables - 1,
        "regional_ordering": regional_ordering(),
    }
    if about["shipped"] == "national":
        about["published"] = published_values()
    return about
