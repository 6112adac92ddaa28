"""What a report asks for: the reports, their options, the filters (plain data, no
polars: the querying side imports this without the column engine)."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any

from logmr.errors import ConfigError
from logmr.wire import MAX_HOST

KMV = 128
# Times taken fold into a histogram of buckets ~2 % wide (each holds durations within 1 % of
# its middle), as DDSketch does: a percentile read from it is within 1 % of the exact one,
# and histograms of any split of the lines add up to the same.
TIME_GAMMA = 1.01 / 0.99
PANELS = ("summary", "top_urls", "pages", "static", "not_found", "hosts", "os", "browsers",
          "visit_times", "status", "referrers", "referring_sites", "vhosts", "user_agents",
          "methods", "bots", "remote_users", "response_times", "mime_types", "tls")
UNRANKED = ("visit_times", "status", "methods", "tls")  # panels that show every row
CLICK = ("sessions", "entry_pages", "exit_pages", "transitions", "paths", "funnel")
# the grouping each panel is computed from, on the nodes
DIMENSION = {"top_urls": "url", "pages": "url", "static": "url", "not_found": "url404",
             "hosts": "host", "os": "ua", "browsers": "ua", "user_agents": "ua", "bots": "ua",
             "visit_times": "hour", "status": "status", "referrers": "referer",
             "referring_sites": "referer", "vhosts": "vhost", "methods": "method",
             "remote_users": "user", "mime_types": "mime", "tls": "tls"}
KEYS = {"url": "url", "url404": "url", "host": "host", "ua": "ua", "status": "status",
         "referer": "referer", "vhost": "vhost", "method": "method", "user": "user",
         "mime": "mime", "tls": "tls"}
VISITOR_KEYS = {"ip": ("host",), "ip+ua": ("host", "ua"), "ip+ua+date": ("host", "ua", "day")}


CLIENT_IPS = ("peer", "xff")


def check_networks(networks: tuple[str, ...] | list[str]) -> None:
    """Raise ConfigError unless every item is an IP network (``10.0.0.0/8``, ``::1``)."""
    for net in networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"{net!r} is not an IP address or network (such as 10.0.0.0/8 "
                              "or 2001:db8::/32)") from None


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
    client_ip: str = "peer"  # the client: the connecting address (%h), or from X-Forwarded-For
    trusted_proxies: tuple[str, ...] = ()  # networks whose forwarded-for entries are passed
    filters: Filters = field(default_factory=Filters)

    def __post_init__(self) -> None:
        unknown = [r for r in self.reports if r not in PANELS and r not in CLICK]
        if unknown:
            raise ConfigError(f"unknown report {unknown[0]!r}")
        if self.visitor_key not in VISITOR_KEYS:
            raise ConfigError(f"unknown visitor key {self.visitor_key!r}: use one of "
                              f"{', '.join(VISITOR_KEYS)}")
        if self.client_ip not in CLIENT_IPS:
            raise ConfigError(f"unknown client ip source {self.client_ip!r}: use one of "
                              f"{', '.join(CLIENT_IPS)}")
        check_networks(self.trusted_proxies)

    @property
    def dimensions(self) -> set[str]:
        """The groupings the nodes compute."""
        return {DIMENSION[r] for r in self.reports if r in DIMENSION}

    @property
    def timed(self) -> bool:
        """True when the nodes send the times taken (response_times)."""
        return "response_times" in self.reports

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
        data["trusted_proxies"] = list(self.trusted_proxies)
        return data

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ReportSpec:
        """Read what :meth:`to_args` wrote. It came from the network: every field is
        checked for its type and bounds before use."""
        if not isinstance(args, dict):
            raise ConfigError("malformed report request: its arguments are not a map")
        f = args.get("filters")
        f = {} if f is None else f
        if not isinstance(f, dict):
            raise ConfigError("malformed report request: filters are not a map")
        reports = _field(args, "reports", list, required=True)
        if len(reports) > len(PANELS) + len(CLICK) or not all(isinstance(r, str)
                                                              for r in reports):
            raise ConfigError("malformed report request: reports must be a list of names")
        status = _field(f, "status", list, default=[])
        if len(status) > MAX_ITEMS or not all(
                isinstance(r, list | tuple) and len(r) == 2 and all(type(x) is int for x in r)
                for r in status):
            raise ConfigError("malformed report request: status must be [low, high] ranges")
        funnel = _field(args, "funnel", list, default=[])
        if len(funnel) > MAX_ITEMS or not all(isinstance(u, bytes) and len(u) <= MAX_PATTERN
                                              for u in funnel):
            raise ConfigError(f"malformed report request: funnel must be at most {MAX_ITEMS} "
                              f"URLs of at most {MAX_PATTERN} bytes")
        filters = Filters(status=tuple((lo, hi) for lo, hi in status),
                          **_checked(f, FILTER_FIELDS))
        proxies = _field(args, "trusted_proxies", list, default=[])
        if len(proxies) > MAX_ITEMS or not all(isinstance(p, str) and len(p) <= 64
                                               for p in proxies):
            raise ConfigError(f"malformed report request: trusted_proxies must be at most "
                              f"{MAX_ITEMS} networks")
        return cls(reports=tuple(reports), funnel=tuple(funnel), filters=filters,
                   trusted_proxies=tuple(proxies), **_checked(args, SPEC_FIELDS))


MAX_LIMIT = 1_000_000  # rows per report
MAX_SPAN = 366 * 86400  # seconds of an interval or a session timeout
MAX_PATTERN = 64 << 10  # bytes of a pattern or a URL
MAX_ITEMS = 64  # status ranges, funnel steps


def _is(value: object, kind: type) -> bool:
    # bool is an int in Python: an int field takes no bool, a bool field only a bool
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


# field -> (type, least, most) of a value off the wire: for an int its range, for a sized
# value its greatest length; a field left out (or None) keeps the dataclass's default
SPEC_FIELDS: dict[str, tuple[type, int | None, int | None]] = {
    "limit": (int, 1, MAX_LIMIT), "interval": (int, 1, MAX_SPAN),
    "visitor_key": (str, None, 16), "session_timeout": (int, 1, MAX_SPAN),
    "transitions": (bytes, None, MAX_PATTERN), "paths_length": (int, 1, 100),
    "include_static": (bool, None, None), "include_bots": (bool, None, None),
    "client_ip": (str, None, 8)}
FILTER_FIELDS: dict[str, tuple[type, int | None, int | None]] = {
    "since": (int, None, None), "until": (int, None, None),
    "grep": (bytes, None, MAX_PATTERN), "url": (bytes, None, MAX_PATTERN),
    "source_host": (str, None, MAX_HOST), "exclude_bots": (bool, None, None)}


def _checked(data: dict[str, Any], rules: dict[str, tuple[type, int | None, int | None]]
             ) -> dict[str, Any]:
    """The fields of ``data`` that ``rules`` name and that are given, each checked."""
    out = {}
    for name, (kind, lo, hi) in rules.items():
        if kind is int:
            value = _field(data, name, kind, lo, hi)
        else:
            value = _field(data, name, kind, most=hi)
        if value is not None:
            out[name] = value
    return out


def _field(data: dict[str, Any], name: str, kind: type, lo: int | None = None,
           hi: int | None = None, default: Any = None, *, most: int | None = None,
           required: bool = False) -> Any:
    """``data[name]``, checked: of ``kind`` (None when absent and allowed), an int within
    [lo, hi], a sized value at most ``most`` long."""
    if name not in data or data[name] is None:
        if required:
            raise ConfigError(f"malformed report request: {name} is missing")
        return default
    value: Any = data[name]
    if not _is(value, kind):
        raise ConfigError(f"malformed report request: {name} must be {kind.__name__}, "
                          f"not {type(value).__name__}")
    if kind is int and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        raise ConfigError(f"malformed report request: {name} must be between {lo} and {hi}")
    if most is not None and len(value) > most:
        raise ConfigError(f"malformed report request: {name} is longer than {most}")
    return value
