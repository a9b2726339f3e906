"""The parallel study: design rows -> scenarios -> engine -> per-chunk statistics.

Each chunk of design rows is decoded into scenario batches (:class:`ScenarioBatch`), each as large
as memory allows, and evaluated batch by batch (:class:`ChunkTally`). What can be accumulated is
accumulated (rank and tier histograms: ranks are integers, so rank quantiles are exact from counts;
so are R_S's, from the histogram of total rank shifts; quadrant counts; each scenario's Spearman
and Kendall correlation with the nominal ranking, on a grid of 0.0001); what the estimators need
row by row is kept compactly (scores and region means of the scenarios of the design's first base
samples, at most ``MAX_KEPT_SCORES`` (:func:`kept_scenarios`, :func:`kept_base_samples`), as
float32 differences from the nominal ones: a scenario equal to the nominal run is kept exactly); a
Saltelli design's outputs go to the Sobol estimators' sums as the chunks are merged, in design
order (:class:`~nqpf_sens.uncertainty.sobol.SobolSums`), and only its rows A and B are kept, so
memory hardly grows with N. Chunks are independent, so results do not depend on the number of
workers; each is also written to a work folder, from which an interrupted run resumes. Workers are
threads where scenarios differ in their weights alone (one engine and its caches shared; the
compiled kernels release the GIL) and forked copies of the run's process otherwise (preparing
choices, tables, noise and masks is Python work that threads take turns at; see
:func:`resolved_backend`), loky processes or dask workers on request.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import threading
import warnings
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from nqpf_sens.engine.aggregate import ROW_STEP
from nqpf_sens.engine.batch import BatchResult, Engine, ScenarioBatch
from nqpf_sens.engine.kernels import (
    bin_correlations,
    count_above_mean,
    rank_agreement,
    sorts_ranks,
    tally_ranks,
)
from nqpf_sens.engine.pipeline import normalisation_methods
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable
from nqpf_sens.errors import UserError
from nqpf_sens.processes import ForkedPool, die_with_parent
from nqpf_sens.uncertainty.chunks import (
    Layout,
    chunk_key,
    chunk_path,
    load_arrays,
    prepare_work,
    save_arrays,
)
from nqpf_sens.uncertainty.compiling import wait_for_kernels
from nqpf_sens.uncertainty.designs import Design
from nqpf_sens.uncertainty.factors import FactorSet
from nqpf_sens.uncertainty.memory import MMAP_THRESHOLD, retain_freed_memory
from nqpf_sens.uncertainty.sobol import SobolSums

#: scenarios kept for score bands (standard error in probability: p05 0.0009, median 0.002)
MAX_KEPT_SCORES = 1 << 16
KEPT_SCORES_BYTES = 512 * 2**20  # fewer for a large index: its kept scores stay within this
MIN_KEPT_SCORES = 1 << 12  # but never fewer than this (error of a 5% quantile < 0.004)
CHUNK_MEMORY = 192 * 2**20  # bytes of a batch's per-scenario arrays, or of a chunk's rows
HEAP_ARRAY_BYTES = MMAP_THRESHOLD // 2  # bytes of a batch's largest array (planned_batch_rows)
DEFAULT_CHUNK_ROWS = (1024, 16384)  # bounds of the chunk size a config does not set
COUNTS_CHUNK_ROWS = 65536  # the largest of them for a chunk that holds counts alone
#: arrays as large as the data that a scenario with its own data holds at once: the raw values,
#: masked, imputed, transformed and normalised, with the temporaries of each step (growth
#: imputation with z-scores or Borda counts held the most: 18 copies, measured by tracemalloc)
DATA_COPIES = 24
AGREEMENT_GRID = 10_000  # histogram bins per unit of rank correlation: quantiles to +/- 0.00005
AGREEMENT_BINS = 2 * AGREEMENT_GRID + 1  # the grid -1, -0.9999, ..., 1
_ENGINES: dict[str, Engine] = {}


@dataclass
class Study:
    """Everything a worker needs to evaluate chunks (picklable)."""

    token: str
    spec: IndexSpec
    tables: tuple[IndicatorTable, ...]
    factors: FactorSet
    design: Design
    ties: str
    nominal_ranks: np.ndarray  # (years, units)
    nominal_scores: np.ndarray  # (years, units, aggregates)
    rescale_scores: (
        bool  # normalisations of different scales are mixed: compare on the nominal scale
    )
    n_tiers: int
    region_codes: np.ndarray  # (units,) index into region names, -1 if none
    n_regions: int
    gdp: np.ndarray | None  # (units,), NaN where unknown
    kept_samples: int  # the first base samples keep their scores (see kept_base_samples)
    parent_pid: int = field(default_factory=os.getpid)  # the run's process (workers die with it)

    @functools.cached_property
    def batch_rows(self) -> int:
        """The most scenarios the engine evaluates at once (see :func:`planned_batch_rows`)."""
        return planned_batch_rows(
            self.tables[0].values.shape, len(self.spec.aggregates), self.factors.per_scenario_data
        )

    @functools.cached_property
    def gdp_known_and_high(self) -> tuple[np.ndarray, np.ndarray]:
        """Which units have a GDP per capita, and which one above the mean (once, not per
        chunk: ``nanmean`` holds the interpreter for tens of microseconds)."""
        assert self.gdp is not None
        return ~np.isnan(self.gdp), self.gdp > np.nanmean(self.gdp)

    def region_means(self, index: np.ndarray) -> np.ndarray:
        """Mean index score of each region, (..., units) -> (..., regions); units without a region
        left out."""
        membership = np.zeros((len(self.region_codes), self.n_regions))
        has_region = self.region_codes >= 0
        membership[np.flatnonzero(has_region), self.region_codes[has_region]] = 1.0
        weights = membership / np.maximum(membership.sum(axis=0), 1.0)
        # one 2-D product: numpy's stacked products of tiny matrices are slow
        means = index.reshape(-1, index.shape[-1]) @ weights
        return means.reshape(*index.shape[:-1], self.n_regions)  # not -1: no rows may be kept

    def engine(self) -> Engine:
        if self.token not in _ENGINES:
            if os.getpid() != self.parent_pid:  # a dask worker: its parent is the nanny
                die_with_parent()
            retain_freed_memory()
            _ENGINES.clear()
            _ENGINES[self.token] = Engine(self.spec, self.tables, self.ties)
        return _ENGINES[self.token]


@dataclass
class ChunkStats:
    """Statistics of one chunk (counts summed, row arrays concatenated in order when merged)."""

    rank_counts: np.ndarray  # (years, units, ranks)
    tier_counts: np.ndarray  # (years, units, tiers)
    quadrant_counts: np.ndarray  # (years, units, 4)
    shift_counts: np.ndarray  # (cells x (units - 1) + 1,): total absolute rank shift (R_S x cells)
    agreement_counts: np.ndarray  # (years, 2, AGREEMENT_BINS): Spearman's rho, Kendall's tau-b
    scores: np.ndarray  # (kept, years, units, aggregates): float32 differences from the nominal
    region_means: np.ndarray  # (kept, years, regions): float32 differences from the nominal
    outputs: np.ndarray  # every row of a Saltelli design, its Sobol outputs: last-year ranks,
    # index scores (on the nominal scale when normalisation varies), R_S (2 units + 1); merged
    # into rows A and B, their ranks and R_S only (see ``monitored``), when the study has Sobol
    # sums. The kept rows of a Monte Carlo design: ranks and R_S (units + 1), as float32

    def save(self, path: Path, key: str) -> None:
        """Write the chunk, its counts in the smallest unsigned type that holds them (a fine
        histogram is mostly zeros: a quarter or an eighth of the bytes to write and check)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in COUNT_FIELDS:
            arrays[name] = arrays[name].astype(np.min_scalar_type(arrays[name].max(initial=0)))
        save_arrays(path, arrays, key)

    @classmethod
    def load(cls, path: Path, key: str, layout: Layout) -> ChunkStats | None:
        """The chunk saved at ``path`` under ``key``, or None if it is damaged, truncated,
        foreign or not of the ``layout`` (:func:`chunk_layout`) its span must have."""
        arrays = load_arrays(path, layout, key)
        if arrays is None:
            return None
        for name in COUNT_FIELDS:
            arrays[name] = arrays[name].astype(np.int64)
        return cls(**arrays)

    def consistent(self, counted: int) -> bool:
        """Whether the counts are those of ``counted`` scenarios: each unit-year's ranks and tiers
        counted once per scenario, each scenario's total rank shift once, the quadrants once or
        never (a unit without GDP per capita) and at most one correlation per scenario (what a
        chunk file rebuilt by hand with a valid digest could break)."""
        quadrants = self.quadrant_counts.sum(axis=-1)
        return bool(
            (self.rank_counts.sum(axis=-1) == counted).all()
            and (self.tier_counts.sum(axis=-1) == counted).all()
            and self.shift_counts.sum() == counted
            and ((quadrants == counted) | (quadrants == 0)).all()
            and (self.agreement_counts.sum(axis=-1) <= counted).all()
        )


