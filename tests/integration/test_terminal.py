"""On a terminal grep highlights its matches; piped, or with NO_COLOR, it does not."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.cluster import SEMICOMPLETE

ESC = b"\x1b[1;31m"


def run_on_pty(*args: str, env: dict[str, str] | None = None) -> bytes:
    """Run logmr with its stdout on a pseudo-terminal; what it printed."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "logmr", *args], stdout=slave,
                                stderr=subprocess.PIPE, env=env)
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
        assert proc.wait(30) == 0
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
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "logmr", "ship", "--servers", servers,
                                 str(SEMICOMPLETE)], stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        shown = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            shown += data
        assert proc.wait(60) == 0
    finally:
        os.close(master)
    assert b"ship " in shown and b"MB" in shown  # the bar, with its byte counts
    quiet = subprocess.run([sys.executable, "-m", "logmr", "ship", "--servers", servers,
                            str(SEMICOMPLETE)], capture_output=True, check=True)
    assert quiet.stderr == b""  # piped: no bar


def test_report_shows_node_progress_on_a_terminal_only(cluster: object) -> None:
    servers = cluster.servers  # type: ignore[attr-defined]
    assert subprocess.run([sys.executable, "-m", "logmr", "ship", "--servers", servers,
                           str(SEMICOMPLETE)], capture_output=True).returncode == 0
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "logmr", "report", "--all", "--format",
                                 "json", "--servers", servers], stdout=subprocess.DEVNULL,
                                stderr=slave)
        os.close(slave)
        shown = b""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            shown += data
        assert proc.wait(60) == 0
    finally:
        os.close(master)
    assert b"node node1" in shown and b"node node2" in shown
    piped = subprocess.run([sys.executable, "-m", "logmr", "report", "--servers", servers],
                           capture_output=True, check=True)
    assert piped.stderr == b""
