"""A user job (:mod:`logmr.jobs`) across a cluster: every live node maps and combines its
own lines, each record read once by one of its holders; the pairs are reduced here."""

from __future__ import annotations

from typing import Any

from logmr import wire
from logmr.client.plan import Reader, coverage_of, discover, require_nodes
from logmr.gearman.client import Client
from logmr.jobs import Job, Pair, reduce_pairs


def run_on_cluster(servers: list[Any], job: Job, since: int | None = None,
                   until: int | None = None, secret: bytes | None = None,
                   timeout: float | None = 300.0) -> tuple[list[Pair], Any]:
    """Map and combine on every live node (each record once, by one of its holders),
    reduce here; also the coverage (:class:`logmr.client.plan.Coverage`)."""

    cluster = discover(servers)
    require_nodes(cluster, servers)
    client = Client(servers)
    try:
        reader = Reader(client, cluster, wire.MapRequest("run", {
            "job": job.identity(), "since": since, "until": until}), since, until, timeout,
            secret)
        results = reader.results()
    finally:
        client.close()
    pairs = [pair for result in results for pair in result.get("pairs", [])]
    return reduce_pairs(job, pairs), coverage_of(reader)
