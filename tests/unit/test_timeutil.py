"""Unit tests of logmr.timeutil: Apache %t stamps, --since/--until values, hour partitions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.errors import ConfigError
from logmr.timeutil import ClfClock, format_epoch, hour_of, parse_clf, parse_when

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
STAMP = b"17/May/2015:10:05:03 +0000"
EPOCH = 1431857103  # 2015-05-17T10:05:03Z


def clf(when: datetime, sign: str, hours: int, minutes: int) -> bytes:
    """An Apache %t stamp (without brackets) for a naive wall-clock time and an offset."""
    return (f"{when.day:02d}/{MONTHS[when.month - 1]}/{when.year:04d}:"
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} "
            f"{sign}{hours:02d}{minutes:02d}").encode()


# -- parse_clf and ClfClock ---------------------------------------------------------------


@pytest.mark.parametrize(("stamp", "expected"), [
    (STAMP, EPOCH),
    (b"17/May/2015:10:05:03 +0100", EPOCH - 3600),
    (b"17/May/2015:10:05:03 -0530", EPOCH + 5 * 3600 + 30 * 60),
    (b"17/May/2015:10:05:03", EPOCH),  # no zone: UTC
    (b"7/May/2015:10:05:03 +0000", EPOCH - 10 * 86400),  # one-digit day
    (b"17/may/2015:10:05:03 +0000", EPOCH),  # month in any case
    (b"01/Jan/1970:00:00:00 +0000", 0),
    (b"29/Feb/2016:00:00:00 +0000", 1456704000),  # leap day
])
def test_parse_clf_valid(stamp: bytes, expected: int) -> None:
    assert parse_clf(stamp) == expected
    assert ClfClock()(stamp) == expected


@pytest.mark.parametrize("stamp", [
    b"32/May/2015:10:05:03 +0000",  # day
    b"00/May/2015:10:05:03 +0000",
    b"31/Apr/2015:10:05:03 +0000",
    b"29/Feb/2015:10:05:03 +0000",  # not a leap year
    b"17/Foo/2015:10:05:03 +0000",  # month
    b"17/May/2015:24:05:03 +0000",  # hour
    b"17/May/2015:10:60:03 +0000",  # minute
    b"17/May/2015:1a:05:03 +0000",
    b"17/May/15:10:05:03 +0000",
    b"17/May/2015:10:05:03 0000",
    b"",
    b"garbage",
])
def test_parse_clf_invalid_is_none(stamp: bytes) -> None:
    assert parse_clf(stamp) is None
    assert ClfClock()(stamp) is None


def test_clock_strips_brackets() -> None:
    assert ClfClock()(b"[" + STAMP + b"]") == EPOCH


def test_clock_memoises_and_stays_bounded() -> None:
    clock = ClfClock(max_entries=3)
    stamps = [clf(datetime(2015, 5, 17, 10, 0, s), "+", 0, 0) for s in range(5)]
    for s in stamps:
        assert clock(s) == parse_clf(s)
        assert len(clock.memo) <= 3
    assert clock.memo[stamps[-1]] == EPOCH - 5 * 60 - 3 + 4
    # an invalid stamp is memoised as None and stays None
    assert clock(b"garbage") is None
    assert clock(b"garbage") is None


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31)),
    sign=st.sampled_from(["+", "-"]),
    hours=st.integers(0, 14),
    minutes=st.sampled_from([0, 15, 30, 45, 59]),
)
def test_parse_clf_and_clock_match_strptime(when: datetime, sign: str, hours: int,
                                            minutes: int) -> None:
    stamp = clf(when.replace(microsecond=0), sign, hours, minutes)
    expected = int(datetime.strptime(stamp.decode(), "%d/%b/%Y:%H:%M:%S %z").timestamp())
    assert parse_clf(stamp) == expected
    clock = ClfClock()
    assert clock(stamp) == expected
    assert clock(stamp) == expected  # from the memo
    # a second stamp of the same day goes through the memoised day
    later = clf(when.replace(hour=23, minute=59, second=59, microsecond=0), sign, hours, minutes)
    assert clock(later) == parse_clf(later)


def test_clock_agrees_with_parse_clf_on_second_60() -> None:
    stamp = b"17/May/2015:10:05:60 +0000"
    assert ClfClock()(stamp) == parse_clf(stamp)


@pytest.mark.parametrize("stamp", [b"17/May/2015X10:05:03 +0000", b"17/May/2015 10:05:03 +0000"])
def test_clock_rejects_bad_date_clock_separator(stamp: bytes) -> None:
    assert parse_clf(stamp) is None
    assert ClfClock()(stamp) is None


# -- parse_when -----------------------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("text", "ago"), [
    ("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 2 * 86400), ("1w", 604800),
    ("1.5h", 5400), (" 30m ", 1800), ("0s", 0),
])
def test_parse_when_relative(text: str, ago: int) -> None:
    assert parse_when(text, now=NOW) == int(NOW) - ago


@pytest.mark.parametrize(("text", "expected"), [
    ("2015-05-17T10:05:03+00:00", EPOCH),
    ("2015-05-17T10:05:03Z", EPOCH),
    ("2015-05-17T11:05:03+01:00", EPOCH),
    ("2015-05-17T04:35:03-05:30", EPOCH),
])
def test_parse_when_iso_with_zone(text: str, expected: int) -> None:
    assert parse_when(text, now=NOW) == expected


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in a fixed local zone (UTC+3, no daylight saving)."""
    monkeypatch.setenv("TZ", "Etc/GMT-3")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone")
