"""Pure tests of packets, unique ids, server lists and server choice (no job server)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logmr.gearman.client import server_order
from logmr.gearman.connection import Server, parse_servers
from logmr.gearman.errors import AddressError, ProtocolError
from logmr.gearman.protocol import (
    ARG_COUNTS,
    HEADER,
    REQ,
    RES,
    Decoder,
    Packet,
    T,
    encode,
    function_bytes,
    split_body,
    unique_bytes,
)


def test_encode_matches_the_protocol_document() -> None:
    assert encode(T.CAN_DO, b"reverse") == b"\0REQ\0\0\0\x01\0\0\0\x07reverse"
    assert encode(T.NO_JOB, magic=RES) == b"\0RES\0\0\0\x0a\0\0\0\0"
    assert encode(T.SUBMIT_JOB, b"reverse", b"", b"test") == (
        b"\0REQ\0\0\0\x07\0\0\0\x0dreverse\0\0test"
    )


def test_every_type_up_to_epoch_has_an_argument_count() -> None:
    assert {t for t in T if t <= T.SUBMIT_JOB_EPOCH} <= set(ARG_COUNTS)
    assert (T.GRAB_JOB_UNIQ, T.JOB_ASSIGN_UNIQ, T.OPTION_REQ, T.OPTION_RES) == (30, 31, 26, 27)
    assert (T.WORK_DATA, T.WORK_WARNING, T.WORK_EXCEPTION, T.ERROR, T.NOOP) == (28, 29, 25, 19, 6)


def test_the_last_argument_keeps_its_nuls() -> None:
    wire = encode(T.JOB_ASSIGN_UNIQ, b"H:x:1", b"fn", b"u1", b"\0a\0\0b\0", magic=RES)
    [packet] = Decoder().feed(wire)
    assert packet == Packet(RES, T.JOB_ASSIGN_UNIQ, (b"H:x:1", b"fn", b"u1", b"\0a\0\0b\0"))


def test_empty_arguments_survive() -> None:
    [packet] = Decoder().feed(encode(T.SUBMIT_JOB_BG, b"fn", b"", b""))
    assert packet.args == (b"fn", b"", b"")


def test_nul_in_a_non_final_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        encode(T.SUBMIT_JOB, b"f\0n", b"u", b"data")


def test_bad_magic_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="magic"):
        Decoder().feed(b"\0REX" + bytes(8))
    with pytest.raises(ProtocolError, match="magic"):
        Decoder().feed(b"OK 1.1.20\n\0\0\0")


def test_absurd_length_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="absurd"):
        Decoder().feed(HEADER.pack(RES, int(T.WORK_DATA), (1 << 30) + 1))


def test_too_few_arguments_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="wants 4"):
        Decoder().feed(encode(T.JOB_ASSIGN_UNIQ, b"H:x:1", b"fn", magic=RES))
    with pytest.raises(ProtocolError, match="unexpected"):
        split_body(T.NOOP, b"junk")


def test_an_unknown_type_is_kept_as_a_number() -> None:
    [packet] = Decoder().feed(HEADER.pack(RES, 99, 3) + b"a\0b")
    assert packet == Packet(RES, 99, (b"a\0b",))


def test_header_and_body_may_arrive_a_byte_at_a_time() -> None:
    wire = encode(T.WORK_COMPLETE, b"H:x:9", b"result\0bytes", magic=RES) * 2
    decoder = Decoder()
    packets = [p for i in range(len(wire)) for p in decoder.feed(wire[i:i + 1])]
    assert [p.args for p in packets] == [(b"H:x:9", b"result\0bytes")] * 2
    assert decoder.buffered == 0


def _packet_for(kind: T, draw_args: list[bytes]) -> Packet:
    count = ARG_COUNTS[kind]
    args = [a.replace(b"\0", b"") for a in draw_args[: max(count - 1, 0)]]
    args += [b""] * (max(count - 1, 0) - len(args))
    if count:
        args.append(draw_args[-1] if draw_args else b"")
    return Packet(REQ, kind, tuple(args))


packets = st.builds(
    _packet_for,
    st.sampled_from(sorted(ARG_COUNTS)),
    st.lists(st.binary(max_size=40), max_size=8),
)


@given(st.lists(packets, max_size=12), st.lists(st.integers(0, 2000), max_size=20))
def test_any_chunking_decodes_the_same_packets(sent: list[Packet], cuts: list[int]) -> None:
    wire = b"".join(encode(p.type, *p.args, magic=p.magic) for p in sent)
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    decoder = Decoder()
    pieces = [wire[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    received = [packet for piece in pieces for packet in decoder.feed(piece)]
    assert received == sent
    assert decoder.buffered == 0


def test_packet_str_names_type_and_sizes() -> None:
    assert str(Packet(RES, T.NO_JOB, ())) == "NO_JOB()"
    assert str(Packet(RES, T.WORK_DATA, (b"H", b"abc"))) == "WORK_DATA(1 bytes, 3 bytes)"


def test_unique_ids() -> None:
    assert unique_bytes("a" * 63, background=True) == b"a" * 63
    assert unique_bytes(b"\xff", background=True) == b"\xff"
    assert unique_bytes("", background=False) == b""
    with pytest.raises(ValueError, match="at most 63"):
        unique_bytes("a" * 64, background=True)
    with pytest.raises(ValueError, match="non-empty"):
        unique_bytes("", background=True)
    with pytest.raises(ValueError, match="ASCII"):
        unique_bytes("é", background=True)
    with pytest.raises(ValueError, match="NUL"):
        unique_bytes(b"a\0b", background=False)


def test_function_names() -> None:
    assert function_bytes("logmr.map.node-1") == b"logmr.map.node-1"
    for bad in ("", "a b", "a\tb", "a\0b", "x" * 513):
        with pytest.raises(ValueError):
            function_bytes(bad)


def test_parse_servers() -> None:
    assert parse_servers("h1:4731, h2 ,[::1]:4732,[fe80::1],::1,h1:4731") == [
        Server("h1", 4731), Server("h2", 4730), Server("::1", 4732), Server("fe80::1", 4730),
        Server("::1", 4730),
    ]
    assert str(Server("::1", 4732)) == "[::1]:4732"
    assert str(Server("127.0.0.1", 4730)) == "127.0.0.1:4730"


@pytest.mark.parametrize("text", ["", " , ", "h:0", "h:70000", "h:x", ":4730", "[::1", "[::1]x"])
def test_bad_server_lists(text: str) -> None:
    with pytest.raises(AddressError):
        parse_servers(text)


def test_server_order_is_stable_and_covers_every_server() -> None:
    servers = [Server("a", 1), Server("b", 2), Server("c", 3)]
    firsts = set()
    for i in range(50):
        order = server_order(servers, b"batch-%d" % i)
        assert order == server_order(servers, b"batch-%d" % i)
        assert sorted(order) == sorted(servers)
        assert servers.index(order[1]) == (servers.index(order[0]) + 1) % 3
        firsts.add(order[0])
    assert firsts == set(servers)
