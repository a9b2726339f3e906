"""The published results of Ye & Xu (2024) that a faithful baseline must reproduce (Table 3)."""

from __future__ import annotations

import pandas as pd

from nqpf_sens.engine.rank import rank_scores
from nqpf_sens.engine.spec import IndexSpec
from nqpf_sens.engine.table import IndicatorTable
from nqpf_sens.indices.nqpf.data import packaged

OUTPUTS = ("total", "tech", "factor", "industry")
REGION_ORDER = ("East", "Central", "West", "Northeast")  # the paper's regional ordering, best first


def table3() -> pd.DataFrame:
    """Table 3: 2022 scores and ranks of the 31 provinces, indexed by English name."""
    return pd.read_csv(packaged("paper/table3_scores_2022.csv")).set_index("province")


def paper_problem(spec: IndexSpec, table: IndicatorTable) -> str | None:
    """Why a comparison with Table 3 makes no sense for these data (not the paper's), or None."""
    provinces = set(table3().index)
    if (
        tuple(spec.dimensions) != OUTPUTS[1:]
        or set(table.units) != provinces
        or len(table.years) != 1
    ):
        return (
            "the data are not the paper's "
            "(its 31 provinces in one year, dimensions tech, factor, industry): "
            "set it to false"
        )
    return None


def compare_with_table3(scores: pd.DataFrame) -> pd.DataFrame:
    """Tidy comparison ``unit, output, paper, reproduced, difference`` for the 124 scores and 124
    ranks.

    ``scores`` is a baseline score table (``unit``, ``total``, the dimensions, ``rank``); sub-index
    ranks are recomputed from the reproduced scores (ties share the best place, as in the engine).
    """
    paper = table3()
    mine = scores.set_index("unit").reindex(paper.index)
    rows = []
    for output in OUTPUTS:
        mine_rank = (
            mine["rank"]
            if output == "total"
            else pd.Series(rank_scores(mine[output].to_numpy(dtype=float)), index=mine.index)
        )
        for unit in paper.index:
            rows.append((unit, output, paper.loc[unit, output], mine.loc[unit, output]))
            rows.append(
                (unit, f"{output}_rank", paper.loc[unit, f"{output}_rank"], mine_rank.loc[unit])
            )
    frame = pd.DataFrame(rows, columns=["unit", "output", "paper", "reproduced"])
    frame["difference"] = frame["reproduced"] - frame["paper"]
    return frame


def rank_mismatches(comparison: pd.DataFrame) -> pd.DataFrame:
    """Rank differences not explained by scores the paper prints as equal."""
    paper = table3()
    ranks = comparison[comparison.output.str.endswith("_rank") & (comparison.difference != 0)]
    keep = []
    for row in ranks.itertuples():
        output = row.output.removesuffix("_rank")
        printed = paper.loc[row.unit, output]
        tied = (paper[output] == printed).sum() > 1
        keep.append(not tied)
    return ranks[keep]


def published_values() -> dict[str, object]:
    """The national index and sub-indices the paper publishes (2012 = 100), as a run records them
    for its report: what they are (``label``), why the reproduction may differ (``note``) and
    ``values``, output -> [year, value]."""
    stated = pd.read_csv(packaged("paper/national_2012_2022.csv")).set_index("quantity").value
    return {
        "label": "the paper's published 2022 values (2012 = 100)",
        "note": "its stated inputs cannot give them under its method as written (DATA.md)",
        "values": {name: [2022, float(stated[f"index_{name}_2022"])] for name in OUTPUTS},
    }


def regional_ordering() -> dict[str, object]:
    """The regional ordering the study tests (``p_paper_order``), as a run records it."""
    return {"label": "the paper's regional ordering", "order": list(REGION_ORDER)}


def paper_summary(comparison: pd.DataFrame) -> str:
    """One sentence: the largest score difference and the ranks that differ beyond printed ties
    (a run records it, with the section's title, for its report)."""
    scores = comparison[~comparison.output.str.endswith("_rank")]
    worst = scores.loc[scores.difference.abs().idxmax()]
    mismatches = rank_mismatches(comparison)
    ranks = (
        "all ranks as in Table 3"
        if mismatches.empty
        else f"{len(mismatches)} ranks differ: "
        + ", ".join(
            f"{r.unit} {r.output} {int(r.paper)}->{int(r.reproduced)}"
            for r in mismatches.itertuples()
        )
    )
    return (
        f"Table 3 reproduction: largest absolute difference {abs(worst.difference):.3f} "
        f"({worst.unit}, {worst.output}); {ranks} (ties printed equal may break either way)"
    )
