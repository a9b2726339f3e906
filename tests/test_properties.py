"""Invariants of the index, checked on many random tables (hypothesis)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nqpf_sens import IndicatorTable, Pipeline, evaluate, nqpf_spec
from nqpf_sens.engine.kernels import RANK_TOLERANCE
from nqpf_sens.engine.rank import rank_scores

SPEC = nqpf_spec()
N_IND = len(SPEC.indicators)
# raw values are measured to a finite precision (here 0.001): an affine change then cannot merge two
# values into one float, which would make an indicator constant for reasons of rounding alone
values_strategy = st.integers(3, 12).flatmap(
    lambda n: arrays(
        np.float64, (1, n, N_IND), elements=st.integers(0, 10**9).map(lambda i: i / 1000)
    )
)


def make_table(values):
    units = tuple(f"u{i}" for i in range(values.shape[1]))
    return IndicatorTable(values, (None,), units, SPEC.indicators)


@given(values_strategy)
def test_minmax_scores_lie_in_0_100(values):
    scores = evaluate(SPEC, make_table(values)).scores
    assert np.all(scores >= -1e-9) and np.all(scores <= 100 + 1e-9)


@given(values_strategy, st.sampled_from(["min", "ordinal"]))
def test_ranks_are_a_permutation_or_competition_ranking(values, ties):
    result = evaluate(SPEC, make_table(values), ties=ties)
    ranks = result.ranks[0, 0]
    total = result.index[0, 0]
    if ties == "ordinal":
        assert sorted(ranks) == list(range(1, len(ranks) + 1))
    else:
        for i in range(len(ranks)):
            assert ranks[i] == 1 + np.sum(total > total[i])


@given(values_strategy, st.data())
def test_raising_a_positive_indicator_never_lowers_that_unit(values, data):
    unit = data.draw(st.integers(0, values.shape[1] - 1))
    indicator = data.draw(st.integers(0, N_IND - 1))
    bump = data.draw(st.floats(0.0, 1e6))
    before = evaluate(SPEC, make_table(values)).index[0, 0, unit]
    raised = values.copy()
    raised[0, unit, indicator] += bump
    after = evaluate(SPEC, make_table(raised)).index[0, 0, unit]
    assert after >= before - 1e-9


@given(values_strategy, st.randoms(use_true_random=False))
def test_relabelling_units_permutes_the_results(values, random):
    order = list(range(values.shape[1]))
    random.shuffle(order)
    base = evaluate(SPEC, make_table(values), ties="min")
    shuffled = evaluate(SPEC, make_table(values[:, order]), ties="min")
    np.testing.assert_allclose(
        shuffled.scores[0, 0], base.scores[0, 0][order], rtol=1e-12, atol=1e-12
    )
    np.testing.assert_array_equal(shuffled.ranks[0, 0], base.ranks[0, 0][order])


@given(values_strategy, st.floats(1e-3, 1e3))
def test_scaling_all_weights_changes_nothing(values, factor):
    from nqpf_sens import ScenarioBatch
    from nqpf_sens.engine.batch import Engine

    engine = Engine(SPEC, make_table(values))
    ones = (np.ones((1, N_IND)), np.ones((1, 3)))
    scaled = (np.full((1, N_IND), factor), np.full((1, 3), factor))

    def batch(f):
        return ScenarioBatch((Pipeline(),), np.zeros(1, dtype=int), weight_factors=f)

    np.testing.assert_allclose(
        engine.evaluate(batch(scaled)).scores,
        engine.evaluate(batch(ones)).scores,
        rtol=1e-10,
        atol=1e-9,
    )


@given(values_strategy, st.integers(0, N_IND - 1), st.floats(1e-3, 1e3), st.floats(-1e3, 1e3))
def test_positive_affine_change_of_an_indicator_changes_nothing_under_minmax(
    values, indicator, scale, shift
):
    changed = values.copy()
    changed[..., indicator] = scale * changed[..., indicator] + shift
    np.testing.assert_allclose(
        evaluate(SPEC, make_table(changed)).scores,
        evaluate(SPEC, make_table(values)).scores,
        rtol=1e-6,
        atol=1e-6,
    )


@given(
    arrays(
        np.float64, st.tuples(st.integers(1, 4), st.integers(1, 9)), elements=st.floats(-1e3, 1e3)
    )
)
def test_rank_ties_min_matches_definition(scores):
    """One place more than the number of scores above by more than the documented tolerance."""
    ranks = rank_scores(scores, "min")
    tolerance = RANK_TOLERANCE * np.abs(scores).max(axis=-1, keepdims=True)[..., None]
    expected = 1 + (scores[..., None, :] > scores[..., :, None] + tolerance).sum(axis=-1)
    np.testing.assert_array_equal(ranks, expected)
