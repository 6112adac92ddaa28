"""A report's partial aggregate, and how partials fold into one.

A partial is plain data (msgpack-able): the summary's sums, time bounds and visitor
hashes, and per dimension rows of ``[key, hits, bytes, visitor sketch]``. Folding is
associative and commutative (sums, the union of visitor hashes, kept whole for the
summary and as the smallest ones per row), so the order in which nodes answer and how
batches were spread never change a number. A node's combiner folds its chunks with it,
and the client folds the nodes' partials with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from logmr.mapfn.spec import KMV

Row = list[Any]  # [hits, bytes, visitor hashes: a set, or one partial's list (KMV kept)]


class Merged:
    """The merge of any number of partials."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.bytes_in: int | None = None  # where logged (%I, %O)
        self.bytes_out: int | None = None
        self.unparsed = 0
        self.t0: int | None = None
        self.t1: int | None = None
        self.visitors: set[int] = set()
        self.dims: dict[str, dict[Any, Row]] = {}
        self.pages: list[Any] = []  # polars frames of (visitor, ts, url) page views
        self.hist: dict[int, int] = {}  # times taken: bucket -> lines
        self.timed: dict[Any, list[int]] = {}  # url -> [lines, total us, max us]
        self.nodes: dict[str, dict[str, int]] = {}

    def add(self, partial: dict[str, Any], node: str = "local") -> None:
        """Fold one partial in."""
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
        self.visitors.update(s["visitors"])
        seen = self.nodes.setdefault(node, {"requests": 0, "unparsed": 0})
        seen["requests"] += s["requests"]
        seen["unparsed"] += s["unparsed"]
        for dim, rows in partial.get("dims", {}).items():
            add_rows(self.dims.setdefault(dim, {}), rows)
        if partial.get("pages") is not None:
            self.pages.append(partial["pages"])
        times = partial.get("times")
        if times is not None:
            for bucket, n in times["hist"]:
                self.hist[bucket] = self.hist.get(bucket, 0) + n
            for url, n, total, longest in times["urls"]:
                row = self.timed.get(url)
                if row is None:
                    self.timed[url] = [n, total, longest]
                else:
                    row[0] += n
                    row[1] += total
                    row[2] = max(row[2], longest)

    def add_pages(self, pages: Any) -> None:
        """Fold in a page stream (a polars frame) sent on its own."""
        self.pages.append(pages)

    def to_partial(self) -> dict[str, Any]:
        """Back to the partial form (without pages): a node's combiner sends this."""
        return {"summary": {"requests": self.requests, "bytes": self.bytes,
                            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                            "unparsed": self.unparsed, "t0": self.t0, "t1": self.t1,
                            "visitors": list(self.visitors)},
                "dims": {dim: [[k, row[0], row[1], sorted(row[2])[:KMV]]
                               for k, row in rows.items()] for dim, rows in self.dims.items()},
                "times": {"hist": [[b, n] for b, n in self.hist.items()],
                          "urls": [[u, *row] for u, row in self.timed.items()]}}


def add_rows(into: dict[Any, Row], rows: Iterable[list[Any]]) -> None:
    """Add ``[key, hits, bytes, kmv]`` rows into ``into``."""
    for key, hits, nbytes, kmv in rows:
        row = into.get(key)
        if row is None:
            # a partial's sketch is a list of distinct hashes, never changed in place: kept
            # as it is until a second one arrives for the key (most keys get just one)
            into[key] = [hits, nbytes, kmv if type(kmv) is list else set(kmv)]
        else:
            row[0] += hits
            row[1] += nbytes
            held = row[2] if type(row[2]) is set else set(row[2])
            held.update(kmv)
            row[2] = held if len(held) <= 4 * KMV else set(sorted(held)[:KMV])


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)
