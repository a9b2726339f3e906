"""CSV files read as text, and their cells as numbers: what every input file goes through.

Cells are read as written (codes such as ``01`` and names such as ``NA`` stay text) and only then
parsed, so a bad cell is reported as the user wrote it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens.errors import UserError

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
    """Read a CSV file as text (codes such as ``01`` and names such as ``NA`` stay as written; only
    empty cells are missing), turning every way it can fail into one clear line."""
    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise UserError(problem, path)
    try:
        frame = pd.read_csv(
            path, encoding="utf-8-sig", dtype=str, keep_default_na=False, na_values=[""]
        )
    except UnicodeDecodeError as exc:
        raise UserError(
            f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", path
        ) from None
    except pd.errors.EmptyDataError:
        raise UserError("the file is empty", path) from None
    except pd.errors.ParserError as exc:
        raise UserError(f"not a valid CSV table ({str(exc).splitlines()[0]})", path) from None
    _refuse_control_characters(frame, path)
    header = str(frame.columns[0]) if len(frame.columns) == 1 else ""
    for delimiter, name in ((";", "semicolons"), ("\t", "tabs")):
        if delimiter in header:
            raise UserError(
                f"the header is separated by {name}; save the file with commas between columns",
                path,
            )
    return frame


#: characters no XML document may hold (C0 controls but tab, line feed and carriage return), so
#: that no figure (SVG) or report could show a name holding one
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def control_character(text: str) -> str | None:
    """The first character of ``text`` that no XML document may hold, as U+XXXX, or None."""
    found = CONTROL_CHARACTERS.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def _refuse_control_characters(frame: pd.DataFrame, path: Path) -> None:
    """Refuse a cell or header holding a control character (a name with one would make every
    figure showing it an invalid SVG)."""
    for column in frame.columns:
        found = control_character(str(column))
        if found:
            raise UserError(f"a control character ({found}) in the header", path)
        cells = frame[column].fillna("")
        bad = cells.str.contains(CONTROL_CHARACTERS).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise UserError(
                f"a control character ({control_character(cells.iloc[row])}) in a cell",
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
