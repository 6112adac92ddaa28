"""The fields operators log beyond combined, with their panels: in file mode and on a
2-node cluster, against awk and sort over the file (the oracle), and recovered by
`logmr reparse` from lines shipped before their format was named."""

from __future__ import annotations

import json
import math
import random
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import LocalCluster, logmr
from tests.conftest import wait_for

COMBINED = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
TIMED = COMBINED + " %D"
NGINX_TIMED = COMBINED + " %T"  # nginx's $request_time (0.123) at the end of the line


def write_timed(path: Path, n: int, seed: int, nginx: bool = False) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            url = rng.choice(["/", "/a", "/b", "/slow", "/api?q=1"])
            us = int(rng.lognormvariate(9, 2.5 if url == "/slow" else 1))
            taken = f"{us / 1e6:.3f}" if nginx else str(us)
            f.write(f'10.1.{i % 9}.{i % 200} - - [20/May/2015:{10 + i % 5}:{i % 60:02d}:07 '
                    f'+0000] "GET {url} HTTP/1.1" 200 {i % 999} "-" "agent/{i % 4}" '
                    f'{taken}\n')


def awk_times(path: Path, scale: int) -> tuple[dict[str, tuple[int, int, int]], list[int]]:
    """Per URL (hits, total us, max us), and every time taken sorted (sort -n)."""
    program = (f'{{d = int($NF * {scale} + 0.5); u = $7; n[u]++; s[u] += d; '
               'if (d > m[u]) m[u] = d} '
               'END {for (u in n) printf "%s %d %d %d\\n", u, n[u], s[u], m[u]}')
    out = subprocess.run(["awk", program, str(path)], capture_output=True, check=True)
    rows = {}
    for line in out.stdout.decode().splitlines():
        url, hits, total, longest = line.split()
        rows[url] = (int(hits), int(total), int(longest))
    ordered = subprocess.run(f"awk '{{printf \"%d\\n\", $NF * {scale} + 0.5}}' {path} | "
                             "sort -n", shell=True, capture_output=True, check=True)
    return rows, [int(v) for v in ordered.stdout.split()]


def check_times(data: dict[str, Any], path: Path, scale: int = 1) -> None:
    rows, ordered = awk_times(path, scale)
    got = data["response_times"]
    assert got["requests"] == len(ordered)
    assert {r["url"]: (r["hits"], r["total_us"], r["max_us"]) for r in got["urls"]} == rows
    assert got["max_us"] == ordered[-1]
    for q in (50, 90, 95, 99):
        exact = ordered[math.ceil(q * len(ordered) / 100) - 1]
        assert abs(got[f"p{q}_us"] - exact) <= 0.01 * exact + 1, q


def report(*args: str, cluster: LocalCluster | None = None) -> dict[str, Any]:
    full = ("report", "--response-times", "--summary", "--limit", "100", "--format", "json",
            *args)
    out = cluster.run(*full) if cluster else logmr(*full)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    data["summary"].pop("nodes", None)
    return data


@pytest.mark.parametrize("fmt, nginx, scale", [(TIMED, False, 1), (NGINX_TIMED, True, 10**6)],
                         ids=["apache %D", "nginx $request_time"])
def test_response_times_in_file_mode_equal_awk(tmp_path: Path, fmt: str, nginx: bool,
                                               scale: int) -> None:
    path = tmp_path / "timed.log"
    write_timed(path, 5000, seed=21, nginx=nginx)
    check_times(report("--log-format", fmt, str(path)), path, scale)


