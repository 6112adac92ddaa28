"""Records stored as columns: the parsed fields in Parquet, each line rebuilt from them.

A line whose fields, put back into its format, give it again byte for byte is stored as
its fields alone; any other line (unparsed, a field the format turns into something else,
extra fields after the format's, a \\r, bytes that are not UTF-8) keeps its raw bytes in
the ``_raw`` column beside them. Which is which is checked at ingest, line by line, so a
rebuilt line is always the line as logged. Parquet stores each column with dictionary and
run-length encoding, then zstd: a URL, agent or referer repeated across a record is kept
once, and the time of a line is an integer column.
"""

from __future__ import annotations

import io
from array import array
from functools import lru_cache
from itertools import accumulate
from typing import Any

import polars as pl

from logmr.mapfn import frames
from logmr.mapfn.parse import _DIRECTIVE, _HEADER_NAMES, INT_COLUMNS, NICKNAMES, NO_DURATION

RAW = "_raw"  # the line as logged, where it is not rebuilt from its fields
DT = "_dt"  # each line's time less the line before's (the first line's: the time itself)
TZ = "_tz"  # the offset of the time as logged, in minutes east of UTC
B0 = "_b0"  # 1 where %b logged "0" for no bytes (nginx), not "-" (Apache)
TIME = "time"  # %t's text, kept only where it is not the time and offset written out
WRITTEN = "_w"  # the time written out, while a record is encoded (never stored)
LEVEL = 3  # zstd's: 1 is no faster here and 9 costs twice the time for 1/16 fewer bytes

# directive letter -> the column whose text it writes (ints written in decimal)
_TEXT = {"h": "host", "a": "client_ip", "l": "logname", "u": "user", "v": "vhost",
         "V": "vhost", "U": "path", "m": "method", "H": "protocol", "L": "log_id"}
_NUMBER = {"s": "status", "b": "bytes", "B": "bytes", "O": "bytes_out", "I": "bytes_in",
           "S": "bytes_total", "p": "port", "D": "duration_us"}

Piece = tuple[str, str]  # (kind, text or column): "lit", "text", "num", "dash0", "req", "time"


@lru_cache(maxsize=64)
def template(fmt: str) -> tuple[Piece, ...] | None:
    """How a line of ``fmt`` (a LogFormat string or nickname) is written from its columns;
    None when it has a directive whose text the columns do not keep as logged."""
    text = NICKNAMES.get(fmt, fmt)
    pieces: list[Piece] = []
    pos = 0
    for m in _DIRECTIVE.finditer(text):
        if m.start() > pos:
            pieces.append(("lit", text[pos:m.start()]))
        pos = m.end()
        arg, letter = m.group(2), m.group(4)
        if letter == "%" and arg is None:
            pieces.append(("lit", "%"))
        elif letter == "i" and arg is not None:
            key = arg.lower()
            pieces.append(("text", _HEADER_NAMES.get(key, f"i:{key}")))
        elif letter in "oenCx" and arg is not None:
            pieces.append(("text", f"{letter}:{arg.lower()}"))
        elif arg is not None:
            return None  # %{ms}T and the like: read into another unit
        elif letter in _TEXT:
            pieces.append(("text", _TEXT[letter]))
        elif letter == "b":
            pieces.append(("dash0", "bytes"))  # CLF: "-" for no bytes
        elif letter in _NUMBER:
            pieces.append(("num", _NUMBER[letter]))
        elif letter == "r":
            pieces.append(("req", ""))
        elif letter == "t":
            pieces.append(("time", "time"))
        else:
            return None
    if pos < len(text):
        pieces.append(("lit", text[pos:]))
    return tuple(pieces)


