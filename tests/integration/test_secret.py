"""The shared secret on real processes: nodes take only what is signed with it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from logmr import wire
from logmr.gearman import admin
from logmr.gearman.client import Client
from tests.conftest import wait_for

from .conftest import HACKERS, LocalCluster, logmr

SECRET = b"a-shared-secret-of-the-test-cluster"
WRONG = b"not-the-cluster-secret-at-all!!"
LINES = HACKERS.read_bytes().splitlines(keepends=True)
FREE = ("disk_free_bytes", "min_free_bytes")
NO_SECRET = {"LOGMR_SECRET_FILE": ""}  # an empty variable means: no secret


@pytest.fixture
def secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cluster's secret file, also in LOGMR_SECRET_FILE for every logmr run."""
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    path.chmod(0o600)  # as README says: a secret others can read is warned of
    monkeypatch.setenv("LOGMR_SECRET_FILE", str(path))
    return path


@pytest.fixture
def wrong_secret_file(tmp_path: Path) -> Path:
    """A well-formed secret file that is not the cluster's."""
    path = tmp_path / "wrong-secret"
    path.write_bytes(WRONG + b"\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def secure(cluster_factory: Callable[..., LocalCluster], secret_file: Path) -> LocalCluster:
    """gearmand and two nodes started with --secret-file."""
    cluster = cluster_factory(nodes=0)
    for node_id in ("node1", "node2"):
        cluster.start_worker(node_id, "--secret-file", str(secret_file))
    return cluster


def submit(cluster: LocalCluster, batch_id: str, lines: list[bytes],
           secret: bytes | None) -> None:
    """Queue one batch on logmr.store, signed with ``secret`` (None: unsigned)."""
    payload = wire.pack_batch(wire.Batch(batch_id, "web1", "combined", b"".join(lines)))
    with Client([cluster.gearmand.server]) as client:
        client.submit_background(wire.STORE_FUNCTION, wire.sign(payload, secret), batch_id)


def node_logs(cluster: LocalCluster) -> str:
    return "".join(cluster.worker_log(node_id) for node_id in cluster.workers)


def count(cluster: LocalCluster, *args: str) -> int:
    out = cluster.run("grep", "-c", *args, "")
    assert out.returncode in (0, 1), out.stderr
    return int(out.stdout)


def test_signed_batches_and_queries_work(secure: LocalCluster) -> None:
    submit(secure, "signed-1", LINES[:100], SECRET)
    submit(secure, "signed-2", LINES[100:250], SECRET)
    secure.wait_stored(250)
    assert count(secure) == 250
    out = secure.run("grep", "-F", "GET")
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.splitlines()) == sorted(
        line.rstrip(b"\n") for line in LINES[:250] if b"GET" in line)
    status = secure.run("status", "--format", "json")
    assert status.returncode == 0 and status.stderr == b"", status.stderr
    # the option works as well as the environment variable
    path = secure.root.parent / "secret"
    explicit = secure.run("grep", "-c", "--secret-file", str(path), "", env=NO_SECRET)
    assert (explicit.returncode, explicit.stdout) == (0, b"250\n"), explicit.stderr
    reparse = secure.run("reparse", "--format", "combined", "--json")
    assert reparse.returncode == 0, reparse.stderr
    answers = json.loads(reparse.stdout)["nodes"]
    assert sorted(answers) == ["node1", "node2"]
    assert all(a["state"] == "done" for a in answers.values())


def test_unsigned_and_wrongly_signed_batches_change_nothing(secure: LocalCluster) -> None:
    submit(secure, "signed-1", LINES[:100], SECRET)
    secure.wait_stored(100)

    def held() -> dict[str, dict[str, object]]:
        # what each node holds (the disk's free space is the machine's, not the node's)
        return {node: {k: v for k, v in stats.items() if k not in FREE}
                for node, stats in secure.node_stats().items()}

    before = held()

    submit(secure, "forged-1", LINES[100:200], None)
    submit(secure, "forged-2", LINES[200:300], WRONG)
    wait_for(lambda: "wrong signature on batch" in node_logs(secure)
             and "unsigned batch" in node_logs(secure), 20, "both batches to be rejected")
    wait_for(lambda: not any(f.total for f in admin.status(secure.gearmand.server)
                             if f.name == wire.STORE_FUNCTION), 20, "an empty store queue")

    assert held() == before
    assert count(secure) == 100
    logs = node_logs(secure)
    rejected = [line for line in logs.splitlines() if "rejected" in line]
    assert len(rejected) == 2, logs  # once per job
    assert all(line.startswith("WARNING") and "logmr.store job H:" in line
               for line in rejected), rejected
    assert "Traceback" not in logs
    # nothing about them was kept either: the same ids, signed, are stored in full
    submit(secure, "forged-1", LINES[100:200], SECRET)
    submit(secure, "forged-2", LINES[200:300], SECRET)
    secure.wait_stored(300)


