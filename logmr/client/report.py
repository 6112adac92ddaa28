"""``logmr report`` as library calls: on the cluster (map on every node, reduce here) or
on files (the same map and reduce, in this process)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from logmr import wire
from logmr.client.plan import (
    Coverage,
    Fanout,
    Node,
    Reader,
    ask_each,
    coverage_of,
    discover,
    require_nodes,
)
from logmr.client.rounds import (
    MEMORY_MB,
    REDUCE_FUNCTION,
    REDUCERS_PER_NODE,
    RoundFailed,
    partitioned,
    rest_fetcher,
)
from logmr.errors import ConfigError, LogmrError
from logmr.gearman.client import Client
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError
from logmr.mapfn.agents import is_bot
from logmr.mapfn.detect import chunks_with_formats, parse_chunk
from logmr.mapfn.parse import AUTO
from logmr.mapfn.partial import Merged, from_wire
from logmr.mapfn.spec import CLICK, PANELS, Filters, ReportSpec
from logmr.reduce.panels import panels
from logmr.reduce.ranges import BUCKET_ROWS, Fetch
from logmr.reduce.topk import Ranges, reduce
from logmr.timeutil import parse_span


@dataclass
class ReportResult:
    """The report, and which nodes (or job servers) are missing from it."""

    data: dict[str, Any]
    failed: dict[str, str] = field(default_factory=dict)
    servers_down: dict[str, str] = field(default_factory=dict)
    coverage: Coverage = field(default_factory=Coverage)


def finalize(merged: Merged, spec: ReportSpec, fetch: Fetch | None = None,
             bucket_rows: int = BUCKET_ROWS, ranges: Ranges | None = None) -> dict[str, Any]:
    """The JSON-shaped report: one key per report, named like its flag (what the sources
    kept back is fetched with ``fetch``, and what goes by hash range run by ``ranges``: see
    :func:`logmr.reduce.topk.reduce`)."""
    reduced = reduce(merged, spec, fetch, bucket_rows, ranges)
    data = panels(merged, reduced, spec)
    if spec.click:
        from logmr.reduce.clicks import click_reports

        data.update(click_reports(reduced.stats, spec))
    return data


# -- what to report -----------------------------------------------------------------------

DEFAULT_REPORTS = ("summary", "top_urls", "status")
_STATUS = re.compile(r"^([1-5])xx$|^(\d{3})$")


def parse_status(text: str) -> tuple[tuple[int, int], ...]:
    """``5xx``, ``404``, ``4xx,5xx`` as inclusive ranges."""
    ranges = []
    for item in text.split(","):
        m = _STATUS.match(item.strip().lower())
        if m is None:
            raise ConfigError(f"cannot read status {item!r}: use 404, 5xx or a list like "
                              "4xx,503")
        ranges.append((int(m.group(1)) * 100, int(m.group(1)) * 100 + 99) if m.group(1)
                      else (int(m.group(2)), int(m.group(2))))
    return tuple(ranges)


def filters_from_options(since: int | None = None, until: int | None = None,
                         grep: str | None = None, url: str | None = None,
                         only_status: str | None = None, source_host: str | None = None,
                         exclude_bots: bool = False) -> Filters:
    """Which lines a report reads, from the command line's options (as typed)."""
    return Filters(since=since, until=until,
                   grep=grep.encode("utf-8", "surrogateescape") if grep else None,
                   url=url.encode("utf-8", "surrogateescape") if url else None,
                   status=parse_status(only_status) if only_status else (),
                   source_host=source_host, exclude_bots=exclude_bots)


def spec_from_options(reports: Iterable[str], *, everything: bool = False,
                      transitions: str | None = None, funnel: str | None = None,
                      filters: Filters | None = None, limit: int = 10, interval: str = "1h",
                      visitor_key: str = "ip+ua", session_timeout: str = "30m",
                      include_static: bool = False, include_bots: bool = False,
                      client_ip: str = "peer", trusted_proxies: Iterable[str] = ()
                      ) -> ReportSpec:
    """A report request from the command line's options (as typed): the reports named
    (``top_urls``...), or every one, or the default three."""
    names = list(reports)
    if everything:
        names = list(PANELS) + [c for c in CLICK if c not in ("transitions", "funnel")]
    if transitions:
        names.append("transitions")
    if funnel:
        names.append("funnel")
    return ReportSpec(
        reports=tuple(dict.fromkeys(names)) or DEFAULT_REPORTS, limit=limit,
        interval=parse_span(interval), visitor_key=visitor_key,
        session_timeout=parse_span(session_timeout),
        transitions=transitions.encode() if transitions else None,
        funnel=tuple(s.strip().encode() for s in funnel.split(",") if s.strip())
        if funnel else (), include_static=include_static, include_bots=include_bots,
        client_ip=client_ip, trusted_proxies=tuple(trusted_proxies),
        filters=filters or Filters())


