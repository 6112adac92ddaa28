"""Reports against their peers on the real sample logs, and the same results from a
two-node cluster, a one-node cluster and file mode."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from logmr.mapfn.pattern import runs_in_linear_time
from tests.cluster import BOTH_LINES, HACKERS, SEMICOMPLETE, LocalCluster, logmr
from tests.conftest import wait_for

SAMPLES = [SEMICOMPLETE, HACKERS]


def report(*args: str, servers: str | None = None) -> dict[str, Any]:
    out = logmr("report", "--format", "json", *args, servers=servers)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    data.get("summary", {}).pop("nodes", None)  # which node held what differs, rightly
    return data


def awk_counts(path: Path, field: int) -> list[tuple[int, str]]:
    """`awk '{print $N}' FILE | sort | uniq -c | sort -rn`, as pairs."""
    out = subprocess.run(f"awk '{{print ${field}}}' {path} | sort | uniq -c | sort -rn",
                         shell=True, capture_output=True, check=True).stdout
    return [(int(n), key) for n, key in (ln.split(None, 1) for ln in
                                                   out.decode().splitlines())]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_top_urls_and_status_equal_the_awk_pipeline(path: Path) -> None:
    data = report("--top-urls", "--status", "--limit", "15", str(path))
    awk = dict((key, n) for n, key in awk_counts(path, 7))
    top = data["top_urls"]
    assert len(top) == 15
    assert [row["hits"] for row in top] == [n for n, _ in awk_counts(path, 7)[:15]]
    assert all(row["hits"] == awk[row["url"]] for row in top)
    status = {str(row["status"]): row["hits"] for row in data["status"]}
    assert status == {key: n for n, key in awk_counts(path, 9)}


@pytest.mark.skipif(shutil.which("goaccess") is None, reason="goaccess is not installed")
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_summary_equals_goaccess(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "goaccess.json"
    subprocess.run(["goaccess", str(path), "--log-format=COMBINED", "-o", str(out)],
                   capture_output=True, check=True)
    general = json.loads(out.read_text())["general"]
    summary = report("--summary", str(path))["summary"]
    assert summary["unique_visitors"] == general["unique_visitors"]
    assert summary["requests"] == general["valid_requests"]
    assert summary["bytes"] == general["bandwidth"]


def test_file_mode_and_clusters_of_one_and_two_nodes_agree(
        cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    both = tmp_path / "both.log"
    both.write_bytes(SEMICOMPLETE.read_bytes() + HACKERS.read_bytes())
    args = ("--all", "--limit", "20", "--funnel", "/,/articles/", "--transitions", "/")
    in_file = report(*args, str(both))
    for nodes in (1, 2):
        cluster = cluster_factory(nodes=nodes)
        for path in SAMPLES:
            assert cluster.run("ship", str(path)).returncode == 0
        wait_for(lambda c=cluster: c.run("grep", "-c", "").stdout == b"%d\n" % BOTH_LINES, 30,
                 "all lines stored")
        in_cluster = report(*args, servers=cluster.servers)
        assert in_cluster == in_file, nodes
        cluster.stop()
    assert in_file["summary"]["requests"] == BOTH_LINES
    assert set(in_file) >= {"summary", "top_urls", "sessions", "entry_pages", "exit_pages",
                            "paths", "funnel", "transitions", "os", "browsers", "bots"}


def test_a_batch_on_two_nodes_counts_once_in_reports(cluster: LocalCluster) -> None:
    lines = b"".join(HACKERS.read_bytes().splitlines(keepends=True)[:200])
    cluster.store_on_both_nodes("dup-report-1", lines)
    path = cluster.root / "lines.log"
    path.write_bytes(lines)
    assert report("--all", servers=cluster.servers) == report("--all", str(path))


def test_filters(tmp_path: Path) -> None:
    path = str(SEMICOMPLETE)
    errors = report("--summary", "--only-status", "4xx,5xx", path)["summary"]["requests"]
    awk = sum(n for n, key in awk_counts(SEMICOMPLETE, 9) if key[0] in "45")
    assert errors == awk
    css = report("--top-urls", "--url", r"\.css$", "--limit", "1000", path)["top_urls"]
    awk_css = subprocess.run(f"awk '$7 ~ /\\.css$/ {{print $7}}' {path} | sort | uniq -c",
                             shell=True, capture_output=True, check=True).stdout
    want_css = {url: int(n) for n, url in (ln.split() for ln in awk_css.decode().splitlines())}
    assert {row["url"]: row["hits"] for row in css} == want_css and want_css
    grep = report("--summary", "--grep", "Googlebot", path)["summary"]["requests"]
    assert grep == int(subprocess.run(["grep", "-c", "-F", "Googlebot", path],
                                      capture_output=True, check=True).stdout) > 0
    since, until = "2015-05-18T00:00:00+00:00", "2015-05-19T00:00:00+00:00"
    day = report("--summary", "--since", since, "--until", until, path)["summary"]
    lo, hi = (datetime.fromisoformat(t).timestamp() for t in (since, until))
    stamps = re.findall(rb"\[([^\]]+)\]", SEMICOMPLETE.read_bytes())
    in_day = sum(lo <= datetime.strptime(t.decode(), "%d/%b/%Y:%H:%M:%S %z").timestamp() < hi
                 for t in stamps)
    assert day["requests"] == in_day > 0
    assert day["first"].startswith("2015-05-18") and day["last"].startswith("2015-05-18")
    assert report("--bots", path)["bots"]  # there are bots, and the flag drops them all
    assert report("--bots", "--exclude-bots", path)["bots"] == []


def test_outputs_and_errors(tmp_path: Path) -> None:
    path = str(HACKERS)
    csv_out = logmr("report", "--format", "csv", "--top-urls", path)
    assert csv_out.returncode == 0
    assert csv_out.stdout.splitlines()[0] == b"report,url,hits,visitors,visitors_exact,bytes,share"
    page = tmp_path / "r.html"
    assert logmr("report", "--all", "--format", "html", "-o", str(page), path).returncode == 0
    text = page.read_text()
    assert "<svg" in text and "chart-traffic" in text and "http" not in text.split(
        "<body>")[0]
    table = logmr("report", path)
    assert table.returncode == 0 and b"Top URLs" in table.stdout
    for bad in (["--only-status", "abc"], ["--interval", "soon"], ["--no-such-flag"],
                ["--visitor-key", "mac"]):
        out = logmr("report", *bad, path)
        assert out.returncode == 2 and out.stderr.count(b"\n") == 1, (bad, out.stderr)
    missing = logmr("report", "/no/such/file.log")
    assert missing.returncode == 2 and missing.stderr.count(b"\n") == 1


def _click_args(truth: dict[str, Any]) -> tuple[str, ...]:
    steps = ",".join(s["step"] for s in truth["funnel"])
    return ("--sessions", "--entry-pages", "--exit-pages", "--paths", "--funnel", steps,
            "--transitions", truth["transitions"]["url"], "--limit", "1000000")


def _check_clicks(data: dict[str, Any], truth: dict[str, Any]) -> None:
    assert data["sessions"] == truth["sessions"]
    assert {r["url"]: r["sessions"] for r in data["entry_pages"]} == truth["entry_pages"]
    assert {r["url"]: r["sessions"] for r in data["exit_pages"]} == truth["exit_pages"]
    assert data["paths"] == truth["paths"]
    assert data["funnel"] == truth["funnel"]
    assert data["transitions"] == truth["transitions"]


@pytest.fixture(scope="module")
def visits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A generated log whose visits are known by construction, and the true answer."""
    import sys

    root = tmp_path_factory.mktemp("visits")
    log = root / "visits.log"
    subprocess.run([sys.executable, str(Path(__file__).resolve().parents[2] / "bench" /
                                        "genvisits.py"), "30000", str(log),
                    "--funnel", "/,/products,/cart"], check=True, capture_output=True)
    truth: dict[str, Any] = json.loads((root / "visits.truth.json").read_text())
    return log, truth


