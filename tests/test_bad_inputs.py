"""A corpus of broken configs and data: one clear line, exit code 2, no traceback, nothing
written."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = pd.read_csv(CORPUS / "cases.csv")


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    shutil.copytree(CORPUS, folder)
    return folder


def run(folder, *args):
    return subprocess.run(
        [sys.executable, "-m", "nqpf_sens", "run", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "config, expected", list(CASES.itertuples(index=False, name=None)), ids=CASES.config.tolist()
)
def test_broken_input_is_refused_clearly(corpus, config, expected, monkeypatch, capsys, recwarn):
    """In process through the CLI's entry point: any exception but the one-line error fails the test
    (a traceback), and so does a warning (a second line on the terminal)."""
    from nqpf_sens.cli import main
    from nqpf_sens.uncertainty import study

    monkeypatch.chdir(corpus)
    monkeypatch.setattr(study, "DASK_TIMEOUT", 1)  # an unreachable scheduler: refused after 1 s
    code = main(["run", config, "--out", "results/out"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert not [str(w.message) for w in recwarn if not issubclass(w.category, DeprecationWarning)]
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert expected in lines[0], lines[0]
    assert ".toml" in lines[0] or ".csv" in lines[0], lines[0]
    assert not (corpus / "results").exists()


@pytest.mark.parametrize(
    "config", ["wrong_encoding.toml", "mask_needs_years.toml", "invalid_toml.toml"]
)
def test_no_traceback_from_the_command_line(corpus, config):
    result = run(corpus, config, "--out", "results/out")
    assert (
        result.returncode == 2
        and len(result.stderr.strip().splitlines()) == 1
        and "Traceback" not in result.stderr
    )
    assert not (corpus / "results").exists()


def test_unwritable_output_location_is_refused_before_running(corpus):
    (corpus / "ok.toml").write_text('[data]\nmetadata = "meta.csv"\nvalues = "values.csv"\n')
    result = run(corpus, "ok.toml", "--out", "values.csv/out")
    assert (
        result.returncode == 2
        and "cannot write" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


def test_constant_indicator_under_minmax_is_defined(corpus):
    values = pd.read_csv(corpus / "values.csv").assign(b=7.0)
    values.to_csv(corpus / "constant.csv", index=False)
    (corpus / "constant.toml").write_text(
        '[data]\nmetadata = "meta.csv"\nvalues = "constant.csv"\n'
    )
    result = run(corpus, "constant.toml", "--out", "results/constant", "--quiet")
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(corpus / "results" / "constant" / "baseline_scores.csv")
    assert scores.notna().all().all()


def test_a_units_file_with_missing_tokens_and_blank_rows_is_read(corpus, monkeypatch, capsys):
    """GDP per capita written 'NA' is missing (as in any number column), rows a spreadsheet left
    blank (or of spaces) at the end are no units, and cells are trimmed as the data file's unit
    names are (' u3 ' lost its attributes, ' East ' was a region of its own)."""
    from nqpf_sens.cli import main

    monkeypatch.chdir(corpus)
    (corpus / "units_ok.toml").write_text(
        '[data]\nmetadata = "meta.csv"\nvalues = "values.csv"\n'
        'units = "units_na_and_blank_rows.csv"\n'
    )
    assert main(["run", "units_ok.toml", "--out", "results/out", "--quiet"]) == 0, (
        capsys.readouterr()
    )
    attributes = pd.read_csv(corpus / "results" / "out" / "unit_attributes.csv")
    assert len(attributes) == 8 and attributes.gdp_per_capita.isna().sum() == 1
    assert set(attributes.region) == {"East"}
