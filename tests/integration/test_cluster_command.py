"""`logmr cluster up` / Ctrl-C / `down` leave no process and no stale state behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cluster import HACKERS, logmr
from tests.conftest import free_port, wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes: read its state
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def test_background_up_then_down(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "cluster"
    out = logmr("cluster", "up", "--background", "--nodes", "2", "--port", str(port),
                "--data-dir", str(data))
    assert out.returncode == 0, out.stderr
    state = json.loads((data / "cluster.json").read_text())
    pids = [state["gearmand"], *state["workers"]]
    assert len(pids) == 3 and all(alive(p) for p in pids)
    servers = f"127.0.0.1:{port}"
    assert logmr("ship", str(HACKERS), servers=servers).returncode == 0
    wait_for(lambda: logmr("grep", "-c", "", servers=servers).stdout == b"3456\n", 30,
             "lines stored")
    again = logmr("cluster", "up", "--background", "--port", str(port), "--data-dir", str(data))
    assert again.returncode == 2 and b"already runs" in again.stderr
    stopped = logmr("cluster", "down", "--data-dir", str(data))
    assert stopped.returncode == 0, stopped.stderr
    assert not any(alive(p) for p in pids)
    assert not (data / "cluster.json").exists()
    none = logmr("cluster", "down", "--data-dir", str(data))
    assert none.returncode == 2 and none.stderr.count(b"\n") == 1


def test_foreground_up_and_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "cluster"
    proc = subprocess.Popen([sys.executable, "-m", "logmr", "cluster", "up", "--port",
                             str(port), "--data-dir", str(data)], stderr=subprocess.PIPE)
    wait_for(lambda: (data / "cluster.json").exists(), 30, "the cluster to be up")
    state = json.loads((data / "cluster.json").read_text())
    pids = [state["gearmand"], *state["workers"]]
    assert all(alive(p) for p in pids)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert not any(alive(p) for p in pids)
    assert not (data / "cluster.json").exists()


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        out = logmr("cluster", "up", "--background", "--port", str(busy.getsockname()[1]),
                    "--data-dir", str(tmp_path / "c"))
    assert out.returncode == 2 and b"in use" in out.stderr and out.stderr.count(b"\n") == 1
