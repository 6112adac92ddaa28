"""What a regular expression can do, read from its syntax tree (the stdlib's own parser).

Two questions matter to grep: can the pattern match a newline (if not, lines can be
counted with one C-level ``findall``), and does it run in linear time (if so, it cannot
backtrack for ever and may run without the time-budget fence of a child process).
Every answer is conservative: a construct not understood here counts against the pattern.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

_NEWLINE_CATEGORIES = {"CATEGORY_SPACE", "CATEGORY_NOT_DIGIT", "CATEGORY_NOT_WORD",
                       "CATEGORY_LINEBREAK", "CATEGORY_UNI_SPACE", "CATEGORY_UNI_NOT_DIGIT",
                       "CATEGORY_UNI_NOT_WORD", "CATEGORY_UNI_LINEBREAK"}
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
_UNDERSTOOD = {"AT", "LITERAL", "NOT_LITERAL", "ANY", "IN", "SUBPATTERN", "BRANCH",
               "ATOMIC_GROUP", "ASSERT", "ASSERT_NOT", *_REPEATS}
# no repetition and no back-references: the matcher does at most a bounded amount of work
# at each position of the text
_LINEAR = {"AT", "LITERAL", "NOT_LITERAL", "ANY", "IN", "SUBPATTERN", "BRANCH", "ASSERT",
           "ASSERT_NOT"}


def _tree(rx: re.Pattern[bytes]) -> Any | None:
    try:
        parser = importlib.import_module("re._parser")  # private: any failure means "unknown"
        return parser.parse(rx.pattern.decode("latin-1"), rx.flags)
    except Exception:  # noqa: BLE001
        return None


def _nodes(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every node of a parsed pattern, nested ones included."""
    for op, av in tree:
        name = str(op)
        yield name, av
        if name == "SUBPATTERN":
            yield from _nodes(av[3])
        elif name == "BRANCH":
            for branch in av[1]:
                yield from _nodes(branch)
        elif name in _REPEATS:
            yield from _nodes(av[2])
        elif name == "ATOMIC_GROUP":
            yield from _nodes(av)
        elif name in ("ASSERT", "ASSERT_NOT"):
            yield from _nodes(av[1])


def can_match_newline(rx: re.Pattern[bytes]) -> bool:
    """True unless ``rx`` provably never matches (or looks at) a newline byte.

    >>> [can_match_newline(re.compile(p)) for p in (b"a.b", rb"\\s", b"[^x]", b"[0-9]+")]
    [False, True, True, False]
    """
    tree = _tree(rx)
    if tree is None:
        return True
    dotall = bool(rx.flags & re.DOTALL)
    for name, av in _nodes(tree):
        if (name not in _UNDERSTOOD or (name == "LITERAL" and av == 10)
                or (name == "NOT_LITERAL" and av != 10) or (name == "ANY" and dotall)
                or (name == "IN" and _class_has_newline(av))):
            return True
    return False


@lru_cache(maxsize=64)
def literal_text(rx: re.Pattern[bytes]) -> bytes | None:
    r"""The bytes ``rx`` matches when it is a plain string (no regex syntax that does
    anything, case kept, no newline): such a pattern is searched with ``bytes.find``.

    >>> [literal_text(re.compile(p)) for p in (b'" 404 ', rb"a\.b", b"a.b", b"")]
    [b'" 404 ', b'a.b', None, b'']
    >>> literal_text(re.compile(b"abc", re.IGNORECASE)) is None
    True
    """
    if rx.flags & re.IGNORECASE:
        return None
    tree = _tree(rx)
    if tree is None:
        return None
    out = bytearray()
    for op, av in tree:
        if str(op) != "LITERAL" or av == 10:
            return None
        out.append(av)
    return bytes(out)


def required_literals(rx: re.Pattern[bytes]) -> list[bytes] | None:
    r"""Strings every match of ``rx`` contains, as written (a pattern that ignores case
    contains them in some case): the runs of plain characters in its top-level sequence
    and in groups and repeats that must occur. None when the pattern is not understood.

    >>> required_literals(re.compile(rb"GET /a.b\.c+d(?:xy)?z"))
    [b'GET /a', b'b.', b'c', b'd', b'z']
    >>> required_literals(re.compile(b"ab|cd"))
    []
    """
    tree = _tree(rx)
    if tree is None:
        return None
    runs: list[bytes] = []
    _literal_runs(tree, runs)
    return [r for r in runs if r]


def _literal_runs(seq: Any, runs: list[bytes]) -> None:
    """Append the literal runs of one sequence of nodes (a new run after anything that
    is not a plain character)."""
    run = bytearray()
    for op, av in seq:
        name = str(op)
        if name == "LITERAL" and av != 10:
            run.append(av)
            continue
        runs.append(bytes(run))
        run = bytearray()
        if name == "SUBPATTERN" and not av[1] and not av[2]:  # no flags set or cleared
            _literal_runs(av[3], runs)
        elif name in _REPEATS and av[0] >= 1:
            _literal_runs(av[2], runs)
    runs.append(bytes(run))


def runs_in_linear_time(rx: re.Pattern[bytes]) -> bool:
    """True when ``rx`` has no repetition and no back-reference, so it cannot backtrack
    for ever.

    >>> [runs_in_linear_time(re.compile(p)) for p in (b"GET /a", b'" 5[0-9][0-9] ',
    ...                                                b"a|b", b"(a+)+$", rb"(a)\\1")]
    [True, True, True, False, False]
    """
    tree = _tree(rx)
    return tree is not None and all(name in _LINEAR for name, _ in _nodes(tree))


def _class_has_newline(items: Any) -> bool:
    negate = False
    has = False
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            has = has or av == 10
        elif name == "RANGE":
            has = has or av[0] <= 10 <= av[1]
        elif name == "CATEGORY":
            has = has or str(av) in _NEWLINE_CATEGORIES
        else:
            return True
    return has != negate
