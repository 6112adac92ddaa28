"""The map jobs a storage node answers, over its own data (or a snapshot of it).

Each is looked up by name in :data:`MAP_JOBS` (nothing received is executed) and takes the
store, where to send what it finds, the request's arguments (checked here: they come off
the wire) and a deadline. The node runs the ones that cannot run away (listings, stats,
grep and report filters that cannot backtrack) in its own process; the others run apart,
in a process of their own, through :func:`run_apart`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import polars as pl

from logmr import wire
from logmr.errors import LogmrError
from logmr.jobs import Job as UserJob
from logmr.jobs import (
    as_on_the_wire,
    check_identity,
    lines_of,
    load_job,
    map_and_combine,
    reduce_pairs,
)
from logmr.mapfn import frames
from logmr.mapfn.agents import is_bot, is_static
from logmr.mapfn.aggregate import Combiner, page_stream, prepared
from logmr.mapfn.grep import GrepQuery, Row, count_records, due, grep_hour, matching_spans
from logmr.mapfn.partial import hash_in, in_part, key_hash, select, to_wire
from logmr.mapfn.pattern import runs_in_linear_time
from logmr.mapfn.spec import MAX_PATTERN, UNRANKED, ReportSpec
from logmr.store import columnar, segment, tokens
from logmr.store.node import NodeStore, Record, Snapshot
from logmr.store.repair import Catalog, Repairer
from logmr.store.reparse import Reparser
from logmr.store.runner import Reply
from logmr.store.spool import Spool, check_query
from logmr.timeutil import in_span


class _Adapter:
    """A Record seen through the fields grep needs."""

    __slots__ = ("_r", "batch_id", "host", "meta_part", "t0", "t1")

    def __init__(self, record: Any) -> None:
        self._r = record
        self.batch_id: str = record.meta.batch_id
        self.host: str = record.meta.host
        self.meta_part: int = record.meta.part
        self.t0: int = record.meta.t0
        self.t1: int = record.meta.t1

    def lines(self) -> bytes:
        return self._r.lines()  # type: ignore[no-any-return]

    def ts(self) -> Sequence[int]:
        return self._r.ts()  # type: ignore[no-any-return]


def _time_arg(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is not None and type(value) is not int:
        raise LogmrError(f"map argument {name} must be epoch seconds")
    return value


def grep_query(args: dict[str, Any]) -> GrepQuery:
    """The grep query a map request asks for (its fields checked: they come off the wire)."""
    pattern = args.get("pattern", b"")
    if isinstance(pattern, str):
        pattern = pattern.encode("utf-8", "surrogateescape")
    if not isinstance(pattern, bytes):
        raise LogmrError(f"map argument pattern must be bytes or text, not "
                         f"{type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise LogmrError(f"map argument pattern is {len(pattern)} bytes long; the most is "
                         f"{MAX_PATTERN}")
    return GrepQuery(pattern=pattern, fixed=bool(args.get("fixed")),
                     ignore_case=bool(args.get("ignore_case")), invert=bool(args.get("invert")))


def _record_keys(args: dict[str, Any], name: str) -> set[tuple[str, int]] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            isinstance(k, list | tuple) and len(k) == 2 and isinstance(k[0], str)
            and type(k[1]) is int for k in value):
        raise LogmrError(f"map argument {name} must be a list of [batch id, part]")
    return {(k[0], k[1]) for k in value}


def chosen_records(args: dict[str, Any], epoch: str | None = None
                   ) -> Callable[[Record], bool]:
    """Which records a query reads here: the client's plan says which to read (``only``) or
    which another node reads instead (``skip``), of those held when the node listed them
    (``upto``, its sequence number then: a copy that arrived since is read by its origin)."""
    skip, only = _record_keys(args, "skip"), _record_keys(args, "only")
    upto = args.get("upto")
    if upto is not None and type(upto) is not int:
        raise LogmrError("map argument upto must be a sequence number")
    if only is not None:  # records by name: the same across a restart
        return lambda r: (r.meta.batch_id, r.meta.part) in only
    if upto is not None and epoch is not None and args.get("epoch") != epoch:
        raise LogmrError("this node restarted after it listed its records; other nodes "
                         "read them")
    if upto is None:
        return (lambda r: (r.meta.batch_id, r.meta.part) not in skip) if skip else (
            lambda r: True)
    if skip:
        return lambda r: r.seq <= upto and (r.meta.batch_id, r.meta.part) not in skip
    return lambda r: r.seq <= upto


def map_grep(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float
             ) -> dict[str, Any]:
    """Stream matching rows, oldest first, in chunks; end with the count. With ``after``
    (a row key), only rows past it: a node taking over a stream another node broke off."""
    query = grep_query(args)
    rx = query.compile()
    since, until = _time_arg(args, "since"), _time_arg(args, "until")
    limit = args.get("limit")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise LogmrError("map argument limit must be a count of lines")
    count_only = bool(args.get("count_only"))
    after = args.get("after")
    if after is not None and not (isinstance(after, list) and len(after) == 3 and [
            type(x) for x in after] == [int, str, int]):
        raise LogmrError("map argument after must be [time, batch id, line]")
    wanted = chosen_records(args, store.epoch)
    words = tokens.pieces(query, rx)  # what a record's token filter must hold
    folds = tokens.folds(rx)
    skipped = 0
    total = 0
    per_record: list[tuple[str, int, int]] = []
    hours = list(store.records(since, until))
    held: list[Row] = []  # rows of records that reach past the hour read so far
    for done, (hour, records) in enumerate([*hours, (None, [])]):
        if time.monotonic() > deadline:
            raise LogmrError("map job exceeded its time budget and was stopped; narrow it "
                             "with --since/--until")
        # progress, and a sign of life for the client's idle timeout
        job.send_status(min(done, len(hours)), len(hours))
        chosen = [r for r in records if wanted(r)]
        metas = [_Adapter(r) for r in chosen if r.may_hold(words, folds)]
        skipped += len(chosen) - len(metas)
        if count_only:
            # per record, so that the client counts a batch stored on two nodes once
            per_record.extend((rec.batch_id, rec.meta_part, n) for rec, n in
                              count_records(metas, rx, query.invert, since, until) if n)
            continue
        # every line of this hour's records and of later ones is at or after ``hour``:
        # the rows held from before it go out first, in order
        rows, held = due(held, grep_hour(metas, rx, query.invert, since, until),
                                   hour)
        if after is not None:
            key = tuple(after)
            rows = [r for r in rows if (r[0], r[1], r[2]) > key]
        if limit is not None:
            rows = rows[: max(0, limit - total)]
        for chunk in wire.iter_chunks(iter(rows)):
            job.send_data(wire.pack_rows(chunk))
        total += len(rows)
        if limit is not None and total >= limit:
            break
    if count_only:
        return {"count": sum(n for _, _, n in per_record), "records": per_record,
                "skipped": skipped}
    return {"count": total, "skipped": skipped}


def map_records(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float,
                catalog: Catalog | None = None) -> dict[str, Any]:
    """[batch id, part, lines, t0, t1] of every record in the range: the client plans
    from these who reads what, so that a record held by several nodes counts once. With
    ``elsewhere`` (the live node ids), also what this node's catalog says the other
    nodes held in the range when last seen: what a query misses."""
    since, until = _time_arg(args, "since"), _time_arg(args, "until")
    upto = store.seq  # the listing is of the records held now; later ones wait for the next
    out: dict[str, Any] = {"upto": upto, "epoch": store.epoch,
                           "records": [] if args.get("catalog_only") else [
        [r.meta.batch_id, r.meta.part, r.meta.lines, r.meta.t0, r.meta.t1, int(r.copy)]
        for _, records in store.records(since, until) for r in records if r.seq <= upto]}
    live = args.get("elsewhere")
    if live is not None and catalog is not None:
        if not isinstance(live, list) or not all(isinstance(n, str) for n in live):
            raise LogmrError("map argument elsewhere must be a list of node ids")
        out["elsewhere"] = catalog.elsewhere(live, since, until)
    return out


def map_stats(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float,
              repairer: Repairer | None = None, reparser: Reparser | None = None
              ) -> dict[str, Any]:
    """What this node holds, and how its repair and its last re-parse go."""
    stats = store.stats()
    if repairer is not None:
        stats["repair"] = repairer.stats()
    if reparser is not None and reparser.progress is not None:
        stats["reparse"] = reparser.progress.answer()
    return stats


FRAME_SLOT = 4  # the cache slot of a record's report frame (segment parts are 0-3)


def record_frame_of(store: NodeStore, record: Record) -> tuple[pl.DataFrame, int]:
    """A record's report frame, built once and kept in the node's bounded cache."""
    return store.memo(record, FRAME_SLOT, lambda: _build_frame(record), _frame_size)


def _build_frame(record: Record) -> tuple[pl.DataFrame, int]:
    if record.meta.enc == 2:  # from the stored columns, with no Python per line
        built = columnar.report_frame(segment.decode_frame(record.loc, record.meta))
        if built is not None:
            return built
    return frames.record_frame(record.columns(), record.ts())


def _given(value: tuple[pl.DataFrame, int]) -> Callable[[], tuple[pl.DataFrame, int]]:
    return lambda: value


def _frame_size(value: tuple[pl.DataFrame, int]) -> int:
    # polars holds about twice its estimate for frames this small (measured)
    return 2 * int(value[0].estimated_size()) + 4096


CHUNK_ROWS = 100_000  # lines aggregated at a time: memory stays flat as the data grows
SMALL = 1000  # records of fewer lines are framed a batch at a time, not one by one


class _Small:
    """Small records not in the cache, framed together: one frame is built for many, then
    cut into each record's frame for the cache (a sparse log, a few lines an hour, makes
    one record per hour a batch spans: framed one by one, 25k records of 40 lines took 20 s
    a node, a frame's fixed cost)."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, ...], tuple[dict[str, list[Any]], list[int],
                                                 list[Record], list[int]]] = {}
        self.lines = 0

    def add(self, record: Record) -> None:
        columns = record.columns()
        names = tuple(sorted(columns))
        held, ts, records, starts = self.groups.setdefault(
            names, ({n: [] for n in names}, [], [], []))
        starts.append(len(ts))
        records.append(record)
        for name, values in columns.items():
            held[name].extend(values)
        ts.extend(record.ts())
        self.lines += len(ts) - starts[-1]

    def frames(self) -> Iterator[tuple[Record, pl.DataFrame, int, int]]:
        """Each record with its frame (its own line numbers), its unparsed lines and the
        bytes it holds; then empty again."""
        groups, self.groups, self.lines = self.groups, {}, 0
        for held, ts, records, starts in groups.values():
            frame, _ = frames.record_frame(held, ts)
            firsts = pl.Series(starts, dtype=pl.Int64)
            which = firsts.search_sorted(frame["line"].cast(pl.Int64), side="right") - 1
            frame = frame.with_columns(
                (pl.col("line").cast(pl.Int64) - firsts.gather(which)).cast(pl.Int32))
            bounds = which.search_sorted(pl.Series(range(len(records) + 1)), side="left")
            ends = [*starts[1:], len(ts)]
            row = 2 * frame.estimated_size() / max(frame.height, 1)
            for j, record in enumerate(records):
                # a slice shares the batch's buffers, which its estimated_size counts whole:
                # the cache is charged its share (the slices of a batch go in together)
                part = frame.slice(bounds[j], bounds[j + 1] - bounds[j])
                yield record, part, ends[j] - starts[j] - part.height, int(row * part.height)


