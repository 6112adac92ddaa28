"""Submitting jobs: background jobs with fail-over, foreground jobs that stream results."""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterator, Sequence
from enum import Enum
from types import TracebackType

from logmr.gearman.connection import Connection, Server
from logmr.gearman.errors import (
    AddressError,
    GearmanError,
    JobFailed,
    ProtocolError,
    ServerUnavailable,
)
from logmr.gearman.protocol import Packet, T, encode, function_bytes, unique_bytes

log = logging.getLogger(__name__)

PIPELINE_DEPTH = 256
"""Background submissions sent before reading their JOB_CREATED answers."""
COOLDOWN = 5.0
"""Seconds a server that failed is tried only after the others."""


class Priority(Enum):
    """Job priority; gearmand hands out HIGH before NORMAL before LOW, across functions."""

    NORMAL = "normal"
    HIGH = "high"
    LOW = "low"


_BACKGROUND = {
    Priority.NORMAL: T.SUBMIT_JOB_BG,
    Priority.HIGH: T.SUBMIT_JOB_HIGH_BG,
    Priority.LOW: T.SUBMIT_JOB_LOW_BG,
}
_FOREGROUND = {
    Priority.NORMAL: T.SUBMIT_JOB,
    Priority.HIGH: T.SUBMIT_JOB_HIGH,
    Priority.LOW: T.SUBMIT_JOB_LOW,
}


def server_order(servers: Sequence[Server], unique: bytes) -> list[Server]:
    """Servers to try for ``unique``: its stable hash picks the first, the rest follow in order."""
    start = zlib.crc32(unique) % len(servers)
    return [*servers[start:], *servers[:start]]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _created(conn: Connection, packet: Packet) -> str:
    """The job handle from a JOB_CREATED answer; raise on anything else."""
    if packet.type == T.JOB_CREATED:
        return packet.args[0].decode("latin-1")
    if packet.type == T.ERROR:
        code, message = packet.args
        raise GearmanError(
            f"job server {conn.server} refused the job: {_text(code)} {_text(message)}"
        )
    conn.close()
    raise ProtocolError(f"job server {conn.server} answered a submission with {packet}")


class ForegroundJob:
    """A submitted foreground job on its own connection.

    Iterate it for the WORK_DATA payloads as they arrive; after the iteration ends,
    :attr:`result` holds the WORK_COMPLETE payload. WORK_FAIL (with the reason of the
    WORK_WARNING before it) and WORK_EXCEPTION raise :class:`JobFailed`. ``timeout``
    bounds the wait between two packets (None: forever).
    """

    def __init__(
        self, conn: Connection, function: str, handle: str, timeout: float | None = None
    ) -> None:
        self.server = conn.server
        self.function = function
        self.handle = handle
        self.timeout = timeout
        self.warnings: list[bytes] = []
        self.status: tuple[int, int] | None = None
        self._raw_handle = handle.encode("latin-1")
        self._conn = conn
        self._result: bytes | None = None

    def __repr__(self) -> str:
        return f"<ForegroundJob {self.function} {self.handle} on {self.server}>"

    def __enter__(self) -> ForegroundJob:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def finished(self) -> bool:
        """True once WORK_COMPLETE has arrived."""
        return self._result is not None

    @property
    def result(self) -> bytes:
        """The WORK_COMPLETE payload; only once the iteration has ended."""
        if self._result is None:
            raise GearmanError(f"job {self.function} {self.handle} has not completed yet")
        return self._result

    def fileno(self) -> int:
        """The connection's file descriptor, to wait on many jobs with a selector."""
        return self._conn.fileno()

    def close(self) -> None:
        """Stop listening to the job (closes its connection)."""
        self._conn.close()

    def __iter__(self) -> Iterator[bytes]:
        try:
            while self._result is None:
                if not self._conn.connected:
                    raise GearmanError(f"job {self.function} {self.handle} was closed")
                data = self._handle(self._conn.read_packet(self.timeout))
                if data is not None:
                    yield data
        except GearmanError:
            self.close()
            raise
        self.close()

    def step(self) -> list[bytes]:
        """Read what has arrived (call when :meth:`fileno` is readable, to follow many jobs
        at once): the WORK_DATA payloads among the packets now complete. Closes when done."""
        out: list[bytes] = []
        try:
            if not self._conn.connected:
                raise GearmanError(f"job {self.function} {self.handle} was closed")
            for packet in self._conn.receive():
                data = self._handle(packet)
                if data is not None:
                    out.append(data)
        except GearmanError:
            self.close()
            raise
        if self._result is not None:
            self.close()
        return out

    def _handle(self, packet: Packet) -> bytes | None:
        """Act on one packet; return a WORK_DATA payload, if it was one."""
        kind, args = packet.type, packet.args
        if kind != T.ERROR and args and args[0].split(b"\0", 1)[0] != self._raw_handle:
            log.debug("ignoring %s for another job on %s", packet, self.server)
            return None
        if kind == T.WORK_DATA:
            return args[1]
        if kind == T.WORK_COMPLETE:
            self._result = args[1]
        elif kind == T.WORK_FAIL:
            if self.warnings:  # a logmr worker says why just before it fails a job
                raise JobFailed(f"job {self.function} on {self.server} failed: "
                                f"{_text(self.warnings[-1])}")
            raise JobFailed(f"job {self.function} {self.handle} on {self.server} failed")
        elif kind == T.WORK_EXCEPTION:
            raise JobFailed(
                f"job {self.function} on {self.server} failed: {_text(args[1])}"
            )
        elif kind == T.WORK_STATUS:
            self.status = (int(args[1] or b"0"), int(args[2] or b"0"))
        elif kind == T.WORK_WARNING:  # kept: the reason, if WORK_FAIL follows
            log.debug("job %s on %s warns: %s", self.function, self.server, _text(args[1]))
            self.warnings.append(args[1])
        elif kind == T.ERROR:
            raise GearmanError(f"job server {self.server} error: {_text(b' '.join(args))}")
        else:
            log.debug("ignoring %s from %s", packet, self.server)
        return None


