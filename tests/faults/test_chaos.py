"""The chaos suite: Jepsen's set check under full disks, lost nodes, lost job servers and
paused nodes. Every line shipped must be found exactly once by `grep -c`, `grep` and
`report --summary`, and (after repair) be on disk as many times as asked.

Each case prints one row: case | sent | stored | unique | duplicates | missing | copies.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from logmr import wire
from logmr.gearman import admin
from tests.cluster import LocalCluster
from tests.conftest import wait_for
from tests.faults.conftest import SmallDisk
from tests.faults.ledger import (
    PacedShip,
    assert_exact,
    stored_count,
    tally,
    unique_lines,
    wait_count,
)
from tests.netns import Network

pytestmark = pytest.mark.slow


def write_log(tmp_path: Path, case: str, count: int) -> tuple[Path, list[bytes]]:
    """A file of ``count`` unique lines."""
    lines = unique_lines(case, count)
    path = tmp_path / f"{case}.log"
    path.write_bytes(b"".join(lines))
    return path, lines


def node_state(cluster: LocalCluster, node_id: str) -> dict[str, Any]:
    """One node's stats, from `logmr status --format json`."""
    state: dict[str, Any] = cluster.node_stats()[node_id]
    return state


def replication(cluster: LocalCluster) -> dict[str, Any]:
    """The replication section of `logmr status --format json`."""
    section: dict[str, Any] = cluster.status()["replication"]
    return section


def queued(cluster: LocalCluster, function: str) -> int:
    """Jobs waiting in the job server for ``function``."""
    return sum(f.total for f in admin.status(cluster.gearmand.server) if f.name == function)


def assert_summary_exact(cluster: LocalCluster, sent: int) -> None:
    """`report --summary` counts every line once."""
    assert cluster.summary()["requests"] == sent


def wait_repaired(cluster: LocalCluster, sent: int, copies: int, timeout: float = 120) -> None:
    """Wait until no batch is short of copies and the disks hold ``copies`` of each line."""
    def done() -> bool:
        r = replication(cluster)
        return r["under_replicated_batches"] == 0 and r["lines"] == sent and (
            r["copies"] >= copies * sent)

    wait_for(done, timeout, f"{copies} copies of every line")


# -- (a), (b): full disks ------------------------------------------------------------------------

def test_b_the_only_node_fills_its_disk_then_gets_room(
        cluster_factory: Callable[..., LocalCluster],
        small_disk: Callable[[Path, int], SmallDisk], tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=0)
    disk = small_disk(cluster.root / "node1", 2)
    cluster.start_worker("node1", "--replicas", "1")
    # 600k of these lines take 2.8 MB stored: more than the disk holds
    path, lines = write_log(tmp_path, "full1", 600_000)
    assert cluster.run("ship", str(path)).returncode == 0
    wait_for(lambda: not node_state(cluster, "node1")["taking_batches"], 120,
             "the node to stop taking batches")
    state = node_state(cluster, "node1")
    assert "disk full" in state["refusing"]
    assert state["disk_free_bytes"] is not None and state["disk_free_bytes"] < 1 << 20
    table = cluster.run("status")
    assert b"not taking batches: disk full" in table.stdout, table.stdout
    held = stored_count(cluster)
    assert 0 < held < 600_000
    assert queued(cluster, wire.STORE_FUNCTION) > 0  # the rest waits in the queue
    assert cluster.run("grep", "-c", "").stdout == b"%d\n" % held  # queries still work
    assert cluster.workers["node1"].poll() is None
    disk.grow(64)
    wait_count(cluster, 600_000, 120)
    assert node_state(cluster, "node1")["taking_batches"]
    assert_exact(tally("(b) disk full on the only node, then freed (600k)", cluster, lines))
    assert_summary_exact(cluster, 600_000)
    assert b"Traceback" not in (cluster.root / "node1.log").read_bytes()


