"""Everything that crosses the network, encoded in one place, with a schema version.

Payloads are msgpack maps with a ``v`` key. Log lines travel as one bytes blob (lines
each ending in a newline), never decoded. Nothing received is ever executed: map jobs are
named, and their arguments are plain data checked here.

Gearman has no authentication. With a shared secret, batches and map requests travel
signed (:func:`sign`) and a node accepts only what :func:`verify` passes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from logmr import private
from logmr.errors import ConfigError, WireError

log = logging.getLogger(__name__)

SCHEMA = 1
MAX_HOST = 255  # characters of a batch's source host
MAX_FORMAT = 1024  # characters of a batch's LogFormat
STORE_FUNCTION = "logmr.store"
LOGGER_FUNCTION = "logger"
MAP_PREFIX = "logmr.map."
REDUCE_FUNCTION = "logmr.reduce"  # a part of a report too large for its client
REPLICA_PREFIX = "logmr.replica."
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")
SIGNED_MAGIC = b"LMRS1"  # never the first bytes of a msgpack map, so never ambiguous
MIN_SECRET_BYTES = 16
_MAC_BYTES = hashlib.sha256().digest_size
_SECRET_HINT = "e.g. 'head -c 32 /dev/urandom | base64 > FILE'"


def check_id(value: str, what: str) -> str:
    """Refuse ids that could escape a directory or break a Gearman function name."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise WireError(f"invalid {what} {value!r}: use 1-63 letters, digits, '.', '_', ':' "
                        "or '-', starting with a letter or digit")
    return value


def map_function(node_id: str) -> str:
    """The Gearman function a node answers map jobs on."""
    return MAP_PREFIX + node_id


def replica_function(node_id: str) -> str:
    """The Gearman function a node takes copies of other nodes' batches on."""
    return REPLICA_PREFIX + node_id


@dataclass(frozen=True)
class Batch:
    """Lines shipped together: the unit of storage, acknowledgement and dedupe."""

    batch_id: str
    host: str
    fmt: str
    lines: bytes


@dataclass(frozen=True)
class Replica:
    """A copy of a stored batch for one peer: its records exactly as the origin wrote them."""

    batch_id: str
    origin: str
    records: list[bytes]


@dataclass(frozen=True)
class MapRequest:
    """A named map job for one node, with plain-data arguments."""

    job: str
    args: dict[str, Any] = field(default_factory=dict)


def rendezvous(key: str, nodes: Iterable[str]) -> list[str]:
    """``nodes`` ordered by their highest-random-weight score for ``key``: the first are
    where ``key`` goes (a batch's copies; which holder of a record reads it for a query).
    Stable: the order of the others is kept when a node leaves.

    >>> rendezvous("b1", ["n1", "n2", "n3"]) == rendezvous("b1", ["n3", "n1", "n2"])
    True
    """
    def score(node: str) -> bytes:
        return hashlib.blake2b(f"{key}\0{node}".encode(), digest_size=8).digest()

    return sorted(nodes, key=score, reverse=True)


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
        batch = Batch(check_id(data["id"], "batch id"), data["host"], data["fmt"],
                      data["lines"])
    except KeyError as exc:
        raise WireError(f"malformed batch: missing {exc}") from None
    if not isinstance(batch.lines, bytes):
        raise WireError("malformed batch: lines are not bytes")
    for name, value, most in (("host", batch.host, MAX_HOST), ("fmt", batch.fmt, MAX_FORMAT)):
        # the format becomes a regex on the node: bounded before it is compiled
        if not isinstance(value, str) or len(value) > most:
            raise WireError(f"malformed batch: {name} must be text of at most {most} "
                            "characters")
    return batch


def pack_replica(replica: Replica) -> bytes:
    """Encode a copy for ``logmr.replica.<node-id>``."""
    return _packb({"v": SCHEMA, "id": replica.batch_id, "origin": replica.origin,
                   "records": replica.records})


def unpack_replica(payload: bytes) -> Replica:
    """Decode and check a ``logmr.replica.<node-id>`` payload."""
    data = _load(payload, "replica")
    records = data.get("records")
    if not isinstance(records, list) or not all(isinstance(r, bytes) for r in records):
        raise WireError("malformed replica: records must be a list of bytes")
    return Replica(check_id(data.get("id"), "batch id"),  # type: ignore[arg-type]
                   check_id(data.get("origin"), "node id"), records)  # type: ignore[arg-type]


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


