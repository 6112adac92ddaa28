"""The stock `gearman` CLI sends every logmr function what a careless or hostile client
might: every call returns within 5 s, the nodes keep serving, and what they store does not
change (only `logger`, whose contract is "any bytes are log lines", stores what it gets)."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Callable

import pytest

from logmr import wire
from tests.cluster import SEMICOMPLETE, LocalCluster

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("gearman") is None,
                                 reason="the stock gearman CLI is not installed "
                                        "(apt-get install gearman-tools)")]

RNG = random.Random(1729)
BATCH = wire.pack_batch(wire.Batch("cli-batch", "web1", "combined", SEMICOMPLETE.read_bytes()))
REQUEST = wire.pack_request(wire.MapRequest("grep", {"pattern": "GET"}))
REPLICA = wire.pack_replica(wire.Replica("cli-copy", "node2", [b"not a record" * 40]))

# what a careless or hostile client sends: name -> payload (per function, where it differs)
JUNK: dict[str, bytes] = {
    "empty": b"",
    "NULs": b"\0" * 300,
    "random bytes": RNG.randbytes(4096),
    "2 MiB of random bytes": RNG.randbytes(2 << 20),
}
TRUNCATED = {wire.STORE_FUNCTION: BATCH[:len(BATCH) // 2], "map": REQUEST[:len(REQUEST) // 2],
             "replica": REPLICA[:len(REPLICA) // 2]}


def stock(cluster: LocalCluster, function: str, payload: bytes
          ) -> subprocess.CompletedProcess[bytes]:
    """`gearman -f FUNCTION` with ``payload`` on stdin, as a user types it: it must end
    within 5 s (a deadline: a call that hangs fails the test)."""
    return subprocess.run(["gearman", "-h", "127.0.0.1", "-p", str(cluster.gearmand.port),
                           "-f", function], input=payload, capture_output=True, timeout=5)


def holdings(cluster: LocalCluster) -> tuple[int, bytes]:
    """What the cluster stores: its line count and every line, in order."""
    out = cluster.run("grep", "")
    assert out.returncode == 0, out.stderr
    return cluster.stored_lines(), out.stdout


def test_every_function_returns_and_changes_nothing(
        cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = cluster_factory(nodes=2)
    assert cluster.run("ship", str(SEMICOMPLETE)).returncode == 0
    cluster.wait_stored(SEMICOMPLETE.read_bytes().count(b"\n"))
    before = holdings(cluster)
    functions = {wire.STORE_FUNCTION: wire.STORE_FUNCTION, "map": wire.map_function("node1"),
                 "replica": wire.replica_function("node1")}
    for kind, function in functions.items():
        for name, payload in {**JUNK, "truncated msgpack": TRUNCATED[kind]}.items():
            out = stock(cluster, function, payload)
            # refused, and the CLI says so (the node's reason, from WORK_WARNING)
            assert out.returncode != 0, (function, name, out)
            for node_id, proc in cluster.workers.items():
                assert proc.poll() is None, (function, name, cluster.worker_log(node_id))
    assert holdings(cluster) == before
    # a good request still works from the stock CLI: the nodes kept serving
    out = stock(cluster, wire.map_function("node1"), REQUEST)
    assert out.returncode == 0, out.stderr


def test_logger_stores_whatever_it_gets_byte_for_byte(
        cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = cluster_factory(nodes=2)
    sent = b""
    for payload in (b"", b"\0" * 300 + b"\n", RNG.randbytes(4096).replace(b"\n", b"") + b"\n"):
        out = stock(cluster, wire.LOGGER_FUNCTION, payload)
        assert out.returncode == 0, out.stderr
        sent += payload
    cluster.wait_stored(sent.count(b"\n"))
    # lines with no time of their own, on two nodes: compared as a multiset
    stored = cluster.run("grep", "").stdout
    assert sorted(stored.splitlines(keepends=True)) == sorted(sent.splitlines(keepends=True))
