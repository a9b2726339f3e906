"""Aggregation without imputation beside COINr's own: every aggregate of the ASEM example
(denominated, min-max to [0, 100], arithmetic means, ``data_threshold`` = COINr's ``dat_thresh``).

Usage, from the project root, after ``Rscript experiments/coinr_dat_thresh.R`` has written COINr's
scores: ``python experiments/coinr_dat_thresh.py [folder]`` (default
``results/coinr_dat_thresh``). For each threshold it prints the largest difference over the
aggregates both give, whether both leave the same cells missing and, where COINr leaves a unit's
index missing (NA), that nqpf_sens refuses the run naming a unit whose index COINr leaves missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens import Pipeline, UserError, evaluate, load_spec, load_table

ASEM = Path(__file__).resolve().parents[2] / "shared" / "data" / "asem"
THRESHOLDS = {"0": 0.0, "0.5": 0.5, "0.8": 0.8, "0.8_0_0": (0.8, 0.0, 0.0)}


def main(folder: Path) -> None:
    spec = load_spec(ASEM / "asem_iMeta.csv")
    table = load_table(ASEM / "asem_iData.csv", spec, unit_column="uCode", year_column="Time")
    for name, threshold in THRESHOLDS.items():
        coinr = pd.read_csv(folder / f"aggregated_{name}.csv").set_index("uCode")
        pipeline = Pipeline(imputation="none", data_threshold=threshold)
        if coinr[spec.index_code].isna().any():
            missing = set(coinr.index[coinr[spec.index_code].isna()])
            try:
                evaluate(spec, table, pipeline)
                verdict = "NOT REFUSED"
            except UserError as error:
                named = next((u for u in missing if f"unit '{u}'" in str(error)), None)
                verdict = f"refused, naming {named}" if named else f"refused otherwise: {error}"
            print(f"dat_thresh {name}: COINr leaves {len(missing)} indices NA; nqpf_sens {verdict}")
            continue
        mine = evaluate(spec, table, pipeline).to_frame().set_index("unit")
        mine = mine.rename(columns={"total": spec.index_code}).loc[coinr.index]
        codes = list(spec.aggregates)
        difference = (mine[codes] - coinr[codes]).abs().to_numpy()
        same_gaps = bool((mine[codes].isna() == coinr[codes].isna()).all().all())
        gaps = int(coinr[codes].isna().sum().sum())
        print(
            f"dat_thresh {name}: largest difference {np.nanmax(difference):.1e} over "
            f"{int(np.isfinite(difference).sum())} aggregates, {gaps} missing in COINr, "
            f"the same cells missing: {same_gaps}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/coinr_dat_thresh"))
