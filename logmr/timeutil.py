"""Time: Apache's %t, the user's --since/--until, and the hour partitions of storage."""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime

from logmr.errors import ConfigError

_MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
     b"Dec"), start=1)}
_CLF = re.compile(
    rb"(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?: ([+-])(\d{2})(\d{2}))?")
# Finds a %t stamp anywhere in a line that did not parse as a whole.
CLF_SEARCH = re.compile(rb"\[(\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?)\]")
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ClfClock:
    """Converts Apache %t stamps (``17/May/2015:10:05:03 +0000``) to epoch seconds.

    Stamps repeat (many requests share a second), so results are memoised; the memo is
    bounded so a long-running node does not grow without limit.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.memo: dict[bytes, int | None] = {}
        self._max = max_entries
        self._minutes: dict[bytes, int | None] = {}

    def make_room(self, n: int) -> bool:
        """Empty the memo now if ``n`` more stamps would overflow it, so that none of the
        next ``n`` calls empties it; False when ``n`` stamps cannot fit at all."""
        if len(self.memo) + n > self._max:
            self.memo.clear()
            self._minutes.clear()
        return n <= self._max

    def __call__(self, stamp: bytes) -> int | None:
        """Epoch seconds for one stamp, or None when it is not a valid %t."""
        got = self.memo.get(stamp, -1)
        if got != -1:
            return got
        value = self._fast(stamp) if len(stamp) == 26 else parse_clf(stamp.strip(b"[]"))
        self.make_room(1)
        self.memo[stamp] = value
        return value

    def _fast(self, stamp: bytes) -> int | None:
        """``dd/Mon/yyyy:HH:MM:SS +zzzz``: the minute (with its zone) is memoised, the
        seconds added; anything else of that length goes to :func:`parse_clf`."""
        key = stamp[:17] + stamp[20:]
        base = self._minutes.get(key, -1)
        if base == -1:
            base = self._minutes[key] = parse_clf(stamp[:17] + b":00" + stamp[20:])
        ss = stamp[18:20]
        if base is None or stamp[17:18] != b":" or not ss.isdigit() or ss > b"59":
            return parse_clf(stamp)
        return base + int(ss)


def parse_clf(stamp: bytes) -> int | None:
    """Epoch seconds for an Apache %t stamp without brackets; None if it is not one."""
    m = _CLF.fullmatch(stamp.strip())
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    month = _MONTHS.get(mon.capitalize())
    if month is None:
        return None
    try:
        epoch = calendar.timegm((int(year), month, int(day), int(hh), int(mm), int(ss)))
        datetime(int(year), month, int(day), int(hh), int(mm), int(ss))  # range check
    except (ValueError, OverflowError):
        return None
    if sign:
        offset = int(oh) * 3600 + int(om) * 60
        epoch -= offset if sign == b"+" else -offset
    return epoch


def parse_when(text: str, now: float | None = None) -> int:
    """Parse a --since/--until value: ``90s``, ``30m``, ``1h``, ``2d``, ``1w`` (that long
    before now), or an ISO-8601 date or time (local time unless it names a zone).

    >>> parse_when("1h", now=7200.0)
    3600
    >>> parse_when("2015-05-17T10:05:03+00:00")
    1431857103
    """
    now = time.time() if now is None else now
    m = _RELATIVE.match(text)
    if m:
        return int(now - float(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"cannot read time {text!r}: use a span like 30m, 1h, 2d or an ISO-8601 time "
            "like 2015-05-17T10:05:00+00:00") from None
    if when.tzinfo is None:
        when = when.astimezone()  # the user's local zone
    return int(when.timestamp())


def parse_span(text: str) -> int:
    """A length of time: ``90s``, ``30m``, ``1h``, ``2d``, ``1w``, or plain seconds.

    >>> parse_span("30m"), parse_span("45")
    (1800, 45)
    """
    m = _RELATIVE.match(text)
    if m:
        seconds = int(float(m.group(1)) * _UNITS[m.group(2)])
    elif text.strip().isdigit():
        seconds = int(text)
    else:
        raise ConfigError(f"cannot read span {text!r}: use 90s, 30m, 1h or 2d")
    if seconds <= 0:
        raise ConfigError(f"span {text!r} must be longer than zero")
    return seconds


def format_epoch(epoch: int) -> str:
    """ISO-8601 in UTC, for output meant for people and JSON."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_span(t: int, since: int | None, until: int | None) -> bool:
    """True when ``t`` lies in [since, until) (an open end where None): what every
    --since/--until keeps."""
    return (since is None or t >= since) and (until is None or t < until)


def overlaps(t0: int, t1: int, since: int | None, until: int | None) -> bool:
    """True when some of [t0, t1] (a record's first and last time) may lie in
    [since, until): exact unless the span is empty. A record it keeps still has its lines
    filtered one by one with :func:`in_span`."""
    return (since is None or t1 >= since) and (until is None or t0 < until)


def hour_of(epoch: int) -> int:
    """The start of the UTC hour holding ``epoch`` (the storage partition key)."""
    return epoch - epoch % 3600
