"""How the exact rank bounds' time grows with the units and the binary variables they must solve.

Usage: ``python experiments/rank_bounds_scaling.py [--units 50 100 200] [--jobs 2]``. Random
units (uniform values of 15 indicators in three dimensions weighted 40/40/20, every weight within
+/- 25%), solved with the run's guard lifted: prints the units, the binary variables the guard
counts (``rank_bounds.MAX_UNDECIDED``: a unit that may or may not beat another, in each unit's two
programmes) and the seconds the programmes took.
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


def binaries(leaves: np.ndarray) -> int:
    """The guard's count of the binary variables the programmes would hold."""
    limit, exact.MAX_UNDECIDED = exact.MAX_UNDECIDED, -1
    try:
        exact.rank_bounds(
            leaves, SPEC, SPEC.weights, [0.25, 0.25], [str(i) for i in range(len(leaves))]
        )
    except exact.TooManyUndecided as many:
        return many.binaries
    finally:
        exact.MAX_UNDECIDED = limit
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--jobs", type=int, default=2)
    options = parser.parse_args()
    print(f"{'units':>6s} {'binaries':>9s} {'seconds':>8s}")
    for n in options.units:
        leaves = np.random.default_rng(4).random((n, 15))
        count = binaries(leaves)
        limit, exact.MAX_UNDECIDED = exact.MAX_UNDECIDED, count
        started = time.perf_counter()
        exact.rank_bounds(
            leaves, SPEC, SPEC.weights, [0.25, 0.25], [str(i) for i in range(n)], options.jobs
        )
        seconds = time.perf_counter() - started
        exact.MAX_UNDECIDED = limit
        print(f"{n:6d} {count:9,d} {seconds:8.1f}")


if __name__ == "__main__":
    main()