@pytest.mark.parametrize("how", ["none", "wrong"])
def test_queries_without_the_secret_are_refused(secure: LocalCluster, how: str,
                                                wrong_secret_file: Path) -> None:
    submit(secure, "signed-1", LINES[:100], SECRET)
    secure.wait_stored(100)
    env = NO_SECRET if how == "none" else {"LOGMR_SECRET_FILE": str(wrong_secret_file)}
    reason = (b"unsigned map request: this node requires the shared secret" if how == "none"
              else b"wrong signature on map request")
    for args in (["grep", "GET"], ["grep", "-c", ""], ["status"], ["status", "--format",
                                                                      "json"], ["reparse"]):
        out = secure.run(*args, env=env)
        assert out.returncode == 2, (args, out)
        assert b"Traceback" not in out.stderr
        lines = out.stderr.splitlines()
        assert all(line.startswith(b"logmr: ") for line in lines), out.stderr
        for node_id in (b"node1", b"node2"):
            named = [line for line in lines if b"node " + node_id + b" " in line]
            assert len(named) == 1 and reason in named[0], out.stderr
    assert "rejected logmr.map.node1 job H:" in secure.worker_log("node1")
    assert "Traceback" not in node_logs(secure)


def test_the_logger_function_is_off_with_a_secret(secure: LocalCluster) -> None:
    def functions() -> dict[str, int]:
        return {f.name: f.workers for f in admin.status(secure.gearmand.server)}

    # a node's connections register apart: its queries may be in before its batches
    wait_for(lambda: functions().get(wire.STORE_FUNCTION) == 2, 20, "both to take batches")
    assert functions().get(wire.LOGGER_FUNCTION, 0) == 0
    assert "not registering 'logger'" in secure.worker_log("node1")


def test_a_node_without_a_secret_refuses_signed_payloads(cluster: LocalCluster,
                                                         wrong_secret_file: Path) -> None:
    """A half-configured cluster is noticed, not silently accepted."""
    submit(cluster, "unsigned-1", LINES[:10], None)
    cluster.wait_stored(10)
    submit(cluster, "signed-1", LINES[10:20], SECRET)
    wait_for(lambda: "signed batch, but this node has no secret" in node_logs(cluster), 20,
             "the signed batch to be rejected")
    out = cluster.run("grep", "-c", "--secret-file", str(wrong_secret_file), "")
    assert out.returncode == 2
    assert out.stderr.count(b"signed map request, but this node has no secret") == 2
    assert cluster.stored_lines() == 10


@pytest.mark.parametrize("command", [["worker", "--data-dir", "unused"], ["grep", "x"],
                                     ["status"]])
def test_a_bad_secret_file_is_one_line(tmp_path: Path, command: list[str]) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"too short\n")
    for path, needle in ((tmp_path / "missing", b"does not exist"),
                         (short, b"holds 9 bytes, too short")):
        out = logmr(*command, "--secret-file", str(path), servers="127.0.0.1:1")
        assert out.returncode == 2
        assert out.stderr.count(b"\n") == 1 and needle in out.stderr, out.stderr
    assert not (tmp_path / "unused").exists()


def test_a_worker_without_the_secret_cannot_answer_for_a_node(secure: LocalCluster) -> None:
    import threading

    from logmr.gearman.worker import Worker

    submit(secure, "signed-r", LINES[:300], SECRET)
    secure.wait_stored(300)  # on both nodes: two copies by default
    # node1 goes away and a rogue worker, without the secret, takes its function and
    # answers every request with a listing and a count of its own
    secure.stop_worker("node1")
    rogue = Worker([secure.gearmand.server], client_id="rogue")
    answer = wire.pack_result({"count": 10**6, "records": [["signed-r", 0, 10**6, 0, 0]]})
    rogue.register(wire.map_function("node1"), lambda job: answer)
    thread = threading.Thread(target=rogue.work, daemon=True)
    thread.start()
    try:
        wait_for(lambda: any(f.name == wire.map_function("node1") and f.workers
                             for f in admin.status(secure.gearmand.server)), 10,
                 "the rogue worker to register")
        out = secure.run("grep", "-c", "")
        assert out.stdout == b"300\n", out  # node2's copy, nothing from the rogue
        assert b"node node1" in out.stderr, out.stderr
        assert b"something else answers in its name" in out.stderr, out.stderr
    finally:
        rogue.stop()
        thread.join(10)
