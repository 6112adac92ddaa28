"""File mode's bulk parse of combined lines (logmr.mapfn.bulk) against the regex parser it
stands in for: the same frame, row for row, on the sample logs cut into any chunks and on
lines built to fall off the plain shape."""

from __future__ import annotations

import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.mapfn.bulk import combined_frame
from logmr.mapfn.frames import record_frame
from logmr.mapfn.parse import parse_batch
from tests.cluster import HACKERS, SAMPLES, SEMICOMPLETE

PLOYT0 = SAMPLES / "nginx_combined_ployt0.log"
GOOD = (b'1.2.3.4 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326 '
        b'"http://x.example/" "Mozilla/4.08"')


def by_regex(blob: bytes) -> tuple[pl.DataFrame, int]:
    parsed = parse_batch(blob, "combined")
    return record_frame(parsed.columns, parsed.ts)


def same(blob: bytes) -> bool:
    """True when the bulk parse took the chunk; either way, no other result than the
    regex parser's."""
    fast = combined_frame(blob)
    if fast is None:
        return False
    frame, bad = fast
    want, want_bad = by_regex(blob)
    assert bad == want_bad
    assert frame.schema == want.schema
    assert frame.to_dicts() == want.to_dicts()
    return True


@pytest.mark.parametrize("path", [HACKERS, SEMICOMPLETE, PLOYT0], ids=lambda p: p.name)
def test_sample_logs_in_chunks(path: object) -> None:
    lines = path.read_bytes().splitlines(keepends=True)  # type: ignore[attr-defined]
    taken = 0
    for start in range(0, len(lines), 700):
        taken += same(b"".join(lines[start:start + 700]))
    assert taken >= (len(lines) // 700) // 2  # most chunks take the bulk path


ODD = [
    GOOD.replace(b"Mozilla/4.08", rb"Mozilla \"quoted\" 4.08"),  # an escaped quote
    GOOD + b" extra fields",  # a tail the format does not name
    GOOD + b"\r",  # CRLF
    GOOD.replace(b"Mozilla", b"Moz\xffilla"),  # not UTF-8
    b"",  # a blank line
    GOOD.replace(b"10/Oct/2000", b"31/Feb/2000"),  # no such day
    GOOD.replace(b"2326", b"99999999999999999999999"),  # past int64
    GOOD.replace(b" 200 ", b" - "),  # no status
    GOOD.replace(b"GET /a.gif HTTP/1.0", b"GET /a.gif"),  # no protocol
    GOOD.replace(b"GET /a.gif HTTP/1.0", b"GET  /a.gif HTTP/1.0"),  # two spaces
    GOOD.replace(b"GET /a.gif HTTP/1.0", b"\x16\x03\x01"),  # TLS bytes as a request
    GOOD.replace(b"frank", b"fr\tank"),  # a tab in a field
    GOOD.replace(b"1.2.3.4", "1.2.3.4\u00a0x".encode()),  # a no-break space in the host
    GOOD.replace(b"Mozilla/4.08", "Mózilla/4.08 ☃".encode()),  # UTF-8 beyond ASCII
    GOOD[:40],  # cut off
    b"not a log line at all",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(range(len(ODD))), max_size=4), st.integers(0, 300),
       st.booleans(), st.randoms(use_true_random=False))
def test_lines_off_the_plain_shape(odd: list[int], good: int, final_newline: bool,
                                   rnd: random.Random) -> None:
    lines = [GOOD.replace(b"/a.gif", b"/p%d" % i) for i in range(good)] + [ODD[i] for i in odd]
    rnd.shuffle(lines)
    blob = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    same(blob)


def test_a_clean_chunk_takes_the_bulk_path_and_the_odd_ones_do_not() -> None:
    assert same(b"\n".join([GOOD] * 50) + b"\n")
    assert same(b"\n".join([GOOD] * 300 + [b"not a log line at all"]) + b"\n")  # one bad
    assert same(b"\n".join([GOOD] * 50 + [ODD[0]]) + b"\n")  # read apart, then merged
    assert combined_frame(b"\n".join([GOOD] * 50 + ODD[:3]) + b"\n") is None  # too many
