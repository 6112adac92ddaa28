"""Logs as they come, with no --log-format: `logmr formats`, and file mode, a cluster and
the stock `gearman -n -f logger` reading real logs in the format found by themselves,
against GoAccess (requests, visitors) and awk (top URLs, status codes)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import HACKERS, SAMPLES, SEMICOMPLETE, LocalCluster, logmr
from tests.conftest import wait_for
from tests.unit.test_detect import FORMATS, varied

PLOYT0 = SAMPLES / "nginx_combined_ployt0.log"
GOACCESS_FORMATS = {"combined": "COMBINED", "vhost_combined": "VCOMBINED",
                    "common": "COMMON"}


def formats(*args: str) -> tuple[int, list[dict[str, Any]]]:
    out = logmr("formats", "--format", "json", *args)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def test_formats_names_every_known_format(tmp_path: Path) -> None:
    paths = []
    for fmt in FORMATS:
        path = tmp_path / f"{fmt}.log"
        path.write_bytes(b"".join(r.line(fmt) + b"\n" for r in varied(120, seed=11)))
        paths.append(str(path))
    code, found = formats(*paths)
    assert code == 0
    assert [(f["format"], f["lines"], f["parsed"], f["first_unparsed"]) for f in found] == [
        (fmt, 120, 120, None) for fmt in FORMATS]
    table = logmr("formats", *paths)
    assert table.returncode == 0 and b"vhost_combined, 120 of 120 lines (100.0 %)" in \
        table.stdout


def test_formats_tells_a_file_that_mixes_two(tmp_path: Path) -> None:
    common = [r.line("common") for r in varied(300, seed=12)]
    vhosts = [r.line("vhost_combined") for r in varied(100, seed=13)]
    mixed = tmp_path / "mixed.log"
    mixed.write_bytes(b"\n".join(common[:200] + vhosts + common[200:]) + b"\n")
    code, [found] = formats(str(mixed))
    assert code == 1
    assert (found["format"], found["lines"], found["parsed"]) == ("common", 400, 300)
    assert found["first_unparsed"] == {"line": 201, "text": vhosts[0].decode()}
    assert found["others"] == [{"format": "vhost_combined", "lines": 100}]
    table = logmr("formats", str(mixed)).stdout
    assert b"mixes formats" in table and b"(line 201)" in table
    # a report reads both formats (the lines common does not read, as vhost_combined)
    summary = json.loads(logmr("report", "--summary", "--format", "json", str(mixed)).stdout)
    assert (summary["summary"]["requests"], summary["summary"]["unparsed"]) == (400, 0)


def test_formats_errors_are_one_line() -> None:
    out = logmr("formats", "/no/such/file.log")
    assert out.returncode == 2 and out.stderr.count(b"\n") == 1
    assert b"cannot read /no/such/file.log" in out.stderr
    assert logmr("formats").returncode == 2  # a file is required


def goaccess(path: Path, fmt: str = "COMBINED") -> tuple[dict[str, Any], int]:
    """GoAccess's general panel, and how many lines it rejects."""
    with_dir = path.parent
    out, bad = with_dir / f"{path.name}.goaccess.json", with_dir / f"{path.name}.invalid"
    subprocess.run(["goaccess", str(path), f"--log-format={fmt}", f"--invalid-requests={bad}",
                    "-o", str(out)], capture_output=True, check=True)
    general: dict[str, Any] = json.loads(out.read_text())["general"]
    return general, bad.read_bytes().count(b"\n")


# the request is the first quoted field; its URL is the middle of METHOD URL HTTP/x (else
# none, as logmr keeps such a request whole); the status is the field after it
AWK_URL_STATUS = r"""{
    if (match($0, /"([^"\\]|\\.)*"/)) {
        r = substr($0, RSTART + 1, RLENGTH - 2)
        n = split(r, a, " ")
        split(substr($0, RSTART + RLENGTH + 1), b, " ")
        print ((n == 3 && a[3] ~ /^HTTP\//) ? a[2] : "") "\t" b[1]
    }
}"""


def awk_urls_and_status(path: Path) -> tuple[Counter[str], Counter[str]]:
    out = subprocess.run(["awk", AWK_URL_STATUS, str(path)], capture_output=True,
                         check=True).stdout.decode("utf-8", "surrogateescape")
    pairs = [ln.split("\t") for ln in out.splitlines()]
    return Counter(u for u, _ in pairs), Counter("0" if st == "-" else st for _, st in pairs)


def check_against_peers(data: dict[str, Any], path: Path, fmt: str = "COMBINED") -> None:
    """No line unparsed; requests and visitors as GoAccess's (with the lines GoAccess
    rejects counted in); top URLs and status codes as awk's."""
    general, rejected = goaccess(path, fmt)
    lines = path.read_bytes().count(b"\n")
    summary = data["summary"]
    assert summary["unparsed"] == 0
    assert summary["requests"] == lines == general["valid_requests"] + rejected
    assert summary["unique_visitors"] == general["unique_visitors"]
    urls, status = awk_urls_and_status(path)
    assert {row["url"]: row["hits"] for row in data["top_urls"]} == urls
    assert {str(r["status"]): r["hits"] for r in data["status"]} == status


