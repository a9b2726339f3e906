"""Factors decoded from design rows: measurement noise, by cell provenance (statuses read from
tidy data, one spread per status) or uniform, uniform weight multipliers, weighted choices and
masked cells."""

import numpy as np
import pytest

from nqpf_sens import UserError, load_spec, load_table
from nqpf_sens.engine.batch import Engine, ScenarioBatch
from nqpf_sens.engine.pipeline import Pipeline
from nqpf_sens.indices.nqpf.data import alternative_tables, province_table
from nqpf_sens.uncertainty.factors import Factor, FactorSet, build_factor

META = "code,dimension,weight,direction\na,d1,1,positive\nb,d1,1,positive\nc,d2,1,positive\n"
TIDY = """unit,indicator,year,value,status
u0,a,2021,1.0,official
u0,b,2021,2.0,paper
u0,c,2021,3.0,
u1,a,2021,4.0, reconstructed
u1,b,2021,5.0,NA
u0,a,2022,1.5,official
u0,b,2022,2.5,paper
u0,c,2022,3.5,reconstructed
u1,a,2022,4.5,official
u1,b,2022,5.5,paper
u1,c,2022,6.5,reconstructed
"""
SPREADS = {"official": 0.01, "paper": 0.2, "reconstructed": 0.0}


@pytest.fixture
def small(tmp_path):
    (tmp_path / "meta.csv").write_text(META)
    (tmp_path / "values.csv").write_text(TIDY)
    spec = load_spec(tmp_path / "meta.csv")
    return spec, load_table(tmp_path / "values.csv", spec)


def noise_factor(spec, table, entry):
    """A noise factor (or another kind that ``entry`` names) built as a run builds it, and a factor
    set around it."""
    factor = build_factor(
        {"name": "noise", "kind": "noise", **entry},
        1,
        spec,
        Pipeline(),
        1,
        "run.toml",
        table.statuses,
    )
    factors = FactorSet(
        [factor],
        Pipeline(),
        [len(level) for level in spec.levels[:-1]],
        list(spec.weights),
        table.values.shape,
        ~np.isnan(table.values),
    )
    return factor, factors


def test_tidy_statuses_round_trip_as_text(small):
    _, table = small
    expected = [
        [["official", "paper", None], ["reconstructed", "NA", None]],  # "NA" is a label here
        [["official", "paper", "reconstructed"], ["official", "paper", "reconstructed"]],
    ]
    assert table.statuses.tolist() == expected
    assert table.year(2022).statuses.tolist() == expected[1:]


def test_data_without_statuses_have_none(small, tmp_path):
    spec, _ = small
    (tmp_path / "wide.csv").write_text("unit,a,b,c,status\nu0,1,2,3,official\nu1,4,5,6,paper\n")
    (tmp_path / "plain.csv").write_text("unit,indicator,value\nu0,a,1\nu0,b,2\nu0,c,3\n")
    assert load_table(tmp_path / "wide.csv", spec).statuses is None
    assert load_table(tmp_path / "plain.csv", spec).statuses is None


def test_shipped_provinces_keep_their_statuses_in_every_alternative(spec):
    table = province_table(spec)
    labels, counts = np.unique(table.statuses.astype(str), return_counts=True)
    assert dict(zip(labels, counts, strict=True)) == {
        "official": 93,
        "paper": 15,
        "reconstructed": 357,
    }
    alternatives = alternative_tables(spec, table)
    redrawn = np.any([a.values != table.values for a in alternatives], axis=0)
    assert set(table.statuses[redrawn]) == {"reconstructed"}
    assert all(np.array_equal(a.statuses, table.statuses) for a in alternatives)


def test_each_cell_gets_the_spread_of_its_status(small):
    spec, table = small
    _, factors = noise_factor(spec, table, {"spread_by_status": SPREADS, "spread": 0.5})
    noise = factors.decode(np.random.default_rng(1).random((4000, 1))).value_factors
    spread = np.vectorize(lambda s: SPREADS.get(s, 0.5))(table.statuses)  # unlisted: `spread`
    assert np.all(np.abs(noise - 1) <= spread)
    assert np.all(noise[:, spread == 0] == 1)  # reconstructed: never perturbed
    varying = spread > 0
    assert np.all(np.ptp(noise[:, varying], axis=0) > 1.9 * spread[varying])  # fills its band