# -- the cluster --------------------------------------------------------------------------

INLINE_ROWS = 20_000  # keys of a table a node sends whole
INLINE_VISITORS = 200_000  # visitor hashes a node sends whole


@dataclass
class _Part:
    """One node's first answer to a report, over the records one fan gave it."""

    node: str
    fan: Fanout
    result: dict[str, Any]
    pages: list[Any]


def cluster_report(servers: list[Server], spec: ReportSpec, secret: bytes | None = None,
                   timeout: float | None = 300.0,
                   progress: Callable[[str, int, int], None] | None = None,
                   inline_rows: int = INLINE_ROWS, inline_visitors: int = INLINE_VISITORS,
                   bucket_rows: int = BUCKET_ROWS, memory_mb: int = MEMORY_MB
                   ) -> ReportResult:
    """Map the report on every live node; merge the partials here.

    Each record is read once, by one of the nodes that hold it (the read plan of
    :class:`logmr.client.plan.Reader`); a node that fails midway has its share read again by
    the other holders, and what it had sent is dropped. A node sends small tables whole and
    keeps large ones for the rounds of :func:`logmr.reduce.topk.reduce`; a node that fails
    in those rounds has its share read again as well, and the rounds start over. What
    the nodes kept back for the hash ranges is read here when it fits in ``memory_mb``,
    and otherwise reduced on the nodes (:mod:`logmr.client.rounds`).
    """
    cluster = discover(servers)
    require_nodes(cluster, servers)
    client = Client(servers)
    query = secrets.token_hex(16)
    takeovers = 0

    from logmr.mapfn.frames import hash_probe

    probe = hash_probe()  # nodes that hash visitors otherwise refuse the query
    # parts of a partitioned reduce: none unless the nodes offer the reduce jobs
    offered = any(fn.name == REDUCE_FUNCTION and fn.workers > 0
                  for functions in cluster.status.values() for fn in functions)
    reducers = REDUCERS_PER_NODE * len(cluster.nodes) if offered else 0

    def how(part: str) -> dict[str, Any]:
        return {"reduce": {"query": part, "rows": inline_rows, "visitors": inline_visitors,
                           "probe": probe}}

    parts: dict[str, _Part] = {}  # source (node/query) -> its first answer
    reader: Reader | None = None
    try:
        f = spec.filters
        reader = Reader(client, cluster, wire.MapRequest("report", {**spec.to_args(),
                                                                    **how(query)}),
                        f.since, f.until, timeout, secret)
        fans = [reader.first()]
        while True:
            while fans:
                fan = fans.pop()
                failed = dict(fan.failed)
                for node_id, (result, pages) in _fold_all(fan, failed, progress).items():
                    parts[f"{node_id}/{result.get('spool') or len(parts)}"] = _Part(
                        node_id, fan, result, pages)
                if failed:
                    takeovers += 1
                    sub = reader.take_over(fan, failed, how(f"{query}.{takeovers}"))
                    if sub is not None:
                        fans.append(sub)
            merged = Merged()
            for source in sorted(parts):  # a fixed order: the same report every time
                part = parts[source]
                for frame in part.pages:
                    merged.add_pages(frame)
                merged.add(from_wire(part.result), part.node, source)
            sources = {s: (reader.nodes[p.node], p.result["spool"]) for s, p in parts.items()
                       if p.result.get("spool")}
            fetch = rest_fetcher(client, sources, secret, timeout)
            ranges = partitioned(client, sources, fetch, secret, timeout, memory_mb << 20,
                                 reducers, bucket_rows)
            try:
                data = finalize(merged, spec, fetch, bucket_rows, ranges)
                break
            except RoundFailed as exc:  # read what those nodes held again, start over
                for source in [s for s, p in parts.items() if p.node in exc.failed]:
                    part = parts.pop(source)
                    takeovers += 1
                    sub = reader.take_over(part.fan, {part.node: exc.failed[part.node]},
                                           how(f"{query}.{takeovers}"))
                    if sub is not None:
                        fans.append(sub)
        reader.close()
    finally:
        if reader is not None:
            _drop(client, reader.nodes, parts, secret)
        client.close()
    return ReportResult(data, dict(reader.failed), cluster.servers_down, coverage_of(reader))


