"""Doing jobs: a worker loop over every job server, with reconnects and a prompt stop."""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from logmr.gearman.connection import Connection, Server
from logmr.gearman.errors import AddressError, GearmanError, ServerUnavailable
from logmr.gearman.protocol import Packet, T, encode, function_bytes

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0


class RetryJob(Exception):  # noqa: N818 - a request, not an error
    """Raise from a handler to give the job back: the worker drops that server's connection,
    so gearmand requeues the job (WORK_FAIL or WORK_EXCEPTION would remove it for good)."""


class Assignment:
    """A job the server assigned to this worker (JOB_ASSIGN_UNIQ), handed to a handler; it
    can stream data back while it runs."""

    def __init__(
        self, conn: Connection, handle: bytes, function: str, unique: str, payload: bytes
    ) -> None:
        self.server = conn.server
        self.handle = handle
        self.function = function
        self.unique = unique
        self.payload = payload
        self._conn = conn

    def __repr__(self) -> str:
        return (f"<Assignment {self.function} {self.handle!r} unique={self.unique!r} "
                f"from {self.server}>")

    def send_data(self, data: bytes) -> None:
        """Send a WORK_DATA chunk to the waiting client (foreground jobs)."""
        self._conn.send_packet(T.WORK_DATA, self.handle, bytes(data))

    def send_status(self, numerator: int, denominator: int) -> None:
        """Report progress as numerator/denominator."""
        self._conn.send_packet(
            T.WORK_STATUS, self.handle, b"%d" % numerator, b"%d" % denominator
        )

    def send_warning(self, data: bytes) -> None:
        """Send a WORK_WARNING to the waiting client."""
        self._conn.send_packet(T.WORK_WARNING, self.handle, bytes(data))


Handler = Callable[[Assignment], bytes | None]


class _State(enum.Enum):
    DOWN = "down"  # waiting for retry_at
    CONNECTING = "connecting"  # non-blocking connect in progress
    READY = "ready"  # connected, nothing outstanding: grab next
    GRABBING = "grabbing"  # GRAB_JOB_UNIQ sent
    SLEEPING = "sleeping"  # PRE_SLEEP sent, waiting for NOOP
    IDLE = "idle"  # burst mode: the server has no job for us


@dataclass(eq=False)
class _Link:
    conn: Connection
    state: _State = _State.DOWN
    retry_at: float = 0.0
    backoff: float = FIRST_BACKOFF
    deadline: float = 0.0
    tried: bool = False  # a connect attempt failed during this work() call
    was_up: bool = False
    registered: set[str] = field(default_factory=set)


