"""The plain-language reading of a run: findings generated from its saved tables' numbers.

Nothing in it is written about particular units in advance; the page escapes every line, since
unit and factor names are the user's text.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from nqpf_sens.wording import agreeing, plural, sentence_start, telling_decimals

MOST_NAMED = 8  # units a sentence names at most (the least robust tiers)
#: tables about ranks and tiers, which say nothing when there is a single unit
SINGLE_UNIT_SILENT = ("rank_stability", "tier_bands", "rank_shift", "rank_agreement", "what_if")


def _below_floor_line(bands: pd.DataFrame) -> list[str]:
    """Score bands reaching below 0 where no nominal score does: say what they are, since a
    negative value on a 0-100 index reads as an error."""
    below = int((bands.total_p05 < 0).sum())
    if not below or (bands.total_nominal < 0).any():
        return []
    return [
        f"{below} of {len(bands)} index score bands {agreeing(below, 'reaches', 'reach')} below "
        "0 although no nominal score does: as the normalisation is a factor, each scenario's "
        "scores are mapped onto the nominal scale (its mean and standard deviation across "
        "units), which has no floor; read such a band as a relative position, not as a score "
        "the index could take."
    ]


def _wide_band_lines(bands: pd.DataFrame, ratio: float = 10.0) -> list[str]:
    """Bands (rows in year order) whose 95th percentile is more than ``ratio`` times their 5th
    in the last year: the choices disagree about the order of magnitude, which a fan chart on a
    log axis can hide."""
    last = bands.iloc[-1]
    names = [c.removesuffix("_p05") for c in bands.columns if c.endswith("_p05")]
    wide = [
        f"{name} {last[f'{name}_p05']:,.1f}-{last[f'{name}_p95']:,.1f}"
        for name in names
        if last[f"{name}_p05"] > 0 and last[f"{name}_p95"] > ratio * last[f"{name}_p05"]
    ]
    if not wide:
        return []
    return [
        f"Bands spanning more than a factor of {ratio:g} in the last year ({'; '.join(wide)}): "
        "the alternative choices disagree about the order of magnitude, so no single value "
        "of these is supported."
    ]


def _trajectory_line(bands: pd.DataFrame) -> str:
    """A single unit's index in its first and last year (rows in year order): nominal, and the
    band over scenarios."""
    first, last = bands.iloc[0], bands.iloc[-1]

    def at(row: pd.Series) -> str:
        when = f" in {int(row.year)}" if "year" in row else ""
        return (
            f"{row.total_nominal:,.1f}{when} (5th-95th percentile over scenarios "
            f"{row.total_p05:,.1f}-{row.total_p95:,.1f})"
        )

    span = f"; {at(first)} at the start" if len(bands) > 1 else ""
    return f"{last.unit}'s index: {at(last)}{span}."


def _published_lines(bands: pd.DataFrame, published: dict) -> list[str]:
    """Published values (a run records them, with what they are, under ``about``) beside the
    reproduction's in the same year; none if no year or output of theirs was computed."""
    compared, outside = [], []
    for name, (year, value) in published["values"].items():
        row = bands[bands.year == year]
        if row.empty or f"{name}_nominal" not in row:
            continue
        row = row.iloc[0]
        compared.append(
            f"{name} {value:,.1f} against {row[f'{name}_nominal']:,.1f} "
            f"({row[f'{name}_p05']:,.1f}-{row[f'{name}_p95']:,.1f})"
        )
        if not row[f"{name}_p05"] <= value <= row[f"{name}_p95"]:
            outside.append(name)
    if not compared:
        return []
    verdict = (
        f"; outside the band: {', '.join(outside)}" if outside else "; every one inside the band"
    )
    return [
        f"{sentence_start(published['label'])} against the reproduction's nominal value and "
        f"5th-95th percentile band: {'; '.join(compared)}{verdict}; {published['note']}."
    ]


