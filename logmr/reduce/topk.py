"""The reduce of tables too large to send whole: an exact distributed top-k, and exact
distinct visitors, with the client's memory bounded whatever the cardinality.

A node sends a table whole when it is small. Otherwise it sends its top rows, the number
of its keys scoring at least 2**i (its *bands*) and its number of keys, and keeps the whole
table for the rounds that follow (:mod:`logmr.store.spool`), cut by the hash of its keys.
Then, per table, one of two exact plans:

- **Three rounds** (TPUT: Cao and Wang, PODC 2004). The top rows give each key a lower
  bound; tau, the k-th highest, bounds the k-th total from below. A key totalling at least
  tau scores at least tau/m on one of the m nodes, so round two asks each node for its rows
  scoring at least ceil(tau/m). A key a node did not send scores at most that minus one
  there: the upper bounds that follow rule out every key below the new k-th lower bound,
  and round three fetches the exact rows of the keys left. What moves follows k, not the
  number of keys.
- **Hash ranges**, when the bands say that round two would be large (a flat table: a
  flood of clients seen once each). The table goes to :mod:`logmr.reduce.ranges` with the
  visitor hashes and page views kept back: read a range of hashes at a time, each range
  merged exactly and cut to its top k, here or, for what the client cannot hold, in reduce
  jobs on the nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from logmr.mapfn.partial import Merged, Sent, merge_tables, ranked, score_of, select, union
from logmr.mapfn.sessions import SessionStats
from logmr.mapfn.spec import ReportSpec
from logmr.reduce.ranges import (
    BUCKET_ROWS,
    PAGES,
    Answers,
    Click,
    Fetch,
    RangeResult,
    RangeWork,
    TableHeld,
    run,
)

# runs the ranges' work, given the bytes the sources kept back for it (and the fetch of
# the rounds), and returns what waits for its result
Ranges = Callable[[RangeWork, int], Callable[[], RangeResult]]


@dataclass
class Reduced:
    """The merged tables (exact rows, at least the top ``limit`` of each) and visitors."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    visitors: int = 0
    stats: SessionStats | None = None  # click analysis, when asked for


def round_two_size(sent: Sent, at_least: int) -> int:
    """At most how many rows a node would send for ``at_least`` (from its bands)."""
    if at_least <= 1 or not sent.bands:
        return sent.rows
    band = min(int(math.log2(at_least)), len(sent.bands) - 1)
    return sent.bands[band]


