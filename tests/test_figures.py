"""Figures flag what the tables flag: unreliable Sobol outputs are marked, never drawn as read."""

import matplotlib.axes
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


def test_the_heat_map_hatches_the_outputs_the_tables_set_aside(tmp_path, monkeypatch):
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
    figures.sobol_heatmap(indices(), ["a", "b"], {}, tmp_path / "heat")
    assert len(hatched) == 1 and labels == ["a", "b (not read)"]


def test_bars_of_an_unreliable_output_say_so(tmp_path, monkeypatch):
    titles = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_title",
        lambda self, t, *a, **k: titles.append(t) or real(self, t),
    )
    figures.sobol_bars(indices(), "rank:b", "Sobol indices of b", tmp_path / "b")
    figures.sobol_bars(indices(), "rank:a", "Sobol indices of a", tmp_path / "a")
    assert titles == [
        "Sobol indices of b (not reliable: see sobol_outputs.csv)",
        "Sobol indices of a",
    ]
