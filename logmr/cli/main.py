"""The ``logmr`` command: a thin layer over the library.

Errors become one line on stderr and exit code 2 (grep-style 0/1 for matches); a
traceback only with ``--debug``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback

import click

from logmr import __version__
from logmr.errors import LogmrError
from logmr.gearman.errors import GearmanError

# the module of each command (cli/<name>_command.py)
COMMANDS = {name: f"logmr.cli.{name}_command" for name in (
    "ship", "worker", "grep", "report", "run", "cluster", "config", "status", "formats",
    "reparse")}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (fast start-up)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(module).command
        return command


def _with_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Read the configuration file before the command's options are resolved."""
    from logmr.config import default_map, find_config, load_config

    path = find_config(value)
    ctx.meta["logmr.config"] = path
    ctx.default_map = default_map(load_config(path), list(COMMANDS))
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="logmr")
@click.option("--config", envvar="LOGMR_CONFIG", metavar="FILE", is_eager=True,
              callback=_with_config, expose_value=False,
              help="TOML configuration (default: ~/.config/logmr/logmr.toml, then "
                   "/etc/logmr/logmr.toml). Flags win, then LOGMR_* variables, then the file.")
@click.option("--debug", is_flag=True, envvar="LOGMR_DEBUG",
              help="Show tracebacks and debug logging.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Distributed map/reduce for web access logs, on Gearman.

    \b
    Apache pipes lines to `logmr ship`; `logmr worker` nodes store them;
    `logmr grep`, `report`, `run` and `status` query every node at once; with FILE
    arguments, grep, report and run read the files instead, with no cluster.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"logmr: {message}\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI with one-line errors."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or bool(os.environ.get("LOGMR_DEBUG"))
    try:
        rc = cli.main(args=args, prog_name="logmr", standalone_mode=False)
    except click.UsageError as exc:
        where = f"logmr {exc.ctx.info_name}" if exc.ctx and exc.ctx.parent else "logmr"
        if exc.ctx and exc.ctx.parent and exc.ctx.parent.parent is None:
            where = f"logmr {exc.ctx.info_name}"
        _fail(f"{exc.format_message()} (see '{where} --help')")
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        _fail("interrupted", 130)
    except click.ClickException as exc:
        _fail(exc.format_message())
    except (LogmrError, GearmanError) as exc:
        if debug:
            traceback.print_exc()
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (`logmr grep ... | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if debug:
            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details, "
              "and please report it)")
    sys.exit(rc if isinstance(rc, int) else 0)
