"""nqpf_sens: how far can a composite index be trusted?

The engine (data -> impute -> transform -> normalise -> aggregate -> rank/tier) evaluates many
scenarios of analyst choices at once; the uncertainty layer samples those choices and the
analysis layer summarises rank and tier stability and Sobol sensitivity indices.
"""

from nqpf_sens.engine.batch import BatchResult, ScenarioBatch, evaluate, evaluate_batch
from nqpf_sens.engine.pipeline import Pipeline
from nqpf_sens.engine.spec import IndexSpec, load_spec
from nqpf_sens.engine.table import IndicatorTable, load_table
from nqpf_sens.errors import UserError
from nqpf_sens.indices.nqpf.data import nqpf_spec

__all__ = [
    "BatchResult",
    "IndexSpec",
    "IndicatorTable",
    "Pipeline",
    "ScenarioBatch",
    "UserError",
    "evaluate",
    "evaluate_batch",
    "load_spec",
    "load_table",
    "nqpf_spec",
]

__version__ = "0.1.0"
