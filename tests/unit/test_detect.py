"""Tolerant formats and auto-detection, on lines written here in every known format: the
fields each line was written from are the truth its columns are checked against."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from logmr.errors import ConfigError
from logmr.mapfn.detect import (
    FormatChooser,
    chunks_with_formats,
    detect,
    parse_chunk,
    parse_detected,
)
from logmr.mapfn.parse import AUTO, check_format, parse_batch


@dataclass
class Fields:
    host: str = "192.0.2.7"
    user: str = "-"
    stamp: str = "20/May/2015:12:05:17 +0000"
    request: str = "GET /a/b?c=1 HTTP/1.1"
    status: str = "200"
    size: str = "5120"
    referer: str = "http://example.org/"
    agent: str = "Mozilla/5.0 (X11; Linux x86_64)"
    vhost: str = "www.example.org"
    port: str = "443"
    xff: str = "198.51.100.1, 10.0.0.1"
    bytes_in: str = "321"
    bytes_out: str = "6000"

    def line(self, fmt: str) -> bytes:
        """The line ``fmt`` writes for these fields."""
        f = self
        head = f'{f.host} - {f.user} [{f.stamp}] "{f.request}" {f.status} {f.size}'
        text = {
            "common": head,
            "combined": f'{head} "{f.referer}" "{f.agent}"',
            "nginx_combined": f'{head} "{f.referer}" "{f.agent}"',
            "vhost_combined": f'{f.vhost}:{f.port} {f.host} - {f.user} [{f.stamp}] '
                              f'"{f.request}" '
                              f'{f.status} {f.size} "{f.referer}" "{f.agent}"',
            "combinedio": f'{head} "{f.referer}" "{f.agent}" {f.bytes_in} {f.bytes_out}',
            "nginx_main": f'{head} "{f.referer}" "{f.agent}" "{f.xff}"',
        }[fmt]
        return text.encode("utf-8", "surrogateescape")


FORMATS = ("common", "combined", "vhost_combined", "combinedio", "nginx_main")


def varied(n: int, seed: int = 1) -> list[Fields]:
    """Lines a real server writes: IPv6 and host-name clients, odd requests and statuses."""
    rng = random.Random(seed)
    hosts = ["192.0.2.7", "2001:db8::1", "::1", "crawler.example.net", "10.1.2.3"]
    requests = ["GET /a/b?c=1 HTTP/1.1", "POST /login HTTP/2.0", "-", "",
                "\\x16\\x03\\x01\\x02\\x00", "GET /with \\\"quote\\\" HTTP/1.0",
                "HEAD / HTTP/1.0"]
    agents = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.0", "-",
              'Bot \\"quoted\\" 1.0', ""]
    return [Fields(host=rng.choice(hosts), request=rng.choice(requests),
                   status=rng.choice(["200", "404", "-", "301", "500"]),
                   size=rng.choice(["0", "-", "1234", "99999999"]),
                   referer=rng.choice(["-", "http://example.org/x", ""]),
                   agent=rng.choice(agents), port=rng.choice(["80", "443"]),
                   user=rng.choice(["-", "-", "alice", "bob", "carol@example.org"]))
            for _ in range(n)]


@pytest.mark.parametrize("fmt", [*FORMATS, "nginx_combined"])
def test_every_known_format_parses_its_own_lines_field_for_field(fmt: str) -> None:
    rows = varied(300)
    blob = b"".join(r.line(fmt) + b"\n" for r in rows)
    p = parse_batch(blob, fmt, now=lambda: 0)
    assert p.unparsed == 0
    assert p.columns["host"] == [r.host.encode() for r in rows]
    assert p.columns["user"] == [r.user.encode() for r in rows]
    assert p.columns["status"] == [0 if r.status == "-" else int(r.status) for r in rows]
    assert p.columns["bytes"] == [0 if r.size == "-" else int(r.size) for r in rows]
    for i, r in enumerate(rows):
        parts = r.request.split(" ")
        if len(parts) == 3 and parts[2].startswith("HTTP/"):
            assert p.columns["url"][i] == parts[1].encode()
        else:  # not method, URL, protocol: the request is kept whole
            assert p.columns["request"][i] == r.request.encode()
    if fmt != "common":
        assert p.columns["user_agent"] == [r.agent.encode() for r in rows]
    if fmt == "nginx_main":
        assert p.columns["forwarded_for"] == [r.xff.encode() for r in rows]
    if fmt == "vhost_combined":
        assert p.columns["vhost"] == [r.vhost.encode() for r in rows]


@pytest.mark.parametrize("fmt", FORMATS)
def test_auto_finds_each_format(fmt: str) -> None:
    blob = b"".join(r.line(fmt) + b"\n" for r in varied(200, seed=2))
    found = detect(blob)
    assert (found.fmt, found.share, found.first_bad) == (fmt, 1.0, None)


@pytest.mark.parametrize("tail", [b" 0.005", b" 12 345", b' "-"', b' "a b" 7', b"\t1"])
def test_fields_the_format_does_not_name_are_ignored(tail: bytes) -> None:
    rows = varied(50, seed=3)
    blob = b"".join(r.line("combined") + tail + b"\n" for r in rows)
    p = parse_batch(blob, "combined", now=lambda: 0)
    assert p.unparsed == 0
    assert p.columns["user_agent"] == [r.agent.encode() for r in rows]


def test_crlf_endings_parse() -> None:
    rows = varied(20, seed=4)
    blob = b"".join(r.line("combined") + b"\r\n" for r in rows)
    p = parse_batch(blob, "combined", now=lambda: 0)
    assert p.unparsed == 0 and p.columns["user_agent"] == [r.agent.encode() for r in rows]


def test_a_line_of_another_shape_is_still_unparsed() -> None:
    blob = b'{"msg": "json"}\nGET / HTTP/1.1\n' + Fields().line("combined") + b"\n"
    p = parse_batch(blob, "combined", now=lambda: 0)
    assert p.parsed == [False, False, True]


def test_the_richer_format_wins_a_tie_and_a_clear_winner_beats_richness() -> None:
    # combined lines: common reads them too (it ignores the rest), combined is richer
    blob = b"".join(r.line("combined") + b"\n" for r in varied(100, seed=5))
    assert detect(blob).fmt == "combined"
    # common lines: combined cannot read them, so common wins despite fewer fields
    blob = b"".join(r.line("common") + b"\n" for r in varied(100, seed=5))
    assert detect(blob).fmt == "common"


def test_nothing_parses_gives_the_default_and_the_first_bad_line() -> None:
    found = detect(b"hello\nworld\n")
    assert (found.fmt, found.parsed, found.lines, found.first_bad) == (
        "combined", 0, 2, b"hello")


def test_a_source_that_changes_format_is_detected_again() -> None:
    chooser = FormatChooser(every=4)
    common = b"".join(r.line("common") + b"\n" for r in varied(100, seed=6))
    main = b"".join(r.line("nginx_main") + b"\n" for r in varied(100, seed=7))
    vhosts = b"".join(r.line("vhost_combined") + b"\n" for r in varied(100, seed=7))
    assert chooser.parse(common, AUTO, "web1")[1] == "common"
    assert chooser.parse(common, AUTO, "web1")[1] == "common"
    # the server's config changed: common cannot read these, so they are detected at once
    parsed, used = chooser.parse(vhosts, AUTO, "web1")
    assert used == "vhost_combined" and parsed.unparsed == 0
    # common lines again: vhost_combined cannot read them either
    assert chooser.parse(common, AUTO, "web1")[1] == "common"
    # a richer format that common still reads is found at the next check (every 4th batch)
    used_by_batch = [chooser.parse(main, AUTO, "web1")[1] for _ in range(4)]
    assert used_by_batch[-1] == "nginx_main" and set(used_by_batch) == {"common", "nginx_main"}
    assert chooser.known() == {"web1": "nginx_main"}
    # a source is its own: another host keeps its own format
    assert chooser.parse(common, AUTO, "web2")[1] == "common"
    # an explicit format is used as it is, even when it reads nothing
    parsed, used = chooser.parse(main, "vhost_combined", "web1")
    assert used == "vhost_combined" and parsed.unparsed == 100


def test_a_few_bad_lines_do_not_change_a_source_format() -> None:
    good = [r.line("combined") + b"\n" for r in varied(100, seed=8)]
    blob = b"".join(good[:50]) + b"garbage\n" * 20 + b"".join(good[50:])
    parsed, used = parse_detected(blob, "combined")
    assert used == "combined" and parsed.unparsed == 20


def test_file_mode_detects_per_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_bytes(b"".join(r.line("vhost_combined") + b"\n" for r in varied(30, seed=9)))
    b.write_bytes(b"".join(r.line("nginx_main") + b"\n" for r in varied(30, seed=10)))
    chunks = list(chunks_with_formats([str(a), str(b)], AUTO))
    assert [hint for _, hint in chunks] == ["vhost_combined", "nginx_main"]
    assert all(parse_chunk(c, AUTO).unparsed == 0 for c in chunks)
    # an explicit format is what every chunk gets
    assert {hint for _, hint in chunks_with_formats([str(a), str(b)], "common")} == {"common"}


def test_auto_is_a_format_option_and_nonsense_is_not() -> None:
    assert check_format(AUTO) == AUTO and check_format("nginx_main") == "nginx_main"
    with pytest.raises(ConfigError, match="auto"):
        check_format("nginx")


def test_a_batch_that_spans_a_change_of_format_reads_both() -> None:
    before, after = varied(120, seed=17), varied(80, seed=18)
    blob = b"".join([r.line("common") + b"\n" for r in before]
                    + [r.line("vhost_combined") + b"\n" for r in after])
    parsed, used = parse_detected(blob, None)
    assert used == "common" and parsed.unparsed == 0
    assert parsed.columns["host"] == [r.host.encode() for r in before + after]
    assert parsed.columns["vhost"] == [b""] * 120 + [r.vhost.encode() for r in after]
    assert parsed.columns["status"] == [0 if r.status == "-" else int(r.status)
                                        for r in before + after]
    # a source's known format reading most of a batch: the rest is read too, down to 1 %
    few_vhosts = b"".join([r.line("common") + b"\n" for r in before]
                          + [r.line("vhost_combined") + b"\n" for r in after[:6]])
    parsed, used = parse_detected(few_vhosts, "common")
    assert used == "common" and parsed.unparsed == 0 and parsed.columns["vhost"][-6:] == [
        r.vhost.encode() for r in after[:6]]
    # a few bad lines are left as they are
    few = blob + b"garbage\n"
    assert parse_detected(few, "common")[0].unparsed == 1


def test_lines_no_format_reads_stay_unparsed() -> None:
    rows = [r.line("common") + b"\n" for r in varied(50, seed=19)]
    blob = b"".join(rows) + b'{"json": 1}\n' * 30
    parsed, used = parse_detected(blob, None)
    assert used == "common" and parsed.unparsed == 30
