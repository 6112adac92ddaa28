"""Fault-injection fixtures: a real Apache whose piped logger is ``logmr ship``, in front
of a real local cluster (``cluster_factory`` comes from the tests.cluster plugin)."""

from __future__ import annotations

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
