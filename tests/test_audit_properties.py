"""Invariants an uncertainty analysis must keep, checked by hypothesis on generated indices (random
trees of depth 1-3, 3-40 units, integer data with ties, zeros and missing cells, random factor
sets; see ``generated_indices``). The README lists them under "Validation"; set
``NQPF_SENS_PROPERTIES=thorough`` for many more examples than the suite's default."""

import hashlib
import json
import re
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from conftest import examples
from generated_indices import config, factor_sets, indices, project, raw_config, write_config
from hypothesis import given, reject, settings
from hypothesis import strategies as st

import nqpf_sens as ns
from nqpf_sens.audit.coherence import nominal_levels
from nqpf_sens.errors import RunInterrupted
from nqpf_sens.inputs import load_inputs
from nqpf_sens.outputs import MARKER
from nqpf_sens.plan import prepare_study
from nqpf_sens.uncertainty import study as study_module
from nqpf_sens.uncertainty.sobol import INTERACTION_INTERVAL
from nqpf_sens.uncertainty.study import batch_for_rows

#: the uncertainty tables: what the scenarios say (the others describe the nominal run)
UNCERTAINTY = ("rank_stability", "tier_bands", "rank_shift", "rank_agreement", "convergence")


def computed(run_config: ns.RunConfig) -> ns.Results:
    """The run's tables; an example whose inputs the run refuses is not one these properties
    are about (refusals are the tenth property's)."""
    try:
        return ns.run(run_config)
    except ns.UserError:
        reject()


def zero_width(factor: dict) -> dict:
    """The factor with nothing left to vary: no spread, or every option the nominal one."""
    if factor["kind"] in ("weights", "noise"):
        return {**factor, "spread": 0.0}
    if factor["kind"] == "choice":
        return {**factor, "options": [factor["options"][0]] * 2}
    return {**factor, "options": ["none", "none"]}


@settings(max_examples=examples(15))
@given(st.data())
def test_zero_width_factors_reproduce_the_nominal_run(data):
    """Factors that cannot vary describe one scenario, the nominal one, repeated: every quantile is
    the nominal value, every probability of the nominal outcome 1, R_S 0, and no factor has an
    effect (Sobol indices of an output no scenario moves are 0/0: left empty and flagged as not
    varying; beside a factor that does vary, a zero-width factor's S1 and ST are exactly 0)."""
    index = data.draw(indices())
    factors = [zero_width(f) for f in data.draw(factor_sets(index)) if f["kind"] != "mask"]
    if not factors:
        reject()
    kind = data.draw(st.sampled_from(["montecarlo", "sobol"]))
    with project(index) as folder:
        results = computed(config(folder, factors, kind=kind, n=32))
        stability = results["rank_stability"]
        for column in ("median_rank", "mean_rank", "p05_rank", "p95_rank"):
            np.testing.assert_array_equal(stability[column], stability.nominal_rank)
        assert (stability.p_nominal_rank == 1).all() and (stability.iqr_rank == 0).all()
        bands = results["tier_bands"]
        assert (bands.p_nominal_tier == 1).all()
        assert (bands.most_likely_tier == bands.nominal_tier).all()
        for name in ("total", *(c[: -len("_nominal")] for c in bands if c.endswith("_nominal"))):
            for quantile in ("median", "p05", "p95"):
                np.testing.assert_allclose(
                    bands[f"{name}_{quantile}"], bands[f"{name}_nominal"], rtol=1e-12, atol=1e-9
                )
        shift = results["rank_shift"].set_index("statistic").value
        assert shift.rank_shift_mean == 0 and shift.share_unchanged == 1
        if kind == "sobol":
            indices_ = results["sobol_indices"]
            assert indices_[["S1", "ST"]].isna().all().all()
            assert (indices_.output_sd == 0).all() and not indices_.reliable.any()
            assert (results["sobol_outputs"].why_not == "does not vary").all()
            varying = [*factors, {"name": "moving", "kind": "weights", "level": 0}]
            moved = computed(config(folder, varying, kind=kind, n=32))["sobol_indices"]
            still = moved[(moved.factor != "moving") & (moved.output_sd > 0)]
            assert (still[["S1", "ST", "S1_low", "S1_high", "ST_low", "ST_high"]] == 0).all().all()


