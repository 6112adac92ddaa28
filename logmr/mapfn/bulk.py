"""File mode's parse of combined lines in the column engine: a chunk of lines straight to
a report frame, with no Python object per field (the regex parser of
:mod:`logmr.mapfn.parse` makes a tuple per line, then the frame is built from lists).

Only lines of the plain combined shape take this path: six double quotes, none escaped,
no tab or carriage return, a host, logname and user without spaces, a well-formed time, a
3-digit status and a byte count. Any other line (an escaped quote, a cut-off line) is read
by the regex parser; when there are more than a few, or one parses without a time of its
own, the whole chunk is. So the result is the regex parser's, line for line, which the
tests hold it to.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from logmr.mapfn.detect import NEAR
from logmr.mapfn.frames import FRAME_SCHEMA, record_frame, with_visitors
from logmr.mapfn.parse import parse_batch
from logmr.timeutil import ClfClock

FORMATS = ("combined", "nginx_combined")
_PREFIX = r"^(\S+) (\S+) (\S+) \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] $"
_REQUEST = r"^(\S+) (\S+) (HTTP/[\d.]+)$"
_MIDDLE = r"^ (\d{3}|-) (\d+|-) $"


def combined_frame(blob: bytes) -> tuple[pl.DataFrame, int] | None:
    """The report frame of ``blob`` (lines of the combined format) and how many lines did
    not parse; None when the chunk must be read by the regex parser."""
    end = len(blob) - 1 if blob.endswith(b"\n") else len(blob)
    # bytes that are not UTF-8 read as U+FFFD: such lines (and lines that hold one) go to
    # the regex parser, which reads bytes
    text = blob[:end].decode("utf-8", "replace")
    if not text:
        return None
    quotes = pl.col("s").str.split_exact('"', 6)
    frame = pl.DataFrame({"s": [text]}).select(pl.col("s").str.split("\n")).explode(
        "s").with_row_index("line").with_columns(
        quotes.struct.field("field_0").str.extract_groups(_PREFIX).alias("p"),
        quotes.struct.field("field_1").str.extract_groups(_REQUEST).alias("r"),
        quotes.struct.field("field_2").str.extract_groups(_MIDDLE).alias("m"),
        quotes.struct.field("field_3").alias("referer"),
        (quotes.struct.field("field_4") == " ").alias("gap"),
        quotes.struct.field("field_5").alias("ua"),
        (quotes.struct.field("field_6") == "").alias("end"),
        ((pl.col("s").str.count_matches('"', literal=True) == 6)
         & ~pl.col("s").str.contains('\\\\"|[\t\r\ufffd]')).alias("plain"))
    ts = pl.col("p").struct.field("4").str.to_datetime(
        "%d/%b/%Y:%H:%M:%S %z", strict=False).dt.epoch("s")
    frame = frame.with_columns(ts.alias("ts"))
    ok = (pl.col("plain") & pl.col("gap") & pl.col("end")
          & pl.col("p").struct.field("1").is_not_null()
          & pl.col("m").struct.field("1").is_not_null() & pl.col("ts").is_not_null())
    frame = frame.with_columns(ok.fill_null(False).alias("ok"))
    odd = frame.filter(~pl.col("ok"))["line"].to_list()
    extra: pl.DataFrame | None = None
    if odd:
        if len(odd) >= max(2, NEAR * frame.height):
            return None  # the regex parser may read them with a second format
        extra = _read_apart(blob, odd)
        if extra is None:
            return None
    good = frame.filter(pl.col("ok"))
    three = pl.col("r").struct.field("1").is_not_null()

    def number(field: str) -> pl.Expr:  # "-", and what int64 cannot hold, count as 0
        return (pl.col("m").struct.field(field).cast(pl.Int64, strict=False)
                .fill_null(0))

    def binary(expr: pl.Expr) -> pl.Expr:
        return expr.cast(pl.Binary)

    out = good.select(
        pl.col("ts").cast(pl.Int64), pl.col("line").cast(pl.Int32),
        binary(pl.col("p").struct.field("1")).alias("host"),
        binary(pl.col("p").struct.field("4").str.slice(0, 11)).alias("day"),
        binary(pl.col("ua")).alias("ua"),
        binary(pl.when(three).then(pl.col("r").struct.field("2")).otherwise(pl.lit("")))
        .alias("url"),
        number("1").alias("status"), number("2").alias("bytes"),
        binary(pl.col("referer")).alias("referer"),
        binary(pl.when(three).then(pl.col("r").struct.field("1")).otherwise(pl.lit("")))
        .alias("method"),
        pl.lit(b"", dtype=pl.Binary).alias("vhost"),
        binary(pl.col("p").struct.field("3")).alias("user"))
    out = with_visitors(out).select(list(FRAME_SCHEMA))
    if extra is None:
        return out, len(odd)
    return pl.concat([out, extra]).sort("line"), len(odd) - extra.height


def _read_apart(blob: bytes, odd: list[int]) -> pl.DataFrame | None:
    """The lines ``odd`` of ``blob`` read by the regex parser on their own, numbered as in
    ``blob``: what it makes of them within the whole, unless one that parses has no time of
    its own (it would take its neighbour's, which differs here): then None."""
    lines = blob.split(b"\n")
    parsed = parse_batch(b"\n".join(lines[i] for i in odd) + b"\n", "combined")
    clock = ClfClock()
    times: list[Any] = parsed.columns.get("time", [])
    if any(ok and clock(times[j]) is None for j, ok in enumerate(parsed.parsed)):
        return None
    frame, _ = record_frame(parsed.columns, parsed.ts)
    return frame.with_columns(
        pl.lit(pl.Series(odd, dtype=pl.Int32)).gather(pl.col("line")).alias("line"))
