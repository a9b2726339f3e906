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
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from nqpf_sens.uncertainty.workers import die_with_parent

AHEAD = 2  # items handed out per worker beyond the next result due: bounds the results waiting


class ForkedPool:
    """``jobs`` forked workers applying ``function`` (inherited by the fork, never pickled);
    results and a worker's exceptions come back pickled through its pipe. Linux only (fork)."""

    def __init__(self, function: Callable[[Any], Any], jobs: int):
        context = multiprocessing.get_context("fork")
        self.workers: list[tuple[BaseProcess, Connection]] = []
        try:
            for _ in range(jobs):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_serve, args=(function, theirs, os.getpid()), daemon=True
                )
                process.start()
                theirs.close()  # the worker's end is the worker's alone: its death ends the pipe
                self.workers.append((process, ours))
        except BaseException:  # no process left (too many processes, no memory)
            self.__exit__(Exception)
            raise

    def map(self, items: Iterable[Any]) -> Iterator[Any]:
        """``function(item)`` for each item, in the order of ``items``; an exception raised by the
        function is raised here, a worker that dies raises ``BrokenProcessPool``."""
        items = list(items)
        done: dict[int, Any] = {}
        handed = 0
        idle = [connection for _, connection in self.workers]
        busy: dict[Connection, int] = {}
        for due in range(len(items)):
            while due not in done:
                while idle and handed < min(len(items), due + AHEAD * len(self.workers)):
                    connection = idle.pop()
                    connection.send(items[handed])
                    busy[connection] = handed
                    handed += 1
                for ready in wait(list(busy)):
                    assert isinstance(ready, Connection)
                    try:
                        failed, value = ready.recv()
                    except (EOFError, OSError):
                        raise BrokenProcessPool("a worker process died") from None
                    if failed:
                        raise value
                    done[busy.pop(ready)] = value
                    idle.append(ready)
            yield done.pop(due)

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
    """A worker: items in, (failed, result or exception) out, until told to stop. Ctrl-C is the
    run's to handle (it stops the workers), and the worker dies with the run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    while (item := connection.recv()) is not None:
        try:
            reply = (False, function(item))
        except Exception as error:  # sent back to be raised in the run
            reply = (True, error)
        connection.send(reply)
