"""``logmr grep`` as a library call: a distributed, time-ordered grep over every node."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from logmr import wire
from logmr.client.plan import Coverage, Reader, coverage_of, discover, require_nodes
from logmr.gearman.client import Client
from logmr.gearman.connection import Server
from logmr.mapfn.grep import GrepQuery
from logmr.mapfn.parse import AUTO
from logmr.timeutil import in_span


@dataclass(frozen=True)
class GrepRequest:
    """A grep across the cluster."""

    query: GrepQuery
    since: int | None = None
    until: int | None = None
    limit: int | None = None
    count_only: bool = False
    timeout: float | None = 60.0  # seconds a node may stay silent

    def args(self) -> dict[str, Any]:
        """The map job's arguments."""
        q = self.query
        return {"pattern": q.pattern, "fixed": q.fixed, "ignore_case": q.ignore_case,
                "invert": q.invert, "since": self.since, "until": self.until,
                "limit": self.limit, "count_only": self.count_only}


@dataclass(frozen=True)
class Match:
    """One line of grep output."""

    time: int
    host: str
    node: str
    line: bytes
    key: tuple[Any, ...] = ()  # (time, batch id, line index): a stored line's identity


@dataclass
class GrepOutcome:
    """The lines (lazily), then the count and which nodes did not answer."""

    reader: Reader | None  # None in file mode
    nodes: list[str]
    servers_down: dict[str, str] = field(default_factory=dict)
    count: int = 0

    @property
    def failed(self) -> dict[str, str]:
        """Nodes that did not answer, with the reason."""
        return self.reader.failed if self.reader is not None else {}

    @property
    def coverage(self) -> Coverage:
        """Whether the answer is complete despite the nodes that failed."""
        return coverage_of(self.reader)


def count_once(results: Iterable[dict[str, Any]]) -> int:
    """Total of the nodes' per-record counts, a record held by two nodes counted once.

    >>> count_once([{"records": [["b1", 0, 5], ["b2", 0, 1]]}, {"records": [["b1", 0, 5]]}])
    6
    """
    counts: dict[tuple[str, int], int] = {}
    for result in results:
        for batch_id, part, n in result.get("records", []):
            counts[(batch_id, part)] = n
    return sum(counts.values())


def grep(servers: list[Server], request: GrepRequest, client: Client | None = None, *,
         secret: bytes | None = None) -> tuple[GrepOutcome, Iterator[Match]]:
    """Start a grep on every live node; returns the outcome and the merged lines.

    ``secret`` signs the map requests (see :func:`logmr.wire.sign`). The outcome's
    ``count`` and ``failed`` are complete once the lines are consumed.
    """
    request.query.compile()  # a bad pattern is the user's error: say so before sending it
    cluster = discover(servers)
    require_nodes(cluster, servers)
    client = client or Client(servers)
    try:
        reader = Reader(client, cluster, wire.MapRequest("grep", request.args()),
                        request.since, request.until, request.timeout, secret)
    except BaseException:
        client.close()
        raise
    outcome = GrepOutcome(reader, [n.node_id for n in cluster.nodes], cluster.servers_down)

    def lines() -> Iterator[Match]:
        try:
            if request.count_only:
                outcome.count = count_once(reader.results())
                return
            for row in reader.rows():
                if request.limit is not None and outcome.count >= request.limit:
                    break
                outcome.count += 1
                yield Match(time=row[0], host=row[3], node=row[5], line=row[4],
                           key=(row[0], row[1], row[2]))
        finally:
            reader.close()
            client.close()

    return outcome, lines()


def grep_files(paths: list[str], request: GrepRequest, fmt: str = AUTO
               ) -> tuple[GrepOutcome, Iterator[Match]]:
    """The same grep over log files, in this process (large inputs on every core):
    matching lines in time order, lines of the same second in the order of the files."""
    from logmr.files import PARALLEL_FROM, map_chunks, total_size
    from logmr.mapfn.detect import chunks_with_formats

    request.query.compile()
    outcome = GrepOutcome(None, ["local"])

    def lines() -> Iterator[Match]:
        rows: list[tuple[int, int, bytes]] = []
        seen = 0
        parallel = total_size(paths) >= PARALLEL_FROM
        chunks = chunks_with_formats(paths, fmt)
        for count, found in map_chunks(grep_file_chunk, chunks, request, fmt,
                                       parallel=parallel):
            rows.extend((t, seen + idx, line) for t, idx, line in found)
            seen += count
        rows.sort()
        if request.limit is not None:
            rows = rows[:request.limit]
        outcome.count = len(rows)
        if request.count_only:
            return
        for t, _, line in rows:
            yield Match(time=t, host="-", node="local", line=line)

    return outcome, lines()


def grep_file_chunk(chunk: tuple[bytes, str], request: GrepRequest, fmt: str
                    ) -> tuple[int, list[tuple[int, int, bytes]]]:
    """How many lines a chunk has, and its matches as (time, line index, line)."""
    from logmr.mapfn.detect import parse_chunk
    from logmr.mapfn.grep import selected_spans

    blob = chunk[0]
    ts = parse_chunk(chunk, fmt).ts
    since, until = request.since, request.until
    found = []
    for idx, start, end in selected_spans(blob, request.query.compile(), request.query.invert):
        t = ts[idx]
        if in_span(t, since, until):
            found.append((t, idx, blob[start:end]))
    return len(ts), found


def follow(servers: list[Server], request: GrepRequest, *, secret: bytes | None = None,
           poll: float = 0.5, stop: Callable[[], bool] = lambda: False) -> Iterator[Match]:
    """Lines as they arrive, like ``tail -f`` of one merged log: every ``poll`` seconds,
    the lines stored since the last ones seen, in time order. A line that arrives after
    newer ones were shown (a late batch) is shown when it arrives."""
    import time as clock

    since = request.since if request.since is not None else int(clock.time())
    seen: dict[tuple[Any, ...], int] = {}  # keys shown lately -> their time
    slack = 120  # re-read this far back: batches do not arrive in time order
    while not stop():
        started = clock.monotonic()
        window = GrepRequest(request.query, since=since - slack, until=request.until)
        outcome, lines = grep(servers, window, secret=secret)
        newest = since
        for row in _keyed(lines):
            key, item = row
            if key in seen:
                continue
            seen[key] = item.time
            newest = max(newest, item.time)
            yield item
        since = newest
        for key in [k for k, t in seen.items() if t < since - slack]:
            del seen[key]
        clock.sleep(max(0.0, poll - (clock.monotonic() - started)))  # the polling interval


def _keyed(lines: Iterator[Match]) -> Iterator[tuple[tuple[Any, ...], Match]]:
    for item in lines:
        yield item.key, item
