"""Compaction on real nodes: two workers with --compact-after 0 rewrite what they hold as
columns, and grep, grep -c and report then agree with GNU grep and with file mode."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from tests.cluster import SEMICOMPLETE, LocalCluster
from tests.conftest import wait_for


def compacted(cluster: LocalCluster) -> bool:
    stats = cluster.node_stats()
    return len(stats) == 2 and all(s["records_to_compact"] == 0 and s["lines"] for s in
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
    assert all(s["disk_bytes"] * 8 < len(sent) for s in stats.values())  # two copies each
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
