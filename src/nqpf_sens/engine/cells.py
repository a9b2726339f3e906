"""CSV files read as text, and their cells as numbers: what every input file goes through.

Cells are read as written (codes such as ``01`` and names such as ``NA`` stay text) and only then
parsed, so a bad cell is reported as the user wrote it.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import re
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens.errors import UserError, quoted
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


#: compressions read by the name's ending (one file per zip archive)
COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zip": None}
#: endings of archives and compressions not read
NOT_READ = (".zst", ".zstd", ".tar", ".tgz", ".7z", ".rar", ".tar.gz", ".tar.bz2", ".tar.xz")
CELL_LIMIT = 2**31 - 1  # characters in one cell (the csv module's limit is a C long)
MAX_TEXT_BYTES = 512 * 2**20  # an input file's text, decompressed: an index's data are far less
ZIP_CLUTTER = ("__MACOSX/",)  # folders of an archiver's own files in a zip (macOS Finder's)


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV file (compressed if its name ends in ``.gz``, ``.bz2``, ``.xz`` or ``.zip``) as
    text: codes such as ``01`` and names such as ``NA`` stay as written, only empty cells are
    missing, names in the header lose surrounding spaces, and Windows line breaks inside a cell
    become plain ones. Every way it can fail is one clear line, and so are a text larger than
    ``MAX_TEXT_BYTES``, rows with more cells than the header names columns (pandas would take the
    first column as row names and shift every other, or drop the last: which one the file means
    cannot be told), a header naming a column twice and a first row without names."""
    path = Path(path)
    problem = not_a_file(path)
    if problem:
        raise UserError(problem, path)
    text = _text(path).replace("\r\n", "\n")
    problem = _shape_problem(text, path)
    if problem:
        raise UserError(problem, path)
    try:
        with warnings.catch_warnings():  # empty cells beyond the header (checked): dropped
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], index_col=False
            )
    except pd.errors.EmptyDataError:
        raise UserError("the file is empty", path) from None
    except pd.errors.ParserError as exc:
        raise UserError(f"not a valid CSV table ({str(exc).splitlines()[0]})", path) from None
    named = [bool(name.strip()) for name in next(_rows(text))]
    frame = frame.loc[:, named]  # columns without a name are empty (checked): trailing commas
    frame.columns = [str(name).strip() for name in frame.columns]
    _refuse_control_characters(frame, path)
    return frame


def _rows(text: str) -> Iterator[list[str]]:
    """The rows of CSV ``text`` but blank lines, as pandas counts them, one at a time."""
    csv.field_size_limit(max(csv.field_size_limit(), CELL_LIMIT))
    return (row for row in csv.reader(io.StringIO(text, newline="")) if row)


def _text(path: Path) -> str:
    """The file's text, decompressed by its name's ending (:data:`COMPRESSIONS`), as UTF-8 (a
    byte-order mark dropped), read no further than ``MAX_TEXT_BYTES``."""
    name = path.name.lower()
    refused = next((ending for ending in NOT_READ if name.endswith(ending)), None)
    if refused:
        raise UserError(f"'{refused}' files are not read; save it as .csv or .csv.gz", path)
    ending = path.suffix.lower()
    try:
        if ending == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [
                    m
                    for m in archive.infolist()
                    if not m.is_dir() and not m.filename.startswith(ZIP_CLUTTER)
                ]
                if len(members) != 1:
                    raise UserError(f"a zip archive must hold one file, not {len(members)}", path)
                with archive.open(members[0]) as handle:
                    raw = handle.read(MAX_TEXT_BYTES + 1)
        else:
            with (COMPRESSIONS.get(ending) or open)(path, "rb") as handle:
                raw = handle.read(MAX_TEXT_BYTES + 1)
    except UserError:
        raise
    except (
        OSError,
        EOFError,
        ValueError,
        RuntimeError,  # an encrypted zip
        NotImplementedError,  # a zip compression Python does not know (Deflate64)
        zlib.error,
        lzma.LZMAError,
        zipfile.BadZipFile,
    ) as exc:
        kind = ending.lstrip(".")
        raise UserError(f"cannot be read as {kind}-compressed text ({exc})", path) from None
    if len(raw) > MAX_TEXT_BYTES:
        raise UserError(
            f"holds more than {MAX_TEXT_BYTES // 2**20} MiB of text (decompressed): not an "
            "index's data",
            path,
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", path
        ) from None


def _shape_problem(text: str, path: Path) -> str | None:
    """What is wrong with the rows of CSV ``text`` as a table, or None: a first row without names
    (empty rows above the header), a header separated by semicolons or tabs, a column named
    twice, a value in a column without a name (pandas would name it 'Unnamed: 4'), or a cell
    beyond the header's columns (an empty last cell, a trailing comma, is none). Rows are counted
    as pandas counts them (blank lines aside, the header row 1), one at a time: nothing but the
    text is held."""
    rows = _rows(text)
    try:
        header = [name.strip() for name in next(rows, [])]
        if not header:
            return "the file is empty"
        if not any(header):
            return "the first row holds no names: the header must come first (delete rows above)"
        if len(header) == 1:
            for delimiter, name in ((";", "semicolons"), ("\t", "tabs")):
                if delimiter in header[0]:
                    return (
                        f"the header is separated by {name}; save the file with commas between "
                        "columns"
                    )
        for name, count in Counter(header).items():
            if name and count > 1:
                return f"the header names column '{name}' twice"
        width, first, longer, body = len(header), None, 0, 0
        unnamed = [k for k, name in enumerate(header) if not name]
        for number, row in enumerate(rows, start=2):
            body += 1
            held = next((k for k in unnamed if k < len(row) and row[k].strip()), None)
            if held is not None:
                return (
                    f"column {held + 1} has no name in the header, but row {number} holds a "
                    "value in it: name that column, or remove it"
                )
            if any(cell.strip() for cell in row[width:]):
                first = first or (number, len(row))
                longer += len(row) == width + 1
    except csv.Error as exc:
        return f"not a valid CSV table ({exc})"
    if first is None:
        return None
    if longer == body:
        return (
            f"every row has one cell more than the header names columns ({width}): row names "
            "without a header (as R's write.table writes them), or a last column without a "
            "name? Name that column in the header, or remove it"
        )
    number, cells = first
    return (
        f"row {number} has {cells} cells where the header names {plural(width, 'column')} "
        "(a comma too many, or a column without a name?)"
    )


#: characters no XML document may hold (C0 controls but tab, line feed and carriage return, and
#: the noncharacters U+FFFE and U+FFFF), so that no figure (SVG) or report could show a name
#: holding one
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: what a cell of an input file may not hold: those, and a carriage return, which the tables'
#: writer leaves unquoted (a name holding one would be read back as two rows)
CELL_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\ufffe\uffff]")


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
    """A cell as the user wrote it, quoted (its beginning, when long)."""
    return quoted(str(raw.iloc[row]))
