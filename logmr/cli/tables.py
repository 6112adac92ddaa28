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
    "sessions": "Visits", "entry_pages": "Entry pages", "exit_pages": "Exit pages",
    "paths": "Paths", "transitions": "Transitions", "funnel": "Funnel",
}


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
        if isinstance(item, dict):
            flat.extend({"name": f"{key}.{k}", "value": v} for k, v in item.items()
                        if not isinstance(v, dict))
        else:
            flat.append({"name": key, "value": item})
    return flat
