"""User-facing errors: one line that names the file, the key or the cell, and what is wrong."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's config or data: the CLI prints it on one line, exit code 2."""

    def __init__(self, message: str, source: str | Path | None = None, where: str | None = None):
        self.source = None if source is None else str(source)
        self.where = where
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [p for p in (self.source, self.where) if p]
        prefix = ": ".join(parts)
        text = f"{prefix}: {self.message}" if prefix else self.message
        return " ".join(text.split())


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: carries the line that tells the user what was kept."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)
