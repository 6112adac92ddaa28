"""The querying side: find the live storage nodes, send each a map job, reduce the streams.

Nodes are discovered from the admin ``status`` of every job server: a function
``logmr.map.<node-id>`` with at least one worker is a live node. A node that fails during
a query is named in the result, which then says it is partial.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from logmr import wire
from logmr.errors import GearmanError, LogmrError, ServerUnavailable
from logmr.gearman import admin
from logmr.gearman.client import Client, ForegroundJob
from logmr.gearman.connection import Server
from logmr.reduce.merge import merge_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Node:
    """A live storage node and a job server it listens on."""

    node_id: str
    server: Server


@dataclass
class Cluster:
    """What discovery found."""

    nodes: list[Node]
    servers_down: dict[str, str] = field(default_factory=dict)
    status: dict[str, list[admin.FunctionStatus]] = field(default_factory=dict)


def discover(servers: list[Server], timeout: float = 5.0) -> Cluster:
    """Ask every job server which nodes are live. Raises ServerUnavailable if none answers."""
    found: dict[str, Node] = {}
    cluster = Cluster(nodes=[])
    for server in servers:
        try:
            functions = admin.status(server, timeout=timeout)
        except GearmanError as exc:
            cluster.servers_down[str(server)] = str(exc)
            continue
        cluster.status[str(server)] = functions
        for fn in functions:
            if fn.name.startswith(wire.MAP_PREFIX) and fn.workers > 0:
                node_id = fn.name[len(wire.MAP_PREFIX):]
                found.setdefault(node_id, Node(node_id, server))
    if len(cluster.servers_down) == len(servers):
        reasons = "; ".join(cluster.servers_down.values())
        raise ServerUnavailable(f"no job server answered: {reasons}. Start gearmand, or point "
                                "--servers / LOGMR_SERVERS at a running one")
    cluster.nodes = sorted(found.values(), key=lambda n: n.node_id)
    return cluster


def require_nodes(cluster: Cluster, servers: list[Server]) -> None:
    """Raise a clear error when the cluster has no storage node."""
    if not cluster.nodes:
        names = ", ".join(str(s) for s in servers)
        raise LogmrError(f"no storage node is registered on {names}: start one with "
                         "'logmr worker --data-dir DIR'")


RecordKey = tuple[str, int]  # (batch id, part): one stored record, wherever it lies


@dataclass
class Plan:
    """Which node reads which record, so that every query reads each record once (from
    one of the nodes that hold it) however many copies there are.

    Built from every node's listing of the records it holds in the query's range. A
    record held by several nodes goes to the first of them by rendezvous hashing on its
    key, which spreads the reading evenly; when that node fails during the query, the
    next holder is asked for it (:meth:`take_over`).
    """

    holders: dict[RecordKey, list[str]] = field(default_factory=dict)
    lines: dict[RecordKey, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # nodes that could not list
    dead: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)  # gone nodes a catalog said what they held

    def owner(self, key: RecordKey) -> str | None:
        """The live node that reads ``key``, if any holds it still."""
        return next((n for n in self.holders[key] if n not in self.dead), None)

    def skip(self, node_id: str) -> list[list[Any]]:
        """Records ``node_id`` holds but another node reads."""
        return [[b, p] for (b, p), nodes in self.holders.items()
                if node_id in nodes and self.owner((b, p)) != node_id]

    def owned(self, node_id: str) -> list[RecordKey]:
        """Records ``node_id`` reads."""
        return [key for key in self.holders if self.owner(key) == node_id]

    def take_over(self, failed: str) -> dict[str, list[list[Any]]]:
        """After ``failed`` stopped answering: which other holder reads each record it was
        to read (node -> records). Records with no other holder are missing."""
        lost = self.owned(failed)
        self.dead.add(failed)
        out: dict[str, list[list[Any]]] = {}
        for key in lost:
            node = self.owner(key)
            if node is not None:
                out.setdefault(node, []).append(list(key))
        return out

    @property
    def missing_lines(self) -> int:
        """Lines of the records that no live node can read."""
        return sum(self.lines[k] for k in self.holders if self.owner(k) is None)

    @property
    def copies(self) -> int:
        """Records listed, counting every copy."""
        return sum(len(nodes) for nodes in self.holders.values())


def plan_reads(client: Client, cluster: Cluster, since: int | None, until: int | None,
               timeout: float | None = None, secret: bytes | None = None) -> Plan:
    """Ask every node which records it holds in [since, until) and plan who reads what.

    The nodes also say what their catalogs hold of nodes that are gone (see
    :mod:`logmr.store.repair`): those records, unless a live node holds them, are missing.
    When a node does not list its records, a node that did is asked what it last held.
    """
    from logmr.store.replication import rendezvous

    args = {"since": since, "until": until}
    live = [n.node_id for n in cluster.nodes]
    fan = fan_out(client, cluster, wire.MapRequest("records", {**args, "elsewhere": live}),
                  timeout, secret)
    fan.finish()
    plan = Plan(failed=dict(fan.failed))
    plan.dead.update(fan.failed)
    gone: dict[str, list[Any]] = {}  # what nodes that are not answering held, last seen
    for node_id in sorted(fan.results):
        result = fan.results[node_id]
        for entry in result.get("records", []):
            key = (str(entry[0]), int(entry[1]))
            plan.holders.setdefault(key, []).append(node_id)
            if len(entry) > 2:
                plan.lines[key] = int(entry[2])
        for other, rows in (result.get("elsewhere") or {}).items():
            gone.setdefault(other, []).extend(rows)
    if fan.failed and fan.results:
        asked = next(n for n in cluster.nodes if n.node_id in fan.results)
        more = fan_out(client, Cluster(nodes=[asked]), wire.MapRequest("records", {
            **args, "elsewhere": sorted(fan.results), "catalog_only": True}), timeout, secret)
        more.finish()
        for result in more.results.values():
            for other, rows in (result.get("elsewhere") or {}).items():
                gone.setdefault(other, []).extend(rows)
    plan.known = set(gone)
    for rows in gone.values():
        for entry in rows:
            key = (str(entry[0]), int(entry[1]))
            if key not in plan.holders:
                plan.holders[key] = []
                plan.lines[key] = int(entry[2])
    for key, nodes in plan.holders.items():
        if len(nodes) > 1:
            plan.holders[key] = rendezvous(f"{key[0]}/{key[1]}", nodes)
        plan.lines.setdefault(key, 0)
    return plan


@dataclass
class Fanout:
    """One map job sent to every node; streams and results per node."""

    jobs: dict[str, ForegroundJob]
    failed: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """True when some node's answer is missing."""
        return bool(self.failed)

    def rows(self, node_id: str) -> Iterator[list[Any]]:
        """The rows one node streams back, each with the node id appended; a failure ends
        the stream and is recorded."""
        job = self.jobs[node_id]
        try:
            for chunk in job:
                for row in wire.unpack_rows(chunk):
                    row.append(node_id)
                    yield row
            self.results[node_id] = wire.unpack_result(job.result)
        except LogmrError as exc:
            self.failed[node_id] = str(exc)
        finally:
            job.close()

    def finish(self) -> None:
        """Drain jobs whose streams were not read to the end (collecting their results)."""
        for node_id in self.jobs:
            if node_id not in self.results and node_id not in self.failed:
                for _ in self.rows(node_id):
                    pass


