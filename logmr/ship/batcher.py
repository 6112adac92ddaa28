"""Cut a byte stream into batches of whole lines, by count, size and age. Pure: no I/O.

A line is never split: a batch ends after a newline. A line longer than the size limit
becomes a batch of its own once its newline arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchLimits:
    """When a batch is closed: whichever limit comes first."""

    max_lines: int = 4000
    max_bytes: int = 1 << 20
    max_delay: float = 0.5  # seconds after its first line arrived


class Batcher:
    """Accumulates bytes; hands out batches of whole lines.

    >>> b = Batcher(BatchLimits(max_lines=2))
    >>> b.feed(b"a\\nb\\nc")
    [b'a\\nb\\n']
    >>> b.flush(final=True)
    b'c'
    """

    def __init__(self, limits: BatchLimits = BatchLimits(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._buf = bytearray()
        self._lines = 0  # whole lines in _buf
        self._complete = 0  # length of the whole lines at the start of _buf
        self._since: float | None = None

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the batches that became full."""
        if not data:
            return []
        if self._since is None:
            self._since = self._clock()
        out: list[bytes] = []
        buf = self._buf
        buf += data
        max_lines, max_bytes = self.limits.max_lines, self.limits.max_bytes
        pos = self._complete  # buf[:pos] is the whole lines of the batch so far
        while True:
            window = min(len(buf), max_bytes)
            found = buf.count(b"\n", pos, window)
            need = max_lines - self._lines
            if found >= need:  # full by line count
                lines = buf[pos:window].split(b"\n", need)[:need]
                pos += sum(map(len, lines)) + need  # just past the need-th newline
            elif window < len(buf):  # full by size
                if found:
                    pos = buf.rfind(b"\n", pos, window) + 1
                elif not self._lines:  # one line longer than max_bytes: a batch of its own
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        break
                    pos = nl + 1
            else:  # everything so far fits
                if found:
                    self._lines += found
                    pos = buf.rfind(b"\n", pos) + 1
                if pos < max_bytes:
                    break
            self._cut(out, pos)
            pos = 0
        self._complete = pos
        return out

    def _cut(self, out: list[bytes], end: int) -> None:
        buf = self._buf
        out.append(bytes(buf[:end]))
        del buf[:end]
        self._lines = 0
        self._since = self._clock() if buf else None

    def time_left(self) -> float | None:
        """Seconds until the pending lines are due; None when nothing is pending."""
        if self._since is None or not self._complete:
            return None
        return max(0.0, self._since + self.limits.max_delay - self._clock())

    def due(self) -> bool:
        """True when whole lines have waited long enough to be shipped."""
        left = self.time_left()
        return left is not None and left <= 0

    def flush(self, final: bool = False) -> bytes:
        """Take the whole lines waiting (and, when ``final``, a last line with no newline)."""
        end = len(self._buf) if final else self._complete
        out = bytes(self._buf[:end])
        del self._buf[:end]
        self._complete = 0
        self._lines = 0
        self._since = self._clock() if self._buf else None
        return out