def probability_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame if c.startswith("p_") and not c.endswith("_se")]


@settings(max_examples=examples(25))
@given(st.data())
def test_probabilities_are_probabilities_and_add_up(data):
    """Shares of scenarios lie in [0, 1]; each unit is in exactly one tier, so its tier
    probabilities sum to 1; with ties broken (ordinal ranks) every scenario's tiers have their
    rule's sizes and exactly k units are in the top k, so the expected counts are those sizes and k
    (with ties sharing the better place, at least k); rank quantiles are ordered, lie in 1..units
    and inside their own intervals."""
    index = data.draw(indices())
    factors = data.draw(factor_sets(index))
    ties = data.draw(st.sampled_from(["ordinal", "min"]))
    interval = data.draw(st.sampled_from([0.5, 0.8, 0.9]))
    top = data.draw(st.integers(1, max(1, len(index.units) - 1)))  # fewer than the units
    outputs = {"interval": interval, "top": top}
    with project(index) as folder:
        results = computed(config(folder, factors, pipeline={"ties": ties}, outputs=outputs))
    units = len(index.units)
    stability, bands = results["rank_stability"], results["tier_bands"]
    for frame in (stability, bands):
        values = frame[probability_columns(frame)].to_numpy()
        assert ((values >= 0) & (values <= 1)).all()
    tiers = bands[[c for c in probability_columns(bands) if c.startswith("p_tier_")]]
    np.testing.assert_allclose(tiers.sum(axis=1), 1, atol=1e-12)
    top_k = stability[f"p_top_{top}"].sum()
    if ties == "ordinal":
        np.testing.assert_allclose(tiers.sum(axis=0), [1, 1, units - 2], atol=1e-9)
        assert top_k == pytest.approx(top, abs=1e-9)
    else:
        assert top_k >= top - 1e-9
    quantiles = ["p05_rank", "median_rank", "p95_rank"]
    if interval != 0.9:  # a narrower interval lies inside the 5th-95th percentiles
        quantiles[1:1] = ["interval_low_rank"]
        quantiles[-1:-1] = ["interval_high_rank"]
    ordered = stability[quantiles].to_numpy()
    assert (np.diff(ordered, axis=1) >= 0).all() and ((ordered >= 1) & (ordered <= units)).all()
    for name in quantiles:
        assert (stability[f"{name}_low"] <= stability[name]).all()
        assert (stability[name] <= stability[f"{name}_high"]).all()
    for name in [c[: -len("_median")] for c in bands if c.endswith("_median")]:
        assert (bands[f"{name}_p05"] <= bands[f"{name}_median"] + 1e-9).all()
        assert (bands[f"{name}_median"] <= bands[f"{name}_p95"] + 1e-9).all()


