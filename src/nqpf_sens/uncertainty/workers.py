"""Worker processes never outlive the run that started them, and never take its Ctrl-C.

A process pool (loky, a local dask cluster) normally stops its workers when the run ends, but a run
killed outright (SIGKILL, out of memory) gets no chance to. On Linux each worker asks the kernel to
kill it when its parent dies (``PR_SET_PDEATHSIG``); elsewhere this does nothing.

A Ctrl-C is the run's to handle (it stops its workers and says what was kept). One that arrives
while a process forks would otherwise reach the child before it can ignore it (a stray traceback),
or be swallowed by the parent's after-fork hooks (the run goes on): forks happen with it held
(:func:`interrupts_held`), and a forked child ignores it before letting it through
(:func:`ignore_interrupts`). While the run compiles a kernel, a Ctrl-C is deferred to the end of
the compilation (:func:`interrupts_deferred`): numba's compiler could swallow it and fail.
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
def interrupts_held() -> Iterator[None]:
    """Hold SIGINT for this thread while forking: it is delivered when the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Remember a Ctrl-C instead of raising it while the block runs, and raise it when the block
    ends: the block runs Python inside C callbacks, where an exception is swallowed (numba's
    compiler in llvmlite's; blocking the signal does not help, as it goes to another thread,
    a BLAS one say, and Python still runs its handler here). Only in the main thread, where
    handlers are, and not where Ctrl-C is ignored."""
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
    """A forked child's first step: ignore SIGINT, then stop holding it (one held since the fork
    is discarded)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
