"""The study's compiled kernels, compiled in a second process while the run does its audits.

The first run after an install compiles its numba kernels into numba's disk cache, one at a time
(compilation holds a global lock). The engine's kernels (the index tree, ranks) are needed at once,
for the nominal index; the study's (rank tallies, rank agreement, the Sobol estimators' terms) only
after the audits and the design. :func:`start_compiling` compiles those in a forked child at the
same time, into the same cache; :func:`wait_for_kernels`, called before the study's first chunk,
lets the child finish, after which this process loads them from the cache instead of compiling
them. Once they are cached the child only loads them, on the other core. A child that fails costs
nothing: the kernels then compile on first call, as without it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from multiprocessing.process import BaseProcess

from numba import types

from nqpf_sens.engine import kernels
from nqpf_sens.uncertainty import cell_draws, sobol
from nqpf_sens.uncertainty.workers import ignore_interrupts, interrupts_held

WAIT_SECONDS = 300  # a child still compiling after this long is stopped (it takes ~10 s)

_INTEGERS = types.Array(types.int64, 1, "C")
_INTEGER_TABLE = types.Array(types.int64, 2, "C")
_FLAGS = types.Array(types.boolean, 1, "C")
_KEYS = types.Array(types.uint64, 1, "C")
_VALUES = types.Array(types.float64, 1, "C")
_VALUE_TABLE = types.Array(types.float64, 2, "C")
_VALUE_CUBE = types.Array(types.float64, 3, "C")
#: each kernel the study calls, with the types of the arguments it is called with there
STUDY_KERNELS = (
    (
        kernels.tally_ranks,
        (_INTEGER_TABLE, _INTEGER_TABLE, _INTEGERS, _INTEGERS, _FLAGS)
        + (_INTEGER_TABLE, _INTEGER_TABLE, _INTEGERS),
    ),
    (kernels.rank_agreement, (_INTEGER_TABLE, _INTEGERS, types.int64, _FLAGS)),
    (kernels.count_above_mean, (_VALUE_CUBE, _VALUES, _INTEGERS)),
    (sobol.saltelli_terms, (_VALUE_TABLE, _VALUES, types.int64, _VALUE_CUBE)),
    (cell_draws.noise_multipliers, (_KEYS, _KEYS, _VALUES)),
    (cell_draws.masked_cells, (_KEYS, _KEYS, _INTEGERS, types.int64, types.int64)),
)

_children: list[BaseProcess] = []


def start_compiling() -> None:
    """Compile the study's kernels in a forked child, where forking is safe (Linux, and no other
    thread of this process, which could hold numba's compiler lock in the child for ever) and a
    second core exists; elsewhere they compile on their first call."""
    alone = threading.active_count() == 1
    if _children or not alone or sys.platform != "linux" or (os.cpu_count() or 1) < 2:
        return
    child = multiprocessing.get_context("fork").Process(target=_compile_in_child, daemon=True)
    with interrupts_held():
        child.start()
    _children.append(child)


def wait_for_kernels() -> None:
    """Let a child started by :func:`start_compiling` finish (its kernels are then cached)."""
    while _children:
        child = _children.pop()
        child.join(WAIT_SECONDS)
        if child.is_alive():
            child.kill()
            child.join()


def _compile_in_child() -> None:
    """The child's work, out of the user's way: an interruption is the run's to handle (the child,
    a daemon, ends with the run) and nothing it prints (numba's warnings) reaches the terminal."""
    ignore_interrupts()
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    compile_study_kernels()


def compile_study_kernels() -> None:
    """Compile (or load from the cache) each of :data:`STUDY_KERNELS` for its argument types."""
    for kernel, argument_types in STUDY_KERNELS:
        kernel.compile(argument_types)
