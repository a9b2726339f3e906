"""Figures and the self-contained HTML report, rebuilt from saved results; rendered in headless
Chromium."""

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import synthetic_frame, write_units_and_values

from nqpf_sens import nqpf_spec
from nqpf_sens.report import figures
from nqpf_sens.report import html as report_page
from nqpf_sens.report.saved_run import load_run
from nqpf_sens.running import run_config

CONFIG = """
[run]
name = "r"
kind = "sobol"
seed = 3
[data]
values = "values.csv"
units = "units.csv"
[sampling]
n = 64
bootstrap = 20
[outputs]
svg = true
[[factors]]
name = "normalisation"
kind = "choice"
key = "normalisation"
options = ["minmax", "zscore"]
[[factors]]
name = "weights"
kind = "weights"
level = 0
"""

FIGURES = [
    "rank_intervals",
    "tier_probabilities",
    "score_bands",
    "quadrant",
    "importance",
    "one_at_a_time",
    "sobol_rank_shift",
    "sobol_focus_unit",
    "sobol_heatmap",
    "convergence",
]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    write_units_and_values(folder)
    (folder / "r.toml").write_text(CONFIG)
    return run_config(folder / "r.toml", out=folder / "out", quiet=True)


def test_every_figure_is_written_as_png_and_svg(run_folder):
    for name in FIGURES:
        assert (run_folder / "figures" / f"{name}.png").stat().st_size > 1000, name
        assert (run_folder / "figures" / f"{name}.svg").stat().st_size > 1000, name


@pytest.mark.parametrize("suffix", ["", " Uygur Autonomous Region (long name)"])
def test_no_text_leaves_its_figure(run_folder, tmp_path, monkeypatch, suffix):
    """Margins are fixed from measured label widths, not found by a layout engine: every figure's
    drawn extent (labels, titles, legends, colour bars) lies inside it, long unit names too."""
    manifest, tables = load_run(run_folder)
    long_names = {unit: unit + suffix for unit in tables["rank_stability"].unit}
    monkeypatch.setattr(figures, "unit_labels", lambda tables, chinese: (long_names, None))
    real_save, outside = figures._save, []

    def checked_save(figure, stem, svg):
        width, height = figure.get_size_inches()
        drawn = figure.get_tightbbox(figure.canvas.get_renderer())  # inches
        if drawn.x0 < -0.01 or drawn.y0 < -0.01 or drawn.x1 > width + 0.01 or drawn.y1 > height:
            outside.append((stem.name, drawn.bounds, (width, height)))
        return real_save(figure, stem, svg)

    monkeypatch.setattr(figures, "_save", checked_save)
    drawn, _ = figures.make_figures(tmp_path, manifest, tables, False, jobs=1)
    assert len(drawn) == len(FIGURES) and not outside


def test_a_nominal_score_outside_its_band_is_drawn_outside_it(tmp_path):
    """Choices that all move every unit one way (geometric and harmonic means never exceed the
    nominal arithmetic one) leave nominal scores outside their 5th-95th percentile bands: the
    figures draw them there (the quadrant figure stopped the run, drawing the band as error bars
    of negative length)."""
    write_units_and_values(tmp_path)
    config = CONFIG.replace('kind = "sobol"', 'kind = "montecarlo"').replace(
        'options = ["minmax", "zscore"]', 'options = ["geometric", "harmonic"]'
    )
    config = config.replace('key = "normalisation"', 'key = "aggregation"')
    (tmp_path / "r.toml").write_text(config)
    folder = run_config(tmp_path / "r.toml", out=tmp_path / "out", quiet=True)
    bands = pd.read_csv(folder / "tier_bands.csv")
    assert (bands.total_nominal > bands.total_p95).any()
    for name in ("quadrant", "score_bands", "rank_intervals"):
        assert (folder / "figures" / f"{name}.png").stat().st_size > 1000, name


