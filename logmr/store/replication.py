"""Placing copies: every batch a node stores goes to ``replicas - 1`` peers as well.

The node that takes a batch from ``logmr.store`` stores and fsyncs it, then submits one
background job per copy to a peer's own function ``logmr.replica.<peer>``, and only then
completes the batch's job. A node killed in between has the batch redelivered: it finds
it already stored and submits the copies again, which the peers drop if they hold them
(the job's unique id and the node's dedupe record both say so). Peers are chosen by
rendezvous hashing over the nodes live now, so a batch's copies spread evenly and the
choice moves only for the batches of a node that comes or goes. With fewer live peers
than asked, the batch is stored and left under-replicated; repair adds the copies later.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Sequence

from logmr import wire
from logmr.gearman import admin
from logmr.gearman.client import Client
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError

log = logging.getLogger(__name__)

DEFAULT_REPLICAS = 2
PEERS_TTL = 2.0  # seconds a view of the live peers is reused


def live_nodes(servers: Sequence[Server], prefix: str, timeout: float = 2.0) -> set[str]:
    """Node ids with a worker on a ``prefix<node-id>`` function on any job server."""
    found: set[str] = set()
    for server in servers:
        try:
            functions = admin.status(server, timeout=timeout)
        except GearmanError:
            continue
        found.update(f.name[len(prefix):] for f in functions
                     if f.name.startswith(prefix) and f.workers > 0)
    return found


class Replicator:
    """Sends copies of the batches one node stores to its peers."""

    def __init__(self, node_id: str, servers: Sequence[Server], replicas: int,
                 secret: bytes | None = None) -> None:
        self.node_id = node_id
        self.servers = list(servers)
        self.replicas = replicas
        self.secret = secret
        self._client = Client(self.servers)
        self._peers: tuple[float, list[str]] = (float("-inf"), [])
        self._warned_at = float("-inf")

    def peers(self) -> list[str]:
        """Live peers that take copies now, as :meth:`run` last saw them (asked here only
        before the first look: a job server that does not answer must not stall ingest)."""
        when, peers = self._peers
        if when == float("-inf"):
            self._refresh()
            peers = self._peers[1]
        return peers

    def _refresh(self) -> None:
        peers = sorted(live_nodes(self.servers, wire.REPLICA_PREFIX) - {self.node_id})
        self._peers = (time.monotonic(), peers)

    def run(self, stop: threading.Event) -> None:
        """Look at the live peers every PEERS_TTL seconds until ``stop`` is set."""
        while not stop.wait(PEERS_TTL):
            try:
                self._refresh()
            except Exception:  # noqa: BLE001 - the view stays as it was; try again
                log.exception("cannot list the live peers")

    def targets(self, batch_id: str) -> list[str]:
        """The peers a batch's copies go to (never this node)."""
        return wire.rendezvous(batch_id, self.peers())[:max(0, self.replicas - 1)]

    def replicate(self, batch_id: str, records: list[bytes]) -> int:
        """Submit the copies of a stored batch; returns how many were queued. Raises
        ServerUnavailable when no job server takes them (the batch is then redone)."""
        if self.replicas <= 1 or not records:
            return 0
        targets = self.targets(batch_id)
        if targets:
            payload = wire.sign(wire.pack_replica(wire.Replica(batch_id, self.node_id,
                                                               records)), self.secret)
            for peer in targets:
                self._client.submit_background(wire.replica_function(peer), payload,
                                               copy_unique(batch_id, peer))
        if len(targets) < self.replicas - 1 and time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            log.warning("only %d live peers for %d copies: batches are stored with fewer "
                        "copies for now, and repaired when nodes join", len(targets),
                        self.replicas - 1)
        return len(targets)

    def close(self) -> None:
        """Close the job server connections."""
        self._client.close()


def copy_unique(batch_id: str, peer: str) -> str:
    """The unique id of one copy's job: the same for every resubmission of that copy, so
    a job server holding it already coalesces the two."""
    digest = hashlib.blake2b(f"{batch_id}\0{peer}".encode(), digest_size=16).hexdigest()
    return f"copy:{digest}"