def _drop(client: Client, nodes: dict[str, Node], parts: dict[str, _Part],
          secret: bytes | None) -> None:
    """Tell the nodes that kept part of the report that it is done (best effort: a spool
    nobody drops goes after a while)."""
    asks = [(nodes[p.node], wire.MapRequest("report_rest", {"query": p.result["spool"],
                                                            "drop": True}))
            for p in parts.values() if p.result.get("spool") and p.node in nodes]
    if asks:
        ask_each(client, asks, secret, 10.0)


def _fold_all(fan: Fanout, failed: dict[str, str],
              progress: Callable[[str, int, int], None] | None
              ) -> dict[str, tuple[dict[str, Any], list[Any]]]:
    """Read every node's answer at once (page streams as they come, then the partial),
    reporting each node's progress (hours done of hours to read) as it goes."""
    import selectors
    import time

    results: dict[str, dict[str, Any]] = {}
    pages: dict[str, list[Any]] = {}  # a node's page streams count once it has finished
    heard: dict[str, float] = {}
    jobs = fan.jobs
    with selectors.DefaultSelector() as selector:
        for node_id, job in jobs.items():
            selector.register(job.fileno(), selectors.EVENT_READ, node_id)
            heard[node_id] = time.monotonic()
        while selector.get_map():
            for key in list(selector.get_map().values()):  # nodes silent for too long
                job = jobs[key.data]
                if job.timeout is not None and time.monotonic() - heard[key.data] > job.timeout:
                    failed[key.data] = f"sent nothing for {job.timeout:g} s"
                    selector.unregister(key.fileobj)
                    job.close()
            for key, _ in selector.select(timeout=1.0):
                node_id = key.data
                heard[node_id] = time.monotonic()
                job = jobs[node_id]
                try:
                    for chunk in job.step():
                        pages.setdefault(node_id, []).append(
                            wire.unpack_frame(fan.verified(node_id, chunk, "page stream")))
                    if job.status is not None and progress is not None:
                        progress(node_id, *job.status)
                    if job.finished:
                        results[node_id] = wire.unpack_result(fan.verified(node_id,
                                                                           job.result))
                        if progress is not None:
                            progress(node_id, 1, 1)
                except (LogmrError, GearmanError) as exc:
                    failed[node_id] = str(exc)
                if job.finished or node_id in failed:
                    selector.unregister(key.fileobj)
    return {node_id: (results[node_id], pages.get(node_id, [])) for node_id in results
            if node_id not in failed}


# -- files --------------------------------------------------------------------------------

def file_report(paths: Iterable[str], spec: ReportSpec, fmt: str = AUTO) -> ReportResult:
    """The same report over log files, in this process (no cluster); large inputs are
    mapped on every core, and the partials merged here as they would be from nodes."""
    from logmr.files import PARALLEL_FROM, map_chunks, total_size
    from logmr.mapfn.agents import is_static
    from logmr.mapfn.aggregate import partial_of

    paths = list(paths)
    merged = Merged()
    parallel = total_size(paths) >= PARALLEL_FROM
    # larger chunks than grep's: a chunk's group-bys cost as much at 25k lines as at 75k
    chunks = chunks_with_formats(paths, fmt, REPORT_CHUNK)
    for partial in map_chunks(map_file_chunk, chunks, spec, fmt, parallel=parallel):
        merged.add(partial)
    if not merged.nodes:
        from logmr.mapfn import frames

        merged.add(partial_of(frames.empty_frame(), 0, spec, is_bot, is_static))
    return ReportResult(finalize(merged, spec))


REPORT_CHUNK = 12 << 20  # bytes of lines a file-mode report maps at a time


def map_file_chunk(chunk: tuple[bytes, str], spec: ReportSpec, fmt: str) -> dict[str, Any]:
    """The partial report of one chunk of a file (runs in a child on large inputs)."""
    import polars as pl

    from logmr.mapfn import bulk, frames
    from logmr.mapfn.agents import is_static
    from logmr.mapfn.aggregate import partial_of, prepared
    from logmr.mapfn.grep import GrepQuery, matching_spans

    blob, hint = chunk
    fast = bulk.combined_frame(blob) if (hint if fmt == AUTO else fmt) in bulk.FORMATS \
        else None
    if fast is not None:
        frame, bad = fast
    else:
        parsed = parse_chunk(chunk, fmt)
        frame, bad = frames.record_frame(parsed.columns, parsed.ts)
    if spec.filters.grep is not None:
        rx = GrepQuery(spec.filters.grep).compile()
        keep = [i for i, _, _ in matching_spans(blob, rx)]
        frame = frame.filter(pl.col("line").is_in(keep))
    frame = prepared(frame, spec, is_bot)
    return partial_of(frame, bad, spec, is_bot, is_static)
