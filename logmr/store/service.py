"""The storage node service: Gearman workers around a :class:`NodeStore`.

One thread takes ingest jobs (``logmr.store`` and ``logger``); another answers map jobs
(``logmr.map.<node-id>``), each run in a forked child under a time budget, so a long
query never stalls ingestion. Map jobs are looked up
by name in :data:`MAP_JOBS`; nothing received is executed. With a shared secret, a batch
or map request that is not signed with it is refused (WORK_EXCEPTION: nothing is stored)
and logged once, and the unsignable raw ``logger`` function is not offered.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import polars as pl

from logmr import wire
from logmr.errors import LogmrError
from logmr.gearman.connection import Server
from logmr.gearman.worker import Job, Worker
from logmr.jobs import Job as UserJob
from logmr.jobs import check_identity, lines_of, map_and_combine, reduce_pairs
from logmr.mapfn import frames
from logmr.mapfn.agents import classify_agent, is_static
from logmr.mapfn.grep import GrepQuery, count_records, grep_hour, matching_spans
from logmr.mapfn.pattern import runs_in_linear_time
from logmr.mapfn.report import Combiner, apply_filters, page_stream
from logmr.mapfn.spec import ReportSpec
from logmr.store.node import NodeStore, Record
from logmr.store.runner import MapRunner, Reply

log = logging.getLogger(__name__)


def _time_arg(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is not None and not isinstance(value, int):
        raise LogmrError(f"map argument {name} must be epoch seconds")
    return value


def grep_query(args: dict[str, Any]) -> GrepQuery:
    """The grep query a map request asks for."""
    return GrepQuery(pattern=bytes(args.get("pattern", b"")), fixed=bool(args.get("fixed")),
                     ignore_case=bool(args.get("ignore_case")), invert=bool(args.get("invert")))


def map_grep(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float
             ) -> dict[str, Any]:
    """Stream matching rows, oldest first, in chunks; end with the count."""
    query = grep_query(args)
    rx = query.compile()
    since, until = _time_arg(args, "since"), _time_arg(args, "until")
    limit = args.get("limit")
    count_only = bool(args.get("count_only"))
    total = 0
    per_record: list[tuple[str, int, int]] = []
    hours = list(store.records(since, until))
    for done, (_hour, records) in enumerate(hours):
        if time.monotonic() > deadline:
            raise LogmrError("map job exceeded its time budget and was stopped; narrow it "
                             "with --since/--until")
        # progress, and a sign of life for the client's idle timeout
        job.send_status(done, len(hours))
        metas = [_Adapter(r) for r in records]
        if count_only:
            # per record, so that the client counts a batch stored on two nodes once
            per_record.extend((rec.batch_id, rec.meta_part, n) for rec, n in
                              count_records(metas, rx, query.invert, since, until) if n)
            continue
        rows = grep_hour(metas, rx, query.invert, since, until)
        if limit is not None:
            rows = rows[: max(0, limit - total)]
        for chunk in wire.iter_chunks(iter(rows)):
            job.send_data(wire.pack_rows(chunk))
        total += len(rows)
        if limit is not None and total >= limit:
            break
    if count_only:
        return {"count": sum(n for _, _, n in per_record), "records": per_record}
    return {"count": total}


def map_records(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float
                ) -> dict[str, Any]:
    """The (batch id, part) of every record in the range: how the client finds a batch
    stored on two nodes before a report, so that it counts once."""
    since, until = _time_arg(args, "since"), _time_arg(args, "until")
    return {"records": [[r.meta.batch_id, r.meta.part] for _, records in
                        store.records(since, until) for r in records]}


def map_stats(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float
              ) -> dict[str, Any]:
    """What this node holds."""
    return store.stats()


def is_bot(ua: bytes) -> bool:
    """True for a known crawler's user agent."""
    return classify_agent(ua).bot is not None


FRAME = 3  # the cache slot of a record's report frame (segment parts are 0-2)


def record_frame_of(store: NodeStore, record: Record) -> tuple[pl.DataFrame, int]:
    """A record's report frame, built once and kept in the node's bounded cache."""
    return store.memo(record, FRAME, lambda: frames.record_frame(record.columns(), record.ts()),
                      # polars holds about twice its estimate for frames this small (measured)
                      lambda value: 2 * int(value[0].estimated_size()) + 4096)


