"""The whole path on real processes: ship -> gearmand -> two storage nodes -> grep."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.cluster import (
    BOTH_LINES,
    HACKERS,
    HACKERS_LINES,
    PRESENTATIONS,
    SEMICOMPLETE,
    SEMICOMPLETE_LINES,
    LocalCluster,
    logmr,
)

STAMP = re.compile(rb"\[(\d{1,2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]")


def times(lines: list[bytes]) -> list[float]:
    """Each line's time, read here with the standard library (not logmr's parser); a line
    with no time of its own takes the one before it, as README says logmr does."""
    out: list[float] = []
    for line in lines:
        m = STAMP.search(line)
        if m:
            out.append(datetime.strptime(m.group(1).decode(), "%d/%b/%Y:%H:%M:%S %z"
                                         ).timestamp())
        else:
            out.append(out[-1] if out else 0.0)
    return out


def expected(path: Path, pattern: bytes = b"", flags: int = 0) -> list[bytes]:
    """The file's lines that match, in time order (stable: file order within a second)."""
    lines = path.read_bytes().split(b"\n")[:-1]
    ts = times(lines)
    rx = re.compile(pattern, flags)
    order = sorted(range(len(lines)), key=lambda i: ts[i])
    return [lines[i] for i in order if rx.search(lines[i])]


def gnu_grep(path: Path, pattern: str, *flags: str) -> list[bytes]:
    """What GNU grep prints for ``pattern`` (a fixed string) in ``path``, put in time order."""
    out = subprocess.run(["grep", "-a", "-F", *flags, "--", pattern, str(path)],
                         capture_output=True, check=False)
    assert out.returncode in (0, 1), out.stderr
    lines = out.stdout.split(b"\n")[:-1]
    ts = times(lines)
    return [lines[i] for i in sorted(range(len(lines)), key=lambda i: ts[i])]


def grep_lines(cluster: LocalCluster, *args: str) -> list[bytes]:
    out = cluster.run("grep", *args)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout.split(b"\n")[:-1]


def test_grep_matches_gnu_grep_count_and_bytes(cluster: LocalCluster) -> None:
    shipped = cluster.run("ship", "--host", "web1", str(SEMICOMPLETE))
    assert shipped.returncode == 0, shipped.stderr
    cluster.wait_stored(SEMICOMPLETE_LINES)

    count = cluster.run("grep", "-c", "GET /presentations")
    assert count.returncode == 0
    gnu_count = subprocess.run(["grep", "-a", "-c", "-F", "GET /presentations",
                                str(SEMICOMPLETE)], capture_output=True, check=True).stdout
    assert count.stdout == gnu_count == b"%d\n" % PRESENTATIONS
    assert grep_lines(cluster, "-F", "GET /presentations") == gnu_grep(SEMICOMPLETE,
                                                                       "GET /presentations")
    # a pattern that matches every line: the whole file, byte for byte, in time order
    assert grep_lines(cluster, "") == expected(SEMICOMPLETE)
    # both nodes hold part of the data, and the query read both
    stats = cluster.node_stats()
    assert set(stats) == {"node1", "node2"}
    assert all(int(s["lines"]) > 0 for s in stats.values())  # type: ignore[call-overload]
    nodes = {line.split(b'"node": "')[1].split(b'"')[0] for line in
             cluster.run("grep", "--json", "").stdout.splitlines()}
    assert nodes == {b"node1", b"node2"}


def test_both_sample_files_and_grep_options(cluster: LocalCluster) -> None:
    for path in (SEMICOMPLETE, HACKERS):
        assert cluster.run("ship", str(path)).returncode == 0
    cluster.wait_stored(BOTH_LINES)
    both = SEMICOMPLETE.read_bytes() + HACKERS.read_bytes()
    merged = Path(cluster.root / "both.log")
    merged.write_bytes(both)
    assert grep_lines(cluster, "") == expected(merged)
    assert grep_lines(cluster, "-i", "googlebot") == expected(merged, b"googlebot", re.I)
    assert grep_lines(cluster, "-v", "GET") == expected(merged, b"^(?!.*GET)")
    assert grep_lines(cluster, "-F", "/join_form?") == [
        line for line in expected(merged) if b"/join_form?" in line]
    assert grep_lines(cluster, r"\" 404 [0-9]+ ") == expected(merged, rb"\" 404 [0-9]+ ")
    assert grep_lines(cluster, "--limit", "7", "GET") == expected(merged, b"GET")[:7]
    assert int(cluster.run("grep", "-c", "-v", "GET").stdout) == len(
        expected(merged, b"^(?!.*GET)"))
    nothing = cluster.run("grep", "no such thing anywhere")
    assert (nothing.returncode, nothing.stdout) == (1, b"")


def test_since_until(cluster: LocalCluster) -> None:
    assert cluster.run("ship", str(SEMICOMPLETE)).returncode == 0
    cluster.wait_stored(SEMICOMPLETE_LINES)
    # the 2015 sample holds nothing from the last hour
    assert cluster.run("grep", "-c", "--since", "1h", "").stdout == b"0\n"
    # ISO times cut exactly: since inclusive, until exclusive
    since, until = "2015-05-18T10:00:00+00:00", "2015-05-18T10:30:00+00:00"
    lo, hi = (datetime.fromisoformat(t).timestamp() for t in (since, until))
    lines = SEMICOMPLETE.read_bytes().split(b"\n")[:-1]
    when = dict(zip(lines, times(lines), strict=True))
    want = [line for line in expected(SEMICOMPLETE) if lo <= when[line] < hi]
    got = grep_lines(cluster, "--since", since, "--until", until, "")
    assert got == want and len(got) > 100
    assert int(cluster.run("grep", "-c", "--since", since, "--until", until, "").stdout) == len(
        want)

    # lines with current timestamps are found by --since 1h
    now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    fresh = "".join(f'10.0.0.{i} - - [{now}] "GET /fresh/{i} HTTP/1.1" 200 5 "-" "t"\n'
                    for i in range(5)).encode()
    assert cluster.run("ship", "-", stdin=fresh).returncode == 0
    cluster.wait_stored(10_005)
    assert grep_lines(cluster, "--since", "1h", "") == fresh.split(b"\n")[:-1]


