"""Stored lines are personal data: nothing under a node's data dir or ship's spool is open
to other users, whatever the umask, and a data dir found open is closed at start."""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster import SEMICOMPLETE, LocalCluster
from tests.conftest import wait_for
from tests.faults.ledger import ship_pipe


def open_paths(root: Path) -> list[str]:
    """Every path under ``root`` (root included) that group or others may use."""
    paths = [root, *root.rglob("*")]
    return [f"{p} {stat.filemode(p.lstat().st_mode)}" for p in paths
            if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077]


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Processes started meanwhile create files with every permission the code asks for."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_nothing_a_node_or_ship_writes_is_open_to_others(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path, open_umask: None) -> None:
    cluster = cluster_factory(nodes=2, worker_args=("--repair-every", "1"))
    assert cluster.run("ship", str(SEMICOMPLETE)).returncode == 0
    cluster.wait_stored(SEMICOMPLETE.read_bytes().count(b"\n"))
    wait_for(lambda: all((cluster.root / n / "catalog.msgpack").exists()
                         for n in cluster.workers), 30, "a repair round to save its catalog")
    # and what a ship spools while no job server answers
    cluster.gearmand.stop()
    spool = tmp_path / "spool"
    ship = ship_pipe(cluster.servers, spool)
    assert ship.stdin is not None
    ship.stdin.write(SEMICOMPLETE.read_bytes())
    ship.stdin.flush()
    wait_for(lambda: sum(p.stat().st_size for p in spool.glob("*.spool"))
             >= SEMICOMPLETE.stat().st_size, 30, "ship to spool its input")
    try:
        for node in cluster.workers:
            assert (cluster.root / node / "segments").is_dir()
            assert open_paths(cluster.root / node) == []
        assert list(spool.glob("*.spool"))
        assert open_paths(spool) == []
    finally:
        ship.send_signal(signal.SIGKILL)
        ship.wait()


def test_a_data_dir_open_to_others_is_closed_at_start(
        cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = cluster_factory(nodes=1)
    assert cluster.run("ship", str(SEMICOMPLETE)).returncode == 0
    cluster.wait_stored(SEMICOMPLETE.read_bytes().count(b"\n"))
    cluster.stop_worker("node1")
    data = cluster.root / "node1"
    for path in [data, *data.rglob("*")]:  # as an older logmr, or a careless admin, left it
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert open_paths(data)
    cluster.start_worker("node1")
    assert open_paths(data) == []
    assert "was open to other users" in cluster.worker_log("node1")
    assert cluster.run("grep", "-c", "").stdout == b"%d\n" % SEMICOMPLETE.read_bytes().count(
        b"\n")
