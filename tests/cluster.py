"""A real local cluster for tests: gearmand plus `logmr worker` processes (fixtures
`cluster` and `cluster_factory`, loaded for every test by tests/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from logmr import wire
from logmr.gearman import admin
from tests.conftest import GearmandProcess, wait_for

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SEMICOMPLETE = SAMPLES / "apache_combined_semicomplete.log"
HACKERS = SAMPLES / "apache_combined_hackers.log"


def gnu_count(pattern: str, path: Path) -> int:
    """Lines of ``path`` that hold ``pattern`` (a fixed string), as GNU grep counts them."""
    out = subprocess.run(["grep", "-c", "-F", "--", pattern, str(path)], capture_output=True,
                         check=False)
    assert out.returncode in (0, 1), out.stderr
    return int(out.stdout)


# counted from the files, never written down
SEMICOMPLETE_LINES = gnu_count("", SEMICOMPLETE)
HACKERS_LINES = gnu_count("", HACKERS)
BOTH_LINES = SEMICOMPLETE_LINES + HACKERS_LINES
PRESENTATIONS = gnu_count("GET /presentations", SEMICOMPLETE)  # a pattern the tests grep for


def logmr(*args: str, servers: str | None = None, stdin: bytes | None = None,
          timeout: float = 120.0, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[bytes]:
    """Run the logmr command as a user would (a new process)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("LOGMR_SERVERS", None)
    if servers:
        full_env["LOGMR_SERVERS"] = servers
    return subprocess.run([sys.executable, "-m", "logmr", *args], input=stdin,
                          capture_output=True, timeout=timeout, env=full_env, check=False)


class LocalCluster:
    """One gearmand and N storage nodes, all real processes."""

    def __init__(self, gearmand: GearmandProcess, root: Path) -> None:
        self.gearmand = gearmand
        self.root = root
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.servers_override: str | None = None  # several job servers
        self.wrap: dict[str, tuple[str, ...]] = {}  # node id -> `ip netns exec NS`
        self.worker_args: dict[str, tuple[str, ...]] = {}  # node id -> its last extra args

    @property
    def servers(self) -> str:
        """The --servers value for this cluster."""
        return self.servers_override or str(self.gearmand.server)

    def start_worker(self, node_id: str, *extra: str) -> subprocess.Popen[bytes]:
        """Start a node and wait until it answers map jobs."""
        log = open(self.root / f"{node_id}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [*self.wrap.get(node_id, ()), sys.executable, "-m", "logmr", "worker", "--data-dir",
             str(self.root / node_id), "--node-id", node_id, "--servers", self.servers, *extra],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        self.workers[node_id] = proc
        self.worker_args[node_id] = extra
        wait_for(lambda: self._registered(node_id), 20, f"node {node_id} to register")
        return proc

    def _registered(self, node_id: str) -> bool:
        proc = self.workers[node_id]
        if proc.poll() is not None:
            raise AssertionError(f"worker {node_id} exited: {self.worker_log(node_id)}")
        functions = {f.name: f.workers for f in admin.status(self.gearmand.server)}
        return functions.get(wire.map_function(node_id), 0) > 0 and functions.get(
            wire.STORE_FUNCTION, 0) > 0

    def worker_log(self, node_id: str) -> str:
        """What a node wrote to stderr."""
        return (self.root / f"{node_id}.log").read_text(errors="replace")[-3000:]

    def stop_worker(self, node_id: str, sig: int = signal.SIGTERM) -> None:
        """Stop one node and wait for it."""
        proc = self.workers.pop(node_id)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"worker {node_id} ignored signal {sig}") from None
            if sig == signal.SIGTERM:
                assert proc.returncode == 0, f"worker {node_id}: {self.worker_log(node_id)}"

    def stop(self) -> None:
        """Stop every node."""
        for node_id in list(self.workers):
            self.stop_worker(node_id)

    def run(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        """Run logmr against this cluster."""
        return logmr(*args, servers=self.servers, **kwargs)  # type: ignore[arg-type]

    def node_stats(self) -> dict[str, dict[str, Any]]:
        """Per-node stats from `logmr status --format json`."""
        nodes: dict[str, dict[str, Any]] = self.status()["nodes"]
        return nodes

    def status(self) -> dict[str, Any]:
        """`logmr status --format json`."""
        out = self.run("status", "--format", "json")
        assert out.returncode == 0, out.stderr
        status: dict[str, Any] = json.loads(out.stdout)
        return status

    def stored_lines(self) -> int:
        """Lines stored across the cluster, each once however many copies it has."""
        return int(self.status()["replication"].get("lines", 0))

    def summary(self) -> dict[str, Any]:
        """`logmr report --summary --format json`: every line counted once."""
        out = self.run("report", "--summary", "--format", "json")
        assert out.returncode == 0, out.stderr
        summary: dict[str, Any] = json.loads(out.stdout)["summary"]
        return summary

    def copies(self) -> int:
        """Lines on the nodes' disks, every copy counted."""
        return sum(int(s["lines"]) for s in self.node_stats().values())

    def store_on_both_nodes(self, batch_id: str, lines: bytes) -> None:
        """Store one batch on node1 and on node2, as a batch redelivered after a node was
        killed between storing it and acknowledging it ends up."""
        from logmr.gearman.client import Client

        n = lines.count(b"\n")
        payload = wire.pack_batch(wire.Batch(batch_id, "web1", "combined", lines))
        client = Client([self.gearmand.server])
        try:
            for node, other in (("node1", "node2"), ("node2", "node1")):
                self.stop_worker(other)  # only `node` can take the job
                client.submit_background(wire.STORE_FUNCTION, payload, f"{batch_id}-{node}")
                self.wait_stored(n)
                self.start_worker(other, *self.worker_args.get(other, ()))
        finally:
            client.close()

    def wait_stored(self, lines: int, timeout: float = 60.0) -> None:
        """Wait until the nodes hold ``lines`` lines in all."""
        wait_for(lambda: self.stored_lines() >= lines, timeout, f"{lines} lines stored")
        assert self.stored_lines() == lines


@pytest.fixture
def cluster_factory(gearmand_factory: Callable[..., GearmandProcess], tmp_path: Path
                    ) -> Iterator[Callable[..., LocalCluster]]:
    """Make clusters: ``factory(nodes=2, persistent=False)``; all stopped at teardown."""
    made: list[LocalCluster] = []

    def factory(nodes: int = 2, persistent: bool = False,
                worker_args: tuple[str, ...] = ()) -> LocalCluster:
        cluster = LocalCluster(gearmand_factory(persistent=persistent),
                               tmp_path / f"cluster{len(made)}")
        cluster.root.mkdir(parents=True)
        made.append(cluster)
        for i in range(1, nodes + 1):
            cluster.start_worker(f"node{i}", *worker_args)
        return cluster

    try:
        yield factory
    finally:
        for cluster in made:
            cluster.stop()


@pytest.fixture
def cluster(cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    """gearmand and two storage nodes."""
    return cluster_factory(nodes=2)
