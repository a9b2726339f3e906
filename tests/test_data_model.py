"""Metadata and indicator tables: what loads, and the one-line errors for what does not."""

import re

import numpy as np
import pandas as pd
import pytest

from nqpf_sens import UserError, load_spec, load_table
from nqpf_sens.engine.spec import spec_from_frame

META = """code,dimension,weight,direction
a,d1,2,positive
b,d1,1,negative
c,d2,3,1
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_nqpf_structure_is_table_1(spec):
    assert len(spec.indicators) == 15
    assert spec.dimensions == ("tech", "factor", "industry")
    np.testing.assert_allclose(spec.weights[1], [40, 40, 20])
    assert spec.indicators[spec.transform_flag.nonzero()[0][0]] == "clusters_centres"
    assert spec.transform_flag.sum() == 3


def test_minimal_metadata(tmp_path):
    spec = load_spec(write(tmp_path, "meta.csv", META))
    assert spec.levels == (("a", "b", "c"), ("d1", "d2"), ("total",))
    np.testing.assert_array_equal(spec.direction, [1, -1, 1])
    np.testing.assert_allclose(spec.weights[1], [3, 3])


def test_coinr_style_metadata_with_a_deeper_tree(tmp_path):
    text = """iCode,Parent,Weight,Direction,Type
