"""A storage node's data: segments by hour, the time index, the dedupe record, a cache.

A record lies in the segment of the hour of its earliest line and holds a whole batch, or,
for a batch whose lines span more than :data:`MAX_SPAN`, the batch's lines of one UTC day:
a sparse log (a few lines an hour) makes one record a batch, not one per hour it spans.
Ingest writes records of encoding 1 (lines, times and columns, each zstd: fast to write);
:meth:`NodeStore.compact` rewrites a segment's records once it is idle, as columns alone
(encoding 2, see :mod:`logmr.store.columnar`: a fifth of the bytes).

The index and the set of stored batch ids live in memory and are rebuilt from the segment
headers at start; the segments are the only truth on disk. Ingest (one thread) appends and
fsyncs; queries (other threads) read a snapshot of the index and never wait for ingest.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import os
import secrets
import socket
import threading
import time
from array import array
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from logmr import heap, private
from logmr.errors import DiskUnavailable, StoreError, WireError
from logmr.mapfn.detect import REDETECT_BELOW, FormatChooser, detect
from logmr.store import segment, tokens
from logmr.store.disk import DEFAULT_MIN_FREE, FULL_ERRNOS, Watermark
from logmr.store.segment import Location, RecordMeta, SegmentWriter
from logmr.timeutil import ClfClock, hour_of, overlaps
from logmr.wire import Batch, check_id

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"
DEFAULT_CACHE_MB = 256
# a batch spanning longer is stored a day at a time (the index reads back this far before
# a range's start, and retention keeps a segment until its newest line is old enough)
MAX_SPAN = 7 * 86400
SPLIT_UNIT = 86400  # the length of the pieces such a batch is cut into: a UTC day
TRIM_AFTER = 64 << 20  # bytes evicted from the cache between two heap trims
T = TypeVar("T")


# The cache's decoded lines live in the C heap, its report frames in polars' own allocator.
# When eviction swaps one for the other, glibc keeps the freed pages: the node's memory
# would be the high-water mark of both. Giving them back after each stretch of evictions
# keeps it near the cache's bound (~5 ms a call).
_trim_heap = heap.trimmer()


@dataclass(frozen=True)
class StoreResult:
    """What storing a batch did; ``records`` are the records written now, as stored."""

    lines: int
    unparsed: int
    duplicate: bool
    records: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class _Pending:
    """A record about to be appended to the segment of its hour."""

    hour: int
    record: bytes
    meta: RecordMeta
    lines: bytes | None  # decoded lines and times, to cache; None for a replica
    ts: list[int] | None


class Holder(Protocol):
    """What a record is read through: a node's store (cached) or a snapshot of it."""

    def cached(self, record: Record, part: int) -> bytes | array[int]: ...


@dataclass(frozen=True)
class Record:
    """A stored record as queries see it: its meta and a way to read it (cached)."""

    node: Holder
    loc: Location
    meta: RecordMeta
    seq: int = 0  # the order the node came to hold it: a listing says "up to seq N"
    copy: bool = False  # received from a peer (since start), not taken from ship

    def lines(self) -> bytes:
        """The record's lines, each ending in a newline."""
        return self.node.cached(self, segment.LINES)  # type: ignore[return-value]

    def ts(self) -> Sequence[int]:
        """The time of each line, epoch seconds."""
        return self.node.cached(self, segment.TIMES)

    def columns(self) -> dict[str, Any]:
        """All parsed columns (not cached)."""
        return segment.decode_columns(self.loc, self.meta)

    def may_hold(self, wanted: tuple[bytes, ...] | None, ignore_case: bool = False) -> bool:
        """False when the record's token filter rules out every line holding all of
        ``wanted`` (see :mod:`logmr.store.tokens`); True with no filter or nothing wanted."""
        if not wanted or not self.meta.words[0]:
            return True
        joined = self.node.cached(self, segment.WORDS)
        return tokens.may_hold(joined, wanted, ignore_case)  # type: ignore[arg-type]


