"""Scrambled Sobol points without importing ``scipy.stats``.

The points equal ``scipy.stats.qmc.Sobol(d, scramble=True, seed=seed)``'s, bit for bit (tested):
Joe and Kuo's direction numbers (the table scipy installs, read as data), Owen's random linear
matrix scramble of each dimension's direction numbers and a random digital shift, both drawn from
``numpy.random.default_rng(seed)`` in scipy's order. Point i is the shift XOR the direction
numbers of the bits set in i's Gray code, so any stretch of the sequence is computed directly,
with no state to fast-forward. What this saves is the import of ``scipy.stats`` (about half a
second of every run with a design).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

BITS = 30  # as scipy's default: points are multiples of 2^-30, at most 2^30 of them
TABLE = ("stats", "_sobol_direction_numbers.npz")  # Joe and Kuo's table, in scipy's folder


class ScrambledSobol:
    """The scrambled Sobol sequence of ``dimensions`` coordinates for ``seed``."""

    def __init__(self, dimensions: int, seed: int):
        rng = np.random.default_rng(seed)
        place_values = 2 ** np.arange(BITS, dtype=np.uint64)
        shift_bits = rng.integers(2, size=(dimensions, BITS), dtype=np.uint32)
        self.shift = (shift_bits @ place_values).astype(np.uint32)
        scramble = np.tril(rng.integers(2, size=(dimensions, BITS, BITS), dtype=np.uint32))
        scramble[:, np.arange(BITS), np.arange(BITS)] = 1
        self.directions = _scrambled(direction_numbers(dimensions), scramble)

    def points(self, start: int, stop: int) -> np.ndarray:
        """Points ``start .. stop - 1`` (rows) in [0, 1)."""
        if not 0 <= start <= stop <= 2**BITS:
            raise ValueError(f"points {start}..{stop} of a sequence of 2^{BITS}")
        index = np.arange(start, stop, dtype=np.uint64)
        gray = index ^ (index >> np.uint64(1))
        quasi = np.tile(self.shift, (stop - start, 1))
        for bit in range(int(gray.max(initial=0)).bit_length()):
            chosen = ((gray >> np.uint64(bit)) & np.uint64(1)).astype(np.uint32)
            quasi ^= chosen[:, None] * self.directions[:, bit]  # 0 or the direction numbers
        return quasi * (1.0 / 2**BITS)


@cache
def direction_numbers(dimensions: int) -> np.ndarray:
    """(dimensions, BITS) unscrambled direction numbers, as integers of BITS bits: each
    dimension's primitive polynomial extends its initial numbers by Bratley and Fox's recurrence."""
    with np.load(_table_path(), allow_pickle=False) as table:
        polynomials, initial = table["poly"], table["vinit"]
        if dimensions > len(polynomials):
            raise ValueError(f"at most {len(polynomials)} dimensions, not {dimensions}")
        polynomials = polynomials[:dimensions].astype(np.int64)
        initial = initial[:dimensions].astype(np.uint64)
    numbers = np.zeros((dimensions, BITS), dtype=np.uint64)
    numbers[0] = 1
    for dimension in range(1, dimensions):
        polynomial = int(polynomials[dimension])
        degree = polynomial.bit_length() - 1
        row = [int(v) for v in initial[dimension, :degree]]
        coefficients = [(polynomial >> (degree - 1 - k)) & 1 for k in range(degree)]
        for j in range(degree, BITS):
            value = row[j - degree]
            for k, coefficient in enumerate(coefficients):
                if coefficient:
                    value ^= row[j - k - 1] << (k + 1)
            row.append(value)
        numbers[dimension] = row
    return (numbers << np.arange(BITS - 1, -1, -1, dtype=np.uint64)).astype(np.uint32)


def _scrambled(numbers: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Each dimension's direction numbers times its lower-triangular 0/1 matrix over GF(2), the
    numbers read as bit vectors from the most significant bit."""
    positions = np.arange(BITS - 1, -1, -1, dtype=np.uint32)
    bits = (numbers[..., None] >> positions) & 1  # (dimensions, numbers, bit from the top)
    products = np.einsum("dpi,dji->djp", lower, bits) & 1
    return (products << positions).sum(axis=-1, dtype=np.uint64).astype(np.uint32)


def _table_path() -> Path:
    """Joe and Kuo's table in the installed scipy, found without importing ``scipy.stats``."""
    spec = importlib.util.find_spec("scipy")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent.joinpath(*TABLE)
        if path.is_file():
            return path
    import scipy.stats  # an unusual installation: let scipy say where its data are

    return Path(scipy.stats.__file__).parent / TABLE[1]