#: the layout of a chunk file (its arrays and columns): a resume does not mix layouts
CHUNK_LAYOUT = 5
COUNT_FIELDS = tuple(f.name for f in fields(ChunkStats) if f.name.endswith("counts"))
ROW_FIELDS = tuple(f.name for f in fields(ChunkStats) if not f.name.endswith("counts"))


def batch_for_rows(study: Study, u: np.ndarray) -> ScenarioBatch:
    """Decode design rows into a scenario batch, one pipeline per distinct combination of
    choices (each scenario's table apart: see ``ScenarioBatch.datasets``)."""
    decoded = study.factors.decode(u)
    combinations, index = _distinct_rows(decoded.choice_index)
    pipelines = tuple(study.factors.pipeline(c) for c in combinations)
    return ScenarioBatch(
        pipelines,
        index,
        tuple(decoded.weight_factors),
        decoded.value_factors,
        decoded.masked,
        decoded.datasets,
    )


def _distinct_rows(choices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a non-negative integer matrix (in lexicographic order) and each row's index
    among them: rows are coded as one mixed-radix integer, so this is a 1-D ``unique``."""
    if (choices == choices[:1]).all():  # one pipeline, as in a weights-only run
        return choices[:1], np.zeros(len(choices), dtype=np.int64)
    radix = choices.max(axis=0, initial=0) + 1
    if np.sum(np.log2(radix)) > 62:  # too many combinations to code in an int64
        distinct, index = np.unique(choices, axis=0, return_inverse=True)
        return distinct, index.ravel()
    place = np.cumprod(np.concatenate([radix[1:], [1]])[::-1])[::-1]
    codes, index = np.unique(choices @ place, return_inverse=True)
    distinct = np.stack([codes // p % r for p, r in zip(place, radix, strict=True)], axis=1)
    return distinct, index.ravel()


def evaluate_rows(study: Study, start: int, stop: int) -> ChunkStats:
    """Evaluate design rows ``[start, stop)`` in batches of at most ``study.batch_rows`` and
    reduce them to the chunk's statistics."""
    tally = ChunkTally(study)
    for first in range(start, stop, study.batch_rows):
        last = min(first + study.batch_rows, stop)
        batch = batch_for_rows(study, study.design.rows(first, last))
        result = study.engine().evaluate(batch)
        if study.rescale_scores:
            result = thresholds_on_nominal_scale(study, batch, result)
        tally.add(result, first, last)
    return tally.stats()


def thresholds_on_nominal_scale(
    study: Study, batch: ScenarioBatch, result: BatchResult
) -> BatchResult:
    """Tiers by score thresholds when the normalisation varies: the thresholds are on the nominal
    scale, so the index of a scenario normalised otherwise is first mapped onto it
    (:func:`on_nominal_scale`); under z-scores, say, the raw scores would all fall in the lowest
    tier. A scenario whose indicators are normalised as the nominal run's (the metadata may fix
    some or all of them) is on that scale already: its own scores are cut, as the paper's method
    cuts them. (Score bands map every scenario: they compare standing among the units, so a band
    can clear a threshold that some scenarios' own scores do not; the run notes it.) Tiers by rank
    or by natural breaks are unchanged by such a map."""
    rules = [pipeline.tiers for pipeline in batch.pipelines]
    cut_by_score = {rule for rule in rules if rule.scheme == "score_thresholds"}
    if not cut_by_score:
        return result
    nominal = normalisation_methods(study.factors.nominal, study.spec)
    elsewhere = np.array([normalisation_methods(p, study.spec) != nominal for p in batch.pipelines])
    mapped = on_nominal_scale(result.index[..., None], study.nominal_scores[..., -1:])[..., 0]
    index = np.where(elsewhere[batch.pipeline_index, None, None], mapped, result.index)
    tiers = result.tiers.copy()
    for rule in cut_by_score:
        members = np.isin(batch.pipeline_index, [k for k, r in enumerate(rules) if r == rule])
        tiers[members] = rule.assign(index[members], result.ranks[members])
    return dataclasses.replace(result, tiers=tiers)


def on_nominal_scale(scores: np.ndarray, nominal: np.ndarray) -> np.ndarray:
    """Map each scenario's scores affinely so that their mean and standard deviation across units
    equal the nominal ones (per year and aggregate): z-scores, percentile ranks and min-max scores
    become comparable, and no unit is pinned to a fixed value. Parts left missing for some units
    (aggregation without imputation) are mapped by the units observed."""
    missing = np.isnan(scores).any() or np.isnan(nominal).any()
    mean, std = (np.nanmean, np.nanstd) if missing else (np.mean, np.std)
    with warnings.catch_warnings():  # a part missing for every unit stays missing
        warnings.simplefilter("ignore", RuntimeWarning)
        sd, target_sd = (std(x, axis=-2, keepdims=True) for x in (scores, nominal))
        mean, target_mean = (mean(x, axis=-2, keepdims=True) for x in (scores, nominal))
    return target_mean + (scores - mean) / np.where(sd > 0, sd, 1.0) * target_sd


class ChunkTally:
    """A chunk's statistics, batch by batch: its counts (a year's units x ranks among them)
    allocated once and added to in place, its row arrays collected in design order. A chunk is
    the unit of a file for ``--resume``; a batch, the scenarios the engine evaluates at once, is
    as large as memory allows: for a large index a chunk of several batches pays its histograms,
    their file and their merge once, not once per batch."""

    def __init__(self, study: Study):
        n_years, n_units = study.nominal_ranks.shape
        cells = n_years * n_units
        self.study = study
        self.rank_counts = np.zeros((cells, n_units), dtype=np.int64)
        self.tier_counts = np.zeros((cells, study.n_tiers), dtype=np.int64)
        self.shift_counts = np.zeros(cells * (n_units - 1) + 1, dtype=np.int64)
        self.agreement_counts = np.zeros((n_years, 2, AGREEMENT_BINS), dtype=np.int64)
        self.above_mean = np.zeros(cells, dtype=np.int64)  # for the quadrants
        self.counted = 0
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in ROW_FIELDS}

    def add(self, result: BatchResult, start: int, stop: int) -> None:
        """Add the results of design rows ``[start, stop)``: histograms for all uncertainty rows,
        compact arrays for the rest."""
        study = self.study
        n_rows, n_years, n_units = result.ranks.shape
        uncertain = study.design.uncertainty_rows(start, stop)
        positions = np.flatnonzero(uncertain)
        kept = slice(kept_count(study, start, positions))  # a view: no copy of the scores
        selected = slice(None) if positions.size == n_rows else positions
        ranks = result.ranks.reshape(n_rows, n_years * n_units)
        tiers = np.ascontiguousarray(result.tiers.reshape(ranks.shape))
        nominal = study.nominal_ranks.ravel()
        shift_totals = tally_ranks(
            ranks, tiers, nominal, uncertain, self.rank_counts, self.tier_counts, self.shift_counts
        )
        # NaN where not counted: binned as undefined
        agreement = rank_agreement(ranks, nominal, n_units, uncertain)
        bin_correlations(agreement, AGREEMENT_GRID, self.agreement_counts)
        self.counted += positions.size
        scores = result.scores[selected]
        if study.rescale_scores:
            scores = on_nominal_scale(scores, study.nominal_scores)
        if study.gdp is not None:
            # the index mean is over every unit, as the paper's Figure 3 has it (a unit without
            # GDP per capita still counts towards the mean, though it sits in no quadrant)
            count_above_mean(
                np.ascontiguousarray(scores[..., -1]),
                np.full(n_units, 1 / n_units),
                self.above_mean,
            )  # a copy: counting on the strided view took 2-3 times as long as copying and counting
        saltelli = study.design.method == "saltelli"
        output_rows = slice(None) if saltelli else positions[kept]
        outputs = [ranks[output_rows, -n_units:], shift_totals[output_rows, None] / ranks.shape[1]]
        if saltelli:  # the Sobol outputs also hold the index scores
            index = result.index[:, -1]
            if study.rescale_scores:  # comparable across normalisations (see on_nominal_scale)
                nominal_index = study.nominal_scores[-1:, :, -1:]
                index = on_nominal_scale(index[:, :, None], nominal_index)[:, :, 0]
            outputs.insert(1, index)
        kept_scores = scores[kept]
        self.rows["scores"].append((kept_scores - study.nominal_scores).astype(np.float32))
        self.rows["region_means"].append(
            study.region_means(kept_scores[..., -1] - study.nominal_scores[..., -1]).astype(
                np.float32
            )
        )
        self.rows["outputs"].append(
            np.hstack(outputs, dtype=np.float64 if saltelli else np.float32)
        )

    def stats(self) -> ChunkStats:
        """The chunk's statistics."""
        n_years, n_units = self.study.nominal_ranks.shape
        quadrant_counts = np.zeros((n_years, n_units, 4), dtype=np.int64)
        if self.study.gdp is not None:
            known, high_gdp = self.study.gdp_known_and_high
            above = self.above_mean.reshape(n_years, n_units)
            below = self.counted - above
            # quadrants in the order of analysis.quadrants: high/high, high/low, low/high, low/low
            quadrant_counts[...] = np.stack(
                [above * high_gdp, above * ~high_gdp, below * high_gdp, below * ~high_gdp], axis=-1
            )
            quadrant_counts[:, ~known] = 0
        rows = {
            name: parts[0] if len(parts) == 1 else np.concatenate(parts)
            for name, parts in self.rows.items()
        }
        return ChunkStats(
            rank_counts=self.rank_counts.reshape(n_years, n_units, n_units),
            tier_counts=self.tier_counts.reshape(n_years, n_units, self.study.n_tiers),
            quadrant_counts=quadrant_counts,
            shift_counts=self.shift_counts,
            agreement_counts=self.agreement_counts,
            **rows,
        )


