"""Reports whose tables are too large to send whole, on a real 2-node cluster: the nodes
keep them in their spools and the client runs the rounds of :mod:`logmr.reduce.topk`. The
thresholds are turned down so that a small log takes every path: three rounds, key
ranges, visitor and page-view ranges. The report equals file mode's over the same file
(itself held to GoAccess and awk in test_reports.py), and its top hosts equal awk's."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import polars as pl
import pytest

from logmr import wire
from logmr.client import report as client_report
from logmr.client import rounds
from logmr.client.report import cluster_report, file_report, spec_from_options
from logmr.gearman.connection import Server
from logmr.reduce.ranges import RangeWork, TableHeld, result_of, work_to_wire
from tests.cluster import LocalCluster

pytestmark = pytest.mark.slow
SMALL = {"inline_rows": 30, "inline_visitors": 40, "bucket_rows": 300}


def crowded_log(path: Path, lines: int = 4000, seed: int = 11) -> Path:
    """Clients mostly seen once, a few heavy ones, URLs and agents skewed."""
    rnd = random.Random(seed)
    agents = [f"Mozilla/5.0 (X11; Linux x86_64) Firefox/{v}.0" for v in range(100, 140)]
    with path.open("w") as f:
        for i in range(lines):
            ip = (f"10.9.0.{rnd.randrange(8)}" if rnd.random() < 0.2
                  else f"{rnd.randrange(1, 224)}.{rnd.randrange(256)}.{rnd.randrange(256)}.1")
            url = f"/p/{int(300 * rnd.random() ** 3)}"
            status = rnd.choice([200, 200, 200, 304, 404])
            f.write(f'{ip} - - [20/May/2015:{10 + i // 3600:02d}:{i // 60 % 60:02d}:'
                    f'{i % 60:02d} +0000] "GET {url} HTTP/1.1" {status} {rnd.randrange(9999)} '
                    f'"https://r{rnd.randrange(90)}.example/" "{rnd.choice(agents)}"\n')
    return path


def without_nodes(data: dict[str, Any]) -> dict[str, Any]:
    data["summary"].pop("nodes")
    return data


@pytest.fixture
def crowded(cluster_factory: Callable[..., LocalCluster], tmp_path: Path
            ) -> tuple[LocalCluster, Path]:
    log = crowded_log(tmp_path / "crowded.log")
    cluster = cluster_factory(nodes=2)
    assert cluster.run("ship", str(log)).returncode == 0
    cluster.wait_stored(4000)
    return cluster, log


SPEC = spec_from_options([], everything=True, transitions="/p/0", funnel="/p/0,/p/1",
                         limit=7)


def servers(cluster: LocalCluster) -> list[Server]:
    return [Server("127.0.0.1", cluster.gearmand.port)]


def spools(cluster: LocalCluster) -> list[Path]:
    return [p for node in ("node1", "node2") for p in (cluster.root / node / "spool").glob("*")]


def test_every_round_gives_file_modes_report(crowded: tuple[LocalCluster, Path]) -> None:
    cluster, log = crowded
    rounds: list[int] = []
    real = client_report.rest_fetcher

    def counting(*args: Any) -> Any:
        fetch = real(*args)

        def counted(requests: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            rounds.append(len(requests))
            return fetch(requests)
        return counted

    client_report.rest_fetcher = counting  # type: ignore[assignment]
    try:
        got = cluster_report(servers(cluster), SPEC, **SMALL)
    finally:
        client_report.rest_fetcher = real  # type: ignore[assignment]
    assert not got.failed
    assert without_nodes(got.data) == without_nodes(file_report([str(log)], SPEC).data)
    assert len(rounds) >= 4  # three rounds or ranges, visitors and page views by range
    awk = subprocess.run(f"awk '{{print $1}}' {log} | sort | uniq -c | sort -k1,1nr -k2,2 "
                         "| head -7", shell=True, capture_output=True, check=True, text=True)
    assert [(row["hits"], row["host"]) for row in got.data["hosts"]] == [
        (int(n), ip) for n, ip in (line.split() for line in awk.stdout.splitlines())]
    assert spools(cluster) == []  # each node dropped what it kept


def test_a_node_lost_between_rounds_has_its_share_read_again(
        crowded: tuple[LocalCluster, Path]) -> None:
    cluster, log = crowded
    real = client_report.rest_fetcher
    victim: list[str] = []  # the first node asked for the rest of its tables

    def killing(*args: Any) -> Any:
        fetch = real(*args)

        def first_kill(requests: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            if not victim:
                victim.append(sorted(requests)[0].split("/")[0])
                cluster.stop_worker(victim[0], signal.SIGKILL)
            return fetch(requests)
        return first_kill

    client_report.rest_fetcher = killing  # type: ignore[assignment]
    try:
        got = cluster_report(servers(cluster), SPEC, timeout=5.0, **SMALL)
    finally:
        client_report.rest_fetcher = real  # type: ignore[assignment]
    assert victim and victim[0] in got.failed and not got.coverage.partial
    assert victim[0] not in got.data["summary"]["nodes"]  # its share was read elsewhere
    assert without_nodes(got.data) == without_nodes(file_report([str(log)], SPEC).data)


def counting_local_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Ranges the client reads itself, counted (a partitioned reduce reads none)."""
    runs: list[int] = []
    real = rounds.run

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(rounds, "run", counted)
    return runs


