"""Real Apache, real ``logmr ship`` as its piped logger, real cluster: faults under load.

Load is ``ab -n 4000 -c 8`` (volume) plus two threads requesting unique URLs (which
requests made it, exactly). Every line carries mod_unique_id's id, so a duplicate is seen
whatever its URL. The promise under test: every request Apache answered is stored exactly
once, and nothing else is.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from logmr import wire
from logmr.gearman import admin
from tests.cluster import LocalCluster
from tests.conftest import wait_for
from tests.faults.apache import READY_PATH, AbResult, AbRun, ApacheServer, StoredLog, UniqueLoad

pytestmark = pytest.mark.slow

AB_REQUESTS = 4000
AB_CONCURRENCY = 8
FAULT_AFTER = 1200  # ab requests done before the fault (ab reports every 400)

ClusterFactory = Callable[..., LocalCluster]
ApacheFactory = Callable[[str], ApacheServer]
Fault = Callable[[ApacheServer], None]


@dataclass
class Outcome:
    """What the load did and what the cluster holds."""

    case: str
    ab: AbResult
    load: UniqueLoad
    stored: StoredLog
    grep_count: int

    @property
    def completed(self) -> int:
        """Requests Apache answered: ab's, the unique URLs, the readiness probe."""
        return self.ab.complete + len(self.load.completed) + 1

    def table(self) -> str:
        """The case as a small table."""
        return ("| case | requests completed | lines stored | unique | duplicates |\n"
                f"| {self.case} | {self.completed} | {len(self.stored.lines)} | "
                f"{len(self.stored.ids())} | {self.stored.duplicates()} |")


def run_case(case: str, cluster: LocalCluster, apache: ApacheServer, tmp_path: Path,
             fault: Fault, graceful_stop: bool = False) -> Outcome:
    """Load Apache; once ab has done FAULT_AFTER requests inject ``fault``; when ab is
    done, stop Apache (``-k stop``, or ``-k graceful-stop`` while the unique-URL load still
    runs); wait until every batch is stored, then read everything back."""
    ab = AbRun(f"{apache.url}/", AB_REQUESTS, AB_CONCURRENCY, tmp_path / f"{case}.ab").start()
    load = UniqueLoad(apache.port, run=case).start()
    try:
        wait_for(lambda: ab.progress() >= FAULT_AFTER or not ab.running(), 60,
                 f"ab to complete {FAULT_AFTER} requests")
        assert ab.progress() >= FAULT_AFTER, f"ab ended early:\n{ab.output()[-2000:]}"
        fault(apache)
        result = ab.wait()
        if graceful_stop:
            apache.graceful_stop()  # requests from the load threads are in flight
        else:
            load.stop()
            apache.stop()
    finally:
        load.stop()
    # stop() waited for every logger to exit, so every batch is queued; now stored?
    wait_for(lambda: _store_queue(cluster) == 0, 60, "the store queue to drain")
    lines = cluster.run("grep", "")
    count = cluster.run("grep", "-c", "")
    assert lines.returncode in (0, 1) and count.returncode in (0, 1), lines.stderr
    outcome = Outcome(case, result, load, StoredLog(lines.stdout.splitlines()),
                      int(count.stdout or 0))
    print(f"\n{outcome.table()}")
    return outcome


def _store_queue(cluster: LocalCluster) -> int:
    status = {s.name: s.total for s in admin.status(cluster.gearmand.server)}
    return status.get(wire.STORE_FUNCTION, 0)


def check(outcome: Outcome, apache: ApacheServer) -> None:
    """Every answered request stored exactly once, and nothing else."""
    tail = apache.error_tail()
    stored = outcome.stored
    paths = stored.paths()
    unique_paths = {p for p in paths if p.startswith(f"/r/{outcome.case}/")}
    completed = set(outcome.load.completed)
    missing, extra = completed - unique_paths, unique_paths - completed
    assert outcome.ab.failed == 0 and outcome.ab.non2xx == 0, f"ab: {outcome.ab}"
    assert outcome.grep_count == len(stored.lines), "grep -c disagrees with grep"
    assert stored.duplicates() == 0, f"{stored.duplicates()} duplicate lines{tail}"
    assert paths["/"] == outcome.ab.complete, (
        f"ab completed {outcome.ab.complete} requests, {paths['/']} stored{tail}")
    assert not missing and not extra, (
        f"unique URLs: {len(missing)} answered but not stored (e.g. {sorted(missing)[:3]}), "
        f"{len(extra)} stored but not answered (e.g. {sorted(extra)[:3]}){tail}")
    assert paths[READY_PATH] == 1, f"the readiness probe stored {paths[READY_PATH]} times"
    assert len(stored.lines) == outcome.completed, f"stored != completed{tail}"
    if apache.spool_dir is not None:
        assert not list(apache.spool_dir.glob("*.spool")), "spool not empty after the stop"
    assert "Traceback" not in tail, f"the piped logger crashed{tail}"


def test_graceful_then_stop_loses_nothing(cluster_factory: ClusterFactory,
                                          apache_factory: ApacheFactory,
                                          tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=2, persistent=True)
    apache = apache_factory(cluster.servers)

    def graceful(server: ApacheServer) -> None:
        before = set(server.logger_pids())
        server.graceful()
        wait_for(lambda: set(server.logger_pids()) - before, 10, "the new piped logger")

    check(run_case("graceful", cluster, apache, tmp_path, graceful), apache)


def test_logger_killed_with_sigkill_mid_run_loses_nothing(cluster_factory: ClusterFactory,
                                                          apache_factory: ApacheFactory,
                                                          tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=2, persistent=True)
    apache = apache_factory(cluster.servers)

    def kill9(server: ApacheServer) -> None:
        killed = server.kill_logger(signal.SIGKILL)
        wait_for(lambda: [p for p in server.logger_pids() if p != killed], 10,
                 "Apache to restart the piped logger")

    check(run_case("sigkill", cluster, apache, tmp_path, kill9), apache)


def test_graceful_stop_with_requests_in_flight_loses_nothing(
        cluster_factory: ClusterFactory, apache_factory: ApacheFactory,
        tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=2, persistent=True)
    apache = apache_factory(cluster.servers)
    outcome = run_case("graceful-stop", cluster, apache, tmp_path, lambda server: None,
                       graceful_stop=True)
    check(outcome, apache)
