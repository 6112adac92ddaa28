"""Reports as map functions: a frame of parsed lines in, a partial aggregate out.

A partial is plain data (msgpack-able). Partials from any split of the lines merge into
the same result (``logmr.mapfn.partial``), so a report never depends on how batches were
spread over nodes. Each row keeps hits, bytes and the 128 smallest visitor hashes (a
k-minimum-values sketch): unique visitors are exact up to 128 per row and estimated above,
and the sketches of two nodes merge by union. The summary keeps every visitor hash, so its
unique-visitor count is exact. A visitor, as in GoAccess, is client IP + date (as logged)
+ user agent, and, as in GoAccess's default, a line answered with a 4xx status makes no
visitor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import polars as pl

from logmr.mapfn.frames import complete, with_client_ip, with_hash
from logmr.mapfn.partial import Merged
from logmr.mapfn.spec import KEYS, KMV, TIME_GAMMA, VISITOR_KEYS, Filters, ReportSpec


def _values_matching(series: pl.Series, pattern: bytes) -> list[bytes]:
    rx = re.compile(pattern)
    return [v for v in series.unique().to_list() if rx.search(v)]


def prepared(frame: pl.DataFrame, spec: ReportSpec,
             is_bot: Callable[[bytes], bool]) -> pl.DataFrame:
    """The rows a report reads, with their client as the report takes it (``--client-ip``):
    what every report path runs before it aggregates."""
    if spec.client_ip == "xff":
        frame = with_client_ip(frame, spec.trusted_proxies)
    return apply_filters(frame, spec.filters, is_bot)


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


def _group(frame: pl.DataFrame, key: pl.Expr) -> pl.DataFrame:
    """A frame of k, hits, bytes, kmv for every distinct key."""
    return frame.group_by(key.alias("k")).agg(
        pl.len().cast(pl.Int64).alias("hits"), pl.col("bytes").sum().alias("bytes"),
        pl.col("vh").drop_nulls().unique().bottom_k(KMV).alias("kmv"))


def _rows(grouped: pl.DataFrame) -> list[list[Any]]:
    return [list(row) for row in grouped.iter_rows()]


def group_dims(frame: pl.DataFrame, spec: ReportSpec) -> dict[str, pl.DataFrame]:
    """Every grouping the report needs, as frames (see :class:`Combiner`)."""
    dims: dict[str, pl.DataFrame] = {}
    for dim in spec.dimensions:
        if dim == "hour":
            dims[dim] = _group(frame, pl.col("ts") - pl.col("ts") % spec.interval)
        elif dim == "url404":
            dims[dim] = _group(frame.filter(pl.col("status") == 404), pl.col("url"))
        else:
            dims[dim] = _group(frame, pl.col(KEYS[dim]))
    return dims


_LOG_GAMMA = math.log(TIME_GAMMA)


def times_of(frame: pl.DataFrame) -> dict[str, Any]:
    """The times taken by the lines that log one: a histogram (bucket -> lines; bucket -1
    holds 0 us) and per URL [url, lines, total us, max us]."""
    timed = frame.filter(pl.col("dur").is_not_null())
    if timed.height == 0:
        return {"hist": [], "urls": []}
    bucket = pl.when(pl.col("dur") < 1).then(-1).otherwise(
        (pl.col("dur").cast(pl.Float64).log() / _LOG_GAMMA).ceil().cast(pl.Int64))
    hist = timed.group_by(bucket.alias("b")).agg(pl.len().cast(pl.Int64).alias("n"))
    urls = timed.group_by("url").agg(pl.len().cast(pl.Int64).alias("n"),
                                     pl.col("dur").sum().alias("total"),
                                     pl.col("dur").max().alias("max"))
    return {"hist": _rows(hist), "urls": _rows(urls)}


def _summary(frame: pl.DataFrame, unparsed: int) -> dict[str, Any]:
    return {"requests": frame.height, "bytes": int(frame["bytes"].sum() or 0),
            # bytes received and sent with headers (%I, %O), where logged
            **{name: int(frame[name].sum()) if frame[name].null_count() < frame.height
               else None for name in ("bytes_in", "bytes_out")},
            "unparsed": unparsed, "t0": frame["ts"].min(), "t1": frame["ts"].max(),
            "visitors": frame["vh"].drop_nulls().unique().to_list()}


def partial_of(frame: pl.DataFrame, unparsed: int, spec: ReportSpec,
               is_bot: Callable[[bytes], bool], is_static: Callable[[bytes], bool]
               ) -> dict[str, Any]:
    """The partial aggregate of one node's (already filtered) frame."""
    frame = complete(frame)
    out: dict[str, Any] = {"summary": _summary(frame, unparsed),
                           "dims": {d: _rows(g) for d, g in group_dims(frame, spec).items()}}
    if spec.timed:
        out["times"] = times_of(frame)
    if spec.click:
        out["pages"] = page_stream(frame, spec, is_bot, is_static)
    return out


def _own_keys(grouped: pl.DataFrame) -> pl.DataFrame:
    """The grouping with its own copy of byte-string keys. A group-by's byte-string keys
    are views into the buffers of the frame it grouped: kept across chunks, they would
    keep every chunk's strings alive (measured: ~18 MB per 100k lines, a node's memory
    growing with its data). A grouping has far fewer rows than its chunk, so the copy
    costs little next to the group-by."""
    if grouped.schema["k"] != pl.Binary:
        return grouped
    return grouped.with_columns(pl.Series("k", grouped["k"].to_list(), dtype=pl.Binary))


def _merge_groups(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Groupings of several chunks as one: hits and bytes summed, sketches united (the
    KMV smallest distinct hashes of the union)."""
    if len(parts) == 1:
        return parts[0]
    return pl.concat(parts).group_by("k").agg(
        pl.col("hits").sum(), pl.col("bytes").sum(),
        pl.col("kmv").explode().drop_nulls().unique().bottom_k(KMV))


class Combiner:
    """A node's combiner: the partial of many frames (chunks of its lines), merged in
    the column engine, so that a node sends one row per key whatever its chunk count."""

    FOLD_AT = 8  # groupings held per report before they are merged into one

    def __init__(self, spec: ReportSpec) -> None:
        self.spec = spec
        self.summary = Merged()  # the summary folds as the reducer folds partials
        self.dims: dict[str, list[pl.DataFrame]] = {d: [] for d in spec.dimensions}

    def add(self, frame: pl.DataFrame, unparsed: int) -> None:
        """Fold in a frame's aggregates (not its page views: see :func:`page_stream`)."""
        frame = complete(frame)
        self.summary.add({"summary": _summary(frame, unparsed),
                          **({"times": times_of(frame)} if self.spec.timed else {})})
        for dim, grouped in group_dims(frame, self.spec).items():
            parts = self.dims[dim]
            parts.append(_own_keys(grouped))
            if len(parts) >= self.FOLD_AT:  # memory follows the keys, not the chunk count
                parts[:] = [_own_keys(_merge_groups(parts))]

    def partial(self) -> dict[str, Any]:
        """The combined partial, in the form :func:`partial_of` returns (no pages)."""
        folded = self.summary.to_partial()
        out = {"summary": folded["summary"],
               "dims": {dim: _rows(_merge_groups(parts)) if parts else []
                        for dim, parts in self.dims.items()}}
        if self.spec.timed:
            out["times"] = folded["times"]
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
