"""The reduce side of reports: the merged partials (:class:`logmr.mapfn.partial.Merged`)
shaped into the panels a user reads: tables with shares and visitor counts, agents
classified, click analysis sessionized."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection
from functools import lru_cache
from typing import Any

from logmr.mapfn.agents import classify_agent, is_static, referring_site
from logmr.mapfn.partial import Merged, Row, add_rows
from logmr.mapfn.spec import KMV, TIME_GAMMA, ReportSpec
from logmr.timeutil import format_epoch


def visitors_of(hashes: Collection[int]) -> tuple[int, bool]:
    """Distinct visitors from a row's sketch, and whether the count is exact."""
    if len(hashes) < KMV:
        return len(hashes), True
    kth = sorted(hashes)[KMV - 1]
    return round((KMV - 1) * (1 << 63) / (kth + 1)), False


def _text(value: Any) -> Any:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


@lru_cache(maxsize=65536)
def _agent(ua: bytes) -> Any:
    return classify_agent(ua)


def _regroup(rows: dict[Any, Row], key: Callable[[Any], Any]) -> dict[Any, Row]:
    out: dict[Any, Row] = {}
    for k, (hits, nbytes, kmv) in rows.items():
        new = key(k)
        if new is None:
            continue
        add_rows(out, [[new, hits, nbytes, kmv]])
    return out


def _table(rows: dict[Any, Row], name: str, total: int, limit: int | None,
           by_key: bool = False, show: Callable[[Any], Any] = _text) -> list[dict[str, Any]]:
    # by hits, then by key (raw bytes order is code point order for UTF-8)
    if by_key:
        order = sorted(rows.items(), key=lambda kv: kv[0])
    elif limit is not None:
        order = heapq.nsmallest(limit, rows.items(), key=lambda kv: (-kv[1][0], kv[0]))
    else:
        order = sorted(rows.items(), key=lambda kv: (-kv[1][0], kv[0]))
    out = []
    for key, (hits, nbytes, kmv) in order:
        visitors, exact = visitors_of(kmv)
        out.append({name: show(key), "hits": hits, "visitors": visitors,
                    "visitors_exact": exact, "bytes": nbytes,
                    "share": round(100.0 * hits / total, 2) if total else 0.0})
    return out


PERCENTILES = (50, 90, 95, 99)


def response_times(merged: Merged, limit: int) -> dict[str, Any]:
    """The times taken, over the lines that log one: their count, mean, percentiles
    (each within 1 % of the exact one: see :data:`TIME_GAMMA`) and max, then the URLs
    that took the most time in all (GoAccess's cumulative time served), in microseconds."""
    hist, timed = merged.hist, merged.timed
    n = sum(hist.values())
    total = sum(row[1] for row in timed.values())
    out: dict[str, Any] = {"requests": n, "mean_us": round(total / n) if n else None}
    order = sorted(hist.items())
    for q in PERCENTILES:
        out[f"p{q}_us"] = _percentile(order, n, q) if n else None
    out["max_us"] = max((row[2] for row in timed.values()), default=None)
    top = heapq.nsmallest(limit, timed.items(), key=lambda kv: (-kv[1][1], kv[0]))
    out["urls"] = [{"url": _text(url), "hits": hits, "total_us": t, "mean_us": round(t / hits),
                    "max_us": longest, "share": round(100.0 * t / total, 2) if total else 0.0}
                   for url, (hits, t, longest) in top]
    return out


def _percentile(order: list[tuple[int, int]], n: int, q: int) -> int:
    """The q-th percentile (nearest rank) of a histogram: the middle of its bucket."""
    rank, seen = math.ceil(q * n / 100), 0
    for bucket, count in order:
        seen += count
        if seen >= rank:
            return 0 if bucket < 0 else round(2 * TIME_GAMMA ** bucket / (TIME_GAMMA + 1))
    raise AssertionError("a rank past the histogram")


def panels(merged: Merged, spec: ReportSpec) -> dict[str, Any]:
    """Every requested panel (not click analysis) in its documented JSON shape."""
    total, limit = merged.requests, spec.limit
    url = merged.dims.get("url", {})
    ua = merged.dims.get("ua", {})
    referer = merged.dims.get("referer", {})
    makers: dict[str, Callable[[], Any]] = {
        "summary": lambda: {
            "requests": merged.requests, "unique_visitors": len(merged.visitors),
            "bytes": merged.bytes, "unparsed": merged.unparsed,
            **{name: value for name, value in (("bytes_in", merged.bytes_in),
                                               ("bytes_out", merged.bytes_out))
               if value is not None},
            "first": format_epoch(merged.t0) if merged.t0 is not None else None,
            "last": format_epoch(merged.t1) if merged.t1 is not None else None,
            "nodes": merged.nodes},
        "top_urls": lambda: _table(url, "url", total, limit),
        "pages": lambda: _table({k: v for k, v in url.items() if not is_static(k)}, "url",
                                total, limit),
        "static": lambda: _table({k: v for k, v in url.items() if is_static(k)}, "url",
                                 total, limit),
        "not_found": lambda: _table(merged.dims.get("url404", {}), "url", total, limit),
        "hosts": lambda: _table(merged.dims.get("host", {}), "host", total, limit),
        "os": lambda: _table(_regroup(ua, lambda k: _agent(k).os), "os", total, limit),
        "browsers": lambda: _table(_regroup(ua, lambda k: _agent(k).browser), "browser",
                                   total, limit),
        "bots": lambda: _table(_regroup(ua, lambda k: _agent(k).bot), "bot", total, limit),
        "user_agents": lambda: _table(ua, "user_agent", total, limit),
        "visit_times": lambda: _table(merged.dims.get("hour", {}), "time", total, None,
                                      by_key=True, show=format_epoch),
        "status": lambda: _table(merged.dims.get("status", {}), "status", total, None),
        "referrers": lambda: _table({k: v for k, v in referer.items() if k not in (b"-", b"")},
                                    "referrer", total, limit),
        "referring_sites": lambda: _table(_regroup(referer, referring_site), "site", total,
                                          limit),
        "vhosts": lambda: _table({k: v for k, v in merged.dims.get("vhost", {}).items() if k},
                                 "vhost", total, limit),
        "methods": lambda: _table(merged.dims.get("method", {}), "method", total, None),
        "remote_users": lambda: _table({k: v for k, v in merged.dims.get("user", {}).items()
                                        if k not in (b"-", b"")}, "user", total, limit),
        "response_times": lambda: response_times(merged, limit),
        "mime_types": lambda: _table({k: v for k, v in merged.dims.get("mime", {}).items() if k},
                                     "mime_type", total, limit),
        "tls": lambda: _table({k: v for k, v in merged.dims.get("tls", {}).items() if k},
                              "protocol", total, None),
    }
    return {name: makers[name]() for name in spec.reports if name in makers}
