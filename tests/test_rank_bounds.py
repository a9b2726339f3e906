"""Exact rank bounds over a region of weights: hand cases, brute force, Monte Carlo, invariants."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nqpf_sens import Pipeline
from nqpf_sens.audit.rank_bounds import (
    difference_range,
    rank_bounds,
    weight_region,
    weight_spreads,
)
from nqpf_sens.engine.batch import Engine, ScenarioBatch
from nqpf_sens.engine.spec import IndexSpec


def two_level_spec() -> IndexSpec:
    """Four indicators in two dimensions (a, b | c, d) under one index."""
    return IndexSpec(
        levels=(("a", "b", "c", "d"), ("x", "y"), ("index",)),
        parents=(np.array([0, 0, 1, 1]), np.array([0, 0])),
        weights=(np.array([1.0, 2.0, 1.0, 1.0]), np.array([0.6, 0.4])),
        direction=np.ones(4),
        transform_flag=np.zeros(4, dtype=bool),
    )


def ranks_under(leaves: np.ndarray, spec: IndexSpec, weights) -> np.ndarray:
    """Competition ranks (ties share the better place) of the arithmetic index."""
    scores = leaves
    for k, w in enumerate(weights):
        membership = spec.membership(k)
        scores = (scores * w) @ membership / (w @ membership)
    index = scores[:, 0]
    return 1 + (index[None, :] > index[:, None] + 1e-12).sum(axis=1)


def test_a_hand_case_with_two_indicators():
    """Weights (1, 1) with spread 1 let the first indicator's share run over [0, 1]. The unit at
    (0.4, 0.4) is always beaten by (0.6, 0.6) and by at least one of (1, 0) and (0, 1) (their
    scores a and 1 - a cannot both be <= 0.4): best rank 3; all three beat it for a in (0.4, 0.6):
    worst rank 4. (1, 0) is first when a >= 0.6 and last when a = 0 (0 < 0.4, 0.6, and (0, 1)'s
    1): best 1, worst 4."""
    spec = IndexSpec(
        levels=(("a", "b"), ("index",)),
        parents=(np.array([0, 0]),),
        weights=(np.array([1.0, 1.0]),),
        direction=np.ones(2),
        transform_flag=np.zeros(2, dtype=bool),
    )
    leaves = np.array([[1.0, 0.0], [0.0, 1.0], [0.4, 0.4], [0.6, 0.6]])
    found = rank_bounds(leaves, spec, spec.weights, [1.0], ["p", "q", "u", "v"]).set_index("unit")
    assert found.loc["u", ["best_rank", "worst_rank"]].tolist() == [3, 4]
    assert found.loc["p", ["best_rank", "worst_rank"]].tolist() == [1, 4]
    assert found.loc["v", ["nominal_rank", "best_rank"]].tolist() == [1, 1]


def test_bounds_contain_and_match_a_fine_grid_of_weights():
    """The best and worst ranks over a 5-point grid per weight (15,625 vectors, the box's vertices
    included) are the bounds: no grid point leaves them, and in this case the grid reaches them."""
    spec = two_level_spec()
    rng = np.random.default_rng(3)
    leaves = np.round(rng.random((7, 4)), 2)
    spreads = [0.5, 0.5]
    found = rank_bounds(leaves, spec, spec.weights, spreads, [f"u{i}" for i in range(7)])
    steps = np.linspace(-1, 1, 5)
    seen = []
    for combo in itertools.product(steps, repeat=6):
        weights = [
            spec.weights[0] * (1 + spreads[0] * np.array(combo[:4])),
            spec.weights[1] * (1 + spreads[1] * np.array(combo[4:])),
        ]
        seen.append(ranks_under(leaves, spec, weights))
    seen = np.array(seen)
    np.testing.assert_array_equal(seen.min(axis=0), found.best_rank)
    np.testing.assert_array_equal(seen.max(axis=0), found.worst_rank)
    np.testing.assert_array_equal(found.nominal_rank, ranks_under(leaves, spec, spec.weights))


def test_the_range_of_every_pairwise_difference_is_exact():
    """The least and largest index difference of every pair over the weight box are reached at
    its vertices (each parent's average is linear-fractional in its own weights), so the
    3-point grid per weight, vertices included, attains them."""
    spec = two_level_spec()
    leaves = np.random.default_rng(11).random((5, 4))
    spreads = [0.6, 0.3]
    low, high, _ = weight_region(spec, spec.weights, spreads)
    least, largest = difference_range(leaves, spec, low, high)
    seen = []
    for combo in itertools.product([-1, 0, 1], repeat=6):
        weights = [
            spec.weights[0] * (1 + spreads[0] * np.array(combo[:4])),
            spec.weights[1] * (1 + spreads[1] * np.array(combo[4:])),
        ]
        scores = leaves
        for k, w in enumerate(weights):
            scores = (scores * w) @ spec.membership(k) / (w @ spec.membership(k))
        seen.append(scores[None, :, 0] - scores[:, None, 0])
    seen = np.array(seen)
    np.testing.assert_allclose(least, seen.min(axis=0), atol=1e-12)
    np.testing.assert_allclose(largest, seen.max(axis=0), atol=1e-12)


def test_monte_carlo_ranks_of_a_weights_only_run_lie_inside(spec, table):
    """The engine's ranks under 4,000 random weight draws (+/-25% at both levels, as in
    configs/sobol.toml) never leave the exact bounds, and the bounds contain the nominal rank."""
    engine = Engine(spec, table)
    pipeline = Pipeline()
    leaves = engine.normalised(pipeline)[0]
    weights = engine.scheme_weights(pipeline)
    found = rank_bounds(leaves, spec, weights, [0.25, 0.25], table.units)
    rng = np.random.default_rng(0)
    n = 4000
    factors = tuple(1 + 0.25 * (2 * rng.random((n, len(w))) - 1) for w in weights)
    batch = ScenarioBatch((pipeline,), np.zeros(n, dtype=np.int64), factors)
    ranks = engine.evaluate(batch).ranks[:, 0]
    assert (ranks.min(axis=0) >= found.best_rank.to_numpy()).all()
    assert (ranks.max(axis=0) <= found.worst_rank.to_numpy()).all()
    nominal = engine.evaluate(ScenarioBatch((pipeline,), np.zeros(1, dtype=np.int64))).ranks[0, 0]
    np.testing.assert_array_equal(found.nominal_rank, nominal)
    assert (found.best_rank <= found.nominal_rank).all()
    assert (found.nominal_rank <= found.worst_rank).all()
    assert (found.worst_rank > found.best_rank).any()  # +/-25% moves some provinces
    in_threads = rank_bounds(leaves, spec, weights, [0.25, 0.25], table.units, jobs=3)
    pd.testing.assert_frame_equal(in_threads, found)  # the programmes solved in parallel


def test_no_spread_pins_every_unit_to_its_nominal_rank():
    spec = two_level_spec()
    leaves = np.random.default_rng(5).random((9, 4))
    found = rank_bounds(leaves, spec, spec.weights, [0.0, 0.0], [str(i) for i in range(9)])
    assert (found.best_rank == found.nominal_rank).all()
    assert (found.worst_rank == found.nominal_rank).all()


def test_spreads_are_checked():
    spec = two_level_spec()
    with pytest.raises(ValueError, match="one spread per weighted level"):
        rank_bounds(np.zeros((2, 4)), spec, spec.weights, [0.1], ["a", "b"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rank_bounds(np.zeros((2, 4)), spec, spec.weights, [0.1, 1.5], ["a", "b"])


@settings(max_examples=8, deadline=None)
@given(
    arrays(np.float64, (6, 4), elements=st.integers(0, 100).map(lambda i: i / 100)),
    st.floats(0.0, 0.5),
    st.floats(0.0, 0.5),
)
def test_widening_the_spread_never_narrows_the_bounds(leaves, spread, extra):
    """A wider box of weights contains the narrower one, so no unit's best rank can get worse
    nor its worst rank better; both always contain the nominal rank."""
    spec = two_level_spec()
    units = [str(i) for i in range(6)]
    narrow = rank_bounds(leaves, spec, spec.weights, [spread, spread], units)
    wide = rank_bounds(leaves, spec, spec.weights, [spread + extra, spread + extra], units)
    assert (wide.best_rank <= narrow.best_rank).all()
    assert (wide.worst_rank >= narrow.worst_rank).all()
    assert (narrow.best_rank <= narrow.nominal_rank).all()
    assert (narrow.nominal_rank <= narrow.worst_rank).all()


def test_two_weight_factors_on_one_level_multiply_their_ranges():
    """Two uniform factors on the indicator weights multiply: each weight's multiplier ranges
    over [0.8 x 0.9, 1.2 x 1.1], and bounds over that box contain every product drawn."""
    factors = [
        {"kind": "weights", "level": 0, "spread": 0.2},
        {"kind": "weights", "level": 0, "spread": 0.1},
    ]
    ranges = weight_spreads(factors, 2)
    np.testing.assert_allclose(ranges, [(0.72, 1.32), (1.0, 1.0)])
    spec = two_level_spec()
    leaves = np.random.default_rng(8).random((8, 4))
    found = rank_bounds(leaves, spec, spec.weights, ranges, [str(i) for i in range(8)])
    rng = np.random.default_rng(9)
    for _ in range(2000):
        multipliers = (1 + 0.2 * (2 * rng.random(4) - 1)) * (1 + 0.1 * (2 * rng.random(4) - 1))
        ranks = ranks_under(leaves, spec, [spec.weights[0] * multipliers, spec.weights[1]])
        assert (found.best_rank <= ranks).all() and (ranks <= found.worst_rank).all()


def twelve_units(seed: int, jobs: int = 1) -> pd.DataFrame:
    """Rank bounds of twelve random units of the two-level index, every weight within +/- 50%."""
    leaves = np.random.default_rng(seed).random((12, 4))
    spec = two_level_spec()
    return rank_bounds(leaves, spec, spec.weights, [0.5, 0.5], list("abcdefghijkl"), jobs)


def test_solver_options_are_quiet_and_an_unknown_one_changes_nothing(monkeypatch):
    """The solver's heuristics are switched off by name; a HiGHS that does not know a name
    ignores it, and neither that nor scipy's note that it passes the names on reaches the user
    (a warning is a second line on the terminal)."""
    import warnings

    from nqpf_sens.audit import rank_bounds as module

    def bounds() -> pd.DataFrame:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = twelve_units(5)
        assert not caught, [str(w.message) for w in caught]
        return found

    known = bounds()
    monkeypatch.setattr(module, "SOLVER_OPTIONS", {**module.SOLVER_OPTIONS, "no_such_option": 1})
    pd.testing.assert_frame_equal(bounds(), known)
    monkeypatch.setattr(module, "SOLVER_OPTIONS", {})  # HiGHS's defaults: the same bounds
    pd.testing.assert_frame_equal(bounds(), known)
    assert (known.best_rank < known.worst_rank).any()  # programmes were solved


def test_no_solver_thread_touches_the_warnings_filters(monkeypatch):
    """Python's warnings filters are one list for the whole process: a thread that sets them
    (scipy does, to "error", while it checks a dense constraint matrix) sets them for the other
    threads mid-solve, whose warnings were then raised as errors. Only the run's own thread may
    enter ``catch_warnings``."""
    import threading
    import warnings

    entered = []
    enter = warnings.catch_warnings.__enter__

    def recorded(self):
        entered.append(threading.current_thread() is threading.main_thread())
        return enter(self)

    monkeypatch.setattr(warnings.catch_warnings, "__enter__", recorded)
    found = twelve_units(6, jobs=2)
    assert (found.best_rank < found.worst_rank).any()  # programmes were solved, in threads
    assert entered and all(entered)


def test_a_failed_solve_is_retried_with_the_solver_s_defaults_then_noted(monkeypatch, tmp_path):
    """HiGHS can fail on a programme that has a solution (numerical trouble): it is solved again
    with HiGHS's own settings; should that fail too, the run goes on without the bounds and
    says why, rather than ending in a traceback."""
    import scipy.optimize

    import nqpf_sens as ns
    from nqpf_sens.audit import rank_bounds as module

    solve = scipy.optimize.milp
    known = twelve_units(7)

    def failing(when):
        def milp(*args, options=None, **kwargs):
            result = solve(*args, options=options, **kwargs)
            return (
                scipy.optimize.OptimizeResult(x=None, message="trouble")
                if when(options)
                else result
            )

        return milp

    monkeypatch.setattr(
        scipy.optimize, "milp", failing(lambda options: options == module.SOLVER_OPTIONS)
    )
    pd.testing.assert_frame_equal(twelve_units(7), known)
    monkeypatch.setattr(scipy.optimize, "milp", failing(lambda options: True))
    with pytest.raises(module.SolverFailed, match="trouble"):
        twelve_units(7)
    config = ns.config_from_dict(
        {
            "run": {"kind": "montecarlo"},
            "sampling": {"n": 16},
            "outputs": {"figures": False},
            "factors": [{"name": "w", "kind": "weights", "level": 0}],
        },
        tmp_path,
    )
    results = ns.run(config)
    assert "rank_bounds" not in results.tables
    assert any("exact rank bounds skipped: the solver failed" in note for note in results.notes)
