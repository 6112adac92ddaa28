"""How a node cuts batches into records (logmr.store.node), as it does by default: a whole
batch makes one record, in the segment of the hour of its earliest line, unless it spans
more than MAX_SPAN; then it makes one record per UTC day. Ranges, retention, grep's time
order and re-parsing hold for records that reach past their segment's hour."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logmr import wire
from logmr.mapfn.grep import due
from logmr.store import mapjobs, node
from logmr.store.node import NodeStore
from logmr.store.reparse import ReparseSpec
from logmr.timeutil import ClfClock
from logmr.wire import Batch
from tests.unit.test_node import H10, H11, H12, at, line

DAY = 86400


def dated(day: int, hh: int, mm: int, path: str = "/") -> bytes:
    """One combined line on ``day`` May 2015 at hh:mm UTC."""
    return (f'1.2.3.4 - - [{day:02d}/May/2015:{hh:02d}:{mm:02d}:00 +0000] "GET {path} '
            'HTTP/1.1" 200 5 "-" "ua"\n').encode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[NodeStore]:
    s = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    yield s
    s.close()


def batch(batch_id: str, lines: bytes, host: str = "web1") -> Batch:
    return Batch(batch_id, host, "combined", lines)


def layout(store: NodeStore, since: int | None = None, until: int | None = None
           ) -> list[tuple[int, str, int, int]]:
    return [(hour, r.meta.batch_id, r.meta.part, r.meta.lines)
            for hour, records in store.records(since, until) for r in records]


class Job:
    """What a map job sends, kept."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def send_data(self, data: bytes) -> None:
        self.rows.extend(tuple(r) for r in wire.unpack_rows(data))

    def send_status(self, done: int, total: int) -> None:
        assert 0 <= done <= total


def grep(store: NodeStore, **args: Any) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    job = Job()
    answer = mapjobs.map_grep(store, job, {"pattern": "GET", **args}, 1e18)  # type: ignore[arg-type]
    return job.rows, answer


def test_a_batch_over_hours_is_one_record_in_its_first_hour(store: NodeStore) -> None:
    blob = line(10, 1, "/a") + line(11, 0, "/b") + line(12, 59, "/c")
    store.store(batch("b1", blob))
    assert layout(store) == [(H10, "b1", 0, 3)]
    [rec] = [r for _, records in store.records() for r in records]
    assert rec.lines() == blob
    assert (rec.meta.t0, rec.meta.t1) == (at(10, 1), at(12, 59))
    # a range that starts after the record's hour still finds it; one after it does not
    assert layout(store, since=H12) == [(H10, "b1", 0, 3)]
    assert layout(store, since=at(12, 59) + 1) == []
    assert layout(store, until=H10) == []


def test_a_batch_over_more_than_max_span_is_one_record_per_day(store: NodeStore) -> None:
    days = [20, 21, 21, 29]
    blob = b"".join(dated(d, 10 + i, 0, f"/{i}") for i, d in enumerate(days))
    store.store(batch("b1", blob))
    start = at(10, 0)
    assert node.MAX_SPAN < 9 * DAY
    assert layout(store) == [(start, "b1", 0, 1), (start + DAY + 3600, "b1", 1, 2),
                             (start + 9 * DAY + 3 * 3600, "b1", 2, 1)]
    # every line stored once, in its day's record, and the batch again is a duplicate
    stored = b"".join(r.lines() for _, records in store.records() for r in records)
    assert stored == blob
    assert store.store(batch("b1", blob)).duplicate


def test_grep_gives_time_order_across_records_that_overlap(store: NodeStore) -> None:
    # two hosts' batches, each over two hours or so, starting every 20 minutes: each
    # reaches into the hours of the records after it
    rng = random.Random(7)
    shipped: list[bytes] = []
    for b in range(6):
        minutes = sorted(rng.sample(range(b * 14, b * 14 + 110), 25))
        lines = [line(10 + m // 60, m % 60, f"/{b}/{m}") for m in minutes]
        shipped.extend(lines)
        store.store(batch(f"b{b}", b"".join(lines), host=f"web{b % 2}"))
    assert len({h for h, _ in store.records()}) > 1
    rows, answer = grep(store)
    assert answer["count"] == len(rows) == len(shipped)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert rows == sorted(rows)
    assert sorted(r[4] + b"\n" for r in rows) == sorted(shipped)
    # a range, a limit and a resumed stream cut the same order
    part, _ = grep(store, since=H11, until=H12)
    assert part == [r for r in rows if H11 <= r[0] < H12]
    first, _ = grep(store, limit=40)
    assert first == rows[:40]
    rest, _ = grep(store, after=list(rows[39][:3]))
    assert rest == rows[40:]
    # grep -c counts the same lines
    _, counted = grep(store, count_only=True)
    assert counted["count"] == len(shipped)


def test_due_merges_held_rows_and_cuts_at_the_hour() -> None:
    held = [(5, "a", 0, "h", b"x"), (9, "a", 1, "h", b"y")]
    new = [(6, "b", 0, "h", b"z"), (12, "b", 1, "h", b"w")]
    out, kept = due(held, new, 9)
    assert out == [held[0], new[0]]
    assert kept == [held[1], new[1]]
    out, kept = due(kept, [], None)
    assert (out, kept) == ([held[1], new[1]], [])


def test_retention_keeps_a_record_until_its_newest_line_is_old(tmp_path: Path) -> None:
    s = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    try:
        s.store(batch("b1", line(10, 1) + line(12, 50)))
        now = H12 + 3600 + 600  # 13:10
        assert s.retain(90 * 60, now=now, idle=0) == []  # 12:50 is within 90 minutes
        assert layout(s) == [(H10, "b1", 0, 2)]
        deleted = s.retain(10 * 60, now=now, idle=0)  # now every line is older
        assert [Path(p).name for p in deleted] == [f"{H10}.seg"]
        assert layout(s) == []
    finally:
        s.close()


def test_reparse_keeps_lines_past_the_records_hour(store: NodeStore) -> None:
    # stored with the wrong format, so that a re-parse reads every line anew
    blob = line(10, 1, "/a") + line(11, 30, "/b") + line(12, 59, "/c")
    store.store(Batch("b1", "web1", "common", blob))
    spec = ReparseSpec("combined")
    result = store.rewrite_hour(H10, lambda r: spec.derive(r, ClfClock()))
    assert result.changed == 1
    [rec] = [r for _, records in store.records() for r in records]
    assert list(rec.ts()) == [at(10, 1), at(11, 30), at(12, 59)]
    assert rec.columns()["user_agent"] == [b"ua"] * 3
    assert layout(store, since=H11 + 1800) == [(H10, "b1", 0, 3)]
