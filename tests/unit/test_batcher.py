"""Unit tests of logmr.ship.batcher: whole-line batches by count, size and age."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.ship.batcher import Batcher, BatchLimits


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def feed_in_chunks(batcher: Batcher, data: bytes, sizes: list[int]) -> list[bytes]:
    """Feed ``data`` in chunks of the given sizes (cycled), then flush everything."""
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out += batcher.feed(data[pos:pos + size])
        pos += size
        i += 1
    # as the shipper does at end of input: whole lines, then a last line with no newline
    return out + [b for b in (batcher.flush(), batcher.flush(final=True)) if b]


streams = st.lists(st.sampled_from([b"a", b"bb", b"\n", b"\n", b"cccccccc", b"\r"]),
                   max_size=60).map(b"".join)
limits = st.builds(BatchLimits, max_lines=st.integers(1, 6), max_bytes=st.integers(1, 40))
chunk_sizes = st.lists(st.integers(1, 17), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(data=streams, lim=limits, sizes=chunk_sizes)
def test_batches_are_whole_lines_and_lose_nothing(data: bytes, lim: BatchLimits,
                                                   sizes: list[int]) -> None:
    batcher = Batcher(lim, clock=FakeClock())
    batches = feed_in_chunks(batcher, data, sizes)
    assert b"".join(batches) == data
    assert all(batches)
    for i, batch in enumerate(batches):
        if i < len(batches) - 1 or data.endswith(b"\n"):
            assert batch.endswith(b"\n")
        assert batch.count(b"\n") <= lim.max_lines
    assert len(batcher) == 0


@settings(max_examples=300, deadline=None)
@given(data=streams, lim=limits, sizes=chunk_sizes)
def test_batches_respect_max_bytes(data: bytes, lim: BatchLimits, sizes: list[int]) -> None:
    batches = feed_in_chunks(Batcher(lim, clock=FakeClock()), data, sizes)
    for batch in batches:
        assert len(batch) <= lim.max_bytes or batch.rstrip(b"\n").count(b"\n") == 0


def test_long_line_is_a_batch_of_its_own() -> None:
    batcher = Batcher(BatchLimits(max_lines=100, max_bytes=10), clock=FakeClock())
    assert batcher.feed(b"a\n") == []
    assert batcher.feed(b"b" * 20 + b"\n") == [b"a\n", b"b" * 20 + b"\n"]


def test_docstring_example() -> None:
    b = Batcher(BatchLimits(max_lines=2), clock=FakeClock())
    assert b.feed(b"a\nb\nc") == [b"a\nb\n"]
    assert b.flush(final=True) == b"c"


def test_cut_by_line_count() -> None:
    b = Batcher(BatchLimits(max_lines=2, max_bytes=1000), clock=FakeClock())
    assert b.feed(b"1\n2\n3\n4\n5\n") == [b"1\n2\n", b"3\n4\n"]
    assert b.flush() == b"5\n"


def test_cut_by_size() -> None:
    b = Batcher(BatchLimits(max_lines=100, max_bytes=4), clock=FakeClock())
    # "cd" cannot fit beside "ab\n": the batch is closed as soon as that is known
    assert b.feed(b"ab\ncd") == [b"ab\n"]
    assert b.feed(b"\nef\n") == [b"cd\n"]
    assert b.flush() == b"ef\n"


def test_line_split_across_feeds_is_kept_whole() -> None:
    b = Batcher(BatchLimits(max_lines=1), clock=FakeClock())
    assert b.feed(b"hel") == []
    assert b.feed(b"lo") == []
    assert b.feed(b"\nwor") == [b"hello\n"]
    assert len(b) == 3
    assert b.flush() == b""  # no whole line waiting
    assert b.flush(final=True) == b"wor"


def test_feed_empty_is_nothing() -> None:
    b = Batcher(clock=FakeClock())
    assert b.feed(b"") == []
    assert b.time_left() is None
    assert not b.due()


def test_time_left_and_due() -> None:
    clock = FakeClock(100.0)
    b = Batcher(BatchLimits(max_lines=100, max_delay=0.5), clock=clock)
    assert b.time_left() is None
    b.feed(b"partial")
    assert b.time_left() is None  # only a partial line: nothing can be shipped
    clock.now = 100.2
    b.feed(b" line\n")
    assert b.time_left() == pytest.approx(0.3)  # counted from the first byte
    assert not b.due()
    clock.now = 100.5
    assert b.time_left() == 0.0
    assert b.due()
    clock.now = 101.0
    assert b.time_left() == 0.0  # never negative
    assert b.flush() == b"partial line\n"
    assert b.time_left() is None
    assert not b.due()


def test_age_restarts_for_the_rest_after_a_cut() -> None:
    clock = FakeClock(10.0)
    b = Batcher(BatchLimits(max_lines=1, max_delay=1.0), clock=clock)
    b.feed(b"x")
    clock.now = 15.0
    assert b.feed(b"\ny\n") == [b"x\n", b"y\n"]
    assert b.time_left() is None
    b.feed(b"z")
    clock.now = 16.0
    b.feed(b"\nw")  # 'z\n' is cut at once; 'w' is pending from now
    assert b.time_left() is None
    b.feed(b"\n")
    assert len(b) == 0


def test_flush_keeps_partial_line_and_restarts_age() -> None:
    clock = FakeClock(0.0)
    b = Batcher(BatchLimits(max_lines=100, max_delay=1.0), clock=clock)
    b.feed(b"a\nb")
    clock.now = 5.0
    assert b.flush() == b"a\n"
    b.feed(b"\n")
    assert b.time_left() == pytest.approx(1.0)  # the age of 'b' counts from the flush


@settings(max_examples=300, deadline=None)
@given(data=streams, start=st.integers(0, 20), n=st.integers(1, 30))
def test_past_nth_newline_finds_the_exact_line(data: bytes, start: int, n: int) -> None:
    from logmr.ship.batcher import _past_nth_newline

    buf = bytearray(data)
    start = min(start, len(buf))
    found = buf.count(b"\n", start)
    if found < n:
        return
    end = _past_nth_newline(buf, start, len(buf), n, found)
    # the oracle: the first n lines after start, split out one by one
    assert end == start + sum(len(line) + 1 for line in bytes(buf[start:]).split(b"\n")[:n])


@settings(max_examples=300, deadline=None)
@given(data=streams, lim=limits, sizes=chunk_sizes)
def test_counted_batches_say_how_many_lines_they_hold(data: bytes, lim: BatchLimits,
                                                      sizes: list[int]) -> None:
    batcher = Batcher(lim, clock=FakeClock())
    got: list[tuple[bytes, int]] = []
    for i in range(0, len(data), sizes[0]):
        got += batcher.feed_counted(data[i:i + sizes[0]])
    got += [batcher.flush_counted(), batcher.flush_counted(final=True)]
    assert b"".join(batch for batch, _ in got) == data
    for batch, lines in got:  # the oracle: lines counted the plain way
        assert lines == batch.count(b"\n") + (0 if batch.endswith(b"\n") or not batch else 1)