@pytest.mark.slow
def test_response_times_on_a_cluster_and_after_a_reparse(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    path = tmp_path / "timed.log"
    write_timed(path, 6000, seed=22)
    cluster = cluster_factory(nodes=2)
    # auto reads these as combined: the number that follows is not a field it names
    assert cluster.run("ship", "--host", "web1", str(path)).returncode == 0
    cluster.wait_stored(6000)
    wait_for(lambda: cluster.copies() == 12000, 60, "both copies")
    before = report(cluster=cluster)
    assert before["summary"]["unparsed"] == 0 and before["response_times"]["requests"] == 0
    out = cluster.run("reparse", "--format", TIMED, "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    after = report(cluster=cluster)
    check_times(after, path)
    assert after["summary"] == before["summary"]
    assert after == report("--log-format", TIMED, str(path))  # as file mode reads it


NGINX_MAIN_PROXIES = ["10.0.0.1", "10.0.0.2"]  # the site's own proxies (10.0.0.0/8)


def write_proxied(path: Path, n: int, seed: int) -> list[tuple[str, str, int]]:
    """nginx `main` lines behind two proxies: some direct (no X-Forwarded-For), some with
    an address the client forged in front of its own. Returns each line's real client,
    agent and status (the generator's truth)."""
    rng = random.Random(seed)
    truth = []
    with path.open("w") as f:
        for i in range(n):
            client = f"203.0.113.{rng.randrange(40)}"
            agent = f"agent/{rng.randrange(3)}"
            status = rng.choice([200, 200, 200, 404, 301])
            kind = rng.random()
            if kind < 0.2:  # straight to the server
                peer, xff = client, "-"
            elif kind < 0.4:  # a forged first entry: only the proxies' entries count
                peer, xff = NGINX_MAIN_PROXIES[1], f"6.6.6.{i % 7}, {client}, 10.0.0.1"
            else:
                peer, xff = NGINX_MAIN_PROXIES[1], f"{client}, 10.0.0.1"
            f.write(f'{peer} - - [20/May/2015:10:{i % 60:02d}:00 +0000] "GET /p{i % 5} '
                    f'HTTP/1.1" {status} 10 "-" "{agent}" "{xff}"\n')
            truth.append((client, agent, status))
    return truth


def check_clients(data: dict[str, Any], truth: list[tuple[str, str, int]]) -> None:
    hosts = {row["host"]: row["hits"] for row in data["hosts"]}
    expect: dict[str, int] = {}
    for client, _, _ in truth:
        expect[client] = expect.get(client, 0) + 1
    assert hosts == expect
    # a visitor: client, date, agent; a 4xx answer makes none (as GoAccess counts)
    visitors = {(c, a) for c, a, status in truth if not 400 <= status < 500}
    assert data["summary"]["unique_visitors"] == len(visitors)
    assert data["sessions"]["count"] >= len({(c, a) for c, a, _ in truth})


XFF_ARGS = ("--hosts", "--sessions", "--client-ip", "xff", "--trusted-proxies", "10.0.0.0/8",
            "--limit", "1000")


def test_client_ip_from_x_forwarded_for_in_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "proxied.log"
    truth = write_proxied(path, 3000, seed=31)
    check_clients(report(*XFF_ARGS, str(path)), truth)  # auto finds nginx_main
    # without --client-ip, the client is the connecting address, as logged
    peers = report("--hosts", str(path))
    assert {r["host"] for r in peers["hosts"]} <= {c for c, _, _ in truth} | {"10.0.0.2"}
    out = logmr("report", "--client-ip", "xff", "--trusted-proxies", "10.0.0.0/99", str(path))
    assert out.returncode == 2 and out.stderr.count(b"\n") == 1, out.stderr


@pytest.mark.slow
def test_client_ip_from_x_forwarded_for_on_a_cluster(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    path = tmp_path / "proxied.log"
    truth = write_proxied(path, 3000, seed=32)
    cluster = cluster_factory(nodes=2)
    assert cluster.run("ship", str(path)).returncode == 0
    cluster.wait_stored(3000)
    data = report(*XFF_ARGS, cluster=cluster)
    check_clients(data, truth)
    assert data == report(*XFF_ARGS, str(path))


IO_FORMAT = COMBINED + ' %I %O "%{Content-Type}o" %{SSL_PROTOCOL}x'
IO_ARGS = ("--mime-types", "--tls", "--limit", "1000")


def write_io(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            mime = rng.choice(["text/html", "image/png", "application/json", "-"])
            tls = rng.choice(["TLSv1.3", "TLSv1.2", "-"])  # "-": plain HTTP
            body = rng.randrange(50_000)
            f.write(f'198.51.100.{i % 30} - - [20/May/2015:10:{i % 60:02d}:00 +0000] '
                    f'"GET /f{i % 9} HTTP/1.1" 200 {body} "-" "agent" {rng.randrange(900)} '
                    f'{body + 250} "{mime}" {tls}\n')


def awk_io(path: Path) -> dict[str, Any]:
    """Sums of %I and %O, and lines per content type and TLS protocol ("-" left out)."""
    program = ('{i += $(NF-3); o += $(NF-2); m[$(NF-1)]++; t[$NF]++} '
               'END {print "in", i; print "out", o; '
               'for (k in m) print "mime", k, m[k]; for (k in t) print "tls", k, t[k]}')
    out = subprocess.run(["awk", program, str(path)], capture_output=True, check=True)
    found: dict[str, Any] = {"mime": {}, "tls": {}}
    for line in out.stdout.decode().splitlines():
        kind, *rest = line.split()
        if kind in ("in", "out"):
            found[kind] = int(rest[0])
        elif rest[0] not in ("-", '"-"'):
            found[kind][rest[0].strip('"')] = int(rest[1])
    return found


def check_io(data: dict[str, Any], path: Path) -> None:
    truth = awk_io(path)
    assert (data["summary"]["bytes_in"], data["summary"]["bytes_out"]) == (truth["in"],
                                                                          truth["out"])
    assert {r["mime_type"]: r["hits"] for r in data["mime_types"]} == truth["mime"]
    assert {r["protocol"]: r["hits"] for r in data["tls"]} == truth["tls"]


def test_bytes_in_and_out_content_types_and_tls_in_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "io.log"
    write_io(path, 3000, seed=41)
    check_io(report(*IO_ARGS, "--log-format", IO_FORMAT, str(path)), path)
    found = report(*IO_ARGS, str(path))  # auto finds combinedio: %I %O, nothing after
    assert found["summary"] == report(*IO_ARGS, "--log-format", IO_FORMAT, str(path))[
        "summary"]
    assert found["mime_types"] == found["tls"] == []
    plain = report(*IO_ARGS, "--log-format", "combined", str(path))
    assert "bytes_in" not in plain["summary"]


@pytest.mark.slow
def test_bytes_in_and_out_content_types_and_tls_on_a_cluster(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    path = tmp_path / "io.log"
    write_io(path, 3000, seed=42)
    cluster = cluster_factory(nodes=2)
    assert cluster.run("ship", "--format", IO_FORMAT, str(path)).returncode == 0
    cluster.wait_stored(3000)
    data = report(*IO_ARGS, cluster=cluster)
    check_io(data, path)
    assert data == report(*IO_ARGS, "--log-format", IO_FORMAT, str(path))
