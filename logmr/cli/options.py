"""Options shared by several commands, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from logmr.errors import ConfigError
from logmr.gearman.address import parse_servers
from logmr.gearman.errors import AddressError
from logmr.mapfn.parse import AUTO, check_format
from logmr.timeutil import parse_when

if TYPE_CHECKING:
    from logmr.gearman.address import Server

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_SERVERS = "127.0.0.1:4730"


def _servers(ctx: click.Context, param: click.Parameter, value: str) -> list[Server]:
    try:
        return parse_servers(value)
    except (AddressError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None


def servers_option(f: F) -> F:
    """``--servers HOST:PORT[,HOST:PORT...]`` (env LOGMR_SERVERS)."""
    return click.option(
        "--servers", envvar="LOGMR_SERVERS", default=DEFAULT_SERVERS, show_default=True,
        callback=_servers, metavar="HOST:PORT[,...]",
        help="Gearman job servers (env LOGMR_SERVERS).")(f)


def _secret(ctx: click.Context, param: click.Parameter, value: str | None) -> bytes | None:
    if not value:
        return None
    from logmr.wire import load_secret

    try:
        return load_secret(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def secret_option(f: F) -> F:
    """``--secret-file PATH`` (env LOGMR_SECRET_FILE): the shared secret's bytes, or None."""
    return click.option(
        "--secret-file", "secret", envvar="LOGMR_SECRET_FILE", default=None,
        callback=_secret, metavar="PATH",
        help="File holding the cluster's shared secret (at least 16 bytes): batches and "
             "queries are signed with it, and nodes refuse what is not "
             "(env LOGMR_SECRET_FILE).")(f)


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_when(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def time_range_options(f: F) -> F:
    """``--since`` and ``--until``."""
    f = click.option("--until", callback=_when, metavar="WHEN",
                     help="Only lines before this time (exclusive); same forms as --since.")(f)
    return click.option("--since", callback=_when, metavar="WHEN",
                        help="Only lines at or after this time: 30m, 1h, 2d, or ISO-8601 "
                             "(local time unless a zone is given).")(f)


def _log_format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_format(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def log_format_option(what: str, *names: str) -> Callable[[F], F]:
    """``--log-format FORMAT`` (``auto`` by default: found from the lines)."""
    return click.option(
        *(names or ("--log-format",)), "log_format", default=AUTO, show_default=True,
        callback=_log_format, metavar="FORMAT",
        help=f"Format of {what}: auto (found from the lines, per source), a nickname "
             "(combined, common, vhost_combined, combinedio, nginx_main...) or an Apache "
             "LogFormat string. `logmr formats FILE` shows what auto finds.")
