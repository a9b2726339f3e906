"""Keep freed memory in the process so that the next batch of scenarios reuses it.

Each batch allocates the same few arrays of several MiB. By default glibc serves such blocks with
``mmap`` and returns them to the system when freed, so every batch pays a page fault per 4 KiB page
it touches again; in a virtual machine that can cost more than evaluating the scenarios (measured
with ``experiments/bench.py``). Raising the mmap threshold to glibc's maximum (32 MiB) and the trim
threshold to 1 GiB keeps those blocks on the heap, reused batch after batch; the peak resident
memory is unchanged. That heap is the main thread's: every other thread gets an arena of its own,
made of 64 MiB heaps of which glibc unmaps every one that empties, whatever the trim threshold, so
two worker threads faulted a batch's pages in again and again (up to 15,600 faults and 0.5 s of
system time in a warm study of 10^6 scenarios). One arena for every thread keeps them too: it must
be asked for before other threads allocate (an arena once made is reused by later threads), so a
run asks first of all and a study before it starts its workers. Elsewhere than glibc this does
nothing.

numpy also advises the kernel to back each large array with 2 MiB pages. On the virtual machine
measured (transparent huge pages in "madvise" mode) a huge page the machine had not used before
cost about 18 ms of system time to fault in (no compaction counted: the host, it seems, backs
guest memory as it is first used), about 1 s in a run of 10^6 scenarios, against 0.1-0.2 s in
4 KiB pages. Unless ``NUMPY_MADVISE_HUGEPAGE`` says otherwise, that advice is turned off, for the
rest of the process, as the allocator's settings are; where huge pages come cheap this may cost
a little.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's mallopt options
MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum: blocks this large are still mapped on their own
#: (option, value): the mmap threshold at its maximum, the trim threshold, one arena
SETTINGS = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, 2**30), (M_ARENA_MAX, 1))


def retain_freed_memory() -> bool:
    """Ask the C allocator to keep freed blocks for reuse, and numpy not to ask for huge pages;
    True if the allocator agreed."""
    if not sys.platform.startswith("linux"):
        return False
    if "NUMPY_MADVISE_HUGEPAGE" not in os.environ:
        _hugepage_advice()(False)
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return all([bool(mallopt(option, value)) for option, value in SETTINGS])  # each one asked


def _hugepage_advice():
    """numpy's switch of its huge-page advice (``NUMPY_MADVISE_HUGEPAGE`` at import), or a stand-in
    that does nothing where numpy has none."""
    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            switch = getattr(importlib.import_module(name), "_set_madvise_hugepage", None)
        except ImportError:
            continue
        if switch is not None:
            return switch
    return lambda enabled: enabled
