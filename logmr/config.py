"""Configuration files: flags win, then ``LOGMR_*`` environment variables, then a TOML
file, then defaults.

The file is the first of ``--config``/``$LOGMR_CONFIG``, ``~/.config/logmr/logmr.toml``
and ``/etc/logmr/logmr.toml`` that exists. Top-level keys apply to every command that has
that option; a ``[command]`` table applies to one command. Keys are option names with
``_`` or ``-``, as ``logmr config show`` lists them (``worker.data_dir`` is ``data_dir`` in
``[worker]``)::

    servers = "10.0.0.5:4730,10.0.0.6:4730"
    secret_file = "/etc/logmr/secret"

    [worker]
    data_dir = "/var/lib/logmr"
    retain = "30d"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from logmr.errors import ConfigError

SEARCH = ("~/.config/logmr/logmr.toml", "/etc/logmr/logmr.toml")


def find_config(explicit: str | None) -> Path | None:
    """The configuration file in force, if any (an explicit one must exist)."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return path
    for candidate in SEARCH:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path
    return None


def load_config(path: Path | None) -> dict[str, Any]:
    """The file's settings (empty without a file); a clear error for bad TOML."""
    if path is None:
        return {}
    import tomllib  # only with a file: a command without one starts quicker

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def default_map(settings: dict[str, Any], commands: list[str]) -> dict[str, dict[str, Any]]:
    """Click's default_map: top-level keys for every command, tables for one each."""
    common = {_key(k): _value(v) for k, v in settings.items() if not isinstance(v, dict)}
    unknown = [k for k, v in settings.items() if isinstance(v, dict) and k not in commands]
    if unknown:
        raise ConfigError(f"config file has a table [{unknown[0]}] but logmr has no such "
                          f"command (commands: {', '.join(commands)})")
    return {cmd: {**common, **{_key(k): _value(v) for k, v in settings.get(cmd, {}).items()}}
            for cmd in commands}


def _key(name: str) -> str:
    return name.replace("-", "_")


def _value(value: Any) -> Any:
    """TOML lists become the comma-separated form the options take."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return os.path.expanduser(value) if isinstance(value, str) and value.startswith("~") else (
        value)
