"""Timing and topology: a quiet line arrives within a second; several job servers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from logmr import wire
from logmr.gearman import admin
from tests.cluster import PRESENTATIONS, SEMICOMPLETE, SEMICOMPLETE_LINES, LocalCluster, logmr
from tests.conftest import GearmandProcess, wait_for


def test_a_line_at_a_quiet_moment_is_stored_within_a_second(cluster: LocalCluster) -> None:
    ship = subprocess.Popen([sys.executable, "-m", "logmr", "ship", "--servers",
                             cluster.servers], stdin=subprocess.PIPE)
    assert ship.stdin is not None
    try:
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        line = f'10.1.2.3 - - [{stamp}] "GET /quiet HTTP/1.1" 200 1 "-" "probe"\n'.encode()
        ship.stdin.write(line)
        ship.stdin.flush()
        # stdin stays open: only the batch age can send this line (the age itself is
        # checked with a fake clock in the batcher's unit tests; this is a hang guard)
        wait_for(lambda: cluster.run("grep", "-F", "/quiet").stdout == line, 30,
                 "the quiet line to be stored")
    finally:
        ship.stdin.close()
        assert ship.wait(30) == 0


def test_two_job_servers(gearmand_factory: Callable[..., GearmandProcess],
                         tmp_path: Path) -> None:
    first, second = gearmand_factory(), gearmand_factory()
    servers = f"{first.server},{second.server}"
    # ship before any node runs: the queues show where the batches went
    assert logmr("ship", "--batch-lines", "1000", str(SEMICOMPLETE),
                 servers=servers).returncode == 0
    queued = [sum(f.total for f in admin.status(gm.server) if f.name == wire.STORE_FUNCTION)
              for gm in (first, second)]
    assert sum(queued) == 10 and all(queued), queued  # 10 batches of 1000, spread by id
    workers = []
    try:
        for n in (1, 2):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "logmr", "worker", "--data-dir",
                 str(tmp_path / f"n{n}"), "--node-id", f"n{n}", "--servers", servers],
                stderr=subprocess.DEVNULL))

        def stored() -> int:
            out = logmr("grep", "-c", "", servers=servers)
            return int(out.stdout or 0)

        wait_for(lambda: stored() == SEMICOMPLETE_LINES, 30, "all lines stored")
        out = logmr("grep", "GET /presentations", servers=servers)
        assert out.stdout.count(b"\n") == PRESENTATIONS
        # one job server gone: the other still reaches every node
        first.stop()
        out = logmr("grep", "-c", "", servers=servers)
        assert (out.returncode, int(out.stdout)) == (0, SEMICOMPLETE_LINES)
        assert f"job server {first.server} is down".encode() in out.stderr
    finally:
        for w in workers:
            w.terminate()
            w.wait(20)
