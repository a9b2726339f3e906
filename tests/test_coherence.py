"""Statistical coherence (COINr get_stats/get_corr/get_cronbach/get_PCA) on hand-computed cases."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nqpf_sens.audit.coherence import (
    correlations,
    cronbach_alpha,
    cronbach_table,
    indicator_statistics,
    pca_table,
)
from nqpf_sens.engine.spec import load_spec

META = """code,dimension,weight,direction
i1,d1,1,positive
i2,d1,1,positive
i3,d2,1,positive
i4,d2,1,positive
"""

DEEP = """iCode,Parent,Weight,Direction,Type
a,P1,1,1,Indicator
b,P1,1,1,Indicator
c,P2,1,1,Indicator
P1,S,1,1,Aggregate
P2,S,1,1,Aggregate
S,Index,1,1,Aggregate
Index,,1,1,Aggregate
"""

UP = np.array([1.0, 2, 3, 4, 5])  # deviations -2, -1, 0, 1, 2
# deviations 1, 0, -2, -1, 2: dot with UP's = -2 + 0 + 0 - 1 + 4 = 1, both squared sums 10
R_01 = np.array([4.0, 3, 1, 2, 5])  # r(UP, R_01) = 1/10
# deviations -1, -2, 1, 0, 2: dot = 2 + 2 + 0 + 0 + 4 = 8
R_08 = np.array([2.0, 1, 4, 3, 5])  # r(UP, R_08) = 8/10


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text(META, encoding="utf-8")
    return load_spec(path)


@pytest.fixture
def deep_spec(tmp_path):
    path = tmp_path / "deep.csv"
    path.write_text(DEEP, encoding="utf-8")
    return load_spec(path)


def levels(i1, i2, i3, i4, d1, d2, total):
    return [np.column_stack([i1, i2, i3, i4]), np.column_stack([d1, d2]), np.c_[total]]


# -- indicator statistics ------------------------------------------------------------------------


def test_skew_and_excess_kurtosis_by_hand():
    # x = 0,0,0,0,10: mean 2, deviations -2 (x4), 8; sums of powers 80, 480, 4160.
    # g1 = sqrt(5)*480/80^1.5 = 1.5, G1 = 1.5*sqrt(5*4)/3 = sqrt(5) (e1071 type 2)
    # r = 5*4160/80^2 = 3.25, G2 = ((6*(3.25-3)) + 6)*4/(3*2) = 5 (excess kurtosis)
    raw = np.array([[0.0, 1], [0, np.nan], [0, 2], [0, 3], [10, np.nan]])
    table = indicator_statistics(raw, ["x", "y"]).set_index("indicator")
    x = table.loc["x"]
    assert x["skewness"] == pytest.approx(np.sqrt(5))
    assert x["kurtosis"] == pytest.approx(5.0)
    assert x.outlier_flag  # sqrt(5) > 2 and 5 > 3.5
    assert (x.n, x.zeros, x.missing_share) == (5, 4, 0.0)
    assert (x["mean"], x["min"], x["max"]) == (2.0, 0.0, 10.0)
    assert x.sd == pytest.approx(np.sqrt(80 / 4))
    y = table.loc["y"]
    assert (y.n, y.zeros, y.missing_share) == (3, 0, pytest.approx(0.4))
    assert y["skewness"] == pytest.approx(0.0)
    assert np.isnan(y["kurtosis"])  # COINr's kurt needs 4 values
    assert not y.outlier_flag


def test_moments_are_scipy_unbiased_ones_on_observed_values():
    rng = np.random.default_rng(1)
    raw = rng.gamma(0.8, size=(40, 3))
    raw[[3, 17], 1] = np.nan
    table = indicator_statistics(raw, ["a", "b", "c"])
    for j in range(3):
        x = raw[~np.isnan(raw[:, j]), j]
        assert table["skewness"][j] == pytest.approx(stats.skew(x, bias=False))
        assert table["kurtosis"][j] == pytest.approx(stats.kurtosis(x, fisher=True, bias=False))
        assert table.sd[j] == pytest.approx(np.std(x, ddof=1))


def test_outlier_rule_needs_both_skew_and_kurtosis():
    # 0,0,0,10: skew 2 exactly (not > 2), excess kurtosis 4 -> not flagged; constant: undefined
    raw = np.array([[0.0, 7], [0, 7], [0, 7], [10, 7]])
    table = indicator_statistics(raw, ["x", "flat"])
    assert table["skewness"][0] == pytest.approx(2.0)
    assert table["kurtosis"][0] == pytest.approx(4.0)
    assert np.isnan(table["skewness"][1]) and np.isnan(table["kurtosis"][1])
    assert not table.outlier_flag.any()


def test_status_counts_one_column_per_value():
    statuses = np.array([["imputed", None], ["imputed", "capped"], [None, None]], dtype=object)
    table = indicator_statistics(np.ones((3, 2)), ["a", "b"], statuses)
    assert list(table.columns[-2:]) == ["status_capped", "status_imputed"]
    assert table.status_imputed.tolist() == [2, 0]
    assert table.status_capped.tolist() == [0, 1]


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="expected"):
        indicator_statistics(np.ones((3, 2)), ["a"])


# -- correlations --------------------------------------------------------------------------------


def test_correlation_rows_and_flags_on_known_r(spec):
    values = levels(UP, 2 * UP, UP, R_08, d1=UP, d2=-UP, total=R_01)
    found = correlations(values, spec).set_index(["node_a", "node_b"])
    expected = {
        ("i1", "i2"): ("within", 1.0, "redundant"),
        ("i3", "i4"): ("within", 0.8, ""),
        ("i1", "d1"): ("parent", 1.0, ""),
        ("i3", "d2"): ("parent", -1.0, "negative"),
        ("i4", "d2"): ("parent", -0.8, "negative"),
        ("i1", "total"): ("index", 0.1, "weak"),
        ("d1", "d2"): ("within", -1.0, "negative"),
        ("d1", "total"): ("parent", 0.1, "weak"),
        ("d2", "total"): ("parent", -0.1, "weak"),  # too small to call a trade-off
    }
    for pair, (kind, r, flag) in expected.items():
        row = found.loc[pair]
        assert (row.kind, row.flag) == (kind, flag), pair
        assert row.r == pytest.approx(r), pair
    # 2 within + 4 parent + 4 index rows at level 0; 1 within + 2 parent rows at level 1 (the
    # parent of a dimension is the index: no separate index row)
    assert found.groupby(["level", "kind"]).size().to_dict() == {
        (0, "index"): 4,
        (0, "parent"): 4,
        (0, "within"): 2,
        (1, "parent"): 2,
        (1, "within"): 1,
    }


def test_missing_values_are_dropped_pair_by_pair(spec):
    i4 = R_08.copy()
    i4[4] = np.nan  # only i4 loses unit 5
    values = levels(UP, 2 * UP, UP, i4, d1=UP, d2=UP, total=UP)
    found = correlations(values, spec).set_index(["node_a", "node_b"]).r
    # r(i3, i4) on units 1-4: deviations -1.5,-0.5,0.5,1.5 and -0.5,-1.5,1.5,0.5 -> 3/5
    assert found["i3", "i4"] == pytest.approx(0.6)
    assert found["i1", "i2"] == pytest.approx(1.0)  # all five units
    frame = pd.DataFrame(values[0], columns=["i1", "i2", "i3", "i4"])
    assert found["i3", "i4"] == pytest.approx(frame.corr().loc["i3", "i4"])


def test_two_units_in_common_give_no_correlation(spec):
    """A pair observed together in two units only: undefined, as documented (R's +/-1 was
    flagged redundant or negative)."""
    x = np.array([1.0, 2, 3, 4, 5])
    sparse = np.array([1.0, 2, np.nan, np.nan, np.nan])
    values = levels(x, x**2, x, sparse, d1=x, d2=x, total=x)
    for method in ("pearson", "spearman"):
        found = correlations(values, spec, method).set_index(["node_a", "node_b"])
        assert np.isnan(found.r["i3", "i4"]) and found.flag["i3", "i4"] == "undefined"
        assert found.r["i1", "i2"] > 0.9  # five units: defined


def test_spearman_ranks_only_the_complete_pairs(spec):
    # R: cor(x, y, "spearman", "pairwise.complete.obs") ranks units 1, 3, 4 only:
    # x ranks 1,2,3 and y ranks 1,3,2 -> r = 1/2 (ranking before dropping would give 0.65)
    x = np.array([1.0, 2, 3, 4, 5])
    y = np.array([1.0, np.nan, 3, 2, np.nan])
    values = levels(x, x**3, x, y, d1=x, d2=x, total=x)
    found = correlations(values, spec, method="spearman").set_index(["node_a", "node_b"]).r
    assert found["i3", "i4"] == pytest.approx(0.5)
    assert found["i1", "i2"] == pytest.approx(1.0)  # monotone: rank correlation 1
    pearson = correlations(values, spec).set_index(["node_a", "node_b"]).r
    assert pearson["i1", "i2"] < 0.99


def test_index_rows_in_a_deeper_tree(deep_spec):
    rng = np.random.default_rng(2)
    values = [rng.normal(size=(6, 3)), rng.normal(size=(6, 2)), rng.normal(size=(6, 1))]
    values.append(values[2].copy())  # S is the only child of Index
    found = correlations(values, deep_spec)
    index_rows = found[found.kind == "index"]
    assert set(zip(index_rows.level, index_rows.node_a, strict=True)) == {
        (0, "a"),
        (0, "b"),
        (0, "c"),
        (1, "P1"),
        (1, "P2"),
    }
    assert (index_rows.node_b == "Index").all()
    s_index = found[(found.node_a == "S") & (found.node_b == "Index")]
    assert s_index.kind.tolist() == ["parent"] and s_index.r.iloc[0] == pytest.approx(1.0)
    assert found[found.kind == "within"].node_a.tolist() == ["a", "P1"]


def test_bad_method_and_shapes_are_refused(spec):
    values = levels(UP, UP, UP, UP, UP, UP, UP)
    with pytest.raises(ValueError, match="method"):
        correlations(values, spec, method="kendall")
    with pytest.raises(ValueError, match="level 1"):
        correlations([values[0], values[0], values[2]], spec)


# -- Cronbach's alpha ----------------------------------------------------------------------------


ITEMS = np.array([[1.0, 2, 1], [2, 1, 3], [3, 4, 2], [4, 3, 4]])
# each item is a permutation of 1..4: variance 5/3, sum 5; totals 4, 6, 9, 11 (mean 7.5,
# squared deviations 12.25 + 2.25 + 2.25 + 12.25 = 29, variance 29/3)
# alpha = 3/2 * (1 - 5 / (29/3)) = 3/2 * 14/29 = 21/29
ALPHA = 21 / 29


def test_alpha_by_hand():
    assert cronbach_alpha(ITEMS) == pytest.approx(ALPHA)


def test_alpha_uses_complete_cases_by_default():
    with_gap = np.vstack([ITEMS, [9.0, np.nan, -3]])
    assert cronbach_alpha(with_gap) == pytest.approx(ALPHA)
    # COINr's default: covariances from pairwise observations, alpha = k^2 mean(off-diag)/sum
    cov = pd.DataFrame(with_gap).cov().to_numpy()
    coinr = 9 * (cov.sum() - np.trace(cov)) / 6 / cov.sum()
    assert cronbach_alpha(with_gap, use="pairwise") == pytest.approx(coinr)
    assert coinr != pytest.approx(ALPHA)


def test_alpha_edge_cases():
    assert cronbach_alpha(np.column_stack([UP, UP])) == pytest.approx(1.0)
    assert np.isnan(cronbach_alpha(ITEMS[:, :1]))  # one item
    assert np.isnan(cronbach_alpha(np.ones((4, 3))))  # no spread


def test_cronbach_table(spec):
    values = [ITEMS[:, [0, 1, 2, 0]], ITEMS[:, :2], np.c_[ITEMS.sum(axis=1)]]
    table = cronbach_table(values, spec).set_index("node")
    assert table.level.tolist() == [1, 1, 2]
    assert table.n_children.tolist() == [2, 2, 2]
    assert table.n_indicators.tolist() == [2, 2, 4]
    assert table.alpha_children["d1"] == pytest.approx(cronbach_alpha(ITEMS[:, :2]))
    assert table.alpha_children["d1"] == table.alpha_indicators["d1"]
    assert table.alpha_indicators["d2"] == pytest.approx(cronbach_alpha(ITEMS[:, [2, 0]]))
    assert table.alpha_children["total"] == pytest.approx(cronbach_alpha(ITEMS[:, :2]))
    assert table.alpha_indicators["total"] == pytest.approx(cronbach_alpha(values[0]))


# -- PCA -----------------------------------------------------------------------------------------


def test_pca_of_two_variables_has_eigenvalues_one_plus_and_minus_r(spec):
    # standardised pair with r = 0.8: eigenvalues 1.8 and 0.2, eigenvectors (1, 1)/sqrt2 and
    # (1, -1)/sqrt2 (equal sizes: the first entry is made positive); scale does not matter
    values = levels(UP, 3 * R_01 + 7, 10 * UP, R_08, d1=UP, d2=R_01, total=UP)
    variance, loadings = pca_table(values, spec)
    d2 = variance[variance.node == "d2"]
    np.testing.assert_allclose(d2.eigenvalue, [1.8, 0.2])
    np.testing.assert_allclose(d2.share, [0.9, 0.1])
    np.testing.assert_allclose(d2.cumulative_share, [0.9, 1.0])
    assert d2.component.tolist() == [1, 2]
    d1 = variance[variance.node == "d1"]
    np.testing.assert_allclose(d1.eigenvalue, [1.1, 0.9])  # r = 0.1
    d2_loadings = loadings[loadings.node == "d2"].set_index(["component", "child"]).loading
    h = 1 / np.sqrt(2)
    np.testing.assert_allclose(d2_loadings.loc[1].loc[["i3", "i4"]], [h, h])
    np.testing.assert_allclose(d2_loadings.loc[2].loc[["i3", "i4"]], [h, -h])
    assert set(variance.node) == {"d1", "d2", "total"}


def test_pca_matches_the_correlation_matrix_on_complete_cases(deep_spec):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(30, 1))
    indicators = base + rng.normal(scale=[0.5, 1.0, 2.0], size=(30, 3))
    indicators[4, 2] = np.nan
    p = np.c_[indicators[:, :2].mean(axis=1), -indicators[:, 2]]
    values = [indicators, p, p[:, :1], p[:, :1]]
    variance, loadings = pca_table(values, deep_spec)
    assert set(variance.node) == {"P1", "S"}  # P2 and Index have a single child
    # P1's children are a, b: the unit with a missing c still counts
    eigenvalues, vectors = np.linalg.eigh(np.corrcoef(indicators[:, :2], rowvar=False))
    np.testing.assert_allclose(variance[variance.node == "P1"].eigenvalue, eigenvalues[::-1])
    p1 = loadings[loadings.node == "P1"]
    first = p1[p1.component == 1].loading.to_numpy()
    lead = vectors[:, -1] * np.sign(vectors[np.argmax(np.abs(vectors[:, -1])), -1])
    np.testing.assert_allclose(first, lead)


def test_pca_of_three_children_drops_incomplete_units(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("code,dimension,weight,direction\na,d,1,1\nb,d,1,1\nc,d,1,1\n")
    spec = load_spec(path)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(25, 3)) @ np.array([[1, 0.5, 0.2], [0, 1, -0.4], [0, 0, 1]])
    x[[2, 9], [0, 2]] = np.nan
    values = [x, np.nanmean(x, axis=1, keepdims=True), np.nanmean(x, axis=1, keepdims=True)]
    variance, loadings = pca_table(values, spec)
    complete = x[~np.isnan(x).any(axis=1)]
    eigenvalues, vectors = np.linalg.eigh(np.corrcoef(complete, rowvar=False))
    np.testing.assert_allclose(variance.eigenvalue, eigenvalues[::-1])
    assert variance.share.sum() == pytest.approx(1.0)
    assert variance.cumulative_share.iloc[-1] == pytest.approx(1.0)
    for c, column in ((1, -1), (2, -2)):
        mine = loadings[loadings.component == c].loading.to_numpy()
        np.testing.assert_allclose(np.abs(mine), np.abs(vectors[:, column]))
        assert mine[np.argmax(np.abs(mine))] > 0
    assert len(loadings) == 6


def test_pca_of_a_constant_child_is_undefined(spec):
    values = levels(UP, np.ones(5), UP, R_08, d1=UP, d2=UP, total=UP)
    variance, loadings = pca_table(values, spec)
    assert variance[variance.node == "d1"].eigenvalue.isna().all()
    assert loadings[loadings.node == "d1"].loading.isna().all()
    assert variance[variance.node == "d2"].eigenvalue.notna().all()


def test_statistics_of_huge_values_are_finite():
    """Values near 1e200 (their squares overflow): the same skewness, kurtosis and relative
    spread as the values near 1, and a finite standard deviation."""
    from nqpf_sens.audit.coherence import indicator_statistics

    small = np.array([[1.0, 2.0], [2.0, 3.0], [4.0, 1.0], [9.0, 7.0], [3.0, 2.5]])
    plain = indicator_statistics(small, ["a", "b"])
    huge = indicator_statistics(small * 1e200, ["a", "b"])
    for column in ("skewness", "kurtosis"):
        np.testing.assert_allclose(huge[column], plain[column], rtol=1e-12)
    np.testing.assert_allclose(huge.sd / 1e200, plain.sd, rtol=1e-12)
    near_limit = indicator_statistics(small * 1e307, ["a", "b"])  # their sum overflows
    np.testing.assert_allclose(near_limit["mean"] / 1e307, plain["mean"], rtol=1e-12)
    assert (huge.outlier_flag == plain.outlier_flag).all()


def test_an_index_of_one_indicator_runs_its_audit(tmp_path):
    """One indicator: no aggregate has two parts, so no PCA; the audit leaves those tables out
    (an empty one stopped the run, its report refusing a table without rows)."""
    from nqpf_sens.running import run_config

    (tmp_path / "meta.csv").write_text("code,dimension,weight,direction\na,d1,1,positive\n")
    (tmp_path / "values.csv").write_text("unit,a\nu1,1\nu2,3\nu3,2\nu4,7\n")
    (tmp_path / "c.toml").write_text('[data]\nmetadata = "meta.csv"\nvalues = "values.csv"\n')
    folder = run_config(tmp_path / "c.toml", out=tmp_path / "out", quiet=True)
    assert (folder / "indicator_statistics.csv").is_file()
    assert not (folder / "pca_variance.csv").exists()
    assert (folder / "report.html").is_file()
