"""Signing payloads with the shared secret: round trip, tampering, mismatches, secret files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from logmr import wire
from logmr.errors import ConfigError, WireError

SECRET = b"0123456789abcdef-the-cluster-secret"
OTHER = b"0123456789abcdef-another-secret!!"
PAYLOAD = wire.pack_batch(wire.Batch("b1", "web1", "combined", b"line one\nline two\n"))


def test_round_trip() -> None:
    signed = wire.sign(PAYLOAD, SECRET)
    assert signed.startswith(wire.SIGNED_MAGIC) and signed.endswith(PAYLOAD)
    assert len(signed) == len(wire.SIGNED_MAGIC) + 32 + len(PAYLOAD)
    assert wire.verify(signed, SECRET) == PAYLOAD
    assert wire.unpack_batch(wire.verify(signed, SECRET)).lines == b"line one\nline two\n"
    assert wire.verify(wire.sign(b"", SECRET), SECRET) == b""


def test_no_secret_leaves_payloads_alone() -> None:
    assert wire.sign(PAYLOAD, None) == PAYLOAD
    assert wire.verify(PAYLOAD, None) == PAYLOAD
    request = wire.pack_request(wire.MapRequest("stats"))
    assert wire.verify(request, None) == request


@pytest.mark.parametrize("where", ["magic-end", "mac-first", "mac-last", "payload-first",
                                   "payload-last"])
def test_a_flipped_byte_is_a_wrong_signature(where: str) -> None:
    signed = bytearray(wire.sign(PAYLOAD, SECRET))
    magic = len(wire.SIGNED_MAGIC)
    index = {"magic-end": magic - 1, "mac-first": magic, "mac-last": magic + 31,
             "payload-first": magic + 32, "payload-last": len(signed) - 1}[where]
    signed[index] ^= 0x01
    with pytest.raises(wire.SignatureError) as info:
        wire.verify(bytes(signed), SECRET, "batch")
    expected = "unsigned batch" if where == "magic-end" else "wrong signature on batch"
    assert expected in str(info.value)


@pytest.mark.parametrize("cut", [1, 32, 40])
def test_truncated_signatures_are_refused(cut: int) -> None:
    signed = wire.sign(PAYLOAD, SECRET)
    with pytest.raises(wire.SignatureError, match="wrong signature"):
        wire.verify(signed[: len(wire.SIGNED_MAGIC) + 32 - cut], SECRET)
    with pytest.raises(wire.SignatureError, match="wrong signature"):
        wire.verify(signed[:-cut], SECRET)


def test_wrong_secret() -> None:
    with pytest.raises(wire.SignatureError, match="wrong signature on map request") as info:
        wire.verify(wire.sign(PAYLOAD, OTHER), SECRET, "map request")
    assert "--secret-file" in str(info.value)


def test_unsigned_payload_to_a_node_with_a_secret() -> None:
    with pytest.raises(wire.SignatureError, match="unsigned batch: this node requires"):
        wire.verify(PAYLOAD, SECRET, "batch")


def test_signed_payload_to_a_node_without_a_secret() -> None:
    with pytest.raises(wire.SignatureError, match="signed batch, but this node has no secret"):
        wire.verify(wire.sign(PAYLOAD, SECRET), None, "batch")


def test_signature_errors_are_wire_errors() -> None:
    assert issubclass(wire.SignatureError, WireError)


def test_msgpack_payloads_never_look_signed() -> None:
    for payload in (PAYLOAD, wire.pack_request(wire.MapRequest("grep", {"pattern": b"x"}))):
        assert not payload.startswith(wire.SIGNED_MAGIC)


def test_load_secret(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\n")
    assert wire.load_secret(str(path)) == SECRET
    path.write_bytes(SECRET + b"\r\n")
    assert wire.load_secret(str(path)) == SECRET
    path.write_bytes(SECRET)
    assert wire.load_secret(str(path)) == SECRET
    path.write_bytes(SECRET + b"\n\n")  # only one newline is taken off
    assert wire.load_secret(str(path)) == SECRET + b"\n"
    path.write_bytes(b"x" * 16 + b"\n")
    assert wire.load_secret(str(path)) == b"x" * 16


@pytest.mark.parametrize(("content", "needle"), [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"\n", "is empty"),
    (b"x" * 15 + b"\n", "holds 15 bytes, too short"),
])
def test_load_secret_errors(tmp_path: Path, content: bytes | None, needle: str) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        wire.load_secret(str(path))
    message = str(info.value)
    assert needle in message and str(path) in message and "\n" not in message


def test_load_secret_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read secret file .*: Is a directory"):
        wire.load_secret(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_load_secret_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    path.chmod(0)
    try:
        with pytest.raises(ConfigError, match="cannot read secret file .*: Permission denied"):
            wire.load_secret(str(path))
    finally:
        path.chmod(0o600)


def test_a_secret_others_can_read_is_warned_of(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    assert wire.load_secret(str(path)) == SECRET
    assert "can be read by other users" not in caplog.text
    path.chmod(0o644)
    assert wire.load_secret(str(path)) == SECRET
    assert f"secret file {path} can be read by other users: chmod 600" in caplog.text


def test_an_answer_is_bound_to_its_request() -> None:
    signed = wire.sign(b"result", SECRET, b"unique-of-request-1")
    assert wire.verify(signed, SECRET, "result", b"unique-of-request-1") == b"result"
    for other in (b"unique-of-request-2", b""):  # replayed to another request, or unbound
        with pytest.raises(wire.SignatureError, match="wrong signature"):
            wire.verify(signed, SECRET, "result", other)
    # without a context the signature is the plain HMAC of the payload, as before
    import hashlib
    import hmac
    mac = hmac.new(SECRET, b"payload", hashlib.sha256).digest()
    assert wire.sign(b"payload", SECRET) == wire.SIGNED_MAGIC + mac + b"payload"
