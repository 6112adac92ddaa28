"""Reports as map functions: a frame of parsed lines in, a partial aggregate out.

Partials from any split of the lines merge into the same result (``logmr.mapfn.partial``),
so a report never depends on how batches were spread over nodes. Each row of a panel's
table keeps hits, bytes and the 128 smallest visitor hashes (a k-minimum-values sketch):
unique visitors are exact up to 128 per row and estimated above, and the sketches of two
nodes merge by union. The summary keeps every visitor hash, so its unique-visitor count is
exact. A visitor, as in GoAccess, is client IP + date (as logged) + user agent, and, as in
GoAccess's default, a line answered with a 4xx status makes no visitor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from functools import lru_cache
from typing import Any

import polars as pl

from logmr.mapfn.agents import Agent, classify_agent, is_static, referring_site
from logmr.mapfn.frames import complete, empty_frame, with_client_ip, with_hash
from logmr.mapfn.partial import (
    ROWS_MERGE,
    TIMES,
    Merged,
    Sent,
    fold,
    merge_tables,
    trimmed,
    union,
)
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


FEW = 1000  # keys in a grouping for which each key's sketch is cut in the group-by


def _group(frame: pl.DataFrame, key: pl.Expr, few: bool = False) -> pl.DataFrame:
    """A frame of k, hits, bytes, kmv for every distinct key. With ``few`` keys, each
    key's sketch is cut to its KMV smallest hashes in the group-by (a selection per key:
    about 7 ms for 100k lines, where sorting them all after costs 10-12 ms); with many,
    after it (most keys then have fewer than KMV hashes, and a selection per key costs
    more)."""
    hashes = pl.col("vh").drop_nulls().unique()
    grouped = frame.group_by(key.alias("k")).agg(
        pl.len().cast(pl.Int64).alias("hits"), pl.col("bytes").sum().alias("bytes"),
        (hashes.bottom_k(KMV) if few else hashes).alias("kmv"))
    return grouped if few else trimmed(grouped)


def group_dims(frame: pl.DataFrame, spec: ReportSpec, few: Collection[str] = ()
               ) -> dict[str, pl.DataFrame]:
    """Every grouping the report needs, as frames (see :class:`Combiner`); those named in
    ``few`` are expected to have few keys (see :func:`_group`)."""
    dims: dict[str, pl.DataFrame] = {}
    for dim in spec.dimensions:
        if dim == "hour":
            key = pl.col("ts") - pl.col("ts") % spec.interval
        elif dim == "url404":
            dims[dim] = _group(frame.filter(pl.col("status") == 404), pl.col("url"),
                               dim in few)
            continue
        else:
            key = pl.col(KEYS[dim])
        dims[dim] = _group(frame, key, dim in few)
    return dims


@lru_cache(maxsize=65536)
def _agent(ua: bytes) -> Agent:
    return classify_agent(ua)


def _keep(table: pl.DataFrame, keep: Callable[[Any], bool]) -> pl.DataFrame:
    """The rows of ``table`` whose key ``keep`` takes."""
    keys = [k for k in table["k"].to_list() if keep(k)]
    if len(keys) == table.height:
        return table
    return table.filter(pl.col("k").is_in(pl.Series(keys, dtype=table.schema["k"]).implode()))


def _regroup(table: pl.DataFrame, key: Callable[[Any], Any], kind: Any = pl.Utf8
             ) -> pl.DataFrame:
    """``table``'s rows grouped again under ``key(k)`` (of type ``kind``; rows it maps to
    None are dropped)."""
    old = table["k"].to_list()
    mapping = pl.DataFrame({"k": pl.Series(old, dtype=table.schema["k"]),
                            "to": pl.Series([key(k) for k in old], dtype=kind)})
    joined = table.join(mapping, on="k", how="left", nulls_equal=True).filter(
        pl.col("to").is_not_null()).drop("k").rename({"to": "k"})
    return trimmed(joined.group_by("k").agg(*ROWS_MERGE).select("k", "hits", "bytes", "kmv"))


def _logged(k: Any) -> bool:
    return bool(k) and k not in (b"-", b"")


# panel -> (the grouping it reads, how it reads it)
_DERIVED: dict[str, tuple[str, Callable[[pl.DataFrame], pl.DataFrame]]] = {
    "top_urls": ("url", lambda t: t),
    "pages": ("url", lambda t: _keep(t, lambda k: not is_static(k))),
    "static": ("url", lambda t: _keep(t, is_static)),
    "not_found": ("url404", lambda t: t),
    "hosts": ("host", lambda t: t),
    "os": ("ua", lambda t: _regroup(t, lambda k: _agent(k).os)),
    "browsers": ("ua", lambda t: _regroup(t, lambda k: _agent(k).browser)),
    "bots": ("ua", lambda t: _regroup(t, lambda k: _agent(k).bot)),
    "user_agents": ("ua", lambda t: t),
    "visit_times": ("hour", lambda t: t),
    "status": ("status", lambda t: t),
    "referrers": ("referer", lambda t: _keep(t, _logged)),
    "referring_sites": ("referer", lambda t: _regroup(t, referring_site, pl.Binary)),
    "vhosts": ("vhost", lambda t: _keep(t, bool)),
    "methods": ("method", lambda t: t),
    "remote_users": ("user", lambda t: _keep(t, _logged)),
    "mime_types": ("mime", lambda t: _keep(t, bool)),
    "tls": ("tls", lambda t: _keep(t, bool)),
}


def tables_of(dims: dict[str, pl.DataFrame], spec: ReportSpec) -> dict[str, pl.DataFrame]:
    """Each requested panel's table (``k, hits, bytes, kmv``), from the groupings: URLs
    split into pages and static files, agents classified, unlogged values left out, as
    the panel shows them. A node ranks and sends these (see :mod:`logmr.reduce.topk`)."""
    out = {}
    for name in spec.reports:
        if name in _DERIVED:
            dim, derive = _DERIVED[name]
            out[name] = derive(dims[dim])
    return out


_LOG_GAMMA = math.log(TIME_GAMMA)


def times_of(frame: pl.DataFrame) -> tuple[dict[str, Any], pl.DataFrame]:
    """The times taken by the lines that log one: a histogram (bucket -> lines; bucket -1
    holds 0 us), their total and maximum, and the table of URLs (``k, n, total, max``)."""
    timed = frame.filter(pl.col("dur").is_not_null())
    bucket = pl.when(pl.col("dur") < 1).then(-1).otherwise(
        (pl.col("dur").cast(pl.Float64).log() / _LOG_GAMMA).ceil().cast(pl.Int64))
    hist = timed.group_by(bucket.alias("b")).agg(pl.len().cast(pl.Int64).alias("n"))
    urls = timed.group_by(pl.col("url").alias("k")).agg(
        pl.len().cast(pl.Int64).alias("n"), pl.col("dur").sum().alias("total"),
        pl.col("dur").max().alias("max"))
    return ({"hist": [list(row) for row in hist.iter_rows()],
             "total": int(timed["dur"].sum() or 0), "max": timed["dur"].max()}, urls)


def _summary(frame: pl.DataFrame, unparsed: int) -> dict[str, Any]:
    return {"requests": frame.height, "bytes": int(frame["bytes"].sum() or 0),
            # bytes received and sent with headers (%I, %O), where logged
            **{name: int(frame[name].sum()) if frame[name].null_count() < frame.height
               else None for name in ("bytes_in", "bytes_out")},
            "unparsed": unparsed, "t0": frame["ts"].min(), "t1": frame["ts"].max()}


def _visitors(frame: pl.DataFrame) -> pl.Series:
    return frame["vh"].drop_nulls().unique()


def _whole(summary: dict[str, Any], visitors: pl.Series, tables: dict[str, pl.DataFrame],
           times: tuple[dict[str, Any], pl.DataFrame] | None) -> dict[str, Any]:
    """A partial with every table whole, in the form :meth:`Merged.add` takes."""
    sent = {name: Sent(table) for name, table in tables.items()}
    out: dict[str, Any] = {"summary": {**summary, "visitors": visitors.len()},
                           "visitors": visitors, "tables": sent}
    if times is not None:
        out["times"] = times[0]
        sent[TIMES] = Sent(times[1])
    return out


def partial_of(frame: pl.DataFrame, unparsed: int, spec: ReportSpec,
               is_bot: Callable[[bytes], bool], is_static: Callable[[bytes], bool]
               ) -> dict[str, Any]:
    """The partial aggregate of one (already filtered) frame, every table whole."""
    frame = complete(frame)
    out = _whole(_summary(frame, unparsed), _visitors(frame),
                 tables_of(group_dims(frame, spec), spec),
                 times_of(frame) if spec.timed else None)
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


class Combiner:
    """A node's combiner: the partial of many frames (chunks of its lines), merged in
    the column engine, so that a node sends one row per key whatever its chunk count."""

    FOLD_AT = 8  # groupings held per report before they are merged into one

    def __init__(self, spec: ReportSpec) -> None:
        self.spec = spec
        self.summary = Merged()  # the summary folds as the reducer folds partials
        self.visitors: list[pl.Series] = []
        self.dims: dict[str, list[pl.DataFrame]] = {d: [] for d in spec.dimensions}
        self.urls: list[pl.DataFrame] = []  # times taken per URL
        self.few: set[str] = set()  # groupings whose last chunk had few keys

    def add(self, frame: pl.DataFrame, unparsed: int) -> None:
        """Fold in a frame's aggregates (not its page views: see :func:`page_stream`)."""
        frame = complete(frame)
        times = times_of(frame) if self.spec.timed else None
        self.summary.add({"summary": _summary(frame, unparsed),
                          **({"times": times[0]} if times is not None else {})})
        self._hold(self.visitors, _visitors(frame), union)
        if times is not None:
            self._hold(self.urls, _own_keys(times[1]),
                       lambda held: _own_keys(merge_tables(TIMES, held)))
        for dim, grouped in group_dims(frame, self.spec, self.few).items():
            if grouped.height < FEW:  # the next chunk's keys are likely as few
                self.few.add(dim)
            else:
                self.few.discard(dim)
            self._hold(self.dims[dim], _own_keys(grouped),
                       lambda held: _own_keys(merge_tables("", held)))

    def _hold(self, held: list[Any], item: Any, merge: Callable[[list[Any]], Any]) -> None:
        fold(held, item, merge, self.FOLD_AT)  # memory follows the keys, not the chunks

    def partial(self) -> dict[str, Any]:
        """The combined partial, in the form :func:`partial_of` returns (no pages)."""
        m = self.summary
        summary = {"requests": m.requests, "bytes": m.bytes, "bytes_in": m.bytes_in,
                   "bytes_out": m.bytes_out, "unparsed": m.unparsed, "t0": m.t0, "t1": m.t1}
        dims = {dim: merge_tables(dim, parts) for dim, parts in self.dims.items() if parts}
        if len(dims) < len(self.dims):  # no frame was added: the groupings of none
            dims = {**group_dims(complete(empty_frame()), self.spec), **dims}
        times = None
        if self.spec.timed:
            times = ({"hist": [[b, n] for b, n in m.hist.items()], "total": m.timed_total,
                      "max": m.timed_max},
                     merge_tables(TIMES, self.urls) if self.urls
                     else times_of(complete(empty_frame()))[1])
        return _whole(summary, union(self.visitors), tables_of(dims, self.spec), times)


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
