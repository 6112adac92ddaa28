"""Client and worker against real gearmand processes."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from logmr.gearman import admin
from logmr.gearman.client import Client, server_order
from logmr.gearman.connection import Connection, Server
from logmr.gearman.errors import GearmanError, GearmanTimeout, JobFailed, ServerUnavailable
from logmr.gearman.worker import Assignment, RetryJob, Worker

if TYPE_CHECKING:
    from tests.conftest import GearmandProcess

    Factory = Callable[..., GearmandProcess]
    WaitFor = Callable[..., object]

ODD_BYTES = b"\0\xff\xfe not utf-8 \x80\0\r\n\0"


class Recorder:
    """A handler that records jobs and returns a fixed result."""

    def __init__(self, result: bytes | None = b"ok") -> None:
        self.jobs: list[Assignment] = []
        self.result = result

    def __call__(self, job: Assignment) -> bytes | None:
        self.jobs.append(job)
        return self.result


@contextmanager
def working(worker: Worker) -> Iterator[list[int]]:
    """Run ``worker.work()`` in a thread; stop and join it at the end."""
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(worker.work()), daemon=True)
    thread.start()
    try:
        yield done
    finally:
        worker.stop()
        thread.join(10)
        assert not thread.is_alive(), "worker did not stop"
        worker.close()


def registered(server: Server, function: str, count: int = 1) -> bool:
    """True when ``function`` has ``count`` workers on ``server`` (False if unreachable)."""
    try:
        return any(s.name == function and s.workers == count for s in admin.status(server))
    except GearmanError:
        return False


def test_background_payloads_arrive_intact(gearmand: GearmandProcess) -> None:
    payloads = [ODD_BYTES, b"", os.urandom(1 << 20)]
    with Client([gearmand.server]) as client:
        handles = [client.submit_background("t.store", p, f"b-{i}") for i, p in enumerate(payloads)]
    assert all(h.startswith("H:") for h in handles)
    recorder = Recorder()
    with Worker([gearmand.server]) as worker:
        worker.register("t.store", recorder)
        assert worker.work(burst=True) == 3
    assert [j.payload for j in recorder.jobs] == payloads
    assert [j.unique for j in recorder.jobs] == ["b-0", "b-1", "b-2"]
    assert {j.function for j in recorder.jobs} == {"t.store"}
    assert [j.handle.decode() for j in recorder.jobs] == handles


def test_pipelined_background_submit(gearmand: GearmandProcess) -> None:
    jobs = [(b"line %d\0" % i, f"p-{i}") for i in range(600)]
    with Client([gearmand.server]) as client:
        handles = client.submit_background_many("t.many", jobs)
    assert len(set(handles)) == 600
    recorder = Recorder()
    with Worker([gearmand.server]) as worker:
        worker.register("t.many", recorder)
        assert worker.work(burst=True) == 600
    assert sorted(j.payload for j in recorder.jobs) == sorted(p for p, _ in jobs)


def test_foreground_job_streams_data_then_completes(gearmand: GearmandProcess) -> None:
    def handler(job: Assignment) -> bytes:
        for chunk in (b"one\0", ODD_BYTES, b"three"):
            job.send_data(chunk)
        job.send_status(3, 3)
        job.send_warning(b"careful")
        return b"done:" + job.payload

    client = Client([gearmand.server])
    job = client.submit("t.fg", b"q\0", "fg-1")
    assert job.server == gearmand.server and job.handle.startswith("H:")
    with Worker([gearmand.server]) as worker:
        worker.register("t.fg", handler)
        assert worker.work(burst=True) == 1
    assert list(job) == [b"one\0", ODD_BYTES, b"three"]
    assert job.result == b"done:q\0"
    assert job.status == (3, 3) and job.warnings == [b"careful"]
    assert job.fileno() == -1  # the connection is closed once the job ends


def test_work_exception_surfaces_as_job_failed(gearmand: GearmandProcess) -> None:
    def handler(job: Assignment) -> bytes:
        raise RuntimeError("disk on fire")

    job = Client([gearmand.server]).submit("t.boom", b"", "boom-1")
    with Worker([gearmand.server]) as worker:
        worker.register("t.boom", handler)
        assert worker.work(burst=True) == 1
    with pytest.raises(JobFailed, match="RuntimeError: disk on fire"):
        list(job)
    with pytest.raises(GearmanError, match="not completed"):
        _ = job.result


def test_a_refusal_is_its_reason_alone_and_any_other_error_logs_its_traceback(
        gearmand: GearmandProcess, caplog: pytest.LogCaptureFixture) -> None:
    class Refused(Exception):
        pass

    def handler(job: Assignment) -> bytes:
        raise (Refused if job.payload == b"no" else KeyError)(job.payload.decode())

    refused = Client([gearmand.server]).submit("t.refuse", b"no", "r-1")
    crashed = Client([gearmand.server]).submit("t.refuse", b"oops", "r-2")
    with caplog.at_level("INFO", logger="logmr.gearman.worker"), Worker(
            [gearmand.server], refusals=(Refused,)) as worker:
        worker.register("t.refuse", handler)
        assert worker.work(burst=True) == 2
    with pytest.raises(JobFailed) as no:
        list(refused)
    with pytest.raises(JobFailed) as oops:
        list(crashed)
    assert str(no.value).endswith(": no") and "Refused" not in str(no.value)
    assert "KeyError: 'oops'" in str(oops.value)
    logged = [r for r in caplog.records if "t.refuse" in r.getMessage()]
    # the refusal in one line, the crash with its traceback
    assert [r.exc_info is None for r in logged] == [True, False]


def test_handler_exception_does_not_kill_the_worker(gearmand: GearmandProcess) -> None:
    seen: list[bytes] = []

    def handler(job: Assignment) -> bytes:
        seen.append(job.payload)
        if job.payload == b"bad":
            raise ValueError("bad batch")
        return b""

    with Client([gearmand.server]) as client:
        client.submit_background("t.mixed", b"bad", "m-1")
        client.submit_background("t.mixed", b"good", "m-2")
    with Worker([gearmand.server]) as worker:
        worker.register("t.mixed", handler)
        assert worker.work(burst=True) == 2
    assert seen == [b"bad", b"good"]


def test_handler_returning_a_str_fails_the_job_not_the_worker(gearmand: GearmandProcess) -> None:
    job = Client([gearmand.server]).submit("t.str", b"", "s-1")
    with Worker([gearmand.server]) as worker:
        worker.register("t.str", lambda job: "text")  # type: ignore[arg-type, return-value]
        assert worker.work(burst=True) == 1
    with pytest.raises(JobFailed, match="returned str"):
        list(job)


def test_retry_job_requeues(gearmand: GearmandProcess, wait_for: WaitFor) -> None:
    attempts: list[str] = []

    def handler(job: Assignment) -> bytes:
        attempts.append(job.unique)
        if len(attempts) == 1:
            raise RetryJob("not now")
        return b""

    Client([gearmand.server]).submit_background("t.retry", b"x", "r-1")
    with Worker([gearmand.server]) as worker:
        worker.register("t.retry", handler)
        assert worker.work(burst=True) == 0
        wait_for(lambda: admin.status(gearmand.server)[0].running == 0, what="requeue")
        assert worker.work(burst=True) == 1
    assert attempts == ["r-1", "r-1"]


def test_foreground_idle_timeout(gearmand: GearmandProcess) -> None:
    job = Client([gearmand.server]).submit("t.nobody", b"", "", timeout=0.2)
    with pytest.raises(GearmanTimeout, match="sent nothing"):
        list(job)


def test_foreground_job_sees_the_server_die(gearmand: GearmandProcess) -> None:
    job = Client([gearmand.server]).submit("t.nobody", b"", "dies")
    gearmand.kill9()
    with pytest.raises(ServerUnavailable, match=str(gearmand.server)):
        list(job)


def _unique_for(servers: list[Server], first: Server) -> str:
    uniques = (f"u-{i}" for i in range(100))
    return next(u for u in uniques if server_order(servers, u.encode())[0] == first)


def test_background_submit_fails_over(gearmand_factory: Factory) -> None:
    one, two = gearmand_factory(), gearmand_factory()
    servers = [one.server, two.server]
    unique = _unique_for(servers, one.server)
    with Client(servers, timeout=2.0) as client:
        client.submit_background("t.fo", b"first", unique)  # caches a connection to one
        one.stop()
        client.submit_background("t.fo", b"second", unique)
        two.stop()
        with pytest.raises(ServerUnavailable) as failure:
            client.submit_background("t.fo", b"third", unique)
    assert str(one.server) in str(failure.value) and str(two.server) in str(failure.value)


def test_failover_delivers_to_the_other_server(gearmand_factory: Factory) -> None:
    one, two = gearmand_factory(), gearmand_factory()
    servers = [one.server, two.server]
    one.stop()
    with Client(servers, timeout=2.0) as client:
        client.submit_background("t.fo", b"payload", _unique_for(servers, one.server))
    recorder = Recorder()
    with Worker(servers) as worker:  # one is down: burst still ends
        worker.register("t.fo", recorder)
        assert worker.work(burst=True) == 1
    assert recorder.jobs[0].server == two.server


def test_worker_serves_every_server(gearmand_factory: Factory) -> None:
    one, two = gearmand_factory(), gearmand_factory()
    for server in (one.server, two.server):
        Client([server]).submit_background("t.both", str(server).encode(), "x")
    recorder = Recorder()
    with Worker([one.server, two.server]) as worker:
        worker.register("t.both", recorder)
        assert worker.work(burst=True) == 2
    assert {j.server for j in recorder.jobs} == {one.server, two.server}


def test_worker_reconnects_and_reregisters_after_restart(
    gearmand: GearmandProcess, wait_for: WaitFor
) -> None:
    got = threading.Event()
    worker = Worker([gearmand.server], client_id="w-restart")
    worker.register("t.restart", lambda job: got.set())
    with working(worker):
        wait_for(lambda: registered(gearmand.server, "t.restart"), what="registration")
        gearmand.restart()
        wait_for(lambda: registered(gearmand.server, "t.restart"), what="re-registration")
        ids = [w.client_id for w in admin.workers(gearmand.server) if w.functions]
        assert ids == ["w-restart"]
        Client([gearmand.server]).submit_background("t.restart", b"", "after")
        assert got.wait(10)


def test_worker_started_while_the_server_is_down(
    gearmand: GearmandProcess, wait_for: WaitFor
) -> None:
    gearmand.stop()
    worker = Worker([gearmand.server])
    worker.register("t.late", Recorder())
    assert worker.work(burst=True) == 0  # burst with no server: returns
    with working(worker):
        gearmand.start()
        wait_for(lambda: registered(gearmand.server, "t.late"), what="registration")


def test_stop_from_another_thread_wakes_a_sleeping_worker(
    gearmand: GearmandProcess, wait_for: WaitFor
) -> None:
    worker = Worker([gearmand.server])
    worker.register("t.sleep", Recorder())
    with working(worker) as done:
        wait_for(lambda: registered(gearmand.server, "t.sleep"), what="registration")
        worker.stop()
        wait_for(lambda: done, timeout=10, what="work() to return")  # a hang guard
    assert done == [0]


def test_stop_from_a_signal_handler(gearmand: GearmandProcess, wait_for: WaitFor) -> None:
    worker = Worker([gearmand.server])
    worker.register("t.signal", Recorder())
    netted: list[bool] = []
    give_up = threading.Event()

    def send_sigterm() -> None:
        wait_for(lambda: registered(gearmand.server, "t.signal"), what="registration")
        os.kill(os.getpid(), signal.SIGTERM)
        if not give_up.wait(10):  # a hang guard: a broken stop() fails instead of hanging
            netted.append(True)
            worker.stop()

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: worker.stop())
    killer = threading.Thread(target=send_sigterm, daemon=True)
    try:
        killer.start()
        assert worker.work() == 0
        give_up.set()
        killer.join(10)
        assert not netted, "SIGTERM did not stop work() within 10 s"
    finally:
        give_up.set()
        killer.join(10)
        signal.signal(signal.SIGTERM, previous)
        worker.close()


def test_register_while_working(gearmand: GearmandProcess, wait_for: WaitFor) -> None:
    got = threading.Event()
    worker = Worker([gearmand.server])
    worker.register("t.first", Recorder())
    with working(worker):
        wait_for(lambda: registered(gearmand.server, "t.first"), what="registration")
        Client([gearmand.server]).submit_background("t.second", b"", "late")
        worker.register("t.second", lambda job: got.set())
        assert got.wait(10)
        worker.unregister("t.first")
        wait_for(lambda: registered(gearmand.server, "t.first", 0), what="unregistration")


def test_stop_finishes_the_job_at_hand(gearmand: GearmandProcess) -> None:
    entered, release = threading.Event(), threading.Event()

    def handler(job: Assignment) -> bytes:
        entered.set()
        assert release.wait(10)
        return b"finished"

    job = Client([gearmand.server]).submit("t.slow", b"", "slow-1")
    worker = Worker([gearmand.server])
    worker.register("t.slow", handler)
    with working(worker) as done:
        assert entered.wait(10)
        worker.stop()
        release.set()
        assert list(job) == [] and job.result == b"finished"
    assert done == [1]


def test_stop_before_work_returns_at_once(gearmand: GearmandProcess) -> None:
    with Worker([gearmand.server]) as worker:
        worker.register("t.x", Recorder())
        worker.stop()
        assert worker.work() == 0


def test_workers_in_threads_share_the_jobs(gearmand: GearmandProcess, wait_for: WaitFor) -> None:
    lock, seen = threading.Lock(), []

    def handler(job: Assignment) -> bytes:
        with lock:
            seen.append(job.unique)
        return b""

    workers = [Worker([gearmand.server]) for _ in range(3)]
    for worker in workers:
        worker.register("t.shared", handler)
    with working(workers[0]), working(workers[1]), working(workers[2]):
        with Client([gearmand.server]) as client:
            client.submit_background_many("t.shared", [(b"", f"s-{i}") for i in range(60)])
        wait_for(lambda: len(seen) >= 60, what="60 jobs")
    assert sorted(seen) == sorted(f"s-{i}" for i in range(60))


def test_persistent_queue_survives_a_restart(gearmand_factory: Factory) -> None:
    server = gearmand_factory(persistent=True)
    Client([server.server]).submit_background("t.durable", ODD_BYTES, "d-1")
    server.restart()
    recorder = Recorder()
    with Worker([server.server]) as worker:
        worker.register("t.durable", recorder)
        assert worker.work(burst=True) == 1
    assert recorder.jobs[0].payload == ODD_BYTES and recorder.jobs[0].unique == "d-1"


def test_unreachable_server(free_tcp_port: int) -> None:
    server = Server("127.0.0.1", free_tcp_port)
    with pytest.raises(ServerUnavailable) as failure:
        Connection(server).connect()
    assert str(failure.value) == f"cannot reach job server {server}: Connection refused"
    with pytest.raises(ServerUnavailable, match=f"no job server \\({server}\\)"):
        Client([server]).submit_background("t.x", b"", "u")
    with pytest.raises(ServerUnavailable, match=str(server)):
        Client([server]).submit("t.x", b"", "u")


def test_unique_over_63_bytes_is_rejected(gearmand: GearmandProcess) -> None:
    with Client([gearmand.server]) as client:
        client.submit_background("t.u", b"", "u" * 63)
        with pytest.raises(ValueError, match="at most 63"):
            client.submit_background("t.u", b"", "u" * 64)
        with pytest.raises(ValueError, match="non-empty"):
            client.submit_background("t.u", b"", "")
