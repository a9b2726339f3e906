"""Figures drawn from a run's saved tables (never from a re-run): PNG (and SVG on request),
readable in grey.

:func:`make_figures` draws every figure a run's tables allow. Each drawing function takes the
tables it needs and returns the figure; :func:`make_figures` saves it once as PNG, and as SVG too
when ``[outputs] svg`` asks (each format is a full rendering: SVG doubled the figures' time).
Margins are fixed from the measured widths of the labels a figure holds (:func:`_layout`): a
layout engine re-measures every artist on each draw, which cost more than the drawing itself.
Units are labelled by name, or by Chinese name when asked for and a CJK font is installed
(otherwise the English names are kept and a warning is returned by :func:`label_font`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.textpath import text_to_path  # noqa: E402

from nqpf_sens.errors import UserError  # noqa: E402
from nqpf_sens.processes import ForkedPool, WorkerDied  # noqa: E402

MAX_FIGURE_UNITS = 60  # units drawn in a figure with a row per unit (the first by nominal rank)
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Source Han Sans SC",
    "AR PL UMing CN",
)
GREYS = ("#000000", "#555555", "#999999", "#cccccc")
# text.parse_math off: unit and factor names are drawn as written, never read as mathtext ("$")
plt.rcParams.update(
    {
        "figure.dpi": 130,  # the saved resolution: labels are placed as they will be drawn
        "savefig.dpi": 130,
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "svg.fonttype": "none",
        "text.parse_math": False,
        "svg.hashsalt": "nqpf_sens",
    }
)


def label_font(chinese: bool) -> tuple[bool, str | None]:
    """Whether Chinese labels can be drawn, and a warning when they were asked for but cannot."""
    if not chinese:
        return False, None
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in installed:
            plt.rcParams["font.sans-serif"] = [name, *plt.rcParams["font.sans-serif"]]
            return True, None
    return (
        False,
        "no CJK font is installed: figures use English unit names (install e.g. fonts-noto-cjk)",
    )


POINT = 1 / 72  # inches
EDGE = 0.1  # inches of white beyond the outermost text
TICKS = 7 * POINT  # a tick and its label's pad
LABEL_PAD = 4 * POINT  # between tick labels and an axis label
TITLE = 1.2 * plt.rcParams["font.size"]  # points: titles are 'large'


def _text(texts, size: float | None = None, rotation: float = 0.0) -> tuple[float, float]:
    """Width and height (inches) of the largest box that any of ``texts`` takes at ``size``
    points (default: the font size), turned by ``rotation`` degrees: measured, not drawn."""
    prop = font_manager.FontProperties(size=size or plt.rcParams["font.size"])
    angle = np.deg2rad(rotation)
    width = height = 0.0
    for text in texts:
        w, h, _ = text_to_path.get_text_width_height_descent(str(text), prop, ismath=False)
        width = max(width, w * abs(np.cos(angle)) + h * abs(np.sin(angle)))
        height = max(height, w * abs(np.sin(angle)) + h * abs(np.cos(angle)))
    return width * POINT, height * POINT


def _overhang(texts, cell: float, rotation: float = 45) -> float:
    """Inches by which right-aligned labels turned by ``rotation``, one under each column
    ``cell`` inches wide, reach left of the axes (a long first label does)."""
    reaches = [_text([t], rotation=rotation)[0] - (k + 0.5) * cell for k, t in enumerate(texts)]
    return max([0.0, *reaches])


def _title(size: float | None = None) -> float:
    """Inches a one-line title takes above its axes (default: the rc title size, 'large')."""
    return _text(["Xg"], size or TITLE)[1] + 6 * POINT


def _x_axis() -> float:
    """Inches below the axes for horizontal tick labels and a one-line axis label."""
    return TICKS + 2 * _text(["Xg"])[1] + LABEL_PAD


def _colorbar(ticks: list[str]) -> float:
    """Inches right of the axes that a colorbar with ``fraction=0.05`` and a label needs for its
    tick labels and label."""
    return TICKS + _text(ticks)[0] + LABEL_PAD + _text(["Xg"])[1]


def _suptitle(figure: Figure, text: str) -> None:
    """A figure title at the top edge (after :func:`_layout`: it needs the final height)."""
    figure.suptitle(text, y=1 - EDGE / figure.get_size_inches()[1])


def _layout(
    figure: Figure,
    left: float,
    bottom: float,
    top: float,
    right: float = 0.0,
    gap: tuple[float, float] = (0.0, 0.0),
    heading: str = "",
) -> None:
    """Grow ``figure`` (whose size was its axes' area, widened to hold ``heading``, the title
    centred above it) by fixed margins in inches, and place its grid of axes with ``gap`` (width,
    height inches) between them."""
    left, bottom, top, right = (margin + EDGE for margin in (left, bottom, top, right))
    width, height = figure.get_size_inches()
    width = max(width, _text([heading], TITLE)[0])
    grid = figure.axes[0].get_subplotspec()
    assert grid is not None  # the axes of plt.subplots
    rows, columns = grid.get_gridspec().get_geometry()
    width, height = width + left + right, height + top + bottom
    figure.set_size_inches(width, height)
    cell_width = (width - left - right - (columns - 1) * gap[0]) / columns
    cell_height = (height - top - bottom - (rows - 1) * gap[1]) / rows
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=gap[0] / cell_width,
        hspace=gap[1] / cell_height,
    )


#: pixels of a figure (4 bytes each when drawn): a row per unit of 60 is a few million; a figure
#: sized to a label of thousands of characters, turned 45 degrees, asked for billions
MAX_PIXELS = 2**27


def _save(figure: Figure, stem: Path, svg: bool) -> Path:
    width, height = figure.get_size_inches() * plt.rcParams["savefig.dpi"]
    if width * height > MAX_PIXELS:
        plt.close(figure)
        raise UserError(
            f"the figure {stem.name} would be {width:,.0f} x {height:,.0f} pixels, too large to "
            "draw (a name thousands of characters long?): shorten the names, or set [outputs] "
            "figures = false"
        )
    stem.parent.mkdir(parents=True, exist_ok=True)
    # compression level 1: files 7% larger than at the default 6, 0.07 s less per figure
    figure.savefig(stem.with_suffix(".png"), pil_kwargs={"compress_level": 1})
    if svg:
        figure.savefig(stem.with_suffix(".svg"), metadata={"Date": None})  # same run, same bytes
    plt.close(figure)
    return stem.with_suffix(".png")


def rank_intervals(stability: pd.DataFrame, labels: dict[str, str], interval: str) -> Figure:
    """JRC-style chart: nominal rank, median rank and the 5th-95th percentile interval per unit."""
    frame = stability.sort_values("nominal_rank")
    y = np.arange(len(frame))
    names = [labels.get(u, u) for u in frame.unit]
    figure, axis = plt.subplots(figsize=(5.2, 0.22 * len(frame) + 0.4))
    title = "Rank intervals under the uncertain choices"
    _layout(
        figure,
        left=TICKS + _text(names)[0],
        bottom=_x_axis(),
        top=_title(),
        right=0.1,
        heading=title,
    )
    axis.hlines(
        y, frame.p05_rank, frame.p95_rank, color=GREYS[2], linewidth=3, label=f"{interval} interval"
    )
    axis.plot(frame.median_rank, y, "o", color=GREYS[0], markersize=5, label="median rank")
    axis.plot(
        frame.nominal_rank,
        y,
        "D",
        markerfacecolor="white",
        markeredgecolor=GREYS[0],
        markersize=5,
        label="nominal rank",
    )
    axis.set_yticks(y, names)
    axis.invert_yaxis()
    axis.set_xlabel("rank (1 = best)")
    axis.set_xlim(0.5, max(frame.p95_rank.max(), frame.nominal_rank.max()) + 0.5)
    axis.grid(axis="x", color=GREYS[3], linewidth=0.5)
    axis.legend(loc="upper right", frameon=True, framealpha=0.9, edgecolor="white")
    axis.set_title(title)
    return figure


def tier_probabilities(bands: pd.DataFrame, labels: dict[str, str]) -> Figure:
    """Units x tiers heat map of tier probabilities; the nominal tier is outlined."""
    frame = bands.sort_values("nominal_rank")
    columns = [c for c in frame.columns if c.startswith("p_tier_") and not c.endswith("_se")]
    values = frame[columns].to_numpy()
    names = [labels.get(u, u) for u in frame.unit]
    title = "Tier probabilities (outline: nominal tier)"
    figure, axis = plt.subplots(figsize=(1.0 * len(columns) + 0.6, 0.22 * len(frame) + 0.4))
    _layout(
        figure,
        left=TICKS + _text(names)[0],
        bottom=TICKS + _text(["tier 1"])[1],
        top=_title(),
        right=_colorbar(["0.0", "1.0"]),
        heading=title + "  ",  # the colour bar takes a tenth of the area
    )
    image = axis.imshow(values, aspect="auto", cmap="Greys", vmin=0, vmax=1)
    for i, tier in enumerate(frame.nominal_tier):
        axis.add_patch(
            plt.Rectangle(
                (tier - 1.5, i - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=1.5
            )
        )
    for (i, k), value in np.ndenumerate(values):
        if value >= 0.005:
            axis.text(
                k,
                i,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=6,
                color="white" if value > 0.5 else "black",
            )
    axis.set_xticks(range(len(columns)), [f"tier {c.split('_')[-1]}" for c in columns])
    axis.set_yticks(range(len(frame)), names)
    figure.colorbar(image, ax=axis, fraction=0.05, label="probability")
    axis.set_title(title)
    return figure


def score_bands(bands: pd.DataFrame, aggregates: list[str], labels: dict[str, str]) -> Figure:
    """Median and 5th-95th percentile band of the index and each sub-index, per unit."""
    frame = bands.sort_values("nominal_rank")
    y = np.arange(len(frame))
    names = [labels.get(u, u) for u in frame.unit]
    figure, axes = plt.subplots(
        1, len(aggregates), figsize=(2.2 * len(aggregates), 0.22 * len(frame) + 0.4), sharey=True
    )
    _layout(
        figure,
        left=TICKS + _text(names)[0],
        bottom=TICKS + _text(["0"])[1],
        top=_title() + _title(),
        right=0.1,
        gap=(0.25, 0.0),
        heading="Scores: median (dot), nominal (diamond), 5th-95th percentile (bar)",
    )
    for axis, name in zip(np.atleast_1d(axes), aggregates, strict=True):
        axis.hlines(y, frame[f"{name}_p05"], frame[f"{name}_p95"], color=GREYS[2], linewidth=3)
        axis.plot(frame[f"{name}_median"], y, "o", color=GREYS[0], markersize=4)
        axis.plot(
            frame[f"{name}_nominal"],
            y,
            "D",
            markerfacecolor="white",
            markeredgecolor=GREYS[0],
            markersize=4,
        )
        axis.set_title(name)
        axis.grid(axis="x", color=GREYS[3], linewidth=0.5)
    first, *others = np.atleast_1d(axes)
    first.set_yticks(y, names)
    first.invert_yaxis()
    for axis in others:  # the rows are the first panel's: ticks drawn again took a third
        axis.tick_params(axis="y", left=False, labelleft=False)
    _suptitle(figure, "Scores: median (dot), nominal (diamond), 5th-95th percentile (bar)")
    return figure


def sobol_bars(indices: pd.DataFrame, output: str, title: str, level: float = 0.95) -> Figure:
    """First- (S1) and total-order (ST) indices of one output with their percentile intervals
    (``level``: the run's confidence, which the axis states); an output whose indices are not
    reliable says so in its title."""
    frame = indices[indices.output == output].sort_values("ST", ascending=True)
    if not frame.reliable.astype(str).eq("True").all():
        title += " (not reliable: see sobol_outputs.csv)"
    y = np.arange(len(frame))
    figure, axis = plt.subplots(figsize=(4.6, 0.32 * len(frame) + 0.4))
    _layout(
        figure,
        left=TICKS + _text(frame.factor)[0],
        bottom=_x_axis(),
        top=_title(),
        right=0.1,
        heading=title,
    )
    axis.barh(
        y + 0.2,
        frame.ST,
        height=0.38,
        xerr=_interval_arms(frame, "ST"),
        color=GREYS[1],
        label="total order ST",
        capsize=2,
    )
    axis.barh(
        y - 0.2,
        frame.S1,
        height=0.38,
        xerr=_interval_arms(frame, "S1"),
        color="white",
        edgecolor=GREYS[0],
        hatch="///",
        label="first order S1",
        capsize=2,
    )
    axis.set_yticks(y, frame.factor)
    axis.axvline(0, color=GREYS[0], linewidth=0.6)
    axis.set_xlabel(f"Sobol index (lines: {100 * level:g}% interval)")
    axis.legend(loc="lower right", frameon=False)
    axis.set_title(title)
    return figure


def _interval_arms(frame: pd.DataFrame, index: str) -> np.ndarray:
    """Error-bar arms from the point to the ends of the interval (none on a side where the
    percentile interval leaves the point outside)."""
    low = (frame[index] - frame[f"{index}_low"]).clip(lower=0)
    high = (frame[f"{index}_high"] - frame[index]).clip(lower=0)
    return np.vstack([low.fillna(0), high.fillna(0)])


def sobol_heatmap(
    indices: pd.DataFrame,
    order: list[str] | None,
    labels: dict[str, str],
) -> Figure:
    """Units x factors heat map of the total-order index of each unit's rank; units whose indices
    are not reliable (``reliable`` false: a rank that hardly varies, or intervals too wide) are
    hatched."""
    ranks = indices[indices.output.str.startswith("rank:")].copy()
    ranks["unit"] = ranks.output.str.removeprefix("rank:")
    table = ranks.pivot(index="unit", columns="factor", values="ST").reindex(index=order)
    table = table[table.mean().sort_values(ascending=False).index]
    reliable = ranks.groupby("unit").reliable.first().astype(str).eq("True")
    unreliable = ~reliable.reindex(table.index, fill_value=True)
    names = [
        labels.get(u, u) + (" (not read)" if flagged else "")
        for u, flagged in zip(table.index, unreliable, strict=True)
    ]
    title = "Which choice moves which unit (total-order indices)"
    figure, axis = _heat_map(names, table.columns, 0.55, title, ["0.0", "1.0"])
    image = axis.imshow(table.clip(lower=0).to_numpy(), aspect="auto", cmap="Greys", vmin=0, vmax=1)
    for i, flagged in enumerate(unreliable):
        if flagged:
            axis.add_patch(
                plt.Rectangle(
                    (-0.5, i - 0.5),
                    table.shape[1],
                    1,
                    fill=False,
                    hatch="///",
                    edgecolor=GREYS[2],
                    linewidth=0,
                )
            )
    axis.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    axis.set_yticks(range(len(table)), names)
    figure.colorbar(image, ax=axis, fraction=0.05, label="ST of the unit's rank")
    axis.set_title(title)
    return figure


def _heat_map(rows: list[str], columns, cell: float, title: str, ticks: list[str]):
    """The figure and axes of a rows x ``columns`` heat map with a colour bar (tick labels like
    ``ticks``): columns ``cell`` inches wide, labelled at 45 degrees, margins fitted to the
    labels."""
    figure, axis = plt.subplots(figsize=(cell * len(columns) + 0.6, 0.22 * len(rows) + 0.4))
    _layout(
        figure,
        left=max(TICKS + _text(rows)[0], _overhang(columns, cell)),
        bottom=TICKS + _text(columns, rotation=45)[1],
        top=_title(),
        right=_colorbar(ticks),
        heading=title + "  ",  # the colour bar takes a tenth of the area
    )
    return figure, axis


def single_changes(
    per_unit: pd.DataFrame, order: list[str] | None, labels: dict[str, str]
) -> Figure:
    """Units x changes heat map of the rank shift when one choice changes alone (red: the unit
    falls, blue: it rises), so the direction shows beside the size."""
    table = per_unit.pivot(index="unit", columns="change", values="shift")
    table = table.reindex(index=order or table.index, columns=list(dict.fromkeys(per_unit.change)))
    limit = max(float(np.abs(table.to_numpy()).max()), 1.0)
    names = [labels.get(u, u) for u in table.index]
    title = "One change at a time: who moves, and which way"
    figure, axis = _heat_map(names, table.columns, 0.45, title, [f"\N{MINUS SIGN}{limit:.1f}"])
    image = axis.imshow(table.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
    axis.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    axis.set_yticks(range(len(table)), names)
    figure.colorbar(image, ax=axis, fraction=0.05, label="rank shift (positive: falls)")
    axis.set_title(title)
    return figure


def importance_against_weights(importance: pd.DataFrame) -> Figure:
    """Each part's importance share within its parent (bar, with its bootstrap interval) against
    its nominal weight share (tick) and its effective share (diamond), one panel per level."""
    levels = sorted(importance.level.unique())
    heights = [
        importance.level.eq(k).sum() + importance[importance.level == k].parent.nunique()
        for k in levels
    ]
    names = (importance.node + " (" + importance.parent.astype(str) + ")").tolist()
    figure, axes = plt.subplots(
        len(levels),
        1,
        figsize=(5.0, 0.26 * sum(heights)),
        height_ratios=heights,
        squeeze=False,
    )
    legend = 2 * _text(["Xg"])[1]  # one row of entries below the last panel
    _layout(
        figure,
        left=TICKS + _text(names)[0],
        bottom=_x_axis() + legend,
        top=_title(),
        right=0.1,
        gap=(0.0, _x_axis() + _title() + 0.1),
    )
    for axis, level in zip(axes[:, 0], levels, strict=True):
        frame = importance[importance.level == level]
        y: list[float] = []
        labels: list[str] = []
        position = 0.0
        for _, group in frame.groupby("parent", sort=False):
            y.extend(position + np.arange(len(group)))
            labels.extend(f"{node} ({group.parent.iloc[0]})" for node in group.node)
            position += len(group) + 1  # a gap between parents
        frame = frame.assign(y=y)
        arms = _interval_arms(
            frame.rename(columns=lambda c: c.replace("importance_share", "share")), "share"
        )
        axis.barh(
            frame.y,
            frame.importance_share,
            xerr=arms,
            color=GREYS[3],
            height=0.7,
            capsize=2,
            label="importance share (line: bootstrap interval)",
        )
        axis.scatter(
            frame.nominal_share,
            frame.y,
            marker="|",
            s=220,
            color=GREYS[0],
            label="nominal weight share",
            zorder=3,
        )
        axis.scatter(
            frame.effective_share,
            frame.y,
            marker="D",
            s=18,
            color="white",
            edgecolor=GREYS[0],
            label="effective share",
            zorder=3,
        )
        axis.set_yticks(frame.y, labels)
        axis.invert_yaxis()
        axis.set_xlabel("share within the parent")
        axis.set_title(f"Level {level}: importance against weight")
    handles, names = axes[0, 0].get_legend_handles_labels()
    figure.legend(
        handles, names, loc="lower center", ncols=3, frameon=False, bbox_to_anchor=(0.5, 0.0)
    )
    return figure


def quadrant(bands: pd.DataFrame, gdp: pd.Series, labels: dict[str, str]) -> Figure:
    """Index vs GDP per capita with the index's 5th-95th percentile band and dashed lines at the
    means (the NQPF paper's Figure 3), its unit labels placed so that none overlaps another."""
    index_mean = bands.total_nominal.mean()  # over every unit, as the paper's Figure 3 has it
    frame = bands.set_index("unit").join(gdp.rename("gdp"), how="inner").dropna(subset=["gdp"])
    figure, axis = plt.subplots(figsize=(5.6, 4.2))
    y_axis = TICKS + _text(["100"])[0] + LABEL_PAD + _text(["Xg"])[1]
    title = "Index and GDP per capita (dashed: means)"
    _layout(figure, left=y_axis, bottom=_x_axis(), top=_title(), right=0.3, heading=title)
    # the band as it is: a nominal score outside it (choices that all move a unit one way) is
    # drawn outside, not turned into an error bar of negative length
    axis.vlines(frame.gdp / 1e4, frame.total_p05, frame.total_p95, color=GREYS[2], linewidth=1)
    axis.plot(frame.gdp / 1e4, frame.total_nominal, "o", color=GREYS[0], markersize=4)
    axis.axvline(frame.gdp.mean() / 1e4, color=GREYS[1], linestyle="--", linewidth=0.8)
    axis.axhline(index_mean, color=GREYS[1], linestyle="--", linewidth=0.8)
    axis.set_xlabel("GDP per capita 2022 (10,000 yuan)")
    axis.set_ylabel("index (nominal, with 5th-95th percentile)")
    axis.set_title(title)
    place_labels(
        axis,
        frame.gdp.to_numpy() / 1e4,
        frame.total_nominal.to_numpy(),
        [labels.get(unit, unit) for unit in frame.index],
    )
    return figure


#: where a label may sit around its point (offset in points), tried in this order
LABEL_OFFSETS = [(dx, dy) for dy in (2, -8, 8, -14, 14, -20) for dx in (3, -3)]


def place_labels(axis, xs: np.ndarray, ys: np.ndarray, texts: list[str], size: float = 6):
    """Annotate each point with the first offset of ``LABEL_OFFSETS`` whose text box lies inside
    the figure and overlaps no label placed before (nor its own marker); a label that fits nowhere
    takes the first offset inside the figure (else the last) and its overlap is accepted. Placed
    once the margins are fixed, with the real text extents; the highest points choose first."""
    axis.get_xlim(), axis.get_ylim()  # settles the view: with the margins fixed, boxes are final
    renderer = axis.figure.canvas.get_renderer()
    bounds = axis.figure.bbox
    placed: list = []
    for x, y, text in sorted(zip(xs, ys, texts, strict=True), key=lambda item: -item[1]):
        fallback = None
        for offset in LABEL_OFFSETS:
            label = _annotate(axis, text, (x, y), offset, size)
            box = label.get_window_extent(renderer)
            inside = bounds.x0 <= box.x0 and box.x1 <= bounds.x1
            inside = inside and bounds.y0 <= box.y0 and box.y1 <= bounds.y1
            if inside and not any(box.overlaps(other) for other in placed):
                break
            fallback = fallback or (offset if inside else None)
            label.remove()
        else:
            label = _annotate(axis, text, (x, y), fallback or LABEL_OFFSETS[-1], size)
            box = label.get_window_extent(renderer)
        placed.append(box)


def _annotate(axis, text: str, point: tuple, offset: tuple[int, int], size: float):
    """A label beside ``point``, ``offset`` points away (to its left for a negative x offset)."""
    return axis.annotate(
        text,
        point,
        fontsize=size,
        xytext=offset,
        textcoords="offset points",
        ha="left" if offset[0] > 0 else "right",
    )


def trajectory(
    bands: pd.DataFrame,
    aggregates: list[str],
    published: dict[str, list[float]] | None = None,
    unit: str | None = None,
) -> Figure:
    """Fan chart of one unit's index and sub-indices over the years (median, 5th-95th percentile
    and nominal; ``bands``: its rows, one a year), with the values a publication gives
    (``published``: aggregate -> [year, value]) drawn beside them; ``unit`` names it in the
    title."""
    heading = f"Trajectory of {unit} with its band" if unit else "Trajectory with its band"
    figure, axes = plt.subplots(
        1, len(aggregates), figsize=(2.2 * len(aggregates), 2.1), sharex=True
    )
    y_ticks = TICKS + _text(["10,000"])[0]
    _layout(
        figure,
        left=y_ticks,
        bottom=TICKS + _text(["2020"])[1],
        top=2 * _title(),
        right=0.2,
        gap=(y_ticks + 0.1, 0.0),
        heading=heading,
    )
    if bands.unit.nunique() > 1:
        raise ValueError("trajectory: the bands of one unit")
    for axis, name in zip(np.atleast_1d(axes), aggregates, strict=True):
        frame = bands.set_index("year")[
            [f"{name}_p05", f"{name}_median", f"{name}_p95", f"{name}_nominal"]
        ]
        axis.fill_between(
            frame.index,
            frame[f"{name}_p05"],
            frame[f"{name}_p95"],
            color=GREYS[3],
            label="5th-95th pct",
        )
        axis.plot(frame.index, frame[f"{name}_median"], color=GREYS[0], label="median")
        axis.plot(
            frame.index, frame[f"{name}_nominal"], color=GREYS[1], linestyle="--", label="nominal"
        )
        if published and name in published:
            year, value = published[name]
            axis.scatter([year], [value], marker="x", color=GREYS[0], zorder=3, label="published")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=4, integer=True))
        if frame.to_numpy().max() > 20 * max(frame.to_numpy().min(), 1e-9):
            axis.set_yscale("log")  # bands spanning orders of magnitude stay readable
            axis.yaxis.set_major_formatter(  # plain numbers: 1,000, not 10^3 in math text
                matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}")
            )
        axis.set_title(name)
    np.atleast_1d(axes)[0].legend(frameon=False, fontsize=7)
    _suptitle(figure, heading)
    return figure


