"""On a terminal grep highlights its matches; piped, or with NO_COLOR, it does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.cluster import SEMICOMPLETE

ESC = b"\x1b[1;31m"


def run_on_pty(*args: str, env: dict[str, str] | None = None, stream: str = "stdout"
               ) -> bytes:
    """Run logmr with its ``stream`` (stdout or stderr) on a pseudo-terminal, the other
    one discarded; what it printed there."""
    master, slave = os.openpty()
    try:
        on_tty = {"stdout": slave, "stderr": subprocess.DEVNULL}
        if stream == "stderr":
            on_tty = {"stdout": subprocess.DEVNULL, "stderr": slave}
        proc = subprocess.Popen([sys.executable, "-m", "logmr", *args], env=env, **on_tty)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(60) == 0
        return b"".join(chunks)
    finally:
        os.close(master)


def test_highlight_on_a_terminal_only() -> None:
    args = ("grep", "--limit", "3", "xdotool", str(SEMICOMPLETE))
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    on_tty = run_on_pty(*args, env=env)
    assert on_tty.count(ESC) >= 3
    piped = subprocess.run([sys.executable, "-m", "logmr", *args], capture_output=True,
                           check=True, env=env).stdout
    assert ESC not in piped and piped.count(b"\n") == 3
    no_color = run_on_pty(*args, env={**env, "NO_COLOR": "1"})
    assert ESC not in no_color and no_color.count(b"xdotool") >= 3


def test_ship_shows_a_progress_bar_on_a_terminal_only(cluster: object, tmp_path: object) -> None:
    servers = cluster.servers  # type: ignore[attr-defined]
    shown = run_on_pty("ship", "--servers", servers, str(SEMICOMPLETE), stream="stderr")
    assert b"ship " in shown and b"MB" in shown  # the bar, with its byte counts
    quiet = subprocess.run([sys.executable, "-m", "logmr", "ship", "--servers", servers,
                            str(SEMICOMPLETE)], capture_output=True, check=True)
    assert quiet.stderr == b""  # piped: no bar


def test_report_shows_node_progress_on_a_terminal_only(cluster: object) -> None:
    servers = cluster.servers  # type: ignore[attr-defined]
    assert subprocess.run([sys.executable, "-m", "logmr", "ship", "--servers", servers,
                           str(SEMICOMPLETE)], capture_output=True).returncode == 0
    shown = run_on_pty("report", "--all", "--format", "json", "--servers", servers,
                       stream="stderr")
    assert b"node node1" in shown and b"node node2" in shown
    piped = subprocess.run([sys.executable, "-m", "logmr", "report", "--servers", servers],
                           capture_output=True, check=True)
    assert piped.stderr == b""


def test_tables_show_units_people_read_and_json_keeps_exact_numbers() -> None:
    from tests.cluster import logmr

    awk = subprocess.run(["awk", '$10 != "-" {s += $10} END {printf "%.0f", s}',
                          str(SEMICOMPLETE)], capture_output=True, check=True).stdout
    total = int(awk)
    table = logmr("report", "--summary", "--sessions", str(SEMICOMPLETE))
    assert table.returncode == 0
    text = table.stdout.decode()
    assert f"{total / 2 ** 30:.1f} GiB" in text  # 2.6 GiB, not 2,747,282,740
    assert f"{total:,}" not in text
    assert "duration_buckets" not in text and "Visit durations" in text
    lines = text.splitlines()
    bars = lines[lines.index("Visit durations") + 1:][:7]
    assert [b.split()[0] for b in bars] == ["0-30s", "30s-2m", "2-5m", "5-15m", "15-30m",
                                            "30m-1h", "1h+"]
    data = json.loads(logmr("report", "--summary", "--sessions", "--format", "json",
                            str(SEMICOMPLETE)).stdout)
    assert data["summary"]["bytes"] == total
    buckets = data["sessions"]["duration_buckets"]
    longest = list(buckets).index(max(buckets, key=buckets.__getitem__))
    assert "█" * 40 in bars[longest]  # the longest bar: the most visits
    rate = data["sessions"]["bounce_rate"]
    assert f"{100 * rate:.1f}%" in text and 0 < rate < 1
