"""Columns of stored records as polars frames: the shape every report reads.

A frame has one row per parsed line (unparsed lines only count in the summary) with the
columns reports need: ``ts``, ``host``, ``day`` (the date as logged, dd/Mon/yyyy), ``ua``,
``url``, ``status``, ``bytes``, ``referer``, ``method``, ``vhost`` and ``user`` (%u; empty
when the format has none), ``dur`` (the time taken in microseconds, from %D or %T; null
when not logged), ``xff`` (X-Forwarded-For as logged; null when not), ``line`` (the
line's index in its record, for --grep), and the visitor hashes ``vh`` and ``vk`` (see
:func:`with_visitors`; :func:`with_client_ip` takes the client from ``xff``). Strings
stay bytes (polars Binary): log lines are never decoded on the query path.
"""
from __future__ import annotations

import functools
import ipaddress
from array import array
from collections.abc import Sequence
from typing import Any

import polars as pl

SCHEMA = {
    "ts": pl.Int64, "line": pl.Int32, "host": pl.Binary, "day": pl.Binary, "ua": pl.Binary,
    "url": pl.Binary, "status": pl.Int64, "bytes": pl.Int64, "referer": pl.Binary,
    "method": pl.Binary, "vhost": pl.Binary, "user": pl.Binary,
}
FRAME_SCHEMA = {**SCHEMA, "vh": pl.Int64, "vk": pl.Int64}
SOURCES = {"host": "host", "ua": "user_agent", "url": "url", "status": "status",
            "bytes": "bytes", "referer": "referer", "method": "method", "vhost": "vhost",
            "user": "user"}
# Columns few formats log: a record's frame has them only when its format does (null where
# a line logs "-"), and :func:`complete` adds them as nulls to a frame without them.
OPTIONAL = {"dur": pl.Int64, "xff": pl.Binary, "bytes_in": pl.Int64, "bytes_out": pl.Int64,
            "mime": pl.Binary, "tls": pl.Binary}
OPTIONAL_SOURCES = {"dur": "duration_us", "xff": "forwarded_for", "bytes_in": "bytes_in",
                     "bytes_out": "bytes_out", "mime": "o:content-type",
                     "tls": "x:ssl_protocol"}


def record_frame(columns: dict[str, Any], ts: Sequence[int]) -> tuple[pl.DataFrame, int]:
    """The frame of one record's parsed lines, and how many lines did not parse."""
    ts = ts.tolist() if isinstance(ts, array) else ts
    n = len(ts)
    data: dict[str, Any] = {"ts": ts, "line": range(n)}
    for name, source in SOURCES.items():
        values = columns.get(source)
        data[name] = values if values is not None and len(values) == n else (
            [0] * n if SCHEMA[name] == pl.Int64 else [b""] * n)
    schema = dict(FRAME_SCHEMA)
    for name, source in OPTIONAL_SOURCES.items():
        values = columns.get(source)
        if values is not None and len(values) == n:
            if name == "dur":  # NO_DURATION: not logged
                values = [d if d >= 0 else None for d in values]
            elif OPTIONAL[name] == pl.Binary:
                values = [None if v in (b"-", b"") else v for v in values]
            data[name] = values
            schema[name] = OPTIONAL[name]
    times = columns.get("time")
    data["day"] = [t[:11] for t in times] if times is not None and len(times) == n else (
        [b""] * n)
    schema.pop("vh")
    schema.pop("vk")
    frame = pl.DataFrame(data, schema=schema)
    frame = with_visitors(frame).select(*FRAME_SCHEMA, *(c for c in schema
                                                         if c not in FRAME_SCHEMA))
    # a line parsed when its client host was read (the fallback leaves it empty)
    if all(data["host"]):
        return frame, 0
    parsed = frame.filter(pl.col("host") != b"")
    return parsed, n - parsed.height


# Visitor hashes are polars' hash of the identity's columns, seeded (80 ms for 482k lines,
# whose frame took 2.8 s to build with blake2b per distinct visitor). polars keeps that
# hash stable within a version only: a query carries the client's hash_probe(), and a node
# whose own differs refuses it (see :func:`check_probe`) rather than count one visitor as
# two.
HASH_SEED = 0x6C6F676D72


