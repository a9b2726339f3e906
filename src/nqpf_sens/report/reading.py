"""The plain-language reading of a run: findings generated from its saved tables' numbers.

Nothing in it is written about particular units in advance; the page escapes every line, since
unit and factor names are the user's text.
"""

from __future__ import annotations

import pandas as pd


def reading(manifest: dict, tables: dict[str, pd.DataFrame]) -> list[tuple[str, bool]]:
    """Plain-language findings generated from the numbers: (plain text, is a warning) pairs; the
    page escapes them, since unit and factor names are the user's text."""
    lines = []
    if "paper_comparison" in tables:
        from nqpf_sens.indices.nqpf.paper import paper_summary

        lines.append(paper_summary(tables["paper_comparison"]) + ".")
    bands = tables.get("tier_bands")
    if bands is not None and ("year" not in bands or bands.year.nunique() == 1):
        robust = bands[bands.p_nominal_tier >= 0.9]
        fragile = bands[bands.p_nominal_tier < 0.9].sort_values("p_nominal_tier")
        lines.append(
            f"{len(robust)} of {len(bands)} units keep their nominal tier "
            "in at least 90% of scenarios"
            + (f": {', '.join(robust.unit)}." if 0 < len(robust) <= 12 else ".")
        )
        if len(fragile):
            described = [
                f"{r.unit} (tier {r.nominal_tier} in {100 * r.p_nominal_tier:.0f}%, "
                f"most likely tier {r.most_likely_tier})"
                for r in fragile.head(8).itertuples()
            ]
            lines.append(
                f"{len(fragile)} units' tiers are not robust at 90%; the least robust: "
                + "; ".join(described)
                + "."
            )
    stability = tables.get("rank_stability")
    if stability is not None and ("year" not in stability or stability.year.nunique() == 1):
        width = stability.p95_rank - stability.p05_rank
        widest = stability.loc[width.idxmax()]
        lines.append(
            f"The widest 5th-95th percentile rank interval is {widest.unit}'s "
            f"({int(widest.p05_rank)}-{int(widest.p95_rank)}, nominal {int(widest.nominal_rank)}); "
            f"{int((width <= 2).sum())} units stay within an interval of at most 2 places."
        )
    shift = tables.get("rank_shift")
    if shift is not None:
        values = shift.set_index("statistic").value
        lines.append(
            f"On average a unit moves {values['rank_shift_mean']:.2f} places from its nominal "
            f"rank (R_S); {100 * values['share_moving_less_than_3']:.0f}% of units move fewer "
            "than 3 places."
        )
    regions = tables.get("region_bands")
    if regions is not None and regions.p_paper_order.notna().any():
        lines.append(
            "The paper's regional ordering East > Central > West > Northeast holds in "
            f"{100 * regions.p_paper_order.iloc[0]:.0f}% of scenarios."
        )
    summary = tables.get("sobol_summary")
    if summary is not None:
        top = summary.sort_values("ST_rank_shift", ascending=False).iloc[0]
        most = summary.sort_values("units_where_top", ascending=False).iloc[0]
        lines.append(
            f"'{top.factor}' explains most of the variance of the mean rank shift "
            f"(ST = {top.ST_rank_shift:.2f} +/- {top.ST_rank_shift_conf:.2f}, "
            f"S1 = {top.S1_rank_shift:.2f}); '{most.factor}' is the largest driver of "
            f"{int(most.units_where_top)} units' ranks."
        )
        inert = summary[summary.max_ST_ranks < 0.05].factor.tolist()
        if inert:
            lines.append(
                f"Factors that barely matter for any unit (ST < 0.05): {', '.join(inert)}."
            )
    findings = [(line, False) for line in lines]
    convergence = manifest.get("convergence", {})
    for warning in convergence.get("warnings", []):
        findings.append(
            (f"Convergence: {warning}; consider n = {convergence.get('recommended_n')}.", True)
        )
    if convergence and not convergence.get("warnings"):
        agreement = (
            "Convergence: the first half of the sample and the whole agree (rank quantiles "
            "within a place, top factors' ST within the tolerance), "
            f"so n = {convergence.get('n')} was enough."
        )
        findings.append((agreement, False))
    return findings
