"""Sobol sensitivity indices of a Saltelli design's outputs, all outputs at once, and their summary.

The estimators are SALib's (Saltelli et al. 2010 for S1, Jansen for ST, each output centred over
all rows as SALib does; its scaling cancels in the ratios), computed for every output and factor
with array operations: a bootstrap resample is a vector of counts, so each resampled mean is one
row of a matrix product. With the same resamples the numbers equal SALib's (tested to 1e-10).

Besides SALib's normal half-width ``*_conf`` every index gets a percentile interval ``*_low`` /
``*_high`` from the same resamples, clipped to [0, 1], the range of a true index (a raw S1 below 0
is estimator noise). Rank outputs are also summarised by the variance-weighted generalised indices
of Gamboa et al. (2014) and Lamboni et al. (2011), sum_k Var(Y_k) S_k / sum_k Var(Y_k), which no
unit whose rank hardly varies can dominate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from scipy.special import ndtri  # normal quantiles

MIN_RANK_SD = 0.5  # a rank varying less (standard deviation, in places) has little to explain
MAX_INTERVAL = 0.3  # an output whose widest ST interval is wider cannot rank the factors
TERMS_BLOCK = 1 << 23  # outputs go in blocks whose per-sample terms hold at most this many numbers
BOOTSTRAP_STREAM = 1  # the bootstrap's random stream, independent of the design's
ROUNDING = 1e-12  # a variance below this share of its output's level is rounding, not variation


@dataclass(frozen=True)
class Estimates:
    """Sobol estimates of K outputs for D factors, from R bootstrap resamples, on the outputs' own
    scale (centred): ``first`` and ``total`` are the numerators of S1 and ST (K, D), ``variance``
    their common denominator (K,), and the ``*_replicates`` the same for every resample: (R, K, D)
    and (R, K). Summing numerators and variances over outputs gives the generalised indices.
    ``level`` (K,) is the squared mean of all rows plus that of rows A and B centred by it: the
    variance, a difference of squares of that size, carries rounding errors relative to it."""

    level: np.ndarray
    variance: np.ndarray
    first: np.ndarray
    total: np.ndarray
    variance_replicates: np.ndarray
    first_replicates: np.ndarray
    total_replicates: np.ndarray

    @property
    def varies(self) -> np.ndarray:
        """(K,) whether each output varies: a variance below ``ROUNDING`` of its level is
        rounding, and its indices are undefined."""
        return self.variance > ROUNDING * self.level

    @property
    def S1(self) -> np.ndarray:
        return self.first / self.variance[:, None]

    @property
    def ST(self) -> np.ndarray:
        return self.total / self.variance[:, None]

    def replicates(self, name: str) -> np.ndarray:
        """(R, K, D) bootstrap replicates of ``S1`` or ``ST``; NaN for a resample whose rows A and
        B hardly vary (a rare-event output can draw only equal values: no index is defined)."""
        numerators = self.first_replicates if name == "S1" else self.total_replicates
        variance = self.variance_replicates[..., None]
        defined = variance > 1e-12 * self.variance[:, None]
        return np.where(defined, numerators / np.where(defined, variance, 1.0), np.nan)

    def generalised(self, columns: np.ndarray) -> Estimates:
        """One output: the variance-weighted aggregate of ``columns`` (Gamboa et al. 2014),
        sum_k Var_k S_k / sum_k Var_k = sum of numerators / sum of variances."""
        return Estimates(
            level=self.level[columns].sum(keepdims=True),
            variance=self.variance[columns].sum(keepdims=True),
            first=self.first[columns].sum(axis=0, keepdims=True),
            total=self.total[columns].sum(axis=0, keepdims=True),
            variance_replicates=self.variance_replicates[:, columns].sum(axis=1, keepdims=True),
            first_replicates=self.first_replicates[:, columns].sum(axis=1, keepdims=True),
            total_replicates=self.total_replicates[:, columns].sum(axis=1, keepdims=True),
        )


def bootstrap_seed(seed: int) -> np.random.SeedSequence:
    """The bootstrap's seed, derived from a run's seed (0 included: every run is reproducible)."""
    return np.random.SeedSequence((seed, BOOTSTRAP_STREAM))


def resample_counts(n: int, bootstrap: int, seed: int | np.random.SeedSequence) -> np.ndarray:
    """(bootstrap, n) counts of each base sample in each resample, drawn as SALib draws them."""
    draws = np.random.default_rng(seed).integers(n, size=(n, bootstrap))
    counts = np.empty((bootstrap, n))
    for b in range(bootstrap):
        counts[b] = np.bincount(draws[:, b], minlength=n)
    return counts


def estimate(outputs: np.ndarray, n_factors: int, counts: np.ndarray) -> Estimates:
    """S1 and ST of every column of ``outputs`` (rows in Saltelli order: A, AB_1 .. AB_D, B for
    each base sample) and their bootstrap replicates for the resamples ``counts``."""
    rows, n_outputs = outputs.shape
    n_resamples = len(counts)
    arrays = {
        "level": np.zeros(n_outputs),
        "variance": np.zeros(n_outputs),
        "first": np.zeros((n_outputs, n_factors)),
        "total": np.zeros((n_outputs, n_factors)),
        "variance_replicates": np.zeros((n_resamples, n_outputs)),
        "first_replicates": np.zeros((n_resamples, n_outputs, n_factors)),
        "total_replicates": np.zeros((n_resamples, n_outputs, n_factors)),
    }
    weights = np.vstack([np.ones(counts.shape[1]), counts])  # the sample itself, then resamples
    outputs = np.asarray(outputs, dtype=np.float64)
    means = outputs.mean(axis=0)
    width = block_width(counts.shape[1], n_factors, n_outputs)
    # one buffer for every block's terms: fresh pages cost more to touch than to compute
    buffer = np.empty(counts.shape[1] * (2 * n_factors + 4) * width)
    for start in range(0, n_outputs, width):
        block = slice(start, min(start + width, n_outputs))
        parts = _estimate_block(outputs[:, block], means[block], n_factors, weights, buffer)
        for name, values in parts.items():
            if name.endswith("replicates"):  # resamples first, then outputs
                arrays[name][:, block] = values
            else:
                arrays[name][block] = values
    arrays["level"] += means**2
    return Estimates(**arrays)


def block_width(n: int, n_factors: int, n_outputs: int) -> int:
    """Outputs per block: the block's terms, n base samples x (2 D + 4) x outputs, within
    ``TERMS_BLOCK`` (64 MiB), so that the memory they take does not grow with the outputs."""
    return max(1, min(n_outputs, TERMS_BLOCK // max(n * (2 * n_factors + 4), 1)))


def _estimate_block(
    outputs: np.ndarray, means: np.ndarray, n_factors: int, weights: np.ndarray, buffer: np.ndarray
) -> dict:
    """One block of outputs, centred by ``means`` as SALib centres them. Each estimator is a mean
    over base samples, so the sample's (weights' first row, all ones) and every resample's (the
    counts) come from one matrix product per block: the counts are read once, whatever the
    factors."""
    n, k = len(outputs) // (n_factors + 2), outputs.shape[1]
    # per base sample: B (AB_j - A), (A - AB_j)^2 / 2 for every factor j, then A, B, A^2, B^2
    terms = buffer[: n * (2 * n_factors + 4) * k].reshape(n, 2 * n_factors + 4, k)
    saltelli_terms(outputs, means, n_factors, terms)
    sums = (weights @ terms.reshape(n, -1) / n).reshape(len(weights), -1, k)
    mean = (sums[:, -4] + sums[:, -3]) / 2
    variance = (sums[:, -2] + sums[:, -1]) / 2 - mean**2
    first = sums[:, :n_factors].transpose(0, 2, 1)
    total = sums[:, n_factors : 2 * n_factors].transpose(0, 2, 1)
    return {
        "level": mean[0] ** 2,  # estimate adds the squared means of all rows
        "variance": variance[0],
        "first": first[0],
        "total": total[0],
        "variance_replicates": variance[1:],
        "first_replicates": first[1:],
        "total_replicates": total[1:],
    }


@numba.njit(parallel=True, nogil=True, cache=True)
def saltelli_terms(outputs, means, n_factors, out):  # pragma: no cover - compiled
    """The per-sample terms of every estimator in one pass over the outputs (rows A, AB_1 ..
    AB_D, B per base sample; ``means`` centre A and B; AB_j - A needs no centring)."""
    per_sample = n_factors + 2
    n, k = out.shape[0], out.shape[2]
    for i in numba.prange(n):
        first_row = i * per_sample
        last_row = first_row + per_sample - 1
        for c in range(k):
            a = outputs[first_row, c] - means[c]
            b = outputs[last_row, c] - means[c]
            out[i, 2 * n_factors, c] = a
            out[i, 2 * n_factors + 1, c] = b
            out[i, 2 * n_factors + 2, c] = a * a
            out[i, 2 * n_factors + 3, c] = b * b
        for j in range(n_factors):
            for c in range(k):
                difference = outputs[first_row + 1 + j, c] - outputs[first_row, c]
                b = outputs[last_row, c] - means[c]
                out[i, j, c] = b * difference
                out[i, n_factors + j, c] = 0.5 * difference * difference


def sobol_indices(
    outputs: np.ndarray,
    names: list[str],
    problem: dict,
    bootstrap: int,
    confidence: float,
    seed: int | np.random.SeedSequence,
    aggregates: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Indices of every output (a column of ``outputs``, in the row order of SALib's Saltelli
    design for ``problem``, a SALib problem dict with groups) and of every variance-weighted
    ``aggregates`` entry (a name and the columns it sums), with bootstrap intervals.

    ``output_sd`` (over rows A and B, 2N independent scenarios; for an aggregate, the root mean
    variance of its outputs) says how much there is to explain: indices of an output that hardly
    varies (a unit almost always at the same rank) describe a tiny variance and deserve little
    weight."""
    factors = list(dict.fromkeys(problem["groups"]))
    n = len(outputs) // (len(factors) + 2)
    estimates = estimate(outputs, len(factors), resample_counts(n, bootstrap, seed))
    frames = [_index_frame(estimates, names, factors, confidence)]
    for name, columns in (aggregates or {}).items():
        aggregate = estimates.generalised(columns)
        frames.append(_index_frame(aggregate, [name], factors, confidence, len(columns)))
    return pd.concat(frames, ignore_index=True)


