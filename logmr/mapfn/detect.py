"""Which log format a source writes, found from its lines (``--log-format auto``).

Every known format with a time (:data:`CANDIDATES`) is tried on a sample of the lines; the
one that parses the most wins, and among those within 1 % (or a line) of the best, the
richest (the one with the most fields: nginx ``main`` over ``combined`` over ``common``,
whose fields ``main`` also matches, since a format ignores what follows its last field). A
source is detected again when one of its batches parses under :data:`REDETECT_BELOW` with
the format found before (its server's configuration changed), and every
:data:`REDETECT_EVERY` batches, since a format that gained fields is still read by the old
one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from logmr.files import CHUNK, read_chunks
from logmr.mapfn.parse import AUTO, Parsed, compile_format, empty_value, parse_batch
from logmr.timeutil import ClfClock

# formats auto tries: those with a time (a format of one field, such as agent, would match
# any line at all); nginx's combined is Apache's
CANDIDATES = ("combined", "common", "vhost_combined", "combinedio", "nginx_main")
SAMPLE_LINES = 200  # lines tried with each format: ~10 ms for the five
NEAR = 0.01  # share of the sample within which a richer format beats one that parses more
REDETECT_BELOW = 0.9  # a batch parsing under this share with a source's format: detect again
REDETECT_EVERY = 64  # and every so many batches of a source: a richer format may read it now
DEFAULT = "combined"  # for a sample in which nothing parses


@dataclass(frozen=True)
class Detected:
    """The format found for a sample, and how well it reads it."""

    fmt: str
    lines: int  # in the sample
    parsed: int
    first_bad: bytes | None  # the first line of the sample it does not parse

    @property
    def share(self) -> float:
        """The share of the sample's lines that parse (1.0 for an empty sample)."""
        return self.parsed / self.lines if self.lines else 1.0


@lru_cache(maxsize=64)
def richness(fmt: str) -> int:
    """How many distinct fields a format reads."""
    return len({n for n in compile_format(fmt).names if not n.startswith("_g")})


def _sample(blob: bytes, lines: int) -> bytes:
    end = 0
    for _ in range(lines):
        end = blob.find(b"\n", end) + 1
        if end == 0:
            return blob
    return blob[:end]


def _first_bad(sample: bytes, parsed: Parsed) -> bytes | None:
    bad = next((i for i, ok in enumerate(parsed.parsed) if not ok), None)
    return None if bad is None else sample.split(b"\n")[bad]


def detect(blob: bytes, candidates: Iterable[str] = CANDIDATES,
           sample_lines: int = SAMPLE_LINES) -> Detected:
    """The format that reads the first ``sample_lines`` lines of ``blob`` best."""
    sample = _sample(blob, sample_lines)
    tried = [(fmt, parse_batch(sample, fmt, now=lambda: 0)) for fmt in candidates]
    lines = len(tried[0][1].parsed) if tried else 0
    counts = [(fmt, len(p.parsed) - p.unparsed, p) for fmt, p in tried]
    best = max((n for _, n, _ in counts), default=0)
    if best == 0:
        return Detected(DEFAULT, lines, 0, _first_bad(sample, tried[0][1]) if tried else None)
    # near the best: within 1 % of the sample or one line (a cut-off line that only a
    # poorer format reads must not decide), and reading some line
    slack = max(NEAR * lines, 1)
    near = [(richness(fmt), n, -i, fmt, p) for i, (fmt, n, p) in enumerate(counts)
            if n >= best - slack and n > 0]
    _, parsed, _, fmt, chosen = max(near)
    return Detected(fmt, lines, parsed, _first_bad(sample, chosen))


def parse_detected(blob: bytes, known: str | None, clock: ClfClock | None = None,
                   check: bool = False) -> tuple[Parsed, str]:
    """Parse ``blob`` with ``known`` (a source's format found before, if any), detecting
    the format again when that reads too little of it, or when ``check`` says to; the
    lines it still does not read go to :func:`with_second_format`. The columns and the
    format used."""
    if known is None:
        used = detect(blob).fmt
        parsed = parse_batch(blob, used, clock)
    else:
        used, parsed = known, parse_batch(blob, known, clock)
        lines = len(parsed.parsed)
        if lines and (check or parsed.unparsed > (1 - REDETECT_BELOW) * lines):
            found = detect(blob)
            share = 1 - parsed.unparsed / lines
            # another format, when it reads more (the source changed), or on a check as
            # much (detect prefers it: a richer one); else the bad lines are bad lines
            if found.fmt != known and (found.share > share or (
                    check and found.share >= share - NEAR)):
                used, parsed = found.fmt, parse_batch(blob, found.fmt, clock)
    return with_second_format(blob, parsed, used, clock), used


