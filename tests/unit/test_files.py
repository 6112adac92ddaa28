"""File mode on every core gives what one core gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import logmr.files
from logmr.client.report import file_report
from logmr.client.search import GrepRequest, grep_files
from logmr.mapfn.grep import GrepQuery
from logmr.mapfn.spec import CLICK, PANELS, ReportSpec
from tests.cluster import HACKERS, SEMICOMPLETE


def test_parallel_file_mode_equals_one_core(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(logmr.files, "CHUNK", 256 * 1024)  # many chunks from small files
    paths = [str(SEMICOMPLETE), str(HACKERS)]
    spec = ReportSpec(reports=(*PANELS, *(c for c in CLICK if c not in ("transitions",
                                                                          "funnel"))))
    request = GrepRequest(GrepQuery(b"GET /"))

    def both() -> tuple[dict[str, object], list[bytes]]:
        outcome, lines = grep_files(paths, request)
        return file_report(paths, spec).data, [line.line for line in lines]

    monkeypatch.setattr(logmr.files, "PARALLEL_FROM", 1 << 62)
    one_core = both()
    monkeypatch.setattr(logmr.files, "PARALLEL_FROM", 0)
    every_core = both()
    assert every_core == one_core
    assert len(one_core[1]) > 10_000


def test_counts_in_forked_parts_equal_one_count(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    import re

    from logmr.files import buffers, count_in_parts
    from logmr.mapfn.grep import count_lines

    monkeypatch.setattr(logmr.files, "PARALLEL_FROM", 0)  # the sample is small: cut it anyway
    monkeypatch.setattr(logmr.files.os, "cpu_count", lambda: 5)
    path = tmp_path / "odd.log"
    path.write_bytes(SEMICOMPLETE.read_bytes() + b"no newline at the end GET /")
    for pattern, invert in ((b"GET /", False), (b"GET /", True), (rb"\s200\s", False),
                            (b"", False), (b"^66\\.249", False)):
        rx = re.compile(pattern, re.MULTILINE)
        for buf in buffers(str(path)):  # the file mapped whole: one buffer
            whole = count_lines(buf, rx, invert)
            assert count_in_parts(buf, lambda b, a, z, rx=rx, invert=invert: count_lines(
                b, rx, invert, a, z)) == whole
        assert whole == sum(bool(rx.search(line)) != invert
                            for line in path.read_bytes().split(b"\n"))


def test_a_part_whose_child_fails_is_counted_here(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    import os

    from logmr.files import count_in_parts

    monkeypatch.setattr(logmr.files, "PARALLEL_FROM", 0)
    monkeypatch.setattr(logmr.files.os, "cpu_count", lambda: 3)
    parent = os.getpid()
    buf = b"a\n" * 3000

    def count(b: bytes, start: int, stop: int) -> int:
        if os.getpid() != parent:
            raise RuntimeError("a child that fails")
        return b.count(b"a", start, stop)

    assert count_in_parts(buf, count) == 3000


@pytest.mark.parametrize("args", [["GET /"], ["-v", "GET /"], [r"\s304\s"], [""],
                                  ["-c", "GET /"]])
def test_grep_on_every_core_prints_what_gnu_grep_prints(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path,
                                                        args: list[str]) -> None:
    import re
    import subprocess

    monkeypatch.setattr(logmr.files, "PARALLEL_FROM", 0)  # cut the small sample anyway
    monkeypatch.setattr(logmr.files.os, "cpu_count", lambda: 4)
    path = tmp_path / "odd.log"
    path.write_bytes(SEMICOMPLETE.read_bytes() + b"no newline at the end GET /")
    from logmr.client.search import grep_file_blocks

    pattern = args[-1]
    request = GrepRequest(GrepQuery(pattern.encode(), invert="-v" in args),
                          count_only="-c" in args)
    outcome, blocks = grep_file_blocks([str(path)], request)
    got = b"".join(blocks)
    flags = list(args[:-1]) + (["-P"] if re.escape(pattern) != pattern else ["-F"])
    gnu = subprocess.run(["grep", "-a", *flags, "--", pattern, str(path)],
                         capture_output=True, check=False).stdout
    if "-c" in args:
        assert b"%d\n" % outcome.count == gnu
    else:
        assert got == gnu
        assert outcome.count == gnu.count(b"\n")


def test_a_part_whose_child_fails_is_printed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from logmr.files import output_in_parts

    monkeypatch.setattr(logmr.files, "PARALLEL_FROM", 0)
    monkeypatch.setattr(logmr.files.os, "cpu_count", lambda: 3)
    parent = os.getpid()
    buf = b"".join(b"%d\n" % i for i in range(3000))

    def produce(b: bytes, start: int, stop: int) -> Iterator[bytes]:
        if os.getpid() != parent and start > len(b) // 2:
            raise RuntimeError("a child that fails")
        yield b[start:stop]

    assert b"".join(output_in_parts(buf, produce)) == buf
