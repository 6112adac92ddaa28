"""A real Apache (Debian's apache2 binary) with a private, generated configuration, and
the load that drives it: ``ab`` for volume, a small HTTP client for unique URLs.

Apache runs with ``-DFOREGROUND`` as our child, in its own session, so it never escapes the
test; ``-k graceful``, ``-k graceful-stop`` and ``-k stop`` are sent the way an admin sends
them (a second ``apache2 -f CONF -k ...`` that signals the pid in the PidFile). Nothing from
/etc/apache2 is read, so Debian's envvars (APACHE_RUN_DIR...) are not needed.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for

APACHE2 = "/usr/sbin/apache2"
AB = shutil.which("ab") or "/usr/bin/ab"
MODULES = Path("/usr/lib/apache2/modules")
# mod_log_config is compiled into Debian's binary; mod_mime needs a TypesConfig file;
# mod_unique_id puts a per-request id in every line, so duplicates can be counted exactly.
LOAD_MODULES = ("mpm_event", "authz_core", "dir", "mime", "unique_id")
# "combined", with the ident field (%l, always "-") carrying mod_unique_id's id: the line
# still parses as combined, and no two requests share a line.
LOG_FORMAT = r'%h %{UNIQUE_ID}e %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"'
READY_PATH = "/ready"


def ship_command(python: str, servers: str, spool_dir: Path | None = None) -> str:
    """The piped-logger command line for ``logmr ship`` (no shell: no spaces in paths)."""
    argv = [python, "-m", "logmr", "ship", "--servers", servers]
    if spool_dir is not None:
        argv += ["--spool-dir", str(spool_dir)]
    assert not any(" " in arg or '"' in arg for arg in argv), argv
    return " ".join(argv)


class ApacheServer:
    """One apache2 with its own ServerRoot, listening on a free loopback port, logging
    every request through a piped logger (``CustomLog "|COMMAND"``)."""

    def __init__(self, root: Path, logger: str, port: int | None = None,
                 spool_dir: Path | None = None) -> None:
        if not os.access(APACHE2, os.X_OK):
            pytest.fail(f"{APACHE2} not found: apt-get install apache2 apache2-utils")
        self.root = root
        self.logger = logger
        self.spool_dir = spool_dir  # the logger's on-disk spool, if it has one
        self.port = port or free_port()
        self.conf = root / "httpd.conf"
        self.pid_file = root / "httpd.pid"
        self.error_log = root / "error.log"
        # As root the children run as nobody, who cannot enter pytest's 0700 tmp dirs:
        # the document root lives in its own world-readable directory.
        self.docroot = Path(tempfile.mkdtemp(prefix="logmr-apache-docroot-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self._draining: list[int] = []  # loggers told to stop, reading on to end-of-file
        root.mkdir(parents=True, exist_ok=True)
        self._write_files()

    def __repr__(self) -> str:
        return f"<apache2 127.0.0.1:{self.port} pid={self.main_pid()}>"

    @property
    def url(self) -> str:
        """The base URL, no trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def _write_files(self) -> None:
        os.chmod(self.docroot, 0o755)
        (self.docroot / "index.html").write_text("<h1>logmr fault test</h1>\n")
        os.chmod(self.docroot / "index.html", 0o644)
        (self.root / "mime.types").write_text("text/html html\n")
        (self.root / "run").mkdir(exist_ok=True)
        lines = [
            f'ServerRoot "{self.root}"',
            "ServerName 127.0.0.1",
            f"Listen 127.0.0.1:{self.port}",
            *(f"LoadModule {name}_module {MODULES / f'mod_{name}.so'}" for name in LOAD_MODULES),
            f'PidFile "{self.pid_file}"',
            f'DefaultRuntimeDir "{self.root / "run"}"',
            f'ErrorLog "{self.error_log}"',
            "LogLevel notice",
            f'TypesConfig "{self.root / "mime.types"}"',
            f'DocumentRoot "{self.docroot}"',
            f'<Directory "{self.docroot}">',
            "    Require all granted",
            "</Directory>",
            "DirectoryIndex index.html",
            f'LogFormat "{LOG_FORMAT}" combined_uid',
            f'CustomLog "|{self.logger}" combined_uid',
            "GracefulShutdownTimeout 30",
        ]
        if os.geteuid() == 0:  # Apache refuses to run its children as root
            lines += ["User nobody", "Group nogroup"]
        self.conf.write_text("\n".join(lines) + "\n")

    def _ctl(self, action: str) -> None:
        out = subprocess.run([APACHE2, "-f", str(self.conf), "-k", action],
                             capture_output=True, timeout=30, check=False)
        assert out.returncode == 0, (
            f"apache2 -k {action}: {out.stderr.decode(errors='replace')}{self.error_tail()}")

    def start(self, timeout: float = 20.0) -> None:
        """Start Apache and wait until it answers an HTTP request."""
        assert self.proc is None or self.proc.poll() is not None, f"{self} is running"
        self.proc = subprocess.Popen(
            [APACHE2, "-f", str(self.conf), "-k", "start", "-DFOREGROUND"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_for(self._answers, timeout, f"apache2 on port {self.port} to answer")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"apache2 exited with {self.proc.returncode}{self.error_tail()}")
        try:
            return get(self.port, READY_PATH) is not None
        except OSError:
            return False

    def graceful(self) -> None:
        """``apachectl graceful``: children finish their requests, the config is re-read,
        the piped logger is sent SIGTERM and a new one started."""
        self._ctl("graceful")

    def graceful_stop(self, timeout: float = 40.0) -> None:
        """``apachectl graceful-stop``: stop accepting, finish in-flight requests, exit."""
        loggers = self.logger_pids()
        self._ctl("graceful-stop")
        self._wait_exit(loggers, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """``apachectl stop``; wait until the main process and its loggers are gone."""
        loggers = self.logger_pids()
        self._ctl("stop")
        self._wait_exit(loggers, timeout)

    def _wait_exit(self, loggers: list[int], timeout: float) -> None:
        assert self.proc is not None
        proc = self.proc
        self._draining += loggers
        wait_for(lambda: proc.poll() is not None, timeout, "apache2 to exit")
        # The loggers got SIGTERM and read on to end-of-file: give them time to flush.
        wait_for(lambda: not any(_alive(pid) for pid in loggers), timeout,
                 f"piped loggers {loggers} to exit")

    def main_pid(self) -> int | None:
        """The pid in the PidFile, if that process is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def logger_pids(self) -> list[int]:
        """Live piped ``logmr ship`` processes that are children of the main process,
        oldest first."""
        main = self.main_pid()
        if main is None:
            return []
        found: list[tuple[int, int]] = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            info = _proc_stat(int(entry))
            if info is None or info.ppid != main or info.state == "Z":
                continue
            argv = _cmdline(int(entry))
            if "logmr" in argv and "ship" in argv:
                found.append((info.start, int(entry)))
        return [pid for _, pid in sorted(found)]

    def kill_logger(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the current (newest) piped logger; return its pid."""
        pids = wait_for(self.logger_pids, 10, "a piped logger")
        os.kill(pids[-1], sig)
        return pids[-1]

    def error_tail(self, chars: int = 3000) -> str:
        """The end of the ErrorLog (Apache's and the logger's stderr), for messages."""
        try:
            text = self.error_log.read_text(errors="replace")
        except OSError:
            return "\n(no error log)"
        return f"\n--- {self.error_log} (tail) ---\n{text[-chars:]}"

    def cleanup(self) -> None:
        """Kill whatever is left (Apache, its children, its loggers); remove the docroot."""
        leftovers = self.logger_pids() + self._draining
        if self.proc is not None and self.proc.poll() is None:
            # The group leader is alive, so the group id is ours: children and loggers too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in leftovers:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.docroot, ignore_errors=True)


@dataclass
class _Stat:
    ppid: int
    state: str
    start: int


def _proc_stat(pid: int) -> _Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return _Stat(ppid=int(fields[1]), state=fields[0], start=int(fields[19]))


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def _alive(pid: int) -> bool:
    info = _proc_stat(pid)
    return info is not None and info.state != "Z"


def get(port: int, path: str, timeout: float = 10.0) -> int | None:
    """One GET on a new connection; the status, or None if no response came back."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@dataclass
class AbRun:
    """``ab -n N -c C URL`` in the background; its progress and result."""

    url: str
    requests: int
    concurrency: int
    out_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AbRun:
        """Start ab; stdout and stderr go to ``out_path``."""
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [AB, "-n", str(self.requests), "-c", str(self.concurrency), self.url],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def output(self) -> str:
        """What ab printed so far."""
        return self.out_path.read_text(errors="replace")

    def running(self) -> bool:
        """Whether ab is still running."""
        return self.proc is not None and self.proc.poll() is None

    def progress(self) -> int:
        """Requests completed, from ab's "Completed N requests" heartbeat (every N/10)."""
        done = re.findall(r"^Completed (\d+) requests", self.output(), re.M)
        return int(done[-1]) if done else 0

    def wait(self, timeout: float = 60.0) -> AbResult:
        """Wait for ab to finish and parse its summary."""
        assert self.proc is not None
        self.proc.wait(timeout)
        text = self.output()
        complete = re.search(r"^Complete requests:\s+(\d+)", text, re.M)
        failed = re.search(r"^Failed requests:\s+(\d+)", text, re.M)
        non2xx = re.search(r"^Non-2xx responses:\s+(\d+)", text, re.M)
        assert self.proc.returncode == 0 and complete and failed, f"ab failed:\n{text[-2000:]}"
        return AbResult(int(complete.group(1)), int(failed.group(1)),
                        int(non2xx.group(1)) if non2xx else 0)


@dataclass
class AbResult:
    """ab's summary."""

    complete: int
    failed: int
    non2xx: int


@dataclass
class UniqueLoad:
    """Threads that GET ``/r/<run>/<thread>-<n>`` (404s, still logged) until stopped,
    remembering which URLs got a response and which did not."""

    port: int
    run: str
    threads: int = 2
    completed: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> UniqueLoad:
        """Start the threads."""
        for t in range(self.threads):
            worker = threading.Thread(target=self._loop, args=(t,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _loop(self, thread: int) -> None:
        n = 0
        while not self._stop.is_set():
            path = f"/r/{self.run}/{thread}-{n}"
            n += 1
            answered = get(self.port, path) is not None
            with self._lock:
                (self.completed if answered else self.unanswered).append(path)

    def stop(self) -> None:
        """Stop and join the threads."""
        self._stop.set()
        for worker in self._workers:
            worker.join(30)


@dataclass
class StoredLog:
    """The lines the cluster holds, broken down for the checks."""

    lines: list[bytes]

    def ids(self) -> Counter[bytes]:
        """Occurrences of each request id (mod_unique_id, in the ident field)."""
        return Counter(line.split(b" ", 2)[1] for line in self.lines)

    def duplicates(self) -> int:
        """Lines beyond the first for any request id."""
        return sum(count - 1 for count in self.ids().values())

    def paths(self) -> Counter[str]:
        """Occurrences of each request path."""
        found = Counter[str]()
        for line in self.lines:
            m = re.search(rb'"[A-Z]+ (\S+) HTTP/', line)
            found[m.group(1).decode(errors="replace") if m else "?"] += 1
        return found
