"""What a report asks for: the reports, their options, the filters (plain data, no
polars: the querying side imports this without the column engine)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from logmr.errors import ConfigError

KMV = 128
PANELS = ("summary", "top_urls", "pages", "static", "not_found", "hosts", "os", "browsers",
          "visit_times", "status", "referrers", "referring_sites", "vhosts", "user_agents",
          "methods", "bots")
CLICK = ("sessions", "entry_pages", "exit_pages", "transitions", "paths", "funnel")
# the grouping each panel is computed from, on the nodes
DIMENSION = {"top_urls": "url", "pages": "url", "static": "url", "not_found": "url404",
             "hosts": "host", "os": "ua", "browsers": "ua", "user_agents": "ua", "bots": "ua",
             "visit_times": "hour", "status": "status", "referrers": "referer",
             "referring_sites": "referer", "vhosts": "vhost", "methods": "method"}
KEYS = {"url": "url", "url404": "url", "host": "host", "ua": "ua", "status": "status",
         "referer": "referer", "vhost": "vhost", "method": "method"}
VISITOR_KEYS = {"ip": ("host",), "ip+ua": ("host", "ua"), "ip+ua+date": ("host", "ua", "day")}


PLAN_ARGS = ("skip", "only", "upto", "epoch", "after")  # the read plan: which records to read

@dataclass(frozen=True)
class Filters:
    """Which lines a report reads."""

    since: int | None = None
    until: int | None = None
    grep: bytes | None = None  # a regex over the raw line
    url: bytes | None = None  # a regex over the URL
    status: tuple[tuple[int, int], ...] = ()  # inclusive ranges: 5xx is (500, 599)
    source_host: str | None = None  # the host that shipped the lines
    exclude_bots: bool = False


@dataclass(frozen=True)
class ReportSpec:
    """What to report, over which lines."""

    reports: tuple[str, ...]
    limit: int = 10
    interval: int = 3600
    visitor_key: str = "ip+ua"
    session_timeout: int = 1800
    transitions: bytes | None = None
    funnel: tuple[bytes, ...] = ()
    paths_length: int = 5
    include_static: bool = False
    include_bots: bool = False
    filters: Filters = field(default_factory=Filters)

    def __post_init__(self) -> None:
        unknown = [r for r in self.reports if r not in PANELS and r not in CLICK]
        if unknown:
            raise ConfigError(f"unknown report {unknown[0]!r}")
        if self.visitor_key not in VISITOR_KEYS:
            raise ConfigError(f"unknown visitor key {self.visitor_key!r}: use one of "
                              f"{', '.join(VISITOR_KEYS)}")

    @property
    def dimensions(self) -> set[str]:
        """The groupings the nodes compute."""
        return {DIMENSION[r] for r in self.reports if r in DIMENSION}

    @property
    def click(self) -> bool:
        """True when per-visitor page streams are needed."""
        return any(r in CLICK for r in self.reports)

    def to_args(self) -> dict[str, Any]:
        """Plain data for the wire."""
        data = asdict(self)
        data["filters"]["status"] = [list(r) for r in self.filters.status]
        data["funnel"] = list(self.funnel)
        data["reports"] = list(self.reports)
        return data

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ReportSpec:
        """Read what :meth:`to_args` wrote (checked: it came from the network)."""
        try:
            f = dict(args.get("filters") or {})
            f["status"] = tuple((int(lo), int(hi)) for lo, hi in f.get("status", ()))
            data = {k: v for k, v in args.items() if k not in PLAN_ARGS}  # see the node
            data["filters"] = Filters(**f)
            data["reports"] = tuple(str(r) for r in args["reports"])
            data["funnel"] = tuple(bytes(s) for s in args.get("funnel", ()))
            return cls(**data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed report request: {exc}") from None
