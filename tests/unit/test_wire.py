"""Unit tests of logmr.wire: round trips, schema version, malformed payloads, ids."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logmr import wire
from logmr.errors import WireError
from logmr.wire import SCHEMA, Batch, MapRequest

ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,62}\Z")


@given(batch_id=ids, host=st.text(max_size=20), fmt=st.text(max_size=40),
       lines=st.binary(max_size=200))
def test_batch_round_trip(batch_id: str, host: str, fmt: str, lines: bytes) -> None:
    batch = Batch(batch_id, host, fmt, lines)
    assert wire.unpack_batch(wire.pack_batch(batch)) == batch


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=10)
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4),
    max_leaves=10)


@given(job=st.text(max_size=20), args=st.dictionaries(st.text(max_size=8), plain, max_size=5))
def test_request_round_trip(job: str, args: dict[str, Any]) -> None:
    req = MapRequest(job, args)
    assert wire.unpack_request(wire.pack_request(req)) == req


def test_request_default_args() -> None:
    req = wire.unpack_request(msgpack.packb({"v": SCHEMA, "job": "grep"}))
    assert req == MapRequest("grep", {})


@given(st.lists(st.tuples(st.integers(0, 2**40), ids, st.integers(0, 10**6), st.text(max_size=10),
                          st.binary(max_size=50)), max_size=20))
def test_rows_round_trip(rows: list[tuple[int, str, int, str, bytes]]) -> None:
    assert wire.unpack_rows(wire.pack_rows(rows)) == [list(r) for r in rows]


def test_result_round_trip() -> None:
    got = wire.unpack_result(wire.pack_result({"count": 3, "node": "n1", "data": b"\x00"}))
    assert got == {"v": SCHEMA, "count": 3, "node": "n1", "data": b"\x00"}


def test_result_cannot_override_schema_version() -> None:
    with pytest.raises(WireError, match="schema version 99"):
        wire.unpack_result(wire.pack_result({"v": 99}))


GOOD_BATCH = {"v": SCHEMA, "id": "b1", "host": "web1", "fmt": "combined", "lines": b"x\n"}


@pytest.mark.parametrize("version", [0, 2, None, "1"])
@pytest.mark.parametrize("unpack", [wire.unpack_batch, wire.unpack_request, wire.unpack_result])
def test_wrong_schema_version(unpack: Any, version: Any) -> None:
    payload = {**GOOD_BATCH, "job": "grep", "v": version}
    with pytest.raises(WireError, match="schema version"):
        unpack(msgpack.packb(payload))


def test_missing_schema_version() -> None:
    payload = {k: v for k, v in GOOD_BATCH.items() if k != "v"}
    with pytest.raises(WireError, match="schema version"):
        wire.unpack_batch(msgpack.packb(payload))


MALFORMED = [
    b"", b"\xc1", b"\x92\x01", msgpack.packb(GOOD_BATCH) + b"x", b"\xdd\xff\xff\xff\xff",
    b"\xa3ab", b"\x85\xa1v",
]


@pytest.mark.parametrize("payload", MALFORMED)
@pytest.mark.parametrize("unpack", [wire.unpack_batch, wire.unpack_request, wire.unpack_result,
                                    wire.unpack_rows])
def test_malformed_msgpack(unpack: Any, payload: bytes) -> None:
    with pytest.raises(WireError, match="malformed"):
        unpack(payload)


@pytest.mark.parametrize("value", [[1, 2], "text", 5, None, b"bytes"])
@pytest.mark.parametrize("unpack", [wire.unpack_batch, wire.unpack_request, wire.unpack_result])
def test_non_map_payload(unpack: Any, value: Any) -> None:
    with pytest.raises(WireError, match="not a map"):
        unpack(msgpack.packb(value))


@pytest.mark.parametrize("value", [{"v": 1}, "text", 5])
def test_rows_not_a_list(value: Any) -> None:
    with pytest.raises(WireError, match="not a list"):
        wire.unpack_rows(msgpack.packb(value))


def test_map_with_non_string_keys() -> None:
    with pytest.raises(WireError):
        wire.unpack_batch(msgpack.packb({1: 2}))


@pytest.mark.parametrize("field", ["id", "host", "fmt", "lines"])
def test_batch_missing_field(field: str) -> None:
    payload = {k: v for k, v in GOOD_BATCH.items() if k != field}
    with pytest.raises(WireError, match=f"missing '{field}'"):
        wire.unpack_batch(msgpack.packb(payload))


@pytest.mark.parametrize(("field", "bad"), [
    ("host", 7), ("host", b"web1"), ("host", "w" * 256), ("fmt", ["%h"]), ("fmt", "%h " * 400),
])
def test_batch_host_and_format_are_bounded_text(field: str, bad: Any) -> None:
    # the format becomes a regex on the node: anything else is refused before that
    with pytest.raises(WireError, match=f"{field} must be text of at most"):
        wire.unpack_batch(msgpack.packb({**GOOD_BATCH, field: bad}))


def test_batch_lines_must_be_bytes() -> None:
    with pytest.raises(WireError, match="not bytes"):
        wire.unpack_batch(msgpack.packb({**GOOD_BATCH, "lines": "x\n"}))


@pytest.mark.parametrize("bad", ["../../etc", "", "a" * 64, "a/b", ".hidden", "-a", "a b", 5,
                                 None])
def test_batch_with_bad_id(bad: Any) -> None:
    with pytest.raises(WireError, match="invalid batch id"):
        wire.unpack_batch(msgpack.packb({**GOOD_BATCH, "id": bad}))


@pytest.mark.parametrize("payload", [{"v": SCHEMA}, {"v": SCHEMA, "job": 5},
                                     {"v": SCHEMA, "job": "grep", "args": [1]}])
def test_malformed_request(payload: dict[str, Any]) -> None:
    with pytest.raises(WireError, match="malformed map request"):
        wire.unpack_request(msgpack.packb(payload))


# -- ids ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["node-1", "web1.example.com:x", "a", "A_b.c:d-e", "a" * 63,
                                  "0"])
def test_check_id_accepts(good: str) -> None:
    assert wire.check_id(good, "node id") == good


@pytest.mark.parametrize("bad", ["../../etc", "", "a" * 64, "a/b", "..", ".x", "_x", "a\\b",
                                 "a\x00", "é"])
def test_check_id_refuses(bad: str) -> None:
    with pytest.raises(WireError, match="invalid node id"):
        wire.check_id(bad, "node id")


def test_check_id_refuses_trailing_newline() -> None:
    with pytest.raises(WireError):
        wire.check_id("node-1\n", "node id")


def test_map_function() -> None:
    assert wire.map_function("n1") == "logmr.map.n1"


def test_iter_chunks_groups_by_size() -> None:
    rows = [(i, "b", i, "h", b"x" * 100) for i in range(10)]
    chunks = list(wire.iter_chunks(iter(rows), max_bytes=300))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert [r for c in chunks for r in c] == rows
    assert list(wire.iter_chunks(iter([]))) == []
