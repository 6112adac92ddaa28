"""``logmr config show``: the effective settings and where each came from."""

from __future__ import annotations

import click

SOURCES = {"COMMANDLINE": "flag", "ENVIRONMENT": "environment", "DEFAULT_MAP": "config file",
           "DEFAULT": "default", "PROMPT": "prompt"}


@click.group("config")
def command() -> None:
    """Inspect the configuration (flags, then LOGMR_* variables, then the TOML file, then
    defaults)."""


@command.command("show")
@click.argument("commands", nargs=-1)
@click.pass_context
def show(ctx: click.Context, commands: tuple[str, ...]) -> None:
    """Print every setting of COMMANDS (default: all) with its value and source.

    \b
    logmr config show
    logmr --config ./logmr.toml config show worker
    """
    root = ctx.find_root()
    group = root.command
    assert isinstance(group, click.Group)
    path = root.meta.get("logmr.config")
    click.echo(f"# config file: {path or '(none found)'}")
    names = commands or tuple(n for n in group.list_commands(root) if n != "config")
    for name in names:
        cmd = group.get_command(root, name)
        if cmd is None:
            raise click.UsageError(f"no command {name!r}")
        sub = cmd.make_context(name, [], parent=root, resilient_parsing=True)
        for param in cmd.params:
            if not isinstance(param, click.Option) or param.name is None or param.hidden:
                continue
            if param.is_flag and param.name in ("help",):
                continue
            value = sub.params.get(param.name)
            source = sub.get_parameter_source(param.name)
            where = SOURCES.get(source.name, source.name) if source is not None else "default"
            if param.name == "secret" and value is not None:
                value = "(set)"
            elif param.name == "servers" and isinstance(value, list):
                value = ",".join(str(s) for s in value)
            click.echo(f"{name}.{param.name} = {value!r}  # {where}")
