"""Importance against weights (Paruolo, Saisana & Saltelli 2013): does each part of the index
matter as much as its weight says?

A weight is a statement of intended importance; what an indicator actually contributes depends
on its spread and on its correlations with the rest. Paruolo et al. measure importance by the
first-order effect of a part on the index across units, Pearson's correlation ratio
``eta^2 = Var(E[index | part]) / Var(index)``, estimated by a nonparametric regression. With a
few dozen units we use a local-linear kernel regression (Gaussian kernel) whose bandwidth is
chosen by leave-one-out cross-validation, and a bootstrap over units for the interval, each
resample choosing its own bandwidth (the choice is part of the estimate's variability).
Importance is normalised to sum to one within each parent and set beside the nominal weight share
and the effective share, the part of the index's variance each child carries through the
aggregation (``w cov(part, index) / Var(index)``, which sums to one over the children of an
arithmetic index).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from nqpf_sens.engine.spec import IndexSpec

BANDWIDTHS = np.geomspace(0.05, 2.0, 12)  # in units of the part's standard deviation
BOOTSTRAP = 200
#: parts whose weighted covariances with the index sum to less than this share of their sizes
#: carry none of its variance between them (up to rounding): no effective share (x / 0 was inf)
CANCELLED = 1e-12


def local_linear(x: np.ndarray, y: np.ndarray, bandwidth: float, at: np.ndarray) -> np.ndarray:
    """Local-linear regression of ``y`` on ``x`` (both ``(..., n)``, a batch of samples) with a
    Gaussian kernel, evaluated at ``at`` ``(..., m)``."""
    gap = x[..., None, :] - at[..., :, None]
    weights = np.exp(-0.5 * (gap / bandwidth) ** 2)
    y = y[..., None, :]
    s0, s1, s2 = weights.sum(-1), (weights * gap).sum(-1), (weights * gap**2).sum(-1)
    t0, t1 = (weights * y).sum(-1), (weights * gap * y).sum(-1)
    return _local_fit(s0, s1, s2, t0, t1, y.mean(-1))


def _local_fit(s0, s1, s2, t0, t1, mean: np.ndarray) -> np.ndarray:
    """The local-linear value from the kernel sums of 1, gap, gap^2, y and gap y: the local
    mean where the local slope is undetermined, ``mean`` where no neighbour has any weight."""
    determinant = s0 * s2 - s1**2
    with np.errstate(divide="ignore", invalid="ignore"):
        local = np.where(
            np.abs(determinant) > 1e-12 * s0 * s2, (s2 * t0 - s1 * t1) / determinant, t0 / s0
        )
    return np.where(np.isfinite(local), local, mean)


def choose_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """The bandwidth (from ``BANDWIDTHS`` x sd(x)) with the smallest leave-one-out error."""
    grid, once = _grid(x), np.ones((1, len(x)))
    errors = _loo_errors(y, once, _kernel_sums(x, y, grid, once))
    return float(grid[_first_smallest(errors)[0]])


def peak_bytes(n_units: int, bootstrap: int) -> int:
    """The largest arrays of :func:`importance_tables`, per bandwidth: seven units x units kernel
    terms, their stacked copy and two more such arrays, and the terms' sums over each resample
    (tracemalloc: 1,440-1,700 bytes per squared unit with 100-400 resamples, 200-800 units)."""
    return 8 * len(BANDWIDTHS) * n_units * (16 * n_units + 7 * bootstrap)


def _grid(x: np.ndarray) -> np.ndarray:
    """The bandwidths tried: ``BANDWIDTHS`` in units of the standard deviation of ``x``."""
    return BANDWIDTHS * (float(np.std(x)) or 1.0)


def _first_smallest(errors: np.ndarray) -> np.ndarray:
    """Per column, the first row of the smallest error (an undefined error is no candidate)."""
    return np.argmin(np.where(np.isnan(errors), np.inf, errors), axis=0)


def correlation_ratio(
    x: np.ndarray, y: np.ndarray, bandwidth: float | None = None
) -> float | np.ndarray:
    """Pearson's correlation ratio eta^2 of ``y`` on ``x`` from the smoothed regression curve,
    clipped to [0, 1]; 0 where ``x`` or ``y`` does not vary. ``x`` and ``y`` may be batches
    ``(..., n)`` when ``bandwidth`` is given (one ratio per sample)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if bandwidth is None:
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            return 0.0
        bandwidth = choose_bandwidth(x, y)
    fitted = local_linear(x, y, bandwidth, x)
    spread = np.var(y, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            (np.ptp(x, axis=-1) > 0) & (spread > 0), np.var(fitted, axis=-1) / spread, 0.0
        )
    ratio = np.clip(ratio, 0.0, 1.0)
    return float(ratio) if ratio.ndim == 0 else ratio


