"""nqpf_sens: how far can a composite index be trusted?

The engine (data -> impute -> transform -> normalise -> aggregate -> rank/tier) evaluates many
scenarios of analyst choices at once; the uncertainty layer samples those choices and summarises
rank and tier stability and Sobol sensitivity indices. For notebooks::

    import nqpf_sens as ns

    config = ns.load_config("configs/sobol.toml")  # or ns.config_from_dict({...})
    results = ns.run(config)  # writes nothing
    results["rank_stability"]  # a DataFrame, as in rank_stability.csv

``run_config`` is the command line's run: it writes the results folder, figures and report.

The names below are imported on first use: ``import nqpf_sens`` itself imports nothing heavy,
so the command line starts at once and a Ctrl-C while it loads the rest ends in one line.
"""

from importlib import import_module as _import_module
from importlib import util as _util
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names as type checkers and editors see them
    from nqpf_sens.config import RunConfig, config_from_dict, load_config
    from nqpf_sens.engine.batch import BatchResult, ScenarioBatch, evaluate, evaluate_batch
    from nqpf_sens.engine.pipeline import Pipeline
    from nqpf_sens.engine.spec import IndexSpec, load_spec
    from nqpf_sens.engine.table import IndicatorTable, load_table
    from nqpf_sens.errors import UserError
    from nqpf_sens.indices.nqpf.data import nqpf_spec
    from nqpf_sens.running import Results, run, run_config

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

#: each exported name and the module that defines it
_EXPORTS = {
    "BatchResult": "nqpf_sens.engine.batch",
    "IndexSpec": "nqpf_sens.engine.spec",
    "IndicatorTable": "nqpf_sens.engine.table",
    "Pipeline": "nqpf_sens.engine.pipeline",
    "Results": "nqpf_sens.running",
    "RunConfig": "nqpf_sens.config",
    "ScenarioBatch": "nqpf_sens.engine.batch",
    "UserError": "nqpf_sens.errors",
    "config_from_dict": "nqpf_sens.config",
    "evaluate": "nqpf_sens.engine.batch",
    "evaluate_batch": "nqpf_sens.engine.batch",
    "load_config": "nqpf_sens.config",
    "load_spec": "nqpf_sens.engine.spec",
    "load_table": "nqpf_sens.engine.table",
    "nqpf_spec": "nqpf_sens.indices.nqpf.data",
    "run": "nqpf_sens.running",
    "run_config": "nqpf_sens.running",
}

__version__ = "0.1.0"


for _name in _EXPORTS:  # a reload forgets the names a first use cached (they may have changed)
    globals().pop(_name, None)

if not TYPE_CHECKING:  # hidden from type checkers, which then still flag a misspelt name

    def __getattr__(name: str):
        """An exported name, imported from its module the first time it is asked for; or a
        sub-package or module of nqpf_sens (``ns.errors``, ``ns.engine``)."""
        if name in _EXPORTS:
            value = getattr(_import_module(_EXPORTS[name]), name)
        elif not name.startswith("_") and _util.find_spec(f"{__name__}.{name}"):
            value = _import_module(f"{__name__}.{name}")
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The exported names and the modules imported so far."""
    public = {name for name in globals() if not name.startswith("_") and name != "TYPE_CHECKING"}
    return sorted({*__all__, *public, "__version__"})
