"""The querying side: find the live storage nodes, send each a map job, reduce the streams.

Nodes are discovered from the admin ``status`` of every job server: a function
``logmr.map.<node-id>`` with at least one worker is a live node. A node that fails during
a query is named in the result, which then says it is partial.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from logmr import wire
from logmr.errors import LogmrError
from logmr.gearman import admin
from logmr.gearman.client import Client, ForegroundJob
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError, ServerUnavailable
from logmr.reduce.merge import merge_sorted

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

    Built from every node's listing of the records it holds in the query's range, each
    listing taken "up to" the node's sequence number then (a record that arrives later is
    read by nobody: the query sees the cluster as listed). A record held by several nodes
    is read by the node that took it from ship (its lines are in that node's cache), or,
    among copies, the first holder by rendezvous hashing; when that node fails during the
    query, the next holder is asked for the records it was given (:meth:`take_over`).
    """

    holders: dict[RecordKey, list[str]] = field(default_factory=dict)  # in reading order
    lines: dict[RecordKey, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # nodes that could not list
    dead: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)  # gone nodes a catalog said what they held
    upto: dict[str, int] = field(default_factory=dict)  # node -> sequence number listed
    epoch: dict[str, str] = field(default_factory=dict)  # node -> its start the number is of
    _owners: dict[RecordKey, str | None] | None = None

    def owner(self, key: RecordKey) -> str | None:
        """The live node that reads ``key``, if any holds it still."""
        return self.owners()[key]

    def owners(self) -> dict[RecordKey, str | None]:
        """Every record's reader (worked out once, again after a node fails)."""
        if self._owners is None:
            dead = self.dead
            self._owners = {key: next((n for n in nodes if n not in dead), None)
                            for key, nodes in self.holders.items()}
        return self._owners

    def shares(self) -> dict[str, list[RecordKey]]:
        """node -> the records it reads."""
        out: dict[str, list[RecordKey]] = {}
        for key, node in self.owners().items():
            if node is not None:
                out.setdefault(node, []).append(key)
        return out

    def skip(self, node_id: str) -> list[list[Any]]:
        """Records ``node_id`` holds but another node reads."""
        owners = self.owners()
        return [[b, p] for (b, p), nodes in self.holders.items()
                if node_id in nodes and owners[(b, p)] != node_id]

    def owned(self, node_id: str) -> list[RecordKey]:
        """Records ``node_id`` reads."""
        return [key for key, node in self.owners().items() if node == node_id]

    def take_over(self, failed: Iterable[str], given: Iterable[RecordKey]
                  ) -> dict[str, list[list[Any]]]:
        """After the nodes ``failed`` stopped answering: which other holder reads each of
        the records ``given`` to them (node -> records). Records that no live node holds
        are missing."""
        self.dead.update(failed)
        self._owners = None
        out: dict[str, list[list[Any]]] = {}
        owners = self.owners()
        for key in given:
            node = owners[key]
            if node is not None:
                out.setdefault(node, []).append(list(key))
        return out

    @property
    def missing_lines(self) -> int:
        """Lines of the records that no live node can read."""
        return sum(self.lines[k] for k, node in self.owners().items() if node is None)

def plan_reads(client: Client, cluster: Cluster, since: int | None, until: int | None,
               timeout: float | None = None, secret: bytes | None = None) -> Plan:
    """Ask every node which records it holds in [since, until) and plan who reads what.

    The nodes also say what their catalogs hold of nodes that are gone (see
    :mod:`logmr.store.repair`): those records, unless a live node holds them, are missing.
    When a node does not list its records, a node that did is asked what it last held.
    """
    from logmr.wire import rendezvous

    args = {"since": since, "until": until}
    live = [n.node_id for n in cluster.nodes]
    # every node says what its catalog holds of the nodes that are gone (a node that
    # joined later knows less: the answers are put together)
    fan = fan_out(client, cluster, wire.MapRequest("records", {**args, "elsewhere": live}),
                  timeout, secret)
    fan.finish()
    plan = Plan(failed=dict(fan.failed))
    plan.dead.update(fan.failed)
    gone: dict[str, list[Any]] = {}  # what nodes that are not answering held, last seen
    origins: dict[RecordKey, list[str]] = {}
    for node_id in sorted(fan.results):
        result = fan.results[node_id]
        if isinstance(result.get("upto"), int):
            plan.upto[node_id] = result["upto"]
            plan.epoch[node_id] = str(result.get("epoch"))
        for entry in result.get("records", []):
            key = (str(entry[0]), int(entry[1]))
            plan.holders.setdefault(key, []).append(node_id)
            if len(entry) > 5 and not entry[5]:
                origins.setdefault(key, []).append(node_id)
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
        if len(nodes) > 1:  # the node that took it from ship first: its cache has it
            ranked = rendezvous(f"{key[0]}/{key[1]}", nodes)
            first = origins.get(key, ())
            plan.holders[key] = [n for n in ranked if n in first] + [
                n for n in ranked if n not in first]
        plan.lines.setdefault(key, 0)
    return plan