CHUNK_ROWS = 100_000  # lines aggregated at a time: memory stays flat as the data grows


def map_report(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float
               ) -> dict[str, Any]:
    """A partial report over this node's lines (see logmr.mapfn.report), aggregated a
    chunk at a time and combined here; click analysis page streams go out as WORK_DATA."""
    spec = ReportSpec.from_args(args)
    skip = {(str(b), int(p)) for b, p in args.get("skip") or ()}
    f = spec.filters
    rx = GrepQuery(f.grep).compile() if f.grep is not None else None
    combined = Combiner(spec)
    chunk: list[pl.DataFrame] = []
    rows = unparsed = 0

    def flush() -> None:
        nonlocal chunk, rows, unparsed
        frame = apply_filters(pl.concat(chunk, rechunk=True) if chunk else frames.empty_frame(),
                              f, is_bot)
        combined.add(frame, unparsed)
        if spec.click:
            pages = page_stream(frame, spec, is_bot, is_static)
            if pages.height:
                job.send_data(wire.pack_frame(pages))
        chunk, rows, unparsed = [], 0, 0

    hours = list(store.records(f.since, f.until))
    for done, (_hour, records) in enumerate(hours):
        if time.monotonic() > deadline:
            raise LogmrError("map job exceeded its time budget and was stopped; narrow it "
                             "with --since/--until")
        job.send_status(done, len(hours))
        for record in records:
            if (f.source_host is not None and record.meta.host != f.source_host) or (
                    (record.meta.batch_id, record.meta.part) in skip):
                continue
            frame, bad = record_frame_of(store, record)
            if rx is not None:
                keep = [i for i, _, _ in matching_spans(record.lines(), rx)]
                frame = frame.filter(pl.col("line").is_in(keep))
            chunk.append(frame)
            rows += frame.height
            unparsed += bad
            if rows >= CHUNK_ROWS:
                flush()
    flush()
    return combined.partial()


def map_run(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float,
            jobs: dict[str, UserJob] | None = None) -> dict[str, Any]:
    """A user job from this node's jobs directory: mapper and combiner over its lines."""
    wanted = args.get("job")
    if not isinstance(wanted, dict) or not isinstance(wanted.get("name"), str):
        raise LogmrError("malformed run request: it names no job")
    user_job = (jobs or {}).get(wanted["name"])
    if user_job is None:
        raise LogmrError(f"this node has no job {wanted['name']!r} (it loads jobs from its "
                         "--jobs-dir at start)")
    check_identity(user_job, wanted)
    since, until = _time_arg(args, "since"), _time_arg(args, "until")
    combined: list[tuple[Any, Any]] = []
    hours = list(store.records(since, until))
    for done, (_hour, records) in enumerate(hours):
        job.send_status(done, len(hours))
        for record in records:
            lines = (line for line in lines_of(record.columns(), record.ts(), record.meta.host)
                     if (since is None or line.ts >= since) and (until is None or line.ts < until))
            combined.extend(map_and_combine(user_job, lines))
    # combine again across records: fewer pairs on the wire
    regrouped = reduce_pairs(_Combining(user_job), combined)
    return {"pairs": [list(pair) for pair in regrouped]}


