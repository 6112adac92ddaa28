"""Append-only segment files: one per UTC hour of log time, a sequence of records.

A record is one batch's lines (see :mod:`logmr.store.node` for how batches are cut)::

    magic "LMR1" | meta length u32 | body length u32 | crc32(meta + body) u32
    meta (msgpack) | body = lines + times + columns [+ token filter]

The body's three parts are, in a record of encoding 2 (``RecordMeta.enc``), two empty
ones and the columns in Parquet, the lines rebuilt from them (:mod:`logmr.store.columnar`);
in one of encoding 1 (written before), zstd(lines), zstd(times, an int64 array) and
zstd(columns, msgpack). The meta holds the length and crc32 of each part, so a query reads
(and checks) only the part it needs.

Records are written with one write() and made durable with fsync before the batch is
acknowledged. A crash can leave a torn record at the tail; opening the segment detects it
(short record or bad checksum) and cuts it off, so only whole records remain.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from array import array
from dataclasses import dataclass
from typing import Any

import msgpack
import polars as pl
import zstandard

from logmr import private
from logmr.errors import StoreError
from logmr.store import columnar, tokens

log = logging.getLogger(__name__)

MAGIC = b"LMR1"
HEADER = struct.Struct(">4sIII")
MAX_PART = 1 << 30

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=1)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


@dataclass(frozen=True)
class RecordMeta:
    """What the time index needs to know of a record without reading its body."""

    batch_id: str  # the dedupe key, also the tie-break of equal times
    part: int  # which of the batch's hour parts this is
    parts: int
    lines: int
    t0: int  # earliest and latest line time in the record
    t1: int
    host: str  # source host that shipped it
    unparsed: int
    raw_bytes: int
    sizes: tuple[int, int, int]  # compressed length of lines, times, columns in the body
    crcs: tuple[int, int, int]  # crc32 of each of those parts
    fmt: str = ""  # the log format the columns were read with ("" in records before it)
    enc: int = 1  # how the body is encoded: 2, columns alone; 1, lines, times and columns
    # length and crc32 of the token filter that follows the three parts (0, 0: none)
    words: tuple[int, int] = (0, 0)

    def pack(self) -> bytes:
        """The meta as stored in the record header (the format, the encoding, then the
        filter's place last: a reader that does not know them reads the first fields)."""
        fields = [self.batch_id, self.part, self.parts, self.lines, self.t0, self.t1,
                  self.host, self.unparsed, self.raw_bytes, list(self.sizes), list(self.crcs)]
        if self.fmt or self.enc != 1 or self.words[0]:
            fields.append(self.fmt)
        if self.enc != 1 or self.words[0]:
            fields.append(self.enc)
        if self.words[0]:
            fields.append(list(self.words))
        packed: bytes = msgpack.packb(fields)
        return packed

    @classmethod
    def unpack(cls, data: bytes) -> RecordMeta:
        """Read a meta written by :meth:`pack`."""
        fields = msgpack.unpackb(data)
        sizes, crcs = fields[9], fields[10]
        if len(sizes) != 3 or len(crcs) != 3:
            raise ValueError("record meta needs three part sizes and crcs")
        (batch_id, part, parts, lines, t0, t1, host, unparsed, raw_bytes) = fields[:9]
        fmt = fields[11] if len(fields) > 11 and isinstance(fields[11], str) else ""
        enc = fields[12] if len(fields) > 12 else 1
        if enc not in ENCODINGS:
            raise ValueError(f"record encoding {enc!r} is not one this logmr reads")
        words = fields[13] if len(fields) > 13 else (0, 0)
        if len(words) != 2:
            raise ValueError("record meta needs the token filter's length and crc")
        return cls(batch_id, part, parts, lines, t0, t1, host, unparsed, raw_bytes,
                   (sizes[0], sizes[1], sizes[2]), (crcs[0], crcs[1], crcs[2]), fmt, enc,
                   (words[0], words[1]))


@dataclass(frozen=True)
class Location:
    """Where a record's body lies."""

    path: str
    offset: int  # of the body
    length: int
    crc: int
    meta_bytes: bytes


LINES, TIMES, COLUMNS, WORDS = 0, 1, 2, 3
ENCODINGS = (1, 2)


def encode_record(meta_fields: dict[str, Any], lines: bytes, columns: dict[str, Any],
                  ts: list[int], enc: int = 2) -> tuple[bytes, RecordMeta]:
    """Build one record; returns the bytes to append and its meta. A record of columns
    (encoding 2) carries a token filter of its lines, one of encoding 1 none."""
    filt = b""
    if enc == 2:
        parts: tuple[bytes, ...] = (b"", b"", columnar.encode(columns, ts, lines,
                                                               meta_fields.get("fmt", "")))
        filt = tokens.build(lines)
    else:
        c = _compressor()
        parts = (c.compress(lines), c.compress(array("q", ts).tobytes()),
                 c.compress(msgpack.packb(columns)))
    meta = RecordMeta(raw_bytes=len(lines), sizes=(len(parts[0]), len(parts[1]), len(parts[2])),
                      crcs=(zlib.crc32(parts[0]), zlib.crc32(parts[1]), zlib.crc32(parts[2])),
                      enc=enc, words=(len(filt), zlib.crc32(filt) if filt else 0),
                      **meta_fields)
    meta_bytes = meta.pack()
    body = b"".join(parts) + filt
    crc = zlib.crc32(body, zlib.crc32(meta_bytes))
    return HEADER.pack(MAGIC, len(meta_bytes), len(body), crc) + meta_bytes + body, meta


def read_part(loc: Location, meta: RecordMeta, part: int, compressed: bool = True) -> bytes:
    """One part of a record's body, decompressed (unless not ``compressed``), after
    checking its crc; part ``WORDS`` is the token filter (words joined by newlines)."""
    if part == WORDS:
        start, size, crc = loc.offset + sum(meta.sizes), meta.words[0], meta.words[1]
    else:
        start, size, crc = loc.offset + sum(meta.sizes[:part]), meta.sizes[part], meta.crcs[part]
    try:
        fd = os.open(loc.path, os.O_RDONLY)
        try:
            data = os.pread(fd, size, start)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot read segment {loc.path}: {exc.strerror}") from None
    if len(data) != size or zlib.crc32(data) != crc or start + size > loc.offset + loc.length:
        raise StoreError(f"segment {loc.path} is corrupt at byte {start}")
    if not compressed:
        return data
    try:
        return bytes(_decompressor().decompress(data))
    except zstandard.ZstdError as exc:
        raise StoreError(f"segment {loc.path} is corrupt at byte {start}: {exc}") from None


def decode_frame(loc: Location, meta: RecordMeta, columns: list[str] | None = None
                 ) -> pl.DataFrame:
    """The stored frame of a record of encoding 2 (only ``columns``, when given)."""
    data = read_part(loc, meta, COLUMNS, compressed=False)
    try:
        return columnar.decode(data, columns)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise StoreError(f"segment {loc.path}: the record of batch {meta.batch_id} does "
                         f"not read: {exc}") from None


def decode_lines(loc: Location, meta: RecordMeta) -> bytes:
    """The record's lines, as logged (each ends in a newline)."""
    if meta.enc == 2:
        return columnar.lines_of(decode_frame(loc, meta), meta.fmt)
    return read_part(loc, meta, LINES)


def decode_ts(loc: Location, meta: RecordMeta) -> array[int]:
    """The time of each line, epoch seconds (a compact array: 8 bytes a line)."""
    if meta.enc == 2:
        return columnar.ts_of(decode_frame(loc, meta, [columnar.DT]))
    times = array("q")
    times.frombytes(read_part(loc, meta, TIMES))
    return times


def decode_part(loc: Location, meta: RecordMeta, part: int) -> bytes | array[int]:
    """The record's lines, times (as :func:`decode_ts`) or token filter's words."""
    if part == LINES:
        return decode_lines(loc, meta)
    if part == TIMES:
        return decode_ts(loc, meta)
    if part == WORDS:
        return read_part(loc, meta, WORDS)
    raise ValueError(f"no record part {part}")


def decode_columns(loc: Location, meta: RecordMeta) -> dict[str, Any]:
    """The record's parsed fields, one entry per line each."""
    if meta.enc == 2:
        return columnar.columns_of(decode_frame(loc, meta))
    result: dict[Any, Any] = msgpack.unpackb(read_part(loc, meta, COLUMNS), raw=True,
                                             strict_map_key=False)
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in result.items()}


