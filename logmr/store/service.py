"""The storage node service: Gearman workers around a :class:`NodeStore`.

One thread takes ingest jobs (``logmr.store`` and ``logger``), another takes copies from
peers, a third answers map jobs (``logmr.map.<node-id>``, see :mod:`logmr.store.mapjobs`), a
fourth takes the reduce jobs of reports too large for their client (``logmr.reduce``,
whose code the command hands in: see :mod:`logmr.client.rounds`);
one that could run away runs in a process of its own under a time budget, so a long query
never stalls ingestion. With a shared secret, a batch
or map request that is not signed with it is refused (WORK_FAIL, its reason in the
WORK_WARNING before it: nothing is stored) and logged once, and the unsignable raw
``logger`` function is not offered.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from logmr import wire
from logmr.errors import ConfigError, DiskUnavailable, LogmrError, StoreError, WireError
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError
from logmr.gearman.worker import Assignment, RetryJob, Worker
from logmr.jobs import Job as UserJob
from logmr.mapfn.parse import AUTO
from logmr.store import disk, mapjobs
from logmr.store.node import NodeStore, StoreResult
from logmr.store.repair import DEFAULT_EVERY, DEFAULT_RATE, Repairer
from logmr.store.reparse import Reparser
from logmr.store.replication import DEFAULT_REPLICAS, Replicator
from logmr.store.runner import MapRunner

log = logging.getLogger(__name__)


# runs a reduce job (its arguments, the node's job servers, its secret, where to send
# progress): the querying side's code, handed in by the command that starts the node
Reduce = Callable[[dict[str, Any], list[Server], bytes | None, Any], dict[str, Any]]
MAX_TRIES = 3  # times a node tries a batch that fails unexpectedly before keeping it aside


class _Signed:
    """A job's replies, each WORK_DATA chunk signed (see :func:`wire.sign`)."""

    def __init__(self, job: Assignment, secret: bytes, context: bytes) -> None:
        self._job, self._secret, self._context = job, secret, context

    def send_data(self, data: bytes) -> None:
        self._job.send_data(wire.sign(data, self._secret, self._context))

    def send_status(self, numerator: int, denominator: int) -> None:
        self._job.send_status(numerator, denominator)