def test_click_analysis_equals_the_known_visits(visits: tuple[Path, dict[str, Any]],
                                                cluster: LocalCluster) -> None:
    log, truth = visits
    assert truth["sessions"]["count"] > 1000 and truth["funnel"][-1]["visits"] > 0
    _check_clicks(report(*_click_args(truth), str(log)), truth)
    assert cluster.run("ship", str(log)).returncode == 0
    total = truth["totals"]["lines"]
    wait_for(lambda: cluster.run("grep", "-c", "").stdout == b"%d\n" % total, 60, "stored")
    _check_clicks(report(*_click_args(truth), servers=cluster.servers), truth)


def test_gz_and_stdin_give_the_same_report(tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "access.log.gz"
    packed.write_bytes(gzip.compress(SEMICOMPLETE.read_bytes()))
    args = ("--all", "--limit", "5")
    plain = report(*args, str(SEMICOMPLETE))
    assert report(*args, str(packed)) == plain
    piped = logmr("report", "--format", "json", *args, "-", stdin=SEMICOMPLETE.read_bytes())
    data = json.loads(piped.stdout)
    data["summary"].pop("nodes")
    assert data == plain


def test_patterns_that_could_backtrack_run_apart_on_a_cluster_and_agree_with_gnu_grep(
        cluster_factory: Callable[..., LocalCluster]) -> None:
    """A --grep or --url with repetition runs in a map process of its own on each node
    (not in the node's process): the report it gives equals GNU grep and awk's."""
    grep_pattern, url_pattern = r'"GET /[a-z]+/[^ ]* HTTP/1\.[01]" 200 ', r"^/[a-z]+/.+"
    assert not any(runs_in_linear_time(re.compile(p.encode()))
                   for p in (grep_pattern, url_pattern))  # else this tests the other path
    cluster = cluster_factory(nodes=2)
    for path in SAMPLES:
        assert cluster.run("ship", str(path)).returncode == 0
    wait_for(lambda: cluster.run("grep", "-c", "").stdout == b"%d\n" % BOTH_LINES, 30,
             "all lines stored")
    files = [str(p) for p in SAMPLES]
    matching = subprocess.run(["grep", "-hE", grep_pattern, *files], capture_output=True,
                              check=True).stdout.splitlines()
    data = report("--summary", "--status", "--grep", grep_pattern, servers=cluster.servers)
    assert data["summary"]["requests"] == len(matching) > 1000
    by_status = {str(row["status"]): row["hits"] for row in data["status"]}
    assert by_status == {"200": len(matching)}
    # the URL filter: awk reads the request's path, grep -E matches it
    urls = subprocess.run(
        f"awk '{{print $7}}' {' '.join(files)} | grep -cE '{url_pattern}'", shell=True,
        capture_output=True, check=True).stdout
    data = report("--summary", "--url", url_pattern, servers=cluster.servers)
    assert data["summary"]["requests"] == int(urls) > 1000
    # and grep itself, line for line
    out = cluster.run("grep", grep_pattern)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.splitlines()) == sorted(matching)


