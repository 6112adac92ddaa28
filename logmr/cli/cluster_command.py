"""``logmr cluster``: a local cluster in one command."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import click

from logmr.client.cluster import default_data_dir, down, up


@click.group("cluster")
def command() -> None:
    """Start or stop a local cluster: gearmand (sqlite queue, loopback) and storage nodes.

    \b
    logmr cluster up --nodes 2            # in the foreground; Ctrl-C stops everything
    logmr cluster up --background         # returns once it is up
    logmr cluster down
    """


@command.command("up")
@click.option("--nodes", default=2, show_default=True, type=click.IntRange(1, 64),
              help="How many storage nodes.")
@click.option("--data-dir", default=default_data_dir, show_default="~/.local/share/logmr/cluster",
              type=click.Path(file_okay=False), help="Where the queue, nodes and logs live.")
@click.option("--port", default=4730, show_default=True, type=click.IntRange(1, 65535),
              help="gearmand's port on 127.0.0.1.")
@click.option("--background", is_flag=True, help="Return once the cluster is up.")
def up_command(nodes: int, data_dir: str, port: int, background: bool) -> None:
    """Start gearmand and NODES storage nodes on 127.0.0.1."""
    state = up(data_dir, nodes, port, detach=background)
    sys.stderr.write(f"logmr: cluster up: job server 127.0.0.1:{port}, {nodes} storage nodes, "
                     f"data in {data_dir}\n")
    if background:
        where = "" if data_dir == default_data_dir() else f" --data-dir {data_dir}"
        sys.stderr.write(f"logmr: stop it with 'logmr cluster down{where}'\n")
        return
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sys.stderr.write("logmr: Ctrl-C stops it\n")
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        down(data_dir)
        sys.stderr.write(f"logmr: cluster stopped ({len(state.pids)} processes)\n")


@command.command("down")
@click.option("--data-dir", default=default_data_dir, show_default="~/.local/share/logmr/cluster",
              type=click.Path(file_okay=False), help="The data dir 'cluster up' used.")
def down_command(data_dir: str) -> None:
    """Stop a cluster started with 'logmr cluster up --background'."""
    state = down(data_dir)
    if state is None:
        raise click.ClickException(f"no cluster runs from {data_dir}")
    sys.stderr.write(f"logmr: cluster stopped ({len(state.pids)} processes)\n")