def visitor_expr(columns: Sequence[str]) -> pl.Expr:
    """The 63-bit visitor hash of ``columns`` (the same on every node of one version)."""
    return (pl.struct(list(columns)).hash(seed=HASH_SEED) // 2).cast(pl.Int64)


@functools.cache
def hash_probe() -> int:
    """This process's visitor hash of a fixed identity."""
    probe = pl.DataFrame({"host": [b"192.0.2.1"], "ua": [b"logmr"]},
                         schema={"host": pl.Binary, "ua": pl.Binary})
    return int(probe.select(visitor_expr(("host", "ua")))[0, 0])


def check_probe(probe: object) -> None:
    """Refuse a query whose client hashes visitors otherwise than this process."""
    if probe is not None and probe != hash_probe():
        from logmr.errors import LogmrError

        raise LogmrError(f"this node hashes visitors otherwise than the client (polars "
                         f"{pl.__version__} here): install the same logmr and polars on "
                         "every node and client")


def with_visitors(frame: pl.DataFrame) -> pl.DataFrame:
    """``vk``, the visitor of click analysis (IP + UA), and ``vh``, GoAccess's visitor
    (IP + date + user agent; none for a 4xx answer, as GoAccess counts by default)."""
    return frame.with_columns(
        pl.when(pl.col("status").is_between(400, 499)).then(None)
        .otherwise(visitor_expr(("host", "day", "ua"))).alias("vh"),
        visitor_expr(("host", "ua")).alias("vk"))


def with_hash(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> pl.DataFrame:
    """Add a column of visitor hashes of ``columns``."""
    return frame.with_columns(visitor_expr(columns).alias(name))


def with_client_ip(frame: pl.DataFrame, trusted: Sequence[str]) -> pl.DataFrame:
    """``frame`` with the client (``host``, and the visitor hashes made from it) taken from
    X-Forwarded-For where a line logs one (see :func:`client_of`)."""
    if frame.height == 0 or "xff" not in frame.columns or frame["xff"].null_count() == (
            frame.height):
        return frame
    order = frame.columns
    nets = [ipaddress.ip_network(n, strict=False) for n in trusted]
    pairs = frame.select("host", "xff").unique()
    clients = [client_of(h, x, nets) for h, x in pairs.iter_rows()]
    table = pairs.with_columns(pl.Series("client", clients, dtype=pl.Binary))
    frame = frame.join(table, on=["host", "xff"], how="left", nulls_equal=True,
                       maintain_order="left")
    frame = frame.with_columns(pl.col("client").alias("host")).drop("client", "vh", "vk")
    return with_visitors(frame).select(order)


def client_of(peer: bytes, forwarded: bytes | None, trusted: Sequence[Any]) -> bytes:
    """The client of a request that came through proxies.

    With no trusted proxies, the first address of X-Forwarded-For (what the proxies say).
    With some, the chain (X-Forwarded-For, then the connecting address) is read from the
    nearest hop back, passing trusted proxies: the first address not among them is the
    client, so that an address the client wrote itself is never taken when a proxy it
    cannot forge stands after it. A line without X-Forwarded-For keeps ``peer``.

    >>> nets = [ipaddress.ip_network("10.0.0.0/8")]
    >>> client_of(b"10.0.0.2", b"203.0.113.9, 10.0.0.1", nets)
    b'203.0.113.9'
    >>> client_of(b"10.0.0.2", b"6.6.6.6, 203.0.113.9, 10.0.0.1", nets)  # 6.6.6.6: forged
    b'203.0.113.9'
    >>> client_of(b"10.0.0.2", b"6.6.6.6, 203.0.113.9", [])
    b'6.6.6.6'
    >>> client_of(b"198.51.100.7", None, nets)  # "-" or nothing logged
    b'198.51.100.7'
    """
    entries = [e.strip() for e in forwarded.split(b",")] if forwarded else []
    entries = [e for e in entries if e and e != b"-" and e.lower() != b"unknown"]
    if not entries:
        return peer
    if not trusted:
        return entries[0]
    chain = [*entries, peer]
    for addr in reversed(chain):
        if not _among(addr, trusted):
            return addr
    return chain[0]


def _among(addr: bytes, nets: Sequence[Any]) -> bool:
    text = addr.decode("ascii", "replace")
    if text.startswith("["):  # [v6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False  # not an address: no proxy of ours
    return any(ip in net for net in nets)


def complete(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every optional column, null where its records did not log it."""
    missing = [pl.lit(None, dtype).alias(name) for name, dtype in OPTIONAL.items()
               if name not in frame.columns]
    if not missing:
        return frame
    return frame.with_columns(missing).select(*FRAME_SCHEMA, *OPTIONAL)


def concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Record frames as one (their optional columns may differ)."""
    if len({tuple(f.columns) for f in frames}) == 1:
        return pl.concat(frames, rechunk=True)
    return pl.concat([complete(f) for f in frames], rechunk=True)


def empty_frame() -> pl.DataFrame:
    """A frame with no rows and the report schema (visitor columns included)."""
    return pl.DataFrame(schema=FRAME_SCHEMA)
