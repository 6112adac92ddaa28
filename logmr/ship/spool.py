"""The ship spool: what ship reads is on local disk before anything else.

A spool file holds the raw bytes exactly as read (``RUN.SEQ.spool``), beside an index
(``RUN.SEQ.idx``) of text lines: ``C <end>`` when a batch is cut (before it is submitted)
and ``A <end>`` when a job server has queued it. A batch is the byte range between two
cuts, and its id is the spool file plus its start offset, so a batch sent again after a
crash carries the same id and the storage node drops it as a duplicate.

A live ship holds an exclusive ``flock`` on its spool files. A file nobody holds belongs to
a ship that died (kill -9, a crash): the next ship adopts it and sends what it had not
handed over. Files are created under a temporary name and renamed once locked, so no ship
can adopt a file that is being born.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from dataclasses import dataclass

from logmr import private
from logmr.errors import LogmrError

log = logging.getLogger(__name__)

DATA_SUFFIX = ".spool"
INDEX_SUFFIX = ".idx"
_NAME = re.compile(r"^([0-9a-f]{24})\.([0-9a-f]{4})\.spool$")


def default_spool_dir() -> str:
    """``/var/spool/logmr`` for root (Apache runs its piped loggers as root), else
    ``$XDG_STATE_HOME/logmr/spool`` (``~/.local/state/logmr/spool``)."""
    if os.geteuid() == 0:
        return "/var/spool/logmr"
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(state, "logmr", "spool")


@dataclass
class SpoolState:
    """What the index says: where batches were cut, and how far they were acknowledged."""

    cuts: list[int]
    acked: int


class SpoolFile:
    """One locked spool file and its index."""

    def __init__(self, path: str, fd: int, run: str, seq: int) -> None:
        self.path = path
        self.fd = fd  # holds the flock for as long as the file is open
        self.run = run
        self.seq = seq
        self.index_path = path[: -len(DATA_SUFFIX)] + INDEX_SUFFIX
        self._index_fd = private.open_file(self.index_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self.size = os.fstat(fd).st_size

    @classmethod
    def create(cls, spool_dir: str, run: str, seq: int) -> SpoolFile:
        """A new spool file, locked before it becomes visible under its real name."""
        name = f"{run}.{seq:04x}{DATA_SUFFIX}"
        path = os.path.join(spool_dir, name)
        tmp = os.path.join(spool_dir, f".{name}.tmp")
        fd = private.open_file(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(tmp, path)
        return cls(path, fd, run, seq)

    @classmethod
    def adopt(cls, path: str) -> SpoolFile | None:
        """Lock a spool file whose ship is gone; None if a live ship holds it."""
        m = _NAME.match(os.path.basename(path))
        if m is None:
            return None
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None  # finished and removed by its owner meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if not os.path.exists(path):  # removed between open and lock
            os.close(fd)
            return None
        return cls(path, fd, m.group(1), int(m.group(2), 16))

    def batch_id(self, start: int) -> str:
        """The id of the batch starting at ``start``: sorts like the order of shipping."""
        return f"{self.run}.{self.seq:04x}-{start:012x}"

    def append(self, data: bytes) -> None:
        """Add bytes read from the input."""
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, self.size)
            self.size += n
            view = view[n:]

    def splice_from(self, src: int, count: int) -> int:
        """Move up to ``count`` bytes from the pipe ``src`` straight into the file (the bytes
        never sit in this process's memory); 0 at end of input."""
        n = os.splice(src, self.fd, count, offset_dst=self.size)
        self.size += n
        return n

    def read(self, offset: int, count: int) -> bytes:
        """Bytes of the spool file."""
        return os.pread(self.fd, count, offset)

    def ends_with_newline(self) -> bool:
        """True when the file ends at a line boundary (or is empty)."""
        return self.size == 0 or self.read(self.size - 1, 1) == b"\n"

    def record_cut(self, end: int) -> None:
        """Note a batch boundary before the batch is submitted."""
        os.write(self._index_fd, b"C %d\n" % end)

    def record_ack(self, end: int) -> None:
        """Note that every byte before ``end`` is queued by a job server."""
        os.write(self._index_fd, b"A %d\n" % end)

    def state(self) -> SpoolState:
        """Read the index (a torn last line is ignored)."""
        cuts: list[int] = []
        acked = 0
        try:
            with open(self.index_path, "rb") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) != 2 or not line.endswith(b"\n") or not parts[1].isdigit():
                        continue
                    value = int(parts[1])
                    if parts[0] == b"C" and (not cuts or value > cuts[-1]):
                        cuts.append(value)
                    elif parts[0] == b"A":
                        acked = max(acked, value)
        except FileNotFoundError:
            pass
        return SpoolState(cuts=[c for c in cuts if c > acked and c <= self.size], acked=acked)

    def remove(self) -> None:
        """Delete the file and its index (everything in it is queued)."""
        for path in (self.path, self.index_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.close()

    def close(self) -> None:
        """Close (and so unlock) the file."""
        for fd in (self._index_fd, self.fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._index_fd = self.fd = -1


def open_spool_dir(path: str) -> str:
    """Create the spool directory if needed; a clear error if it cannot be used."""
    try:
        private.make_dir(path)  # what ship spools is personal data: its owner's alone
        private.close_tree(path, "spool dir")
        probe = os.path.join(path, f".probe-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise LogmrError(f"cannot use spool dir {path}: {exc.strerror}; choose another with "
                         "--spool-dir or LOGMR_SPOOL_DIR") from None
    return path


def orphans(spool_dir: str) -> list[SpoolFile]:
    """Lock every spool file left by a ship that is gone, oldest first."""
    found = []
    for name in sorted(os.listdir(spool_dir)):
        if name.endswith(".tmp") and name.startswith("."):
            _remove_stale_tmp(os.path.join(spool_dir, name))
        elif name.endswith(DATA_SUFFIX):
            spool = SpoolFile.adopt(os.path.join(spool_dir, name))
            if spool is not None:
                found.append(spool)
    return found


def _remove_stale_tmp(path: str) -> None:
    """A temporary file of a ship that died while creating it holds no data."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(path)
    except (BlockingIOError, FileNotFoundError):
        pass
    finally:
        os.close(fd)
