"""The map runner: a process of its own per job (spawned, not forked), a time budget, a
memory limit."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from logmr.errors import LogmrError
from logmr.store.runner import MapRunner, Reply


class Collect:
    """A reply that keeps what it is sent."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.status: list[tuple[int, int]] = []

    def send_data(self, data: bytes) -> None:
        self.data.append(data)

    def send_status(self, numerator: int, denominator: int) -> None:
        self.status.append((numerator, denominator))


@pytest.fixture
def runner() -> Iterator[MapRunner]:
    made = MapRunner(budget=30)
    yield made
    made.close()


# the jobs are module-level functions: a job's process imports them by name

MARK = "as imported"


def streams(reply: Reply, chunks: int) -> dict[str, Any]:
    reply.send_status(0, 2)
    for i in range(chunks):
        reply.send_data(b"chunk %d " % i + b"x" * 300_000)
    return {"count": chunks, "pid": os.getpid(), "mark": MARK,
            "threads": len(os.listdir("/proc/self/task"))}


def fails(reply: Reply) -> dict[str, Any]:
    raise LogmrError("no such thing")


def backtracks(reply: Reply) -> dict[str, Any]:
    re.search(rb"(a+)+$", b"a" * 64 + b"b")  # catastrophic backtracking
    return {}


def answers(reply: Reply, value: Any) -> dict[str, Any]:
    return {"ok": value}


def hogs(reply: Reply) -> dict[str, Any]:
    hog = bytearray(512 << 20)
    return {"n": len(hog)}


def dies(reply: Reply) -> dict[str, Any]:
    os._exit(3)


def test_results_and_stream_come_back(runner: MapRunner) -> None:
    out = Collect()
    result = runner.run(streams, (3,), out)
    assert result["count"] == 3
    assert result["pid"] != os.getpid()  # it ran in a process of its own
    assert [d[:7] for d in out.data] == [b"chunk 0", b"chunk 1", b"chunk 2"]
    assert out.status == [(0, 2)]


def test_a_job_runs_in_a_fresh_interpreter_not_a_fork(runner: MapRunner) -> None:
    global MARK
    threading.Thread(target=threading.Event().wait, args=(5,), daemon=True).start()
    MARK = "changed in the parent"  # a forked child would see this
    try:
        result = runner.run(streams, (0,), Collect())
    finally:
        MARK = "as imported"
    assert result["mark"] == "as imported"
    assert result["threads"] == 1  # none of the parent's threads came along


def test_each_job_gets_a_process_of_its_own(runner: MapRunner) -> None:
    pids = {runner.run(streams, (0,), Collect())["pid"] for _ in range(3)}
    assert len(pids) == 3


def test_an_error_in_the_job_comes_back_as_its_message(runner: MapRunner) -> None:
    with pytest.raises(LogmrError, match="no such thing"):
        runner.run(fails, (), Collect())


def test_a_runaway_regex_is_stopped_at_the_budget() -> None:
    failed: list[BaseException] = []
    quick = MapRunner(budget=0.5)

    def run() -> None:
        try:
            quick.run(backtracks, (), Collect())
        except LogmrError as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)  # the deadline: stopped long before the regex would end
    assert not thread.is_alive() and "time budget of 0.5 s" in str(failed[0])
    quick.budget = 30  # and the runner still works afterwards
    try:
        assert quick.run(answers, (1,), Collect()) == {"ok": 1}
    finally:
        quick.close()


def test_memory_limit() -> None:
    small = MapRunner(budget=30, memory_limit=64 << 20)
    try:
        with pytest.raises(LogmrError, match="memory limit"):
            small.run(hogs, (), Collect())
    finally:
        small.close()


def test_a_job_that_dies_is_reported(runner: MapRunner) -> None:
    with pytest.raises(LogmrError, match="died .*exit status 3"):
        runner.run(dies, (), Collect())


def test_a_result_that_cannot_travel_is_an_error(runner: MapRunner) -> None:
    with pytest.raises(LogmrError, match="internal error in map job"):
        runner.run(answers, ({1, 2},), Collect())
