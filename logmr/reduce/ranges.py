"""The reduce of what the sources kept back, range by range of 63-bit hashes.

A node that holds too much of a report to send it whole keeps it in its spool, cut by
hash (:mod:`logmr.store.spool`): the tables too flat for the three rounds of top-k (cut by
the hash of their keys), the visitor hashes, the page views (cut by visitor hash). What
lies in one range of hashes is merged exactly on its own, whatever lies in the others:

- a table: each of its keys is in one range, so a range's rows are merged and cut to its
  top k, and the top k of all ranges together is the top k of the table;
- distinct visitors: the distinct hashes of each range add up;
- click analysis: all of a visitor's page views are in the range of its hash, so each range
  is sessionized on its own, and the counts add up.

:class:`RangeWork` says what to read over one span of hashes. :func:`run` reads it a range
of about ``bucket_rows`` rows at a time, asking every source for the next range while it
merges this one. The client runs it over the whole span when what was kept back fits in its
memory. Otherwise it splits the span (:func:`split`) and sends each part to a node as a
reduce job (``logmr.reduce``, :mod:`logmr.client.rounds`), then adds up what they return
(:func:`combine`): each part is the same computation, wherever it runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from logmr import wire
from logmr.errors import LogmrError
from logmr.mapfn.partial import hash_in, key_hash, merge_tables, ranked
from logmr.mapfn.sessions import SessionStats

# source -> request in, source -> answer out: {"tables": {name: frame}, "visitors": Series,
# "pages": frame}
Answers = dict[str, dict[str, Any]]
# sends the requests at once and returns what waits for the answers
Fetch = Callable[[dict[str, dict[str, Any]]], Callable[[], Answers]]
BUCKET_ROWS = 250_000  # rows of one range: of a table, of visitor hashes, of page views
HASHES = 1 << 63  # the hashes are in [0, 2**63)
_NAME = re.compile(r"[a-z_]{1,40}")  # the names of report tables
PAGES = {"visitor": pl.Int64, "ts": pl.Int64, "url": pl.Binary}


def hash_ranges(count: int, lo: int = 0, hi: int | None = None
                ) -> list[tuple[int, int | None]]:
    """``count`` ranges [low, high) of about the same size that cut [lo, hi) in order (a
    high of None: no bound)."""
    top = HASHES if hi is None else hi
    lows = [lo + (top - lo) * i // count for i in range(count)]
    highs: list[int | None] = [*lows[1:], hi]
    return list(zip(lows, highs, strict=False))  # no range for a count of 0


@dataclass
class TableHeld:
    """A table some sources kept back: its top ``k`` is wanted; ``rows`` is how many rows
    they kept in all; ``inline`` is what other sources sent whole, in this span."""

    name: str
    k: int
    rows: int
    sources: list[str]
    inline: pl.DataFrame | None = None


@dataclass(frozen=True)
class Click:
    """How page views are cut into sessions and counted."""

    timeout: int
    path_len: int = 5
    transitions: bytes | None = None
    funnel: tuple[bytes, ...] = ()


@dataclass
class RangeWork:
    """What to reduce over the span [lo, hi) of hashes."""

    lo: int = 0
    hi: int | None = None
    tables: dict[str, TableHeld] = field(default_factory=dict)
    visitors: dict[str, int] = field(default_factory=dict)  # source -> hashes kept back
    visitors_inline: pl.Series = field(
        default_factory=lambda: pl.Series("vh", [], dtype=pl.Int64))  # distinct, sent whole
    pages: dict[str, int] = field(default_factory=dict)  # source -> page views kept back
    pages_inline: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PAGES))
    click: Click | None = None  # None: no click analysis asked for

    @property
    def share(self) -> float:
        """The part of all hashes the span covers."""
        return ((HASHES if self.hi is None else self.hi) - self.lo) / HASHES

    @property
    def held(self) -> bool:
        """True when some source kept something back for these ranges."""
        return bool(self.tables or self.visitors or self.pages)

    def sources(self) -> list[str]:
        """Every source this work asks."""
        names = {s for t in self.tables.values() for s in t.sources}
        return sorted(names | set(self.visitors) | set(self.pages))


@dataclass
class RangeResult:
    """The reduce of a span: each table's top k, the distinct visitors, the session counts."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    visitors: int = 0
    stats: SessionStats | None = None


def _count(rows: float, bucket_rows: int) -> int:
    return max(1, math.ceil(rows / bucket_rows))


