"""``logmr grep`` as a library call: a distributed, time-ordered grep over every node."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logmr.mapfn.grep import GrepQuery
from logmr.mapfn.parse import AUTO
from logmr.timeutil import in_span

if TYPE_CHECKING:  # the cluster's side is imported where it is used: file mode needs none
    from logmr.client.plan import Coverage, Reader
    from logmr.gearman.address import Server
    from logmr.gearman.client import Client


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
        from logmr.client.plan import coverage_of

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
    from logmr import wire
    from logmr.client.plan import Reader, discover, require_nodes
    from logmr.gearman.client import Client

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


def in_file_order(paths: list[str], request: GrepRequest) -> bool:
    """True when file mode can answer without reading a single time: one input (printed
    in its own order, as GNU grep prints it) or a count, and no --since/--until."""
    return request.since is None and request.until is None and (
        len(paths) == 1 or request.count_only)


def grep_file_blocks(paths: list[str], request: GrepRequest
                     ) -> tuple[GrepOutcome, Iterator[bytes]]:
    """File mode's grep when no time is needed (:func:`in_file_order`): the matching lines
    in blocks (each ending in a newline), in the file's order; for a count, none, and the
    count in the outcome. Whole buffers are searched in C; no line is parsed."""
    from logmr.files import buffers, count_in_parts, output_in_parts
    from logmr.mapfn.grep import count_lines, newlines

    if not in_file_order(paths, request):
        raise ValueError("grep_file_blocks reads no time: use grep_files")
    rx = request.query.compile()
    invert, limit = request.query.invert, request.limit
    outcome = GrepOutcome(None, ["local"])

    def produce(buf: Any, start: int, stop: int) -> Iterator[bytes]:
        return _matching_blocks(buf, rx, invert, start, stop)

    def blocks() -> Iterator[bytes]:
        for path in paths:
            for buf in buffers(path):
                if limit is None:  # every core, in order
                    if request.count_only:
                        outcome.count += count_in_parts(
                            buf, lambda b, start, stop: count_lines(b, rx, invert, start,
                                                                    stop))
                        continue
                    for block in output_in_parts(buf, produce):
                        outcome.count += newlines(block)
                        yield block
                    continue
                # a line at a time, to stop at the limit
                for block in _matching_blocks(buf, rx, invert, 0, len(buf), size=1):
                    lines = newlines(block)
                    if outcome.count + lines > limit:
                        block = b"".join(block.splitlines(keepends=True)[
                            :limit - outcome.count])
                        lines = limit - outcome.count
                    outcome.count += lines
                    if not request.count_only:
                        yield block
                    if outcome.count >= limit:
                        return

    return outcome, blocks()


BLOCK = 1 << 20  # bytes of output gathered before they are written


def _matching_blocks(buf: Any, rx: Any, invert: bool, start: int = 0,
                     stop: int | None = None, size: int = BLOCK) -> Iterator[bytes]:
    """The matching lines of ``buf[start:stop]`` (with ``invert``, the others), each
    ending in a newline, gathered in blocks of about ``size`` bytes."""
    from logmr.mapfn.grep import selected_line_spans

    pieces: list[bytes] = []
    held = 0
    for a, b in selected_line_spans(buf, rx, invert, start, stop):
        piece = buf[a:b]
        pieces.append(piece if piece.endswith(b"\n") else piece + b"\n")
        held += b - a
        if held >= size:
            yield b"".join(pieces)
            pieces, held = [], 0
    if pieces:
        yield b"".join(pieces)


def grep_files(paths: list[str], request: GrepRequest, fmt: str = AUTO
               ) -> tuple[GrepOutcome, Iterator[Match]]:
    """The same grep over log files, in this process, each line with its time: in time
    order across several files (lines of the same second in the order of the files), in
    its own order for one. Only matching lines are parsed, for their times; a line with
    no time of its own takes that of the matching line before it."""
    from logmr.files import buffers
    from logmr.mapfn.detect import detect, parse_detected
    from logmr.mapfn.parse import parse_batch

    rx = request.query.compile()
    outcome = GrepOutcome(None, ["local"])
    since, until = request.since, request.until

    def lines() -> Iterator[Match]:
        rows: list[tuple[int, int, int, bytes]] = []  # time, file, line, the line
        for number, path in enumerate(paths):
            found: str | None = None if fmt == AUTO else fmt
            seq = 0
            for buf in buffers(path):
                if found is None:
                    found = detect(bytes(buf[:1 << 20])).fmt
                block = b"".join(_matching_blocks(buf, rx, request.query.invert))
                if not block:
                    continue
                parsed = (parse_detected(block, found)[0] if fmt == AUTO
                          else parse_batch(block, found))
                for t, line in zip(parsed.ts, block.split(b"\n"), strict=False):
                    if in_span(t, since, until):
                        rows.append((t, number, seq, line))
                    seq += 1
        if len(paths) > 1:
            rows.sort()
        if request.limit is not None:
            rows = rows[:request.limit]
        outcome.count = len(rows)
        if request.count_only:
            return
        for t, _, _, line in rows:
            yield Match(time=t, host="-", node="local", line=line)

    return outcome, lines()


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
