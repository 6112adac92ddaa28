"""Everything that crosses the network, encoded in one place, with a schema version.

Payloads are msgpack maps with a ``v`` key. Log lines travel as one bytes blob (lines
each ending in a newline), never decoded. Nothing received is ever executed: map jobs are
named, and their arguments are plain data checked here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from logmr.errors import WireError

SCHEMA = 1
STORE_FUNCTION = "logmr.store"
LOGGER_FUNCTION = "logger"
MAP_PREFIX = "logmr.map."
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")


def check_id(value: str, what: str) -> str:
    """Refuse ids that could escape a directory or break a Gearman function name."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise WireError(f"invalid {what} {value!r}: use 1-63 letters, digits, '.', '_', ':' "
                        "or '-', starting with a letter or digit")
    return value


def map_function(node_id: str) -> str:
    """The Gearman function a node answers map jobs on."""
    return MAP_PREFIX + node_id


@dataclass(frozen=True)
class Batch:
    """Lines shipped together: the unit of storage, acknowledgement and dedupe."""

    batch_id: str
    host: str
    fmt: str
    lines: bytes


@dataclass(frozen=True)
class MapRequest:
    """A named map job for one node, with plain-data arguments."""

    job: str
    args: dict[str, Any] = field(default_factory=dict)


def _packb(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _load(payload: bytes, what: str) -> dict[str, Any]:
    try:
        data = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise WireError(f"malformed {what}: {exc}") from None
    if not isinstance(data, dict):
        raise WireError(f"malformed {what}: not a map")
    if type(data.get("v")) is not int or data.get("v") != SCHEMA:
        raise WireError(f"{what} has schema version {data.get('v')!r}; this logmr speaks "
                        f"{SCHEMA}: upgrade the older side")
    return data


def pack_batch(batch: Batch) -> bytes:
    """Encode a batch for ``logmr.store``."""
    return _packb({"v": SCHEMA, "id": batch.batch_id, "host": batch.host,
                          "fmt": batch.fmt, "lines": batch.lines})


def unpack_batch(payload: bytes) -> Batch:
    """Decode and check a ``logmr.store`` payload."""
    data = _load(payload, "batch")
    try:
        batch = Batch(check_id(data["id"], "batch id"), str(data["host"]), str(data["fmt"]),
                      data["lines"])
    except KeyError as exc:
        raise WireError(f"malformed batch: missing {exc}") from None
    if not isinstance(batch.lines, bytes):
        raise WireError("malformed batch: lines are not bytes")
    return batch


def pack_request(req: MapRequest) -> bytes:
    """Encode a map job request."""
    return _packb({"v": SCHEMA, "job": req.job, "args": req.args})


def unpack_request(payload: bytes) -> MapRequest:
    """Decode a map job request (the job name is looked up by the node, never run as code)."""
    data = _load(payload, "map request")
    job, args = data.get("job"), data.get("args", {})
    if not isinstance(job, str) or not isinstance(args, dict):
        raise WireError("malformed map request: job must be a name and args a map")
    return MapRequest(job, args)


def pack_rows(rows: list[tuple[Any, ...]]) -> bytes:
    """One WORK_DATA chunk of result rows."""
    return _packb(rows)


def unpack_rows(payload: bytes) -> list[list[Any]]:
    """Rows of one WORK_DATA chunk."""
    try:
        rows = msgpack.unpackb(payload, raw=False, use_list=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise WireError(f"malformed result chunk: {exc}") from None
    if not isinstance(rows, list):
        raise WireError("malformed result chunk: not a list")
    return rows


def pack_result(result: dict[str, Any]) -> bytes:
    """The WORK_COMPLETE payload of a map job."""
    return _packb({"v": SCHEMA, **result})


def unpack_result(payload: bytes) -> dict[str, Any]:
    """Decode a WORK_COMPLETE payload."""
    return _load(payload, "map result")


def iter_chunks(rows: Iterator[tuple[Any, ...]], max_bytes: int = 256 * 1024
                ) -> Iterator[list[tuple[Any, ...]]]:
    """Group rows into chunks of about ``max_bytes`` (by the size of their last field)."""
    chunk: list[tuple[Any, ...]] = []
    size = 0
    for row in rows:
        chunk.append(row)
        size += len(row[-1]) + 32
        if size >= max_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
