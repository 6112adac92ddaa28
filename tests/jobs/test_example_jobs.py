"""Every example job in jobs/, checked against a plain computation over the same lines,
inline and across a cluster; a job whose code differs between client and node is refused."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from logmr.jobs import load_job, run_inline
from tests.cluster import HACKERS, HACKERS_LINES, SEMICOMPLETE, LocalCluster, logmr
from tests.conftest import wait_for

JOBS = Path(__file__).resolve().parents[2] / "jobs"
LINE = re.compile(rb'^(\S+) \S+ \S+ \[(\d+)/(\w+)/(\d+):(\d+):\d+:\d+ [+-]\d+\] '
                  rb'"\S+ (\S+) [^"]*" (\d{3}) (\d+|-)')
TIMED_FORMAT = '%h %l %u %t "%r" %>s %b %D'


def fields(path: Path) -> list[tuple[bytes, bytes, int, int]]:
    """(host, url, status, bytes) of the lines a plain regex reads."""
    out = []
    for line in path.read_bytes().splitlines():
        m = LINE.match(line)
        if m:
            out.append((m.group(1), m.group(6), int(m.group(7)),
                        0 if m.group(8) == b"-" else int(m.group(8))))
    return out


def by_network(path: Path) -> dict[str, list[int]]:
    """[bytes, hits] per /24 (IPv4) or /48 (IPv6) network, with the ipaddress module."""
    want: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for host, _, _, size in fields(path):
        address = ipaddress.ip_address(host.decode())
        net = ipaddress.ip_network(f"{address}/{24 if address.version == 4 else 48}",
                                   strict=False)
        want[str(net)][0] += size
        want[str(net)][1] += 1
    return dict(want)


def test_bandwidth_by_network() -> None:
    job = load_job(JOBS / "bandwidth_by_network.py")
    got = dict(run_inline(job, [str(HACKERS)]))
    want = by_network(HACKERS)
    assert got == {k: tuple(v) for k, v in want.items()}
    assert any(":" in k for k in got)  # the IPv6 clients are there too


def test_errors_by_hour(tmp_path: Path) -> None:
    job = load_job(JOBS / "errors_by_hour.py")
    got = run_inline(job, [str(SEMICOMPLETE)])
    want: Counter[tuple[bytes, int]] = Counter()
    for line in SEMICOMPLETE.read_bytes().splitlines():
        m = LINE.match(line)
        if m and 500 <= int(m.group(7)) <= 599:
            stamp = line[line.index(b"[") + 1:line.index(b"]")].decode()
            ts = int(datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").timestamp())
            want[(m.group(6), ts - ts % 3600)] += 1
    assert sum(want.values()) > 0
    assert {tuple(key): n for key, n in got} == dict(want)


def timed_log(path: Path) -> dict[bytes, list[int]]:
    """A log with %D, and the durations per URL written into it."""
    durations: defaultdict[bytes, list[int]] = defaultdict(list)
    lines = []
    for i in range(3000):
        url = f"/api/{i % 7}".encode()
        took = (i % 7 + 1) * 1000 + i % 13
        durations[url].append(took)
        lines.append(b'10.0.0.%d - - [20/May/2015:12:%02d:%02d +0000] "GET %s HTTP/1.1" 200 '
                     b"5 %d\n" % (i % 200, i // 60 % 60, i % 60, url, took))
    path.write_bytes(b"".join(lines))
    return durations


def test_slowest_urls(tmp_path: Path) -> None:
    log = tmp_path / "timed.log"
    durations = timed_log(log)
    job = load_job(JOBS / "slowest_urls.py")
    got = dict(run_inline(job, [str(log)], fmt=TIMED_FORMAT))
    assert got == {url: (len(d), sum(d), max(d)) for url, d in durations.items()}
    rows = job.rows(list(got.items()), 3)
    assert [r["url"] for r in rows] == ["/api/6", "/api/5", "/api/4"]


@pytest.mark.slow
def test_jobs_across_the_cluster_and_a_changed_job_refused(
        cluster_factory: object, tmp_path: Path) -> None:
    cluster: LocalCluster = cluster_factory(  # type: ignore[operator]
        nodes=2, worker_args=("--jobs-dir", str(JOBS)))
    assert cluster.run("ship", str(HACKERS)).returncode == 0
    wait_for(lambda: cluster.run("grep", "-c", "").stdout == b"%d\n" % HACKERS_LINES, 30, "stored")
    for name in ("bandwidth_by_network", "errors_by_hour"):
        path = str(JOBS / f"{name}.py")
        here = logmr("run", path, str(HACKERS), "--format", "json", "--limit", "1000")
        there = cluster.run("run", path, "--format", "json", "--limit", "1000")
        assert there.returncode == 0, there.stderr
        assert json.loads(there.stdout) == json.loads(here.stdout)
    changed = tmp_path / "bandwidth_by_network.py"
    shutil.copy(JOBS / "bandwidth_by_network.py", changed)
    changed.write_text(changed.read_text().replace("prefix = 24", "prefix = 16"))
    refused = cluster.run("run", str(changed))
    assert refused.returncode == 2
    assert b"deploy the same jobs directory" in refused.stderr
    assert b"Traceback" not in refused.stderr
    # the changed job was refused by its hash: no node holds its text, nor ran it
    changed_text = b"prefix = 16"
    assert not [p for p in cluster.root.rglob("*") if p.is_file()
                and changed_text in p.read_bytes()]


@pytest.mark.slow
def test_a_batch_held_by_two_nodes_counts_once_in_a_job(cluster_factory: object,
                                                        tmp_path: Path) -> None:
    cluster: LocalCluster = cluster_factory(  # type: ignore[operator]
        nodes=2, worker_args=("--jobs-dir", str(JOBS)))
    log = tmp_path / "fifty.log"
    log.write_bytes(b"".join(HACKERS.read_bytes().splitlines(keepends=True)[:50]))
    cluster.store_on_both_nodes("dup-run-1", log.read_bytes())
    assert [int(s["lines"]) for s in cluster.node_stats().values()] == [50, 50]
    out = cluster.run("run", str(JOBS / "bandwidth_by_network.py"), "--format", "json",
                      "--limit", "1000")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["bandwidth-by-network"]
    assert {r["network"]: [r["bytes"], r["hits"]] for r in rows} == by_network(log)
    assert sum(r["hits"] for r in rows) == 50


SET_JOB = '''
from logmr.jobs import Job


class Visitors(Job):
    name = "visitors-as-a-set"
    version = "1"

    def mapper(self, line):
        yield line.url, {line.host}

    def reducer(self, key, values):
        yield key, set().union(*values)
'''


def test_a_pair_that_cannot_cross_the_wire_fails_in_file_mode_as_on_a_node(
        tmp_path: Path) -> None:
    job = tmp_path / "visitors.py"
    job.write_text(SET_JOB)
    out = logmr("run", str(job), str(HACKERS))
    assert out.returncode == 2, out
    assert out.stderr.count(b"\n") == 1 and b"Traceback" not in out.stderr
    assert b"cannot travel between nodes" in out.stderr
    # the same job with tuples works, and its values come back as they do from a node
    job.write_text(SET_JOB.replace("{line.host}", "(line.host,)").replace(
        "set().union(*values)", "tuple(sorted(set().union(*values)))"))
    assert logmr("run", str(job), str(HACKERS), "--format", "json").returncode == 0
