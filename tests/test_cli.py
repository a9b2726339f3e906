"""The command line: runs write complete outputs; user errors give one line, exit code 2, nothing
written."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import synthetic_frame


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "nqpf_sens", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def project(tmp_path, spec):
    synthetic_frame(spec).to_csv(tmp_path / "values.csv", index=False)
    (tmp_path / "base.toml").write_text(
        '[run]\nname = "base"\n[data]\nvalues = "values.csv"\n[tiers]\nbounds = [2, 5]\n',
        encoding="utf-8",
    )
    return tmp_path


def test_help():
    result = subprocess.run(
        [sys.executable, "-m", "nqpf_sens", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "run" in result.stdout


def test_version():
    from importlib import metadata

    result = run_cli("--version", cwd=None)
    assert result.returncode == 0 and result.stdout.strip() == (
        f"nqpf_sens {metadata.version('nqpf_sens')}"
    )


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "base.toml", "--jobs", "abc"], "argument --jobs: invalid int value: 'abc'"),
        (["run"], "the following arguments are required: config"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_a_command_line_argparse_refuses_is_one_line(project, capsys, argv, expected):
    """argparse's own errors printed the usage above the error, as the run's errors do not."""
    from nqpf_sens.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(lines) == 1 and expected in lines[0], lines


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_a_run_stopped_while_the_program_loads_ends_in_one_line(project, how):
    """Ctrl-C (or SIGTERM) while the command imports numpy, pandas and the kernels: a
    KeyboardInterrupt traceback, since importing the package imported everything before the
    command could handle it."""
    command = [sys.executable, "-m", "nqpf_sens", "run", "base.toml", "--quiet"]
    run = subprocess.Popen(
        command,
        cwd=project,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    maps = Path(f"/proc/{run.pid}/maps")
    deadline = time.time() + 60
    while "_multiarray_umath" not in maps.read_text():  # numpy loaded: the rest still to come
        assert run.poll() is None and time.time() < deadline, "the run ended before it loaded"
        time.sleep(0.002)
    run.send_signal(how)
    _, error = run.communicate(timeout=60)
    assert run.returncode == 130 and error == "interrupted: no results were written\n", error
    assert not (project / "results").exists()


def test_the_package_exports_its_names_on_first_use():
    """``import nqpf_sens`` imports nothing heavy; each exported name is there when asked for."""
    found = subprocess.run(
        [sys.executable, "-c", "import sys, nqpf_sens; print('pandas' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert found.stdout == "False\n", found.stderr
    import nqpf_sens

    for name in nqpf_sens.__all__:
        assert getattr(nqpf_sens, name).__module__.startswith("nqpf_sens."), name
    import nqpf_sens.running  # the module of the same name does not hide the function

    assert callable(nqpf_sens.run) and name in dir(nqpf_sens)
    assert nqpf_sens.errors.UserError is nqpf_sens.UserError  # sub-modules, as before
    assert not {"importlib", "Any", "annotations"} & set(dir(nqpf_sens))
    reloaded = subprocess.run(  # in a process of its own: a reload makes new classes
        [sys.executable, "-c", RELOAD], capture_output=True, text=True
    )
    assert reloaded.stdout == "True\n", reloaded.stderr


#: a reload of the package forgets the names it cached, so edited code is seen
RELOAD = (
    "import importlib, nqpf_sens as ns, nqpf_sens.running\n"
    "ns.run\n"
    "importlib.reload(nqpf_sens.running)\n"
    "importlib.reload(ns)\n"
    "print(ns.run is nqpf_sens.running.run)\n"
)


def test_baseline_run_writes_scores_and_manifest(project):
    """The manifest says what computed the results, where and when; the console reports the
    manifest's wall time, counted in words that agree with the number."""
    result = run_cli("run", "base.toml", cwd=project)
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(project / "results" / "base" / "baseline_scores.csv")
    assert list(scores.columns[:5]) == ["unit", "total", "tech", "factor", "industry"]
    assert sorted(scores["rank"]) == list(range(1, 32))
    manifest = json.loads((project / "results" / "base" / "manifest.json").read_text())
    assert manifest["scenarios"] == 1
    assert f"(1 scenario computed in {manifest['wall_seconds']:.1f} s)" in result.stdout
    assert {"numpy", "numba", "scipy", "pandas", "matplotlib", "SALib"} <= set(manifest["versions"])
    assert manifest["finished_utc"].endswith("+00:00") and manifest["platform"]
    revision = manifest["code_revision"]  # a checkout records its commit, an installed copy none
    assert revision is None or re.fullmatch(r"[0-9a-f]{40}(\+changes)?", revision)


