"""Statistical coherence of an index tree: the JRC/OECD audit step, as pure array functions.

Before trusting an index, the JRC audit asks whether its indicators are well behaved (outliers,
missing data), whether each one agrees with the aggregates it feeds (correlations), whether the
parts of each aggregate measure one thing (Cronbach's alpha) and how many latent directions they
span (PCA). The definitions follow the R package COINr 1.1.14 (``get_stats``, ``get_corr``,
``get_corr_flags``, ``get_cronbach``, ``get_PCA``) so that results can be checked against it.

``values_by_level[k]`` holds the (units x nodes) scores of ``spec.levels[k]``: level 0 the
normalised indicators, the last level the index as a single column. Levels in the outputs are the
spec's 0-based levels (COINr counts from 1).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from nqpf_sens.engine.batch import Engine, ScenarioBatch
from nqpf_sens.engine.normalise import ascending_ranks
from nqpf_sens.engine.pipeline import Pipeline
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable
from nqpf_sens.engine.transform import sample_moments

#: JRC/COINr thresholds (get_stats: t_skew, t_kurt; get_corr_flags: cor_thresh)
SKEW_THRESHOLD = 2.0
KURTOSIS_THRESHOLD = 3.5
WEAK_THRESHOLD = 0.3
REDUNDANT_THRESHOLD = 0.9
_TIE_TOLERANCE = 1e-12
METHODS = ("pearson", "spearman")


def indicator_statistics(
    raw: np.ndarray,
    indicators: Sequence[str],
    statuses: np.ndarray | None = None,
    *,
    t_skew: float = SKEW_THRESHOLD,
    t_kurt: float = KURTOSIS_THRESHOLD,
) -> pd.DataFrame:
    """One row per indicator of (units x indicators) ``raw`` (NaN = missing), as COINr
    ``get_stats``.

    ``skewness`` and ``kurtosis`` are COINr's ``skew``/``kurt`` (e1071 type 2, as Excel, the same
    as scipy's ``skew(bias=False)`` and ``kurtosis(fisher=True, bias=False)``): the kurtosis is
    *excess* kurtosis, and that is what the outlier rule ``|skew| > 2 and kurtosis > 3.5``
    compares with 3.5. They need at least 3 and 4 values and are NaN for a constant indicator.
    ``sd`` has ddof=1 (R's ``sd``); ``zeros`` counts exact zeros among the observed values. With
    ``statuses`` (units x indicators, str or None), one ``status_<value>`` column counts each
    status.
    """
    raw = np.asarray(raw, dtype=float)
    if raw.ndim != 2 or raw.shape[1] != len(indicators):
        raise ValueError(f"raw has shape {raw.shape}, expected (units, {len(indicators)})")
    frame = pd.DataFrame(raw, columns=list(indicators))
    n = frame.count().to_numpy(dtype=float)
    scale = column_scales(raw)  # moments of values near 1: squares of huge ones overflow
    skewness, kurtosis = sample_moments((raw / scale).T)
    missing_share = 1.0 - n / raw.shape[0]
    table = pd.DataFrame(
        {
            "indicator": list(indicators),
            "n": n.astype(int),
            "missing_share": missing_share,
            "zeros": (raw == 0).sum(axis=0),
            "mean": (frame / scale).mean().to_numpy() * scale,
            "sd": (frame / scale).std(ddof=1).to_numpy() * scale,
            "min": frame.min().to_numpy(),
            "max": frame.max().to_numpy(),
            "skewness": skewness,
            "kurtosis": kurtosis,
            "outlier_flag": (np.abs(skewness) > t_skew) & (kurtosis > t_kurt),
        }
    )
    if statuses is not None:
        statuses = np.asarray(statuses, dtype=object)
        if statuses.shape != raw.shape:
            raise ValueError(f"statuses has shape {statuses.shape}, expected {raw.shape}")
        given = pd.DataFrame(statuses, columns=range(raw.shape[1]))
        for value in sorted({s for s in statuses.ravel() if s is not None and not pd.isna(s)}):
            table[f"status_{value}"] = (given == value).sum(axis=0).to_numpy()
    return table


def _check_levels(values_by_level: Sequence[np.ndarray], spec: IndexSpec) -> list[np.ndarray]:
    """The scores as float arrays, refused unless they match the tree level by level."""
    if len(values_by_level) != len(spec.levels):
        raise ValueError(f"{len(values_by_level)} levels of values for {len(spec.levels)} levels")
    arrays = [np.asarray(v, dtype=float) for v in values_by_level]
    n_units = arrays[0].shape[0]
    for k, (values, nodes) in enumerate(zip(arrays, spec.levels, strict=True)):
        if values.shape != (n_units, len(nodes)):
            raise ValueError(
                f"level {k} values have shape {values.shape}, expected ({n_units}, {len(nodes)})"
            )
    return arrays


#: a total whose variance is below this share of its items' is constant, its spread rounding
CONSTANT_TOTAL = 1e-20


def sibling_pairs(parents: np.ndarray) -> list[tuple[int, int]]:
    """Every pair ``a < b`` of nodes with one parent, in order: built parent by parent, not
    filtered from all pairs of the level (two arrays of 28 GiB for 60,000 indicators)."""
    pairs = [
        (int(a), int(b))
        for parent in np.unique(parents)
        for a, b in itertools.combinations(np.flatnonzero(parents == parent), 2)
    ]
    return sorted(pairs)


def peak_bytes(spec: IndexSpec, n_units: int) -> int:
    """The largest parts of :func:`coherence_tables`: the correlation rows (two methods, a row of
    Python objects per pair of siblings and per node: 205 bytes each by tracemalloc, 300 to 600
    indicators) and each aggregate's units x parts."""
    siblings = [np.unique(parents, return_counts=True)[1] for parents in spec.parents]
    pairs = sum(int((counts * (counts - 1) // 2).sum()) for counts in siblings)
    nodes = sum(len(level) for level in spec.levels)
    return 2 * 250 * (pairs + nodes) + 8 * 4 * n_units * len(spec.indicators)


def _pairwise_r(x: np.ndarray, y: np.ndarray, method: str) -> float:
    """R's ``cor(x, y, method, use = "pairwise.complete.obs")``: Spearman ranks (average ties)
    only the units where both are present; NaN with no spread or fewer than 3 of them (where R
    gives two units' +/-1, which says nothing of redundancy)."""
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    if x.size < 3:
        return np.nan
    if method == "spearman":
        x, y = ascending_ranks(x), ascending_ranks(y)
    dx, dy = x - x.mean(), y - y.mean()
    scale = np.sqrt((dx @ dx) * (dy @ dy))
    return float(dx @ dy / scale) if scale > 0 else np.nan


def correlations(
    values_by_level: Sequence[np.ndarray],
    spec: IndexSpec,
    method: str = "pearson",
    *,
    weak: float = WEAK_THRESHOLD,
    redundant: float = REDUNDANT_THRESHOLD,
) -> pd.DataFrame:
    """Correlations that follow the tree, as COINr ``get_corr`` (pairwise-complete
    observations) with ``withparent``/``grouplev``, flagged as ``get_corr_flags``.

    Per level: ``within`` for every pair of siblings, ``parent`` for each node with its parent,
    ``index`` for each node with the index when the index is not already its parent. ``flag`` is
    ``negative`` (r <= -0.3: a trade-off), ``weak`` (|r| < 0.3: a correlation of either sign
    this small is no evidence of one), ``redundant`` (r > 0.9 between siblings,
    where two indicators double count), ``undefined`` (no r: a constant node, or fewer than three
    units observed in both) or empty. Unlike ``get_corr`` no r is blanked for its
    p-value: the flags are about size, and blanking would hide exactly the weak ones.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"unknown correlation method {method!r} (pearson or spearman)")
    values = _check_levels(values_by_level, spec)
    index = values[-1][:, 0]
    top = len(spec.levels) - 1
    rows = []
    for k in range(top):
        nodes, parents, scores = spec.levels[k], spec.parents[k], values[k]
        for a, b in sibling_pairs(parents):
            r = _pairwise_r(scores[:, a], scores[:, b], method)
            rows.append((k, nodes[a], nodes[b], "within", r))
        for i, node in enumerate(nodes):
            above = values[k + 1][:, parents[i]]
            r = _pairwise_r(scores[:, i], above, method)
            rows.append((k, node, spec.levels[k + 1][parents[i]], "parent", r))
        if k + 1 < top:
            for i, node in enumerate(nodes):
                r = _pairwise_r(scores[:, i], index, method)
                rows.append((k, node, spec.index_code, "index", r))
    frame = pd.DataFrame(rows, columns=["level", "node_a", "node_b", "kind", "r"])
    r = frame["r"].to_numpy(dtype=float)
    frame["flag"] = np.select(
        [
            r <= -weak,
            np.abs(r) < weak,
            (r > redundant) & (frame["kind"] == "within"),
            np.isnan(r),
        ],
        ["negative", "weak", "redundant", "undefined"],
        "",
    )
    return frame


def cronbach_alpha(matrix: np.ndarray, use: str = "complete") -> float:
    """Cronbach's alpha of the (units x items) ``matrix``: k/(k-1) * (1 - sum of item variances /
    variance of the total), NaN with fewer than 2 items or a total the same for every unit (its
    variance within ``CONSTANT_TOTAL`` of the items', which rounding alone gave: alpha -2e16).

    This is COINr ``get_cronbach``'s ``k^2 * mean off-diagonal covariance / sum of covariances``
    rewritten; COINr builds the covariances from ``pairwise`` observations by default, here the
    default is ``complete`` cases so that the items and their total describe the same units.
    """
    if use not in ("complete", "pairwise"):
        raise ValueError(f"unknown use {use!r} (complete or pairwise)")
    matrix = np.asarray(matrix, dtype=float)
    k = matrix.shape[1]
    if use == "complete":
        matrix = matrix[~np.isnan(matrix).any(axis=1)]
    if k < 2 or matrix.shape[0] < 2:
        return np.nan
    if use == "complete":  # the covariances' sums without their k x k matrix (28 GiB for 60,000)
        items, total = matrix.var(axis=0, ddof=1).sum(), matrix.sum(axis=1).var(ddof=1)
    else:
        covariance = pd.DataFrame(matrix).cov().to_numpy()
        items, total = np.nansum(np.diag(covariance)), np.nansum(covariance)
    if not total > CONSTANT_TOTAL * items:  # the same total for every unit, up to rounding
        return np.nan
    return float(k / (k - 1) * (1.0 - items / total))


def cronbach_table(values_by_level: Sequence[np.ndarray], spec: IndexSpec) -> pd.DataFrame:
    """Per aggregate node: alpha of its children and of all the indicators below it (complete
    cases), with their numbers; COINr ``get_cronbach`` at the two levels."""
    values = _check_levels(values_by_level, spec)
    rows = []
    for k in range(1, len(spec.levels)):
        leaf_parent = spec.leaf_parent(k)
        for p, node in enumerate(spec.levels[k]):
            children = values[k - 1][:, spec.parents[k - 1] == p]
            leaves = values[0][:, leaf_parent == p]
            rows.append(
                (
                    k,
                    node,
                    children.shape[1],
                    cronbach_alpha(children),
                    leaves.shape[1],
                    cronbach_alpha(leaves),
                )
            )
    columns = ["level", "node", "n_children", "alpha_children", "n_indicators", "alpha_indicators"]
    return pd.DataFrame(rows, columns=columns)


def column_scales(matrix: np.ndarray) -> np.ndarray:
    """Each column's largest absolute value (1 for a column of zeros or without values): dividing
    by it keeps sums of squares finite whatever the magnitude of the data."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        largest = np.nanmax(np.abs(matrix), axis=0) if len(matrix) else np.ones(matrix.shape[1])
    return np.where(np.isfinite(largest) & (largest > 0), largest, 1.0)


def _pca(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and unit eigenvectors (columns) of R's ``prcomp(center = TRUE, scale. =
    TRUE)`` on complete cases: min(units, items) components, each eigenvector signed so that its
    largest |loading| (the first, within rounding) is positive. NaN without two complete units or
    with a constant item (where prcomp refuses to scale)."""
    matrix = matrix[~np.isnan(matrix).any(axis=1)]
    matrix = matrix / column_scales(matrix)  # prcomp scales them anyway
    n, p = matrix.shape
    sd = matrix.std(axis=0, ddof=1) if n >= 2 else np.zeros(p)
    if n < 2 or not (sd > 0).all():
        return np.full(p, np.nan), np.full((p, p), np.nan)
    z = (matrix - matrix.mean(axis=0)) / sd
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    vectors = vt.T
    size = np.abs(vectors)
    lead = np.argmax(size >= size.max(axis=0) - _TIE_TOLERANCE, axis=0)
    vectors = vectors * np.sign(vectors[lead, np.arange(vectors.shape[1])])
    return singular**2 / (n - 1), vectors


def pca_table(
    values_by_level: Sequence[np.ndarray], spec: IndexSpec
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PCA of each aggregate's children (at least 2), as COINr ``get_PCA(by_groups = TRUE)``:
    prcomp on the correlation matrix of the complete cases.

    Returns (node, component, eigenvalue, share, cumulative_share) and (node, child, component,
    loading) for components 1 and 2. Loadings are prcomp's ``rotation`` (unit eigenvectors; COINr's
    PCA weights are those of component 1), signed so that the largest |loading| is positive,
    since prcomp's signs are arbitrary.
    """
    values = _check_levels(values_by_level, spec)
    variance_rows, loading_rows = [], []
    for k in range(1, len(spec.levels)):
        for p, node in enumerate(spec.levels[k]):
            members = np.flatnonzero(spec.parents[k - 1] == p)
            if members.size < 2:
                continue
            eigenvalues, vectors = _pca(values[k - 1][:, members])
            share = eigenvalues / eigenvalues.sum()
            for c, (value, s, cumulative) in enumerate(
                zip(eigenvalues, share, np.cumsum(share), strict=True), start=1
            ):
                variance_rows.append((node, c, value, s, cumulative))
            for c in range(min(2, vectors.shape[1])):
                for i, loading in zip(members, vectors[:, c], strict=True):
                    loading_rows.append((node, spec.levels[k - 1][i], c + 1, loading))
    variance = pd.DataFrame(
        variance_rows, columns=["node", "component", "eigenvalue", "share", "cumulative_share"]
    )
    loadings = pd.DataFrame(loading_rows, columns=["node", "child", "component", "loading"])
    return variance, loadings


def nominal_levels(
    spec: IndexSpec, table: IndicatorTable, pipeline: Pipeline, ties: str = "min"
) -> tuple[list[np.ndarray], tuple[np.ndarray, ...]]:
    """The first year's (units x nodes) scores of every level under ``pipeline`` (level 0 the
    normalised indicators, the last the index) and the pipeline's weights per level."""
    engine = Engine(spec, table, ties)
    leaves = engine.normalised(pipeline)[0]
    batch = ScenarioBatch((pipeline,), np.zeros(1, dtype=np.int64))
    scores = engine.evaluate(batch).scores[0, 0]
    ends = np.cumsum([0, *(len(level) for level in spec.levels[1:])])
    by_level = [leaves, *(scores[:, a:b] for a, b in zip(ends[:-1], ends[1:], strict=True))]
    return by_level, engine.scheme_weights(pipeline)


def coherence_tables(
    by_level: list[np.ndarray], spec: IndexSpec, table: IndicatorTable
) -> dict[str, pd.DataFrame]:
    """Every coherence table of one year's data, by file name: indicator statistics of the raw
    data, correlations (Pearson and Spearman) of the nominal scores of every level (see
    :func:`nominal_levels`), Cronbach's alpha and PCA of each aggregate; a table without rows
    (no aggregate of two parts has a PCA, say) is left out."""
    statuses = None if table.statuses is None else table.statuses[0]
    pairs = pd.concat(
        [correlations(by_level, spec, method).assign(method=method) for method in METHODS],
        ignore_index=True,
    )
    pairs["flag"] = pairs["flag"].where(pairs["flag"] != "")  # no flag: missing, as in a CSV
    eigenvalues, loadings = pca_table(by_level, spec)
    tables = {
        "indicator_statistics": indicator_statistics(table.values[0], spec.indicators, statuses),
        "correlations": pairs,
        "cronbach": cronbach_table(by_level, spec),
        "pca_variance": eigenvalues,
        "pca_loadings": loadings,
    }
    return {name: frame for name, frame in tables.items() if len(frame)}