def _expr(piece: Piece, schema: dict[str, Any]) -> pl.Expr | None:
    kind, name = piece
    if kind == "lit":
        return pl.lit(name)
    if kind == "req":
        if any(schema.get(c) != pl.Utf8 for c in ("method", "url", "protocol", "request")):
            return None
        split = pl.concat_str([pl.col("method"), pl.col("url"), pl.col("protocol")],
                              separator=" ")
        return pl.when(pl.col("request") == "").then(split).otherwise(pl.col("request"))
    if name not in schema:
        return None
    col = pl.col(name)
    if kind == "time":
        if schema[name] != pl.Utf8:
            return None
        return pl.concat_str([pl.lit("["), _time_text(schema), pl.lit("]")])
    if kind == "text":
        return col if schema[name] == pl.Utf8 else None
    if kind == "dash0":
        dash = (col == 0) if B0 not in schema else (col == 0) & (pl.col(B0) == 0)
        return pl.when(dash).then(pl.lit("-")).otherwise(col.cast(pl.Utf8))
    if name == "duration_us":
        return pl.when(col == NO_DURATION).then(pl.lit("-")).otherwise(col.cast(pl.Utf8))
    return col.cast(pl.Utf8)


def _local() -> pl.Expr:
    """Each line's time at its offset, in seconds: clipped to years 1-9999, as polars
    writes no time past them (a parsed time never is)."""
    return (pl.col(DT).cum_sum() + pl.col(TZ).cast(pl.Int64) * 60).clip(-62135596800,
                                                                        253402300799)


