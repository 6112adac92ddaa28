"""Re-parsing stored lines: their columns derived again, from their raw bytes, with a
better log format (``logmr reparse``).

A node works through the hours of the range oldest first, one segment at a time, each
replaced as a whole (:meth:`NodeStore.rewrite_hour`): lines, batch ids, parts and sequence
numbers stay, so a query planned before, during or after reads every line once. Which
hours are done is kept in ``reparse.json`` in the data dir: a node stopped midway goes on
at its next start, and a request for the same re-parse resumes it where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from logmr import private
from logmr.errors import ConfigError, LogmrError, StoreError
from logmr.mapfn.detect import parse_detected
from logmr.mapfn.parse import AUTO, check_format, parse_batch
from logmr.store.node import NodeStore, Record, Rederived
from logmr.timeutil import ClfClock, hour_of, overlaps

log = logging.getLogger(__name__)

STATE_FILE = "reparse.json"
MAX_FORMAT = 1024
MAX_HOST = 255


@dataclass(frozen=True)
class ReparseSpec:
    """What to re-parse: records of ``host`` (all when None) holding lines in
    [since, until), with ``fmt`` (``auto``: the format each record's lines read best)."""

    fmt: str = AUTO
    host: str | None = None
    since: int | None = None
    until: int | None = None

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ReparseSpec:
        """A spec from a map request's arguments, each checked (they come off the wire)."""
        fmt = args.get("format", AUTO)
        if not isinstance(fmt, str) or not fmt or len(fmt) > MAX_FORMAT:
            raise LogmrError(f"map argument format must be a log format of at most "
                             f"{MAX_FORMAT} characters")
        if fmt != AUTO:
            try:
                fmt = check_format(fmt)
            except ConfigError as exc:
                raise LogmrError(str(exc)) from None
        host = args.get("host")
        if host is not None and (not isinstance(host, str) or len(host) > MAX_HOST):
            raise LogmrError(f"map argument host must be a host name of at most {MAX_HOST} "
                             "characters")
        bounds = []
        for name in ("since", "until"):
            value = args.get(name)
            if value is not None and type(value) is not int:
                raise LogmrError(f"map argument {name} must be epoch seconds")
            bounds.append(value)
        return cls(fmt, host, bounds[0], bounds[1])

    def key(self) -> str:
        """A name for this re-parse, the same on every node."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def wants(self, record: Record) -> bool:
        """True for a record this re-parse is about."""
        meta = record.meta
        return (self.host is None or meta.host == self.host) and overlaps(
            meta.t0, meta.t1, self.since, self.until)

    def derive(self, record: Record, clock: ClfClock) -> Rederived | None:
        """A record's columns read again from its lines; None when they would not change.

        A line keeps the time it was stored with when the new format does not read it, or
        reads a time before the record's segment's hour (a record's lines are all at or
        after it)."""
        if not self.wants(record):
            return None
        meta = record.meta
        lines = record.lines()
        if self.fmt == AUTO:
            parsed, used = parse_detected(lines, None, clock)
        else:
            parsed, used = parse_batch(lines, self.fmt, clock), self.fmt
        if len(parsed.ts) != meta.lines:
            raise StoreError(f"record {meta.batch_id}/{meta.part} reads as {len(parsed.ts)} "
                             f"lines, not the {meta.lines} stored")
        if used == meta.fmt and parsed.unparsed == meta.unparsed:
            return None  # read with this format already
        stored = record.ts()
        start = hour_of(meta.t0)
        ts = [t if ok and start <= t else old
              for t, ok, old in zip(parsed.ts, parsed.parsed, stored, strict=True)]
        if not meta.fmt and ts == list(stored) and parsed.columns == record.columns():
            return None  # a record from before formats were noted, read the same
        return Rederived(parsed.columns, ts, parsed.unparsed, used)


@dataclass
class Progress:
    """Where one node's re-parse stands (kept in ``reparse.json``)."""

    run: str  # the request that started it
    spec: dict[str, Any]
    hours: list[int] = field(default_factory=list)  # to do, oldest first
    done: list[int] = field(default_factory=list)
    state: str = "running"  # running, done, failed or stopped
    error: str | None = None
    records: int = 0  # records in the hours done
    changed: int = 0  # of them, re-parsed
    lines: int = 0  # in those
    unparsed_before: int = 0
    unparsed_after: int = 0
    rate: float | None = None  # lines a second at most, if asked
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def answer(self) -> dict[str, Any]:
        """What a node says of it to the client."""
        out = asdict(self)
        del out["hours"], out["done"]
        out["hours_done"], out["hours_total"] = len(self.done), len(self.hours)
        return out


class Reparser:
    """A node's re-parses: one at a time, in a thread of its own."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self.path = os.path.join(store.data_dir, STATE_FILE)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.progress: Progress | None = self._load()

    def _load(self) -> Progress | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                saved = json.load(f)
            return Progress(**saved)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return None

    def _save(self, progress: Progress) -> None:
        tmp = self.path + ".tmp"
        fd = private.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(progress), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def resume(self) -> None:
        """Go on with a re-parse the node was stopped in the middle of."""
        with self._lock:
            p = self.progress
            if p is not None and p.state == "running" and self._thread is None:
                log.info("re-parse %s: resuming, %d of %d hours done", p.run, len(p.done),
                         len(p.hours))
                self._start(p)

    def request(self, args: dict[str, Any]) -> dict[str, Any]:
        """Start the re-parse a client asks for (``run`` names its request), or say how
        the one it started goes. One with the same options that was cut short resumes."""
        run = args.get("run")
        if not isinstance(run, str) or not 0 < len(run) <= 64:
            raise LogmrError("map argument run must name the request")
        spec = ReparseSpec.from_args(args)
        rate = args.get("rate")
        if rate is not None and (type(rate) not in (int, float) or not rate > 0):
            raise LogmrError("map argument rate must be a number of lines a second")
        with self._lock:
            p = self.progress
            same = p is not None and p.spec == asdict(spec)
            if p is not None and (p.run == run or (same and p.state == "running")):
                return p.answer()
            if p is not None and p.state == "running":
                raise LogmrError(f"node {self.store.node_id} is re-parsing with other options "
                                 f"({_describe(p.spec)}); wait for it to end, or run the "
                                 "same command to follow it")
            hours = [h for h, _ in self.store.records(spec.since, spec.until)]
            if p is not None and same and p.state in ("failed", "stopped"):
                done = set(p.done)  # go on where it stopped, and with the new hours
                p = Progress(run, asdict(spec), sorted(done | set(hours)), sorted(done),
                             records=p.records, changed=p.changed, lines=p.lines,
                             unparsed_before=p.unparsed_before,
                             unparsed_after=p.unparsed_after, rate=rate)
            else:
                p = Progress(run, asdict(spec), hours, rate=rate)
            self._save(p)
            self.progress = p
            self._start(p)
            return p.answer()

    def _start(self, p: Progress) -> None:
        self._thread = threading.Thread(target=self._run, args=(p,), name="reparse",
                                        daemon=True)
        self._thread.start()

    def _run(self, p: Progress) -> None:
        spec = ReparseSpec(**p.spec)
        clock = ClfClock()
        done = set(p.done)
        began, lines = time.monotonic(), 0
        try:
            for hour in p.hours:
                if self._stop.is_set():
                    p.state = "stopped"
                    break
                if hour in done:
                    continue
                result = self.store.rewrite_hour(hour, lambda r: spec.derive(r, clock))
                with self._lock:
                    p.done.append(hour)
                    done.add(hour)
                    p.records += result.records
                    p.changed += result.changed
                    p.lines += result.lines
                    p.unparsed_before += result.unparsed_before
                    p.unparsed_after += result.unparsed_after
                    self._save(p)
                lines += result.lines
                if p.rate:  # no faster than asked: the node has ingest and queries to serve
                    self._stop.wait(max(0.0, began + lines / p.rate - time.monotonic()))
            else:
                p.state = "done"
        except (OSError, LogmrError) as exc:
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            log.error("re-parse %s stopped: %s; run it again to go on", p.run, text)
            p.state, p.error = "failed", text
        except Exception as exc:  # noqa: BLE001 - a bug must not end in silence
            log.exception("re-parse %s failed", p.run)
            p.state, p.error = "failed", f"{type(exc).__name__}: {exc}"
        with self._lock:
            p.finished = time.time()
            if p.state != "stopped":  # a stopped node goes on at its next start
                with contextlib.suppress(OSError):
                    self._save(p)
            self._thread = None
        if p.state == "done":
            log.info("re-parse %s done: %d of %d records re-parsed, unparsed lines %d -> %d",
                     p.run, p.changed, p.records, p.unparsed_before, p.unparsed_after)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the hour at hand (it is finished or left whole)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


def _describe(spec: dict[str, Any]) -> str:
    parts = [f"--log-format {spec.get('fmt')}"]
    if spec.get("host"):
        parts.append(f"--host {spec['host']}")
    return " ".join(parts)
