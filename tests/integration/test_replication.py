"""Replication on a real cluster: every batch on --replicas nodes, every query reading
each record once, copies taken from the stock gearman CLI too."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from logmr import wire
from logmr.client.search import GrepRequest, grep
from logmr.gearman import admin
from logmr.gearman.connection import Server
from logmr.mapfn.grep import GrepQuery
from logmr.store.node import NodeStore
from tests.cluster import HACKERS, HACKERS_LINES, SEMICOMPLETE, SEMICOMPLETE_LINES, LocalCluster
from tests.conftest import wait_for


def server(cluster: LocalCluster) -> list[Server]:
    return [cluster.gearmand.server]


def test_two_copies_on_two_nodes_and_each_read_once(cluster: LocalCluster) -> None:
    assert cluster.run("ship", str(SEMICOMPLETE)).returncode == 0
    cluster.wait_stored(SEMICOMPLETE_LINES)
    wait_for(lambda: cluster.copies() == 2 * SEMICOMPLETE_LINES, 30, "the copies to be stored")
    stats = cluster.node_stats()
    # every line on both
    assert [s["lines"] for s in stats.values()] == [SEMICOMPLETE_LINES, SEMICOMPLETE_LINES]
    assert [s["replicas"] for s in stats.values()] == [2, 2]
    r = cluster.status()["replication"]
    assert r == {"replicas": 2, "lines": SEMICOMPLETE_LINES, "copies": 2 * SEMICOMPLETE_LINES,
                 "under_replicated_batches": 0, "under_replicated_lines": 0,
                 "unavailable_lines": 0}
    assert cluster.run("grep", "-c", "").stdout == b"%d\n" % SEMICOMPLETE_LINES
    # each record is read by one node: the rows the nodes sent add up to the lines shown,
    # and each node sent its share (with every node sending everything, the merge would
    # keep the first node's row of each pair)
    outcome, lines = grep(server(cluster), GrepRequest(GrepQuery(b"GET")))
    shown = list(lines)
    assert outcome.reader is not None
    sent = sum(answer["count"] for answer in outcome.reader.answers())
    assert sent == len(shown) == SEMICOMPLETE.read_bytes().count(b"\"GET ")
    by_node = Counter(line.node for line in shown)
    assert set(by_node) == set(stats) and min(by_node.values()) > 0.3 * len(shown), by_node


def test_one_copy_when_asked_for_one(cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = cluster_factory(nodes=2, worker_args=("--replicas", "1"))
    assert cluster.run("ship", str(HACKERS)).returncode == 0
    cluster.wait_stored(HACKERS_LINES)
    assert cluster.copies() == HACKERS_LINES
    assert cluster.status()["replication"]["under_replicated_batches"] == 0


def test_with_one_node_batches_are_stored_and_counted_short(
        cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = cluster_factory(nodes=1)
    assert cluster.run("ship", str(HACKERS)).returncode == 0
    cluster.wait_stored(HACKERS_LINES)
    r = cluster.status()["replication"]
    assert (r["lines"], r["copies"], r["under_replicated_lines"]) == (HACKERS_LINES,) * 3
    assert r["under_replicated_batches"] > 0
    table = cluster.run("status").stdout
    assert b"under-replicated" in table and b"3,456 lines" in table


def test_a_copy_sent_with_the_stock_gearman_cli(cluster: LocalCluster, tmp_path: Path) -> None:
    """Any Gearman client may hand a node a copy: a background job from the `gearman`
    CLI with a replica payload is stored once; garbage is refused and stores nothing."""
    origin = NodeStore(str(tmp_path / "origin"), node_id="origin", min_free="0")
    lines = b"".join(HACKERS.read_bytes().splitlines(keepends=True)[:40])
    records = origin.store(wire.Batch("cli-copy-1", "web9", "combined", lines)).records
    origin.close()
    payload = tmp_path / "copy.bin"
    payload.write_bytes(wire.pack_replica(wire.Replica("cli-copy-1", "origin", records)))
    base = ["gearman", "-h", "127.0.0.1", "-p", str(cluster.gearmand.port), "-b"]
    for _ in range(2):  # twice: the second is a duplicate
        subprocess.run([*base, "-f", wire.replica_function("node1")],
                       stdin=payload.open("rb"), check=True, timeout=30)
    for junk in (b"", b"\x00" * 10, b"\x93\x01\x02", b"garbage"):
        subprocess.run([*base, "-f", wire.replica_function("node1")], input=junk, check=True,
                       timeout=30)
    wait_for(lambda: cluster.stored_lines() >= 40, 30, "the copy to be stored")
    wait_for(lambda: all(f.total == 0 for f in admin.status(cluster.gearmand.server)
                         if f.name.startswith(wire.REPLICA_PREFIX)), 30,
             "the copy jobs to be taken")
    stats = cluster.node_stats()
    assert stats["node1"]["lines"] == 40
    assert cluster.run("grep", "-c", "").stdout == b"40\n"
    assert cluster.workers["node1"].poll() is None