def _index_frame(
    estimates: Estimates, names: list[str], factors: list[str], confidence: float, outputs: int = 1
) -> pd.DataFrame:
    """The long table (output, factor) of one set of estimates (each name the sum of ``outputs``
    outputs); NaN where an output does not vary."""
    sd = np.sqrt(np.maximum(estimates.variance, 0) / outputs)
    z = ndtri(0.5 + confidence / 2)
    tail = (1 - confidence) / 2
    constant = ~estimates.varies[:, None]
    columns: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for index in ("S1", "ST"):
            replicates = np.where(constant, 0.0, estimates.replicates(index))
            low, high = _percentiles(replicates, tail)
            columns[index] = getattr(estimates, index)
            with warnings.catch_warnings():  # a slice of undefined replicates stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                columns[f"{index}_conf"] = z * np.nanstd(replicates, axis=0, ddof=1)
            columns[f"{index}_low"] = np.clip(low, 0, 1)
            columns[f"{index}_high"] = np.clip(high, 0, 1)
    return pd.DataFrame(
        {
            "output": np.repeat(names, len(factors)),
            "factor": np.tile(factors, len(names)),
            **{
                name: np.where(constant, np.nan, values).ravel() for name, values in columns.items()
            },
            "output_sd": np.repeat(np.where(constant[:, 0], 0.0, sd), len(factors)),
        }
    )


