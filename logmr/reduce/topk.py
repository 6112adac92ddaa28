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
  flood of clients seen once each). The 63-bit hashes of the keys are cut into ranges of
  about ``bucket_rows`` rows; every node sends one range at a time (reading only the
  spool files of that range), which is merged exactly and cut to its top k. Memory and
  each round's work follow the range, not the table.

Distinct visitors held back are counted the same way, by ranges of their 63-bit hashes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from logmr.mapfn.partial import (
    Merged,
    Sent,
    hash_in,
    key_hash,
    merge_tables,
    ranked,
    score_of,
    select,
    union,
)
from logmr.mapfn.spec import ReportSpec

# source -> request in, source -> answer out: {"tables": {name: frame}, "visitors": Series}
Answers = dict[str, dict[str, Any]]
# sends the requests at once and returns what waits for the answers: a reduce reading
# range after range sends the next range's requests before it reads this one's answers
Fetch = Callable[[dict[str, dict[str, Any]]], Callable[[], Answers]]
BUCKET_ROWS = 250_000  # rows of a range of key hashes, or visitor hashes of a hash range
HASHES = 1 << 63  # visitor hashes are in [0, 2**63)


@dataclass
class Reduced:
    """The merged tables (exact rows, at least the top ``limit`` of each) and visitors."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    visitors: int = 0


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
        self.ranges: list[tuple[int, int | None]] = []
        self.candidates: list[Any] = []  # keys that may be in the top k, after round three
        self.top: pl.DataFrame | None = None  # the running top k, in range mode

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
        rows = sum(s.rows for s in self.parts.values())
        self.ranges = hash_ranges(max(1, math.ceil(rows / self.bucket_rows)))
        return {}

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
        if self.top is not None:
            return self.top
        merged = merge_tables(self.name, self._frames())
        wanted = select(merged, self.name, {"keys": self.candidates})
        return ranked(self.name, wanted, self.k)

    def take_range(self, i: int, answers: dict[str, pl.DataFrame]) -> None:
        """Fold in hash range ``i`` of every source: merged exactly, cut to the top k."""
        lo, hi = self.ranges[i]
        frames = [f for f in answers.values()]
        if self.whole is not None:
            frames.append(self.whole.filter(hash_in(key_hash(), lo, hi)))
        if self.top is not None:
            frames.append(self.top)  # keys of other ranges: merging leaves them as they are
        self.top = ranked(self.name, merge_tables(self.name, frames), self.k)


def _add(requests: dict[str, dict[str, Any]], src: str, kind: str, name: str,
         request: Any) -> None:
    requests.setdefault(src, {}).setdefault(kind, {})[name] = request


def _table_of(answers: Answers, name: str) -> dict[str, pl.DataFrame]:
    """Each source's rows of table ``name`` in a round's answers."""
    return {src: a["tables"][name] for src, a in answers.items() if name in a.get("tables", {})}


def reduce(merged: Merged, spec: ReportSpec, fetch: Fetch | None = None,
           bucket_rows: int = BUCKET_ROWS) -> Reduced:
    """Every table exact (at least its top ``spec.limit`` rows) and the distinct visitors,
    asking the sources for what they held back (``fetch``) in as few rounds as it takes."""
    out = Reduced()
    for name, held in merged.tables.items():
        out.tables[name] = merge_tables(name, held)
    tops = {name: TopK(name, spec.limit, out.tables.get(name), parts, bucket_rows)
            for name, parts in merged.partly.items() if parts}
    if (tops or merged.visitors_held) and fetch is None:
        raise AssertionError("tables were sent in part, and nothing can fetch the rest")

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
    threes = {n: t for n, t in tops.items() if not t.ranges}
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
    out.visitors = _visitors(merged, {n: t for n, t in tops.items() if t.ranges}, send,
                             bucket_rows)
    for name, top in tops.items():
        if top.ranges:
            out.tables[name] = top.result()
    return out


def hash_ranges(count: int) -> list[tuple[int, int | None]]:
    """``count`` ranges [low, high) of 63-bit hashes of about the same size, in order (the
    last one's high None, no bound)."""
    lows = [HASHES * i // count for i in range(count)]
    highs: list[int | None] = [*lows[1:], None]
    return list(zip(lows, highs, strict=False))  # no range for a count of 0


def _visitors(merged: Merged, by_range: dict[str, TopK], send: Fetch, bucket_rows: int
              ) -> int:
    """The distinct visitors, counted range by range of their hashes where some source
    held its own back; tables read by hash range go in the same rounds."""
    inline = union(merged.visitors)
    held = merged.visitors_held
    total = sum(held.values()) + inline.len()
    count = math.ceil(total / bucket_rows) if held else 0
    ranges = hash_ranges(count)
    rounds = max([count, *(len(t.ranges) for t in by_range.values())])

    def requests(i: int) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if i < count:
            for src in held:
                out.setdefault(src, {})["visitors"] = list(ranges[i])
        for name, top in by_range.items():
            if i < len(top.ranges):
                for src in top.parts:
                    _add(out, src, "tables", name, {"hashes": list(top.ranges[i])})
        return out

    visitors = 0 if held else inline.len()
    pending = send(requests(0)) if rounds else dict
    for i in range(rounds):
        answers = pending()
        if i + 1 < rounds:
            pending = send(requests(i + 1))  # the nodes cut the next range meanwhile
        if i < count:
            lo, hi = ranges[i]
            parts = [a["visitors"] for a in answers.values() if "visitors" in a]
            parts.append(inline.to_frame().filter(hash_in("vh", lo, hi)).to_series())
            visitors += pl.concat(parts).n_unique()
        for name, top in by_range.items():
            if i < len(top.ranges):
                top.take_range(i, _table_of(answers, name))
    return visitors
