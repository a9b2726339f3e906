"""Freed memory stays in the process for the next chunk, whichever thread freed it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

# the number of glibc arenas, from malloc_info's report (0 if the C library has none)
ARENAS = textwrap.dedent(
    """
    import ctypes, ctypes.util, tempfile

    def arenas():
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        if not hasattr(libc, "malloc_info"):
            return 0
        libc.fopen.restype = ctypes.c_void_p
        with tempfile.NamedTemporaryFile(suffix=".xml") as report:
            stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
            libc.malloc_info(0, stream)
            libc.fclose(stream)
            return report.read().count(b"<heap nr=")
    """
)
# two threads, each holding five arrays of 16 MiB at once (a chunk's arrays), ten times over,
# both at once each time (the first pair must reach the peak the second reaches); then the same
# with two new threads: how many pages the second pair faulted in
CHUNKS_IN_THREADS = textwrap.dedent(
    """
    import resource, threading
    import numpy as np
    from nqpf_sens.uncertainty.memory import retain_freed_memory

    both = threading.Barrier(2)

    def chunks():
        for _ in range(10):
            arrays = [np.ones(2**21) for _ in range(5)]
            both.wait()
            assert sum(a[-1] for a in arrays) == 5

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    if retain_freed_memory():
        for _ in range(2):
            before = faults()
            threads = [threading.Thread(target=chunks) for _ in range(2)]
            [thread.start() for thread in threads]
            [thread.join() for thread in threads]
        print(faults() - before)
    """
)


def python(code: str, env: dict[str, str] | None = None) -> str:
    """What ``code`` prints, run in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout


def test_worker_threads_reuse_freed_memory():
    """Without one arena for all threads each worker's 64 MiB heaps were unmapped as they emptied
    and faulted in again: 15,600-23,900 faults of 4 KiB for the second pair of threads (which
    touch 409,600 pages), against 2-1,559 with it; fewer than one array's pages (4,096) pass."""
    faults = python(CHUNKS_IN_THREADS)
    if not faults:
        pytest.skip("no glibc mallopt")
    assert int(faults) < 4096


@pytest.mark.parametrize("entry", ["run", "run_config"])
def test_a_run_keeps_one_arena_for_all_its_threads(tmp_path, entry):
    """The setting must come before any thread allocates, the audit's threads included (an arena
    once made is taken again by later threads): a run of the API made three arenas when only its
    study asked, six before."""
    config = tmp_path / "weights.toml"
    config.write_text(
        '[run]\nname = "weights"\nkind = "montecarlo"\njobs = 2\n[sampling]\nn = 4096\n'
        '[outputs]\nfigures = false\n[[factors]]\nname = "w"\nkind = "weights"\nlevel = 0\n'
    )
    arguments = f"'{config}'" + (
        f", out='{tmp_path / 'out'}', quiet=True" if entry != "run" else ""
    )
    arenas = python(f"{ARENAS}\nimport nqpf_sens\nnqpf_sens.{entry}({arguments})\nprint(arenas())")
    if int(arenas) == 0:
        pytest.skip("no glibc malloc_info")
    assert int(arenas) == 1


@pytest.mark.parametrize("told, advised", [(None, "False"), ("1", "True")])
def test_numpy_asks_for_huge_pages_only_when_told(told, advised):
    """numpy's advice to back large arrays with huge pages made a run's first chunks fault slowly
    (a huge page not used before took ~18 ms of system time on the machine measured); a run turns
    it off, unless ``NUMPY_MADVISE_HUGEPAGE`` asks for it."""
    multiarray = pytest.importorskip("numpy._core.multiarray")
    if not hasattr(multiarray, "_set_madvise_hugepage"):
        pytest.skip("no huge-page advice in this numpy")
    environment = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if told is not None:
        environment["NUMPY_MADVISE_HUGEPAGE"] = told
    code = (
        "from numpy._core import multiarray\n"
        "from nqpf_sens.uncertainty.memory import retain_freed_memory\n"
        "multiarray._set_madvise_hugepage(True)  # numpy's choice on a Linux of 4.6 or later\n"
        "retain_freed_memory()\n"
        "print(multiarray._set_madvise_hugepage(False))"
    )
    assert python(code, env=environment).strip() == advised
