"""The notebook API: build or load a config, run it in memory, get the tables as DataFrames."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import synthetic_frame

import nqpf_sens as ns

CONFIG = {
    "run": {"kind": "sobol", "seed": 3},
    "sampling": {"n": 64, "bootstrap": 20},
    "data": {"values": "values.csv"},
    "factors": [
        {"name": "weights", "kind": "weights", "level": 0, "spread": 0.3},
        {"name": "norm", "kind": "choice", "key": "normalisation", "options": ["minmax", "zscore"]},
    ],
}


@pytest.fixture
def folder(tmp_path, spec, monkeypatch):
    synthetic_frame(spec, n_units=10).to_csv(tmp_path / "values.csv", index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_in_memory_run_gives_the_tables_a_written_run_saves_and_writes_nothing(folder):
    before = sorted(os.listdir(folder))
    results = ns.run(ns.config_from_dict(CONFIG, folder))
    assert sorted(os.listdir(folder)) == before  # no results folder, no chunk files
    assert results.scenarios == 64 * 4
    (folder / "run.toml").write_text(_toml(CONFIG))
    written = ns.run_config(folder / "run.toml", out=folder / "out", quiet=True)
    assert {f"{name}.csv" for name in results.tables} == {p.name for p in written.glob("*.csv")}
    for name, frame in results.tables.items():
        saved = pd.read_csv(written / f"{name}.csv", keep_default_na=False, na_values=[""])
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), saved, check_dtype=False)


AUDIT_TABLES = {
    "coherence": {
        "indicator_statistics",
        "correlations",
        "cronbach",
        "pca_variance",
        "pca_loadings",
    },
    "importance": {"importance", "importance_divergence"},
    "what_if": {"what_if", "one_at_a_time", "one_at_a_time_summary"},
    "rank_bounds": {"rank_bounds"},
}


@pytest.mark.parametrize("step", sorted(AUDIT_TABLES))
def test_each_audit_step_can_be_switched_off_alone(folder, step):
    """By default every audit step applies to this run (one year, ten units, uniform weights,
    arithmetic); ``[audit] <step> = false`` removes that step's tables and no other."""
    everything = set(ns.run(ns.config_from_dict(CONFIG, folder)).tables)
    assert set().union(*AUDIT_TABLES.values()) <= everything
    without = set(ns.run(ns.config_from_dict({**CONFIG, "audit": {step: False}}, folder)).tables)
    assert everything - without == AUDIT_TABLES[step]


def test_optimal_weights_are_asked_for_by_name(folder):
    """Off by default; ``[audit] optimal_weights = "equal"`` adds its two tables, one row per
    node of every weighted level with siblings."""
    config = {**CONFIG, "audit": {"optimal_weights": "equal"}}
    tables = ns.run(ns.config_from_dict(config, folder)).tables
    assert not {"optimal_weights", "optimal_weights_summary"} & set(
        ns.run(ns.config_from_dict(CONFIG, folder)).tables
    )
    assert set(tables["optimal_weights_summary"].target) == {"equal"}
    assert len(tables["optimal_weights"]) == 15 + 3


