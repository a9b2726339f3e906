"""Sobol estimation against analytic answers, and the parallel study's guarantees."""

import contextlib
import json
import pickle
import socket
import sys
import threading
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_frame, write_units_and_values
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau, spearmanr

from nqpf_sens import UserError, config_from_dict, run
from nqpf_sens.config import load_config
from nqpf_sens.engine.batch import evaluate
from nqpf_sens.inputs import load_inputs
from nqpf_sens.plan import THRESHOLDS_AND_BANDS, prepare_study
from nqpf_sens.running import run_config
from nqpf_sens.uncertainty import study as uncertainty
from nqpf_sens.uncertainty.designs import Design, stable_hash
from nqpf_sens.uncertainty.sobol import sobol_indices
from nqpf_sens.uncertainty.statistics import order_statistics
from nqpf_sens.uncertainty.study import batch_for_rows, kept_count, resolved_backend


def ishigami(u):
    x = -np.pi + 2 * np.pi * u
    return np.sin(x[:, 0]) + 7 * np.sin(x[:, 1]) ** 2 + 0.1 * x[:, 2] ** 4 * np.sin(x[:, 0])


def estimate(function, groups, n=4096, seed=1):
    design = Design("saltelli", n, groups, seed)
    y = function(design.rows(0, design.n_rows))[:, None]
    return sobol_indices(y, ["y"], design.problem(), 200, 0.95, seed).set_index("factor")


def assert_close(found, expected, slack=0.02):
    for column in ("S1", "ST"):
        error = np.abs(found[column].to_numpy() - np.asarray(expected[column]))
        allowed = 2 * found[f"{column}_conf"].to_numpy() + slack
        assert np.all(error <= allowed), (column, found[column].to_numpy(), expected[column])


def test_ishigami_indices():
    found = estimate(ishigami, ["x1", "x2", "x3"])
    assert_close(found, {"S1": [0.3139, 0.4424, 0.0], "ST": [0.5576, 0.4424, 0.2437]})


def test_grouped_factors_give_the_closed_index_of_the_group():
    # x1 and x3 as one factor: S1 = S1 + S3 + S13 = ST = 1 - S2 = 0.5576
    found = estimate(lambda u: ishigami(u[:, [0, 2, 1]]), ["g13", "g13", "x2"])
    assert_close(found, {"S1": [0.5576, 0.4424], "ST": [0.5576, 0.4424]})


def test_sobol_g_function():
    a = np.array([0.0, 1.0, 4.5, 9.0, 99.0, 99.0])
    g = lambda u: np.prod((np.abs(4 * u - 2) + a) / (1 + a), axis=1)  # noqa: E731
    partial = 1 / (3 * (1 + a) ** 2)
    total = np.prod(1 + partial) - 1
    expected = {"S1": partial / total, "ST": partial * np.prod(1 + partial) / (1 + partial) / total}
    assert_close(estimate(g, [f"x{i}" for i in range(6)], n=8192), expected)


def test_designs_do_not_depend_on_chunking():
    for method in ("random", "sobol", "saltelli"):
        design = Design(method, 1024 if method != "saltelli" else 64, ["a", "b", "b"], 7)
        whole = design.rows(0, design.n_rows)
        pieces = np.concatenate(
            [design.rows(a, min(a + 100, design.n_rows)) for a in range(0, design.n_rows, 100)]
        )
        np.testing.assert_array_equal(whole, pieces)


def test_random_rows_are_the_keyed_streams_in_any_thread_and_after_pickling():
    """Each column is ``SeedSequence(seed, spawn_key=(group, place))`` advanced to the first row,
    however the generators are reused: by threads drawing at once, and by a copy pickled for
    another process."""
    design = Design("random", 5000, ["a", "b", "b"], 7)
    spans = [(a, min(a + 333, 5000)) for a in range(0, 5000, 333)] * 3

    def expected(start: int, stop: int) -> np.ndarray:
        columns = []
        for key in ((stable_hash("a"), 0), (stable_hash("b"), 0), (stable_hash("b"), 1)):
            stream = np.random.PCG64(np.random.SeedSequence(7, spawn_key=key))
            stream.advance(start)
            columns.append(np.random.Generator(stream).random(stop - start))
        return np.stack(columns, axis=1)

    with ThreadPoolExecutor(4) as pool:
        drawn = list(pool.map(lambda span: design.rows(*span), spans))
    for (start, stop), rows in zip(spans, drawn, strict=True):
        np.testing.assert_array_equal(rows, expected(start, stop))
    copy = pickle.loads(pickle.dumps(design))
    np.testing.assert_array_equal(copy.rows(4000, 4100), expected(4000, 4100))


def test_random_rows_past_the_first_4096_are_new_draws_whatever_the_range():
    """However the random design is seeded (per-block streams once repeated every 4,096 rows):
    any range [start, stop) equals those rows of one full draw, no row repeats an earlier one
    and no column copies another, even within a group."""
    design = Design("random", 9000, ["a", "b", "b"], 7)
    whole = design.rows(0, 9000)
    for start, stop in ((4090, 4100), (4096, 8192), (8999, 9000)):
        np.testing.assert_array_equal(design.rows(start, stop), whole[start:stop])
    assert len(np.unique(whole, axis=0)) == len(whole)
    assert np.abs(np.corrcoef(whole.T) - np.eye(3)).max() < 0.05


META_NO_FLAGS = (
    "code,dimension,weight,direction\n"
    + "\n".join(f"i{j},d{j % 3},1,positive" for j in range(6))
    + "\n"
)


@pytest.fixture
def project(tmp_path, spec):
    synthetic_frame(spec).to_csv(tmp_path / "values.csv", index=False)
    rng = np.random.default_rng(3)
    small = pd.DataFrame(rng.gamma(2.0, 5.0, size=(12, 6)), columns=[f"i{j}" for j in range(6)])
    small.insert(0, "unit", [f"u{i}" for i in range(12)])
    small.insert(1, "region", ["A", "B", "C"] * 4)
    small.to_csv(tmp_path / "small.csv", index=False)
    (tmp_path / "meta.csv").write_text(META_NO_FLAGS)
    return tmp_path


