"""``logmr status`` as a library call: job servers, live nodes, queues, what nodes hold."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from logmr import wire
from logmr.errors import LogmrError
from logmr.gearman import admin
from logmr.gearman.client import Client
from logmr.gearman.connection import Server
from logmr.query import discover


@dataclass
class ClusterStatus:
    """A snapshot of the cluster."""

    servers: dict[str, str] = field(default_factory=dict)  # server -> "up" or the reason
    queues: dict[str, list[admin.FunctionStatus]] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def cluster_status(servers: list[Server], timeout: float = 10.0, *,
                   secret: bytes | None = None) -> ClusterStatus:
    """Ask every job server and every live node (``secret`` signs the requests)."""
    cluster = discover(servers)
    out = ClusterStatus()
    for server in servers:
        out.servers[str(server)] = cluster.servers_down.get(str(server), "up")
    out.queues = cluster.status
    client = Client(servers, timeout=timeout)
    try:
        payload = wire.sign(wire.pack_request(wire.MapRequest("stats")), secret)
        for node in cluster.nodes:
            try:
                job = client.submit(wire.map_function(node.node_id), payload,
                                    unique=secrets.token_hex(16), server=node.server,
                                    timeout=timeout)
                with job:
                    for _ in job:
                        pass
                    stats = wire.unpack_result(job.result)
                stats.pop("v", None)
                stats["server"] = str(node.server)
                out.nodes[node.node_id] = stats
            except LogmrError as exc:
                out.failed[node.node_id] = str(exc)
    finally:
        client.close()
    return out
