"""Where a first run's kernel compilation goes: seconds per compiled function, self and total.

Usage: ``python experiments/compile_times.py [CONFIG]`` (default ``configs/sobol.toml``). Runs the
config in this process with an empty kernel cache (a fresh ``NUMBA_CACHE_DIR``, set before numba is
imported) and prints every function numba compiled here, its own compile time ("self") and with
the functions it called compiled along ("total"), and who called it. Kernels a forked child
compiles meanwhile (``uncertainty/compiling.py``) do not appear: they are not compiled here.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

CACHE = tempfile.mkdtemp(prefix="kernel_cache_")
atexit.register(shutil.rmtree, CACHE, True)
os.environ["NUMBA_CACHE_DIR"] = CACHE  # before numba is imported

from numba.core import event  # noqa: E402

from nqpf_sens.cli import main as cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class CompileTimes(event.Listener):
    """Wall seconds of each ``numba:compile`` event, nested events subtracted for "self"."""

    def __init__(self) -> None:
        self.open: list[list] = []  # [name, started, seconds of nested compilations]
        self.own: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.callers: defaultdict[str, set[str]] = defaultdict(set)

    def on_start(self, ev) -> None:
        dispatcher = ev.data["dispatcher"]
        self.open.append([dispatcher.py_func.__qualname__, time.perf_counter(), 0.0])

    def on_end(self, ev) -> None:
        name, started, nested = self.open.pop()
        seconds = time.perf_counter() - started
        self.total[name] += seconds
        self.own[name] += seconds - nested
        if self.open:
            self.open[-1][2] += seconds
        self.callers[name].add(self.open[-1][0] if self.open else "(the run)")


def main() -> None:
    config = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "configs" / "sobol.toml")
    times = CompileTimes()
    event.register("numba:compile", times)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        try:
            cli(["run", config, "--out", str(Path(out) / "run"), "--quiet"])
        except SystemExit as stop:
            if stop.code:
                raise
    whole = time.perf_counter() - started
    top = sum(s for n, s in times.total.items() if times.callers[n] == {"(the run)"})
    print(f"whole run {whole:.1f} s, of which compiling in this process {top:.1f} s")
    print(f"{'self':>7} {'total':>7}  function  <- called by")
    for name, seconds in times.own.most_common():
        callers = ", ".join(sorted(times.callers[name]))
        print(f"{seconds:7.2f} {times.total[name]:7.2f}  {name}  <- {callers}")


if __name__ == "__main__":
    main()
