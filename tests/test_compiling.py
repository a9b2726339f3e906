"""The study's kernels compiled ahead, in a child process, are the ones a study then calls."""

import subprocess
import sys

from conftest import write_units_and_values

import nqpf_sens as ns
from nqpf_sens.uncertainty import compiling


def test_the_kernels_compiled_ahead_have_the_argument_types_of_a_study(tmp_path, monkeypatch):
    write_units_and_values(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = {
        "run": {"kind": "sobol", "jobs": 2},
        "sampling": {"n": 16, "bootstrap": 10},
        "data": {"values": "values.csv", "units": "units.csv"},
        "factors": [{"name": "weights", "kind": "weights", "level": 0, "spread": 0.3}],
    }
    ns.run(ns.config_from_dict(config, tmp_path))  # every study kernel, compiled or loaded here
    for kernel, argument_types in compiling.STUDY_KERNELS:
        assert argument_types in kernel.signatures, kernel.__name__


def test_a_child_compiles_the_kernels_and_the_run_waits_for_it():
    """In a process of one thread, as a command-line run is when it starts the child."""
    script = (
        "from nqpf_sens.uncertainty import compiling\n"
        "compiling.wait_for_kernels()\n"  # nothing started: returns at once
        "compiling.start_compiling()\n"
        "child, = compiling._children\n"
        "compiling.wait_for_kernels()\n"
        "assert not compiling._children and child.exitcode == 0, child.exitcode\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=600)