class Worker:
    """Grabs jobs from every job server and runs the registered handler for each.

    A handler's return value becomes WORK_COMPLETE. An exception becomes WORK_WARNING with
    the reason, then WORK_FAIL: the job is gone for good, and every client learns it has
    ended (gearmand 1.1.20 forwards WORK_EXCEPTION only to clients that asked for it, then
    drops the job, so the stock ``gearman`` CLI would wait for ever). :class:`RetryJob`
    hands the job back to be requeued. Exceptions of the ``refusals`` types are a handler
    saying no on purpose: logged as one line, their message is the reason; any other is
    logged with its traceback. Several Workers may run in threads of one process; one
    Worker's :meth:`work` runs in one thread.
    """

    def __init__(
        self, servers: Sequence[Server], client_id: str | None = None, *,
        connect_timeout: float = 5.0, io_timeout: float | None = 30.0,
        max_backoff: float = MAX_BACKOFF,
        refusals: tuple[type[BaseException], ...] = (),
    ) -> None:
        if not servers:
            raise AddressError("no job server given")
        if client_id is not None and (not client_id or any(c.isspace() for c in client_id)):
            raise ValueError(f"client id {client_id!r} must be non-empty without whitespace")
        self.servers = list(servers)
        self.client_id = client_id
        self.max_backoff = max_backoff
        self.refusals = refusals
        self._links = [_Link(Connection(s, connect_timeout, io_timeout)) for s in self.servers]
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def functions(self) -> list[str]:
        """The registered function names."""
        with self._lock:
            return sorted(self._handlers)

    def register(self, function: str, handler: Handler) -> None:
        """Do ``function`` with ``handler`` (announced to every server before the next grab)."""
        function_bytes(function)
        with self._lock:
            self._handlers[function] = handler
        self._wake()

    def unregister(self, function: str) -> None:
        """Stop doing ``function``."""
        with self._lock:
            self._handlers.pop(function, None)
        self._wake()

    def stop(self) -> None:
        """Make :meth:`work` return after the job at hand; thread-safe and signal-safe.

        Called while no :meth:`work` runs, it makes the next one return at once.
        """
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"\0")

    def close(self) -> None:
        """Close every connection and the wake-up pipe."""
        for link in self._links:
            link.conn.close()
            link.state = _State.DOWN
        fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def work(self, burst: bool = False) -> int:
        """Run jobs until :meth:`stop` (or, with ``burst``, until no server has a job).

        Returns the number of jobs run.
        """
        if self._wake_r < 0:
            raise GearmanError("this worker is closed")
        for link in self._links:
            link.tried = False
            link.state = _State.READY if link.conn.connected else _State.DOWN
            link.retry_at = min(link.retry_at, time.monotonic())
        done = 0
        try:
            while not self._stopping:
                now = time.monotonic()
                for link in self._links:
                    self._advance(link, now, burst)
                if burst and all(self._settled(link) for link in self._links):
                    break
                done += self._wait_and_handle(self._timeout(now, burst), burst)
        finally:
            self._stopping = False
            for link in self._links:
                if link.state in (_State.GRABBING, _State.CONNECTING):
                    link.conn.close()  # a grab may be answered: close, so it is requeued
                    link.state = _State.DOWN
        return done

    @staticmethod
    def _settled(link: _Link) -> bool:
        return link.state is _State.IDLE or (link.state is _State.DOWN and link.tried)

    def _timeout(self, now: float, burst: bool) -> float | None:
        """How long to wait for sockets before a connect is due or overdue."""
        times = [link.deadline for link in self._links if link.state is _State.CONNECTING]
        times += [
            link.retry_at for link in self._links
            if link.state is _State.DOWN and not (burst and link.tried)
        ]
        return max(0.0, min(times) - now) if times else None

    def _advance(self, link: _Link, now: float, burst: bool) -> None:
        """Move one link forward: connect when due, announce functions, grab."""
        try:
            if link.state is _State.DOWN and now >= link.retry_at and not (burst and link.tried):
                if link.conn.begin_connect():
                    self._connected(link)
                else:
                    link.state, link.deadline = _State.CONNECTING, now + link.conn.connect_timeout
            elif link.state is _State.CONNECTING and now >= link.deadline:
                raise GearmanError(f"cannot reach job server {link.conn.server}: timed out")
            if link.state in (_State.READY, _State.GRABBING, _State.SLEEPING, _State.IDLE):
                self._announce(link)
            if link.state is _State.READY:
                link.conn.send_packet(T.GRAB_JOB_UNIQ)
                link.state = _State.GRABBING
        except GearmanError as exc:
            self._down(link, exc)

    def _connected(self, link: _Link) -> None:
        if link.was_up:
            log.info("reconnected to job server %s", link.conn.server)
        if self.client_id is not None:
            link.conn.send_packet(T.SET_CLIENT_ID, self.client_id.encode("utf-8"))
        link.registered = set()
        link.state, link.backoff, link.was_up = _State.READY, FIRST_BACKOFF, True

    def _announce(self, link: _Link) -> None:
        """Send CAN_DO/CANT_DO for what changed since the last announcement."""
        with self._lock:
            wanted = set(self._handlers)
        added, removed = wanted - link.registered, link.registered - wanted
        if not added and not removed:
            return
        wire = b"".join(
            [encode(T.CAN_DO, function_bytes(f)) for f in sorted(added)]
            + [encode(T.CANT_DO, function_bytes(f)) for f in sorted(removed)]
        )
        link.conn.send_raw(wire)
        link.registered = wanted
        if added and link.state in (_State.SLEEPING, _State.IDLE):
            link.state = _State.READY

    def _down(self, link: _Link, exc: BaseException) -> None:
        link.conn.close()
        if link.was_up and link.state is not _State.CONNECTING:
            log.warning("job server %s: %s; retrying in %.1f s", link.conn.server, exc,
                        link.backoff)
        else:
            log.debug("job server %s: %s; retrying in %.1f s", link.conn.server, exc,
                      link.backoff)
        link.state, link.tried = _State.DOWN, True
        link.retry_at = time.monotonic() + link.backoff
        link.backoff = min(link.backoff * 2, self.max_backoff)

    def _wait_and_handle(self, timeout: float | None, burst: bool) -> int:
        """Wait for any socket or the wake-up pipe; handle what arrived; return jobs done."""
        done = 0
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            for link in self._links:
                if link.state is _State.CONNECTING:
                    selector.register(link.conn.fileno(), selectors.EVENT_WRITE, link)
                elif link.state is not _State.DOWN:
                    selector.register(link.conn.fileno(), selectors.EVENT_READ, link)
            events = selector.select(timeout)
        for key, _ in events:
            link = key.data
            if link is None:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
                continue
            try:
                if link.state is _State.CONNECTING:
                    link.conn.finish_connect()
                    self._connected(link)
                else:
                    for packet in link.conn.receive():
                        done += self._on_packet(link, packet, burst)
            except (RetryJob, GearmanError) as exc:
                self._down(link, exc)
        return done

    def _on_packet(self, link: _Link, packet: Packet, burst: bool) -> int:
        """React to one packet from a server; return 1 if it was a job that ran."""
        kind = packet.type
        if kind == T.JOB_ASSIGN_UNIQ and link.state is _State.GRABBING:
            if self._stopping:
                raise RetryJob("stopping before the job started")
            self._run(link, packet)
            link.state = _State.READY
            return 1
        if kind == T.NO_JOB and link.state is _State.GRABBING:
            if burst:
                link.state = _State.IDLE
            else:
                link.conn.send_packet(T.PRE_SLEEP)
                link.state = _State.SLEEPING
        elif kind == T.NOOP:
            if link.state is _State.SLEEPING:
                link.state = _State.READY
        elif kind == T.ERROR:
            raise GearmanError(f"job server {link.conn.server} error: "
                               f"{b' '.join(packet.args).decode('utf-8', 'replace')}")
        else:
            log.debug("ignoring %s from %s in state %s", packet, link.conn.server, link.state)
        return 0

    def _run(self, link: _Link, packet: Packet) -> None:
        """Run the handler of an assigned job and report its outcome."""
        handle, function_raw, unique, payload = packet.args
        function = function_raw.decode("utf-8", "replace")
        job = Assignment(link.conn, handle, function, unique.decode("latin-1"), payload)
        with self._lock:
            handler = self._handlers.get(function)
        if handler is None:
            raise RetryJob(f"no handler for {function} any more")
        try:
            result = handler(job)
        except RetryJob:
            raise
        except Exception as exc:
            if not link.conn.connected:
                raise ServerUnavailable(f"lost job server {link.conn.server} during a job") from exc
            if isinstance(exc, self.refusals):  # refused on purpose: say why, no traceback
                log.warning("rejected %s job %s: %s", function,
                            handle.decode("latin-1"), exc)
                message = str(exc).encode("utf-8", "replace")
            else:
                log.exception("job %s %r failed", function, handle)
                message = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
            _fail(link, handle, message)
            return
        if result is None:
            result = b""
        if not isinstance(result, bytes | bytearray | memoryview):
            log.error("handler of %s returned %s, not bytes", function, type(result).__name__)
            message = f"handler returned {type(result).__name__}, not bytes".encode()
            _fail(link, handle, message)
            return
        link.conn.send_packet(T.WORK_COMPLETE, handle, bytes(result))


def _fail(link: _Link, handle: bytes, message: bytes) -> None:
    """End a job as failed, saying why, in a way every client understands."""
    link.conn.send_raw(encode(T.WORK_WARNING, handle, message) + encode(T.WORK_FAIL, handle))
