"""Log files as whole-line chunks: file mode's input ('-' is stdin, .gz is decompressed)."""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from logmr.errors import LogmrError

T = TypeVar("T")
CHUNK = 4 << 20  # file mode reads (and processes) this many bytes of lines at a time


def read_chunks(paths: Iterable[str], size: int = CHUNK) -> Iterator[bytes]:
    """Whole lines from the files, about ``size`` bytes at a time ('-' is stdin; .gz is
    read through gzip)."""
    for path in paths:
        try:
            stream = open_log(path)
        except OSError as exc:
            raise LogmrError(f"cannot read {path}: {exc.strerror or exc}") from None
        with stream:
            rest = b""
            while data := _read(stream, path, size):
                data = rest + data
                cut = data.rfind(b"\n") + 1
                rest = data[cut:]
                if cut:
                    yield data[:cut]
            if rest:
                yield rest + b"\n"


def buffers(path: str) -> Iterator[bytes | mmap.mmap]:
    """A log's lines as few buffers as possible: a regular file mapped whole (read in
    place, no copy), anything else (stdin, .gz, a pipe) in whole-line chunks."""
    if path != "-" and not path.endswith(".gz"):
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise LogmrError(f"cannot read {path}: {exc.strerror or exc}") from None
        with f:
            info = os.fstat(f.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > 0:
                try:
                    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
                    mapped = mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
                except (OSError, ValueError):
                    mapped = None  # a file system that cannot map: read it instead
                if mapped is not None:
                    with mapped:
                        yield mapped
                    return
    yield from read_chunks([path])


def parts_of(buf: Any) -> list[tuple[int, int]]:
    """A large buffer cut at newlines into one part per core (one part if it is small,
    or the machine has one core)."""
    size = len(buf)
    cores = min(os.cpu_count() or 1, 8)
    if size < PARALLEL_FROM or cores < 2 or not hasattr(os, "fork"):
        return [(0, size)]
    bounds = [0]
    for i in range(1, cores):
        cut = buf.find(b"\n", max(bounds[-1], size * i // cores))
        bounds.append(size if cut < 0 else cut + 1)
    bounds.append(size)
    return list(zip(bounds, bounds[1:], strict=False))


def output_in_parts(buf: Any, produce: Callable[[Any, int, int], Iterator[bytes]]
                    ) -> Iterator[bytes]:
    """What ``produce(buf, start, stop)`` yields over the parts of a large buffer, in
    order: the first part here, the others in forked children meanwhile, each writing to
    an unnamed temporary file that is read back once this part is out (a part whose child
    fails is produced here)."""
    import tempfile

    parts = parts_of(buf)
    children = []
    for start, stop in parts[1:]:
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
        pid = os.fork()
        if pid == 0:  # the child: produce its part into the file, leave at once
            code = 1
            try:
                for block in produce(buf, start, stop):
                    spool.write(block)
                spool.flush()
                code = 0
            finally:
                os._exit(code)
        children.append((pid, spool, start, stop))
    try:
        yield from produce(buf, *parts[0])
        for pid, spool, start, stop in children:
            _, status = os.waitpid(pid, 0)
            if status != 0:
                yield from produce(buf, start, stop)
                continue
            spool.seek(0)
            while block := spool.read(CHUNK):
                yield block
    finally:
        for pid, spool, _, _ in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            spool.close()


def count_in_parts(buf: Any, count: Callable[[Any, int, int], int]) -> int:
    """``count(buf, start, stop)`` added up over the parts of a large buffer, counted as
    :func:`output_in_parts` produces them (the parts after the first in forked
    children)."""
    return sum(int(answer) for answer in output_in_parts(
        buf, lambda b, start, stop: iter((b"%d" % count(b, start, stop),))))


def _read(stream: Any, path: str, size: int = CHUNK) -> bytes:
    try:
        data: bytes = stream.read(size)
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


def total_size(paths: Iterable[str]) -> int:
    """Bytes on disk of the named files (stdin counts as 0; a .gz counts 8 times)."""
    size = 0
    for path in paths:
        try:
            n = os.path.getsize(path) if path != "-" else 0
        except OSError:
            continue
        size += n * 8 if path.endswith(".gz") else n
    return size


PARALLEL_FROM = 32 << 20  # inputs this large are mapped on every core


def map_chunks(func: Callable[..., T], chunks: Iterable[Any], *args: Any,
               parallel: bool) -> Iterator[T]:
    """``func(chunk, *args)`` for every chunk, in order; on every core when ``parallel``
    (child processes started fresh, a few chunks in flight at a time)."""
    if not parallel or (os.cpu_count() or 1) < 2:
        for chunk in chunks:
            yield func(chunk, *args)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    workers = os.cpu_count() or 2
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[Future[T]] = deque()
        for chunk in chunks:
            pending.append(pool.submit(func, chunk, *args))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
