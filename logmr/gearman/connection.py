"""One blocking binary-protocol connection to a job server (addresses: :mod:`address`,
re-exported here)."""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from collections import deque
from types import TracebackType

from logmr.gearman.address import DEFAULT_PORT, Server, parse_server, parse_servers
from logmr.gearman.errors import (
    GearmanError,
    GearmanTimeout,
    ProtocolError,
    ServerUnavailable,
)
from logmr.gearman.protocol import REQ, Decoder, Packet, T, encode

log = logging.getLogger(__name__)
__all__ = ["DEFAULT_PORT", "Connection", "Server", "parse_server", "parse_servers"]

RECV_SIZE = 256 * 1024


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__


def open_socket(server: Server, timeout: float | None) -> socket.socket:
    """A connected TCP socket to ``server``; :class:`ServerUnavailable` if it cannot be had."""
    try:
        return socket.create_connection((server.host, server.port), timeout=timeout)
    except OSError as exc:
        raise unreachable(server, exc) from exc


def unreachable(server: Server, exc: OSError) -> ServerUnavailable:
    """The error for a server that cannot be connected to."""
    return ServerUnavailable(f"cannot reach job server {server}: {_reason(exc)}")


class Connection:
    """One TCP connection to a job server, speaking binary packets.

    Blocking by default: :meth:`connect` waits up to ``connect_timeout``, sends wait up to
    ``io_timeout``, :meth:`read_packet` waits as long as asked. For event loops there is a
    non-blocking connect (:meth:`begin_connect`/:meth:`finish_connect`), :meth:`fileno`
    and :meth:`receive` (one ``recv``, call it when the socket is readable).
    """

    def __init__(
        self, server: Server, connect_timeout: float = 5.0, io_timeout: float | None = 30.0
    ) -> None:
        self.server = server
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout
        self._sock: socket.socket | None = None
        self._connecting = False
        self._decoder = Decoder()
        self._pending: deque[Packet] = deque()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "closed"
        return f"<Connection {self.server} {state}>"

    def __enter__(self) -> Connection:
        if self._sock is None:
            self.connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        """True once the TCP connection is established and until it is closed."""
        return self._sock is not None and not self._connecting

    def connect(self) -> None:
        """Connect, waiting up to ``connect_timeout``; raise :class:`ServerUnavailable`."""
        self.close()
        self._ready(open_socket(self.server, self.connect_timeout))

    def begin_connect(self) -> bool:
        """Start a non-blocking connect; True when already connected.

        Otherwise wait until :meth:`fileno` is writable and call :meth:`finish_connect`.
        """
        self.close()
        try:
            infos = socket.getaddrinfo(
                self.server.host, self.server.port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise unreachable(self.server, exc) from exc
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code == 0:
            self._ready(sock)
            return True
        if code not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            sock.close()
            raise unreachable(self.server, OSError(code, os.strerror(code)))
        self._sock, self._connecting = sock, True
        return False

    def finish_connect(self) -> None:
        """Complete :meth:`begin_connect` once the socket is writable."""
        if self._sock is None or not self._connecting:
            raise GearmanError(f"no connect in progress to job server {self.server}")
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.close()
            raise unreachable(self.server, OSError(code, os.strerror(code)))
        sock, self._sock = self._sock, None
        self._ready(sock)

    def _ready(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.io_timeout)
        self._sock, self._connecting = sock, False
        self._decoder = Decoder()
        self._pending.clear()
        log.debug("connected to job server %s", self.server)

    def _lost(self, reason: str) -> ServerUnavailable:
        self.close()
        return ServerUnavailable(f"lost connection to job server {self.server}: {reason}")

    def _socket(self) -> socket.socket:
        if self._sock is None or self._connecting:
            raise ServerUnavailable(f"not connected to job server {self.server}")
        return self._sock

    def fileno(self) -> int:
        """The socket's file descriptor (for selectors); -1 when closed."""
        return -1 if self._sock is None else self._sock.fileno()

    def send_packet(self, type: T | int, *args: bytes) -> None:
        """Send one request packet."""
        self.send_raw(encode(type, *args, magic=REQ))

    def send_raw(self, data: bytes) -> None:
        """Send bytes already encoded (several packets may be pipelined in one call)."""
        sock = self._socket()
        sock.settimeout(self.io_timeout)
        try:
            sock.sendall(data)
        except OSError as exc:
            raise self._lost(_reason(exc)) from exc

    def receive(self) -> list[Packet]:
        """Read once (the socket should be readable); return every packet now complete."""
        sock = self._socket()
        sock.settimeout(0.0)
        try:
            data = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError as exc:
            raise self._lost(_reason(exc)) from exc
        if data == b"":
            raise self._lost("closed by the server")
        if data:
            self._feed(data)
        packets = list(self._pending)
        self._pending.clear()
        return packets

    def _feed(self, data: bytes) -> None:
        try:
            self._pending.extend(self._decoder.feed(data))
        except ProtocolError as exc:
            self.close()
            raise ProtocolError(f"job server {self.server}: {exc}") from exc

    def read_packet(self, timeout: float | None = None) -> Packet:
        """Return the next packet, waiting up to ``timeout`` seconds (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            sock = self._socket()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise GearmanTimeout(f"job server {self.server} sent nothing for {timeout:g} s")
            sock.settimeout(remaining)
            try:
                data = sock.recv(RECV_SIZE)
            except TimeoutError:
                continue
            except OSError as exc:
                raise self._lost(_reason(exc)) from exc
            if not data:
                raise self._lost("closed by the server")
            self._feed(data)
        return self._pending.popleft()

    def close(self) -> None:
        """Close the socket (idempotent); unread packets are dropped."""
        sock, self._sock, self._connecting = self._sock, None, False
        self._pending.clear()
        if sock is not None:
            sock.close()