def pack_frame(frame: Any) -> bytes:
    """A polars frame as Arrow IPC bytes (page streams of click analysis): columns travel
    as they are, without a Python object per value."""
    import io

    buf = io.BytesIO()
    frame.write_ipc(buf, compression="lz4")
    return buf.getvalue()


def unpack_frame(payload: bytes) -> Any:
    """Read :func:`pack_frame`'s bytes back (data only: IPC holds no code)."""
    import io

    import polars as pl

    try:
        return pl.read_ipc(io.BytesIO(payload))
    except Exception as exc:  # noqa: BLE001 - polars raises several kinds
        raise WireError(f"malformed frame: {exc}") from None


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


class SignatureError(WireError):
    """A payload is unsigned, wrongly signed, or signed for a receiver that has no secret."""


def load_secret(path: str) -> bytes:
    """The shared secret in the file at ``path``, without one trailing newline.

    Raises :class:`ConfigError` when the file is missing, unreadable, empty or holds fewer
    than 16 bytes. Every node and every client must hold the same bytes.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"secret file {path} does not exist: create it ({_SECRET_HINT}) "
                          "and copy it to every node and client") from None
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror or exc}") from None
    if data.endswith(b"\n"):
        data = data[:-2] if data.endswith(b"\r\n") else data[:-1]
    if not data:
        raise ConfigError(f"secret file {path} is empty: put at least {MIN_SECRET_BYTES} "
                          f"random bytes in it ({_SECRET_HINT})")
    if len(data) < MIN_SECRET_BYTES:
        raise ConfigError(f"secret file {path} holds {len(data)} bytes, too short: use at "
                          f"least {MIN_SECRET_BYTES} ({_SECRET_HINT})")
    if private.open_to_others(path):
        log.warning("secret file %s can be read by other users: chmod 600 %s", path, path)
    return data


def _mac(payload: bytes, secret: bytes, context: bytes = b"") -> bytes:
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    if context:  # bound to a job: the answer to one request cannot pass for another's
        mac.update(len(context).to_bytes(2, "big") + context)
    mac.update(payload)
    return mac.digest()


def sign(payload: bytes, secret: bytes | None, context: bytes = b"") -> bytes:
    """``payload`` signed with ``secret`` (HMAC-SHA256); unchanged when there is no secret.

    Signing proves who sent a payload and that it is intact; it does not hide it. A
    replayed batch changes nothing (a node drops a batch id it already holds); a replayed
    map request only reads. A node signs its answers with the request's unique id as
    ``context``, so that a worker without the secret can neither forge an answer nor
    replay one given to another request.
    """
    if secret is None:
        return payload
    return SIGNED_MAGIC + _mac(payload, secret, context) + payload


def verify(data: bytes, secret: bytes | None, what: str = "payload",
           context: bytes = b"", receiver: str = "this node") -> bytes:
    """The payload inside ``data``, once its signature checks out with ``secret``.

    With a secret, an unsigned or wrongly signed payload raises :class:`SignatureError`.
    Without one, an unsigned payload passes and a signed one is refused too: its sender
    uses a secret this receiver does not have, and a half-configured cluster should be
    noticed, not silently accepted. The messages call the receiver ``receiver``.
    """
    fix = "start it" if receiver.endswith("node") else "give it"
    signed = data.startswith(SIGNED_MAGIC)
    if secret is None:
        if signed:
            raise SignatureError(f"signed {what}, but {receiver} has no secret: {fix} with "
                                 "the sender's --secret-file (or LOGMR_SECRET_FILE)")
        return data
    if not signed:
        raise SignatureError(f"unsigned {what}: {receiver} requires the shared secret; give "
                             "the sender --secret-file (or LOGMR_SECRET_FILE)")
    start = len(SIGNED_MAGIC) + _MAC_BYTES
    mac, payload = data[len(SIGNED_MAGIC):start], data[start:]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, _mac(payload, secret, context)):
        raise SignatureError(f"wrong signature on {what}: the sender's secret is not "
                             f"{receiver}'s; use the same --secret-file everywhere")
    return payload
