"""Gearman, spoken directly: binary packets, client, worker and the admin protocol.

``protocol`` is pure; ``connection`` holds one socket; ``client`` submits jobs, ``worker``
runs them, ``admin`` reads the server's text status; ``errors`` are its own (rooted at
:class:`GearmanError`). Nothing here knows what the jobs mean.
"""

import importlib
from typing import Any

# each name and its module, imported on first use: a command that only needs the errors
# (every command, for its one-line messages) does not pay for sockets and threads
_WHERE = {
    "FunctionStatus": "admin", "WorkerInfo": "admin",
    "Client": "client", "ForegroundJob": "client", "Priority": "client",
    "DEFAULT_PORT": "address", "Connection": "connection", "Server": "address",
    "parse_server": "address", "parse_servers": "address",
    "AddressError": "errors", "GearmanError": "errors", "GearmanTimeout": "errors",
    "JobFailed": "errors", "ProtocolError": "errors", "ServerUnavailable": "errors",
    "MAX_UNIQUE": "protocol", "Decoder": "protocol", "Packet": "protocol", "T": "protocol",
    "encode": "protocol",
    "Assignment": "worker", "RetryJob": "worker", "Worker": "worker",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
