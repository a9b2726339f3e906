import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from nqpf_sens import IndicatorTable, nqpf_spec
from nqpf_sens.engine.table import table_from_frame

#: hypothesis's examples per property: the suite's default (the same examples on every run, so a
#: run of the suite cannot fail by chance), or many more, fresh each time, with
#: NQPF_SENS_PROPERTIES=thorough (a run of its own, outside the suite's time budget)
THOROUGH = os.environ.get("NQPF_SENS_PROPERTIES", "fast") == "thorough"
settings.register_profile("fast", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile("thorough" if THOROUGH else "fast")


def examples(fast: int) -> int:
    """Examples for a property whose default is ``fast`` (20 times more when thorough)."""
    return 20 * fast if THOROUGH else fast


@pytest.fixture(scope="session")
def spec():
    return nqpf_spec()


def synthetic_frame(spec, n_units=31, seed=0):
    """Skewed positive indicator values for ``n_units`` invented units (wide format)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.gamma(1.5, 10.0, size=(n_units, len(spec.indicators))), columns=list(spec.indicators)
    )
    frame.insert(0, "unit", [f"unit{i:02d}" for i in range(n_units)])
    return frame


def write_units_and_values(folder, n_units=12):
    """``values.csv`` of synthetic NQPF data and ``units.csv`` of their attributes (a Chinese name,
    one of four regions, GDP per capita) for ``n_units`` units (a multiple of 4)."""
    frame = synthetic_frame(nqpf_spec(), n_units=n_units)
    frame.to_csv(folder / "values.csv", index=False)
    pd.DataFrame(
        {
            "unit": frame.unit,
            "unit_zh": [f"单位{i}" for i in range(n_units)],
            "region": ["East", "West", "Central", "Northeast"] * (n_units // 4),
            "gdp_per_capita": range(50000, 50000 + 5000 * n_units, 5000),
        }
    ).to_csv(folder / "units.csv", index=False)


@pytest.fixture
def table(spec) -> IndicatorTable:
    return table_from_frame(synthetic_frame(spec), spec)


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