def test_parse_when_naive_iso_is_local_time() -> None:
    assert parse_when("2015-05-17T13:05:03", now=NOW) == EPOCH
    assert parse_when("2015-05-17", now=NOW) == int(
        datetime(2015, 5, 17, tzinfo=UTC).timestamp()) - 3 * 3600


@pytest.mark.parametrize("text", ["", "garbage", "1x", "-1h", "2015-13-01", "h1", "10 mins"])
def test_parse_when_garbage_is_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="cannot read time"):
        parse_when(text, now=NOW)


def test_parse_when_defaults_to_the_real_clock() -> None:
    before = int(time.time())
    got = parse_when("1h")
    assert before - 3600 <= got <= int(time.time()) - 3600 + 1


# -- hour_of, format_epoch --------------------------------------------------------------------


@pytest.mark.parametrize(("epoch", "hour"), [
    (0, 0), (3599, 0), (3600, 3600), (EPOCH, EPOCH - 5 * 60 - 3), (-1, -3600),
])
def test_hour_of(epoch: int, hour: int) -> None:
    assert hour_of(epoch) == hour


@given(st.integers(-(10**10), 10**10))
def test_hour_of_is_the_start_of_the_utc_hour(epoch: int) -> None:
    start = hour_of(epoch)
    assert start % 3600 == 0
    assert start <= epoch < start + 3600
    when = datetime.fromtimestamp(0, tz=UTC) + timedelta(seconds=epoch)
    assert start == int(when.replace(minute=0, second=0).timestamp())


def test_format_epoch() -> None:
    assert format_epoch(EPOCH) == "2015-05-17T10:05:03Z"


@given(t=st.integers(0, 100), since=st.none() | st.integers(0, 100),
       until=st.none() | st.integers(0, 100), t1=st.integers(0, 100))
def test_spans_as_every_filter_reads_them(t: int, since: int | None, until: int | None,
                                          t1: int) -> None:
    from logmr.timeutil import in_span, overlaps

    lo = float("-inf") if since is None else since
    hi = float("inf") if until is None else until
    assert in_span(t, since, until) == (lo <= t < hi)
    first, last = min(t, t1), max(t, t1)
    # some second of [first, last] lies in [since, until) (an empty span may still read
    # the record: its lines are filtered one by one after)
    if lo < hi:
        assert overlaps(first, last, since, until) == any(
            lo <= x < hi for x in range(first, last + 1))