def reading(manifest: dict, tables: dict[str, pd.DataFrame]) -> list[tuple[str, bool]]:
    """Plain-language findings generated from the numbers: (plain text, is a warning) pairs; the
    page escapes them, since unit and factor names are the user's text."""
    lines = []
    about = manifest.get("about") or {}
    scores = tables.get("baseline_scores")
    if scores is not None and scores.unit.nunique() == 1:  # a trajectory: no ranks to speak of
        if "tier_bands" in tables:
            bands = tables["tier_bands"]
            by_year = bands.sort_values("year") if "year" in bands else bands
            lines.append(_trajectory_line(by_year))
            lines += _wide_band_lines(by_year)
            if "published" in about:
                lines += _published_lines(tables["tier_bands"], about["published"])
        tables = {k: v for k, v in tables.items() if k not in SINGLE_UNIT_SILENT}
    if "comparison" in about:
        lines.append(about["comparison"]["summary"])
    bands = tables.get("tier_bands")
    if bands is not None and ("year" not in bands or bands.year.nunique() == 1):
        lines += _tier_lines(bands)
    factors = manifest.get("config", {}).get("factors", [])
    rescaled = any(f.get("key") == "normalisation" for f in factors)  # see on_nominal_scale
    if bands is not None and "total_p05" in bands and rescaled:
        lines += _below_floor_line(bands)
    stability = tables.get("rank_stability")
    if stability is not None and ("year" not in stability or stability.year.nunique() == 1):
        lines.append(_rank_interval_line(stability))
    shift = tables.get("rank_shift")
    if shift is not None:
        lines.append(_rank_shift_line(shift.set_index("statistic").value))
    if "what_if" in tables:
        lines.append(_what_if_line(tables["what_if"]))
    if "correlations" in tables and "indicator_statistics" in tables:
        lines.append(_coherence_line(tables["indicator_statistics"], tables["correlations"]))
    if "one_at_a_time_summary" in tables:
        lines.append(_single_changes_line(tables["one_at_a_time_summary"]))
    if "importance" in tables:
        lines.append(_importance_line(tables["importance"]))
    if "optimal_weights_summary" in tables:
        lines.append(
            _optimal_weights_line(tables["optimal_weights_summary"], tables["optimal_weights"])
        )
    if "rank_bounds" in tables:
        lines.append(_rank_bounds_line(tables["rank_bounds"]))
    regions = tables.get("region_bands")
    ordering = about.get("regional_ordering")
    if regions is not None:
        # data of several years: the last year's, named (the first year's was read, unnamed)
        latest = regions[regions.year == regions.year.max()] if "year" in regions else regions
        if ordering and latest.p_paper_order.notna().any():
            row = latest.iloc[0]
            lines.append(
                f"{sentence_start(ordering['label'])} {' > '.join(ordering['order'])} holds"
                f"{_in_year(row)} in "
                f"{_share_of(row.p_paper_order, row.p_paper_order_se, row.scenarios)}, "
                "counted over those whose scores are kept."
            )
        lines += _edge_regions(regions, rescaled)
    if "sobol_summary" in tables:
        level = manifest.get("config", {}).get("sampling", {}).get("confidence", 0.95)
        year = _ranked_year(tables)
        lines += _sobol_lines(tables["sobol_summary"], tables.get("sobol_outputs"), level, year)
    if "sobol_indices" in tables:
        s1 = tables["sobol_indices"].S1.dropna()
        negative = int((s1 < 0).sum())
        if negative:
            lines.append(
                f"{negative} of {len(s1)} S1 estimates {agreeing(negative, 'is', 'are')} below 0: "
                "estimator noise (a true index is never negative)."
            )
    findings = [(line, False) for line in lines]
    unrecorded = _unrecorded(about, tables) if "about" in manifest else []
    if unrecorded:
        findings.append(
            (
                f"This run did not record {' or '.join(unrecorded)} (a run of an earlier "
                "version), so the reading leaves out what it would say of that; run the config "
                "again to have it.",
                True,
            )
        )
    convergence = manifest.get("convergence", {})
    larger = convergence.get("recommended_n", 0) > convergence.get("n", 0)
    for warning in convergence.get("warnings", []):
        advice = f"; consider n = {convergence.get('recommended_n')}" if larger else ""
        findings.append((f"Convergence: {warning}{advice}.", True))
    if convergence and not convergence.get("warnings"):
        sobol = (
            " and every ST interval of the rank shift within the tolerance"
            if _checked_totals(tables)
            else ""
        )
        year = _ranked_year(tables)  # of a panel, the last year's ranks alone are checked
        checked = f" in {year} (the last year, the only one checked)" if year is not None else ""
        agreement = (
            "Convergence: disjoint blocks of the design put every rank quantile's standard "
            f"error{checked} within {convergence.get('rank_error_target', 0.5)} places{sobol}, "
            "and no rank percentile sits within sampling error of a step between ranks, "
            f"so n = {convergence.get('n')} was enough by that measure."
        )
        findings.append((agreement, False))
    return findings


