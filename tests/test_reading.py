"""The report's reading says only what the intervals support."""

import pandas as pd

from nqpf_sens.report.reading import reading


def summary(st, low, high):
    return pd.DataFrame(
        {
            "factor": ["a", "b", "c"],
            "S1_rank_shift": [0.1, 0.1, 0.1],
            "ST_rank_shift": st,
            "ST_rank_shift_low": low,
            "ST_rank_shift_high": high,
            "max_ST_ranks": [0.5, 0.3, 0.01],
            "units_where_top": [3, 1, 0],
        }
    )


def lines(tables):
    return [line for line, _ in reading({"convergence": {}}, tables)]


def test_a_leader_is_named_only_when_its_interval_clears_the_next():
    clear = lines({"sobol_summary": summary([0.6, 0.2, 0.1], [0.55, 0.1, 0.0], [0.65, 0.3, 0.2])})
    assert any(
        "'a' has the largest total effect" in line and "more than half" in line for line in clear
    )
    close = lines({"sobol_summary": summary([0.45, 0.4, 0.1], [0.35, 0.3, 0.0], [0.55, 0.5, 0.2])})
    assert not any("has the largest total effect" in line for line in close)
    assert any("cannot be told apart" in line and "'b'" in line for line in close)
    modest = lines({"sobol_summary": summary([0.4, 0.1, 0.1], [0.35, 0.0, 0.0], [0.45, 0.2, 0.2])})
    assert not any("more than half" in line for line in modest)
    assert any("below 0.05 for every reliable unit: c." in line for line in modest)


def test_tiers_are_counted_tier_by_tier_beyond_monte_carlo_error():
    bands = pd.DataFrame(
        {
            "unit": ["u1", "u2", "u3", "u4"],
            "nominal_tier": [1, 2, 2, 2],
            "p_nominal_tier": [0.91, 0.99, 1.0, 0.5],
            "p_nominal_tier_se": [0.02, 0.005, 0.0, 0.05],
            "most_likely_tier": [1, 2, 2, 1],
            "scenarios": [2048] * 4,
        }
    )
    found = " ".join(lines({"tier_bands": bands}))
    assert "tier 1: 1 unit, 0 of them robust" in found  # 0.91 - 1.96 x 0.02 < 0.9
    assert "tier 2: 3 units, 2 of them robust" in found
    assert "2,048 scenarios" in found