a,P1,1,1,Indicator
b,P1,1,-1,Indicator
c,P2,1,1,Indicator
P1,S,1,1,Aggregate
P2,S,2,1,Aggregate
S,Index,1,1,Aggregate
Index,,1,1,Aggregate
g,,,,Group
"""
    spec = load_spec(write(tmp_path, "meta.csv", text))
    assert spec.levels == (("a", "b", "c"), ("P1", "P2"), ("S",), ("Index",))
    np.testing.assert_allclose(spec.weights[1], [1, 2])


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            META.replace("positive\nb", "upward\nb"),
            "row 2 (a), column 'direction': unknown direction 'upward'",
        ),
        (META.replace("a,d1,2", "a,d1,-2"), "'a', column 'weight': negative weight -2"),
        (META.replace("c,d2,3", "c,d2,0"), "'d2', column 'weight': all weights are zero"),
        (
            META.replace("a,d1,2", "a,d1,two"),
            "row 2 (a), column 'weight': not a finite number: 'two'",
        ),
        (META.replace("b,d1", "a,d1"), "indicator 'a' is listed twice"),
        ("code,weight,direction\na,1,1\n", "missing column 'dimension'"),
        ("", "the file is empty"),
    ],
)
def test_metadata_errors_name_file_row_and_column(tmp_path, text, expected):
    path = write(tmp_path, "meta.csv", text)
    with pytest.raises(UserError) as error:
        load_spec(path)
    assert str(path) in error.value.one_line() and expected in error.value.one_line()


def test_aggregate_without_indicator_is_refused(tmp_path):
    text = (
        "iCode,Parent,Weight,Direction,Type\n"
        "a,P1,1,1,Indicator\n"
        "P1,Index,1,1,Aggregate\n"
        "P2,Index,1,1,Aggregate\n"
        "Index,,1,1,Aggregate\n"
    )
    with pytest.raises(UserError, match="aggregate 'P2' has no indicator below it"):
        load_spec(write(tmp_path, "meta.csv", text))


def test_tidy_and_wide_tables_agree(tmp_path):
    spec = load_spec(write(tmp_path, "meta.csv", META))
    wide = write(tmp_path, "wide.csv", "unit,region,a,b,c\nX,East,1,2,3\nY,West,4,,6\n")
    tidy = write(
        tmp_path,
        "tidy.csv",
        "unit,indicator,value,source\nX,a,1,s\nX,b,2,s\nX,c,3,s\nY,a,4,s\nY,c,6,s\n",
    )
    from_wide, from_tidy = load_table(wide, spec), load_table(tidy, spec)
    np.testing.assert_array_equal(from_wide.values, from_tidy.values)
    assert np.isnan(from_wide.values[0, 1, 1])
    assert from_wide.attributes.loc["Y", "region"] == "West"


def test_panel_table(tmp_path):
    spec = load_spec(write(tmp_path, "meta.csv", META))
    rows = [f"China,{code},{year},{year - 2000}" for year in (2012, 2013) for code in "abc"]
    table = load_table(
        write(tmp_path, "panel.csv", "unit,indicator,year,value\n" + "\n".join(rows)), spec
    )
    assert table.years == (2012, 2013) and table.values.shape == (2, 1, 3)
    assert table.year(2013).values[0, 0, 0] == 13


@pytest.mark.parametrize(
    "text, expected",
    [
        ("unit,a,b,c,d\nX,1,2,3,4\n", "column 'd': unknown indicator 'd'"),
        ("unit,a,b,c\nX,1,2,3\nX,4,5,6\n", "row 3, column 'unit': unit 'X' is listed twice"),
        ("unit,a,b,c\nX,1,2,3\nY,4,n/a?,6\n", "row 3 (unit Y), column 'b': not a number: 'n/a?'"),
        ("unit,a,b\nX,1,2\n", "no values for indicator 'c'"),
        (
            "unit,indicator,value\nX,a,1\nX,zz,2\n",
            "row 3, column 'indicator': unknown indicator 'zz'",
        ),
        ("unit,indicator,value\nX,a,1\nX,a,2\n", "the same cell is given twice"),
        ("a,b,c\n1,2,3\n", "missing column 'unit'"),
    ],
)
def test_table_errors_name_file_and_cell(tmp_path, text, expected):
    spec = load_spec(write(tmp_path, "meta.csv", META))
    path = write(tmp_path, "values.csv", text)
    with pytest.raises(UserError) as error:
        load_table(path, spec)
    assert str(path) in error.value.one_line() and expected in error.value.one_line()


def test_wrong_encoding_is_a_clear_error(tmp_path):
    spec = load_spec(write(tmp_path, "meta.csv", META))
    path = tmp_path / "values.csv"
    path.write_bytes("unit,a,b,c\n北京,1,2,3\n".encode("gb18030"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_table(path, spec)


def test_leave_one_out_keeps_the_tree(spec):
    dropped = spec.drop(["ns_papers"])
    assert len(dropped.indicators) == 14 and dropped.dimensions == spec.dimensions
    with pytest.raises(UserError, match="without any indicator"):
        spec_from_frame(
            pd.DataFrame({"code": ["a"], "dimension": ["d"], "weight": [1], "direction": [1]}),
            "m.csv",
        ).drop(["a"])


VALUES = "unit,a,b,c\nu0,1.5,2,3\nu1,4,5,6.25\nu2,7,8,9\n"


def compressed(tmp_path, ending: str):
    """``VALUES`` in a file compressed as its ``ending`` says."""
    import bz2
    import gzip
    import lzma
    import zipfile

    path = tmp_path / f"values.csv{ending}"
    data = VALUES.encode()
    if ending == ".zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("values.csv", data)
    else:
        path.write_bytes({".gz": gzip, ".bz2": bz2, ".xz": lzma}[ending].compress(data))
    return path


@pytest.mark.parametrize("ending", [".gz", ".bz2", ".xz", ".zip"])
def test_compressed_tables_are_read(tmp_path, ending):
    """Compressions read by the name's ending (only .gz was, for a while, and a .xz file was then
    called 'not UTF-8 text')."""
    spec = load_spec(write(tmp_path, "meta.csv", META))
    table = load_table(compressed(tmp_path, ending), spec)
    np.testing.assert_allclose(table.values[0, :, 0], [1.5, 4, 7])


@pytest.mark.parametrize(
    "text, expected",
    [
        (VALUES.replace("\n", "\r\n"), None),  # Windows line ends
        ('unit,a,b,c,note\nu0,1,2,3,"two\r\nlines"\nu1,4,5,6,x\nu2,7,8,9,y\n', None),
        ("\nunit,a,b,c,a\nu0,1,2,3,4\n", "the header names column 'a' twice"),  # a blank first line
        ("unit,a\nu0," + "9" * 200_000 + ",7\n", "every row has one cell more"),  # a long cell
        ("unit,a,b,c\nu0,1,2,3,\nu1,4,5,6,7\n", "row 3 has 5 cells"),  # a trailing comma is none
    ],
)
def test_what_a_file_holds_is_read_or_refused_in_one_line(tmp_path, text, expected):
    """A line break of Windows inside a quoted cell is read (it was refused as a carriage return);
    the header of a file starting with a blank line is checked; a cell longer than the csv
    module's limit gives one line (a traceback before); a trailing comma is not a cell."""
    from nqpf_sens.engine.cells import read_csv

    path = write(tmp_path, "values.csv", text)
    if expected is None:
        frame = read_csv(path)
        assert "\r" not in "".join(frame.fillna("").to_numpy().ravel())
        return
    with pytest.raises(UserError, match=expected) as refused:
        read_csv(path)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "meta, values, expected",
    [
        (META, VALUES.replace("1.5", "1" * 10**6), "not a number: '1111"),
        (META.replace("d2,3,1", "d2,3," + "u" * 10**6), VALUES, "unknown direction 'uuuu"),
    ],
)
def test_a_long_cell_is_quoted_by_its_beginning(tmp_path, meta, values, expected):
    """A megabyte-long cell made a megabyte-long error line."""
    with pytest.raises(UserError, match=expected) as refused:
        load_table(write(tmp_path, "values.csv", values), load_spec(write(tmp_path, "m.csv", meta)))
    message = refused.value.message
    assert "'... (1,000,000 characters)" in message and len(message) < 120


