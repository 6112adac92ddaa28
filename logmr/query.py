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


def merged_rows(fan: Fanout) -> Iterator[list[Any]]:
    """Every node's rows merged into one time order (duplicates from redelivery dropped)."""
    streams = [fan.rows(node_id) for node_id in list(fan.jobs)]
    yield from merge_rows(streams)


__all__ = ["Cluster", "Fanout", "Node", "discover", "fan_out", "merged_rows",
           "require_nodes"]
