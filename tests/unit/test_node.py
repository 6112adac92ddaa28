"""Unit tests of logmr.store.node: a storage node's data directory, without the network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from logmr import heap
from logmr.errors import StoreError
from logmr.mapfn.grep import GrepQuery, grep_hour
from logmr.store import node, segment
from logmr.store.node import NodeStore, Record
from logmr.wire import Batch, check_id

pytestmark = pytest.mark.usefixtures("hourly_records")

H10 = 1432116000  # 20/May/2015:10:00:00 +0000
H11 = H10 + 3600
H12 = H10 + 7200


def line(hh: int, mm: int, path: str = "/", status: int = 200) -> bytes:
    """One combined line at 20/May/2015 hh:mm:00 UTC."""
    return (f'1.2.3.4 - - [20/May/2015:{hh:02d}:{mm:02d}:00 +0000] "GET {path} HTTP/1.1" '
            f'{status} 5 "-" "ua"\n').encode()


def at(hh: int, mm: int) -> int:
    """Epoch seconds of 20/May/2015 hh:mm:00 UTC."""
    return H10 + (hh - 10) * 3600 + mm * 60


ONE_HOUR = line(10, 1, "/a") + line(10, 2, "/b") + b"garbage\n" + line(10, 59, "/c")
THREE_HOURS = line(10, 1, "/a") + line(10, 2, "/b") + line(11, 0, "/c") + line(12, 59, "/d")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[NodeStore]:
    s = NodeStore(str(tmp_path), node_id="n1")
    yield s
    s.close()


def batch(batch_id: str, lines: bytes, host: str = "web1") -> Batch:
    return Batch(batch_id, host, "combined", lines)


def all_records(store: NodeStore, since: int | None = None,
                until: int | None = None) -> list[Record]:
    return [r for _, records in store.records(since, until) for r in records]


def segment_sizes(store: NodeStore) -> dict[str, int]:
    return {n: os.path.getsize(os.path.join(store.seg_dir, n))
            for n in sorted(os.listdir(store.seg_dir))}


# -- store and read back ------------------------------------------------------------------------


def test_store_then_read_back_exactly(store: NodeStore) -> None:
    result = store.store(batch("b1", ONE_HOUR))
    assert (result.lines, result.unparsed, result.duplicate) == (4, 1, False)
    hours = list(store.records())
    assert [h for h, _ in hours] == [H10]
    [rec] = hours[0][1]
    assert rec.lines() == ONE_HOUR
    assert list(rec.ts()) == [at(10, 1), at(10, 2), at(10, 2), at(10, 59)]
    assert store.cached(rec, segment.LINES) == ONE_HOUR
    assert (rec.meta.batch_id, rec.meta.host, rec.meta.part, rec.meta.parts) == ("b1", "web1", 0, 1)
    assert (rec.meta.t0, rec.meta.t1, rec.meta.lines, rec.meta.unparsed) == (
        at(10, 1), at(10, 59), 4, 1)
    cols = rec.columns()
    assert cols["status"] == [200, 200, 0, 200]
    assert cols["url"] == [b"/a", b"/b", b"", b"/c"]
    assert store.ingested_lines == 4 and store.ingested_batches == 1


def test_read_is_cached_and_cache_is_bounded(tmp_path: Path) -> None:
    s = NodeStore(str(tmp_path), node_id="n1", cache_bytes=len(ONE_HOUR))
    try:
        s.store(batch("b1", ONE_HOUR))
        s.store(batch("b2", line(11, 0)))
        first, second = all_records(s)
        lines = s.cached(first, segment.LINES)
        assert s.cached(first, segment.LINES) is lines  # from the cache
        s.cached(second, segment.LINES)  # evicts the first
        again = s.cached(first, segment.LINES)
        assert again == ONE_HOUR and again is not lines
    finally:
        s.close()


def test_heap_is_trimmed_after_enough_evictions(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(node, "_trim_heap", lambda: trims.append(1))
    monkeypatch.setattr(node, "TRIM_AFTER", 1 << 30)
    s = NodeStore(str(tmp_path), node_id="n1", cache_bytes=len(ONE_HOUR))
    try:
        for n in range(5):  # each batch's lines evict the last one's: not enough yet
            s.store(batch(f"b{n}", ONE_HOUR))
        assert trims == []
        monkeypatch.setattr(node, "TRIM_AFTER", 4 * len(ONE_HOUR))  # now passed
        s.store(batch("b5", ONE_HOUR))
        assert trims == [1]
        s.store(batch("b6", ONE_HOUR))  # the count starts again after a trim
        assert trims == [1]
        assert s.cached(all_records(s)[0], segment.LINES) == ONE_HOUR  # nothing lost
    finally:
        s.close()


def test_the_heap_trimmer_and_tuning_are_found_on_glibc() -> None:
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        glibc = None
    if not glibc:
        pytest.skip("not a glibc system")
    trim = heap.trimmer()
    assert trim is not None
    trim()  # and it can be called
    assert heap.tune()  # mallopt accepted both settings


def test_final_newline_is_added(store: NodeStore) -> None:
    store.store(batch("b1", line(10, 1) + line(10, 2).rstrip(b"\n")))
    [rec] = all_records(store)
    assert rec.lines() == line(10, 1) + line(10, 2)
    assert rec.meta.raw_bytes == len(line(10, 1) + line(10, 2))


def test_batch_over_three_hours_is_three_records_in_three_segments(store: NodeStore) -> None:
    result = store.store(batch("b1", THREE_HOURS))
    assert (result.lines, result.duplicate) == (4, False)
    assert list(segment_sizes(store)) == [f"{H10}.seg", f"{H11}.seg", f"{H12}.seg"]
    hours = list(store.records())
    assert [h for h, _ in hours] == [H10, H11, H12]
    recs = [records for _, records in hours]
    assert all(len(r) == 1 for r in recs)
    assert [(r[0].meta.part, r[0].meta.parts) for r in recs] == [(0, 3), (1, 3), (2, 3)]
    assert [r[0].lines() for r in recs] == [line(10, 1, "/a") + line(10, 2, "/b"),
                                            line(11, 0, "/c"), line(12, 59, "/d")]
    assert [list(r[0].ts()) for r in recs] == [[at(10, 1), at(10, 2)], [at(11, 0)], [at(12, 59)]]
    assert recs[0][0].columns()["url"] == [b"/a", b"/b"]
    assert recs[2][0].columns()["url"] == [b"/d"]


def test_unparsed_line_goes_with_the_line_before(store: NodeStore) -> None:
    store.store(batch("b1", line(10, 59) + b"garbage\n" + line(11, 0)))
    assert [r.lines() for r in all_records(store)] == [line(10, 59) + b"garbage\n", line(11, 0)]


# -- dedupe -----------------------------------------------------------------------------------


def test_same_batch_twice_is_a_noop(store: NodeStore) -> None:
    store.store(batch("b1", THREE_HOURS))
    sizes = segment_sizes(store)
    again = store.store(batch("b1", THREE_HOURS))
    assert (again.lines, again.duplicate) == (4, True)
    assert segment_sizes(store) == sizes
    assert len(all_records(store)) == 3
    assert store.ingested_batches == 1 and store.ingested_lines == 4


def test_dedupe_survives_a_restart(tmp_path: Path) -> None:
    s = NodeStore(str(tmp_path), node_id="n1")
    s.store(batch("b1", THREE_HOURS))
    sizes = segment_sizes(s)
    s.close()
    s = NodeStore(str(tmp_path))
    try:
        assert s.store(batch("b1", THREE_HOURS)).duplicate
        assert segment_sizes(s) == sizes
        assert [r.lines() for r in all_records(s)] == [
            line(10, 1, "/a") + line(10, 2, "/b"), line(11, 0, "/c"), line(12, 59, "/d")]
    finally:
        s.close()


def redeliver_after_losing_part_one(tmp_path: Path) -> NodeStore:
    """Store a 3-hour batch, lose its middle part, reopen: a store missing part 1."""
    s = NodeStore(str(tmp_path), node_id="n1")
    s.store(batch("b1", THREE_HOURS))
    s.close()
    os.remove(tmp_path / "segments" / f"{H11}.seg")
    return NodeStore(str(tmp_path))


def test_redelivery_stores_only_missing_parts(tmp_path: Path) -> None:
    s = redeliver_after_losing_part_one(tmp_path)
    try:
        assert [r.meta.part for r in all_records(s)] == [0, 2]
        result = s.store(batch("b1", THREE_HOURS))
        assert not result.duplicate
        assert s.ingested_lines == 1  # only the lost line was written again
        recs = all_records(s)
        assert [r.meta.part for r in recs] == [0, 1, 2]
        assert b"".join(r.lines() for r in recs) == THREE_HOURS
        assert s.store(batch("b1", THREE_HOURS)).duplicate
    finally:
        s.close()


def test_torn_segment_is_repaired_on_open(tmp_path: Path) -> None:
    s = NodeStore(str(tmp_path), node_id="n1")
    s.store(batch("b1", line(10, 1)))
    s.close()
    seg = tmp_path / "segments" / f"{H10}.seg"
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(b"LMR1\x00\x00")
    s = NodeStore(str(tmp_path))
    try:
        assert seg.stat().st_size == size
        assert [r.lines() for r in all_records(s)] == [line(10, 1)]
        s.store(batch("b2", line(10, 2)))
        assert [r.lines() for r in all_records(s)] == [line(10, 1), line(10, 2)]
    finally:
        s.close()


def test_other_files_in_segment_dir_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "notes.txt").write_text("x")
    (tmp_path / "segments" / "abc.seg").write_bytes(b"junk")
    s = NodeStore(str(tmp_path), node_id="n1")
    try:
        assert all_records(s) == []
    finally:
        s.close()


# -- lock and node id -------------------------------------------------------------------------


def test_second_store_on_same_dir_is_refused(tmp_path: Path) -> None:
    s = NodeStore(str(tmp_path), node_id="n1")
    with pytest.raises(StoreError, match="in use"):
        NodeStore(str(tmp_path))
    s.close()
    NodeStore(str(tmp_path)).close()  # free again once closed


def test_failed_open_releases_the_lock(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as failed:
        NodeStore(str(tmp_path), node_id="../x")
    NodeStore(str(tmp_path), node_id="n1").close()
    assert failed.value  # the error is still at hand, as it is when a caller logs it


def test_node_id_is_persisted(tmp_path: Path) -> None:
    NodeStore(str(tmp_path), node_id="node-1").close()
    assert (tmp_path / "node-id").read_text() == "node-1\n"
    s = NodeStore(str(tmp_path))
    assert s.node_id == "node-1"
    s.close()
    s = NodeStore(str(tmp_path), node_id="node-2")  # an explicit id wins and is saved
    assert s.node_id == "node-2"
    s.close()
    assert (tmp_path / "node-id").read_text() == "node-2\n"


def test_default_node_id_is_generated_and_valid(tmp_path: Path) -> None:
    s = NodeStore(str(tmp_path))
    s.close()
    assert check_id(s.node_id, "node id") == s.node_id
    assert (tmp_path / "node-id").read_text().strip() == s.node_id
    again = NodeStore(str(tmp_path))
    again.close()
    assert again.node_id == s.node_id


@pytest.mark.parametrize("bad", ["../x", "a/b", "a" * 64, ".x"])
def test_invalid_node_id_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StoreError, match="invalid node id"):
        NodeStore(str(tmp_path), node_id=bad)


def test_invalid_saved_node_id_is_refused(tmp_path: Path) -> None:
    (tmp_path / "node-id").write_text("../../etc\n")
    with pytest.raises(StoreError, match="invalid node id"):
        NodeStore(str(tmp_path))


def test_unusable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create data dir"):
        NodeStore(str(tmp_path / "file" / "data"))


# -- queries ------------------------------------------------------------------------------------


def test_records_since_until(store: NodeStore) -> None:
    store.store(batch("b1", THREE_HOURS))
    store.store(batch("b2", line(11, 30)))

    def hours(since: int | None, until: int | None) -> list[int]:
        return [h for h, _ in store.records(since, until)]

    assert hours(None, None) == [H10, H11, H12]
    assert hours(H11, None) == [H11, H12]
    assert hours(at(11, 10), None) == [H11, H12]
    assert hours(None, H11) == [H10]
    assert hours(None, H11 + 1) == [H10, H11]
    assert hours(H11, H12) == [H11]
    assert hours(at(12, 59) + 1, None) == []
    assert hours(at(10, 3), at(11, 0)) == []  # hour 10 ends at 10:02, hour 11 starts at 11:00
    # within an hour, records wholly outside the range are skipped
    assert [r.meta.batch_id for r in all_records(store, at(11, 10), H12)] == ["b2"]
    assert [r.meta.batch_id for r in all_records(store, H11, at(11, 10))] == ["b1"]


def test_stats(store: NodeStore) -> None:
    empty = store.stats()
    assert (empty["node"], empty["lines"], empty["first"], empty["last"], empty["segments"],
            empty["batches"], empty["disk_bytes"]) == ("n1", 0, None, None, 0, 0, 0)
    store.store(batch("b1", THREE_HOURS))
    store.store(batch("b2", ONE_HOUR))
    st = store.stats()
    assert st["lines"] == 8
    assert st["unparsed"] == 1
    assert st["first"] == at(10, 1)
    assert st["last"] == at(12, 59)
    assert st["segments"] == 3
    assert st["batches"] == 2
    assert st["raw_bytes"] == len(THREE_HOURS) + len(ONE_HOUR)
    assert st["disk_bytes"] == sum(segment_sizes(store).values())


class GrepView:
    """A stored Record seen through the fields grep needs."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.batch_id, self.host = record.meta.batch_id, record.meta.host
        self.t0, self.t1 = record.meta.t0, record.meta.t1

    def lines(self) -> bytes:
        return self.record.lines()

    def ts(self) -> list[int]:
        return self.record.ts()