def fan_out(client: Client, cluster: Cluster, request: wire.MapRequest,
            timeout: float | None = None, secret: bytes | None = None,
            extra: dict[str, dict[str, Any]] | None = None) -> Fanout:
    """Send ``request`` to every node (each on its own connection), signed with ``secret``
    when one is given; ``extra`` adds arguments for some nodes."""
    payload = wire.sign(wire.pack_request(request), secret)
    out = Fanout(jobs={})
    for node in cluster.nodes:
        more = (extra or {}).get(node.node_id)
        body = payload if not more else wire.sign(wire.pack_request(
            wire.MapRequest(request.job, {**request.args, **more})), secret)
        try:
            out.jobs[node.node_id] = client.submit(
                wire.map_function(node.node_id), body, unique=secrets.token_hex(16),
                server=node.server, timeout=timeout)
        except GearmanError as exc:
            out.failed[node.node_id] = str(exc)
    return out


class Reader:
    """One query over the cluster: plan who reads what, send the map job to every node
    with its share, and when a node fails midway hand its share to the other holders.

    ``failed`` names the nodes that did not answer; the output is still complete when
    their records were read from other copies (``partial`` says whether it is not).
    """

    def __init__(self, client: Client, cluster: Cluster, request: wire.MapRequest,
                 since: int | None, until: int | None, timeout: float | None = None,
                 secret: bytes | None = None) -> None:
        self.client = client
        self.request = request
        self.timeout = timeout
        self.secret = secret
        self.nodes = {n.node_id: n for n in cluster.nodes}
        self.plan = plan_reads(client, cluster, since, until, timeout, secret)
        self.failed: dict[str, str] = dict(self.plan.failed)
        # nodes that neither listed their records nor are in a live node's catalog
        self.unknown: set[str] = set(self.plan.failed) - self.plan.known
        self._fans: list[Fanout] = []

    def _send(self, nodes: list[Node], extra: dict[str, dict[str, Any]]) -> Fanout:
        fan = fan_out(self.client, Cluster(nodes=nodes), self.request, self.timeout,
                      self.secret, extra=extra)
        self._fans.append(fan)
        return fan

    def answers(self) -> list[dict[str, Any]]:
        """Every result a node sent back for this query (first round and take-overs)."""
        return [r for fan in self._fans for r in fan.results.values()]

    def close(self) -> None:
        """Stop listening to every job this query sent (the rest of a --limit'ed grep)."""
        for fan in self._fans:
            for job in fan.jobs.values():
                job.close()

    def first(self) -> Fanout:
        """The map job sent to every node that listed its records, each told what to skip."""
        live = [n for n in self.nodes.values() if n.node_id not in self.plan.dead]
        skips = {n.node_id: {"skip": self.plan.skip(n.node_id)} for n in live}
        return self._send(live, {k: v for k, v in skips.items() if v["skip"]})

    def take_over(self, node_id: str, reason: str, more: dict[str, Any] | None = None
                  ) -> Fanout | None:
        """``node_id`` failed: ask the next holders for the records it was to read."""
        self.failed[node_id] = reason
        shares = self.plan.take_over(node_id)
        if not shares:
            return None
        log.info("node %s failed (%s): %d other nodes read its records", node_id, reason,
                 len(shares))
        nodes = [self.nodes[n] for n in sorted(shares)]
        return self._send(nodes, {n: {"only": keys, **(more or {})}
                                  for n, keys in shares.items()})

    def results(self) -> list[dict[str, Any]]:
        """Every node's final result (for jobs whose answer is in WORK_COMPLETE)."""
        out: list[dict[str, Any]] = []
        pending = [self.first()]
        while pending:
            fan = pending.pop()
            fan.finish()
            out.extend(fan.results.values())
            for node_id, reason in fan.failed.items():
                sub = self.take_over(node_id, reason)
                if sub is not None:
                    pending.append(sub)
        return out

    def rows(self) -> Iterator[list[Any]]:
        """Every node's rows merged into one time order; a stream broken off is taken
        up by other holders from the row after the last one received."""
        yield from merge_rows(self._streams(self.first()))

    def _streams(self, fan: Fanout) -> list[Iterator[list[Any]]]:
        streams = [self._stream(fan, node_id) for node_id in fan.jobs]
        for node_id, reason in list(fan.failed.items()):  # could not even be sent
            sub = self.take_over(node_id, reason)
            if sub is not None:
                streams.append(merge_rows(self._streams(sub)))
        return streams

    def _stream(self, fan: Fanout, node_id: str) -> Iterator[list[Any]]:
        last: list[Any] | None = None
        for row in fan.rows(node_id):
            last = row
            yield row
        if node_id in fan.failed:
            after = None if last is None else [last[0], last[1], last[2]]
            sub = self.take_over(node_id, fan.failed[node_id], {"after": after})
            if sub is not None:
                yield from merge_rows(self._streams(sub))

    @property
    def missing_lines(self) -> int:
        """Lines of listed records that no node could read."""
        return self.plan.missing_lines

    @property
    def partial(self) -> bool:
        """True when some lines are missing, or a node's records could not be listed."""
        return bool(self.unknown) or self.missing_lines > 0


@dataclass(frozen=True)
class Coverage:
    """How complete an answer is: the nodes that failed, the lines known to be missing, and
    whether some node's holdings could not even be listed."""

    failed: dict[str, str] = field(default_factory=dict)
    missing_lines: int = 0
    unknown: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        """True when the answer may lack lines."""
        return self.missing_lines > 0 or bool(self.unknown)


def coverage_of(reader: Reader | None) -> Coverage:
    """The coverage of a query's reader (complete in file mode)."""
    if reader is None:
        return Coverage()
    return Coverage(dict(reader.failed), reader.missing_lines, tuple(sorted(reader.unknown)))


__all__ = ["Cluster", "Coverage", "Fanout", "Node", "Plan", "Reader", "coverage_of", "discover",
           "fan_out", "plan_reads", "require_nodes"]
