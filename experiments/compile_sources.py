"""Compile the sourced facts behind the NQPF dataset into ``data/sourced_values.csv``.

Reads the collected source files (a ``shared/data`` folder beside the project, or ``--shared``) and
writes one row per fact: ``unit, indicator, year, value, status, use, trust, source, note``.

- ``status``: ``official`` (a statistic from a cited publisher), ``paper`` (stated by the paper or
  implied exactly by it), ``derived`` (computed from cited lists or figures).
- ``use``: ``fixed`` (the cell's value), ``lower_bound`` (the cell is at least this), ``prior`` (a
  starting point for the reconstruction, e.g. a count at an earlier date or under another
  definition).
- ``trust``: the source's grade (A official file, B faithful copy, C secondary, D doubtful).

Numbers and citations only; run once when sources change, then commit the CSV.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "sourced_values.csv"
PAPER = "Ye & Xu (2024), section 3.2"
NATIONAL = "China"


def province_names(shared: Path) -> dict[str, str]:
    table3 = pd.read_csv(shared / "paper" / "table3_scores_2022.csv")
    names = dict(zip(table3.province_zh, table3.province, strict=True))
    names.update({"山東": "Shandong", "内蒙": "Inner Mongolia"})
    return names


def fact(unit, indicator, year, value, status, use, trust, source, note=""):
    return {
        "unit": unit,
        "indicator": indicator,
        "year": year,
        "value": value,
        "status": status,
        "use": use,
        "trust": trust,
        "source": source,
        "note": note,
    }


def pct(shared: Path) -> list[dict]:
    frame = pd.read_csv(
        shared / "sources" / "cnipa-pct" / "pct_applications_by_region_2018_2022_2023.csv"
    )
    provinces = frame[
        frame.region_en.notna()
        & ~frame.region_cn.str.contains("合计|国内|国外")
        & ~frame.region_en.isin(["Taiwan", "Hong Kong", "Macao"])
    ]
    source = "CNIPA 2023 statistical yearbook, table 6-4 (PCT applications received)"
    rows = [
        fact(r.region_en, "pct_apps", 2022, int(r.pct_2022), "official", "fixed", "A", source)
        for r in provinces.itertuples()
    ]
    rows.append(
        fact(
            NATIONAL,
            "pct_apps",
            2018,
            int(provinces.pct_2018.sum()),
            "derived",
            "fixed",
            "A",
            source,
            "sum of the 31 provinces",
        )
    )
    return rows


def rd_yearbook(shared: Path) -> list[dict]:
    """R&D intensity, personnel (FTE), expenditure and invention patents granted of every province
    in 2022, from the China Statistical Yearbook on Science and Technology 2023 (tables 1-4, 1-7,
    1-8, 8-8)."""
    folder = shared / "sources" / "rd-yearbook-2023"
    frame = pd.concat(
        [pd.read_csv(folder / "values.csv"), pd.read_csv(folder / "patents_granted_2022.csv")]
    )
    frame = frame[(frame.unit != NATIONAL) & (frame.indicator != "patents_granted")]
    uses = {
        "rd_intensity": "fixed",
        "rd_fte": "fixed",
        "rd_expenditure": "related",
        "invention_patents_granted": "related",
    }
    notes = {
        ("Hebei", "rd_intensity"): "a reprint of the NBS 2022 bulletin prints 2.04, a typo: "
        "848.9 / 42,370.4 = 2.004%",
    }
    rows = []
    for r in frame.itertuples():
        table = r.note.split(";")[0]
        source = f"China Statistical Yearbook on Science and Technology 2023, {table} (copy)"
        note = notes.get((r.unit, r.indicator), r.measure.split(";")[0].split(" =")[0])
        rows.append(
            fact(
                r.unit,
                r.indicator,
                2022,
                r.value,
                "official",
                uses[r.indicator],
                r.trust,
                source,
                note,
            )
        )
    return rows


def paper_text(shared: Path) -> list[dict]:
    frame = pd.read_csv(shared / "paper" / "text_anchor_values.csv")
    rows = []
    for r in frame.itertuples():
        value, note = r.value, ""
        if r.province == "Shanghai" and r.code == "ns_papers":
            value, note = 27, "72 / 2.7 = 26.7; the integer whose ratio rounds to 2.7 is 27"
        if r.province == "Shaanxi":
            note = "56 - 38"
        if r.province == "Shandong" and r.code == "smart_5g_factories":
            # Jiangsu's 150 "is 1.5 times" Shandong's: 150 / x rounds to 1.5 for x in 97..103
            note = "150 / x rounds to 1.5 for the integers 97 to 103"
            rows += [
                fact(r.province, r.code, 2022, bound, "paper", use, "paper", PAPER, note)
                for bound, use in ((97, "lower_bound"), (103, "upper_bound"))
            ]
            continue
        rows.append(fact(r.province, r.code, 2022, value, "paper", "fixed", "paper", PAPER, note))
    rows.append(
        fact(
            "Guangdong",
            "sei_patents",
            2022,
            42767,
            "paper",
            "fixed",
            "paper",
            "Table 2 maximum; the text ranks Guangdong first",
            "Table 2 max",
        )
    )
    return rows


def clusters_and_centres(shared: Path, names: dict[str, str]) -> list[dict]:
    folder = shared / "sources" / "miit-clusters"
    clusters = pd.read_csv(folder / "clusters_45_by_province_2022.csv")
    clusters = clusters[~clusters.province.str.contains("跨省")]
    centres = (
        pd.read_csv(folder / "innovation_centres_26_by_city_2022.csv")
        .groupby("province")
        .national_mfg_innovation_centres_by_2022.sum()
    )
    counts = clusters.set_index("province").national_advanced_mfg_clusters_2022.add(
        centres, fill_value=0
    )
    source = (
        "MIIT 45 national advanced manufacturing clusters (2022, by province)"
        " + 26 national manufacturing innovation centres (to 2022, by city)"
    )
    note = (
        "count at end-2022; the paper uses the end-2023 cumulative;"
        " the two cross-province clusters are not assigned"
    )
    return [
        fact(names[p], "clusters_centres", 2022, int(v), "derived", "prior", "C", source, note)
        for p, v in counts.items()
    ]


def green(shared: Path, names: dict[str, str]) -> list[dict]:
    folder = shared / "sources" / "miit-green-manufacturing"
    mapping = {
        "深圳": "广东",
        "宁波": "浙江",
        "厦门": "福建",
        "青岛": "山东",
        "大连": "辽宁",
        "内蒙": "内蒙古",
        "兵团": "新疆",
        "新疆兵团": "新疆",
        "新疆生产建设兵团": "新疆",
    }
    lists = [pd.read_csv(folder / "绿色工厂名单.csv"), pd.read_csv(folder / "绿色工业园区名单.csv")]
    regions = pd.concat([f["地区"].str.strip() for f in lists]).replace(mapping)
    counts = regions.value_counts()
    source = (
        "MIIT green-manufacturing lists, batches 1-6 (2017-2021 batch),"
        " factories + parks per province"
    )
    note = "cumulative to the 2021 batch; the paper uses the end-2023 cumulative"
    return [
        fact(names[p], "green_factories_parks", 2021, int(v), "derived", "prior", "B", source, note)
        for p, v in counts.items()
    ]


def city_lower_bounds() -> list[dict]:
    return [
        fact(
            "Zhejiang",
            "unicorns",
            2022,
            22,
            "derived",
            "lower_bound",
            "C",
            "Hurun Global Unicorn Index 2023 (valuation 2022-12-31): Hangzhou 22",
            "a city count bounds its province",
        ),
        fact(
            "Hubei",
            "smart_5g_factories",
            2022,
            30,
            "derived",
            "lower_bound",
            "C",
            "MIIT 2023 5G factory list: Hubei 30",
            "5G factories alone, so the sum with smart-manufacturing factories is at least this",
        ),
    ]


def awards_priors(shared: Path, names: dict[str, str]) -> list[dict]:
    frame = pd.read_csv(
        shared / "sources" / "national-st-awards-2023" / "national_st_awards_2023_partial.csv"
    )
    frame = frame[(frame.scope == "province") & ~frame.unit.isin(["北京"])]
    rows = []
    for r in frame.itertuples():
        led = str(r.led_projects).lstrip(">=")
        rows.append(
            fact(
                names[r.unit],
                "sci_awards",
                2022,
                int(led),
                "derived",
                "prior",
                "C",
                f"2023 National S&T Awards, provincial press report ({r.source})",
                "projects led by the province; definitions differ between reports",
            )
        )
    return rows


def national(shared: Path) -> list[dict]:
    stated = pd.read_csv(shared / "paper" / "national_2012_2022.csv").set_index("quantity").value
    rows = []
    ratios = {
        "ns_papers": "ns_papers_ratio_2022_2012",
        "sei_patents": "sei_patents_ratio_2022_2012",
        "rd_fte": "rd_fte_ratio_2022_2012",
        "va_per_mu": "va_per_mu_ratio_2022_2012",
        "digital_core_revenue": "digital_core_revenue_ratio_2022_2012",
    }
    for code, key in ratios.items():
        rows.append(
            fact(
                NATIONAL,
                code,
                2012,
                100.0,
                "paper",
                "fixed",
                "paper",
                "Ye & Xu (2024), section 3.1",
                "relative level, 2012 = 100",
            )
        )
        rows.append(
            fact(
                NATIONAL,
                code,
                2022,
                round(100 * float(stated[key]), 6),
                "paper",
                "fixed",
                "paper",
                "Ye & Xu (2024), section 3.1",
                f"2022 / 2012 = {stated[key]}",
            )
        )
    levels = {
        ("pct_apps", 2012): "pct_apps_2012",
        ("pct_apps", 2022): "pct_apps_2022",
        ("rd_intensity", 2012): "rd_intensity_2012",
        ("rd_intensity", 2022): "rd_intensity_2022",
        ("labour_productivity", 2012): "labour_productivity_2012",
        ("labour_productivity", 2022): "labour_productivity_2022",
        ("unicorns", 2022): "unicorns_2022",
        ("clusters_centres", 2022): "clusters_centres_2022",
        ("smart_5g_factories", 2022): "smart_5g_factories_2022",
        ("green_factories_parks", 2022): "green_factories_parks_2022",
    }
    for (code, year), key in levels.items():
        rows.append(
            fact(
                NATIONAL,
                code,
                year,
                float(stated[key]),
                "paper",
                "fixed",
                "paper",
                "Ye & Xu (2024), section 3.1",
            )
        )
    for code, key in (
        ("clusters_centres", "first_year_clusters_centres"),
        ("smart_5g_factories", "first_year_smart_5g_factories"),
        ("green_factories_parks", "first_year_green_factories_parks"),
    ):
        for year in range(2012, int(stated[key])):
            rows.append(
                fact(
                    NATIONAL,
                    code,
                    year,
                    0,
                    "paper",
                    "fixed",
                    "paper",
                    "Ye & Xu (2024), section 2.3",
                    f"first awarded in {int(stated[key])}",
                )
            )
    bulletins = pd.read_csv(
        shared
        / "sources"
        / "nbs-rd-bulletins-national"
        / "national_rd_2012_2022_first_published.csv"
    )
    for r in bulletins.itertuples():
        if 2012 < r.year < 2022:
            rows.append(
                fact(
                    NATIONAL,
                    "rd_intensity",
                    r.year,
                    float(r.rd_intensity_pct_first_published),
                    "official",
                    "fixed",
                    "B",
                    "NBS national R&D funding bulletin of the year (first published)",
                    "first-published vintage; the paper's 2012 value 1.91 is a revised one",
                )
            )
        if r.year not in (2012, 2022) and pd.notna(r.rd_expenditure_per_fte_10k_yuan):
            fte = round(r.rd_expenditure_100m_yuan / r.rd_expenditure_per_fte_10k_yuan, 4)
            rows.append(
                fact(
                    NATIONAL,
                    "rd_fte",
                    r.year,
                    round(100 * fte / (10298.4 / 31.7), 6),
                    "derived",
                    "fixed",
                    "B",
                    "NBS R&D bulletins: expenditure / expenditure per FTE",
                    "relative level, 2012 = 100",
                )
            )
    return rows


def regions(shared: Path, names: dict[str, str]) -> list[dict]:
    frame = pd.read_csv(shared / "sources" / "nbs-regions" / "nbs_four_regions.csv")
    return [
        fact(
            names[r.province],
            "region",
            None,
            r.region_en,
            "official",
            "fixed",
            "A",
            "NBS four-region classification (2011)",
        )
        for r in frame.itertuples()
    ]


def gdp_per_capita(shared: Path) -> list[dict]:
    """Stated per-capita GDP where a source gives it; else GDP / year-end population (derived)."""
    folder = shared / "sources" / "gdp-per-capita-2022"
    stated = pd.read_csv(folder / "gdp_percapita_2022_by_province_partial.csv")
    script = pd.read_csv(folder / "github_script_gdp_pop_2022_D.csv").set_index("province_en")
    source_stated = (
        "2022 provincial statistical communique or yearbook (see the source folder for each URL)"
    )
    gaps = pd.read_csv(shared / "sources" / "gdp-rd-gaps-2022" / "values.csv")
    gaps = gaps[(gaps.indicator == "gdp_per_capita") & (gaps.trust != "D")].set_index("unit")
    rows = []
    for r in stated.itertuples():
        unit = r.province_en
        if pd.isna(r.gdp_per_capita_yuan) and unit in gaps.index:
            row = gaps.loc[unit]
            rows.append(
                fact(
                    unit,
                    "gdp_per_capita",
                    2022,
                    float(row.value),
                    "official",
                    "fixed",
                    row.trust,
                    f"NBS database as tabled by {row.source_url}",
                    row.vintage,
                )
            )
        elif pd.notna(r.gdp_per_capita_yuan):
            rows.append(
                fact(
                    unit,
                    "gdp_per_capita",
                    2022,
                    float(r.gdp_per_capita_yuan),
                    "official",
                    "fixed",
                    r.trust,
                    source_stated,
                    r.vintage,
                )
            )
        elif unit == "Beijing":
            rows.append(
                fact(
                    unit,
                    "gdp_per_capita",
                    2022,
                    190000.0,
                    "official",
                    "fixed",
                    r.trust,
                    source_stated,
                    "stated as 19.0 (10k yuan), rounded",
                )
            )
        elif unit == "Shanghai":
            rows.append(
                fact(
                    unit,
                    "gdp_per_capita",
                    2022,
                    180400.0,
                    "derived",
                    "fixed",
                    "C",
                    "The Paper (journalist's computation from the 2022 communique)",
                    "18.04 (10k yuan), rounded",
                )
            )
        elif pd.notna(r.gdp_100m_yuan) and pd.notna(r.pop_yearend_10k):
            rows.append(
                fact(
                    unit,
                    "gdp_per_capita",
                    2022,
                    round(1e4 * r.gdp_100m_yuan / r.pop_yearend_10k),
                    "derived",
                    "fixed",
                    r.trust,
                    source_stated,
                    "GDP / year-end population (the official figure uses the annual average)",
                )
            )
        elif unit in script.index and unit != "Hainan":
            gdp = (
                r.gdp_100m_yuan
                if pd.notna(r.gdp_100m_yuan)
                else script.loc[unit, "gdp_2022_100m_yuan"]
            )
            rows.append(
                fact(
                    unit,
                    "gdp_per_capita",
                    2022,
                    round(1e4 * gdp / script.loc[unit, "pop_2022_10k_integer"]),
                    "derived",
                    "fixed",
                    "D",
                    (
                        "unattributed analysis script (GDP, integer population);"
                        " GDP cross-checked where a communique gives it"
                    ),
                    "GDP / population; low trust",
                )
            )
    return rows


def gdp_levels(shared: Path) -> list[dict]:
    """GDP 2022 (100m yuan) where a communique or yearbook states it, else the trust-D script."""
    folder = shared / "sources" / "gdp-per-capita-2022"
    stated = pd.read_csv(folder / "gdp_percapita_2022_by_province_partial.csv")
    script = pd.read_csv(folder / "github_script_gdp_pop_2022_D.csv").set_index("province_en")
    rows = []
    for r in stated.itertuples():
        if pd.notna(r.gdp_100m_yuan):
            value, trust, source = float(r.gdp_100m_yuan), r.trust, r.source
        elif r.province_en in script.index:
            value, trust = float(script.loc[r.province_en, "gdp_2022_100m_yuan"]), "D"
            source = "unattributed analysis script (GDP equals the communique wherever checked)"
        else:
            continue
        rows.append(
            fact(r.province_en, "gdp", 2022, value, "official", "related", trust, source, r.vintage)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    shared = parser.parse_args().shared
    names = province_names(shared)
    rows = [
        *pct(shared),
        *rd_yearbook(shared),
        *paper_text(shared),
        *clusters_and_centres(shared, names),
        *green(shared, names),
        *city_lower_bounds(),
        *awards_priors(shared, names),
        *national(shared),
        *regions(shared, names),
        *gdp_per_capita(shared),
        *gdp_levels(shared),
    ]
    frame = pd.DataFrame(rows).sort_values(["indicator", "unit", "year", "use"], kind="stable")
    frame["year"] = frame["year"].astype("Int64")
    OUT.parent.mkdir(exist_ok=True)
    frame.to_csv(OUT, index=False)
    print(f"wrote {len(frame)} facts to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
