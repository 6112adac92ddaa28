"""What a node keeps of a report between its rounds: the whole tables it sent in part and
the visitor hashes it held back, until the client has asked for what it needs (see
:mod:`logmr.reduce.topk`).

A report's map job writes them under ``<data dir>/spool/<query id>/`` as Arrow IPC files
(private, like the data they come from); the short jobs of the later rounds read them
from whichever process answers. A frame the client reads a range of hashes at a time is
kept cut by the top bits of a 63-bit hash into files of at most about :data:`FILE_ROWS`
rows, so that a range reads only its own files, not the whole frame once per range. The
client names the query, so a retried round reads the same files. The client drops its
spool when done; one it never drops (the client was stopped) is deleted after
:data:`KEEP_FOR` seconds.
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
_CUT = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*)_(?P<bits>[0-9]+)_(?P<bucket>[0-9]+)_[0-9]+$")
FILE_ROWS = 16_384  # rows of a file of a frame kept cut by hash
MAX_BITS = 16
HASH_BITS = 63


def check_query(query: Any) -> str:
    """A query id off the wire, checked (it names a folder)."""
    if not isinstance(query, str) or not _QUERY.match(query):
        raise LogmrError("malformed report request: its query id is not 32 hex digits")
    return query


def _gone(query: str) -> LogmrError:
    return LogmrError(f"this node no longer holds the rest of query {query} (it was "
                      "restarted, or the query took longer than "
                      f"{KEEP_FOR / 60:.0f} minutes): run the report again")


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
        """Keep ``frame`` for ``query`` (written aside, then renamed: whole or absent). The
        spool folder is private too, not only the query's folder in it."""
        private.make_dir(self.root)
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
            raise _gone(query) from None

    def put_cut(self, query: str, name: str, frame: pl.DataFrame, hashes: pl.Expr,
                part: int = 0) -> None:
        """Keep ``frame`` as part ``part`` of ``name``, cut by the top bits of ``hashes`` (a
        63-bit hash of each row) into files of about :data:`FILE_ROWS` rows at most."""
        bits = 0
        while frame.height >> bits > FILE_ROWS and bits < MAX_BITS:
            bits += 1
        if bits == 0:
            self.put(query, f"{name}_0_0_{part}", frame)
            return
        cut = frame.with_columns((hashes // (1 << (HASH_BITS - bits))).alias("_bucket"))
        for (bucket,), rows in cut.partition_by("_bucket", as_dict=True).items():
            self.put(query, f"{name}_{bits}_{bucket}_{part}", rows.drop("_bucket"))

    def get_cut(self, query: str, name: str, lo: int = 0, hi: int | None = None
                ) -> pl.DataFrame:
        """The rows of every part of ``name`` kept by :meth:`put_cut` in the files whose
        hashes meet [lo, hi) (hi None: no bound; the caller filters the rows); a clear
        error when none is left."""
        try:
            files = os.listdir(self._dir(query))
        except FileNotFoundError:
            files = []
        found, frames = None, []
        for file in sorted(files):
            m = _CUT.match(file[:-len(".arrow")]) if file.endswith(".arrow") else None
            if m is None or m["name"] != name:
                continue
            found = file
            shift = HASH_BITS - int(m["bits"])
            first, end = int(m["bucket"]) << shift, (int(m["bucket"]) + 1) << shift
            if end > lo and (hi is None or first < hi):
                frames.append(self.get(query, file[:-len(".arrow")]))
        if found is None:
            raise _gone(query)
        if not frames:  # none in range: no rows, in the frame's columns
            return pl.DataFrame(schema=pl.read_ipc_schema(os.path.join(self._dir(query),
                                                                         found)))
        return pl.concat(frames)

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
