import numpy as np
import pandas as pd
import pytest

from nqpf_sens import IndicatorTable, nqpf_spec
from nqpf_sens.engine.table import table_from_frame


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


@pytest.fixture
def table(spec) -> IndicatorTable:
    return table_from_frame(synthetic_frame(spec), spec)
