"""Unit tests of full and failing disks: the watermark, and a write that fails midway is
cut back so that the batch can be redone, exactly once."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from logmr.errors import ConfigError, DiskUnavailable, StoreError
from logmr.store import disk, segment
from logmr.store.node import NodeStore
from logmr.wire import Batch
from tests.unit.test_node import THREE_HOURS, line

pytestmark = pytest.mark.usefixtures("hourly_records")


@pytest.mark.parametrize(("text", "want"), [
    ("0", (0, None)), ("500M", (500 << 20, None)), ("2g", (2 << 30, None)),
    ("1.5GiB", (int(1.5 * (1 << 30)), None)), ("5%", (None, 0.05)),
    ("1G,5%", (1 << 30, 0.05)), ("10%, 100M", (100 << 20, 0.10)), ("4096", (4096, None)),
])
def test_min_free_forms(text: str, want: tuple[int | None, float | None]) -> None:
    assert disk.parse_min_free(text) == want


@pytest.mark.parametrize("bad", ["", "lots", "5%,6%", "1G,2G", "150%", "-1G", "1X"])
def test_bad_min_free_is_refused_with_the_forms(bad: str) -> None:
    with pytest.raises(ConfigError, match="--min-free"):
        disk.parse_min_free(bad)


def test_the_smaller_of_size_and_share_applies(tmp_path: Path) -> None:
    mark = disk.Watermark(str(tmp_path), "1G,5%")
    assert mark.floor(100 << 30) == 1 << 30  # a big disk: 1 GiB
    assert mark.floor(8 << 20) == int((8 << 20) * 0.05)  # a small one: 5 %
    assert disk.Watermark(str(tmp_path), "0").floor(1 << 40) == 0


def test_watermark_refuses_what_would_leave_too_little(tmp_path: Path) -> None:
    free, _ = disk.free_bytes(str(tmp_path))
    disk.Watermark(str(tmp_path), "0").check(0)
    with pytest.raises(DiskUnavailable, match="disk full"):
        disk.Watermark(str(tmp_path), str(free + (1 << 30))).check(0)
    assert disk.writable(str(tmp_path), disk.Watermark(str(tmp_path), "0")) is None
    assert "disk full" in str(disk.writable(str(tmp_path),
                                            disk.Watermark(str(tmp_path), f"{free * 2}")))
    assert not (tmp_path / ".write-probe").exists()


class FailingWrites:
    """os.write that fails with ``code`` once ``budget`` bytes have been written: a disk
    that fills (or breaks) in the middle of a batch."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, budget: int, code: int) -> None:
        self.budget = budget
        self.code = code
        self.real = os.write
        monkeypatch.setattr(segment.os, "write", self)

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.budget <= 0:
            raise OSError(self.code, os.strerror(self.code))
        n = self.real(fd, bytes(data[: self.budget]))
        self.budget -= n
        return n


def sizes(store: NodeStore) -> dict[str, int]:
    return {n: os.path.getsize(os.path.join(store.seg_dir, n))
            for n in sorted(os.listdir(store.seg_dir))}


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_a_write_that_fails_midway_is_cut_and_redone_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    store = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    store.store(Batch("before", "web1", "combined", line(10, 0, "/x")))
    kept = sizes(store)
    failing = FailingWrites(monkeypatch, 150, code)  # the second of three records breaks
    with pytest.raises(DiskUnavailable, match="disk full" if code == errno.ENOSPC
                       else "disk error"):
        store.store(Batch("b1", "web1", "combined", THREE_HOURS))
    # what was appended is gone: the segment of hour 10 is as before, the others empty
    after = sizes(store)
    assert {n: s for n, s in after.items() if n in kept} == kept
    assert all(s == 0 for n, s in after.items() if n not in kept)
    assert store.stats()["lines"] == 1
    failing.budget = 1 << 30  # space is back
    assert store.store(Batch("b1", "web1", "combined", THREE_HOURS)).lines == 4
    store.close()
    again = NodeStore(str(tmp_path), node_id="n1", min_free="0")  # and after a restart
    assert again.stats()["lines"] == 5
    assert again.store(Batch("b1", "web1", "combined", THREE_HOURS)).duplicate
    again.close()