def _unrecorded(about: dict, tables: dict[str, pd.DataFrame]) -> list[str]:
    """What a saved table shows was compared with a publication whose words ``about`` lacks (the
    runs of earlier versions recorded none): the page would drop those sentences unsaid."""
    if "regional_ordering" in about:  # every run since they are recorded records it
        return []
    regions, scores = tables.get("region_bands"), tables.get("baseline_scores")
    trajectory = scores is not None and scores.unit.nunique() == 1 and "year" in scores
    wanted = {
        "the summary of the reproduction": "paper_comparison" in tables,
        "the regional ordering tested": (
            regions is not None and regions.p_paper_order.notna().any()
        ),
        # a shipped panel of one unit: its publication's values were drawn beside it
        "the published values": bool(about.get("shipped")) and trajectory,
    }
    return [what for what, lost in wanted.items() if lost]


def _checked_totals(tables: dict[str, pd.DataFrame]) -> bool:
    """Whether the convergence check measured the error of some ST of R_S: a Monte Carlo run has
    none, and neither has a Sobol run whose R_S does not vary (its verdict says nothing of them)."""
    table = tables.get("convergence")
    if table is None or "statistic" not in table:
        return "sobol_indices" in tables
    totals = table[table.statistic == "ST_rank_shift"]
    return bool(totals.standard_error.notna().any())


EDGE_SHARE = 0.9  # scenarios below (above) the nominal regional mean: an edge of the readings


def _rank_shift_line(values: pd.Series) -> str:
    """R_S and the pooled share within 3 places, each with its 95% Monte Carlo error (a share of
    unit-scenario pairs: not a share of units)."""
    mean, share = values["rank_shift_mean"], values["share_within_3"]
    mean_error = (
        f" (+/- {1.96 * values['rank_shift_mean_se']:.2f})"
        if "rank_shift_mean_se" in values
        else ""
    )
    share_error = (
        f" (+/- {_error_percent(values['share_within_3_se'], _percent_decimals(share))})"
        if "share_within_3_se" in values
        else ""
    )
    return (
        f"On average a unit moves {mean:.2f} places{mean_error} from its nominal rank (R_S, "
        f"{plural(int(values['scenarios']), 'scenario')}); {_percent(share)}{share_error} of "
        "all unit-scenario pairs are within 3 places of it (a share of pairs: some units move "
        "more, others less; rank_stability.csv gives each unit's own share)."
    )


def _percent(share: float) -> str:
    """A share as a whole percentage, with as many decimals as keep a share short of 100% (above
    0%) from reading 100% (0%): '100%' of pairs within 3 places said that none moved further."""
    return f"{100 * share:.{_percent_decimals(share)}f}%"


def _percent_decimals(share: float) -> int:
    """The decimals of :func:`_percent`."""
    return telling_decimals(100 * share, 0, whole=100)


def _error_percent(se: float, decimals: int) -> str:
    """The 95% Monte Carlo error of a share (standard error ``se``) as a percentage, with at least
    one decimal and the share's ``decimals``, and more (up to 6) as keep an error from reading 0:
    '99.96% (+/- 0.0%)' gave a share of scenarios the certainty of a count of all of them."""
    error = 196 * se
    return f"{error:.{telling_decimals(error, max(1, decimals), whole=math.inf)}f}%"


def _edge_regions(regions: pd.DataFrame, rescaled: bool = False) -> list[str]:
    """Regions whose nominal mean is above (below) the mean of at least ``EDGE_SHARE`` of the
    scenarios beyond Monte Carlo error (the lower end of a 95% Wilson interval, as for the tiers):
    the nominal method is then among the most (or least) favourable readings of that region,
    which a band alone does not say. Scenarios that leave the mean as it is count on neither
    side. When the normalisation varies (``rescaled``) the means compared are of scores on the
    nominal scale: the region's standing among the units, not its level."""
    if "p_below_nominal" not in regions:  # saved before the shares were
        return []
    standing = (
        " Both compare scores on the nominal scale (each scenario's mapped onto it): the region's"
        " standing among the units, not its level."
        if rescaled
        else ""
    )
    lines = []
    for row in regions.drop_duplicates("region", keep="last").itertuples():
        for share, se, high in (
            (row.p_below_nominal, row.p_below_nominal_se, True),
            (row.p_above_nominal, row.p_above_nominal_se, False),
        ):
            if wilson_low(share, int(row.scenarios)) < EDGE_SHARE:
                continue
            when = f" in {int(row.year)}" if "year" in regions else ""
            lines.append(
                f"{row.region}'s nominal mean index{when} ({row.nominal_mean:.1f}) is"
                f" {'higher' if high else 'lower'} than in {_share_of(share, se, row.scenarios)};"
                f" its 5th-95th percentile band over scenarios is {row.p05:.1f}-{row.p95:.1f}."
                f"{standing} The nominal method is among the {'most' if high else 'least'}"
                f" favourable readings for {row.region}."
            )
    return lines