class _Combining(UserJob):
    """A job whose reducer is another job's combiner (to combine on the node)."""

    def __init__(self, job: UserJob) -> None:
        self.job = job

    def reducer(self, key: Any, values: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        return self.job.combiner(key, values)


MapJob = Callable[[NodeStore, Reply, dict[str, Any], float], dict[str, Any]]
MAP_JOBS: dict[str, MapJob] = {
    "grep": map_grep,
    "records": map_records,
    "run": map_run,
    "report": map_report,
    "stats": map_stats,
}


def runs_inline(request: wire.MapRequest) -> bool:
    """Jobs that cannot run away (stats; grep for a pattern without repetition, which
    cannot backtrack) skip the fork and check the budget between hours instead."""
    if request.job in ("stats", "records"):
        return True
    if request.job == "grep":
        return runs_in_linear_time(grep_query(request.args).compile())
    if request.job == "report":
        f = ReportSpec.from_args(request.args).filters
        return all(runs_in_linear_time(GrepQuery(p).compile()) for p in (f.grep, f.url)
                   if p is not None)
    return False


class _Adapter:
    """A Record seen through the fields grep needs."""

    __slots__ = ("_r", "batch_id", "host", "meta_part", "t0", "t1")

    def __init__(self, record: Any) -> None:
        self._r = record
        self.batch_id: str = record.meta.batch_id
        self.host: str = record.meta.host
        self.meta_part: int = record.meta.part
        self.t0: int = record.meta.t0
        self.t1: int = record.meta.t1

    def lines(self) -> bytes:
        return self._r.lines()  # type: ignore[no-any-return]

    def ts(self) -> Sequence[int]:
        return self._r.ts()  # type: ignore[no-any-return]


class NodeService:
    """Runs a storage node until :meth:`stop`."""

    def __init__(self, store: NodeStore, servers: list[Server], log_format: str = "combined",
                 host: str = "-", secret: bytes | None = None,
                 runner: MapRunner | None = None, jobs: dict[str, UserJob] | None = None
                 ) -> None:
        self.store = store
        self.log_format = log_format
        self.host = host
        self.secret = secret
        self.runner = runner or MapRunner(fork_lock=lambda: store.lock)
        self.jobs = jobs or {}
        self.ingest = Worker(servers, client_id=f"logmr-ingest-{store.node_id}")
        self.ingest.register(wire.STORE_FUNCTION, self._on_store)
        if secret is None:
            self.ingest.register(wire.LOGGER_FUNCTION, self._on_logger)
        else:
            log.info("a secret is set: not registering '%s' (raw lines from the stock gearman "
                     "CLI cannot be signed)", wire.LOGGER_FUNCTION)
        self.query = Worker(servers, client_id=f"logmr-map-{store.node_id}")
        self.query.register(wire.map_function(store.node_id), self._on_map)
        self._threads: list[threading.Thread] = []

    def _verified(self, job: Job, what: str) -> bytes:
        """The job's payload once its signature checks out; a refusal raises (the worker
        loop logs it once and ends the job with WORK_EXCEPTION: nothing is stored)."""
        return wire.verify(job.payload, self.secret, what)

    def _on_store(self, job: Job) -> bytes:
        batch = wire.unpack_batch(self._verified(job, "batch"))
        result = self.store.store(batch)
        log.debug("batch %s: %d lines%s", batch.batch_id, result.lines,
                  " (duplicate, skipped)" if result.duplicate else "")
        return b"ok"

    def _on_logger(self, job: Job) -> bytes:
        # Raw lines from `gearman -n -f logger`. The job's unique id survives requeueing,
        # so it is the dedupe key; the arrival time orders it among equal timestamps.
        unique = job.unique or job.handle.decode("ascii", "replace")
        batch_id = "logger:" + "".join(c if c.isalnum() or c in "._:-" else "_"
                                       for c in unique)[:55]
        self.store.store(wire.Batch(batch_id, self.host, self.log_format, job.payload))
        return b"ok"

    def _on_map(self, job: Job) -> bytes:
        request = wire.unpack_request(self._verified(job, "map request"))
        handler = MAP_JOBS.get(request.job)
        if request.job == "run":
            handler = functools.partial(map_run, jobs=self.jobs)
        if handler is None:
            raise LogmrError(f"unknown map job {request.job!r}; this node knows "
                             f"{', '.join(sorted(MAP_JOBS))}")
        started = time.monotonic()
        deadline = started + self.runner.budget
        if runs_inline(request):
            result = handler(self.store, job, request.args, deadline)
        else:  # in a child process, under the time budget and memory limit
            result = self.runner.run(
                lambda reply: handler(self.store, reply, request.args, deadline), job)
        log.debug("map %s done in %.3fs", request.job, time.monotonic() - started)
        # Results go back unsigned: the client trusts its own job server connection for them.
        return wire.pack_result(result)

    def start(self) -> None:
        """Start the ingest and query threads."""
        for name, worker in (("ingest", self.ingest), ("query", self.query)):
            t = threading.Thread(target=worker.work, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Ask both loops to finish the job at hand and return (signal-safe)."""
        self.ingest.stop()
        self.query.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end; True when they have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