@pytest.mark.parametrize(
    "entry", [{"spread": 0.2}, {"kind": "weights", "spread": 0.2}], ids=["noise", "weights"]
)
def test_uniform_multipliers_fall_on_both_sides_of_one(small, entry):
    """A spread s draws multipliers from U[1 - s, 1 + s]: inside that band, reaching both sides of
    1, and 1 on average (one-sided draws 1 + s U would average 1 + s / 2)."""
    spec, table = small
    _, factors = noise_factor(spec, table, entry)
    decoded = factors.decode(np.random.default_rng(4).random((2000, factors.n_columns)))
    multipliers = decoded.weight_factors[0] if "kind" in entry else decoded.value_factors
    assert np.all(np.abs(multipliers - 1) <= 0.2)
    assert multipliers.min() < 0.9 and multipliers.max() > 1.1
    assert multipliers.mean() == pytest.approx(1, abs=0.01)


def test_a_weighted_choice_follows_its_probabilities():
    """Probabilities (0.2, 0.8) cut [0, 1) at 0.2: u below it picks the first option, u from it on
    the second; equiprobable options cut at k / n."""
    weighted = Factor("w", "choice", options=("a", "b"), probabilities=(0.2, 0.8))
    u = np.array([0.0, 0.19, 0.2, 0.21, 0.99])
    np.testing.assert_array_equal(weighted.option_index(u), [0, 0, 1, 1, 1])
    equal = Factor("e", "choice", options=("a", "b", "c"))
    np.testing.assert_array_equal(
        equal.option_index(np.array([0.3, 0.34, 0.67, 0.9])), [0, 1, 2, 2]
    )


def test_a_mask_blanks_exactly_its_cells_among_the_observed(small):
    """cells = 2: every scenario blanks two cells, each observed (a missing cell is no blank)."""
    spec, table = small
    _, factors = noise_factor(spec, table, {"kind": "mask", "cells": 2})
    masked = factors.decode(np.random.default_rng(6).random((200, 1))).masked
    assert (masked.sum(axis=(1, 2, 3)) == 2).all()
    assert not masked[:, np.isnan(table.values)].any()
    assert masked.any(axis=0).sum() > 2  # different cells in different scenarios


def test_unlisted_statuses_are_not_perturbed_by_default(small):
    spec, table = small
    factor, factors = noise_factor(spec, table, {"spread_by_status": {"paper": 0.1}})
    noise = factors.decode(np.random.default_rng(2).random((500, 1))).value_factors
    paper = table.statuses == "paper"
    assert factor.spread == 0 and np.all(noise[:, ~paper] == 1) and np.all(noise[:, paper] != 1)


def test_noise_by_status_does_not_depend_on_chunking(spec):
    table = province_table(spec)
    _, factors = noise_factor(spec, table, {"spread_by_status": {"official": 0.3, "paper": 0.3}})
    u = np.random.default_rng(3).random((60, 1))
    whole = factors.decode(u).value_factors
    engine = Engine(spec, table)

    def scores(noise):
        batch = ScenarioBatch((Pipeline(),), np.zeros(len(noise), dtype=np.int64), None, noise)
        return engine.evaluate(batch).scores

    for size in (1, 7, 32):
        chunks = [factors.decode(u[i : i + size]).value_factors for i in range(0, len(u), size)]
        assert np.array_equal(np.concatenate(chunks), whole)
        assert np.array_equal(np.concatenate([scores(c) for c in chunks]), scores(whole))
    assert not np.allclose(scores(whole), scores(np.ones_like(whole)))  # the noise has an effect


@pytest.mark.parametrize(
    "entry, statuses, expected",
    [
        (
            {"spread_by_status": {"official": 0.01}},
            None,
            "spread_by_status needs each cell's status: the data have no 'status' column",
        ),
        (
            {"spread_by_status": {"oficial": 0.01}},
            "table",
            "no cell has status 'oficial' "
            "(statuses in the data: NA, official, paper, reconstructed)",
        ),
        (
            {"spread_by_status": {"paper": 1.0}},
            "table",
            "spread_by_status: paper must be in [0, 1)",
        ),
        ({"spread_by_status": {}}, "table", "spread_by_status lists no status"),
    ],
)
def test_spread_by_status_errors_are_one_line(small, entry, statuses, expected):
    spec, table = small
    with pytest.raises(UserError) as error:
        build_factor(
            {"name": "noise", "kind": "noise", **entry},
            2,
            spec,
            Pipeline(),
            1,
            "run.toml",
            table.statuses if statuses else None,
        )
    line = error.value.one_line()
    assert line.startswith("run.toml: [[factors]] #2 (noise): ") and expected in line, line
