"""Shared fixtures: real gearmand job servers on free loopback ports, and a poll helper."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from logmr.gearman import admin
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError

pytest_plugins = ["tests.cluster", "tests.netns"]

GEARMAND = shutil.which("gearmand") or "/usr/sbin/gearmand"
R = TypeVar("R")


@pytest.fixture(autouse=True)
def isolated_user(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test, and every process it starts, runs as a user of its own: a new HOME and
    XDG dirs, a spool in that HOME and no other LOGMR_* variable, so that no developer's
    config, secret or spool (~/.config/logmr, /var/spool/logmr) leaks in or is adopted."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share"),
                      ("XDG_STATE_HOME", ".local/state"), ("XDG_CACHE_HOME", ".cache")):
        monkeypatch.setenv(name, str(home / sub))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    for name in [n for n in os.environ if n.startswith("LOGMR_")]:
        monkeypatch.delenv(name)
    # root's default spool is /var/spool/logmr, the machine's own: a test's is its own
    monkeypatch.setenv("LOGMR_SPOOL_DIR", str(home / "spool"))
    return home


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], R], timeout: float = 10.0, what: str = "condition") -> R:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    interval = 0.005
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)  # a poll interval, not a synchronisation
        interval = min(interval * 2, 0.1)


class GearmandProcess:
    """One gearmand in the foreground (never daemonised: its PID is ours to kill)."""

    def __init__(self, workdir: Path, port: int | None = None, persistent: bool = False,
                 host: str = "127.0.0.1", wrap: tuple[str, ...] = ()) -> None:
        if not os.access(GEARMAND, os.X_OK):
            pytest.fail(f"gearmand not found at {GEARMAND}: apt-get install gearman-job-server")
        self.workdir = workdir
        self.port = port or free_port()
        self.persistent = persistent
        self.host = host
        self.wrap = wrap  # a command prefix: `ip netns exec NS` runs it on a test host
        self.server = Server(host, self.port)
        self.log_path = workdir / "gearmand.log"
        self.db_path = workdir / "queue.sqlite"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<gearmand {self.server} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def command(self) -> list[str]:
        """The gearmand command line."""
        argv = [
            *self.wrap, GEARMAND, f"--listen={self.host}", f"--port={self.port}",
            f"--log-file={self.log_path}", "--verbose=WARNING",
            f"--pid-file={self.workdir / 'gearmand.pid'}", "--threads=2",
        ]
        if self.persistent:
            argv += ["--queue-type=libsqlite3", f"--libsqlite3-db={self.db_path}"]
        return argv

    def start(self, timeout: float = 15.0) -> None:
        """Start gearmand and wait until it answers the admin ``version`` command."""
        assert self.pid is None, f"{self} is already running"
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(self._answers, timeout, f"gearmand on {self.server} to answer")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            pytest.fail(f"gearmand exited with {self.proc.returncode}: {log[-2000:]}")
        try:
            admin.version(self.server, timeout=1.0)
        except GearmanError:
            return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL if it lingers); no-op if not running."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def kill9(self) -> None:
        """SIGKILL and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()


@pytest.fixture
def gearmand_factory(tmp_path: Path) -> Iterator[Callable[..., GearmandProcess]]:
    """Start gearmands with ``factory(persistent=False)``; all are stopped at teardown."""
    started: list[GearmandProcess] = []

    def factory(persistent: bool = False, port: int | None = None, host: str = "127.0.0.1",
                wrap: tuple[str, ...] = ()) -> GearmandProcess:
        process = GearmandProcess(tmp_path / f"gearmand{len(started)}", port, persistent,
                                  host, wrap)
        started.append(process)
        process.start()
        return process

    try:
        yield factory
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def gearmand(gearmand_factory: Callable[..., GearmandProcess]) -> GearmandProcess:
    """One running in-memory gearmand, stopped at teardown."""
    return gearmand_factory()


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., object]:
    """The :func:`wait_for` poll helper, for tests that cannot import conftest."""
    return wait_for


@pytest.fixture
def free_tcp_port() -> int:
    """A loopback TCP port nothing listens on."""
    return free_port()