def test_grep_over_stored_records(store: NodeStore) -> None:
    store.store(batch("b1", THREE_HOURS))
    rx = GrepQuery(b"GET /[bc]").compile()
    rows = [row for _, recs in store.records()
            for row in grep_hour([GrepView(r) for r in recs], rx, False, None, None)]
    assert rows == [(at(10, 2), "b1", 1, "web1", line(10, 2, "/b").rstrip(b"\n")),
                    (at(11, 0), "b1", 0, "web1", line(11, 0, "/c").rstrip(b"\n"))]


def test_empty_batch_stores_nothing(store: NodeStore) -> None:
    result = store.store(batch("b1", b""))
    assert result.lines == 0
    assert all_records(store) == []


def test_every_stored_line_has_a_time(store: NodeStore) -> None:
    store.store(batch("b1", b"1.2.3.4 - - [20/May/2015:10\n" + line(11, 0) + line(12, 0)))
    for rec in all_records(store):
        assert len(rec.ts()) == rec.lines().count(b"\n") == rec.meta.lines


def test_retain_deletes_only_whole_segments_older_than_the_window(tmp_path: Path) -> None:
    s = NodeStore(str(tmp_path), node_id="n1")
    try:
        s.store(batch("b1", line(10, 1) + line(10, 59)))  # the 10:00 hour
        s.store(batch("b2", line(11, 30)))  # the 11:00 hour
        s.store(batch("b3", line(12, 5)))  # the 12:00 hour
        now = H12 + 3600 + 600  # 13:10 on a fake clock
        # a 90-minute window: 10:00-11:00 is wholly older, 11:00-12:00 reaches 11:40
        kept_while_written = s.retain(90 * 60, now=now)  # everything was written just now
        assert kept_while_written == []
        deleted = s.retain(90 * 60, now=now, idle=0)
        assert [Path(p).name for p in deleted] == [f"{H10}.seg"]
        assert [h for h, _ in s.records()] == [H11, H12]
        assert not (tmp_path / "segments" / f"{H10}.seg").exists()
        # a redelivered old batch is stored again after its segment is gone
        assert not s.store(batch("b1", line(10, 1) + line(10, 59))).duplicate
    finally:
        s.close()
