"""Unit tests of logmr.mapfn.sessions, and an end-to-end check against bench/genvisits.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.errors import ConfigError, WireError
from logmr.mapfn.sessions import (
    DURATION_BUCKETS,
    Hit,
    SessionStats,
    funnel_reach,
    sessionize,
)

GENVISITS = Path(__file__).resolve().parents[2] / "bench" / "genvisits.py"
FUNNEL = (b"/a", b"/b", b"/c")


def urls(sessions: list[list[Hit]]) -> list[list[bytes]]:
    return [[u for _, u in s] for s in sessions]


def session(*pages: str, gap: int = 10) -> list[Hit]:
    return [(i * gap, p.encode()) for i, p in enumerate(pages)]


def stats_of(*sessions: list[Hit], **config: Any) -> SessionStats:
    stats = SessionStats(**config)
    for s in sessions:
        stats.add(s)
    return stats


# sessionize


def test_gap_equal_to_timeout_stays_greater_splits() -> None:
    hits = [(0, b"/a"), (1800, b"/b"), (3601, b"/c"), (3601, b"/d")]
    assert urls(list(sessionize(hits, 1800))) == [[b"/a", b"/b"], [b"/c", b"/d"]]
    assert urls(list(sessionize(hits, 1799))) == [[b"/a"], [b"/b"], [b"/c", b"/d"]]


def test_sessionize_edges() -> None:
    assert list(sessionize([], 30)) == []
    assert list(sessionize([(5, b"/")], 30)) == [[(5, b"/")]]
    same_second = [(7, b"/x"), (7, b"/a"), (7, b"/x")]
    assert list(sessionize(same_second, 0)) == [same_second]  # ties keep input order
    assert urls(list(sessionize([(0, b"/"), (1, b"/")], 0))) == [[b"/"], [b"/"]]
    assert urls(list(sessionize(iter([(0, b"/a"), (31, b"/b")]), 30))) == [[b"/a"], [b"/b"]]


def test_sessionize_refuses_unsorted_hits_and_negative_timeout() -> None:
    with pytest.raises(ValueError, match="out of time order"):
        list(sessionize([(10, b"/"), (9, b"/")], 30))
    with pytest.raises(ConfigError):
        list(sessionize([], -1))


# SessionStats.add and to_report


@pytest.mark.parametrize(("duration", "bucket"), [
    (0, "0-30s"), (29, "0-30s"), (30, "30s-2m"), (119, "30s-2m"), (120, "2-5m"),
    (299, "2-5m"), (300, "5-15m"), (899, "5-15m"), (900, "15-30m"), (1799, "15-30m"),
    (1800, "30m-1h"), (3599, "30m-1h"), (3600, "1h+"), (10**6, "1h+"),
])
def test_duration_buckets(duration: int, bucket: str) -> None:
    stats = stats_of([(100, b"/"), (100 + duration, b"/x")])
    buckets = stats.to_report(10)["sessions"]["duration_buckets"]
    assert list(buckets) == ["0-30s", "30s-2m", "2-5m", "5-15m", "15-30m", "30m-1h", "1h+"]
    assert {k: n for k, n in buckets.items() if n} == {bucket: 1}


def test_bounces_rates_and_empty_report() -> None:
    report = stats_of(session("/"), session("/a", "/b"), session("/a", "/b", "/c", "/d"))
    assert report.to_report(5)["sessions"] == {
        "count": 3, "bounces": 1, "bounce_rate": 0.3333, "pages_per_session": 2.33,
        "duration_buckets": {"0-30s": 2, "30s-2m": 1, "2-5m": 0, "5-15m": 0, "15-30m": 0,
                             "30m-1h": 0, "1h+": 0},
    }
    empty = SessionStats().to_report(5)
    assert empty["sessions"]["bounce_rate"] == 0 and empty["sessions"]["pages_per_session"] == 0
    assert empty == {"sessions": empty["sessions"], "entry_pages": [], "exit_pages": [],
                     "paths": []}


def test_entry_exit_paths_sorted_by_count_then_url_and_limited() -> None:
    stats = stats_of(session("/b", "/x"), session("/a", "/x"), session("/c", "/y"),
                     session("/c", "/y"), session("/1", "/2", "/3", "/4", "/5", "/6"))
    report = stats.to_report(3)
    assert report["entry_pages"] == [{"url": "/c", "sessions": 2}, {"url": "/1", "sessions": 1},
                                     {"url": "/a", "sessions": 1}]
    assert report["exit_pages"] == [{"url": "/x", "sessions": 2}, {"url": "/y", "sessions": 2},
                                    {"url": "/6", "sessions": 1}]
    assert report["paths"] == [{"path": ["/c", "/y"], "sessions": 2},
                               {"path": ["/1", "/2", "/3", "/4", "/5"], "sessions": 1},
                               {"path": ["/a", "/x"], "sessions": 1}]
    assert stats_of(session("/1", "/2", "/3"), path_len=2).to_report(1)["paths"] == [
        {"path": ["/1", "/2"], "sessions": 1}]
    assert stats.to_report(0)["entry_pages"] == []


def test_urls_are_decoded_with_backslashreplace() -> None:
    report = stats_of([(0, b"/caf\xc3\xa9"), (1, b"/bad\xff")]).to_report(5)
    assert report["entry_pages"] == [{"url": "/café", "sessions": 1}]
    assert report["exit_pages"] == [{"url": "/bad\\xff", "sessions": 1}]


def test_funnel_is_an_ordered_subsequence() -> None:
    assert funnel_reach([b"/a", b"/x", b"/b", b"/y", b"/c"], FUNNEL) == 3
    assert funnel_reach([b"/b", b"/c", b"/a"], FUNNEL) == 1  # order matters
    assert funnel_reach([b"/x", b"/b", b"/c"], FUNNEL) == 0
    assert funnel_reach([b"/a", b"/a", b"/c", b"/b"], FUNNEL) == 2
    assert funnel_reach([b"/a"], ()) == 0
    stats = stats_of(session("/a", "/x", "/b"), session("/a", "/b", "/c"), session("/b"),
                     session("/c", "/a"), funnel_steps=FUNNEL)
    assert stats.to_report(5)["funnel"] == [{"step": "/a", "visits": 3},
                                           {"step": "/b", "visits": 2},
                                           {"step": "/c", "visits": 1}]


def test_transitions_with_entry_and_exit_markers() -> None:
    stats = stats_of(session("/p"), session("/a", "/p", "/b", "/p"), session("/p", "/p", "/a"),
                     session("/x"), transitions_url=b"/p")
    assert stats.to_report(10)["transitions"] == {
        "url": "/p",
        "previous": [{"url": "(entry)", "count": 2}, {"url": "/a", "count": 1},
                     {"url": "/b", "count": 1}, {"url": "/p", "count": 1}],
        "next": [{"url": "(exit)", "count": 2}, {"url": "/a", "count": 1},
                 {"url": "/b", "count": 1}, {"url": "/p", "count": 1}],
    }
    assert "transitions" not in stats_of(session("/p")).to_report(10)


def test_add_refuses_empty_session_and_bad_config() -> None:
    with pytest.raises(ValueError):
        SessionStats().add([])
    with pytest.raises(ConfigError):
        SessionStats(path_len=0)


# merge and partials

hits = st.lists(st.tuples(st.integers(0, 4000), st.sampled_from([*FUNNEL, b"/x", b"/"])),
                min_size=1, max_size=8).map(sorted)
session_lists = st.lists(hits, max_size=6)
CONFIG: dict[str, Any] = {"path_len": 3, "transitions_url": b"/b", "funnel_steps": FUNNEL}


@settings(max_examples=150, deadline=None)
@given(session_lists, session_lists, session_lists)
def test_merge_is_associative_commutative_and_equals_one_pass(
        a: list[list[Hit]], b: list[list[Hit]], c: list[list[Hit]]) -> None:
    sa, sb, sc = (stats_of(*x, **CONFIG) for x in (a, b, c))
    assert sa.merge(sb) == sb.merge(sa)
    assert sa.merge(sb).merge(sc) == sa.merge(sb.merge(sc))
    assert sa.merge(sb).merge(sc) == stats_of(*a, *b, *c, **CONFIG)
    assert sa.merge(SessionStats(**CONFIG)) == sa
    assert sa == stats_of(*a, **CONFIG)  # operands unchanged


@settings(max_examples=100, deadline=None)
@given(session_lists)
def test_partial_round_trips_through_msgpack(sessions: list[list[Hit]]) -> None:
    stats = stats_of(*sessions, **CONFIG)
    wire = msgpack.unpackb(msgpack.packb(stats.to_partial()), use_list=False)
    assert SessionStats.from_partial(wire) == stats
    assert SessionStats.from_partial(wire).to_report(10) == stats.to_report(10)


def test_merge_refuses_different_config() -> None:
    with pytest.raises(ConfigError):
        SessionStats(path_len=3).merge(SessionStats(path_len=4))
    with pytest.raises(ConfigError):
        SessionStats(funnel_steps=FUNNEL).merge(SessionStats())


def test_from_partial_refuses_malformed_data() -> None:
    good = SessionStats().to_partial()
    bad_partials: list[Any] = [{**good, "v": 99}, {**good, "durations": [0]}, {"v": 1}, [],
                               None, {**good, "paths": 3}]
    for bad in bad_partials:
        with pytest.raises(WireError):
            SessionStats.from_partial(bad)


# end to end: a generated log, read back by a tiny reference parser

LINE = re.compile(rb'^(\S+) \S+ \S+ \[([^\]]+)\] "\S+ (\S+) [^"]*" \d{3} \S+ "[^"]*" "([^"]*)"$')
STATIC = (b".css", b".js", b".png", b".jpg", b".gif", b".ico", b".svg", b".woff2")


def read_log(path: Path) -> tuple[dict[tuple[bytes, bytes], list[Hit]], dict[str, int]]:
    """Page hits per visitor (ip, ua), in file order, and the line totals."""
    visitors: dict[tuple[bytes, bytes], list[Hit]] = defaultdict(list)
    totals = {"lines": 0, "page_views": 0, "bot_lines": 0, "static_lines": 0}
    last_ts = 0
    for line in path.read_bytes().splitlines():
        m = LINE.match(line)
        assert m, line
        ip, stamp, url, agent = m.groups()
        ts = int(datetime.strptime(stamp.decode(), "%d/%b/%Y:%H:%M:%S %z").timestamp())
        assert ts >= last_ts, "lines are in time order"
        last_ts = ts
        totals["lines"] += 1
        if b"bot" in agent.lower():
            totals["bot_lines"] += 1
        elif url.split(b"?", 1)[0].endswith(STATIC):
            totals["static_lines"] += 1
        else:
            totals["page_views"] += 1
            visitors[(ip, agent)].append((ts, url))
    return visitors, totals | {"visitors": len(visitors)}


@pytest.mark.parametrize("args", [
    [],
    ["--timeout", "600", "--funnel", "/,/products,/pricing", "--transitions", "/", "--seed", "7"],
])
def test_generated_log_matches_its_truth(tmp_path: Path, args: list[str]) -> None:
    log = tmp_path / "visits.log"
    subprocess.run([sys.executable, str(GENVISITS), "5000", str(log), "--start", "1700000000",
                    *args], check=True, capture_output=True)
    truth = json.loads((tmp_path / "visits.truth.json").read_text())
    visitors, totals = read_log(log)
    assert totals == truth["totals"]
    steps = tuple(step["step"].encode() for step in truth["funnel"])
    stats = SessionStats(path_len=truth["definitions"]["path_len"], funnel_steps=steps,
                         transitions_url=truth["transitions"]["url"].encode())
    for page_hits in visitors.values():
        for s in sessionize(page_hits, truth["definitions"]["timeout"]):
            stats.add(s)
    report = stats.to_report(limit=10**9)
    for key in ("entry_pages", "exit_pages"):
        assert [(r["url"], r["sessions"]) for r in report[key]] == list(truth[key].items())
    assert {k: report[k] for k in ("sessions", "paths", "transitions", "funnel")} == {
        k: truth[k] for k in ("sessions", "paths", "transitions", "funnel")}
    assert report["sessions"]["bounces"] > 0 and all(
        report["sessions"]["duration_buckets"][name] for name, _ in DURATION_BUCKETS[:-1])


# -- the column-wise counting used by reports agrees with the hit-by-hit reference ----------

_URLS = st.sampled_from([b"/", b"/a", b"/b", b"/c"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5000), _URLS), max_size=60),
       st.sampled_from([0, 60, 1800]))
def test_columnwise_sessions_equal_the_reference(hits: list[tuple[int, int, bytes]],
                                                 timeout: int) -> None:
    import polars as pl

    from logmr.reduce.clicks import session_stats

    funnel, transitions = (b"/", b"/a", b"/b"), b"/a"
    frame = pl.DataFrame({"visitor": [h[0] for h in hits], "ts": [h[1] for h in hits],
                          "url": [h[2] for h in hits]},
                         schema={"visitor": pl.Int64, "ts": pl.Int64, "url": pl.Binary})
    got = session_stats(frame, timeout, 3, transitions, funnel)
    want = SessionStats(path_len=3, transitions_url=transitions, funnel_steps=funnel)
    for visitor in sorted({h[0] for h in hits}):
        mine = sorted((ts, url) for v, ts, url in hits if v == visitor)
        for session in sessionize(mine, timeout):
            want.add(session)
    assert got.to_report(1000) == want.to_report(1000)
