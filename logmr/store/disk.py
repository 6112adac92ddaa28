"""Room to write: the free-space watermark of a node's data dir, and the errors that mean
the disk cannot take a batch now (full, failing, read-only) but may later.

A node that meets one of these never answers the batch with a failure (gearmand would
drop it for good): it gives the job back and stops taking batches until :func:`writable`
says the disk takes writes again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re

from logmr import private
from logmr.errors import ConfigError, DiskUnavailable

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})  # "disk full", not "error"
DEFAULT_MIN_FREE = "1G,5%"  # the smaller of the two: 1 GiB, or 5 % of a small disk
RESUME_MARGIN = 1 << 20  # room over the watermark before batches are taken again (no flapping)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_min_free(value: str) -> tuple[int | None, float | None]:
    """``500M``, ``2G``, ``0``, ``5%`` or both (``1G,5%``: the smaller applies) as
    (bytes or None, fraction or None).

    >>> parse_min_free("1G,5%")
    (1073741824, 0.05)
    >>> parse_min_free("256M")
    (268435456, None)
    """
    size: int | None = None
    share: float | None = None
    for part in value.split(","):
        if (m := _SHARE.match(part)) is not None and share is None:
            if float(m.group(1)) > 100:
                raise ConfigError(f"--min-free {value!r}: a share cannot exceed 100%")
            share = float(m.group(1)) / 100
        elif (m := _SIZE.match(part)) is not None and size is None:
            size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
        else:
            raise ConfigError(f"--min-free {value!r}: give a size (500M, 2G, 0), a share of "
                              "the disk (5%) or both (1G,5%)")
    return size, share


def free_bytes(path: str) -> tuple[int, int]:
    """(bytes free to an unprivileged writer, total bytes) of the file system of ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


class Watermark:
    """The free space below which a node takes no batches."""

    def __init__(self, path: str, min_free: str = DEFAULT_MIN_FREE) -> None:
        self.path = path
        self.size, self.share = parse_min_free(min_free)

    def floor(self, total: int) -> int:
        """The watermark in bytes on a disk of ``total`` bytes."""
        limits = [x for x in (self.size, None if self.share is None else int(total * self.share))
                  if x is not None]
        return min(limits) if limits else 0

    def check(self, incoming: int = 0) -> None:
        """Raise :class:`DiskUnavailable` when writing ``incoming`` more bytes would leave
        less than the watermark free."""
        try:
            free, total = free_bytes(self.path)
        except OSError as exc:
            raise DiskUnavailable(f"cannot read free space of {self.path}: "
                                  f"{exc.strerror}") from None
        floor = self.floor(total)
        if free - incoming < floor:
            raise DiskUnavailable(f"disk full: {_mib(free)} free in {self.path}, under the "
                                  f"--min-free watermark of {_mib(floor)}")

    def state(self) -> dict[str, int | None]:
        """Free bytes and the watermark, for status."""
        try:
            free, total = free_bytes(self.path)
        except OSError:
            return {"disk_free_bytes": None, "min_free_bytes": None}
        return {"disk_free_bytes": free, "min_free_bytes": self.floor(total)}


def writable(path: str, watermark: Watermark) -> str | None:
    """None when the data dir takes writes again (free space 1 MiB over the watermark, so
    that the node does not flap around it, and a small file written, fsynced and removed);
    otherwise why not."""
    try:
        watermark.check(RESUME_MARGIN)
    except DiskUnavailable as exc:
        return str(exc)
    probe = os.path.join(path, ".write-probe")
    try:
        fd = private.open_file(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        kind = "disk full" if exc.errno in FULL_ERRNOS else "disk error"
        return f"{kind}: cannot write to {path}: {exc.strerror}"
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    return None


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
