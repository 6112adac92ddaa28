"""Columns of stored records as polars frames: the shape every report reads.

A frame has one row per parsed line (unparsed lines only count in the summary) with the
columns reports need: ``ts``, ``host``, ``day`` (the date as logged, dd/Mon/yyyy), ``ua``,
``url``, ``status``, ``bytes``, ``referer``, ``method`` and ``vhost`` (empty when the
format has none), and ``line`` (the line's index in its record, for --grep). Strings stay
bytes (polars Binary): log lines are never decoded on the query path.
"""

from __future__ import annotations

from typing import Any

import polars as pl

SCHEMA = {
    "ts": pl.Int64, "line": pl.Int32, "host": pl.Binary, "day": pl.Binary, "ua": pl.Binary,
    "url": pl.Binary, "status": pl.Int64, "bytes": pl.Int64, "referer": pl.Binary,
    "method": pl.Binary, "vhost": pl.Binary,
}
_SOURCES = {"host": "host", "ua": "user_agent", "url": "url", "status": "status",
            "bytes": "bytes", "referer": "referer", "method": "method", "vhost": "vhost"}


def empty_frame() -> pl.DataFrame:
    """A frame with no rows and the report schema."""
    return pl.DataFrame(schema=SCHEMA)


def record_frame(columns: dict[str, Any], ts: list[int]) -> tuple[pl.DataFrame, int]:
    """The frame of one record's parsed lines, and how many lines did not parse."""
    n = len(ts)
    hosts = columns.get("host") or [b""] * n
    data: dict[str, Any] = {"ts": ts, "line": range(n)}
    for name, source in _SOURCES.items():
        values = columns.get(source)
        data[name] = values if values is not None and len(values) == n else (
            [0] * n if SCHEMA[name] == pl.Int64 else [b""] * n)
    times = columns.get("time")
    data["day"] = [t[:11] for t in times] if times is not None and len(times) == n else (
        [b""] * n)
    frame = pl.DataFrame(data, schema=SCHEMA)
    # a line parsed when its client host was read (the fallback leaves it empty)
    parsed = frame.filter(pl.col("host") != b"")
    return parsed, n - parsed.height if hosts else n
