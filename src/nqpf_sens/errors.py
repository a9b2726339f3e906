"""User-facing errors: one line that names the file, the key or the cell, and what is wrong."""

from __future__ import annotations

import errno
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
        text = " ".join((f"{prefix}: {self.message}" if prefix else self.message).split())
        if len(text) <= MAX_LINE:
            printable = _printable(text)
            if len(printable) <= MAX_LINE:
                return printable
        # a backstop for text no quoting cut (a unit's name can be megabytes long): its start
        # names the file and the key, its end says what to do; whole escapes only
        start, first = _printable_part(text, LINE_END)
        end, last = _printable_part(text, LINE_END, from_end=True)
        left_out = len(text) - first - last
        return f"{start} ...({left_out:,} characters left out)... {end}"


#: characters of a user's text an error quotes: a cell or a value can be megabytes long
QUOTED_CHARACTERS = 40
MAX_LINE = 2000  # characters of an error line, whatever it quotes
LINE_END = 600  # characters kept at either end of a longer one


def quoted(value: object) -> str:
    """``value`` as Python writes it (text in quotes), a text longer than ``QUOTED_CHARACTERS``
    cut to its beginning and an ellipsis: a ten-million-character cell made a 10 MB error line."""
    if not isinstance(value, str) or len(value) <= QUOTED_CHARACTERS:
        return repr(value)
    return f"{value[:QUOTED_CHARACTERS]!r}... ({len(value):,} characters)"


def _printable(text: str) -> str:
    """``text`` with every character a terminal would not print escaped: a key, a file name or a
    cell can hold ESC, which recoloured the terminal as the error echoed it."""
    return "".join(_escaped(c) for c in text)


def _escaped(character: str) -> str:
    """A character as printed: itself, or Python's escape of its code point (``\\U`` and eight
    digits past ``\\uffff``, so that no escape reads as another followed by a digit)."""
    if character.isprintable():
        return character
    code = ord(character)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _printable_part(text: str, budget: int, from_end: bool = False) -> tuple[str, int]:
    """The longest start (or end) of ``text`` whose printed form fits ``budget`` characters
    (escapes whole), and how many characters of ``text`` it holds."""
    pieces: list[str] = []
    size = 0
    for character in reversed(text) if from_end else text:
        piece = _escaped(character)
        if size + len(piece) > budget:
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(reversed(pieces) if from_end else pieces), len(pieces)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: carries the line that tells the user what was kept."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


#: failures of the system that may pass by themselves (a busy or interrupted device, a timeout;
#: not an I/O error, which usually means a failing disk)
TRANSIENT_ERRORS = frozenset({errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT})


def system_problem(error: OSError, keeps_chunks: bool = False) -> str:
    """One line for a failure of the system while a run or ``report`` reads or writes (a run
    that ``keeps_chunks`` says that --resume can use them)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        kept = " (--resume keeps the finished chunks)" if keeps_chunks else ""
        full = "the disk is full" if error.errno == errno.ENOSPC else "the disk quota is used up"
        return f"{full}: free space and run again{kept}"
    if error.errno == errno.EFBIG:
        kept = "; --resume keeps the finished chunks" if keeps_chunks else ""
        return f"the file-size limit (ulimit -f) was reached writing it: raise the limit{kept}"
    if error.errno == errno.ENOENT:
        return "disappeared while it was being written (was a folder deleted?); run again"
    # "run again" only where that may help (not after "Permission denied", say)
    again = "; run again" if error.errno in TRANSIENT_ERRORS else ""
    return f"{error.strerror or error}{again}"