def monitored(outputs: np.ndarray) -> np.ndarray:
    """The columns of Sobol outputs (ranks, index scores, R_S) that the convergence check reads
    and a Monte Carlo design keeps: ranks and R_S."""
    n_units = outputs.shape[1] // 2
    return np.delete(outputs, np.s_[n_units:-1], axis=1)


def kept_count(study: Study, start: int, positions: np.ndarray) -> int:
    """How many of a chunk's uncertainty rows (``positions`` from ``start``, ascending) keep their
    scores: those of the design's first ``kept_samples`` base samples, by their own row numbers,
    so the same whatever the chunking; always the first ones."""
    design = study.design
    rows = start + positions
    sample = rows // (len(design.factor_names) + 2) if design.method == "saltelli" else rows
    return int(np.searchsorted(sample, study.kept_samples))


def kept_base_samples(n_samples: int, per_sample: int, kept: int) -> int:
    """How many base samples, of ``per_sample`` uncertainty rows each, keep their scores, for
    ``kept`` scenarios at most: all, or the first power of two of them. A prefix of a scrambled
    Sobol sequence whose length is a power of two is itself a net, balanced in every column
    (every k-th point is not: with k = 2 a whole column lies in one half), and one of a random
    design is a random sample."""
    if kept >= n_samples * per_sample:
        return n_samples
    return 1 << max(0, (kept // per_sample).bit_length() - 1)


def row_counts(study: Study, start: int, stop: int) -> dict[str, int]:
    """How many rows each row array of a chunk's statistics holds (see :class:`ChunkStats`)."""
    positions = np.flatnonzero(study.design.uncertainty_rows(start, stop))
    kept = kept_count(study, start, positions)
    outputs = stop - start if study.design.method == "saltelli" else kept
    return {"scores": kept, "region_means": kept, "outputs": outputs}


def chunk_layout(study: Study, start: int, stop: int) -> Layout:
    """The shape and type of each array of the statistics of rows ``[start, stop)``, as
    :class:`ChunkTally` makes them and :meth:`ChunkStats.save` writes them (counts in the smallest
    unsigned type that holds them)."""
    n_years, n_units, n_aggregates = study.nominal_scores.shape
    rows = row_counts(study, start, stop)
    saltelli = study.design.method == "saltelli"
    return {
        "rank_counts": ((n_years, n_units, n_units), "unsigned"),
        "tier_counts": ((n_years, n_units, study.n_tiers), "unsigned"),
        "quadrant_counts": ((n_years, n_units, 4), "unsigned"),
        "shift_counts": ((n_years * n_units * (n_units - 1) + 1,), "unsigned"),
        "agreement_counts": ((n_years, 2, AGREEMENT_BINS), "unsigned"),
        "scores": ((rows["scores"], n_years, n_units, n_aggregates), "float32"),
        "region_means": ((rows["region_means"], n_years, study.n_regions), "float32"),
        "outputs": (
            (rows["outputs"], 2 * n_units + 1 if saltelli else n_units + 1),
            "float64" if saltelli else "float32",
        ),
    }


def _evaluate_span(
    study: Study, start: int, stop: int, work: Path | None, token: str
) -> tuple[int, ChunkStats]:
    """Evaluate one span and save it under ``work`` (for ``--resume``), unless ``work`` is None;
    the statistics also go straight back."""
    stats = evaluate_rows(study, start, stop)
    if work is not None:
        stats.save(chunk_path(work, start), chunk_key(token, start, stop))
    return start, stats


def kept_scenarios(n_uncertain: int, scenario_bytes: int) -> int:
    """How many of ``n_uncertain`` scenarios keep their scores (``scenario_bytes`` each): at most
    ``MAX_KEPT_SCORES``, and within ``KEPT_SCORES_BYTES`` unless that leaves fewer than
    ``MIN_KEPT_SCORES`` (3,000 units: 7,456 scenarios of 72 KB)."""
    fitting = max(MIN_KEPT_SCORES, KEPT_SCORES_BYTES // max(scenario_bytes, 1))
    return max(1, min(n_uncertain, MAX_KEPT_SCORES, fitting))


@dataclass(frozen=True)
class Chunking:
    """How a design is cut into chunks (the unit of a ``--resume`` file, of the counts and of the
    merge), in order: chunks of ``rows`` (the configured size, by default
    :func:`default_chunk_rows` up to ``COUNTS_CHUNK_ROWS``), except that the chunks over the
    design's first
    ``holding_until`` rows, which keep rows of statistics (kept scores; every row of a Saltelli
    design, its outputs), have ``holding_rows``, lowered so that those rows stay within
    ``CHUNK_MEMORY``. A later chunk holds counts alone and keeps the whole size: for a large
    index each chunk's units x ranks counts are allocated, written and merged, and 3,000 units
    at 10^5 scenarios made 60 chunks of 1,677 rows, 36 MB of counts each on disk. It depends on
    the design and the config alone, so a resume with other workers finds the chunks it wrote;
    results do not depend on it."""

    n_rows: int
    rows: int
    holding_rows: int
    holding_until: int

    @classmethod
    def plan(
        cls, requested: int | None, n_rows: int, saltelli: bool, kept_samples: int, row_bytes: int
    ) -> Chunking:
        """The chunks of a design of ``n_rows``, ``requested`` rows each (None: the default),
        whose rows keep ``row_bytes`` each (see :func:`chunk_row_bytes`): every row of a
        Saltelli design, else those of its first ``kept_samples`` (see :func:`kept_count`)."""
        rows, holding = (
            (default_chunk_rows(n_rows, COUNTS_CHUNK_ROWS), default_chunk_rows(n_rows))
            if requested is None
            else (requested, requested)
        )
        holding_rows = max(1, min(holding, CHUNK_MEMORY // row_bytes))
        return cls(n_rows, rows, holding_rows, n_rows if saltelli else kept_samples)

    @classmethod
    def of(cls, study: Study, requested: int | None) -> Chunking:
        """The chunks of a study's design."""
        n_years, n_units, n_aggregates = study.nominal_scores.shape
        design = study.design
        row_bytes = chunk_row_bytes(n_years, n_units, n_aggregates, study.n_regions)
        saltelli = design.method == "saltelli"
        return cls.plan(requested, design.n_rows, saltelli, study.kept_samples, row_bytes)

    @property
    def _holding_end(self) -> int:
        """Where the chunks of ``holding_rows`` end."""
        chunks = -(-min(self.holding_until, self.n_rows) // self.holding_rows)
        return min(chunks * self.holding_rows, self.n_rows)

    def spans(self) -> list[tuple[int, int]]:
        """Each chunk's ``(start, stop)`` rows, in design order."""
        end = self._holding_end
        return [
            (start, min(start + size, self.n_rows))
            for starts, size in (
                (range(0, end, self.holding_rows), self.holding_rows),
                (range(end, self.n_rows, self.rows), self.rows),
            )
            for start in starts
        ]

    @property
    def count(self) -> int:
        """How many chunks there are."""
        return len(self.spans())

    @property
    def longest(self) -> int:
        """The rows of the longest chunk (a Saltelli design's are all lowered: none is ``rows``
        long)."""
        end = self._holding_end
        holding = min(self.holding_rows, end)
        return max(holding, min(self.rows, self.n_rows - end))


def planned_batch_rows(shape: tuple[int, ...], n_aggregates: int, per_scenario_data: bool) -> int:
    """The most scenarios the engine evaluates at once, for data of ``shape`` (years, units,
    indicators). Their arrays stay within ``CHUNK_MEMORY`` per worker: under noise or masks
    every scenario carries its own copy of the data (and its imputed, transformed and normalised
    versions), which on large data sets would otherwise exhaust memory. And each array stays
    within ``HEAP_ARRAY_BYTES``, under the allocator's mmap threshold (see
    :mod:`~nqpf_sens.uncertainty.memory`): a larger one is mapped and unmapped batch after
    batch, its pages faulted in anew each time (3,000 units: batches of 838 scenarios spent a
    quarter of the engine's time faulting pages in)."""
    rows = shape[0] * shape[1]
    largest = 8 * max(rows * n_aggregates, int(np.prod(shape)) if per_scenario_data else 0)
    per_scenario = per_scenario_bytes(shape, n_aggregates, per_scenario_data)
    return max(1, min(CHUNK_MEMORY // per_scenario, HEAP_ARRAY_BYTES // largest))


def chunk_row_bytes(n_years: int, n_units: int, n_aggregates: int, n_regions: int) -> int:
    """The most bytes one row of a chunk's statistics holds: a kept scenario's float32 scores and
    region means, and a row of Sobol outputs (float64 ranks, index scores and R_S)."""
    return 4 * n_years * (n_units * n_aggregates + n_regions) + 8 * (2 * n_units + 1)


def default_chunk_rows(n_rows: int, largest: int = DEFAULT_CHUNK_ROWS[1]) -> int:
    """The chunk size when the config sets none: an eighth of the design (chunks enough for the
    workers to share), within ``DEFAULT_CHUNK_ROWS``, or up to ``largest``. Each chunk has costs
    of its own (a file for ``--resume``, the histograms, the merge: 1-3 ms; for a large index,
    units x ranks counts), so large chunks make a large study faster; a stopped run loses at
    most its workers' unfinished chunks. Chunks that hold rows as well (kept scores, Sobol
    outputs) hold them until merged, one per worker: those stay within the smaller bound, and
    only chunks of counts alone take ``COUNTS_CHUNK_ROWS`` (a weights-only study of 10^6
    scenarios spent 110-120 ns a scenario on chunk files at 16,384 rows, 51-56 with its later
    chunks at 65,536; a 20-factor Sobol study with chunks of 45,056 rows peaked 230 MiB higher).
    It depends on the design alone, so a resume with other workers finds the chunks it wrote."""
    return min(largest, max(DEFAULT_CHUNK_ROWS[0], -(-n_rows // 8)))


def per_scenario_bytes(shape: tuple[int, ...], n_aggregates: int, per_scenario_data: bool) -> int:
    """Bytes one scenario of a batch occupies while it is evaluated and tallied, for data of
    ``shape`` (years, units, indicators): an upper bound, tested against what numpy allocates."""
    rows = shape[0] * shape[1]
    # the batch's scores and a group's (its rows padded), ranks, tiers and the groups' copies of
    # them; past the counting limit also the index's contiguous copy and order that numpy sorts
    per_scenario = 8 * rows * (2 * n_aggregates + 4 + 2 * sorts_ranks(shape[1]))
    # the check of scores that are not numbers (under a data threshold, where a node below the
    # index may be missing): flags and a copy of the scores below the index, 12 bytes a score
    per_scenario += 12 * rows * n_aggregates
    per_scenario += 8 * (ROW_STEP - 1) * n_aggregates
    per_scenario += 8 * 4 * (shape[2] + n_aggregates)  # weights: factors, scheme, group, kernel
    # a copy of its leaves, where groups of one matrix would be small (see engine.batch)
    cells = int(np.prod(shape))
    per_scenario += 8 * cells
    if per_scenario_data:
        per_scenario += 8 * cells * DATA_COPIES
    return per_scenario


def run_study(
    study: Study,
    work: Path | None,
    chunk_size: int | None,
    jobs: int,
    backend: str,
    scheduler: str | None,
    resume: bool,
    progress: bool,
    say=print,
    sobol: SobolSums | None = None,
) -> ChunkStats:
    """Evaluate every design row in chunks (skipping those a resumed run already has) and merge;
    with ``work`` None no chunk file is written. With ``sobol`` (a Saltelli design's sums) every
    chunk's outputs are added to it and only rows A and B are kept.

    Counts are summed as chunks finish, so memory holds one chunk's histograms per worker; row
    arrays are merged in design order (chunks already on disk in their turn), as the Sobol sums
    must be."""
    wait_for_kernels()
    retain_freed_memory()  # before the workers allocate: see the memory module
    chunking = Chunking.of(study, chunk_size)
    # chunk files are only reused for the same spans, written in the same layout
    token = f"{study.token}-{chunking.holding_rows}-{chunking.rows}-{CHUNK_LAYOUT}"
    spans = chunking.spans()
    with _Workers(resolved_backend(backend, jobs, study.factors), scheduler, jobs) as workers:
        found, note = prepare_work(work, token, resume) if work is not None else (set(), None)
        if note:
            say(f"note: {note}")
        stored = found & {start for start, _ in spans}  # read in their turn, not before
        totals: dict[str, np.ndarray] = {}  # counts, summed as chunks finish
        rows = _RowArrays(study, spans, sobol)

        def add(start: int, stats: ChunkStats) -> None:
            rows.place(start, stats)
            for name in COUNT_FIELDS:
                if name in totals:
                    totals[name] += getattr(stats, name)
                else:
                    totals[name] = getattr(stats, name).copy()

        waiting = deque(spans)  # in design order, until merged

        def add_stored_before(limit: float) -> None:
            """Merge the chunks on disk before ``limit``; one that is damaged, truncated or
            foreign is evaluated again, here."""
            while waiting and waiting[0][0] < limit:
                start, stop = waiting.popleft()
                if start in stored:
                    loaded = _load(study, work, token, start, stop)
                    add(*(loaded or _evaluate_span(study, start, stop, work, token)))

        todo = [(a, b) for a, b in spans if a not in stored]
        finished = workers.chunks(study, todo, work, token)  # forks before the bar's thread
        bar = _progress_bar(len(spans), len(stored), progress)
        for start, stats in finished:  # in the order of todo
            add_stored_before(start)
            expected, _ = waiting.popleft()
            assert expected == start, "the workers returned chunks out of order"
            add(start, stats)
            if bar is not None:
                bar.update(1)
        add_stored_before(np.inf)
    if bar is not None:
        bar.close()
    return ChunkStats(**totals, **rows.arrays)


def _load(
    study: Study, work: Path | None, token: str, start: int, stop: int
) -> tuple[int, ChunkStats] | None:
    """A chunk saved by an earlier run, or None if it is missing, damaged, foreign or holds
    counts no span of its rows gives."""
    if work is None:
        return None
    stats = ChunkStats.load(
        chunk_path(work, start), chunk_key(token, start, stop), chunk_layout(study, start, stop)
    )
    counted = int(study.design.uncertainty_rows(start, stop).sum())
    return None if stats is None or not stats.consistent(counted) else (start, stats)


class _RowArrays:
    """The merged row arrays of a study, allocated once its first chunk shows their types, each
    chunk's rows copied into their place in design order as the chunk finishes: the chunks' own
    arrays are freed at once, not held until a final concatenation (which doubled the peak of a
    large Sobol study). With Sobol sums, each chunk's outputs go to them (in design order) and
    only rows A and B are kept."""

    def __init__(self, study: Study, spans: list[tuple[int, int]], sobol: SobolSums | None):
        self.design, self.sobol = study.design, sobol
        counts = [row_counts(study, start, stop) for start, stop in spans]
        if sobol is not None:
            for count, (start, stop) in zip(counts, spans, strict=True):
                count["outputs"] = int(self.design.uncertainty_rows(start, stop).sum())
        self.spans = dict(spans)
        self.index = {start: i for i, (start, _) in enumerate(spans)}
        self.offsets = {
            name: np.cumsum([0] + [count[name] for count in counts]) for name in ROW_FIELDS
        }
        self.arrays: dict[str, np.ndarray] = {}

    def place(self, start: int, stats: ChunkStats) -> None:
        i = self.index[start]
        for name, offsets in self.offsets.items():
            part = getattr(stats, name)
            if name == "outputs" and self.sobol is not None:
                self.sobol.add(part, start)
                part = monitored(part[self.design.uncertainty_rows(start, self.spans[start])])
            if name not in self.arrays:
                shape = (offsets[-1], *part.shape[1:])
                self.arrays[name] = np.empty(shape, dtype=part.dtype)
            self.arrays[name][offsets[i] : offsets[i + 1]] = part


def _progress_bar(total: int, initial: int, enabled: bool):
    import sys

    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="chunk", file=sys.stderr, desc="scenarios")


DASK_TIMEOUT = 10  # seconds a dask scheduler has to answer


def resolved_backend(backend: str, jobs: int, factors: FactorSet) -> str:
    """The backend ``auto`` stands for: forked copies of this process where scenarios differ in
    more than their weights (choices, tables, noise and masks are prepared by numpy on small
    arrays, Python work that threads take turns at), on Linux, with several workers and no
    other thread in this process (a fork copies no thread, so a lock another one holds would
    stay locked in the copy); threads otherwise, whose compiled kernels release the GIL."""
    if backend != "auto":
        return backend
    forkable = sys.platform.startswith("linux") and threading.active_count() == 1
    return "fork" if forkable and jobs > 1 and not factors.weights_alone else "threading"


class _Workers:
    """The workers of a study: joblib's threads or loky processes, a dask cluster (started, or
    reached at ``scheduler``), or forked copies of this process; :meth:`chunks` evaluates spans
    with them."""

    def __init__(self, name: str, scheduler: str | None, jobs: int):
        self.name, self.scheduler, self.jobs = name, scheduler, jobs
        self.client = self.cluster = self.config = None
        self.pool: ForkedPool | None = None
        self.results: Iterator | None = None  # joblib's generator of results

    def chunks(
        self, study: Study, todo: list[tuple[int, int]], work: Path | None, token: str
    ) -> Iterator[tuple[int, ChunkStats]]:
        """(start, statistics) of each span of ``todo``, in that order."""
        if not todo:  # a resumed run whose chunks are all on disk: no worker to start
            return iter(())
        if self.name == "fork":
            evaluate = functools.partial(_evaluate_forked, study, work=work, token=token)
            pool = self.pool = ForkedPool(evaluate, self.jobs)
            return pool.map(todo)
        from joblib import Parallel, delayed

        parallel = Parallel(
            return_as="generator", **({} if self.name == "dask" else {"n_jobs": self.jobs})
        )
        self.results = parallel(delayed(_evaluate_span)(study, a, b, work, token) for a, b in todo)
        return self.results

    def __enter__(self):
        if self.name == "fork":
            return self
        from joblib import parallel_config

        if self.name == "dask":
            from distributed import Client, LocalCluster

            if self.scheduler is None:
                self.cluster = LocalCluster(
                    n_workers=self.jobs,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    # its web server (health, metrics) stays on: on a free port, not on 8787,
                    # where another cluster or dashboard made it warn, on the run's screen
                    scheduler_kwargs={"dashboard_address": ":0"},
                    silence_logs=logging.CRITICAL,  # its failures reach the run, which says them
                )
            try:
                self.client = Client(self.scheduler or self.cluster, timeout=f"{DASK_TIMEOUT}s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise UserError(
                    f"no dask scheduler answered at {self.scheduler!r} "
                    f"within {DASK_TIMEOUT} s ({type(exc).__name__})",
                    where="[run] scheduler",
                ) from None
        if self.name == "loky":
            quiet_resource_tracker()
        # a loky worker dies with the run from its start, not from its first task: a worker
        # still idle when the run is killed would otherwise live on (and the trackers with it)
        start = (
            {"initializer": die_with_parent, "initargs": (os.getpid(),)}
            if self.name == "loky"
            else {}
        )
        self.config = parallel_config(backend=self.name, **start)
        self.config.__enter__()
        return self

    def __exit__(self, kind, *exc):
        if kind is not None and self.client is not None:
            # the run reports the stop in one line; dask's client and scheduler would log the
            # tasks it cancels, in tracebacks, as they close
            for name in ("distributed", "tornado"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        if self.pool is not None:
            self.pool.__exit__(kind, *exc)
        if kind is not None and isinstance(self.results, Generator):
            with warnings.catch_warnings():  # joblib's count of the results left unread
                warnings.simplefilter("ignore", UserWarning)
                self.results.close()
        if self.config is not None:
            self.config.__exit__(kind, *exc)
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


#: the warnings of loky's resource tracker, a process of its own that writes to the run's screen
TRACKER_WARNINGS = "ignore::UserWarning:joblib.externals.loky.backend.resource_tracker"


def quiet_resource_tracker() -> None:
    """Keep loky's resource tracker from warning, when a stop ends workers that held semaphores,
    about "leaked semlock objects" it then finds gone (the run says the stop, in one line; a
    stopped loky run added four lines about one time in fifty under load). The tracker reads
    ``PYTHONWARNINGS`` as it starts, so this comes before loky starts it; other processes of the
    run only lose warnings of that module."""
    filters = os.environ.get("PYTHONWARNINGS", "")
    if TRACKER_WARNINGS not in filters.split(","):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [filters, TRACKER_WARNINGS]))


def _evaluate_forked(
    study: Study, span: tuple[int, int], work: Path | None, token: str
) -> tuple[int, ChunkStats]:
    return _evaluate_span(study, *span, work, token)
