"""Columns of stored records as polars frames: the shape every report reads.

A frame has one row per parsed line (unparsed lines only count in the summary) with the
columns reports need: ``ts``, ``host``, ``day`` (the date as logged, dd/Mon/yyyy), ``ua``,
``url``, ``status``, ``bytes``, ``referer``, ``method``, ``vhost`` and ``user`` (%u; empty
when the format has none), ``dur`` (the time taken in microseconds, from %D or %T; null
when not logged), ``line`` (the line's index in its record, for --grep), and the visitor
hashes ``vh`` and ``vk`` (see :func:`visitor_columns`). Strings stay bytes (polars Binary):
log lines are never decoded on the query path.
"""
from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl

SCHEMA = {
    "ts": pl.Int64, "line": pl.Int32, "host": pl.Binary, "day": pl.Binary, "ua": pl.Binary,
    "url": pl.Binary, "status": pl.Int64, "bytes": pl.Int64, "referer": pl.Binary,
    "method": pl.Binary, "vhost": pl.Binary, "user": pl.Binary, "dur": pl.Int64,
}
FRAME_SCHEMA = {**SCHEMA, "vh": pl.Int64, "vk": pl.Int64}
_SOURCES = {"host": "host", "ua": "user_agent", "url": "url", "status": "status",
            "bytes": "bytes", "referer": "referer", "method": "method", "vhost": "vhost",
            "user": "user"}


def record_frame(columns: dict[str, Any], ts: Sequence[int]) -> tuple[pl.DataFrame, int]:
    """The frame of one record's parsed lines, and how many lines did not parse."""
    ts = ts.tolist() if isinstance(ts, array) else ts
    n = len(ts)
    data: dict[str, Any] = {"ts": ts, "line": range(n)}
    for name, source in _SOURCES.items():
        values = columns.get(source)
        data[name] = values if values is not None and len(values) == n else (
            [0] * n if SCHEMA[name] == pl.Int64 else [b""] * n)
    durations = columns.get("duration_us")  # null where not logged
    data["dur"] = ([d if d >= 0 else None for d in durations] if durations is not None
                   and len(durations) == n else [None] * n)
    times = columns.get("time")
    data["day"] = [t[:11] for t in times] if times is not None and len(times) == n else (
        [b""] * n)
    data["vh"], data["vk"] = visitor_columns(data["host"], data["day"], data["ua"],
                                             data["status"])
    frame = pl.DataFrame(data, schema=FRAME_SCHEMA)
    # a line parsed when its client host was read (the fallback leaves it empty)
    if all(data["host"]):
        return frame, 0
    parsed = frame.filter(pl.col("host") != b"")
    return parsed, n - parsed.height


# Visitors recur from one record to the next: their hashes are remembered, up to a bound.
_AGENT_HASHES: dict[tuple[bytes, bytes], int] = {}
_DAY_HASHES: dict[tuple[int, bytes], int] = {}
MEMO_MAX = 1 << 13  # entries of each memo (~3 MB), then it starts again


def visitor_columns(hosts: Sequence[bytes], days: Sequence[bytes], uas: Sequence[bytes],
                    statuses: Sequence[int | None]) -> tuple[list[int | None], list[int]]:
    """``vh``, GoAccess's visitor (IP + date + user agent; none for a 4xx answer, as
    GoAccess counts by default), and ``vk``, the visitor of click analysis (IP + UA), of
    each line (both :func:`visitor_hash`)."""
    by_agent, by_day = _AGENT_HASHES, _DAY_HASHES
    if len(by_agent) > MEMO_MAX or len(by_day) > MEMO_MAX:
        by_agent.clear()
        by_day.clear()
    vh: list[int | None] = []
    vk: list[int] = []
    for host, day, ua, status in zip(hosts, days, uas, statuses, strict=True):
        if not host:  # an unparsed line: no visitor (its row is dropped)
            vk.append(0)
            vh.append(None)
            continue
        k = by_agent.get((host, ua))
        if k is None:
            k = by_agent[host, ua] = visitor_hash((host, ua))
        vk.append(k)
        if status is not None and 400 <= status <= 499:
            vh.append(None)
            continue
        h = by_day.get((k, day))
        if h is None:
            h = by_day[k, day] = visitor_hash((host, day, ua))
        vh.append(h)
    return vh, vk


def visitor_hash(parts: Iterable[bytes]) -> int:
    """A stable 63-bit hash of a visitor's identity (the same on every node)."""
    digest = hashlib.blake2b(b"\x00".join(parts), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def with_hash(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> pl.DataFrame:
    """Add a column of visitor hashes of ``columns`` (hashed once per distinct visitor)."""
    if frame.height == 0:
        return frame.with_columns(pl.lit(0, dtype=pl.Int64).alias(name))
    distinct = frame.select(columns).unique()
    hashes = [visitor_hash(row) for row in distinct.iter_rows()]
    table = distinct.with_columns(pl.Series(name, hashes, dtype=pl.Int64))
    return frame.join(table, on=list(columns), how="left", nulls_equal=True,
                      maintain_order="left")


def empty_frame() -> pl.DataFrame:
    """A frame with no rows and the report schema (visitor columns included)."""
    return pl.DataFrame(schema=FRAME_SCHEMA)
