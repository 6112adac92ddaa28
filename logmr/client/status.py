"""``logmr status`` as a library call: job servers, live nodes, queues, what nodes hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logmr import wire
from logmr.client.plan import Plan, ask, discover, plan_reads
from logmr.errors import LogmrError
from logmr.gearman import admin
from logmr.gearman.client import Client
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError


@dataclass
class ClusterStatus:
    """A snapshot of the cluster."""

    servers: dict[str, str] = field(default_factory=dict)  # server -> "up" or the reason
    queues: dict[str, list[admin.FunctionStatus]] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    replication: dict[str, Any] = field(default_factory=dict)

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        """Per source host, over every node (copies included, so shares, not counts, are
        what to read): lines, unparsed, its share, the format used and one suggested."""
        out: dict[str, dict[str, Any]] = {}
        for stats in self.nodes.values():
            for host, s in (stats.get("sources") or {}).items():
                into = out.setdefault(host, {"lines": 0, "unparsed": 0, "format": None,
                                             "suggested": None})
                into["lines"] += s["lines"]
                into["unparsed"] += s["unparsed"]
                into["format"] = into["format"] or s.get("format")
                into["suggested"] = into["suggested"] or s.get("suggested")
        for s in out.values():
            s["unparsed_share"] = round(s["unparsed"] / s["lines"], 4) if s["lines"] else 0.0
        return dict(sorted(out.items()))


def cluster_status(servers: list[Server], timeout: float = 10.0, *,
                   secret: bytes | None = None, replication: bool = True) -> ClusterStatus:
    """Ask every job server and every live node (``secret`` signs the requests); with
    ``replication``, also list every node's records to count the copies."""
    cluster = discover(servers)
    out = ClusterStatus()
    for server in servers:
        out.servers[str(server)] = cluster.servers_down.get(str(server), "up")
    out.queues = cluster.status
    client = Client(servers, timeout=timeout)
    try:
        for node in cluster.nodes:
            try:
                stats = ask(client, node, wire.MapRequest("stats"), secret, timeout)
                stats["server"] = str(node.server)
                out.nodes[node.node_id] = stats
            except (LogmrError, GearmanError) as exc:
                out.failed[node.node_id] = str(exc)
        if cluster.nodes and replication:
            plan = plan_reads(client, cluster, None, None, timeout, secret)
            replicas = max((int(s.get("replicas", 1)) for s in out.nodes.values()), default=1)
            out.replication = replication_summary(plan, replicas)
    finally:
        client.close()
    return out


def replication_summary(plan: Plan, replicas: int) -> dict[str, Any]:
    """Copies against the target: lines stored once, the batches and lines with fewer
    than ``replicas`` copies on the live nodes, and lines with no live copy."""
    short = [key for key, nodes in plan.holders.items() if len(nodes) < replicas]
    return {
        "replicas": replicas,
        "lines": sum(plan.lines.values()),
        "copies": sum(plan.lines[k] * len(n) for k, n in plan.holders.items()),
        "under_replicated_batches": len({batch for batch, _ in short}),
        "under_replicated_lines": sum(plan.lines[k] for k in short),
        "unavailable_lines": plan.missing_lines,
    }