def run(work: RangeWork, send: Fetch, bucket_rows: int = BUCKET_ROWS,
        progress: Callable[[int, int], None] | None = None) -> RangeResult:
    """Reduce ``work`` a range at a time (``send`` asks the sources; ``progress`` hears
    ranges done of ranges to read)."""
    out = RangeResult()
    share = work.share
    tables = {name: hash_ranges(_count(t.rows * share, bucket_rows), work.lo, work.hi)
              for name, t in work.tables.items()}
    inline = work.visitors_inline
    visitor_count = _count(sum(work.visitors.values()) * share + inline.len(), bucket_rows) \
        if work.visitors else 0
    visitor_ranges = hash_ranges(visitor_count, work.lo, work.hi)
    rounds = max([visitor_count, *(len(r) for r in tables.values())])
    page_count = 0
    if work.click is not None:
        page_count = _count(work.pages_inline.height + sum(work.pages.values()) * share,
                            bucket_rows) if work.pages else 1
    page_ranges = hash_ranges(page_count, work.lo, work.hi)
    done, total = 0, rounds + (page_count if work.pages else 0)

    def ask(requests: dict[str, dict[str, Any]]) -> Callable[[], Answers]:
        return send(requests) if requests else dict

    def requests(i: int) -> dict[str, dict[str, Any]]:
        asks: dict[str, dict[str, Any]] = {}
        if i < visitor_count:
            for src in work.visitors:
                asks.setdefault(src, {})["visitors"] = list(visitor_ranges[i])
        for name, ranges in tables.items():
            if i < len(ranges):
                for src in work.tables[name].sources:
                    asks.setdefault(src, {}).setdefault("tables", {})[name] = {
                        "hashes": list(ranges[i])}
        return asks

    out.visitors = 0 if work.visitors else inline.len()
    pending = ask(requests(0)) if rounds else dict
    for i in range(rounds):
        answers = pending()
        if i + 1 < rounds:
            pending = ask(requests(i + 1))  # the sources cut the next range meanwhile
        if i < visitor_count:
            lo, hi = visitor_ranges[i]
            parts = [a["visitors"] for a in answers.values() if "visitors" in a]
            parts.append(inline.to_frame("vh").filter(hash_in("vh", lo, hi)).to_series())
            out.visitors += pl.concat(parts).n_unique()
        for name, ranges in tables.items():
            if i < len(ranges):
                _fold_table(out, work.tables[name], ranges[i], answers)
        done += 1
        if progress is not None:
            progress(done, total)
    if work.click is not None:
        out.stats = _sessions(work, page_ranges, ask, progress, done, total)
    return out


def _fold_table(out: RangeResult, table: TableHeld, span: tuple[int, int | None],
                answers: Answers) -> None:
    """Fold in one range of a table from every source: merged exactly, cut to the top k."""
    name = table.name
    frames = [a["tables"][name] for a in answers.values() if name in a.get("tables", {})]
    if table.inline is not None:
        frames.append(table.inline.filter(hash_in(key_hash(), *span)))
    if name in out.tables:
        frames.append(out.tables[name])  # keys of other ranges: merging leaves them be
    out.tables[name] = ranked(name, merge_tables(name, frames), table.k)


def _sessions(work: RangeWork, ranges: list[tuple[int, int | None]],
              ask: Callable[[dict[str, dict[str, Any]]], Callable[[], Answers]],
              progress: Callable[[int, int], None] | None, done: int, total: int
              ) -> SessionStats:
    from logmr.reduce.clicks import session_stats

    assert work.click is not None
    click = work.click
    stats: SessionStats | None = None
    pending = ask({src: {"pages": list(ranges[0])} for src in work.pages})
    for i, (lo, hi) in enumerate(ranges):
        answers = pending()
        if i + 1 < len(ranges):
            pending = ask({src: {"pages": list(ranges[i + 1])} for src in work.pages})
        frames = [work.pages_inline if len(ranges) == 1 and work.share == 1
                  else work.pages_inline.filter(hash_in("visitor", lo, hi))]
        frames += [a["pages"] for a in answers.values() if "pages" in a]
        part = session_stats(pl.concat(frames), click.timeout, click.path_len,
                             click.transitions, click.funnel)
        stats = part if stats is None else stats.merge(part)
        if work.pages:
            done += 1
            if progress is not None:
                progress(done, total)
    assert stats is not None
    return stats


def split(work: RangeWork, count: int) -> list[RangeWork]:
    """``work`` cut into ``count`` spans of about the same share of hashes, each with what
    was sent whole in its span."""
    out = []
    for lo, hi in hash_ranges(count, work.lo, work.hi):
        tables = {name: TableHeld(
            name, t.k, t.rows, t.sources,
            None if t.inline is None else t.inline.filter(hash_in(key_hash(), lo, hi)))
            for name, t in work.tables.items()}
        visitors = work.visitors_inline.to_frame("vh").filter(hash_in("vh", lo, hi))
        out.append(RangeWork(lo, hi, tables, dict(work.visitors), visitors.to_series(),
                             dict(work.pages),
                             work.pages_inline.filter(hash_in("visitor", lo, hi)),
                             work.click))
    return out


def combine(parts: list[RangeResult], work: RangeWork) -> RangeResult:
    """The reduce of a span from the reduces of the spans that cut it (:func:`split`)."""
    out = RangeResult(visitors=sum(p.visitors for p in parts))
    for name, table in work.tables.items():
        frames = [p.tables[name] for p in parts if name in p.tables]
        out.tables[name] = ranked(name, merge_tables(name, frames), table.k)
    for part in parts:
        if part.stats is not None:
            out.stats = part.stats if out.stats is None else out.stats.merge(part.stats)
    return out


