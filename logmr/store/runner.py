"""Run a map job in a process of its own, under a time budget and a memory limit.

The node is a threaded process (Gearman loops, repair, polars' thread pool), and a child
forked from it could inherit a lock some other thread held at the fork. So a map job runs
in a fresh interpreter instead (multiprocessing's spawn: fork and exec, nothing
inherited), one job per process. A spare is started ahead of the next job, with the map
code already imported, so a job does not wait for an interpreter to start. The job reads
the node's data from disk, by the record locations the node hands it (see
:class:`logmr.store.node.Snapshot`), and streams its results back through a pipe; this
process relays them to the job server. A job that runs past its budget (a regex that
backtracks for ever) or past its memory limit is killed, and its client gets an error,
while ingestion on the node never waited for it.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import suppress
from multiprocessing.connection import Connection
from typing import Any, Protocol

import msgpack

from logmr.errors import LogmrError

log = logging.getLogger(__name__)
DATA, STATUS, RESULT, ERROR = b"D", b"S", b"R", b"E"  # the first byte of each message


class Reply(Protocol):
    """Where a map job sends what it finds: a Gearman job, or the pipe to the node."""

    def send_data(self, data: bytes) -> None: ...
    def send_status(self, numerator: int, denominator: int) -> None: ...


# a module-level function (it is pickled by name): (reply, *args) -> the job's result
MapFunction = Callable[..., dict[str, Any]]


class _PipeReply:
    """The job's end: one message per frame on the pipe."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def send_data(self, data: bytes) -> None:
        self.conn.send_bytes(DATA + data)

    def send_status(self, numerator: int, denominator: int) -> None:
        self.conn.send_bytes(STATUS + msgpack.packb([numerator, denominator]))


class _Spare:
    """A started process waiting for one job."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process, self.conn = process, conn

    def end(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


class MapRunner:
    """Runs each map job in a spawned process and relays what it sends."""

    def __init__(self, budget: float = 60.0, memory_limit: int | None = 2 << 30,
                 preload: Sequence[str] = ()) -> None:
        self.budget = budget
        self.memory_limit = memory_limit
        self.preload = tuple(preload)  # modules the spare imports before it waits
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._spare: _Spare | None = None

    def _start(self) -> _Spare:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_serve_one, name="logmr-map", daemon=True,
                                        args=(theirs, self.memory_limit, self.preload))
        process.start()
        theirs.close()
        return _Spare(process, ours)

    def prepare(self) -> None:
        """Start a spare now, so that the first job does not wait for it."""
        with self._lock:
            if self._spare is None:
                self._spare = self._start()

    def _take(self) -> _Spare:
        """The spare (started now if there is none), and a new spare for the next job."""
        with self._lock:
            spare = self._spare or self._start()
            self._spare = self._start()
        return spare

    def run(self, fn: MapFunction, args: tuple[Any, ...], reply: Reply) -> dict[str, Any]:
        """``fn(reply, *args)`` in a process of its own; its result, or LogmrError."""
        spare = self._take()
        deadline = time.monotonic() + self.budget
        try:
            try:
                spare.conn.send((fn, args))
            except (OSError, ValueError) as exc:
                raise LogmrError(f"map job could not start ({exc}); the node's map process "
                                 f"{_how_it_ended(spare.process)}") from None
            return self._relay(spare, reply, deadline)
        finally:
            spare.end()

    def _relay(self, spare: _Spare, reply: Reply, deadline: float) -> dict[str, Any]:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not spare.conn.poll(left):
                spare.process.kill()
                raise LogmrError(f"map job exceeded its time budget of {self.budget:g} s and "
                                 "was stopped; narrow it with --since/--until or a simpler "
                                 "pattern")
            try:
                message = spare.conn.recv_bytes()
            except (EOFError, OSError):
                raise LogmrError(f"map job died ({_how_it_ended(spare.process)}) before "
                                 "answering") from None
            kind, payload = message[:1], message[1:]
            if kind == DATA:
                reply.send_data(payload)
            elif kind == STATUS:
                reply.send_status(*msgpack.unpackb(payload))
            elif kind == RESULT:
                result: dict[str, Any] = msgpack.unpackb(payload, raw=False)
                return result
            else:
                raise LogmrError(payload.decode("utf-8", "replace"))

    def close(self) -> None:
        """End the spare."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.end()


def _serve_one(conn: Connection, memory_limit: int | None, preload: tuple[str, ...]) -> None:
    """The spare: import, then take one job, run it and send its result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the node's to handle
    out = _PipeReply(conn)
    try:
        for name in preload:
            importlib.import_module(name)
        if memory_limit:
            limit = _address_space() + memory_limit
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            fn, args = conn.recv()
        except EOFError:  # the node ended without a job for us
            return
        result = fn(out, *args)
        conn.send_bytes(RESULT + msgpack.packb(result, use_bin_type=True))
    except LogmrError as exc:
        conn.send_bytes(ERROR + str(exc).encode())
    except MemoryError:
        conn.send_bytes(ERROR + b"map job ran out of its memory limit; narrow the query "
                                b"(--since/--until, --limit)")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the node stopped listening: nothing to tell
    except BaseException as exc:  # noqa: BLE001 - report, then die
        with suppress(OSError):
            conn.send_bytes(ERROR + f"internal error in map job: {type(exc).__name__}: "
                                    f"{exc}".encode())
        traceback.print_exc()
        os._exit(1)


def _address_space() -> int:
    """This process's virtual memory size, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _how_it_ended(process: Any) -> str:
    process.join(5)
    code = process.exitcode
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit status {code}"
