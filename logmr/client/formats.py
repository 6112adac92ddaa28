"""``logmr formats``: which format each file is in, as ``auto`` finds it, and how well it
reads the whole file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logmr.files import read_chunks
from logmr.mapfn.detect import detect
from logmr.mapfn.parse import parse_batch

KEEP_UNPARSED = 1000  # lines the format does not read, kept to tell what they are


@dataclass
class FileFormat:
    """What a file's lines are."""

    path: str
    fmt: str
    lines: int = 0
    parsed: int = 0
    first_unparsed: tuple[int, bytes] | None = None  # (line number from 1, the line)
    others: list[tuple[str, int]] = field(default_factory=list)  # format, lines of a sample

    @property
    def share(self) -> float:
        """Of the file's lines, the share its format reads (1.0 for an empty file)."""
        return self.parsed / self.lines if self.lines else 1.0

    def to_json(self) -> dict[str, Any]:
        """The survey as plain data."""
        bad = self.first_unparsed
        return {"file": self.path, "format": self.fmt, "lines": self.lines,
                "parsed": self.parsed, "share": round(self.share, 4),
                "first_unparsed": None if bad is None else {
                    "line": bad[0], "text": bad[1].decode("utf-8", "backslashreplace")},
                "others": [{"format": f, "lines": n} for f, n in self.others]}


def survey(path: str) -> FileFormat:
    """Detect ``path``'s format from its first chunk, then read it all with that format;
    the lines it does not read are detected on their own (a file that mixes formats)."""
    out: FileFormat | None = None
    unparsed: list[bytes] = []
    for chunk in read_chunks([path]):
        if out is None:
            out = FileFormat(path, detect(chunk).fmt)
        parsed = parse_batch(chunk, out.fmt, now=lambda: 0)
        if parsed.unparsed:
            lines = chunk.split(b"\n")
            for i, ok in enumerate(parsed.parsed):
                if not ok:
                    if out.first_unparsed is None:
                        out.first_unparsed = (out.lines + i + 1, lines[i].rstrip(b"\r"))
                    if len(unparsed) < KEEP_UNPARSED:
                        unparsed.append(lines[i])
        out.lines += len(parsed.parsed)
        out.parsed += len(parsed.parsed) - parsed.unparsed
    if out is None:
        return FileFormat(path, detect(b"").fmt)
    if unparsed:
        rest = detect(b"\n".join(unparsed) + b"\n")
        if rest.parsed and rest.fmt != out.fmt:
            out.others.append((rest.fmt, rest.parsed))
    return out
