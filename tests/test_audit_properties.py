"""Invariants an uncertainty analysis must keep, checked by hypothesis on generated indices (random
trees of depth 1-3, 3-40 units, integer data with ties, zeros and missing cells, random factor
sets; see ``generated_indices``). The README lists them under "Validation"; set
``NQPF_SENS_PROPERTIES=thorough`` for many more examples than the suite's default."""

import numpy as np
import pandas as pd
import pytest
from conftest import examples
from generated_indices import config, factor_sets, indices, project
from hypothesis import given, reject, settings
from hypothesis import strategies as st

import nqpf_sens as ns

#: the uncertainty tables: what the scenarios say (the others describe the nominal run)
UNCERTAINTY = ("rank_stability", "tier_bands", "rank_shift", "rank_agreement", "convergence")


def computed(run_config: ns.RunConfig) -> ns.Results:
    """The run's tables; an example whose inputs the run refuses is not one these properties
    are about (refusals are the tenth property's)."""
    try:
        return ns.run(run_config)
    except ns.UserError:
        reject()


def zero_width(factor: dict) -> dict:
    """The factor with nothing left to vary: no spread, or every option the nominal one."""
    if factor["kind"] in ("weights", "noise"):
        return {**factor, "spread": 0.0}
    if factor["kind"] == "choice":
        return {**factor, "options": [factor["options"][0]] * 2}
    return {**factor, "options": ["none", "none"]}


@settings(max_examples=examples(15))
@given(st.data())
def test_zero_width_factors_reproduce_the_nominal_run(data):
    """Factors that cannot vary describe one scenario, the nominal one, repeated: every quantile is
    the nominal value, every probability of the nominal outcome 1, R_S 0, and no factor has an
    effect (Sobol indices of an output no scenario moves are 0/0: left empty and flagged as not
    varying; beside a factor that does vary, a zero-width factor's S1 and ST are exactly 0)."""
    index = data.draw(indices())
    factors = [zero_width(f) for f in data.draw(factor_sets(index)) if f["kind"] != "mask"]
    if not factors:
        reject()
    kind = data.draw(st.sampled_from(["montecarlo", "sobol"]))
    with project(index) as folder:
        results = computed(config(folder, factors, kind=kind, n=32))
        stability = results["rank_stability"]
        for column in ("median_rank", "mean_rank", "p05_rank", "p95_rank"):
            np.testing.assert_array_equal(stability[column], stability.nominal_rank)
        assert (stability.p_nominal_rank == 1).all() and (stability.iqr_rank == 0).all()
        bands = results["tier_bands"]
        assert (bands.p_nominal_tier == 1).all()
        assert (bands.most_likely_tier == bands.nominal_tier).all()
        for name in ("total", *(c[: -len("_nominal")] for c in bands if c.endswith("_nominal"))):
            for quantile in ("median", "p05", "p95"):
                np.testing.assert_allclose(
                    bands[f"{name}_{quantile}"], bands[f"{name}_nominal"], rtol=1e-12, atol=1e-9
                )
        shift = results["rank_shift"].set_index("statistic").value
        assert shift.rank_shift_mean == 0 and shift.share_unchanged == 1
        if kind == "sobol":
            indices_ = results["sobol_indices"]
            assert indices_[["S1", "ST"]].isna().all().all()
            assert (indices_.output_sd == 0).all() and not indices_.reliable.any()
            assert (results["sobol_outputs"].why_not == "does not vary").all()
            varying = [*factors, {"name": "moving", "kind": "weights", "level": 0}]
            moved = computed(config(folder, varying, kind=kind, n=32))["sobol_indices"]
            still = moved[(moved.factor != "moving") & (moved.output_sd > 0)]
            assert (still[["S1", "ST", "S1_low", "S1_high", "ST_low", "ST_high"]] == 0).all().all()


def probability_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame if c.startswith("p_") and not c.endswith("_se")]


@settings(max_examples=examples(25))
@given(st.data())
def test_probabilities_are_probabilities_and_add_up(data):
    """Shares of scenarios lie in [0, 1]; each unit is in exactly one tier, so its tier
    probabilities sum to 1; with ties broken (ordinal ranks) every scenario's tiers have their
    rule's sizes and exactly k units are in the top k, so the expected counts are those sizes and k
    (with ties sharing the better place, at least k); rank quantiles are ordered, lie in 1..units
    and inside their own intervals."""
    index = data.draw(indices())
    factors = data.draw(factor_sets(index))
    ties = data.draw(st.sampled_from(["ordinal", "min"]))
    interval = data.draw(st.sampled_from([0.5, 0.8, 0.9]))
    top = data.draw(st.integers(1, len(index.units)))
    outputs = {"interval": interval, "top": top}
    with project(index) as folder:
        results = computed(config(folder, factors, pipeline={"ties": ties}, outputs=outputs))
    units = len(index.units)
    stability, bands = results["rank_stability"], results["tier_bands"]
    for frame in (stability, bands):
        values = frame[probability_columns(frame)].to_numpy()
        assert ((values >= 0) & (values <= 1)).all()
    tiers = bands[[c for c in probability_columns(bands) if c.startswith("p_tier_")]]
    np.testing.assert_allclose(tiers.sum(axis=1), 1, atol=1e-12)
    top_k = stability[f"p_top_{top}"].sum()
    if ties == "ordinal":
        np.testing.assert_allclose(tiers.sum(axis=0), [1, 1, units - 2], atol=1e-9)
        assert top_k == pytest.approx(top, abs=1e-9)
    else:
        assert top_k >= top - 1e-9
    quantiles = ["p05_rank", "median_rank", "p95_rank"]
    if interval != 0.9:  # a narrower interval lies inside the 5th-95th percentiles
        quantiles[1:1] = ["interval_low_rank"]
        quantiles[-1:-1] = ["interval_high_rank"]
    ordered = stability[quantiles].to_numpy()
    assert (np.diff(ordered, axis=1) >= 0).all() and ((ordered >= 1) & (ordered <= units)).all()
    for name in quantiles:
        assert (stability[f"{name}_low"] <= stability[name]).all()
        assert (stability[name] <= stability[f"{name}_high"]).all()
    for name in [c[: -len("_median")] for c in bands if c.endswith("_median")]:
        assert (bands[f"{name}_p05"] <= bands[f"{name}_median"] + 1e-9).all()
        assert (bands[f"{name}_median"] <= bands[f"{name}_p95"] + 1e-9).all()
