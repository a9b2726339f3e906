"""What a general composite index needs beyond NQPF: denominators, group imputation, COINr-style
outlier treatment, deeper trees; and the ASEM example built as COINr's example coin builds it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nqpf_sens import Pipeline, evaluate, load_spec, load_table
from nqpf_sens.engine.impute import impute
from nqpf_sens.engine.pipeline import denominated, prepare
from nqpf_sens.engine.transform import sample_moments, treat_outliers
from nqpf_sens.errors import UserError

ASEM = Path(__file__).resolve().parents[2] / "shared" / "data" / "asem"
needs_asem = pytest.mark.skipif(
    not (ASEM / "asem_iMeta.csv").is_file(),
    reason="the ASEM example data (shared/data/asem beside the project) is not present",
)


def test_sample_skewness_and_kurtosis_match_the_excel_definitions():
    skewness, _ = sample_moments(np.array([1.0, 2, 3, 4, 5]))
    _, kurtosis = sample_moments(np.array([1.0, 2, 3, 4, 5, 6]))
    assert skewness == pytest.approx(0.0) and kurtosis == pytest.approx(-1.2)


def one_column_treatment(column, winmax, force, fallback):
    """The treatment of one indicator, written out point by point as COINr's ``Treat`` describes
    it: the yardstick of the vectorised one."""

    def moments(x):
        n, d = x.size, x - x.mean()
        m2 = (d**2).sum()
        if m2 == 0:
            return 0.0, 0.0
        skew = np.sqrt(n) * (d**3).sum() / m2**1.5 * np.sqrt(n * (n - 1)) / (n - 2)
        r = n * (d**4).sum() / m2**2
        return skew, ((n + 1) * (r - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))

    def passes(x):
        skew, kurt = moments(x)
        return abs(skew) < 2.0 or kurt < 3.5

    observed = ~np.isnan(column)
    x = column[observed].copy()
    if x.size < 4 or passes(x):
        return column
    treated: set[int] = set()
    while (force or not passes(x)) and len(treated) < winmax:
        high = moments(x)[0] >= 0
        at = np.flatnonzero(x == (x.max() if high else x.min()))
        rest = np.delete(x, at)
        if rest.size == 0:
            break
        x[at] = rest.max() if high else rest.min()
        treated.update(at.tolist())
    if not passes(x) and fallback == "log_CT":
        x = column[observed]
        x = np.log(x - x.min() + 0.01 * (x.max() - x.min()))
    result = column.copy()
    result[observed] = x
    return result


@given(
    hnp.arrays(
        float,
        st.tuples(st.integers(1, 6), st.integers(2, 14)),
        elements=st.sampled_from([0.0, 1.0, 2.0, 3.0, 50.0, 400.0, -30.0, np.nan]),
    ),
    st.integers(0, 6),
    st.booleans(),
    st.sampled_from(["log_CT", "none"]),
)
def test_rows_treated_at_once_are_treated_as_one_by_one(rows, winmax, force, fallback):
    """Ties at the extreme, missing cells, forced points, rows of equal values: the vectorised
    treatment of many rows equals the point-by-point definition applied to each row."""
    found = treat_outliers(rows, winmax, force=force, fallback=fallback)
    expected = [one_column_treatment(row, winmax, force, fallback) for row in rows]
    np.testing.assert_allclose(found, np.array(expected), rtol=1e-12, atol=1e-12)


def test_treatment_winsorises_the_highest_point_until_the_indicator_passes():
    x = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 30, 100])  # skew 3.06, kurtosis 9.74: fails
    np.testing.assert_array_equal(
        treat_outliers(x, winmax=5), np.r_[x[:-1], 30.0]
    )  # one point suffices


def test_treatment_falls_back_to_a_log_when_winsorisation_is_not_enough():
    x = np.r_[np.ones(20), 10.0, 100.0, 1000.0, 10000.0]
    expected = np.log(x - 1 + 0.01 * 9999)
    np.testing.assert_allclose(treat_outliers(x, winmax=1), expected)


def test_treatment_leaves_passing_and_missing_values_alone():
    x = np.array([1.0, np.nan, 3, 4, 5, 6])
    np.testing.assert_array_equal(treat_outliers(x), x)


def test_group_imputation_uses_the_units_own_group():
    values = np.array([[[1.0], [3.0], [np.nan], [10.0], [np.nan]]])
    groups = np.array(["a", "a", "a", "b", "b"])
    np.testing.assert_allclose(impute(values, "mean", groups=groups).ravel(), [1, 3, 2, 10, 10])


def write(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    return tmp_path / name


def test_denominators_divide_before_imputation(tmp_path):
    meta = write(
        tmp_path,
        "meta.csv",
        "iCode,Parent,Weight,Direction,Type,Denominator\nx,P,1,1,Indicator,Pop\ny,P,1,-1,Indicator,\nP,Index,1,1,Aggregate,\nIndex,,1,1,Aggregate,\nPop,,,,Denominator,\ngrp,,,,Group,\n",
    )
    data = write(
        tmp_path,
        "data.csv",
        "code,Time,grp,Pop,x,y\nA,2018,g1,10,50,1\nB,2018,g1,20,40,2\nC,2018,g1,5,,3\nD,2018,g2,8,16,4\n",
    )
    spec = load_spec(meta)
    table = load_table(data, spec, unit_column="code", year_column="Time")
    np.testing.assert_allclose(denominated(Pipeline(), table)[0, :, 0], [5, 2, np.nan, 2])
    np.testing.assert_allclose(
        denominated(Pipeline(denominate=False), table)[0, :, 0], [50, 40, np.nan, 16]
    )
    # C takes its group's mean of the denominated values, (5 + 2) / 2 = 3.5,
    # then min-max: (3.5 - 2) / 3
    normalised = prepare(Pipeline(imputation="mean", imputation_group="grp"), table, spec)
    np.testing.assert_allclose(normalised[0, :, 0], [100, 0, 50, 0])


def test_per_indicator_targets_and_goalposts_come_from_the_metadata(tmp_path):
    """COINr's iMeta columns (Target, goalpost_lower/upper/scale) carry each indicator's own
    parameters through to the normalisation; a cell that is not a number is refused by name."""
    meta = write(
        tmp_path,
        "meta.csv",
        "code,dimension,weight,direction,Target,goalpost_lower,goalpost_upper\n"
        "x,P,1,1,8,0,8\ny,P,1,-1,1,0,4\n",
    )
    data = write(tmp_path, "data.csv", "unit,x,y\nA,2,1\nB,4,2\nC,10,4\n")
    spec = load_spec(meta)
    table = load_table(data, spec)
    found = prepare(Pipeline(normalisation="distance_to_target"), table, spec)[0]
    np.testing.assert_allclose(found[:, 0], [0, 100 / 3, 400 / 3])  # (x - 2) / (8 - 2)
    np.testing.assert_allclose(found[:, 1], [100, 200 / 3, 0])  # (4 - y) / (4 - 1)
    coinr_scale = Pipeline(normalisation="distance_to_target", distance_scale=1)
    np.testing.assert_allclose(prepare(coinr_scale, table, spec)[0], found / 100)  # n_dist2targ
    found = prepare(Pipeline(normalisation="goalposts"), table, spec)[0]
    np.testing.assert_allclose(found, [[25, 75], [50, 50], [100, 0]])
    found = prepare(
        Pipeline(normalisation="distance_to_reference", reference_unit="B"), table, spec
    )
    np.testing.assert_allclose(found[0, :, 0], [0, 100, 400])
    with pytest.raises(UserError, match="reference_unit: 'Z' is not a unit"):
        prepare(Pipeline(normalisation="distance_to_reference", reference_unit="Z"), table, spec)
    bad = write(tmp_path, "bad.csv", "code,dimension,weight,direction,Target\nx,P,1,1,high\n")
    with pytest.raises(UserError, match="column 'Target'"):
        load_spec(bad)


def test_an_indicator_may_name_its_own_normalisation(tmp_path):
    """A metadata ``normalisation`` column overrides the pipeline's method for the indicators
    that name one (COINr's indiv_specs); an unknown method is refused by cell."""
    meta = write(
        tmp_path,
        "meta.csv",
        "code,dimension,weight,direction,normalisation\nx,P,1,1,rank\ny,P,1,1,\n",
    )
    data = write(tmp_path, "data.csv", "unit,x,y\nA,2,1\nB,4,2\nC,10,4\n")
    spec = load_spec(meta)
    table = load_table(data, spec)
    found = prepare(Pipeline(normalisation="zscore"), table, spec)[0]
    np.testing.assert_allclose(found[:, 0], [0, 50, 100])  # its own: percentile ranks
    y = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(found[:, 1], (y - y.mean()) / y.std())  # the pipeline's
    bad = write(tmp_path, "bad.csv", "code,dimension,weight,direction,normalisation\nx,P,1,1,mm\n")
    with pytest.raises(UserError, match="unknown normalisation 'mm'"):
        load_spec(bad)


@needs_asem
def test_asem_index_builds_like_the_example_coin(tmp_path):
    from nqpf_sens.running import run_config

    config = Path(__file__).resolve().parents[1] / "configs" / "asem.toml"
    out = run_config(config, out=tmp_path / "asem", quiet=True)
    scores = pd.read_csv(out / "baseline_scores.csv")
    assert len(scores) == 51 and sorted(scores["rank"]) == list(range(1, 52))
    assert {
        "Physical",
        "ConEcFin",
        "Political",
        "Instit",
        "P2P",
        "Environ",
        "Social",
        "SusEcFin",
        "Conn",
        "Sust",
        "total",
    } <= set(scores.columns)
    np.testing.assert_allclose(scores.total, (scores.Conn + scores.Sust) / 2)
    np.testing.assert_allclose(scores.Sust, scores[["Environ", "Social", "SusEcFin"]].mean(axis=1))
    assert (
        scores[["Physical", "Environ"]].min().min() >= 0
        and scores[["Physical", "Environ"]].max().max() <= 100
    )


@needs_asem
def test_asem_nominal_scores_equal_coinr_s_own():
    """Every aggregate of every unit (8 pillars, 2 sub-indices, the index) as COINr 1.1.14
    computes them for its example coin, to 1e-9 on the 0-100 scale."""
    from nqpf_sens import run

    config = Path(__file__).resolve().parents[1] / "configs" / "asem.toml"
    mine = run(config)["baseline_scores"].set_index("unit").rename(columns={"total": "Index"})
    coinr = pd.read_csv(ASEM / "coinr_nominal_scores.csv").set_index("uCode")
    assert sorted(mine.index) == sorted(coinr.index)
    difference = (mine.loc[coinr.index, coinr.columns] - coinr).abs().to_numpy()
    assert difference.max() < 1e-9
    coinr_ranks = coinr.Index.rank(ascending=False, method="min").astype(int)
    assert (mine.loc[coinr.index, "rank"] == coinr_ranks).all()


SPIKE = np.array([1.0] * 9 + [100.0])  # fails the skew/kurtosis rule whatever is winsorised


@pytest.mark.parametrize(
    "fallback, column, expected",
    [
        ("log_CT", SPIKE, np.log(SPIKE - 1 + 0.99)),
        ("log_CT_plus", SPIKE, np.log(SPIKE - 1 + 0.99)),  # positive skew: as log_CT
        ("log_CT_plus", 101 - SPIKE, -np.log(100 + 0.99 - (101 - SPIKE))),  # negative skew
        ("boxcox", SPIKE, (np.sqrt(SPIKE) - 1) / 0.5),  # makepos: x - min + 1 is x here
        ("none", SPIKE, SPIKE),
    ],
)
def test_treatment_fallbacks_as_coinr_defines_them(fallback, column, expected):
    """With no point winsorised (winmax 0) the failing indicator gets the fallback at once."""
    found = treat_outliers(column, winmax=0, fallback=fallback, boxcox_lambda=0.5)
    np.testing.assert_allclose(found, expected)


def test_forced_winsorisation_treats_winmax_points_of_a_failing_indicator_only():
    """COINr's force_win: an indicator failing its first check is winsorised up to winmax points
    even after it passes (here the side flips to the low one at the third point, as the skew
    turns negative); COINr's Treat checks first, so a passing indicator is left alone."""
    failing = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 30, 100])  # passes after one point
    np.testing.assert_array_equal(treat_outliers(failing, 3), np.r_[failing[:-1], 30])
    forced = treat_outliers(failing, 3, force=True)
    np.testing.assert_array_equal(forced, [2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10])
    passing = np.array([1, 1, 1, 2, 2, 3, 4, 6, 9, 12.0])
    np.testing.assert_array_equal(treat_outliers(passing, 2, force=True), passing)


