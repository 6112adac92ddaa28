"""The reduce by ranges of hashes (:mod:`logmr.reduce.ranges`): read whole here or split
into the parts of a partitioned reduce (each part through the wire, as a reduce job gets
it), it gives what a full merge of everything gives.

The sources are in memory and answer with the nodes' own code (``select`` and ``hash_in``,
as ``report_rest`` does); a real cluster runs the reduce jobs in
``tests/integration/test_reduce_rounds.py``."""

from __future__ import annotations

import random
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr import wire
from logmr.errors import LogmrError
from logmr.mapfn.partial import hash_in, key_hash, merge_tables, ranked, select
from logmr.reduce.clicks import session_stats
from logmr.reduce.ranges import (
    PAGES,
    Click,
    RangeResult,
    RangeWork,
    TableHeld,
    combine,
    result_of,
    result_to_wire,
    run,
    split,
    work_of,
    work_to_wire,
)

NAME = "hosts"
CLICK = Click(timeout=1800, path_len=3, transitions=b"/u1", funnel=(b"/u0", b"/u1"))


class Sources:
    """What each source kept back: a hosts table, visitor hashes, page views."""

    def __init__(self, tables: dict[str, pl.DataFrame], visitors: dict[str, pl.Series],
                 pages: dict[str, pl.DataFrame]) -> None:
        self.tables, self.visitors, self.pages = tables, visitors, pages
        self.asked: list[dict[str, dict[str, Any]]] = []

    def fetch(self, requests: dict[str, dict[str, Any]]) -> Any:
        self.asked.append(requests)
        out: dict[str, dict[str, Any]] = {}
        for src, request in requests.items():
            got: dict[str, Any] = {"tables": {
                name: select(self.tables[src], name, asked)
                for name, asked in request.get("tables", {}).items()}}
            if "visitors" in request:
                got["visitors"] = self.visitors[src].to_frame("vh").filter(
                    hash_in("vh", *request["visitors"])).to_series()
            if "pages" in request:
                got["pages"] = self.pages[src].filter(hash_in("visitor", *request["pages"]))
            out[src] = got
        return lambda: out


def hosts(rows: list[tuple[bytes, int]]) -> pl.DataFrame:
    """A hosts table from (key, hits) rows, one sketch hash per row."""
    frame = pl.DataFrame({"k": [k for k, _ in rows], "hits": [n for _, n in rows]},
                         schema={"k": pl.Binary, "hits": pl.Int64})
    return frame.group_by("k").agg(pl.col("hits").sum()).with_columns(
        (pl.col("hits") * 10).alias("bytes"),
        pl.concat_list((pl.col("hits") * 7919).cast(pl.Int64)).alias("kmv")).sort("k")


def views(rnd: random.Random, count: int, visitors: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"visitor": [rnd.choice(visitors) for _ in range(count)],
                         "ts": [rnd.randrange(0, 20_000) for _ in range(count)],
                         "url": [f"/u{int(4 * rnd.random() ** 2)}".encode()
                                 for _ in range(count)]}, schema=PAGES)


def through_wire(work: RangeWork) -> RangeWork:
    request = wire.pack_request(wire.MapRequest("reduce", {"work": work_to_wire(work)}))
    return work_of(wire.unpack_request(request).args["work"])


def answered(result: RangeResult) -> RangeResult:
    return result_of(wire.unpack_result(wire.pack_result(result_to_wire(result))))


def rows(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    return sorted((r[0], r[1], r[2], tuple(sorted(r[3]))) for r in frame.iter_rows())


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 12),
       st.sampled_from([7, 60, 100_000]), st.randoms(use_true_random=False))
