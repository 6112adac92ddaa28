"""Click analysis on the reduce side: merge every node's page stream per visitor, cut it
into sessions, count them.

A visitor's page views can sit on several nodes; each node sends its page views sorted by
(visitor, time, url), and here they are put in one order and split per visitor, so the
sessions never depend on how batches were spread.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from logmr.mapfn.report import CLICK, ReportSpec
from logmr.mapfn.sessions import SessionStats, sessionize


def click_reports(pages: dict[str, list[Any]], spec: ReportSpec) -> dict[str, Any]:
    """The requested click-analysis reports over merged page streams."""
    stats = SessionStats(path_len=spec.paths_length, transitions_url=spec.transitions,
                         funnel_steps=spec.funnel)
    frame = pl.DataFrame({"visitor": pages["visitor"], "ts": pages["ts"], "url": pages["url"]},
                         schema={"visitor": pl.Int64, "ts": pl.Int64, "url": pl.Binary})
    frame = frame.sort("visitor", "ts", "url")
    visitors, times, urls = (frame[c].to_list() for c in ("visitor", "ts", "url"))
    start = 0
    for end in range(1, len(visitors) + 1):
        if end == len(visitors) or visitors[end] != visitors[start]:
            for session in sessionize(zip(times[start:end], urls[start:end], strict=True),
                                      spec.session_timeout):
                stats.add(session)
            start = end
    report = stats.to_report(spec.limit)
    wanted = {r for r in spec.reports if r in CLICK}
    return {name: value for name, value in report.items() if name in wanted}
