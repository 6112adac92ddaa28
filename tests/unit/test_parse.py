"""Unit tests of logmr.mapfn.parse: LogFormat compilation and bulk batch parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.errors import ConfigError
from logmr.mapfn.parse import _SIMPLE, NICKNAMES, compile_format, parse_batch
from logmr.timeutil import ClfClock

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
NOW = 1_000_000.0
T1 = 1432123517  # 20/May/2015:12:05:17 +0000
T2 = T1 + 60


def now() -> float:
    """A fixed arrival time."""
    return NOW


def combined(stamp: str = "20/May/2015:12:05:17 +0000", request: str = "GET /x HTTP/1.1",
             status: str = "200", size: str = "5", referer: str = "-", agent: str = "ua") -> bytes:
    """One Apache combined line, without its newline."""
    return (f'1.2.3.4 - - [{stamp}] "{request}" {status} {size} "{referer}" "{agent}"'
            ).encode()


L1 = combined()
L2 = combined(stamp="20/May/2015:12:06:17 +0000", request="POST /y HTTP/1.0")


# -- compile_format -------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "names"), [
    ("common", ("host", "logname", "user", "time", "method", "url", "protocol", "request",
                "status", "bytes")),
    ("combined", ("host", "logname", "user", "time", "method", "url", "protocol", "request",
                  "status", "bytes", "referer", "user_agent")),
    ("vhost_combined", ("vhost", "port", "host", "logname", "user", "time", "method",
                        "url", "protocol", "request", "status", "bytes_out", "referer",
                        "user_agent")),
    ('%h %l %u %t "%r" %>s %b %D "%{X-Forwarded-For}i"',
     ("host", "logname", "user", "time", "method", "url", "protocol", "request", "status",
      "bytes", "duration_us", "forwarded_for")),
])
def test_compile_format_names(fmt: str, names: tuple[str, ...]) -> None:
    compiled = compile_format(fmt)
    assert compiled.names == names
    assert compiled.fmt == NICKNAMES.get(fmt, fmt)
    assert compiled.careful is not None  # tuned formats get the escape-aware retry


def test_compile_format_is_cached() -> None:
    assert compile_format("combined") is compile_format("combined")


@pytest.mark.parametrize("fmt", ["", "nonsense", "combined2", "%h %{%d/%b/%Y:%H:%M:%S %z}t"])
def test_bad_format_is_config_error(fmt: str) -> None:
    with pytest.raises(ConfigError, match="log format"):
        compile_format(fmt)


@pytest.mark.parametrize("fmt", ["%Q", "%%"])
def test_format_without_columns_is_config_error(fmt: str) -> None:
    with pytest.raises(ConfigError):
        compile_format(fmt)
        parse_batch(b"x\n", fmt, now=now)


# -- parse_batch: columns ---------------------------------------------------------------------


def test_combined_columns() -> None:
    blob = L1 + b"\n" + combined(status="404", size="-", referer="http://r/", agent="Moz 5") + b"\n"
    p = parse_batch(blob, "combined", now=now)
    assert p.parsed == [True, True]
    assert p.unparsed == 0
    assert p.ts == [T1, T1]
    c = p.columns
    assert c["host"] == [b"1.2.3.4", b"1.2.3.4"]
    assert c["time"] == [b"20/May/2015:12:05:17 +0000"] * 2
    assert c["method"] == [b"GET", b"GET"]
    assert c["url"] == [b"/x", b"/x"]
    assert c["protocol"] == [b"HTTP/1.1", b"HTTP/1.1"]
    assert c["request"] == [b""] * 2  # kept only when not method, URL, protocol
    assert c["status"] == [200, 404]
    assert c["bytes"] == [5, 0]  # '-' counts as 0
    assert c["referer"] == [b"-", b"http://r/"]
    assert c["user_agent"] == [b"ua", b"Moz 5"]


def test_common_columns() -> None:
    p = parse_batch(b'h - bob [20/May/2015:12:05:17 +0100] "GET / HTTP/1.0" 304 -\n', "common",
                    now=now)
    assert p.parsed == [True]
    assert p.ts == [T1 - 3600]
    assert p.columns["user"] == [b"bob"]
    assert p.columns["status"] == [304]
    assert p.columns["bytes"] == [0]
    assert "referer" not in p.columns


def test_vhost_combined_columns() -> None:
    line = b"www.x.com:443 " + L1 + b"\n"
    p = parse_batch(line, "vhost_combined", now=now)
    assert p.parsed == [True]
    assert p.columns["vhost"] == [b"www.x.com"]
    assert p.columns["host"] == [b"1.2.3.4"]
    assert p.columns["bytes"] == p.columns["bytes_out"] == [5]  # %O: the bandwidth there
    assert p.columns["user_agent"] == [b"ua"]


def test_custom_format_with_duration_and_header() -> None:
    fmt = '%h %l %u %t "%r" %>s %b %D "%{X-Forwarded-For}i"'
    blob = (b'1.2.3.4 - - [20/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 - 1234 '
            b'"10.0.0.1, 10.0.0.2"\n')
    p = parse_batch(blob, fmt, now=now)
    assert p.parsed == [True]
    assert p.ts == [T1]
    assert p.columns["duration_us"] == [1234]
    assert p.columns["bytes"] == [0]
    assert p.columns["forwarded_for"] == [b"10.0.0.1, 10.0.0.2"]


def test_request_that_is_not_method_url_protocol() -> None:
    p = parse_batch(combined(request="\\x16\\x03\\x01") + b"\n" + combined(request="-") + b"\n",
                    "combined", now=now)
    assert p.parsed == [True, True]
    assert p.columns["request"] == [b"\\x16\\x03\\x01", b"-"]
    assert p.columns["method"] == [b"", b""]


def test_single_empty_line() -> None:
    p = parse_batch(b"\n", "combined", now=now)
    assert p.ts == [int(NOW)]
    assert p.parsed == [False]


def test_empty_blob_has_no_rows() -> None:
    p = parse_batch(b"", "combined", now=now)
    assert p.ts == []
    assert p.unparsed == 0


# -- parse_batch: lines that do not parse -------------------------------------------------------


def test_unparsed_line_gets_time_of_previous_line() -> None:
    p = parse_batch(L1 + b"\ngarbage\n" + L2 + b"\n", "combined", now=now)
    assert p.parsed == [True, False, True]
    assert p.unparsed == 1
    assert p.ts == [T1, T1, T2]
    assert p.columns["host"][1] == b""
    assert p.columns["status"][1] == 0


def test_leading_unparsed_lines_get_time_of_next_line() -> None:
    p = parse_batch(b"garbage\n\n" + L2 + b"\n", "combined", now=now)
    assert p.parsed == [False, False, True]
    assert p.ts == [T2, T2, T2]


def test_no_time_anywhere_gets_now() -> None:
    p = parse_batch(b"garbage\n\nmore garbage\n", "combined", now=now)
    assert p.unparsed == 3
    assert p.ts == [int(NOW)] * 3


def test_empty_lines_are_unparsed_rows() -> None:
    p = parse_batch(b"\n" + L1 + b"\n\n", "combined", now=now)
    assert len(p.ts) == 3
    assert p.parsed == [False, True, False]


def test_unparsed_line_with_a_stamp_gets_that_time() -> None:
    blob = L1 + b"\nsomething odd [20/May/2015:12:07:17 +0000] here\n" + L2 + b"\n"
    p = parse_batch(blob, "combined", now=now)
    assert p.parsed == [True, False, True]
    assert p.ts == [T1, T1 + 120, T2]


def test_format_without_time_uses_stamp_of_unparsed_line() -> None:
    p = parse_batch(b"junk [20/May/2015:12:05:17 +0000] junk\n", "%h %>s", now=now)
    assert p.parsed == [False]
    assert p.ts == [T1]


def test_truncated_line_from_sample() -> None:
    lines = (SAMPLES / "apache_combined_semicomplete.log").read_bytes().split(b"\n")
    blob = b"\n".join(lines[8896:8900]) + b"\n"  # lines 8897..8900; 8899 is cut off
    p = parse_batch(blob, "combined", now=now)
    assert len(p.ts) == 4
    # cut off inside its user agent, the last field: it still parses, as GoAccess reads it
    assert p.parsed == [True, True, True, True]
    assert p.ts[2] == T1
    assert b"Googlebot" in lines[8898] and not lines[8898].endswith(b'"')
    assert p.columns["user_agent"][2] == lines[8898].split(b'"')[-1]
    assert p.columns["bytes"][2] == 235


def test_a_line_cut_before_its_last_field_does_not_parse() -> None:
    line = combined()
    cut = line[: line.index(b'" "') + 1]  # the referrer ends, the user agent never starts
    p = parse_batch(cut + b"\n", "combined", now=now)
    assert p.parsed == [False]


@pytest.mark.parametrize("name", ["apache_combined_semicomplete.log",
                                  "apache_combined_hackers.log"])
def test_sample_files_one_row_per_line(name: str) -> None:
    blob = (SAMPLES / name).read_bytes()
    p = parse_batch(blob, "combined", now=now)
    assert len(p.ts) == blob.count(b"\n")
    assert all(len(v) == len(p.ts) for v in p.columns.values())
    assert p.unparsed == 0  # semicomplete's line 8899 is cut inside its last field: it parses


def test_line_cut_inside_time_stays_its_own_row() -> None:
    p = parse_batch(b"1.2.3.4 - - [20/May/2015:12\n" + L2 + b"\n", "combined", now=now)
    assert len(p.ts) == 2
    assert p.parsed == [False, True]
    assert p.ts == [T2, T2]


def test_line_cut_inside_quotes_stays_its_own_row() -> None:
    p = parse_batch(combined()[:-1] + b'\nfoo"\n', "combined", now=now)
    assert len(p.ts) == 2
    assert p.parsed == [True, False]  # the first is only missing its last quote


def test_escaped_quotes_parse_on_retry() -> None:
    line = combined(request='GET /a\\"b HTTP/1.1', agent='Mozilla \\"quoted\\"')
    p = parse_batch(L1 + b"\n" + line + b"\n", "combined", now=now)
    assert p.parsed == [True, True]
    assert p.columns["url"] == [b"/x", b'/a\\"b']
    assert p.columns["user_agent"] == [b"ua", b'Mozilla \\"quoted\\"']
    assert p.columns["status"] == [200, 200]
    assert p.ts == [T1, T1]


def test_crlf_line_endings_keep_one_row_per_line() -> None:
    blob = L1 + b"\r\n" + L2 + b"\r\n"
    p = parse_batch(blob, "combined", now=now)
    assert len(p.ts) == 2
    assert p.ts == [T1, T2]  # the stamp is still found


def test_non_utf8_bytes() -> None:
    line = combined(agent="x").replace(b'"x"', b'"\xff\xfe\x80"')
    p = parse_batch(b"\xff\xfe\n" + line + b"\n", "combined", now=now)
    assert p.parsed == [False, True]
    assert p.columns["user_agent"][1] == b"\xff\xfe\x80"
    assert p.ts == [T1, T1]


def test_last_line_without_newline() -> None:
    p = parse_batch(L1 + b"\n" + L2, "combined", now=now)
    assert p.parsed == [True, True]
    assert p.ts == [T1, T2]


def test_invalid_stamp_in_parsed_line_falls_back() -> None:
    p = parse_batch(L1 + b"\n" + combined(stamp="31/Feb/2015:12:05:17 +0000") + b"\n",
                    "combined", now=now)
    assert p.parsed == [True, True]
    assert p.ts == [T1, T1]


@pytest.mark.parametrize("bound", [3, 5, 7])
def test_a_full_memo_never_costs_a_line_its_time(bound: int) -> None:
    # batches of distinct seconds through a clock whose memo fills up mid-batch (or cannot
    # hold one batch at all): every line keeps its own time, as parse_clf reads it
    from logmr.timeutil import parse_clf

    clock = ClfClock(max_entries=bound)
    for first in range(0, 40, 4):
        stamps = [f"20/May/2015:12:05:{s:02d} +0000" for s in range(first, first + 4)]
        blob = b"".join(combined(stamp=s) + b"\n" for s in stamps)
        p = parse_batch(blob, "combined", clock=clock, now=now)
        assert p.ts == [parse_clf(s.encode()) for s in stamps]
        assert len(clock.memo) <= bound


def test_shared_clock_memo_is_used() -> None:
    clock = ClfClock()
    parse_batch(L1 + b"\n", "combined", clock=clock, now=now)
    assert clock.memo[b"20/May/2015:12:05:17 +0000"] == T1


# -- formats apache-log-parser handles ----------------------------------------------------------


@pytest.mark.parametrize(("fmt", "line", "column", "value"), [
    ("%h %{Foo}t %r", b"1.2.3.4 [x] GET / HTTP/1.1", "host", b"1.2.3.4"),
    ("%h %R", b"1.2.3.4 handler", "handler", b"handler"),
    ('%h %l %u %t "%r" %>s %b %X',
     b'1.2.3.4 - - [20/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 5 +', "conn_status", b"+"),
])
def test_formats_left_to_apache_log_parser(fmt: str, line: bytes, column: str,
                                           value: bytes) -> None:
    assert compile_format(fmt).careful is None  # not a format the tuned path takes
    p = parse_batch(line + b"\ngarbage that\n", fmt, now=now)
    assert len(p.ts) == 2
    assert p.parsed[0]
    assert p.columns[column][0] == value


def test_directives_outside_simple_table() -> None:
    assert "R" not in _SIMPLE and "X" not in _SIMPLE


def test_apache_log_parser_time_is_read() -> None:
    fmt = '%h %l %u %t "%r" %>s %b %X'
    p = parse_batch(b'1.2.3.4 - - [20/May/2015:12:05:17 +0000] "GET / HTTP/1.1" 200 5 +\n',
                    fmt, now=now)
    assert p.ts == [T1]
    assert p.columns["status"] == [200]


def test_format_without_time_gets_now() -> None:
    p = parse_batch(b"1.2.3.4 [x] GET / HTTP/1.1\n", "%h %{Foo}t %r", now=now)
    assert p.ts == [int(NOW)]


# -- one row per line, whatever the bytes ---------------------------------------------------------

LINE_PARTS = st.sampled_from([
    L1, L2, b"", b"garbage", b"\r", b"\xff\xfe", b'"', b"[", b"]", b"\\", b"[20/May/2015:12",
    combined(agent='a \\" b'), combined(stamp="99/Foo/2015:12:05:17 +0000"), b" ", b"-",
])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(LINE_PARTS, min_size=1, max_size=3).map(b"".join), min_size=1,
                max_size=8),
       st.sampled_from(["combined", "common", "%h %{Foo}t %r"]))
def test_one_row_per_line(lines: list[bytes], fmt: str) -> None:
    blob = b"".join(ln + b"\n" for ln in lines)
    p = parse_batch(blob, fmt, now=now)
    assert len(p.ts) == len(lines)
    assert len(p.parsed) == len(lines)
    assert all(len(v) == len(lines) for v in p.columns.values())


FEW = st.sampled_from([b"200", b"304", b"404", b"-", b"x1", b"0", b"9" * 19, b"12345678"])
MANY = st.integers(0, 10**20).map(lambda n: str(n).encode())


@settings(max_examples=200, deadline=None)
@given(st.lists(FEW, min_size=8, max_size=80) | st.lists(FEW | MANY, max_size=80))
def test_numeric_columns_read_each_value_alike_whatever_their_count(values: list[bytes]
                                                                     ) -> None:
    from logmr.mapfn.parse import _to_int

    # the oracle: a number when it is one and fits in int64, else 0
    assert _to_int(values) == [int(v) if v.isdigit() and int(v) < 2**63 else 0
                               for v in values]


@pytest.mark.parametrize("directive", ["%v", "%V", '"%{Host}i"'])
def test_every_way_of_logging_the_vhost_reads_as_vhost(directive: str) -> None:
    value = '"www.x.org"' if directive.startswith('"') else "www.x.org"
    line = f'{value} 1.2.3.4 - - [20/May/2015:10:00:00 +0000] "GET / HTTP/1.1" 200 5\n'
    p = parse_batch(line.encode(), f'{directive} %h %l %u %t "%r" %>s %b', now=now)
    assert (p.unparsed, p.columns["vhost"]) == (0, [b"www.x.org"])
