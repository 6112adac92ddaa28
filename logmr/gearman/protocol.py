"""Gearman binary packets: encoding and incremental decoding, no I/O.

A packet is a 12-byte header (magic ``\\0REQ``/``\\0RES``, type and body length as big-endian
u32) and a body of NUL-separated arguments. Every packet type has a fixed number of
arguments and only the last one may contain NULs, so the decoder splits the body into
exactly that many parts and the opaque payload comes out byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from logmr.gearman.errors import ProtocolError

REQ = b"\0REQ"
RES = b"\0RES"
HEADER = struct.Struct(">4sII")
MAX_BODY = 1 << 30
"""Bodies longer than this (1 GiB) are taken as a corrupt stream, not a packet."""
MAX_UNIQUE = 63
"""gearmand 1.1.20 silently cuts a 64-byte unique id and rejects a 65-byte one."""
MAX_FUNCTION = 512


class T(IntEnum):
    """Packet types, numbered as in gearmand's PROTOCOL."""

    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42


_ZERO = (T.RESET_ABILITIES, T.PRE_SLEEP, T.NOOP, T.GRAB_JOB, T.NO_JOB, T.ALL_YOURS,
         T.GRAB_JOB_UNIQ, T.GRAB_JOB_ALL)
_ONE = (T.CAN_DO, T.CANT_DO, T.JOB_CREATED, T.WORK_FAIL, T.GET_STATUS, T.ECHO_REQ,
        T.ECHO_RES, T.SET_CLIENT_ID, T.OPTION_REQ, T.OPTION_RES, T.GET_STATUS_UNIQUE)
_TWO = (T.WORK_COMPLETE, T.ERROR, T.CAN_DO_TIMEOUT, T.WORK_EXCEPTION, T.WORK_DATA,
        T.WORK_WARNING)
_THREE = (T.SUBMIT_JOB, T.JOB_ASSIGN, T.WORK_STATUS, T.SUBMIT_JOB_BG, T.SUBMIT_JOB_HIGH,
          T.SUBMIT_JOB_HIGH_BG, T.SUBMIT_JOB_LOW, T.SUBMIT_JOB_LOW_BG)

ARG_COUNTS: dict[T, int] = {
    **dict.fromkeys(_ZERO, 0),
    **dict.fromkeys(_ONE, 1),
    **dict.fromkeys(_TWO, 2),
    **dict.fromkeys(_THREE, 3),
    T.JOB_ASSIGN_UNIQ: 4,
    T.SUBMIT_JOB_EPOCH: 4,
    T.SUBMIT_REDUCE_JOB: 4,
    T.SUBMIT_REDUCE_JOB_BACKGROUND: 4,
    T.STATUS_RES: 5,
    T.JOB_ASSIGN_ALL: 5,
    T.STATUS_RES_UNIQUE: 6,
    T.SUBMIT_JOB_SCHED: 8,
}
"""How many NUL-separated arguments the body of each packet type holds."""


@dataclass(frozen=True)
class Packet:
    """One decoded packet; ``type`` is a plain int only for types this module does not know."""

    magic: bytes
    type: T | int
    args: tuple[bytes, ...]

    def __str__(self) -> str:
        name = self.type.name if isinstance(self.type, T) else str(self.type)
        sizes = ", ".join(f"{len(a)} bytes" for a in self.args)
        return f"{name}({sizes})"


def encode(type: T | int, *args: bytes, magic: bytes = REQ) -> bytes:
    """Return the wire bytes of one packet; only the last argument may contain NULs."""
    if magic not in (REQ, RES):
        raise ValueError(f"bad magic {magic!r}")
    for arg in args[:-1]:
        if b"\0" in arg:
            raise ValueError(f"a NUL inside a non-final argument of packet type {type}")
    body = b"\0".join(args)
    return HEADER.pack(magic, int(type), len(body)) + body


def split_body(type: T | int, body: bytes) -> tuple[bytes, ...]:
    """Split a body into the arguments of ``type``; the last one keeps its NULs."""
    if not isinstance(type, T) or type not in ARG_COUNTS:
        return (body,) if body else ()
    count = ARG_COUNTS[type]
    if count == 0:
        if body:
            raise ProtocolError(f"{type.name} packet carries {len(body)} unexpected bytes")
        return ()
    args = tuple(body.split(b"\0", count - 1))
    if len(args) != count:
        raise ProtocolError(f"{type.name} packet has {len(args)} arguments, wants {count}")
    return args


