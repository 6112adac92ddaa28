"""5xx answers by URL and hour: where and when the server failed."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from logmr.jobs import Job, Line, Pair


class ErrorsByHour(Job):
    name = "errors-by-hour"
    version = "1"

    def mapper(self, line: Line) -> Iterator[Pair]:
        if 500 <= line.status <= 599:
            yield (line.url, line.ts - line.ts % 3600), 1

    def reducer(self, key: Any, values: Iterable[Any]) -> Iterator[Pair]:
        yield key, sum(values)

    def rows(self, pairs: list[Pair], limit: int) -> list[dict[str, Any]]:
        top = sorted(pairs, key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [{"url": url.decode("utf-8", "backslashreplace"),
                 "hour": time.strftime("%Y-%m-%dT%H:00Z", time.gmtime(hour)), "errors": n}
                for (url, hour), n in top]
