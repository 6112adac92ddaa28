"""The exact distributed top-k and the range-by-range visitor count
(:mod:`logmr.reduce.topk`) against a full merge of every table.

The nodes here are in-memory sources that answer with the nodes' own code (``in_part`` for
the first answer, ``select`` for the rounds after it): only the transport is left out. A
real cluster runs the same rounds in ``tests/integration/test_reduce_rounds.py``."""

from __future__ import annotations

import random
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.mapfn.partial import Merged, Sent, in_part, merge_tables, ranked, select
from logmr.mapfn.spec import ReportSpec
from logmr.reduce.topk import reduce

NAME = "hosts"


def table(rows: dict[str, tuple[int, list[int]]]) -> pl.DataFrame:
    """A table from key -> (hits, visitor hashes); bytes are 10 per hit."""
    keys = sorted(rows)
    return pl.DataFrame({"k": pl.Series([k.encode() for k in keys], dtype=pl.Binary),
                         "hits": pl.Series([rows[k][0] for k in keys], dtype=pl.Int64),
                         "bytes": pl.Series([10 * rows[k][0] for k in keys], dtype=pl.Int64),
                         "kmv": pl.Series([rows[k][1] for k in keys],
                                          dtype=pl.List(pl.Int64))})


class Nodes:
    """Sources holding whole tables and visitor sets, answering as nodes do."""

    def __init__(self, tables: list[pl.DataFrame], visitors: list[list[int]], k: int,
                 inline_rows: int, inline_visitors: int) -> None:
        self.tables = {f"n{i}": t for i, t in enumerate(tables)}
        self.visitors = {f"n{i}": pl.Series("vh", v, dtype=pl.Int64).unique()
                         for i, v in enumerate(visitors)}
        self.k, self.inline_rows, self.inline_visitors = k, inline_rows, inline_visitors
        self.rows_moved = 0

    def merged(self) -> Merged:
        merged = Merged()
        for src, t in self.tables.items():
            sent = Sent(t) if t.height <= self.inline_rows else in_part(NAME, t, self.k)
            vis = self.visitors[src]
            held = vis.len() > self.inline_visitors
            merged.add({"summary": {"requests": int(t["hits"].sum()), "bytes": 0,
                                    "unparsed": 0, "t0": None, "t1": None,
                                    "visitors": vis.len()},
                        "visitors": None if held else vis, "tables": {NAME: sent}},
                       src, src)
            self.rows_moved += sent.frame.height
        return merged

    def fetch(self, requests: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for src, request in requests.items():
            got: dict[str, Any] = {"tables": {}}
            for name, asked in request.get("tables", {}).items():
                got["tables"][name] = select(self.tables[src], name, asked)
                self.rows_moved += got["tables"][name].height
            if "visitors" in request:
                lo, hi = request["visitors"]
                vis = self.visitors[src]
                got["visitors"] = vis.filter((vis >= lo) & (vis < hi)) if hi is not None \
                    else vis.filter(vis >= lo)
            out[src] = got
        return out


def truth(tables: list[pl.DataFrame], k: int) -> list[tuple[Any, ...]]:
    return rows_of(ranked(NAME, merge_tables(NAME, tables), k))


def rows_of(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    return [(r[0], r[1], r[2], tuple(sorted(r[3]))) for r in frame.iter_rows()]


def run(nodes: Nodes, k: int, bucket_rows: int = 250_000) -> tuple[list[tuple[Any, ...]], int]:
    reduced = reduce(nodes.merged(), ReportSpec(reports=(NAME,), limit=k),
                     lambda requests: lambda: nodes.fetch(requests), bucket_rows)
    return rows_of(ranked(NAME, reduced.tables[NAME], k)), reduced.visitors


def breaking(nodes: int = 4, k: int = 10) -> list[pl.DataFrame]:
    """On every node: k keys of its own with 100 hits, then key "x" with 95 (11th there),
    then a tail of keys seen once. Overall "x" has 95 * nodes hits: first by far."""
    out = []
    for n in range(nodes):
        rows = {f"own{n}-{i}": (100, [n * 1000 + i]) for i in range(k)}
        rows["x"] = (95, [7])
        rows.update({f"tail{n}-{i}": (1, [n * 100_000 + i]) for i in range(500)})
        out.append(table(rows))
    return out


def test_a_key_eleventh_on_every_node_is_first_overall() -> None:
    tables = breaking()
    naive = merge_tables(NAME, [ranked(NAME, t, 10) for t in tables])
    assert b"x" not in ranked(NAME, naive, 10)["k"].to_list()  # a naive top-k misses it
    nodes = Nodes(tables, [[1], [2], [3], [4]], k=10, inline_rows=20, inline_visitors=10)
    got, _ = run(nodes, 10)
    assert got == truth(tables, 10)
    assert got[0][:2] == (b"x", 380)
    assert nodes.rows_moved < sum(t.height for t in tables) / 4  # far from every row


def test_a_flat_table_is_read_range_by_range_with_the_same_result() -> None:
    rnd = random.Random(5)
    tables = [table({f"ip{rnd.randrange(20_000)}": (rnd.randrange(1, 3), [i])
                     for i in range(3000)}) for _ in range(3)]
    nodes = Nodes(tables, [[]] * 3, k=10, inline_rows=100, inline_visitors=0)
    got, _ = run(nodes, 10, bucket_rows=1000)  # too many rows for round two: ranges
    assert got == truth(tables, 10)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 12), st.integers(0, 400), st.integers(1, 60),
       st.sampled_from([5, 50, 100_000]), st.randoms(use_true_random=False))
def test_any_split_over_nodes_and_ranges_gives_the_full_sort(
        nodes: int, k: int, inline: int, keys: int, bucket_rows: int,
        rnd: random.Random) -> None:
    whole: list[tuple[str, int]] = []  # (key, visitor) per line
    for _ in range(rnd.randrange(1, 600)):
        whole.append((f"k{int(keys * rnd.random() ** 3)}", rnd.randrange(1 << 62)))  # skewed
    split: list[dict[str, tuple[int, list[int]]]] = [{} for _ in range(nodes)]
    visitors: list[list[int]] = [[] for _ in range(nodes)]
    for key, visitor in whole:
        n = rnd.randrange(nodes)
        hits, hashes = split[n].get(key, (0, []))
        split[n][key] = (hits + 1, sorted({*hashes, visitor})[:128])
        visitors[n].append(visitor)
    tables = [table(rows) for rows in split]
    got, count = run(Nodes(tables, visitors, k, inline, inline), k, bucket_rows)
    assert got == truth(tables, k)
    assert count == len({v for _, v in whole})


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 6), st.integers(1, 8), st.integers(0, 3), st.integers(2, 40),
       st.randoms(use_true_random=False))
def test_keys_close_to_the_bounds_are_never_missed(nodes: int, k: int, inline: int,
                                                   keys: int, rnd: random.Random) -> None:
    """Scores spread thinly over many nodes, close to each other: keys just under and
    just over every bound of the rounds."""
    split = [{f"k{i}": (hits, [i]) for i in range(keys)
              if (hits := rnd.choice([0, 0, 1, 2, 3, 4, 6, 8]))} for _ in range(nodes)]
    tables = [table(rows) for rows in split]
    got, _ = run(Nodes(tables, [[1]] * nodes, k, inline, 1), k)
    assert got == truth(tables, k)
