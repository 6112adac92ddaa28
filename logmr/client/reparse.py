"""``logmr reparse`` as a library call: ask every node to derive the columns of the lines
it holds again, with a better format, and follow them until they are done.

The work is the nodes' (see :mod:`logmr.store.reparse`): each goes on if this client
stops, and a node that was stopped goes on at its next start. Asking again with the same
options follows a re-parse under way, or resumes one that failed.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from logmr import wire
from logmr.client.plan import ask, discover, require_nodes
from logmr.errors import LogmrError
from logmr.gearman.client import Client
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError
from logmr.mapfn.parse import AUTO

POLL = 0.5  # seconds between two questions to a node that is still at work


@dataclass
class ReparseResult:
    """Each node's answer: its last progress, or why it did not answer."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    servers_down: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """True when every node finished."""
        return not self.failed and all(a.get("state") == "done" for a in self.nodes.values())

    def total(self, name: str) -> int:
        """A count added over the nodes (copies included: each node re-parses its own)."""
        return sum(int(a.get(name) or 0) for a in self.nodes.values())


def reparse(servers: list[Server], fmt: str = AUTO, host: str | None = None,
            since: int | None = None, until: int | None = None, *,
            secret: bytes | None = None, timeout: float = 30.0, wait: bool = True,
            rate: float | None = None,
            progress: Callable[[str, int, int], None] | None = None,
            poll: float = POLL) -> ReparseResult:
    """Start the re-parse on every live node (each at most ``rate`` lines a second, if
    given); with ``wait``, follow each until it ends (``progress`` gets node, hours done,
    hours in all)."""
    cluster = discover(servers)
    require_nodes(cluster, servers)
    out = ReparseResult(servers_down=dict(cluster.servers_down))
    args: dict[str, Any] = {"format": fmt, "host": host, "since": since, "until": until,
                            "rate": rate}
    runs = {n.node_id: secrets.token_hex(8) for n in cluster.nodes}
    pending = list(cluster.nodes)
    pause = threading.Event()
    client = Client(servers, timeout=timeout)
    try:
        while pending:
            still = []
            for node in pending:
                try:
                    answer = ask(client, node, wire.MapRequest(
                        "reparse", {**args, "run": runs[node.node_id]}), secret, timeout)
                except (LogmrError, GearmanError) as exc:
                    out.failed[node.node_id] = str(exc)
                    continue
                # a node already re-parsing with these options is followed in that run
                runs[node.node_id] = str(answer.get("run") or runs[node.node_id])
                out.nodes[node.node_id] = answer
                if progress is not None:
                    progress(node.node_id, int(answer.get("hours_done") or 0),
                             int(answer.get("hours_total") or 0))
                if answer.get("state") == "running" and wait:
                    still.append(node)
                elif answer.get("state") not in ("running", "done"):
                    out.failed[node.node_id] = str(answer.get("error") or answer.get("state"))
            pending = still
            if pending:
                pause.wait(poll)
    finally:
        client.close()
    return out
