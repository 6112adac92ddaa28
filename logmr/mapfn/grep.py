"""grep as a map function: find matching lines in a record's lines, without splitting them.

The pattern is searched over the whole newline-separated buffer at C speed; only matching
lines cost Python work. A match that runs across a newline is re-checked line by line, so a
line matches exactly when ``re.search`` would match it on its own.
"""

from __future__ import annotations

import bisect
import mmap
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, TypeVar

from logmr.errors import ConfigError
from logmr.mapfn.pattern import can_match_newline, literal_text
from logmr.timeutil import in_span


@dataclass(frozen=True)
class GrepQuery:
    """What to look for."""

    pattern: bytes
    fixed: bool = False
    ignore_case: bool = False
    invert: bool = False

    def compile(self) -> re.Pattern[bytes]:
        """The bytes regex for this query; ConfigError if it is not a valid regex."""
        source = re.escape(self.pattern) if self.fixed else self.pattern
        flags = re.MULTILINE | (re.IGNORECASE if self.ignore_case else 0)
        try:
            return re.compile(source, flags)
        except re.error as exc:
            raise ConfigError(f"invalid pattern {self.pattern.decode(errors='replace')!r}: "
                              f"{exc}; use -F to search for it as a fixed string") from None


def matching_spans(blob: bytes, rx: re.Pattern[bytes]) -> Iterator[tuple[int, int, int]]:
    """Yield (line index, start, end) of each line of ``blob`` that ``rx`` matches.

    ``blob`` is lines each ending in a newline; ``end`` excludes the newline.

    >>> list(matching_spans(b"ab\\ncd\\nab ab\\n", re.compile(b"ab")))
    [(0, 0, 2), (2, 6, 11)]
    """
    search, find, rfind, count = rx.search, blob.find, blob.rfind, blob.count
    size = len(blob)
    pos = 0
    idx = 0
    counted_to = 0
    while pos < size:
        m = search(blob, pos)
        if m is None:
            return
        start = rfind(b"\n", 0, m.start()) + 1 if m.start() > pos else pos
        if start >= size:
            return
        end = find(b"\n", start)
        end = size if end < 0 else end
        if m.end() > end and search(blob, start, end) is None:
            # The match ran over the newline; this line alone does not match.
            pos = end + 1
            continue
        idx += count(b"\n", counted_to, start)
        counted_to = start
        yield idx, start, end
        pos = end + 1


@lru_cache(maxsize=64)
def line_counter(rx: re.Pattern[bytes]) -> re.Pattern[bytes] | None:
    """For a pattern that cannot match a newline, a regex with one match per matching line
    (the pattern, then the rest of its line), so ``len(findall)`` counts lines in C (worked
    out once per pattern: every record of a query asks)."""
    if can_match_newline(rx):
        return None
    # flags set at the pattern's start, as (?i), are in rx.flags: inside the group they
    # would not be at the start, which re refuses
    body = _GLOBAL_FLAGS.sub(b"", rx.pattern)
    return re.compile(rb"(?:" + body + rb")[^\n]*\n", rx.flags)


_GLOBAL_FLAGS = re.compile(rb"^(?:\(\?[aiLmsux]+\))+")


def selected_spans(blob: bytes, rx: re.Pattern[bytes], invert: bool
                   ) -> Iterator[tuple[int, int, int]]:
    """Like :func:`matching_spans`, or the lines that do not match when ``invert``."""
    if not invert:
        yield from matching_spans(blob, rx)
        return
    hits = iter(matching_spans(blob, rx))
    skip = next(hits, None)
    start = 0
    for idx, line in enumerate(blob.split(b"\n")[:-1]):
        end = start + len(line)
        if skip is not None and skip[0] == idx:
            skip = next(hits, None)
        else:
            yield idx, start, end
        start = end + 1


Buffer = bytes | mmap.mmap  # lines, each ending in a newline (the very last may not)


def line_spans(buf: Buffer, rx: re.Pattern[bytes], start: int = 0, stop: int | None = None
               ) -> Iterator[tuple[int, int]]:
    r"""(start, end) of each line of ``buf`` that ``rx`` matches, ``end`` past its newline
    (or at the end of ``buf``), in order; only the lines of ``buf[start:stop]`` (both at
    line boundaries). The search runs over the whole stretch in C: a plain string with
    ``find``, a pattern that cannot match a newline with one regex that also takes the
    rest of the line; only matching lines cost Python work.

    >>> list(line_spans(b"ab\ncd\nab ab\nx", re.compile(b"ab")))
    [(0, 3), (6, 12)]
    >>> list(line_spans(b"ab\ncd\nxcd", re.compile(b"c.")))
    [(3, 6), (6, 9)]
    >>> list(line_spans(b"ab\ncd\nab ab\nx", re.compile(b"ab"), start=3))
    [(6, 12)]
    """
    stop = len(buf) if stop is None else stop
    body = _body_end(buf, start, stop)
    literal = literal_text(rx)
    if literal == b"":  # every line
        find, pos = buf.find, start
        while pos < stop:
            end = find(b"\n", pos, stop)
            end = stop if end < 0 else end + 1
            yield pos, end
            pos = end
        return
    if literal is not None:
        yield from _literal_spans(buf, literal, start, stop)
        return
    counter = line_counter(rx)
    if counter is None:  # the pattern may span lines: each candidate line checked alone
        part = bytes(buf[start:stop])
        for _, a, b in matching_spans(part if part.endswith(b"\n") or not part
                                      else part + b"\n", rx):
            yield start + a, min(start + b + 1, stop)
        return
    rfind = buf.rfind
    for m in counter.finditer(buf, start, body):
        yield rfind(b"\n", start, m.start()) + 1 or start, m.end()
    if body < stop and rx.search(buf, body, stop):  # a last line with no newline
        yield body, stop


