"""Run a map job in a forked child process, under a time budget and a memory limit.

The child sees the node's data as it was at the fork (copy-on-write, block cache
included) and streams its results back through a pipe; this process relays them to the
job server. A job that runs past its budget (a regex that backtracks for ever) or past
its memory limit is killed, and its client gets an error, while ingestion on the node
never waited for it: the child has its own interpreter lock.
"""

from __future__ import annotations

import logging
import os
import resource
import select
import signal
import struct
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from typing import Any, Protocol

import msgpack

from logmr.errors import LogmrError

log = logging.getLogger(__name__)
FRAME = struct.Struct(">cI")
DATA, STATUS, RESULT, ERROR = b"D", b"S", b"R", b"E"


class Reply(Protocol):
    """Where a map job sends what it finds: a Gearman job, or the pipe to the parent."""

    def send_data(self, data: bytes) -> None: ...
    def send_status(self, numerator: int, denominator: int) -> None: ...


MapHandler = Callable[[Reply], dict[str, Any]]


class _PipeReply:
    """The child's end: frames on a pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _frame(self, kind: bytes, payload: bytes) -> None:
        view = memoryview(FRAME.pack(kind, len(payload)) + payload)
        while view:
            view = view[os.write(self.fd, view):]

    def send_data(self, data: bytes) -> None:
        self._frame(DATA, data)

    def send_status(self, numerator: int, denominator: int) -> None:
        self._frame(STATUS, msgpack.packb([numerator, denominator]))


class MapRunner:
    """Forks one child per map job and relays what it sends."""

    def __init__(self, budget: float = 60.0, memory_limit: int | None = 2 << 30,
                 fork_lock: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.budget = budget
        self.memory_limit = memory_limit
        self._fork_lock = fork_lock or threading.Lock

    def run(self, handler: MapHandler, reply: Reply) -> dict[str, Any]:
        """Run ``handler`` in a child; returns its result or raises LogmrError."""
        read_fd, write_fd = os.pipe()
        with self._fork_lock():
            pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            self._child(handler, write_fd)
        os.close(write_fd)
        try:
            return self._relay(pid, read_fd, reply)
        finally:
            os.close(read_fd)
            _reap(pid)

    def _child(self, handler: MapHandler, fd: int) -> None:
        code = 0
        out = _PipeReply(fd)
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            if self.memory_limit:
                limit = _address_space() + self.memory_limit
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            result = handler(out)
            out._frame(RESULT, msgpack.packb(result, use_bin_type=True))
        except LogmrError as exc:
            out._frame(ERROR, str(exc).encode())
        except MemoryError:
            out._frame(ERROR, b"map job ran out of its memory limit; narrow the query "
                              b"(--since/--until, --limit)")
        except BaseException as exc:  # noqa: BLE001 - report, then die
            out._frame(ERROR, f"internal error in map job: {type(exc).__name__}: {exc}".encode())
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)

    def _relay(self, pid: int, fd: int, reply: Reply) -> dict[str, Any]:
        deadline = time.monotonic() + self.budget
        buf = bytearray()
        while True:
            left = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise LogmrError(f"map job exceeded its time budget of {self.budget:g} s and "
                                 "was stopped; narrow it with --since/--until or a simpler "
                                 "pattern")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise LogmrError(f"map job died ({_how_it_ended(pid)}) before answering")
            buf += chunk
            while len(buf) >= FRAME.size:
                kind, length = FRAME.unpack_from(buf)
                if len(buf) < FRAME.size + length:
                    break
                payload = bytes(buf[FRAME.size:FRAME.size + length])
                del buf[:FRAME.size + length]
                if kind == DATA:
                    reply.send_data(payload)
                elif kind == STATUS:
                    reply.send_status(*msgpack.unpackb(payload))
                elif kind == RESULT:
                    result: dict[str, Any] = msgpack.unpackb(payload, raw=False)
                    return result
                else:
                    raise LogmrError(payload.decode("utf-8", "replace"))


def _address_space() -> int:
    """This process's virtual memory size, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _reap(pid: int) -> None:
    with suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _how_it_ended(pid: int) -> str:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "already reaped"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"
