"""Click analysis on the reduce side: merge every node's page stream per visitor, cut it
into sessions, count them.

A visitor's page views can sit on several nodes; each node sends its page views, and here
they are put in one order (visitor, time, url) and cut into sessions, so the sessions never
depend on how batches were spread. The counting is done column-wise (polars); it fills the
same :class:`SessionStats` that ``logmr.mapfn.sessions`` defines hit by hit, and the tests
hold the two to the same answers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import polars as pl

from logmr.mapfn.sessions import DURATION_BUCKETS, ENTRY, EXIT, SessionStats
from logmr.mapfn.spec import CLICK, ReportSpec


def click_reports(stats: SessionStats | None, spec: ReportSpec) -> dict[str, Any]:
    """The requested click-analysis reports from the session counts of every range of
    visitor hashes (see :mod:`logmr.reduce.ranges`)."""
    if stats is None:
        stats = SessionStats(path_len=spec.paths_length, transitions_url=spec.transitions,
                             funnel_steps=spec.funnel)
    report = stats.to_report(spec.limit)
    wanted = {r for r in spec.reports if r in CLICK}
    return {name: value for name, value in report.items() if name in wanted}


def session_stats(frame: pl.DataFrame, timeout: int, path_len: int = 5,
                  transitions: bytes | None = None, funnel: tuple[bytes, ...] = ()
                  ) -> SessionStats:
    """Sessions of every visitor in ``frame`` (columns visitor, ts, url), counted."""
    stats = SessionStats(path_len=path_len, transitions_url=transitions, funnel_steps=funnel)
    if frame.height == 0:
        return stats
    hits = frame.sort("visitor", "ts", "url").with_columns(
        ((pl.col("visitor") != pl.col("visitor").shift(1))
         | ((pl.col("ts") - pl.col("ts").shift(1)) > timeout))
        .fill_null(True).cum_sum().alias("sid"),
        pl.int_range(pl.len()).alias("pos"))
    sessions = hits.group_by("sid", maintain_order=True).agg(
        pl.len().alias("n"), (pl.col("ts").last() - pl.col("ts").first()).alias("duration"),
        pl.col("url").first().alias("entry"), pl.col("url").last().alias("exit"),
        pl.col("url").head(path_len).alias("path"))
    stats.count = sessions.height
    stats.page_views = hits.height
    stats.bounces = int((sessions["n"] == 1).sum())
    bounds = [low for _, low in DURATION_BUCKETS]
    for i, low in enumerate(bounds):
        high = bounds[i + 1] if i + 1 < len(bounds) else None
        in_bucket = sessions["duration"] >= low
        if high is not None:
            in_bucket = in_bucket & (sessions["duration"] < high)
        stats.durations[i] = int(in_bucket.sum())
    stats.entry = _counts(sessions["entry"])
    stats.exit = _counts(sessions["exit"])
    stats.paths = Counter({tuple(path): n for path, n in
                           sessions["path"].value_counts().iter_rows()})
    if transitions is not None:
        around = hits.with_columns(
            pl.col("url").shift(1).over("sid").fill_null(ENTRY).alias("previous"),
            pl.col("url").shift(-1).over("sid").fill_null(EXIT).alias("next"),
        ).filter(pl.col("url") == transitions)
        stats.previous = _counts(around["previous"])
        stats.next = _counts(around["next"])
    if funnel:
        stats.funnel = _funnel(hits, funnel)
    return stats


def _counts(series: pl.Series) -> Counter[bytes]:
    return Counter(dict(series.value_counts().iter_rows()))


def _funnel(hits: pl.DataFrame, steps: tuple[bytes, ...]) -> list[int]:
    """Sessions reaching each step, steps taken in order (greedily, as a subsequence)."""
    reached: list[int] = []
    at: pl.DataFrame | None = None  # per session: where the last step reached was taken
    for step in steps:
        candidates = hits.filter(pl.col("url") == step).select("sid", "pos")
        if at is not None:
            candidates = candidates.join(at, on="sid").filter(pl.col("pos") > pl.col("after"))
        at = candidates.group_by("sid").agg(pl.col("pos").min().alias("after"))
        reached.append(at.height)
    return reached
