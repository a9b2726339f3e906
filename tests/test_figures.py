"""Figures flag what the tables flag: unreliable Sobol outputs are marked, never drawn as read."""

import re

import matplotlib.axes
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from nqpf_sens.errors import UserError
from nqpf_sens.report import figures


def indices():
    rows = []
    for unit, reliable in (("a", True), ("b", False)):
        for factor, st in (("f", 0.6), ("g", 0.2)):
            rows.append(
                {
                    "output": f"rank:{unit}",
                    "factor": factor,
                    "S1": st - 0.1,
                    "S1_low": st - 0.2,
                    "S1_high": st,
                    "ST": st,
                    "ST_low": st - 0.05,
                    "ST_high": st + 0.05,
                    "output_sd": 2.0,  # varies, yet not reliable (say, intervals too wide)
                    "reliable": reliable,
                }
            )
    return pd.DataFrame(rows)


def first_arguments(monkeypatch, method: str) -> list:
    """The first argument of each call of ``matplotlib.axes.Axes.<method>``, recorded."""
    seen: list = []
    real = getattr(matplotlib.axes.Axes, method)
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        method,
        lambda self, t, *a, **k: seen.append(t) or real(self, t, *a, **k),
    )
    return seen


def test_the_heat_map_hatches_the_outputs_the_tables_set_aside(monkeypatch):
    hatched = first_arguments(monkeypatch, "add_patch")
    labels = []
    real_ticks = matplotlib.axes.Axes.set_yticks

    def yticks(self, ticks, names=None, **kwargs):
        labels.extend(names or [])
        return real_ticks(self, ticks, names, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_yticks", yticks)
    plt.close(figures.sobol_heatmap(indices(), ["a", "b"], {}))
    assert len(hatched) == 1 and labels == ["a", "b (not read)"]


def test_bars_of_an_unreliable_output_say_so(monkeypatch):
    titles = first_arguments(monkeypatch, "set_title")
    plt.close(figures.sobol_bars(indices(), "rank:b", "Sobol indices of b"))
    plt.close(figures.sobol_bars(indices(), "rank:a", "Sobol indices of a"))
    assert titles == [
        "Sobol indices of b (not reliable: see sobol_outputs.csv)",
        "Sobol indices of a",
    ]


def test_quadrant_labels_never_overlap_in_a_crowded_corner():
    """Twenty-six units crowded in the low-left quarter (as the provinces are in the paper's
    Figure 3) and five leaders: labels all put beside their points collide; placed by the chart,
    no two label boxes overlap."""
    from nqpf_sens.report.figures import LABEL_OFFSETS, quadrant

    rng = np.random.default_rng(7)
    units = [f"Province{i:02d}" for i in range(31)]
    total = np.r_[rng.uniform(0, 35, 26), [45.0, 55.0, 60.0, 70.0, 80.0]]
    bands = pd.DataFrame(
        {"unit": units, "total_nominal": total, "total_p05": total - 5, "total_p95": total + 5}
    )
    gdp = pd.Series(np.r_[rng.uniform(4.5e4, 9.5e4, 26), rng.uniform(10e4, 19e4, 5)], index=units)

    def crossings(figure) -> int:
        renderer = figure.canvas.get_renderer()
        boxes = [text.get_window_extent(renderer) for text in figure.axes[0].texts]
        assert len(boxes) == 31
        return sum(boxes[a].overlaps(boxes[b]) for a in range(31) for b in range(a))

    placed = quadrant(bands, gdp, {})
    assert crossings(placed) == 0
    naive = quadrant(bands, gdp, {})
    for text in naive.axes[0].texts:  # every label at the first offset: what the chart avoids
        text.set_position(LABEL_OFFSETS[0])
        text.set_horizontalalignment("left")
    assert crossings(naive) > 0
    plt.close(placed)
    plt.close(naive)


def test_a_panel_of_several_units_draws_one_units_trajectory(tmp_path):
    """Several units over several years: the trajectory is the first unit's (or the focus
    unit's), named in its title and caption; averaging every unit's quantiles year by year drew
    the band of no quantity."""
    from nqpf_sens.running import run_config

    (tmp_path / "meta.csv").write_text(
        "code,dimension,weight,direction\na1,A,1,positive\na2,A,1,positive\nb1,B,1,positive\n"
    )
    rng = np.random.default_rng(0)
    rows = [
        (unit, code, year, float(rng.uniform(1, 10)))
        for unit in ("U1", "U2", "U3")
        for code in ("a1", "a2", "b1")
        for year in (2021, 2022)
    ]
    pd.DataFrame(rows, columns=["unit", "indicator", "year", "value"]).to_csv(
        tmp_path / "values.csv", index=False
    )
    config = (
        '[run]\nname = "panel"\nkind = "montecarlo"\nseed = 1\n[data]\nmetadata = "meta.csv"\n'
        'values = "values.csv"\n[sampling]\nn = 16\n[outputs]\nsvg = true\n{focus}'
        '[[factors]]\nname = "w"\nkind = "weights"\nlevel = 0\n'
    )
    drawn = []
    for focus in ("", 'focus_unit = "U2"\n'):
        (tmp_path / "p.toml").write_text(config.format(focus=focus))
        folder = run_config(tmp_path / "p.toml", out=tmp_path / f"out{len(drawn)}", quiet=True)
        bands = pd.read_csv(folder / "tier_bands.csv")
        first = bands[bands.year == 2022].sort_values("nominal_rank").unit.iloc[0]
        unit = "U2" if focus else first
        svg = (folder / "figures" / "trajectory.svg").read_text(encoding="utf-8")
        assert f"Trajectory of {unit} with its band" in svg
        page = (folder / "report.html").read_text(encoding="utf-8")
        assert (
            f"Trajectory of {unit}&#x27;s index" in page or f"Trajectory of {unit}'s index" in page
        )
        drawn.append(unit)


def test_undefined_statistics_draw_without_a_warning(tmp_path):
    """A dimension constant across units (its importance is undefined) and a factor that moves no
    rank (the ST of R_S is undefined): the run says nothing on the terminal (numpy's All-NaN
    warnings leaked from the convergence figure and the importance intervals)."""
    import subprocess
    import sys

    from conftest import synthetic_frame

    from nqpf_sens import nqpf_spec

    spec = nqpf_spec()
    frame = synthetic_frame(spec, n_units=8)
    constant = [c for c, d in zip(spec.indicators, spec.parents[0], strict=True) if d == 2]
    frame[constant] = 5.0
    frame.to_csv(tmp_path / "values.csv", index=False)
    (tmp_path / "c.toml").write_text(
        '[run]\nname = "c"\nkind = "sobol"\n[data]\nvalues = "values.csv"\n[sampling]\nn = 16\n'
        'bootstrap = 10\n[[factors]]\nname = "f"\nkind = "choice"\nkey = "treat_fallback"\n'
        'options = ["log_CT", "boxcox"]\n[[factors]]\nname = "g"\nkind = "choice"\n'
        'key = "winsor_max"\noptions = [1, 2]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "nqpf_sens", "run", "c.toml", "--out", "out", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert (tmp_path / "out" / "figures" / "convergence.png").is_file()


def test_characters_no_font_has_are_said_once(tmp_path):
    """A unit name with a character no font draws (a private-use one): one warning line on the
    terminal and in the report, not matplotlib's warning per character and figure."""
    import subprocess
    import sys

    from conftest import synthetic_frame

    from nqpf_sens import nqpf_spec

    frame = synthetic_frame(nqpf_spec(), n_units=6)
    frame.loc[0, "unit"] = "unit \ue000\ue001"
    frame.to_csv(tmp_path / "values.csv", index=False)
    (tmp_path / "c.toml").write_text(
        '[run]\nname = "c"\nkind = "montecarlo"\n[data]\nvalues = "values.csv"\n[sampling]\n'
        'n = 16\n[[factors]]\nname = "w"\nkind = "weights"\nlevel = 0\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "nqpf_sens", "run", "c.toml", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0
    assert result.stderr.splitlines() == [f"warning: {figures.MISSING_GLYPHS}"], result.stderr
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "some names hold characters no installed font can draw" in page


def test_figures_of_many_units_draw_the_first_by_nominal_rank(tmp_path):
    """A row per unit makes a figure 0.22 inches taller per unit: 300,000 rows of a hand-edited
    table took 6 GB before failing, and an index of thousands of units draws pages no one reads.
    Those figures show the first units by nominal rank and their captions say so."""
    from conftest import synthetic_frame

    from nqpf_sens import nqpf_spec

    n_units = figures.MAX_FIGURE_UNITS + 7
    synthetic_frame(nqpf_spec(), n_units=n_units).to_csv(tmp_path / "values.csv", index=False)
    (tmp_path / "c.toml").write_text(
        '[run]\nname = "c"\nkind = "sobol"\n[data]\nvalues = "values.csv"\n[sampling]\nn = 16\n'
        "bootstrap = 10\n[audit]\nwhat_if = true\nrank_bounds = false\n"
        '[[factors]]\nname = "w"\nkind = "weights"\n'
        'level = 0\n[[factors]]\nname = "a"\nkind = "choice"\nkey = "aggregation"\n'
        'options = ["arithmetic", "geometric"]\n'
    )
    import nqpf_sens as ns

    out = ns.run_config(tmp_path / "c.toml", out=tmp_path / "out", quiet=True)
    page = (out / "report.html").read_text(encoding="utf-8")
    shown = f"The first {figures.MAX_FIGURE_UNITS} of {n_units} units by nominal rank are shown"
    assert shown in page
    per_unit = ("rank_intervals", "tier_probabilities", "score_bands", "one_at_a_time")
    for name in (*per_unit, "sobol_heatmap"):
        height = plt.imread(out / "figures" / f"{name}.png").shape[0]
        assert height < (0.22 * figures.MAX_FIGURE_UNITS + 2) * plt.rcParams["savefig.dpi"], name


def small_sobol_page(folder, years: int, sampling: str = "") -> str:
    """The report page of a weights-only Sobol run of five units (of ``years`` years) on three
    indicators of their own."""
    from nqpf_sens.running import run_config

    (folder / "meta.csv").write_text(
        "code,dimension,weight,direction\na1,A,1,positive\na2,A,1,positive\nb1,B,1,positive\n"
    )
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.uniform(1, 10, size=(5 * years, 3)), columns=["a1", "a2", "b1"])
    frame = frame.assign(unit=[f"U{i}" for i in range(5)] * years)
    if years > 1:
        frame["year"] = np.repeat(np.arange(2022 - years, 2022), 5)
    frame.to_csv(folder / "values.csv", index=False)
    (folder / "s.toml").write_text(
        '[run]\nname = "s"\nkind = "sobol"\nseed = 1\n[data]\nmetadata = "meta.csv"\n'
        f'values = "values.csv"\n[sampling]\nn = 16\nbootstrap = 10\n{sampling}'
        '[[factors]]\nname = "w"\nkind = "weights"\nlevel = 0\n'
    )
    result = run_config(folder / "s.toml", out=folder / "out", quiet=True)
    return (result / "report.html").read_text(encoding="utf-8")


def test_sobol_bars_and_their_caption_state_the_configured_confidence(tmp_path, monkeypatch):
    """At [sampling] confidence = 0.9 the intervals drawn are 90% ones: the axis and the caption
    said 95%."""
    labels = first_arguments(monkeypatch, "set_xlabel")
    plt.close(figures.sobol_bars(indices(), "rank:a", "Sobol indices of a", 0.9))
    assert labels == ["Sobol index (lines: 90% interval)"]
    page = small_sobol_page(tmp_path, years=1, sampling="confidence = 0.9\n")
    assert "rank shift, with 90% percentile bootstrap intervals." in page
    assert "with 95% percentile" not in page


def test_a_panels_sobol_unit_figures_name_the_year_whose_ranks_they_are(tmp_path):
    """For data of several years a unit's Sobol outputs are its last year's rank: the captions of
    the focus unit's bars and of the heat map said nothing of the year."""
    page = small_sobol_page(tmp_path, years=2)
    assert re.search(r"Sobol indices of the rank in 2021 of U\d\.", page)
    assert "Total-order index of each unit&#x27;s rank in 2021 for each factor." in page


def test_a_heat_map_sized_to_a_name_of_thousands_of_characters_is_refused_not_drawn(tmp_path):
    """Its labels turned 45 degrees, a factor named with 5,000 characters asked for a figure of
    billions of pixels: the drawing ran out of memory, and the error blamed the sample size."""
    frame = indices()
    frame["factor"] = frame.factor.str.repeat(2000)
    figure = figures.sobol_heatmap(frame, None, {})
    with pytest.raises(UserError, match="sobol_heatmap would be .* pixels, too large to draw"):
        figures._save(figure, tmp_path / "figures" / "sobol_heatmap", svg=False)
    assert not (tmp_path / "figures").exists()
