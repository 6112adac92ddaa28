"""Partial reports merge associatively and commutatively: the result never depends on how
lines were spread over nodes or in which order the nodes answered."""

from __future__ import annotations

import random
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.mapfn import aggregate
from logmr.mapfn.agents import classify_agent, is_static
from logmr.mapfn.aggregate import Combiner, page_stream
from logmr.mapfn.frames import record_frame
from logmr.mapfn.parse import parse_batch
from logmr.mapfn.partial import Merged, fold, merge_tables
from logmr.mapfn.spec import CLICK, KMV, PANELS, ReportSpec
from tests.cluster import HACKERS

SPEC = ReportSpec(reports=(*PANELS, *(c for c in CLICK if c not in ("transitions", "funnel"))),
                  limit=50)
LINES = HACKERS.read_bytes().splitlines(keepends=True)[:600]


def _is_bot(ua: bytes) -> bool:
    return classify_agent(ua).bot is not None


def partial_of(lines: list[bytes]) -> dict[str, Any]:
    parsed = parse_batch(b"".join(lines), "combined")
    frame, bad = record_frame(parsed.columns, parsed.ts)
    return aggregate.partial_of(frame, bad, SPEC, _is_bot, is_static)


def finalize(partials: list[dict[str, Any]]) -> dict[str, Any]:
    from logmr.client.report import finalize as shape

    merged = Merged()
    for p in partials:
        merged.add(p)
    data = shape(merged, SPEC)
    data["summary"].pop("nodes")
    return data


WHOLE = finalize([partial_of(LINES)])


def crowd(n: int = 2000) -> list[bytes]:
    """Lines of ~1,000 visitors over four URLs: every URL row has more visitors than a
    sketch keeps (KMV), so merged rows are estimates and the trimming is exercised."""
    rnd = random.Random(7)
    agents = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "curl/8.5.0",
              "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1"]
    out = []
    for i in range(n):
        ip = f"10.0.{rnd.randrange(4)}.{rnd.randrange(250)}"
        url = rnd.choice(["/a", "/b", "/c", "/d?x=1"])
        status = rnd.choice([200, 200, 200, 404, 500])
        out.append(f'{ip} - - [20/May/2015:10:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
                   f'"GET {url} HTTP/1.1" {status} {rnd.randrange(100, 5000)} "-" '
                   f'"{rnd.choice(agents)}"\n'.encode())
    return out


CROWD = crowd()
WHOLE_CROWD = finalize([partial_of(CROWD)])


def test_the_crowd_overflows_the_sketches() -> None:
    rows = WHOLE_CROWD["top_urls"]
    assert len(rows) == 4 and all(not row["visitors_exact"] for row in rows)
    assert WHOLE_CROWD["summary"]["unique_visitors"] > 4 * KMV  # the summary stays exact


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["sample", "crowd"]),
       st.lists(st.integers(1, 599), min_size=1, max_size=5, unique=True),
       st.randoms(use_true_random=False))
def test_any_split_in_any_order_gives_the_same_report(which: str, cuts: list[int],
                                                      rnd: random.Random) -> None:
    lines, whole = (LINES, WHOLE) if which == "sample" else (CROWD, WHOLE_CROWD)
    bounds = [0, *sorted(cuts), len(lines)]
    shuffled = lines[:]
    rnd.shuffle(shuffled)  # lines spread over nodes in any order
    parts = [partial_of(shuffled[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    rnd.shuffle(parts)  # nodes answer in any order
    assert finalize(parts) == whole


def test_merging_merged_tables_is_associative() -> None:
    a, b, c = (partial_of(LINES[i::3]) for i in range(3))
    for name in a["tables"]:
        x, y, z = (p["tables"][name].frame for p in (a, b, c))
        left = merge_tables(name, [merge_tables(name, [x, y]), z])
        right = merge_tables(name, [x, merge_tables(name, [y, z])])
        assert canonical(left) == canonical(right), name
    assert finalize([a, b, c]) == WHOLE


def canonical(table: pl.DataFrame) -> list[tuple[Any, ...]]:
    """A table's rows in key order, sketches sorted."""
    return sorted(((row[0], *row[1:-1], tuple(sorted(row[-1]))) if isinstance(row[-1], list)
                   else row for row in table.iter_rows()), key=lambda r: repr(r[0]))


class _Folding(Combiner):
    FOLD_AT = 2  # merge held groupings all the time


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["sample", "crowd"]),
       st.lists(st.integers(1, 599), min_size=0, max_size=6, unique=True),
       st.booleans())
def test_a_nodes_combiner_over_any_chunking_gives_the_same_report(which: str, cuts: list[int],
                                                                  fold: bool) -> None:
    lines, whole = (LINES, WHOLE) if which == "sample" else (CROWD, WHOLE_CROWD)
    bounds = [0, *sorted(cuts), len(lines)]
    combiner = _Folding(SPEC) if fold else Combiner(SPEC)
    pages = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        parsed = parse_batch(b"".join(lines[a:b]), "combined")
        frame, bad = record_frame(parsed.columns, parsed.ts)
        combiner.add(frame, bad)
        pages.append(page_stream(frame, SPEC, _is_bot, is_static))
    partial = combiner.partial()
    # one row per key, whatever the number of chunks
    for sent in partial["tables"].values():
        assert sent.frame["k"].n_unique() == sent.frame.height
    partial["pages"] = pl.concat(pages)
    assert finalize([partial]) == whole


def test_folding_keeps_few_tables_and_merges_each_row_few_times() -> None:
    merged_rows = []

    def merge(held: list[list[int]]) -> list[int]:
        merged_rows.append(sum(len(h) for h in held))
        return [x for h in held for x in h]

    held: list[list[int]] = []
    for i in range(1000):
        fold(held, [i] * 10, merge)
        assert len(held) < 8 + 8 * 10  # a few per size class, never all of them
        sizes = [len(h) for h in held]
        assert all(a >= b // 2 for a, b in zip(sizes, sizes[1:], strict=False))
    assert sorted(x for h in held for x in h) == sorted(i for i in range(1000) for _ in range(10))
    assert sum(merged_rows) < 10_000 * 12  # each row merged O(log n) times, not O(n)


def test_a_sketch_cut_in_the_group_by_is_the_one_cut_after_it() -> None:
    """Both ways of cutting a key's visitor sketch to KMV hashes keep the same hashes, for
    keys with more than KMV visitors and fewer, on every grouping of the report."""
    parsed = parse_batch(b"".join(HACKERS.read_bytes().splitlines(keepends=True)),
                         "combined")
    frame = aggregate.complete(record_frame(parsed.columns, parsed.ts)[0])
    over = 0
    for few in (False, True):
        got = aggregate.group_dims(frame, SPEC, SPEC.dimensions if few else ())
        if not few:
            want = got
            continue
        for dim, table in got.items():
            def sketches(t: pl.DataFrame) -> dict[Any, tuple[int, ...]]:
                return {k: tuple(sorted(v)) for k, v in zip(t["k"], t["kmv"].to_list(),
                                                            strict=True)}
            assert sketches(table) == sketches(want[dim]), dim
            assert table.drop("kmv").sort("k").equals(want[dim].drop("kmv").sort("k"))
            over += sum(len(v) == KMV for v in table["kmv"].to_list())
    assert over  # some keys had more than KMV visitors, cut both ways
