"""nqpf_sens: how far can a composite index be trusted?

The engine (data -> impute -> transform -> normalise -> aggregate -> rank/tier) evaluates many
scenarios of analyst choices at once; the uncertainty layer samples those choices and summarises
rank and tier stability and Sobol sensitivity indices. For notebooks::

    import nqpf_sens as ns

    config = ns.load_config("configs/sobol.toml")  # or ns.config_from_dict({...})
    results = ns.run(config)  # writes nothing
    results["rank_stability"]  # a DataFrame, as in rank_stability.csv

``run_config`` is the command line's run: it writes the results folder, figures and report.
"""

from nqpf_sens.config import RunConfig, config_from_dict, load_config
from nqpf_sens.engine.batch import BatchResult, ScenarioBatch, evaluate, evaluate_batch
from nqpf_sens.engine.pipeline import Pipeline
from nqpf_sens.engine.spec import IndexSpec, load_spec
from nqpf_sens.engine.table import IndicatorTable, load_table
from nqpf_sens.errors import UserError
from nqpf_sens.indices.nqpf.data import nqpf_spec
from nqpf_sens.run import Results, run, run_config

__all__ = [
    "BatchResult",
    "IndexSpec",
    "IndicatorTable",
    "Pipeline",
    "Results",
    "RunConfig",
    "ScenarioBatch",
    "UserError",
    "config_from_dict",
    "evaluate",
    "evaluate_batch",
    "load_config",
    "load_spec",
    "load_table",
    "nqpf_spec",
    "run",
    "run_config",
]

__version__ = "0.1.0"
