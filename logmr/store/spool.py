"""What a node keeps of a report between its rounds: the whole tables it sent in part and
the visitor hashes it held back, until the client has asked for what it needs (see
:mod:`logmr.reduce.topk`).

A report's map job writes them under ``<data dir>/spool/<query id>/`` as Arrow IPC files
(private, like the data they come from); the short jobs of the later rounds read them
from whichever process answers. The client names the query, so a retried
round reads the same files. The client drops its spool when done; one it never drops (the
client was stopped) is deleted after :data:`KEEP_FOR` seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from typing import Any

import polars as pl

from logmr import private
from logmr.errors import LogmrError

KEEP_FOR = 900.0
_QUERY = re.compile(r"^[0-9a-f]{32}(\.[0-9]{1,6})?$")
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")


def check_query(query: Any) -> str:
    """A query id off the wire, checked (it names a folder)."""
    if not isinstance(query, str) or not _QUERY.match(query):
        raise LogmrError("malformed report request: its query id is not 32 hex digits")
    return query


class Spool:
    """The spool folder of one node."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _dir(self, query: str) -> str:
        return os.path.join(self.root, check_query(query))

    def _path(self, query: str, name: str) -> str:
        if not _NAME.match(name):
            raise LogmrError(f"malformed report request: no table is named {name!r}")
        return os.path.join(self._dir(query), name + ".arrow")

    def put(self, query: str, name: str, frame: pl.DataFrame) -> None:
        """Keep ``frame`` for ``query`` (written aside, then renamed: whole or absent)."""
        private.make_dir(self._dir(query))
        path = self._path(query, name)
        fd = private.open_file(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "wb") as f:
            frame.write_ipc(f)
        os.replace(path + ".tmp", path)

    def get(self, query: str, name: str) -> pl.DataFrame:
        """A frame kept for ``query``; a clear error when it is gone."""
        try:
            return pl.read_ipc(self._path(query, name))
        except FileNotFoundError:
            raise LogmrError(f"this node no longer holds the rest of query {query} (it was "
                             "restarted, or the query took longer than "
                             f"{KEEP_FOR / 60:.0f} minutes): run the report again") from None

    def names(self, query: str, prefix: str) -> list[str]:
        """The names of the frames kept for ``query`` that start with ``prefix``."""
        try:
            files = os.listdir(self._dir(query))
        except FileNotFoundError:
            return []
        return sorted(f[:-len(".arrow")] for f in files
                      if f.startswith(prefix) and f.endswith(".arrow"))

    def drop(self, query: str) -> None:
        """Forget ``query``'s frames."""
        shutil.rmtree(self._dir(query), ignore_errors=True)

    def reap(self, keep_for: float = KEEP_FOR) -> int:
        """Delete spools older than ``keep_for`` seconds; returns how many went."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return 0
        gone, cutoff = 0, time.time() - keep_for
        for name in names:
            path = os.path.join(self.root, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    shutil.rmtree(path, ignore_errors=True)
                    gone += 1
            except FileNotFoundError:
                continue
        return gone
