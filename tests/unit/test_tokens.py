"""Unit tests of logmr.store.tokens: a record's token filter never rules out a record
that holds a matching line (checked against the regex engine on the lines themselves),
and does rule out records that hold none."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import zstandard

from logmr.mapfn.grep import GrepQuery, count_lines
from logmr.store import tokens

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.log"))
ODD = (b"1.2.3.4 - - [01/Jan/2026:00:00:00 +0000] \"GET /a?b=c&d=e;f HTTP/1.1\" 200 5\n"
       b"\xff\xfe\x00 \t\r\n"  # bytes that are not text, a NUL, a tab, a carriage return
       b"11.2.3.45 x(y)z [q] \"\" ::1\n")


def _words(stored: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(stored)


def records(size: int = 500) -> list[bytes]:
    """Records of ``size`` lines of every sample log, and one of odd bytes."""
    out = [ODD]
    for path in SAMPLES:
        lines = path.read_bytes().splitlines(keepends=True)
        out += [b"".join(lines[i:i + size]) for i in range(0, len(lines), size)]
    return out


def queries(rng: random.Random, line: bytes) -> list[GrepQuery]:
    """Queries made from a piece of ``line``: fixed, as a regex with wildcards and
    repeats, ignoring case, inverted."""
    line = line.rstrip(b"\n")
    a = rng.randrange(len(line) + 1)
    piece = line[a:a + rng.randrange(1, 24)]
    wild = bytearray(re.escape(piece))
    if len(wild) > 2:
        wild[rng.randrange(len(wild))] = ord(".")
    regex = bytes(wild) + rng.choice([b"", b"+", b"?", b".*x", b"[0-9]", b"(a|b)?"])
    return [GrepQuery(piece, fixed=True), GrepQuery(regex), GrepQuery(piece.swapcase(),
            fixed=True, ignore_case=True), GrepQuery(piece, fixed=True, invert=True),
            GrepQuery(b"(?i)" + re.escape(piece.swapcase()))]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # a random "[[" in a pattern
@pytest.mark.parametrize("seed", range(3))
def test_the_filter_never_rules_out_a_record_that_matches(seed: int) -> None:
    rng = random.Random(seed)
    recs = records()
    filters = [tokens.build(r) for r in recs]
    joined = [_words(f) for f in filters]
    ruled_out = checked = 0
    for _ in range(150):
        source = rng.choice(recs)
        line = rng.choice(source.splitlines(keepends=True))
        for query in queries(rng, line):
            try:
                rx = query.compile()
            except Exception:  # noqa: BLE001  (a piece that is no valid regex)
                continue
            wanted = tokens.pieces(query, rx)
            for rec, words in zip(recs, joined, strict=True):
                matches = count_lines(rec, rx, query.invert)
                holds = wanted is None or tokens.may_hold(words, wanted, tokens.folds(rx))
                assert holds or matches == 0, (query, rec[:200])
                checked += 1
                ruled_out += not holds
    assert checked > 1000
    assert ruled_out > checked // 10  # the filter does rule records out


def test_a_client_address_rules_out_the_records_without_it() -> None:
    recs = records(200)
    hosts = [r.split(b" ", 1)[0] for r in recs[1:]]
    query = GrepQuery(hosts[-1], fixed=True)
    wanted = tokens.pieces(query, query.compile())
    assert wanted == (hosts[-1],)  # a dotted address is one word
    held = [tokens.may_hold(_words(tokens.build(r)), wanted)
            for r in recs]
    assert held == [hosts[-1] in r for r in recs]  # exactly the records holding it
    assert sum(held) < len(recs) // 2


def test_pieces_of_a_pattern() -> None:
    def of(pattern: bytes, **kw: bool) -> tuple[bytes, ...] | None:
        q = GrepQuery(pattern, **kw)
        return tokens.pieces(q, q.compile())

    assert of(b"GET /products/12 ") == (b"products", b"GET", b"12")
    assert of(rb"10\.0\.0\.1") == (b"10.0.0.1",)
    assert of(b"10.0.0.1") == (b"10", b"0", b"1")  # dots match any byte: three pieces
    assert of(b"10.0.0.1", fixed=True) == (b"10.0.0.1",)
    assert of(b"Googlebot", ignore_case=True) == (b"googlebot",)
    assert of(b"(?i)Googlebot") == (b"googlebot",)  # the pattern's own flag
    assert of(b"Googlebot", invert=True) is None
    assert of(b"a|b") is None and of(b"") is None and of(b" / ") is None
