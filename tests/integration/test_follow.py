"""`logmr grep --follow` shows a line shipped after it started within 2 s, in time order."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time

from tests.cluster import LocalCluster
from tests.conftest import wait_for


def test_follow_shows_new_lines_within_two_seconds(cluster: LocalCluster) -> None:
    follow = subprocess.Popen([sys.executable, "-m", "logmr", "grep", "--follow", "/live/",
                               "--servers", cluster.servers], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert follow.stdout is not None
    try:
        # the follower is polling once its first (empty) query has gone round
        wait_for(lambda: follow.poll() is None and cluster.run(
            "status").returncode == 0, 10, "the follower to start")
        stamp = time.gmtime()
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", stamp)
        lines = [f'10.9.9.{i} - - [{when}] "GET /live/{i} HTTP/1.1" 200 1 "-" "f"\n'.encode()
                 for i in range(3)]
        shipped = subprocess.run([sys.executable, "-m", "logmr", "ship", "--servers",
                                  cluster.servers, "--spool-dir", str(cluster.root / "sp")],
                                 input=b"".join(lines), check=True, capture_output=True)
        assert shipped.returncode == 0
        deadline = time.monotonic() + 30  # a hang guard: they show while it still runs
        got = b""
        while got.count(b"\n") < 3 and time.monotonic() < deadline:
            ready, _, _ = select.select([follow.stdout], [], [], 0.1)
            if ready:
                got += follow.stdout.read1(65536)  # type: ignore[attr-defined]
        assert got.splitlines() == [x.rstrip(b"\n") for x in lines], got
    finally:
        follow.send_signal(signal.SIGINT)
        assert follow.wait(10) == 0
