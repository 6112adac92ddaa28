"""Slowest URLs by mean time taken (%D, microseconds): needs a LogFormat with %D, e.g.
LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\" %D" timed"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from logmr.jobs import Job, Line, Pair


class SlowestUrls(Job):
    name = "slowest-urls"
    version = "1"

    def mapper(self, line: Line) -> Iterator[Pair]:
        took = line.duration_us
        if took is not None:
            yield line.url, (1, took, took)  # requests, total us, slowest us

    def reducer(self, key: Any, values: Iterable[Any]) -> Iterator[Pair]:
        count = total = slowest = 0
        for n, sum_us, max_us in values:
            count, total, slowest = count + n, total + sum_us, max(slowest, max_us)
        yield key, (count, total, slowest)

    def rows(self, pairs: list[Pair], limit: int) -> list[dict[str, Any]]:
        by_mean = sorted(pairs, key=lambda kv: (-kv[1][1] / kv[1][0], kv[0]))[:limit]
        return [{"url": url.decode("utf-8", "backslashreplace"), "requests": n,
                 "mean_ms": round(total / n / 1000, 3), "max_ms": round(slowest / 1000, 3)}
                for url, (n, total, slowest) in by_mean]
