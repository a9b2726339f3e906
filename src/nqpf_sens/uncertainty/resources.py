"""What a run will need, checked against the machine before anything runs.

The estimate counts the arrays that grow with the configuration: the Sobol outputs kept (rows A and
B of a Saltelli design and every row's rank shift; the design is computed and its outputs summed
chunk by chunk), the kept scores, each worker's batch (per-scenario arrays), the chunks in flight
(histograms: units x ranks per year, rank correlations on a fine grid; the rows they keep), a forked
worker's copies of the run's pages, the bootstrap of the Sobol estimator, and the chunk files
written for ``--resume``. A run whose estimate exceeds ``BUDGET`` of the available memory or of the
free disk is refused in one line that names the largest item and the key that lowers it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from nqpf_sens.errors import UserError
from nqpf_sens.uncertainty.sobol import SAMPLES_BLOCK, TERMS_BLOCK
from nqpf_sens.uncertainty.statistics import band_threads
from nqpf_sens.uncertainty.study import (
    AGREEMENT_BINS,
    CHUNK_MEMORY,
    Chunking,
    chunk_row_bytes,
)

BUDGET = 0.8  # share of the available memory or free disk a run may plan to use
HISTOGRAMS = "the rank histograms"
MAX_ROWS = 2**36  # scenarios: about a day at a million per second
REPLICATE_COPIES = 6  # arrays of resamples x outputs x factors the Sobol analysis holds at once
BAND_COPIES = 3  # float64 copies of one aggregate's kept scores its score bands hold at once
#: pages of the run's process a forked worker comes to copy as it writes to them (reference counts
#: touch the interpreter's objects): 65 MiB per worker measured on the 20-factor study
FORKED_WORKER_BYTES = 96 * 2**20


def kept_values(years: int, units: int, aggregates: int, regions: int) -> int:
    """Numbers a scenario whose scores are kept holds: every aggregate's score of every unit
    and each region's mean, per year."""
    return years * (units * aggregates + regions)


