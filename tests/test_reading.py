"""The report's reading says only what the intervals support."""

import numpy as np
import pandas as pd
from conftest import write_units_and_values

from nqpf_sens.report.reading import reading
from nqpf_sens.running import run_config


def summary(st, low, high):
    return pd.DataFrame(
        {
            "factor": ["a", "b", "c"],
            "S1_rank_shift": [0.1, 0.1, 0.1],
            "ST_rank_shift": st,
            "ST_rank_shift_low": low,
            "ST_rank_shift_high": high,
            "ST_ranks": st,  # all ranks as R_S: the sentences are checked on R_S's
            "ST_ranks_low": low,
            "ST_ranks_high": high,
            "max_ST_ranks": [0.5, 0.3, 0.01],
            "max_ST_high_ranks": [0.6, 0.4, 0.04],
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
    assert any(
        "for every reliable unit (upper end of the 95% interval): c." in line for line in modest
    )


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
    bands["p_tier_1"] = [0.91, 0.01, 0.0, 0.5]
    bands["p_tier_2"] = 1 - bands.p_tier_1
    bands["p_tier_1_se"] = bands["p_tier_2_se"] = bands.p_nominal_tier_se
    found = " ".join(lines({"tier_bands": bands}))
    assert "tier 1: 1 unit, 0 of them robust" in found  # 0.91 - 1.96 x 0.02 < 0.9
    assert "tier 2: 3 units, 2 of them robust" in found
    assert "2,048 scenarios" in found


def test_a_most_likely_tier_is_named_only_when_it_clears_the_others_within_their_errors():
    """Two units each in tier 1 half of the time: estimates of 0.496 and 0.504 (+/- 0.022) name
    no most likely tier; a third whose likeliest tier's interval clears the next is named, and a
    tier within error of the likeliest is named beside it (three tiers)."""
    bands = pd.DataFrame(
        {
            "unit": ["A", "B", "C"],
            "nominal_tier": [1, 1, 2],
            "p_tier_1": [0.496, 0.504, 0.10],
            "p_tier_1_se": [0.022, 0.022, 0.01],
            "p_tier_2": [0.504, 0.496, 0.40],
            "p_tier_2_se": [0.022, 0.022, 0.02],
            "p_tier_3": [0.0, 0.0, 0.50],
            "p_tier_3_se": [0.0, 0.0, 0.02],
            "most_likely_tier": [2, 1, 3],
            "scenarios": [512] * 3,
        }
    )
    bands["p_nominal_tier"] = [0.496, 0.504, 0.40]
    found = " ".join(lines({"tier_bands": bands}))
    assert "A (tier 1 in 50%, most likely tier 1 or 2, not told apart within" in found
    assert "B (tier 1 in 50%, most likely tier 1 or 2, not told apart within" in found
    assert "C (tier 2 in 40%, most likely tier 3)" in found
    close = bands.assign(p_tier_2=[0.504, 0.496, 0.47], p_nominal_tier=[0.496, 0.504, 0.47])
    found = " ".join(lines({"tier_bands": close}))
    assert "C (tier 2 in 47%, most likely tier 2 or 3, not told apart" in found


def test_a_leader_must_clear_every_other_factor_not_only_the_runner_up():
    table = summary([0.6, 0.4, 0.3], [0.45, 0.35, 0.0], [0.7, 0.44, 0.62])
    found = lines({"sobol_summary": table})
    assert not any("has the largest total effect" in line for line in found)
    assert any("cannot be told apart" in line and "'c'" in line for line in found)


def test_ties_negative_interactions_and_constant_outputs_are_said_as_they_are():
    table = summary([float("nan")] * 3, [float("nan")] * 3, [float("nan")] * 3)
    table["units_where_top"] = [2, 2, 0]
    outputs = pd.DataFrame(
        {"output": ["rank_shift"], "reliable": ["True"], "interaction_share": [-0.12]}
    )
    found = lines({"sobol_summary": table, "sobol_outputs": outputs})
    assert not any("total effect on the mean rank shift" in line for line in found)
    assert any(
        "'a' and 'b' each has the largest ST for the rank of 2 units" in line for line in found
    )
    assert any(
        "The S1 of R_S sum to 1.12, above 1 (1 - sum of S1: -12%): estimator noise" in line
        for line in found
    )
    outputs["interaction_share_low"], outputs["interaction_share_high"] = -0.30, 0.25
    found = lines({"sobol_summary": table, "sobol_outputs": outputs})  # never "a negative share"
    assert any("(1 - sum of S1: -12% (95% interval -30 to 25%))" in line for line in found)
    assert not any("Interactions: -12%" in line for line in found)
    assert not any("choices matter in combination" in line for line in found)


def test_the_least_robust_tiers_say_how_many_more_units_are_not_named():
    """At most eight units are named; the sentence counts the others below 90%, whose number a
    reader would otherwise take to be eight."""
    p = np.linspace(0.3, 0.85, 11)
    bands = pd.DataFrame(
        {"unit": [f"u{k}" for k in range(11)], "nominal_tier": 1, "p_nominal_tier": p}
    ).assign(p_tier_1=p, p_tier_1_se=0.01, p_tier_2=1 - p, p_tier_2_se=0.01, scenarios=4096)
    (said,) = [line for line in lines({"tier_bands": bands}) if "least robust" in line]
    assert said.count("(tier 1 in") == 8 and said.endswith(
        "; 3 more units below 90% in tier_bands.csv."
    )
    (said,) = [line for line in lines({"tier_bands": bands[:8]}) if "least robust" in line]
    assert said.count("(tier 1 in") == 8 and "more unit" not in said


def test_a_certain_tier_needs_enough_scenarios_to_be_called_robust():
    bands = pd.DataFrame(
        {"unit": ["u"], "nominal_tier": [1], "p_nominal_tier": [1.0], "most_likely_tier": [1]}
    )
    few = " ".join(lines({"tier_bands": bands.assign(scenarios=16)}))
    many = " ".join(lines({"tier_bands": bands.assign(scenarios=2048)}))
    assert "0 of them robust" in few and "1 of them robust" in many
    assert "least robust" not in few  # it never left its tier: too few scenarios, not fragile
    assert "1 unit keeps its tier in 90% or more of the scenarios but too few" in few
    assert "too few" not in many


def test_negative_first_order_estimates_are_called_noise():
    indices = pd.DataFrame({"output": ["y", "y"], "factor": ["a", "b"], "S1": [-0.01, 0.5]})
    found = lines({"sobol_indices": indices})
    assert any("1 of 2 S1 estimates is below 0: estimator noise" in line for line in found)


def test_a_region_whose_nominal_mean_tops_the_scenarios_is_said_to_be_read_favourably():
    """A nominal regional mean above (below) the mean of at least 90% of the scenarios beyond
    Monte Carlo error (the lower end of the share's 95% Wilson interval, as for the tiers) gets a
    sentence with that share; one that scenarios leave as it is (a factor without effect: a band
    of one point), that half of them raise, or whose share only reaches 90% within its error
    (91% of 400) does not."""
    from nqpf_sens.report.reading import _edge_regions

    columns = ["region", "nominal_mean", "p05", "p95", "scenarios"]
    shares = ["p_below_nominal", "p_above_nominal"]
    regions = pd.DataFrame(
        [
            ["East", 39.9, 23.6, 31.6, 400, 1.0, 0.0],
            ["West", 3.0, 3.2, 7.7, 400, 0.02, 0.96],
            ["Central", 19.7, 19.7, 19.7, 400, 0.0, 0.0],
            ["Northeast", 8.5, 8.5, 9.4, 400, 0.0, 0.5],
            ["South", 8.5, 8.5, 9.4, 400, 0.91, 0.0],
        ],
        columns=columns + shares,
    )
    for share in shares:
        regions[f"{share}_se"] = np.sqrt(regions[share] * (1 - regions[share]) / 400)
    east, west = _edge_regions(regions)
    assert east == (
        "East's nominal mean index (39.9) is higher than in all 400 scenarios; its 5th-95th"
        " percentile band over scenarios is 23.6-31.6. The nominal method is among the most"
        " favourable readings for East."
    )
    assert west.startswith(
        "West's nominal mean index (3.0) is lower than in 384 of the 400 scenarios"
        " (96.0%, +/- 1.9%)"
    )
    assert west.endswith("among the least favourable readings for West.")
    assert _edge_regions(regions.drop(columns=shares)) == []  # a run saved without the shares
    relative, _ = _edge_regions(regions, rescaled=True)  # the normalisation varies
    assert (
        "31.6. Both compare scores on the nominal scale (each scenario's mapped onto it)"
        in relative
    )
    from nqpf_sens.report.reading import _share_of

    assert (
        _share_of(2047 / 2048, 0.0005, 2048) == "2,047 of the 2,048 scenarios (99.95%, +/- 0.10%)"
    )


def test_a_factor_without_effect_gives_no_region_a_favourable_reading(tmp_path):
    """Every scenario equal to the nominal one (a choice whose options change nothing here):
    no region is below or above its nominal mean, and the report says nothing of the kind."""
    write_units_and_values(tmp_path)
    (tmp_path / "r.toml").write_text(
        '[run]\nname = "r"\nkind = "montecarlo"\nseed = 1\n[data]\nvalues = "values.csv"\n'
        'units = "units.csv"\n[sampling]\nn = 16\n[[factors]]\nname = "fallback"\n'
        'kind = "choice"\nkey = "treat_fallback"\noptions = ["log_CT", "boxcox"]\n'
    )
    folder = run_config(tmp_path / "r.toml", out=tmp_path / "out", quiet=True)
    regions = pd.read_csv(folder / "region_bands.csv")
    assert (regions.p_below_nominal == 0).all() and (regions.p_above_nominal == 0).all()
    assert "favourable reading" not in (folder / "report.html").read_text(encoding="utf-8")


def test_bands_below_the_floor_of_a_rescaled_index_are_explained():
    """Under a normalisation factor, bands mapped onto the nominal scale can reach below 0; the
    reading says so (only then, and not when the nominal scores themselves are negative)."""
    from nqpf_sens.report.reading import _below_floor_line

    bands = pd.DataFrame({"total_nominal": [5.0, 50.0, 90.0], "total_p05": [-3.0, 40.0, 80.0]})
    assert _below_floor_line(bands)[0].startswith("1 of 3 index score bands reaches below 0")
    assert _below_floor_line(bands.assign(total_nominal=[-1.0, 0.0, 1.0])) == []
    assert _below_floor_line(bands.assign(total_p05=[1.0, 40.0, 80.0])) == []


def test_a_band_spanning_an_order_of_magnitude_is_flagged():
    """A trajectory whose last-year band spans more than tenfold gets a sentence naming it; a
    narrower one does not."""
    from nqpf_sens.report.reading import _wide_band_lines

    bands = pd.DataFrame(
        {
            "year": [2012, 2022],
            "total_p05": [100.0, 260.0],
            "total_p95": [100.0, 13_000.0],
            "tech_p05": [100.0, 330.0],
            "tech_p95": [100.0, 370.0],
        }
    )
    (line,) = _wide_band_lines(bands)
    assert "total 260.0-13,000.0" in line and "tech" not in line
    assert _wide_band_lines(bands.assign(total_p95=[100.0, 2_000.0])) == []


def test_the_sobol_sentences_state_the_configured_confidence():
    """Intervals at [sampling] confidence 0.9 are called 90% intervals, not 95%."""
    tables = {"sobol_summary": summary([0.45, 0.4, 0.1], [0.35, 0.3, 0.0], [0.55, 0.5, 0.2])}
    manifest = {"convergence": {}, "config": {"sampling": {"confidence": 0.9}}}
    found = " ".join(line for line, _ in reading(manifest, tables))
    assert "(90% intervals overlap)" in found and "upper end of the 90% interval" in found
    assert "95%" not in found


def test_single_changes_of_a_panel_are_counted_by_change_not_by_year():
    """The one-at-a-time summary of data with several years has a row per change and year: two
    changes over three years are two changes, and the largest move names its year."""
    from nqpf_sens.report.reading import _single_changes_line

    summary = pd.DataFrame(
        {
            "change": ["norm = rank"] * 3 + ["aggregation = geometric"] * 3,
            "year": [2020, 2021, 2022] * 2,
            "mean_abs_shift": [0.4, 1.2, 0.0, 0.0, 0.0, 0.0],
            "max_abs_shift": [2, 3, 0, 0, 0, 0],
            "spearman": [0.99, 0.95, 1.0, 1.0, 1.0, 1.0],
        }
    )
    line = _single_changes_line(summary)
    assert "norm = rank moves the ranking most in 2021 (mean |rank shift| 1.20" in line
    assert line.endswith("1 of 2 single changes moves no unit at all.")


def test_single_changes_that_move_nothing_name_none_as_moving_the_ranking_most():
    from nqpf_sens.report.reading import _single_changes_line

    summary = pd.DataFrame(
        {
            "change": ["shift = 0.05", "shift = 0.2"],
            "mean_abs_shift": [0.0, 0.0],
            "max_abs_shift": [0, 0],
            "spearman": [1.0, 1.0],
        }
    )
    line = _single_changes_line(summary)
    assert (
        line == "One choice at a time, everything else nominal: none of the 2 alternatives "
        "moves any unit."
    )
    assert "moves the ranking most" not in _single_changes_line(summary.head(1))


def test_sobol_outputs_too_uncertain_to_rank_factors_are_not_read():
    """R_S and all ranks flagged unreliable (an ST interval wider than 0.3): no leader is named
    and no interaction share is read. An interaction share is called a combination (or factors
    acting alone) only when its whole interval is at or above (below) 10%: the shipped run's 19%,
    interval 5-31%, was called a combination."""
    table = summary([0.89, 0.1, 0.1], [0.54, 0.0, 0.0], [1.0, 0.3, 0.3])
    outputs = pd.DataFrame(
        {
            "output": ["rank_shift", "all_ranks", "rank:u1"],
            "reliable": ["False", "False", "True"],
            "interaction_share": [0.4, 0.3, 0.2],
        }
    )
    found = lines({"sobol_summary": table, "sobol_outputs": outputs})
    assert not any("largest total effect" in line or "Interactions" in line for line in found)
    assert any("Not read: the Sobol indices of the mean rank shift R_S" in line for line in found)
    assert any("Not read: the Sobol indices of all units' ranks" in line for line in found)
    outputs["why_not"] = [
        "fewer than 64 base samples: the error cannot be measured",
        "does not vary",
        None,
    ]
    found = lines({"sobol_summary": table, "sobol_outputs": outputs})
    assert any(
        "R_S, which cannot rank the factors (fewer than 64 base samples" in line
        and "a larger n" in line
        for line in found
    )
    assert any(
        "ranks (variance-weighted), which cannot rank the factors (does not vary)." in line
        for line in found
    )
    outputs["reliable"] = "True"
    outputs.loc[0, "interaction_share"] = 0.01
    found = lines({"sobol_summary": table, "sobol_outputs": outputs})
    assert any("'a' has the largest total effect on the mean rank shift" in line for line in found)
    assert any("Interactions: 1% of the variance" in line for line in found)
    assert not any("act mostly alone" in line for line in found)  # a point estimate: no verdict
    outputs["interaction_share_low"], outputs["interaction_share_high"] = -0.02, 0.04
    found = lines({"sobol_summary": table, "sobol_outputs": outputs})
    assert any(
        "Interactions: 1% (95% interval -2 to 4%) of the variance" in line
        and "act mostly alone" in line
        for line in found
    )
    outputs.loc[0, "interaction_share"] = 0.19  # the shipped run's: 0.05-0.31, across 10%
    outputs.loc[0, ["interaction_share_low", "interaction_share_high"]] = 0.05, 0.31
    found = " ".join(lines({"sobol_summary": table, "sobol_outputs": outputs}))
    assert "spans 10%, so whether choices matter in combination cannot be told" in found
    outputs.loc[0, "interaction_share_low"] = 0.12
    found = " ".join(lines({"sobol_summary": table, "sobol_outputs": outputs}))
    assert "(95% interval 12 to 31%)" in found and "choices matter in combination." in found
    outputs.loc[0, "interaction_share"] = float("nan")  # R_S does not vary
    found = lines({"sobol_summary": table, "sobol_outputs": outputs})
    assert not any("Interactions" in line or "sum to" in line for line in found)


def percentile_ranks(**ends: tuple[list[int], list[int], list[int]]) -> pd.DataFrame:
    """A rank_stability table of units a, b, c (nominal ranks 1-3) with each percentile's ranks,
    then the low and high ends of their Monte Carlo intervals (``p05=(ranks, lows, highs)``)."""
    columns: dict[str, list] = {"unit": ["a", "b", "c"], "nominal_rank": [1, 2, 3]}
    for name, (ranks, lows, highs) in ends.items():
        columns |= {f"{name}_rank": ranks, f"{name}_rank_low": lows, f"{name}_rank_high": highs}
    return pd.DataFrame(columns)


def test_rank_intervals_equally_wide_are_all_named():
    """Two units whose 5th-95th percentile rank intervals are equally the widest: both are
    named (the first in rank order was named as 'the widest' alone)."""
    stability = percentile_ranks(p05=([1, 1, 2],) * 3, p95=([2, 3, 4],) * 3)
    found = " ".join(lines({"rank_stability": stability}))
    assert "The widest 5th-95th percentile rank intervals are b's (1-3, nominal 2) and c's" in found


def test_rank_intervals_are_read_with_the_monte_carlo_error_of_their_ends():
    """A 95th percentile rank of 4 whose interval is 2-4 is said with it, and a unit whose
    percentiles differ by 2 is counted as within 2 places at their far ends only when their
    intervals keep it there."""
    stability = percentile_ranks(
        p05=([1, 1, 2], [1, 1, 1], [1, 1, 2]), p95=([4, 3, 3], [2, 3, 3], [4, 3, 4])
    )
    found = " ".join(lines({"rank_stability": stability}))
    assert (
        "interval is a's (1-4, nominal 1; within Monte Carlo error the 95th percentile 2-4), by "
        "point estimate; for 2 units the 5th and 95th percentile ranks differ by at most 2, for 1 "
        "of them also at the far ends of the percentiles' 95% Monte Carlo intervals." in found
    )


def test_rank_ranges_and_what_if_moves_equally_the_largest_are_all_named():
    """Rank bounds and leave-one-out moves are whole numbers, often tied: every unit tied for
    the widest range or the largest move is named (one of them was, as if it stood alone)."""
    from nqpf_sens.report.reading import _rank_bounds_line, _what_if_line

    bounds = pd.DataFrame(
        {"unit": ["a", "b", "c", "d"], "best_rank": [1, 1, 3, 4], "worst_rank": [3, 2, 5, 4]}
    )
    line = _rank_bounds_line(bounds)
    assert "the widest range of ranks, 2 places, belongs to a (1 to 3) and c (3 to 5);" in line
    assert "2 of 4 units can rank first" in line and "1 keeps its rank whatever" in line
    what_if = pd.DataFrame(
        {
            "change": ["without x"] * 3 + ["without y"] * 3,
            "unit": ["a", "b", "c"] * 2,
            "shift": [3, -3, 0, 1, 0, -1],
        }
    )
    line = _what_if_line(what_if)
    assert "the largest move is 3 places: a falls without x and b rises without x;" in line
    assert line.endswith("; 1 of the 2 changes moves a unit more than 2 places.")
    calm = _what_if_line(what_if.assign(shift=[2, -2, 0, 1, 0, -1]))
    assert calm.endswith("; none of the 2 changes moves a unit more than 2 places.")
    alone = _what_if_line(what_if.head(3))
    assert alone.endswith("a falls without x and b rises without x.")


def test_optimal_weights_are_read_as_a_local_optimum_and_an_unfinished_search_is_said():
    from nqpf_sens.report.reading import _optimal_weights_line

    summary = pd.DataFrame(
        {
            "level": [0, 1],
            "target": ["weights"] * 2,
            "nominal_distance": [0.02, 0.03],
            "optimised_distance": [0.01, 0.02],
            "converged": ["True", "False"],
            "largest_weight_change": [0.1, 0.2],
            "mean_rank_shift": [0.5, 1.0],
        }
    )
    nodes = pd.DataFrame(
        {
            "level": [0, 0, 1, 1],
            "node": ["a", "b", "d1", "d2"],
            "optimised_influence_share": [0.5, 0.5, 0.4, 0.6],
            "target_share": [0.4, 0.6, 0.5, 0.5],
            "at_bound": [None, None, None, "ceiling"],
        }
    )
    line = _optimal_weights_line(summary, nodes)
    assert "a local optimum, searched from the nominal weights" in line
    assert line.endswith("The search of level 1 stopped before it converged.")
    summary["converged"] = "True"
    assert "stopped before" not in _optimal_weights_line(summary, nodes)


def test_nothing_moving_is_said_so_not_listed_as_ties():
    """Where no unit moves (a dominant unit, weights that change nothing), the largest move and
    the widest ranges are 0: every unit tied for them was listed ('u0 rises', '0 places')."""
    from nqpf_sens.report.reading import _rank_bounds_line, _what_if_line

    units = [f"u{k}" for k in range(6)]
    what_if = pd.DataFrame({"change": ["without a"] * 6, "unit": units, "shift": [0] * 6})
    assert _what_if_line(what_if).endswith(": the one change moves no unit.")
    what_if["change"] = ["without a", "without b"] * 3
    assert _what_if_line(what_if).endswith(": none of the 2 changes moves any unit.")
    bounds = pd.DataFrame({"unit": units, "best_rank": range(1, 7), "worst_rank": range(1, 7)})
    line = _rank_bounds_line(bounds)
    assert line.endswith(
        "1 of 6 units can rank first; every unit keeps its rank whatever the weights."
    )
    stability = pd.DataFrame(
        {
            "unit": units,
            "nominal_rank": range(1, 7),
            "p05_rank": range(1, 7),
            "p95_rank": range(1, 7),
        }
    )
    found = " ".join(lines({"rank_stability": stability}))
    assert "percentile ranks are the same" in found and "widest" not in found


def test_the_rank_shift_sentence_gives_its_errors_and_says_it_pools_units():
    """'85% of units stay within 3 places' read a share of unit-scenario pairs as a share of
    units (there, 35% of the units stayed within 3 places in 95% of scenarios), without an
    error."""
    from nqpf_sens.report.reading import _rank_shift_line

    values = pd.Series(
        {
            "rank_shift_mean": 1.679,
            "rank_shift_mean_se": 0.015,
            "share_within_3": 0.849,
            "share_within_3_se": 0.008,
            "scenarios": 2048.0,
        }
    )
    assert _rank_shift_line(values) == (
        "On average a unit moves 1.68 places (+/- 0.03) from its nominal rank (R_S, 2,048 "
        "scenarios); 85% (+/- 1.6%) of all unit-scenario pairs are within 3 places of it (a "
        "share of pairs: some units move more, others less; rank_stability.csv gives each "
        "unit's own share)."
    )


def test_a_count_of_one_takes_a_singular_verb():
    from nqpf_sens.report.reading import _coherence_line

    statistics = pd.DataFrame({"indicator": ["x1", "x2"], "outlier_flag": ["True", "False"]})
    correlations = pd.DataFrame(
        {"method": ["pearson"], "flag": [None], "node_a": ["x1"], "node_b": ["x2"], "r": [0.5]}
    )
    line = _coherence_line(statistics, correlations)
    assert "1 of 2 indicators has outliers in the raw data" in line
    statistics["outlier_flag"] = "True"
    assert "2 of 2 indicators have outliers" in _coherence_line(statistics, correlations)


def test_rank_interval_ends_are_named_as_ordinals_and_small_counts_read_plainly():
    """'the 5th percentile' (not '05th'); no unit within 2 places, or all of those also at the
    far ends, said without a count of 0 or a repeated count."""
    wide = percentile_ranks(p05=([1, 1, 1], [1, 1, 1], [1, 1, 3]), p95=([9, 8, 9],) * 3)
    found = " ".join(lines({"rank_stability": wide}))
    assert "the 5th percentile 1-3" in found and "05th" not in found
    assert "no unit's 5th and 95th percentile ranks are within 2 places of each other." in found
    narrow = percentile_ranks(p05=([1, 1, 2],) * 3, p95=([2, 5, 3],) * 3)
    found = " ".join(lines({"rank_stability": narrow}))
    assert "for 2 units the 5th and 95th percentile ranks differ by at most 2, also at" in found
    one = percentile_ranks(p05=([1, 1, 2],) * 3, p95=([9, 3, 9], [9, 3, 9], [9, 4, 9]))
    found = " ".join(lines({"rank_stability": one}))
    assert "for 1 unit the 5th and 95th percentile ranks differ by at most 2, but not at" in found


def test_what_a_publication_said_is_read_from_the_run_s_record_of_it():
    """The page knows no index: the ordering its regions are tested against, the values an index's
    authors published and the summary of a reproduction are what the run recorded under
    ``about``, in its words; a published value of an output or year not computed is passed over,
    and a publication none of whose values was computed gets no sentence."""
    regions = pd.DataFrame(
        {"region": ["North", "South"], "nominal_mean": [2.0, 1.0], "p05": [1.5, 0.5]}
    ).assign(p95=[2.5, 1.5], p_paper_order=0.75, p_paper_order_se=0.0217, scenarios=400)
    bands = pd.DataFrame(
        {"unit": ["Land"] * 2, "year": [2000, 2010], "total_nominal": [100.0, 180.0]}
    ).assign(total_median=[100.0, 170.0], total_p05=[100.0, 150.0], total_p95=[100.0, 190.0])
    about = {
        "regional_ordering": {"label": "the authors' ordering", "order": ["North", "South"]},
        "published": {
            "label": "the values the authors give for 2010",
            "note": "they rounded them",
            "values": {"total": [2010, 200.0], "other": [2010, 1.0], "total_x": [1999, 5.0]},
        },
        "comparison": {"title": "Their table", "summary": "Their table: matched."},
    }
    manifest = {"convergence": {}, "about": about}
    said = [line for line, _ in reading(manifest, {"region_bands": regions})]
    assert "The authors' ordering North > South holds in 300 of the 400 scenarios" in said[1]
    assert said[0] == "Their table: matched."
    scores = pd.DataFrame({"unit": ["Land"] * 2, "year": [2000, 2010], "total": [100.0, 180.0]})
    trajectory = {"baseline_scores": scores, "tier_bands": bands}
    said = [line for line, _ in reading(manifest, trajectory)]
    assert (
        "The values the authors give for 2010 against the reproduction's nominal value and "
        "5th-95th percentile band: total 200.0 against 180.0 (150.0-190.0); outside the band: "
        "total; they rounded them."
    ) in said
    about["published"]["values"] = {"total": [1999, 5.0]}
    said = [line for line, _ in reading(manifest, trajectory)]
    assert not any("authors give" in line for line in said)
    assert not any("ordering" in line for line in lines({"region_bands": regions}))


def test_a_converged_run_without_sobol_totals_claims_no_st_was_checked():
    """A Monte Carlo run has no ST of R_S, nor has a Sobol run whose R_S is constant: the verdict
    must not say their intervals were within the tolerance."""
    verdict = {"convergence": {"n": 64, "recommended_n": 64, "warnings": []}}
    rank = {"statistic": "median_rank", "standard_error": 0.0}
    plain = pd.DataFrame([rank])
    said = [line for line, _ in reading(verdict, {"convergence": plain})]
    assert any("n = 64 was enough" in line for line in said)
    assert not any("ST interval" in line for line in said)
    constant = pd.DataFrame([rank, {"statistic": "ST_rank_shift", "standard_error": np.nan}])
    said = [line for line, _ in reading(verdict, {"convergence": constant})]
    assert not any("ST interval" in line for line in said)
    measured = pd.DataFrame([rank, {"statistic": "ST_rank_shift", "standard_error": 0.01}])
    said = [line for line, _ in reading(verdict, {"convergence": measured})]
    assert any("every ST interval of the rank shift within the tolerance" in line for line in said)


def test_a_pooled_share_short_of_all_or_above_none_is_not_rounded_to_100_or_0_percent():
    from nqpf_sens.report.reading import _rank_shift_line

    def said(share: float) -> str:
        values = pd.Series({"rank_shift_mean": 0.7, "share_within_3": share, "scenarios": 200.0})
        return _rank_shift_line(values)

    assert "; 99.9% of all unit-scenario pairs" in said(0.99929)
    assert "; 0.1% of all unit-scenario pairs" in said(0.0007)
    assert "; 0.004% of all unit-scenario pairs" in said(0.00004)
    assert "; 100% of all unit-scenario pairs" in said(1.0)
    assert "; 85% of all unit-scenario pairs" in said(0.849)


def test_importance_beyond_a_weight_is_claimed_only_when_its_interval_clears_the_weight():
    """Seven units gave b an importance share of 0.94 with an interval of 0.06-0.99 against a
    nominal 0.50: the sentence called it the part that 'matters most beyond its weight' as if the
    interval supported that."""
    importance = pd.DataFrame(
        {
            "node": ["a", "b", "c", "d"],
            "parent": ["d1", "d1", "d2", "d2"],
            "importance_share": [0.06, 0.94, 0.45, 0.55],
            "importance_share_low": [0.01, 0.06, 0.40, 0.51],
            "importance_share_high": [0.94, 0.99, 0.49, 0.60],
            "nominal_share": [0.5] * 4,
            "units": [7] * 4,
            "confidence": [0.95] * 4,
        }
    )
    importance["importance_over_nominal"] = importance.importance_share / importance.nominal_share
    (line,) = [x for x in lines({"importance": importance}) if x.startswith("Importance")]
    assert "by point estimate" in line
    assert "b (importance share 0.94" in line
    assert line.count("the interval holds it, so not told apart from its weight") == 2
    importance.loc[1, "importance_share_low"] = 0.6  # b now clears its weight
    importance.loc[0, "importance_share_high"] = 0.4  # and a falls short of its own
    (line,) = [x for x in lines({"importance": importance}) if x.startswith("Importance")]
    assert "within d1: above it beyond the interval)" in line
    assert "within d1: below it beyond the interval)" in line


def test_s1_summing_above_1_with_an_interval_below_the_threshold_still_reads_as_acting_alone():
    """An additive model's S1 sum above 1 about half the time; an interval of the interaction
    share wholly below 10% shows the factors acting alone all the same."""
    from nqpf_sens.report.reading import _interaction_line

    line = _interaction_line(-0.01, -0.07, 0.08, 0.95)
    assert line == (
        "The S1 of R_S sum to 1.01, above 1 (1 - sum of S1: -1% (95% interval -7 to 8%)): "
        "estimator noise, its interval stays below 10%, so the factors act mostly alone."
    )
    assert "say nothing about interactions" in _interaction_line(-0.01, -0.07, 0.12, 0.95)
    assert "say nothing about interactions" in _interaction_line(-0.01, None, None, 0.95)


def test_a_tier_kept_in_too_few_scenarios_is_not_promised_to_be_robust_at_a_larger_n():
    """Kept in 15 of 16 scenarios, the true share may well be below 90%: a larger n tells either
    way, not that the unit is robust."""
    bands = pd.DataFrame(
        {"unit": ["u"], "nominal_tier": [1], "p_nominal_tier": [0.9375], "most_likely_tier": [1]}
    )
    (line,) = [x for x in lines({"tier_bands": bands.assign(scenarios=16)}) if "too few" in x]
    assert line.endswith("beyond Monte Carlo error (a larger n would tell, either way).")


def test_a_move_or_range_of_one_place_is_one_place():
    from nqpf_sens.report.reading import _rank_bounds_line, _what_if_line

    bounds = pd.DataFrame({"unit": ["a", "b"], "best_rank": [1, 1], "worst_rank": [2, 1]})
    assert "the widest range of ranks, 1 place, belongs to a (1 to 2);" in _rank_bounds_line(bounds)
    what_if = pd.DataFrame({"change": ["without x"] * 2, "unit": ["a", "b"], "shift": [1, -1]})
    assert "the largest move is 1 place: a falls" in _what_if_line(what_if)


def test_the_sobol_sentences_of_a_panel_name_the_year_whose_ranks_they_read():
    """For data of several years a unit's Sobol outputs are its last year's rank and score (R_S
    pools every year): the sentences about units' ranks said nothing of the year."""
    table = summary([0.6, 0.2, 0.1], [0.55, 0.1, 0.0], [0.65, 0.3, 0.2])
    scores = pd.DataFrame({"year": [2021, 2021, 2022, 2022], "unit": ["u", "v"] * 2})
    panel = lines({"sobol_summary": table, "baseline_scores": scores})
    assert any("largest total effect on all units' ranks in 2022 (variance" in x for x in panel)
    assert any("the largest ST for the rank in 2022 of 3 units" in x for x in panel)
    assert any("for every reliable unit in 2022 (upper end" in x for x in panel)
    assert any("total effect on the mean rank shift R_S:" in x for x in panel)
    one = lines({"sobol_summary": table, "baseline_scores": scores[scores.year == 2022]})
    assert not any("2022" in x for x in one)


def test_a_panels_convergence_verdict_says_only_its_last_years_ranks_were_checked():
    verdict = {"convergence": {"n": 64, "recommended_n": 64, "warnings": []}}
    scores = pd.DataFrame({"year": [2021, 2021, 2022, 2022], "unit": ["u", "v"] * 2})
    said = [line for line, _ in reading(verdict, {"baseline_scores": scores})]
    assert any(
        "every rank quantile's standard error in 2022 (the last year, the only one checked) "
        "within 0.5 places" in line
        for line in said
    )


def test_a_panels_regional_sentences_read_its_last_year_and_name_it():
    """Per year rows of region_bands.csv: the paper's ordering was read from the first year's
    row, without saying which year (its share in the last year, the paper's, can be far off)."""
    rows = []
    for year, order, below in ((2021, 0.098, 0.5), (2022, 0.0, 1.0)):
        for region in ("Central", "East"):
            rows.append(
                {
                    "year": year,
                    "region": region,
                    "nominal_mean": 30.0,
                    "p05": 20.0,
                    "p95": 29.0,
                    "p_below_nominal": below,
                    "p_below_nominal_se": 0.0,
                    "p_above_nominal": 1 - below,
                    "p_above_nominal_se": 0.0,
                    "p_paper_order": order,
                    "p_paper_order_se": 0.001,
                    "scenarios": 512,
                }
            )
    ordering = {"label": "the paper's regional ordering", "order": ["East", "Northeast"]}
    manifest = {"convergence": {}, "about": {"regional_ordering": ordering}}

    def read(regions: pd.DataFrame) -> list[str]:
        return [line for line, _ in reading(manifest, {"region_bands": regions})]

    said = read(pd.DataFrame(rows))
    assert any("Northeast holds in 2022 in 0 of the 512 scenarios" in line for line in said)
    assert any(
        line.startswith("East's nominal mean index in 2022 (30.0) is higher") for line in said
    )
    single = read(pd.DataFrame(rows[2:]).drop(columns="year"))
    assert any("Northeast holds in 0 of the 512 scenarios" in line for line in single)


def test_a_run_that_did_not_record_what_was_published_says_its_sentences_are_left_out():
    """A folder of an earlier version holds the paper's comparison, its regions' test of the
    paper's ordering or the national panel without their words under ``about``: the sentences on
    them were dropped without a word."""
    regions = pd.DataFrame(
        {"region": ["North", "South"], "nominal_mean": [2.0, 1.0], "p05": [1.5, 0.5]}
    ).assign(p95=[2.5, 1.5], p_paper_order=0.75, p_paper_order_se=0.0217, scenarios=400)
    comparison = pd.DataFrame({"output": ["total"], "difference": [0.01]})
    earlier = {"convergence": {}, "about": {"shipped": "provinces"}}
    tables = {"region_bands": regions, "paper_comparison": comparison}
    warned = [line for line, warning in reading(earlier, tables) if warning]
    assert warned == [
        "This run did not record the summary of the reproduction or the regional ordering "
        "tested (a run of an earlier version), so the reading leaves out what it would say of "
        "that; run the config again to have it."
    ]
    national = {"convergence": {}, "about": {"shipped": "national"}}
    panel = {"baseline_scores": pd.DataFrame({"unit": ["Land"] * 2, "year": [2021, 2022]})}
    said = [line for line, _ in reading(national, panel)]
    assert any("did not record the published values" in line for line in said)
    about = {
        "shipped": "provinces",
        "regional_ordering": {"label": "the authors' ordering", "order": ["North", "South"]},
        "comparison": {"title": "Their table", "summary": "Their table: matched."},
    }
    recorded = reading({"convergence": {}, "about": about}, tables)
    assert not any(warning for _, warning in recorded)
    assert not any(
        warning
        for _, warning in reading(
            {"convergence": {}}, {"region_bands": regions.assign(p_paper_order=np.nan)}
        )
    )


def test_the_error_of_a_pooled_share_has_the_share_s_decimals_and_never_reads_zero():
    from nqpf_sens.report.reading import _rank_shift_line

    def said(share: float, se: float) -> str:
        values = {"rank_shift_mean": 0.05, "share_within_3": share, "share_within_3_se": se}
        return _rank_shift_line(pd.Series({**values, "scenarios": 65536.0}))

    assert "; 99.96% (+/- 0.01%) of all" in said(0.9996, 0.00004)
    assert "; 0.04% (+/- 0.004%) of all" in said(0.0004, 0.00002)
    assert "; 85% (+/- 0.8%) of all" in said(0.85, 0.004)
    assert "; 100% (+/- 0.0%) of all" in said(1.0, 0.0)


def test_importance_undefined_for_every_part_is_said_not_a_crash():
    from nqpf_sens.report.reading import _importance_line

    importance = pd.DataFrame(
        {"node": ["a", "b"], "importance_over_nominal": [np.nan, np.nan], "parent": ["d", "d"]}
    )
    assert "could be measured" in _importance_line(importance)
