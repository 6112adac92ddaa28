"""Bad input is stored and counted, never fatal: the odd-input corpus goes in whole."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.cluster import LocalCluster
from tests.faults.ledger import unique_lines, wait_count

pytestmark = pytest.mark.slow


def corpus() -> list[bytes]:
    """Lines as they reach ship, each ending in a newline (the last one gets none); those
    no format reads are in _UNREADABLE afterwards."""
    _UNREADABLE.clear()
    rng = random.Random(7)
    good = unique_lines("odd", 20)
    garbage = bytes(rng.randrange(256) for _ in range(3000)).replace(b"\n", b"~")
    lines = [
        *good[:5],
        b'1.2.3.4 - - [27/Nov/2026:10:00:00 +0000] "GET /\xff\xfe\x80\xc3 HTTP/1.1" 200 1 "-" '
        b'"\xe9t\xe9"\n',  # not UTF-8
        b'1.2.3.4 - - [27/Nov/2026:10:00:01 +0000] "GET /nul\x00byte HTTP/1.1" 200 1 "-" '
        b'"a\x00b"\n',  # NUL bytes
        good[5][:-1] + b"\r\n",  # CRLF
        *UNREADABLE(b"MARKER64K " + b"k" * (64 * 1024) + b"\n"),  # 64 KiB line
        *UNREADABLE(b"MARKER1M " + bytes(rng.randrange(32, 127) for _ in range(1 << 20))
                    + b"\n"),  # 1 MiB
        *UNREADABLE(good[6][:60] + b"\n"),  # truncated inside the request
        # truncated after the size: the fields up to it read (the rest is ignored)
        good[7][: len(good[7]) - 20] + b"\n",
        *UNREADABLE(garbage + b"\n"),  # binary garbage
        *UNREADABLE(b"\n"),  # an empty line
        *UNREADABLE(b'{"msg": "a JSON log line, not Apache at all", "level": "info"}\n'),
        *good[8:],
    ]
    lines.extend(UNREADABLE(b"the last line has no final newline"))
    return lines


_UNREADABLE: list[bytes] = []


def UNREADABLE(line: bytes) -> list[bytes]:  # noqa: N802 - reads as a label in the corpus
    """Mark a corpus line as one no format can read (the corpus's truth)."""
    _UNREADABLE.append(line)
    return [line]


def shipped_back(cluster: LocalCluster) -> list[bytes]:
    out = cluster.run("grep", "")
    assert out.returncode == 0, out.stderr
    return out.stdout.split(b"\n")[:-1]


@pytest.mark.parametrize("how", ["pipe", "file"])
def test_the_odd_input_corpus_goes_in_whole(cluster: LocalCluster, tmp_path: Path,
                                            how: str) -> None:
    lines = corpus()
    data = b"".join(lines)
    if how == "file":
        path = tmp_path / "odd.log"
        path.write_bytes(data)
        shipped = cluster.run("ship", str(path))
    else:
        shipped = subprocess.run(
            [sys.executable, "-m", "logmr", "ship", "--servers", cluster.servers,
             "--spool-dir", str(tmp_path / "spool")], input=data, capture_output=True,
            timeout=120, check=False)
    assert shipped.returncode == 0, shipped.stderr
    wait_count(cluster, len(lines), 60)
    back = shipped_back(cluster)
    assert Counter(back) == Counter(line.rstrip(b"\n") for line in lines)
    one_mib = [line for line in lines if line.startswith(b"MARKER1M")][0]
    got = cluster.run("grep", "-F", "MARKER1M")
    assert got.stdout == one_mib  # byte for byte, newline included
    assert cluster.summary()["unparsed"] == len(set(_UNREADABLE)) == 7
    for node_id, proc in cluster.workers.items():
        assert proc.poll() is None, cluster.worker_log(node_id)
    print(f"\n| odd-input corpus via {how} | {len(lines)} | {len(back)} | "
          f"{len(set(back))} | {len(back) - len(set(back))} | 0 |")


def test_a_format_that_does_not_match(cluster: LocalCluster, tmp_path: Path) -> None:
    lines = unique_lines("fmt", 500)
    path = tmp_path / "combined.log"
    path.write_bytes(b"".join(lines))
    # vhost_combined expects "host:port " first: none of these lines match it
    assert cluster.run("ship", "--format", "vhost_combined", str(path)).returncode == 0
    wait_count(cluster, 500, 60)
    assert Counter(shipped_back(cluster)) == Counter(x.rstrip(b"\n") for x in lines)
    assert cluster.summary()["unparsed"] == 500