@dataclass(frozen=True)
class RunSize:
    """The dimensions of a run that drive its memory and disk."""

    rows: int  # design rows (scenarios)
    columns: int  # design columns
    saltelli: bool
    base_n: int  # N of a Saltelli design
    bootstrap: int
    kept: int  # scenarios whose scores are kept
    years: int
    units: int
    aggregates: int
    regions: int
    tiers: int
    chunking: Chunking
    per_scenario: int  # bytes one scenario of a batch occupies
    jobs: int
    forked: bool = False  # workers are forked copies of the run's process

    @property
    def kept_values(self) -> int:
        """Numbers one kept scenario holds (see :func:`kept_values`)."""
        return kept_values(self.years, self.units, self.aggregates, self.regions)

    @property
    def cells(self) -> int:
        return self.years * self.units

    @property
    def row_bytes(self) -> int:
        """The most bytes one row of a chunk's statistics holds (see :func:`chunk_row_bytes`)."""
        return chunk_row_bytes(self.years, self.units, self.aggregates, self.regions)

    @property
    def histogram_bytes(self) -> int:
        """One chunk's counts: ranks, tiers, quadrants per unit-year, the rank-shift histogram and
        the two rank correlations' histograms per year."""
        shifts = self.cells * max(self.units - 1, 1) + 4
        return 8 * (
            self.cells * (self.units + self.tiers + 4) + shifts + self.years * 2 * AGREEMENT_BINS
        )

    @property
    def batch_rows(self) -> int:
        """The most scenarios a worker evaluates at once (see :func:`planned_batch_rows`)."""
        return min(self.chunking.longest, max(1, CHUNK_MEMORY // self.per_scenario))

    @property
    def chunks(self) -> int:
        return self.chunking.count

    def memory(self) -> dict[str, tuple[int, str]]:
        """Bytes of each large item and the key that lowers it."""
        outputs = 2 * self.units + 1
        items = {
            "the chunks in flight": (  # each worker's batch; its chunk's rows
                self.jobs * self.batch_rows * (self.per_scenario + 8 * self.columns)
                + (self.jobs + 2) * self.chunking.holding_rows * self.row_bytes,
                "[run] chunk_size",
            ),
            # a chunk's counts, whatever its rows: units x ranks per unit-year, a worker's and
            # two more (the merge's and one finished, waiting for it)
            HISTOGRAMS: ((self.jobs + 2) * self.histogram_bytes, "[run] jobs"),
            "the kept scores": (  # their ranks and R_S; the score bands of an aggregate a thread
                8
                * self.kept
                * (
                    self.kept_values
                    + self.units
                    + 1
                    + band_threads(self.jobs, self.aggregates) * BAND_COPIES * self.cells
                ),
                "[sampling] n",
            ),
        }
        if self.forked:
            items["the forked workers' own pages"] = (
                self.jobs * FORKED_WORKER_BYTES,
                "[run] jobs",
            )
        if self.saltelli:  # the analysis keeps rows A and B and every row's rank shift
            factors = self.rows // self.base_n - 2
            kept_rows = 2 * self.base_n * (self.units + 1) + self.rows  # ranks and R_S
            items["the Sobol outputs kept"] = (kept_rows * 8, "[sampling] n")
            sums = (self.bootstrap + 1) * (3 * factors + 4) * outputs
            sums += min(SAMPLES_BLOCK * (factors + 2), self.rows) * outputs  # a pending block
            draws = self.bootstrap * self.base_n  # the resamples (32-bit draws, small counts)
            replicates = REPLICATE_COPIES * self.bootstrap * (outputs + 1) * factors
            items["the bootstrap"] = (
                8 * (sums + draws + TERMS_BLOCK + replicates),
                "[sampling] bootstrap",
            )
        return items

    def disk(self) -> int:
        """Bytes of the chunk files a run keeps for ``--resume``."""
        rows = self.rows * (2 * self.units + 1) * 8 if self.saltelli else 0
        kept = self.kept * self.kept_values * 4
        return self.chunks * (self.histogram_bytes + 1024) + rows + kept


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def free_disk(folder: Path) -> int:
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:,.0f} {unit}" if unit == "B" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def fits_in_memory(size: RunSize, memory: int | None = None) -> bool:
    """Whether the run's memory stays within the budget of ``memory`` (default: what is
    available)."""
    needed = sum(b for b, _ in size.memory().values())
    return needed <= BUDGET * (available_memory() if memory is None else memory)


def check_step_memory(needed: int, what: str, where: str, memory: int | None = None) -> None:
    """Refuse a step whose largest arrays (``needed`` bytes, estimated from its dimensions)
    cannot fit this machine's memory: ``what`` names the step, ``where`` the key that drops it."""
    memory = available_memory() if memory is None else memory
    if needed > BUDGET * memory:
        raise UserError(
            f"{what} needs about {_size(needed)} of memory but {_size(memory)} are available: "
            "set it to false",
            where=where,
        )


def check_resources(
    size: RunSize, work: Path | None, memory: int | None = None, disk: int | None = None
) -> None:
    """Refuse a run that cannot fit this machine's memory or the disk under ``work`` (where its
    chunk files go; None: the run keeps none)."""
    if size.rows > MAX_ROWS:
        raise UserError(
            f"{size.rows:,} scenarios is more than nqpf_sens runs ({MAX_ROWS:,}, about a day at a"
            " million per second): lower it",
            where="[sampling] n",
        )
    items = size.memory()
    needed = sum(b for b, _ in items.values())
    memory = available_memory() if memory is None else memory
    if not fits_in_memory(size, memory):
        name, (largest, key) = max(items.items(), key=lambda item: item[1][0])
        advice = {
            "[run] chunk_size": "lower it (or [run] jobs)",
            "[run] jobs": 'lower it, or set [run] backend = "threading" (one process)',
        }.get(key, "lower it")
        if name == HISTOGRAMS:  # units x ranks: no chunk size lowers them, fewer workers may
            square = f"they grow with the square of the units ({size.units:,} here)"
            alone = replace(size, jobs=1)
            if size.jobs > 1 and fits_in_memory(alone, memory):
                advice = f"{square}, and each worker holds a set: fewer workers fit"
            else:
                advice, key = f"{square}: use fewer units", "[data]"
        raise UserError(
            f"the run needs about {_size(needed)} of memory ({name}: {_size(largest)}) but"
            f" {_size(memory)} are available: {advice}",
            where=key,
        )
    if work is None:
        return
    needed_disk = size.disk()
    disk = free_disk(work) if disk is None else disk
    if needed_disk > BUDGET * disk:
        raise UserError(
            f"the run's chunk files (kept for --resume) need about {_size(needed_disk)} of disk, "
            f"more than the {BUDGET:.0%} of the {_size(disk)} free under {work.parent} that a run"
            " may plan to use: free space, or lower it",
            where="[sampling] n",
        )
