"""``logmr reparse``: derive the columns of stored lines again, with a better format."""

from __future__ import annotations

import json
import sys

import click

from logmr.cli.options import log_format_option, secret_option, servers_option, time_range_options
from logmr.client.reparse import ReparseResult, reparse
from logmr.gearman.address import Server


@click.command("reparse")
@servers_option
@secret_option
@log_format_option("the stored lines", "--format", "--log-format")
@click.option("--host", "source_host", metavar="HOST",
              help="Only lines shipped from this host (as `logmr status` lists them).")
@time_range_options
@click.option("--rate", type=click.FloatRange(min=1), metavar="LINES",
              help="Lines a second each node re-parses at most (default: as fast as it can; "
                   "ingest and queries go on meanwhile either way).")
@click.option("--no-wait", is_flag=True,
              help="Start the re-parse and return: the nodes go on by themselves.")
@click.option("--json", "as_json", is_flag=True, help="Print each node's answer as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def command(servers: list[Server], secret: bytes | None, log_format: str,
            source_host: str | None, since: int | None, until: int | None,
            rate: float | None, no_wait: bool, as_json: bool, quiet: bool) -> int:
    """Read the lines the nodes hold again, with a better log format.

    The columns of stored lines (client, URL, status, agent...) are derived again from
    their raw bytes, which never change: lines shipped with a wrong --log-format lose
    nothing. Every node re-parses what it holds, copies included, one hour's segment at a
    time, each replaced whole; queries stay exact meanwhile. A node stopped midway goes on
    at its next start; running the same command again follows it, or resumes one that
    failed. Records holding lines in --since/--until are re-parsed whole.

    \b
    logmr reparse                          # the format found for each batch's lines
    logmr reparse --format combined --host web1
    logmr reparse --format nginx_main --since 2d
    """
    from logmr.cli.render import NodeProgress

    bar = None if quiet or as_json or no_wait or not sys.stderr.isatty() else NodeProgress()
    try:
        result = reparse(servers, log_format, source_host, since, until, secret=secret,
                         wait=not no_wait, rate=rate,
                         progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        sys.stdout.write(json.dumps({"nodes": result.nodes, "failed": result.failed},
                                    indent=2) + "\n")
    else:
        _print(result, no_wait)
    for name, reason in result.failed.items():
        sys.stderr.write(f"logmr: node {name} did not finish the re-parse: {reason}; run "
                         "the same command again to resume it\n")
    for server, reason in result.servers_down.items():
        sys.stderr.write(f"logmr: job server {server} did not answer ({reason}): nodes "
                         "only it knows were not asked\n")
    return 2 if result.failed or result.servers_down else 0


def _print(result: ReparseResult, started_only: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Re-parse" + (" (started)" if started_only else ""))
    for col in ("node", "state", "hours", "records re-parsed", "lines", "unparsed before",
                "after"):
        table.add_column(col, justify="left" if col in ("node", "state") else "right")
    for node, a in sorted(result.nodes.items()):
        table.add_row(node, str(a.get("state")), f"{a.get('hours_done', 0)}/"
                      f"{a.get('hours_total', 0)}",
                      f"{a.get('changed', 0):,} of {a.get('records', 0):,}",
                      f"{a.get('lines', 0):,}", f"{a.get('unparsed_before', 0):,}",
                      f"{a.get('unparsed_after', 0):,}")
    Console().print(table)