def test_stock_gearman_cli_logger(cluster: LocalCluster, tmp_path: Path) -> None:
    import subprocess

    # -n: one job per line, each answered once its line is fsynced: 3,456 jobs in a row,
    # which on a slow disk take well over a minute (10 s here, over 30 s in CI)
    subprocess.run(["gearman", "-h", "127.0.0.1", "-p", str(cluster.gearmand.port), "-n",
                    "-f", "logger"], stdin=HACKERS.open("rb"), check=True, timeout=600)
    cluster.wait_stored(HACKERS_LINES, timeout=300)
    assert grep_lines(cluster, "") == expected(HACKERS)


def test_errors_are_one_line_with_exit_2(cluster_factory: object, gearmand: object) -> None:
    bad_flag = logmr("grep", "--no-such-flag", "x")
    unreachable = logmr("grep", "x", servers="127.0.0.1:1")
    empty = logmr("grep", "x", servers=str(gearmand.server))  # type: ignore[attr-defined]
    bad_regex = logmr("grep", "(", servers=str(gearmand.server))  # type: ignore[attr-defined]
    bad_time = logmr("grep", "--since", "yesterday-ish", "x")
    for result, needle in ((bad_flag, b"no-such-flag"), (unreachable, b"127.0.0.1:1"),
                           (empty, b"no storage node"), (bad_regex, b"invalid pattern"),
                           (bad_time, b"cannot read time")):
        assert result.returncode == 2, result
        assert result.stderr.count(b"\n") == 1, result.stderr
        assert needle in result.stderr
        assert b"Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["grep", "--help"],
                                  ["ship", "--help"], ["worker", "--help"],
                                  ["status", "--help"]])
def test_help_and_version(args: list[str]) -> None:
    out = logmr(*args)
    assert out.returncode == 0 and out.stdout.strip()


def test_silent_node_is_named_and_results_are_partial(cluster: LocalCluster) -> None:
    import os
    import signal

    assert cluster.run("ship", str(SEMICOMPLETE)).returncode == 0
    cluster.wait_stored(SEMICOMPLETE_LINES)
    per_node = {k: int(v["lines"]) for k, v in cluster.node_stats().items()}  # type: ignore[call-overload]
    frozen = cluster.workers["node2"]
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        out = cluster.run("grep", "-c", "--timeout", "1", "")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    assert out.returncode == 0
    assert int(out.stdout) == per_node["node1"]
    assert b"node node2 did not answer" in out.stderr and b"partial" in out.stderr
    assert b"Traceback" not in out.stderr


def test_a_batch_stored_on_two_nodes_counts_once(cluster: LocalCluster) -> None:
    """A requeued batch can reach a second node after the first stored it (killed before
    its acknowledgement): grep and grep -c must still show its lines once."""
    lines = b"".join(HACKERS.read_bytes().splitlines(keepends=True)[:50])
    cluster.store_on_both_nodes("dup-batch-1", lines)
    stats = cluster.node_stats()
    assert [int(s["lines"]) for s in stats.values()] == [50, 50]  # type: ignore[call-overload]
    assert grep_lines(cluster, "") == expected_from(lines)
    assert cluster.run("grep", "-c", "").stdout == b"50\n"
    assert cluster.run("grep", "-c", "-F", "GET").stdout == b"%d\n" % sum(
        b"GET" in line for line in lines.splitlines())


def expected_from(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")[:-1]
    ts = times(lines)
    return [lines[i] for i in sorted(range(len(lines)), key=lambda i: ts[i])]


def test_file_mode_gives_what_the_cluster_gives(cluster: LocalCluster, tmp_path: Path) -> None:
    import gzip

    assert cluster.run("ship", str(SEMICOMPLETE)).returncode == 0
    cluster.wait_stored(SEMICOMPLETE_LINES)
    packed = tmp_path / "access.log.gz"
    packed.write_bytes(gzip.compress(SEMICOMPLETE.read_bytes()))

    def keep(out: bytes) -> list[tuple[str, str]]:
        return [(r["time"], r["line"]) for r in map(json.loads, out.splitlines())]

    # the same lines (and times); a file prints them in its own order, as GNU grep does
    # (tests/integration/test_file_grep.py), the cluster in time order
    for args in (["GET /presentations"], ["-c", "-i", "googlebot"], ["-v", "GET"],
                 ["--since", "2015-05-18T10:00:00+00:00", "--until",
                  "2015-05-18T10:30:00+00:00", ""], ["--json", "xdotool"]):
        there = cluster.run("grep", *args)
        for source in (str(SEMICOMPLETE), str(packed)):
            here = logmr("grep", *args, source, servers=cluster.servers)
            assert here.returncode == there.returncode == 0
            if "--json" in args:  # node and source host differ, rightly: time and line agree
                assert sorted(keep(here.stdout)) == sorted(keep(there.stdout))
                assert len(keep(here.stdout)) > 5
            else:
                assert sorted(here.stdout.splitlines()) == sorted(there.stdout.splitlines())
        piped = logmr("grep", *args, "-", stdin=SEMICOMPLETE.read_bytes())
        assert piped.stdout == here.stdout