def test_an_error_line_stays_short_whatever_text_it_names(tmp_path):
    """A unit named by a megabyte of text, listed twice: the error line keeps its start (the
    file, what is wrong) and its end, and says how much it left out."""
    name = "u" * 10**6
    values = VALUES.replace("u0,", f"{name},").replace("u1,", f"{name},")
    with pytest.raises(UserError) as refused:
        load_table(write(tmp_path, "values.csv", values), load_spec(write(tmp_path, "m.csv", META)))
    line = str(refused.value)
    assert len(line) <= 2000 and "characters left out" in line and "listed twice" in line
    assert line.startswith(str(tmp_path / "values.csv"))
    escaped = UserError("a unit '" + "\x1b" * 10**4 + "' is listed twice").one_line()
    assert "listed twice" in escaped and "\x1b" not in escaped and len(escaped) <= 2000
    assert re.fullmatch(r"([^\\]|\\u[0-9a-f]{4})*", escaped)  # no escape cut in two
    assert UserError("\U000e0001x").one_line() != UserError("\ue0001x").one_line()


def test_two_units_whose_names_print_alike_are_one_unit_listed_twice(tmp_path):
    """'café' written as one character (NFC) and as e and a combining accent (NFD) print alike:
    two such rows would be two units a reader cannot tell apart in every table."""
    values = VALUES.replace("u0,", "caf\u00e9,").replace("u1,", "cafe\u0301,")
    with pytest.raises(UserError, match="row 3, .*listed twice \\(in another Unicode form\\)"):
        load_table(write(tmp_path, "values.csv", values), load_spec(write(tmp_path, "m.csv", META)))


def test_a_configured_unit_column_is_matched_as_the_header_is_read(tmp_path):
    """Header names lose their spaces, so a configured ``unit_column = "uCode "`` must too."""
    import nqpf_sens as ns
    from nqpf_sens.inputs import load_inputs

    write(tmp_path, "meta.csv", META)
    write(tmp_path, "values.csv", VALUES.replace("unit,", "uCode ,"))
    config = ns.config_from_dict(
        {"data": {"metadata": "meta.csv", "values": "values.csv", "unit_column": "uCode "}},
        tmp_path,
    )
    assert load_inputs(config)[1].units == ("u0", "u1", "u2")


def test_archives_as_they_come_are_read_or_refused_in_one_line(tmp_path, monkeypatch):
    """A zip as macOS Finder makes it (its own files under __MACOSX/) is read; an encrypted zip
    (a traceback before), a .tar.gz (parsed as CSV text) and a text beyond the size limit (read
    whole, 8 GB for a 100 KB gz of line breaks) are refused in one line."""
    import gzip
    import zipfile

    from nqpf_sens.engine import cells

    finder = tmp_path / "finder.csv.zip"
    with zipfile.ZipFile(finder, "w") as archive:
        archive.writestr("values.csv", VALUES)
        archive.writestr("__MACOSX/._values.csv", b"\x00\x05\x16\x07")
    assert list(cells.read_csv(finder).unit) == ["u0", "u1", "u2"]
    locked = tmp_path / "locked.csv.zip"
    with zipfile.ZipFile(locked, "w") as archive:
        archive.writestr("values.csv", VALUES)
    data = bytearray(locked.read_bytes())  # set the 'encrypted' flag of the local and central
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # headers
        data[data.index(signature) + offset] |= 1
    locked.write_bytes(bytes(data))
    (tmp_path / "values.tar.gz").write_bytes(gzip.compress(b"values.csv\x00..."))
    big = tmp_path / "big.csv.gz"
    big.write_bytes(gzip.compress(b"unit,a\n" + b"\n" * 5000))
    monkeypatch.setattr(cells, "MAX_TEXT_BYTES", 4096)
    for name, expected in (
        ("locked.csv.zip", "cannot be read as zip-compressed text (File <ZipInfo"),
        ("values.tar.gz", "'.tar.gz' files are not read"),
        ("big.csv.gz", "holds more than 0 MiB of text"),
    ):
        with pytest.raises(UserError, match=re.escape(expected)) as refused:
            cells.read_csv(tmp_path / name)
        assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        (",,,\nunit,a,b,c\nu0,1,2,3\n", "the first row holds no names"),  # Excel's empty row
        ("unit;a;b\nu0;1,5;2,5\n", "the header is separated by semicolons"),  # decimal commas
        ("unit,a\nu0,1\n,,\n,,\nu1,2,9\n", "row 5 has 3 cells"),  # rows counted as pandas does
        ("unit,a,b,c,\nu0,1,2,3,\nu1,4,5,6,7\n", "column 5 has no name in the header, but row 3"),
    ],
)
def test_a_table_of_the_wrong_shape_is_named_for_what_it_is(tmp_path, text, expected):
    """An empty first row (the header became a row of data), a semicolon file with decimal
    commas (called 'a comma too many'), a row number that skipped rows of commas, a value under
    an empty header cell (named by pandas' 'Unnamed: 4', which the file does not hold)."""
    from nqpf_sens.engine.cells import read_csv

    with pytest.raises(UserError, match=expected):
        read_csv(write(tmp_path, "values.csv", text))


def test_an_empty_column_without_a_name_is_dropped(tmp_path):
    """Trailing commas in the header and every row: no column 'Unnamed: 4' in the tables."""
    from nqpf_sens.engine.cells import read_csv

    frame = read_csv(write(tmp_path, "values.csv", "unit,a,b,c,\nu0,1,2,3,\nu1,4,5,6,\n"))
    assert list(frame.columns) == ["unit", "a", "b", "c"]
