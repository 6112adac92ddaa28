"""The storage node service: Gearman workers around a :class:`NodeStore`.

One thread takes ingest jobs (``logmr.store`` and ``logger``); another answers map jobs
(``logmr.map.<node-id>``), each run in a forked child under a time budget, so a long
query never stalls ingestion. Map jobs are looked up
by name in :data:`MAP_JOBS`; nothing received is executed. With a shared secret, a batch
or map request that is not signed with it is refused (WORK_FAIL, its reason in the
WORK_WARNING before it: nothing is stored) and logged once, and the unsignable raw
``logger`` function is not offered.
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
from logmr.errors import (
    ConfigError,
    DiskUnavailable,
    GearmanError,
    LogmrError,
    StoreError,
    WireError,
)
from logmr.gearman.connection import Server
from logmr.gearman.worker import Job, RetryJob, Worker
from logmr.jobs import Job as UserJob
from logmr.jobs import as_on_the_wire, check_identity, lines_of, map_and_combine, reduce_pairs
from logmr.mapfn import frames
from logmr.mapfn.agents import is_bot, is_static
from logmr.mapfn.grep import GrepQuery, count_records, grep_hour, matching_spans
from logmr.mapfn.pattern import runs_in_linear_time
from logmr.mapfn.report import Combiner, apply_filters, page_stream
from logmr.mapfn.spec import MAX_PATTERN, ReportSpec
from logmr.store import disk
from logmr.store.node import NodeStore, Record, StoreResult
from logmr.store.repair import DEFAULT_EVERY, DEFAULT_RATE, Catalog, Repairer
from logmr.store.replication import DEFAULT_REPLICAS, Replicator
from logmr.store.runner import MapRunner, Reply
from logmr.timeutil import in_span

log = logging.getLogger(__name__)


def _time_arg(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is not None and type(value) is not int:
        raise LogmrError(f"map argument {name} must be epoch seconds")
    return value


def grep_query(args: dict[str, Any]) -> GrepQuery:
    """The grep query a map request asks for (its fields checked: they come off the wire)."""
    pattern = args.get("pattern", b"")
    if isinstance(pattern, str):
        pattern = pattern.encode("utf-8", "surrogateescape")
    if not isinstance(pattern, bytes):
        raise LogmrError(f"map argument pattern must be bytes or text, not "
                         f"{type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise LogmrError(f"map argument pattern is {len(pattern)} bytes long; the most is "
                         f"{MAX_PATTERN}")
    return GrepQuery(pattern=pattern, fixed=bool(args.get("fixed")),
                     ignore_case=bool(args.get("ignore_case")), invert=bool(args.get("invert")))


MAX_TRIES = 3  # times a node tries a batch that fails unexpectedly before keeping it aside


def _record_keys(args: dict[str, Any], name: str) -> set[tuple[str, int]] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            isinstance(k, list | tuple) and len(k) == 2 and isinstance(k[0], str)
            and type(k[1]) is int for k in value):
        raise LogmrError(f"map argument {name} must be a list of [batch id, part]")
    return {(k[0], k[1]) for k in value}


def chosen_records(args: dict[str, Any], epoch: str | None = None
                   ) -> Callable[[Record], bool]:
    """Which records a query reads here: the client's plan says which to read (``only``) or
    which another node reads instead (``skip``), of those held when the node listed them
    (``upto``, its sequence number then: a copy that arrived since is read by its origin)."""
    skip, only = _record_keys(args, "skip"), _record_keys(args, "only")
    upto = args.get("upto")
    if upto is not None and type(upto) is not int:
        raise LogmrError("map argument upto must be a sequence number")
    if only is not None:  # records by name: the same across a restart
        return lambda r: (r.meta.batch_id, r.meta.part) in only
    if upto is not None and epoch is not None and args.get("epoch") != epoch:
        raise LogmrError("this node restarted after it listed its records; other nodes "
                         "read them")
    if upto is None:
        return (lambda r: (r.meta.batch_id, r.meta.part) not in skip) if skip else (
            lambda r: True)
    if skip:
        return lambda r: r.seq <= upto and (r.meta.batch_id, r.meta.part) not in skip
    return lambda r: r.seq <= upto


def map_grep(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float
             ) -> dict[str, Any]:
    """Stream matching rows, oldest first, in chunks; end with the count. With ``after``
    (a row key), only rows past it: a node taking over a stream another node broke off."""
    query = grep_query(args)
    rx = query.compile()
    since, until = _time_arg(args, "since"), _time_arg(args, "until")
    limit = args.get("limit")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise LogmrError("map argument limit must be a count of lines")
    count_only = bool(args.get("count_only"))
    after = args.get("after")
    if after is not None and not (isinstance(after, list) and len(after) == 3 and [
            type(x) for x in after] == [int, str, int]):
        raise LogmrError("map argument after must be [time, batch id, line]")
    wanted = chosen_records(args, store.epoch)
    total = 0
    per_record: list[tuple[str, int, int]] = []
    hours = list(store.records(since, until))
    for done, (_hour, records) in enumerate(hours):
        if time.monotonic() > deadline:
            raise LogmrError("map job exceeded its time budget and was stopped; narrow it "
                             "with --since/--until")
        # progress, and a sign of life for the client's idle timeout
        job.send_status(done, len(hours))
        metas = [_Adapter(r) for r in records if wanted(r)]
        if count_only:
            # per record, so that the client counts a batch stored on two nodes once
            per_record.extend((rec.batch_id, rec.meta_part, n) for rec, n in
                              count_records(metas, rx, query.invert, since, until) if n)
            continue
        rows = grep_hour(metas, rx, query.invert, since, until)
        if after is not None:
            key = tuple(after)
            rows = [r for r in rows if (r[0], r[1], r[2]) > key]
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


def map_records(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float,
                catalog: Catalog | None = None) -> dict[str, Any]:
    """[batch id, part, lines, t0, t1] of every record in the range: the client plans
    from these who reads what, so that a record held by several nodes counts once. With
    ``elsewhere`` (the live node ids), also what this node's catalog says the other
    nodes held in the range when last seen: what a query misses."""
    since, until = _time_arg(args, "since"), _time_arg(args, "until")
    upto = store.seq  # the listing is of the records held now; later ones wait for the next
    out: dict[str, Any] = {"upto": upto, "epoch": store.epoch,
                           "records": [] if args.get("catalog_only") else [
        [r.meta.batch_id, r.meta.part, r.meta.lines, r.meta.t0, r.meta.t1, int(r.copy)]
        for _, records in store.records(since, until) for r in records if r.seq <= upto]}
    live = args.get("elsewhere")
    if live is not None and catalog is not None:
        if not isinstance(live, list) or not all(isinstance(n, str) for n in live):
            raise LogmrError("map argument elsewhere must be a list of node ids")
        out["elsewhere"] = catalog.elsewhere(live, since, until)
    return out


def map_stats(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float,
              repairer: Repairer | None = None) -> dict[str, Any]:
    """What this node holds, and how its repair goes."""
    stats = store.stats()
    if repairer is not None:
        stats["repair"] = repairer.stats()
    return stats


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
    wanted = chosen_records(args, store.epoch)
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
                    not wanted(record)):
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
    wanted = chosen_records(args, store.epoch)
    hours = list(store.records(since, until))
    for done, (_hour, records) in enumerate(hours):
        job.send_status(done, len(hours))
        for record in records:
            if not wanted(record):
                continue
            lines = (line for line in lines_of(record.columns(), record.ts(), record.meta.host)
                     if in_span(line.ts, since, until))
            combined.extend(map_and_combine(user_job, lines))
    # combine again across records: fewer pairs on the wire
    regrouped = reduce_pairs(_Combining(user_job), combined)
    return {"pairs": [list(pair) for pair in as_on_the_wire(user_job, regrouped)]}


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


class _Signed:
    """A job's replies, each WORK_DATA chunk signed (see :func:`wire.sign`)."""

    def __init__(self, job: Job, secret: bytes, context: bytes) -> None:
        self._job, self._secret, self._context = job, secret, context

    def send_data(self, data: bytes) -> None:
        self._job.send_data(wire.sign(data, self._secret, self._context))

    def send_status(self, numerator: int, denominator: int) -> None:
        self._job.send_status(numerator, denominator)


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
                 runner: MapRunner | None = None, jobs: dict[str, UserJob] | None = None,
                 replicas: int = DEFAULT_REPLICAS, disk_poll: float = 1.0,
                 repair_every: float = DEFAULT_EVERY, repair_rate: float = DEFAULT_RATE
                 ) -> None:
        self.store = store
        self.log_format = log_format
        self.host = host
        self.secret = secret
        self.runner = runner or MapRunner(fork_lock=lambda: store.lock)
        self.jobs = jobs or {}
        self.replicator = Replicator(store.node_id, servers, replicas, secret)
        store.replicas = replicas
        self.repairer = Repairer(store, servers, replicas, secret, every=repair_every,
                                 rate=repair_rate)
        self.disk_poll = disk_poll
        self.ingest = Worker(servers, client_id=f"logmr-ingest-{store.node_id}")
        # copies on a connection of their own: a backlog of batches cannot starve them
        self.copies = Worker(servers, client_id=f"logmr-copies-{store.node_id}")
        self._ingest_handlers: dict[str, tuple[Worker, Callable[[Job], bytes]]] = {
            wire.STORE_FUNCTION: (self.ingest, self._keeping(self._on_store)),
            wire.replica_function(store.node_id): (self.copies, self._keeping(self._on_replica))}
        if secret is None:
            self._ingest_handlers[wire.LOGGER_FUNCTION] = (self.ingest,
                                                           self._keeping(self._on_logger))
        else:
            log.info("a secret is set: not registering '%s' (raw lines from the stock gearman "
                     "CLI cannot be signed)", wire.LOGGER_FUNCTION)
        self._gate = threading.Lock()
        self._failures: dict[str, int] = {}  # job -> times it failed here unexpectedly
        self._stopped = threading.Event()
        reason = disk.writable(store.data_dir, store.watermark)
        if reason is None:
            self._take_batches()
        else:
            self._refuse(reason)
        self.query = Worker(servers, client_id=f"logmr-map-{store.node_id}")
        self.query.register(wire.map_function(store.node_id), self._on_map)
        self._threads: list[threading.Thread] = []  # the Gearman workers
        self._loops: list[threading.Thread] = []  # repair and the view of the peers

    # -- full or failing disks ----------------------------------------------------------

    def _take_batches(self) -> None:
        for name, (worker, handler) in self._ingest_handlers.items():
            worker.register(name, handler)

    def _refuse(self, reason: str) -> None:
        """Stop taking batches (CANT_DO): they wait in the queue or go to other nodes, and
        a watcher takes them again once the disk takes writes."""
        with self._gate:
            if self.store.refusing is not None:
                return
            self.store.refusing = reason
            for name, (worker, _) in self._ingest_handlers.items():
                worker.unregister(name)
        log.warning("not taking batches: %s; they wait in the queue or go to other nodes "
                    "(queries still served)", reason)
        threading.Thread(target=self._watch_disk, name="disk-watch", daemon=True).start()

    def _watch_disk(self) -> None:
        while not self._stopped.wait(self.disk_poll):
            reason = disk.writable(self.store.data_dir, self.store.watermark)
            if reason is None:
                with self._gate:
                    self.store.refusing = None
                    self._take_batches()
                log.info("the disk takes writes again: taking batches")
                return
            self.store.refusing = reason

    def _give_back(self, exc: DiskUnavailable) -> RetryJob:
        self._refuse(str(exc))
        return RetryJob(f"batch given back: {exc}")

    def _keeping(self, handler: Callable[[Job], bytes]) -> Callable[[Job], bytes]:
        """``handler``, except that a failure that is not the payload's fault gives the job
        back (gearmand requeues it) instead of failing it: a failed batch is gone for good.
        """
        def run(job: Job) -> bytes:
            try:
                return handler(job)
            except (RetryJob, WireError, ConfigError):  # given back, or the payload's fault
                raise
            except DiskUnavailable as exc:
                raise self._give_back(exc) from None
            except Exception as exc:  # noqa: BLE001 - anything else: keep the batch
                key = f"{job.function}:{job.unique or job.handle.decode('latin-1')}"
                tries = self._failures.pop(key, 0) + 1
                if tries >= MAX_TRIES:  # a batch that fails every time: keep it aside, done
                    path = self.store.keep_aside(key, job.payload, exc)
                    log.error("%s job %s failed %d times (%s: %s); its payload is kept in %s",
                              job.function, job.unique, tries, type(exc).__name__, exc, path)
                    return b"kept aside"
                if len(self._failures) > 10_000:
                    self._failures.clear()
                self._failures[key] = tries
                log.exception("%s job %s could not be stored; giving it back", job.function,
                              job.handle.decode("latin-1"))
                raise RetryJob(f"batch given back after {type(exc).__name__}") from None

        return run

    def _verified(self, job: Job, what: str) -> bytes:
        """The job's payload once its signature checks out; a refusal raises (the worker
        loop logs it once and fails the job, saying why: nothing is stored)."""
        return wire.verify(job.payload, self.secret, what)

    def _on_store(self, job: Job) -> bytes:
        batch = wire.unpack_batch(self._verified(job, "batch"))
        result = self.store.store(batch)
        log.debug("batch %s: %d lines%s", batch.batch_id, result.lines,
                  " (duplicate, skipped)" if result.duplicate else "")
        self._replicate(batch.batch_id, result)
        return b"ok"

    def _replicate(self, batch_id: str, result: StoreResult) -> None:
        """Queue the batch's copies before its job completes (a redelivered batch, already
        stored here, is copied again: its first copies may never have been queued; one
        this node holds only as a peer's copy is the peer's to copy)."""
        if self.replicator.replicas <= 1:
            return
        if result.duplicate and self.store.holds_only_copies(batch_id):
            return
        try:
            self.replicator.replicate(batch_id, result.records if not result.duplicate
                                      else self.store.batch_records(batch_id))
        except GearmanError as exc:
            raise RetryJob(f"copies of batch {batch_id} not queued: {exc}") from None

    def _on_replica(self, job: Job) -> bytes:
        replica = wire.unpack_replica(self._verified(job, "replica"))
        try:
            lines = self.store.store_records(replica.batch_id, replica.records)
        except DiskUnavailable:
            raise
        except StoreError as exc:  # a damaged copy: refused (its origin still holds it)
            raise WireError(f"copy of batch {replica.batch_id} refused: {exc}") from None
        log.debug("copy of batch %s from %s: %d lines", replica.batch_id, replica.origin, lines)
        return b"ok"

    def _on_logger(self, job: Job) -> bytes:
        # Raw lines from `gearman -n -f logger`. The job's unique id survives requeueing,
        # so it is the dedupe key; the arrival time orders it among equal timestamps.
        unique = job.unique or job.handle.decode("ascii", "replace")
        batch_id = "logger:" + "".join(c if c.isalnum() or c in "._:-" else "_"
                                       for c in unique)[:55]
        result = self.store.store(wire.Batch(batch_id, self.host, self.log_format, job.payload))
        self._replicate(batch_id, result)
        return b"ok"

    def _on_map(self, job: Job) -> bytes:
        request = wire.unpack_request(self._verified(job, "map request"))
        handler = MAP_JOBS.get(request.job)
        if request.job == "run":
            handler = functools.partial(map_run, jobs=self.jobs)
        elif request.job == "records":
            handler = functools.partial(map_records, catalog=self.repairer.catalog)
        elif request.job == "stats":
            handler = functools.partial(map_stats, repairer=self.repairer)
        if handler is None:
            raise LogmrError(f"unknown map job {request.job!r}; this node knows "
                             f"{', '.join(sorted(MAP_JOBS))}")
        started = time.monotonic()
        deadline = started + self.runner.budget
        # with a secret, every answer is signed and bound to this request's unique id
        context = job.unique.encode("latin-1")
        out: Any = job if self.secret is None else _Signed(job, self.secret, context)
        if runs_inline(request):
            result = handler(self.store, out, request.args, deadline)
        else:  # in a child process, under the time budget and memory limit
            result = self.runner.run(
                lambda reply: handler(self.store, reply, request.args, deadline), out)
        log.debug("map %s done in %.3fs", request.job, time.monotonic() - started)
        return wire.sign(wire.pack_result(result), self.secret, context)

    def start(self) -> None:
        """Start the ingest and query threads."""
        for name, worker in (("ingest", self.ingest), ("copies", self.copies),
                             ("query", self.query)):
            t = threading.Thread(target=worker.work, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        for name, loop in (("repair", self.repairer.run), ("peers", self.replicator.run)):
            t = threading.Thread(target=loop, args=(self._stopped,), name=name, daemon=True)
            t.start()
            self._loops.append(t)

    def stop(self) -> None:
        """Ask both loops to finish the job at hand and return (signal-safe)."""
        self._stopped.set()
        self.ingest.stop()
        self.copies.stop()
        self.query.stop()

    def close(self, timeout: float = 5.0) -> None:
        """After :meth:`stop`: give the background loops ``timeout`` seconds to end (a
        repair round in the middle of a peer's listing is abandoned) and close."""
        deadline = time.monotonic() + timeout
        for t in self._loops:
            t.join(max(0.0, deadline - time.monotonic()))
        self.replicator.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end; True when they have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