def _packet_type(number: int) -> T | int:
    try:
        return T(number)
    except ValueError:
        return number


class Decoder:
    """Turns a byte stream, chunked any way, into packets.

    >>> d = Decoder()
    >>> wire = encode(T.WORK_DATA, b"H:x:1", b"a\\0b", magic=RES)
    >>> d.feed(wire[:5]), d.feed(wire[5:])[0].args
    ([], (b'H:x:1', b'a\\x00b'))
    """

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self._chunks: list[bytes] = []  # received, not yet part of a whole packet
        self._have = 0  # their length
        self._need = HEADER.size  # bytes needed before another packet can be whole
        self._max_body = max_body

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole packet."""
        return self._have

    def feed(self, data: bytes) -> list[Packet]:
        """Add ``data``; return the packets it completes (possibly none).

        A large packet arrives in many reads: they are only kept until it is whole, then
        joined once, and each argument is copied out once.
        """
        if data:
            self._chunks.append(data)
            self._have += len(data)
        if self._have < self._need:
            return []
        buf = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        packets: list[Packet] = []
        pos, size_all = 0, len(buf)
        self._need = HEADER.size
        while size_all - pos >= HEADER.size:
            magic, number, size = HEADER.unpack_from(buf, pos)
            if magic not in (REQ, RES):
                raise ProtocolError(f"bad packet magic {buf[pos:pos + 12]!r}")
            if size > self._max_body:
                raise ProtocolError(f"absurd packet length {size} (type {number})")
            end = pos + HEADER.size + size
            if size_all < end:
                self._need = end - pos
                break
            kind = _packet_type(number)
            packets.append(Packet(magic, kind, _args(kind, buf, pos + HEADER.size, end)))
            pos = end
        rest = buf[pos:] if pos else buf
        self._chunks = [rest] if rest else []
        self._have = len(rest)
        return packets


def _args(kind: T | int, buf: bytes, start: int, end: int) -> tuple[bytes, ...]:
    """The arguments of a body lying at ``buf[start:end]``, each copied out once."""
    count = ARG_COUNTS.get(kind) if isinstance(kind, T) else None
    if count is None or count <= 1 or start == end:
        return split_body(kind, buf[start:end])
    args = []
    for _ in range(count - 1):
        nul = buf.find(b"\0", start, end)
        if nul < 0:
            break
        args.append(buf[start:nul])
        start = nul + 1
    args.append(buf[start:end])
    if len(args) != count:
        raise ProtocolError(f"{kind.name} packet has {len(args)} arguments, wants {count}")  # type: ignore[union-attr]
    return tuple(args)


def unique_bytes(unique: str | bytes, *, background: bool) -> bytes:
    """Validate a unique id and return it as bytes.

    At most :data:`MAX_UNIQUE` bytes, no NUL, ASCII when given as ``str``, and never empty
    for a background job (an empty unique lets persistent queues overwrite jobs).
    """
    if isinstance(unique, str):
        try:
            raw = unique.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"unique id {unique!r} is not ASCII") from None
    else:
        raw = bytes(unique)
    if len(raw) > MAX_UNIQUE:
        raise ValueError(f"unique id is {len(raw)} bytes, at most {MAX_UNIQUE} allowed")
    if b"\0" in raw:
        raise ValueError("unique id contains a NUL byte")
    if background and not raw:
        raise ValueError("a background job needs a non-empty unique id")
    return raw


def function_bytes(function: str) -> bytes:
    """Validate a function name (non-empty, no whitespace or NUL, <= 512 bytes) as bytes."""
    raw = function.encode("utf-8")
    if not raw or len(raw) > MAX_FUNCTION:
        raise ValueError(f"function name must be 1..{MAX_FUNCTION} bytes, got {len(raw)}")
    if any(c in raw for c in b"\0 \t\r\n"):
        raise ValueError(f"function name {function!r} contains whitespace or NUL")
    return raw