def output_reliability(indices: pd.DataFrame, rank_prefix: str = "rank:") -> pd.DataFrame:
    """Per output: the interaction share 1 - sum of S1 (variance no single factor explains alone),
    the widest ST interval, and whether its indices can rank the factors (``reliable``), with the
    reason when not: a constant output, a rank varying by less than ``MIN_RANK_SD`` places, or
    an ST interval wider than ``MAX_INTERVAL``."""
    by_output = indices.groupby("output", sort=False)
    table = pd.DataFrame(
        {
            "output_sd": by_output.output_sd.first(),
            "sum_S1": by_output.S1.sum(min_count=1),
            "widest_ST_interval": (indices.ST_high - indices.ST_low).groupby(indices.output).max(),
        }
    )
    table["interaction_share"] = 1 - table.sum_S1
    is_rank = table.index.str.startswith(rank_prefix)
    reasons = np.select(
        [
            table.sum_S1.isna(),
            is_rank & (table.output_sd < MIN_RANK_SD),
            table.widest_ST_interval > MAX_INTERVAL,
        ],
        [
            "does not vary",
            f"rank standard deviation below {MIN_RANK_SD} places",
            f"an ST interval wider than {MAX_INTERVAL}",
        ],
        default="",
    )
    table["reliable"] = reasons == ""
    table["why_not"] = pd.Series(reasons, index=table.index).replace("", None)  # empty in CSV
    return table.loc[indices.output.unique()].rename_axis("output").reset_index()


