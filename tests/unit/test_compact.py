"""Compaction (NodeStore.compact): ingest writes records of encoding 1, and an idle
segment is rewritten as columns (encoding 2) with the same lines, times, columns and
report frames, across a restart too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polars.testing import assert_frame_equal

from logmr.store import mapjobs
from logmr.store.node import NodeStore
from logmr.wire import Batch
from tests.unit.test_node import line
from tests.unit.test_spans import grep

HACKERS = Path(__file__).resolve().parents[2] / "samples" / "apache_combined_hackers.log"


def held(store: NodeStore) -> list[tuple[Any, ...]]:
    """Every record as queries read it."""
    out = []
    for hour, records in store.records():
        for r in records:
            out.append((hour, r.meta.batch_id, r.meta.part, r.lines(), list(r.ts()),
                        r.columns()))
    return out


def test_idle_segments_are_rewritten_as_columns(tmp_path: Path) -> None:
    s = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    try:
        lines = HACKERS.read_bytes().splitlines(keepends=True)
        for i in range(0, 1200, 400):
            s.store(Batch(f"b{i}", "web1", "combined", b"".join(lines[i:i + 400])))
        s.store(Batch("odd", "web2", "combined", line(10, 1) + b"not a line\n" + line(11, 5)))
        before = held(s)
        frames = [mapjobs.record_frame_of(s, r) for _, rs in s.records() for r in rs]
        rows, _ = grep(s)
        disk = s.stats()["disk_bytes"]
        assert s.to_compact() == len(before) == 4
        assert s.compact(idle=3600) == 0  # every segment was written just now
        assert s.compact(idle=0) == 4
        assert s.to_compact() == 0 and s.stats()["records_to_compact"] == 0
        assert all(r.meta.enc == 2 for _, rs in s.records() for r in rs)
        assert held(s) == before
        after = [mapjobs.record_frame_of(s, r) for _, rs in s.records() for r in rs]
        for (a, bad_a), (b, bad_b) in zip(frames, after, strict=True):
            assert_frame_equal(a, b)
            assert bad_a == bad_b
        assert grep(s)[0] == rows
        assert s.stats()["disk_bytes"] < disk
        assert s.compact(idle=0) == 0  # nothing left to do
    finally:
        s.close()
    again = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    try:
        assert held(again) == before
        assert again.to_compact() == 0
        assert not again.store(Batch("b0", "web1", "combined",
                                     b"".join(lines[0:400]))).records  # still a duplicate
    finally:
        again.close()
