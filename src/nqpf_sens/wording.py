"""Small pieces of wording shared by the console and the report."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``1 scenario``, ``2 scenarios``, ``13,312 scenarios`` (nouns with a plain plural)."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def agreeing(count: int, singular: str, plural_form: str) -> str:
    """The words after a count that agree with it: '1 of 3 indicators has', '2 of 3 have'."""
    return singular if count == 1 else plural_form


def sentence_start(text: str) -> str:
    """``text`` with its first letter in capitals, the rest as written ('the paper's' ->
    "The paper's", where ``str.capitalize`` would lower every later letter)."""
    return text[:1].upper() + text[1:]


def telling_decimals(value: float, decimals: int, whole: float = 1.0) -> int:
    """``decimals``, or as many more (up to 6) as keep a value other than 0 from reading 0 and a
    value short of ``whole`` in size from reading ``whole``: a standard error of 0.0003 read 0.000,
    a share of 0.9996 read 1.000, the certainty they are there to deny."""
    while decimals < 6 and (
        (value != 0 and round(value, decimals) == 0)
        or (abs(value) < whole and abs(round(value, decimals)) == whole)
    ):
        decimals += 1
    return decimals


def fixed(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, more where :func:`telling_decimals` needs them (none
    where ``decimals`` is 0)."""
    return f"{value:,.{telling_decimals(value, decimals) if decimals else 0}f}"