# -- on the wire (the request and answer of a reduce job) ---------------------------------

def work_to_wire(work: RangeWork) -> dict[str, Any]:
    """``work`` as msgpack-able data; frames as Arrow IPC (see :func:`work_of`)."""
    click = work.click
    return {
        "span": [work.lo, work.hi],
        "tables": {name: {"k": t.k, "rows": t.rows, "sources": t.sources,
                          "inline": None if t.inline is None else wire.pack_frame(t.inline)}
                   for name, t in work.tables.items()},
        "visitors": {"held": work.visitors,
                     "inline": wire.pack_frame(work.visitors_inline.to_frame("vh"))},
        "pages": {"held": work.pages, "inline": wire.pack_frame(work.pages_inline)},
        "click": None if click is None else [click.timeout, click.path_len,
                                             click.transitions, list(click.funnel)],
    }


def _bad(what: str) -> LogmrError:
    return LogmrError(f"malformed reduce request: {what}")


def _counts(value: Any, what: str) -> dict[str, int]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and type(v) is int and v >= 0 for k, v in value.items()):
        raise _bad(f"{what} must map sources to counts")
    return value


def _frame(payload: Any, what: str, columns: dict[str, Any] | None = None) -> pl.DataFrame:
    try:
        frame: pl.DataFrame = wire.unpack_frame(payload)
    except Exception:  # noqa: BLE001 - whatever Arrow makes of bad bytes, it is one answer
        raise _bad(f"{what} is not an Arrow frame") from None
    if columns is not None and dict(frame.schema) != columns:
        raise _bad(f"{what} must have the columns {', '.join(columns)}")
    return frame


def work_of(data: Any) -> RangeWork:
    """A :class:`RangeWork` off the wire; a malformed one is a :class:`LogmrError`."""
    if not isinstance(data, dict):
        raise _bad("not a map")
    span = data.get("span")
    if not (isinstance(span, list) and len(span) == 2 and type(span[0]) is int
            and 0 <= span[0] < HASHES
            and (span[1] is None or (type(span[1]) is int and span[0] < span[1] <= HASHES))):
        raise _bad("span must be [low, high] in [0, 2**63]")
    tables = {}
    for name, t in (data.get("tables") or {}).items():
        if not (isinstance(name, str) and isinstance(t, dict) and type(t.get("k")) is int
                and t["k"] > 0 and type(t.get("rows")) is int and t["rows"] >= 0
                and isinstance(t.get("sources"), list)
                and all(isinstance(s, str) for s in t["sources"]) and t["sources"]):
            raise _bad(f"cannot read the table {name!r}")
        if not _NAME.fullmatch(name):
            raise _bad(f"no table is named {name!r}")
        inline = None if t.get("inline") is None else _frame(t["inline"], f"table {name}")
        tables[name] = TableHeld(name, t["k"], t["rows"], list(t["sources"]), inline)
    visitors, pages = data.get("visitors") or {}, data.get("pages") or {}
    if not isinstance(visitors, dict) or not isinstance(pages, dict):
        raise _bad("visitors and pages must be maps")
    seen = _frame(visitors["inline"], "visitors", {"vh": pl.Int64}).to_series() \
        if visitors.get("inline") is not None else pl.Series("vh", [], dtype=pl.Int64)
    views = _frame(pages["inline"], "pages", PAGES) if pages.get("inline") is not None \
        else pl.DataFrame(schema=PAGES)
    click = data.get("click")
    if click is not None:
        if not (isinstance(click, list) and len(click) == 4 and type(click[0]) is int
                and type(click[1]) is int and click[1] > 0
                and (click[2] is None or isinstance(click[2], bytes))
                and isinstance(click[3], list) and all(isinstance(s, bytes) for s in click[3])):
            raise _bad("click must be [timeout, path length, transitions url, funnel]")
        click = Click(click[0], click[1], click[2], tuple(click[3]))
    return RangeWork(span[0], span[1], tables, _counts(visitors.get("held") or {}, "visitors"),
                     seen, _counts(pages.get("held") or {}, "pages"), views, click)


def result_to_wire(result: RangeResult) -> dict[str, Any]:
    """``result`` as msgpack-able data (see :func:`result_of`)."""
    return {"tables": {name: wire.pack_frame(f) for name, f in result.tables.items()},
            "visitors": result.visitors,
            "stats": None if result.stats is None else result.stats.to_partial()}


def result_of(data: dict[str, Any]) -> RangeResult:
    """A :class:`RangeResult` off the wire."""
    tables = data.get("tables")
    if not isinstance(tables, dict) or type(data.get("visitors")) is not int:
        raise LogmrError("malformed reduce answer: it needs tables and visitors")
    stats = data.get("stats")
    return RangeResult({name: _frame(f, f"table {name}") for name, f in tables.items()},
                       data["visitors"],
                       None if stats is None else SessionStats.from_partial(stats))