def _body_end(buf: Buffer, start: int, stop: int) -> int:
    """Where the whole lines of ``buf[start:stop]`` end (before a last one with no
    newline)."""
    if stop <= start or buf[stop - 1:stop] == b"\n":
        return stop
    return max(start, buf.rfind(b"\n", start, stop) + 1)


def _literal_spans(buf: Buffer, literal: bytes, start: int, stop: int
                   ) -> Iterator[tuple[int, int]]:
    find, rfind, step = buf.find, buf.rfind, len(literal)
    pos = start
    while True:
        at = find(literal, pos, stop)
        if at < 0:
            return
        end = find(b"\n", at + step, stop)
        end = stop if end < 0 else end + 1
        yield rfind(b"\n", start, at) + 1 or start, end
        pos = end


def selected_line_spans(buf: Buffer, rx: re.Pattern[bytes], invert: bool, start: int = 0,
                        stop: int | None = None) -> Iterator[tuple[int, int]]:
    """:func:`line_spans`, or with ``invert`` the stretches of lines between them (runs of
    lines that do not match, each as one span)."""
    stop = len(buf) if stop is None else stop
    if not invert:
        yield from line_spans(buf, rx, start, stop)
        return
    pos = start
    for a, b in line_spans(buf, rx, start, stop):
        if a > pos:
            yield pos, a
        pos = b
    if pos < stop:
        yield pos, stop


def count_lines(buf: Buffer, rx: re.Pattern[bytes], invert: bool = False, start: int = 0,
                stop: int | None = None) -> int:
    """How many lines of ``buf[start:stop]`` match (or, inverted, do not)."""
    stop = len(buf) if stop is None else stop
    literal = literal_text(rx)
    if literal:
        hits = _count_literal(buf, literal, start, stop)
    elif literal is None and (counter := line_counter(rx)) is not None:
        body = _body_end(buf, start, stop)
        hits = len(counter.findall(buf, start, body)) + int(
            body < stop and rx.search(buf, body, stop) is not None)
    else:
        hits = sum(1 for _ in line_spans(buf, rx, start, stop))
    if not invert:
        return hits
    lines = newlines(buf, start, stop) + int(stop > start and buf[stop - 1:stop] != b"\n")
    return lines - hits


def _count_literal(buf: Buffer, literal: bytes, start: int, stop: int) -> int:
    """Lines of ``buf[start:stop]`` holding ``literal`` (no newline in it): find it, skip
    to the next line, again."""
    find, step, hits, pos = buf.find, len(literal), 0, start
    while (at := find(literal, pos, stop)) >= 0:
        hits += 1
        pos = find(b"\n", at + step, stop) + 1
        if pos == 0:
            break
    return hits


def newlines(buf: Buffer, start: int = 0, stop: int | None = None) -> int:
    """How many newlines ``buf[start:stop]`` holds (counted a slice at a time)."""
    stop = len(buf) if stop is None else stop
    if isinstance(buf, bytes) and start == 0 and stop == len(buf):
        return buf.count(b"\n")
    step = 16 << 20
    return sum(buf[i:min(i + step, stop)].count(b"\n") for i in range(start, stop, step))


class GrepRecord(Protocol):
    """What grep needs of a stored record."""

    @property
    def batch_id(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def t0(self) -> int: ...
    @property
    def t1(self) -> int: ...
    def lines(self) -> bytes: ...
    def ts(self) -> Sequence[int]: ...


Row = tuple[int, str, int, str, bytes]  # time, batch id, line index, source host, line


def grep_hour(records: Iterable[GrepRecord], rx: re.Pattern[bytes], invert: bool,
              since: int | None, until: int | None) -> list[Row]:
    """Matching rows of one hour's records, sorted by (time, batch id, line index): the
    order in which the reducer merges nodes."""
    rows: list[Row] = []
    for rec in records:
        blob = rec.lines()
        ts = rec.ts()
        whole = in_span(rec.t0, since, until) and in_span(rec.t1, since, until)
        bid, host = rec.batch_id, rec.host
        for idx, start, end in selected_spans(blob, rx, invert):
            t = ts[idx]
            if whole or in_span(t, since, until):
                rows.append((t, bid, idx, host, blob[start:end]))
    rows.sort()
    return rows


def due(held: list[Row], new: list[Row], before: int | None) -> tuple[list[Row], list[Row]]:
    """Merge sorted ``new`` rows into sorted ``held`` ones; returns the rows earlier than
    ``before`` (None: all of them), in order, and those still to hold."""
    rows = held + new if not held or not new or held[-1] <= new[0] else sorted(held + new)
    if before is None:
        return rows, []
    cut = bisect.bisect_left(rows, (before,))
    return rows[:cut], rows[cut:]


R = TypeVar("R", bound=GrepRecord)


def count_records(records: Iterable[R], rx: re.Pattern[bytes], invert: bool,
                  since: int | None, until: int | None) -> Iterator[tuple[R, int]]:
    """How many lines of each record match, reading times only where the range needs it."""
    for rec in records:
        if in_span(rec.t0, since, until) and in_span(rec.t1, since, until):
            yield rec, count_lines(rec.lines(), rx, invert)
        else:
            yield rec, len(grep_hour([rec], rx, invert, since, until))
