"""Ranking rows by counting or by sorting: nanoseconds per row, by the number of units.

Usage: ``python experiments/rank_methods.py``. Times the two ways of ``kernels.rank_rows``
(counting up to ``PAIRWISE_LIMIT`` units, sorting beyond) on rows of normal scores, one thread,
the best of 9; checks that they give the same ranks. Where sorting starts to win is where
``PAIRWISE_LIMIT`` belongs.
"""

from __future__ import annotations

import time

import numpy as np

from nqpf_sens.engine.kernels import PAIRWISE_LIMIT, rank_rows_by_counting, ranks_from_order

UNITS = (31, 64, 100, 150, 200, 300, 500, 1000, 2000, 3000)


def by_counting(scores: np.ndarray, ranks: np.ndarray) -> None:
    rank_rows_by_counting(scores, False, ranks)


def by_sorting(scores: np.ndarray, ranks: np.ndarray) -> None:
    ranks_from_order(scores, np.argsort(scores, axis=1), False, ranks)


def ranks_and_nanoseconds(method, scores: np.ndarray, repeats: int = 9):
    """The ranks of ``scores`` by one method, and its best time per row."""
    ranks = np.empty(scores.shape, dtype=np.int64)
    method(scores, ranks)  # compiled or loaded first
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        method(scores, ranks)
        best = min(best, time.perf_counter() - started)
    return ranks, best / len(scores) * 1e9


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"units  counting   sorting  (ns per row; counting up to {PAIRWISE_LIMIT} units)")
    for n in UNITS:
        scores = rng.normal(size=(max(100, 600_000 // n), n))
        counted, counting = ranks_and_nanoseconds(by_counting, scores)
        sorted_, sorting = ranks_and_nanoseconds(by_sorting, scores)
        assert (counted == sorted_).all(), n
        print(f"{n:5d} {counting:9.0f} {sorting:9.0f}")


if __name__ == "__main__":
    main()
