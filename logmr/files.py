"""Log files as whole-line chunks: file mode's input ('-' is stdin, .gz is decompressed)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from logmr.errors import LogmrError

CHUNK = 4 << 20  # file mode reads (and processes) this many bytes of lines at a time


def read_chunks(paths: Iterable[str]) -> Iterator[bytes]:
    """Whole lines from the files, about CHUNK bytes at a time ('-' is stdin; .gz is read
    through gzip)."""
    for path in paths:
        try:
            stream = open_log(path)
        except OSError as exc:
            raise LogmrError(f"cannot read {path}: {exc.strerror or exc}") from None
        with stream:
            rest = b""
            while data := _read(stream, path):
                data = rest + data
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    yield data[:cut]
            if rest:
                yield rest + b"\n"


def _read(stream: Any, path: str) -> bytes:
    try:
        data: bytes = stream.read(CHUNK)
    except (OSError, EOFError) as exc:  # a truncated or corrupt .gz, an I/O error
        raise LogmrError(f"cannot read {path}: {exc}") from None
    return data


def open_log(path: str) -> Any:
    """A binary stream of a log: stdin for '-', decompressed for .gz."""
    if path == "-":
        return os.fdopen(os.dup(0), "rb")
    if path.endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")
    return open(path, "rb")  # noqa: SIM115 - closed by the caller's with
