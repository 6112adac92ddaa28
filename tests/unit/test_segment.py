"""Unit tests of logmr.store.segment: record encoding, scanning, torn tails, checksums."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from logmr.errors import StoreError
from logmr.store import segment
from logmr.store.segment import HEADER, Location, RecordMeta, SegmentWriter


def fields(batch_id: str, part: int = 0, lines: int = 2) -> dict[str, Any]:
    """Meta fields as NodeStore passes them."""
    return {"batch_id": batch_id, "part": part, "parts": 1, "lines": lines, "t0": 100,
            "t1": 160, "host": "web1", "unparsed": 1}


def make_record(i: int, enc: int = 2) -> tuple[bytes, RecordMeta, bytes, dict[str, Any]]:
    """Record ``i``: its bytes, meta, lines and columns."""
    lines = b"".join(b"line %d.%d " % (i, j) + b"x" * (i * 7) + b"\n" for j in range(2))
    columns = {"host": [b"h%d" % i, b"\xff"], "status": [200, 404]}
    record, meta = segment.encode_record(fields(f"b{i}"), lines, columns, [100 + i, 160],
                                         enc=enc)
    return record, meta, lines, columns


def write_segment(path: Path, n: int, enc: int = 2
                  ) -> list[tuple[bytes, RecordMeta, bytes, dict[str, Any]]]:
    """Append ``n`` records of encoding ``enc`` to a new segment with a SegmentWriter."""
    records = [make_record(i, enc) for i in range(n)]
    writer = SegmentWriter(str(path))
    for i, (record, *_rest) in enumerate(records):
        assert writer.append(record) == sum(len(r[0]) for r in records[:i])
    writer.close()
    return records


def check_records(path: Path, records: list[tuple[bytes, RecordMeta, bytes, dict[str, Any]]],
                  found: list[tuple[Location, RecordMeta]]) -> None:
    """``found`` holds exactly ``records``, each readable."""
    assert [m for _, m in found] == [r[1] for r in records]
    for (loc, meta), (_, _, lines, columns) in zip(found, records, strict=True):
        assert loc.path == str(path)
        assert segment.decode_lines(loc, meta) == lines
        assert list(segment.decode_ts(loc, meta)) == [100 + int(meta.batch_id[1:]), 160]
        assert segment.decode_columns(loc, meta) == columns


@pytest.mark.parametrize("enc", [1, 2])
def test_encode_record_meta(enc: int) -> None:
    record, meta, lines, _ = make_record(3, enc)
    assert meta == RecordMeta(batch_id="b3", part=0, parts=1, lines=2, t0=100, t1=160,
                              host="web1", unparsed=1, raw_bytes=len(lines),
                              sizes=meta.sizes, crcs=meta.crcs, enc=enc,
                              words=meta.words)
    assert bool(meta.words[0]) == (enc == 2)  # a record of columns has a token filter
    magic, meta_len, body_len, _crc = HEADER.unpack_from(record)
    assert magic == b"LMR1"
    assert len(record) == HEADER.size + meta_len + body_len
    assert RecordMeta.unpack(record[HEADER.size:HEADER.size + meta_len]) == meta


@pytest.mark.parametrize("enc", [1, 2])
def test_round_trip(tmp_path: Path, enc: int) -> None:
    path = tmp_path / "1.seg"
    records = write_segment(path, 4, enc)
    check_records(path, records, segment.scan(str(path), repair=False))
    check_records(path, records, segment.scan(str(path), repair=True))
    assert path.stat().st_size == sum(len(r[0]) for r in records)


def test_empty_segment(tmp_path: Path) -> None:
    path = tmp_path / "1.seg"
    SegmentWriter(str(path)).close()
    assert segment.scan(str(path), repair=True) == []


def test_writer_appends_to_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "1.seg"
    first = write_segment(path, 2)
    writer = SegmentWriter(str(path))
    assert writer.size == path.stat().st_size
    extra = make_record(2)
    assert writer.append(extra[0]) == writer.size - len(extra[0])
    writer.close()
    check_records(path, [*first, extra], segment.scan(str(path), repair=False))


def torn_offsets(records: list[tuple[bytes, RecordMeta, bytes, dict[str, Any]]]) -> list[int]:
    """Lengths to cut the file to, all inside the last record."""
    start = sum(len(r[0]) for r in records[:-1])
    last = len(records[-1][0])
    return sorted({start + d for d in (1, 3, HEADER.size - 1, HEADER.size, HEADER.size + 1,
                                       last // 2, last - 1)})


@pytest.mark.parametrize("cut", range(7))
def test_torn_tail_is_cut_off(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "1.seg"
    records = write_segment(path, 3)
    whole = sum(len(r[0]) for r in records[:-1])
    offset = torn_offsets(records)[cut]
    os.truncate(path, offset)
    # without repair, reading stops before the torn record and the file is untouched
    check_records(path, records[:-1], segment.scan(str(path), repair=False))
    assert path.stat().st_size == offset
    # with repair, the file is cut back to the last whole record
    check_records(path, records[:-1], segment.scan(str(path), repair=True))
    assert path.stat().st_size == whole
    # and a record appended afterwards is found
    writer = SegmentWriter(str(path))
    writer.append(records[-1][0])
    writer.close()
    check_records(path, records, segment.scan(str(path), repair=True))


@pytest.mark.parametrize("garbage", [b"\x00", b"LMR1", b"garbage bytes here!", b"\xff" * 40,
                                     HEADER.pack(b"LMR1", 1, 1, 0) + b"ab",
                                     HEADER.pack(b"LMR1", 2**31, 2**31, 0)])
def test_garbage_tail_is_cut_off(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "1.seg"
    records = write_segment(path, 2)
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(garbage)
    check_records(path, records, segment.scan(str(path), repair=True))
    assert path.stat().st_size == size


@pytest.mark.parametrize("where", ["meta", "body_start", "body_end"])
def test_flipped_byte_in_last_record_is_detected(tmp_path: Path, where: str) -> None:
    path = tmp_path / "1.seg"
    records = write_segment(path, 3)
    start = sum(len(r[0]) for r in records[:-1])
    meta_len = HEADER.unpack_from(records[-1][0])[1]
    offset = {"meta": start + HEADER.size, "body_start": start + HEADER.size + meta_len,
              "body_end": start + len(records[-1][0]) - 1}[where]
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    check_records(path, records[:-1], segment.scan(str(path), repair=True))
    assert path.stat().st_size == start


def test_a_flipped_byte_is_detected_in_the_part_read(tmp_path: Path) -> None:
    path = tmp_path / "1.seg"
    write_segment(path, 2, enc=1)
    found = segment.scan(str(path), repair=False)
    loc, meta = found[1]
    data = bytearray(path.read_bytes())
    data[loc.offset + meta.sizes[0] // 2] ^= 0xFF  # inside the lines part
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        segment.decode_lines(loc, meta)
    assert list(segment.decode_ts(loc, meta)) == [101, 160]  # the other parts are intact
    assert segment.decode_lines(*found[0])  # and so is the first record


def test_a_flipped_byte_in_stored_columns_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "1.seg"
    write_segment(path, 2, enc=2)
    found = segment.scan(str(path), repair=False)
    loc, meta = found[1]
    assert meta.sizes[:2] == (0, 0)  # the lines and times are in the columns
    data = bytearray(path.read_bytes())
    data[loc.offset + meta.sizes[2] // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    for read in (segment.decode_lines, segment.decode_ts, segment.decode_columns):
        with pytest.raises(StoreError, match="corrupt"):
            read(loc, meta)
    assert segment.decode_lines(*found[0]) == make_record(0)[2]  # the first is intact


def test_a_short_file_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "1.seg"
    write_segment(path, 1)
    loc, meta = segment.scan(str(path), repair=False)[0]
    os.truncate(path, loc.offset + loc.length - 1)  # into the token filter, at the end
    with pytest.raises(StoreError, match="corrupt"):
        segment.read_part(loc, meta, segment.WORDS)
    assert segment.decode_columns(loc, meta) == make_record(0)[3]
    os.truncate(path, loc.offset + sum(meta.sizes) - 1)
    with pytest.raises(StoreError, match="corrupt"):
        segment.decode_columns(loc, meta)


def test_the_token_filter_reads_back_and_a_flipped_byte_in_it_is_detected(
        tmp_path: Path) -> None:
    path = tmp_path / "1.seg"
    _, meta, lines, _ = write_segment(path, 1)[0]
    loc, meta = segment.scan(str(path), repair=False)[0]
    assert segment.decode_part(loc, meta, segment.WORDS) == b"\n".join(
        sorted(set(lines.replace(b"\n", b" ").split())))
    assert loc.offset + sum(meta.sizes) + meta.words[0] == loc.offset + loc.length
    data = bytearray(path.read_bytes())
    data[loc.offset + sum(meta.sizes) + meta.words[0] // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        segment.read_part(loc, meta, segment.WORDS)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "1.seg"
    write_segment(path, 1)
    loc, meta = segment.scan(str(path), repair=False)[0]
    path.unlink()
    with pytest.raises(StoreError, match="cannot read segment"):
        segment.decode_lines(loc, meta)
