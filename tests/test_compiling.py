"""The study's kernels compiled ahead, in a child process, are the ones a study then calls."""

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import write_units_and_values
from numba import njit
from numba.core import event

import nqpf_sens as ns
from nqpf_sens.uncertainty import compiling


def run_with_empty_kernel_cache(script: str, cache: Path) -> None:
    """Run ``script`` in a new interpreter whose kernels compile into the empty folder ``cache``:
    kernels loaded from a cache are not compiled, so what a compilation does would not show."""
    env = os.environ | {"NUMBA_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=600)


def test_the_kernels_compiled_ahead_have_the_argument_types_of_a_study(tmp_path, monkeypatch):
    write_units_and_values(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = {
        "run": {"kind": "sobol", "jobs": 2, "backend": "threading"},  # kernels in this process
        "sampling": {"n": 16, "bootstrap": 10},
        "data": {"values": "values.csv", "units": "units.csv"},
        "pipeline": {"imputation": "median"},
        "factors": [
            {"name": "weights", "kind": "weights", "level": 0, "spread": 0.3},
            {"name": "noise", "kind": "noise", "spread": 0.02},
            {"name": "mask", "kind": "mask", "cells": 2},
        ],
    }
    ns.run(ns.config_from_dict(config, tmp_path))  # every study kernel, compiled or loaded here
    config["factors"] = config["factors"][:1]  # weights alone: batches over shared leaves
    config["run"]["name"] = "weights_alone"
    ns.run(ns.config_from_dict(config, tmp_path))
    for kernel, argument_types in compiling.STUDY_KERNELS:
        assert argument_types in kernel.signatures, kernel.__name__


def test_a_child_compiles_the_kernels_and_the_run_waits_for_it(tmp_path):
    """In a process of one thread, as a command-line run is when it starts the child; an empty
    kernel cache. The child takes kernels from the first, the run from the last: each is compiled
    once, by one of them, and the run loads the child's from the cache."""
    script = (
        "from nqpf_sens.uncertainty import compiling\n"
        "compiling.wait_for_kernels()\n"  # nothing started: returns at once
        "compiling.start_compiling()\n"
        "child, = compiling._children\n"
        "compiling.wait_for_kernels()\n"
        "assert not compiling._children and child.exitcode == 0, child.exitcode\n"
        "ours = [bool(k.signatures) for k, _ in compiling.STUDY_KERNELS]\n"
        "assert not ours[0] and ours[-1], ours\n"  # the longest is the child's, the last ours
        "compiling.compile_study_kernels()\n"
        "for (kernel, _), compiled in zip(compiling.STUDY_KERNELS, ours):\n"
        "    misses, hits = kernel.stats.cache_misses, kernel.stats.cache_hits\n"
        "    assert (sum(misses.values()), sum(hits.values())) == (compiled, not compiled)\n"
    )
    run_with_empty_kernel_cache(script, tmp_path)


def test_a_study_of_data_of_its_own_leaves_out_the_tree_over_shared_leaves(tmp_path):
    """Noise or masks give every scenario its own data: the child does not compile the tree over
    shared leaves, which such a study never calls, and still compiles the others."""
    script = (
        "import os, pathlib\n"
        "from nqpf_sens.uncertainty import compiling\n"
        "compiling.start_compiling(shared_leaves=False)\n"
        "compiling.wait_for_kernels()\n"
        "cache = pathlib.Path(os.environ['NUMBA_CACHE_DIR'])\n"
        "assert not list(cache.rglob('*aggregate_shared*.nbi'))\n"
        "assert list(cache.rglob('*rank_agreement*.nbi'))\n"
    )
    run_with_empty_kernel_cache(script, tmp_path)


def test_both_ranking_kernels_load_from_the_cache_into_one_process(tmp_path):
    """Ranks by counting and by sorting are two kernels. One run compiles the first; a later one
    loads it and compiles the second; a third loads both and ranks both ways: it failed with
    numba's "'descr' is NULL" when they were variants of one function returning their ranks."""
    script = (
        "import sys\n"
        "import numpy as np\n"
        "from nqpf_sens.engine.kernels import PAIRWISE_LIMIT, rank_rows\n"
        "for n in (3, PAIRWISE_LIMIT + 1)[: int(sys.argv[1])]:\n"
        "    scores = np.arange(2.0 * n).reshape(2, n)\n"
        "    assert (rank_rows(scores, False) == np.arange(n, 0, -1)).all()\n"
    )
    env = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path)}
    for variants in ("1", "2", "2"):
        subprocess.run([sys.executable, "-c", script, variants], env=env, check=True, timeout=600)


