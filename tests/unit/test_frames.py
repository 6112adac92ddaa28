"""Unit tests of logmr.mapfn.frames: the visitor hashes every report counts by."""

from __future__ import annotations

import random

import polars as pl
import pytest

from logmr.errors import LogmrError
from logmr.mapfn import frames
from logmr.mapfn.parse import COMBINED, parse_batch
from tests.cluster import HACKERS


def hashes(hosts: list[bytes], days: list[bytes], uas: list[bytes],
           statuses: list[int]) -> tuple[list[int | None], list[int]]:
    frame = frames.with_visitors(pl.DataFrame(
        {"host": hosts, "day": days, "ua": uas, "status": statuses},
        schema={"host": pl.Binary, "day": pl.Binary, "ua": pl.Binary, "status": pl.Int64}))
    return frame["vh"].to_list(), frame["vk"].to_list()


def test_each_line_gets_its_visitors_hashes() -> None:
    hosts = [b"1.1.1.1", b"1.1.1.1", b"1.1.1.1", b"2.2.2.2", b"1.1.1.1c", b"1.1.1.1"]
    days = [b"20/May/2015", b"21/May/2015", b"21/May/2015", b"20/May/2015", b"20/May/2015",
            b"20/May/2015"]
    uas = [b"curl", b"curl", b"curl", b"curl", b"url", b"curl"]
    vh, vk = hashes(hosts, days, uas, [200, 200, 404, 200, 200, 301])
    assert vh[0] != vh[1] and vk[0] == vk[1] == vk[2]  # a new day, the same visitor key
    assert vh[2] is None  # a 4xx answer makes no visitor (GoAccess's default)
    assert vk[3] != vk[0] and vh[3] is not None
    assert vk[4] != vk[0]  # the fields are hashed apart, not run together
    assert vh[5] == vh[0]  # the same identity, the same visitor
    assert all(0 <= h < 1 << 63 for h in [*vk, *(h for h in vh if h is not None)])


def test_hashes_do_not_depend_on_how_lines_are_split() -> None:
    parsed = parse_batch(HACKERS.read_bytes(), "combined")
    cols = parsed.columns
    days = [t[:11] for t in cols["time"]]
    rows = list(zip(cols["host"], days, cols["user_agent"], cols["status"], strict=True))
    whole = dict(zip(rows, zip(*hashes(*(list(c) for c in zip(*rows, strict=True))),
                               strict=True), strict=True))
    random.Random(1).shuffle(rows)
    for start in range(0, len(rows), 500):
        part = rows[start:start + 500]
        vh, vk = hashes(*(list(c) for c in zip(*part, strict=True)))
        assert [whole[row] for row in part] == list(zip(vh, vk, strict=True))
    # as many visitors as distinct identities (no two collide)
    assert len({k for _, k in whole.values()}) == len({(h, u) for h, _, u, _ in rows})


def test_a_client_that_hashes_otherwise_is_refused() -> None:
    frames.check_probe(frames.hash_probe())
    frames.check_probe(None)  # a client that does not say (the stock CLI)
    with pytest.raises(LogmrError, match="hashes visitors otherwise"):
        frames.check_probe(frames.hash_probe() + 1)


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