def test_figures_drawn_in_parallel_are_those_drawn_one_by_one(run_folder, tmp_path):
    manifest, tables = load_run(run_folder)
    one = figures.make_figures(tmp_path / "one", manifest, tables, False, jobs=1)[0]
    two = figures.make_figures(tmp_path / "two", manifest, tables, False, jobs=2)[0]
    assert [caption for _, caption in one] == [caption for _, caption in two]
    for (a, _), (b, _) in zip(one, two, strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name


def test_report_is_self_contained_and_reads_the_numbers(run_folder):
    page = (run_folder / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert not re.search(r"(src|href)=[\"']https?://", page)
    assert "keep theirs in at least 90%" in page and "mean rank shift" in page


def test_report_opens_with_what_a_referee_needs(run_folder):
    """Before any number: which index, its data and their provenance, the design and its sample
    sizes, and what the tiers are; then each factor with its settings and justification."""
    page = (run_folder / "report.html").read_text(encoding="utf-8")
    about = page[page.index("<h2>About this run</h2>") : page.index("<h2>Reading</h2>")]
    for expected in (
        "Ye Zhenyu &amp; Xu Pengcheng (2024)",
        "12 units, 15 indicators",
        "cells by provenance",
        "sobol (saltelli design), N = 64, 256 scenarios evaluated; 128 behind",
        "Sobol intervals from 20 bootstrap resamples at 95% confidence",
        "tier 1: ranks 1-2; tier 2: ranks 3-5; tier 3: ranks 6 and below",
    ):
        assert expected in about, expected
    assert "options = minmax, zscore" in page and "(none given in the config)" in page
    glossary = page[page.index("<h2>Glossary") :]
    assert "<td>p_within_3</td>" in glossary and "<td>iqr_rank</td>" in glossary


def test_report_command_rebuilds_from_saved_files(run_folder):
    shutil.rmtree(run_folder / "figures")
    (run_folder / "report.html").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "nqpf_sens", "report", str(run_folder), "--chinese"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (run_folder / "report.html").is_file() and (
        run_folder / "figures" / "rank_intervals.svg"
    ).is_file()
    from nqpf_sens.report.figures import label_font

    _, missing_font = label_font(chinese=True)  # said on the terminal, not only inside the page
    assert (f"warning: {missing_font}" in result.stderr) if missing_font else not result.stderr


def test_report_of_an_incomplete_folder_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nqpf_sens", "report", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 2 and "not a complete run" in result.stderr


def render(page: Path, profile: Path, width: int = 1280) -> subprocess.CompletedProcess:
    """The page's DOM after headless Chromium (a window ``width`` pixels wide) has loaded it and
    run its scripts."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--virtual-time-budget=10000",
        f"--window-size={width},900",
    ]
    return subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180
    )


def test_report_renders_in_headless_chromium(run_folder, tmp_path):
    result = render(run_folder / "report.html", tmp_path / "profile")
    body = re.search(r"<body[^>]*>", result.stdout).group(0)
    assert 'data-images-loaded="true"' in body, body
    assert f'data-image-count="{len(FIGURES)}"' in body
    assert 'data-errors="0"' in body
    assert "Uncaught" not in result.stderr


def test_a_run_without_a_name_is_titled_by_its_config(tmp_path):
    synthetic_frame(nqpf_spec(), n_units=6).to_csv(tmp_path / "values.csv", index=False)
    (tmp_path / "plain.toml").write_text('[data]\nvalues = "values.csv"\n')
    folder = run_config(tmp_path / "plain.toml", out=tmp_path / "out", quiet=True)
    assert "<h1>nqpf_sens: plain</h1>" in (folder / "report.html").read_text(encoding="utf-8")


def test_names_that_look_like_numbers_are_shown_as_written(tmp_path):
    """Units '1', '01', '1.0' and a factor '1e3': the report read the saved tables with numbers
    guessed, showed '01' as 1 and '1e3' as 1000.0, and a run with units '1' and '01' failed in
    a traceback after its study (two units became one)."""
    frame = synthetic_frame(nqpf_spec(), n_units=6)
    frame["unit"] = ["1", "01", "1.0", "2", "002", "NA"]
    frame.to_csv(tmp_path / "values.csv", index=False)
    (tmp_path / "names.toml").write_text(
        '[run]\nkind = "sobol"\n[data]\nvalues = "values.csv"\n[sampling]\nn = 16\n'
        "bootstrap = 10\n"
        '[[factors]]\nname = "1e3"\nkind = "weights"\nlevel = 0\n'
        '[[factors]]\nname = "01"\nkind = "choice"\nkey = "normalisation"\n'
        'options = ["minmax", "rank"]\n'
    )
    folder = run_config(tmp_path / "names.toml", out=tmp_path / "out", quiet=True)
    _, tables = load_run(folder)
    assert sorted(tables["rank_stability"].unit) == sorted(frame.unit)
    assert set(tables["sobol_summary"].factor) == {"1e3", "01"}
    page = (folder / "report.html").read_text(encoding="utf-8")
    for name in ("01", "1.0", "002", "1e3"):
        assert f"<td>{name}</td>" in page, name
    assert "<td>1000.0</td>" not in page


HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
HOSTILE_RUN = """[run]
name = '{image}'
kind = "montecarlo"
[data]
values = '{image}.csv'
[pipeline]
reference_unit = '{script} 0'
[sampling]
n = 64
[outputs]
figures = false
[audit]
coherence = false
importance = false
what_if = false
rank_bounds = false
[[factors]]
name = '{script}'
kind = "weights"
level = 0
spread = 0.9
description = '{image}'
"""


def test_hostile_text_is_escaped_on_every_path_into_the_report(tmp_path, monkeypatch):
    """Markup in unit names (score table, reading), a factor's name and description (factor
    table), config values (run name, a pipeline option, the data file's name among the about
    rows) and a figure's caption and warning reaches the page on each of its paths as text, never
    as markup."""
    frame = synthetic_frame(nqpf_spec(), n_units=8)
    frame["unit"] = [f"{HOSTILE[i % 2]} {i}" for i in range(8)]
    frame.to_csv(tmp_path / f"{HOSTILE[1]}.csv", index=False)
    (tmp_path / "run.toml").write_text(HOSTILE_RUN.format(script=HOSTILE[0], image=HOSTILE[1]))
    folder = run_config(tmp_path / "run.toml", out=tmp_path / "out", quiet=True)
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"png")
    drawn = ([(figure, HOSTILE[0])], [HOSTILE[1]])  # a figure's caption, a drawing warning
    monkeypatch.setattr(report_page, "make_figures", lambda *_: drawn)
    page = report_page.build_report(folder).read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<img src=x" not in page
    script, image = (html.escape(text) for text in HOSTILE)
    for expected in (
        f"<h1>nqpf_sens: {image}</h1>",
        f"{image}.csv</td>",  # the about rows
        f"reference_unit = {script} 0</code>",
        f'<p class="warning">{image}</p>',
        f'<img alt="{script}"',
        f"<figcaption>{script}</figcaption>",
    ):
        assert expected in page, expected
    sections = dict(part.split("</h2>", 1) for part in page.split("<h2>")[1:])
    for title in ("Reading", "What was run", "Baseline scores"):  # the factor table: What was run
        assert "&lt;script&gt;alert(1)" in sections[title], title
        assert "&lt;img src=x onerror=alert(1)&gt;" in sections[title], title


# Clicks every column header of every sortable table twice, as a reader does, and records per
# table whether each column then read in ascending and then descending order: numbers by value
# (as a reader reads them, thousands separators too), then texts alphabetically, empty cells last
# either way.
CLICK_EVERY_HEADER = """<script>window.addEventListener('load', function () {
  function read(text) {
    if (/^[-+]?\\d{1,3}(,\\d{3})+(\\.\\d+)?$/.test(text)) { text = text.split(',').join(''); }
    var number = Number(text);
    return text === '' ? null : (isNaN(number) ? text : number);
  }
  function values(table, column) {
    return Array.prototype.map.call(table.tBodies[0].rows, function (row) {
      return read(row.cells[column].textContent.trim()); });
  }
  function kind(v) { return v === null ? 2 : (typeof v === 'string' ? 1 : 0); }
  function ordered(list, sign) {
    return list.every(function (v, i) {
      var w = list[i - 1];
      if (i === 0) { return true; }
      if (kind(v) !== kind(w)) { return kind(v) > kind(w); }
      if (v === null) { return true; }
      return sign * (typeof v === 'string' ? v.localeCompare(w) : v - w) >= 0; });
  }
  var results = Array.prototype.map.call(document.querySelectorAll('table.sortable'),
    function (table) {
      return Array.prototype.every.call(table.tHead.rows[0].cells, function (th) {
        th.click(); var up = ordered(values(table, th.cellIndex), 1);
        th.click(); var down = ordered(values(table, th.cellIndex), -1);
        return up && down && th.title !== ''; });
    });
  document.body.dataset.sorted = results.join(',');
  document.body.dataset.clickErrors = window.reportErrors.length;
});</script></body>"""


def clicked_tables(report: Path, tmp_path: Path) -> tuple[list[str], str]:
    """Per sortable table of ``report``, whether clicking each header sorted it (``"true"``),
    and the page's body tag."""
    page = report.read_text(encoding="utf-8").replace("</body>", CLICK_EVERY_HEADER)
    (tmp_path / "clicked.html").write_text(page, encoding="utf-8")
    body = re.search(
        r"<body[^>]*>", render(tmp_path / "clicked.html", tmp_path / "profile").stdout
    ).group(0)
    return re.search(r'data-sorted="([^"]*)"', body).group(1).split(","), body


def test_clicking_any_header_sorts_its_table(run_folder, tmp_path):
    sorted_tables, body = clicked_tables(run_folder / "report.html", tmp_path)
    assert len(sorted_tables) >= 8 and all(flag == "true" for flag in sorted_tables), body
    assert 'data-click-errors="0"' in body


def test_numbers_with_thousands_separators_sort_by_value(run_folder, tmp_path):
    """An index on a scale of thousands, negative too (an affine map of the saved scores,
    which keeps their order): written as "-12,345.68", and a click still sorts them by value."""
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    bands = pd.read_csv(folder / "tier_bands.csv")
    scores = [c for c in bands if c.startswith("total_")]
    bands[scores] = bands[scores] * 1000 - 1000 * bands.total_nominal.median()
    bands.to_csv(folder / "tier_bands.csv", index=False)
    page = report_page.rebuild_report(folder, quiet=True).read_text(encoding="utf-8")
    assert re.search(r"<td>-\d{1,3},\d{3}\.\d\d</td>", page)
    assert re.search(r"<td>\d{1,3},\d{3}\.\d\d</td>", page)
    sorted_tables, body = clicked_tables(folder / "report.html", tmp_path)
    assert sorted_tables and all(flag == "true" for flag in sorted_tables), body


MEASURE_WIDTH = """<script>window.addEventListener('load', function () {
  document.body.dataset.pageWidth = document.documentElement.scrollWidth;
  document.body.dataset.viewWidth = window.innerWidth;
});</script></body>"""


def test_the_page_fits_a_1280_pixel_window(run_folder, tmp_path):
    """Wide tables scroll inside their own box: the page itself never needs a horizontal
    scrollbar."""
    page = (run_folder / "report.html").read_text(encoding="utf-8")
    (tmp_path / "measured.html").write_text(
        page.replace("</body>", MEASURE_WIDTH), encoding="utf-8"
    )
    body = re.search(
        r"<body[^>]*>", render(tmp_path / "measured.html", tmp_path / "profile").stdout
    ).group(0)
    page_width = int(re.search(r'data-page-width="(\d+)"', body).group(1))
    view_width = int(re.search(r'data-view-width="(\d+)"', body).group(1))
    assert view_width == 1280 and page_width <= view_width, body


def test_a_table_never_rounds_a_standard_error_to_zero_or_a_share_short_of_all_to_one():
    frame = pd.DataFrame({"p": [0.9996, 0.5, 1.0], "p_se": [0.000338, 0.02, 0.000338]})
    page = report_page._table(frame)
    assert "<td>0.9996</td>" in page and "<td>1.000</td>" in page and "<td>0.500</td>" in page
    assert "<td>0.0003</td>" in page and "<td>0.020</td>" in page
    assert "0.000<" not in page
    whole = report_page._table(pd.DataFrame({"n": [2048.0, 16.0]}))
    assert "<td>2,048</td>" in whole
