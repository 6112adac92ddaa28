"""Parse access-log lines into columns, in bulk: one regex pass over a whole batch.

A LogFormat string (or a nickname such as ``combined``) is compiled once into a bytes
regex. For the directives known here the regex is tuned (``\\S+``, ``[^"]*``); a format with
other directives falls back to the regex apache-log-parser builds. Every line yields one
row: lines that do not match are kept, counted as unparsed, and given the time of the line
before them (or after, or the arrival time) so they still sort and are still found by grep.
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from logmr.errors import ConfigError
from logmr.timeutil import CLF_SEARCH, ClfClock

COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
NICKNAMES = {  # Apache's own (its default httpd.conf), then nginx's
    "common": '%h %l %u %t "%r" %>s %b',
    "combined": COMBINED,
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    "combinedio": COMBINED + " %I %O",
    "referer": "%{Referer}i -> %U",
    "agent": "%{User-agent}i",
    "nginx_combined": COMBINED,  # nginx's predefined "combined" is Apache's
    "nginx_main": COMBINED + ' "%{X-Forwarded-For}i"',  # the official image's "main"
}
AUTO = "auto"  # not a format: find it from the lines (logmr.mapfn.detect)
# what may follow a format's last field in a line: nothing, or fields it does not name
_TAIL = rb"(?:[ \t][^\n]*)?"

_NUM = rb"(\d+|-)"
_WORD = rb"(\S+)"
# [^"] is much faster in Python's re than [^"\n], but can run across a newline, so that a
# cut-off line swallows the next one: when a batch yields fewer rows than it has lines, it
# is parsed again with the newline-safe patterns.
_QUOTED_FAST = rb'([^"]*)'
_QUOTED_SAFE = rb'([^"\n]*)'
_QUOTED_CAREFUL = rb'((?:[^"\\\n]|\\.)*)'
# Directive letter -> (column name, sub-pattern). None pattern = the request line.
_SIMPLE: dict[str, tuple[str, bytes | None]] = {
    "h": ("host", _WORD), "a": ("client_ip", _WORD), "l": ("logname", _WORD),
    "u": ("user", _WORD), "t": ("time", rb"\[([^\]]+)\]"), "r": ("request", None),
    "s": ("status", rb"(\d{3}|-)"), "b": ("bytes", _NUM), "O": ("bytes_out", _NUM),
    "B": ("bytes", _NUM), "I": ("bytes_in", _NUM), "S": ("bytes_total", _NUM),
    "D": ("duration_us", _NUM), "T": ("duration_s", rb"(\d+(?:\.\d+)?|-)"), "p": ("port", _NUM),
    "P": ("pid", _NUM), "k": ("keepalive", _NUM), "v": ("vhost", rb"([^\s:]+)"),
    "V": ("vhost", rb"([^\s:]+)"), "U": ("path", _WORD), "q": ("query", rb"(\S*)"),
    "m": ("method", _WORD), "H": ("protocol", _WORD), "L": ("log_id", _WORD),
}
_HEADER_NAMES = {"referer": "referer", "user-agent": "user_agent",
                 "x-forwarded-for": "forwarded_for", "host": "vhost"}  # Host: the vhost
_DIRECTIVE = re.compile(r"%([<>]?)(?:!?\d+(?:,\d+)*)?(?:\{([^}]*)\})?([<>]?)([a-zA-Z%])")
INT_COLUMNS = ("status", "bytes", "bytes_in", "bytes_out", "bytes_total", "port")
# %T's units (%{ms}T...), each a column until read as microseconds into duration_us; %T
# also takes a fraction (nginx's $request_time, 0.123, logged where Apache logs %T)
_DURATIONS = {"us": ("duration_us", 1), "ms": ("duration_ms", 1000),
              "s": ("duration_s", 1_000_000)}
NO_DURATION = -1  # duration_us of a line that logs "-", or whose format has none


def empty_value(column: str) -> bytes | int:
    """What a column holds for a line whose format lacks it."""
    return NO_DURATION if column == "duration_us" else 0 if column in INT_COLUMNS else b""


@dataclass(frozen=True)
class Compiled:
    """A LogFormat compiled for bulk matching."""

    fmt: str
    names: tuple[str, ...]  # column name of each capture group, in order
    fast: re.Pattern[bytes]  # whole-batch regex with a fallback group per line
    safe: re.Pattern[bytes]  # the same, never matching across a newline (slower)
    careful: re.Pattern[bytes] | None  # per-line retry: \" escapes, a cut-off last field


@dataclass
class Parsed:
    """Columns of one batch: one entry per line in every list."""

    ts: list[int]
    columns: dict[str, list[bytes] | list[int]] = field(default_factory=dict)
    parsed: list[bool] = field(default_factory=list)

    @property
    def unparsed(self) -> int:
        """How many lines did not match the format."""
        return self.parsed.count(False)


def _tuned(fmt: str, quoted: bytes) -> tuple[bytes, list[str]] | None:
    """Regex source and column names for ``fmt``; None if a directive is unknown here."""
    out: list[bytes] = []
    names: list[str] = []
    pos = 0
    for m in _DIRECTIVE.finditer(fmt):
        out.append(re.escape(fmt[pos:m.start()].encode()))
        pos = m.end()
        arg, letter = m.group(2), m.group(4)
        in_quotes = m.start() > 0 and fmt[m.start() - 1] == '"'
        if letter == "%":
            out.append(b"%")
        elif letter in "ioenCx" and arg is not None:
            key = arg.lower()
            names.append(_HEADER_NAMES.get(key, f"{letter}:{key}") if letter == "i"
                         else f"{letter}:{key}")
            out.append(quoted if in_quotes else _WORD)
        elif letter == "r":
            # method, URL, protocol; the whole request only when it is not of that shape
            names += ["method", "url", "protocol", "request"]
            out.append(rb"(?:(\S+) (\S+) (HTTP/[\d.]+)|" + quoted + rb")")
        elif letter == "T" and arg in _DURATIONS:
            names.append(_DURATIONS[arg][0])
            out.append(_SIMPLE["T"][1] or b"")
        elif letter in _SIMPLE and arg is None:
            name, pattern = _SIMPLE[letter]
            if letter == "t" and quoted != _QUOTED_FAST:
                pattern = rb"\[([^\]\n]+)\]"
            names.append(name)
            out.append(quoted if in_quotes and letter not in "st" else pattern or b"")
        else:
            return None
    out.append(re.escape(fmt[pos:].encode()))
    return b"".join(out), names


@lru_cache(maxsize=32)
def compile_format(fmt: str) -> Compiled:
    """Compile a LogFormat string or nickname; raises ConfigError when it cannot be used."""
    text = NICKNAMES.get(fmt, fmt)
    if "%" not in text:
        raise ConfigError(
            f"unknown log format {fmt!r}: use {AUTO} (the default: found from the lines), "
            f"one of {', '.join(NICKNAMES)}, or an Apache LogFormat string such as "
            "'%h %l %u %t \"%r\" %>s %b'")
    tuned = _tuned(text, _QUOTED_FAST)
    if tuned is not None:
        source, names = tuned
        safe_source = _tuned(text, _QUOTED_SAFE)[0]  # type: ignore[index]
        careful_source = _tuned(text, _QUOTED_CAREFUL)[0]  # type: ignore[index]
        if careful_source.endswith(b'"'):
            # a line cut off inside its last quoted field (the user agent, in combined)
            # still parses, with the field as far as it goes, as GoAccess reads it
            careful_source += b"?"
        careful = re.compile(careful_source + _TAIL + rb"\r?")
    else:
        source, names = _from_apache_log_parser(text)
        safe_source, careful = source, None  # its .*? never crosses a newline
    if not names:
        raise ConfigError(f"log format {fmt!r} has no fields logmr can read")
    try:
        # a line matches when the format's fields match from its start, up to a space, a
        # tab or its end: what follows (fields the format does not name, a CRLF's \r) is
        # ignored, and the line is still stored byte for byte. Not matched to its end:
        # findall's next match starts at the next line (as fast as a strict format)
        fast, safe = (re.compile(rb"^(?:" + s + rb"(?![^ \t\r\n])|(.*)$)", re.M)
                      for s in (source, safe_source))
    except re.error as exc:
        raise ConfigError(f"log format {fmt!r} does not compile: {exc}") from None
    return Compiled(text, tuple(names), fast, safe, careful)


def check_format(fmt: str) -> str:
    """``fmt`` if it can be used (a format, or auto); raises ConfigError otherwise."""
    if fmt != AUTO:
        compile_format(fmt)
    return fmt


def _from_apache_log_parser(fmt: str) -> tuple[bytes, list[str]]:
    """The regex apache-log-parser builds for ``fmt``, with every group named."""
    import apache_log_parser

    try:
        regex = apache_log_parser.Parser(fmt).log_line_regex
    except Exception as exc:  # the library raises its own types and plain ones
        raise ConfigError(f"cannot use log format {fmt!r}: {exc}") from None
    by_index = {index: name for name, index in regex.groupindex.items()}
    names = [by_index.get(i, f"_g{i}") for i in range(1, regex.groups + 1)]
    rename = {"remote_host": "host", "time_received": "time", "request_first_line": "request",
              "response_bytes_clf": "bytes", "bytes_tx": "bytes",
              "request_header_referer": "referer", "request_header_user_agent": "user_agent"}
    return regex.pattern.encode(), [rename.get(n, n) for n in names]


INT64_MAX = (1 << 63) - 1


def _durations(columns: dict[str, Any]) -> None:
    """Read a line's time taken, in whichever unit it was logged, into ``duration_us``
    (microseconds; :data:`NO_DURATION` for "-" and what is not a number). A format that
    logs it twice (%D and %T) is read from the finest."""
    found = [(name, factor) for name, factor in _DURATIONS.values() if name in columns]
    if not found:
        return
    (name, factor), *coarser = found
    values: list[bytes] = columns.pop(name)
    for other, _ in coarser:
        del columns[other]
    memo: dict[bytes, int] = {}
    out = []
    for v in values:
        us = memo.get(v)
        if us is None:
            try:
                us = round(float(v) * factor) if v != b"-" else NO_DURATION
            except ValueError:
                us = NO_DURATION
            us = us if 0 <= us <= INT64_MAX else NO_DURATION
            if len(memo) < 65536:
                memo[v] = us
        out.append(us)
    columns["duration_us"] = out


def _to_int(values: list[bytes]) -> list[int]:
    """Numbers of a numeric column; ``-``, anything else not a number, and numbers past
    int64 (which no column could hold) count as 0."""
    distinct = set(values)
    if values and len(distinct) * 4 <= len(values):  # a status: few values, each read once
        keys = list(distinct)
        table = dict(zip(keys, _to_int(keys), strict=True))
        return list(map(table.__getitem__, values))
    if b"-" in distinct:  # Apache's "no bytes"
        values = [b"0" if v == b"-" else v for v in values]
    try:
        out = list(map(int, values))
    except ValueError:
        out = [int(v) if v.isdigit() else 0 for v in values]
    if out and (max(out) > INT64_MAX or min(out) < -INT64_MAX):
        out = [v if -INT64_MAX <= v <= INT64_MAX else 0 for v in out]
    return out


def parse_batch(blob: bytes, fmt: str, clock: ClfClock | None = None,
                now: Callable[[], float] = time.time) -> Parsed:
    """Parse a batch: ``blob`` is lines each ending in a newline (the last may lack it)."""
    compiled = compile_format(fmt)
    clock = clock or ClfClock()
    if not blob:
        return Parsed(ts=[], columns={}, parsed=[])
    end = len(blob) - 1 if blob.endswith(b"\n") else len(blob)  # not a copy without it
    rows = compiled.fast.findall(blob, 0, end)
    if len(rows) != blob.count(b"\n", 0, end) + 1:
        rows = compiled.safe.findall(blob, 0, end)
    if not rows:
        return Parsed(ts=[], columns={}, parsed=[])
    width = len(rows[0])
    fallback, first = _column(rows, width - 1), _column(rows, 0)
    # An empty fallback group means the line matched the format (or the line is empty).
    if fallback.count(b"") == len(fallback) and all(first):
        parsed = [True] * len(rows)
    else:
        parsed = [not f and bool(h) for f, h in zip(fallback, first, strict=True)]
        _retry_unparsed(compiled, rows, parsed)
        first = _column(rows, 0)
    columns: dict[str, list[bytes] | list[int]] = {}
    for i, name in enumerate(compiled.names[:width]):
        if name not in columns and not name.startswith("_g"):
            # one column at a time (itemgetter in C): half the time of zip(*rows)
            columns[name] = first if i == 0 else _column(rows, i)
    stamps = _stamps(columns.get("time"), rows, parsed, clock)  # type: ignore[arg-type]
    _durations(columns)
    for name in INT_COLUMNS:
        if name in columns:
            columns[name] = _to_int(columns[name])  # type: ignore[arg-type]
    if "bytes" not in columns and "bytes_out" in columns:  # %O alone: the bandwidth there
        columns["bytes"] = columns["bytes_out"]
    return Parsed(ts=_fill_gaps(stamps, now), columns=columns, parsed=parsed)


_GETTERS = [operator.itemgetter(i) for i in range(64)]


def _column(rows: list[tuple[bytes, ...]], i: int) -> list[bytes]:
    """Field ``i`` of every row."""
    get = _GETTERS[i] if i < len(_GETTERS) else operator.itemgetter(i)
    return list(map(get, rows))


def _retry_unparsed(compiled: Compiled, rows: list[tuple[bytes, ...]], parsed: list[bool]) -> None:
    """Give lines that failed the fast regex a second chance with the careful one."""
    for i, ok in enumerate(parsed):
        if ok or not rows[i][-1] or compiled.careful is None:
            continue
        m = compiled.careful.fullmatch(rows[i][-1])
        if m is not None:
            rows[i] = (*m.groups(b""), b"")  # an optional field not there: empty
            parsed[i] = True


def _stamps(times: list[bytes] | None, rows: list[tuple[bytes, ...]], parsed: list[bool],
            clock: ClfClock) -> list[int | None]:
    """Epoch second of each line; None where the line holds no readable %t."""
    if times is None:
        stamps: list[int | None] = [None] * len(rows)
    else:
        new = set(times).difference(clock.memo)
        if clock.make_room(len(new)):  # the memo is not emptied while these go in
            for stamp in new:
                clock(stamp)
            stamps = list(map(clock.memo.get, times))
        else:
            stamps = list(map(clock, times))
    if all(parsed):  # every line matched the format: no time to look for in fallbacks
        return stamps
    for i, ok in enumerate(parsed):
        if not ok and stamps[i] is None and rows[i][-1]:
            m = CLF_SEARCH.search(rows[i][-1])
            stamps[i] = clock(m.group(1)) if m else None
    return stamps


def _fill_gaps(stamps: list[int | None], now: Callable[[], float]) -> list[int]:
    """Give lines without a time the time of the line before (or after, or now)."""
    if None not in stamps:
        return stamps  # type: ignore[return-value]
    known = next((s for s in stamps if s is not None), None)
    last = int(now()) if known is None else known
    out = []
    for s in stamps:
        if s is not None:
            last = s
        out.append(last)
    return out
