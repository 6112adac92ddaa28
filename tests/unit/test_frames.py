"""Unit tests of logmr.mapfn.frames: the visitor hashes every report counts by."""

from __future__ import annotations

import random

import pytest

from logmr.mapfn import frames
from logmr.mapfn.frames import visitor_columns, visitor_hash
from logmr.mapfn.parse import COMBINED, parse_batch
from tests.cluster import HACKERS


def expected(host: bytes, day: bytes, ua: bytes, status: int | None
             ) -> tuple[int | None, int | None]:
    if not host:
        return None, None
    vh = None if status is not None and 400 <= status <= 499 else visitor_hash((host, day, ua))
    return vh, visitor_hash((host, ua))


def test_each_line_gets_its_visitors_hashes() -> None:
    hosts = [b"1.1.1.1", b"1.1.1.1", b"1.1.1.1", b"2.2.2.2", b""]
    days = [b"20/May/2015", b"21/May/2015", b"21/May/2015", b"20/May/2015", b""]
    uas = [b"curl", b"curl", b"curl", b"curl", b""]
    statuses: list[int | None] = [200, 200, 404, None, 0]
    vh, vk = visitor_columns(hosts, days, uas, statuses)
    assert vh[0] != vh[1] and vk[0] == vk[1] == vk[2]  # a new day, the same visitor key
    assert vh[2] is None  # a 4xx answer makes no visitor (GoAccess's default)
    assert vk[3] != vk[0] and vh[3] is not None
    assert vh[4] is None  # an unparsed line
    for i in range(4):
        want_vh, want_vk = expected(hosts[i], days[i], uas[i], statuses[i])
        assert (vh[i], vk[i]) == (want_vh, want_vk)


def test_hashes_do_not_depend_on_what_was_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parse_batch(HACKERS.read_bytes(), "combined")
    cols = parsed.columns
    days = [t[:11] for t in cols["time"]]
    rows = list(zip(cols["host"], days, cols["user_agent"], cols["status"], strict=True))
    monkeypatch.setattr(frames, "MEMO_MAX", 7)  # the memos start again all the time
    random.Random(1).shuffle(rows)
    for start in range(0, len(rows), 500):
        part = rows[start:start + 500]
        vh, vk = visitor_columns(*(list(c) for c in zip(*part, strict=True)))
        for (host, day, ua, status), h, k in zip(part, vh, vk, strict=True):
            want_vh, want_vk = expected(host, day, ua, status)
            assert h == want_vh
            assert (k if host else None) == want_vk


def test_frames_of_records_read_with_different_formats_concatenate() -> None:
    base = b'1.2.3.4 - - [20/May/2015:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"'
    made = [frames.record_frame(p.columns, p.ts)[0] for p in (
        parse_batch(b"www.x.org:80 " + base + b"\n", "vhost_combined"),  # bytes_out
        parse_batch(base + b"\n", "combined"),  # none of the optional columns
        parse_batch(base + b" 1234\n", COMBINED + " %D"),  # dur
        parse_batch(base + b' "5.6.7.8"\n', "nginx_main"))]  # xff
    assert len({tuple(f.columns) for f in made}) == 4
    for order in (made, made[::-1], made[1:] + made[:1]):
        frame = frames.concat(order)
        assert frame.height == 4
        assert frame.columns == [*frames.FRAME_SCHEMA, *frames.OPTIONAL]
        assert sorted(frame["dur"].drop_nulls().to_list()) == [1234]
        assert frame["xff"].drop_nulls().to_list() == [b"5.6.7.8"]
