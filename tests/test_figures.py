"""Figures flag what the tables flag: unreliable Sobol outputs are marked, never drawn as read."""

import matplotlib.axes
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

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


def test_the_heat_map_hatches_the_outputs_the_tables_set_aside(monkeypatch):
    hatched = []
    real = matplotlib.axes.Axes.add_patch
    monkeypatch.setattr(
        matplotlib.axes.Axes, "add_patch", lambda self, p: hatched.append(p) or real(self, p)
    )
    labels = []
    real_ticks = matplotlib.axes.Axes.set_yticks

    def yticks(self, ticks, names=None, **kwargs):
        labels.extend(names or [])
        return real_ticks(self, ticks, names, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_yticks", yticks)
    plt.close(figures.sobol_heatmap(indices(), ["a", "b"], {}))
    assert len(hatched) == 1 and labels == ["a", "b (not read)"]


def test_bars_of_an_unreliable_output_say_so(monkeypatch):
    titles = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_title",
        lambda self, t, *a, **k: titles.append(t) or real(self, t),
    )
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
