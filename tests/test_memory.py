"""Freed memory stays in the process for the next chunk, whichever thread freed it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# two threads, each holding five arrays of 16 MiB at once (a chunk's arrays), ten times over;
# then the same with two new threads: how many pages the second pair faulted in
CHUNKS_IN_THREADS = textwrap.dedent(
    """
    import resource, threading
    import numpy as np
    from nqpf_sens.uncertainty.memory import retain_freed_memory

    assert retain_freed_memory()

    def chunks():
        for _ in range(10):
            arrays = [np.ones(2**21) for _ in range(5)]
            assert sum(a[-1] for a in arrays) == 5

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    for _ in range(2):
        before = faults()
        threads = [threading.Thread(target=chunks) for _ in range(2)]
        [thread.start() for thread in threads]
        [thread.join() for thread in threads]
    print(faults() - before)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_worker_threads_reuse_freed_memory():
    """Without one arena for all threads each worker's 64 MiB heaps were unmapped as they emptied
    and faulted in again: 15,600 faults of 4 KiB for the second pair of threads (which touch
    409,600 pages), against 2 or 521 with it; fewer than one array's pages (4,096) pass."""
    ran = subprocess.run(
        [sys.executable, "-c", CHUNKS_IN_THREADS], capture_output=True, text=True, check=True
    )
    assert int(ran.stdout) < 4096