def test_a_one_of_three_nodes_fills_its_disk_mid_ingest(
        cluster_factory: Callable[..., LocalCluster],
        small_disk: Callable[[Path, int], SmallDisk], tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=0)
    disk = small_disk(cluster.root / "node3", 2)
    for node_id in ("node1", "node2", "node3"):
        cluster.start_worker(node_id, "--repair-every", "1")
    # node3's share (2 copies of 900k lines over 3 nodes) takes 2.8 MB stored
    path, lines = write_log(tmp_path, "full3", 900_000)
    assert cluster.run("ship", str(path)).returncode == 0
    wait_for(lambda: not node_state(cluster, "node3")["taking_batches"], 120,
             "node3 to stop taking batches")
    assert node_state(cluster, "node3")["lines"] > 0  # it filled up on the way
    wait_count(cluster, 900_000, 120)  # the other two took the rest, queries are exact
    assert_summary_exact(cluster, 900_000)
    disk.grow(256)
    wait_for(lambda: node_state(cluster, "node3")["taking_batches"], 30,
             "node3 to take batches again")
    wait_repaired(cluster, 900_000, 2)
    result = tally("(a) disk full on one of 3 nodes mid-ingest, then freed (900k, RF=2)",
                   cluster, lines)
    assert_exact(result)
    assert result.on_disk >= 2 * 900_000
    assert_summary_exact(cluster, 900_000)


# -- (c): a node lost with its disk, then a second ---------------------------------------------

def test_c_a_lost_node_is_replaced_and_its_copies_come_back(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=3, worker_args=("--repair-every", "1"))
    lines = unique_lines("lost", 150_000)
    ship = PacedShip(cluster, lines, tmp_path / "spool")
    cluster.stop_worker("node2", signal.SIGKILL)
    shutil.rmtree(cluster.root / "node2")
    assert stored_count(cluster) < 150_000, "ingest finished before the kill"
    ship.finish()
    wait_count(cluster, 150_000)  # complete and exact from the copies alone
    assert_summary_exact(cluster, 150_000)
    assert_exact(tally("(c) RF=2, 3 nodes: one killed -9 and its disk lost", cluster, lines))
    cluster.start_worker("node2", "--repair-every", "1")  # a blank node takes its place
    wait_repaired(cluster, 150_000, 2)
    result = tally("(c) ... after repair", cluster, lines)
    assert_exact(result)
    assert result.on_disk >= 2 * 150_000
    cluster.stop_worker("node1", signal.SIGKILL)  # a second node lost for good
    shutil.rmtree(cluster.root / "node1")
    result = tally("(c) ... then a second node lost", cluster, lines)
    assert_exact(result)
    assert_summary_exact(cluster, 150_000)


def test_c_a_node_back_with_old_data_is_brought_up_to_date(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=3, worker_args=("--repair-every", "1"))
    lines = unique_lines("back", 120_000)
    ship = PacedShip(cluster, lines, tmp_path / "spool")
    cluster.stop_worker("node2", signal.SIGKILL)  # its disk is kept
    ship.finish()
    wait_count(cluster, 120_000)
    cluster.start_worker("node2", "--repair-every", "1")
    wait_repaired(cluster, 120_000, 2)
    result = tally("(c) a node killed mid-ingest, back with its old data (120k, RF=2)",
                   cluster, lines)
    assert_exact(result)
    assert_summary_exact(cluster, 120_000)


# -- (e): one of two job servers killed ---------------------------------------------------------

def test_e_one_of_two_job_servers_killed_and_back_after_30s(
        gearmand_factory: Callable[..., Any], tmp_path: Path) -> None:
    from tests.cluster import LocalCluster as Cluster

    first, second = gearmand_factory(persistent=True), gearmand_factory(persistent=True)
    cluster = Cluster(first, tmp_path / "two")
    cluster.root.mkdir()
    servers = f"{first.server},{second.server}"
    cluster.servers_override = servers
    try:
        for node_id in ("node1", "node2", "node3"):
            cluster.start_worker(node_id)
        lines = unique_lines("twogm", 200_000)
        ship = PacedShip(cluster, lines, tmp_path / "spool", under_way=40_000)
        first.kill9()
        killed = time.monotonic()
        wait_for(lambda: time.monotonic() - killed >= 30, 40, "30 s with one server down")
        first.start()
        ship.finish()
        wait_count(cluster, 200_000)
        result = tally("(e) one of two job servers killed -9, back after 30 s (200k)",
                       cluster, lines)
        assert_exact(result)
        assert_summary_exact(cluster, 200_000)
    finally:
        cluster.stop()