def test_any_split_over_sources_and_parts_gives_the_full_merge(
        nsources: int, parts: int, k: int, bucket_rows: int, rnd: random.Random) -> None:
    people = [rnd.randrange(1 << 63) for _ in range(rnd.randrange(1, 80))]
    keys = [f"10.0.{i}.1".encode() for i in range(rnd.randrange(1, 300))]
    names = [f"s{i}" for i in range(nsources)]
    tables = {s: hosts([(rnd.choice(keys), rnd.randrange(1, 4))
                        for _ in range(rnd.randrange(0, 200))]) for s in names}
    seen = {s: pl.Series("vh", rnd.sample(people, rnd.randrange(0, len(people) + 1)),
                         dtype=pl.Int64) for s in names}
    pages = {s: views(rnd, rnd.randrange(0, 150), people) for s in names}
    inline_table = hosts([(rnd.choice(keys), 1) for _ in range(rnd.randrange(0, 40))])
    inline_seen = pl.Series("vh", rnd.sample(people, rnd.randrange(0, len(people) + 1)),
                            dtype=pl.Int64)
    inline_pages = views(rnd, rnd.randrange(0, 60), people)
    work = RangeWork(tables={NAME: TableHeld(NAME, k, sum(t.height for t in tables.values()),
                                             names, inline_table)},
                     visitors={s: max(1, seen[s].len()) for s in names},
                     visitors_inline=inline_seen,
                     pages={s: max(1, pages[s].height) for s in names},
                     pages_inline=inline_pages, click=CLICK)
    sources = Sources(tables, seen, pages)
    whole = run(work, sources.fetch, bucket_rows)
    pieces = [answered(run(through_wire(p), sources.fetch, bucket_rows))
              for p in split(work, parts)]
    parted = combine(pieces, work)
    truth = ranked(NAME, merge_tables(NAME, [*tables.values(), inline_table]), k)
    every_visitor = pl.concat([*seen.values(), inline_seen]).n_unique()
    every_view = pl.concat([*pages.values(), inline_pages])
    sessions = session_stats(every_view, CLICK.timeout, CLICK.path_len, CLICK.transitions,
                             CLICK.funnel).to_partial()
    for got in (whole, parted):
        assert rows(ranked(NAME, got.tables[NAME], k)) == rows(truth)
        assert got.visitors == every_visitor
        assert got.stats is not None and got.stats.to_partial() == sessions


def test_a_part_asks_only_for_ranges_inside_its_span() -> None:
    table = hosts([(f"10.1.{i}.1".encode(), 1) for i in range(5000)])
    sources = Sources({"a": table}, {"a": pl.Series("vh", [], dtype=pl.Int64)},
                      {"a": pl.DataFrame(schema=PAGES)})
    work = RangeWork(tables={NAME: TableHeld(NAME, 5, table.height, ["a"])})
    first, second = split(work, 2)
    got = run(first, sources.fetch, bucket_rows=500)
    spans = [r["a"]["tables"][NAME]["hashes"] for r in sources.asked]
    assert len(spans) == 5 and all(first.lo <= lo and hi <= second.lo for lo, hi in spans)
    hashes = table.select(key_hash()).to_series()
    assert got.tables[NAME].height == 5
    assert all(h < second.lo for h in got.tables[NAME].select(key_hash()).to_series())
    assert hashes.min() < second.lo <= hashes.max()  # both halves hold keys


@pytest.mark.parametrize("change", [
    {"span": [5, 5]}, {"span": [-1, None]}, {"span": [0, (1 << 63) + 1]},
    {"tables": {"../x": {"k": 1, "rows": 1, "sources": ["a"], "inline": None}}},
    {"tables": {NAME: {"k": 0, "rows": 1, "sources": ["a"], "inline": None}}},
    {"tables": {NAME: {"k": 1, "rows": 1, "sources": [], "inline": None}}},
    {"visitors": {"held": {"a": -1}, "inline": None}},
    {"pages": {"held": {}, "inline": b"not arrow"}},
    {"click": [1800, 0, None, []]},
])
def test_a_malformed_reduce_request_is_refused_in_one_line(change: dict[str, Any]) -> None:
    good = work_to_wire(RangeWork(tables={NAME: TableHeld(NAME, 3, 10, ["a"])},
                                  visitors={"a": 4}, click=CLICK))
    work_of(good)
    with pytest.raises(LogmrError, match="malformed reduce request"):
        work_of({**good, **change})