def convergence(table: pd.DataFrame, rank_target: float) -> Figure:
    """Monte Carlo error from disjoint blocks of the design: the standard error of every rank
    quantile (against ``rank_target`` places), and the main sensitivity statistics with their 95%
    intervals and block values. Every number drawn is a number of ``convergence.csv``."""
    ranks = table[table.statistic.str.endswith("_rank")]
    units = list(dict.fromkeys(ranks["item"]))
    shown = table[table.statistic == "ST_rank_shift"]
    title = "ST of the rank shift"
    if shown.empty:
        shown, title = table[table.statistic == "rank_shift_mean"], "mean rank shift R_S"
    shown = shown.sort_values("value", ascending=False).head(8)
    figure, axes = plt.subplots(1, 2, figsize=(7.6, 2.0))
    y_ticks = TICKS + _text(["0.00"])[0]
    _layout(
        figure,
        left=y_ticks + LABEL_PAD + _text(["Xg"])[1],
        bottom=TICKS + max(_text(units, 6, 90)[1], _text(shown["item"], 7, 45)[1]),
        top=2 * _title(),
        right=0.1,
        gap=(y_ticks + 0.1, 0.0),
        heading="Convergence: disjoint blocks of the design",
    )
    for marker, name in zip("os^", ("median_rank", "p05_rank", "p95_rank"), strict=True):
        errors = ranks[ranks.statistic == name].set_index("item").standard_error.reindex(units)
        axes[0].scatter(
            range(len(units)),
            errors.to_numpy(),
            marker=marker,
            s=12,
            color=GREYS[0],
            facecolors="none",
            label=name.replace("_rank", ""),
        )
    axes[0].axhline(rank_target, color=GREYS[2], linestyle="--", linewidth=1)
    axes[0].set_xticks(range(len(units)), units, rotation=90, fontsize=6)
    axes[0].set_ylabel("standard error (places)")
    axes[0].set_title("rank quantiles", fontsize=9)
    axes[0].legend(frameon=False, fontsize=7)
    blocks = [c for c in table.columns if c.startswith("block_")]
    x = np.arange(len(shown))
    for column in blocks:
        axes[1].scatter(x, shown[column].to_numpy(), s=6, color=GREYS[2])
    axes[1].errorbar(
        x,
        shown.value.to_numpy(),
        yerr=1.96 * shown.standard_error.to_numpy(),
        fmt="o",
        color=GREYS[0],
        capsize=3,
    )
    # from zero: a change of a few thousandths is drawn as the small change it is, not a V
    reach = 1.96 * shown.standard_error
    drawn = np.r_[shown.value + reach, shown.value - reach, *(shown[c] for c in blocks)]
    finite = drawn[np.isfinite(drawn)]  # none where the statistic is undefined (R_S constant)
    highest, lowest = (np.abs(finite).max(), finite.min()) if finite.size else (1.0, 0.0)
    axes[1].set_ylim(min(0.0, float(lowest) * 1.1), 1.1 * highest or 1.0)
    axes[1].set_xticks(x, shown["item"], rotation=45, ha="right", fontsize=7)
    axes[1].set_title(f"{title}: whole sample (95%) and blocks", fontsize=9)
    _suptitle(figure, "Convergence: disjoint blocks of the design")
    return figure