class _Stored:
    """Records of columns not in the cache, framed together (see
    :func:`logmr.store.columnar.report_frames`: framed one by one, 4,000-line records cost
    about 2.6x as much, polars' fixed cost per operation)."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.lines = 0

    def add(self, record: Record) -> None:
        self.records.append(record)
        self.lines += record.meta.lines

    def frames(self) -> Iterator[tuple[Record, pl.DataFrame, int, int]]:
        """Each record with its frame, its unparsed lines and the bytes it holds; then
        empty again."""
        records, self.records, self.lines = self.records, [], 0
        stored = [segment.decode_frame(r.loc, r.meta) for r in records]
        for record, built in zip(records, columnar.report_frames(stored), strict=True):
            if built is None:  # strings that are not UTF-8: from the parsed columns
                frame, bad = frames.record_frame(record.columns(), record.ts())
                yield record, frame, bad, _frame_size((frame, bad))
            else:
                yield record, *built


def map_report(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float
               ) -> dict[str, Any]:
    """A partial report over this node's lines (see logmr.mapfn.aggregate), aggregated a
    chunk at a time and combined here. Click analysis page streams go out as WORK_DATA,
    or, when the client runs the rounds of :mod:`logmr.reduce.topk`, into the spool, for
    the client to fetch by ranges of visitors."""
    spec = ReportSpec.from_args(args)
    how = _how(args.get("reduce"))
    spool = Spool(store.spool_dir)
    if how is not _WHOLE:
        spool.reap()
    wanted = chosen_records(args, store.epoch)
    f = spec.filters
    rx = GrepQuery(f.grep).compile() if f.grep is not None else None
    combined = Combiner(spec)
    chunk: list[pl.DataFrame] = []
    rows = unparsed = 0
    pages_held = 0

    small = _Small()
    stored = _Stored()
    views: list[pl.DataFrame] = []  # page views not yet spooled

    def spool_views() -> None:
        nonlocal views
        if views:
            spool.put_cut(how["query"], "p", frames.concat(views), pl.col("visitor"),
                          pages_held)
            views = []

    def use(record: Record, frame: pl.DataFrame, bad: int) -> None:
        nonlocal rows, unparsed
        if rx is not None:
            keep = [i for i, _, _ in matching_spans(record.lines(), rx)]
            frame = frame.filter(pl.col("line").is_in(keep))
        chunk.append(frame)
        rows += frame.height
        unparsed += bad

    def take_batched() -> None:
        for record, frame, bad, size in [*small.frames(), *stored.frames()]:
            use(record, *store.memo(record, FRAME_SLOT, _given((frame, bad)),
                                    lambda _: size + 4096))  # noqa: B023 - called at once

    def flush() -> None:
        nonlocal chunk, rows, unparsed, pages_held
        take_batched()
        frame = prepared(frames.concat(chunk) if chunk else frames.empty_frame(), spec, is_bot)
        combined.add(frame, unparsed)
        if spec.click:
            pages = page_stream(frame, spec, is_bot, is_static)
            if pages.height and how is _WHOLE:
                job.send_data(wire.pack_frame(pages))
            elif pages.height:
                views.append(pages)
                pages_held += pages.height
                if sum(v.height for v in views) >= VIEWS_AT_ONCE:
                    spool_views()
        chunk, rows, unparsed = [], 0, 0

    hours = list(store.records(f.since, f.until))
    for done, (_hour, records) in enumerate(hours):
        if time.monotonic() > deadline:
            raise LogmrError("map job exceeded its time budget and was stopped; narrow it "
                             "with --since/--until")
        job.send_status(done, len(hours))
        for record in records:
            if (f.source_host is not None and record.meta.host != f.source_host) or (
                    not wanted(record)):
                continue
            if store.peek(record, FRAME_SLOT) is not None:
                use(record, *record_frame_of(store, record))
            elif record.meta.enc == 2:
                stored.add(record)
                if stored.lines >= CHUNK_ROWS:
                    take_batched()
            elif record.meta.lines < SMALL:
                small.add(record)
                if small.lines >= CHUNK_ROWS:
                    take_batched()
            else:
                use(record, *record_frame_of(store, record))
            if rows >= CHUNK_ROWS:
                flush()
    flush()
    spool_views()
    return answer_of(combined.partial(), spec, how, spool, pages_held)


VIEWS_AT_ONCE = 1_000_000  # page views a report holds before it spools them


# what a client sends whole when it does not say (the stock gearman CLI, an older client)
_WHOLE = {"rows": 1 << 62, "visitors": 1 << 62}


def _how(how: Any) -> dict[str, Any]:
    """How the client wants the answer (None: everything whole, in one answer)."""
    if how is None:
        return _WHOLE
    if not isinstance(how, dict) or not all(_is_int(how.get(n)) for n in ("rows", "visitors")):
        raise LogmrError("malformed report request: reduce must say rows and visitors")
    check_query(how.get("query"))
    frames.check_probe(how.get("probe"))
    return how


def answer_of(partial: dict[str, Any], spec: ReportSpec, how: dict[str, Any], spool: Spool,
              pages_held: int = 0) -> dict[str, Any]:
    """A node's partial for the wire: each table whole when it has at most ``rows`` keys
    (the client says how many), else its top rows with its bands and key count, the whole
    kept in the spool for the rounds that follow (likewise the visitor hashes; the page
    views, ``pages_held`` of them, were spooled as they came)."""
    query, kept = how.get("query"), pages_held > 0
    for name, sent in partial["tables"].items():
        if name in UNRANKED or sent.frame.height <= how["rows"] or query is None:
            continue
        spool.put_cut(query, f"t_{name}", sent.frame, key_hash())
        partial["tables"][name] = in_part(name, sent.frame, spec.limit)
        kept = True
    if partial["visitors"].len() > how["visitors"] and query is not None:
        spool.put_cut(query, "v", partial["visitors"].to_frame("vh"), pl.col("vh"))
        partial["visitors"] = None
        kept = True
    out = to_wire(partial)
    if pages_held:
        out["pages"] = pages_held
    if kept:
        out["spool"] = query
    return out


def _is_int(value: Any) -> bool:
    return type(value) is int and value >= 0


MAX_KEYS = 1_000_000  # keys asked for at once


def map_report_rest(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float
                    ) -> dict[str, Any]:
    """The rounds after a report's first: rows of the tables it kept (scoring at least a
    bound, of given keys, or in a range of key hashes), visitor hashes or page views in a
    range, or drop it all. A range reads only the spool files that may hold it."""
    spool = Spool(store.spool_dir)
    query = check_query(args.get("query"))
    if args.get("drop") is True:
        spool.drop(query)
        return {}
    out: dict[str, Any] = {}
    tables = args.get("tables") or {}
    if not isinstance(tables, dict):
        raise LogmrError("malformed report request: tables is not a map")
    answered = {}
    for name, request in tables.items():
        if not isinstance(name, str) or not _table_request(request):
            raise LogmrError(f"malformed report request: cannot read the request for "
                             f"{name!r}")
        hashes = _span(request.get("hashes"), "a table's hashes") or (0, None)
        try:
            answered[name] = wire.pack_frame(select(spool.get_cut(query, f"t_{name}", *hashes),
                                                    name, request))
        except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
            raise LogmrError(f"malformed report request for {name}: {exc}") from None
    out["tables"] = answered
    span = _span(args.get("visitors"), "visitors")
    if span is not None:
        out["visitors"] = wire.pack_frame(spool.get_cut(query, "v", *span).filter(
            hash_in("vh", *span)))
    span = _span(args.get("pages"), "pages")
    if span is not None:
        pages = spool.get_cut(query, "p", *span)
        out["pages"] = wire.pack_frame(pages.filter(hash_in("visitor", *span)))
    return out


def _span(span: Any, what: str) -> tuple[int, int | None] | None:
    """A [low, high) range of hashes off the wire (high None: no bound)."""
    if span is None:
        return None
    if not (isinstance(span, list) and len(span) == 2 and _is_int(span[0])
            and (span[1] is None or _is_int(span[1]))):
        raise LogmrError(f"malformed report request: {what} must be [low, high]")
    return span[0], span[1]



def _table_request(request: Any) -> bool:
    if not isinstance(request, dict) or len(request) != 1:
        return False
    (kind, value), = request.items()
    if kind == "at_least":
        return _is_int(value)
    if kind == "keys":
        return isinstance(value, list) and len(value) <= MAX_KEYS
    return kind == "hashes" and isinstance(value, list) and len(value) == 2


def map_run(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float,
            jobs: dict[str, UserJob] | None = None) -> dict[str, Any]:
    """A user job from this node's jobs directory: mapper and combiner over its lines."""
    wanted = args.get("job")
    if not isinstance(wanted, dict) or not isinstance(wanted.get("name"), str):
        raise LogmrError("malformed run request: it names no job")
    user_job = (jobs or {}).get(wanted["name"])
    if user_job is None:
        raise LogmrError(f"this node has no job {wanted['name']!r} (it loads jobs from its "
                         "--jobs-dir at start)")
    check_identity(user_job, wanted)
    since, until = _time_arg(args, "since"), _time_arg(args, "until")
    combined: list[tuple[Any, Any]] = []
    wanted = chosen_records(args, store.epoch)
    hours = list(store.records(since, until))
    for done, (_hour, records) in enumerate(hours):
        job.send_status(done, len(hours))
        for record in records:
            if not wanted(record):
                continue
            lines = (line for line in lines_of(record.columns(), record.ts(), record.meta.host)
                     if in_span(line.ts, since, until))
            combined.extend(map_and_combine(user_job, lines))
    # combine again across records: fewer pairs on the wire
    regrouped = reduce_pairs(_Combining(user_job), combined)
    return {"pairs": [list(pair) for pair in as_on_the_wire(user_job, regrouped)]}


