"""The map/reduce job API: write a job as generators over (key, value) pairs, as in mrjob.

A job is a class with a ``name`` and a ``version``, a :meth:`Job.mapper` called once per
parsed log line, an optional :meth:`Job.combiner` (by default the reducer) and a
:meth:`Job.reducer`. On a cluster, every storage node runs the mapper and the combiner
over its own lines and sends back the combined pairs; the querying side groups them by
key and runs the reducer. :func:`run_inline` does all of it in one process, over files:
that is how jobs are tested and debugged.

Job code is never shipped: every node loads jobs from its ``--jobs-dir`` when it starts,
and a job is run only when the node's copy has the same name, version and source
fingerprint as the client's.

Keys and values must be plain data (str, bytes, int, float, bool, None, tuples and lists
of them): they travel as msgpack. Tuples come back as tuples.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from logmr.errors import ConfigError, LogmrError
from logmr.timeutil import in_span

Pair = tuple[Any, Any]


@dataclass(slots=True)
class Line:
    """One parsed log line as a mapper sees it (bytes stay bytes)."""

    ts: int  # epoch seconds
    host: bytes  # client address (%h)
    method: bytes
    url: bytes  # the request target as logged, query string included
    status: int
    size: int  # response bytes (%b / %O); 0 for "-"
    referer: bytes
    user_agent: bytes
    source: str  # the host that shipped the line (ship --host)
    fields: dict[str, Any] = field(default_factory=dict)  # the format's other fields

    @property
    def duration_us(self) -> int | None:
        """%D, the time taken in microseconds, when the format has it."""
        value = self.fields.get("duration_us")
        return int(value) if value is not None else None


class Job:
    """Base class of user jobs: override mapper and reducer (and maybe combiner, rows)."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    fingerprint: ClassVar[str] = ""  # set when loaded from a file: a hash of its source
    path: ClassVar[str | None] = None  # the file it was loaded from

    def mapper(self, line: Line) -> Iterator[Pair]:
        """Pairs for one line."""
        raise NotImplementedError

    def combiner(self, key: Any, values: Iterable[Any]) -> Iterator[Pair]:
        """Pre-reduce on a node; by default the reducer (fine when it is associative)."""
        return self.reducer(key, values)

    def reducer(self, key: Any, values: Iterable[Any]) -> Iterator[Pair]:
        """Final pairs for one key, from every node's combined values."""
        raise NotImplementedError

    def rows(self, pairs: list[Pair], limit: int) -> list[dict[str, Any]]:
        """How the results are shown: by default the ``limit`` largest values."""
        ordered = sorted(pairs, key=lambda kv: _sort_key(kv[1]), reverse=True)
        return [{"key": _plain(k), "value": _plain(v)} for k, v in ordered[:limit]]

    @classmethod
    def identity(cls) -> dict[str, str]:
        """What a node checks before running this job for a client."""
        return {"name": cls.name, "version": cls.version, "fingerprint": cls.fingerprint}


def _sort_key(value: Any) -> Any:
    return value if isinstance(value, int | float) else (
        value[0] if isinstance(value, tuple | list) and value else 0)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def tuples(value: Any) -> Any:
    """msgpack turns tuples into lists; keys must be hashable again."""
    return tuple(tuples(v) for v in value) if isinstance(value, list) else value


# -- running -------------------------------------------------------------------------------

def map_and_combine(job: Job, lines: Iterable[Line]) -> list[Pair]:
    """The node's side: mapper over lines, grouped by key, then the combiner."""
    groups: defaultdict[Any, list[Any]] = defaultdict(list)
    for line in lines:
        for key, value in job.mapper(line):
            groups[key].append(value)
    return [pair for key, values in groups.items() for pair in job.combiner(key, values)]


def reduce_pairs(job: Job, pairs: Iterable[Pair]) -> list[Pair]:
    """The querying side: combined pairs from every node, grouped by key, reduced."""
    groups: defaultdict[Any, list[Any]] = defaultdict(list)
    for key, value in pairs:
        groups[tuples(key)].append(tuples(value))
    return [pair for key, values in groups.items() for pair in job.reducer(key, values)]


