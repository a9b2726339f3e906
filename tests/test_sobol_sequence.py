"""The scrambled Sobol sequence equals scipy's, bit for bit, for any stretch of it."""

import subprocess
import sys
import warnings

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import qmc

from nqpf_sens.uncertainty.sobol_sequence import ScrambledSobol


def scipy_points(dimensions: int, seed: int, start: int, stop: int) -> np.ndarray:
    engine = qmc.Sobol(dimensions, scramble=True, seed=seed)
    if start:
        engine.fast_forward(start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the balance warning when n is not a power of two
        return engine.random(stop - start)


@given(
    st.integers(1, 60),
    st.integers(0, 2**32 - 1),
    st.integers(0, 5000),
    st.integers(0, 3000),
)
def test_any_stretch_equals_scipys_sequence(dimensions, seed, start, n):
    found = ScrambledSobol(dimensions, seed).points(start, start + n)
    np.testing.assert_array_equal(found, scipy_points(dimensions, seed, start, start + n))


def test_a_long_sequence_in_many_dimensions():
    found = ScrambledSobol(200, 2024).points(0, 2**14)
    np.testing.assert_array_equal(found, scipy_points(200, 2024, 0, 2**14))


def test_drawing_points_does_not_import_scipy_stats():
    script = (
        "import sys\n"
        "from nqpf_sens.uncertainty.sobol_sequence import ScrambledSobol\n"
        "ScrambledSobol(5, 1).points(0, 64)\n"
        "assert 'scipy.stats' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
