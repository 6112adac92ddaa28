"""Bytes sent per client network: IPv4 /24, IPv6 /48 (who is using the bandwidth)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Any

from logmr.jobs import Job, Line, Pair


class BandwidthByNetwork(Job):
    name = "bandwidth-by-network"
    version = "1"

    def mapper(self, line: Line) -> Iterator[Pair]:
        yield network(line.host), (line.size, 1)

    def reducer(self, key: Any, values: Iterable[Any]) -> Iterator[Pair]:
        sent = hits = 0
        for size, n in values:
            sent, hits = sent + size, hits + n
        yield key, (sent, hits)

    def rows(self, pairs: list[Pair], limit: int) -> list[dict[str, Any]]:
        top = sorted(pairs, key=lambda kv: (-kv[1][0], kv[0]))[:limit]
        return [{"network": net, "bytes": sent, "hits": hits} for net, (sent, hits) in top]


def network(host: bytes) -> str:
    """The /24 (IPv4) or /48 (IPv6) holding an address; the name itself otherwise."""
    text = host.decode("ascii", "replace")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text  # a host name (HostnameLookups On)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