def test_a_report_past_the_clients_bound_is_reduced_on_the_nodes(
        crowded: tuple[LocalCluster, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, log = crowded
    local = counting_local_runs(monkeypatch)
    jobs: list[str] = []
    real = rounds._submit

    def recorded(*args: Any) -> Any:
        unique, job = real(*args)
        jobs.append(unique)
        return unique, job
    monkeypatch.setattr(rounds, "_submit", recorded)
    got = cluster_report(servers(cluster), SPEC, memory_mb=0, **SMALL)
    assert not got.failed
    assert len(jobs) == rounds.REDUCERS_PER_NODE * 2 and len(set(jobs)) == len(jobs)
    assert local == []  # every range was read by the reduce jobs, none here
    assert without_nodes(got.data) == without_nodes(file_report([str(log)], SPEC).data)
    assert spools(cluster) == []


def test_a_node_lost_in_a_partitioned_reduce_has_its_share_read_again(
        crowded: tuple[LocalCluster, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, log = crowded
    real = rounds._submit
    victim: list[str] = []

    def killing(client: Any, work: RangeWork, sources: dict[str, Any], *rest: Any) -> Any:
        if not victim:  # a node that kept part of the report back
            victim.append(sources[work.sources()[0]][0].node_id)
            cluster.stop_worker(victim[0], signal.SIGKILL)
        return real(client, work, sources, *rest)
    monkeypatch.setattr(rounds, "_submit", killing)
    got = cluster_report(servers(cluster), SPEC, timeout=5.0, memory_mb=0, **SMALL)
    assert victim and victim[0] in got.failed and not got.coverage.partial
    assert victim[0] not in got.data["summary"]["nodes"]
    assert without_nodes(got.data) == without_nodes(file_report([str(log)], SPEC).data)


def first_answer(stdout: bytes) -> Any:
    """The first msgpack value the stock CLI printed (its progress lines follow)."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(stdout)
    return next(unpacker)


@pytest.mark.skipif(shutil.which("gearman") is None, reason="the stock gearman CLI is not "
                    "installed (apt-get install gearman-tools)")
def test_the_stock_gearman_cli_runs_a_reduce_job(crowded: tuple[LocalCluster, Path]) -> None:
    cluster, _ = crowded
    port = str(cluster.gearmand.port)

    def stock(function: str, request: wire.MapRequest) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["gearman", "-h", "127.0.0.1", "-p", port, "-f", function],
                              input=wire.pack_request(request), capture_output=True,
                              timeout=30)

    query = "cd" * 16
    out = stock(wire.map_function("node1"), wire.MapRequest("report", {
        **SPEC.to_args(), "reduce": {"query": query, "rows": 5, "visitors": 5}}))
    assert out.returncode == 0, out.stderr
    first = first_answer(out.stdout)
    assert first["tables"]["hosts"][1] is False and first["summary"]["visitors"] > 5
    out = stock(wire.map_function("node1"), wire.MapRequest("report_rest", {
        "query": query, "tables": {"hosts": {"at_least": 1}}, "visitors": [0, None]}))
    everything = wire.unpack_result(out.stdout)
    hosts = wire.unpack_frame(everything["tables"]["hosts"])
    visitors = wire.unpack_frame(everything["visitors"])
    sources = {"n1": ["node1", f"127.0.0.1:{port}", query]}
    halves = []
    for lo, hi in ([0, 1 << 62], [1 << 62, None]):
        work = RangeWork(lo, hi, {"hosts": TableHeld("hosts", 100_000, hosts.height, ["n1"])},
                         {"n1": first["summary"]["visitors"]})
        out = stock(rounds.REDUCE_FUNCTION, wire.MapRequest("reduce", {
            "work": work_to_wire(work), "bucket_rows": 50, "timeout": 10,
            "sources": sources}))
        assert out.returncode == 0, out.stderr
        halves.append(result_of(first_answer(out.stdout)))
    assert all(h.tables["hosts"].height for h in halves)
    assert sorted(pl.concat([h.tables["hosts"] for h in halves]).rows()) == sorted(
        hosts.rows())  # every key once, in the half that holds its hash
    assert sum(h.visitors for h in halves) == visitors.height
    good = work_to_wire(RangeWork(0, None, {}, {"n1": 1}))
    for bad in ({"work": {**good, "span": [-1, None]}, "bucket_rows": 5, "sources": sources},
                {"work": good, "bucket_rows": 0, "sources": sources},
                {"work": good, "bucket_rows": 5, "sources": {}},
                {"work": good, "bucket_rows": 5,
                 "sources": {"n1": ["node1", "192.0.2.1:4730", query]}}):
        out = stock(rounds.REDUCE_FUNCTION, wire.MapRequest("reduce", bad))
        assert out.returncode != 0, bad
    assert stock(wire.map_function("node1"), wire.MapRequest("report_rest", {
        "query": query, "drop": True})).returncode == 0


@pytest.mark.skipif(shutil.which("gearman") is None, reason="the stock gearman CLI is not "
                    "installed (apt-get install gearman-tools)")
def test_the_stock_gearman_cli_runs_the_rounds(crowded: tuple[LocalCluster, Path]) -> None:
    cluster, _ = crowded

    def stock(request: wire.MapRequest) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["gearman", "-h", "127.0.0.1", "-p", str(cluster.gearmand.port),
                               "-f", wire.map_function("node1")],
                              input=wire.pack_request(request), capture_output=True, timeout=10)

    query = "ab" * 16
    out = stock(wire.MapRequest("report", {**SPEC.to_args(), "reduce": {
        "query": query, "rows": 5, "visitors": 5}}))
    assert out.returncode == 0, out.stderr
    # the CLI prints the answer, then the node's progress ("N% Complete") after it
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(out.stdout)
    first = next(unpacker)
    assert first["spool"] == query and first["tables"]["hosts"][1] is False  # sent in part
    out = stock(wire.MapRequest("report_rest", {"query": query,
                                                "tables": {"hosts": {"at_least": 1}}}))
    assert out.returncode == 0, out.stderr
    rest = wire.unpack_frame(wire.unpack_result(out.stdout)["tables"]["hosts"])
    assert rest.height == first["tables"]["hosts"][2]  # every key it holds
    halves = []
    for span in ([0, 1 << 62], [1 << 62, None]):  # two ranges of key hashes: each key once
        out = stock(wire.MapRequest("report_rest", {"query": query,
                                                    "tables": {"hosts": {"hashes": span}}}))
        assert out.returncode == 0, out.stderr
        halves.append(wire.unpack_frame(wire.unpack_result(out.stdout)["tables"]["hosts"]))
    assert all(h.height for h in halves)
    assert sorted(pl.concat(halves).rows()) == sorted(rest.rows())
    for bad in ({"query": "../../etc"}, {"query": query, "tables": {"hosts": {"keys": 3}}},
                {"query": query, "tables": {"../x": {"at_least": 1}}},
                {"query": query, "visitors": ["a", None]},
                {"query": query, "tables": {"hosts": {"hashes": [-1, None]}}}):
        assert stock(wire.MapRequest("report_rest", bad)).returncode != 0, bad
    assert stock(wire.MapRequest("report_rest", {"query": query, "drop": True})
                 ).returncode == 0
    assert spools(cluster) == []
