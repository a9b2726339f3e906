"""The China New Quality Productive Forces index of Ye & Xu (2024): the only code that knows
NQPF."""

from nqpf_sens.indices.nqpf.data import (
    alternative_tables,
    national_table,
    nqpf_spec,
    province_table,
)
from nqpf_sens.indices.nqpf.paper import compare_with_table3, table3

__all__ = [
    "alternative_tables",
    "compare_with_table3",
    "national_table",
    "nqpf_spec",
    "province_table",
    "table3",
]
