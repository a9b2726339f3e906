"""Exact rank bounds over a region of weights: hand cases, brute force, Monte Carlo, invariants."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nqpf_sens import Pipeline
from nqpf_sens.audit.rank_bounds import (
    _region_rows,
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


def one_level(weights: list[float]) -> IndexSpec:
    """Indicators with these weights straight under the index."""
    return IndexSpec(
        levels=(tuple(f"i{j}" for j in range(len(weights))), ("index",)),
        parents=(np.zeros(len(weights), int),),
        weights=(np.array(weights),),
        direction=np.ones(len(weights)),
        transform_flag=np.zeros(len(weights), dtype=bool),
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
    spec = one_level([1.0, 1.0])
    leaves = np.array([[1.0, 0.0], [0.0, 1.0], [0.4, 0.4], [0.6, 0.6]])
    found = rank_bounds(leaves, spec, spec.weights, [1.0], ["p", "q", "u", "v"]).set_index("unit")
    assert found.loc["u", ["best_rank", "worst_rank"]].tolist() == [3, 4]
    assert found.loc["p", ["best_rank", "worst_rank"]].tolist() == [1, 4]
    assert found.loc["v", ["nominal_rank", "best_rank"]].tolist() == [1, 1]


def test_a_three_way_tie_at_one_weight_is_not_a_lead():
    """With the first weight's share a in [1/4, 3/4], (1, 0.5) beats (0.75, 0.75) where a > 1/2
    and (0.5, 1) beats it where a < 1/2; at a = 1/2 all three tie and share first place. Never
    both lead, so (0.75, 0.75) ranks 1 at best and 2 at worst. Within the solver's tolerance the
    exact tie once passed for two leads at once: worst rank 3."""
    spec = one_level([1.0, 1.0])
    leaves = np.array([[1.0, 0.5], [0.5, 1.0], [0.75, 0.75]])
    found = rank_bounds(leaves, spec, spec.weights, [0.5], ["p", "q", "u"]).set_index("unit")
    assert found.loc["u", ["best_rank", "worst_rank"]].tolist() == [1, 2]
    assert found.loc["p", ["best_rank", "worst_rank"]].tolist() == [1, 3]


def test_shifting_or_scaling_the_data_changes_no_bound():
    """Ranks do not change when every normalised value is shifted or scaled alike (a z-score's
    mean of 10,000, say), nor may the bounds. A lead once counted from a share of the largest
    value, not of the values' range: shifted by 10,000, a lead of 0.0076 that the engine ranks
    by went uncounted, and a worst rank came out 1 where the engine gives 2."""
    spec = IndexSpec(
        levels=(tuple(f"i{j}" for j in range(8)), ("x", "y", "z"), ("index",)),
        parents=(np.array([0, 0, 1, 1, 1, 2, 2, 2]), np.zeros(3, dtype=int)),
        weights=(np.array([3.0, 1, 1, 3, 1, 1, 4, 4]), np.array([1.0, 2, 3])),
        direction=np.ones(8),
        transform_flag=np.zeros(8, dtype=bool),
    )
    leaves = np.array(
        [[0, 0, 1, 1, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1.0]]
    )
    units = ["p", "q", "r"]
    known = rank_bounds(leaves, spec, spec.weights, [0.25, 0.0], units)
    assert known.set_index("unit").loc["p", "worst_rank"] == 2
    for changed in (leaves + 1e4, leaves * 1e-6, 1e6 * leaves - 2e5):
        found = rank_bounds(changed, spec, spec.weights, [0.25, 0.0], units)
        pd.testing.assert_frame_equal(found, known)
    rng = np.random.default_rng(12)
    for _ in range(10):
        leaves = rng.integers(0, 4, size=(6, 4)) / 3
        spec4 = two_level_spec()
        known = rank_bounds(leaves, spec4, spec4.weights, [0.5, 0.5], list("abcdef"))
        shifted = rank_bounds(leaves + 1e4, spec4, spec4.weights, [0.5, 0.5], list("abcdef"))
        pd.testing.assert_frame_equal(shifted, known)


def enumerated_bounds(leaves: np.ndarray, spec: IndexSpec, spreads) -> tuple[list, list]:
    """Best and worst ranks found by trying every set of other units, one linear programme each
    over the module's region (which the grid and Monte Carlo tests check on their own): a set
    can all lead a unit when some point puts each member strictly ahead (the largest least lead
    is positive), and can be all that leads it when some point puts every other unit at or
    below it (the least largest lead is not positive). Exponential in the units: a check."""
    from scipy.optimize import LinearConstraint, milp

    low, high, parents = weight_region(spec, spec.weights, spreads)
    region, lows, highs, n_vars = _region_rows(spec, low, high, parents)
    region = np.hstack([region.toarray(), np.zeros((region.shape[0], 1))])  # z last

    def extreme_lead(differences: np.ndarray, largest: bool) -> float:
        """The largest least lead (or the least largest lead) over the region."""
        leads = np.zeros((len(differences), n_vars + 1))
        leads[:, : differences.shape[1]] = differences
        leads[:, -1] = -1.0
        sign = 1.0 if largest else -1.0
        objective = np.r_[np.zeros(n_vars), -sign]
        bounds = np.zeros(n_vars + 1), np.r_[np.full(n_vars, np.inf), 1.0]
        bounds[0][-1] = -1.0
        result = milp(
            objective,
            constraints=[
                LinearConstraint(region, lows, highs),
                LinearConstraint(sign * leads, 0.0, np.inf),
            ],
            bounds=bounds,
        )
        return float(result.x[-1])

    def can_all_lead(differences: np.ndarray) -> bool:
        return not len(differences) or extreme_lead(differences, largest=True) > 1e-9

    def can_none_lead(differences: np.ndarray) -> bool:
        return not len(differences) or extreme_lead(differences, largest=False) <= 1e-9

    best, worst = [], []
    for u in range(len(leaves)):
        differences = np.delete(leaves, u, axis=0) - leaves[u]
        others = range(len(differences))
        sets = [list(s) for k in range(len(others) + 1) for s in itertools.combinations(others, k)]
        best.append(1 + min(len(s) for s in sets if can_none_lead(np.delete(differences, s, 0))))
        worst.append(1 + max(len(s) for s in sets if can_all_lead(differences[s])))
    return best, worst


@st.composite
def small_indices(draw) -> tuple[IndexSpec, np.ndarray, list[float]]:
    """One or two weighted levels of 1-3 children per parent, 3-5 units with values on at most
    five levels (ties at some weights are the rule), spreads of 0 to 75%."""
    sizes = [draw(st.integers(2, 3))]
    if draw(st.booleans()):
        sizes = [draw(st.integers(1, 3)) for _ in range(sizes[0])] + [sizes[0]]
        parents = (np.repeat(np.arange(len(sizes) - 1), sizes[:-1]), np.zeros(sizes[-1], int))
    else:
        parents = (np.zeros(sizes[0], int),)
    counts = [len(p) for p in parents]
    weights = tuple(
        np.array(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)), float) for n in counts
    )
    spec = IndexSpec(
        levels=(*(tuple(f"n{k}_{i}" for i in range(n)) for k, n in enumerate(counts)), ("index",)),
        parents=parents,
        weights=weights,
        direction=np.ones(counts[0]),
        transform_flag=np.zeros(counts[0], dtype=bool),
    )
    top = draw(st.integers(1, 4))
    shape = (draw(st.integers(3, 5)), counts[0])
    leaves = draw(arrays(np.float64, shape, elements=st.integers(0, top).map(lambda i: i / top)))
    spread = st.sampled_from([0.0, 0.1, 0.15, 0.25, 0.375, 0.5, 0.75])
    return spec, leaves, [draw(spread) for _ in counts]


#: two single-indicator dimensions whose tied units' difference came out a rounding error above 0
SINGLE_CHILDREN = IndexSpec(
    levels=(("i0", "i1"), ("x", "y"), ("index",)),
    parents=(np.array([0, 1]), np.array([0, 0])),
    weights=(np.array([1.0, 3.0]), np.array([1.0, 1.0])),
    direction=np.ones(2),
    transform_flag=np.zeros(2, dtype=bool),
)


@settings(max_examples=25, deadline=None)
@given(small_indices())
@example((one_level([1.0, 1.0]), np.array([[0, 1], [0.5, 0.5], [0, 0], [1, 0]]), [0.1]))
@example((SINGLE_CHILDREN, np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), [0.1, 0.0]))
def test_bounds_equal_an_enumeration_of_every_set_of_leading_units(case):
    """The integer programmes count exactly what trying every set of other units finds, ties at
    some weights included (the engine's rule: a tie is no lead)."""
    spec, leaves, spreads = case
    found = rank_bounds(leaves, spec, spec.weights, spreads, [str(i) for i in range(len(leaves))])
    best, worst = enumerated_bounds(leaves, spec, spreads)
    assert found.best_rank.tolist() == best
    assert found.worst_rank.tolist() == worst


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


def weights_run(folder):
    """A small Monte Carlo run of the indicator weights of the shipped index, figures off."""
    import nqpf_sens as ns

    config = ns.config_from_dict(
        {
            "run": {"kind": "montecarlo"},
            "sampling": {"n": 16},
            "outputs": {"figures": False},
            "factors": [{"name": "w", "kind": "weights", "level": 0}],
        },
        folder,
    )
    return ns.run(config)


def test_a_failed_solve_is_retried_with_the_solver_s_defaults_then_noted(monkeypatch, tmp_path):
    """HiGHS can fail on a programme that has a solution (numerical trouble): it is solved again
    with HiGHS's own settings; should that fail too, the run goes on without the bounds and
    says why, rather than ending in a traceback."""
    import scipy.optimize

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
        scipy.optimize,
        "milp",
        failing(lambda options: module.SOLVER_OPTIONS.items() <= options.items()),
    )
    pd.testing.assert_frame_equal(twelve_units(7), known)
    monkeypatch.setattr(scipy.optimize, "milp", failing(lambda options: True))
    with pytest.raises(module.SolverFailed, match="trouble"):
        twelve_units(7)
    results = weights_run(tmp_path)
    assert "rank_bounds" not in results.tables
    assert any("exact rank bounds skipped: the solver failed" in note for note in results.notes)


def test_too_many_pairs_to_settle_are_noted_not_solved_for_hours(monkeypatch, tmp_path):
    """The programmes' time grows fast with their binary variables, one per unit that may or may
    not beat another (experiments/rank_bounds_scaling.py): beyond ``MAX_UNDECIDED`` the run goes
    on without the bounds and says why."""
    from nqpf_sens.audit import rank_bounds as module

    monkeypatch.setattr(module, "MAX_UNDECIDED", 10)
    with pytest.raises(module.TooManyUndecided, match="binary variables"):
        twelve_units(7)
    results = weights_run(tmp_path)
    assert "rank_bounds" not in results.tables
    assert any("more than 10 (minutes to hours" in note for note in results.notes)