def resampled_correlation_ratios(
    x: np.ndarray, y: np.ndarray, bandwidth: float, counts: np.ndarray
) -> np.ndarray:
    """The correlation ratio of each bootstrap resample, given as ``counts`` (resamples x units)
    of each unit: with the bandwidth fixed, a resample's kernel sums at a unit are the whole
    sample's weighted by the counts, so every resample's fit is five matrix products over the
    units' kernel instead of a kernel of its own (equal to :func:`correlation_ratio` on the
    resampled units up to rounding)."""
    return _ratios(x, y, counts, _kernel_sums(x, y, np.array([bandwidth]), counts))[0]


def bootstrap_correlation_ratios(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The correlation ratio of each resample (``counts`` as above) at the bandwidth its own
    leave-one-out cross-validation chooses from the grid of :func:`choose_bandwidth`: holding the
    bandwidth chosen on all units instead made 95% intervals cover the true ratio in only 48-91%
    of simulated data sets, 71-100% so (``experiments/validate_estimators.py``; README,
    "Validation"). A unit is left out with all its copies: a copy left in would predict it, and
    favour ever smaller bandwidths. Every bandwidth at once: a few matrix products each."""
    sums = _kernel_sums(x, y, _grid(x), counts)
    chosen = _first_smallest(_loo_errors(y, counts, sums))
    return _ratios(x, y, counts, sums)[chosen, np.arange(len(counts))]


def _kernel_sums(
    x: np.ndarray, y: np.ndarray, bandwidths: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Per bandwidth, the kernel sums of 1, gap, gap^2, y and gap y at each unit over each
    resample's units, then those of 1 and y without the unit's own copies (the others' terms
    vanish with the gap): (bandwidths, 7, units, resamples). Summed without them, not
    subtracted: a unit far from the rest would be left with rounding error instead of nothing."""
    gap = x[None, :] - x[:, None]  # [i, j]: unit j seen from unit i
    kernel = np.exp(-0.5 * (gap / bandwidths[:, None, None]) ** 2)
    others = kernel * (1.0 - np.eye(len(x)))
    terms = [
        kernel,
        kernel * gap,
        kernel * gap**2,
        kernel * y,
        kernel * gap * y,
        others,
        others * y,
    ]
    return np.stack(terms, axis=1) @ counts.T


def _loo_errors(y: np.ndarray, counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Each resample's mean squared error of predicting each unit from the others (its copies
    left out; the others' mean where none of them is near enough to weigh)."""
    s1, s2, t1, s0, t0 = (sums[:, k] for k in (1, 2, 4, 5, 6))
    copies, drawn = counts.T, counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample of one unit: no others
        others_mean = (counts @ y - copies * y[:, None]) / (drawn - copies)
    predicted = _local_fit(s0, s1, s2, t0, t1, others_mean)
    return (copies * (y[:, None] - predicted) ** 2).sum(axis=-2) / drawn  # (bandwidths, resamples)


def _ratios(x: np.ndarray, y: np.ndarray, counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Each resample's correlation ratio at each bandwidth from its kernel sums (see
    :func:`_kernel_sums`): (bandwidths, resamples)."""
    s0, s1, s2, t0, t1 = (sums[:, k] for k in range(5))  # each (bandwidths, units, resamples)
    drawn = counts.sum(axis=1)
    local = _local_fit(s0, s1, s2, t0, t1, counts @ y / drawn)
    present = counts > 0
    fitted = np.where(present, np.swapaxes(local, -1, -2), 0.0)

    def variance(values: np.ndarray) -> np.ndarray:
        centred = values - (counts * values).sum(axis=-1, keepdims=True) / drawn[:, None]
        return (counts * centred**2).sum(axis=-1) / drawn

    spread = variance(np.broadcast_to(y, counts.shape))
    varies = np.where(present, x, -np.inf).max(axis=1) > np.where(present, x, np.inf).min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(varies & (spread > 0), variance(fitted) / spread, 0.0)
    return np.clip(ratio, 0.0, 1.0)


def importance_table(
    values_by_level: list[np.ndarray],
    spec: IndexSpec,
    weights: tuple[np.ndarray, ...],
    confidence: float = 0.95,
    seed: int = 0,
    bootstrap: int = BOOTSTRAP,
) -> pd.DataFrame:
    """Per node below the index: eta^2 on the index and its share within its parent, each with a
    percentile bootstrap interval (``bootstrap`` resamples of the units, the shares renormalised
    in each resample), the nominal and the effective weight share, and their differences.

    ``values_by_level[k]`` are the (units x nodes) scores of level ``k`` (level 0 the normalised
    indicators, the last the index); ``weights`` the nominal weights per level. A part missing for
    some units (aggregation without imputation) is measured on the units where it is observed,
    with its own resamples of them; ``units`` counts them.
    """
    index = values_by_level[-1][:, 0]
    rng = np.random.default_rng(seed)
    n = len(index)
    resamples = rng.integers(0, n, size=(bootstrap, n))
    alpha = (1 - confidence) / 2
    rows, boots = [], []
    for k in range(len(spec.levels) - 1):
        parents = np.asarray(spec.parents[k])
        w = np.asarray(weights[k], dtype=float)
        for j, node in enumerate(spec.levels[k]):
            x, y, draws = _observed(values_by_level[k][:, j], index, resamples, (seed, k, j))
            h = choose_bandwidth(x, y) if np.ptp(x) > 0 else 1.0
            counts = np.zeros((len(draws), len(x)))
            np.add.at(counts, (np.arange(len(draws))[:, None], draws), 1.0)
            boots.append(bootstrap_correlation_ratios(x, y, counts))
            siblings = parents == parents[j]
            covariance, variance = np.cov(x, y, bias=True)[0, 1], np.var(y)
            rows.append(
                {
                    "level": k,
                    "node": node,
                    "parent": spec.levels[k + 1][parents[j]],
                    "eta2": correlation_ratio(x, y, h),
                    "eta2_low": float(np.quantile(boots[-1], alpha)),
                    "eta2_high": float(np.quantile(boots[-1], 1 - alpha)),
                    "bandwidth": h,
                    "nominal_share": w[j] / w[siblings].sum(),
                    "effective": w[j] * covariance / variance if variance > 0 else np.nan,
                    "units": len(x),
                }
            )
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["level", "parent"], sort=False)
    frame["importance_share"] = frame.eta2 / grouped.eta2.transform("sum")
    shares = np.asarray(boots)  # (nodes, resamples) -> each resample's shares within the parent
    for members in grouped.indices.values():
        with np.errstate(divide="ignore", invalid="ignore"):
            shares[members] = shares[members] / shares[members].sum(axis=0)
    with warnings.catch_warnings():  # a part constant across units has no share: NaN, said so
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        frame["importance_share_low"] = np.nanquantile(shares, alpha, axis=1)
        frame["importance_share_high"] = np.nanquantile(shares, 1 - alpha, axis=1)
    total, size = grouped.effective.transform("sum"), grouped.effective.transform(_absolute_sum)
    carried = total.abs() > CANCELLED * size  # the parts' covariances with the index cancel
    frame["effective_share"] = (frame.effective / total.where(carried)).where(carried)
    frame["importance_minus_nominal"] = frame.importance_share - frame.nominal_share
    frame["importance_over_nominal"] = frame.importance_share / frame.nominal_share
    return frame.drop(columns="effective").assign(bootstrap=bootstrap, confidence=confidence)


def _absolute_sum(values: pd.Series) -> float:
    return float(values.abs().sum())


def _observed(
    x: np.ndarray, index: np.ndarray, resamples: np.ndarray, stream: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A part's values and the index on the units where the part is observed, and bootstrap
    resamples of those units: the shared ones when every unit is, else the part's own
    (``stream`` seeds them, so the result does not depend on the other parts)."""
    seen = ~np.isnan(x)
    if seen.all():
        return x, index, resamples
    n = int(seen.sum())
    own = np.random.default_rng(stream).integers(0, max(n, 1), size=(len(resamples), n))
    return x[seen], index[seen], own


def divergence_by_level(importance: pd.DataFrame) -> pd.DataFrame:
    """Per level: mean and largest |importance share - nominal share| and the node furthest off."""
    rows = []
    for level, group in importance.groupby("level"):
        gap = group.importance_minus_nominal.abs()
        # no share defined at this level (no part varies measurably): no node is furthest off
        worst = group.loc[gap.idxmax()] if gap.notna().any() else None
        rows.append(
            {
                "level": level,
                "mean_abs_difference": gap.mean(),
                "max_abs_difference": gap.max(),
                "furthest": None if worst is None else worst.node,
                "furthest_importance_share": np.nan if worst is None else worst.importance_share,
                "furthest_nominal_share": np.nan if worst is None else worst.nominal_share,
            }
        )
    return pd.DataFrame(rows)


def importance_tables(
    levels: list[np.ndarray],
    spec: IndexSpec,
    weights: tuple[np.ndarray, ...],
    confidence: float = 0.95,
    seed: int = 0,
    bootstrap: int = BOOTSTRAP,
) -> dict[str, pd.DataFrame]:
    """Importance against weights of the nominal scores of every level (see
    :func:`nqpf_sens.audit.coherence.nominal_levels`), by file name."""
    importance = importance_table(levels, spec, weights, confidence, seed, bootstrap)
    return {"importance": importance, "importance_divergence": divergence_by_level(importance)}
