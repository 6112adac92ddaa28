"""File mode on every core gives what one core gives."""

from __future__ import annotations

from pathlib import Path

import pytest

import logmr.files
from logmr.client.report import file_report
from logmr.client.search import GrepRequest, grep_files
from logmr.mapfn.grep import GrepQuery
from logmr.mapfn.spec import CLICK, PANELS, ReportSpec
from tests.cluster import HACKERS, SEMICOMPLETE


def test_parallel_file_mode_equals_one_core(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(logmr.files, "CHUNK", 256 * 1024)  # many chunks from small files
    paths = [str(SEMICOMPLETE), str(HACKERS)]
    spec = ReportSpec(reports=(*PANELS, *(c for c in CLICK if c not in ("transitions",
                                                                          "funnel"))))
    request = GrepRequest(GrepQuery(b"GET /"))

    def both() -> tuple[dict[str, object], list[bytes]]:
        outcome, lines = grep_files(paths, request)
        return file_report(paths, spec).data, [line.line for line in lines]

    monkeypatch.setattr(logmr.files, "PARALLEL_FROM", 1 << 62)
    one_core = both()
    monkeypatch.setattr(logmr.files, "PARALLEL_FROM", 0)
    every_core = both()
    assert every_core == one_core
    assert len(one_core[1]) > 10_000