def test_a_code_used_at_two_levels_is_refused(tmp_path):
    """An indicator named like its dimension would make exclusions and columns ambiguous."""
    meta = write(tmp_path, "meta.csv", "code,dimension,weight,direction\nx,x,1,1\ny,x,1,1\n")
    with pytest.raises(UserError, match="'x' names both"):
        load_spec(meta)


def incomplete_index(tmp_path):
    """Two pillars, P (x with weight 1, y with weight 3) and Q (z), and data with holes."""
    meta = write(
        tmp_path, "meta.csv", "code,dimension,weight,direction\nx,P,1,1\ny,P,3,1\nz,Q,1,1\n"
    )
    data = write(tmp_path, "data.csv", "unit,x,y,z\nA,0,10,5\nB,10,,1\nC,5,0,\nD,10,20,3\n")
    spec = load_spec(meta)
    return spec, load_table(data, spec)


def test_aggregation_without_imputation_follows_coinr_s_means(tmp_path):
    """COINr's ``Aggregate(dat_thresh = t)`` with ``a_amean`` / ``a_gmean``: min-max over the units
    observed, each mean over the children observed with their weights renormalised, a parent
    missing where fewer than t of its children are observed. Worked by hand: x -> 0, 100, 50, 100;
    y -> 50, -, 0, 100; z -> 100, 0, -, 50."""
    spec, table = incomplete_index(tmp_path)
    with pytest.raises(UserError, match="or set data_threshold"):
        evaluate(spec, table, Pipeline(imputation="none"))
    result = evaluate(spec, table, Pipeline(imputation="none", data_threshold=0.5)).to_frame()
    np.testing.assert_allclose(result.P, [37.5, 100, 12.5, 100])  # (x + 3 y) / 4, B: x alone
    np.testing.assert_allclose(result.Q, [100, 0, np.nan, 50])
    # P weighs 4 (its indicators' sum) against Q's 1; C: P alone (1 of 2 parts >= 0.5)
    np.testing.assert_allclose(result.total, [50, 80, 12.5, 90])
    assert result["rank"].tolist() == [3, 2, 4, 1]
    geometric = Pipeline(
        imputation="none", data_threshold=0.5, minmax_range=(1, 100), nonpositive="refuse"
    ).with_(aggregation="geometric")
    found = evaluate(spec, table, geometric).to_frame()
    x, y = np.array([1, 100, 50.5, 100]), np.array([50.5, np.nan, 1, 100])
    p = np.where(np.isnan(y), x, np.exp((np.log(x) + 3 * np.log(np.nan_to_num(y, nan=1))) / 4))
    np.testing.assert_allclose(found.P, p)
    with pytest.raises(UserError, match="index missing for unit 'B'.*data_threshold = 0.6"):
        evaluate(spec, table, Pipeline(imputation="none", data_threshold=0.6))


