"""`logmr reparse` on a real 2-node cluster (every batch on both nodes): lines shipped
with a wrong format read again. The oracle is a second cluster given the right format,
and the lines as shipped (grep's output, byte for byte)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from logmr import wire
from tests.cluster import SEMICOMPLETE, LocalCluster
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

LINES = SEMICOMPLETE.read_bytes().count(b"\n")
WRONG = "vhost_combined"  # reads no line of a combined log


def report(cluster: LocalCluster) -> dict[str, Any]:
    out = cluster.run("report", "--all", "--limit", "100000", "--format", "json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    data["summary"].pop("nodes", None)
    return data


def grep_all(cluster: LocalCluster) -> bytes:
    out = cluster.run("grep", "")
    assert out.returncode == 0, out.stderr
    return out.stdout


def shipped(cluster_factory: Callable[..., LocalCluster], fmt: str, path: Path = SEMICOMPLETE
            ) -> LocalCluster:
    cluster = cluster_factory(nodes=2)
    out = cluster.run("ship", "--host", "web1", "--format", fmt, str(path))
    assert out.returncode == 0, out.stderr
    cluster.wait_stored(path.read_bytes().count(b"\n"))
    wait_for(lambda: cluster.copies() == 2 * cluster.stored_lines(), 60, "both copies")
    return cluster


def reparse(cluster: LocalCluster, *args: str) -> dict[str, Any]:
    out = cluster.run("reparse", "--json", *args, timeout=300)
    assert out.returncode == 0, out.stderr
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


@pytest.fixture
def right(cluster_factory: Callable[..., LocalCluster]) -> dict[str, Any]:
    """The report of the log shipped with its format."""
    cluster = shipped(cluster_factory, "combined")
    data = report(cluster)
    cluster.stop()
    return data


@pytest.mark.parametrize("fmt", ["auto", "combined"])
def test_reparse_turns_a_wrong_format_into_the_report_of_the_right_one(
        cluster_factory: Callable[..., LocalCluster], right: dict[str, Any], fmt: str) -> None:
    cluster = shipped(cluster_factory, WRONG)
    summary = cluster.summary()
    assert (summary["requests"], summary["unparsed"]) == (0, LINES)
    status = cluster.run("status").stdout
    assert b"logmr reparse --host web1 --format combined" in status
    lines = grep_all(cluster)
    answer = reparse(cluster, *(() if fmt == "auto" else ("--format", fmt)))
    assert sorted(answer["nodes"]) == ["node1", "node2"] and not answer["failed"]
    for node in answer["nodes"].values():  # each node re-parsed its copy of every line
        assert (node["state"], node["lines"], node["unparsed_before"],
                node["unparsed_after"]) == ("done", LINES, LINES, 0)
        assert node["hours_done"] == node["hours_total"] > 1
    assert report(cluster) == right
    assert grep_all(cluster) == lines  # the lines, byte for byte, in the same order
    sources = cluster.status()["sources"]
    assert (sources["web1"]["unparsed_share"], sources["web1"]["suggested"]) == (0.0, None)
    again = reparse(cluster, *(() if fmt == "auto" else ("--format", fmt)))
    assert [n["changed"] for n in again["nodes"].values()] == [0, 0]  # nothing left to do


def test_queries_stay_exact_while_a_reparse_runs(
        cluster_factory: Callable[..., LocalCluster], right: dict[str, Any]) -> None:
    cluster = shipped(cluster_factory, WRONG)
    lines = grep_all(cluster)
    # slowed down (5 s at least for each node's 10,000 lines), so that queries overlap it
    out = cluster.run("reparse", "--no-wait", "--format", "combined", "--rate", "2000")
    assert out.returncode == 0, out.stderr

    def running() -> bool:
        states = [s.get("reparse", {}).get("state") for s in cluster.node_stats().values()]
        assert "failed" not in states
        return "running" in states

    rounds = 0
    while running():  # every answer meanwhile counts each line once
        rounds += 1
        count = cluster.run("grep", "-c", "")
        assert (count.returncode, int(count.stdout)) == (0, LINES), count.stderr
        summary = cluster.summary()  # parsed or not, each line once
        assert summary["requests"] + summary["unparsed"] == LINES
    assert rounds > 0
    assert report(cluster) == right
    assert grep_all(cluster) == lines


def test_a_node_killed_during_a_reparse_goes_on_when_it_starts(
        cluster_factory: Callable[..., LocalCluster], right: dict[str, Any]) -> None:
    cluster = shipped(cluster_factory, WRONG)
    lines = grep_all(cluster)
    assert cluster.run("reparse", "--no-wait", "--format", "combined").returncode == 0
    cluster.stop_worker("node1", signal.SIGKILL)  # wherever it got to
    cluster.start_worker("node1")
    wait_for(lambda: all(s.get("reparse", {}).get("state") == "done"
                         for s in cluster.node_stats().values()), 120, "the re-parse to end")
    assert report(cluster) == right
    assert grep_all(cluster) == lines
    segments = sorted(p.name for p in (cluster.root / "node1" / "segments").iterdir())
    hours = {name.split(".")[0] for name in segments}
    assert len(segments) == len(hours)  # one file an hour: nothing half done left behind


def test_the_host_option_reparses_that_host_only(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = cluster_factory(nodes=2)
    for host in ("web1", "web2"):
        assert cluster.run("ship", "--host", host, "--format", WRONG,
                           str(SEMICOMPLETE)).returncode == 0
    cluster.wait_stored(2 * LINES)
    wait_for(lambda: cluster.copies() == 4 * LINES, 60, "both copies")
    reparse(cluster, "--host", "web2", "--format", "combined")
    sources = cluster.status()["sources"]
    assert (sources["web1"]["unparsed_share"], sources["web2"]["unparsed_share"]) == (1.0, 0.0)


@pytest.mark.skipif(shutil.which("gearman") is None, reason="the stock gearman CLI is not "
                    "installed (apt-get install gearman-tools)")
def test_the_stock_gearman_cli_starts_and_follows_a_reparse(
        cluster_factory: Callable[..., LocalCluster], right: dict[str, Any]) -> None:
    cluster = shipped(cluster_factory, WRONG)

    def ask(node: str) -> dict[str, Any]:
        request = wire.pack_request(wire.MapRequest("reparse", {"run": f"cli-{node}",
                                                                "format": "combined"}))
        out = subprocess.run(["gearman", "-h", "127.0.0.1", "-p", str(cluster.gearmand.port),
                              "-f", wire.map_function(node)], input=request,
                             capture_output=True, timeout=10, check=True)
        return wire.unpack_result(out.stdout)

    for node in ("node1", "node2"):
        assert ask(node)["run"] == f"cli-{node}"
    wait_for(lambda: all(ask(n)["state"] == "done" for n in ("node1", "node2")), 120,
             "the re-parse to end")
    assert report(cluster) == right


def test_reparse_errors_are_one_line(cluster: LocalCluster) -> None:
    out = cluster.run("reparse", "--format", "%{nonsense")
    assert out.returncode == 2 and out.stderr.count(b"\n") == 1, out.stderr
    assert b"Traceback" not in out.stderr
    out = cluster.run("reparse", "--since", "yesterday-ish")
    assert out.returncode == 2 and out.stderr.count(b"\n") == 1, out.stderr
