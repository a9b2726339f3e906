"""The batched runner: design rows -> scenarios -> engine -> per-chunk statistics, in parallel.

Each chunk of design rows is decoded into a :class:`ScenarioBatch` and evaluated at once. What can
be accumulated is accumulated (rank and tier histograms: ranks are integers, so rank quantiles are
exact from counts; quadrant counts); what the estimators need row by row is kept compactly (float32
scores of a systematic subsample for score bands, region means, the Sobol outputs). Chunks are
independent and written to a work folder, so results do not depend on the number of workers and an
interrupted run can resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from nqpf_sens.engine import BatchResult, Engine, ScenarioBatch
from nqpf_sens.errors import UserError
from nqpf_sens.factors import FactorSet
from nqpf_sens.sampling import Design
from nqpf_sens.spec import IndexSpec
from nqpf_sens.table import IndicatorTable

MAX_KEPT_SCORES = 1 << 17  # scenarios whose scores are kept for score bands (float32)
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
    rescale_scores: bool  # normalisations of different scales are mixed: compare on the nominal scale
    n_tiers: int
    region_codes: np.ndarray  # (units,) index into region names, -1 if none
    n_regions: int
    gdp: np.ndarray | None  # (units,), NaN where unknown
    keep_stride: int

    def region_means(self, index: np.ndarray) -> np.ndarray:
        """Mean index score of each region, (..., units) -> (..., regions); units without a region left out."""
        membership = np.zeros((len(self.region_codes), self.n_regions))
        has_region = self.region_codes >= 0
        membership[np.flatnonzero(has_region), self.region_codes[has_region]] = 1.0
        return index @ (membership / np.maximum(membership.sum(axis=0), 1.0))

    def engine(self) -> Engine:
        if self.token not in _ENGINES:
            _ENGINES.clear()
            _ENGINES[self.token] = Engine(self.spec, self.tables, self.ties)
        return _ENGINES[self.token]


@dataclass
class ChunkStats:
    """Statistics of one chunk (counts summed, arrays concatenated when merged)."""

    rank_counts: np.ndarray  # (years, units, ranks)
    tier_counts: np.ndarray  # (years, units, tiers)
    quadrant_counts: np.ndarray  # (years, units, 4)
    scores: np.ndarray  # (kept, years, units, aggregates) float32
    rank_shift: np.ndarray  # (uncertainty rows,) R_S
    moved: np.ndarray  # (uncertainty rows, 3): share of units moving < 1, 3, 5 places
    region_means: np.ndarray  # (uncertainty rows, years, regions)
    outputs: np.ndarray  # (rows, 2 units + 1): last-year ranks, index scores, R_S (every row of a
    # Saltelli design; the kept rows of a Monte Carlo design, as float32)

    @classmethod
    def merge(cls, parts: list["ChunkStats"]) -> "ChunkStats":
        merged = {}
        for f in fields(cls):
            arrays = [getattr(p, f.name) for p in parts]
            merged[f.name] = sum(arrays[1:], arrays[0]) if "counts" in f.name else np.concatenate(arrays)
        return cls(**merged)

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp.npz")
        np.savez(temporary, **{f.name: getattr(self, f.name) for f in fields(self)})
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> "ChunkStats":
        with np.load(path) as data:
            return cls(**{f.name: data[f.name] for f in fields(cls)})


def _bincount(index: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.bincount(index.ravel(), minlength=int(np.prod(shape))).reshape(shape)


def batch_for_rows(study: Study, u: np.ndarray) -> ScenarioBatch:
    """Decode design rows into a scenario batch, one pipeline per distinct combination of choices."""
    decoded = study.factors.decode(u)
    combinations, index = np.unique(decoded.choice_index, axis=0, return_inverse=True)
    pipelines = tuple(study.factors.pipeline(c) for c in combinations)
    return ScenarioBatch(pipelines, index.ravel(), tuple(decoded.weight_factors), decoded.value_factors, decoded.masked)


def evaluate_rows(study: Study, start: int, stop: int) -> ChunkStats:
    """Evaluate design rows ``[start, stop)`` and reduce them to chunk statistics."""
    result = study.engine().evaluate(batch_for_rows(study, study.design.rows(start, stop)))
    return summarise(study, result, start, stop)


def on_nominal_scale(scores: np.ndarray, nominal: np.ndarray) -> np.ndarray:
    """Map each scenario's scores affinely so that their mean and standard deviation across units
    equal the nominal ones (per year and aggregate): z-scores, percentile ranks and min-max scores
    become comparable, and no unit is pinned to a fixed value."""
    mean, sd = scores.mean(axis=-2, keepdims=True), scores.std(axis=-2, keepdims=True)
    target_mean, target_sd = nominal.mean(axis=-2, keepdims=True), nominal.std(axis=-2, keepdims=True)
    return target_mean + (scores - mean) / np.where(sd > 0, sd, 1.0) * target_sd


def summarise(study: Study, result: BatchResult, start: int, stop: int) -> ChunkStats:
    """Reduce one chunk's results: histograms for all uncertainty rows, compact arrays for the rest."""
    ranks, tiers = result.ranks, result.tiers
    scores = on_nominal_scale(result.scores, study.nominal_scores) if study.rescale_scores else result.scores
    n_years, n_units = ranks.shape[1:]
    rows = np.arange(start, stop)
    uncertain = study.design.uncertainty_rows(start, stop)
    selected = slice(None) if uncertain.all() else np.flatnonzero(uncertain)
    cell = (np.arange(n_years)[:, None] * n_units + np.arange(n_units)[None, :])[None]
    shift = np.abs(ranks - study.nominal_ranks[None]).reshape(len(rows), -1)
    rank_shift = shift.mean(axis=1)
    outputs = np.column_stack([ranks[:, -1, :], result.scores[:, -1, :, -1], rank_shift])

    u_ranks, u_index, u_shift = ranks[selected], scores[selected][..., -1], shift[selected]
    rank_counts = _bincount(cell * n_units + (u_ranks - 1), (n_years, n_units, n_units))
    tier_counts = _bincount(cell * study.n_tiers + (tiers[selected] - 1), (n_years, n_units, study.n_tiers))
    quadrant_counts = np.zeros((n_years, n_units, 4), dtype=np.int64)
    if study.gdp is not None:
        known = ~np.isnan(study.gdp)
        high_gdp = study.gdp > np.nanmean(study.gdp)
        high_index = u_index > u_index[..., known].mean(axis=-1, keepdims=True)
        quadrant_counts = _bincount(cell * 4 + np.where(high_index, 0, 2) + np.where(high_gdp, 0, 1), (n_years, n_units, 4))
        quadrant_counts[:, ~known, :] = 0
    region_means = study.region_means(u_index).astype(np.float32)
    sample = rows[selected] if study.design.method != "saltelli" else rows[selected] // (len(study.design.factor_names) + 2)
    kept = np.flatnonzero(sample % study.keep_stride == 0)
    moved = np.stack([np.count_nonzero(u_shift < k, axis=1) / u_shift.shape[1] for k in (1, 3, 5)], axis=1)
    saltelli = study.design.method == "saltelli"
    return ChunkStats(
        rank_counts=rank_counts,
        tier_counts=tier_counts,
        quadrant_counts=quadrant_counts,
        scores=scores[selected][kept].astype(np.float32),
        rank_shift=rank_shift[selected],
        moved=moved,
        region_means=region_means,
        outputs=outputs if saltelli else outputs[selected][kept].astype(np.float32),
    )