def scan(path: str, repair: bool, problems: list[str] | None = None
         ) -> list[tuple[Location, RecordMeta]]:
    """Index the whole records of a segment.

    Bytes that are not a whole record with a good checksum are skipped: when a good record
    follows them, they are a corrupt stretch, left in place and reported in ``problems``;
    when none follows, they are a torn tail from a crash, and ``repair`` cuts them off so
    that appends continue after the last whole record.
    """
    out: list[tuple[Location, RecordMeta]] = []
    with open(path, "r+b" if repair else "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        while pos < size:
            rec = _read_record_at(path, f, pos, size)
            if rec is None:
                resume = _next_record(path, f, pos + 1, size)
                if resume is None:
                    if repair:
                        log.warning("segment %s: cutting a torn tail at byte %d of %d", path,
                                    pos, size)
                        f.truncate(pos)
                        f.flush()
                        os.fsync(f.fileno())
                    break
                message = (f"segment {path}: bytes {pos}-{resume} are corrupt and were "
                           "skipped; the records after them are served")
                log.error("%s", message)
                if problems is not None:
                    problems.append(message)
                pos = resume
                continue
            loc, meta = rec
            out.append((loc, meta))
            pos = loc.offset + loc.length
    return out


def _next_record(path: str, f: Any, start: int, size: int) -> int | None:
    """The offset of the next whole, good record at or after ``start``; None if none."""
    chunk = 1 << 20
    pos = start
    while pos < size:
        f.seek(pos)
        data = f.read(chunk + len(MAGIC) - 1)
        at = data.find(MAGIC)
        while at >= 0:
            found: int = pos + at
            if _read_record_at(path, f, found, size) is not None:
                return found
            at = data.find(MAGIC, at + 1)
        pos += chunk
    return None


def _read_record_at(path: str, f: Any, pos: int, size: int) -> tuple[Location, RecordMeta] | None:
    f.seek(pos)
    head = f.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    magic, meta_len, body_len, crc = HEADER.unpack(head)
    end = pos + HEADER.size + meta_len + body_len
    if magic != MAGIC or meta_len > MAX_PART or body_len > MAX_PART or end > size:
        return None
    meta_bytes = f.read(meta_len)
    body = f.read(body_len)
    if zlib.crc32(body, zlib.crc32(meta_bytes)) != crc:
        return None
    try:
        meta = RecordMeta.unpack(meta_bytes)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return Location(path, pos + HEADER.size + meta_len, body_len, crc, meta_bytes), meta


def check_record(raw: bytes) -> RecordMeta:
    """The meta of one whole record (as :func:`encode_record` made it), once its length and
    checksum hold; a bad record raises StoreError."""
    if len(raw) < HEADER.size:
        raise StoreError("record is shorter than its header")
    magic, meta_len, body_len, crc = HEADER.unpack_from(raw)
    if magic != MAGIC or HEADER.size + meta_len + body_len != len(raw):
        raise StoreError("record is not whole (bad magic or lengths)")
    meta_bytes = raw[HEADER.size:HEADER.size + meta_len]
    if zlib.crc32(raw[HEADER.size + meta_len:], zlib.crc32(meta_bytes)) != crc:
        raise StoreError("record fails its checksum")
    try:
        return RecordMeta.unpack(meta_bytes)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise StoreError(f"record meta is malformed: {exc}") from None


def read_record(loc: Location) -> bytes:
    """A whole record (header, meta, body) as it lies in its segment."""
    start = loc.offset - len(loc.meta_bytes) - HEADER.size
    size = loc.offset + loc.length - start
    try:
        fd = os.open(loc.path, os.O_RDONLY)
        try:
            data = os.pread(fd, size, start)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot read segment {loc.path}: {exc.strerror}") from None
    if len(data) != size:
        raise StoreError(f"segment {loc.path} ends inside a record at byte {start}")
    return data


class SegmentWriter:
    """Appends records to one segment file; durable after :meth:`sync`."""

    def __init__(self, path: str) -> None:
        self.path = path
        created = not os.path.exists(path)
        self._fd = private.open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self.size = os.fstat(self._fd).st_size
        self._dirty = created
        self.closed = False
        if created:
            fsync_dir(os.path.dirname(path))

    def append(self, record: bytes) -> int:
        """Append one record; returns the offset it starts at."""
        offset = self.size
        view = memoryview(record)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(record)
        self._dirty = True
        return offset

    def sync(self) -> None:
        """fsync the file if anything was appended since the last sync."""
        if self._dirty and not self.closed:
            os.fsync(self._fd)
            self._dirty = False

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (a failed write's tail) and make it durable;
        a closed writer opens its file again for that."""
        fd = os.open(self.path, os.O_WRONLY) if self.closed else self._fd
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            if fd != self._fd:
                os.close(fd)
        self.size = size
        self._dirty = False

    def abandon(self) -> None:
        """Close without syncing (after a write error: the caller cuts the tail later)."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def close(self) -> None:
        """Sync and close."""
        if not self.closed:
            self.sync()
            self.closed = True
            os.close(self._fd)


def fsync_dir(path: str) -> None:
    """Make a file's creation or renaming in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
