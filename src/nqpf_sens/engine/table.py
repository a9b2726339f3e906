"""Indicator tables: raw values shaped (years, units, indicators), read from tidy or wide CSV."""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens.engine.cells import cell_text, parse_numbers, read_csv
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.errors import UserError

UNIT_COLUMN = "unit"
YEAR_COLUMN = "year"
STATUS_COLUMN = "status"
MAX_YEAR = 9999  # a year beyond this is a typo (and would not fit the integers years are kept in)
TIDY_COLUMNS = {"unit", "indicator", "value"}


@dataclass(frozen=True, eq=False)
class IndicatorTable:
    """Raw indicator values with NaN for missing cells, indicators in the order of the index spec.

    ``values`` has shape (years, units, indicators); a cross-section has a single year (which may
    be ``None`` when the data carry no year). ``attributes`` holds text columns about the units
    (region, group). ``denominators`` (same shape as ``values``) holds, for indicators the metadata
    denominates, the column each is divided by (1 elsewhere); None when nothing is denominated.
    ``statuses`` (same shape, text) is each cell's provenance from the ``status`` column of a tidy
    file (official, reconstructed, ...: any label), None in a cell without one; None when the data
    carry no statuses. Measurement noise can then depend on a cell's provenance.
    """

    values: np.ndarray
    years: tuple[int | None, ...]
    units: tuple[str, ...]
    indicators: tuple[str, ...]
    attributes: pd.DataFrame = field(default_factory=pd.DataFrame)
    source: str | None = None
    denominators: np.ndarray | None = None
    statuses: np.ndarray | None = None

    def __post_init__(self) -> None:
        """A table built in code is checked as one read from a file is: a (years, units,
        indicators) array of numbers, each name once."""
        values = self.values
        shape = (len(self.years), len(self.units), len(self.indicators))
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "fiu":
            raise ValueError("values must be a numpy array of numbers")
        if values.shape != shape or 0 in shape:
            raise ValueError(
                f"values of shape {values.shape} for {shape[0]} year(s), {shape[1]} units and "
                f"{shape[2]} indicators (none may be empty)"
            )
        for what, names in (("unit", self.units), ("indicator", self.indicators)):
            if len(set(names)) < len(names):
                raise ValueError(f"a {what} is named twice")
        for name, array in (("denominators", self.denominators), ("statuses", self.statuses)):
            if array is not None and np.shape(array) != shape:
                raise ValueError(f"{name} must have the shape of the values, {shape}")

    def year(self, year: int) -> IndicatorTable:
        """The cross-section of one year."""
        if year not in self.years:
            raise UserError(
                f"year {year} is not in the data (years: {', '.join(map(str, self.years))})"
            )
        t = self.years.index(year)
        denominators = None if self.denominators is None else self.denominators[t : t + 1]
        statuses = None if self.statuses is None else self.statuses[t : t + 1]
        return IndicatorTable(
            self.values[t : t + 1],
            (year,),
            self.units,
            self.indicators,
            self.attributes,
            self.source,
            denominators,
            statuses,
        )

    def in_unit_order(self, units: tuple[str, ...]) -> IndicatorTable:
        """The same table with its units (the same set) in the order of ``units``."""
        rows = [self.units.index(unit) for unit in units]

        def ordered(cells: np.ndarray | None) -> np.ndarray | None:
            return None if cells is None else cells[:, rows]

        return dataclasses.replace(
            self,
            values=self.values[:, rows],
            units=tuple(units),
            denominators=ordered(self.denominators),
            statuses=ordered(self.statuses),
        )

    def to_frame(self, year_index: int = -1) -> pd.DataFrame:
        """One year as a units x indicators DataFrame."""
        return pd.DataFrame(
            self.values[year_index],
            index=pd.Index(self.units, name=UNIT_COLUMN),
            columns=list(self.indicators),
        )


