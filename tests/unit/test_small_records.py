"""A node frames its small records a batch at a time (logmr.store.mapjobs._Small): the
report is the one each record framed alone gives, the first time and from the cache, with
a --grep filter too, over records of two formats (two sets of columns)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from logmr import wire
from logmr.client.report import finalize
from logmr.mapfn.agents import is_bot, is_static
from logmr.mapfn.aggregate import partial_of
from logmr.mapfn.frames import concat, record_frame
from logmr.mapfn.partial import Merged
from logmr.mapfn.spec import CLICK, PANELS, Filters, ReportSpec
from logmr.store import mapjobs
from logmr.store.node import NodeStore
from tests.cluster import HACKERS

SPEC = ReportSpec(reports=(*PANELS, *(c for c in CLICK if c not in ("transitions", "funnel"))),
                  limit=30)


class _Job:
    def send_data(self, data: bytes) -> None:
        self.pages = getattr(self, "pages", []) + [wire.unpack_frame(data)]

    def send_status(self, done: int, total: int) -> None:
        pass


def report(store: NodeStore, spec: ReportSpec) -> dict[str, Any]:
    job = _Job()
    answer = mapjobs.map_report(store, job, spec.to_args(), 1e18)  # type: ignore[arg-type]
    merged = Merged()
    for pages in getattr(job, "pages", []):
        merged.add_pages(pages)
    from logmr.mapfn.partial import from_wire

    merged.add(from_wire(answer))
    data = finalize(merged, spec)
    data["summary"].pop("nodes")
    return data


def one_by_one(store: NodeStore, spec: ReportSpec) -> dict[str, Any]:
    """The report with every record framed alone (what the node did before)."""
    import polars as pl

    from logmr.mapfn.aggregate import prepared
    from logmr.mapfn.grep import GrepQuery, matching_spans

    parts, bad = [], 0
    for _, records in store.records():
        for record in records:
            frame, b = record_frame(record.columns(), record.ts())
            if spec.filters.grep is not None:
                keep = [i for i, _, _ in matching_spans(record.lines(),
                                                        GrepQuery(spec.filters.grep).compile())]
                frame = frame.filter(pl.col("line").is_in(keep))
            parts.append(frame)
            bad += b
    merged = Merged()
    merged.add(partial_of(prepared(concat(parts), spec, is_bot), bad, spec, is_bot, is_static))
    data = finalize(merged, spec)
    data["summary"].pop("nodes")
    return data


@pytest.mark.parametrize("grep", [None, b"GET /"])
def test_small_records_framed_together_give_the_same_report(tmp_path: Path,
                                                            grep: bytes | None) -> None:
    store = NodeStore(str(tmp_path), node_id="n1")
    lines = HACKERS.read_bytes().splitlines(keepends=True)
    rnd = random.Random(3)
    start = 0
    while start < len(lines):  # batches of varied sizes: records of 1 to ~1,500 lines
        size = rnd.choice([1, 5, 40, 300, 1500])
        blob = b"".join(lines[start:start + size])
        if rnd.random() < 0.3:  # a second format: one more column (%D)
            blob = b"".join(ln.rstrip(b"\n") + b" %d\n" % rnd.randrange(9999)
                            for ln in lines[start:start + size])
            fmt = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %D'
        else:
            fmt = "combined"
        store.store(wire.Batch(f"b{start}", "web1", fmt, blob + b"garbage line\n"))
        start += size
    spec = ReportSpec(reports=SPEC.reports, limit=30, filters=Filters(grep=grep))
    want = one_by_one(store, spec)
    assert report(store, spec) == want  # framed together, then cut for the cache
    assert report(store, spec) == want  # from the cache
    store.close()
