"""Compaction on real nodes: two workers with --compact-after 0 rewrite what they hold as
columns, and grep, grep -c and report then agree with GNU grep and with file mode."""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
from collections.abc import Callable

import msgpack
import pytest

from logmr import wire
from tests.cluster import SEMICOMPLETE, LocalCluster
from tests.conftest import wait_for


def compacted(cluster: LocalCluster, nodes: int = 2) -> bool:
    stats = cluster.node_stats()
    return len(stats) == nodes and all(s["records_to_compact"] == 0 and s["lines"] for s in
                                   stats.values())


def test_nodes_compact_what_they_hold_and_queries_agree(
        cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = cluster_factory(nodes=0)
    for node_id in ("node1", "node2"):
        cluster.start_worker(node_id, "--compact-after", "0")
    sent = SEMICOMPLETE.read_bytes()
    assert cluster.run("ship", "--batch-lines", "700", str(SEMICOMPLETE)).returncode == 0
    wait_for(lambda: cluster.run("grep", "-c", "").stdout == b"%d\n" % sent.count(b"\n"),
             60, "stored")
    wait_for(lambda: compacted(cluster), 60, "every record compacted")
    stats = cluster.node_stats()
    # each node holds a copy of all, as columns and token filters, in 700-line records
    assert all(s["disk_bytes"] * 6 < len(sent) for s in stats.values())
    # every line back once, byte for byte
    assert sorted(cluster.run("grep", "").stdout.splitlines()) == sorted(sent.splitlines())
    for pattern in ("GET /", "Googlebot", '" 404 '):
        gnu = subprocess.run(["grep", "-c", pattern, str(SEMICOMPLETE)], capture_output=True,
                             check=True).stdout
        assert cluster.run("grep", "-c", pattern).stdout == gnu
    ours = json.loads(cluster.run("report", "--all", "--format", "json").stdout)
    files = json.loads(cluster.run("report", "--all", "--format", "json",
                                   str(SEMICOMPLETE)).stdout)
    ours["summary"].pop("nodes", None)
    files["summary"].pop("nodes", None)
    assert ours == files


@pytest.mark.skipif(shutil.which("gearman") is None, reason="the stock gearman CLI is not "
                    "installed (apt-get install gearman-tools)")
def test_a_grep_for_one_client_reads_only_the_records_that_may_hold_it(
        cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = cluster_factory(nodes=0)
    cluster.start_worker("node1", "--compact-after", "0")
    sent = SEMICOMPLETE.read_bytes()
    assert cluster.run("ship", "--batch-lines", "500", str(SEMICOMPLETE)).returncode == 0
    wait_for(lambda: cluster.run("grep", "-c", "").stdout == b"%d\n" % sent.count(b"\n"),
             60, "stored")
    wait_for(lambda: compacted(cluster, 1), 60, "every record compacted")
    hosts = collections.Counter(line.split(b" ", 1)[0] for line in sent.splitlines())
    rare = min(hosts, key=lambda h: (hosts[h], h))
    for flags in (["-F"], ["-F", "-i"], []):
        gnu = subprocess.run(["grep", "-c", *flags, "--", rare.decode(), str(SEMICOMPLETE)],
                             capture_output=True).stdout
        assert cluster.run("grep", "-c", *flags, "--", rare.decode()).stdout == gnu
        assert cluster.run("grep", *flags, "--", rare.decode()).stdout == subprocess.run(
            ["grep", *flags, "--", rare.decode(), str(SEMICOMPLETE)],
            capture_output=True).stdout
    # the stock gearman CLI asks the node itself: most records are ruled out unread
    out = subprocess.run(
        ["gearman", "-h", "127.0.0.1", "-p", str(cluster.gearmand.port), "-f",
         wire.map_function("node1")], capture_output=True, timeout=60,
        input=wire.pack_request(wire.MapRequest("grep", {
            "pattern": re.escape(rare), "count_only": True})))
    assert out.returncode == 0, out.stderr
    unpacker = msgpack.Unpacker(raw=False)  # the answer, then the CLI's "N% Complete"s
    unpacker.feed(out.stdout)
    answer = next(unpacker)
    records = -(-sent.count(b"\n") // 500)
    assert answer["count"] == hosts[rare]
    assert answer["skipped"] >= records // 2, answer
    assert answer["skipped"] + len(answer["records"]) <= records
