"""The experiments time the package's own functions: they must still find them."""

import importlib.util
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_every_profiled_stage_names_a_function_of_the_package():
    spec = importlib.util.spec_from_file_location(
        "profile_stages", EXPERIMENTS / "profile_stages.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines the stages; runs nothing (no __main__)
    for owner, name, stage in module.STAGES:
        assert callable(getattr(owner, name, None)), (owner.__name__, name, stage)
