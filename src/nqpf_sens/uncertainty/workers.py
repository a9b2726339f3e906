"""Worker processes never take the run's Ctrl-C (that they never outlive it:
:mod:`nqpf_sens.processes`).

A Ctrl-C is the run's to handle (it stops its workers and says what was kept). One that arrives
while a process forks would otherwise be raised in the parent's after-fork hooks, which swallow it
(the run goes on), or in the child before it can ignore it (a stray traceback); one that arrives
while the run compiles a kernel, in a callback of llvmlite's, which swallows it too (and numba then
fails). Both happen with it deferred (:func:`interrupts_deferred`: remembered, raised at the end),
and a forked child ignores it (:func:`ignore_interrupts`).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Remember a Ctrl-C instead of raising it while the block runs, and raise it when the block
    ends: the block runs Python where an exception is swallowed (after-fork hooks, C callbacks).
    Blocking the signal does not do: the system delivers it to another thread (a BLAS one, say)
    and Python still runs its handler in this one. Only in the main thread, where handlers are,
    and not where Ctrl-C is ignored."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def ignore_interrupts() -> None:
    """A forked child's first step: ignore SIGINT (one deferred since the fork is discarded)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
