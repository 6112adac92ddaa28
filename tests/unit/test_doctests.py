"""The examples in the code's docstrings hold."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import logmr

MODULES = sorted(m.name for m in pkgutil.walk_packages(logmr.__path__, "logmr.")
                 if m.name != "logmr.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_examples_are_found() -> None:
    found = sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES)
    assert found >= 10
