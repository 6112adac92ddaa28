"""Count every line: what a fault case sent against what the cluster stores.

Each case ships lines that are unique (a serial number in the URL), then reads everything
back with `logmr grep ''` and `logmr grep -c ''` and compares multisets: sent = stored,
duplicates = 0. Each case prints one row of the table: case, sent, stored, unique, dups.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import LocalCluster
from tests.conftest import wait_for

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def unique_lines(case: str, count: int, start: int | None = None, per_second: int = 50
                 ) -> list[bytes]:
    """``count`` combined-format lines, each unique, times increasing from ``start``."""
    start = int(time.time()) - 3600 if start is None else start
    out = []
    for i in range(count):
        t = time.gmtime(start + i // per_second)
        stamp = (f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:"
                 f"{t.tm_min:02d}:{t.tm_sec:02d} +0000")
        out.append(f'10.{i % 250}.{i // 250 % 250}.1 - - [{stamp}] "GET /u/{case}/{i} '
                   f'HTTP/1.1" 200 {i} "-" "logmr-fault-test"\n'.encode())
    return out


@dataclass
class Tally:
    """One row of the table."""

    case: str
    sent: int
    stored: int
    unique: int
    duplicates: int
    missing: int
    on_disk: int  # copies the nodes hold; more than stored when a batch went to two nodes

    def row(self) -> str:
        """The row as printed."""
        return (f"| {self.case} | {self.sent} | {self.stored} | {self.unique} | "
                f"{self.duplicates} | {self.missing} | {self.on_disk} |")


def stored_count(cluster: LocalCluster, pattern: str = "") -> int:
    """`logmr grep -c PATTERN` (0 while nothing answers)."""
    out = cluster.run("grep", "-c", pattern)
    return int(out.stdout) if out.returncode in (0, 1) and out.stdout.strip() else 0


def wait_count(cluster: LocalCluster, expected: int, timeout: float = 120.0,
               pattern: str = "") -> None:
    """Wait until `grep -c` says ``expected`` (and fail if it overshoots)."""
    def reached() -> bool:
        got = stored_count(cluster, pattern)
        assert got <= expected, f"{got} lines stored, more than the {expected} sent"
        return got == expected

    wait_for(reached, timeout, f"{expected} lines stored")


def tally(case: str, cluster: LocalCluster, sent: list[bytes], pattern: str = "") -> Tally:
    """Read everything back and compare with what was sent; prints the row."""
    out = cluster.run("grep", pattern)
    assert out.returncode in (0, 1), out.stderr
    stored = out.stdout.split(b"\n")[:-1]
    want = Counter(line.rstrip(b"\n") for line in sent)
    got = Counter(stored)
    result = Tally(case=case, sent=len(sent), stored=len(stored), unique=len(got),
                   duplicates=sum(n - 1 for n in got.values() if n > 1),
                   missing=sum((want - got).values()), on_disk=cluster.copies())
    print(f"\n{result.row()}")
    assert stored_count(cluster, pattern) == len(stored)
    return result


def assert_exact(result: Tally) -> None:
    """sent = stored = unique, nothing duplicated or missing."""
    assert (result.stored, result.unique, result.duplicates, result.missing) == (
        result.sent, result.sent, 0, 0), result


# -- shipping as Apache does ------------------------------------------------------------------

class PacedShip:
    """`logmr ship` on a pipe fed at a busy web server's pace (1000 lines every 50 ms), so
    that a fault lands mid-ingest: it returns once ``under_way`` lines are stored."""

    def __init__(self, cluster: LocalCluster, lines: list[bytes], spool: Path,
                 under_way: int = 30_000) -> None:
        self.proc = ship_pipe(cluster.servers, spool)
        self.writer = threading.Thread(target=write_all, args=(self.proc, lines, 1000, 0.05))
        self.writer.start()
        wait_for(lambda: stored_count(cluster) >= under_way, 60, "ingest under way")

    def finish(self) -> None:
        """Wait for the last line to be written and for ship to exit 0."""
        self.writer.join(120)
        assert self.proc.wait(120) == 0


def ship_pipe(servers: str, spool: Path, *extra: str,
              stderr: int | None = None) -> subprocess.Popen[bytes]:
    """`logmr ship` reading a pipe, as Apache runs it."""
    return subprocess.Popen([sys.executable, "-m", "logmr", "ship", "--servers", servers,
                             "--spool-dir", str(spool), *extra], stdin=subprocess.PIPE,
                            stderr=stderr)


def write_all(proc: subprocess.Popen[bytes], lines: list[bytes], chunk: int = 500,
               pause: float = 0.0) -> None:
    """Write every line into ship's stdin, ``chunk`` lines every ``pause`` seconds (the
    pace of a busy web server, so that faults land mid-ingest), then close it."""
    assert proc.stdin is not None
    for i in range(0, len(lines), chunk):
        proc.stdin.write(b"".join(lines[i:i + chunk]))
        proc.stdin.flush()
        if pause:
            time.sleep(pause)  # pacing the input, not synchronisation
    proc.stdin.close()
