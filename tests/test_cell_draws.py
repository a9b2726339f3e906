"""The compiled draws of noise and masks equal the numpy formulation they replace: splitmix64's
finaliser of (scenario key, cell key) as uniforms, noise multipliers from them, and a mask's cells
as the smallest draws among the candidates (``np.argpartition``)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nqpf_sens.uncertainty.cell_draws import masked_cells, noise_multipliers, scenario_keys


def numpy_uniforms(keys: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The draws as whole-array numpy steps (the formulation before compiling)."""
    with np.errstate(over="ignore"):
        x = keys[:, None] * np.uint64(0x9E3779B97F4A7C15) + cells[None, :] * np.uint64(
            0xBF58476D1CE4E5B9
        )
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def random_keys(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 30), st.integers(1, 60))
def test_noise_multipliers_are_the_numpy_draws_bit_for_bit(seed, n_scenarios, n_cells):
    rng = np.random.default_rng(seed)
    keys = scenario_keys(rng.random(n_scenarios))
    cells = random_keys(rng, n_cells)
    spread = rng.uniform(0, 0.9, n_cells) * (rng.random(n_cells) < 0.8)
    expected = 1.0 + spread * (2.0 * numpy_uniforms(keys, cells) - 1.0)
    got = noise_multipliers(keys, cells, spread)
    assert got.shape == (n_scenarios, n_cells)
    np.testing.assert_array_equal(got, expected)
    assert ((got >= 1 - spread) & (got <= 1 + spread)).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 30), st.integers(1, 80), st.data())
def test_a_mask_takes_the_candidates_with_the_smallest_draws(seed, n_scenarios, size, data):
    rng = np.random.default_rng(seed)
    keys = random_keys(rng, n_scenarios)
    cells = random_keys(rng, size)
    candidates = np.flatnonzero(rng.random(size) < 0.7)
    count = data.draw(st.integers(1, max(1, candidates.size)))
    got = masked_cells(keys, cells, candidates, count, size)
    expected = np.zeros((n_scenarios, size), dtype=bool)
    if candidates.size:
        draws = numpy_uniforms(keys, cells[candidates])
        picked = np.argpartition(draws, min(count, candidates.size) - 1, axis=1)[:, :count]
        np.put_along_axis(expected, candidates[picked], True, axis=1)
    np.testing.assert_array_equal(got, expected)
    assert (got.sum(axis=1) == min(count, candidates.size)).all()


def test_a_tie_at_the_last_place_goes_to_the_earlier_candidate():
    """Cells of equal keys draw equal numbers: of two tied for one place, the earlier candidate."""
    keys = random_keys(np.random.default_rng(1), 20)
    cells = np.full(3, 12345, dtype=np.uint64)
    for candidates in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        masked = masked_cells(keys, cells, np.array(candidates), 2, 3)
        assert (masked[:, candidates[:2]]).all() and not masked[:, candidates[2]].any()


@pytest.mark.parametrize("count", [0, -1])
def test_a_mask_of_no_cells_blanks_nothing(count):
    keys = scenario_keys(np.array([0.1, 0.7]))
    masked = masked_cells(keys, np.arange(5, dtype=np.uint64), np.arange(5), count, 5)
    assert not masked.any()
