"""The study's rank correlations with the nominal ranking: microseconds per scenario, by units.

Usage: ``python experiments/rank_agreement.py``. Times ``kernels.rank_agreement`` (Spearman's rho
and Kendall's tau-b of each scenario's ranking against the nominal one) on untied rankings near a
nominal one (the nominal scores plus normal noise of a tenth of their range, as a study's
scenarios are), against an untied nominal ranking and against one with a tie (two units sharing
a place, as a large index's nominal ranking may), one thread, the best of 5. Run it against
another checkout with ``PYTHONPATH=<checkout>/src`` to compare versions, alternating the two: the
machine's speed drifts.
"""

from __future__ import annotations

import time

import numpy as np

from nqpf_sens.engine.kernels import rank_agreement

UNITS = (31, 64, 100, 300, 1000, 3000, 10000, 20000)


def scenarios(n_units: int, n_scenarios: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A nominal ranking of ``n_units`` and ``n_scenarios`` untied rankings near it."""
    rng = np.random.default_rng(seed)
    nominal = rng.permutation(n_units) + 1
    noisy = nominal + rng.normal(0, n_units / 10, (n_scenarios, n_units))
    ranks = noisy.argsort(axis=1).argsort(axis=1) + 1
    return nominal, ranks


def with_a_tie(nominal: np.ndarray) -> np.ndarray:
    """The nominal ranking with its first two places shared (competition ranks: 1, 1, 3, ...)."""
    return np.where(nominal == 2, 1, nominal)


def microseconds(nominal: np.ndarray, ranks: np.ndarray, repeats: int = 5) -> float:
    counted = np.ones(len(ranks), dtype=bool)
    rank_agreement(ranks[:1], nominal, nominal.size, counted[:1])  # compiled or loaded first
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        rank_agreement(ranks, nominal, nominal.size, counted)
        best = min(best, time.perf_counter() - started)
    return best / len(ranks) * 1e6


def main() -> None:
    print(f"{'units':>6s} {'untied nominal':>15s} {'tied nominal':>13s}  (us per scenario)")
    for n_units in UNITS:
        nominal, ranks = scenarios(n_units, max(50, 2_000_000 // n_units // 10))
        untied, tied = (microseconds(x, ranks) for x in (nominal, with_a_tie(nominal)))
        print(f"{n_units:6d} {untied:15.3f} {tied:13.3f}")


if __name__ == "__main__":
    main()
