"""Leave-one-out as a structural what-if: one part at a time, everything else nominal."""

import numpy as np
import pytest

from nqpf_sens import IndicatorTable, Pipeline, evaluate
from nqpf_sens.audit.whatif import leave_one_out


@pytest.mark.parametrize("code", ["ns_papers", "green_factories_parks"])
def test_leaving_an_indicator_out_equals_the_index_built_without_it(spec, table, code):
    found = leave_one_out(spec, table, Pipeline())
    mine = found[found.change == f"without {code}"].set_index("unit")
    keep = [c != code for c in spec.indicators]
    smaller = IndicatorTable(
        table.values[..., keep], table.years, table.units, tuple(np.array(spec.indicators)[keep])
    )
    expected = evaluate(spec.drop([code]), smaller).ranks[0, 0]
    np.testing.assert_array_equal(mine.loc[list(table.units), "rank"].to_numpy(), expected)
    nominal = evaluate(spec, table).ranks[0, 0]
    np.testing.assert_array_equal(mine.loc[list(table.units), "nominal_rank"], nominal)
    assert (mine["shift"] == mine["rank"] - mine.nominal_rank).all()


def test_every_part_that_has_siblings_is_left_out_once(spec, table):
    found = leave_one_out(spec, table, Pipeline())
    expected = {f"without {c}" for c in (*spec.indicators, *spec.dimensions)}
    assert set(found.change) == expected
    assert (found.groupby("change").size() == len(table.units)).all()