class Client:
    """Submits jobs to a set of job servers; connects lazily, reconnects when needed.

    ``timeout`` bounds connecting and waiting for a server's JOB_CREATED. Not thread-safe:
    use one Client per thread.
    """

    def __init__(self, servers: Sequence[Server], timeout: float = 10.0) -> None:
        if not servers:
            raise AddressError("no job server given")
        self.servers = list(servers)
        self.timeout = timeout
        self._conns: dict[Server, Connection] = {}
        self._failed_at: dict[Server, float] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection."""
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _new_connection(self, server: Server) -> Connection:
        conn = Connection(server, connect_timeout=self.timeout, io_timeout=self.timeout)
        conn.connect()
        return conn

    def _connection(self, server: Server) -> tuple[Connection, bool]:
        """A cached connection to ``server`` and whether it is freshly made."""
        conn = self._conns.get(server)
        if conn is not None and conn.connected:
            return conn, False
        self._conns[server] = conn = self._new_connection(server)
        return conn, True

    def _order(self, unique: bytes) -> list[Server]:
        """Hash order, but servers that failed in the last COOLDOWN seconds go last."""
        now = time.monotonic()
        for server, when in list(self._failed_at.items()):
            if now - when > COOLDOWN:
                del self._failed_at[server]
        return sorted(server_order(self.servers, unique), key=lambda s: s in self._failed_at)

    def _failed(self, server: Server, exc: GearmanError, errors: dict[Server, str]) -> None:
        log.info("job server %s failed: %s", server, exc)
        errors[server] = str(exc)
        self._failed_at[server] = time.monotonic()

    def _drop(self, server: Server) -> None:
        conn = self._conns.pop(server, None)
        if conn is not None:
            conn.close()

    def submit_background(
        self, function: str, payload: bytes, unique: str | bytes,
        priority: Priority = Priority.NORMAL,
    ) -> str:
        """Submit a background job and return its handle once a server has queued it.

        The unique id picks the server (the same id always goes to the same server first);
        the others are tried in order when it fails. Raises :class:`ServerUnavailable` when
        no server accepted the job.
        """
        return self.submit_background_many(function, [(payload, unique)], priority)[0]

    def submit_background_many(
        self, function: str, jobs: Sequence[tuple[bytes, str | bytes]],
        priority: Priority = Priority.NORMAL,
    ) -> list[str]:
        """Submit many ``(payload, unique)`` background jobs, pipelined; return their handles.

        Each job goes to the server its unique id hashes to, or fails over as in
        :meth:`submit_background`. If any job cannot be placed, :class:`ServerUnavailable`
        is raised (jobs already accepted stay queued: submitting is at-least-once).
        """
        name = function_bytes(function)
        packets = [
            encode(_BACKGROUND[priority], name, unique_bytes(unique, background=True), payload)
            for payload, unique in jobs
        ]
        orders = [self._order(unique_bytes(u, background=True)) for _, u in jobs]
        handles: dict[int, str] = {}
        errors: dict[Server, str] = {}
        todo = list(range(len(jobs)))
        while todo:
            by_server: dict[Server, list[int]] = {}
            for index in todo:
                choice = next((s for s in orders[index] if s not in errors), None)
                if choice is None:
                    raise self._none_accepted(function, errors)
                by_server.setdefault(choice, []).append(index)
            todo = []
            for server, indexes in by_server.items():
                done = self._submit_on(server, [packets[i] for i in indexes], errors)
                for index, handle in zip(indexes, done, strict=False):
                    if handle is None:
                        todo.append(index)
                    else:
                        handles[index] = handle
                todo.extend(indexes[len(done):])
        return [handles[i] for i in range(len(jobs))]

    def _none_accepted(self, function: str, errors: dict[Server, str]) -> ServerUnavailable:
        reasons = "; ".join(errors.values())
        servers = ", ".join(str(s) for s in errors)
        return ServerUnavailable(f"no job server ({servers}) accepted {function} jobs: {reasons}")

    def _submit_on(
        self, server: Server, packets: list[bytes], errors: dict[Server, str]
    ) -> list[str | None]:
        """Send ``packets`` to ``server``; one handle (None: refused) per job accepted.

        The list is cut short where the server failed; the failure lands in ``errors``.
        """
        results: list[str | None] = []
        while len(results) < len(packets):
            chunk = packets[len(results):len(results) + PIPELINE_DEPTH]
            try:
                answers = self._pipeline(server, chunk)
            except GearmanError as exc:
                self._failed(server, exc, errors)
                self._drop(server)
                break
            self._failed_at.pop(server, None)
            for answer in answers:
                if isinstance(answer, GearmanError):
                    log.warning("%s", answer)
                    errors.setdefault(server, str(answer))
                    results.append(None)
                else:
                    results.append(answer)
        return results

    def _pipeline(self, server: Server, chunk: list[bytes]) -> list[str | GearmanError]:
        """Send a chunk and read its answers; retry once if a cached connection was stale."""
        conn, fresh = self._connection(server)
        try:
            conn.send_raw(b"".join(chunk))
            first = conn.read_packet(self.timeout)
        except ServerUnavailable:
            if fresh:
                raise
            log.debug("connection to %s went stale, reconnecting", server)
            self._drop(server)
            conn, _ = self._connection(server)
            conn.send_raw(b"".join(chunk))
            first = conn.read_packet(self.timeout)
        answers = [first] + [conn.read_packet(self.timeout) for _ in chunk[1:]]
        results: list[str | GearmanError] = []
        for packet in answers:
            try:
                results.append(_created(conn, packet))
            except ProtocolError:
                raise
            except GearmanError as exc:
                results.append(exc)
        return results

    def submit(
        self, function: str, payload: bytes, unique: str | bytes = b"",
        server: Server | None = None, timeout: float | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> ForegroundJob:
        """Submit a foreground job on a new connection of its own and return it.

        ``server`` pins the job server; otherwise the unique id picks one and the others are
        tried in order. ``timeout`` is the job's idle timeout between packets.
        """
        name = function_bytes(function)
        raw_unique = unique_bytes(unique, background=False)
        wire = encode(T.OPTION_REQ, b"exceptions") + encode(
            _FOREGROUND[priority], name, raw_unique, payload
        )
        errors: dict[Server, str] = {}
        for candidate in [server] if server else self._order(raw_unique):
            conn = Connection(candidate, connect_timeout=self.timeout, io_timeout=self.timeout)
            try:
                conn.connect()
                conn.send_raw(wire)
                option = conn.read_packet(self.timeout)
                if option.type != T.OPTION_RES:
                    raise ProtocolError(f"job server {candidate} answered {option} to OPTION_REQ")
                handle = _created(conn, conn.read_packet(self.timeout))
            except GearmanError as exc:
                conn.close()
                self._failed(candidate, exc, errors)
                continue
            self._failed_at.pop(candidate, None)
            return ForegroundJob(conn, function, handle, timeout)
        raise self._none_accepted(function, errors)