class TopK:
    """One table's exact top ``k`` over a whole part (tables sent complete, merged) and
    parts sent in part, by source."""

    def __init__(self, name: str, k: int, whole: pl.DataFrame | None,
                 parts: dict[str, Sent], bucket_rows: int = BUCKET_ROWS) -> None:
        self.name, self.k, self.score = name, k, score_of(name)
        self.whole = whole
        self.parts = parts
        self.got: dict[str, pl.DataFrame] = {src: s.frame for src, s in parts.items()}
        self.bucket_rows = bucket_rows
        self.at_least = 0
        self.by_range = False  # read by hash range instead (round two would be too large)
        self.candidates: list[Any] = []  # keys that may be in the top k, after round three

    def _frames(self) -> list[pl.DataFrame]:
        frames = ([self.whole] if self.whole is not None else []) + list(self.got.values())
        return [f for f in frames if f.height] or frames[:1]

    def _lower(self) -> pl.DataFrame:
        """Each key seen so far, with its score summed over what was received."""
        return pl.concat([f.select("k", self.score) for f in self._frames()]).group_by(
            "k").agg(pl.col(self.score).sum())

    def _kth(self, scores: pl.Series) -> int:
        return int(scores.sort(descending=True)[self.k - 1]) if scores.len() >= self.k else 0

    def second(self) -> dict[str, dict[str, Any]]:
        """Round two's request per source, or (when it would move too much) none, with the
        hash ranges to read instead."""
        tau = self._kth(self._lower()[self.score])
        self.at_least = max(math.ceil(tau / len(self.parts)), 0)
        if sum(round_two_size(s, self.at_least) for s in self.parts.values()) \
                <= self.bucket_rows:
            return {src: {"at_least": self.at_least} for src in self.parts}
        self.by_range = True
        return {}

    def held(self) -> TableHeld:
        """The table as work for the hash ranges."""
        return TableHeld(self.name, self.k, sum(s.rows for s in self.parts.values()),
                         sorted(self.parts), self.whole)

    def row_bytes(self) -> int:
        """About how many bytes a row of the table takes."""
        frames = [f for f in self._frames() if f.height]
        return max(16, int(sum(f.estimated_size() for f in frames))
                   // max(1, sum(f.height for f in frames)))

    def take(self, answers: dict[str, pl.DataFrame]) -> None:
        """Rows a round brought (a key a source sent twice counts once)."""
        for src, frame in answers.items():
            if frame.height:
                self.got[src] = pl.concat([self.got[src], frame]).unique("k", keep="first")

    def third(self) -> dict[str, dict[str, Any]]:
        """Round three: the exact rows of every key that may still be in the top k."""
        lower = self._lower()
        tau = self._kth(lower[self.score])
        slack = max(self.at_least - 1, 0)  # what a source may hold of a key it did not send
        have = {src: set(f["k"].to_list()) for src, f in self.got.items()}
        keys = lower["k"].to_list()
        self.candidates = [
            key for key, score in zip(keys, lower[self.score].to_list(), strict=True)
            if score + slack * sum(key not in h for h in have.values()) >= tau]
        out = {}
        for src, held in have.items():
            missing = [key for key in self.candidates if key not in held]
            if missing:
                out[src] = {"keys": missing}
        return out

    def result(self) -> pl.DataFrame:
        """The exact rows of the top keys, in panel order."""
        merged = merge_tables(self.name, self._frames())
        wanted = select(merged, self.name, {"keys": self.candidates})
        return ranked(self.name, wanted, self.k)


def _add(requests: dict[str, dict[str, Any]], src: str, kind: str, name: str,
         request: Any) -> None:
    requests.setdefault(src, {}).setdefault(kind, {})[name] = request


def _table_of(answers: Answers, name: str) -> dict[str, pl.DataFrame]:
    """Each source's rows of table ``name`` in a round's answers."""
    return {src: a["tables"][name] for src, a in answers.items() if name in a.get("tables", {})}


def reduce(merged: Merged, spec: ReportSpec, fetch: Fetch | None = None,
           bucket_rows: int = BUCKET_ROWS, ranges: Ranges | None = None) -> Reduced:
    """Every table exact (at least its top ``spec.limit`` rows), the distinct visitors and
    (when asked for) the session counts, asking the sources for what they held back
    (``fetch``) in as few rounds as it takes. What goes by hash range is run by ``ranges``
    (by default here, with ``fetch``)."""
    out = Reduced()
    for name, held in merged.tables.items():
        out.tables[name] = merge_tables(name, held)
    tops = {name: TopK(name, spec.limit, out.tables.get(name), parts, bucket_rows)
            for name, parts in merged.partly.items() if parts}
    if (tops or merged.visitors_held or merged.pages_held) and fetch is None:
        raise AssertionError("the sources held part of the report back, and nothing can "
                             "fetch it")

    def send(requests: dict[str, dict[str, Any]]) -> Callable[[], Answers]:
        if not requests:
            return dict
        assert fetch is not None
        return fetch(requests)

    def ask(requests: dict[str, dict[str, Any]]) -> Answers:
        return send(requests)()

    requests: dict[str, dict[str, Any]] = {}
    for name, top in tops.items():
        for src, request in top.second().items():
            _add(requests, src, "tables", name, request)
    answers = ask(requests)
    threes = {n: t for n, t in tops.items() if not t.by_range}
    work, held_bytes = _range_work(merged, spec, [t for t in tops.values() if t.by_range])
    if ranges is None or not work.held:
        pending = local_ranges(send, bucket_rows)(work, held_bytes)
    else:
        pending = ranges(work, held_bytes)  # meanwhile round three runs here
    for name, top in threes.items():
        top.take(_table_of(answers, name))
    requests = {}
    for name, top in threes.items():
        for src, request in top.third().items():
            _add(requests, src, "tables", name, request)
    answers = ask(requests)
    for name, top in threes.items():
        top.take(_table_of(answers, name))
        out.tables[name] = top.result()
    result = pending()
    out.tables.update(result.tables)
    out.visitors = result.visitors
    out.stats = result.stats
    return out


PAGE_BYTES = 64  # about what a page view takes (its visitor, time and URL)


def _range_work(merged: Merged, spec: ReportSpec, by_range: list[TopK]
                ) -> tuple[RangeWork, int]:
    """What goes by hash range, and about how many bytes the sources kept back for it."""
    pages = pl.concat(merged.pages) if merged.pages else pl.DataFrame(schema=PAGES)
    click = Click(spec.session_timeout, spec.paths_length, spec.transitions, spec.funnel) \
        if spec.click else None
    work = RangeWork(tables={t.name: t.held() for t in by_range},
                     visitors=dict(merged.visitors_held), visitors_inline=union(merged.visitors),
                     pages=dict(merged.pages_held) if click else {}, pages_inline=pages,
                     click=click)
    held = sum(t.held().rows * t.row_bytes() for t in by_range) \
        + 8 * sum(work.visitors.values()) + PAGE_BYTES * sum(work.pages.values())
    return work, held


def local_ranges(send: Fetch, bucket_rows: int = BUCKET_ROWS) -> Ranges:
    """The ranges run here, when their result is waited for."""
    def start(work: RangeWork, held_bytes: int) -> Callable[[], RangeResult]:
        return lambda: run(work, send, bucket_rows)
    return start
