"""The shipper: read lines, batch them, submit each batch as a background job to
``logmr.store``.

A stream (stdin from Apache, a pipe) goes through the on-disk spool: one thread moves
what arrives into the spool file at once (``splice``, so nothing sits only in memory) and
never waits for the network; a sender thread cuts batches from the spool and submits them,
retrying while no job server answers. SIGTERM does not stop the reading: Apache sends it
while its children still write, so ship reads on to end of input, sends what it holds, and
exits. What a dead ship left in the spool is sent by the next one.

A regular file is its own durable copy: it is read, batched and submitted directly.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from logmr import wire
from logmr.errors import LogmrError
from logmr.gearman.client import Client
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError, ServerUnavailable
from logmr.mapfn.parse import AUTO, check_format
from logmr.ship.batcher import Batcher, BatchLimits
from logmr.ship.spool import SpoolFile, default_spool_dir, open_spool_dir, orphans

log = logging.getLogger(__name__)
READ_SIZE = 1 << 20


@dataclass
class ShipOptions:
    """How to ship."""

    servers: list[Server]
    fmt: str = AUTO  # found by the nodes from the lines
    host: str = field(default_factory=socket.gethostname)
    limits: BatchLimits = field(default_factory=BatchLimits)
    retry_for: float = 60.0  # files: seconds to keep trying when no job server answers
    spool_dir: str = field(default_factory=default_spool_dir)
    drain_timeout: float = 30.0  # streams: seconds to keep trying after end of input
    spool_file_bytes: int = 64 << 20  # a new spool file after this many bytes
    secret: bytes | None = None  # signs every batch (HMAC-SHA256) when set


@dataclass
class ShipStats:
    """What a ship run did."""

    lines: int = 0
    bytes: int = 0
    batches: int = 0


class GaveUp(LogmrError):
    """No job server took a batch within the time allowed; the spool keeps it."""


class Shipper:
    """Ships files and streams; one per ship process."""

    def __init__(self, options: ShipOptions, client: Client | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> None:
        check_format(options.fmt)  # a bad format is the user's error: say so before reading
        self.options = options
        self.client = client or Client(options.servers)
        self.stats = ShipStats()
        self._run = f"{time.time_ns():016x}{secrets.randbits(32):08x}"
        self._seq = 0
        self._deadline: float | None = None  # set when input has ended
        self._stop = threading.Event()
        self._progress = progress  # (file, bytes done, bytes in all), for regular files

    # -- submitting -----------------------------------------------------------------------

    def submit(self, batch_id: str, lines: bytes, patience: float | None = None,
               count: int | None = None) -> None:
        """Submit one batch of ``count`` lines (None: counted here), retrying while no job
        server takes it: until ``patience`` seconds have passed (None: until the drain
        deadline, if input has ended)."""
        if not lines:
            return
        payload = wire.sign(wire.pack_batch(wire.Batch(batch_id, self.options.host,
                                                       self.options.fmt, lines)),
                            self.options.secret)
        give_up = None if patience is None else time.monotonic() + patience
        delay = 0.1
        while True:
            try:
                self.client.submit_background(wire.STORE_FUNCTION, payload, batch_id)
                break
            except ServerUnavailable as exc:
                limit = give_up if give_up is not None else self._deadline
                if limit is not None and time.monotonic() + delay > limit:
                    raise GaveUp(str(exc)) from None
                log.warning("%s; retrying in %.1fs", exc, delay)
                self._stop.wait(delay)  # back off between attempts
                delay = min(delay * 2, 5.0)
        if count is None:
            count = lines.count(b"\n") + (0 if lines.endswith(b"\n") else 1)
        self.stats.lines += count
        self.stats.bytes += len(lines)
        self.stats.batches += 1

    # -- regular files --------------------------------------------------------------------

    def ship_file(self, fd: int, name: str = "-") -> None:
        """Ship a regular file (it is its own durable copy: no spool)."""
        batcher = Batcher(self.options.limits)
        run = f"{time.time_ns():016x}{secrets.randbits(32):08x}"
        offset = 0

        total = os.fstat(fd).st_size

        def send(lines: bytes, count: int) -> None:
            nonlocal offset
            self.submit(f"{run}.f-{offset:012x}", lines, self.options.retry_for, count)
            offset += len(lines)
            if self._progress is not None:
                self._progress(name, offset, total)

        while data := os.read(fd, READ_SIZE):
            for lines, count in batcher.feed_counted(data):
                send(lines, count)
        send(*batcher.flush_counted())
        send(*batcher.flush_counted(final=True))

    def ship_paths(self, paths: Iterable[str]) -> None:
        """Ship files one after another ('-' is stdin)."""
        for path in paths:
            if path == "-":
                self.ship_input(0)
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise LogmrError(f"cannot read {path}: {exc.strerror}") from None
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    self.ship_file(fd, path)
                else:
                    self.ship_stream(fd)
            finally:
                os.close(fd)

    def ship_input(self, fd: int) -> None:
        """Ship stdin: through the spool unless it is a regular file."""
        if stat.S_ISREG(os.fstat(fd).st_mode):
            self.ship_file(fd)
        else:
            self.ship_stream(fd)

    # -- streams, through the spool -------------------------------------------------------

    def ship_stream(self, fd: int) -> None:
        """Ship a stream until end of input, through the spool."""
        spool_dir = open_spool_dir(self.options.spool_dir)
        channel = _Channel(self._new_spool(spool_dir))
        sender = threading.Thread(target=self._send_all, args=(channel, orphans(spool_dir)),
                                  name="sender", daemon=True)
        sender.start()
        try:
            self._read_into_spool(fd, channel, spool_dir)
        except KeyboardInterrupt:
            log.info("interrupted: sending what was read, then exiting")
        finally:
            with channel.cond:
                channel.eof = True
                self._deadline = time.monotonic() + self.options.drain_timeout
                channel.cond.notify_all()
        sender.join()
        if channel.error is not None:
            raise channel.error

    def drain(self) -> int:
        """Send what dead ships left in the spool; returns how many spool files were sent."""
        spool_dir = open_spool_dir(self.options.spool_dir)
        self._deadline = time.monotonic() + self.options.drain_timeout
        left = orphans(spool_dir)
        try:
            for spool in left:
                self._replay(spool)
        except GaveUp as exc:
            for spool in left:
                spool.close()
            raise _kept(exc, spool_dir) from None
        return len(left)

    def _new_spool(self, spool_dir: str) -> SpoolFile:
        spool = SpoolFile.create(spool_dir, self._run, self._seq)
        self._seq += 1
        return spool

    def _read_into_spool(self, fd: int, channel: _Channel, spool_dir: str) -> None:
        spool = channel.files[-1]
        splice = True
        while True:
            if splice:
                try:
                    n = spool.splice_from(fd, READ_SIZE)
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EBADF):
                        raise
                    splice = False  # not a pipe (a terminal, a socket): read and write
                    continue
            else:
                data = os.read(fd, READ_SIZE)
                spool.append(data)
                n = len(data)
            with channel.cond:
                channel.cond.notify_all()
            if n == 0:
                return
            if spool.size >= self.options.spool_file_bytes and spool.ends_with_newline():
                new = self._new_spool(spool_dir)
                with channel.cond:
                    channel.sealed.add(spool.path)
                    channel.files.append(new)
                    channel.cond.notify_all()
                spool = new

    def _send_all(self, channel: _Channel, adopted: list[SpoolFile]) -> None:
        try:
            for spool in adopted:
                self._replay(spool)
            while True:
                with channel.cond:
                    if not channel.files:
                        return
                    spool = channel.files[0]
                self._send_spool(channel, spool)
                with channel.cond:
                    channel.files.popleft()
                spool.remove()
        except GaveUp as exc:
            channel.error = _kept(exc, self.options.spool_dir)
        except (LogmrError, GearmanError) as exc:
            channel.error = exc
        finally:
            if channel.error is not None:
                for spool in [*adopted, *channel.files]:
                    spool.close()  # unlocked: the next ship adopts them

    def _send_spool(self, channel: _Channel, spool: SpoolFile) -> None:
        """Cut and send batches from one of our spool files until it is complete."""
        batcher = Batcher(self.options.limits)
        read_pos = cut = 0
        while True:
            with channel.cond:
                while (spool.size == read_pos and spool.path not in channel.sealed
                       and not channel.eof and not batcher.due()):
                    channel.cond.wait(batcher.time_left())
                size = spool.size
                complete = spool.path in channel.sealed or channel.eof
            if size > read_pos:
                data = spool.read(read_pos, min(size - read_pos, READ_SIZE))
                read_pos += len(data)
                for lines, count in batcher.feed_counted(data):
                    cut = self._send_cut(spool, cut, lines, count)
            if batcher.due():
                cut = self._send_cut(spool, cut, *batcher.flush_counted())
            if complete and read_pos == size:
                cut = self._send_cut(spool, cut, *batcher.flush_counted())
                self._send_cut(spool, cut, *batcher.flush_counted(final=True))
                return

    def _send_cut(self, spool: SpoolFile, start: int, lines: bytes,
                  count: int | None = None) -> int:
        """Record a batch boundary, submit the batch, record its acknowledgement."""
        if not lines:
            return start
        end = start + len(lines)
        spool.record_cut(end)
        self.submit(spool.batch_id(start), lines, count=count)
        spool.record_ack(end)
        return end

    def _replay(self, spool: SpoolFile) -> None:
        """Send what a dead ship left: its cut batches as they were, then the rest."""
        state = spool.state()
        log.info("sending %d bytes left in %s by a ship that is gone",
                 spool.size - state.acked, spool.path)
        pos = state.acked
        for end in state.cuts:
            self.submit(spool.batch_id(pos), spool.read(pos, end - pos))
            spool.record_ack(end)
            pos = end
        batcher = Batcher(self.options.limits)
        cut = pos
        while pos < spool.size:
            data = spool.read(pos, min(spool.size - pos, READ_SIZE))
            pos += len(data)
            for lines, count in batcher.feed_counted(data):
                cut = self._send_cut(spool, cut, lines, count)
        cut = self._send_cut(spool, cut, *batcher.flush_counted())
        self._send_cut(spool, cut, *batcher.flush_counted(final=True))
        spool.remove()

    def close(self) -> None:
        """Close the connections."""
        self._stop.set()
        self.client.close()


@dataclass
class _Channel:
    """Reader to sender: the spool files being filled, and when input ended."""

    first: SpoolFile
    files: deque[SpoolFile] = field(default_factory=deque)
    sealed: set[str] = field(default_factory=set)
    eof: bool = False
    error: LogmrError | GearmanError | None = None
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.files.append(self.first)


def _kept(exc: LogmrError, spool_dir: str) -> LogmrError:
    return LogmrError(f"{exc}; what was not sent stays in the spool {spool_dir} and the next "
                      "'logmr ship' (or 'logmr ship --drain') sends it")
