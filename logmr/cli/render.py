"""Render a report: rich tables on a terminal, JSON, CSV, or one self-contained HTML page."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import TYPE_CHECKING, Any

from logmr.cli.tables import TITLES, bar_chart, human_bytes, human_duration, rows_of, tables_of

if TYPE_CHECKING:
    from logmr.client.plan import Coverage


def render(data: dict[str, Any], fmt: str, output: str | None) -> None:
    """Write ``data`` in ``fmt`` to ``output`` (a path) or stdout."""
    if fmt == "json":
        text = json.dumps(data, indent=2) + "\n"
    elif fmt == "csv":
        text = to_csv(data)
    elif fmt == "html":
        from logmr.cli.html import to_html  # its page template, only when asked for

        text = to_html(data)
    else:
        text = ""
    if fmt == "table":
        _tables(data, output)
        return
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def to_csv(data: dict[str, Any]) -> str:
    """One CSV: a ``report`` column, then each report's own columns."""
    out = io.StringIO()
    for name, value in tables_of(data):
        rows = rows_of(name, value)
        if not rows:
            continue
        fields = ["report", *rows[0].keys()]
        writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({"report": name, **row})
    return out.getvalue()


def _tables(data: dict[str, Any], output: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    stream = open(output, "w", encoding="utf-8") if output else None  # noqa: SIM115
    console = Console(file=stream, width=None if stream is None else 120)
    try:
        for name, value in tables_of(data):
            rows = rows_of(name, value)
            buckets = value.get("duration_buckets") if isinstance(value, dict) else None
            if buckets:  # drawn as bars below the table, not as rows
                rows = [r for r in rows if not str(r.get("name")).startswith(
                    "duration_buckets.")]
            table = Table(title=TITLES.get(name, name), title_justify="left")
            if not rows:
                console.print(table)
                continue
            columns = [c for c in rows[0] if c != "visitors_exact"]
            for col in columns:
                numeric = isinstance(rows[0][col], int | float) and not isinstance(
                    rows[0][col], bool)
                table.add_column(col, justify="right" if numeric else "left",
                                 overflow="fold", max_width=70 if not numeric else None)
            for row in rows:
                table.add_row(*(_cell(row.get(c), c, row) for c in columns))
            console.print(table)
            if buckets:
                console.print("Visit durations", highlight=False)
                for line in bar_chart(buckets):
                    console.print("  " + line, highlight=False)
    finally:
        if stream is not None:
            stream.close()


RATES = {"bounce_rate"}  # shares of one, shown as percentages


def _cell(value: Any, column: str, row: dict[str, Any]) -> str:
    """A value as a terminal shows it (json and csv keep the exact numbers)."""
    if column == "visitors" and row.get("visitors_exact") is False:
        return f"~{value:,}"
    if column == "share":
        return f"{value:.2f}%"
    what = row.get("name") if column == "value" else column
    if isinstance(value, int | float) and not isinstance(value, bool):
        if what in ("bytes", "bytes_in", "bytes_out") or str(what).endswith("_bytes"):
            return human_bytes(int(value))
        if str(what).endswith("_s"):
            return human_duration(float(value))
        if str(what).endswith("_us"):
            return human_duration(value / 1e6)
        if what in RATES:
            return f"{100 * value:.1f}%"
    if isinstance(value, int) and not isinstance(value, bool) and column not in ("status",):
        return f"{value:,}"
    return "" if value is None else str(value)


def warn_missing(servers_down: dict[str, str], coverage: Coverage, what: str) -> bool:
    """Say on stderr which job servers and nodes are missing from ``what``; True when the
    output is partial (some lines have no copy that answered)."""
    for server, reason in servers_down.items():
        sys.stderr.write(f"logmr: warning: job server {server} is down ({reason}); nodes "
                         "registered only there are not included\n")
    for node, reason in coverage.failed.items():
        sys.stderr.write(f"logmr: node {node} did not answer: {reason}\n")
    if coverage.unknown:
        sys.stderr.write(f"logmr: {what} partial: what {', '.join(coverage.unknown)} "
                         "holds could not be listed\n")
    elif coverage.missing_lines:
        sys.stderr.write(f"logmr: {what} partial: {coverage.missing_lines:,} lines have no "
                         "copy on a node that answered\n")
    elif coverage.failed:
        sys.stderr.write(f"logmr: {what} complete: other nodes read the copies of what "
                         "those nodes hold\n")
    return coverage.partial


class NodeProgress:
    """One progress bar per node on stderr (a terminal only), gone when the work is."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total} hours"),
                                 console=Console(stderr=True), transient=True)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def update(self, node: str, done: int, total: int) -> None:
        """Show ``done`` of ``total`` hours for ``node``."""
        if node not in self.tasks:
            self.tasks[node] = self.progress.add_task(f"node {node}", total=max(total, 1))
        self.progress.update(self.tasks[node], completed=done, total=max(total, 1))
        self.progress.refresh()

    def close(self) -> None:
        """Take the bars off the terminal."""
        self.progress.stop()
