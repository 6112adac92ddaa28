"""Unit tests of logmr.mapfn.spec: a report request is read back exactly, and whatever
else arrives off the wire is refused with one clear line before it is used."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmr.errors import ConfigError
from logmr.mapfn.spec import CLICK, PANELS, Filters, ReportSpec

specs = st.builds(
    ReportSpec,
    reports=st.lists(st.sampled_from(PANELS + CLICK), min_size=1, max_size=5).map(tuple),
    limit=st.integers(1, 1000), interval=st.integers(1, 86400),
    visitor_key=st.sampled_from(["ip", "ip+ua", "ip+ua+date"]),
    session_timeout=st.integers(1, 7200),
    transitions=st.none() | st.binary(max_size=20),
    funnel=st.lists(st.binary(min_size=1, max_size=10), max_size=4).map(tuple),
    paths_length=st.integers(1, 10), include_static=st.booleans(), include_bots=st.booleans(),
    filters=st.builds(Filters, since=st.none() | st.integers(0, 2**40),
                      until=st.none() | st.integers(0, 2**40),
                      grep=st.none() | st.binary(max_size=10),
                      url=st.none() | st.binary(max_size=10),
                      status=st.lists(st.tuples(st.integers(100, 599), st.integers(100, 599)),
                                      max_size=3).map(tuple),
                      source_host=st.none() | st.text(max_size=10),
                      exclude_bots=st.booleans()))


@settings(max_examples=200, deadline=None)
@given(specs)
def test_a_request_reads_back_as_it_was_written(spec: ReportSpec) -> None:
    assert ReportSpec.from_args(spec.to_args()) == spec


def good() -> dict[str, Any]:
    return ReportSpec(reports=("summary", "funnel"), funnel=(b"/a", b"/b")).to_args()


@pytest.mark.parametrize(("change", "message"), [
    ({"funnel": [10**9]}, "funnel must be at most 64 URLs"),  # once: 1 GB of zeros
    ({"funnel": [b"/x"] * 65}, "funnel must be at most 64 URLs"),
    ({"limit": "10"}, "limit must be int, not str"),
    ({"limit": True}, "limit must be int, not bool"),
    ({"limit": 10**12}, "limit must be between 1 and 1000000"),
    ({"limit": 0}, "limit must be between 1 and 1000000"),
    ({"interval": -5}, "interval must be between"),
    ({"paths_length": 10**6}, "paths_length must be between 1 and 100"),
    ({"session_timeout": 1.5}, "session_timeout must be int, not float"),
    ({"transitions": 7}, "transitions must be bytes, not int"),
    ({"transitions": b"x" * 70_000}, "transitions is longer than 65536"),
    ({"include_bots": 1}, "include_bots must be bool, not int"),
    ({"visitor_key": ["ip"]}, "visitor_key must be str, not list"),
    ({"visitor_key": "mac"}, "unknown visitor key 'mac'"),
    ({"reports": "summary"}, "reports must be list, not str"),
    ({"reports": [1]}, "reports must be a list of names"),
    ({"reports": ["rm -rf"]}, "unknown report 'rm -rf'"),
    ({"filters": []}, "filters are not a map"),
    ({"filters": {"grep": 5}}, "grep must be bytes, not int"),
    ({"filters": {"since": "yesterday"}}, "since must be int, not str"),
    ({"filters": {"status": [[500]]}}, "status must be [low, high] ranges"),
    ({"filters": {"status": [["5", "6"]]}}, "status must be [low, high] ranges"),
    ({"filters": {"source_host": b"web1"}}, "source_host must be str, not bytes"),
])
def test_a_malformed_request_is_refused_in_one_line(change: dict[str, Any], message: str
                                                    ) -> None:
    args = {**good(), **change}
    with pytest.raises(ConfigError) as info:
        ReportSpec.from_args(args)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_request_without_reports_or_arguments_is_refused() -> None:
    args = good()
    del args["reports"]
    with pytest.raises(ConfigError, match="reports is missing"):
        ReportSpec.from_args(args)
    with pytest.raises(ConfigError, match="not a map"):
        ReportSpec.from_args([])  # type: ignore[arg-type]
