"""Repair: every batch back to ``replicas`` copies, in the background, throttled.

Each node, every ``every`` seconds, lists the records of every live node (the ``records``
map job) and keeps the last listing of each node it has seen: the catalog. The catalog
outlives the nodes in it, so the cluster still knows what a lost node held: a query says
how many lines have no live copy, and status counts them.

A record with fewer live copies than asked, seen so in two rounds running (a copy still
in the queue is not a missing one), is copied by the first of its live holders by
rendezvous hashing (so one node does it, and the work spreads), to the peers rendezvous
hashing picks among the live nodes that do not hold it. Copies go as low-priority
background jobs, so batches from ship are handed out first, at no more than ``rate``
bytes a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from logmr import private, wire
from logmr.errors import LogmrError
from logmr.gearman.client import Client, Priority
from logmr.gearman.connection import Server
from logmr.gearman.errors import GearmanError
from logmr.store.node import NodeStore
from logmr.store.replication import copy_unique, live_nodes
from logmr.timeutil import overlaps
from logmr.wire import rendezvous

log = logging.getLogger(__name__)

DEFAULT_EVERY = 30.0
DEFAULT_RATE = 16 << 20  # bytes of copies a second
CATALOG = "catalog.msgpack"
PATIENCE = 3  # rounds a copy has to arrive before another peer is sent one
Key = tuple[str, int]


@dataclass
class Listing:
    """What one node held when it last answered: record -> [lines, t0, t1]."""

    seen: float
    records: dict[Key, tuple[int, int, int]] = field(default_factory=dict)


def listing_of(store: NodeStore) -> dict[Key, tuple[int, int, int]]:
    """This node's own records, as a peer would list them."""
    return {(r.meta.batch_id, r.meta.part): (r.meta.lines, r.meta.t0, r.meta.t1)
            for _, records in store.records() for r in records}


