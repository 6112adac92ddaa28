"""Partial reports merge associatively and commutatively: the result never depends on how
lines were spread over nodes or in which order the nodes answered."""

from __future__ import annotations

import random
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.mapfn.agents import classify_agent, is_static
from logmr.mapfn.frames import record_frame
from logmr.mapfn.parse import parse_batch
from logmr.mapfn.report import Combiner, map_report, page_stream
from logmr.mapfn.spec import CLICK, PANELS, ReportSpec
from logmr.reduce.report import Merged
from tests.cluster import HACKERS

SPEC = ReportSpec(reports=(*PANELS, *(c for c in CLICK if c not in ("transitions", "funnel"))),
                  limit=50)
LINES = HACKERS.read_bytes().splitlines(keepends=True)[:600]


def _is_bot(ua: bytes) -> bool:
    return classify_agent(ua).bot is not None


def partial_of(lines: list[bytes]) -> dict[str, Any]:
    parsed = parse_batch(b"".join(lines), "combined")
    frame, bad = record_frame(parsed.columns, parsed.ts)
    return map_report(frame, bad, SPEC, _is_bot, is_static)


def finalize(partials: list[dict[str, Any]]) -> dict[str, Any]:
    from logmr.report import finalize as shape

    merged = Merged()
    for p in partials:
        merged.add(p)
    data = shape(merged, SPEC)
    data["summary"].pop("nodes")
    return data


WHOLE = finalize([partial_of(LINES)])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, len(LINES) - 1), min_size=1, max_size=5, unique=True),
       st.randoms(use_true_random=False))
def test_any_split_in_any_order_gives_the_same_report(cuts: list[int],
                                                      rnd: random.Random) -> None:
    bounds = [0, *sorted(cuts), len(LINES)]
    shuffled = LINES[:]
    rnd.shuffle(shuffled)  # lines spread over nodes in any order
    parts = [partial_of(shuffled[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    rnd.shuffle(parts)  # nodes answer in any order
    assert finalize(parts) == WHOLE


def test_merging_merged_partials_is_associative() -> None:
    a, b, c = (partial_of(LINES[i::3]) for i in range(3))
    left = Merged()
    left.add(a)
    left.add(b)
    ab = left.to_partial()
    ab["pages"] = pl.concat([a["pages"], b["pages"]])
    assert finalize([ab, c]) == finalize([a, b, c]) == WHOLE


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, len(LINES) - 1), min_size=0, max_size=6, unique=True))
def test_a_nodes_combiner_over_any_chunking_gives_the_same_report(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(LINES)]
    combiner = Combiner(SPEC)
    pages = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        parsed = parse_batch(b"".join(LINES[a:b]), "combined")
        frame, bad = record_frame(parsed.columns, parsed.ts)
        combiner.add(frame, bad)
        pages.append(page_stream(frame, SPEC, _is_bot, is_static))
    partial = combiner.partial()
    # one row per key, whatever the number of chunks
    for rows in partial["dims"].values():
        assert len({row[0] for row in rows}) == len(rows)
    partial["pages"] = pl.concat(pages)
    assert finalize([partial]) == WHOLE
