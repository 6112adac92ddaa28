"""Faults on the ingest path: killed workers, a killed job server, a job server that is
down while Apache keeps writing. Every case counts every line."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cluster import LocalCluster
from tests.conftest import wait_for
from tests.faults.ledger import (
    PacedShip,
    assert_exact,
    ship_pipe,
    stored_count,
    tally,
    unique_lines,
    wait_count,
    write_all,
)

pytestmark = pytest.mark.slow


def ship_process(cluster: LocalCluster, spool: Path) -> subprocess.Popen[bytes]:
    """`logmr ship` reading a pipe, its errors kept for the assertion messages."""
    return ship_pipe(cluster.servers, spool, stderr=subprocess.PIPE)


def test_kill9_a_worker_mid_ingest(cluster_factory: Callable[..., LocalCluster],
                                   tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=2)
    lines = unique_lines("k9w", 200_000)
    ship = PacedShip(cluster, lines, tmp_path / "spool", under_way=40_000)
    cluster.stop_worker("node1", signal.SIGKILL)
    assert stored_count(cluster) < 200_000, "ingest finished before the kill"
    cluster.start_worker("node1")
    ship.finish()
    wait_count(cluster, 200_000)
    assert_exact(tally("kill -9 a worker mid-ingest (200k lines)", cluster, lines))


def test_kill9_gearmand_mid_ingest(cluster_factory: Callable[..., LocalCluster],
                                   tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=2, persistent=True)
    lines = unique_lines("k9g", 100_000)
    ship = ship_process(cluster, tmp_path / "spool")
    assert ship.stdin is not None
    writer = threading.Thread(target=lambda: write_all(ship, lines))
    writer.start()
    wait_for(lambda: stored_count(cluster) >= 20_000, 60, "ingest under way")
    cluster.gearmand.kill9()
    cluster.gearmand.start()
    writer.join(120)
    assert ship.wait(120) == 0, ship.stderr.read() if ship.stderr else ""
    wait_count(cluster, 100_000)
    assert_exact(tally("kill -9 gearmand (sqlite queue) mid-ingest (100k)", cluster, lines))


def test_gearmand_down_30s_while_ship_keeps_reading(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=2, persistent=True)
    spool = tmp_path / "spool"
    ship = ship_process(cluster, spool)
    assert ship.stdin is not None
    lines = unique_lines("down30", 60_000, per_second=100)
    before, during, after = lines[:10_000], lines[10_000:50_000], lines[50_000:]
    slowest = 0.0

    def write(batch: list[bytes], seconds: float) -> None:
        """Write at a steady pace over ``seconds``, timing every write."""
        nonlocal slowest
        step = max(1, len(batch) // 200)
        for i in range(0, len(batch), step):
            started = time.monotonic()
            ship.stdin.write(b"".join(batch[i:i + step]))  # type: ignore[union-attr]
            ship.stdin.flush()  # type: ignore[union-attr]
            slowest = max(slowest, time.monotonic() - started)
            pause = seconds / 200
            if pause:
                time.sleep(pause)  # the pace of a web server, not synchronisation

    write(before, 0)
    wait_count(cluster, 10_000, 60)
    cluster.gearmand.stop()
    down_at = time.monotonic()
    spool_size = [0]
    write(during, 25)
    spool_size[0] = sum(p.stat().st_size for p in spool.glob("*.spool"))
    wait_for(lambda: time.monotonic() - down_at >= 30, 40, "30 s of downtime")
    cluster.gearmand.start()
    write(after, 0)
    ship.stdin.close()
    assert ship.wait(120) == 0, ship.stderr.read() if ship.stderr else ""
    wait_count(cluster, 60_000)
    result = tally("gearmand down 30 s while ship reads (60k)", cluster, lines)
    assert_exact(result)
    print(f"slowest write into ship's stdin: {slowest * 1000:.0f} ms; spool held "
          f"{spool_size[0]:,} bytes while gearmand was down")
    # a ship that stopped reading while gearmand was down would block its writer once the
    # pipe filled, for the rest of the 30 s outage: a hang guard, not a latency target
    assert slowest < 10
    assert spool_size[0] >= sum(len(x) for x in during) * 0.9
    # in order per source: time order is the order they were written
    out = cluster.run("grep", "")
    assert out.stdout.split(b"\n")[:-1] == [x.rstrip(b"\n") for x in lines]
    assert not list(spool.glob("*.spool")), "the spool is empty once everything is queued"


def test_kill9_ship_then_the_next_ship_sends_its_spool(cluster: LocalCluster,
                                                       tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    lines = unique_lines("k9s", 30_000)
    cluster.gearmand.stop()  # nothing can leave the spool: all of it waits there
    first = ship_process(cluster, spool)
    assert first.stdin is not None
    first.stdin.write(b"".join(lines[:20_000]))
    first.stdin.flush()
    wait_for(lambda: sum(p.stat().st_size for p in spool.glob("*.spool")) >= sum(
        len(x) for x in lines[:20_000]), 30, "the first ship to spool its input")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    cluster.gearmand.start()
    second = ship_process(cluster, spool)
    write_all(second, lines[20_000:])
    assert second.wait(120) == 0
    wait_count(cluster, 30_000)
    assert_exact(tally("kill -9 ship, next ship sends its spool (30k)", cluster, lines))
    assert not list(spool.glob("*.spool"))