def _tidy_to_wide(frame: pd.DataFrame, source: Path, column: str = "value") -> pd.DataFrame:
    keys = [UNIT_COLUMN, "indicator"] + ([YEAR_COLUMN] if YEAR_COLUMN in frame.columns else [])
    duplicated = frame.duplicated(keys, keep=False)
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        cell = ", ".join(f"{k}={frame[k].iloc[row]}" for k in keys)
        raise UserError("the same cell is given twice", source, f"row {row + 2} ({cell})")
    index = [UNIT_COLUMN] + ([YEAR_COLUMN] if YEAR_COLUMN in frame.columns else [])
    wide = frame.pivot(index=index, columns="indicator", values=column).reset_index()
    wide.columns.name = None
    return wide


def _status_text(cell: object) -> str | None:
    """A status as text, None where the cell gives none (empty, or no row for the cell)."""
    text = "" if pd.isna(cell) else str(cell).strip()
    return text or None


def _check_numeric(
    frame: pd.DataFrame, column: str, source: Path, row_offset: int = 2, shown: str | None = None
) -> np.ndarray:
    """The numbers of a column (``shown``: its name in the file, when renamed)."""
    numbers, bad = parse_numbers(frame[column])
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        unit = frame[UNIT_COLUMN].iloc[row] if UNIT_COLUMN in frame.columns else row
        what = "not a finite number" if np.isinf(numbers[row]) else "not a number"
        raise UserError(
            f"{what}: {cell_text(frame[column], row)}",
            source,
            f"row {row + row_offset} (unit {unit}), column '{shown or column}'",
        )
    return numbers


