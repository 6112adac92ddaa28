"""``logmr ship``: read access-log lines, batch them, hand them to the job servers."""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

import click

from logmr import heap
from logmr.cli.options import log_format_option, secret_option, servers_option
from logmr.gearman.address import Server
from logmr.ship.batcher import BatchLimits
from logmr.ship.shipper import ShipOptions, Shipper
from logmr.ship.spool import default_spool_dir


@click.command("ship")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@servers_option
@secret_option
@log_format_option("the lines", "--format", "--log-format")
@click.option("--host", default=socket.gethostname, show_default="this host's name",
              help="Source host name stored with every line.")
@click.option("--batch-lines", default=4000, show_default=True, type=click.IntRange(1),
              help="Most lines in one batch.")
@click.option("--batch-bytes", default=1 << 20, show_default=True,
              type=click.IntRange(1024), help="Most bytes in one batch (a longer line is "
              "sent alone).")
@click.option("--batch-delay", default=0.5, show_default=True, type=click.FloatRange(0.01),
              help="Seconds a line may wait for its batch to fill.")
@click.option("--spool-dir", envvar="LOGMR_SPOOL_DIR", default=default_spool_dir,
              show_default="/var/spool/logmr as root, else ~/.local/state/logmr/spool",
              type=click.Path(file_okay=False),
              help="Where input waits on disk until a job server has queued it "
                   "(env LOGMR_SPOOL_DIR).")
@click.option("--drain-timeout", default=30.0, show_default=True, type=click.FloatRange(0),
              help="After end of input, seconds to keep trying to send what the spool holds; "
                   "what is left then stays in the spool for the next ship.")
@click.option("--drain", is_flag=True,
              help="Read nothing: send what ships that are gone left in the spool, then exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--retry-for", default=60.0, show_default=True, type=click.FloatRange(0),
              help="For FILES: seconds to keep trying when no job server accepts a batch.")
def command(files: tuple[str, ...], servers: list[Server], secret: bytes | None, log_format: str,
            host: str,
            batch_lines: int, batch_bytes: int, batch_delay: float, spool_dir: str,
            drain_timeout: float, drain: bool, retry_for: float, quiet: bool) -> None:
    """Ship access-log lines from FILES (default: stdin) to the storage nodes.

    \b
    In Apache:   CustomLog "|/usr/local/bin/logmr ship" combined
    From files:  logmr ship /var/log/apache2/access.log
    From a pipe: tail -F access.log | logmr ship --host web1

    Lines are kept byte for byte. Input from a pipe goes to the spool on disk first, so
    a ship killed with -9 loses nothing: the next ship sends what it left. On SIGTERM ship
    reads on until end of input, so a graceful restart of Apache loses nothing. Exits 0
    once every batch is queued by a job server.
    """
    signal.signal(signal.SIGTERM, _keep_reading)
    heap.tune()  # batches of a megabyte: keep their blocks for reuse
    options = ShipOptions(servers=servers, fmt=log_format, host=host,
                          limits=BatchLimits(batch_lines, batch_bytes, batch_delay),
                          retry_for=retry_for, spool_dir=spool_dir,
                          drain_timeout=drain_timeout, secret=secret)
    # a progress bar for FILES on a terminal (rich itself honours NO_COLOR for colours)
    bar = None if quiet or not files or not sys.stderr.isatty() else _Bar()
    shipper = Shipper(options, progress=bar.update if bar else None)
    try:
        if drain:
            if files:
                raise click.UsageError("--drain reads no input: give no FILES")
            shipper.drain()
        else:
            shipper.ship_paths(files or ("-",))
    finally:
        shipper.close()
        if bar is not None:
            bar.close()


def _keep_reading(signum: int, frame: Any) -> None:
    """SIGTERM: Apache's children may still be writing; read on until end-of-file."""


class _Bar:
    """A rich progress bar per file shipped, on stderr (a terminal only)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 DownloadColumn(), TransferSpeedColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True))
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def update(self, name: str, done: int, total: int) -> None:
        if name not in self.tasks:
            label = os.path.basename(name) or name
            self.tasks[name] = self.progress.add_task(f"ship {label[:30]}", total=total)
        self.progress.update(self.tasks[name], completed=done)

    def close(self) -> None:
        self.progress.stop()
