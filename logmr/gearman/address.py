"""Job server addresses: ``host``, ``host:port``, ``[v6]:port``, lists of them (no
sockets here: a command parses its --servers without loading the network code)."""

from __future__ import annotations

from dataclasses import dataclass

from logmr.gearman.errors import AddressError

DEFAULT_PORT = 4730


@dataclass(frozen=True, order=True)
class Server:
    """The address of one job server."""

    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _parse_port(text: str, item: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise AddressError(f"bad port in job server {item!r}: use HOST:PORT, PORT 1-65535")
    return int(text)


def parse_server(item: str) -> Server:
    """Parse ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` (or a bare IPv6 address)."""
    item = item.strip()
    if item.startswith("["):
        host, sep, rest = item[1:].partition("]")
        if not sep or not host or (rest and not rest.startswith(":")):
            raise AddressError(f"bad job server {item!r}: write an IPv6 address as [ADDR]:PORT")
        port = _parse_port(rest[1:], item) if rest else DEFAULT_PORT
        return Server(host, port)
    if item.count(":") > 1:
        return Server(item)
    host, sep, port_text = item.partition(":")
    if not host:
        raise AddressError(f"bad job server {item!r}: a host name is missing")
    return Server(host, _parse_port(port_text, item) if sep else DEFAULT_PORT)


def parse_servers(text: str) -> list[Server]:
    """Parse a comma-separated server list such as ``"h1:4730,h2,[::1]:4731"``.

    Duplicates are dropped, order is kept; an empty list is a :class:`AddressError`.
    """
    servers: list[Server] = []
    for item in text.split(","):
        if item.strip():
            server = parse_server(item)
            if server not in servers:
                servers.append(server)
    if not servers:
        raise AddressError(f"no job server in {text!r}: give HOST:PORT[,HOST:PORT...]")
    return servers
