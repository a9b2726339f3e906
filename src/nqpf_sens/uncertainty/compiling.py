"""The study's compiled kernels, compiled in a second process while the run does its audits.

The first run after an install compiles its numba kernels into numba's disk cache, one at a time
(compilation holds a global lock). The engine's kernels (the index tree, ranks) are needed at once,
for the nominal index; the study's (the tree over shared leaves of its batches, if they share
any, rank tallies, rank agreement, the Sobol estimators' terms) only after the audits and the
design. :func:`start_compiling` compiles those in a forked child at the same time, into the same
cache, from the first kernel on; :func:`wait_for_kernels`, called before the study's first chunk,
compiles the ones the child has not yet begun, from the last, and lets the child finish: each
kernel is claimed once, by one of them, so the two never compile the same.
This process loads what the child compiled from the cache instead of compiling it. Once they are
cached both only load them. A child that fails costs nothing: the kernels then compile on first
call, as without it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Any

from numba import types
from numba.core import event

from nqpf_sens.engine import kernels
from nqpf_sens.processes import become_worker, interrupts_deferred
from nqpf_sens.uncertainty import cell_draws, sobol

WAIT_SECONDS = 300  # a child still compiling after this long is stopped (it takes ~10 s)

_INTEGERS = types.Array(types.int64, 1, "C")
_INTEGER_TABLE = types.Array(types.int64, 2, "C")
_FLAGS = types.Array(types.boolean, 1, "C")
_KEYS = types.Array(types.uint64, 1, "C")
_INTEGER_CUBE = types.Array(types.int64, 3, "C")
_VALUES = types.Array(types.float64, 1, "C")
_VALUE_TABLE = types.Array(types.float64, 2, "C")
_VALUE_CUBE = types.Array(types.float64, 3, "C")
#: each kernel the study calls, with the types of the arguments it is called with there, the
#: longest to compile first (the child's): the run then takes the short ones from the end; the
#: tree over shared leaves first of all (a study of data of its own leaves it out)
STUDY_KERNELS = (
    (
        kernels.aggregate_shared,
        (
            _VALUE_TABLE,
            _VALUE_TABLE,
            _INTEGERS,
            _INTEGERS,
            _INTEGERS,
            _INTEGERS,
            types.float64,
            types.float64,
            types.int64,
            types.boolean,
            types.int64,
            _VALUE_CUBE,
            _INTEGER_TABLE,
            _FLAGS,
        ),
    ),
    (kernels.rank_agreement, (_INTEGER_TABLE, _INTEGERS, types.int64, _FLAGS)),
    (
        kernels.tally_ranks,
        (
            _INTEGER_TABLE,
            _INTEGER_TABLE,
            _INTEGERS,
            _FLAGS,
            _INTEGER_TABLE,
            _INTEGER_TABLE,
            _INTEGERS,
        ),
    ),
    (kernels.count_above_mean, (_VALUE_CUBE, _VALUES, _INTEGERS)),
    (kernels.bin_correlations, (_VALUE_CUBE, types.int64, _INTEGER_CUBE)),
    (sobol.saltelli_terms, (_VALUE_TABLE, _VALUES, types.int64, _VALUE_CUBE)),
    (cell_draws.noise_multipliers, (_KEYS, _KEYS, _VALUES)),
    (cell_draws.masked_cells, (_KEYS, _KEYS, _INTEGERS, types.int64, types.int64)),
)

_children: list[BaseProcess] = []
#: the positions in STUDY_KERNELS not yet claimed, [first, last): the child claims from the first,
#: the run from the last (shared with the child: made before it is forked)
_unclaimed: Any = None


def start_compiling(shared_leaves: bool = True) -> None:
    """Compile the study's kernels in a forked child, where forking is safe (Linux, and no other
    thread of this process, which could hold numba's compiler lock in the child for ever) and a
    second core exists; elsewhere they compile on their first call. Without ``shared_leaves``
    (every scenario has data of its own) the tree over shared leaves, the first of them, is left
    out: the study would not call it (``sobol.toml``'s first run took 2 s longer for it)."""
    alone = threading.active_count() == 1
    if _children or not alone or sys.platform != "linux" or (os.cpu_count() or 1) < 2:
        return
    context = multiprocessing.get_context("fork")
    global _unclaimed
    _unclaimed = context.Array("l", [0 if shared_leaves else 1, len(STUDY_KERNELS)])
    child = context.Process(target=_compile_in_child, args=(os.getpid(),), daemon=True)
    with interrupts_deferred():
        child.start()
    _children.append(child)


def wait_for_kernels() -> None:
    """Compile the kernels a child started by :func:`start_compiling` has not claimed, from the
    last, and let the child finish those it has (they are then cached)."""
    while _children:
        child = _children.pop()
        _compile_claimed(from_first=False)
        child.join(WAIT_SECONDS)
        if child.is_alive():
            child.kill()
            child.join()


def _compile_in_child(parent: int) -> None:
    """The child's work, out of the user's way: an interruption is the run's to handle (the child
    becomes a worker of the run's: it ignores Ctrl-C and dies with the run) and nothing it prints
    (numba's warnings) reaches the terminal."""
    become_worker(parent)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    _compile_claimed(from_first=True)


def _compile_claimed(from_first: bool) -> None:
    """Claim the first (or the last) kernel nobody has claimed and compile it, until none is
    left."""
    lock = _unclaimed.get_lock()
    while True:
        if not lock.acquire(timeout=WAIT_SECONDS):  # held by a process that died holding it
            return
        try:
            first, last = _unclaimed
            if first >= last:
                return
            position = first if from_first else last - 1
            _unclaimed[0 if from_first else 1] = position + from_first
        finally:
            lock.release()
        kernel, argument_types = STUDY_KERNELS[position]
        with interrupts_deferred():  # numba saves what it compiled after its compile event
            kernel.compile(argument_types)


def compile_study_kernels() -> None:
    """Compile (or load from the cache) each of :data:`STUDY_KERNELS` for its argument types."""
    for kernel, argument_types in STUDY_KERNELS:
        kernel.compile(argument_types)


class _InterruptsDeferred(event.Listener):
    """Defers Ctrl-C while the main thread compiles (compilations nest: the outermost decides;
    other threads' compilations, which no handler interrupts, are not counted)."""

    def __init__(self) -> None:
        self.depth = 0
        self.deferral: Any = None

    def on_start(self, ev) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if not self.depth:
            self.deferral = interrupts_deferred()
            self.deferral.__enter__()
        self.depth += 1

    def on_end(self, ev) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self.depth -= 1
        if not self.depth:
            self.deferral.__exit__(None, None, None)  # raises a Ctrl-C received meanwhile


@contextmanager
def interrupts_deferred_while_compiling() -> Iterator[None]:
    """Ctrl-C while the main thread compiles a kernel is raised, as KeyboardInterrupt, once it
    is compiled: numba's compiler can swallow it in a callback of llvmlite's and then fail with
    an error of its own as it caches the kernel (a traceback instead of a one-line stop).

    Only for a run in the main thread, whose compilations all happen within it: numba's
    listeners are the whole process's, and one installed by a run in another thread could end
    while the main thread compiles, leaving Ctrl-C deferred for ever."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with event.install_listener("numba:compile", _InterruptsDeferred()):
        yield
