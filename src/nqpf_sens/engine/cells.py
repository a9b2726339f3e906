"""CSV files read as text, and their cells as numbers: what every input file goes through.

Cells are read as written (codes such as ``01`` and names such as ``NA`` stay text) and only then
parsed, so a bad cell is reported as the user wrote it.
"""

from __future__ import annotations

import csv
import gzip
import re
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens.errors import UserError
from nqpf_sens.wording import plural

#: cells that mean "no value" in a numeric column (pandas' defaults); elsewhere they are text
MISSING_TOKENS = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a file (it does not exist, or is a folder, a device, a
    pipe, or its name is too long for the system), or None."""
    try:
        if path.is_file():
            return None
        return "not a regular file" if path.exists() else "file not found"
    except OSError as exc:  # a name too long, say
        return f"cannot be read ({exc.strerror})"


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV file (gzip-compressed if its name ends in ``.gz``; no other compression is
    guessed from a name) as text: codes such as ``01`` and names such as ``NA`` stay as written,
    only empty cells are missing, and names in the header lose surrounding spaces. Every way it
    can fail is one clear line, and so are rows longer than the header (pandas would take their
    first column as a row index and shift every other) and a header naming a column twice."""
    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise UserError(problem, path)
    compression = "gzip" if path.name.lower().endswith(".gz") else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row longer than the header
            frame = pd.read_csv(
                path,
                encoding="utf-8-sig",
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                index_col=False,
                compression=compression,
            )
        header = _header(path, compression)
    except UnicodeDecodeError as exc:
        raise UserError(
            f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", path
        ) from None
    except pd.errors.EmptyDataError:
        raise UserError("the file is empty", path) from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise UserError(f"not a valid CSV table ({str(exc).splitlines()[0]})", path) from None
    except pd.errors.ParserWarning:
        raise UserError(_longer_row(path, compression), path) from None
    except (OSError, EOFError, zlib.error) as exc:  # not gzip, or a truncated one
        raise UserError(f"cannot be read as gzip-compressed text ({exc})", path) from None
    for name in header:
        if name and header.count(name) > 1:
            raise UserError(f"the header names column '{name}' twice", path)
    if len(header) == len(frame.columns):  # pandas' own names for unnamed columns stay
        frame.columns = [name or column for name, column in zip(header, frame.columns, strict=True)]
    _refuse_control_characters(frame, path)
    first = str(frame.columns[0]) if len(frame.columns) == 1 else ""
    for delimiter, name in ((";", "semicolons"), ("\t", "tabs")):
        if delimiter in first:
            raise UserError(
                f"the header is separated by {name}; save the file with commas between columns",
                path,
            )
    return frame


def _rows(path: Path, compression: str | None) -> Iterator[list[str]]:
    """The rows of a CSV file as the csv module splits them."""
    opened = gzip.open if compression == "gzip" else open
    with opened(path, "rt", encoding="utf-8-sig", newline="") as handle:
        yield from csv.reader(handle)


def _header(path: Path, compression: str | None) -> list[str]:
    """The names of the first row as written, spaces around them removed."""
    return [name.strip() for name in next(_rows(path, compression), [])]


def _longer_row(path: Path, compression: str | None) -> str:
    """Name the first row with more cells than the header."""
    rows = _rows(path, compression)
    width = len(next(rows, []))
    for number, row in enumerate(rows, start=2):
        if len(row) > width:
            return (
                f"row {number} has {len(row)} cells where the header names "
                f"{plural(width, 'column')} "
                "(a comma too many, or a column without a name?)"
            )
    return "a row has more cells than the header names columns"


#: characters no XML document may hold (C0 controls but tab, line feed and carriage return), so
#: that no figure (SVG) or report could show a name holding one
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
#: what a cell of an input file may not hold: those, and a carriage return, which the tables'
#: writer leaves unquoted (a name holding one would be read back as two rows)
CELL_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f]")


def control_character(text: str, pattern: re.Pattern[str] = CONTROL_CHARACTERS) -> str | None:
    """The first character of ``text`` that ``pattern`` refuses, as U+XXXX, or None."""
    found = pattern.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def _refuse_control_characters(frame: pd.DataFrame, path: Path) -> None:
    """Refuse a cell or header holding a control character (a name with one would make every
    figure showing it an invalid SVG, or the tables unreadable)."""
    for column in frame.columns:
        found = control_character(str(column), CELL_CONTROL_CHARACTERS)
        if found:
            raise UserError(f"a control character ({found}) in the header", path)
        cells = frame[column].fillna("")
        bad = cells.str.contains(CELL_CONTROL_CHARACTERS).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            character = control_character(cells.iloc[row], CELL_CONTROL_CHARACTERS)
            raise UserError(
                f"a control character ({character}) in a cell",
                path,
                f"row {row + 2}, column '{column}'",
            )


def parse_numbers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numbers of a column (text or numeric) and a mask of the cells that are neither a finite
    number nor missing (empty or a missing-value token such as ``NA``)."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        numbers = raw.to_numpy(dtype=float, na_value=np.nan)
        return numbers, np.isinf(numbers)
    text = raw.astype(str).str.strip()
    missing = raw.isna().to_numpy() | text.isin(MISSING_TOKENS).to_numpy()
    numbers = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    return np.where(missing, np.nan, numbers), ~missing & ~np.isfinite(numbers)


def cell_text(raw: pd.Series, row: int) -> str:
    """A cell as the user wrote it, quoted."""
    return repr(str(raw.iloc[row]))
