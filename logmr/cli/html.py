"""A report as one self-contained HTML page: inline CSS and SVG charts, no scripts, no
network. Charts: traffic over time, status codes, top URLs, the visit funnel."""

from __future__ import annotations

import html
from typing import Any

from logmr.cli.tables import TITLES, rows_of, tables_of

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em}
table{border-collapse:collapse;background:#fff;min-width:40em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.chart{background:#fff;border:1px solid #ddd;margin:.5em 0}
.grid{display:flex;flex-wrap:wrap;gap:1.5em}
"""
_BAR = "#3b6ea8"


def to_html(data: dict[str, Any]) -> str:
    """The whole page."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>logmr report</title>",
             f"<style>{_STYLE}</style></head><body><h1>logmr report</h1>"]
    charts = []
    if data.get("visit_times"):
        charts.append(_columns("Traffic over time", [(r["time"][5:16].replace("T", " "),
                                                      r["hits"]) for r in data["visit_times"]],
                               "chart-traffic"))
    if data.get("status"):
        charts.append(_bars("Status codes", [(str(r["status"]), r["hits"])
                                             for r in data["status"]], "chart-status"))
    if data.get("top_urls"):
        charts.append(_bars("Top URLs", [(r["url"], r["hits"]) for r in data["top_urls"]],
                            "chart-urls"))
    if data.get("funnel"):
        charts.append(_bars("Funnel", [(r["step"], r["visits"]) for r in data["funnel"]],
                            "chart-funnel"))
    if charts:
        parts.append("<div class='grid'>" + "".join(charts) + "</div>")
    for name, value in tables_of(data):
        parts.append(f"<h2>{html.escape(TITLES.get(name, name))}</h2>")
        parts.append(_table(rows_of(name, value)))
    parts.append("</body></html>\n")
    return "".join(parts)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(nothing)</p>"
    cols = [c for c in rows[0] if c != "visitors_exact"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(
            f"<td class='n'>{v:,}</td>" if isinstance(v := r.get(c), int | float)
            and not isinstance(v, bool) else f"<td>{html.escape(str(v))}</td>"
            for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _bars(title: str, items: list[tuple[str, int]], ident: str) -> str:
    """Horizontal bars, one per item."""
    width, row = 520, 22
    top = max((v for _, v in items), default=0) or 1
    height = row * len(items) + 30
    out = [f"<svg class='chart' id='{ident}' width='{width}' height='{height}' "
           f"xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{html.escape(title)}'>",
           f"<text x='8' y='18' font-weight='bold'>{html.escape(title)}</text>"]
    for i, (label, value) in enumerate(items):
        y = 28 + i * row
        w = max(1, int(200 * value / top))
        out.append(f"<rect x='250' y='{y}' width='{w}' height='{row - 6}' fill='{_BAR}'>"
                   f"<title>{html.escape(label)}: {value:,}</title></rect>")
        out.append(f"<text x='8' y='{y + 12}' font-size='11'>"
                   f"{html.escape(label[:38])}</text>")
        out.append(f"<text x='{254 + w}' y='{y + 12}' font-size='11'>{value:,}</text>")
    out.append("</svg>")
    return "".join(out)


def _columns(title: str, items: list[tuple[str, int]], ident: str) -> str:
    """Vertical columns over time."""
    width, height, base = 720, 240, 200
    top = max((v for _, v in items), default=0) or 1
    step = (width - 40) / max(len(items), 1)
    out = [f"<svg class='chart' id='{ident}' width='{width}' height='{height}' "
           f"xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{html.escape(title)}'>",
           f"<text x='8' y='18' font-weight='bold'>{html.escape(title)}</text>"]
    for i, (label, value) in enumerate(items):
        h = max(1, int((base - 30) * value / top))
        x = 30 + i * step
        out.append(f"<rect x='{x:.1f}' y='{base - h}' width='{max(step - 1, 1):.1f}' "
                   f"height='{h}' fill='{_BAR}'><title>{html.escape(label)}: {value:,}"
                   "</title></rect>")
    if items:
        out.append(f"<text x='30' y='{base + 16}' font-size='11'>"
                   f"{html.escape(items[0][0])}</text>")
        out.append(f"<text x='{width - 10}' y='{base + 16}' font-size='11' "
                   f"text-anchor='end'>{html.escape(items[-1][0])}</text>")
    out.append("</svg>")
    return "".join(out)
