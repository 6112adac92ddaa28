"""The reduce side of reports: merge partial aggregates, then shape the result.

Merging is associative and commutative: sums of hits and bytes, the union of visitor
hashes (kept whole for the summary, as the 64 smallest per row), so the order in which
nodes answer and how batches were spread never change a number.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable
from functools import lru_cache
from typing import Any

from logmr.mapfn.agents import classify_agent, is_static, referring_site
from logmr.mapfn.spec import KMV, ReportSpec
from logmr.timeutil import format_epoch

Row = list[Any]  # [hits, bytes, visitor hashes: a set, or one partial's list (KMV kept)]


class Merged:
    """The merge of any number of partials."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.unparsed = 0
        self.t0: int | None = None
        self.t1: int | None = None
        self.visitors: set[int] = set()
        self.dims: dict[str, dict[Any, Row]] = {}
        self.pages: list[Any] = []  # polars frames of (visitor, ts, url) page views
        self.nodes: dict[str, dict[str, int]] = {}

    def add(self, partial: dict[str, Any], node: str = "local") -> None:
        """Fold one partial in."""
        s = partial["summary"]
        self.requests += s["requests"]
        self.bytes += s["bytes"]
        self.unparsed += s["unparsed"]
        self.t0 = _min(self.t0, s["t0"])
        self.t1 = _max(self.t1, s["t1"])
        self.visitors.update(s["visitors"])
        seen = self.nodes.setdefault(node, {"requests": 0, "unparsed": 0})
        seen["requests"] += s["requests"]
        seen["unparsed"] += s["unparsed"]
        for dim, rows in partial.get("dims", {}).items():
            merge_rows(self.dims.setdefault(dim, {}), rows)
        if partial.get("pages") is not None:
            self.pages.append(partial["pages"])


    def add_pages(self, pages: Any) -> None:
        """Fold in a page stream (a polars frame) sent on its own."""
        self.pages.append(pages)

    def to_partial(self) -> dict[str, Any]:
        """Back to the partial form (without pages): a node's combiner sends this."""
        return {"summary": {"requests": self.requests, "bytes": self.bytes,
                            "unparsed": self.unparsed, "t0": self.t0, "t1": self.t1,
                            "visitors": list(self.visitors)},
                "dims": {dim: [[k, row[0], row[1], sorted(row[2])[:KMV]]
                               for k, row in rows.items()] for dim, rows in self.dims.items()}}


def merge_rows(into: dict[Any, Row], rows: Iterable[list[Any]]) -> None:
    """Add ``[key, hits, bytes, kmv]`` rows into ``into``."""
    for key, hits, nbytes, kmv in rows:
        row = into.get(key)
        if row is None:
            # a partial's sketch is a list of distinct hashes, never changed in place: kept
            # as it is until a second one arrives for the key (most keys get just one)
            into[key] = [hits, nbytes, kmv if type(kmv) is list else set(kmv)]
        else:
            row[0] += hits
            row[1] += nbytes
            held = row[2] if type(row[2]) is set else set(row[2])
            held.update(kmv)
            row[2] = held if len(held) <= 4 * KMV else set(sorted(held)[:KMV])


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


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
        merge_rows(out, [[new, hits, nbytes, kmv]])
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
    }
    return {name: makers[name]() for name in spec.reports if name in makers}