def _evaluate_spans(study: Study, spans: list[tuple[int, int]], work: Path) -> list[int]:
    for start, stop in spans:
        evaluate_rows(study, start, stop).save(chunk_path(work, start))
    return [start for start, _ in spans]


def chunk_path(work: Path, start: int) -> Path:
    return work / f"chunk_{start:012d}.npz"


def fingerprint(raw_config: dict, version: str) -> str:
    """A hash of what determines the results (config and package version, not workers)."""
    relevant = {k: v for k, v in raw_config.items() if k != "run"}
    relevant["run"] = {k: v for k, v in raw_config.get("run", {}).items() if k in ("seed", "kind")}
    text = json.dumps({"config": relevant, "version": version}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare_work(work: Path, token: str, resume: bool) -> set[int]:
    """Create (or, when resuming a run of the same fingerprint, reuse) the work folder; returns finished chunk starts."""
    stamp = work / "fingerprint.txt"
    if resume and stamp.is_file() and stamp.read_text() == token:
        return {int(p.stem.split("_")[1]) for p in work.glob("chunk_*.npz") if not p.name.endswith(".tmp.npz")}
    if work.exists():
        shutil.rmtree(work)
    try:
        work.mkdir(parents=True)
    except OSError as exc:
        raise UserError(f"cannot write the output directory ({exc.strerror})", work.parent) from None
    stamp.write_text(token)
    return set()


def run_study(study: Study, work: Path, chunk_size: int, jobs: int, backend: str, scheduler: str | None, resume: bool, progress: bool) -> ChunkStats:
    """Evaluate every design row in chunks (skipping those a resumed run already has) and merge."""
    from joblib import Parallel, delayed

    done = prepare_work(work, study.token, resume)
    n_rows = study.design.n_rows
    spans = [(a, min(a + chunk_size, n_rows)) for a in range(0, n_rows, chunk_size)]
    todo = [s for s in spans if s[0] not in done]
    tasks = [todo[k : k + 1] for k in range(len(todo))]
    bar = _progress_bar(len(spans), len(spans) - len(todo), progress)
    with _backend(backend, scheduler, jobs):
        runner = Parallel(n_jobs=jobs, return_as="generator") if backend != "dask" else Parallel(return_as="generator")
        for finished in runner(delayed(_evaluate_spans)(study, task, work) for task in tasks):
            if bar is not None:
                bar.update(len(finished))
    if bar is not None:
        bar.close()
    return ChunkStats.merge([ChunkStats.load(chunk_path(work, a)) for a, _ in spans])


def _progress_bar(total: int, initial: int, enabled: bool):
    import sys

    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="chunk", file=sys.stderr, desc="scenarios")


class _backend:
    """joblib's backend as configured; ``dask`` connects to a scheduler (or starts a local cluster)."""

    def __init__(self, name: str, scheduler: str | None, jobs: int):
        self.name, self.scheduler, self.jobs = name, scheduler, jobs
        self.client = self.cluster = self.config = None

    def __enter__(self):
        from joblib import parallel_config

        if self.name == "dask":
            from distributed import Client, LocalCluster

            if self.scheduler is None:
                self.cluster = LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=True, dashboard_address=None)
            self.client = Client(self.scheduler or self.cluster)
        self.config = parallel_config(backend=self.name)
        self.config.__enter__()
        return self

    def __exit__(self, *exc):
        self.config.__exit__(*exc)
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
