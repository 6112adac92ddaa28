"""k-way merge of sorted row streams: the reduce step of grep.

Rows are ``[time, batch id, line index, ...]``; each stream is sorted by its first three
fields, which identify a line uniquely across the cluster. A line stored twice (a batch
redelivered to another node) shows up as two equal keys next to each other in the merge
and is printed once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any


def _key(row: list[Any]) -> tuple[Any, Any, Any]:
    return row[0], row[1], row[2]


def merge_sorted(streams: Iterable[Iterable[list[Any]]]) -> Iterator[list[Any]]:
    """Lazily merge sorted streams into one sorted stream without duplicate keys.

    >>> list(merge_sorted([[[1, "a", 0, "x"], [3, "a", 1, "y"]], [[2, "b", 0, "z"],
    ...                  [3, "a", 1, "y"]]]))
    [[1, 'a', 0, 'x'], [2, 'b', 0, 'z'], [3, 'a', 1, 'y']]
    """
    last: tuple[Any, Any, Any] | None = None
    for row in heapq.merge(*streams, key=_key):
        key = _key(row)
        if key != last:
            last = key
            yield row
