"""File mode's grep as a user runs it, against GNU grep on the same files: one input is
printed in its own order, byte for byte; counts are GNU grep's; several files merge by
time."""

from __future__ import annotations

import gzip
import random
import subprocess
from pathlib import Path

import pytest

from tests.cluster import HACKERS, SEMICOMPLETE, logmr

# (logmr's arguments, GNU grep's): a literal, one with regex metacharacters read as one,
# regexes that cannot and can match a newline, a lookbehind, case, everything
CASES = [
    (["GET /presentations"], ["-F", "GET /presentations"]),
    (["-F", "a.b (c)"], ["-F", "a.b (c)"]),
    (['" 404 '], ["-F", '" 404 ']),
    ([r"GET /[a-z]+/ HTTP"], ["-P", r"GET /[a-z]+/ HTTP"]),
    ([r"\s-\s\[17/May"], ["-P", r"\s-\s\[17/May"]),
    ([r"(?<=Mozilla/)5\.0 \(X11"], ["-P", r"(?<=Mozilla/)5\.0 \(X11"]),
    (["-i", "GOOGLEBOT"], ["-i", "-F", "GOOGLEBOT"]),
    ([""], ["-F", ""]),
    (["^66\\.249"], ["-P", "^66\\.249"]),
    (["xdotool$"], ["-P", "xdotool$"]),
]
FLAGS = [([], []), (["-v"], ["-v"]), (["-c"], ["-c"]), (["-c", "-v"], ["-c", "-v"]),
         (["--limit", "7"], ["-m", "7"])]


def gnu(args: list[str], *paths: Path) -> bytes:
    out = subprocess.run(["grep", "-a", *args[:-1], "--", args[-1], *map(str, paths)],
                         capture_output=True, check=False)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout


def ours(args: list[str], *paths: Path, stdin: bytes | None = None) -> bytes:
    out = logmr("grep", *args[:-1], "--", args[-1], *map(str, paths), stdin=stdin)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def odd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample log with CRLF lines, a line 'a.b (c)', and no newline at its end."""
    lines = SEMICOMPLETE.read_bytes().splitlines(keepends=True)
    rng = random.Random(5)
    for i in rng.sample(range(len(lines)), 50):
        lines[i] = lines[i].replace(b"\n", b"\r\n")
    lines.insert(3, b"x a.b (c) y\n")
    path = tmp_path_factory.mktemp("grep") / "odd.log"
    path.write_bytes(b"".join(lines).rstrip(b"\n"))
    return path


@pytest.mark.parametrize("case", CASES, ids=[c[0][-1] or "(empty)" for c in CASES])
@pytest.mark.parametrize("flags", FLAGS, ids=[" ".join(f[0]) or "lines" for f in FLAGS])
def test_one_file_prints_what_gnu_grep_prints(case: tuple[list[str], list[str]],
                                              flags: tuple[list[str], list[str]],
                                              odd_file: Path) -> None:
    mine, theirs = case
    args = [*flags[0], *mine]
    expect = gnu([*flags[1], *theirs], odd_file)
    if flags[0] == ["-c", "-v"] and mine == [""]:
        expect = b"0\n"  # GNU grep 3.8 prints nothing for a pattern that rules out every line
    assert ours(args, odd_file) == expect
    assert ours(args, Path("-"), stdin=odd_file.read_bytes()) == expect


def test_gz_and_empty_files(tmp_path: Path) -> None:
    packed = tmp_path / "access.log.gz"
    packed.write_bytes(gzip.compress(HACKERS.read_bytes()))
    assert ours(["wp-login"], packed) == gnu(["-F", "wp-login"], HACKERS)
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    out = logmr("grep", "-c", "x", str(empty))
    assert (out.returncode, out.stdout) == (1, b"0\n")


def test_counts_over_several_files_add_up(tmp_path: Path) -> None:
    for pattern in ("GET", "wp-login", ""):
        counts = [int(gnu(["-c", "-F", pattern], p)) for p in (SEMICOMPLETE, HACKERS)]
        assert ours(["-c", pattern], SEMICOMPLETE, HACKERS) == b"%d\n" % sum(counts)


def test_several_files_merge_by_time(tmp_path: Path) -> None:
    from datetime import datetime

    def when(line: bytes) -> float:
        stamp = line.split(b"[", 1)[1].split(b"]", 1)[0].decode()
        return datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").timestamp()

    got = ours(["GET /"], SEMICOMPLETE, HACKERS).splitlines()
    lines = gnu(["-F", "GET /"], SEMICOMPLETE).splitlines() + gnu(["-F", "GET /"],
                                                                   HACKERS).splitlines()
    assert got == sorted(lines, key=when)  # a stable sort: same seconds in file order
