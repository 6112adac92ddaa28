"""Unit tests of logmr.mapfn.grep against a reference that splits lines and searches each."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.errors import ConfigError
from logmr.mapfn.grep import (
    GrepQuery,
    Row,
    count_lines,
    count_records,
    grep_hour,
    line_counter,
    matching_spans,
    selected_spans,
)

PATTERNS = [b"a", b"", b"^a", b"a$", b"b\nb", b"[^a]", rb"\s", b"a|b", b"(a)(b)?", b"a*",
            b"^$", b"ab", b" b", rb"a\nb", b"b$", b"(?i)A", b"(?i)(?m)^B", b"(?x) a b"]
# Patterns line_counter may count with (none can match a newline).
COUNTABLE = [p for p in PATTERNS if b"\n" not in p]

blobs = st.lists(st.sampled_from([b"a", b"b", b" ", b"\n"]), max_size=30).map(
    lambda parts: b"".join(parts) + b"\n")


def rx_of(pattern: bytes) -> re.Pattern[bytes]:
    """The regex grep uses for ``pattern``."""
    return GrepQuery(pattern).compile()


def reference(blob: bytes, rx: re.Pattern[bytes], invert: bool = False
              ) -> list[tuple[int, int, int]]:
    """(line index, start, end) of each selected line, the slow obvious way."""
    out = []
    start = 0
    for idx, line in enumerate(blob.split(b"\n")[:-1]):
        if (rx.search(line) is not None) != invert:
            out.append((idx, start, start + len(line)))
        start += len(line) + 1
    return out


# -- spans and counts -------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(blob=blobs, pattern=st.sampled_from(PATTERNS), invert=st.booleans())
def test_spans_match_reference(blob: bytes, pattern: bytes, invert: bool) -> None:
    rx = rx_of(pattern)
    expected = reference(blob, rx, invert)
    assert list(selected_spans(blob, rx, invert)) == expected
    if not invert:
        assert list(matching_spans(blob, rx)) == expected
    assert count_lines(blob, rx, invert) == len(expected)


@settings(max_examples=300, deadline=None)
@given(blob=blobs, pattern=st.sampled_from(COUNTABLE), invert=st.booleans())
def test_count_with_counter_matches_reference(blob: bytes, pattern: bytes,
                                              invert: bool) -> None:
    rx = rx_of(pattern)
    assert count_lines(blob, rx, invert) == len(reference(blob, rx, invert))


@pytest.mark.parametrize("pattern", [rb"[^a]", rb"\s", rb"a\nb", rb"(?s)a.b",
                                     rb"\x0a", rb"\D"])
def test_line_counter_refuses_patterns_that_cross_lines(pattern: bytes) -> None:
    assert line_counter(rx_of(pattern)) is None


@pytest.mark.parametrize("pattern", [b"a", b"^a", b"a$", b"a|b", b"a*", b"",
                                     rb"\S", rb"[0-9]+", rb"\w+ \d"])
def test_line_counter_for_line_safe_patterns(pattern: bytes) -> None:
    counter = line_counter(rx_of(pattern))
    assert counter is not None
    assert counter.flags & re.MULTILINE


@pytest.mark.parametrize("pattern", [b"b\nb", rb"a[\x00-\x7f]b"])
def test_count_with_counter_for_pattern_matching_a_newline(pattern: bytes) -> None:
    blob = b"a\nb\nb\n"
    rx = rx_of(pattern)
    assert count_lines(blob, rx) == len(reference(blob, rx)) == 0


def test_docstring_example() -> None:
    blob = b"ab\ncd\nab ab\n"
    assert list(matching_spans(blob, rx_of(b"ab"))) == [(0, 0, 2), (2, 6, 11)]
    assert list(selected_spans(blob, rx_of(b"ab"), invert=True)) == [(1, 3, 5)]


def test_match_across_newline_is_not_a_line_match() -> None:
    blob = b"xa\nbx\nab\n"
    assert list(matching_spans(blob, rx_of(rb"a\sb"))) == []
    assert list(matching_spans(blob, rx_of(rb"a\s*b"))) == [(2, 6, 8)]


def test_empty_blob() -> None:
    assert list(matching_spans(b"", rx_of(b""))) == []
    assert list(selected_spans(b"", rx_of(b"a"), invert=True)) == []
    assert count_lines(b"", rx_of(b"a"), invert=True) == 0


# -- GrepQuery ----------------------------------------------------------------------------------


def test_query_fixed_escapes_regex_syntax() -> None:
    rx = GrepQuery(b"a.b(", fixed=True).compile()
    assert rx.search(b"xa.b(y")
    assert not rx.search(b"axb(")


def test_query_ignore_case() -> None:
    assert GrepQuery(b"get", ignore_case=True).compile().search(b"GET /")
    assert not GrepQuery(b"get").compile().search(b"GET /")


def test_query_bad_regex_is_config_error() -> None:
    with pytest.raises(ConfigError, match="-F"):
        GrepQuery(b"a(").compile()


# -- grep_hour and count_records ---------------------------------------------------------------


@dataclass(frozen=True)
class FakeRecord:
    """A stored record as grep sees it."""

    batch_id: str
    host: str
    blob: bytes
    times: tuple[int, ...]

    @property
    def t0(self) -> int:
        return min(self.times)

    @property
    def t1(self) -> int:
        return max(self.times)

    def lines(self) -> bytes:
        return self.blob

    def ts(self) -> list[int]:
        return list(self.times)


def rec(batch_id: str, lines: list[bytes], times: list[int], host: str = "web1") -> FakeRecord:
    """A fake record of ``lines`` at ``times``."""
    assert len(lines) == len(times)
    return FakeRecord(batch_id, host, b"".join(ln + b"\n" for ln in lines), tuple(times))


def reference_rows(records: list[FakeRecord], rx: re.Pattern[bytes], invert: bool,
                   since: int | None, until: int | None) -> list[Row]:
    """Rows grep_hour should return, the slow obvious way."""
    rows: list[Row] = []
    for r in records:
        for idx, line in enumerate(r.blob.split(b"\n")[:-1]):
            t = r.times[idx]
            if ((rx.search(line) is not None) != invert and (since is None or t >= since)
                    and (until is None or t < until)):
                rows.append((t, r.batch_id, idx, r.host, line))
    return sorted(rows, key=lambda row: row[:3])


def test_grep_hour_sorted_by_time_batch_and_line() -> None:
    records = [
        rec("b2", [b"GET /a", b"GET /b", b"POST /c"], [10, 10, 5], host="web2"),
        rec("b1", [b"GET /d", b"GET /e"], [10, 12]),
    ]
    rows = grep_hour(records, rx_of(b"GET"), False, None, None)
    assert rows == [
        (10, "b1", 0, "web1", b"GET /d"),
        (10, "b2", 0, "web2", b"GET /a"),
        (10, "b2", 1, "web2", b"GET /b"),
        (12, "b1", 1, "web1", b"GET /e"),
    ]
    assert grep_hour(records, rx_of(b"GET"), True, None, None) == [
        (5, "b2", 2, "web2", b"POST /c")]
    assert count_hour(records, rx_of(b"GET"), False, None, None) == 4
    assert count_hour(records, rx_of(b"GET"), True, None, None) == 1


def test_grep_hour_since_until_cut_lines() -> None:
    records = [rec("b1", [b"x0", b"x1", b"x2", b"x3"], [100, 200, 300, 400])]
    rx = rx_of(b"x")
    assert [r[4] for r in grep_hour(records, rx, False, 200, 400)] == [b"x1", b"x2"]
    assert [r[4] for r in grep_hour(records, rx, False, 201, None)] == [b"x2", b"x3"]
    assert [r[4] for r in grep_hour(records, rx, False, None, 101)] == [b"x0"]
    assert grep_hour(records, rx, False, 500, None) == []
    assert count_hour(records, rx, False, 200, 400) == 2
    assert count_hour(records, rx, True, 200, 400) == 0
    assert count_hour(records, rx, False, 100, 401) == 4  # the whole record


def test_grep_hour_until_is_exclusive_for_whole_records() -> None:
    records = [rec("b1", [b"x0", b"x1"], [100, 200])]
    assert len(grep_hour(records, rx_of(b"x"), False, 100, 200)) == 1
    assert count_hour(records, rx_of(b"x"), False, 100, 200) == 1


times = st.integers(0, 20)


@st.composite
def fake_records(draw: st.DrawFn) -> list[FakeRecord]:
    out = []
    for n in range(draw(st.integers(0, 4))):
        lines = draw(st.lists(st.sampled_from([b"a", b"b", b"ab", b"", b" a", b"ba b"]),
                              min_size=1, max_size=6))
        ts = draw(st.lists(times, min_size=len(lines), max_size=len(lines)))
        out.append(rec(f"b{draw(st.integers(0, 3))}-{n}", lines, ts, host=f"h{n % 2}"))
    return out


@settings(max_examples=200, deadline=None)
@given(records=fake_records(), pattern=st.sampled_from(COUNTABLE + [b"[^a]", rb"\s"]),
       invert=st.booleans(), since=st.none() | times, until=st.none() | times)
def test_grep_and_count_hour_match_reference(records: list[FakeRecord], pattern: bytes,
                                             invert: bool, since: int | None,
                                             until: int | None) -> None:
    rx = rx_of(pattern)
    expected = reference_rows(records, rx, invert, since, until)
    assert grep_hour(records, rx, invert, since, until) == expected
    assert count_hour(records, rx, invert, since, until) == len(expected)


def count_hour(*args: object) -> int:
    """Lines matched in all the records (what a node sums for grep -c)."""
    return sum(n for _, n in count_records(*args))  # type: ignore[arg-type]
