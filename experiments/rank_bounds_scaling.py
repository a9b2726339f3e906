"""How the exact rank bounds' time grows with the units, and the pairs of units they must settle.

Usage: ``python experiments/rank_bounds_scaling.py [--units 50 100 200] [--jobs 2]``. Random
units (uniform values of 15 indicators in three dimensions weighted 40/40/20, every weight within
+/- 25%), solved with the run's guard lifted: prints the units, the undecided pairs the guard
counts (``rank_bounds.MAX_UNDECIDED``) and the seconds the programmes took.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nqpf_sens.audit import rank_bounds as exact
from nqpf_sens.engine.spec import IndexSpec

SPEC = IndexSpec(
    levels=(tuple(f"i{j}" for j in range(15)), ("a", "b", "c"), ("index",)),
    parents=(np.repeat([0, 1, 2], 5), np.zeros(3, dtype=int)),
    weights=(np.ones(15), np.array([0.4, 0.4, 0.2])),
    direction=np.ones(15),
    transform_flag=np.zeros(15, dtype=bool),
)


def undecided_pairs(leaves: np.ndarray) -> int:
    """The guard's count of the pairs the programmes would hold."""
    limit, exact.MAX_UNDECIDED = exact.MAX_UNDECIDED, -1
    try:
        exact.rank_bounds(
            leaves, SPEC, SPEC.weights, [0.25, 0.25], [str(i) for i in range(len(leaves))]
        )
    except exact.TooManyUndecided as many:
        return many.pairs
    finally:
        exact.MAX_UNDECIDED = limit
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--jobs", type=int, default=2)
    options = parser.parse_args()
    print(f"{'units':>6s} {'pairs':>8s} {'seconds':>8s}")
    for n in options.units:
        leaves = np.random.default_rng(4).random((n, 15))
        pairs = undecided_pairs(leaves)
        limit, exact.MAX_UNDECIDED = exact.MAX_UNDECIDED, pairs
        started = time.perf_counter()
        exact.rank_bounds(
            leaves, SPEC, SPEC.weights, [0.25, 0.25], [str(i) for i in range(n)], options.jobs
        )
        seconds = time.perf_counter() - started
        exact.MAX_UNDECIDED = limit
        print(f"{n:6d} {pairs:8,d} {seconds:8.1f}")


if __name__ == "__main__":
    main()
