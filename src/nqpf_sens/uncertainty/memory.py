"""Keep freed memory in the process so that the next chunk reuses it.

Each chunk allocates the same few arrays of several MiB. By default glibc serves such blocks with
``mmap`` and returns them to the system when freed, so every chunk pays a page fault per 4 KiB page
it touches again; in a virtual machine that can cost more than evaluating the scenarios (measured
with ``experiments/bench.py``). Raising the mmap threshold to glibc's maximum (32 MiB) and the trim
threshold to 1 GiB keeps those blocks on the heap, reused chunk after chunk; the peak resident
memory is unchanged. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2**30


def retain_freed_memory() -> bool:
    """Ask the C allocator to keep freed blocks for reuse; True if it agreed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
