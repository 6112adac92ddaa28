"""Unit tests of re-parsing (logmr.store.reparse and NodeStore.rewrite_hour): a node's
data directory, without the network. The oracle is a second store given the right
format when the lines arrived."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logmr.errors import LogmrError
from logmr.store.node import NodeStore, Record
from logmr.store.reparse import STATE_FILE, Reparser, ReparseSpec
from logmr.timeutil import ClfClock
from logmr.wire import Batch
from tests.unit.test_node import H10, H11, H12, THREE_HOURS, line

pytestmark = pytest.mark.usefixtures("hourly_records")

WRONG = "vhost_combined"  # reads no combined line: %v:%p takes the client's address
MIXED = THREE_HOURS + line(12, 30, "/e", 404) + b"not a log line\n"


def stored(store: NodeStore) -> dict[tuple[str, int], tuple[Any, ...]]:
    """Every record by key: lines, times, columns, unparsed count, format, sequence."""
    return {(r.meta.batch_id, r.meta.part): (r.lines(), list(r.ts()), r.columns(),
                                             r.meta.unparsed, r.meta.fmt, r.seq)
            for _, records in store.records() for r in records}


def fill(path: Path, fmt: str) -> NodeStore:
    s = NodeStore(str(path), node_id="n1")
    s.store(Batch("b1", "web1", fmt, MIXED))
    s.store(Batch("b2", "web2", fmt, line(11, 5, "/f") + line(11, 6, "/g")))
    return s


@pytest.fixture
def right(tmp_path: Path) -> Iterator[NodeStore]:
    s = fill(tmp_path / "right", "combined")
    yield s
    s.close()


@pytest.fixture
def wrong(tmp_path: Path) -> Iterator[NodeStore]:
    s = fill(tmp_path / "wrong", WRONG)
    yield s
    s.close()


def reparse_all(store: NodeStore, spec: ReparseSpec) -> list[int]:
    clock = ClfClock()
    changed = []
    for hour in [h for h, _ in store.records()]:
        changed.append(store.rewrite_hour(hour, lambda r: spec.derive(r, clock)).changed)
    return changed


def segment_files(store: NodeStore) -> list[str]:
    return sorted(os.listdir(store.seg_dir))


def test_a_wrong_format_reads_nothing_and_keeps_every_line(wrong: NodeStore) -> None:
    records = stored(wrong)
    assert sum(v[3] for v in records.values()) == 8  # every line unparsed
    assert b"".join(v[0] for v in records.values()).count(b"\n") == 8


@pytest.mark.parametrize("fmt", ["combined", "auto"])
def test_reparse_gives_what_the_right_format_gave_at_ingest(
        wrong: NodeStore, right: NodeStore, fmt: str) -> None:
    before = stored(wrong)
    assert reparse_all(wrong, ReparseSpec(fmt)) == [1, 2, 1]  # b2 shares b1's 11:00 hour
    after = stored(wrong)
    expect = stored(right)
    assert after.keys() == before.keys() == expect.keys()
    for key, (lines, ts, columns, unparsed, used, seq) in after.items():
        assert lines == before[key][0]  # the raw bytes, as they came
        assert seq == before[key][5]  # a listing taken before still names the same records
        assert (ts, columns, unparsed) == expect[key][1:4], key
        assert used == "combined"
    assert sum(v[3] for v in after.values()) == 1  # "not a log line" stays unparsed


def test_reparse_again_changes_nothing(wrong: NodeStore) -> None:
    reparse_all(wrong, ReparseSpec("combined"))
    files = segment_files(wrong)
    assert reparse_all(wrong, ReparseSpec("combined")) == [0, 0, 0]
    assert segment_files(wrong) == files


def test_a_poorer_format_loses_nothing(tmp_path: Path, right: NodeStore) -> None:
    poor = fill(tmp_path / "poor", "common")  # reads combined lines, without referer or agent
    try:
        assert "user_agent" not in next(iter(stored(poor).values()))[2]
        reparse_all(poor, ReparseSpec("auto"))
        assert {k: v[:4] for k, v in stored(poor).items()} == {
            k: v[:4] for k, v in stored(right).items()}
    finally:
        poor.close()


def test_the_rewritten_segments_are_read_after_a_restart(tmp_path: Path) -> None:
    s = fill(tmp_path / "d", WRONG)
    reparse_all(s, ReparseSpec("combined"))
    after = stored(s)
    s.close()
    assert segment_files(s) == [f"{H10}.1.seg", f"{H11}.1.seg", f"{H12}.1.seg"]
    again = NodeStore(str(tmp_path / "d"))
    try:
        assert {k: v[:5] for k, v in stored(again).items()} == {
            k: v[:5] for k, v in after.items()}
        again.store(Batch("b3", "web1", "combined", line(11, 7, "/h")))  # appends to gen 1
        assert segment_files(again) == [f"{H10}.1.seg", f"{H11}.1.seg", f"{H12}.1.seg"]
        assert len(stored(again)) == 5
    finally:
        again.close()


def test_a_rewrite_cut_short_leaves_the_old_segment(tmp_path: Path) -> None:
    s = fill(tmp_path / "d", WRONG)
    before = stored(s)
    s.close()
    seg = Path(s.seg_dir)
    (seg / f"{H10}.1.seg.tmp").write_bytes(b"half a segment")  # stopped before the rename
    # stopped after the rename, before the old one was deleted
    (seg / f"{H11}.1.seg").write_bytes((seg / f"{H11}.seg").read_bytes())
    again = NodeStore(str(tmp_path / "d"))
    try:
        assert segment_files(again) == [f"{H10}.seg", f"{H11}.1.seg", f"{H12}.seg"]
        assert {k: v[:5] for k, v in stored(again).items()} == {
            k: v[:5] for k, v in before.items()}
    finally:
        again.close()


def test_a_reader_keeps_the_segment_it_listed_until_it_ends(wrong: NodeStore) -> None:
    with wrong.reading():
        listed = [r for _, records in wrong.records() for r in records]
        lines = [r.lines() for r in listed]
        old = segment_files(wrong)
        reparse_all(wrong, ReparseSpec("combined"))
        assert set(old) <= set(segment_files(wrong))  # still there for this reader
        wrong._cache.clear()  # read from the files it listed, not the cache
        assert [r.lines() for r in listed] == lines
        assert listed[0].columns()["status"] == [0, 0]  # the old columns, as listed
    assert not set(old) & set(segment_files(wrong))  # gone once it ended


def test_lines_arriving_during_a_rewrite_are_rewritten_too(wrong: NodeStore) -> None:
    spec, clock = ReparseSpec("combined"), ClfClock()
    arrived: list[Any] = []

    def derive(record: Record) -> Any:
        if not arrived:  # a batch for the same hour lands while the hour is read
            arrived.append(wrong.store(Batch("late", "web1", WRONG, line(11, 9, "/late"))))
        return spec.derive(record, clock)

    result = wrong.rewrite_hour(H11, derive)
    assert arrived[0].lines == 1
    assert (result.records, result.changed) == (3, 3)
    late = stored(wrong)[("late", 0)]
    assert (late[2]["url"], late[3], late[4]) == ([b"/late"], 0, "combined")


def test_only_the_host_asked_for_is_reparsed(wrong: NodeStore) -> None:
    reparse_all(wrong, ReparseSpec("combined", host="web2"))
    unparsed = {k: v[3] for k, v in stored(wrong).items()}
    assert unparsed == {("b1", 0): 2, ("b1", 1): 1, ("b1", 2): 3, ("b2", 0): 0}


def test_the_range_limits_what_is_reparsed(wrong: NodeStore) -> None:
    reparse_all(wrong, ReparseSpec("combined", since=H11, until=H12))
    formats = {k: v[4] for k, v in stored(wrong).items()}
    assert formats == {("b1", 0): WRONG, ("b1", 1): "combined", ("b2", 0): "combined",
                       ("b1", 2): WRONG}


def wait_for(reparser: Reparser, state: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert reparser.progress is not None
        if reparser.progress.state == state:
            return reparser.progress.answer()
        time.sleep(0.01)
    raise AssertionError(f"re-parse not {state} within {timeout} s")


def test_a_reparser_works_in_the_background_and_reports(wrong: NodeStore) -> None:
    reparser = Reparser(wrong)
    first = reparser.request({"run": "r1", "format": "combined"})
    assert first["hours_total"] == 3
    answer = wait_for(reparser, "done")
    assert (answer["hours_done"], answer["records"], answer["changed"], answer["lines"]) == (
        3, 4, 4, 8)
    assert (answer["unparsed_before"], answer["unparsed_after"]) == (8, 1)
    assert reparser.request({"run": "r1", "format": "combined"}) == answer  # polled again
    saved = json.loads(Path(wrong.data_dir, STATE_FILE).read_text())
    assert saved["state"] == "done"
    assert oct(os.stat(Path(wrong.data_dir, STATE_FILE)).st_mode & 0o777) == "0o600"


def test_a_node_stopped_midway_goes_on_where_it_stopped(tmp_path: Path) -> None:
    s = fill(tmp_path / "d", WRONG)
    spec = ReparseSpec("combined")
    # as a node stopped after its first hour leaves it
    state = {"run": "r1", "spec": {"fmt": "combined", "host": None, "since": None,
                                   "until": None},
             "hours": [H10, H11, H12], "done": [H10], "state": "running"}
    Path(s.data_dir, STATE_FILE).write_text(json.dumps(state))
    reparser = Reparser(s)
    reparser.resume()
    answer = wait_for(reparser, "done")
    assert answer["hours_done"] == 3 and answer["changed"] == 3  # H10 was not done again
    formats = {k: v[4] for k, v in stored(s).items()}
    assert formats[("b1", 0)] == WRONG and formats[("b1", 2)] == "combined"
    # asked again, a new run with the same options reads H10 too
    reparser.request({"run": "r2", "format": "combined"})
    assert wait_for(reparser, "done")["changed"] == 1
    assert spec.key() == ReparseSpec("combined").key() != ReparseSpec("auto").key()
    s.close()


def test_one_reparse_at_a_time(wrong: NodeStore) -> None:
    reparser = Reparser(wrong)
    with wrong._rewrite_lock:  # holds the first re-parse at its first hour
        reparser.request({"run": "r1", "format": "combined"})
        with pytest.raises(LogmrError, match="re-parsing with other options"):
            reparser.request({"run": "r2", "format": "common"})
        # the same options follow the one running
        assert reparser.request({"run": "r3", "format": "combined"})["run"] == "r1"
    wait_for(reparser, "done")
    reparser.request({"run": "r4", "format": "common"})  # once it ended, another may start
    assert wait_for(reparser, "done")["changed"] == 4


@pytest.mark.parametrize("args, message", [
    ({"run": "r", "format": 3}, "format must be a log format"),
    ({"run": "r", "format": "%Q nonsense %"}, "format"),
    ({"run": "r", "host": ["x"]}, "host must be a host name"),
    ({"run": "r", "since": "1h"}, "since must be epoch seconds"),
    ({"format": "combined"}, "run must name the request"),
])
def test_bad_requests_are_refused(wrong: NodeStore, args: dict[str, Any], message: str
                                  ) -> None:
    with pytest.raises(LogmrError, match=message):
        Reparser(wrong).request(args)
