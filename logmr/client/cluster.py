"""A local cluster in one command: gearmand (sqlite queue, loopback) and N storage nodes.

``up`` starts them and writes ``cluster.json`` (their pids and port) in the data dir;
``down`` stops what that file names and removes it. In the foreground, Ctrl-C (or
SIGTERM) stops everything the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from logmr import private, wire
from logmr.errors import LogmrError
from logmr.gearman import admin
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError

STATE = "cluster.json"


def default_data_dir() -> str:
    """``$XDG_DATA_HOME/logmr/cluster`` (``~/.local/share/logmr/cluster``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "logmr", "cluster")


@dataclass
class ClusterState:
    """What ``up`` started; ``starts`` holds each process's start time (in clock ticks
    since boot, from /proc), so that a pid the system gave to another process since is
    never signalled."""

    port: int
    gearmand: int
    workers: list[int] = field(default_factory=list)
    starts: dict[int, int] = field(default_factory=dict)

    @property
    def pids(self) -> list[int]:
        """Workers first: they are stopped before their job server."""
        return [*self.workers, self.gearmand]


def find_gearmand() -> str:
    """The gearmand binary, or a clear error saying how to install it."""
    found = shutil.which("gearmand") or next(
        (p for p in ("/usr/sbin/gearmand", "/usr/local/sbin/gearmand") if os.access(p, os.X_OK)),
        None)
    if found is None:
        raise LogmrError("gearmand is not installed: install it with 'sudo apt-get install "
                         "gearman-job-server' (Debian, Ubuntu), then run this again")
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def up(data_dir: str, nodes: int, port: int, detach: bool) -> ClusterState:
    """Start gearmand and ``nodes`` workers; return once every node answers."""
    root = Path(data_dir)
    private.make_dir(str(root))  # gearmand's queue holds batches: personal data
    state_file = root / STATE
    if state_file.exists():
        old = read_state(data_dir)
        if old is not None and any(_ours(pid, old) for pid in old.pids):
            raise LogmrError(f"a cluster already runs from {data_dir} (port {old.port}); stop "
                             "it with 'logmr cluster down'")
        state_file.unlink()
    if not _port_free(port):
        raise LogmrError(f"port {port} on 127.0.0.1 is in use: choose another with --port")
    gearmand = find_gearmand()
    spawn = {"start_new_session": True} if detach else {}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen(
            [gearmand, "--listen=127.0.0.1", f"--port={port}", "--queue-type=libsqlite3",
             f"--libsqlite3-db={root / 'queue.sqlite'}", f"--log-file={root / 'gearmand.log'}",
             "--verbose=WARNING"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, **spawn))  # type: ignore[call-overload]
        server = Server("127.0.0.1", port)
        _wait(lambda: _answers(server), 20, "gearmand to answer", procs)
        for n in range(1, nodes + 1):
            log = open(root / f"node{n}.log", "ab")  # noqa: SIM115 - the child keeps it
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "logmr", "worker", "--data-dir", str(root / f"node{n}"),
                 "--node-id", f"node{n}", "--servers", str(server)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, **spawn))  # type: ignore[call-overload]
            log.close()
        _wait(lambda: _live_nodes(server) >= nodes, 30, f"{nodes} storage nodes", procs)
    except BaseException:
        _stop([p.pid for p in reversed(procs)])
        raise
    state = ClusterState(port=port, gearmand=procs[0].pid, workers=[p.pid for p in procs[1:]],
                         starts={p.pid: start for p in procs
                                 if (start := _start_time(p.pid)) is not None})
    state_file.write_text(json.dumps(asdict(state)))
    return state


def down(data_dir: str) -> ClusterState | None:
    """Stop the cluster ``up`` started from ``data_dir``; None if there was none."""
    state = read_state(data_dir)
    if state is None:
        return None
    _stop([pid for pid in state.pids if _ours(pid, state)])
    (Path(data_dir) / STATE).unlink(missing_ok=True)
    return state


def read_state(data_dir: str) -> ClusterState | None:
    """The state file of a cluster, if any."""
    try:
        data = json.loads((Path(data_dir) / STATE).read_text())
        return ClusterState(int(data["port"]), int(data["gearmand"]),
                            [int(p) for p in data["workers"]],
                            {int(k): int(v) for k, v in data.get("starts", {}).items()})
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise LogmrError(f"{Path(data_dir) / STATE} is damaged ({exc}); stop the processes "
                         "by hand and remove it") from None


def _stop(pids: list[int], timeout: float = 20.0) -> None:
    """SIGTERM each (workers first), wait for them, SIGKILL what lingers."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a process we cannot wait() on (it is not our child)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None without /proc or process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _ours(pid: int, state: ClusterState) -> bool:
    """True when ``pid`` is alive and still the process ``up`` started (where the system
    can tell: a pid reused by another process since is left alone)."""
    if not _alive(pid):
        return False
    started = state.starts.get(pid)
    return started is None or _start_time(pid) in (None, started)


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(server: Server) -> bool:
    try:
        admin.version(server, timeout=1.0)
    except GearmanError:
        return False
    return True


def _live_nodes(server: Server) -> int:
    try:
        return sum(1 for f in admin.status(server, timeout=2.0)
                   if f.name.startswith(wire.MAP_PREFIX) and f.workers > 0)
    except GearmanError:
        return 0


def _wait(condition: object, timeout: float, what: str,
          procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        for p in procs:
            if p.poll() is not None:
                raise LogmrError(f"{what}: a process exited with status {p.returncode} "
                                 "before it was up; see the logs in the data dir")
        if time.monotonic() > deadline:
            raise LogmrError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling for readiness
