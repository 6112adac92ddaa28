"""Times taken (%D, %T, %{ms}T, nginx's $request_time): parsed into microseconds, folded
into mergeable partials, shown as percentiles and the URLs that took the most time. The
oracle is the generator's own durations: exact sums and maxima, and nearest-rank
percentiles from the sorted list."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from logmr.client.report import finalize
from logmr.mapfn.aggregate import Combiner, partial_of
from logmr.mapfn.frames import record_frame
from logmr.mapfn.parse import COMBINED, NO_DURATION, parse_batch
from logmr.mapfn.partial import Merged
from logmr.mapfn.spec import ReportSpec

SPEC = ReportSpec(reports=("response_times",), limit=1000)
URLS = ["/", "/a", "/b?q=1", "/slow", "/api/x"]


def timed_lines(n: int, seed: int) -> tuple[bytes, list[tuple[str, int]]]:
    """Combined lines ending in %D, and the (url, microseconds) each was written with."""
    rng = random.Random(seed)
    truth, out = [], []
    for i in range(n):
        url = rng.choice(URLS)
        us = 0 if rng.random() < 0.02 else int(rng.lognormvariate(8, 2 if url == "/slow" else 1))
        truth.append((url, us))
        out.append(f'10.0.{i % 7}.{i % 250} - - [20/May/2015:10:{i % 60:02d}:00 +0000] '
                   f'"GET {url} HTTP/1.1" 200 {i} "-" "agent {i % 3}" {us}\n')
    return "".join(out).encode(), truth


def report_of(blobs: list[bytes], fmt: str) -> dict[str, Any]:
    merged = Merged()
    for blob in blobs:
        parsed = parse_batch(blob, fmt)
        frame, unparsed = record_frame(parsed.columns, parsed.ts)
        merged.add(partial_of(frame, unparsed, SPEC, lambda ua: False, lambda url: False))
    return finalize(merged, SPEC)["response_times"]


def nearest_rank(values: list[int], q: int) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered) / 100) - 1]


def test_percentiles_sums_and_maxima_against_the_durations_written() -> None:
    blob, truth = timed_lines(20_000, seed=1)
    got = report_of([blob], COMBINED + " %D")
    durations = [us for _, us in truth]
    assert got["requests"] == len(truth)
    assert got["max_us"] == max(durations)
    assert got["mean_us"] == round(sum(durations) / len(durations))
    for q in (50, 90, 95, 99):
        exact = nearest_rank(durations, q)
        assert abs(got[f"p{q}_us"] - exact) <= 0.01 * exact + 1, q  # the sketch's 1 %
    for row in got["urls"]:
        mine = [us for url, us in truth if url == row["url"]]
        assert (row["hits"], row["total_us"], row["max_us"]) == (len(mine), sum(mine),
                                                                 max(mine))
    totals = [row["total_us"] for row in got["urls"]]
    assert totals == sorted(totals, reverse=True) and len(totals) == len(URLS)
    assert got["urls"][0]["url"] == "/slow"


def test_any_split_and_a_nodes_combiner_give_the_same_panel() -> None:
    blob, _ = timed_lines(3000, seed=2)
    fmt = COMBINED + " %D"
    whole = report_of([blob], fmt)
    lines = blob.splitlines(keepends=True)
    rng = random.Random(3)
    cuts = sorted(rng.sample(range(1, len(lines)), 9))
    parts = [b"".join(lines[a:b]) for a, b in zip([0, *cuts], [*cuts, len(lines)],
                                                   strict=True)]
    rng.shuffle(parts)
    assert report_of(parts, fmt) == whole
    combiner = Combiner(SPEC)
    for part in parts:
        parsed = parse_batch(part, fmt)
        combiner.add(*record_frame(parsed.columns, parsed.ts))
    merged = Merged()
    merged.add(combiner.partial())
    assert finalize(merged, SPEC)["response_times"] == whole


@pytest.mark.parametrize("fmt, logged, us", [
    ("%D", "1234", 1234),
    ("%T", "2", 2_000_000),
    ("%T", "0.123", 123_000),  # nginx's $request_time where Apache logs %T
    ("%{ms}T", "45", 45_000),
    ("%{us}T", "77", 77),
    ("%{s}T", "3", 3_000_000),
    ("%D", "-", NO_DURATION),
])
def test_every_unit_reads_as_microseconds(fmt: str, logged: str, us: int) -> None:
    line = (f'1.2.3.4 - - [20/May/2015:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua" '
            f'{logged}\n').encode()
    parsed = parse_batch(line, f"{COMBINED} {fmt}")
    assert parsed.unparsed == 0
    assert parsed.columns["duration_us"] == [us]


def test_a_format_with_both_reads_the_finer() -> None:
    line = b'1.2.3.4 - - [20/May/2015:10:00:00 +0000] "GET / HTTP/1.1" 200 5 1 1500123\n'
    parsed = parse_batch(line, '%h %l %u %t "%r" %>s %b %T %D')
    assert parsed.columns["duration_us"] == [1_500_123]
    assert "duration_s" not in parsed.columns


def test_lines_without_a_time_taken_are_left_out_of_it() -> None:
    blob, truth = timed_lines(100, seed=4)
    plain = b'1.2.3.4 - - [20/May/2015:10:00:00 +0000] "GET /plain HTTP/1.1" 200 5 "-" "ua"'
    got = report_of([blob, (plain + b" -\n") * 10], COMBINED + " %D")  # read, with no time
    assert got["requests"] == len(truth)
    assert "/plain" not in {row["url"] for row in got["urls"]}
    none = report_of([plain + b"\n"], COMBINED)
    assert (none["requests"], none["p50_us"], none["urls"]) == (0, None, [])
