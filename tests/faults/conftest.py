"""Fault-injection fixtures: a real Apache whose piped logger is ``logmr ship``, in front
of a real local cluster (``cluster_factory`` comes from the tests.cluster plugin)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.apache import ApacheServer, ship_command


@pytest.fixture
def apache_factory(tmp_path: Path) -> Iterator[Callable[[str], ApacheServer]]:
    """``factory(servers)``: a started Apache logging through ``logmr ship --servers
    SERVERS``; every one is stopped (or killed) at teardown."""
    made: list[ApacheServer] = []

    def factory(servers: str) -> ApacheServer:
        root = tmp_path / f"apache{len(made)}"
        spool = root / "spool"
        server = ApacheServer(root, ship_command(sys.executable, servers, spool), spool_dir=spool)
        made.append(server)
        server.start()
        return server

    try:
        yield factory
    finally:
        for server in made:
            server.cleanup()


class SmallDisk:
    """A tmpfs of a few MiB mounted at a path: a disk that fills up, then grows."""

    def __init__(self, path: Path, mib: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0700", "tmpfs",
                               str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")

    def grow(self, mib: int) -> None:
        """Give the disk room again (as an operator freeing space would)."""
        subprocess.run(["mount", "-o", f"remount,size={mib}m", str(self.path)], check=True)

    def unmount(self) -> None:
        """Unmount (lazily: a process still using it lets go when it exits)."""
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)


@pytest.fixture
def small_disk() -> Iterator[Callable[[Path, int], SmallDisk]]:
    """``small_disk(path, mib)`` mounts a tmpfs there; all are unmounted at teardown.
    Skips where tmpfs cannot be mounted (not root): CI runs as root."""
    made: list[SmallDisk] = []

    def factory(path: Path, mib: int) -> SmallDisk:
        if os.geteuid() != 0:
            pytest.skip("a small disk is a tmpfs mount, which needs root (CI runs as root)")
        disk = SmallDisk(path, mib)
        made.append(disk)
        return disk

    try:
        yield factory
    finally:
        for disk in made:
            disk.unmount()
