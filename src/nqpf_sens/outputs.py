"""Writing results: every run writes into a hidden staging folder that replaces the output folder only
when complete, so an interrupted or failed run never leaves anything that looks finished."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from nqpf_sens.errors import UserError


def check_writable(destination: Path) -> None:
    """Refuse, before anything runs, an output folder that could not be created (nothing is created here)."""
    ancestor = Path(destination).absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise UserError("cannot write the output directory here (not a writable folder)", ancestor)


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``final``; on success it becomes ``final``."""
    final = Path(final)
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise UserError(f"cannot write the output directory ({exc.strerror})", parent) from None
    try:
        yield staging
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def write_table(frame: pd.DataFrame, folder: Path, name: str) -> None:
    """CSV always; Parquet beside it when pyarrow is installed."""
    frame.to_csv(folder / f"{name}.csv", index=False, float_format="%.10g")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return
    frame.to_parquet(folder / f"{name}.parquet", index=False)


def write_json(payload: dict[str, Any], path: Path) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    os.replace(temporary, path)