class _Combining(UserJob):
    """A job whose reducer is another job's combiner (to combine on the node)."""

    def __init__(self, job: UserJob) -> None:
        self.job = job

    def reducer(self, key: Any, values: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        return self.job.combiner(key, values)


def map_reparse(store: NodeStore, job: Reply, args: dict[str, Any], deadline: float,
                reparser: Reparser | None = None) -> dict[str, Any]:
    """Start re-parsing this node's records (see :mod:`logmr.store.reparse`), or say how
    far it got: the work goes on in the node after the answer."""
    if reparser is None:
        raise LogmrError("re-parsing runs in a node, not in a map process")
    return reparser.request(args)


MapJob = Callable[[NodeStore, Reply, dict[str, Any], float], dict[str, Any]]
MAP_JOBS: dict[str, MapJob] = {
    "grep": map_grep,
    "records": map_records,
    "reparse": map_reparse,
    "run": map_run,
    "report": map_report,
    "report_rest": map_report_rest,
    "stats": map_stats,
}


def runs_inline(request: wire.MapRequest) -> bool:
    """Jobs that cannot run away (stats; grep for a pattern without repetition, which
    cannot backtrack) skip the fork and check the budget between hours instead."""
    if request.job in ("stats", "records", "reparse", "report_rest"):
        return True
    if request.job == "grep":
        return runs_in_linear_time(grep_query(request.args).compile())
    if request.job == "report":
        f = ReportSpec.from_args(request.args).filters
        return all(runs_in_linear_time(GrepQuery(p).compile()) for p in (f.grep, f.url)
                   if p is not None)
    return False


def span_of(request: wire.MapRequest) -> tuple[int | None, int | None]:
    """The [since, until) a map request reads."""
    if request.job == "report":
        f = ReportSpec.from_args(request.args).filters
        return f.since, f.until
    return _time_arg(request.args, "since"), _time_arg(request.args, "until")


def job_path(request: wire.MapRequest, jobs: dict[str, UserJob]) -> str | None:
    """The file of the user job a ``run`` request names, if this node has it."""
    wanted = request.args.get("job")
    name = wanted.get("name") if isinstance(wanted, dict) else None
    user_job = jobs.get(name) if isinstance(name, str) else None
    return getattr(user_job, "path", None)


def run_apart(reply: Reply, job: str, args: dict[str, Any], snapshot: Snapshot,
              deadline: float, job_path: str | None = None) -> dict[str, Any]:
    """A map job in a process of its own, over the records of ``snapshot`` (for ``run``,
    the user job is loaded again from ``job_path``)."""
    store: Any = snapshot  # it reads like the node's store
    if job == "run":
        jobs = {} if job_path is None else {(user := load_job(job_path)).name: user}
        return map_run(store, reply, args, deadline, jobs=jobs)
    return MAP_JOBS[job](store, reply, args, deadline)