class NodeService:
    """Runs a storage node until :meth:`stop`."""

    def __init__(self, store: NodeStore, servers: list[Server], log_format: str = AUTO,
                 host: str = "-", secret: bytes | None = None,
                 runner: MapRunner | None = None, jobs: dict[str, UserJob] | None = None,
                 replicas: int = DEFAULT_REPLICAS, disk_poll: float = 1.0,
                 repair_every: float = DEFAULT_EVERY, repair_rate: float = DEFAULT_RATE,
                 reduce: Reduce | None = None) -> None:
        self.store = store
        self.log_format = log_format
        self.host = host
        self.secret = secret
        self.runner = runner or MapRunner(preload=[mapjobs.__name__])
        self.jobs = jobs or {}
        self.replicator = Replicator(store.node_id, servers, replicas, secret)
        store.replicas = replicas
        self.repairer = Repairer(store, servers, replicas, secret, every=repair_every,
                                 rate=repair_rate)
        self.reparser = Reparser(store)
        self.disk_poll = disk_poll
        # a LogmrError is a refusal on purpose (a bad batch, a bad query): one line, no trace
        refusals = (LogmrError,)
        self.ingest = Worker(servers, client_id=f"logmr-ingest-{store.node_id}",
                             refusals=refusals)
        # copies on a connection of their own: a backlog of batches cannot starve them
        self.copies = Worker(servers, client_id=f"logmr-copies-{store.node_id}",
                             refusals=refusals)
        self._ingest_handlers: dict[str, tuple[Worker, Callable[[Assignment], bytes]]] = {
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
        self.query = Worker(servers, client_id=f"logmr-map-{store.node_id}",
                            refusals=refusals)
        self.query.register(wire.map_function(store.node_id), self._on_map)
        # reduce jobs on a connection of their own: one asks this node's map function too
        self.servers = list(servers)
        self.reduce = reduce
        self.reducer = Worker(servers, client_id=f"logmr-reduce-{store.node_id}",
                              refusals=refusals)
        if reduce is not None:
            self.reducer.register(wire.REDUCE_FUNCTION, self._on_reduce)
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

    def _keeping(self, handler: Callable[[Assignment], bytes]) -> Callable[[Assignment], bytes]:
        """``handler``, except that a failure that is not the payload's fault gives the job
        back (gearmand requeues it) instead of failing it: a failed batch is gone for good.
        """
        def run(job: Assignment) -> bytes:
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

    def _verified(self, job: Assignment, what: str) -> bytes:
        """The job's payload once its signature checks out; a refusal raises (the worker
        loop logs it once and fails the job, saying why: nothing is stored)."""
        return wire.verify(job.payload, self.secret, what)

    def _on_store(self, job: Assignment) -> bytes:
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

    def _on_replica(self, job: Assignment) -> bytes:
        replica = wire.unpack_replica(self._verified(job, "replica"))
        try:
            lines = self.store.store_records(replica.batch_id, replica.records)
        except DiskUnavailable:
            raise
        except StoreError as exc:  # a damaged copy: refused (its origin still holds it)
            raise WireError(f"copy of batch {replica.batch_id} refused: {exc}") from None
        log.debug("copy of batch %s from %s: %d lines", replica.batch_id, replica.origin, lines)
        return b"ok"

    def _on_logger(self, job: Assignment) -> bytes:
        # Raw lines from `gearman -n -f logger`. The job's unique id survives requeueing,
        # so it is the dedupe key; the arrival time orders it among equal timestamps.
        unique = job.unique or job.handle.decode("ascii", "replace")
        batch_id = "logger:" + "".join(c if c.isalnum() or c in "._:-" else "_"
                                       for c in unique)[:55]
        result = self.store.store(wire.Batch(batch_id, self.host, self.log_format, job.payload))
        self._replicate(batch_id, result)
        return b"ok"

    def _on_map(self, job: Assignment) -> bytes:
        request = wire.unpack_request(self._verified(job, "map request"))
        handler = mapjobs.MAP_JOBS.get(request.job)
        if request.job == "run":
            handler = functools.partial(mapjobs.map_run, jobs=self.jobs)
        elif request.job == "records":
            handler = functools.partial(mapjobs.map_records, catalog=self.repairer.catalog)
        elif request.job == "stats":
            handler = functools.partial(mapjobs.map_stats, repairer=self.repairer,
                                        reparser=self.reparser)
        elif request.job == "reparse":
            handler = functools.partial(mapjobs.map_reparse, reparser=self.reparser)
        if handler is None:
            raise LogmrError(f"unknown map job {request.job!r}; this node knows "
                             f"{', '.join(sorted(mapjobs.MAP_JOBS))}")
        started = time.monotonic()
        deadline = started + self.runner.budget
        # with a secret, every answer is signed and bound to this request's unique id
        context = job.unique.encode("latin-1")
        out: Any = job if self.secret is None else _Signed(job, self.secret, context)
        with self.store.reading():  # a segment re-parsed meanwhile stays until it ends
            if mapjobs.runs_inline(request):
                result = handler(self.store, out, request.args, deadline)
            else:  # in a process of its own, under the time budget and memory limit
                result = self.runner.run(mapjobs.run_apart, (
                    request.job, request.args, self.store.snapshot(*mapjobs.span_of(request)),
                    deadline, mapjobs.job_path(request, self.jobs)), out)
        log.debug("map %s done in %.3fs", request.job, time.monotonic() - started)
        return wire.sign(wire.pack_result(result), self.secret, context)

    def _on_reduce(self, job: Assignment) -> bytes:
        request = wire.unpack_request(self._verified(job, "reduce request"))
        if request.job != "reduce":
            raise LogmrError(f"unknown reduce job {request.job!r}; this node knows 'reduce'")
        context = job.unique.encode("latin-1")
        out: Any = job if self.secret is None else _Signed(job, self.secret, context)
        started = time.monotonic()
        assert self.reduce is not None
        result = self.reduce(request.args, self.servers, self.secret, out)
        log.debug("reduce done in %.3fs", time.monotonic() - started)
        return wire.sign(wire.pack_result(result), self.secret, context)

    def start(self) -> None:
        """Start the ingest and query threads (and a process for the first map job)."""
        self.runner.prepare()
        workers = [("ingest", self.ingest), ("copies", self.copies), ("query", self.query)]
        if self.reduce is not None:
            workers.append(("reduce", self.reducer))
        for name, worker in workers:
            t = threading.Thread(target=worker.work, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.reparser.resume()
        loops = [("repair", self.repairer.run), ("peers", self.replicator.run)]
        if self.store.retain_window is not None:
            loops.append(("retention", self._keep_window))
        if self.store.compact_after is not None:
            loops.append(("compaction", self._compact))
        for name, loop in loops:
            t = threading.Thread(target=loop, args=(self._stopped,), name=name, daemon=True)
            t.start()
            self._loops.append(t)

    RETAIN_EVERY = 600.0  # seconds between two passes of retention

    def _keep_window(self, stop: threading.Event) -> None:
        """Delete what is older than the store's retention window, now and every 10 min."""
        window = self.store.retain_window
        while window is not None:
            try:
                self.store.retain(window)
            except OSError as exc:
                log.error("retention failed: %s; trying again in %g s", exc,
                          self.RETAIN_EVERY)
            if stop.wait(self.RETAIN_EVERY):
                return

    COMPACT_EVERY = 5.0  # seconds between two looks for idle segments to compact

    def _compact(self, stop: threading.Event) -> None:
        """Rewrite idle segments as columns, every few seconds."""
        idle = self.store.compact_after or 0.0
        while not stop.wait(self.COMPACT_EVERY):
            try:
                done = self.store.compact(idle)
            except Exception as exc:  # a full disk, say: the old segment stays, and the loop
                log.error("compaction failed: %s; trying again in %g s", exc,
                          self.COMPACT_EVERY)
                continue
            if done:
                log.debug("compaction: %d records rewritten as columns", done)

    def stop(self) -> None:
        """Ask both loops to finish the job at hand and return (signal-safe)."""
        self._stopped.set()
        self.reparser.stop(timeout=0)
        self.ingest.stop()
        self.copies.stop()
        self.query.stop()
        self.reducer.stop()

    def close(self, timeout: float = 5.0) -> None:
        """After :meth:`stop`: give the background loops ``timeout`` seconds to end (a
        repair round in the middle of a peer's listing is abandoned) and close."""
        deadline = time.monotonic() + timeout
        for t in self._loops:
            t.join(max(0.0, deadline - time.monotonic()))
        self.reparser.stop(max(0.0, deadline - time.monotonic()))
        self.replicator.close()
        self.runner.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the threads to end; True when they have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