class Catalog:
    """The last listing of every node seen, kept in the data dir across restarts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.nodes: dict[str, Listing] = {}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
            for node, (seen, rows) in data.items():
                self.nodes[node] = Listing(float(seen), {(str(b), int(p)): (int(n), int(t0),
                                                                          int(t1))
                                                         for b, p, n, t0, t1 in rows})
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, msgpack.UnpackException) as exc:
            log.warning("ignoring catalog %s (%s): it is rebuilt from the live nodes",
                        self.path, exc)
            self.nodes = {}

    def update(self, listings: dict[str, Listing], cutoff: float | None = None) -> None:
        """Take the newest listings (nodes not in them keep their last one), forget
        records wholly older than ``cutoff`` (retention deleted them), and save if that
        changed anything."""
        with self._lock:
            before = {n: set(seen.records) for n, seen in self.nodes.items()}
            self.nodes.update(listings)
            if cutoff is not None:
                for seen in self.nodes.values():
                    seen.records = {k: v for k, v in seen.records.items() if v[2] >= cutoff}
            if {n: set(seen.records) for n, seen in self.nodes.items()} == before:
                return
            data = {node: [seen.seen, [[b, p, *v] for (b, p), v in seen.records.items()]]
                    for node, seen in self.nodes.items()}
        tmp = f"{self.path}.tmp"
        try:
            with os.fdopen(private.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                           "wb") as f:
                f.write(msgpack.packb(data, use_bin_type=True))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk: the catalog in memory still serves
            log.warning("cannot save the catalog %s: %s", self.path, exc.strerror)
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def elsewhere(self, live: Sequence[str], since: int | None, until: int | None
                  ) -> dict[str, list[list[Any]]]:
        """What the nodes not in ``live`` held in [since, until) when last seen."""
        skip = set(live)
        with self._lock:
            return {node: [[b, p, n] for (b, p), (n, t0, t1) in seen.records.items()
                           if overlaps(t0, t1, since, until)]
                    for node, seen in self.nodes.items() if node not in skip}


class Repairer:
    """The repair loop of one node."""

    def __init__(self, store: NodeStore, servers: Sequence[Server], replicas: int,
                 secret: bytes | None = None, every: float = DEFAULT_EVERY,
                 rate: float = DEFAULT_RATE, timeout: float = 30.0) -> None:
        self.store = store
        self.servers = list(servers)
        self.replicas = replicas
        self.secret = secret
        self.every = every
        self.rate = rate
        self.timeout = timeout
        self.catalog = Catalog(os.path.join(store.data_dir, CATALOG))
        self._short: set[Key] = set()  # under-replicated in the last round
        # short records -> the peers a copy went to (which did not end up holding it), and
        # the round of the last one
        self._sent: dict[Key, tuple[set[str], int]] = {}
        self.rounds = 0
        self.copies_queued = 0
        self.bytes_queued = 0
        self.to_repair = 0  # records this node is to copy, as of the last round

    def run(self, stop: threading.Event) -> None:
        """Repair rounds until ``stop`` is set."""
        while not stop.wait(self.every):
            try:
                self.round(stop)
            except (LogmrError, GearmanError) as exc:
                log.warning("repair round failed: %s; trying again in %g s", exc, self.every)
            except Exception:  # noqa: BLE001 - a bad round must not end repair for good
                log.exception("repair round failed; trying again in %g s", self.every)

    def round(self, stop: threading.Event | None = None) -> int:
        """One round: list, catalog, copy what is short. Returns the copies queued."""
        me = self.store.node_id
        live = live_nodes(self.servers, wire.MAP_PREFIX)
        listings = {me: Listing(time.time(), listing_of(self.store))}
        client = Client(self.servers, timeout=self.timeout)
        try:
            for peer in sorted(live - {me}):
                if stop is not None and stop.is_set():
                    return 0  # the node is stopping: leave the catalog as it was
                listed = self._list(client, peer)
                if listed is not None:
                    listings[peer] = listed
            if stop is not None and stop.is_set():
                return 0
            window = self.store.retain_window
            cutoff = None if window is None else time.time() - window
            self.catalog.update(listings, cutoff)
            self.rounds += 1
            if self.replicas <= 1:
                return 0
            # a live peer that did not answer in time (busy with a long query) still holds
            # what it held when last listed: it is no reason to make more copies
            silent = {peer: self.catalog.nodes[peer] for peer in live - set(listings)
                      if peer in self.catalog.nodes}
            return self._copy(client, listings, silent, stop)
        finally:
            client.close()

    def _list(self, client: Client, peer: str) -> Listing | None:
        request = wire.sign(wire.pack_request(wire.MapRequest("records", {})), self.secret)
        unique = secrets.token_hex(16)
        try:
            with client.submit(wire.map_function(peer), request, unique=unique,
                               timeout=self.timeout) as job:
                for _ in job:
                    pass
                rows = wire.unpack_result(wire.verify(
                    job.result, self.secret, f"listing from node {peer}",
                    unique.encode())).get("records", [])
        except (LogmrError, GearmanError) as exc:
            log.info("repair: node %s did not list its records: %s", peer, exc)
            return None
        return Listing(time.time(), {(str(r[0]), int(r[1])): (int(r[2]), int(r[3]), int(r[4]))
                                     for r in rows if len(r) >= 5})

    def _copy(self, client: Client, listings: dict[str, Listing], silent: dict[str, Listing],
              stop: threading.Event | None) -> int:
        me = self.store.node_id
        holders: dict[Key, list[str]] = {}
        for node, listing in listings.items():
            for key in listing.records:
                holders.setdefault(key, []).append(node)
        for node, listing in silent.items():
            for key in listing.records:
                if key in holders:
                    holders[key].append(node)
        # a target must take copies and have answered this round: a node cut off from the
        # network still looks registered to gearmand, which would hold its copies for hours
        takers = live_nodes(self.servers, wire.REPLICA_PREFIX) & set(listings)
        window = self.store.retain_window
        cutoff = None if window is None else time.time() - window
        short = {key for key, nodes in holders.items()
                 if len(nodes) < self.replicas and len(takers - set(nodes)) > 0
                 and (cutoff is None or _newest(key, nodes, listings) >= cutoff)}
        due = short & self._short  # short twice running: not a copy still on its way
        self._short = short
        mine: dict[tuple[str, str], list[Key]] = {}  # (target, batch) -> records
        for key in sorted(due):
            nodes = holders[key]
            answering = [n for n in nodes if n in listings]
            if rendezvous(f"{key[0]}/{key[1]}", answering)[0] != me:
                continue  # another holder copies it
            want = self.replicas - len(nodes)
            tried, when = self._sent.get(key, (set(), -PATIENCE))
            if self.rounds - when < PATIENCE:
                continue  # a copy sent lately may still be in the queue
            ranked = [t for t in rendezvous(key[0], takers) if t not in nodes]
            for target in ([t for t in ranked if t not in tried] or ranked)[:want]:
                mine.setdefault((target, key[0]), []).append(key)
        self._sent = {k: v for k, v in self._sent.items() if k in short}
        self.to_repair = sum(len(keys) for keys in mine.values())
        queued = 0
        for (target, batch_id), keys in sorted(mine.items()):
            if stop is not None and stop.is_set():
                break
            records = self.store.batch_records(batch_id, {p for _, p in keys})
            if not records:
                continue
            payload = wire.sign(wire.pack_replica(wire.Replica(batch_id, me, records)),
                                self.secret)
            started = time.monotonic()
            # a unique id of this round's: never merged into a copy stuck with a lost peer
            client.submit_background(wire.replica_function(target), payload,
                                     copy_unique(f"{batch_id}\0{self.rounds}", target),
                                     priority=Priority.LOW)
            for key in keys:
                self._sent[key] = (self._sent.get(key, (set(), 0))[0] | {target}, self.rounds)
            queued += 1
            self.copies_queued += 1
            self.bytes_queued += len(payload)
            self.to_repair -= len(keys)
            pause = len(payload) / self.rate - (time.monotonic() - started)
            if pause > 0:  # the throttle
                if stop is not None:
                    stop.wait(pause)
                else:
                    time.sleep(pause)
        if queued:
            log.info("repair: queued %d copies for under-replicated batches", queued)
        return queued

    def stats(self) -> dict[str, Any]:
        """Repair progress, for status."""
        return {"rounds": self.rounds, "copies_queued": self.copies_queued,
                "bytes_queued": self.bytes_queued, "to_repair": self.to_repair}


def _newest(key: Key, nodes: list[str], listings: dict[str, Listing]) -> int:
    """The newest line time of a record, from a node that listed it this round."""
    return next(listings[n].records[key][2] for n in nodes if n in listings)