def relabelled(frame: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """``frame`` with every unit name (alone or in an output name such as ``rank:<unit>``) mapped
    by ``names``, its rows in the order of its text columns: a table keyed by unit, compared
    whatever order its units came in."""

    def rename(cell):
        if not isinstance(cell, str):
            return cell
        prefix, _, unit = cell.rpartition(":")
        return f"{prefix}:{names[unit]}" if prefix and unit in names else names.get(cell, cell)

    frame = frame.map(rename)
    keys = list(frame.select_dtypes(exclude=["number", "bool"]).columns)
    return frame.sort_values(keys, kind="stable").reset_index(drop=True) if keys else frame


@settings(max_examples=examples(10))
@given(st.data())
def test_relabelling_and_reordering_units_and_indicators_permutes_every_output(data):
    """Which row of the data file a unit is on, what it is called and in which column an indicator
    comes are not facts about the index: every table is the same once renamed and reordered.
    Noise and masks draw each cell's value by its names (so a cell's draw follows it wherever it
    sits): with them, units are reordered but keep their names."""
    index = data.draw(indices())
    factors = data.draw(factor_sets(index))
    kind = data.draw(st.sampled_from(["montecarlo", "sobol"]))
    rows = data.draw(st.permutations(range(len(index.units))))
    columns = data.draw(st.permutations(index.indicators))
    names = data.draw(
        st.lists(
            st.text("abcdefghij", min_size=1, max_size=4).map("unit_{}".format),
            min_size=len(index.units),
            max_size=len(index.units),
            unique=True,
        )
    )
    if any(f["kind"] in ("noise", "mask") for f in factors):
        names = [index.units[row] for row in rows]
    moved = index.values.iloc[list(rows)][["unit", *columns]]
    back = dict(zip(names, moved.unit, strict=True))
    moved = moved.assign(unit=names)
    with project(index) as folder:
        before = computed(config(folder, factors, kind=kind))
    with project(index.with_values(moved)) as folder:
        after = computed(config(folder, factors, kind=kind))
    assert before.tables.keys() == after.tables.keys()
    for name, table in before.tables.items():
        pd.testing.assert_frame_equal(
            relabelled(after[name], back), relabelled(table, {}), rtol=1e-9, atol=1e-9
        )


#: a choice the index cannot feel: the shift of a geometric or harmonic mean, under the
#: arithmetic mean
INERT = {"name": "inert", "kind": "choice", "key": "mean_shift", "options": [0.01, 0.1]}


def arithmetic_only(factors: list[dict]) -> list[dict]:
    kept = [f for f in factors if f.get("key") != "aggregation"]
    return kept or reject()


@settings(max_examples=examples(10))
@given(st.data())
def test_a_factor_the_index_cannot_feel_changes_nothing(data):
    """A factor without effect must not look like one: added to a Monte Carlo run it leaves every
    uncertainty table byte for byte as it was (each factor's draws are its own stream), and in a
    Sobol run its S1 and ST are exactly 0, intervals included."""
    index = data.draw(indices())
    factors = arithmetic_only(data.draw(factor_sets(index)))
    with project(index) as folder:
        without = computed(config(folder, factors))
        with_inert = computed(config(folder, [*factors, INERT]))
        for name in UNCERTAINTY:
            pd.testing.assert_frame_equal(with_inert[name], without[name], check_exact=True)
        sobol = computed(config(folder, [*factors, INERT], kind="sobol"))["sobol_indices"]
    inert = sobol[(sobol.factor == "inert") & (sobol.output_sd > 0)]
    assert (inert[["S1", "ST", "S1_low", "S1_high", "ST_low", "ST_high"]] == 0).all().all()


@settings(max_examples=examples(10))
@given(st.data())
def test_a_group_has_at_least_its_parts_total_effect_and_at_most_their_sum(data):
    """Every variance term that involves a group's factors involves one of them, so a group's ST
    lies between the largest and the sum of its parts' ST (Sobol 1993); the estimates keep that
    within their intervals, for the rank shift R_S and for all ranks together."""
    index = data.draw(indices(min_units=5))
    others = [f for f in data.draw(factor_sets(index)) if f["kind"] != "weights"] or reject()
    parts = [
        {"name": "part_a", "kind": "weights", "level": 0, "spread": 0.4},
        {"name": "part_b", "kind": "weights", "level": index.depth - 1, "spread": 0.4},
    ]
    grouped = [{**part, "group": "both"} for part in parts]
    sampling = {"n": 256, "bootstrap": 200}
    with project(index) as folder:
        apart = computed(config(folder, [*parts, *others], "sobol", sampling=sampling))
        together = computed(config(folder, [*grouped, *others], "sobol", sampling=sampling))
    for output in ("rank_shift", "all_ranks"):
        a, b = (
            apart["sobol_indices"].set_index(["output", "factor"]).loc[(output, name)]
            for name in ("part_a", "part_b")
        )
        both = together["sobol_indices"].set_index(["output", "factor"]).loc[(output, "both")]
        if both.output_sd == 0:
            continue
        assert both.ST_low <= a.ST_high + b.ST_high
        assert max(a.ST_low, b.ST_low) <= both.ST_high


@settings(max_examples=examples(8))
@given(st.data())
def test_a_unit_that_does_better_never_ranks_worse(data):
    """Under weights-only uncertainty with min-max and the arithmetic mean, raising one unit's value
    on a positive indicator raises its score and lowers or keeps everyone else's in every scenario
    (the same scenarios: same seed and factors), so its chance of a top-k place, its rank
    quantiles and its best and worst attainable ranks can only improve."""
    index = data.draw(indices(missing=False))
    factors = data.draw(factor_sets(index, weights_only=True))
    positive = [code for code in index.indicators if index.directions[code] == 1] or reject()
    indicator = data.draw(st.sampled_from(positive))
    unit = data.draw(st.sampled_from(index.units))
    raised = index.values.copy()
    raised.loc[raised.unit == unit, indicator] += data.draw(st.integers(1, 40))
    top = data.draw(st.integers(1, max(1, len(index.units) - 1)))  # fewer than the units
    sections = {"outputs": {"top": top}, "audit": {"rank_bounds": True}}
    found = []
    for values in (index.values, raised):
        with project(index.with_values(values)) as folder:
            results = computed(config(folder, factors, **sections))
        stability = results["rank_stability"].set_index("unit").loc[unit]
        bounds = results["rank_bounds"].set_index("unit").loc[unit]
        found.append(pd.concat([stability, bounds.add_prefix("bound_")]))
    before, after = found
    assert after[f"p_top_{top}"] >= before[f"p_top_{top}"]
    for name in ("p05_rank", "median_rank", "p95_rank", "mean_rank", "bound_best_rank"):
        assert after[name] <= before[name] + 1e-12
    assert after.bound_worst_rank <= before.bound_worst_rank


@settings(max_examples=examples(20))
@given(st.data())
def test_an_indicator_split_into_two_half_weight_copies_changes_no_score(data):
    """Under min-max and the arithmetic mean an indicator counts by its weight alone: two identical
    copies with half its weight each give its parent, and every score above, the same value."""
    index = data.draw(indices())
    split = data.draw(st.sampled_from(index.indicators))
    tree = {}
    for code, parent in index.tree.items():
        tree |= {f"{code}a": parent, f"{code}b": parent} if code == split else {code: parent}
    weights = dict(index.weights) | {f"{split}{c}": index.weights[split] / 2 for c in "ab"}
    directions = dict(index.directions) | {f"{split}{c}": index.directions[split] for c in "ab"}
    values = index.values.drop(columns=split)
    values[f"{split}a"] = values[f"{split}b"] = index.values[split]
    copies = type(index)(
        tree, weights, directions, values[["unit", *(c for c in tree if c in values)]]
    )
    found = []
    for generated in (index, copies):
        with project(generated) as folder:
            found.append(computed(config(folder, [], kind="baseline"))["baseline_scores"])
    pd.testing.assert_frame_equal(found[1], found[0], rtol=1e-9, atol=1e-9)


def scenario_ranks(run_config: ns.RunConfig) -> np.ndarray:
    """Every scenario's ranks (scenarios, units), evaluated in one batch outside the run."""
    spec, table = load_inputs(run_config)
    nominal = ns.evaluate(spec, table, run_config.pipeline, run_config.ties)
    study = prepare_study(run_config, spec, table, nominal).study
    rows = study.design.rows(0, study.design.n_rows)
    return study.engine().evaluate(batch_for_rows(study, rows)).ranks[:, 0]


@settings(max_examples=examples(15))
@given(st.data())
def test_exact_rank_bounds_hold_every_scenario_and_grow_with_the_region(data):
    """The exact bounds range over the whole weight region, so no scenario drawn inside it can rank
    a unit better or worse; a wider spread is a larger region, whose bounds cannot be narrower."""
    index = data.draw(indices())
    factors = data.draw(factor_sets(index, weights_only=True))
    wider = [{**f, "spread": min(0.9, f["spread"] * 1.5)} for f in factors]
    audit = {"audit": {"rank_bounds": True}}
    with project(index) as folder:
        narrow = config(folder, factors, n=256, **audit)
        bounds = computed(narrow)["rank_bounds"].set_index("unit").loc[index.units]
        ranks = scenario_ranks(narrow)
        widened = computed(config(folder, wider, **audit))["rank_bounds"].set_index("unit")
        widened = widened.loc[index.units]
    assert (bounds.best_rank.to_numpy() <= ranks.min(axis=0)).all()
    assert (bounds.worst_rank.to_numpy() >= ranks.max(axis=0)).all()
    assert (widened.best_rank <= bounds.best_rank).all()
    assert (widened.worst_rank >= bounds.worst_rank).all()


#: what the manifest and the page say about when a run finished and how long it computed
CLOCK = re.compile(rb'\d{4}-\d\d-\d\dT[0-9:+]+|"wall_seconds": [0-9.]+|[0-9.]+ s \(computing')


def files(folder: Path, pattern: str = "*") -> dict[str, bytes]:
    """The files a run wrote that match ``pattern``, by their path in the folder, with the clock
    readings blanked; the marker's digests, which differ with the clocks in the manifest and the
    page, checked against the files and left out."""
    found = {
        path.relative_to(folder).as_posix(): CLOCK.sub(b"(clock)", path.read_bytes())
        for path in sorted(p for p in folder.rglob(pattern) if p.is_file())
    }
    if MARKER in found:
        marker = json.loads(found[MARKER])
        for name, digest in marker.pop("sha256").items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
        found[MARKER] = json.dumps(marker).encode()
    return found


def interrupted_then_resumed(path: Path, out: Path) -> Path:
    """The run of ``path`` stopped (as by Ctrl-C) after its first chunk, then resumed."""
    evaluate_span = study_module._evaluate_span
    calls = []

    def stop_after_one(*args):
        calls.append(args)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return evaluate_span(*args)

    with mock.patch.object(study_module, "_evaluate_span", stop_after_one):
        try:
            ns.run_config(path, out=out, jobs=1, quiet=True)
        except RunInterrupted:
            pass
    return ns.run_config(path, out=out, jobs=1, quiet=True, resume=True)


@settings(max_examples=examples(4))
@given(st.data())
def test_results_do_not_depend_on_chunks_workers_backend_or_resume(data):
    """Chunks are spans of one fixed design, evaluated independently and merged in design order,
    so neither their size, nor how many workers of which kind evaluate them, nor an interruption
    and resumption may change a single byte of the tables."""
    index = data.draw(indices())
    raw = raw_config(
        data.draw(factor_sets(index)),
        data.draw(st.sampled_from(["montecarlo", "sobol"])),
        outputs={"figures": False},
    )
    chunk = data.draw(st.integers(8, 200))
    backend = data.draw(st.sampled_from(["threading", "auto", "fork", "loky"]))
    with project(index) as folder:
        try:
            reference = ns.run_config(write_config(folder, raw), out=folder / "a", quiet=True)
        except ns.UserError:
            reject()
        raw["run"] |= {"chunk_size": chunk, "backend": backend}
        path = write_config(folder, raw)
        split = ns.run_config(path, out=folder / "b", jobs=2, quiet=True)
        raw["run"]["backend"] = "threading"
        resumed = interrupted_then_resumed(write_config(folder, raw), folder / "c")
        expected = files(reference, "*.csv")
        assert files(split, "*.csv") == expected and files(resumed, "*.csv") == expected


@settings(max_examples=examples(2))
@given(st.data())
def test_every_file_is_a_function_of_config_data_and_seed(data):
    """Two runs of one config on one data set write the same bytes: tables, figures, page."""
    index = data.draw(indices())
    raw = raw_config(
        data.draw(factor_sets(index)), data.draw(st.sampled_from(["montecarlo", "sobol"]))
    )
    with project(index) as folder:
        path = write_config(folder, raw)
        try:
            first = ns.run_config(path, out=folder / "first", quiet=True)
        except ns.UserError:
            reject()
        second = ns.run_config(path, out=folder / "second", quiet=True)
        assert files(first) == files(second)


def nominal_run(run_config: ns.RunConfig) -> tuple:
    """A run's index, the nominal scores of every level and the weights per level."""
    spec, table = load_inputs(run_config)
    return spec, *nominal_levels(spec, table, run_config.pipeline, run_config.ties)


def constant_totals(spec, levels) -> tuple[list[bool], list[bool]]:
    """Per aggregate, in the order of ``cronbach.csv``: whether its children, and whether its
    indicators, are fewer than two or have the same total for every unit (complete cases)."""
    found: tuple[list[bool], list[bool]] = ([], [])
    for k in range(1, len(spec.levels)):
        for p in range(len(spec.levels[k])):
            for items, into in (
                (levels[k - 1][:, spec.parents[k - 1] == p], found[0]),
                (levels[0][:, spec.leaf_parent(k) == p], found[1]),
            ):
                complete = items[~np.isnan(items).any(axis=1)]
                total = complete.sum(axis=1)
                into.append(items.shape[1] < 2 or len(total) < 2 or np.ptp(total) <= 1e-9)
    return found


def undefined_components(spec, levels) -> list[str]:
    """The aggregates of two or more parts whose principal components are undefined: a part the
    same for every unit, or fewer than two units with every part observed (nominal scores)."""
    found = []
    for k in range(1, len(spec.levels)):
        for p, node in enumerate(spec.levels[k]):
            parts = levels[k - 1][:, spec.parents[k - 1] == p]
            complete = parts[~np.isnan(parts).any(axis=1)]
            if len(complete) < 2 or (np.ptp(complete, axis=0) == 0).any():
                found.append(node)
    return found


def cancelled_parents(spec, levels, weights) -> list[tuple[int, str]]:
    """(level, parent) of the parts whose weighted covariances with the index cancel: together
    they carry none of its variance, so none has an effective share (nominal scores)."""
    index = levels[-1][:, 0]
    found = []
    for k in range(len(spec.levels) - 1):
        carried = np.array(
            [np.cov(part, index, bias=True)[0, 1] for part in levels[k].T]
        ) * np.asarray(weights[k])
        for p, parent in enumerate(spec.levels[k + 1]):
            parts = carried[np.asarray(spec.parents[k]) == p]
            if abs(parts.sum()) <= 1e-12 * np.abs(parts).sum():
                found.append((k, parent))
    return found


def unexplained_gaps(results: ns.Results, run_config: ns.RunConfig) -> list[str]:
    """The table cells that are infinite, or empty with nothing in the run saying why. Explained:
    text columns that name a flag, a problem, a bound or a reason only when there is one; rank
    agreement without a scenario whose correlation is defined; a correlation flagged undefined;
    convergence blocks where the ST of R_S is undefined (counted in ``blocks``), the flip error
    of a statistic other than a rank percentile;
    Sobol indices of
    an output no scenario moves (``output_sd`` 0, ``why_not`` "does not vary"), and what is
    summed from them alone; skewness of fewer than 3 values, kurtosis of fewer than 4; Cronbach's
    alpha of fewer than 2 items or of items whose total is the same for every unit, principal
    components of parts one of which is the same for every unit or with fewer than two complete
    units, effective shares of parts whose covariances with the index cancel (all recomputed here
    from the nominal scores of every level); a one-at-a-time change's Spearman where its ranking
    or the nominal one is all tied."""
    found = []
    tables = results.tables
    explained: dict[tuple[str, str], pd.Series] = {}
    if {"cronbach", "importance", "pca_variance"} & tables.keys():  # recomputed from the nominal
        spec, levels, weights = nominal_run(run_config)
    outputs = tables.get("sobol_outputs")
    if outputs is not None:
        still = set(outputs.output[outputs.output_sd == 0])
        sobol = tables["sobol_indices"]
        for column in ("S1", "S1_conf", "S1_low", "S1_high", "ST", "ST_conf", "ST_low", "ST_high"):
            explained[("sobol_indices", column)] = sobol.output.isin(still)
        for column in ("sum_S1", "widest_ST_interval", "interaction_share", *INTERACTION_INTERVAL):
            explained[("sobol_outputs", column)] = outputs.output.isin(still)
        summary = tables["sobol_summary"]
        for name, output in (("rank_shift", "rank_shift"), ("ranks", "all_ranks")):
            for column in (c for c in summary if c.startswith(("S1_", "ST_")) and name in c):
                explained[("sobol_summary", column)] = pd.Series(output in still, summary.index)
        reliable_ranks = outputs.reliable & outputs.output.str.startswith("rank:")
        for column in ("max_ST_ranks", "max_ST_high_ranks"):
            explained[("sobol_summary", column)] = pd.Series(
                not reliable_ranks.any(), summary.index
            )
        convergence = tables["convergence"]
        undefined = convergence.statistic.eq("ST_rank_shift") & ("rank_shift" in still)
        explained[("convergence", "value")] = undefined
        explained[("convergence", "standard_error")] = convergence.blocks < 2
        block_columns = [c for c in convergence if c.startswith("block_")]
        for column in block_columns:
            explained[("convergence", column)] = convergence.blocks < len(block_columns)
    if "convergence" in tables:  # a flip error is a rank percentile's alone
        statistic = tables["convergence"].statistic
        explained[("convergence", "flip_error")] = ~statistic.str.endswith("_rank")
    if "rank_agreement" in tables:
        agreement = tables["rank_agreement"]
        for column in agreement:
            explained[("rank_agreement", column)] = agreement.scenarios == 0
    if "correlations" in tables:
        correlations = tables["correlations"]
        explained[("correlations", "r")] = correlations.flag == "undefined"
    if "indicator_statistics" in tables:
        statistics = tables["indicator_statistics"]
        explained[("indicator_statistics", "skewness")] = statistics.n < 3
        explained[("indicator_statistics", "kurtosis")] = statistics.n < 4
        cronbach = tables["cronbach"]
        for column, constant in zip(
            ("alpha_children", "alpha_indicators"), constant_totals(spec, levels), strict=True
        ):
            explained[("cronbach", column)] = pd.Series(constant, cronbach.index)
    if "one_at_a_time" in tables:
        per_unit = tables["one_at_a_time"].groupby("change", sort=False)
        tied = (per_unit["rank"].nunique() == 1) | (per_unit["nominal_rank"].nunique() == 1)
        summary = tables["one_at_a_time_summary"]
        explained[("one_at_a_time_summary", "spearman")] = summary.change.map(tied).fillna(False)
    if "importance" in tables:
        importance = tables["importance"]
        cancelled = pd.MultiIndex.from_frame(importance[["level", "parent"]])
        explained[("importance", "effective_share")] = pd.Series(
            cancelled.isin(cancelled_parents(spec, levels, weights)), importance.index
        )
    if "pca_variance" in tables:
        undefined = undefined_components(spec, levels)
        for name, columns in (
            ("pca_variance", ("eigenvalue", "share", "cumulative_share")),
            ("pca_loadings", ("loading",)),
        ):
            for column in columns:
                explained[(name, column)] = tables[name].node.isin(undefined)
    for name, frame in tables.items():
        for column in frame.select_dtypes("number"):
            values = frame[column].to_numpy(dtype=float)
            if np.isinf(values).any():
                found.append(f"{name}.{column}: infinite")
            gaps = pd.Series(np.isnan(values), frame.index)
            why = explained.get((name, column), pd.Series(False, frame.index))
            if (gaps & ~why).any():
                found.append(f"{name}.{column}: empty in {int((gaps & ~why).sum())} rows")
        for column in frame.select_dtypes(exclude=["number", "bool"]):
            if frame[column].isna().any() and column not in (
                "flag",
                "problem",
                "why_not",
                "at_bound",
            ):
                found.append(f"{name}.{column}: empty text")
    return found


@settings(max_examples=examples(12))
@given(st.data())
def test_no_output_holds_an_unexplained_nan_or_infinity(data):
    """A number a reader cannot trust must not look like one: whatever the index, data (ties, zeros,
    missing cells) and factors, a run either refuses with one line or writes tables whose every
    empty cell the run explains and none of whose cells is infinite."""
    index = data.draw(indices())
    factors = data.draw(factor_sets(index))
    kind = data.draw(st.sampled_from(["montecarlo", "sobol"]))
    audit = {"coherence": True, "importance": True, "what_if": True, "rank_bounds": True}
    audit |= {"optimal_weights": data.draw(st.sampled_from(["none", "weights", "equal"]))}
    with project(index) as folder:
        try:
            run_config = config(folder, factors, kind=kind, audit=audit | {"bootstrap": 10})
            results = ns.run(run_config)
        except ns.UserError as refusal:
            assert "\n" not in str(refusal)
            return
        assert unexplained_gaps(results, run_config) == []
