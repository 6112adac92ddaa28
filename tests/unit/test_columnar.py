"""Records stored as columns (logmr.store.columnar): every line comes back byte for byte,
the parsed columns and the report frame are what the parser and frames.record_frame give,
over the sample logs and over lines of many formats, odd ones included."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from logmr.mapfn import frames
from logmr.mapfn.detect import parse_detected
from logmr.mapfn.parse import parse_batch
from logmr.store import columnar

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
LOGS = sorted(SAMPLES.glob("*.log"))


def check(blob: bytes, fmt: str | None = None) -> int:
    """Store ``blob`` as columns and read it back every way; returns the lines kept raw."""
    if fmt is None:
        parsed, fmt = parse_detected(blob, None)
    else:
        parsed = parse_batch(blob, fmt)
    stored = columnar.decode(columnar.encode(parsed.columns, parsed.ts, blob, fmt))
    assert columnar.lines_of(stored, fmt) == blob
    assert list(columnar.ts_of(stored)) == parsed.ts
    assert columnar.columns_of(stored) == parsed.columns
    built = columnar.report_frame(stored)
    if built is not None:
        want = frames.record_frame(parsed.columns, parsed.ts)
        assert_frame_equal(built[0], want[0])
        assert built[1] == want[1]
    raw: int = stored[columnar.RAW].is_not_null().sum()
    return raw


@pytest.mark.parametrize("log", LOGS, ids=[p.name for p in LOGS])
def test_sample_logs_come_back_whole(log: Path) -> None:
    lines = log.read_bytes().splitlines(keepends=True)
    raw = sum(check(b"".join(lines[i:i + 4000])) for i in range(0, len(lines), 4000))
    assert raw < len(lines) // 100  # nearly every line is rebuilt from its columns


def clf(rng: random.Random) -> str:
    day = rng.randint(1, 28)
    offset = rng.choice(["+0000", "+0130", "-0800", "+1000"])
    return f"{day:02d}/Mar/2024:{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:07 {offset}"


FORMATS = {
    "common": lambda r, t: f'10.0.0.{r.randint(1, 9)} - - [{t}] "GET /a HTTP/1.1" 200 '
                           f'{r.choice(["-", "0", "512"])}',
    "vhost_combined": lambda r, t: f'www.example.org:443 10.0.0.1 - bob [{t}] "POST /f?x=1 '
                                   f'HTTP/2.0" 302 {r.randint(0, 99)} "-" "curl/8"',
    "nginx_main": lambda r, t: f'10.0.0.2 - - [{t}] "GET / HTTP/1.1" 404 0 "http://r/" "ua" '
                               f'"{r.choice(["-", "203.0.113.9, 10.0.0.1"])}"',
    '%h %l %u %t "%r" %>s %b %D': lambda r, t: f'::1 - - [{t}] "GET /x HTTP/1.0" 500 7 '
                                               f'{r.choice(["-", "1234"])}',
    '%h %t "%r" %>s %{ms}T': lambda r, t: f'10.0.0.3 [{t}] "GET / HTTP/1.1" 200 {r.randint(1, 9)}',
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_formats_and_odd_lines_come_back_whole(fmt: str) -> None:
    rng = random.Random(fmt)
    lines = [FORMATS[fmt](rng, clf(rng)) for _ in range(300)]
    odd = ["not a log line", "", "ends with a return\r", "caf\xe9 latin-1",
           lines[0] + " extra fields", lines[1].replace("GET", "\x00GET"), '"unbalanced']
    for line in odd:
        lines.insert(rng.randrange(len(lines)), line)
    blob = b"".join(line.encode("latin-1") + b"\n" for line in lines)
    raw = check(blob, fmt)
    if columnar.template(fmt) is None:  # %{ms}T is read into microseconds: lines kept
        assert raw == len(lines)
    else:  # the odd lines ("" is rebuilt as it is) and few others
        assert len(odd) - 1 <= raw < len(odd) + len(lines) // 10


def test_a_record_whose_fields_are_not_utf8_keeps_its_lines() -> None:
    blob = b'10.0.0.1 - - [01/Mar/2024:10:00:00 +0000] "GET /\xff HTTP/1.1" 200 5 "-" "ua"\n' * 3
    parsed = parse_batch(blob, "combined")
    stored = columnar.decode(columnar.encode(parsed.columns, parsed.ts, blob, "combined"))
    assert columnar.lines_of(stored, "combined") == blob
    assert columnar.report_frame(stored) is None  # framed from its columns instead
    assert columnar.columns_of(stored) == parsed.columns


def test_no_lines() -> None:
    stored = columnar.decode(columnar.encode({}, [], b"", "combined"))
    assert columnar.lines_of(stored, "combined") == b""
    assert list(columnar.ts_of(stored)) == []


def test_records_framed_together_are_framed_as_each_alone() -> None:
    """Records of several schemas (offsets, nginx's 0, times kept, unparsed lines, one not
    UTF-8, one empty) framed together give each record's own frame and unparsed count."""
    stored = []
    for log in LOGS:
        lines = log.read_bytes().splitlines(keepends=True)
        for i in range(0, min(len(lines), 3000), 700):
            blob = b"".join(lines[i:i + 700])
            parsed, fmt = parse_detected(blob, None)
            stored.append(columnar.decode(columnar.encode(parsed.columns, parsed.ts, blob,
                                                          fmt)))
    rng = random.Random(3)
    for fmt in FORMATS:
        blob = "".join(FORMATS[fmt](rng, clf(rng)) + "\n" for _ in range(50)).encode()
        parsed = parse_batch(blob, fmt)
        stored.append(columnar.decode(columnar.encode(parsed.columns, parsed.ts, blob, fmt)))
    odd = b'10.0.0.1 - - [01/Mar/2024:10:00:00 +0000] "GET /\xff HTTP/1.1" 200 5 "-" "ua"\n'
    parsed = parse_batch(odd, "combined")
    stored.append(columnar.decode(columnar.encode(parsed.columns, parsed.ts, odd, "combined")))
    stored.append(columnar.decode(columnar.encode({}, [], b"", "combined")))
    rng.shuffle(stored)
    together = columnar.report_frames(stored)
    assert len({tuple(f.schema.items()) for f in stored}) > 3  # several schemas mixed
    assert sum(1 for f in stored if f.height) > 2 * len({tuple(f.schema.items())
                                                        for f in stored})
    for frame, both in zip(stored, together, strict=True):
        alone = columnar.report_frame(frame)
        if alone is None:
            assert both is None
            continue
        assert both is not None
        assert_frame_equal(both[0], alone[0])
        assert both[1] == alone[1]
        assert 0 < both[2] <= alone[0].estimated_size() * 2 + 4096 or not alone[0].height
