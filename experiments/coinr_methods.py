"""nqpf_sens's methods that follow COINr's definitions, each beside COINr's own result on its
ASEM example (denominated, imputed by ``EurAsia_group``, as ``build_example_coin``):

- normalisations of the treated data (winmax 5): ``n_minmax`` to [1, 100], ``n_zscore`` (10, 2),
  ``n_borda``, ``n_dist2targ`` (iMeta's ``Target``), ``n_dist2ref`` (unit DEU), ``n_goalposts``
  (goalposts the R script writes to ``goalposts.csv``, given here through a copy of the iMeta
  in a temporary folder);
- aggregations of the treated data min-max normalised to [1, 100]: ``a_amean``, ``a_gmean``,
  ``a_hmean``, ``a_genmean`` (p = 2, 0.5), ``a_copeland``;
- treatments of the screened data, then min-max to [0, 100]: winmax 1 with the fallbacks
  ``log_CT``, ``log_CT_plus``, ``boxcox`` (lambda 0.5, 0), and ``force_win`` with winmax 5; and
  ``log_CT_plus`` with every indicator negated (a copy of the iData in the temporary folder), where
  it meets negative skews.

Usage, from the project root, after ``Rscript experiments/coinr_methods.R`` has written COINr's
results: ``python experiments/coinr_methods.py [folder]`` (default ``results/coinr_methods``). For
each method it prints the largest absolute difference over every unit and every column compared
(indicators, or all aggregates), the number of cells, and, for aggregations, whether the index's
ranks (``rank(-Index, ties = "min")``) agree. COINr's distance methods score in [0, 1]: they are
compared with ``distance_scale = 1``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens import Pipeline, evaluate, load_spec, load_table
from nqpf_sens.engine.pipeline import prepare

ASEM = Path(__file__).resolve().parents[2] / "shared" / "data" / "asem"
COIN = Pipeline(
    imputation="mean",
    imputation_group="EurAsia_group",
    transformation="treat",
    transform_target="all",
    winsor_max=5,
)
NORMALISATIONS = {
    "n_minmax": dict(normalisation="minmax", minmax_range=(1, 100)),
    "n_zscore": dict(normalisation="zscore", zscore_scale=(10, 2), zscore_ddof=1),
    "n_borda": dict(normalisation="borda"),
    "n_dist2targ": dict(normalisation="distance_to_target", distance_scale=1),
    "n_dist2ref": dict(
        normalisation="distance_to_reference", reference_unit="DEU", distance_scale=1
    ),
    "n_goalposts": dict(normalisation="goalposts"),
}
MINMAX_1_100 = dict(minmax_range=(1, 100), nonpositive="refuse")
AGGREGATIONS = {
    "a_amean": dict(aggregation="arithmetic"),
    "a_gmean": dict(aggregation="geometric"),
    "a_hmean": dict(aggregation="harmonic"),
    "a_genmean_2": dict(aggregation="generalised", power=2.0),
    "a_genmean_0.5": dict(aggregation="generalised", power=0.5),
    "a_copeland": dict(aggregation="copeland"),
}
TREATMENTS = {
    "treat_winmax1": dict(winsor_max=1),
    "treat_log_CT_plus": dict(winsor_max=1, treat_fallback="log_CT_plus"),
    "treat_boxcox_0.5": dict(winsor_max=1, treat_fallback="boxcox", boxcox_lambda=0.5),
    "treat_boxcox_0": dict(winsor_max=1, treat_fallback="boxcox", boxcox_lambda=0.0),
    "treat_force_win": dict(winsor_max=5, force_winsorise=True),
    "treat_log_CT_plus_negated": dict(winsor_max=1, treat_fallback="log_CT_plus"),
}


def normalised(spec, table, pipeline: Pipeline) -> pd.DataFrame:
    values = prepare(pipeline, table, spec)[0]
    return pd.DataFrame(values, index=list(table.units), columns=list(spec.indicators))


def goalpost_spec(folder: Path, directory: str):
    """The ASEM spec with the goalposts COINr was given, through a copy of its iMeta."""
    meta = pd.read_csv(ASEM / "asem_iMeta.csv")
    posts = pd.read_csv(folder / "goalposts.csv").drop(columns="goalpost_trunc2posts")
    path = Path(directory) / "asem_iMeta_goalposts.csv"
    meta.merge(posts, on="iCode", how="left").to_csv(path, index=False)
    return load_spec(path)


def negated_table(spec, directory: str):
    """The ASEM table with every indicator negated (its denominators and groups as they are)."""
    data = pd.read_csv(ASEM / "asem_iData.csv")
    columns = list(spec.indicators)
    data[columns] = -data[columns]
    path = Path(directory) / "asem_iData_negated.csv"
    data.to_csv(path, index=False)
    return load_table(path, spec, unit_column="uCode", year_column="Time")


def report(name: str, mine: pd.DataFrame, coinr: pd.DataFrame, note: str = "") -> None:
    difference = (mine - coinr.loc[mine.index, mine.columns]).abs().to_numpy()
    print(f"{name}: largest difference {np.max(difference):.1e} over {difference.size} cells{note}")


def main(folder: Path) -> None:
    spec = load_spec(ASEM / "asem_iMeta.csv")
    table = load_table(ASEM / "asem_iData.csv", spec, unit_column="uCode", year_column="Time")
    read = lambda name: pd.read_csv(folder / f"{name}.csv").set_index("uCode")  # noqa: E731
    with tempfile.TemporaryDirectory() as directory:
        for name, options in NORMALISATIONS.items():
            own = goalpost_spec(folder, directory) if name == "n_goalposts" else spec
            mine, coinr = normalised(own, table, COIN.with_(**options)), read(name)
            report(name, mine, coinr)
        negated = negated_table(spec, directory)
    for name, options in AGGREGATIONS.items():
        frame = evaluate(spec, table, COIN.with_(**MINMAX_1_100, **options)).to_frame()
        mine = frame.set_index("unit").rename(columns={"total": spec.index_code})
        coinr = read(name)
        ranks = coinr[spec.index_code].rank(ascending=False, method="min")
        same = bool((mine["rank"] == ranks.loc[mine.index]).all())
        report(name, mine[list(spec.aggregates)], coinr, f"; index ranks agree: {same}")
    for name, options in TREATMENTS.items():
        data = negated if name.endswith("_negated") else table
        report(name, normalised(spec, data, COIN.with_(**options)), read(name))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/coinr_methods"))
