"""Forked workers: results in the order of the items whatever order they finish in, a worker's
exception raised in the run, a dead worker reported instead of waited for, no worker left."""

import functools
import os
import signal
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from nqpf_sens.errors import UserError
from nqpf_sens.processes import AHEAD, ForkedPool, WorkerDied

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork is Linux's")


def slow_square(item: int) -> tuple[int, int]:
    time.sleep(0.05 if item % 3 == 0 else 0.001)  # later items finish first
    return item * item, os.getpid()


def test_results_come_in_the_order_of_the_items():
    with ForkedPool(slow_square, 3) as pool:
        results = list(pool.map(range(20)))
        workers = [process for process, _ in pool.workers]
    assert [square for square, _ in results] == [i * i for i in range(20)]
    assert len({pid for _, pid in results}) > 1 and os.getpid() not in {p for _, p in results}
    assert not any(process.is_alive() for process in workers)


def mark_done(folder, item: int) -> int:
    """Item 0 is slow; it returns how many items were done meanwhile."""
    if item == 0:
        time.sleep(0.5)
    done = len(os.listdir(folder))
    (folder / str(item)).touch()
    return done


def test_while_the_next_result_is_due_workers_run_only_a_few_items_ahead(tmp_path):
    """Results that finish early wait in the run's memory: at most ``AHEAD`` per worker."""
    with ForkedPool(functools.partial(mark_done, tmp_path), 2) as pool:
        done_meanwhile = next(pool.map(range(30)))
    assert 1 <= done_meanwhile <= 2 * AHEAD - 1  # items 1 to 3 of the first four handed out


def refuse_seven(item: int) -> int:
    if item == 7:
        raise UserError("item 7 is refused", "config.toml", "[run]")
    return item


def test_an_exception_in_a_worker_is_raised_in_the_run_and_the_workers_stop():
    with pytest.raises(UserError, match="config.toml: \\[run\\]: item 7 is refused"):
        with ForkedPool(refuse_seven, 2) as pool:
            workers = [process for process, _ in pool.workers]
            list(pool.map(range(20)))
    assert not any(process.is_alive() for process in workers)


def die_at_five(how: int, item: int) -> int:
    if item == 5:
        os.kill(os.getpid(), how)
    return item


@pytest.mark.parametrize(
    "how, said, outright",
    [
        (signal.SIGKILL, "killed (SIGKILL: for lack of memory?)", True),  # the system's killer
        (signal.SIGTERM, "stopped by SIGTERM, sent from outside the run", False),
    ],
)
def test_a_dead_worker_is_reported_not_waited_for(how, said, outright):
    """The death names the signal: a SIGTERM sent to a worker was reported as lack of memory."""
    with pytest.raises(WorkerDied) as died:
        with ForkedPool(functools.partial(die_at_five, how), 2) as pool:
            workers = [process for process, _ in pool.workers]
            list(pool.map(range(20)))
    assert not any(process.is_alive() for process in workers)
    assert str(died.value) == f"a worker process was {said}"
    assert died.value.killed_outright == outright and isinstance(died.value, BrokenProcessPool)


def test_a_worker_that_cannot_start_leaves_none_behind(monkeypatch):
    """Forking can fail (too many processes, no memory): the workers already started stop."""
    from multiprocessing.context import ForkProcess

    started = []
    start = ForkProcess.start

    def start_once(process):
        if started:
            raise OSError(11, "Resource temporarily unavailable")
        start(process)
        started.append(process)

    monkeypatch.setattr(ForkProcess, "start", start_once)
    with pytest.raises(OSError, match="temporarily unavailable"):
        ForkedPool(slow_square, 3)
    assert len(started) == 1 and not started[0].is_alive()


def slow_first(folder, item: int) -> int:
    if item == 0:
        (folder / "busy").write_text(str(os.getpid()))
        time.sleep(5)
    return item


def test_a_worker_that_dies_idle_is_reported_at_once(tmp_path):
    """While the next result is due, the others may sit idle (``AHEAD``): one that dies then is
    reported without waiting for the busy one."""
    with ForkedPool(functools.partial(slow_first, tmp_path), 2) as pool:
        results = pool.map(range(10))
        pids = {process.pid for process, _ in pool.workers}

        def kill_the_idle_one():
            while not (tmp_path / "busy").exists():
                time.sleep(0.01)
            time.sleep(0.3)  # the other worker has finished what it was handed
            os.kill((pids - {int((tmp_path / "busy").read_text())}).pop(), signal.SIGKILL)

        killer = threading.Thread(target=kill_the_idle_one)
        killer.start()
        started = time.time()
        with pytest.raises(BrokenProcessPool):
            next(results)
        killer.join()
        assert time.time() - started < 3


def divide(item: int) -> float:
    return 1 / (item - 3)


class Unsendable(Exception):
    def __init__(self, item):
        super().__init__(f"{item} and a lock")
        self.lock = threading.Lock()  # cannot be pickled


def refuse_with_unsendable(item: int) -> int:
    raise Unsendable(item)


def test_a_worker_error_keeps_its_traceback_and_an_unsendable_one_its_name():
    with pytest.raises(ZeroDivisionError) as raised:
        with ForkedPool(divide, 2) as pool:
            list(pool.map(range(6)))
    assert "in divide" in str(raised.value.__cause__) and "1 / (item - 3)" in str(
        raised.value.__cause__
    )
    with pytest.raises(RuntimeError, match="Unsendable: 0 and a lock"):
        with ForkedPool(refuse_with_unsendable, 2) as pool:
            list(pool.map(range(3)))


def test_a_pool_needs_a_worker():
    with pytest.raises(ValueError, match="at least one worker"):
        ForkedPool(divide, 0)
