"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from logmr.store import node


@pytest.fixture
def hourly_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut every batch by the hour, as the node cuts a batch that spans over MAX_SPAN by
    the day: tests of parts, segments and per-segment rewrites get several of each from a
    few lines (tests/unit/test_spans.py tests the cut as it is)."""
    monkeypatch.setattr(node, "MAX_SPAN", -1)
    monkeypatch.setattr(node, "SPLIT_UNIT", 3600)