def table_from_frame(
    frame: pd.DataFrame,
    spec: IndexSpec,
    source: Path | str = "<data>",
    unit_column: str = UNIT_COLUMN,
    year_column: str = YEAR_COLUMN,
) -> IndicatorTable:
    """Validate a tidy or wide frame against ``spec`` and reshape it to (years, units,
    indicators)."""
    source = Path(source)
    if frame.empty:
        raise UserError("no rows", source)
    unit_shown, year_shown = unit_column, year_column  # the file's names, for its errors
    for given, standard in ((unit_column, UNIT_COLUMN), (year_column, YEAR_COLUMN)):
        if given != standard:
            if given not in frame.columns:
                raise UserError(f"missing column '{given}'", source)
            frame = frame.drop(columns=[standard], errors="ignore").rename(
                columns={given: standard}
            )
    if UNIT_COLUMN not in frame.columns:
        raise UserError(f"missing column '{UNIT_COLUMN}'", source)
    empty = (
        frame[UNIT_COLUMN].isna().to_numpy()
        | frame[UNIT_COLUMN].astype(str).str.strip().eq("").to_numpy()
    )
    if empty.any():
        raise UserError(
            "empty unit name",
            source,
            f"row {int(np.flatnonzero(empty)[0]) + 2}, column '{unit_shown}'",
        )
    frame = frame.assign(**{UNIT_COLUMN: frame[UNIT_COLUMN].astype(str).str.strip()})
    status_wide = None
    if TIDY_COLUMNS <= set(frame.columns):
        unknown = sorted(set(frame["indicator"].astype(str)) - set(spec.indicators))
        if unknown:
            row = int(np.flatnonzero(frame["indicator"].astype(str).eq(unknown[0]).to_numpy())[0])
            raise UserError(
                f"unknown indicator '{unknown[0]}' (not in the index metadata)",
                source,
                f"row {row + 2}, column 'indicator'",
            )
        frame = frame.assign(value=_check_numeric(frame, "value", source))
        if STATUS_COLUMN in frame.columns:  # rows in the same order as the values' pivot
            status_wide = _tidy_to_wide(frame, source, STATUS_COLUMN)
        frame = _tidy_to_wide(frame, source)
    has_year = YEAR_COLUMN in frame.columns
    if has_year:
        years_raw = _check_numeric(frame, YEAR_COLUMN, source, shown=year_shown)
        if np.isnan(years_raw).any() or np.any(years_raw != np.round(years_raw)):
            raise UserError("years must be whole numbers", source, f"column '{year_shown}'")
        outside = np.flatnonzero((years_raw < 1) | (years_raw > MAX_YEAR))
        if outside.size:
            raise UserError(
                f"year {cell_text(frame[YEAR_COLUMN], int(outside[0]))} is not a year "
                f"(1 to {MAX_YEAR})",
                source,
                f"column '{year_shown}'",
            )
        frame = frame.assign(**{YEAR_COLUMN: years_raw.astype(int)})
    keys = [UNIT_COLUMN] + ([YEAR_COLUMN] if has_year else [])
    # names compared as they print: 'é' as one character (NFC) or as e and an accent (NFD)
    printed = frame[keys].assign(**{UNIT_COLUMN: frame[UNIT_COLUMN].map(composed_name)})
    duplicated = printed.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        first = int(np.flatnonzero((printed == printed.iloc[row]).all(axis=1).to_numpy())[0])
        names = frame[UNIT_COLUMN]
        forms = "" if names.iloc[row] == names.iloc[first] else " (in another Unicode form)"
        raise UserError(
            f"unit '{names.iloc[row]}' is listed twice{forms}",
            source,
            f"row {row + 2}, column '{unit_shown}'",
        )
    other = [c for c in frame.columns if c not in keys]
    missing = [c for c in spec.indicators if c not in frame.columns]
    if missing:
        raise UserError(f"no values for indicator '{missing[0]}'", source)
    text_columns = []
    declared = [c for c in spec.declared_columns if c in frame.columns]
    for column in other:
        if column in spec.indicators or column in declared:
            continue
        numbers, bad = parse_numbers(frame[column])
        if not bad.any() and not np.isnan(numbers).all():
            raise UserError(
                f"unknown indicator '{column}' (not in the index metadata)",
                source,
                f"column '{column}'",
            )
        text_columns.append(column)
    numeric = {c: _check_numeric(frame, c, source) for c in spec.indicators}
    used = sorted({d for d in spec.denominators if d})
    for name in used:
        if name not in frame.columns:
            raise UserError(f"no column '{name}' to denominate by (named in the metadata)", source)
        numeric[name] = _check_numeric(frame, name, source)
    text_columns += [c for c in declared if c not in used]
    units = tuple(dict.fromkeys(frame[UNIT_COLUMN]))
    years: tuple[int | None, ...] = tuple(sorted(set(frame[YEAR_COLUMN]))) if has_year else (None,)
    values = np.full((len(years), len(units)), np.nan)[..., None].repeat(
        len(spec.indicators), axis=2
    )
    unit_pos = frame[UNIT_COLUMN].map({u: i for i, u in enumerate(units)}).to_numpy()
    year_pos = (
        frame[YEAR_COLUMN].map({y: i for i, y in enumerate(years)}).to_numpy()
        if has_year
        else np.zeros(len(frame), int)
    )
    for j, code in enumerate(spec.indicators):
        values[year_pos, unit_pos, j] = numeric[code]
    statuses = None
    if status_wide is not None:
        statuses = np.full(values.shape, None, dtype=object)
        for j, code in enumerate(spec.indicators):
            statuses[year_pos, unit_pos, j] = [_status_text(s) for s in status_wide[code]]
    denominators = None
    if used:
        denominators = np.ones_like(values)
        for j, denominator in enumerate(spec.denominators):
            if denominator:
                denominators[:, :, j] = np.nan
                denominators[year_pos, unit_pos, j] = numeric[denominator]
    attributes = (
        frame.drop_duplicates(UNIT_COLUMN).set_index(UNIT_COLUMN)[text_columns]
        if text_columns
        else pd.DataFrame(index=pd.Index(units, name=UNIT_COLUMN))
    )
    return IndicatorTable(
        values,
        years,
        units,
        tuple(spec.indicators),
        attributes,
        str(source),
        denominators,
        statuses,
    )


def composed_name(name: object) -> object:
    """A unit's name in Unicode's composed form (NFC), as two names that print alike compare."""
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


def load_table(
    path: str | Path,
    spec: IndexSpec,
    unit_column: str = UNIT_COLUMN,
    year_column: str = YEAR_COLUMN,
) -> IndicatorTable:
    """Read an indicator table (tidy ``unit, indicator, value[, year]`` or wide) and validate it."""
    path = Path(path)
    return table_from_frame(read_csv(path), spec, path, unit_column, year_column)
