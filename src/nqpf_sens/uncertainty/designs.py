"""Designs in the unit hypercube: rows are scenarios, columns belong to factors.

Every method produces the same rows whatever the chunking or the number of workers: each column of
plain Monte Carlo rows is its own stream, ``SeedSequence(seed, spawn_key=(group, column))`` keyed by
its factor group's name and its place in the group, advanced to the first row wanted; Sobol points
are computed from their index (scipy's scrambled sequence, bit for bit, without importing
``scipy.stats``); Saltelli's design is built once, with numpy, as SALib builds it.

- ``random``: independent uniforms (uncertainty analysis). Keyed streams give a factor the same
  draws whatever other factors the run has: adding, removing or reordering factors changes no other
  factor's values.
- ``sobol``: scrambled Sobol low-discrepancy points (uncertainty analysis, faster convergence).
- ``saltelli``: SALib's Saltelli/Sobol design for first- and total-order indices with factor groups
  (``SALib.sample.sobol.sample`` without second order, bit for bit: a test compares them), N (G + 2)
  rows laid out as SALib's analyser expects; rows A and B (2 N) serve the uncertainty statistics,
  the mixed rows only the sensitivity indices. SALib fills it in a Python loop over rows and
  columns (18.6 s for 20 factors at N = 2^14); here one broadcast does.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from nqpf_sens.uncertainty.sobol_sequence import ScrambledSobol

METHODS = ("random", "sobol", "saltelli")


def design_rows(method: str, n: int, n_factors: int) -> int:
    """Rows of a design of N = ``n``: N (G + 2) for Saltelli's, N otherwise."""
    return n * (n_factors + 2) if method == "saltelli" else n


class Design:
    """Rows ``[start, stop)`` of a design, reproducible in any order."""

    def __init__(self, method: str, n: int, groups: list[str], seed: int):
        if method not in METHODS:
            raise ValueError(f"unknown sampling method {method!r}")
        self.method, self.n, self.groups, self.seed = method, n, groups, seed
        self.n_columns = len(groups)
        self.factor_names = list(dict.fromkeys(groups))
        dimensions = 2 * self.n_columns if method == "saltelli" else self.n_columns
        self._sequence = ScrambledSobol(dimensions, seed) if method != "random" else None
        self._streams = threading.local()  # each thread's generators, reset for every chunk

    def __getstate__(self) -> dict:
        """Picklable (for dask's and loky's workers): without this process's thread-local
        generators."""
        state = self.__dict__.copy()
        del state["_streams"]
        state.pop("_seeded_states", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._streams = threading.local()

    @property
    def n_rows(self) -> int:
        return design_rows(self.method, self.n, len(self.factor_names))

    def problem(self) -> dict:
        """SALib's problem dict (every column on [0, 1], grouped by factor)."""
        return {
            "num_vars": self.n_columns,
            "names": [f"x{i}" for i in range(self.n_columns)],
            "bounds": [[0.0, 1.0]] * self.n_columns,
            "groups": self.groups,
        }

    def _saltelli(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of Saltelli's design, computed from the base points they need
        (the whole design is never held: N (G + 2) rows of every column). Per base point: A, then
        A with group k's columns taken from B (groups in order of first appearance), then B; A
        and B are the two halves of a scrambled Sobol sequence in 2 x columns dimensions, as SALib
        draws it."""
        per_sample = len(self.factor_names) + 2
        first, last = start // per_sample, -(-stop // per_sample)
        assert self._sequence is not None
        base = self._sequence.points(first, last)
        a, b = base[:, : self.n_columns], base[:, self.n_columns :]
        member = np.array([[g == name for g in self.groups] for name in self.factor_names])
        blocks = np.empty((last - first, per_sample, self.n_columns))
        blocks[:, 0] = a
        blocks[:, 1:-1] = np.where(member[None], b[:, None, :], a[:, None, :])
        blocks[:, -1] = b
        offset = first * per_sample
        return blocks.reshape(-1, self.n_columns)[start - offset : stop - offset]

    def uncertainty_rows(self, start: int, stop: int) -> np.ndarray:
        """Which rows feed the uncertainty statistics (all, or A and B of a Saltelli design)."""
        index = np.arange(start, stop)
        if self.method != "saltelli":
            return np.ones(index.size, dtype=bool)
        position = index % (len(self.factor_names) + 2)
        return (position == 0) | (position == len(self.factor_names) + 1)

    def rows(self, start: int, stop: int) -> np.ndarray:
        if self.method == "saltelli":
            return self._saltelli(start, stop)
        if self._sequence is not None:
            return self._sequence.points(start, stop)
        columns = np.empty((self.n_columns, stop - start))
        if not hasattr(self._streams, "generators"):
            self._streams.generators = [np.random.PCG64() for _ in range(self.n_columns)]
        generators = self._streams.generators
        for column, stream, state in zip(columns, generators, self._seeded_states, strict=True):
            stream.state = state  # as seeded: the same as seeding anew, in a tenth of the time
            stream.advance(start)  # one 64-bit draw per uniform
            np.random.Generator(stream).random(out=column)
        return columns.T

    @functools.cached_property
    def _seeded_states(self) -> list[Mapping[str, Any]]:
        """Each column's stream as seeded: ``SeedSequence(seed, spawn_key=key)``, computed once
        (seeding holds the interpreter for 15 us a column, for every chunk of every thread)."""
        return [
            np.random.PCG64(np.random.SeedSequence(self.seed, spawn_key=key)).state
            for key in self._column_keys()
        ]

    def _column_keys(self) -> list[tuple[int, int]]:
        """Each column's stream key: a stable hash of its group's name, its place in the group."""
        keys: list[tuple[int, int]] = []
        seen: dict[str, int] = {}
        for group in self.groups:
            keys.append((stable_hash(group), seen.setdefault(group, 0)))
            seen[group] += 1
        return keys


def stable_hash(name: str) -> int:
    """A 64-bit hash of ``name``, the same in every process and session (``hash`` is salted)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