def test_a_run_without_the_solver_steps_does_not_import_the_solver(folder):
    """scipy.optimize (a tenth of a second or more to import) is loaded by the steps that solve
    (rank bounds, optimal weights) and by nothing else."""
    config = {**CONFIG, "audit": {"rank_bounds": False}}
    script = (
        "import sys\n"
        "import nqpf_sens as ns\n"
        f"ns.run(ns.config_from_dict({config!r}, {str(folder)!r}))\n"
        "assert 'scipy.optimize' not in sys.modules, 'scipy.optimize was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, cwd=folder)


def test_factors_sharing_a_group_are_one_sobol_factor(folder):
    """COINr treats the weights of two levels as one factor: ``group`` makes the two factors one
    group of the design (N (groups + 2) scenarios) and the group is what the indices name."""
    factors = [
        {"name": "indicator_weights", "kind": "weights", "level": 0, "group": "weights"},
        {"name": "dimension_weights", "kind": "weights", "level": 1, "group": "weights"},
        CONFIG["factors"][1],
    ]
    results = ns.run(ns.config_from_dict({**CONFIG, "factors": factors}, folder))
    assert results.scenarios == 64 * (2 + 2)
    assert list(dict.fromkeys(results["sobol_indices"].factor)) == ["weights", "norm"]
    clash = [factors[0], {**factors[1], "group": "norm"}, {**factors[2], "group": "choices"}]
    with pytest.raises(ns.UserError, match="joins group 'norm', the name of a factor outside"):
        ns.run(ns.config_from_dict({**CONFIG, "factors": clash}, folder))


def test_a_config_built_in_code_is_checked_like_a_file(folder):
    with pytest.raises(ns.UserError) as error:
        ns.config_from_dict({"run": {"kind": "sobol"}, "sampling": {"n": 100}})
    assert "[sampling] n" in error.value.one_line()
    with pytest.raises(ns.UserError):
        ns.config_from_dict({"runn": {}})
    config = ns.config_from_dict({"data": {"values": "values.csv"}}, folder)
    assert config.data.values == folder / "values.csv" and config.name == "run"


def test_what_no_config_file_can_hold_is_a_user_error_not_a_traceback(folder):
    """A notebook can hand over anything: a factor that is not a table, keys that are not text,
    a dict that holds itself, nesting 100,000 deep, a folder that is a number, a config that is
    neither a RunConfig nor a path, workers that are not a whole number (AttributeError,
    TypeError, RecursionError before; 2.5 workers ran)."""
    looped: dict = {"run": {}}
    looped["run"]["self"] = looped
    deep: dict = {}
    for _ in range(100_000):
        deep = {"x": deep}
    bad = [
        {**CONFIG, "factors": [None]},
        {**CONFIG, 1: {}},
        {**CONFIG, "run": {2: "x"}},
        looped,
        {"run": deep},
    ]
    for raw in bad:
        with pytest.raises(ns.UserError):
            ns.config_from_dict(raw)
    with pytest.raises(ns.UserError):
        ns.config_from_dict(CONFIG, folder=3)
    with pytest.raises(ns.UserError):
        ns.run(123)
    for path, out in ((123, None), (folder / "base.toml", 5)):
        with pytest.raises(ns.UserError, match="must be a path"):
            ns.run_config(path, out=out)
    with pytest.raises(ns.UserError, match="NUL"):  # ValueError before
        ns.config_from_dict(CONFIG, folder="a\0b")
    (folder / "base.toml").write_text('[data]\nvalues = "values.csv"\n')
    with pytest.raises(ns.UserError, match="NUL"):
        ns.run_config(folder / "base.toml", out=folder / "x\0y")
    config = ns.config_from_dict(CONFIG)
    for jobs in ("2", 2.5, True):
        with pytest.raises(ns.UserError, match="workers"):
            ns.run(config, jobs=jobs)
    import numpy as np

    assert ns.run(ns.config_from_dict({**CONFIG, "sampling": {"n": 16}}), jobs=np.int64(1))


def test_a_toml_path_runs_and_errors_name_the_config(folder):
    (folder / "base.toml").write_text('[data]\nvalues = "values.csv"\n')
    assert ns.run(folder / "base.toml")["baseline_scores"].shape[0] == 10
    (folder / "bad.toml").write_text('[data]\nvalues = "values.csv"\n[pipeline]\nties = "x"\n')
    with pytest.raises(ns.UserError) as error:
        ns.run(folder / "bad.toml")
    assert "bad.toml" in error.value.one_line() and "[pipeline] ties" in error.value.one_line()


def _toml(config: dict) -> str:
    """The few TOML shapes CONFIG uses: tables of scalars and lists, arrays of tables."""

    def value(v):
        return "[" + ", ".join(value(x) for x in v) + "]" if isinstance(v, list) else repr(v)

    lines = []
    for section, body in config.items():
        for entry in body if isinstance(body, list) else [body]:
            lines.append(f"[[{section}]]" if isinstance(body, list) else f"[{section}]")
            lines += [f"{k} = {value(v)}".replace("'", '"') for k, v in entry.items()]
    return "\n".join(lines) + "\n"


LAYERS = {  # a layer may import itself and the layers listed (errors and outputs: anyone)
    "engine": set(),
    "uncertainty": {"engine"},
    "indices": {"engine"},
    "report": set(),
    "audit": {"engine"},
}


def test_dependencies_point_one_way():
    """The engine knows nothing above it; the uncertainty layer knows only the engine; the report
    reads saved files (it imports no other layer: what it says of an index's publication, a run
    records); only the index's own sub-package knows NQPF. Errors, safe writing, worker
    processes and wording are leaves every layer may use."""
    package = Path(ns.__file__).parent
    for path in package.rglob("*.py"):
        layer = path.relative_to(package).parts[0]
        if layer not in LAYERS:
            continue
        allowed = LAYERS[layer] | {layer, "errors", "outputs", "processes", "wording"}  # leaves
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nqpf_sens."):
                target = node.module.split(".")[1]
                assert target in allowed, f"{path.relative_to(package)} imports {node.module}"


def test_a_study_without_imputation_leaves_missing_parts_without_a_band(folder, spec):
    """With ``data_threshold`` a dimension a unit lacks data for is missing in every scenario:
    its score band is empty (no number stands for it), the index and every rank statistic are
    complete, importance counts the units each indicator is observed for, and the audit steps
    that need every part say why they were skipped."""
    frame = pd.read_csv(folder / "values.csv")
    first = spec.indicators[0]
    frame.loc[0, first] = None  # unit00 loses one of its first dimension's indicators
    frame.to_csv(folder / "values.csv", index=False)
    config = {
        **CONFIG,
        "pipeline": {"imputation": "none", "data_threshold": [0.9, 0.0]},
        "audit": {"optimal_weights": "equal"},
    }
    results = ns.run(ns.config_from_dict(config, folder))
    bands = results.tables["tier_bands"].set_index("unit")
    dimension = spec.levels[1][spec.parents[0][0]]
    gap = bands.filter(like=f"{dimension}_").isna()
    assert gap.loc["unit00"].all() and not gap.drop(index="unit00").any().any()
    assert not bands.filter(like="total_").isna().any().any()
    assert not results.tables["rank_stability"].isna().any().any()
    importance = results.tables["importance"].set_index("node")
    observed = importance.units.to_dict()
    assert observed.pop(first) == observed.pop(dimension) == 9 and set(observed.values()) == {10}
    skipped = " ".join(results.notes)
    assert "optimal weights skipped" in skipped and "exact rank bounds skipped" in skipped
    assert "optimal_weights" not in results.tables and "rank_bounds" not in results.tables


def test_a_value_of_no_toml_type_is_named_with_its_type(tmp_path):
    """From Python a config may hold numpy's numbers or paths, which TOML cannot: the refusal
    names their type ('expected an integer, got 16' read as a contradiction)."""
    import pathlib

    import numpy as np

    with pytest.raises(ns.UserError, match=r"got 16 \(a numpy\.int64\)"):
        ns.config_from_dict({"sampling": {"n": np.int64(16)}}, tmp_path)
    with pytest.raises(ns.UserError, match=r"got meta\.csv \(a pathlib\.\w*Path\)"):
        ns.config_from_dict({"data": {"metadata": pathlib.Path("meta.csv")}}, tmp_path)
