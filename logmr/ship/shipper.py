"""The shipper loop: read lines (stdin or files), batch them, submit each batch as a
background job to ``logmr.store``.

Reading never waits on the job server for longer than one submit; a line read at a quiet
moment leaves within ``max_delay``. SIGTERM does not stop reading: Apache sends it while
its children still write, so ship reads on to end-of-file, flushes, and exits.
"""

from __future__ import annotations

import logging
import os
import secrets
import select
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from logmr import wire
from logmr.errors import LogmrError, ServerUnavailable
from logmr.gearman.client import Client
from logmr.gearman.connection import Server
from logmr.mapfn.parse import compile_format
from logmr.ship.batcher import Batcher, BatchLimits

log = logging.getLogger(__name__)
READ_SIZE = 1 << 20


@dataclass
class ShipOptions:
    """How to ship."""

    servers: list[Server]
    fmt: str = "combined"
    host: str = field(default_factory=socket.gethostname)
    limits: BatchLimits = field(default_factory=BatchLimits)
    retry_for: float = 60.0  # seconds to keep trying when no job server accepts a batch


@dataclass
class ShipStats:
    """What a ship run did."""

    lines: int = 0
    bytes: int = 0
    batches: int = 0


class Shipper:
    """Submits batches; one per ship process."""

    def __init__(self, options: ShipOptions, client: Client | None = None,
                 progress: Callable[[ShipStats], None] | None = None) -> None:
        compile_format(options.fmt)  # a bad format is the user's error: say so before reading
        self.options = options
        self.client = client or Client(options.servers)
        self.stats = ShipStats()
        self._run = f"{time.time_ns():016x}{secrets.randbits(32):08x}"
        self._seq = 0
        self._progress = progress

    def batch_id(self) -> str:
        """Unique, and sorting like the order of shipping: run start time, then sequence."""
        self._seq += 1
        return f"{self._run}-{self._seq:08d}"

    def submit(self, lines: bytes) -> None:
        """Submit one batch; retries until a job server takes it or ``retry_for`` passes."""
        if not lines:
            return
        batch = wire.Batch(self.batch_id(), self.options.host, self.options.fmt, lines)
        payload = wire.pack_batch(batch)
        deadline = time.monotonic() + self.options.retry_for
        delay = 0.1
        while True:
            try:
                self.client.submit_background(wire.STORE_FUNCTION, payload, batch.batch_id)
                break
            except ServerUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    lost = _count_lines(lines)
                    raise LogmrError(f"{exc}; {lost} lines of batch "
                                     f"{batch.batch_id} were not shipped") from None
                log.warning("%s; retrying in %.1fs", exc, delay)
                time.sleep(delay)  # backoff between attempts, not synchronisation
                delay = min(delay * 2, 5.0)
        self.stats.lines += _count_lines(lines)
        self.stats.bytes += len(lines)
        self.stats.batches += 1
        if self._progress:
            self._progress(self.stats)

    def ship_fd(self, fd: int) -> None:
        """Ship everything readable from ``fd`` until end-of-file."""
        batcher = Batcher(self.options.limits)
        regular = _is_regular(fd)
        while True:
            if not regular:
                timeout = batcher.time_left()
                ready, _, _ = select.select([fd], [], [], timeout)
                if not ready:
                    self.submit(batcher.flush())
                    continue
            try:
                data = os.read(fd, READ_SIZE)
            except InterruptedError:
                continue
            if not data:
                break
            for lines in batcher.feed(data):
                self.submit(lines)
            if batcher.due():
                self.submit(batcher.flush())
        self.submit(batcher.flush())
        self.submit(batcher.flush(final=True))  # a last line with no newline

    def ship_paths(self, paths: Iterable[str]) -> None:
        """Ship files one after another ('-' is stdin)."""
        for path in paths:
            if path == "-":
                self.ship_fd(0)
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise LogmrError(f"cannot read {path}: {exc.strerror}") from None
            try:
                self.ship_fd(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Close the connections."""
        self.client.close()


def _count_lines(lines: bytes) -> int:
    return lines.count(b"\n") + (0 if lines.endswith(b"\n") else 1)


def _is_regular(fd: int) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(fd).st_mode)