def lines_of(columns: dict[str, Any], ts: Iterable[int], source: str) -> Iterator[Line]:
    """The lines of one batch of parsed columns (only lines that parsed)."""
    known = {"host", "method", "url", "status", "bytes", "referer", "user_agent"}
    other = [name for name in columns if name not in known and name != "time"]
    n = len(columns.get("host", ()))
    empty = [b""] * n
    get = columns.get
    for i, (t, host, method, url, status, size, referer, agent) in enumerate(zip(
            ts, get("host", empty), get("method", empty), get("url", empty),
            get("status", [0] * n), get("bytes", [0] * n), get("referer", empty),
            get("user_agent", empty), strict=False)):
        if host:
            yield Line(t, host, method, url, status, size, referer, agent, source,
                       {name: columns[name][i] for name in other})


def run_inline(job: Job, paths: Iterable[str], fmt: str = "auto",
               since: int | None = None, until: int | None = None) -> list[Pair]:
    """Run a whole job in this process over log files: map, combine, reduce."""
    from logmr.mapfn.detect import chunks_with_formats, parse_chunk
    from logmr.timeutil import ClfClock

    clock = ClfClock()
    combined: list[Pair] = []
    for chunk in chunks_with_formats(paths, fmt):
        parsed = parse_chunk(chunk, fmt, clock)
        lines = (line for line in lines_of(parsed.columns, parsed.ts, "local")
                 if in_span(line.ts, since, until))
        combined.extend(as_on_the_wire(job, map_and_combine(job, lines)))
    return reduce_pairs(job, combined)


def as_on_the_wire(job: Job, pairs: list[Pair]) -> list[Pair]:
    """``pairs`` as a node's answer carries them, through msgpack: tuples come back as
    lists, and what msgpack cannot hold (a set, an object) fails here in file mode just as
    it would on a node."""
    from logmr import wire

    try:
        payload = wire.pack_result({"pairs": [list(pair) for pair in pairs]})
    except (TypeError, ValueError, OverflowError) as exc:
        raise LogmrError(f"job {job.name!r} gives a pair that cannot travel between nodes "
                         f"({exc}): use numbers, text, bytes, lists, tuples and maps of "
                         "them") from None
    return [(key, value) for key, value in wire.unpack_result(payload)["pairs"]]


# -- loading -------------------------------------------------------------------------------

def load_job(path: str | os.PathLike[str]) -> Job:
    """The one Job class defined in a file, instantiated; its fingerprint is the file's."""
    path = Path(path)
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read job {path}: {exc.strerror}") from None
    spec = importlib.util.spec_from_file_location(f"logmr_jobs_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"job {path} failed to load: {type(exc).__name__}: {exc}") from None
    found = [obj for obj in vars(module).values() if isinstance(obj, type)
             and issubclass(obj, Job) and obj is not Job and obj.__module__ == module.__name__]
    if len(found) != 1 or not found[0].name:
        raise ConfigError(f"{path} must define exactly one Job subclass with a name")
    cls = found[0]
    cls.fingerprint = hashlib.sha256(source).hexdigest()[:16]
    cls.path = str(path.resolve())  # a node's map process loads it again from here
    return cls()


def load_jobs_dir(directory: str | os.PathLike[str]) -> dict[str, Job]:
    """Every job in a directory (``*.py``, not starting with ``_`` or ``test_``)."""
    jobs: dict[str, Job] = {}
    for path in sorted(Path(directory).glob("*.py")):
        if path.name.startswith(("_", "test_")):
            continue
        job = load_job(path)
        if job.name in jobs:
            raise ConfigError(f"two jobs are named {job.name!r} in {directory}")
        jobs[job.name] = job
    return jobs


def check_identity(job: Job, wanted: dict[str, Any]) -> None:
    """Refuse to run a job whose code differs from the client's."""
    mine = job.identity()
    if any(wanted.get(k) != v for k, v in mine.items()):
        raise LogmrError(
            f"job {job.name!r}: this node has version {mine['version']} "
            f"({mine['fingerprint']}), the client asked for version {wanted.get('version')} "
            f"({wanted.get('fingerprint')}); deploy the same jobs directory to every node")
