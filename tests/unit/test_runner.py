"""The map runner: a forked child per job, a time budget, a memory limit."""

from __future__ import annotations

import os
import re
import threading
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


def test_results_and_stream_come_back() -> None:
    def job(reply: Reply) -> dict[str, Any]:
        reply.send_status(0, 2)
        for i in range(3):
            reply.send_data(b"chunk %d " % i + b"x" * 300_000)
        return {"count": 3, "pid": os.getpid()}

    out = Collect()
    result = MapRunner(budget=30).run(job, out)
    assert result["count"] == 3
    assert result["pid"] != os.getpid()  # it ran in a child
    assert [d[:7] for d in out.data] == [b"chunk 0", b"chunk 1", b"chunk 2"]
    assert out.status == [(0, 2)]


def test_an_error_in_the_job_comes_back_as_its_message() -> None:
    def job(reply: Reply) -> dict[str, Any]:
        raise LogmrError("no such thing")

    with pytest.raises(LogmrError, match="no such thing"):
        MapRunner(budget=30).run(job, Collect())


def test_a_runaway_regex_is_stopped_at_the_budget() -> None:
    def job(reply: Reply) -> dict[str, Any]:
        re.search(rb"(a+)+$", b"a" * 64 + b"b")  # catastrophic backtracking
        return {}

    failed: list[BaseException] = []

    def run() -> None:
        try:
            MapRunner(budget=0.5).run(job, Collect())
        except LogmrError as exc:
            failed.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(5)  # the deadline: stopped long before the regex would end
    assert not runner.is_alive() and "time budget of 0.5 s" in str(failed[0])
    # and the runner still works afterwards
    assert MapRunner(budget=30).run(lambda r: {"ok": True}, Collect()) == {"ok": True}


def test_memory_limit() -> None:
    def job(reply: Reply) -> dict[str, Any]:
        hog = bytearray(512 << 20)
        return {"n": len(hog)}

    with pytest.raises(LogmrError, match="memory limit"):
        MapRunner(budget=30, memory_limit=64 << 20).run(job, Collect())


def test_a_child_that_dies_is_reported() -> None:
    def job(reply: Reply) -> dict[str, Any]:
        os._exit(3)

    with pytest.raises(LogmrError, match="died .*exit status 3"):
        MapRunner(budget=30).run(job, Collect())
