"""Sobol sensitivity indices of a Saltelli design's outputs, all outputs at once, and their summary.

The estimators are SALib's (Saltelli et al. 2010 for S1, Jansen for ST, each output centred over
all rows as SALib does; its scaling cancels in the ratios), computed for every output and factor
with array operations: a bootstrap resample is a vector of counts, so each resampled mean is one
row of a matrix product. With the same resamples the numbers equal SALib's (tested to 1e-10).

Besides SALib's normal half-width ``*_conf`` every index gets a percentile interval ``*_low`` /
``*_high`` from the same resamples, as they fall: an end below 0 or above 1, where no true index
lies, shows the estimator's noise (clipped, it hid the width that tells a reliable output from
another, and an estimate could fall outside its own interval). Rank outputs are also summarised by
the variance-weighted generalised indices of Gamboa et al. (2014) and Lamboni et al. (2011), sum_k
Var(Y_k) S_k / sum_k Var(Y_k), which no unit whose rank hardly varies can dominate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from scipy.special import ndtri  # normal quantiles

#: a rank varying no more (standard deviation, in places) has little to explain: one that only
#: flips between two adjacent places has at most 0.5, exactly 0.5 when its sample is evenly split,
#: so "at most" (with rounding's allowance) treats every such rank alike, as "below" did not
MIN_RANK_SD = 0.5
MAX_INTERVAL = 0.3  # an output whose widest ST interval is wider cannot rank the factors
#: fewer base samples and the bootstrap cannot measure the error (``python
#: experiments/validate_estimators.py --small``, 30 designs at each N): at N = 4 to 32 the few
#: intervals of outputs that passed the other tests covered the true index in 14-75% of cases, and
#: those of every output in 70-95%; at N = 64 98% of all, at 128 99.5% of those passing
MIN_BASE_SAMPLES = 64
TERMS_BLOCK = 1 << 23  # outputs go in blocks whose per-sample terms hold at most this many numbers
SAMPLES_BLOCK = 256  # base samples summed at once: fixed places, so sums never depend on chunking
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
    """(bootstrap, n) counts of each base sample in each resample, drawn as SALib draws them (its
    64-bit draws are the same numbers as 32-bit ones, which take half the memory)."""
    wide = n > np.iinfo(np.int32).max
    draws = np.random.default_rng(seed).integers(
        n, size=(n, bootstrap), dtype=np.int64 if wide else np.int32
    )
    counts = np.empty((bootstrap, n), dtype=np.min_scalar_type(n))
    for b in range(bootstrap):
        counts[b] = np.bincount(draws[:, b], minlength=n)
    return counts


class SobolSums:
    """The sums Sobol's estimators need, accumulated from a Saltelli design's outputs as its rows
    arrive (in design order, in any pieces): a study keeps no output row for the analysis.

    Per base sample the terms are B (AB_j - A), (AB_j - A)^2 / 2 and AB_j - A for every factor j,
    then A, B, A^2 and B^2 (each output centred by ``centre``, a value near its mean: the nominal
    run's); each resample's sums are one matrix product of its counts with the terms. Blocks of
    ``SAMPLES_BLOCK`` base samples, at fixed places in the design, are summed one at a time and
    added in order, so the sums are the same bytes however the rows arrive. SALib's centring by
    the mean of all rows is applied at the end (exact algebra: see :meth:`estimates`).
    ``keep`` names columns kept for every row (the convergence check's rank shift)."""

    def __init__(
        self, n_factors: int, centre: np.ndarray, counts: np.ndarray, keep: tuple[int, ...] = ()
    ):
        self.n_factors = n_factors
        self.per_sample = n_factors + 2
        self.n = counts.shape[1]
        self.centre = np.ascontiguousarray(centre, dtype=np.float64)
        self.counts = counts.astype(np.min_scalar_type(int(counts.max(initial=0))), copy=False)
        n_outputs, n_terms = len(self.centre), 3 * n_factors + 4
        self.sums = np.zeros((len(counts) + 1, n_terms, n_outputs))
        self.row_sums = np.zeros(n_outputs)  # of every row, centred
        self.keep = keep
        self.n_rows = self.n * self.per_sample  # of the design
        self.kept = np.empty((self.n_rows, len(keep)))
        self.rows_added = 0
        self.samples_summed = 0
        block_rows = min(SAMPLES_BLOCK * self.per_sample, self.n_rows)
        self._pending = np.empty((block_rows, n_outputs))  # a block's rows, until it is complete
        self._filled = 0  # rows of the pending block so far
        self._width = max(1, min(n_outputs, TERMS_BLOCK // (SAMPLES_BLOCK * n_terms)))
        self._terms = np.empty(SAMPLES_BLOCK * n_terms * self._width)

    def add(self, rows: np.ndarray, start: int) -> None:
        """Rows ``start``, ``start + 1``, ... of the design, all outputs: the rows that follow
        those added so far."""
        rows = np.asarray(rows, dtype=np.float64)
        if start != self.rows_added:
            raise ValueError(f"rows from {start} given after {self.rows_added}: not in order")
        if start + len(rows) > self.n_rows:
            raise ValueError("more rows than the design has")
        self.kept[start : start + len(rows)] = rows[:, list(self.keep)]
        self.rows_added += len(rows)
        block = SAMPLES_BLOCK * self.per_sample
        last = self.rows_added == self.n_rows
        if self._filled:  # complete the pending block first (copied once, however small the pieces)
            taken = min(block - self._filled, len(rows))
            self._pending[self._filled : self._filled + taken] = rows[:taken]
            self._filled += taken
            rows = rows[taken:]
            if self._filled == block or last:
                self._add_block(self._pending[: self._filled])
                self._filled = 0
        whole = len(rows) if last else len(rows) // block * block
        for first in range(0, whole, block):
            self._add_block(rows[first : first + block])
        if whole < len(rows):
            self._filled = len(rows) - whole
            self._pending[: self._filled] = rows[whole:]

    def _add_block(self, rows: np.ndarray) -> None:
        """Add one block's sums (every block but the design's last holds ``SAMPLES_BLOCK`` base
        samples), in blocks of outputs whose terms fit ``TERMS_BLOCK`` numbers."""
        samples, first = len(rows) // self.per_sample, self.samples_summed
        weights = np.vstack([np.ones(samples), self.counts[:, first : first + samples]])
        n_terms, n_outputs = self.sums.shape[1:]
        for start in range(0, n_outputs, self._width):
            columns = slice(start, min(start + self._width, n_outputs))
            width = columns.stop - start
            terms = self._terms[: samples * n_terms * width].reshape(samples, n_terms, width)
            saltelli_terms(
                np.ascontiguousarray(rows[:, columns]), self.centre[columns], self.n_factors, terms
            )
            products = weights @ terms.reshape(samples, -1)
            self.sums[:, :, columns] += products.reshape(len(weights), n_terms, width)
        self.row_sums += (rows - self.centre).sum(axis=0)
        self.samples_summed += samples

    def estimates(self) -> Estimates:
        """The estimates, once every row is in. With outputs centred by c instead of their mean m
        (m' = m - c, from the row sums), B - m = (B - c) - m', so E[(B - m) d] = E[(B - c) d] - m'
        E[d] for d = AB_j - A; the variance and Jansen's total need no correction."""
        if self.rows_added < self.n_rows:
            raise ValueError(f"{self.rows_added // self.per_sample} of {self.n} base samples added")
        d = self.n_factors
        means = self.sums / self.n
        shift = self.row_sums / (self.n * self.per_sample)
        a, b, a2, b2 = (means[:, 3 * d + k] for k in range(4))
        mean = (a + b) / 2
        variance = (a2 + b2) / 2 - mean**2
        first = (means[:, :d] - shift * means[:, 2 * d : 3 * d]).transpose(0, 2, 1)
        total = means[:, d : 2 * d].transpose(0, 2, 1)
        return Estimates(
            level=(self.centre + shift) ** 2 + (mean[0] - shift) ** 2,
            variance=variance[0],
            first=first[0],
            total=total[0],
            variance_replicates=variance[1:],
            first_replicates=first[1:],
            total_replicates=total[1:],
        )


def estimate(outputs: np.ndarray, n_factors: int, counts: np.ndarray) -> Estimates:
    """S1 and ST of every column of ``outputs`` (rows in Saltelli order: A, AB_1 .. AB_D, B for
    each base sample) and their bootstrap replicates for the resamples ``counts``."""
    outputs = np.asarray(outputs, dtype=np.float64)
    sums = SobolSums(n_factors, outputs.mean(axis=0), counts)
    sums.add(outputs, 0)
    return sums.estimates()


@numba.njit(nogil=True, cache=True)
def saltelli_terms(outputs, centre, n_factors, out):  # pragma: no cover - compiled
    """The per-sample terms of every estimator in one pass over the outputs (rows A, AB_1 ..
    AB_D, B per base sample; ``centre`` centres A and B; AB_j - A needs no centring): for each
    factor j, B (AB_j - A), (AB_j - A)^2 / 2 and AB_j - A, then A, B, A^2, B^2."""
    per_sample = n_factors + 2
    n, k = out.shape[0], out.shape[2]
    d = n_factors
    for i in range(n):
        first_row = i * per_sample
        last_row = first_row + per_sample - 1
        for c in range(k):
            a = outputs[first_row, c] - centre[c]
            b = outputs[last_row, c] - centre[c]
            out[i, 3 * d, c] = a
            out[i, 3 * d + 1, c] = b
            out[i, 3 * d + 2, c] = a * a
            out[i, 3 * d + 3, c] = b * b
        for j in range(d):
            for c in range(k):
                difference = outputs[first_row + 1 + j, c] - outputs[first_row, c]
                b = outputs[last_row, c] - centre[c]
                out[i, j, c] = b * difference
                out[i, d + j, c] = 0.5 * difference * difference
                out[i, 2 * d + j, c] = difference


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
    return indices_table(estimates, names, factors, confidence, aggregates)


def indices_table(
    estimates: Estimates,
    names: list[str],
    factors: list[str],
    confidence: float,
    aggregates: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """The long table of :func:`sobol_indices` from estimates already made (a study's
    :class:`SobolSums`)."""
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
            columns[f"{index}_low"], columns[f"{index}_high"] = low, high
            if index == "S1":  # the share no factor explains alone, 1 - sum of S1, resampled
                alone = 1 - replicates.sum(axis=-1, keepdims=True)
                share_low, share_high = _percentiles(alone, tail)
                for name, end in (("low", share_low), ("high", share_high)):
                    columns[f"interaction_share_{name}"] = np.repeat(end, len(factors), axis=1)
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


#: the percentile bootstrap interval of an output's interaction share, carried by its factors' rows
#: of the indices table until :func:`output_reliability` takes it to the output's own row
INTERACTION_INTERVAL = ("interaction_share_low", "interaction_share_high")


def output_reliability(
    indices: pd.DataFrame, base_samples: int, rank_prefix: str = "rank:"
) -> pd.DataFrame:
    """Per output: the interaction share 1 - sum of S1 (variance no single factor explains alone)
    with its bootstrap interval, the widest ST interval, and whether its indices can rank the
    factors (``reliable``), with the reason when not: a constant output, a rank varying by at
    most ``MIN_RANK_SD`` places, fewer than ``MIN_BASE_SAMPLES`` base samples behind the
    estimates, or an ST interval wider than ``MAX_INTERVAL``."""
    by_output = indices.groupby("output", sort=False)
    table = pd.DataFrame(
        {
            "output_sd": by_output.output_sd.first(),
            "sum_S1": by_output.S1.sum(min_count=1),
            "widest_ST_interval": (indices.ST_high - indices.ST_low).groupby(indices.output).max(),
        }
    )
    table["interaction_share"] = 1 - table.sum_S1
    for end in INTERACTION_INTERVAL:
        table[end] = by_output[end].first()
    is_rank = table.index.str.startswith(rank_prefix)
    reasons = np.select(
        [
            table.sum_S1.isna(),
            is_rank & (table.output_sd <= MIN_RANK_SD * (1 + ROUNDING)),
            np.full(len(table), base_samples < MIN_BASE_SAMPLES),
            table.widest_ST_interval > MAX_INTERVAL,
        ],
        [
            "does not vary",
            f"rank standard deviation at most {MIN_RANK_SD} places",
            f"fewer than {MIN_BASE_SAMPLES} base samples: the error cannot be measured",
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