def test_a_reinstalled_package_loads_its_compiled_kernels_instead_of_compiling_them(tmp_path):
    """A reinstall writes every file again (same contents, new modification times); the kernel
    cache is keyed to the contents (numba >= 0.68), so the kernels compiled before still load."""
    site = tmp_path / "site"
    shutil.copytree(
        Path(ns.__file__).parent, site / "nqpf_sens", ignore=shutil.ignore_patterns("__pycache__")
    )
    script = (
        "import numpy as np\n"
        "from nqpf_sens.engine.kernels import count_above_mean as kernel\n"
        "kernel(np.ones((1, 1, 2)), np.full(2, 0.5), np.zeros(2, dtype=np.int64))\n"
        "print(sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}  # the in-tree cache
    env["PYTHONPATH"] = str(site)

    def hits_and_misses() -> str:
        command = [sys.executable, "-c", script]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout

    assert hits_and_misses().split() == ["0", "1"]  # compiled and cached
    for source in (site / "nqpf_sens").rglob("*.py"):
        source.write_bytes(source.read_bytes())  # as a reinstall does
        os.utime(source, (source.stat().st_atime, source.stat().st_mtime + 60))
    assert hits_and_misses().split() == ["1", "0"]


def test_each_compiled_function_is_compiled_once_per_run(tmp_path):
    """A helper called with a literal 0 in one place and an integer variable in another compiles
    twice (numba specialises on literals): the index tree, natural breaks and the study's kernels
    compile every function they call for one argument type each; the index tree of an index
    without Copeland levels, missing children or many units compiles none of those paths. An
    empty kernel cache: functions loaded from a cache are not compiled, so their helpers would not
    show."""
    script = (
        "import numpy as np\n"
        "import nqpf_sens as ns\n"
        "from nqpf_sens.engine import kernels\n"
        "from nqpf_sens.engine.batch import evaluate\n"
        "from nqpf_sens.indices.nqpf.data import province_table\n"
        "from nqpf_sens.uncertainty.compiling import compile_study_kernels\n"
        "spec = ns.nqpf_spec()\n"
        "evaluate(spec, province_table(spec), ns.Pipeline(imputation='none'))\n"
        "for path in ('_copeland', '_available_means', 'ranks_from_order'):\n"  # not this index's
        "    assert not getattr(kernels, path).signatures, path\n"
        "kernels.natural_break_rows(np.arange(12.0).reshape(2, 6), 3)\n"
        "compile_study_kernels()\n"
        "from numba.core.types import unliteral\n"
        "from nqpf_sens.uncertainty import cell_draws\n"
        "for module in (kernels, cell_draws):\n"
        "    for name in dir(module):\n"
        "        signatures = getattr(getattr(module, name), 'signatures', [])\n"
        "        types = [tuple(map(unliteral, signature)) for signature in signatures]\n"
        "        assert len(set(types)) == len(types), (name, signatures)\n"
    )
    run_with_empty_kernel_cache(script, tmp_path)


class _CtrlC(event.Listener):
    """Ctrl-C at the start of an event, once."""

    def __init__(self):
        self.sent = False

    def on_start(self, ev):
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)

    def on_end(self, ev):
        pass


def test_ctrl_c_while_a_kernel_compiles_is_delivered_once_it_is_compiled():
    """numba's compiler can swallow Ctrl-C in a callback of llvmlite's and then fail with an
    error of its own; a run defers it while the main thread compiles."""

    @njit
    def kernel(x):
        return x + 1

    with compiling.interrupts_deferred_while_compiling():
        with event.install_listener("numba:compile", _CtrlC()):
            with pytest.raises(KeyboardInterrupt):
                kernel(1)
    assert kernel.signatures  # compiled in full before the interruption


def test_a_run_in_another_thread_leaves_ctrl_c_to_the_main_thread():
    """A run in a background thread installs no deferral: one ending while the main thread
    compiles would leave its handler in place, swallowing every later Ctrl-C."""
    entered, leave = threading.Event(), threading.Event()

    def background_run():
        with compiling.interrupts_deferred_while_compiling():
            entered.set()
            leave.wait(60)

    thread = threading.Thread(target=background_run)
    thread.start()
    entered.wait(60)

    @njit
    def kernel(x):
        return x + 1

    class EndTheBackgroundRun(event.Listener):
        def on_start(self, ev):
            leave.set()
            thread.join(60)

        def on_end(self, ev):
            pass

    handler = signal.getsignal(signal.SIGINT)
    with event.install_listener("numba:run_pass", EndTheBackgroundRun()):
        kernel(1)  # the main thread compiles; the background run ends meanwhile
    assert signal.getsignal(signal.SIGINT) is handler


def test_a_run_from_a_notebook_defers_ctrl_c_while_a_kernel_compiles(tmp_path, monkeypatch):
    """As the command line's run does: a kernel that compiles during ``ns.run`` (here one the
    nominal evaluation calls first) is compiled in full, then the run stops with
    KeyboardInterrupt."""
    write_units_and_values(tmp_path)
    monkeypatch.chdir(tmp_path)
    run_module = sys.modules["nqpf_sens.running"]

    @njit
    def kernel(x):
        return x + 1

    def evaluate_after_compiling(*arguments, **options):
        kernel(1)
        return ns.evaluate(*arguments, **options)

    monkeypatch.setattr(run_module, "evaluate", evaluate_after_compiling)
    config = {
        "run": {"kind": "montecarlo"},
        "sampling": {"n": 8},
        "factors": [{"name": "weights", "kind": "weights", "level": 0}],
    }
    # a compiler pass's event: inside the compilation whichever listener numba calls first
    with event.install_listener("numba:run_pass", _CtrlC()):
        with pytest.raises(KeyboardInterrupt):
            ns.run(ns.config_from_dict(config, tmp_path))
    assert kernel.signatures
