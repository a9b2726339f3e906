"""Each scenario's random draws for its data cells: the multipliers of noise, the cells a mask
blanks.

A noise or mask factor takes one column of the design: its value is the key of a counter-based
hash (splitmix64's finaliser) that draws one uniform per cell, keyed by the cell's own key
(:func:`cell_keys`), so a scenario's realisation is a deterministic function of its coordinate, as
the Sobol estimators need. The draws are compiled, straight into what a scenario needs: in numpy
every step of the hash was a (scenarios, cells) temporary, and choosing a mask's cells a partial
sort of them, together a third of a noisy study's time.
"""

from __future__ import annotations

import numpy as np

from nqpf_sens.engine.kernels import compiled_helper, kernel
from nqpf_sens.uncertainty.designs import stable_hash


def scenario_keys(u: np.ndarray) -> np.ndarray:
    """The hash key of each design coordinate in [0, 1): its 53 bits as an integer."""
    return np.floor(u * 2.0**53).astype(np.uint64)


def cell_keys(
    years: tuple[int | None, ...], units: tuple[str, ...], indicators: tuple[str, ...]
) -> np.ndarray:
    """A 64-bit key per cell (years, units, indicators) from its year, unit and indicator names:
    a cell's noise and masking draws follow it wherever its row or column sits in the data file,
    and do not change when other units or indicators come or go."""
    hashed = [
        np.array([stable_hash(str(label)) for label in labels], dtype=np.uint64)
        for labels in (years, units, indicators)
    ]
    with np.errstate(over="ignore"):
        return (
            hashed[0][:, None, None] * np.uint64(0xD6E8FEB86659FD93)
            + hashed[1][None, :, None] * np.uint64(0xA0761D6478BD642F)
            + hashed[2][None, None, :]
        )


@compiled_helper
def _uniform(key, cell):
    """A uniform in [0, 1) from (scenario key, cell key): splitmix64's finaliser of their
    combination, its top 53 bits."""
    x = key * np.uint64(0x9E3779B97F4A7C15) + cell * np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return float(x >> np.uint64(11)) / 9007199254740992.0  # 2^53


@kernel
def noise_multipliers(keys, cells, spread):
    """(len(keys), len(cells)) multipliers 1 + spread (2 U - 1), U the draw of each (scenario,
    cell), ``spread`` each cell's."""
    multipliers = np.empty((keys.size, cells.size))
    for s in range(keys.size):
        for c in range(cells.size):
            multipliers[s, c] = 1.0 + spread[c] * (2.0 * _uniform(keys[s], cells[c]) - 1.0)
    return multipliers


@kernel
def masked_cells(keys, cells, candidates, count, size):
    """(len(keys), size) flags: for each scenario, the ``count`` of the ``candidates`` (positions
    among ``size`` cells, whose keys are ``cells``) with the smallest draws, a tie going to the
    earlier candidate. The smallest so far are kept in order: most draws are larger than the
    last of them, one comparison each."""
    masked = np.zeros((keys.size, size), dtype=np.bool_)
    count = max(0, min(count, candidates.size))
    smallest = np.empty(count)
    chosen = np.empty(count, dtype=np.int64)
    for s in range(keys.size if count else 0):
        kept = 0
        for i in range(candidates.size):
            draw = _uniform(keys[s], cells[candidates[i]])
            if kept == count and not draw < smallest[count - 1]:
                continue
            place = min(kept, count - 1)  # the last place is given up when all are taken
            while place > 0 and draw < smallest[place - 1]:
                smallest[place], chosen[place] = smallest[place - 1], chosen[place - 1]
                place -= 1
            smallest[place], chosen[place] = draw, candidates[i]
            kept = min(kept + 1, count)
        for k in range(kept):
            masked[s, chosen[k]] = True
    return masked