def _share_of(share: float, se: float, scenarios: float) -> str:
    """'all 400 scenarios' or '384 of the 400 scenarios (96.0%, +/- 1.9%)': counts, and as many
    decimals as keep a share short of 100% from reading 100%."""
    n = int(scenarios)
    count = round(share * n)
    if count == n:
        return f"all {n:,} scenarios"
    percent, decimals = 100 * share, 1
    while round(percent, decimals) >= 100 and decimals < 6:
        decimals += 1
    error = 100 * 1.96 * se
    return f"{count:,} of the {n:,} scenarios ({percent:.{decimals}f}%, +/- {error:.{decimals}f}%)"


def wilson_low(p: pd.Series, n: int, z: float = 1.96) -> pd.Series:
    """The lower end of the Wilson score interval of a proportion ``p`` of ``n`` (unlike p - z se,
    it stays below 1 when every scenario agrees)."""
    centre = p + z * z / (2 * n)
    spread = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    return (centre - spread) / (1 + z * z / n)


def _tier_lines(bands: pd.DataFrame) -> list[str]:
    """How many units each tier holds, then how many of them keep it in at least 90% of
    scenarios beyond Monte Carlo error (the lower end of a 95% Wilson interval at or above 0.9)."""
    scenarios = int(bands.scenarios.iloc[0]) if "scenarios" in bands else None
    if scenarios:
        robust = wilson_low(bands.p_nominal_tier, scenarios) >= 0.9
    else:
        robust = bands.p_nominal_tier >= 0.9
    counts = bands.groupby("nominal_tier").unit.size()
    kept = robust.groupby(bands.nominal_tier).sum()
    described = [
        f"tier {tier}: {plural(int(n), 'unit')}, {int(kept[tier])} of them robust"
        for tier, n in counts.items()
    ]
    lines = [
        "Nominal tiers and how many units keep theirs in at least 90% of scenarios (beyond Monte "
        "Carlo error"
        + (f", {plural(scenarios, 'scenario')}" if scenarios else "")
        + "): "
        + "; ".join(described)
        + "."
    ]
    fragile = bands[bands.p_nominal_tier < 0.9].sort_values("p_nominal_tier")
    if len(fragile):
        described = [
            f"{row.unit} (tier {int(row.nominal_tier)} in {100 * row.p_nominal_tier:.0f}%, "
            f"{_likeliest_tiers(row)})"
            for _, row in fragile.head(MOST_NAMED).iterrows()
        ]
        rest = len(fragile) - len(described)
        more = f"; {plural(rest, 'more unit')} below 90% in tier_bands.csv" if rest else ""
        lines.append("The least robust: " + "; ".join(described) + more + ".")
    undecided = int((~robust & (bands.p_nominal_tier >= 0.9)).sum())
    if undecided:
        lines.append(
            f"{plural(undecided, 'unit')} {agreeing(undecided, 'keeps its', 'keep their')} "
            "tier in 90% or more of the scenarios but too few scenarios were run to tell that "
            "beyond Monte Carlo error (a larger n would tell, either way)."
        )
    return lines


def _likeliest_tiers(row: pd.Series) -> str:
    """'most likely tier 2', or 'most likely tier 1 or 2, not told apart ...' when the 95%
    interval (p +/- 1.96 p_se) of the likeliest tier's probability reaches another's: for two
    tiers exactly the test of their difference, for more a conservative one."""
    tiers = [int(name[len("p_tier_") :]) for name in row.index if re.fullmatch(r"p_tier_\d+", name)]
    ends = {k: (row[f"p_tier_{k}"], 1.96 * row[f"p_tier_{k}_se"]) for k in tiers}
    likeliest = max(tiers, key=lambda k: ends[k][0])
    lowest = ends[likeliest][0] - ends[likeliest][1]
    tied = [str(k) for k in tiers if k == likeliest or sum(ends[k]) >= lowest]
    if len(tied) == 1:
        return f"most likely tier {likeliest}"
    named = ", ".join(tied[:-1]) + " or " + tied[-1]
    return f"most likely tier {named}, not told apart within Monte Carlo error"


