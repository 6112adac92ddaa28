"""A record's token filter: the distinct words of its lines, so that a grep for a rare
string (a client address, an id, a URL) reads only the records that may hold it.

A word is a run of bytes between two delimiters (space, tab, quotes, brackets, and the
punctuation that cuts URLs and times into parts; a dot is not one, so an IPv4 address is
one word). A record's filter is its distinct words, sorted, newline-joined and compressed:
a few kB for a record of thousands of lines.

The check is exact in one direction: a string without delimiters that some line holds lies
inside one word of that line, so it is a substring of the filter. A pattern is cut at its
delimiters into pieces; a record none of whose words holds one of the pieces cannot match,
and is skipped. A record that passes is searched as before, so a false pass costs time,
never a line.
"""

from __future__ import annotations

import re

import zstandard

from logmr.mapfn.grep import GrepQuery
from logmr.mapfn.pattern import required_literals

DELIMITERS = b' \t\r\n"[]();,/?&=:'
_TO_NEWLINE = bytes(10 if i in DELIMITERS else i for i in range(256))
_LEVEL = 6  # a filter is small: a slower level costs little and saves a fifth


def build(lines: bytes) -> bytes:
    """The compressed filter of ``lines``."""
    words = set(lines.translate(_TO_NEWLINE).split(b"\n"))
    words.discard(b"")
    return zstandard.ZstdCompressor(level=_LEVEL).compress(b"\n".join(sorted(words)))


def folds(rx: re.Pattern[bytes]) -> bool:
    """True when ``rx`` ignores case (``-i``, or ``(?i)`` in the pattern itself)."""
    return bool(rx.flags & re.IGNORECASE)


def pieces(query: GrepQuery, rx: re.Pattern[bytes]) -> tuple[bytes, ...] | None:
    """What a record's words must hold for a line of it to match ``query`` (lower case
    when it ignores case, see :func:`folds`); None when no record can be ruled out (an
    inverted query, a pattern with no plain string every match holds, or one whose case
    follows the locale)."""
    if query.invert or rx.flags & re.LOCALE:
        return None
    runs = [query.pattern] if query.fixed else required_literals(rx)
    if not runs:
        return None
    if folds(rx):
        runs = [r.lower() for r in runs]
    found = {p for r in runs for p in r.translate(_TO_NEWLINE).split(b"\n") if p}
    return tuple(sorted(found, key=lambda p: (-len(p), p))) or None  # longest first


def may_hold(joined: bytes, wanted: tuple[bytes, ...], ignore_case: bool = False) -> bool:
    """False when a record whose words are ``joined`` cannot hold a line with all of
    ``wanted`` (from :func:`pieces`)."""
    if ignore_case:
        joined = joined.lower()
    return all(p in joined for p in wanted)