def _written() -> pl.Expr:
    """Each line's time written as %t writes it, at its offset."""
    tz = pl.col(TZ).cast(pl.Int64)
    off = tz.abs()
    return pl.concat_str([
        pl.from_epoch(_local(), time_unit="s").dt.strftime("%d/%b/%Y:%H:%M:%S "),
        pl.when(tz < 0).then(pl.lit("-")).otherwise(pl.lit("+")),
        (off // 60 * 100 + off % 60).cast(pl.Utf8).str.zfill(4)])


def _time_text(schema: dict[str, Any]) -> pl.Expr:
    """%t's text: as kept where it is, else the time written at its offset (from the
    column ``_w`` where the encoder wrote it once already)."""
    if TZ not in schema:
        return pl.col(TIME)
    written = pl.col(WRITTEN) if WRITTEN in schema else _written()
    return pl.coalesce(pl.col(TIME), written) if TIME in schema else written


def _offsets(times: pl.Series, logged: list[bytes]) -> pl.Series:
    """The offset of each CLF time ("... +0100"), in minutes; 0 where there is none
    (``logged``: the same times, as parsed)."""
    last = logged[0][-5:] if logged else b""
    if len(last) == 5 and all(t.endswith(last) for t in logged):
        # one offset for the record, as a rule: read once (slicing every line in polars
        # costs more than all the rest of the time column's work)
        one = _offsets(pl.Series([last.decode("latin-1")]), [])[0]
        return pl.Series(TZ, [one] * len(logged), dtype=pl.Int16)
    tail = times.str.slice(-5)
    sign = pl.when(tail.str.slice(0, 1) == "-").then(-1).otherwise(1)
    hhmm = tail.str.slice(1).cast(pl.Int64, strict=False)
    return pl.select((sign * (hhmm // 100 * 60 + hhmm % 100)).fill_null(0)
                     .cast(pl.Int16).alias(TZ)).to_series()


def _rebuilt(frame: pl.DataFrame, fmt: str) -> pl.Expr | None:
    """The expression writing each line of ``frame`` from its columns; None if it cannot."""
    pieces = template(fmt) if fmt else None
    if pieces is None:
        return None
    exprs = [_expr(p, frame.schema) for p in pieces]
    if any(e is None for e in exprs):
        return None
    return pl.concat_str(exprs)


def _column(name: str, values: list[Any]) -> pl.Series:
    if name in INT_COLUMNS or name == "duration_us":
        return pl.Series(name, values, dtype=pl.Int64)
    series = pl.Series(name, values, dtype=pl.Binary)
    try:
        return series.cast(pl.Utf8)
    except pl.exceptions.ComputeError:  # not UTF-8: kept as bytes, its lines raw
        return series


def encode(columns: dict[str, list[Any]], ts: list[int], lines: bytes, fmt: str) -> bytes:
    """A record's columns, and the lines they do not rebuild, as Parquet bytes."""
    n = len(ts)
    stamps = pl.Series(DT, ts, dtype=pl.Int64)
    frame = pl.DataFrame([stamps.diff().fill_null(stamps.head(1)),
                          *(_column(k, v) for k, v in columns.items() if len(v) == n)])
    if frame.schema.get(TIME) == pl.Utf8:  # the time as logged, where it is not written out
        frame = frame.with_columns(_offsets(frame[TIME], columns[TIME]))
        frame = frame.with_columns(_written().alias(WRITTEN))
        frame = frame.with_columns(pl.when(pl.col(WRITTEN) == pl.col(TIME)).then(None)
                                   .otherwise(pl.col(TIME)).alias(TIME))
    raw = pl.Series(RAW, lines.split(b"\n")[:n], dtype=pl.Binary)

    def rebuilt_same(frame: pl.DataFrame, expr: pl.Expr) -> pl.Series:
        return frame.select(expr.cast(pl.Binary).alias("line"))["line"] == raw

    expr = _rebuilt(frame, fmt)
    if expr is None:
        frame = frame.with_columns(raw)
    else:
        same = rebuilt_same(frame, expr)
        if "bytes" in frame.columns and ("dash0", "bytes") in (template(fmt) or ()):
            zero = (~same.fill_null(False)) & (frame["bytes"] == 0)
            if zero.any():  # nginx logs "0" for no bytes
                frame = frame.with_columns(zero.cast(pl.Int8).alias(B0))
                with_b0 = _rebuilt(frame, fmt)  # the same pieces, %b now reading _b0
                if with_b0 is not None:
                    same = rebuilt_same(frame, with_b0)
        frame = frame.with_columns(pl.when(same.fill_null(False)).then(None)
                                   .otherwise(raw).alias(RAW))
    if WRITTEN in frame.columns:
        frame = frame.drop(WRITTEN)
    out = io.BytesIO()
    frame.write_parquet(out, compression="zstd", compression_level=LEVEL, statistics=False)
    return out.getvalue()


def decode(data: bytes, columns: list[str] | None = None) -> pl.DataFrame:
    """The frame :func:`encode` stored (only ``columns``, when given)."""
    return pl.read_parquet(io.BytesIO(data), columns=columns)


def lines_of(frame: pl.DataFrame, fmt: str) -> bytes:
    """The record's lines, byte for byte as logged, each ending in a newline."""
    expr = _rebuilt(frame, fmt)
    line = pl.col(RAW) if expr is None else pl.coalesce(pl.col(RAW), expr.cast(pl.Binary))
    out = frame.select(line.alias("line"))["line"]
    if out.len() == 0:
        return b""
    return b"\n".join(out.to_list()) + b"\n"


def ts_of(frame: pl.DataFrame) -> array[int]:
    """The time of each line, as :func:`logmr.store.segment.decode_ts` gives it."""
    return array("q", frame[DT].cum_sum().to_list())


def columns_of(frame: pl.DataFrame) -> dict[str, list[Any]]:
    """The parsed columns, as the parser gave them (strings as bytes)."""
    out = {}
    if TZ in frame.columns:
        frame = frame.with_columns(_time_text(frame.schema).alias(TIME))
    for name in frame.columns:
        if name in (RAW, DT, TZ, B0):
            continue
        series = frame[name]
        out[name] = (series.cast(pl.Binary) if series.dtype == pl.Utf8 else series).to_list()
    return out


def report_frame(stored: pl.DataFrame) -> tuple[pl.DataFrame, int] | None:
    """The report frame of a stored record (as :func:`logmr.mapfn.frames.record_frame`
    builds it from the parsed columns), with no Python per line; None for a record whose
    strings are not all UTF-8 (read those through :func:`columns_of`)."""
    if not _framable(stored.schema):
        return None
    frame = _framed(stored, pl.int_range(stored.height, dtype=pl.Int32))
    parsed = frame.filter(pl.col("host") != b"")
    return parsed, stored.height - parsed.height


def report_frames(stored: list[pl.DataFrame]
                  ) -> list[tuple[pl.DataFrame, int, int] | None]:
    """:func:`report_frame` of each of several records, and the bytes it holds, built
    together: the records of one schema are framed as one frame, then cut into theirs, so
    that polars' fixed cost per operation (most of a record's time, at a few thousand
    lines) is paid once. A cut shares the whole's buffers: its bytes are its share."""
    out: list[tuple[pl.DataFrame, int, int] | None] = [None] * len(stored)
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    for i, frame in enumerate(stored):
        if frame.height and _framable(frame.schema):
            groups.setdefault(tuple(frame.schema.items()), []).append(i)
        elif (alone := report_frame(frame)) is not None:
            out[i] = (*alone, int(alone[0].estimated_size()))
    for idx in groups.values():
        parts = [stored[i] for i in idx]
        lens = [p.height for p in parts]
        starts = [0, *accumulate(lens[:-1])]
        # a record's first time is its own, the others differences: carried over the
        # records before it, cum_sum gives every line its time across the whole
        ends = [p[DT].sum() for p in parts]
        firsts = [p[DT][0] - (ends[j - 1] if j else 0) for j, p in enumerate(parts)]
        whole = pl.concat(parts, rechunk=True)
        whole = whole.with_columns(whole[DT].scatter(starts, firsts))
        lines = pl.concat([pl.int_range(n, dtype=pl.Int32, eager=True) for n in lens])
        frame = _framed(whole, pl.lit(lines))
        parses = frame.select(pl.col("host") != b"")["host"]
        parsed = frame.filter(parses)
        kept = parses.cast(pl.Int64).cum_sum()
        row = parsed.estimated_size() / max(parsed.height, 1)
        cuts = [0, *(int(kept[s + n - 1]) for s, n in zip(starts, lens, strict=True))]
        for j, i in enumerate(idx):
            piece = parsed.slice(cuts[j], cuts[j + 1] - cuts[j])
            out[i] = piece, lens[j] - piece.height, int(row * piece.height)
    return out


def _framable(schema: pl.Schema) -> bool:
    return not any(t == pl.Binary for name, t in schema.items() if name != RAW)


def _framed(stored: pl.DataFrame, line: pl.Expr) -> pl.DataFrame:
    """The report frame of stored columns (every line, unparsed ones too)."""
    schema = stored.schema
    exprs: list[pl.Expr] = [pl.col(DT).cum_sum().alias("ts"), line.alias("line")]
    for name, source in frames.SOURCES.items():
        want = frames.SCHEMA[name]
        if source not in schema:
            exprs.append(pl.lit(0 if want == pl.Int64 else b"", dtype=want).alias(name))
        else:
            exprs.append(pl.col(source).cast(want).alias(name))
    optional = []
    for name, source in frames.OPTIONAL_SOURCES.items():
        if source not in schema:
            continue
        col = pl.col(source)
        if name == "dur":
            exprs.append(pl.when(col >= 0).then(col).otherwise(None).alias(name))
        elif frames.OPTIONAL[name] == pl.Binary:
            exprs.append(pl.when(col.is_in(["-", ""])).then(None).otherwise(col)
                         .cast(pl.Binary).alias(name))
        else:
            exprs.append(col.alias(name))
        optional.append(name)
    if TZ in schema:  # the date at the line's offset, written once for each day
        days = stored.select(_local() // 86400)[DT]
        seen = days.unique()
        texts = pl.select(pl.from_epoch(pl.lit(seen) * 86400, time_unit="s")
                          .dt.strftime("%d/%b/%Y").cast(pl.Binary)).to_series()
        day = pl.lit(days.replace_strict(seen, texts, return_dtype=pl.Binary))
        if TIME in schema:
            day = pl.coalesce(pl.col(TIME).str.slice(0, 11).cast(pl.Binary), day)
        exprs.append(day.alias("day"))
    elif TIME in schema:
        exprs.append(pl.col(TIME).str.slice(0, 11).cast(pl.Binary).alias("day"))
    else:
        exprs.append(pl.lit(b"", dtype=pl.Binary).alias("day"))
    return frames.with_visitors(stored.select(exprs)).select(*frames.FRAME_SCHEMA, *optional)