def _interval(summary: pd.Series, name: str) -> str:
    return f"{summary[name]:.2f} [{summary[f'{name}_low']:.2f}, {summary[f'{name}_high']:.2f}]"


def _leaders(summary: pd.DataFrame, name: str, what: str, level: float) -> str | None:
    """The factor with the largest ST of ``name``, called largest only when its interval clears
    every other factor's; a total effect said to be "more than half" only when its interval is
    above 1/2. None when no factor has an estimate (the output does not vary)."""
    ordered = summary.dropna(subset=[name]).sort_values(name, ascending=False)
    if ordered.empty:
        return None
    first = ordered.iloc[0]
    others = ordered.iloc[1:][f"{name}_high"]
    if others.empty or first[f"{name}_low"] > others.max():
        share = " (more than half of its variance)" if first[f"{name}_low"] > 0.5 else ""
        return (
            f"'{first.factor}' has the largest total effect on {what}: ST = "
            f"{_interval(first, name)}{share}."
        )
    tied = ordered[ordered[f"{name}_high"] >= first[f"{name}_low"]]
    named = ", ".join(f"'{r.factor}' ({_interval(r, name)})" for _, r in tied.iterrows())
    return (
        f"The largest total effects on {what} cannot be told apart ({100 * level:g}% intervals "
        "overlap): "
        f"{named}."
    )


INTERACTING = 0.1  # a share of variance no factor explains alone that calls for combinations


def _ranked_year(tables: dict[str, pd.DataFrame]) -> int | None:
    """The year whose ranks the Sobol outputs of units are (the last), for data of several
    years; None for one year."""
    for name in ("baseline_scores", "rank_stability", "tier_bands"):
        table = tables.get(name)
        if table is not None and "year" in table and table.year.nunique() > 1:
            return int(table.year.max())
    return None


def _sobol_lines(
    summary: pd.DataFrame,
    outputs: pd.DataFrame | None,
    level: float = 0.95,
    year: int | None = None,
) -> list[str]:
    """The Sobol findings; ``level`` is the confidence of the indices' intervals. An output whose
    indices cannot rank the factors (``reliable`` False in ``outputs``) is not read. Units' ranks
    are those of the data's last ``year`` when they hold several (R_S pools every year): said so,
    since a panel's reader would take them for every year's."""
    when = f" in {year}" if year is not None else ""
    unreliable = (
        set() if outputs is None else set(outputs.output[outputs.reliable.astype(str) != "True"])
    )
    reasons = (  # why each is not read (a run saved before ``why_not`` has none)
        pd.Series(dtype=object)
        if outputs is None
        else outputs.set_index("output").get("why_not", pd.Series(dtype=object))
    )
    lines: list[str | None] = []
    for output, column, what in (
        ("rank_shift", "ST_rank_shift", "the mean rank shift R_S"),
        ("all_ranks", "ST_ranks", f"all units' ranks{when} (variance-weighted)"),
    ):
        if output in unreliable:
            why = reasons.get(output)
            why = why if isinstance(why, str) else "its intervals are too wide"  # an older run
            advice = (
                "" if why.startswith("does not vary") else "; a larger n may make them readable"
            )
            lines.append(
                f"Not read: the Sobol indices of {what}, which cannot rank the factors ({why})"
                f"{advice}."
            )
        else:
            lines.append(_leaders(summary, column, what, level))
    most = summary.units_where_top.max()
    leading = summary[summary.units_where_top == most].factor.tolist()
    if most > 0:
        who = " and ".join(f"'{f}'" for f in leading)
        each = "each has" if len(leading) > 1 else "has"
        lines.append(
            f"{who} {each} the largest ST for the rank{when} of {plural(int(most), 'unit')} (by "
            "point estimate: a close second is not told apart)."
        )
    if outputs is not None:
        set_aside = [o for o in outputs.output if o in unreliable and o.startswith("rank:")]
        if set_aside:
            names = ", ".join(o.removeprefix("rank:") for o in set_aside[:6])
            names += ", ..." if len(set_aside) > 6 else ""
            lines.append(
                f"Not read: the Sobol indices of {plural(len(set_aside), 'unit')} whose rank"
                f"{when} hardly varies, whose intervals are too wide or whose n is too small "
                f"({names}; why_not in sobol_outputs.csv says which)."
            )
        by_output = outputs.set_index("output")
        if "rank_shift" in by_output.index and "rank_shift" not in unreliable:
            row = by_output.loc["rank_shift"]
            if pd.notna(row.interaction_share):  # R_S varies and its indices are read
                low, high = (row.get(f"interaction_share_{end}") for end in ("low", "high"))
                lines.append(_interaction_line(row.interaction_share, low, high, level))
    inert = summary[summary.max_ST_high_ranks < 0.05].factor.tolist()
    if inert:
        lines.append(
            f"Factors whose total effect stays below 0.05 for every reliable unit{when} "
            f"(upper end of the {100 * level:g}% interval): {', '.join(inert)}."
        )
    return [line for line in lines if line is not None]


