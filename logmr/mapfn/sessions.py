"""Click analysis: cut one visitor's page hits into sessions, and sum sessions up.

A *visitor* is whatever key the caller groups hits by (logmr uses client IP + user agent);
a *hit* is ``(ts, url)``: an epoch second and the raw URL bytes of a page view. Which
requests are pages (not static assets, not bots) is the caller's choice, made before.

:func:`sessionize` works on the hits of ONE visitor, in time order. :class:`SessionStats`
sums any number of sessions and merges with another :class:`SessionStats` (associative and
commutative), so visitors can be sessionized in different processes and summed after::

    >>> hits = [(0, b"/"), (10, b"/pricing"), (4000, b"/")]
    >>> sessions = list(sessionize(hits, timeout=1800))
    >>> [len(s) for s in sessions]
    [2, 1]
    >>> stats = SessionStats()
    >>> for s in sessions:
    ...     stats.add(s)
    >>> stats.to_report(limit=10)["sessions"]["bounces"]
    1

Sort orders, everywhere in reports: by count descending, then by URL (or path, compared
page by page) ascending as raw bytes, which for UTF-8 is code point order. URLs are decoded
for reports only, as UTF-8 with ``backslashreplace``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from logmr.errors import ConfigError, WireError

Hit = tuple[int, bytes]
Session = Sequence[Hit]
K = TypeVar("K", bytes, tuple[bytes, ...])  # a counted key: URL or path

PARTIAL_SCHEMA = 1
DEFAULT_PATH_LEN = 5
ENTRY = b"(entry)"  # previous page of a session's first page, in transitions
EXIT = b"(exit)"  # next page of a session's last page, in transitions
# (name, lower bound in seconds); a bucket runs up to the next bound, the last is open.
DURATION_BUCKETS: tuple[tuple[str, int], ...] = (
    ("0-30s", 0), ("30s-2m", 30), ("2-5m", 120), ("5-15m", 300), ("15-30m", 900),
    ("30m-1h", 1800), ("1h+", 3600),
)


def sessionize(hits: Iterable[Hit], timeout: int) -> Iterator[list[Hit]]:
    """Yield the sessions of one visitor's hits, each a non-empty list of hits.

    ``hits`` must be sorted by ``ts`` (ties keep their order). A new session starts when
    the gap to the previous hit is strictly greater than ``timeout`` seconds, as in AWStats
    and Matomo: a gap of exactly ``timeout`` stays in the session. Sessions come out in
    time order, hits inside each in input order.

    >>> [[u for _, u in s] for s in sessionize([(0, b"/a"), (30, b"/b"), (61, b"/c")], 30)]
    [[b'/a', b'/b'], [b'/c']]
    """
    if timeout < 0:
        raise ConfigError(f"session timeout must be >= 0 seconds, not {timeout}")
    session: list[Hit] = []
    for hit in hits:
        if session:
            gap = hit[0] - session[-1][0]
            if gap < 0:
                raise ValueError(f"hits out of time order: {hit[0]} after {session[-1][0]}")
            if gap > timeout:
                yield session
                session = []
        session.append(hit)
    if session:
        yield session


def duration_bucket(seconds: int) -> int:
    """Index in :data:`DURATION_BUCKETS` of a session lasting ``seconds``."""
    index = 0
    for i, (_, low) in enumerate(DURATION_BUCKETS):
        if seconds >= low:
            index = i
    return index


def funnel_reach(pages: Sequence[bytes], steps: Sequence[bytes]) -> int:
    """How many leading funnel ``steps`` occur in order (as a subsequence) in ``pages``.

    >>> funnel_reach([b"/a", b"/x", b"/b", b"/a"], [b"/a", b"/b", b"/c"])
    2
    """
    reached = 0
    for page in pages:
        if reached < len(steps) and page == steps[reached]:
            reached += 1
    return reached


@dataclass
class SessionStats:
    """Counts over many sessions; mergeable across processes.

    Configuration (must be equal to merge): ``path_len`` is how many leading pages make a
    session's path (default 5; shorter sessions have shorter paths), ``transitions_url``
    the one URL whose previous and next pages are counted (None: none), ``funnel_steps``
    the funnel's URLs in order (empty: no funnel). A session reaches funnel step ``i`` when
    steps ``0..i`` occur in order, not necessarily adjacent, among its pages.
    """

    path_len: int = DEFAULT_PATH_LEN
    transitions_url: bytes | None = None
    funnel_steps: tuple[bytes, ...] = ()
    count: int = 0
    bounces: int = 0  # sessions of one page view
    page_views: int = 0
    durations: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    entry: Counter[bytes] = field(default_factory=Counter)
    exit: Counter[bytes] = field(default_factory=Counter)
    paths: Counter[tuple[bytes, ...]] = field(default_factory=Counter)
    previous: Counter[bytes] = field(default_factory=Counter)  # ENTRY when first page
    next: Counter[bytes] = field(default_factory=Counter)  # EXIT when last page
    funnel: list[int] = field(default_factory=list)  # sessions reaching each step

    def __post_init__(self) -> None:
        if self.path_len < 1:
            raise ConfigError(f"path length must be >= 1, not {self.path_len}")
        self.funnel_steps = tuple(self.funnel_steps)
        if not self.funnel:
            self.funnel = [0] * len(self.funnel_steps)
        if len(self.funnel) != len(self.funnel_steps):
            raise ConfigError("funnel counts do not match the funnel steps")

    def config(self) -> tuple[int, bytes | None, tuple[bytes, ...]]:
        """What two stats must share to be merged."""
        return self.path_len, self.transitions_url, self.funnel_steps

    def add(self, session: Session) -> None:
        """Count one session: a non-empty list of ``(ts, url)`` hits in time order."""
        if not session:
            raise ValueError("a session has at least one hit")
        pages = [url for _, url in session]
        self.count += 1
        self.page_views += len(pages)
        self.bounces += int(len(pages) == 1)
        self.durations[duration_bucket(session[-1][0] - session[0][0])] += 1
        self.entry[pages[0]] += 1
        self.exit[pages[-1]] += 1
        self.paths[tuple(pages[: self.path_len])] += 1
        if self.transitions_url is not None:
            self._add_transitions(pages, self.transitions_url)
        for i in range(funnel_reach(pages, self.funnel_steps)):
            self.funnel[i] += 1

    def _add_transitions(self, pages: list[bytes], url: bytes) -> None:
        last = len(pages) - 1
        for i, page in enumerate(pages):
            if page == url:
                self.previous[pages[i - 1] if i > 0 else ENTRY] += 1
                self.next[pages[i + 1] if i < last else EXIT] += 1

    def merge(self, other: SessionStats) -> SessionStats:
        """A new stats holding both; neither operand changes. Associative, commutative."""
        if self.config() != other.config():
            raise ConfigError("cannot merge session stats with different path length, "
                              "transitions URL or funnel steps")
        return SessionStats(
            self.path_len, self.transitions_url, self.funnel_steps,
            count=self.count + other.count, bounces=self.bounces + other.bounces,
            page_views=self.page_views + other.page_views,
            durations=[a + b for a, b in zip(self.durations, other.durations, strict=True)],
            entry=self.entry + other.entry, exit=self.exit + other.exit,
            paths=self.paths + other.paths, previous=self.previous + other.previous,
            next=self.next + other.next,
            funnel=[a + b for a, b in zip(self.funnel, other.funnel, strict=True)],
        )

    def to_report(self, limit: int) -> dict[str, Any]:
        """Plain JSON data; lists hold the top ``limit`` rows (see the module's sort order).

        Keys: ``sessions``, ``entry_pages``, ``exit_pages``, ``paths``, then
        ``transitions`` if a transitions URL is set and ``funnel`` if steps are set.
        """
        count = self.count
        report: dict[str, Any] = {
            "sessions": {
                "count": count,
                "bounces": self.bounces,
                "bounce_rate": round(self.bounces / count, 4) if count else 0.0,
                "pages_per_session": round(self.page_views / count, 2) if count else 0.0,
                "duration_buckets": {name: n for (name, _), n in
                                     zip(DURATION_BUCKETS, self.durations, strict=True)},
            },
            "entry_pages": _url_rows(self.entry, limit, "sessions"),
            "exit_pages": _url_rows(self.exit, limit, "sessions"),
            "paths": [{"path": [_text(u) for u in path], "sessions": n}
                      for path, n in _top(self.paths, limit)],
        }
        if self.transitions_url is not None:
            report["transitions"] = {
                "url": _text(self.transitions_url),
                "previous": _url_rows(self.previous, limit, "count"),
                "next": _url_rows(self.next, limit, "count"),
            }
        if self.funnel_steps:
            report["funnel"] = [{"step": _text(step), "visits": n}
                                for step, n in zip(self.funnel_steps, self.funnel, strict=True)]
        return report

    def to_partial(self) -> dict[str, Any]:
        """Plain msgpack-able data (dict, list, int, bytes, None); see :meth:`from_partial`."""
        return {
            "v": PARTIAL_SCHEMA,
            "path_len": self.path_len,
            "transitions_url": self.transitions_url,
            "funnel_steps": list(self.funnel_steps),
            "count": self.count, "bounces": self.bounces, "page_views": self.page_views,
            "durations": list(self.durations),
            "entry": _pairs(self.entry), "exit": _pairs(self.exit),
            "paths": [[list(path), n] for path, n in sorted(self.paths.items())],
            "previous": _pairs(self.previous), "next": _pairs(self.next),
            "funnel": list(self.funnel),
        }

    @classmethod
    def from_partial(cls, data: Any) -> SessionStats:
        """Rebuild stats from :meth:`to_partial` data (lists may have become tuples)."""
        try:
            if data["v"] != PARTIAL_SCHEMA:
                raise WireError(f"session stats schema {data['v']!r}, expected "
                                f"{PARTIAL_SCHEMA}: upgrade logmr on every node")
            durations = [int(n) for n in data["durations"]]
            if len(durations) != len(DURATION_BUCKETS):
                raise WireError("session stats with the wrong number of duration buckets")
            return cls(
                path_len=int(data["path_len"]),
                transitions_url=data["transitions_url"],
                funnel_steps=tuple(data["funnel_steps"]),
                count=int(data["count"]), bounces=int(data["bounces"]),
                page_views=int(data["page_views"]), durations=durations,
                entry=Counter(dict(data["entry"])), exit=Counter(dict(data["exit"])),
                paths=Counter({tuple(path): n for path, n in data["paths"]}),
                previous=Counter(dict(data["previous"])), next=Counter(dict(data["next"])),
                funnel=[int(n) for n in data["funnel"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"malformed session stats: {exc!r}") from exc


def _text(url: bytes) -> str:
    return url.decode("utf-8", "backslashreplace")


def _top(counts: Counter[K], limit: int) -> list[tuple[K, int]]:
    """The ``limit`` largest counts, by count descending then key ascending."""
    return heapq.nsmallest(max(limit, 0), counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _url_rows(counts: Counter[bytes], limit: int, label: str) -> list[dict[str, Any]]:
    return [{"url": _text(url), label: n} for url, n in _top(counts, limit)]


def _pairs(counts: Counter[bytes]) -> list[list[Any]]:
    return [[url, n] for url, n in sorted(counts.items())]
