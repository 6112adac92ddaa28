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

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from logmr.errors import ConfigError
from logmr.mapfn.frames import empty_frame

KMV = 128
PANELS = ("summary", "top_urls", "pages", "static", "not_found", "hosts", "os", "browsers",
          "visit_times", "status", "referrers", "referring_sites", "vhosts", "user_agents",
          "methods", "bots")
CLICK = ("sessions", "entry_pages", "exit_pages", "transitions", "paths", "funnel")
# the grouping each panel is computed from, on the nodes
DIMENSION = {"top_urls": "url", "pages": "url", "static": "url", "not_found": "url404",
             "hosts": "host", "os": "ua", "browsers": "ua", "user_agents": "ua", "bots": "ua",
             "visit_times": "hour", "status": "status", "referrers": "referer",
             "referring_sites": "referer", "vhosts": "vhost", "methods": "method"}
_KEYS = {"url": "url", "url404": "url", "host": "host", "ua": "ua", "status": "status",
         "referer": "referer", "vhost": "vhost", "method": "method"}
VISITOR_KEYS = {"ip": ("host",), "ip+ua": ("host", "ua"), "ip+ua+date": ("host", "ua", "day")}


@dataclass(frozen=True)
class Filters:
    """Which lines a report reads."""

    since: int | None = None
    until: int | None = None
    grep: bytes | None = None  # a regex over the raw line
    url: bytes | None = None  # a regex over the URL
    status: tuple[tuple[int, int], ...] = ()  # inclusive ranges: 5xx is (500, 599)
    source_host: str | None = None  # the host that shipped the lines
    exclude_bots: bool = False


@dataclass(frozen=True)
class ReportSpec:
    """What to report, over which lines."""

    reports: tuple[str, ...]
    limit: int = 10
    interval: int = 3600
    visitor_key: str = "ip+ua"
    session_timeout: int = 1800
    transitions: bytes | None = None
    funnel: tuple[bytes, ...] = ()
    paths_length: int = 5
    include_static: bool = False
    include_bots: bool = False
    filters: Filters = field(default_factory=Filters)

    def __post_init__(self) -> None:
        unknown = [r for r in self.reports if r not in PANELS and r not in CLICK]
        if unknown:
            raise ConfigError(f"unknown report {unknown[0]!r}")
        if self.visitor_key not in VISITOR_KEYS:
            raise ConfigError(f"unknown visitor key {self.visitor_key!r}: use one of "
                              f"{', '.join(VISITOR_KEYS)}")

    @property
    def dimensions(self) -> set[str]:
        """The groupings the nodes compute."""
        return {DIMENSION[r] for r in self.reports if r in DIMENSION}

    @property
    def click(self) -> bool:
        """True when per-visitor page streams are needed."""
        return any(r in CLICK for r in self.reports)

    def to_args(self) -> dict[str, Any]:
        """Plain data for the wire."""
        data = asdict(self)
        data["filters"]["status"] = [list(r) for r in self.filters.status]
        data["funnel"] = list(self.funnel)
        data["reports"] = list(self.reports)
        return data

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ReportSpec:
        """Read what :meth:`to_args` wrote (checked: it came from the network)."""
        try:
            f = dict(args.get("filters") or {})
            f["status"] = tuple((int(lo), int(hi)) for lo, hi in f.get("status", ()))
            data = {k: v for k, v in args.items() if k != "skip"}  # skip: see the node
            data["filters"] = Filters(**f)
            data["reports"] = tuple(str(r) for r in args["reports"])
            data["funnel"] = tuple(bytes(s) for s in args.get("funnel", ()))
            return cls(**data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed report request: {exc}") from None


def visitor_hash(parts: Iterable[bytes]) -> int:
    """A stable 63-bit hash of a visitor's identity (the same on every node)."""
    digest = hashlib.blake2b(b"\x00".join(parts), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def _with_hash(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> pl.DataFrame:
    """Add a column of visitor hashes of ``columns`` (hashed once per distinct visitor)."""
    distinct = frame.select(columns).unique()
    hashes = [visitor_hash(row) for row in distinct.iter_rows()]
    table = distinct.with_columns(pl.Series(name, hashes, dtype=pl.Int64))
    return frame.join(table, on=list(columns), how="left", nulls_equal=True)


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
        pl.col("vh").drop_nulls().unique().sort().head(KMV).alias("kmv"))
    return [list(row) for row in grouped.iter_rows()]


def map_report(frame: pl.DataFrame, unparsed: int, spec: ReportSpec,
               is_bot: Callable[[bytes], bool], is_static: Callable[[bytes], bool]
               ) -> dict[str, Any]:
    """The partial aggregate of one node's (already filtered) frame."""
    frame = _with_hash(frame, ("host", "day", "ua"), "vh") if frame.height else (
        empty_frame().with_columns(pl.lit(0, dtype=pl.Int64).alias("vh")))
    # as GoAccess counts them: a 4xx answer does not make a visitor
    frame = frame.with_columns(
        pl.when(pl.col("status").is_between(400, 499)).then(None).otherwise(pl.col("vh"))
        .alias("vh"))
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
            dims[dim] = _group(frame, pl.col(_KEYS[dim]))
    out["dims"] = dims
    if spec.click:
        out["pages"] = page_stream(frame, spec, is_bot, is_static)
    return out


def page_stream(frame: pl.DataFrame, spec: ReportSpec, is_bot: Callable[[bytes], bool],
                is_static: Callable[[bytes], bool]) -> dict[str, list[Any]]:
    """Page views for click analysis, sorted by (visitor, time, url): the stream the
    reducer merges per visitor across nodes."""
    pages = frame
    if not spec.include_static:
        static = [u for u in pages["url"].unique().to_list() if is_static(u)]
        pages = pages.filter(~pl.col("url").is_in(static))
    if not spec.include_bots:
        bots = [ua for ua in pages["ua"].unique().to_list() if is_bot(ua)]
        pages = pages.filter(~pl.col("ua").is_in(bots))
    if pages.height:
        pages = _with_hash(pages, VISITOR_KEYS[spec.visitor_key], "visitor")
    else:
        pages = pages.with_columns(pl.lit(0, dtype=pl.Int64).alias("visitor"))
    pages = pages.select("visitor", "ts", "url").sort("visitor", "ts", "url")
    return {"visitor": pages["visitor"].to_list(), "ts": pages["ts"].to_list(),
            "url": pages["url"].to_list()}