# -- (f): a node paused during a query ----------------------------------------------------------

def test_f_a_paused_node_leaves_queries_complete(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=3, worker_args=("--repair-every", "1"))
    path, lines = write_log(tmp_path, "pause", 100_000)
    assert cluster.run("ship", str(path)).returncode == 0
    wait_count(cluster, 100_000)
    wait_repaired(cluster, 100_000, 2)
    truth = sorted(x.rstrip(b"\n") for x in lines)
    frozen = cluster.workers["node2"]
    # paused before the query, and paused while the query runs: complete either way
    for when in ("before", "during"):
        queries: dict[str, subprocess.Popen[bytes]] = {}
        if when == "before":
            os.kill(frozen.pid, signal.SIGSTOP)
        try:
            for name, args in (("count", ("grep", "-c", "", "--timeout", "3")),
                               ("lines", ("grep", "", "--timeout", "3")),
                               ("summary", ("report", "--summary", "--format", "json",
                                            "--timeout", "3"))):
                queries[name] = subprocess.Popen(
                    [sys.executable, "-m", "logmr", *args],
                    env={**os.environ, "LOGMR_SERVERS": cluster.servers},
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if when == "during":
                os.kill(frozen.pid, signal.SIGSTOP)
            out = {name: q.communicate(timeout=60) for name, q in queries.items()}
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        for name, q in queries.items():
            assert q.returncode == 0, (when, name, out[name][1])
            assert b"partial" not in out[name][1], (when, name, out[name][1])
        assert int(out["count"][0]) == 100_000, when
        assert sorted(out["lines"][0].split(b"\n")[:-1]) == truth, when
        assert json.loads(out["summary"][0])["summary"]["requests"] == 100_000, when
        if when == "before":
            assert b"node node2 did not answer" in out["count"][1]
        unique = len(set(out["lines"][0].split(b"\n")[:-1]))
        print(f"\n| (f) node paused {when} a query (100k, RF=2) | 100000 | "
              f"{int(out['count'][0])} | {unique} | 0 | 0 | {cluster.copies()} |")


# -- (d): a node partitioned away, then healed --------------------------------------------------

def test_d_a_partitioned_node_then_healed(gearmand_factory: Callable[..., Any],
                                          network: Network, tmp_path: Path) -> None:
    gm_host = network.host("gm")
    gearmand = gearmand_factory(host=gm_host, wrap=network.wrap("gm"))
    cluster = LocalCluster(gearmand, tmp_path / "net")
    cluster.root.mkdir()
    try:
        for node_id in ("node1", "node2", "node3"):
            network.host(node_id)
            cluster.wrap[node_id] = network.wrap(node_id)
            cluster.start_worker(node_id, "--repair-every", "1")
        lines = unique_lines("part", 150_000)
        ship = PacedShip(cluster, lines, tmp_path / "spool")
        network.cut("node3")
        # queries while it is cut off: they end within their timeout, with nothing twice
        for _ in range(2):
            out = cluster.run("grep", "--timeout", "3", "", timeout=30)  # the deadline
            assert out.returncode == 0, out.stderr
            got = out.stdout.split(b"\n")[:-1]
            assert len(got) == len(set(got)) <= 150_000
            assert b"node node3 did not answer" in out.stderr
        ship.finish()
        network.heal("node3")
        wait_count(cluster, 150_000, 180)
        wait_repaired(cluster, 150_000, 2, 180)
        result = tally("(d) a node partitioned away during ingest and queries, healed "
                       "(150k, RF=2)", cluster, lines)
        assert_exact(result)
        assert_summary_exact(cluster, 150_000)
    finally:
        cluster.stop()