@dataclass
class Fanout:
    """One map job sent to every node; streams and results per node."""

    jobs: dict[str, ForegroundJob]
    failed: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    given: dict[str, list[RecordKey]] = field(default_factory=dict)  # node -> its records
    secret: bytes | None = None  # answers must be signed with it, for their own request
    uniques: dict[str, str] = field(default_factory=dict)  # node -> its job's unique id

    def verified(self, node_id: str, data: bytes, what: str = "map result") -> bytes:
        """A chunk or result from ``node_id``, once its signature checks out."""
        return verified_answer(data, self.secret, node_id, self.uniques.get(node_id, ""),
                               what)

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
                for row in wire.unpack_rows(self.verified(node_id, chunk)):
                    row.append(node_id)
                    yield row
            self.results[node_id] = wire.unpack_result(self.verified(node_id, job.result))
        except (LogmrError, GearmanError) as exc:
            self.failed[node_id] = str(exc)
        finally:
            job.close()

    def finish(self) -> None:
        """Drain jobs whose streams were not read to the end (collecting their results)."""
        for node_id in self.jobs:
            if node_id not in self.results and node_id not in self.failed:
                for _ in self.rows(node_id):
                    pass


def ask(client: Client, node: Node, request: wire.MapRequest, secret: bytes | None,
        timeout: float | None) -> dict[str, Any]:
    """One node's answer to a map job that streams nothing back (stats, a re-parse)."""
    answer = ask_each(client, [(node, request)], secret, timeout)[0]
    if isinstance(answer, Exception):
        raise answer
    return answer


def ask_each(client: Client, asks: list[tuple[Node, wire.MapRequest]], secret: bytes | None,
             timeout: float | None) -> list[dict[str, Any] | LogmrError | GearmanError]:
    """The answers to map jobs that stream nothing back, sent all at once (each node runs
    its own meanwhile); a job that fails gives its error in its place."""
    return send_each(client, asks, secret, timeout)()


def send_each(client: Client, asks: list[tuple[Node, wire.MapRequest]], secret: bytes | None,
              timeout: float | None
              ) -> Callable[[], list[dict[str, Any] | LogmrError | GearmanError]]:
    """Send the jobs of :func:`ask_each` now; the call it returns waits for the answers
    (so that the nodes work on the next round while this one is read)."""
    sent: list[tuple[Node, wire.MapRequest, str, ForegroundJob | GearmanError]] = []
    for node, request in asks:
        unique = os.urandom(16).hex()
        try:
            job: ForegroundJob | GearmanError = client.submit(
                wire.map_function(node.node_id), wire.sign(wire.pack_request(request), secret),
                unique=unique, server=node.server, timeout=timeout)
        except GearmanError as exc:
            job = exc
        sent.append((node, request, unique, job))

    def answers() -> list[dict[str, Any] | LogmrError | GearmanError]:
        out: list[dict[str, Any] | LogmrError | GearmanError] = []
        for node, request, unique, job in sent:
            if isinstance(job, GearmanError):
                out.append(job)
                continue
            try:
                with job:
                    for _ in job:
                        pass
                    answer = wire.unpack_result(verified_answer(
                        job.result, secret, node.node_id, unique, request.job))
                answer.pop("v", None)
                out.append(answer)
            except (LogmrError, GearmanError) as exc:
                out.append(exc)
        return out
    return answers


def verified_answer(data: bytes, secret: bytes | None, node_id: str, unique: str,
                    what: str = "map result") -> bytes:
    """An answer of ``node_id`` to the request ``unique``, once its signature checks out:
    with a secret, a worker that took the node's function without it cannot answer."""
    try:
        return wire.verify(data, secret, what, unique.encode("latin-1"), "this client")
    except wire.SignatureError:
        raise wire.SignatureError(
            f"its {what} is not signed with this client's secret for this request: if "
            f"node {node_id} has the same secret, something else answers in its name"
        ) from None


