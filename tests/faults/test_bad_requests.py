"""Bad requests to a node get an error back, never a dead or stuck worker; nothing from
the wire becomes a path."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import msgpack
import pytest

from logmr import wire
from logmr.gearman.client import Client
from logmr.gearman.errors import JobFailed
from logmr.store import segment
from tests.cluster import PRESENTATIONS, SEMICOMPLETE, SEMICOMPLETE_LINES, LocalCluster, logmr
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def map_job(cluster: LocalCluster, node: str, payload: bytes) -> bytes:
    """Run one map job on ``node``; its WORK_COMPLETE payload, or JobFailed."""
    client = Client([cluster.gearmand.server])
    try:
        job = client.submit(wire.map_function(node), payload, unique=f"t{time.time_ns()}",
                            timeout=30)
        with job:
            for _ in job:
                pass
            return job.result
    finally:
        client.close()


def alive(cluster: LocalCluster) -> None:
    """Both nodes still answer, with all their data."""
    for node_id, proc in cluster.workers.items():
        assert proc.poll() is None, cluster.worker_log(node_id)
    assert cluster.run("grep", "-c", "GET /presentations").stdout == b"%d\n" % PRESENTATIONS


@pytest.fixture
def loaded(cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    cluster = cluster_factory(nodes=2, worker_args=("--map-budget", "2"))
    assert cluster.run("ship", str(SEMICOMPLETE)).returncode == 0
    wait_for(lambda: cluster.run("grep", "-c", "").stdout == b"%d\n" % SEMICOMPLETE_LINES, 30,
             "stored")
    return cluster


def test_unknown_job_and_malformed_requests(loaded: LocalCluster) -> None:
    with pytest.raises(JobFailed, match="unknown map job 'rm -rf'"):
        map_job(loaded, "node1", wire.pack_request(wire.MapRequest("rm -rf")))
    with pytest.raises(JobFailed, match="malformed map request"):
        map_job(loaded, "node1", b"\xc1\xc1 not msgpack")
    with pytest.raises(JobFailed, match="schema version"):
        map_job(loaded, "node1", msgpack.packb({"v": 99, "job": "grep"}))
    with pytest.raises(JobFailed, match="invalid pattern"):
        map_job(loaded, "node1", wire.pack_request(wire.MapRequest("grep", {"pattern": b"("})))
    # a pattern of the wrong type or size is refused before use (an int would once have
    # become that many bytes); one sent as text, as a hand-made request may, is read
    with pytest.raises(JobFailed, match="pattern must be bytes or text, not int"):
        map_job(loaded, "node1", wire.pack_request(wire.MapRequest("grep", {"pattern": 10**9})))
    with pytest.raises(JobFailed, match="pattern is 65537 bytes long"):
        map_job(loaded, "node1", wire.pack_request(
            wire.MapRequest("grep", {"pattern": b"x" * 65537})))
    for args, message in (({"limit": "10"}, "limit must be a count"),
                          ({"after": [1, 2, 3]}, "after must be"),
                          ({"since": True}, "since must be epoch seconds")):
        with pytest.raises(JobFailed, match=message):
            map_job(loaded, "node1", wire.pack_request(
                wire.MapRequest("grep", {"pattern": b"GET", **args})))
    text = wire.pack_request(wire.MapRequest("grep", {"pattern": "GET /presentations"}))
    assert map_job(loaded, "node1", text) == map_job(loaded, "node1", wire.pack_request(
        wire.MapRequest("grep", {"pattern": b"GET /presentations"})))
    alive(loaded)


def test_malformed_and_hostile_batches_are_refused(loaded: LocalCluster) -> None:
    client = Client([loaded.gearmand.server])
    try:
        for i, payload in enumerate([
            b"garbage, not msgpack",
            msgpack.packb({"v": 1, "id": "../../etc/passwd", "host": "h", "fmt": "combined",
                           "lines": b"x\n"}),
            msgpack.packb({"v": 1, "id": "ok-id", "host": "h", "fmt": "combined",
                           "lines": "text, not bytes"}),
        ]):
            client.submit_background(wire.STORE_FUNCTION, payload, f"hostile-{i}")
    finally:
        client.close()
    wait_for(lambda: "../../etc/passwd" in "".join(
        loaded.worker_log(n) for n in loaded.workers), 20, "the refusals to be logged")
    assert not list(loaded.root.glob("**/passwd"))
    alive(loaded)
    assert loaded.run("grep", "-c", "").stdout == b"%d\n" % SEMICOMPLETE_LINES  # nothing stored


def test_a_regex_that_backtracks_for_ever_is_stopped(loaded: LocalCluster) -> None:
    # catastrophic on every long line; the deadline: an answer within 15 s
    out = loaded.run("grep", "-c", r"(\S+\s?)+#", timeout=15)
    assert out.returncode == 2
    assert b"time budget" in out.stderr and b"Traceback" not in out.stderr
    alive(loaded)


def test_a_huge_limit_is_fine_and_a_negative_one_is_refused(loaded: LocalCluster) -> None:
    out = loaded.run("grep", "--limit", str(2**63 - 1), "-F", "GET /presentations")
    assert out.returncode == 0 and out.stdout.count(b"\n") == PRESENTATIONS
    bad = loaded.run("grep", "--limit", "-5", "x")
    assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1
    alive(loaded)


def test_a_node_id_that_is_a_path_is_refused(tmp_path: object) -> None:
    out = logmr("worker", "--data-dir", str(tmp_path), "--node-id", "../../etc")
    assert out.returncode == 2
    assert b"invalid node id" in out.stderr and out.stderr.count(b"\n") == 1


def test_a_corrupt_segment_does_not_stop_the_node_and_is_reported(
        cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = cluster_factory(nodes=1)
    # batches of 40 lines (about 20 minutes of this log each): segments of two records
    assert cluster.run("ship", "--batch-lines", "40", str(SEMICOMPLETE)).returncode == 0
    wait_for(lambda: cluster.run("grep", "-c", "").stdout == b"%d\n" % SEMICOMPLETE_LINES, 60,
             "stored")
    cluster.stop_worker("node1")
    # a segment with two records or more: corrupt the first one's body
    victim, records = next((p, found) for p in (cluster.root / "node1" / "segments").glob(
        "*.seg") if len(found := segment.scan(str(p), repair=False)) >= 2)
    loc, _ = records[0]
    data = bytearray(victim.read_bytes())
    data[loc.offset + loc.length // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    cluster.start_worker("node1")
    out = cluster.run("grep", "")
    assert out.returncode == 0, out.stderr
    # the corrupt record is lost and the rest is served: what is missing, against the file
    # itself, is one run of consecutive lines (a record is a batch)
    sent = SEMICOMPLETE.read_bytes().splitlines()
    served = Counter(out.stdout.splitlines())
    assert not served - Counter(sent)  # nothing that was not sent, nothing twice
    lost = Counter(sent) - served
    n = sum(lost.values())
    window = Counter(sent[:n])  # slide a window of n lines over the file until it is `lost`
    runs = [0] if window == lost else []
    for i in range(n, len(sent)):
        window[sent[i]] += 1
        window[sent[i - n]] -= 1
        if window[sent[i - n]] == 0:
            del window[sent[i - n]]
        if window == lost:
            runs.append(i - n + 1)
    assert n > 0 and runs, "the lines lost are not one run of the file"
    assert int(cluster.run("grep", "-c", "").stdout) == len(sent) - n
    out = cluster.run("status")
    assert out.returncode == 0 and b"corrupt" in out.stdout
