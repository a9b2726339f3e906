"""Worker processes never outlive the run that started them, and never take its Ctrl-C.

A process pool (loky, a local dask cluster) normally stops its workers when the run ends, but a run
killed outright (SIGKILL, out of memory) gets no chance to. On Linux each worker asks the kernel to
kill it when its parent dies (``PR_SET_PDEATHSIG``); elsewhere this does nothing.

A Ctrl-C is the run's to handle (it stops its workers and says what was kept). One that arrives
while a process forks would otherwise be raised in the parent's after-fork hooks, which swallow it
(the run goes on), or in the child before it can ignore it (a stray traceback); one that arrives
while the run compiles a kernel, in a callback of llvmlite's, which swallows it too (and numba then
fails). Both happen with it deferred (:func:`interrupts_deferred`: remembered, raised at the end),
and a forked child ignores it (:func:`ignore_interrupts`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> bool:
    """Have the kernel kill this process when its parent exits; True if it agreed. Given the
    ``parent``'s process id, a worker whose parent died before it asked (while it was still
    starting) exits at once: the kernel only signals deaths that come after the request."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    agreed = prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if parent is not None and os.getppid() != parent:
        os._exit(1)
    return agreed


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
