"""Gearman, spoken directly: binary packets, client, worker and the admin protocol.

``protocol`` is pure; ``connection`` holds one socket; ``client`` submits jobs, ``worker``
runs them, ``admin`` reads the server's text status; ``errors`` are its own (rooted at
:class:`GearmanError`). Nothing here knows what the jobs mean.
"""

from logmr.gearman.admin import FunctionStatus, WorkerInfo
from logmr.gearman.client import Client, ForegroundJob, Priority
from logmr.gearman.connection import (
    DEFAULT_PORT,
    Connection,
    Server,
    parse_server,
    parse_servers,
)
from logmr.gearman.errors import (
    AddressError,
    GearmanError,
    GearmanTimeout,
    JobFailed,
    ProtocolError,
    ServerUnavailable,
)
from logmr.gearman.protocol import MAX_UNIQUE, Decoder, Packet, T, encode
from logmr.gearman.worker import Assignment, RetryJob, Worker

__all__ = [
    "DEFAULT_PORT",
    "MAX_UNIQUE",
    "AddressError",
    "Assignment",
    "Client",
    "Connection",
    "Decoder",
    "ForegroundJob",
    "FunctionStatus",
    "GearmanError",
    "GearmanTimeout",
    "JobFailed",
    "ProtocolError",
    "ServerUnavailable",
    "Packet",
    "Priority",
    "RetryJob",
    "Server",
    "T",
    "WorkerInfo",
    "Worker",
    "encode",
    "parse_server",
    "parse_servers",
]
