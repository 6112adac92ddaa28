"""``logmr grep``: lines matching a pattern, from every node, in time order."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator

import click

from logmr.cli.options import log_format_option, secret_option, servers_option, time_range_options
from logmr.client.search import (
    GrepOutcome,
    GrepRequest,
    Match,
    follow,
    grep,
    grep_file_blocks,
    grep_files,
    in_file_order,
)
from logmr.gearman.address import Server
from logmr.mapfn.grep import GrepQuery
from logmr.timeutil import format_epoch


@click.command("grep")
@click.argument("pattern")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@servers_option
@secret_option
@time_range_options
@click.option("-i", "--ignore-case", is_flag=True, help="Match case-insensitively.")
@click.option("-F", "--fixed-strings", "fixed", is_flag=True,
              help="PATTERN is a plain string, not a regular expression.")
@click.option("-v", "--invert-match", "invert", is_flag=True,
              help="Select the lines that do not match.")
@click.option("-c", "--count", "count_only", is_flag=True,
              help="Print only the number of matching lines.")
@click.option("--limit", type=click.IntRange(0), default=None, metavar="N",
              help="Stop after the first N lines (in time order).")
@click.option("--timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds a node may stay silent before it is counted as missing.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: time, node, host, line.")
@log_format_option("FILES (file mode), for their times")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing matching lines as they arrive (Ctrl-C stops).")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True,
              help="Highlight matches: auto = on a terminal, unless NO_COLOR is set.")
def command(pattern: str, files: tuple[str, ...], log_format: str, servers: list[Server],
            secret: bytes | None, since: int | None, until: int | None, ignore_case: bool,
            fixed: bool, invert: bool, count_only: bool, limit: int | None, timeout: float,
            as_json: bool, color: str, follow: bool) -> int:
    """Print the stored lines matching PATTERN (a Python regular expression), from
    every storage node, merged into time order, exactly as they were logged; or the
    lines of FILES, with no cluster at all (FILE arguments always mean file mode).

    \b
    logmr grep 'GET /presentations'
    logmr grep -c ' 500 ' --since 1h
    logmr grep -i 'googlebot' --since 2015-05-17T10:00 --until 2015-05-17T11:00
    logmr grep -c 'wp-login' access.log access.log.1.gz

    Exit status: 0 if a line matched, 1 if none did, 2 on error. If a node cannot
    answer, it is named on stderr and the output is partial.
    """
    query = GrepQuery(pattern.encode("utf-8", "surrogateescape"), fixed=fixed,
                      ignore_case=ignore_case, invert=invert)
    request = GrepRequest(query, since=since, until=until, limit=limit, count_only=count_only,
                          timeout=timeout)
    if follow:
        if files or count_only or limit is not None:
            raise click.UsageError("--follow reads the cluster, without -c, --limit or FILES")
        return _follow(servers, request, secret, as_json, color)
    out = sys.stdout.buffer
    colored = _colored(color) and not invert
    if files and in_file_order(list(files), request) and not as_json and not colored:
        # no time needed: whole files searched in C, the lines written as they lie
        outcome, blocks = grep_file_blocks(list(files), request)
        for block in blocks:
            out.write(block)
        lines: Iterator[Match] = iter(())
    elif files:
        outcome, lines = grep_files(list(files), request, fmt=log_format)
    else:
        outcome, lines = grep(servers, request, secret=secret)
    if as_json:
        for item in lines:
            out.write(json.dumps({"time": format_epoch(item.time), "node": item.node,
                                  "host": item.host,
                                  "line": item.line.decode("utf-8", "backslashreplace")}
                                 ).encode() + b"\n")
    elif colored:
        rx = query.compile()
        for item in lines:
            out.write(rx.sub(_highlight, item.line) + b"\n")
    else:
        for item in lines:
            out.write(item.line + b"\n")
    if count_only:
        out.write(b"%d\n" % outcome.count)
    out.flush()
    if not files and _warn_missing(outcome):
        return 2 if outcome.count == 0 else 0
    return 0 if outcome.count else 1


def _warn_missing(outcome: GrepOutcome) -> bool:
    from logmr.cli.render import warn_missing  # the cluster's side only

    return warn_missing(outcome.servers_down, outcome.coverage, "results are")


def _highlight(m: re.Match[bytes]) -> bytes:
    return b"\x1b[1;31m" + m.group(0) + b"\x1b[0m" if m.group(0) else b""


def _colored(choice: str) -> bool:
    """GNU grep's --color, and the NO_COLOR convention (https://no-color.org)."""
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _follow(servers: list[Server], request: GrepRequest, secret: bytes | None, as_json: bool,
            color: str) -> int:
    out = sys.stdout.buffer
    rx = request.query.compile() if _colored(color) and not request.query.invert else None
    try:
        for item in follow(servers, request, secret=secret):
            if as_json:
                out.write(json.dumps({"time": format_epoch(item.time), "node": item.node,
                                      "host": item.host, "line": item.line.decode(
                                          "utf-8", "backslashreplace")}).encode() + b"\n")
            else:
                out.write((rx.sub(_highlight, item.line) if rx else item.line) + b"\n")
            out.flush()
    except KeyboardInterrupt:
        return 0
    return 0
