"""Forked worker processes: copies of the run's process that start at once, with its modules,
compiled kernels and data, and evaluate the items they are handed, results in order.

Each worker has a pipe of its own. ``concurrent.futures.ProcessPoolExecutor`` shares one result
pipe among its workers, and a worker killed while writing to it (by the out-of-memory killer, say)
leaves half a message there, on which the executor waits for ever; here a dead worker's pipe
just ends, and the pool reports the death as ``BrokenProcessPool``.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from nqpf_sens.processes import become_worker
from nqpf_sens.uncertainty.workers import interrupts_deferred

AHEAD = 2  # items handed out per worker beyond the next result due: bounds the results waiting


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
        ``BrokenProcessPool``. Idle workers get their next items before a result is yielded, so
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
                    raise BrokenProcessPool("a worker process died") from None
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
                        raise BrokenProcessPool("a worker process died") from None
                    idle.append(ready)
                hand_out(due)
            failed, value = done.pop(due)
            if failed:  # the first error in the order of the items, whichever came first
                error, where = value
                raise error from WorkerTraceback(where)
            hand_out(due + 1)
            yield value

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
