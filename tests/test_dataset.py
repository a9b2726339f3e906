"""The shipped NQPF dataset reproduces the paper's published tables."""

import numpy as np
import pandas as pd
import pytest

from nqpf_sens import evaluate, nqpf_spec
from nqpf_sens.indices.nqpf.data import (
    COUNT_INDICATORS,
    alternative_tables,
    packaged,
    province_table,
    units,
)
from nqpf_sens.indices.nqpf.paper import compare_with_table3, rank_mismatches, table3

STATUSES = {"official", "paper", "derived", "reconstructed"}


@pytest.fixture(scope="module")
def provinces():
    return pd.read_csv(packaged("nqpf_provinces.csv"))


def test_every_cell_has_a_value_status_and_source(provinces):
    assert len(provinces) == 31 * 15
    assert set(provinces.status) <= STATUSES
    assert (
        provinces.value.notna().all()
        and (provinces.value >= 0).all()
        and provinces.source.notna().all()
    )
    counts = provinces[provinces.indicator.isin(COUNT_INDICATORS)].value
    np.testing.assert_array_equal(counts, np.round(counts))
    assert set(provinces.unit) == set(table3().index)


def test_baseline_reproduces_table_3():
    spec = nqpf_spec()
    comparison = compare_with_table3(evaluate(spec, province_table(spec)).to_frame())
    scores = comparison[~comparison.output.str.endswith("_rank")]
    assert len(scores) == 124
    assert scores.difference.abs().max() <= 0.05
    assert rank_mismatches(comparison).empty


def test_table_2_extremes_and_means(provinces):
    table2 = pd.read_csv(packaged("paper/table2_descriptive_2022.csv")).set_index("code")
    wide = provinces.pivot(index="unit", columns="indicator", values="value")
    for code in table2.index:
        assert round(wide[code].max()) == pytest.approx(table2.loc[code, "max"], abs=0.5 + 1e-9), (
            code
        )
        assert round(wide[code].min()) == table2.loc[code, "min"], code
        assert abs(wide[code].mean() - table2.loc[code, "mean"]) <= 0.5, code


def test_orderings_stated_in_the_text(provinces):
    wide = provinces.pivot(index="unit", columns="indicator", values="value")
    for code, leaders in {
        "sei_patents": ["Guangdong", "Beijing", "Jiangsu"],
        "pct_apps": ["Guangdong", "Beijing", "Jiangsu"],
        "data_openness": ["Shandong", "Zhejiang", "Shanghai"],
        "rd_intensity": ["Beijing", "Shanghai"],
        "labour_productivity": ["Beijing", "Shanghai"],
        "smart_5g_factories": ["Jiangsu", "Shandong"],
        "green_factories_parks": ["Guangdong", "Shandong"],
    }.items():
        ordered = wide[code].sort_values(ascending=False).index[: len(leaders)].tolist()
        assert ordered == leaders, code
    assert wide["unicorns"].sum() == 316


def test_alternative_reconstructions_also_reproduce_table_3():
    spec = nqpf_spec()
    tables = alternative_tables(spec)
    assert len(tables) >= 2
    for table in tables[:: max(1, len(tables) // 5)]:
        comparison = compare_with_table3(evaluate(spec, table).to_frame())
        assert comparison[~comparison.output.str.endswith("_rank")].difference.abs().max() <= 0.05
        assert rank_mismatches(comparison).empty


def test_units_have_regions_and_flagged_gdp():
    frame = units()
    assert frame.region.value_counts().to_dict() == {
        "West": 12,
        "East": 10,
        "Central": 6,
        "Northeast": 3,
    }
    missing = frame[frame.gdp_per_capita.isna()]
    assert (missing.gdp_per_capita_status == "missing").all()
    assert (frame.dropna(subset=["gdp_per_capita"]).gdp_per_capita_status != "missing").all()
