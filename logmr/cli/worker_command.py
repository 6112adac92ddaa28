"""``logmr worker``: a storage node."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from typing import Any

import click

from logmr import heap
from logmr.cli.options import log_format_option, secret_option, servers_option
from logmr.errors import ConfigError
from logmr.gearman.address import Server
from logmr.jobs import load_jobs_dir
from logmr.mapfn.parse import check_format
from logmr.store import mapjobs
from logmr.store.disk import DEFAULT_MIN_FREE, parse_min_free
from logmr.store.node import DEFAULT_CACHE_MB, NodeStore
from logmr.store.repair import DEFAULT_EVERY, DEFAULT_RATE
from logmr.store.replication import DEFAULT_REPLICAS
from logmr.store.runner import MapRunner
from logmr.store.service import NodeService
from logmr.timeutil import parse_span


def _min_free(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_min_free(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command("worker")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False),
              help="Where this node keeps its segments (created if missing).")
@click.option("--node-id", default=None, metavar="ID",
              help="Name of this node (default: saved in DATA_DIR, first made from the host "
                   "name).")
@servers_option
@secret_option
@log_format_option("lines arriving raw on the 'logger' function (not offered when a "
                   "secret is set)")
@click.option("--cache-mb", default=DEFAULT_CACHE_MB, show_default=True, type=click.IntRange(0),
              help="Memory for decoded lines and report frames, in MiB: with the ~200 MiB "
                   "the node needs besides, its bound on memory.")
@click.option("--map-budget", default=60.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a query may run on this node before it is stopped.")
@click.option("--map-memory-mb", default=2048, show_default=True, type=click.IntRange(64),
              help="Memory a query may use on this node, in MiB.")
@click.option("--jobs-dir", envvar="LOGMR_JOBS_DIR", type=click.Path(file_okay=False),
              help="Load the map/reduce jobs in this directory at start, for 'logmr run' "
                   "(env LOGMR_JOBS_DIR).")
@click.option("--retain", metavar="SPAN", default=None,
              help="Delete whole segments older than SPAN (30d, 12h), checked every 10 "
                   "minutes; never a segment still being written.")
@click.option("--replicas", envvar="LOGMR_REPLICAS", default=DEFAULT_REPLICAS,
              show_default=True, type=click.IntRange(1, 16),
              help="Copies of every batch, each on a different node: this node stores a "
                   "batch, queues its copies for peers, then acknowledges it (env "
                   "LOGMR_REPLICAS).")
@click.option("--min-free", default=DEFAULT_MIN_FREE, show_default=True, metavar="SIZE[,N%]",
              callback=_min_free,
              help="Take no batches while the data dir's disk has less free: a size (500M, "
                   "2G), a share (5%) or both (the smaller applies). They wait in the "
                   "queue or go to other nodes; queries are still served.")
@click.option("--repair-every", default=DEFAULT_EVERY, show_default=True,
              type=click.FloatRange(0.1), metavar="SECONDS",
              help="How often the node lists its peers' batches and copies those with "
                   "fewer than --replicas live copies (after two rounds running).")
@click.option("--repair-mb-s", default=DEFAULT_RATE >> 20, show_default=True,
              type=click.FloatRange(0.01), metavar="MB/S",
              help="At most this many MiB a second of repair copies, so that ingest and "
                   "queries keep their speed.")
@click.option("--compact-after", default=30.0, show_default=True, type=click.FloatRange(0),
              metavar="SECONDS",
              help="Rewrite a segment as columns (Parquet, each line rebuilt from them, about "
                   "a fifth of the bytes) once it has not been written to for this long. "
                   "Ingest writes the faster encoding.")
@click.option("-v", "--verbose", is_flag=True, help="Log every batch and query.")
def command(data_dir: str, node_id: str | None, servers: list[Server], secret: bytes | None,
            log_format: str, cache_mb: int, map_budget: float, map_memory_mb: int,
            jobs_dir: str | None, retain: str | None, replicas: int, min_free: str,
            repair_every: float, repair_mb_s: float, compact_after: float, verbose: bool
            ) -> None:
    """Run a storage node: store shipped batches, answer map jobs over its own data.

    \b
    logmr worker --data-dir /var/lib/logmr
    logmr worker --data-dir /srv/logmr --servers gm1:4730,gm2:4730 --node-id store1

    With --secret-file, only batches and queries signed with the same secret are taken.
    Stops cleanly on SIGTERM or Ctrl-C (the job at hand is finished first).
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, force=True,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from logmr.client.rounds import serve_reduce

    heap.tune()  # batches of a megabyte: keep their blocks for reuse
    window = None if retain is None else parse_span(retain)  # bad input: said before start
    check_format(log_format)
    store = NodeStore(data_dir, node_id, cache_bytes=cache_mb << 20, min_free=min_free)
    store.retain_window = window
    store.compact_after = compact_after
    runner = MapRunner(budget=map_budget, memory_limit=map_memory_mb << 20,
                       preload=[mapjobs.__name__])
    jobs = load_jobs_dir(jobs_dir) if jobs_dir else {}
    service = NodeService(store, servers, log_format=log_format, host=socket.gethostname(),
                          secret=secret, runner=runner, jobs=jobs, replicas=replicas,
                          repair_every=repair_every, repair_rate=repair_mb_s * (1 << 20),
                          reduce=serve_reduce)
    def on_signal(signum: int, frame: Any) -> None:
        service.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.getLogger("logmr").info("node %s serving %s on %s", store.node_id, store.data_dir,
                                    ", ".join(str(s) for s in servers))
    service.start()
    try:
        while not service.wait(timeout=0.5):
            pass
    finally:
        service.close()
        store.close()
