"""The reduce side of reports: the merged partials (:class:`logmr.mapfn.partial.Merged`,
its tables made exact by :func:`logmr.reduce.topk.reduce`) shaped into the panels a user
reads: tables with shares and visitor counts."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

import polars as pl

from logmr.mapfn.partial import TIMES, Merged, ranked
from logmr.mapfn.spec import KMV, TIME_GAMMA, UNRANKED, ReportSpec
from logmr.reduce.topk import Reduced
from logmr.timeutil import format_epoch


def visitors_of(hashes: Collection[int]) -> tuple[int, bool]:
    """Distinct visitors from a row's sketch, and whether the count is exact."""
    if len(hashes) < KMV:
        return len(hashes), True
    kth = sorted(hashes)[KMV - 1]
    return round((KMV - 1) * (1 << 63) / (kth + 1)), False


def _text(value: Any) -> Any:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


# the column each panel names its key by
KEY_NAMES = {"top_urls": "url", "pages": "url", "static": "url", "not_found": "url",
             "hosts": "host", "os": "os", "browsers": "browser", "bots": "bot",
             "user_agents": "user_agent", "visit_times": "time", "status": "status",
             "referrers": "referrer", "referring_sites": "site", "vhosts": "vhost",
             "methods": "method", "remote_users": "user", "mime_types": "mime_type",
             "tls": "protocol"}


def _table(frame: pl.DataFrame, panel: str, total: int, limit: int) -> list[dict[str, Any]]:
    """A panel's rows: by hits, then by key (raw bytes order is code point order for
    UTF-8); every row where the panel has no limit, visit times in time order."""
    if panel == "visit_times":
        order = frame.sort("k")
    else:
        order = ranked(panel, frame, None if panel in UNRANKED else limit)
    show: Callable[[Any], Any] = format_epoch if panel == "visit_times" else _text
    name = KEY_NAMES[panel]
    out = []
    for key, hits, nbytes, kmv in order.select("k", "hits", "bytes", "kmv").iter_rows():
        visitors, exact = visitors_of(kmv)
        out.append({name: show(key), "hits": hits, "visitors": visitors,
                    "visitors_exact": exact, "bytes": nbytes,
                    "share": round(100.0 * hits / total, 2) if total else 0.0})
    return out


PERCENTILES = (50, 90, 95, 99)


def response_times(merged: Merged, urls: pl.DataFrame, limit: int) -> dict[str, Any]:
    """The times taken, over the lines that log one: their count, mean, percentiles
    (each within 1 % of the exact one: see :data:`TIME_GAMMA`) and max, then the URLs
    that took the most time in all (GoAccess's cumulative time served), in microseconds."""
    hist, total = merged.hist, merged.timed_total
    n = sum(hist.values())
    out: dict[str, Any] = {"requests": n, "mean_us": round(total / n) if n else None}
    order = sorted(hist.items())
    for q in PERCENTILES:
        out[f"p{q}_us"] = _percentile(order, n, q) if n else None
    out["max_us"] = merged.timed_max
    top = ranked(TIMES, urls, limit)
    out["urls"] = [{"url": _text(url), "hits": hits, "total_us": t, "mean_us": round(t / hits),
                    "max_us": longest, "share": round(100.0 * t / total, 2) if total else 0.0}
                   for url, hits, t, longest in top.select("k", "n", "total", "max").iter_rows()]
    return out


def _percentile(order: list[tuple[int, int]], n: int, q: int) -> int:
    """The q-th percentile (nearest rank) of a histogram: the middle of its bucket."""
    rank, seen = math.ceil(q * n / 100), 0
    for bucket, count in order:
        seen += count
        if seen >= rank:
            return 0 if bucket < 0 else round(2 * TIME_GAMMA ** bucket / (TIME_GAMMA + 1))
    raise AssertionError("a rank past the histogram")


def panels(merged: Merged, reduced: Reduced, spec: ReportSpec) -> dict[str, Any]:
    """Every requested panel (not click analysis) in its documented JSON shape."""
    out: dict[str, Any] = {}
    for name in spec.reports:
        if name == "summary":
            out[name] = {
                "requests": merged.requests, "unique_visitors": reduced.visitors,
                "bytes": merged.bytes, "unparsed": merged.unparsed,
                **{key: value for key, value in (("bytes_in", merged.bytes_in),
                                                 ("bytes_out", merged.bytes_out))
                   if value is not None},
                "first": format_epoch(merged.t0) if merged.t0 is not None else None,
                "last": format_epoch(merged.t1) if merged.t1 is not None else None,
                "nodes": merged.nodes}
        elif name == "response_times":
            out[name] = response_times(merged, reduced.tables[TIMES], spec.limit)
        elif name in KEY_NAMES:
            out[name] = _table(reduced.tables[name], name, merged.requests, spec.limit)
    return out