def test_a_rejected_value_is_not_mistaken_for_a_missing_one(tmp_path):
    """Under ``nonpositive = 'refuse'`` a zero reaching a geometric mean stops the run even when
    aggregation skips missing children: skipping it would silently drop an observed value."""
    spec, table = incomplete_index(tmp_path)
    refuse = Pipeline(
        imputation="none", data_threshold=0.5, aggregation="geometric", nonpositive="refuse"
    )
    with pytest.raises(UserError, match="met a value <= 0"):
        evaluate(spec, table, refuse)


def test_data_driven_weights_refuse_missing_cells(tmp_path):
    spec, table = incomplete_index(tmp_path)
    with pytest.raises(UserError, match="weighting 'entropy' derives weights from complete data"):
        evaluate(spec, table, Pipeline(imputation="none", data_threshold=0.5, weighting="entropy"))


@needs_asem
@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.8, (0.8, 0.0, 0.0)])
def test_asem_without_imputation_equals_the_plain_reference(threshold):
    """Every aggregate of COINr's example data aggregated without imputation, against the plain
    pandas reference computation (which skips missing cells its own way), at several thresholds
    (one per level: pillars left missing, the index complete); a unit whose index the threshold
    leaves missing is refused by name."""
    from nqpf_sens.engine.reference import reference_scores

    spec = load_spec(ASEM / "asem_iMeta.csv")
    table = load_table(ASEM / "asem_iData.csv", spec, unit_column="uCode", year_column="Time")
    pipeline = Pipeline(imputation="none", data_threshold=threshold)
    frame = pd.DataFrame(
        denominated(pipeline, table)[0], index=list(table.units), columns=list(spec.indicators)
    )
    expected = reference_scores(frame, spec, data_threshold=threshold)
    assert expected.iloc[:, :-1].isna().any().any() == (threshold not in (0.0, 0.5))
    if expected[spec.index_code].isna().any():
        with pytest.raises(UserError, match="leaves the index missing"):
            evaluate(spec, table, pipeline)
        return
    found = evaluate(spec, table, pipeline).to_frame().set_index("unit")
    for code in spec.aggregates[:-1]:
        np.testing.assert_allclose(found[code], expected[code], rtol=1e-12, atol=1e-10)
        assert found[code].isna().equals(expected[code].isna())
    np.testing.assert_allclose(found.total, expected[spec.index_code], rtol=1e-12)
    assert (found["rank"] == expected["rank"]).all()