def unit_labels(
    tables: dict[str, pd.DataFrame], chinese: bool
) -> tuple[dict[str, str], str | None]:
    use_chinese, warning = label_font(chinese)
    attributes = tables.get("unit_attributes")
    if use_chinese and attributes is not None and "unit_zh" in attributes:
        return dict(zip(attributes.unit, attributes.unit_zh, strict=True)), warning
    return {}, warning


def make_figures(
    folder: Path,
    manifest: dict,
    tables: dict[str, pd.DataFrame],
    chinese: bool,
    jobs: int | None = None,
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Draw every figure the saved tables allow, in ``jobs`` processes (default: the run's
    workers); returns (png, caption) pairs and warnings."""
    target = folder / "figures"
    labels, warning = unit_labels(tables, chinese)
    said = [warning] if warning else []
    outputs = manifest["config"].get("outputs", {})
    interval = f"{100 * outputs.get('interval', 0.9):g}%"
    level = manifest["config"].get("sampling", {}).get("confidence", 0.95)  # Sobol intervals'
    svg = outputs.get("svg", False) is True
    tasks: list[tuple[Callable[..., Figure], tuple, Path, bool]] = []
    captions: list[str] = []

    stability, bands = tables.get("rank_stability"), tables.get("tier_bands")
    every_band = bands  # the quadrant is a scatter of every unit, its means theirs
    multi_year = bands is not None and "year" in bands and bands.year.nunique() > 1
    ranked = next((t for t in (stability, bands) if t is not None), None)
    if ranked is not None and "year" in ranked:  # a panel: the last year's order
        ranked = ranked[ranked.year == ranked.year.max()]
    order = [] if ranked is None else ranked.sort_values("nominal_rank").unit.tolist()
    shown = order[:MAX_FIGURE_UNITS]
    if len(order) > len(shown) and not multi_year:  # a row per unit: taller than any page
        stability, bands = (
            None if t is None else t[t.unit.isin(shown)] for t in (stability, bands)
        )
    some = (
        f" The first {len(shown)} of {len(order):,} units by nominal rank are shown; the tables "
        "hold every unit."
        if len(order) > len(shown)
        else ""
    )
    per_unit = {
        "rank_intervals",
        "tier_probabilities",
        "score_bands",
        "one_at_a_time",
        "sobol_heatmap",
    }

    def add(draw: Callable[..., Figure], arguments: tuple, name: str, caption: str) -> None:
        tasks.append((draw, arguments, target / name, svg))
        captions.append(caption + (some if name in per_unit else ""))

    if stability is not None and not multi_year:
        add(
            rank_intervals,
            (stability, labels, "5th-95th percentile"),
            "rank_intervals",
            "Rank intervals: nominal rank, median rank and 5th-95th percentile "
            f"({interval} configured) per unit, sorted by nominal rank.",
        )
    dimensions = manifest.get("dimensions", [])
    aggregates = ["total"] + [d for d in dimensions if bands is not None and f"{d}_median" in bands]
    if bands is not None and not multi_year:
        add(
            tier_probabilities,
            (bands, labels),
            "tier_probabilities",
            "Probability of each tier; the nominal tier is outlined.",
        )
        add(
            score_bands,
            (bands, aggregates, labels),
            "score_bands",
            "Index and sub-index scores: nominal, median and 5th-95th percentile.",
        )
        attributes = tables.get("unit_attributes")
        if attributes is not None and "gdp_per_capita" in attributes:
            gdp = attributes.set_index("unit").gdp_per_capita
            if gdp.notna().any():
                add(
                    quadrant,
                    (every_band, gdp, labels),
                    "quadrant",
                    "Index against GDP per capita with the index's 5th-95th percentile; "
                    "units without GDP per capita are left out.",
                )
    if multi_year and bands is not None:
        published = (manifest.get("about") or {}).get("published")
        # several units: the focus unit's (default: the first in the last year), not a mean of
        # quantiles, which is the band of no quantity
        last_year = bands[bands.year == bands.year.max()].sort_values("nominal_rank")
        focus = outputs.get("focus_unit")
        unit = focus if focus in set(bands.unit) else last_year.unit.iloc[0]
        several = bands.unit.nunique() > 1
        whose, named = (f"{unit}'s", labels.get(unit, unit)) if several else ("the", None)
        add(
            trajectory,
            (bands[bands.unit == unit], aggregates, published and published["values"], named),
            "trajectory",
            f"Trajectory of {whose} index and sub-indices with the 5th-95th percentile band"
            + (f"; x: {published['label']}; {published['note']}." if published else "."),
        )
    importance = tables.get("importance")
    if importance is not None and len(importance):
        add(
            importance_against_weights,
            (importance,),
            "importance",
            "Importance (the part's correlation ratio on the index, as a share of its "
            "siblings', with its bootstrap interval) against its nominal and effective weight "
            "share.",
        )
    single = tables.get("one_at_a_time")
    if single is not None and "year" not in single and len(single):
        add(
            single_changes,
            (single, shown or None, labels),
            "one_at_a_time",
            "Rank shift of each unit when one choice changes alone, everything else nominal.",
        )
    indices = tables.get("sobol_indices")
    if indices is not None:
        title = "Sobol indices of the mean rank shift R_S"
        add(
            sobol_bars,
            (indices, "rank_shift", title, level),
            "sobol_rank_shift",
            "First- and total-order Sobol indices of the mean absolute rank shift, with "
            f"{100 * level:g}% percentile bootstrap intervals.",
        )
        # a panel's units' outputs are their last year's ranks (R_S pools every year)
        when = f" in {int(ranked.year.max())}" if multi_year and ranked is not None else ""
        focus = outputs.get("focus_unit") or next(iter(order), None)
        if focus is not None and f"rank:{focus}" in set(indices.output):
            title = f"Sobol indices of the rank{when} of {labels.get(focus, focus)}"
            add(
                sobol_bars,
                (indices, f"rank:{focus}", title, level),
                "sobol_focus_unit",
                f"Sobol indices of the rank{when} of {focus}.",
            )
        add(
            sobol_heatmap,
            (indices, shown or None, labels),
            "sobol_heatmap",
            f"Total-order index of each unit's rank{when} for each factor.",
        )
    if "convergence" in tables:
        rank_target = manifest["convergence"].get("rank_error_target", 0.5)
        add(
            convergence,
            (tables["convergence"], rank_target),
            "convergence",
            "Monte Carlo error from disjoint blocks of the design: standard errors of the rank "
            "quantiles (dashed: the target) and the main statistics with 95% intervals (grey: the "
            "blocks).",
        )
    workers = min(len(tasks), jobs or int(manifest.get("jobs") or 1), os.cpu_count() or 1)
    if workers > 1 and sys.platform == "linux":
        # forked workers start at once, with the fonts and settings of this process; elsewhere
        # a fresh interpreter would spend about what it saves on importing matplotlib
        # (an executor waiting for its queue hung the run on a second Ctrl-C or SIGTERM, and a
        # multiprocessing pool waited for ever for the figure of a worker the system killed)
        try:
            with ForkedPool(_draw, workers) as pool:
                drawn = list(pool.map(tasks))
        except WorkerDied as died:
            raise WorkerDied(died.exitcode, DRAWING) from None
    else:
        drawn = [_draw(task) for task in tasks]
    if any(missing for _, missing in drawn):
        said.append(MISSING_GLYPHS)
    return [(path, caption) for (path, _), caption in zip(drawn, captions, strict=True)], said


DRAWING = "drawing the figures"  # what a figure worker that died was doing
MISSING_GLYPHS = (
    "some names hold characters no installed font can draw (shown as boxes in the figures): "
    "install a font that has them (e.g. fonts-noto-cjk)"
)


def _draw(task: tuple[Callable[..., Figure], tuple, Path, bool]) -> tuple[Path, bool]:
    """Draw and save one figure (a worker's job: everything it needs comes in ``task``); and
    whether a character had no glyph in the fonts (matplotlib warns once per character and
    figure: dozens of lines for a few Chinese names, said once instead)."""
    draw, arguments, stem, svg = task
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", "Glyph .* missing from", UserWarning)
        path = _save(draw(*arguments), stem, svg)
    missing = [w for w in caught if "missing from" in str(w.message)]
    for other in caught:
        if other not in missing:
            warnings.warn_explicit(other.message, other.category, other.filename, other.lineno)
    return path, bool(missing)
