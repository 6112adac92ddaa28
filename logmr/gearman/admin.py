"""The job server's text admin protocol: status, workers, version."""

from __future__ import annotations

import time
from dataclasses import dataclass

from logmr.gearman.connection import Server, open_socket
from logmr.gearman.errors import GearmanError, GearmanTimeout, ProtocolError, ServerUnavailable

MAX_REPLY = 64 * 1024 * 1024


@dataclass(frozen=True)
class FunctionStatus:
    """One line of ``status``: queued jobs (running included), running jobs, workers."""

    name: str
    total: int
    running: int
    workers: int


@dataclass(frozen=True)
class WorkerInfo:
    """One line of ``workers``: every connection, client or worker, is listed."""

    fd: int
    ip: str
    client_id: str | None
    functions: tuple[str, ...]


def _complete(reply: bytes, multiline: bool) -> bool:
    if reply.startswith(b"ERR "):
        return reply.endswith(b"\n")
    if multiline:
        return reply == b".\n" or reply.endswith(b"\n.\n")
    return reply.endswith(b"\n")


def command(server: Server, text: str, timeout: float = 5.0, multiline: bool = True) -> list[str]:
    """Send one admin command; return the reply's lines (without the final ``.``)."""
    deadline = time.monotonic() + timeout
    with open_socket(server, timeout) as sock:
        try:
            sock.sendall(text.encode("ascii") + b"\n")
            reply = b""
            while not _complete(reply, multiline):
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ServerUnavailable(f"job server {server} closed the admin connection")
                reply += chunk
                if len(reply) > MAX_REPLY:
                    raise ProtocolError(f"job server {server}: admin reply too long")
        except TimeoutError:
            raise GearmanTimeout(f"job server {server} did not answer {text!r}") from None
        except OSError as exc:
            raise ServerUnavailable(f"lost job server {server}: {exc}") from exc
    lines = reply.decode("utf-8", "replace").splitlines()
    if lines and lines[0].startswith("ERR "):
        raise GearmanError(f"job server {server} rejected {text!r}: {lines[0]}")
    return lines[:-1] if multiline else lines


def status(server: Server, timeout: float = 5.0) -> list[FunctionStatus]:
    """Every function the server knows, with its queue and worker counts."""
    result = []
    for line in command(server, "status", timeout):
        fields = line.split("\t")
        if len(fields) != 4 or not all(f.isdigit() for f in fields[1:]):
            raise ProtocolError(f"job server {server}: bad status line {line!r}")
        result.append(FunctionStatus(fields[0], *(int(f) for f in fields[1:])))
    return result


def workers(server: Server, timeout: float = 5.0) -> list[WorkerInfo]:
    """Every connection to the server, with its client id and registered functions."""
    result = []
    for line in command(server, "workers", timeout):
        head, sep, tail = line.partition(" :")
        fields = head.split(" ", 2)
        if not sep or len(fields) != 3 or not fields[0].isdigit():
            raise ProtocolError(f"job server {server}: bad workers line {line!r}")
        fd, ip, client_id = fields
        client = None if client_id == "-" else client_id
        result.append(WorkerInfo(int(fd), ip, client, tuple(tail.split())))
    return result


def version(server: Server, timeout: float = 5.0) -> str:
    """The server's version, such as ``1.1.20+ds``."""
    lines = command(server, "version", timeout, multiline=False)
    if not lines or not lines[0].startswith("OK "):
        raise ProtocolError(f"job server {server}: bad version reply {lines!r}")
    return lines[0][3:].strip()


def getpid(server: Server, timeout: float = 5.0) -> int:
    """The server's process id (gearmand answers ``getpid``)."""
    lines = command(server, "getpid", timeout, multiline=False)
    if not lines or not lines[0].startswith("OK ") or not lines[0][3:].strip().isdigit():
        raise ProtocolError(f"job server {server}: bad getpid reply {lines!r}")
    return int(lines[0][3:])

