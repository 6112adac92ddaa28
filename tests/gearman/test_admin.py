"""The text admin protocol against a real gearmand, and the gearmand fixture itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from logmr.gearman import admin
from logmr.gearman.admin import FunctionStatus
from logmr.gearman.client import Client
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError, ServerUnavailable
from logmr.gearman.worker import Worker

if TYPE_CHECKING:
    from tests.conftest import GearmandProcess


def test_version_and_pid(gearmand: GearmandProcess) -> None:
    assert admin.version(gearmand.server).startswith("1.1.")
    assert admin.getpid(gearmand.server) == gearmand.pid


def test_status_of_an_empty_server(gearmand: GearmandProcess) -> None:
    assert admin.status(gearmand.server) == []


def test_status_counts_queued_jobs_and_workers(gearmand: GearmandProcess) -> None:
    with Client([gearmand.server]) as client:
        client.submit_background("t.queued", b"", "q-1")
        client.submit_background("t.queued", b"", "q-2")
    with Worker([gearmand.server]) as worker:
        worker.register("t.idle", lambda job: None)
        assert worker.work(burst=True) == 0  # stays connected and registered
        assert sorted(admin.status(gearmand.server), key=lambda s: s.name) == [
            FunctionStatus("t.idle", 0, 0, 1),
            FunctionStatus("t.queued", 2, 0, 0),
        ]


def test_workers_lists_client_ids_and_functions(gearmand: GearmandProcess) -> None:
    with Worker([gearmand.server], client_id="node-7") as worker:
        worker.register("t.a", lambda job: None)
        worker.register("t.b", lambda job: None)
        worker.work(burst=True)
        listed = admin.workers(gearmand.server)
    mine = [w for w in listed if w.functions]
    assert len(mine) == 1
    assert mine[0].client_id == "node-7" and sorted(mine[0].functions) == ["t.a", "t.b"]
    assert mine[0].ip == "127.0.0.1" and mine[0].fd > 0
    assert any(w.client_id is None and w.functions == () for w in listed)  # our admin socket


def test_unknown_command_is_an_error(gearmand: GearmandProcess) -> None:
    with pytest.raises(GearmanError, match="UNKNOWN_COMMAND"):
        admin.command(gearmand.server, "shutdown")


def test_unreachable_server(free_tcp_port: int) -> None:
    server = Server("127.0.0.1", free_tcp_port)
    for call in (admin.status, admin.workers, admin.version):
        with pytest.raises(ServerUnavailable, match=f"cannot reach job server {server}"):
            call(server)


def test_fixture_restarts_on_the_same_port(gearmand: GearmandProcess) -> None:
    port, pid = gearmand.port, gearmand.pid
    gearmand.restart()
    assert gearmand.port == port and gearmand.pid not in (None, pid)
    assert admin.getpid(gearmand.server) == gearmand.pid
    gearmand.kill9()
    assert gearmand.pid is None
    with pytest.raises(ServerUnavailable):
        admin.version(gearmand.server)
