"""``logmr status``: job servers, live nodes, queue depths, what each node holds."""

from __future__ import annotations

import json
import sys
import time

import click

from logmr.cli.options import secret_option, servers_option
from logmr.client.status import ClusterStatus, cluster_status
from logmr.gearman.address import Server
from logmr.timeutil import format_epoch


@click.command("status")
@servers_option
@secret_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
def command(servers: list[Server], secret: bytes | None, fmt: str) -> int:
    """Show job servers, live storage nodes, queue depths and what each node holds.

    \b
    logmr status
    logmr status --servers gm1:4730,gm2:4730 --format json
    """
    status = cluster_status(servers, secret=secret)
    if fmt == "json":
        sys.stdout.write(json.dumps(_as_dict(status), indent=2) + "\n")
    else:
        _print_table(status)
    for name, reason in status.failed.items():
        sys.stderr.write(f"logmr: node {name} did not answer: {reason}\n")
    return 0 if not status.failed and all(v == "up" for v in status.servers.values()) else 2


def _as_dict(status: ClusterStatus) -> dict[str, object]:
    return {
        "servers": status.servers,
        "queues": {server: [{"function": q.name, "queued": q.total, "running": q.running,
                             "workers": q.workers} for q in queues]
                   for server, queues in status.queues.items()},
        "nodes": status.nodes,
        "failed": status.failed,
        "replication": status.replication,
        "sources": status.sources,
    }


def _print_table(status: ClusterStatus) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 140))
    servers = Table(title="Job servers")
    for col in ("server", "state", "function", "queued", "running", "workers"):
        servers.add_column(col, justify="right" if col in ("queued", "running", "workers")
                           else "left")
    for server, state in status.servers.items():
        queues = status.queues.get(server, [])
        if not queues:
            servers.add_row(server, state, "", "", "", "")
        for i, q in enumerate(queues):
            servers.add_row(server if i == 0 else "", state if i == 0 else "", q.name,
                            str(q.total), str(q.running), str(q.workers))
    console.print(servers)
    nodes = Table(title="Storage nodes")
    right = ("lines", "unparsed", "raw MB", "disk MB", "free MB", "lines/s")
    for col in ("node", "lines", "unparsed", "raw MB", "disk MB", "free MB", "first", "last",
                "lines/s", "behind", "batches"):
        nodes.add_column(col, justify="right" if col in right else "left")
    for node_id, s in status.nodes.items():
        free = s.get("disk_free_bytes")
        nodes.add_row(node_id, f"{s['lines']:,}", f"{s['unparsed']:,}",
                      f"{s['raw_bytes'] / 1e6:.1f}", f"{s['disk_bytes'] / 1e6:.1f}",
                      "-" if free is None else f"{free / 1e6:,.0f}",
                      _short_time(s["first"]), _short_time(s["last"]),
                      f"{s.get('ingest_lines_per_s', 0):,.0f}", _behind(s["last"]),
                      _taking(s))
    for node_id, reason in status.failed.items():
        nodes.add_row(node_id, "", "", "", "", "", f"did not answer: {reason}", "", "", "", "")
    if not status.nodes and not status.failed:
        nodes.add_row("(none: start one with 'logmr worker --data-dir DIR')", "", "", "", "",
                      "", "", "", "", "", "")
    console.print(nodes)
    for node_id, s in status.nodes.items():
        for problem in s.get("problems", []):
            console.print(f"[bold red]{node_id}:[/] {problem}", markup=True, highlight=False)
        if s.get("refusing"):
            console.print(f"[bold red]{node_id}:[/] not taking batches: {s['refusing']}",
                          markup=True, highlight=False)
    sources = status.sources
    if sources:
        table = Table(title="Sources")
        for col in ("host", "lines", "unparsed", "read as", "suggested"):
            table.add_column(col, justify="right" if col in ("lines", "unparsed") else "left")
        for host, s in sources.items():
            fmt = s["format"] or "-"
            table.add_row(host, f"{s['lines']:,}", f"{100 * s['unparsed_share']:.1f} %",
                          fmt if len(fmt) <= 40 else fmt[:37] + "...",
                          f"--log-format {s['suggested']}" if s["suggested"] else "")
        console.print(table)
        for host, s in sources.items():
            if s["suggested"]:
                console.print(f"{host}: {100 * s['unparsed_share']:.0f} % of its lines do not "
                              f"parse; they look like {s['suggested']}: ship them with "
                              f"--log-format {s['suggested']} (or auto), and read those "
                              f"stored again with `logmr reparse --host {host} --format "
                              f"{s['suggested']}`", highlight=False)
    for node_id, s in status.nodes.items():
        r = s.get("reparse") or {}
        if r.get("state") in ("running", "failed"):
            console.print(f"re-parse on {node_id}: {r['state']}, {r['hours_done']:,} of "
                          f"{r['hours_total']:,} hours, {r['changed']:,} records re-parsed"
                          + (f" ({r['error']})" if r.get("error") else ""), highlight=False)
    r = status.replication
    if r:
        console.print(f"Replication: {r['replicas']} copies asked; {r['lines']:,} lines "
                      f"stored ({r['copies']:,} with copies); under-replicated: "
                      f"{r['under_replicated_batches']:,} batches, "
                      f"{r['under_replicated_lines']:,} lines; without a live copy: "
                      f"{r['unavailable_lines']:,} lines", highlight=False)
        for node_id, s in status.nodes.items():
            repair = s.get("repair") or {}
            if repair.get("copies_queued") or repair.get("to_repair"):
                console.print(f"  repair on {node_id}: {repair['copies_queued']:,} copies "
                              f"queued ({repair['bytes_queued'] / 1e6:,.1f} MB), "
                              f"{repair['to_repair']:,} records still to copy",
                              highlight=False)


def _taking(stats: dict[str, object]) -> str:
    """"taking" or "not taking batches: disk full" (the reason's first words)."""
    reason = stats.get("refusing")
    if not reason:
        return "taking"
    return f"not taking batches: {str(reason).split(':', 1)[0]}"


def _short_time(epoch: int | None) -> str:
    return "-" if epoch is None else format_epoch(epoch)[:16].replace("T", " ")


LIVE = 2 * 86400  # data older than this is not a feed falling behind: its date is shown


def _behind(last: int | None) -> str:
    """How long ago the newest stored line was logged: the lag of a live feed, or for
    old data (logs loaded after the fact) the date of its last line."""
    if last is None:
        return "-"
    seconds = max(0, int(time.time()) - last)
    if seconds > LIVE:
        return f"old: {format_epoch(last)[:10]}"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