def _interaction_line(share: float, low: float | None, high: float | None, level: float) -> str:
    """What the share of R_S's variance that no factor explains alone (1 - sum of S1) says: that
    choices matter in combination only when its whole bootstrap interval is at or above
    ``INTERACTING``, that the factors act mostly alone only when it is below (a run saved without
    the interval says neither)."""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        interval, meaning = "", "a point estimate without an interval, so no conclusion is drawn"
    else:
        interval = f" ({100 * level:g}% interval {100 * low:.0f} to {100 * high:.0f}%)"
        if low >= INTERACTING:
            meaning = "choices matter in combination"
        elif high < INTERACTING:
            meaning = "the factors act mostly alone"
        else:
            meaning = (
                f"its interval spans {100 * INTERACTING:.0f}%, so whether choices matter in "
                "combination cannot be told at this n"
            )
    if share < 0:  # no share of variance is negative
        # an interval wholly below the threshold still shows the factors acting alone (a purely
        # additive model's estimate falls above 1 about half the time)
        alone = meaning == "the factors act mostly alone"
        said = (
            f"its interval stays below {100 * INTERACTING:.0f}%, so {meaning}"
            if alone
            else "so the S1 say nothing about interactions here"
        )
        return (
            f"The S1 of R_S sum to {1 - share:.2f}, above 1 (1 - sum of S1: {100 * share:.0f}%"
            f"{interval}): estimator noise, {said}."
        )
    return (
        f"Interactions: {100 * share:.0f}%{interval} of the variance of R_S is explained by no "
        f"factor alone (1 - sum of S1): {meaning}."
    )


def _coherence_line(statistics: pd.DataFrame, correlations: pd.DataFrame) -> str:
    """What the JRC coherence checks flag (Pearson), in one sentence."""
    outliers = statistics.indicator[statistics.outlier_flag.astype(str) == "True"].tolist()
    pearson = correlations[correlations.method == "pearson"]
    flags = pearson.flag.fillna("")

    def pairs(flag: str) -> str:
        rows = pearson[flags == flag]
        return ", ".join(
            f"{a} ~ {b} ({r:.2f})" for a, b, r in rows[["node_a", "node_b", "r"]].values
        )

    parts = []
    for flag, meaning in (
        ("redundant", "redundant pairs (r > 0.9 within one aggregate)"),
        ("negative", "negative (r <= -0.3)"),
        ("weak", "weak (|r| < 0.3)"),
    ):
        parts.append(f"{meaning}: {pairs(flag) or 'none'}")
    return (
        f"Statistical coherence: {len(outliers)} of {len(statistics)} indicators "
        f"{agreeing(len(outliers), 'has', 'have')} outliers in the raw data by the JRC rule "
        "(|skewness| > 2 and kurtosis > 3.5)"
        f"{': ' + ', '.join(outliers) if outliers else ''}. Pearson correlations of the nominal "
        "run's normalised indicators and aggregates: " + "; ".join(parts) + "."
    )