AWK_BY = ("awk '{where} {{k=${key}; sub(/^\"/, \"\", k); hits[k]++; if ($10 != \"-\") "
          "bytes[k]+=$10}} END {{for (k in hits) printf \"%s %d %.0f\\n\", k, hits[k], "
          "bytes[k]}}' {path}")
VISITOR_LINE = re.compile(rb'^(\S+) \S+ \S+ \[(\d+/\w+/\d+):[^\]]*\] "(\S+) (\S+)[^"]*" '
                          rb'(\d{3}) \S+ "[^"]*" "([^"]*)"?$')  # as GoAccess: a cut UA counts


def awk_rows(path: Path, key: int, where: str = "") -> dict[str, tuple[int, int]]:
    """hits and bytes by field ``key`` (leading quote dropped), by awk."""
    program = AWK_BY.format(where=where, key=key, path=path)
    out = subprocess.run(program, shell=True, capture_output=True, check=True).stdout
    return {k: (int(h), int(b)) for k, h, b in (ln.rsplit(" ", 2) for ln in
                                                 out.decode().splitlines())}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_hosts_methods_not_found_and_bytes_equal_awk(path: Path) -> None:
    data = report("--hosts", "--methods", "--not-found", "--top-urls", "--limit", "1000000",
                  str(path))
    total = sum(h for h, _ in awk_rows(path, 1).values())
    for panel, field, key, where in (("hosts", "host", 1, ""), ("methods", "method", 6, ""),
                                     ("top_urls", "url", 7, ""),
                                     ("not_found", "url", 7, "$9 == 404")):
        want = awk_rows(path, key, where)
        got = {row[field]: (row["hits"], row["bytes"]) for row in data[panel]}
        assert got == want and want, panel
        assert all(row["share"] == round(100 * row["hits"] / total, 2)
                   for row in data[panel]), panel


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_visitors_per_row_equal_a_plain_count(path: Path) -> None:
    """A visitor is client IP + date + user agent, and a 4xx answer makes none (README);
    counted here with a regex over the raw lines, where logmr says the count is exact."""
    by_host: dict[bytes, set[tuple[bytes, bytes]]] = {}
    by_url: dict[bytes, set[tuple[bytes, bytes, bytes]]] = {}
    for line in path.read_bytes().splitlines():
        m = VISITOR_LINE.match(line)
        assert m, line
        host, day, _, url, status, agent = m.groups()
        by_host.setdefault(host, set())
        by_url.setdefault(url, set())
        if not status.startswith(b"4"):
            by_host[host].add((day, agent))
            by_url[url].add((host, day, agent))
    data = report("--hosts", "--top-urls", "--limit", "1000000", str(path))
    exact_hosts = [r for r in data["hosts"] if r["visitors_exact"]]
    exact_urls = [r for r in data["top_urls"] if r["visitors_exact"]]
    assert len(exact_hosts) > len(data["hosts"]) // 2 and exact_urls
    assert {r["host"]: r["visitors"] for r in exact_hosts} == {
        r["host"]: len(by_host[r["host"].encode()]) for r in exact_hosts}
    assert {r["url"]: r["visitors"] for r in exact_urls} == {
        r["url"]: len(by_url[r["url"].encode()]) for r in exact_urls}
