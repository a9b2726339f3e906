"""Small pieces of wording shared by the console and the report."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``1 scenario``, ``2 scenarios``, ``13,312 scenarios`` (nouns with a plain plural)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