def _single_changes_line(summary: pd.DataFrame) -> str:
    """The single choice that moves the ranking most, and how many move nothing (in any year:
    the summary has a row per change and year when the data have several); none is named when
    nothing moves."""
    ran = summary[summary.mean_abs_shift.notna()]
    if ran.empty:
        return "No single change of a choice could be evaluated."
    largest = ran.loc[ran.mean_abs_shift.idxmax()]
    by_change = ran.groupby("change", sort=False).max_abs_shift.max()
    still = int((by_change == 0).sum())
    if still == len(by_change):  # none moves the ranking, so none moves it most
        none = (
            "the one alternative moves no unit"
            if len(by_change) == 1
            else f"none of the {len(by_change)} alternatives moves any unit"
        )
        return f"One choice at a time, everything else nominal: {none}."
    return (
        f"One choice at a time, everything else nominal: {largest.change} moves the ranking most"
        f"{_in_year(largest)} (mean |rank shift| {largest.mean_abs_shift:.2f}, at most "
        f"{plural(int(largest.max_abs_shift), 'place')}, Spearman {largest.spearman:.3f}); "
        f"{still} of {len(by_change)} single changes {agreeing(still, 'moves', 'move')} no unit "
        "at all."
    )


def _in_year(row: pd.Series) -> str:
    """' in 2021' for a row of a table with a year column (data of several years), else ''."""
    return f" in {int(row.year)}" if "year" in row.index and pd.notna(row.year) else ""


def _importance_line(importance: pd.DataFrame) -> str:
    """The parts whose importance differs most from their weight (by point estimate), each with
    the interval of its importance share and whether that interval clears its nominal share: an
    interval that holds the nominal share does not show the part to matter more, or less, than
    its weight."""
    ratio = importance.importance_over_nominal
    if ratio.isna().all():
        return (
            "Importance against weights: no part's first-order effect on the index could be "
            "measured (the parts' importance shares are undefined)."
        )
    over, under = importance.loc[ratio.idxmax()], importance.loc[ratio.idxmin()]

    def told(row: pd.Series) -> str:
        low, high, nominal = row.importance_share_low, row.importance_share_high, row.nominal_share
        if low > nominal:
            verdict = "above it beyond the interval"
        elif high < nominal:
            verdict = "below it beyond the interval"
        else:
            verdict = "the interval holds it, so not told apart from its weight"
        return (
            f"{row.node} (importance share {row.importance_share:.2f}, {row.confidence:.0%} "
            f"bootstrap interval {low:.2f}-{high:.2f} over {int(row.units)} units, against a "
            f"nominal {nominal:.2f} within {row.parent}: {verdict})"
        )

    return (
        "Importance against weights (first-order effect on the index, nonparametric): by point "
        f"estimate, the part that matters most beyond its weight is {told(over)}; the least, "
        f"{told(under)}."
    )


def _optimal_weights_line(summary: pd.DataFrame, nodes: pd.DataFrame) -> str:
    """Per level: how close reweighting brings influence to its target, at what cost in weights
    and ranks, and the part left furthest from its target."""
    parts = []
    for row in summary.itertuples():
        level = nodes[nodes.level == row.level]
        gap = (level.optimised_influence_share - level.target_share).abs()
        worst = level.loc[gap.idxmax()]
        parts.append(
            f"level {int(row.level)}: the squared distance to the target goes from "
            f"{row.nominal_distance:.4f} to {row.optimised_distance:.4f}, with weights changing "
            f"by up to {row.largest_weight_change:.2f} and units moving {row.mean_rank_shift:.2f} "
            f"places on average; {worst.node} ends furthest off (influence "
            f"{worst.optimised_influence_share:.3f} against {worst.target_share:.3f}"
            + (f", its weight at the search's {worst.at_bound}" if pd.notna(worst.at_bound) else "")
            + ")"
        )
    target = "the nominal effective weights" if summary.target.iloc[0] == "weights" else "equal"
    unsettled = [
        str(int(row.level)) for row in summary.itertuples() if str(row.converged) != "True"
    ]
    caveat = (
        f" The search of level {' and '.join(unsettled)} stopped before it converged."
        if unsettled
        else ""
    )
    return (
        "Weights that balance influence (each part's correlation with the index as a share; "
        f"target: {target}; a local optimum, searched from the nominal weights): "
        + "; ".join(parts)
        + "."
        + caveat
    )