ARGS = ("--summary", "--top-urls", "--status", "--limit", "1000000", "--format", "json")
needs_goaccess = pytest.mark.skipif(shutil.which("goaccess") is None,
                                    reason="goaccess is not installed")


@needs_goaccess
@pytest.mark.parametrize("path", [PLOYT0, SEMICOMPLETE, HACKERS], ids=lambda p: p.name)
def test_file_mode_needs_no_format(path: Path, tmp_path: Path) -> None:
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    out = logmr("report", *ARGS, str(copy))
    assert out.returncode == 0, out.stderr
    check_against_peers(json.loads(out.stdout), copy)


@needs_goaccess
def test_a_vhost_log_written_here_needs_no_format(tmp_path: Path) -> None:
    path = tmp_path / "vhosts.log"
    # as GoAccess reads them: a status, an address (not a host name) and an agent ("" and
    # "-" are one agent to it) for every line
    rows = [r for r in varied(2000, seed=14)
            if r.status != "-" and r.agent and not r.host[0].isalpha()]
    path.write_bytes(b"".join(r.line("vhost_combined") + b"\n" for r in rows))
    out = logmr("report", *ARGS, str(path))
    assert out.returncode == 0, out.stderr
    check_against_peers(json.loads(out.stdout), path, "VCOMBINED")


@needs_goaccess
@pytest.mark.slow
def test_a_cluster_and_the_stock_logger_need_no_format(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    copy = tmp_path / PLOYT0.name
    shutil.copy(PLOYT0, copy)
    lines = copy.read_bytes().count(b"\n")
    cluster = cluster_factory(nodes=2)
    assert cluster.run("ship", str(copy)).returncode == 0
    cluster.wait_stored(lines)
    out = cluster.run("report", *ARGS)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    data["summary"].pop("nodes", None)
    check_against_peers(data, copy)
    # the stock CLI sends raw lines, one job each, with no format at all
    part = tmp_path / "part.log"
    part.write_bytes(b"".join(copy.read_bytes().splitlines(keepends=True)[:2000]))
    logger = cluster_factory(nodes=2)
    subprocess.run(["gearman", "-h", "127.0.0.1", "-p", str(logger.gearmand.port), "-n",
                    "-f", "logger"], stdin=part.open("rb"), check=True, timeout=120)
    wait_for(lambda: logger.stored_lines() == 2000, 60, "the logger's lines stored")
    out = logger.run("report", *ARGS)
    assert out.returncode == 0, out.stderr
    check_against_peers(json.loads(out.stdout), part)


@pytest.mark.slow
def test_a_wrong_format_is_unparsed_named_in_status_and_nothing_is_lost(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    path = tmp_path / "vhosts.log"
    path.write_bytes(b"".join(r.line("vhost_combined") + b"\n" for r in varied(500, seed=15)))
    cluster = cluster_factory(nodes=2)
    assert cluster.run("ship", "--host", "wrong", "--format", "combined",
                       str(path)).returncode == 0
    assert cluster.run("ship", "--host", "right", str(path)).returncode == 0
    cluster.wait_stored(1000)
    summary = cluster.summary()
    assert (summary["requests"], summary["unparsed"]) == (500, 500)
    sources = cluster.status()["sources"]
    assert sources["wrong"]["unparsed_share"] == 1.0
    assert (sources["wrong"]["format"], sources["wrong"]["suggested"]) == (
        "combined", "vhost_combined")
    assert (sources["right"]["unparsed_share"], sources["right"]["format"],
            sources["right"]["suggested"]) == (0.0, "vhost_combined", None)
    table = cluster.run("status").stdout
    assert b"ship them with --log-format vhost_combined" in table
    assert b"old: 2015-05-20" in table  # old data: its date, not a lag
    # nothing was lost: every line of both hosts is stored byte for byte
    out = cluster.run("grep", "")
    assert sorted(out.stdout.splitlines()) == sorted(path.read_bytes().splitlines() * 2)


def test_remote_users_equal_the_users_written_and_awk(tmp_path: Path) -> None:
    rows = varied(600, seed=16)
    path = tmp_path / "users.log"
    path.write_bytes(b"".join(r.line("combined") + b"\n" for r in rows))
    out = logmr("report", "--remote-users", "--format", "json", str(path))
    assert out.returncode == 0, out.stderr
    got = {r["user"]: r["hits"] for r in json.loads(out.stdout)["remote_users"]}
    written = Counter(r.user for r in rows if r.user != "-")
    awk = subprocess.run(["awk", '$3 != "-" {print $3}', str(path)], capture_output=True,
                         check=True).stdout.decode().split()
    assert got == dict(written) == dict(Counter(awk)) and len(got) == 3