def test_an_indicator_may_carry_its_own_treatment(tmp_path):
    """Metadata columns named like the pipeline's keys (``winsor_max``, ``treat_fallback``,
    ``boxcox_lambda``) give an indicator its own outlier treatment, as COINr's
    ``Treat(indiv_specs = ...)``; empty cells take the pipeline's. Four copies of one skewed
    indicator, which passes once its highest point is winsorised (see above)."""
    x = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 30, 100])
    meta = write(
        tmp_path,
        "meta.csv",
        "code,dimension,weight,direction,winsor_max,treat_fallback,boxcox_lambda\n"
        "a,P,1,1,,,\nb,P,1,1,0,none,\nc,P,1,1,0,,\nd,P,1,1,0,boxcox,0\n",
    )
    rows = "\n".join(f"u{i},{v},{v},{v},{v}" for i, v in enumerate(x))
    data = write(tmp_path, "data.csv", f"unit,a,b,c,d\n{rows}\n")
    spec = load_spec(meta)
    table = load_table(data, spec)
    pipeline = Pipeline(transformation="treat", transform_target="all", normalisation="minmax")
    found = prepare(pipeline, table, spec)[0]
    expected = [
        np.r_[x[:-1], 30.0],  # the pipeline's five points: one suffices
        x,  # no point, no fallback: untouched
        np.log(x - 1 + 0.01 * 99),  # no point, the pipeline's log_CT
        np.log(x - 1 + 1),  # no point, Box-Cox with lambda 0: log(x - min + 1)
    ]
    for column, values in enumerate(expected):
        scaled = 100 * (values - values.min()) / np.ptp(values)
        np.testing.assert_allclose(found[:, column], scaled, err_msg=spec.indicators[column])
    bad = write(tmp_path, "bad.csv", "code,dimension,weight,direction,winsor_max\nx,P,1,1,2.5\n")
    with pytest.raises(UserError, match="row 2 \\(x\\), column 'winsor_max'"):
        load_spec(bad)
    bad = write(tmp_path, "bad.csv", "code,dimension,weight,direction,treat_fallback\nx,P,1,1,ln\n")
    with pytest.raises(UserError, match="unknown treat_fallback 'ln'"):
        load_spec(bad)


