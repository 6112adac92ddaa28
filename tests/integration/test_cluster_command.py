"""`logmr cluster up` / Ctrl-C / `down` leave no process and no stale state behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cluster import HACKERS, HACKERS_LINES, logmr
from tests.conftest import free_port, wait_for


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes: read its state
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def up_in_background(tmp_path: Path, nodes: int) -> tuple[int, Path, dict[str, Any]]:
    """`logmr cluster up --background`: its port, data dir and state file."""
    port = free_port()
    data = tmp_path / "cluster"
    out = logmr("cluster", "up", "--background", "--nodes", str(nodes), "--port", str(port),
                "--data-dir", str(data))
    assert out.returncode == 0, out.stderr
    return port, data, json.loads((data / "cluster.json").read_text())


def test_background_up_then_down(tmp_path: Path) -> None:
    port, data, state = up_in_background(tmp_path, 2)
    pids = [state["gearmand"], *state["workers"]]
    assert len(pids) == 3 and all(alive(p) for p in pids)
    servers = f"127.0.0.1:{port}"
    assert logmr("ship", str(HACKERS), servers=servers).returncode == 0
    wait_for(lambda: logmr("grep", "-c", "", servers=servers).stdout == b"%d\n" % HACKERS_LINES, 30,
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


def test_down_leaves_alone_a_process_that_took_a_recorded_pid(tmp_path: Path) -> None:
    _, data, state = up_in_background(tmp_path, 1)
    assert stat_mode(data) == 0o700  # its queue holds batches: personal data
    # the worker dies, and the system gives its pid to someone else's process: stand in
    # for that with a process started now, put in the state file under the old start time
    worker = state["workers"][0]
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: not alive(worker), 10, "the worker to die")
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        state["starts"][str(bystander.pid)] = state["starts"].pop(str(worker))
        state["workers"] = [bystander.pid]
        (data / "cluster.json").write_text(json.dumps(state))
        assert logmr("cluster", "down", "--data-dir", str(data)).returncode == 0
        assert bystander.poll() is None, "down killed a process it did not start"
        assert not alive(state["gearmand"])
    finally:
        bystander.kill()
        bystander.wait()


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