@pytest.mark.parametrize(
    "config, expected",
    [
        (
            '[pipeline]\nnormalisaton = "minmax"\n',
            "[pipeline] normalisaton: unknown key (did you mean 'normalisation'?)",
        ),
        (
            '[pipeline]\nnormalisation = "maxmin"\n',
            "[pipeline] normalisation: unknown option 'maxmin'",
        ),
        (
            '[pipeline]\nwinsor_limit = "high"\n',
            "[pipeline] winsor_limit: expected an integer or a number, got 'high'",
        ),
        ("[pipline]\n", "[pipline]: unknown section (did you mean [pipeline]?)"),
        ('[data]\nvalues = "missing.csv"\n', "bad.toml: [data] values: file not found"),
        ("[run\n", "not valid TOML"),
        ('[run]\nseed = "' + "x" * 10**5 + '"\n', "xxx'... (100,000 characters)"),
        # hundreds of levels: tomllib, and the checks after it, recurse into them
        ("[tiers]\nbounds = " + "[" * 400 + "]" * 400 + "\n", "[tiers] bounds item 1 item 1"),
        ("[run]\nname = " + "{a = " * 400 + "1" + "}" * 400 + "\n", "nested more than 8 levels"),
    ],
)
def test_bad_config_one_line_exit_2_nothing_written(project, config, expected):
    (project / "bad.toml").write_text(
        '[data]\nvalues = "values.csv"\n' * ("[data]" not in config) + config, encoding="utf-8"
    )
    result = run_cli("run", "bad.toml", cwd=project)
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (project / "results").exists() or not any((project / "results").iterdir())


def test_a_config_starting_with_a_byte_order_mark_is_read(project):
    """As a CSV file's is: Windows editors write one (it was "not valid TOML" at line 1)."""
    from nqpf_sens import load_config

    text = (project / "base.toml").read_text(encoding="utf-8")
    (project / "bom.toml").write_text(text, encoding="utf-8-sig")
    assert load_config(project / "bom.toml").name == "base"


def test_the_national_config_runs_from_any_folder(tmp_path):
    """``[data] shipped = "national"`` names the packaged panel, so the shipped config needs no
    path into the source tree: copied anywhere, it runs (here with a small sample); its report
    reads a trajectory, with no statement about the ranks of a single unit, and sets the paper's
    published values beside the reproduction."""
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "configs" / "national.toml"
    text = shipped.read_text(encoding="utf-8").replace("n = 4096", "n = 64")
    (tmp_path / "national.toml").write_text(text, encoding="utf-8")
    result = run_cli("run", "national.toml", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(tmp_path / "results" / "national" / "baseline_scores.csv")
    assert set(scores.unit) == {"China"} and scores.year.min() == 2012
    assert scores.loc[scores.year == 2012, "total"].iloc[0] == pytest.approx(100)
    page = (tmp_path / "results" / "national" / "report.html").read_text(encoding="utf-8")
    assert "China&#x27;s index: " in page and " in 2022 (5th-95th percentile" in page
    assert "<h2>Rank stability</h2>" not in page and "places from its nominal rank" not in page
    published = "The paper&#x27;s published 2022 values (2012 = 100) against the reproduction"
    assert published in page and "total 248.7 against" in page
    assert "x: the paper&#x27;s published 2022 values" in page  # drawn in the fan chart
    figures = tmp_path / "results" / "national" / "figures"
    assert list(figures.glob("*.png")) and not list(figures.glob("*.svg"))  # SVG on request


@pytest.mark.parametrize("name", ["nope.toml", "a" * 300 + ".toml", "."])
def test_a_config_that_cannot_be_read_is_one_line(project, name):
    """Missing, a name too long for the system (a traceback), a folder."""
    result = run_cli("run", name, cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "the config file: " in result.stderr


def test_paths_that_cannot_be_resolved_are_one_line(project):
    """A data path that is a loop of symbolic links, and a report of a folder whose name is too
    long for the system: one line each (tracebacks)."""
    (project / "loop1").symlink_to("loop2")
    (project / "loop2").symlink_to("loop1")
    (project / "loop.toml").write_text('[data]\nvalues = "loop1"\n')
    for argv in (("run", "loop.toml"), ("report", "z" * 300)):
        result = run_cli(*argv, cwd=project)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_name_too_long_for_the_folders_beside_it_is_refused_before_running(project):
    """240 characters fit a folder name, not the staging folder's (18 more): the study ran in
    full, then failed to write, leaving its chunks and no word of them."""
    name = "n" * 240
    result = run_cli("run", "base.toml", "--out", f"results/{name}", "--quiet", cwd=project)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "the name is too long" in result.stderr and "255 bytes" in result.stderr
    assert not (project / "results").exists()


def test_the_console_never_rounds_a_share_short_of_all_to_one(capsys):
    """The summary a run prints keeps the decimals that stop 0.9996 reading 1.00 (certainty) and
    0.0004 reading 0.00; other numbers keep two."""
    from types import SimpleNamespace

    from nqpf_sens.running import _print_summary

    stability = pd.DataFrame(
        {
            "unit": ["a", "b"],
            "nominal_rank": [1, 2],
            "median_rank": [1.0, 2.0],
            "p_nominal_rank": [0.9996, 0.5],
            "p_within_1": [1.0, 0.0004],
        }
    )
    results = SimpleNamespace(
        tables={"rank_stability": stability}, notes=[], convergence={}, about={}
    )
    _print_summary(results)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows == [["a", "1", "1.00", "0.9996", "1.00"], ["b", "2", "2.00", "0.50", "0.0004"]]
