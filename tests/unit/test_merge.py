"""Unit tests of logmr.reduce.merge: the lazy k-way merge of sorted row streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.reduce.merge import merge_sorted

Key = tuple[int, str, int]


def row(key: Key) -> list[Any]:
    """A row as nodes send it; the payload follows from the key (a line stored twice)."""
    t, bid, idx = key
    return [t, bid, idx, f"host-{bid}", f"line {t} {bid} {idx}".encode()]


keys = st.tuples(st.integers(0, 5), st.sampled_from(["a", "b", "c"]), st.integers(0, 3))
streams = st.lists(st.lists(keys, max_size=12).map(sorted), max_size=5)


@settings(max_examples=300, deadline=None)
@given(streams)
def test_merge_is_sorted_concat_without_duplicate_keys(key_streams: list[list[Key]]) -> None:
    rows = [[row(k) for k in s] for s in key_streams]
    expected = [row(k) for k in sorted({k for s in key_streams for k in s})]
    assert list(merge_sorted(rows)) == expected


def test_docstring_example() -> None:
    got = list(merge_sorted([[[1, "a", 0, "x"], [3, "a", 1, "y"]],
                           [[2, "b", 0, "z"], [3, "a", 1, "y"]]]))
    assert got == [[1, "a", 0, "x"], [2, "b", 0, "z"], [3, "a", 1, "y"]]


def test_first_of_equal_keys_wins_and_rest_of_row_is_ignored() -> None:
    got = list(merge_sorted([[[1, "a", 0, "first"]], [[1, "a", 0, "second"]]]))
    assert got == [[1, "a", 0, "first"]]


def test_no_streams_and_empty_streams() -> None:
    assert list(merge_sorted([])) == []
    assert list(merge_sorted([[], []])) == []


def test_merge_is_lazy() -> None:
    pulled: list[int] = []

    def stream(start: int) -> Iterator[list[Any]]:
        for i in range(start, 1000, 2):
            pulled.append(i)
            yield [i, "b", 0]

    merged = merge_sorted([stream(0), stream(1)])
    assert [next(merged)[0] for _ in range(3)] == [0, 1, 2]
    assert len(pulled) <= 5