def with_second_format(blob: bytes, parsed: Parsed, fmt: str, clock: ClfClock | None = None
                       ) -> Parsed:
    """``parsed`` (``blob`` read with ``fmt``) with the lines it did not read read by the
    format that reads them, when they are more than a few (a batch that spans a change of
    the server's format); columns one format lacks are empty (0 for numbers)."""
    if parsed.unparsed < max(2, NEAR * len(parsed.parsed)):
        return parsed  # a few bad lines are bad lines (counted in C: most batches stop here)
    bad = [i for i, ok in enumerate(parsed.parsed) if not ok]
    lines = blob.split(b"\n")
    rest = b"\n".join(lines[i] for i in bad) + b"\n"
    found = detect(rest)
    if found.fmt == fmt or not found.parsed:
        return parsed
    other = parse_batch(rest, found.fmt, clock, now=lambda: parsed.ts[bad[0]])
    columns: dict[str, Any] = {}
    n = len(parsed.parsed)
    for name in dict.fromkeys([*parsed.columns, *other.columns]):
        empty: Any = empty_value(name)
        mine = parsed.columns.get(name)
        column = list(mine) if mine is not None else [empty] * n
        theirs = other.columns.get(name)
        for j, i in enumerate(bad):
            if other.parsed[j]:
                column[i] = theirs[j] if theirs is not None else empty
        columns[name] = column
    ok, ts = list(parsed.parsed), list(parsed.ts)
    for j, i in enumerate(bad):
        if other.parsed[j]:
            ok[i], ts[i] = True, other.ts[j]
    return Parsed(ts=ts, columns=columns, parsed=ok)


class FormatChooser:
    """The format of each source (a shipping host, a file), remembered between batches."""

    def __init__(self, bound: int = 4096, every: int = REDETECT_EVERY) -> None:
        self._known: OrderedDict[str, str] = OrderedDict()
        self._batches: dict[str, int] = {}
        self._bound = bound
        self._every = every
        self._lock = threading.Lock()

    def parse(self, blob: bytes, fmt: str, source: str, clock: ClfClock | None = None
              ) -> tuple[Parsed, str]:
        """``blob`` parsed with ``fmt``, or for ``auto`` with the source's format (found
        now if need be); the columns and the format used."""
        if fmt != AUTO:
            return parse_batch(blob, fmt, clock), fmt
        with self._lock:
            known = self._known.get(source)
            seen = self._batches[source] = self._batches.get(source, 0) + 1
        parsed, used = parse_detected(blob, known, clock, check=seen % self._every == 0)
        with self._lock:
            self._known[source] = used
            self._known.move_to_end(source)
            while len(self._known) > self._bound:
                gone, _ = self._known.popitem(last=False)
                self._batches.pop(gone, None)
        return parsed, used

    def known(self) -> dict[str, str]:
        """The format of every source seen."""
        with self._lock:
            return dict(self._known)


def chunks_with_formats(paths: Iterable[str], fmt: str, size: int = CHUNK
                        ) -> Iterator[tuple[bytes, str]]:
    """File mode's chunks (:func:`logmr.files.read_chunks`), each with the format to read
    it with: ``fmt``, or for ``auto`` the one detected from its file's first chunk."""
    for path in paths:
        found: str | None = None if fmt == AUTO else fmt
        for chunk in read_chunks([path], size):
            if found is None:
                found = detect(chunk).fmt
            yield chunk, found


def parse_chunk(chunk: tuple[bytes, str], fmt: str, clock: ClfClock | None = None
                ) -> Parsed:
    """A chunk of :func:`chunks_with_formats` parsed: with ``fmt``, or for ``auto`` with
    its file's format, detected again if that reads too little of the chunk."""
    blob, hint = chunk
    if fmt != AUTO:
        return parse_batch(blob, fmt, clock)
    return parse_detected(blob, hint, clock)[0]
