"""A report's partial aggregate, and how partials fold into one.

A partial holds the summary's sums and time bounds, the distinct visitor hashes, and one
*table* per panel: a polars frame of ``k, hits, bytes, kmv`` (kmv: the 128 smallest visitor
hashes of the key, a k-minimum-values sketch), one row per key. The response-time panel's
table of URLs is ``k, n, total, max``. Folding is associative and commutative (sums, maxima,
the union of hashes), so the order in which nodes answer and how batches were spread never
change a number.

A partial is *complete* for a table when it holds every key of it. A node whose table is
too large to send whole sends its top rows and what the client needs to ask for the rest
(:mod:`logmr.reduce.topk`): a histogram of its scores and how many keys it holds. It keeps
the whole table for the next rounds of the query (:mod:`logmr.store.spool`), cut by the
hash of its keys (:func:`key_hash`), so that the client can read it a range of hashes at a
time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from logmr import wire
from logmr.errors import WireError
from logmr.mapfn.frames import HASH_SEED
from logmr.mapfn.spec import KMV

# a sketch is cut to its KMV smallest hashes after the group-by (see trimmed): a bottom_k
# inside it costs ~10x the whole group-by (measured: 1.0 s against 0.09 s, 480k keys)
ROWS_MERGE = (pl.col("hits").sum(), pl.col("bytes").sum(),
              pl.col("kmv").explode().drop_nulls().unique())
TIMES_MERGE = (pl.col("n").sum(), pl.col("total").sum(), pl.col("max").max())
TIMES = "response_times"  # the table of URLs by time taken, beside the panels' tables
SCORE_BANDS = 40  # a table's score histogram: keys scoring at least 2**i, i < 40


def score_of(name: str) -> str:
    """The column a table is ranked by."""
    return "total" if name == TIMES else "hits"


def merge_exprs(name: str) -> tuple[pl.Expr, ...]:
    return TIMES_MERGE if name == TIMES else ROWS_MERGE


def merge_tables(name: str, frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Tables of one panel as one: a row per key, values folded."""
    frames = [f for f in frames if f.height] or frames[:1]
    if len(frames) == 1:
        return frames[0]
    merged = pl.concat(frames).group_by("k").agg(*merge_exprs(name))
    return merged if name == TIMES else trimmed(merged)


def trimmed(table: pl.DataFrame) -> pl.DataFrame:
    """``table`` with every sketch cut to its KMV smallest hashes."""
    big = table["kmv"].list.len() > KMV
    if not big.any():
        return table
    return pl.concat([table.filter(~big),
                      table.filter(big).with_columns(pl.col("kmv").list.sort().list.head(KMV))])


def ranked(name: str, frame: pl.DataFrame, limit: int | None = None) -> pl.DataFrame:
    """A table in the order a panel shows it: by score, then by key (raw bytes order);
    its first ``limit`` rows only, when given (the rest is not sorted)."""
    if limit is not None and frame.height > limit:
        score = score_of(name)
        frame = frame.filter(pl.col(score) >= frame[score].top_k(limit).min())
    out = frame.sort([score_of(name), "k"], descending=[True, False], nulls_last=True)
    return out if limit is None else out.head(limit)


def fold(held: list[Any], item: Any, merge: Callable[[list[Any]], Any],
         at: int = 8) -> None:
    """Add ``item`` (a table or a set of hashes) to ``held``; once ``at`` are held, merge
    the newest ones, and older ones while they are at most twice as large as what is being
    merged. Sizes then fall geometrically down the list, so each row is merged O(log n)
    times (merging everything each time made a growing table cost O(n^2): 2.2 s of 6.5
    for a 1M-line file of distinct clients)."""
    held.append(item)
    if len(held) < at:
        return
    tail = [held.pop()]
    total = len(tail[0])
    while held and len(held[-1]) <= 2 * total:
        tail.append(held.pop())
        total += len(tail[-1])
    held.append(merge(tail))


@dataclass
class Sent:
    """One partial's table, as it arrived: every row (complete), or the top rows with the
    score histogram and number of keys of the whole."""

    frame: pl.DataFrame
    complete: bool = True
    rows: int = 0  # keys in the whole table
    bands: list[int] = field(default_factory=list)  # keys scoring >= 2**i


def union(held: list[pl.Series]) -> pl.Series:
    """The distinct visitor hashes of several sets (an empty set when there are none)."""
    return pl.concat(held).unique() if held else pl.Series("vh", [], dtype=pl.Int64)


def hash_in(column: str | pl.Expr, lo: int, hi: int | None) -> pl.Expr:
    """Hashes of ``column`` in [lo, hi) (hi None: no bound)."""
    value = pl.col(column) if isinstance(column, str) else column
    keep = value >= lo
    return keep if hi is None else keep & (value < hi)