class NodeStore:
    """The data directory of one storage node."""

    def __init__(self, data_dir: str, node_id: str | None = None,
                 cache_bytes: int = DEFAULT_CACHE_MB << 20,
                 min_free: str = DEFAULT_MIN_FREE) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.seg_dir = os.path.join(self.data_dir, "segments")
        self.spool_dir = os.path.join(self.data_dir, "spool")  # reports' rounds
        try:  # it holds client IPs and user agents: its owner alone may read it
            private.make_dir(self.data_dir)
            private.make_dir(self.seg_dir)
            private.close_tree(self.data_dir, "data dir")
        except OSError as exc:
            raise StoreError(f"cannot create data dir {data_dir}: {exc.strerror}") from None
        self._lock_file = self._take_lock()
        try:
            self.node_id = self._node_id(node_id)
        except BaseException:
            self._lock_file.close()
            raise
        self._lock = threading.Lock()
        self._index: dict[int, list[tuple[Location, RecordMeta]]] = {}
        self._hours: list[int] = []
        self._reach = 3599  # the latest line of any record, in seconds past its segment's hour
        self._done: set[tuple[str, int]] = set()
        self._by_batch: dict[str, list[tuple[Location, RecordMeta]]] = {}
        self._seq: dict[tuple[str, int], int] = {}
        self._copies: set[tuple[str, int]] = set()
        self._gen: dict[int, int] = {}  # hour -> its segment's generation (one per rewrite)
        self._era = 0  # rewrites so far: a reader's era says which files it may still read
        self._reading: Counter[int] = Counter()  # readers at work, by the era they began in
        self._retired: list[tuple[int, str]] = []  # (era, file) replaced, kept for readers
        self._rewrite_lock = threading.Lock()  # one rewrite of a segment at a time
        self.seq = 0  # records added so far
        # this start's token: a sequence number means something only within one start
        self.epoch = secrets.token_hex(4)
        self.retain_window: int | None = None  # --retain, in seconds: older data goes
        self.compact_after: float | None = 30.0  # --compact-after: idle seconds, or never
        self.watermark = Watermark(self.data_dir, min_free)
        self.refusing: str | None = None  # why the node takes no batches now, if it does not
        self.replicas = 1  # copies of each batch the node's service asks for (for status)
        self._writers: OrderedDict[int, SegmentWriter] = OrderedDict()
        self._write_lock = threading.Lock()  # ingest and retention take turns on segments
        self._last_write: dict[int, float] = {}
        self._rate: deque[tuple[float, int]] = deque()  # (when, lines ingested so far)
        self._cache: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
        self._cache_size: dict[tuple[str, int, int], int] = {}
        self._cache_used = 0
        self._cache_max = cache_bytes
        self._evicted = 0  # bytes evicted since the heap was last trimmed
        self._clock = ClfClock()
        self.formats = FormatChooser()  # each source host's log format, for auto
        self._warned: set[tuple[str, str]] = set()  # (host, format) said to read badly
        self._format_of: dict[str, str] = {}  # source host -> format its last batch read with
        self._suggested: dict[tuple[str, str, int], str | None] = {}  # by newest bad record
        self.ingested_lines = 0
        self.ingested_batches = 0
        self.problems: list[str] = []  # corrupt stretches found at start, for status
        self._load()

    # -- start-up -------------------------------------------------------------------------

    def _take_lock(self) -> Any:
        path = os.path.join(self.data_dir, "lock")
        # held open for the life of the store
        f = os.fdopen(private.open_file(path, os.O_RDWR | os.O_CREAT), "r+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise StoreError(f"data dir {self.data_dir} is in use by another logmr worker; "
                             "give each worker its own --data-dir") from None
        return f

    def _node_id(self, wanted: str | None) -> str:
        path = os.path.join(self.data_dir, "node-id")
        try:
            with open(path, encoding="utf-8") as f:
                saved: str | None = f.read().strip()
        except FileNotFoundError:
            saved = None
        node_id = wanted or saved or _default_node_id()
        try:
            check_id(node_id, "node id")
        except WireError as exc:
            raise StoreError(str(exc)) from None
        if node_id != saved:
            fd = private.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(node_id + "\n")
        return node_id

    def _load(self) -> None:
        started = time.monotonic()
        count = 0
        found: dict[int, dict[int, str]] = {}  # hour -> generation -> file name
        for name in sorted(os.listdir(self.seg_dir)):
            if name.endswith(SEGMENT_SUFFIX + ".tmp"):  # a rewrite cut short: never used
                log.info("removing %s: a segment rewrite that did not finish", name)
                os.unlink(os.path.join(self.seg_dir, name))
                continue
            if not name.endswith(SEGMENT_SUFFIX):
                continue
            hour_gen = name[: -len(SEGMENT_SUFFIX)].split(".")  # HOUR or HOUR.GENERATION
            if len(hour_gen) > 2 or not all(part.isdigit() for part in hour_gen):
                log.warning("ignoring %s: not a segment name", name)
                continue
            hour, gen = int(hour_gen[0]), int(hour_gen[1]) if len(hour_gen) == 2 else 0
            found.setdefault(hour, {})[gen] = name
        for hour, gens in sorted(found.items()):
            gen = max(gens)
            for older in sorted(set(gens) - {gen}):
                # replaced by a rewrite (which held all of its records) before a stop that
                # came too soon to delete it
                log.info("removing %s: segment %s replaced it", gens[older], gens[gen])
                os.unlink(os.path.join(self.seg_dir, gens[older]))
            self._gen[hour] = gen
            entries = segment.scan(os.path.join(self.seg_dir, gens[gen]), repair=True,
                                   problems=self.problems)
            for loc, meta in entries:
                count += self._add(hour, loc, meta)
        log.info("node %s: %d records in %d segments loaded in %.2fs", self.node_id, count,
                 len(self._hours), time.monotonic() - started)

    def _add(self, hour: int, loc: Location, meta: RecordMeta, copy: bool = False) -> bool:
        key = (meta.batch_id, meta.part)
        if key in self._done:
            return False  # a second copy on disk (a write redone after a failed cut)
        if hour not in self._index:
            bisect.insort(self._hours, hour)
            self._index[hour] = []
        self._index[hour].append((loc, meta))
        self._reach = max(self._reach, meta.t1 - hour)
        self._done.add(key)
        self._by_batch.setdefault(meta.batch_id, []).append((loc, meta))
        self.seq += 1
        self._seq[key] = self.seq
        if copy:
            self._copies.add(key)
        return True

    # -- ingest ---------------------------------------------------------------------------

    def store(self, batch: Batch) -> StoreResult:
        """Store a batch durably (fsync) unless already stored; safe to call again."""
        result = self._store(batch)
        self._after_write()
        return result

    def _after_write(self) -> None:
        self._trim_if_due()  # not under the write lock: the next batch need not wait
        now = time.monotonic()
        self._rate.append((now, self.ingested_lines))
        while self._rate and self._rate[0][0] < now - 60:
            self._rate.popleft()

    def _store(self, batch: Batch) -> StoreResult:
        blob = batch.lines if batch.lines.endswith(b"\n") or not batch.lines else (
            batch.lines + b"\n")
        self.watermark.check(len(blob) // 4)  # before parsing: a full disk refuses at once
        parsed, fmt = self.formats.parse(blob, batch.fmt, batch.host, self._clock)
        self._format_of[batch.host] = fmt
        n = len(parsed.ts)
        if n and parsed.unparsed > (1 - REDETECT_BELOW) * n:
            self._warn_unparsed(batch.host, fmt, parsed.unparsed, n)
        parts = self._parts(parsed.ts) if n else []
        pending: list[_Pending] = []
        for part, idx in enumerate(parts):
            with self._lock:
                if (batch.batch_id, part) in self._done:
                    continue
            whole = len(parts) == 1
            lines = blob if whole else self._lines_of(blob, idx)
            ts = parsed.ts if whole else [parsed.ts[i] for i in idx]
            cols = (parsed.columns if whole
                    else {k: [v[i] for i in idx] for k, v in parsed.columns.items()})
            ok = parsed.parsed if whole else [parsed.parsed[i] for i in idx]
            record, meta = segment.encode_record(
                {"batch_id": batch.batch_id, "part": part, "parts": len(parts),
                 "lines": len(ts), "t0": min(ts), "t1": max(ts), "host": batch.host,
                 "unparsed": ok.count(False), "fmt": fmt}, lines, cols, ts, enc=1)
            pending.append(_Pending(hour_of(meta.t0), record, meta, lines, ts))
        # parsed and encoded outside the lock: a copy arriving meanwhile need not wait
        with self._write_lock:
            with self._lock:  # a copy of the same batch may have landed meanwhile
                pending = [p for p in pending if (batch.batch_id, p.meta.part) not in self._done]
            self._write(pending)
        return StoreResult(lines=n, unparsed=parsed.unparsed, duplicate=not pending and n > 0,
                           records=[p.record for p in pending])

    def _warn_unparsed(self, host: str, fmt: str, unparsed: int, lines: int) -> None:
        """Say once per source host and format that its lines do not read."""
        if (host, fmt) in self._warned or len(self._warned) > 4096:
            return
        self._warned.add((host, fmt))
        log.warning("lines from %s: %d of a batch's %d do not parse as %s; they are stored "
                    "as they are (grep finds them) and counted unparsed. Ship them with "
                    "--log-format auto or their LogFormat; `logmr formats FILE` tells which",
                    host, unparsed, lines, fmt if len(fmt) < 80 else fmt[:77] + "...")

    def store_records(self, batch_id: str, records: Sequence[bytes]) -> int:
        """Store a replica: whole records another node wrote for ``batch_id``, appended as
        they are (checked, never re-parsed); parts already held are skipped. Returns the
        lines written."""
        checked = []
        for raw in records:
            meta = segment.check_record(raw)
            if meta.batch_id != batch_id:
                raise StoreError(f"replica of batch {batch_id} holds a record of batch "
                                 f"{meta.batch_id}")
            checked.append(_Pending(hour_of(meta.t0), raw, meta, None, None))
        cutoff = None if self.retain_window is None else time.time() - self.retain_window
        with self._write_lock:
            with self._lock:
                pending = [p for p in checked if (batch_id, p.meta.part) not in self._done
                           and (cutoff is None or p.meta.t1 >= cutoff)]
            self._write(pending)
        self._after_write()
        return sum(p.meta.lines for p in pending)

    def keep_aside(self, name: str, payload: bytes, exc: BaseException) -> str:
        """Keep a payload that fails to store every time (a bug, or data no column can
        hold) in ``unstored/``, readable by its owner only, and say so in status: nothing
        that arrives is thrown away."""
        folder = os.path.join(self.data_dir, "unstored")
        private.make_dir(folder)
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120]
        path = os.path.join(folder, f"{safe}.bin")
        fd = private.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.problems.append(f"a batch failed to store ({type(exc).__name__}: {exc}); its "
                             f"payload is kept in {path}")
        return path

    def holds_only_copies(self, batch_id: str) -> bool:
        """True when every record this node holds of a batch came from a peer."""
        with self._lock:
            held = self._by_batch.get(batch_id, ())
            return bool(held) and all((m.batch_id, m.part) in self._copies for _, m in held)

    def batch_records(self, batch_id: str, parts: set[int] | None = None) -> list[bytes]:
        """The whole records this node holds of a batch (those of ``parts``, if given), as
        stored: what a copy for a peer carries."""
        with self.reading():
            with self._lock:
                held = list(self._by_batch.get(batch_id, ()))
            return [segment.read_record(loc) for loc, meta in held
                    if parts is None or meta.part in parts]

    def _write(self, pending: Sequence[_Pending]) -> None:
        """Append, fsync and index records (the caller holds the write lock: ingest, copies
        and retention take turns on the segments). A disk that
        fails or fills midway cuts what this call appended and raises DiskUnavailable."""
        if not pending:
            return
        self.watermark.check(sum(len(p.record) for p in pending))
        before: dict[int, tuple[SegmentWriter, int]] = {}
        placed: list[tuple[_Pending, int]] = []
        try:
            for p in pending:
                writer = self._writer(p.hour)
                before.setdefault(p.hour, (writer, writer.size))
                placed.append((p, writer.append(p.record)))
                self._last_write[p.hour] = time.monotonic()
            for writer, _ in before.values():
                writer.sync()  # a no-op for one closed (and so synced) to open another
        except OSError as exc:  # whatever it is, the batch goes back to the queue
            self._cut(before)
            kind = "disk full" if exc.errno in FULL_ERRNOS else "disk error"
            raise DiskUnavailable(f"{kind}: cannot write to {self.seg_dir}: "
                                  f"{exc.strerror}") from None
        with self._lock:
            for p, offset in placed:
                loc = _location(self._writer_path(p.hour), offset, p.record)
                self._add(p.hour, loc, p.meta, copy=p.lines is None)
                if p.lines is not None and p.ts is not None:
                    # write-through: the newest data is what queries read most
                    self._cache_put((loc.path, loc.offset, segment.LINES), p.lines,
                                    len(p.lines))
                    self._cache_put((loc.path, loc.offset, segment.TIMES), array("q", p.ts),
                                    8 * len(p.ts) + 64)
            self.ingested_lines += sum(p.meta.lines for p, _ in placed)
            self.ingested_batches += 1

    def _cut(self, sizes: dict[int, tuple[SegmentWriter, int]]) -> None:
        """Cut segments back to their size before a failed write: the half-written batch
        is gone and will be redone. A segment that cannot be cut is closed; it is cut to
        its last indexed record when next opened."""
        for hour, (writer, size) in sizes.items():
            try:
                writer.truncate(size)
            except OSError as exc:
                log.error("cannot cut %s back to %d bytes: %s", writer.path, size, exc.strerror)
                if self._writers.get(hour) is writer:
                    del self._writers[hour]
                writer.abandon()

    @staticmethod
    def _parts(ts: list[int]) -> list[list[int]]:
        """The line indexes of each record a batch makes: one, or one per UTC day when the
        batch spans more than MAX_SPAN (oldest day first)."""
        if max(ts) - min(ts) <= MAX_SPAN:
            return [list(range(len(ts)))]
        days: dict[int, list[int]] = {}
        for i, t in enumerate(ts):
            days.setdefault(t // SPLIT_UNIT, []).append(i)
        return [days[d] for d in sorted(days)]

    @staticmethod
    def _lines_of(blob: bytes, idx: list[int]) -> bytes:
        lines = blob.split(b"\n")
        return b"".join(lines[i] + b"\n" for i in idx)

    def _writer_path(self, hour: int) -> str:
        return self._segment_path(hour, self._gen.get(hour, 0))

    def _segment_path(self, hour: int, gen: int) -> str:
        name = f"{hour}{SEGMENT_SUFFIX}" if gen == 0 else f"{hour}.{gen}{SEGMENT_SUFFIX}"
        return os.path.join(self.seg_dir, name)

    def _writer(self, hour: int) -> SegmentWriter:
        writer = self._writers.get(hour)
        if writer is None:
            writer = SegmentWriter(self._writer_path(hour))
            with self._lock:
                end = max((loc.offset + loc.length for loc, _ in self._index.get(hour, ())),
                          default=0)
            if writer.size > end:  # the tail of a write that failed and could not be cut
                log.warning("segment %s: cutting %d bytes of a failed write", writer.path,
                            writer.size - end)
                try:
                    writer.truncate(end)
                except OSError:
                    writer.abandon()
                    raise
            self._writers[hour] = writer
            while len(self._writers) > 16:
                self._writers.popitem(last=False)[1].close()
        else:
            self._writers.move_to_end(hour)
        return writer

    def retain(self, window: int, now: float | None = None, idle: float = 60.0) -> list[str]:
        """Delete whole segments whose every line is older than ``window`` seconds; never
        one written to in the last ``idle`` seconds. Returns the paths deleted."""
        cutoff = (time.time() if now is None else now) - window
        deleted = []
        with self._write_lock:
            with self._lock:
                old = [h for h in self._hours if h + 3600 <= cutoff
                       and all(m.t1 < cutoff for _, m in self._index[h])]
            for hour in old:
                if time.monotonic() - self._last_write.get(hour, float("-inf")) < idle:
                    continue  # being written: a late batch for that hour is still coming
                writer = self._writers.pop(hour, None)
                if writer is not None:
                    writer.close()
                path = self._writer_path(hour)
                with self._lock:
                    for _, meta in self._index.pop(hour, []):
                        self._done.discard((meta.batch_id, meta.part))
                        self._seq.pop((meta.batch_id, meta.part), None)
                        self._copies.discard((meta.batch_id, meta.part))
                        held = [e for e in self._by_batch.pop(meta.batch_id, ())
                                if e[1].part != meta.part]
                        if held:
                            self._by_batch[meta.batch_id] = held
                    self._hours.remove(hour)
                    self._gen.pop(hour, None)
                    self._forget(path)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                self._last_write.pop(hour, None)
                deleted.append(path)
        if deleted:
            log.info("retention: deleted %d segments older than %d s", len(deleted), window)
        return deleted

    # -- rewrites (compaction, re-parsing) ---------------------------------------------------

    def compact(self, idle: float) -> int:
        """Rewrite the records of encoding 1 as columns (encoding 2), a segment at a time,
        oldest first, in segments not written to for ``idle`` seconds. Returns the records
        rewritten. Each segment is replaced whole, as a re-parse replaces it."""
        with self._lock:
            hours = [h for h in self._hours if any(m.enc == 1 for _, m in self._index[h])]
        done = 0
        for hour in hours:
            if time.monotonic() - self._last_write.get(hour, float("-inf")) < idle:
                continue
            done += self.rewrite_hour(hour, _as_columns).changed
        return done

    def to_compact(self) -> int:
        """Records not yet rewritten as columns."""
        with self._lock:
            return sum(m.enc == 1 for entries in self._index.values() for _, m in entries)

    def rewrite_hour(self, hour: int, derive: Callable[[Record], Rederived | None]) -> Rewritten:
        """Derive the columns of an hour's records again: ``derive`` gives a record's new
        columns and times, or None to leave it as it is. Lines, batch ids, parts and
        sequence numbers stay; the segment is replaced as a whole (written aside, then
        renamed over, so a stop at any point leaves the old or the new, both whole), and
        queries reading the old one meanwhile finish with it (it is deleted after them).
        Records appended while the hour is read are derived under the write lock."""
        with self._rewrite_lock:
            with self._lock:
                if hour not in self._index:
                    return Rewritten()
                entries = list(self._index[hour])
                gen = self._gen.get(hour, 0) + 1
            path = self._segment_path(hour, gen)
            tmp = path + ".tmp"
            out = _Rewrite(tmp)
            try:
                out.add(entries, derive)
                if not out.changed:
                    return Rewritten(records=len(entries))
                with self._write_lock:
                    with self._lock:
                        now = self._index.get(hour)
                        if now is None or now[:len(entries)] != entries:
                            return Rewritten()  # gone (retention) meanwhile: nothing to do
                        later = now[len(entries):]
                    out.add(later, derive)
                    out.commit(path)
                    writer = self._writers.pop(hour, None)
                    if writer is not None:
                        writer.close()
                    segment.fsync_dir(self.seg_dir)
                    with self._lock:
                        self._swap(hour, gen, entries + later, out.placed(path))
            finally:
                out.discard()
        self._reap()
        return Rewritten(records=len(out.metas), changed=out.changed, lines=out.lines_changed,
                         unparsed_before=out.unparsed_before, unparsed_after=out.unparsed_after)

    def _swap(self, hour: int, gen: int, old: list[tuple[Location, RecordMeta]],
              new: list[tuple[Location, RecordMeta]]) -> None:
        """Point the index at an hour's rewritten segment (the caller holds the lock)."""
        old_path = self._writer_path(hour)
        self._index[hour] = new
        self._reach = max(self._reach, *(m.t1 - hour for _, m in new))
        by_key = {(m.batch_id, m.part): (loc, m) for loc, m in new}
        for batch_id in {m.batch_id for _, m in old}:
            self._by_batch[batch_id] = [by_key.get((m.batch_id, m.part), (loc, m))
                                        for loc, m in self._by_batch.get(batch_id, ())]
        self._gen[hour] = gen
        self._forget(old_path)
        self._era += 1
        self._retired.append((self._era, old_path))

    def _forget(self, path: str) -> None:
        """Drop what the cache holds of a segment file (the caller holds the lock)."""
        for key in [k for k in self._cache if k[0] == path]:
            self._cache_used -= self._cache_size.pop(key)
            del self._cache[key]

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Mark a stretch that reads records listed in it: a segment replaced meanwhile is
        deleted only once every such stretch that began before has ended."""
        with self._lock:
            era = self._era
            self._reading[era] += 1
        try:
            yield
        finally:
            with self._lock:
                self._reading[era] -= 1
                if not self._reading[era]:
                    del self._reading[era]
            self._reap()

    def _reap(self) -> None:
        """Delete replaced segments that no reader may still read."""
        with self._lock:
            oldest = min(self._reading, default=None)
            due = [p for e, p in self._retired if oldest is None or oldest >= e]
            self._retired = [(e, p) for e, p in self._retired
                             if not (oldest is None or oldest >= e)]
        for path in due:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def close(self) -> None:
        """Sync and close every open segment and release the data dir."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        self._lock_file.close()

    # -- queries --------------------------------------------------------------------------

    def records(self, since: int | None = None, until: int | None = None
                ) -> Iterator[tuple[int, list[Record]]]:
        """Records per segment hour, oldest first, that may hold lines in [since, until).
        Every line of a record is at or after its segment's hour, and at most ``_reach``
        seconds past it."""
        with self._lock:
            hours = list(self._hours)
            reach = self._reach
        lo = 0 if since is None else bisect.bisect_left(hours, since - reach)
        for hour in hours[lo:]:
            if until is not None and hour >= until:
                break
            with self._lock:
                entries = list(self._index[hour])
                seqs = [self._seq.get((m.batch_id, m.part), 0) for _, m in entries]
                copies = [(m.batch_id, m.part) in self._copies for _, m in entries]
            chosen = [Record(self, loc, meta, seq, copy)
                      for (loc, meta), seq, copy in zip(entries, seqs, copies, strict=True)
                      if overlaps(meta.t0, meta.t1, since, until)]
            if chosen:
                yield hour, chosen

    def memo(self, record: Record, kind: int, build: Callable[[], T], size: Callable[[T], int]
             ) -> T:
        """Something derived from a record (a report frame, say), kept in the same bounded
        cache as decoded parts; ``kind`` must differ from the segment part numbers."""
        key = (record.loc.path, record.loc.offset, kind)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                found: T = hit
                return found
        value = build()
        with self._lock:
            self._cache_put(key, value, size(value))
        self._trim_if_due()
        return value

    def peek(self, record: Record, kind: int) -> Any:
        """What :meth:`memo` keeps for ``record`` under ``kind``, if it is in the cache."""
        key = (record.loc.path, record.loc.offset, kind)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def cached(self, record: Record, part: int) -> bytes | array[int]:
        """A record's lines (bytes) or times (list), from the cache or the disk."""
        key = (record.loc.path, record.loc.offset, part)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                part_value: bytes | array[int] = hit
                return part_value
        value = segment.decode_part(record.loc, record.meta, part)
        size = len(value) if isinstance(value, bytes) else 8 * len(value) + 64
        with self._lock:
            self._cache_put(key, value, size)
        self._trim_if_due()
        return value

    def _cache_put(self, key: tuple[str, int, int], value: Any, size: int) -> None:
        """Keep a decoded part in the cache (the caller holds the lock)."""
        if size > self._cache_max or key in self._cache:
            return
        self._cache[key] = value
        self._cache_size[key] = size
        self._cache_used += size
        while self._cache_used > self._cache_max:
            old, _ = self._cache.popitem(last=False)
            freed = self._cache_size.pop(old)
            self._cache_used -= freed
            self._evicted += freed

    def _trim_if_due(self) -> None:
        """Give freed heap pages back to the system after enough evictions (outside the
        lock: a trim takes milliseconds)."""
        if self._evicted < TRIM_AFTER or _trim_heap is None:
            return
        with self._lock:
            if self._evicted < TRIM_AFTER:
                return
            self._evicted = 0
        _trim_heap()

    def snapshot(self, since: int | None = None, until: int | None = None) -> Snapshot:
        """Where the records that may hold lines in [since, until) lie now, for a map job
        in another process to read them from disk."""
        return Snapshot(self.epoch, [(hour, [(r.loc, r.meta, r.seq, r.copy) for r in records])
                                     for hour, records in self.records(since, until)],
                        self.spool_dir)

    def _ingest_rate(self) -> float:
        """Lines per second stored over the last minute."""
        if len(self._rate) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._rate[0], self._rate[-1]
        recent = time.monotonic() - t1 < 60
        return round((n1 - n0) / max(t1 - t0, 1.0), 1) if recent else 0.0

    def stats(self) -> dict[str, Any]:
        """Lines, bytes, time span and segments held by this node."""
        with self._lock:
            metas = [m for entries in self._index.values() for _, m in entries]
            hours = len(self._hours)
        disk = sum(os.path.getsize(os.path.join(self.seg_dir, n))
                   for n in os.listdir(self.seg_dir) if n.endswith(SEGMENT_SUFFIX))
        return {
            "node": self.node_id,
            "lines": sum(m.lines for m in metas),
            "unparsed": sum(m.unparsed for m in metas),
            "raw_bytes": sum(m.raw_bytes for m in metas),
            "disk_bytes": disk,
            "first": min((m.t0 for m in metas), default=None),
            "last": max((m.t1 for m in metas), default=None),
            "segments": hours,
            "batches": len({m.batch_id for m in metas}),
            "records_to_compact": sum(m.enc == 1 for m in metas),
            "problems": list(self.problems),
            "ingest_lines_per_s": self._ingest_rate(),
            **self.watermark.state(),
            "replicas": self.replicas,
            "taking_batches": self.refusing is None,
            "refusing": self.refusing,
            "sources": self._sources(metas),
        }

    def _sources(self, metas: list[RecordMeta]) -> dict[str, dict[str, Any]]:
        """Per source host: lines, unparsed, the format its last batch read with, and when
        more than a tenth did not parse, the format auto finds in its newest such record."""
        out: dict[str, dict[str, Any]] = {}
        for m in metas:
            s = out.setdefault(m.host, {"lines": 0, "unparsed": 0,
                                        "format": self._format_of.get(m.host),
                                        "suggested": None})
            s["lines"] += m.lines
            s["unparsed"] += m.unparsed
        for host, s in out.items():
            if s["unparsed"] * 10 > s["lines"]:
                s["suggested"] = self._suggest(host)
        return out

    def _suggest(self, host: str) -> str | None:
        """The format that reads the newest badly read record of ``host`` best, if one
        reads it better than it was read."""
        with self._lock:
            found = [(m.t1, loc, m) for entries in self._index.values() for loc, m in entries
                     if m.host == host and m.unparsed * 10 > m.lines]
        if not found:
            return None
        _, loc, meta = max(found, key=lambda x: (x[0], x[2].batch_id))
        key = (host, meta.batch_id, meta.part)
        if key not in self._suggested:
            try:
                with self.reading():
                    best = detect(segment.decode_lines(loc, meta))
            except StoreError:
                return None
            better = best.share > 1 - meta.unparsed / meta.lines
            if len(self._suggested) > 1024:
                self._suggested.clear()
            self._suggested[key] = best.fmt if better else None
        return self._suggested[key]


@dataclass
class Snapshot:
    """A node's records as they were listed (sent to a map job's process, which reads them
    from the segments: those are appended to, and one replaced by a re-parse stays until
    the job ends, see :meth:`NodeStore.reading`), read like the node's store."""

    epoch: str
    hours: list[tuple[int, list[tuple[Location, RecordMeta, int, bool]]]]
    spool_dir: str = ""  # where a report keeps what it sent in part (the node's)

    def records(self, since: int | None = None, until: int | None = None
                ) -> Iterator[tuple[int, list[Record]]]:
        """As :meth:`NodeStore.records`."""
        for hour, entries in self.hours:
            if until is not None and hour >= until:
                break
            chosen = [Record(self, loc, meta, seq, copy) for loc, meta, seq, copy in entries
                      if overlaps(meta.t0, meta.t1, since, until)]
            if chosen:
                yield hour, chosen

    def cached(self, record: Record, part: int) -> bytes | array[int]:
        """A part of a record, from the disk (a map job's process keeps no cache)."""
        return segment.decode_part(record.loc, record.meta, part)

    def memo(self, record: Record, kind: int, build: Callable[[], T], size: Callable[[T], int]
             ) -> T:
        """As :meth:`NodeStore.memo`, without keeping anything."""
        return build()

    def peek(self, record: Record, kind: int) -> Any:
        """As :meth:`NodeStore.peek`: nothing is kept here."""
        return None


@dataclass(frozen=True)
class Rederived:
    """A record's columns derived again (by a rewrite)."""

    columns: dict[str, Any]
    ts: list[int]
    unparsed: int
    fmt: str


def _as_columns(record: Record) -> Rederived | None:
    """A record of encoding 1 derived as it is (to be written as columns), else None."""
    if record.meta.enc != 1:
        return None
    return Rederived(record.columns(), list(record.ts()), record.meta.unparsed,
                     record.meta.fmt)


@dataclass(frozen=True)
class Rewritten:
    """What a rewrite of an hour did."""

    records: int = 0  # in the hour
    changed: int = 0  # of them, derived anew
    lines: int = 0  # in those
    unparsed_before: int = 0
    unparsed_after: int = 0


_DISK = Snapshot("", [])  # reads records from their segment, keeping nothing


class _Once:
    """Reads one record's parts from its segment, each once: a rewrite reads the lines
    to derive the columns, then to write them."""

    def __init__(self) -> None:
        self._parts: dict[int, bytes | array[int]] = {}

    def cached(self, record: Record, part: int) -> bytes | array[int]:
        if part not in self._parts:
            self._parts[part] = _DISK.cached(record, part)
        return self._parts[part]


class _Rewrite:
    """A segment being written aside: records as they were, or derived again."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # what a rewrite that failed here left: the file starts empty
        self._out = SegmentWriter(tmp)
        self._committed = False
        self.metas: list[tuple[int, bytes, RecordMeta]] = []  # offset, header + meta, meta
        self.changed = self.lines_changed = self.unparsed_before = self.unparsed_after = 0

    def add(self, entries: Sequence[tuple[Location, RecordMeta]],
            derive: Callable[[Record], Rederived | None]) -> None:
        for loc, meta in entries:
            record = Record(_Once(), loc, meta)
            d = derive(record)
            if d is None:
                raw, new = segment.read_record(loc), meta
            else:
                raw, new = segment.encode_record(
                    {"batch_id": meta.batch_id, "part": meta.part, "parts": meta.parts,
                     "lines": meta.lines, "t0": min(d.ts), "t1": max(d.ts), "host": meta.host,
                     "unparsed": d.unparsed, "fmt": d.fmt}, record.lines(), d.columns, d.ts)
                self.changed += 1
                self.lines_changed += meta.lines
                self.unparsed_before += meta.unparsed
                self.unparsed_after += d.unparsed
            meta_len = segment.HEADER.unpack_from(raw)[1]
            self.metas.append((self._out.append(raw), raw[:segment.HEADER.size + meta_len],
                               new))

    def commit(self, path: str) -> None:
        """Make the new segment durable and put it in place of the old."""
        self._out.close()  # synced first
        os.rename(self.tmp, path)
        self._committed = True

    def placed(self, path: str) -> list[tuple[Location, RecordMeta]]:
        """The index entries of the committed segment at ``path``."""
        return [(_location(path, offset, head), meta) for offset, head, meta in self.metas]

    def discard(self) -> None:
        """Remove the file written aside, unless committed."""
        if not self._committed:
            self._out.abandon()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)


def _location(path: str, offset: int, record: bytes) -> Location:
    """Where the body of a record written at ``offset`` lies (``record``: the record, or
    at least its header and meta)."""
    _, meta_len, length, crc = segment.HEADER.unpack_from(record)
    return Location(path, offset + segment.HEADER.size + meta_len, length, crc,
                    bytes(record[segment.HEADER.size:segment.HEADER.size + meta_len]))


def _default_node_id() -> str:
    host = "".join(c if c.isalnum() or c in "-." else "-" for c in socket.gethostname())
    return f"{(host or 'node')[:40]}-{secrets.token_hex(3)}"