SOBOL = """
[run]
name = "s"
kind = "sobol"
seed = 5
chunk_size = 500
[data]
values = "values.csv"
[sampling]
n = 128
bootstrap = 50
[outputs]
# figures are drawn from the tables: their bytes are compared where the workers differ (below)
# and between runs of random configs (test_audit_properties)
figures = false
[[factors]]
name = "norm"
kind = "choice"
key = "normalisation"
options = ["minmax", "rank"]
[[factors]]
name = "w"
kind = "weights"
level = 0
spread = 0.3
[[factors]]
name = "noise"
kind = "noise"
spread = 0.05
"""


def read_outputs(folder):
    """Tables and figures by name (the manifest and the page state the workers and wall time)."""
    files = sorted([*folder.glob("*.csv"), *folder.glob("figures/*")])
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def used_backend(folder) -> str:
    """The workers a run used, as its manifest states them (``auto`` resolved)."""
    return json.loads((folder / "manifest.json").read_text())["backend"]


def test_same_seed_same_results_with_one_or_two_workers_of_each_kind(project):
    """Every file: tables and figures, in both formats."""
    drawn = SOBOL.replace("figures = false", "svg = true")
    (project / "s.toml").write_text(drawn)
    one = run_config(project / "s.toml", out=project / "one", jobs=1, quiet=True)
    outputs = [read_outputs(one)]
    used = {"auto, one worker": used_backend(one)}
    alone = threading.active_count() == 1  # else auto keeps to threads (loky's stay behind)
    for backend in ("auto", "threading", "fork", "loky"):
        (project / f"{backend}.toml").write_text(
            drawn.replace("chunk_size = 500", f'chunk_size = 300\nbackend = "{backend}"')
        )
        folder = run_config(project / f"{backend}.toml", out=project / backend, jobs=2, quiet=True)
        outputs.append(read_outputs(folder))
        used[backend] = used_backend(folder)
    assert all(output == outputs[0] for output in outputs[1:])
    auto = "fork" if alone else "threading"
    assert used == {
        "auto, one worker": "threading",
        "auto": auto,
        "threading": "threading",
        "fork": "fork",
        "loky": "loky",
    }
    expected = {
        "rank_stability.csv",
        "tier_bands.csv",
        "rank_shift.csv",
        "sobol_indices.csv",
        "sobol_summary.csv",
    }
    assert expected | {"figures/sobol_heatmap.svg", "figures/sobol_heatmap.png"} <= set(outputs[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers are Linux's")
def test_auto_forks_where_scenarios_differ_in_more_than_their_weights(monkeypatch):
    """Preparing choices, tables, noise and masks is Python work that threads take turns at;
    weights alone go to the compiled kernels, which threads share. A fork copies no thread, so
    with another thread running (a notebook's, say) auto keeps to threads."""
    weights, noisy = SimpleNamespace(weights_alone=True), SimpleNamespace(weights_alone=False)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert resolved_backend("auto", 2, noisy) == "fork"
    assert resolved_backend("auto", 2, weights) == "threading"
    assert resolved_backend("auto", 1, noisy) == "threading"
    assert resolved_backend("loky", 2, noisy) == "loky"
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert resolved_backend("auto", 2, noisy) == "threading"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers are Linux's")
def test_auto_keeps_to_threads_where_forked_workers_would_not_fit(project, monkeypatch):
    """A forked worker copies the pages of the run's process it writes to; where that is what
    would not fit, auto runs the study on threads and says so, rather than refusing the run."""
    from nqpf_sens import plan

    monkeypatch.setattr(threading, "active_count", lambda: 1)  # auto would fork
    monkeypatch.setattr(plan, "fits_in_memory", lambda size, memory=None: not size.forked)
    (project / "s.toml").write_text(SOBOL)
    folder = run_config(project / "s.toml", out=project / "auto", jobs=2, quiet=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["backend"] == "threading"
    assert plan.FORKS_DO_NOT_FIT in manifest["notes"]
    monkeypatch.setattr(plan, "fits_in_memory", lambda size, memory=None: True)
    folder = run_config(project / "s.toml", out=project / "fits", jobs=2, quiet=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["backend"] == "fork" and plan.FORKS_DO_NOT_FIT not in manifest["notes"]


def test_fork_is_refused_where_processes_cannot_fork(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(UserError, match=r"\[run\] backend: fork needs Linux; use auto or"):
        config_from_dict({"run": {"backend": "fork"}}, tmp_path)
    assert config_from_dict({"run": {}}, tmp_path).backend == "auto"


@pytest.mark.parametrize("jobs", [0, -1])
def test_a_run_needs_at_least_one_worker(project, jobs):
    (project / "s.toml").write_text(SOBOL)
    with pytest.raises(UserError, match="--jobs: from 1 to"):
        run(project / "s.toml", jobs=jobs)


def test_dask_backend_gives_identical_results(project):
    """... and says nothing of its own, even when another cluster or dashboard holds dask's usual
    port (its scheduler warned that port 8787 was in use)."""
    pytest.importorskip("distributed")
    (project / "s.toml").write_text(SOBOL)
    (project / "d.toml").write_text(
        SOBOL.replace("chunk_size = 500", 'chunk_size = 300\nbackend = "dask"')
    )
    threads = run_config(project / "s.toml", out=project / "threads", jobs=2, quiet=True)
    with socket.socket() as taken, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.suppress(OSError):  # taken already: all the better
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        dask = run_config(project / "d.toml", out=project / "dask", jobs=2, quiet=True)
    assert read_outputs(threads) == read_outputs(dask)
    assert not [w for w in caught if "8787" in str(w.message)]


def test_factor_without_effect_has_zero_total_index_and_is_reported(project):
    config = """
[run]
name = "z"
kind = "sobol"
[data]
metadata = "meta.csv"
values = "small.csv"
[sampling]
n = 64
bootstrap = 20
[[factors]]
name = "transformation"
kind = "choice"
key = "transformation"
options = ["none", "sqrt"]
[[factors]]
name = "w"
kind = "weights"
level = 0
"""
    (project / "z.toml").write_text(config)
    out = run_config(project / "z.toml", out=project / "z", quiet=True)
    indices = pd.read_csv(out / "sobol_indices.csv")
    inert = indices[indices.factor == "transformation"].dropna(subset=["ST"])
    assert len(inert) > 0 and np.allclose(inert.ST, 0.0)
    import json

    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert any("transformation" in n for n in notes)
    assert (pd.read_csv(out / "region_bands.csv").region.tolist()) == ["A", "B", "C"]


def test_zero_width_uncertainty_reproduces_the_baseline(project):
    config = """
[run]
name = "flat"
kind = "montecarlo"
[data]
values = "values.csv"
[sampling]
n = 200
[[factors]]
name = "w"
kind = "weights"
level = 0
spread = 0.0
[[factors]]
name = "noise"
kind = "noise"
spread = 0.0
[[factors]]
name = "norm"
kind = "choice"
key = "normalisation"
options = ["minmax", "zscore"]
probabilities = [1, 0]
"""
    (project / "flat.toml").write_text(config)
    out = run_config(project / "flat.toml", out=project / "flat", quiet=True)
    stability = pd.read_csv(out / "rank_stability.csv")
    assert (stability.median_rank == stability.nominal_rank).all()
    assert (stability.p05_rank == stability.nominal_rank).all() and (
        stability.p95_rank == stability.nominal_rank
    ).all()
    assert (stability.p_nominal_rank == 1).all()
    bands = pd.read_csv(out / "tier_bands.csv")
    np.testing.assert_allclose(bands.total_p05, bands.total_nominal, rtol=1e-6)
    np.testing.assert_allclose(bands.total_p95, bands.total_nominal, rtol=1e-6)
    assert (bands.p_nominal_tier == 1).all()
    baseline = pd.read_csv(out / "baseline_scores.csv").set_index("unit")
    np.testing.assert_allclose(
        bands.set_index("unit").total_nominal, baseline.loc[bands.unit, "total"]
    )


def prepared_study(path):
    """A run's config, data table, nominal result and study, as a run prepares them."""
    config = load_config(path)
    spec, table = load_inputs(config)
    nominal = evaluate(spec, table, config.pipeline, config.ties)
    return config, table, nominal, prepare_study(config, spec, table, nominal).study


@pytest.mark.parametrize("method", ["sobol", "saltelli", "random"])
def test_kept_scenarios_are_balanced_in_every_factor(project, monkeypatch, method):
    """The scenarios whose scores are kept (score and region bands; a Monte Carlo run's
    convergence) are those of the design's first base samples, a power of two of them, balanced
    in every column of a Sobol sequence as the whole design is. Every k-th scenario was kept: with
    k = 2 one factor's draws all lay in one half (a choice between two options: one option only),
    and the bands of all 31 units missed the full sample's quantiles."""
    monkeypatch.setattr("nqpf_sens.uncertainty.study.MAX_KEPT_SCORES", 1000)
    (project / "kept.toml").write_text(
        f'[run]\nname = "kept"\nkind = "{"sobol" if method == "saltelli" else "montecarlo"}"\n'
        '[data]\nvalues = "values.csv"\n'
        f'[sampling]\nn = 4096\nmethod = "{method}"\n'
        '[[factors]]\nname = "w0"\nkind = "weights"\nlevel = 0\n'
        '[[factors]]\nname = "w1"\nkind = "weights"\nlevel = 1\n'
        '[[factors]]\nname = "norm"\nkind = "choice"\nkey = "normalisation"\n'
        'options = ["minmax", "rank"]\n'
    )
    study = prepared_study(project / "kept.toml")[3]
    design = study.design
    uncertain = np.flatnonzero(design.uncertainty_rows(0, design.n_rows))
    kept = uncertain[: kept_count(study, 0, uncertain)]
    samples = 2 * 256 if method == "saltelli" else 512  # kept: at most 1,000 scenarios
    assert len(kept) == samples and study.kept_samples == 512 // (1 + (method == "saltelli"))
    draws = design.rows(0, design.n_rows)[kept]
    halves = (draws < 0.5).mean(axis=0)
    if method == "random":
        assert (np.abs(halves - 0.5) < 0.1).all()
    else:  # a net: exactly half of every column in each half
        assert (halves == 0.5).all(), halves


@pytest.mark.parametrize("kind", ["sobol", "montecarlo"])
def test_a_chunk_evaluated_in_batches_equals_one_batch(tmp_path, monkeypatch, kind):
    """A chunk is evaluated in batches as memory requires (a large index: batches of a hundred
    scenarios): its statistics, counts and rows, kept scores, quadrants and Sobol outputs
    included, equal those of the chunk evaluated at once, bit for bit, whatever the batch size
    (here one that divides no span)."""
    monkeypatch.setattr("nqpf_sens.uncertainty.study.MAX_KEPT_SCORES", 300)
    write_units_and_values(tmp_path)
    (tmp_path / "run.toml").write_text(
        SOBOL.replace('kind = "sobol"', f'kind = "{kind}"')
        .replace('values = "values.csv"', 'values = "values.csv"\nunits = "units.csv"')
        .replace("n = 128", "n = 1024")
    )
    study = prepared_study(tmp_path / "run.toml")[3]
    assert study.gdp is not None and study.n_regions > 0  # quadrants and region means counted
    start, stop = 100, 1_000  # some of them keep their scores, the others not
    assert study.batch_rows >= stop - start
    whole = uncertainty.evaluate_rows(study, start, stop)
    assert 0 < len(whole.scores) < study.design.uncertainty_rows(start, stop).sum()
    study.batch_rows = 7
    batched = uncertainty.evaluate_rows(study, start, stop)
    for name in uncertainty.COUNT_FIELDS + uncertainty.ROW_FIELDS:
        np.testing.assert_array_equal(getattr(batched, name), getattr(whole, name), err_msg=name)


def test_accumulated_statistics_equal_direct_computation(project):
    """Rank quantiles, tier shares and R_S from the chunk tallies equal those computed directly
    from every scenario's ranks, evaluated in one batch outside the study."""
    config_text = """
[run]
name = "direct"
kind = "montecarlo"
seed = 11
chunk_size = 70
[data]
metadata = "meta.csv"
values = "small.csv"
units = "units.csv"
[sampling]
n = 400
[tiers]
scheme = "fixed_ranks"
bounds = [3, 7]
[[factors]]
name = "w"
kind = "weights"
level = 0
spread = 0.6
[[factors]]
name = "agg"
kind = "choice"
key = "aggregation"
options = ["arithmetic", "geometric"]
"""
    (project / "direct.toml").write_text(config_text)
    gdp = np.array([5.0, 1, 7, 3, np.nan, 9, 2, 8, 4, 6, 1.5, 7.5])
    regions = ["A", "B", "B", "C", "C", "C"] * 2
    regions[-1] = None  # regions of 2, 4 and 5 units, and a unit in none
    pd.DataFrame(
        {"unit": [f"u{i}" for i in range(12)], "region": regions, "gdp_per_capita": gdp}
    ).to_csv(project / "units.csv", index=False)
    out = run_config(project / "direct.toml", out=project / "direct", jobs=2, quiet=True)

    _, table, nominal, study = prepared_study(project / "direct.toml")
    result = study.engine().evaluate(
        batch_for_rows(study, study.design.rows(0, study.design.n_rows))
    )
    ranks, tiers = result.ranks[:, 0], result.tiers[:, 0]  # (scenarios, units)

    stability = pd.read_csv(out / "rank_stability.csv").set_index("unit").loc[list(table.units)]
    np.testing.assert_array_equal(
        stability.p05_rank, np.quantile(ranks, 0.05, axis=0, method="inverted_cdf")
    )
    np.testing.assert_array_equal(
        stability.p95_rank, np.quantile(ranks, 0.95, axis=0, method="inverted_cdf")
    )
    np.testing.assert_allclose(stability.mean_rank, ranks.mean(axis=0))
    np.testing.assert_allclose(
        stability.mean_rank_se, ranks.std(axis=0, ddof=1) / np.sqrt(len(ranks))
    )
    np.testing.assert_allclose(
        stability.p_nominal_rank, (ranks == nominal.ranks[0, 0]).mean(axis=0)
    )
    bands = pd.read_csv(out / "tier_bands.csv").set_index("unit").loc[list(table.units)]
    for k in (1, 2, 3):
        np.testing.assert_allclose(bands[f"p_tier_{k}"], (tiers == k).mean(axis=0))
    shift = np.abs(ranks - nominal.ranks[0, 0]).mean(axis=1)
    rank_shift = pd.read_csv(out / "rank_shift.csv").set_index("statistic").value
    assert rank_shift.rank_shift_mean == pytest.approx(shift.mean())
    standard_error = shift.std(ddof=1) / np.sqrt(len(shift))
    assert rank_shift.rank_shift_mean_se == pytest.approx(standard_error)
    for name, q in (("median", 0.5), ("p05", 0.05), ("p95", 0.95)):
        assert rank_shift[f"rank_shift_{name}"] == pytest.approx(
            np.quantile(shift, q, method="inverted_cdf")
        )
    moved = np.abs(ranks - nominal.ranks[0, 0])
    assert rank_shift.share_unchanged == pytest.approx((moved == 0).mean())
    for k in (1, 3, 5):
        assert rank_shift[f"share_within_{k}"] == pytest.approx((moved <= k).mean())
    n = len(ranks)
    assert rank_shift.scenarios == n and (stability.scenarios == n).all()
    assert (bands.scenarios == n).all() and (bands.score_scenarios == n).all()
    centre = (stability.p_nominal_rank * n + 1.96**2 / 2) / (n + 1.96**2)  # Agresti and Coull
    np.testing.assert_allclose(
        stability.p_nominal_rank_se, np.sqrt(centre * (1 - centre) / (n + 1.96**2))
    )
    low, high = order_statistics(n, 0.05)
    ordered = np.sort(ranks, axis=0)
    np.testing.assert_array_equal(stability.p05_rank_low, ordered[low - 1])
    np.testing.assert_array_equal(stability.p05_rank_high, ordered[high - 1])
    agreement = pd.read_csv(out / "rank_agreement.csv").iloc[0]
    correlations = {
        "spearman": [spearmanr(r, nominal.ranks[0, 0]).statistic for r in ranks],
        "kendall": [kendalltau(r, nominal.ranks[0, 0]).statistic for r in ranks],
    }
    assert agreement.scenarios == n
    for measure, values in correlations.items():
        assert agreement[f"{measure}_mean"] == pytest.approx(np.mean(values), abs=1e-4)
        for name, q in (("median", 0.5), ("p05", 0.05), ("p95", 0.95)):
            expected = np.quantile(values, q, method="inverted_cdf")
            assert agreement[f"{measure}_{name}"] == pytest.approx(expected, abs=1e-4)
    p05, p95 = (np.quantile(ranks, q, axis=0, method="inverted_cdf") for q in (0.05, 0.95))
    nominal_in = (p05 <= nominal.ranks[0, 0]) & (nominal.ranks[0, 0] <= p95)
    assert agreement.share_nominal_rank_in_p05_p95 == pytest.approx(nominal_in.mean())
    index, known = result.index[:, 0], ~np.isnan(gdp)
    high_index = index > index.mean(axis=1, keepdims=True)  # the mean over every unit
    high_gdp = gdp > np.nanmean(gdp)
    quadrants = pd.read_csv(out / "quadrants.csv").set_index("unit")
    assert list(quadrants.index) == [u for u, k in zip(table.units, known, strict=True) if k]
    expected = {
        "p_high_index_high_gdp": high_index & high_gdp,
        "p_high_index_low_gdp": high_index & ~high_gdp,
        "p_low_index_high_gdp": ~high_index & high_gdp,
        "p_low_index_low_gdp": ~high_index & ~high_gdp,
    }
    for column, hits in expected.items():
        np.testing.assert_allclose(quadrants[column], hits[:, known].mean(axis=0))

    # regional means: each region's own units (none for the unit without a region), by group-by
    means = pd.DataFrame(index.T, index=list(table.units)).groupby(regions).mean()
    by_region = pd.read_csv(out / "region_bands.csv").set_index("region").loc[means.index]
    nominal_means = pd.Series(nominal.index[0, 0], index=list(table.units)).groupby(regions).mean()
    np.testing.assert_allclose(by_region.nominal_mean, nominal_means.loc[means.index])
    for column, q in (("p05", 0.05), ("median", 0.5), ("p95", 0.95)):
        np.testing.assert_allclose(by_region[column], np.quantile(means, q, axis=1), rtol=1e-5)


def test_chunks_shrink_to_the_memory_budget_without_changing_results(project, monkeypatch):
    (project / "s.toml").write_text(SOBOL)
    whole = run_config(project / "s.toml", out=project / "whole", jobs=2, quiet=True)
    monkeypatch.setattr(uncertainty, "CHUNK_MEMORY", 256 * 1024)
    config, _, _, study = prepared_study(project / "s.toml")
    chunk = uncertainty.Chunking.of(study, config.chunk_size).holding_rows  # a Saltelli design
    assert study.batch_rows < chunk < config.chunk_size  # noise: every scenario its own data
    small = run_config(project / "s.toml", out=project / "small", jobs=2, quiet=True)
    assert read_outputs(whole) == read_outputs(small)


def test_a_config_without_a_chunk_size_gets_an_eighth_of_the_design_within_bounds(project):
    """The default chunk splits a design into at least 8 chunks for the workers (within the
    bounds: larger for chunks of counts alone than for those that hold rows) and depends on the
    design alone; the memory cap still applies; results equal those of a set chunk size."""
    smallest, largest = uncertainty.DEFAULT_CHUNK_ROWS
    for n_rows in (1, 100, 8 * smallest, 8 * smallest + 1, 10**5, 10**6, 10**9):
        for saltelli, kept in ((True, 0), (False, 0), (False, n_rows // 3)):
            chunking = uncertainty.Chunking.plan(None, n_rows, saltelli, kept, row_bytes=1)
            assert smallest <= chunking.holding_rows <= largest
            assert smallest <= chunking.rows <= uncertainty.COUNTS_CHUNK_ROWS
            assert chunking.count >= 8 or chunking.holding_rows == chunking.rows == smallest
            lengths = [b - a for a, b in chunking.spans()]
            assert chunking.longest == max(lengths)  # what the memory estimate counts a batch by
            if saltelli:  # every chunk holds rows
                assert set(lengths[:-1]) <= {chunking.holding_rows}
    memory = uncertainty.CHUNK_MEMORY
    assert uncertainty.Chunking.plan(None, 10**6, True, 0, memory // 10).holding_rows == 10
    assert uncertainty.Chunking.plan(300, 10**6, True, 0, row_bytes=1).rows == 300
    (project / "set.toml").write_text(SOBOL)
    (project / "default.toml").write_text(SOBOL.replace("chunk_size = 500\n", ""))
    config, _, _, study = prepared_study(project / "default.toml")
    assert config.chunk_size is None and uncertainty.Chunking.of(study, None).rows == smallest
    default = run_config(project / "default.toml", out=project / "default", jobs=2, quiet=True)
    chunked = run_config(project / "set.toml", out=project / "set", jobs=2, quiet=True)
    assert read_outputs(default) == read_outputs(chunked)


@settings(max_examples=300, deadline=None)
@example(5000, 700, True, 0, 2**20)  # a Saltelli design: every chunk lowered
@example(5000, 700, False, 3000, 2**20)  # Monte Carlo: lowered while scores are kept
@given(
    st.integers(1, 5000),
    st.one_of(st.none(), st.integers(1, 700)),
    st.booleans(),
    st.integers(0, 6000),
    st.integers(1, 2**20),
)
def test_chunks_cover_the_design_in_order_and_hold_their_rows_within_memory(
    n_rows, requested, saltelli, kept_samples, row_bytes
):
    """Chunks follow each other from the first row to the last; a chunk whose rows keep rows of
    statistics (all of a Saltelli design's; a Monte Carlo design's first ``kept_samples``) keeps
    them within ``CHUNK_MEMORY``; the others have the configured size."""
    chunking = uncertainty.Chunking.plan(requested, n_rows, saltelli, kept_samples, row_bytes)
    spans = chunking.spans()
    assert len(spans) == chunking.count
    assert spans[0][0] == 0 and spans[-1][1] == n_rows
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    holding = n_rows if saltelli else kept_samples
    for start, stop in spans:
        kept_rows = max(0, min(stop, holding) - start)
        assert kept_rows * row_bytes <= max(uncertainty.CHUNK_MEMORY, row_bytes)
        assert stop - start <= chunking.rows
        assert start >= holding or stop == n_rows or stop - start == chunking.holding_rows


def test_monte_carlo_chunks_past_the_kept_scores_keep_their_size(project, monkeypatch):
    """Chunks lowered to keep their rows within memory stop where the kept scores do; the
    results are those of chunks of one size."""
    import nqpf_sens.plan

    monte_carlo = SOBOL.replace('kind = "sobol"', 'kind = "montecarlo"').replace(
        "n = 128", 'n = 1500\nmethod = "random"'
    )
    (project / "mc.toml").write_text(monte_carlo)
    whole = run_config(project / "mc.toml", out=project / "whole", jobs=2, quiet=True)
    monkeypatch.setattr(nqpf_sens.plan, "kept_scenarios", lambda n, size: 300)
    monkeypatch.setattr(uncertainty, "CHUNK_MEMORY", 60 * 1024)
    config, _, _, study = prepared_study(project / "mc.toml")
    chunking = uncertainty.Chunking.of(study, config.chunk_size)
    assert study.kept_samples == 256 and chunking.holding_rows < 256 < chunking.rows == 500
    spans = chunking.spans()
    lowered = [(a, b) for a, b in spans if b - a == chunking.holding_rows]
    assert lowered[-1][0] < 256 <= lowered[-1][1]  # they end with the kept scores
    assert all(b - a == 500 for a, b in spans[len(lowered) : -1])
    split = run_config(project / "mc.toml", out=project / "split", jobs=2, quiet=True)
    monkeypatch.undo()
    monkeypatch.setattr(nqpf_sens.plan, "kept_scenarios", lambda n, size: 300)
    kept = run_config(project / "mc.toml", out=project / "kept", jobs=2, quiet=True)
    assert read_outputs(kept) == read_outputs(split)
    assert read_outputs(whole) != read_outputs(kept)  # fewer scores kept: other score bands


@pytest.mark.parametrize("kind", ["sobol", "montecarlo"])
def test_the_resource_check_plans_the_chunks_the_study_runs(project, monkeypatch, kind):
    """The plan checks memory and disk for the chunks ``run_study`` will cut: every chunk of a
    Saltelli design keeps its outputs, so every one is lowered; a Monte Carlo design's only
    while it keeps scores."""
    import nqpf_sens.plan

    planned = []
    monkeypatch.setattr(nqpf_sens.plan, "check_resources", lambda size, work: planned.append(size))
    monkeypatch.setattr(nqpf_sens.plan, "kept_scenarios", lambda n, size: 100)
    monkeypatch.setattr(uncertainty, "CHUNK_MEMORY", 20 * 1024)
    config = (
        SOBOL.replace('kind = "sobol"', f'kind = "{kind}"')
        .replace("chunk_size = 500", "chunk_size = 200")
        .replace("n = 128", "n = 1024" if kind == "montecarlo" else "n = 128")
    )
    (project / "s.toml").write_text(config)
    config, _, _, study = prepared_study(project / "s.toml")
    chunking = uncertainty.Chunking.of(study, config.chunk_size)
    assert planned[-1].chunking == chunking
    sizes = {stop - start for start, stop in chunking.spans()[:-1]}
    assert chunking.holding_rows < 200
    assert sizes == ({chunking.holding_rows} if kind == "sobol" else {chunking.holding_rows, 200})


@pytest.mark.parametrize("kind", ["sobol", "montecarlo"])
def test_the_chunk_files_fit_the_disk_the_resource_check_planned(project, monkeypatch, kind):
    """The disk the plan checks for (``RunSize.disk``) is at least what the chunk files a run
    keeps for ``--resume`` take, counted after a run of many chunks whose folder is kept."""
    import nqpf_sens.plan
    import nqpf_sens.running

    planned = []
    check = nqpf_sens.plan.check_resources
    monkeypatch.setattr(
        nqpf_sens.plan,
        "check_resources",
        lambda size, work: planned.append(size) or check(size, work),
    )
    monkeypatch.setattr(nqpf_sens.running, "remove_work", lambda work: None)
    config = SOBOL.replace('kind = "sobol"', f'kind = "{kind}"').replace("n = 128", "n = 1024")
    (project / "s.toml").write_text(config.replace("chunk_size = 500", "chunk_size = 100"))
    run_config(project / "s.toml", out=project / "out", jobs=2, quiet=True)
    files = [f for f in (project / ".out.work").rglob("*") if f.is_file()]
    assert len(files) >= planned[-1].chunks > 5
    assert sum(f.stat().st_size for f in files) <= planned[-1].disk()


def test_the_kept_subsample_does_not_depend_on_the_chunk_size(project, monkeypatch):
    """Score bands come from every k-th base sample of the design, counted over the whole design
    (they were counted from the start of each chunk, so the chunk size changed them)."""
    import nqpf_sens.plan

    monkeypatch.setattr(nqpf_sens.plan, "kept_scenarios", lambda n, size: 60)  # every 5th of 256
    (project / "a.toml").write_text(SOBOL.replace("chunk_size = 500", "chunk_size = 77"))
    (project / "b.toml").write_text(SOBOL.replace("chunk_size = 500", "chunk_size = 1000"))
    small = run_config(project / "a.toml", out=project / "a", jobs=1, quiet=True)
    large = run_config(project / "b.toml", out=project / "b", jobs=1, quiet=True)
    assert read_outputs(small) == read_outputs(large)
    bands = pd.read_csv(small / "tier_bands.csv")
    assert (bands.score_scenarios < bands.scenarios).all()


def interrupted_at(project, monkeypatch, stop: int):
    """A full run of SOBOL in chunks of 100 ("fresh"), and the same run ("resumed") interrupted
    at the chunk starting at row ``stop``."""
    from nqpf_sens.errors import RunInterrupted

    (project / "s.toml").write_text(SOBOL.replace("chunk_size = 500", "chunk_size = 100"))
    fresh = run_config(project / "s.toml", out=project / "fresh", jobs=1, quiet=True)
    evaluate_span = uncertainty._evaluate_span

    def stop_there(study, start, *rest):
        if start == stop:
            raise KeyboardInterrupt
        return evaluate_span(study, start, *rest)

    with monkeypatch.context() as patched:
        patched.setattr(uncertainty, "_evaluate_span", stop_there)
        with pytest.raises(RunInterrupted):
            run_config(project / "s.toml", out=project / "resumed", jobs=1, quiet=True)
    return fresh


def test_a_resume_merges_the_chunks_found_in_design_order(project, monkeypatch):
    """Chunks on disk after a missing one (a worker finished later chunks first, or a file was
    damaged) are merged in their turn: the Sobol sums take the rows in design order."""
    fresh = interrupted_at(project, monkeypatch, 400)
    chunks = sorted(project.rglob("chunk_*.npz"))
    assert [int(c.stem.split("_")[1]) for c in chunks] == [0, 100, 200, 300]
    chunks[1].unlink()  # stored: 0, 200 and 300; missing: 100 and 400 onwards
    resumed = run_config(
        project / "s.toml", out=project / "resumed", jobs=1, quiet=True, resume=True
    )
    assert read_outputs(resumed) == read_outputs(fresh)


def test_a_chunk_file_gives_back_its_counts_exactly(tmp_path):
    """Counts are written in the smallest unsigned type that holds them and read back as int64,
    equal; the other arrays keep their types."""
    rng = np.random.default_rng(3)
    largest = (1, 299, 70_000, 2**33, 0)  # 0: empty counts
    arrays = {
        name: rng.integers(0, top, size=(2, 3), endpoint=True)
        for name, top in zip(uncertainty.COUNT_FIELDS, largest, strict=True)
    }
    for name, top in zip(uncertainty.COUNT_FIELDS, largest, strict=True):
        arrays[name][0, 0] = top
    arrays |= {name: rng.random((4, 2)).astype(np.float32) for name in uncertainty.ROW_FIELDS}
    arrays["outputs"] = rng.random((4, 3))
    chunk = uncertainty.ChunkStats(**arrays)
    path = tmp_path / "chunk.npz"
    chunk.save(path, "key")
    with np.load(path) as stored:
        types = {name: stored[name].dtype for name in uncertainty.COUNT_FIELDS}
    assert types == dict(
        zip(uncertainty.COUNT_FIELDS, map(np.dtype, "u1 u2 u4 u8 u1".split()), strict=True)
    )
    layout = {
        name: (array.shape, "unsigned" if name in uncertainty.COUNT_FIELDS else array.dtype.name)
        for name, array in arrays.items()
    }
    loaded = uncertainty.ChunkStats.load(path, "key", layout)
    assert loaded is not None
    for name, array in arrays.items():
        assert getattr(loaded, name).dtype == array.dtype
        np.testing.assert_array_equal(getattr(loaded, name), array)
    for name, (shape, dtype) in layout.items():  # a chunk not of its span's layout: computed again
        assert (
            uncertainty.ChunkStats.load(path, "key", layout | {name: ((9, *shape), dtype)}) is None
        )
    assert (
        uncertainty.ChunkStats.load(path, "key", layout | {"scores": ((4, 2), "float64")}) is None
    )


def test_a_resume_starts_over_on_chunks_of_another_layout(project, monkeypatch, capsys):
    """Chunk files written by a version that laid them out otherwise are not merged (their
    arrays would not fit): the run starts over, saying so."""
    fresh = interrupted_at(project, monkeypatch, 200)
    monkeypatch.setattr(uncertainty, "CHUNK_LAYOUT", uncertainty.CHUNK_LAYOUT + 1)
    capsys.readouterr()
    resumed = run_config(
        project / "s.toml", out=project / "resumed", jobs=1, quiet=False, resume=True
    )
    assert "starting over" in capsys.readouterr().err
    assert read_outputs(resumed) == read_outputs(fresh)


def test_region_means_of_a_chunk_that_keeps_no_scores():
    """A chunk can keep no row's scores (a large design in small chunks): its region means are an
    empty array of the right shape, not a failed reshape."""
    regions = SimpleNamespace(region_codes=np.array([0, 1, 1, -1]), n_regions=2)
    means = uncertainty.Study.region_means(regions, np.empty((0, 3, 4)))
    assert means.shape == (0, 3, 2)
    some = uncertainty.Study.region_means(regions, np.arange(8.0).reshape(1, 2, 4))
    np.testing.assert_allclose(some, [[[0.0, 1.5], [4.0, 5.5]]])


THRESHOLDS = """
[run]
name = "t"
kind = "montecarlo"
seed = 2
[data]
values = "values.csv"
[tiers]
scheme = "score_thresholds"
thresholds = [40, 30]
[sampling]
n = 64
[[factors]]
name = "norm"
kind = "choice"
key = "normalisation"
options = {options}
[[factors]]
name = "w"
kind = "weights"
level = 0
"""


@pytest.mark.parametrize("options", ['["zscore", "rank"]', '["minmax", "zscore"]'])
def test_score_thresholds_cut_every_normalisation_on_the_nominal_scale(project, options):
    """Thresholds are written for the nominal scale (min-max 0-100 here, the index 20-51): a
    scenario normalised otherwise is cut after its index is mapped onto that scale, as its score
    bands are (on its own scale, z-scores around 0, every unit fell in the lowest tier); a
    scenario normalised as the nominal run is cut on its own scores."""
    (project / "t.toml").write_text(THRESHOLDS.format(options=options))
    config, _, nominal, study = prepared_study(project / "t.toml")
    batch = batch_for_rows(study, study.design.rows(0, 64))
    result = study.engine().evaluate(batch)
    mapped = uncertainty.on_nominal_scale(result.index[..., None], nominal.scores[0][..., -1:])
    own = np.array([p.normalisation == "minmax" for p in batch.pipelines])[batch.pipeline_index]
    index = np.where(own[:, None, None], result.index, mapped[..., 0])
    expected = config.pipeline.tiers.assign(index, result.ranks)
    found = uncertainty.thresholds_on_nominal_scale(study, batch, result).tiers
    np.testing.assert_array_equal(found, expected)
    folder = run_config(project / "t.toml", out=project / "out", quiet=True)
    bands = pd.read_csv(folder / "tier_bands.csv")
    first = bands[bands.nominal_rank == 1].iloc[0]  # its index 50.7, far above the thresholds
    assert first.nominal_tier == 1 and first.p_nominal_tier > 0.9
    notes = json.loads((folder / "manifest.json").read_text())["notes"]
    assert THRESHOLDS_AND_BANDS in notes  # bands and thresholds read different scales


@pytest.mark.parametrize(
    "factors, noted",
    [
        ('key = "treat_fallback"\noptions = ["log_CT", "boxcox"]', True),
        ('key = "power"\noptions = [0.5, 2.0]', True),
        ('key = "mean_shift"\noptions = [0.01, 0.1]', True),
        (
            'key = "mean_shift"\noptions = [0.01, 0.1]\n[[factors]]\nname = "a"\nkind = "choice"\n'
            'key = "aggregation"\noptions = ["arithmetic", ["arithmetic", "geometric"]]',
            False,
        ),
        (
            'key = "treat_fallback"\noptions = ["log_CT", "boxcox"]\n[[factors]]\nname = "t"\n'
            'kind = "choice"\nkey = "transformation"\noptions = ["none", "treat"]',
            False,
        ),
    ],
)
def test_a_choice_that_only_matters_under_a_setting_nothing_chooses_is_noted(
    project, factors, noted
):
    """A treatment, mean or shift parameter varied where neither the pipeline nor any factor
    picks the method it steers: every index of it is 0, and the run says why."""
    (project / "c.toml").write_text(
        '[run]\nname = "c"\nkind = "montecarlo"\n[data]\nvalues = "values.csv"\n'
        f'[sampling]\nn = 8\n[[factors]]\nname = "p"\nkind = "choice"\n{factors}\n'
    )
    config, table, nominal, _ = prepared_study(project / "c.toml")
    notes = prepare_study(config, load_inputs(config)[0], table, nominal).notes
    assert any(n.startswith("factor 'p':") and "only matters under" in n for n in notes) == noted


def test_an_alternative_table_with_its_rows_in_another_order_is_the_same_data(project):
    """The alternative holds the values file's rows reversed: accepted, put in the same order,
    and choosing between the two moves nothing."""
    values = pd.read_csv(project / "values.csv")
    values.iloc[::-1].to_csv(project / "reversed.csv", index=False)
    (project / "alt.toml").write_text(
        '[run]\nname = "alt"\nkind = "montecarlo"\n[data]\nvalues = "values.csv"\n'
        'alternatives = ["reversed.csv"]\n[sampling]\nn = 16\n[[factors]]\nname = "d"\n'
        'kind = "dataset"\n'
    )
    folder = run_config(project / "alt.toml", out=project / "out", quiet=True)
    stability = pd.read_csv(folder / "rank_stability.csv")
    assert (stability.p_nominal_rank == 1).all()


def fixed_normalisation_study(project, options: str, extra: str = ""):
    """A run's study over metadata that normalises every indicator by min-max itself, with
    score-threshold tiers and a normalisation factor over ``options``."""
    meta = pd.read_csv(project / "meta.csv").assign(normalisation="minmax")
    meta.to_csv(project / "own.csv", index=False)
    (project / "own.toml").write_text(
        '[run]\nname = "own"\nkind = "montecarlo"\n[data]\nmetadata = "own.csv"\n'
        'values = "small.csv"\n[tiers]\nscheme = "score_thresholds"\nthresholds = [60, 40]\n'
        '[sampling]\nn = 64\n[[factors]]\nname = "norm"\nkind = "choice"\n'
        f'key = "normalisation"\noptions = {options}\n{extra}'
    )
    return prepared_study(project / "own.toml")


def test_score_thresholds_read_the_metadatas_own_normalisation(project):
    """Every indicator normalised by min-max in the metadata: a scenario whose pipeline says
    'rank' has the nominal run's scale (its scores are the min-max ones), so its own scores are
    cut, as any other's (it was mapped onto the nominal scale: identical scores, other tiers)."""
    weights = '[[factors]]\nname = "w"\nkind = "weights"\nlevel = 0\nspread = 0.5\n'
    config, _, _, study = fixed_normalisation_study(project, '["minmax", "rank"]', weights)
    batch = batch_for_rows(study, study.design.rows(0, 64))
    result = study.engine().evaluate(batch)
    found = uncertainty.thresholds_on_nominal_scale(study, batch, result).tiers
    np.testing.assert_array_equal(found, config.pipeline.tiers.assign(result.index, result.ranks))


def test_a_normalisation_factor_the_metadata_overrides_is_noted_not_said_to_vary(project):
    """The metadata fixes every indicator's method: a normalisation factor changes nothing, is
    noted as such, and the run does not say that the normalisation varies."""
    config, table, nominal, _ = fixed_normalisation_study(project, '["rank", "zscore"]')
    notes = prepare_study(config, load_inputs(config)[0], table, nominal).notes
    assert THRESHOLDS_AND_BANDS not in notes
    assert any(n.startswith("factor 'norm': the metadata fixes every") for n in notes)


@pytest.mark.parametrize(("kind", "n"), [("montecarlo", 8192), ("sobol", 512)])
def test_the_memory_estimate_covers_a_studys_measured_peak(project, monkeypatch, kind, n):
    """What the resource check counts for the study (its chunks in flight: each worker's batch,
    the rows of the chunks being made and merged; their counts; the kept scores) is at least what
    tracemalloc finds the study allocating at its peak on two threads, for scenarios of their
    own data (noise) with a choice of normalisation (measured: 64-68 MiB against 201 MiB: the
    batch's bytes a scenario, tested in test_engine, are an upper bound)."""
    import nqpf_sens.plan as plan

    monkeypatch.setattr(uncertainty, "MAX_KEPT_SCORES", 1024)
    sizes, check = [], plan.check_resources

    def capture(size, *arguments):
        sizes.append(size)
        return check(size, *arguments)

    monkeypatch.setattr(plan, "check_resources", capture)
    text = SOBOL.replace("chunk_size = 500\n", "").replace("n = 128", f"n = {n}")
    (project / "m.toml").write_text(text.replace('kind = "sobol"', f'kind = "{kind}"'))
    config = load_config(project / "m.toml")
    spec, table = load_inputs(config)
    nominal = evaluate(spec, table, config.pipeline, config.ties)
    study = prepare_study(config, spec, table, nominal, jobs=2).study
    items = sizes[-1].memory()
    tracemalloc.start()
    uncertainty.run_study(study, project / "work", None, 2, "threading", None, False, False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    studied = ("the chunks in flight", "the rank histograms", "the kept scores")
    estimate = sum(items[name][0] for name in studied)
    assert peak <= estimate
