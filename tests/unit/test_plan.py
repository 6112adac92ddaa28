"""Unit tests of the read plan: each record read once, by one holder, whatever the copies,
and handed to the next holder when its reader fails; and of rendezvous placement."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logmr.client.plan import Plan
from logmr.client.status import replication_summary
from logmr.errors import LogmrError
from logmr.store.mapjobs import chosen_records, map_records
from logmr.store.node import NodeStore
from logmr.store.replication import copy_unique
from logmr.wire import Batch, rendezvous
from tests.unit.test_node import line


def plan_of(holdings: dict[str, list[tuple[str, int]]], lines: int = 10) -> Plan:
    plan = Plan()
    for node, keys in sorted(holdings.items()):
        for key in keys:
            plan.holders.setdefault(key, []).append(node)
            plan.lines[key] = lines
    for key, nodes in plan.holders.items():
        plan.holders[key] = rendezvous(f"{key[0]}/{key[1]}", nodes)
    return plan


holdings = st.dictionaries(
    st.sampled_from(["n1", "n2", "n3", "n4"]),
    st.lists(st.tuples(st.sampled_from([f"b{i}" for i in range(30)]), st.integers(0, 2)),
             unique=True), min_size=1)


@given(holdings)
def test_every_record_is_read_once(h: dict[str, list[tuple[str, int]]]) -> None:
    plan = plan_of(h)
    readers = Counter(key for node in h for key in plan.owned(node))
    assert set(readers) == set(plan.holders) and set(readers.values()) <= {1}
    for node, keys in h.items():  # a node reads what it holds and does not skip
        assert set(plan.owned(node)) | {tuple(k) for k in plan.skip(node)} == set(keys)
        assert not set(plan.owned(node)) & {tuple(k) for k in plan.skip(node)}


@given(holdings, st.sampled_from(["n1", "n2", "n3", "n4"]))
def test_a_failed_readers_records_go_to_the_next_holders(
        h: dict[str, list[tuple[str, int]]], dead: str) -> None:
    plan = plan_of(h)
    before = {node: set(plan.owned(node)) for node in h}
    shares = plan.take_over([dead], before.get(dead, set()))
    taken = Counter((b, p) for keys in shares.values() for b, p in keys)
    lost = before.get(dead, set())
    only_there = {k for k in lost if plan.holders[k] == [dead]}
    assert set(taken) == lost - only_there and set(taken.values()) <= {1}
    assert dead not in shares
    for node, keys in shares.items():
        assert all(node in plan.holders[(b, p)] for b, p in keys)
    assert plan.missing_lines == 10 * len(only_there)
    assert not plan.owned(dead)


def test_two_copies_on_two_nodes_are_read_half_each() -> None:
    keys = [(f"b{i}", 0) for i in range(1000)]
    plan = plan_of({"n1": keys, "n2": keys})
    assert 400 < len(plan.owned("n1")) < 600
    assert len(plan.owned("n1")) + len(plan.owned("n2")) == 1000


def test_rendezvous_moves_only_what_a_leaving_node_had() -> None:
    nodes = ["n1", "n2", "n3", "n4"]
    first = {f"b{i}": rendezvous(f"b{i}", nodes)[:2] for i in range(500)}
    after = {b: rendezvous(b, ["n1", "n2", "n4"])[:2] for b in first}
    for b, placed in first.items():
        if "n3" not in placed:
            assert after[b] == placed
    spread = Counter(n for placed in first.values() for n in placed)
    assert min(spread.values()) > 0.35 * 500


def test_copy_ids_fit_gearman_and_differ_by_peer() -> None:
    long_id = "x" * 63
    assert len(copy_unique(long_id, "n" * 63)) <= 63
    assert copy_unique("b1", "n1") == copy_unique("b1", "n1") != copy_unique("b1", "n2")


def test_replication_summary_counts_short_batches_and_lines() -> None:
    plan = plan_of({"n1": [("a", 0), ("a", 1), ("b", 0)], "n2": [("a", 0), ("c", 0)]})
    summary = replication_summary(plan, 2)
    assert summary == {"replicas": 2, "lines": 40, "copies": 50,
                       "under_replicated_batches": 3, "under_replicated_lines": 30,
                       "unavailable_lines": 0}
    plan.take_over(["n2"], plan.owned("n2"))
    assert replication_summary(plan, 2)["unavailable_lines"] == 10  # c lives on n2 only


def test_a_take_over_moves_only_what_the_failed_job_was_given() -> None:
    """C read its own share, then failed while reading A's: only A's share moves on."""
    plan = plan_of({"A": [("a", 0)], "C": [("a", 0), ("c", 0)], "D": [("c", 0)]})
    plan.holders = {("a", 0): ["A", "C"], ("c", 0): ["C", "D"]}
    plan.lines = {("a", 0): 10, ("c", 0): 10}
    assert plan.take_over(["A"], [("a", 0)]) == {"C": [["a", 0]]}
    assert plan.take_over(["C"], [("a", 0)]) == {}  # A and C gone: a is missing
    assert plan.missing_lines == 10  # and c, which C had read already, is not handed out


def test_a_node_reads_only_what_it_listed(tmp_path: Path) -> None:
    """A copy that lands after the listing is read by nobody in that query (its origin
    was told to read it): no record counts twice while ingest goes on."""
    store = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    store.store(Batch("b1", "web1", "combined", line(10, 1)))
    listed = map_records(store, NoReply(), {}, 0.0)
    origin = NodeStore(str(tmp_path / "o"), node_id="o", min_free="0")
    store.store_records("b2", origin.store(Batch("b2", "web1", "combined",
                                                 line(10, 2))).records)
    records = [r for _, rs in store.records() for r in rs]
    assert [r.copy for r in records] == [False, True]
    assert [row[5] for row in map_records(store, NoReply(), {}, 0.0)["records"]] == [0, 1]
    wanted = chosen_records({"upto": listed["upto"], "skip": []})
    assert [r.meta.batch_id for r in records if wanted(r)] == ["b1"]
    assert [r.meta.batch_id for r in records if chosen_records({})(r)] == ["b1", "b2"]
    only = chosen_records({"only": [["b2", 0]], "upto": listed["upto"]})
    assert [r.meta.batch_id for r in records if only(r)] == ["b2"]
    store.close()
    origin.close()


class NoReply:
    def send_data(self, data: bytes) -> None:
        raise AssertionError("a listing sends no rows")

    def send_status(self, numerator: int, denominator: int) -> None:
        pass


def test_a_listing_is_of_one_start_of_the_node(tmp_path: Path) -> None:
    """Sequence numbers are given again at a restart: a map job planned before it must
    not read by them (its records go to other holders instead)."""
    store = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    store.store(Batch("b1", "web1", "combined", line(10, 1)))
    listed = map_records(store, NoReply(), {}, 0.0)
    store.close()
    again = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    assert again.epoch != listed["epoch"]
    with pytest.raises(LogmrError, match="restarted"):
        chosen_records({"upto": listed["upto"], "epoch": listed["epoch"]}, again.epoch)
    keep = chosen_records({"only": [["b1", 0]], "upto": 1, "epoch": "old"}, again.epoch)
    assert keep is not None  # `only` names records, not numbers: safe across a restart
    again.close()


def test_a_node_does_not_copy_again_what_it_holds_as_a_copy(tmp_path: Path) -> None:
    store = NodeStore(str(tmp_path), node_id="n1", min_free="0")
    origin = NodeStore(str(tmp_path / "o"), node_id="o", min_free="0")
    store.store_records("b2", origin.store(Batch("b2", "w", "combined", line(10, 2))).records)
    store.store(Batch("b1", "web1", "combined", line(10, 1)))
    assert store.holds_only_copies("b2") and not store.holds_only_copies("b1")
    assert store.store(Batch("b2", "w", "combined", line(10, 2))).duplicate
    assert not store.holds_only_copies("nope")
    store.close()
    origin.close()