def sobol_summary(indices: pd.DataFrame, reliability: pd.DataFrame) -> pd.DataFrame:
    """Per factor: its indices for R_S and for all ranks together (variance-weighted), and the
    number of units whose rank it moves most, counting reliable rank outputs only."""
    keep = ["S1", "S1_low", "S1_high", "ST", "ST_conf", "ST_low", "ST_high"]
    shift = indices[indices.output == "rank_shift"].set_index("factor")[keep]
    ranks = indices[indices.output == "all_ranks"].set_index("factor")[keep]
    reliable = set(reliability.output[reliability.reliable])
    units = indices[indices.output.str.startswith("rank:") & indices.output.isin(reliable)]
    top = units.loc[units.groupby("output").ST.idxmax()] if len(units) else units
    summary = pd.concat([_named(shift, "rank_shift"), _named(ranks, "ranks")], axis=1)
    summary["max_ST_ranks"] = units.groupby("factor").ST.max()
    summary["max_ST_high_ranks"] = units.groupby("factor").ST_high.max()
    summary["units_where_top"] = top.factor.value_counts()
    summary["units_where_top"] = summary["units_where_top"].fillna(0).astype(int)
    summary = summary.rename_axis("factor").reset_index()
    return summary.sort_values("ST_rank_shift", ascending=False, kind="stable")


def _named(frame: pd.DataFrame, output: str) -> pd.DataFrame:
    """Columns S1, S1_low, ... of one output renamed S1_<output>, S1_<output>_low, ..."""
    return frame.rename(
        columns=lambda c: c.replace("_", f"_{output}_", 1) if "_" in c else f"{c}_{output}"
    )


def _percentiles(replicates: np.ndarray, tail: float) -> np.ndarray:
    """The ``tail`` and ``1 - tail`` quantiles over the resamples (axis 0), skipping the rare
    undefined replicate (a resample whose values are all equal); vectorised where none is."""
    finite = np.isfinite(replicates).all(axis=0)
    bounds = np.quantile(np.where(finite, replicates, 0.0), [tail, 1 - tail], axis=0)
    if not finite.all():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-undefined slice stays NaN
            bounds[:, ~finite] = np.nanquantile(replicates[:, ~finite], [tail, 1 - tail], axis=0)
    return bounds