def test_a_segment_that_cannot_be_cut_is_cut_when_opened_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    store.store(Batch("first", "web1", "combined", line(10, 0, "/x")))
    kept = sizes(store)
    failing = FailingWrites(monkeypatch, 40, errno.EIO)

    def no_truncate(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(segment.os, "ftruncate", no_truncate)
    with pytest.raises(DiskUnavailable):
        store.store(Batch("b1", "web1", "combined", line(10, 1, "/y")))
    assert sizes(store) != kept  # 40 bytes of a record are left behind
    monkeypatch.undo()
    failing.budget = 1 << 30
    store.store(Batch("b1", "web1", "combined", line(10, 1, "/y")))
    records = segment.scan(os.path.join(store.seg_dir, next(iter(kept))), repair=False)
    assert [m.batch_id for _, m in records] == ["first", "b1"]  # no torn bytes between
    store.close()


def test_the_watermark_stops_a_batch_before_anything_is_written(tmp_path: Path) -> None:
    free, _ = disk.free_bytes(str(tmp_path))
    store = NodeStore(str(tmp_path), node_id="n1", min_free=str(free * 2))
    with pytest.raises(DiskUnavailable, match="--min-free"):
        store.store(Batch("b1", "web1", "combined", THREE_HOURS))
    assert sizes(store) == {} and store.stats()["lines"] == 0
    assert store.stats()["min_free_bytes"] == free * 2
    store.close()


# -- copies -------------------------------------------------------------------------------------

def test_a_copy_is_the_same_records_byte_for_byte(tmp_path: Path) -> None:
    origin = NodeStore(str(tmp_path / "a"), node_id="a", min_free="0")
    result = origin.store(Batch("b1", "web1", "combined", THREE_HOURS))
    assert len(result.records) == 3
    assert origin.batch_records("b1") == result.records
    peer = NodeStore(str(tmp_path / "b"), node_id="b", min_free="0")
    assert peer.store_records("b1", result.records) == 4
    assert peer.store_records("b1", result.records) == 0  # a copy delivered twice
    assert peer.batch_records("b1") == result.records
    assert sizes(peer) == sizes(origin)
    for name in sizes(origin):
        assert (tmp_path / "a" / "segments" / name).read_bytes() == (
            tmp_path / "b" / "segments" / name).read_bytes()
    # a copy of a batch the peer got directly is not stored twice either
    assert peer.store(Batch("b1", "web1", "combined", THREE_HOURS)).duplicate
    origin.close()
    peer.close()


def test_a_damaged_or_mislabelled_copy_is_refused(tmp_path: Path) -> None:
    origin = NodeStore(str(tmp_path / "a"), node_id="a", min_free="0")
    records = origin.store(Batch("b1", "web1", "combined", THREE_HOURS)).records
    peer = NodeStore(str(tmp_path / "b"), node_id="b", min_free="0")
    flipped = bytearray(records[0])
    flipped[-1] ^= 0xFF
    for bad, why in ((bytes(flipped), "checksum"), (records[0][:-3], "not whole"),
                     (b"xx", "shorter")):
        with pytest.raises(StoreError, match=why):
            peer.store_records("b1", [bad])
    with pytest.raises(StoreError, match="holds a record of batch b1"):
        peer.store_records("b2", records)
    assert peer.stats()["lines"] == 0
    origin.close()
    peer.close()


def test_a_number_past_int64_is_stored_as_zero(tmp_path: Path) -> None:
    """A bytes field of 30 digits cannot go into a column: the line is kept, the field 0
    (before, msgpack raised and the batch failed on every node)."""
    store = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    huge = line(10, 0).replace(b" 200 5 ", b" 200 999999999999999999999999999999 ")
    assert store.store(Batch("big", "web1", "combined", huge + line(10, 1))).lines == 2
    record = next(r for _, rs in store.records() for r in rs)
    assert record.lines() == huge + line(10, 1)
    assert record.columns()["bytes"] == [0, 5]
    store.close()


def test_a_payload_kept_aside_is_private_and_reported(tmp_path: Path) -> None:
    store = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    path = store.keep_aside("logmr.store:job/1", b"payload bytes", ValueError("boom"))
    assert Path(path).read_bytes() == b"payload bytes"
    assert Path(path).stat().st_mode & 0o777 == 0o600
    assert Path(path).parent.stat().st_mode & 0o777 == 0o700
    assert "/" not in Path(path).name[:-4] and "boom" in store.stats()["problems"][0]
    store.close()