def fan_out(client: Client, cluster: Cluster, request: wire.MapRequest,
            timeout: float | None = None, secret: bytes | None = None,
            extra: dict[str, dict[str, Any]] | None = None) -> Fanout:
    """Send ``request`` to every node (each on its own connection), signed with ``secret``
    when one is given; ``extra`` adds arguments for some nodes."""
    payload = wire.sign(wire.pack_request(request), secret)
    out = Fanout(jobs={}, secret=secret)
    for node in cluster.nodes:
        more = (extra or {}).get(node.node_id)
        body = payload if not more else wire.sign(wire.pack_request(
            wire.MapRequest(request.job, {**request.args, **more})), secret)
        unique = out.uniques[node.node_id] = os.urandom(16).hex()
        try:
            out.jobs[node.node_id] = client.submit(
                wire.map_function(node.node_id), body, unique=unique,
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

    def _send(self, nodes: list[Node], extra: dict[str, dict[str, Any]],
              given: dict[str, list[RecordKey]]) -> Fanout:
        fan = fan_out(self.client, Cluster(nodes=nodes), self.request, self.timeout,
                      self.secret, extra=extra)
        fan.given = given
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
        """The map job sent to every node that listed its records, each told which of
        them to read (or to skip, when that list is shorter)."""
        live = [n for n in self.nodes.values() if n.node_id not in self.plan.dead]
        shares = self.plan.shares()
        extra: dict[str, dict[str, Any]] = {}
        given: dict[str, list[RecordKey]] = {}
        for node in live:
            mine = shares.get(node.node_id, [])
            skip = self.plan.skip(node.node_id)
            args: dict[str, Any] = {"upto": self.plan.upto.get(node.node_id),
                                    "epoch": self.plan.epoch.get(node.node_id)}
            args.update({"only": [list(k) for k in mine]} if len(mine) < len(skip)
                        else {"skip": skip})
            extra[node.node_id] = args
            given[node.node_id] = mine
        return self._send(live, extra, given)

    def take_over(self, fan: Fanout, failed: dict[str, str], more: dict[str, Any] | None = None
                  ) -> Fanout | None:
        """The nodes ``failed`` of ``fan`` did not finish: ask the next holders for the
        records ``fan`` gave them (and only those)."""
        self.failed.update(failed)
        given = [key for node_id in failed for key in fan.given.get(node_id, ())]
        shares = self.plan.take_over(failed, given)
        if not shares:
            return None
        log.info("nodes %s failed: %d other nodes read their records", ", ".join(failed),
                 len(shares))
        nodes = [self.nodes[n] for n in sorted(shares)]
        return self._send(nodes, {n: {"only": keys, **(more or {})}
                                  for n, keys in shares.items()},
                          {n: [(str(b), int(p)) for b, p in keys] for n, keys in shares.items()})

    def results(self) -> list[dict[str, Any]]:
        """Every node's final result (for jobs whose answer is in WORK_COMPLETE)."""
        out: list[dict[str, Any]] = []
        pending = [self.first()]
        while pending:
            fan = pending.pop()
            fan.finish()
            out.extend(fan.results.values())
            if fan.failed:  # every node that failed in this round at once
                sub = self.take_over(fan, dict(fan.failed))
                if sub is not None:
                    pending.append(sub)
        return out

    def rows(self) -> Iterator[list[Any]]:
        """Every node's rows merged into one time order; a stream broken off is taken
        up by other holders from the row after the last one received."""
        yield from merge_sorted(self._streams(self.first()))

    def _streams(self, fan: Fanout) -> list[Iterator[list[Any]]]:
        streams = [self._stream(fan, node_id) for node_id in fan.jobs]
        unsent = {n: r for n, r in fan.failed.items() if n not in fan.jobs}
        if unsent:  # could not even be sent
            sub = self.take_over(fan, unsent)
            if sub is not None:
                streams.append(merge_sorted(self._streams(sub)))
        return streams

    def _stream(self, fan: Fanout, node_id: str) -> Iterator[list[Any]]:
        last: list[Any] | None = None
        for row in fan.rows(node_id):
            last = row
            yield row
        if node_id in fan.failed:
            after = None if last is None else [last[0], last[1], last[2]]
            sub = self.take_over(fan, {node_id: fan.failed[node_id]}, {"after": after})
            if sub is not None:
                yield from merge_sorted(self._streams(sub))

    @property
    def missing_lines(self) -> int:
        """Lines of listed records that no node could read."""
        return self.plan.missing_lines


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


__all__ = ["Cluster", "Coverage", "Fanout", "Node", "Plan", "Reader", "ask", "ask_each",
           "coverage_of", "discover", "fan_out", "plan_reads", "require_nodes", "send_each"]
