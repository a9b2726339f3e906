"""The run's worker processes: they never outlive the run, never take its Ctrl-C, and a forked
pool of them reports a death instead of waiting for it.

A process pool (loky, a local dask cluster, forked workers) normally stops its workers when the run
ends, but a run killed outright (SIGKILL, out of memory) gets no chance to, and a worker left behind
keeps what it inherited: the lock on the output folder, say, so that no later run could write it.
On Linux each worker asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``);
elsewhere this does nothing.

A Ctrl-C is the run's to handle (it stops its workers and says what was kept). One that arrives
while a process forks would otherwise be raised in the parent's after-fork hooks, which swallow it
(the run goes on), or in the child before it can ignore it (a stray traceback); one that arrives
while the run compiles a kernel, in a callback of llvmlite's, which swallows it too (and numba then
fails). Both happen with it deferred (:func:`interrupts_deferred`: remembered, raised at the end),
and a forked worker ignores it (:func:`become_worker`).

:class:`ForkedPool`: copies of the run's process that start at once, with its modules, compiled
kernels and data, and evaluate the items they are handed, results in order. Each worker has a pipe
of its own. ``concurrent.futures.ProcessPoolExecutor`` shares one result pipe among its workers,
and a worker killed while writing to it (by the out-of-memory killer, say) leaves half a message
there, on which the executor waits for ever; ``multiprocessing.Pool`` replaces a dead worker and
waits for ever for the item it held. Here a dead worker's pipe just ends, and the pool reports the
death as :class:`WorkerDied`, with the signal that killed it.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

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


AHEAD = 2  # items handed out per worker beyond the next result due: bounds the results waiting
DEATH_SECONDS = 1.0  # how long a worker whose pipe ended is given to end, for its exit status


class WorkerDied(BrokenProcessPool):
    """A worker process ended without its result: ``exitcode`` is its exit status, minus the
    signal that killed it (None if unknown), and ``doing`` what the workers were doing, if said;
    the message says both."""

    def __init__(self, exitcode: int | None, doing: str = ""):
        self.exitcode, self.doing = exitcode, doing
        super().__init__(_death(exitcode) + (f" while {doing}" if doing else ""))

    @property
    def killed_outright(self) -> bool:
        """Killed by SIGKILL (the system's out-of-memory killer's signal), or for all we know."""
        return self.exitcode is None or self.exitcode == -signal.SIGKILL


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "a worker process died (killed for lack of memory?)"
    if exitcode == -signal.SIGKILL:
        return "a worker process was killed (SIGKILL: for lack of memory?)"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"a worker process was stopped by {name}, sent from outside the run"
    return f"a worker process exited with status {exitcode}"


class WorkerTraceback(Exception):
    """Where in a worker an exception was raised (its ``__cause__``, as ``concurrent.futures``
    shows it)."""

    def __str__(self) -> str:
        return f"\n{self.args[0]}"


class ForkedPool:
    """``jobs`` forked workers applying ``function`` (inherited by the fork, never pickled);
    results and a worker's exceptions come back pickled through its pipe. Linux only (fork)."""

    def __init__(self, function: Callable[[Any], Any], jobs: int):
        if jobs < 1:
            raise ValueError(f"a pool needs at least one worker, not {jobs}")
        context = multiprocessing.get_context("fork")
        self.workers: list[tuple[BaseProcess, Connection]] = []
        try:
            with interrupts_deferred():  # a Ctrl-C while forking comes after, to the run alone
                for _ in range(jobs):
                    ours, theirs = context.Pipe()
                    process = context.Process(
                        target=_serve, args=(function, theirs, os.getpid()), daemon=True
                    )
                    process.start()
                    theirs.close()  # the worker's end is the worker's alone: its death ends it
                    self.workers.append((process, ours))
        except BaseException:  # no process left (too many processes, no memory, Ctrl-C)
            self.__exit__(Exception)
            raise

    def map(self, items: Iterable[Any]) -> Iterator[Any]:
        """``function(item)`` for each item, in the order of ``items``; an exception raised by the
        function is raised here in its turn, and a worker that dies (busy or idle) raises
        :class:`WorkerDied`. Idle workers get their next items before a result is yielded, so
        they work while the caller does."""
        items = list(items)
        done: dict[int, Any] = {}
        connections = [connection for _, connection in self.workers]
        idle = list(connections)
        busy: dict[Connection, int] = {}
        handed = 0

        def hand_out(due: int) -> None:
            nonlocal handed
            while idle and handed < min(len(items), due + AHEAD * len(self.workers)):
                connection = idle.pop()
                try:
                    connection.send(items[handed])
                except OSError:
                    raise self._died(connection) from None
                busy[connection] = handed
                handed += 1

        for due in range(len(items)):
            hand_out(due)
            while due not in done:
                for ready in wait(connections):  # an idle one is ready only when it died
                    assert isinstance(ready, Connection)
                    try:
                        done[busy.pop(ready)] = ready.recv()  # (failed, value)
                    except (EOFError, OSError, KeyError):
                        raise self._died(ready) from None
                    idle.append(ready)
                hand_out(due)
            failed, value = done.pop(due)
            if failed:  # the first error in the order of the items, whichever came first
                error, where = value
                raise error from WorkerTraceback(where)
            hand_out(due + 1)
            yield value

    def _died(self, connection: Connection) -> WorkerDied:
        """The death of the worker at the other end of ``connection``, with its exit status
        (waited for a moment: its pipe can end just before it does)."""
        process = next(process for process, ours in self.workers if ours is connection)
        process.join(DEATH_SECONDS)
        return WorkerDied(process.exitcode)

    def __enter__(self) -> ForkedPool:
        return self

    def __exit__(self, kind, *exc) -> None:
        """Workers stop when told, or at once on an error or Ctrl-C (their work is dropped)."""
        for process, connection in self.workers:
            try:
                if kind is None:
                    connection.send(None)
                    continue
            except OSError:  # the worker is gone
                pass
            process.terminate()
        for process, connection in self.workers:
            process.join()
            connection.close()


def _serve(function: Callable[[Any], Any], connection: Connection, parent: int) -> None:
    """A worker: items in, (failed, result or (exception, traceback)) out, until told to stop.
    Ctrl-C is the run's to handle (it stops the workers), and the worker dies with the run."""
    become_worker(parent)
    while (item := connection.recv()) is not None:
        try:
            reply: tuple[bool, Any] = (False, function(item))
        except Exception as error:  # raised in the run, with where it happened
            reply = (True, (_sendable(error), traceback.format_exc()))
        connection.send(reply)


def _sendable(error: Exception) -> Exception:
    """The exception itself if it survives pickling, else a RuntimeError that names it."""
    try:
        return pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
