"""A report's results as titled tables of flat rows: what the terminal, CSV and HTML
renderings share."""

from __future__ import annotations

from typing import Any

TITLES = {
    "summary": "Summary", "top_urls": "Top URLs", "pages": "Pages", "static": "Static files",
    "not_found": "Not found (404)", "hosts": "Hosts", "os": "Operating systems",
    "browsers": "Browsers", "visit_times": "Visit times", "status": "Status codes",
    "referrers": "Referrers", "referring_sites": "Referring sites", "vhosts": "Virtual hosts",
    "user_agents": "User agents", "methods": "Methods", "bots": "Crawlers",
    "remote_users": "Remote users", "response_times": "Response times",
    "mime_types": "Content types", "tls": "TLS protocols",
    "response_times.urls": "Slowest URLs (by total time taken)",
    "sessions": "Visits", "entry_pages": "Entry pages", "exit_pages": "Exit pages",
    "paths": "Paths", "transitions": "Transitions", "funnel": "Funnel",
}


def tables_of(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """The tables a report shows, in order: each panel, and after a panel of named values
    each list it holds as a table of its own (``response_times.urls``)."""
    out: list[tuple[str, Any]] = []
    for name, value in data.items():
        out.append((name, value))
        if isinstance(value, dict) and name != "transitions":
            out.extend((f"{name}.{key}", item) for key, item in value.items()
                       if isinstance(item, list) and item and isinstance(item[0], dict))
    return out


def rows_of(name: str, value: Any) -> list[dict[str, Any]]:
    """Any report as a list of flat rows (key/value pairs for the single-object ones)."""
    if isinstance(value, list):
        return [{k: (" > ".join(v) if isinstance(v, list) else v) for k, v in row.items()}
                for row in value]
    if name == "transitions":
        return ([{"direction": "previous", **r} for r in value.get("previous", [])]
                + [{"direction": "next", **r} for r in value.get("next", [])])
    flat: list[dict[str, Any]] = []
    for key, item in value.items():
        if isinstance(item, list) and item and isinstance(item[0], dict):
            continue  # a table of its own (tables_of)
        if isinstance(item, dict):
            flat.extend({"name": f"{key}.{k}", "value": v} for k, v in item.items()
                        if not isinstance(v, dict))
        else:
            flat.append({"name": key, "value": item})
    return flat


_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: int) -> str:
    """A byte count as people read it: 512 B, 1.5 KiB, 44.7 MiB (powers of 1024).

    >>> [human_bytes(n) for n in (0, 1023, 1024, 1536, 46_882_196, 3 << 40)]
    ['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '44.7 MiB', '3.0 TiB']
    """
    size, unit = float(n), 0
    while abs(size) >= 1024 and unit < len(_BYTE_UNITS) - 1:
        size, unit = size / 1024, unit + 1
    return f"{n} B" if unit == 0 else f"{size:.1f} {_BYTE_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """A duration as people read it: 120 us, 4.5 ms, 850 ms, 1.2 s, 3 min, 2.5 h, 4 days.

    >>> [human_duration(s) for s in (0.00012, 0.0045, 0.85, 1.2, 59, 180, 9000, 4 * 86400)]
    ['120 us', '4.5 ms', '850 ms', '1.2 s', '59 s', '3 min', '2.5 h', '4 days']
    """
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    days = seconds / 86400
    return f"{days:.0f} day{'s' if round(days) != 1 else ''}"


def bar_chart(counts: dict[str, int], width: int = 40) -> list[str]:
    """Horizontal bars, one line per label, the longest ``width`` blocks.

    >>> bar_chart({"a": 4, "bb": 1, "c": 0}, width=4)
    ['a  4 ████', 'bb 1 █', 'c  0 ']
    """
    top = max(counts.values(), default=0)
    label = max((len(k) for k in counts), default=0)
    digits = max((len(f"{v:,}") for v in counts.values()), default=1)
    return [f"{k:<{label}} {v:>{digits},} " + "█" * (
        0 if top == 0 or v == 0 else max(1, round(width * v / top))) for k, v in counts.items()]