def _rank_interval_line(stability: pd.DataFrame) -> str:
    """The widest 5th-95th percentile rank intervals by point estimate (every unit tied for the
    widest named, with the Monte Carlo interval of an end that is not one rank) and how many units
    stay within 2 places, by point estimate and at the far ends of those intervals."""
    width = stability.p95_rank - stability.p05_rank
    if width.max() == 0:
        return "Every unit's 5th and 95th percentile ranks are the same: no rank interval is wider."
    widest = stability[width == width.max()]

    def described(row: pd.Series) -> str:
        uncertain = [
            f"the {int(name[1:3])}th percentile "
            f"{int(row[f'{name}_low'])}-{int(row[f'{name}_high'])}"
            for name in ("p05_rank", "p95_rank")
            if row[f"{name}_low"] != row[f"{name}_high"]
        ]
        error = f"; within Monte Carlo error {' and '.join(uncertain)}" if uncertain else ""
        return (
            f"{row.unit}'s ({int(row.p05_rank)}-{int(row.p95_rank)}, nominal "
            f"{int(row.nominal_rank)}{error})"
        )

    named = _listed([described(row) for _, row in widest.iterrows()], "more as wide")
    within = int((width <= 2).sum())
    surely = int((stability.p95_rank_high - stability.p05_rank_low <= 2).sum())  # of ``within``
    far_ends = "at the far ends of the percentiles' 95% Monte Carlo intervals"
    if within == 0:
        narrow = "no unit's 5th and 95th percentile ranks are within 2 places of each other"
    else:
        none = "but not" if within == 1 else "but for none of them"
        also = {within: f"also {far_ends}", 0: f"{none} {far_ends}"}.get(
            surely, f"for {surely} of them also {far_ends}"
        )
        narrow = (
            f"for {plural(within, 'unit')} the 5th and 95th percentile ranks differ by at most 2, "
            f"{also}"
        )
    return (
        f"The widest 5th-95th percentile rank interval{'s are' if len(widest) > 1 else ' is'} "
        f"{named}, by point estimate; {narrow}."
    )


def _rank_bounds_line(bounds: pd.DataFrame) -> str:
    """How far the weights alone can move units, exactly (no sampling error to state)."""
    width = bounds.worst_rank - bounds.best_rank
    widest = bounds[width == width.max()]
    can_lead = int((bounds.best_rank == 1).sum())
    fixed = int((width == 0).sum())
    head = (
        "Over every admissible weight vector (the configured weight spreads, exact bounds, "
        f"not a sample): {can_lead} of {len(bounds)} units can rank first; "
    )
    if width.max() == 0:
        return head + "every unit keeps its rank whatever the weights."
    named = _listed(
        [
            f"{row.unit} ({int(row.best_rank)} to {int(row.worst_rank)})"
            for row in widest.itertuples()
        ],
        "more",
    )
    return (
        head
        + f"the widest range of ranks, {plural(int(width.max()), 'place')}, belongs to {named}; "
        f"{fixed} {agreeing(fixed, 'keeps its', 'keep their')} rank whatever the weights."
    )


def _what_if_line(what_if: pd.DataFrame) -> str:
    """The largest moves when one part is left out, and how many changes move some unit more
    than 2 places (said when there are several changes)."""
    size = what_if["shift"].abs()
    largest = what_if[size == size.max()]
    by_change = what_if.groupby("change")["shift"].apply(lambda s: s.abs().max())
    far = int((by_change > 2).sum())
    if size.max() == 0:
        none = (
            "the one change moves no unit"
            if len(by_change) == 1
            else f"none of the {len(by_change)} changes moves any unit"
        )
        return f"Leaving one part out at a time (a structural what-if, not an uncertainty): {none}."
    moves = _listed(
        [
            f"{row.unit}{_in_year(row)} {'falls' if row['shift'] > 0 else 'rises'} {row.change}"
            for _, row in largest.iterrows()
        ],
        "more as far",
    )
    if len(by_change) == 1:
        beyond = ""
    elif far:
        moving = agreeing(far, "moves", "move")
        beyond = f"; {far} of the {len(by_change)} changes {moving} a unit more than 2 places"
    else:
        beyond = f"; none of the {len(by_change)} changes moves a unit more than 2 places"
    return (
        f"Leaving one part out at a time (a structural what-if, not an uncertainty): the largest "
        f"move is {plural(int(size.max()), 'place')}: {moves}{beyond}."
    )


def _listed(items: list[str], more: str, shown: int = 3) -> str:
    """'a', 'a and b', 'a, b and c', or the first ``shown`` and 'k ``more``'."""
    parts = items[:shown] + ([f"{len(items) - shown} {more}"] if len(items) > shown else [])
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
