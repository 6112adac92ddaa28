"""Reports as map functions: a frame of parsed lines in, a partial aggregate out.

A partial is plain data (msgpack-able). Partials from any split of the lines merge into
the same result (``logmr.reduce.report``), so a report never depends on how batches were
spread over nodes. Each row keeps hits, bytes and the 128 smallest visitor hashes (a
k-minimum-values sketch): unique visitors are exact up to 128 per row and estimated above,
and the sketches of two nodes merge by union. The summary keeps every visitor hash, so its
unique-visitor count is exact. A visitor, as in GoAccess, is client IP + date (as logged)
+ user agent, and, as in GoAccess's default, a line answered with a 4xx status makes no
visitor.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import polars as pl

from logmr.mapfn.frames import with_hash
from logmr.mapfn.spec import KEYS, KMV, VISITOR_KEYS, Filters, ReportSpec


def _values_matching(series: pl.Series, pattern: bytes) -> list[bytes]:
    rx = re.compile(pattern)
    return [v for v in series.unique().to_list() if rx.search(v)]


def apply_filters(frame: pl.DataFrame, filters: Filters,
                  is_bot: Callable[[bytes], bool]) -> pl.DataFrame:
    """The rows the filters keep (--grep is applied per record, on the raw lines)."""
    if filters.since is not None:
        frame = frame.filter(pl.col("ts") >= filters.since)
    if filters.until is not None:
        frame = frame.filter(pl.col("ts") < filters.until)
    if filters.status:
        keep = pl.lit(False)
        for lo, hi in filters.status:
            keep = keep | pl.col("status").is_between(lo, hi)
        frame = frame.filter(keep)
    if filters.url is not None:
        frame = frame.filter(pl.col("url").is_in(_values_matching(frame["url"], filters.url)))
    if filters.exclude_bots:
        bots = [ua for ua in frame["ua"].unique().to_list() if is_bot(ua)]
        frame = frame.filter(~pl.col("ua").is_in(bots))
    return frame


def _group(frame: pl.DataFrame, key: pl.Expr) -> list[list[Any]]:
    """Rows of [key, hits, bytes, kmv] for every distinct key."""
    grouped = frame.group_by(key.alias("k")).agg(
        pl.len().alias("hits"), pl.col("bytes").sum().alias("bytes"),
        pl.col("vh").drop_nulls().unique().bottom_k(KMV).alias("kmv"))
    return [list(row) for row in grouped.iter_rows()]


def map_report(frame: pl.DataFrame, unparsed: int, spec: ReportSpec,
               is_bot: Callable[[bytes], bool], is_static: Callable[[bytes], bool]
               ) -> dict[str, Any]:
    """The partial aggregate of one node's (already filtered) frame."""
    out: dict[str, Any] = {"summary": {
        "requests": frame.height, "bytes": int(frame["bytes"].sum() or 0),
        "unparsed": unparsed, "t0": frame["ts"].min(), "t1": frame["ts"].max(),
        "visitors": frame["vh"].drop_nulls().unique().to_list()}}
    dims: dict[str, list[list[Any]]] = {}
    for dim in spec.dimensions:
        if dim == "hour":
            dims[dim] = _group(frame, pl.col("ts") - pl.col("ts") % spec.interval)
        elif dim == "url404":
            dims[dim] = _group(frame.filter(pl.col("status") == 404), pl.col("url"))
        else:
            dims[dim] = _group(frame, pl.col(KEYS[dim]))
    out["dims"] = dims
    if spec.click:
        out["pages"] = page_stream(frame, spec, is_bot, is_static)
    return out


def page_stream(frame: pl.DataFrame, spec: ReportSpec, is_bot: Callable[[bytes], bool],
                is_static: Callable[[bytes], bool]) -> pl.DataFrame:
    """Page views for click analysis (visitor, ts, url): the stream the reducer merges per
    visitor across nodes."""
    pages = frame
    if not spec.include_static:
        static = [u for u in pages["url"].unique().to_list() if is_static(u)]
        pages = pages.filter(~pl.col("url").is_in(static))
    if not spec.include_bots:
        bots = [ua for ua in pages["ua"].unique().to_list() if is_bot(ua)]
        pages = pages.filter(~pl.col("ua").is_in(bots))
    if spec.visitor_key == "ip+ua":
        pages = pages.rename({"vk": "visitor"})
    else:
        pages = with_hash(pages, VISITOR_KEYS[spec.visitor_key], "visitor")
    return pages.select("visitor", "ts", "url")
