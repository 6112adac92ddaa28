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
        return [batch for batch, _ in self.feed_counted(data)]

    def feed_counted(self, data: bytes) -> list[tuple[bytes, int]]:
        """Add bytes; return the batches that became full, each with its number of lines."""
        if not data:
            return []
        if self._since is None:
            self._since = self._clock()
        out: list[tuple[bytes, int]] = []
        buf = self._buf
        buf += data
        max_lines, max_bytes = self.limits.max_lines, self.limits.max_bytes
        pos = self._complete  # buf[:pos] is the whole lines of the batch so far
        while True:
            window = min(len(buf), max_bytes)
            found = buf.count(b"\n", pos, window)
            need = max_lines - self._lines
            if found >= need:  # full by line count
                pos = _past_nth_newline(buf, pos, window, need, found)
                self._lines = max_lines
            elif window < len(buf):  # full by size
                if found:
                    pos = buf.rfind(b"\n", pos, window) + 1
                    self._lines += found
                elif not self._lines:  # one line longer than max_bytes: a batch of its own
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        break
                    pos = nl + 1
                    self._lines = 1
            else:  # everything so far fits
                if found:
                    self._lines += found
                    pos = buf.rfind(b"\n", pos) + 1
                if pos < max_bytes:
                    break
            out.append(self._cut(pos))
            pos = 0
        self._complete = pos
        return out

    def _cut(self, end: int) -> tuple[bytes, int]:
        """Take ``buf[:end]``, the ``self._lines`` whole lines waiting."""
        buf = self._buf
        with memoryview(buf) as view:
            batch = bytes(view[:end])  # one copy (a slice of the bytearray is another)
        del buf[:end]
        lines, self._lines, self._complete = self._lines, 0, 0
        self._since = self._clock() if buf else None
        return batch, lines

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
        return self.flush_counted(final)[0]

    def flush_counted(self, final: bool = False) -> tuple[bytes, int]:
        """:meth:`flush`, with the number of lines taken."""
        if final and len(self._buf) > self._complete:
            self._lines += 1  # the last line, with no newline
            self._complete = len(self._buf)
        return self._cut(self._complete)


def _past_nth_newline(buf: bytearray, start: int, stop: int, n: int, found: int) -> int:
    """The index just past the ``n``-th newline of ``buf[start:stop]``, which holds
    ``found >= n`` of them: a count from where the average line length puts it, then a
    step line by line to the exact one (no list of lines is built)."""
    guess = start + (stop - start) * n // found
    seen = found - buf.count(b"\n", guess, stop)  # count the shorter side: the tail
    if seen < n:
        end = guess
        for _ in range(n - seen):
            end = buf.index(b"\n", end, stop) + 1
        return end
    nl = buf.rindex(b"\n", start, guess)  # the seen-th newline
    for _ in range(seen - n):
        nl = buf.rindex(b"\n", start, nl)
    return nl + 1