def test_an_indicator_may_carry_its_own_scale(tmp_path):
    """Metadata columns ``minmax_lower``/``minmax_upper`` and ``zscore_mean``/``zscore_sd`` give
    an indicator its own min-max range or z-score scale (COINr's per-indicator ``l_u`` and
    ``m_sd``); empty cells take the pipeline's; an impossible range is refused by indicator."""
    meta = write(
        tmp_path,
        "meta.csv",
        "code,dimension,weight,direction,minmax_lower,minmax_upper,zscore_mean,zscore_sd\n"
        "x,P,1,1,1,10,10,2\ny,P,1,-1,,,,\n",
    )
    data = write(tmp_path, "data.csv", "unit,x,y\nA,2,1\nB,4,2\nC,10,4\n")
    spec = load_spec(meta)
    table = load_table(data, spec)
    found = prepare(Pipeline(minmax_range=(0, 100)), table, spec)[0]
    np.testing.assert_allclose(found[:, 0], [1, 1 + 9 * 2 / 8, 10])
    np.testing.assert_allclose(found[:, 1], [100, 200 / 3, 0])
    found = prepare(Pipeline(normalisation="zscore"), table, spec)[0]
    x, y = np.array([2.0, 4, 10]), -np.array([1.0, 2, 4])
    np.testing.assert_allclose(found[:, 0], 10 + 2 * (x - x.mean()) / x.std())
    np.testing.assert_allclose(found[:, 1], (y - y.mean()) / y.std())
    bad = write(
        tmp_path, "bad.csv", "code,dimension,weight,direction,minmax_lower\nx,P,1,1,100\ny,P,1,1,\n"
    )
    with pytest.raises(UserError, match="indicator 'x': its min-max range needs minmax_lower"):
        prepare(Pipeline(), load_table(data, load_spec(bad)), load_spec(bad))


def test_a_tree_deeper_than_python_recursion_and_types_with_spaces_load(tmp_path):
    """A chain of 1,200 aggregates (a RecursionError traceback before) and iMeta types written
    with spaces around them ('Indicator ' rows were dropped without a word)."""
    depth = 1200
    rows = ["iCode,Parent,Weight,Direction,Type", "a,n0,1,1, Indicator ", "b,n0,1,1,indicator"]
    rows += [f"n{k},n{k + 1},1,,Aggregate " for k in range(depth)] + [f"n{depth},,1,,AGGREGATE"]
    (tmp_path / "meta.csv").write_text("\n".join(rows) + "\n")
    spec = load_spec(tmp_path / "meta.csv")
    assert spec.indicators == ("a", "b") and len(spec.levels) == depth + 2
    assert spec.index_code == f"n{depth}"