def key_hash() -> pl.Expr:
    """The 63-bit hash of a table's key (a null key has one too), the same on every node
    of one version (as the visitor hash, checked by its probe): tables too large to send
    are read by ranges of it."""
    return (pl.col("k").hash(seed=HASH_SEED) // 2).cast(pl.Int64)


def select(frame: pl.DataFrame, name: str, request: dict[str, Any]) -> pl.DataFrame:
    """The rows of a whole table that a request asks for (what a node answers)."""
    if "at_least" in request:
        return frame.filter(pl.col(score_of(name)) >= request["at_least"])
    if "keys" in request:
        keys = request["keys"]
        wanted = pl.col("k").is_in(pl.Series([k for k in keys if k is not None],
                                             dtype=frame.schema["k"]).implode())
        if any(k is None for k in keys):
            wanted = wanted | pl.col("k").is_null()
        return frame.filter(wanted)
    lo, hi = request["hashes"]
    return frame.filter(hash_in(key_hash(), lo, hi))


def in_part(name: str, frame: pl.DataFrame, k: int) -> Sent:
    """What a node sends of a table too large to send whole: k of its top rows (ties in
    any order), its bands and its number of keys."""
    score = frame[score_of(name)]
    kth = score.top_k(k).min()
    top = frame.filter(pl.col(score_of(name)) >= kth).head(k)
    bands = []
    for i in range(SCORE_BANDS):
        bands.append(int((score >= (1 << i)).sum()))
        if not bands[-1]:
            break
    return Sent(top, False, frame.height, bands)


def sent_to_wire(sent: Sent) -> list[Any]:
    return [wire.pack_frame(sent.frame), sent.complete, sent.rows, sent.bands]


def sent_of(data: Any) -> Sent:
    if not isinstance(data, list) or len(data) != 4:
        raise WireError("malformed report answer: a table is not [rows, complete, ...]")
    frame, complete, rows, bands = data
    return Sent(wire.unpack_frame(frame), bool(complete), int(rows), list(bands))


class Merged:
    """The partials of a report as they arrive, folded where they can be: sums at once,
    complete tables and visitor hashes as they pile up. Tables a node sent in part are kept
    per source for :func:`logmr.reduce.topk.reduce` to finish."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.bytes_in: int | None = None  # where logged (%I, %O)
        self.bytes_out: int | None = None
        self.unparsed = 0
        self.t0: int | None = None
        self.t1: int | None = None
        self.visitors: list[pl.Series] = []  # distinct hashes, sent whole
        self.visitors_held: dict[str, int] = {}  # source -> distinct hashes it kept back
        self.tables: dict[str, list[pl.DataFrame]] = {}  # complete: folded as they come
        self.partly: dict[str, dict[str, Sent]] = {}  # table -> source -> what it sent
        self.pages: list[Any] = []  # polars frames of (visitor, ts, url) page views
        self.pages_held: dict[str, int] = {}  # source -> page views it kept back
        self.hist: dict[int, int] = {}  # times taken: bucket -> lines
        self.timed_total = 0
        self.timed_max: int | None = None
        self.nodes: dict[str, dict[str, int]] = {}

    def add(self, partial: dict[str, Any], node: str = "local", source: str = "") -> None:
        """Fold one partial in (``source`` names where the rest of a table sent in part
        can be asked for)."""
        s = partial["summary"]
        self.requests += s["requests"]
        self.bytes += s["bytes"]
        if s.get("bytes_in") is not None:
            self.bytes_in = (self.bytes_in or 0) + s["bytes_in"]
        if s.get("bytes_out") is not None:
            self.bytes_out = (self.bytes_out or 0) + s["bytes_out"]
        self.unparsed += s["unparsed"]
        self.t0 = _min(self.t0, s["t0"])
        self.t1 = _max(self.t1, s["t1"])
        seen = self.nodes.setdefault(node, {"requests": 0, "unparsed": 0})
        seen["requests"] += s["requests"]
        seen["unparsed"] += s["unparsed"]
        visitors = partial.get("visitors")
        if visitors is not None:
            fold(self.visitors, visitors, union)
        elif s.get("visitors"):
            self.visitors_held[source] = s["visitors"]
        for name, sent in partial.get("tables", {}).items():
            if sent.complete:
                fold(self.tables.setdefault(name, []), sent.frame,
                     functools.partial(merge_tables, name))
            else:
                self.partly.setdefault(name, {})[source] = sent
        if partial.get("pages") is not None:
            self.pages.append(partial["pages"])
        if partial.get("pages_held"):
            self.pages_held[source] = partial["pages_held"]
        times = partial.get("times")
        if times is not None:
            for bucket, n in times["hist"]:
                self.hist[bucket] = self.hist.get(bucket, 0) + n
            self.timed_total += times["total"]
            self.timed_max = _max(self.timed_max, times["max"])

    def add_pages(self, pages: Any) -> None:
        """Fold in a page stream (a polars frame) sent on its own."""
        self.pages.append(pages)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def to_wire(partial: dict[str, Any]) -> dict[str, Any]:
    """A partial (without pages) as plain data, its tables and hashes as Arrow IPC."""
    out: dict[str, Any] = {"summary": partial["summary"],
                           "tables": {name: sent_to_wire(sent)
                                      for name, sent in partial["tables"].items()}}
    if partial.get("visitors") is not None:
        out["visitors"] = wire.pack_frame(partial["visitors"].to_frame("vh"))
    if "times" in partial:
        out["times"] = partial["times"]
    return out


def from_wire(data: dict[str, Any]) -> dict[str, Any]:
    """:func:`to_wire`'s data read back (it came from the network: shapes are checked)."""
    if not isinstance(data.get("summary"), dict) or not isinstance(data.get("tables"), dict):
        raise WireError("malformed report answer: no summary or tables")
    out: dict[str, Any] = {"summary": data["summary"],
                           "tables": {name: sent_of(sent)
                                      for name, sent in data["tables"].items()}}
    if data.get("visitors") is not None:
        out["visitors"] = hashes_of(data["visitors"])
    if data.get("times") is not None:
        out["times"] = data["times"]
    if data.get("pages") is not None:
        if type(data["pages"]) is not int:
            raise WireError("malformed report answer: pages held is not a count")
        out["pages_held"] = data["pages"]
    return out


def hashes_of(payload: Any) -> pl.Series:
    """Visitor hashes sent as a one-column frame."""
    frame: pl.DataFrame = wire.unpack_frame(payload)
    if frame.width != 1:
        raise WireError("malformed report answer: visitor hashes are not one column")
    return frame.to_series()
