"""Worker processes never outlive the run that started them.

A process pool (loky, a local dask cluster, the figures' forked workers) normally stops its
workers when the run ends, but a run killed outright (SIGKILL, out of memory) gets no chance to,
and a worker left behind keeps what it inherited: the lock on the output folder, say, so that no
later run could write it. On Linux each worker asks the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG``); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

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


def become_worker(parent: int) -> None:
    """The first step of a forked worker the run stops itself: Ctrl-C and SIGTERM are the run's
    (one inherited from it would be raised in the worker, a traceback there; SIGTERM, which the
    run sends to stop it, kills it), and it dies with the run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent)
