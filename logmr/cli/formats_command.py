"""``logmr formats``: the format of each log file, as --log-format auto finds it."""

from __future__ import annotations

import json

import click


@click.command("formats")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
def command(files: tuple[str, ...], fmt: str) -> int:
    """Print, per FILE, the log format found (as ship, worker and file mode find it with
    --log-format auto), the share of its lines that format reads, and the first line it
    does not read.

    \b
    logmr formats /var/log/apache2/access.log /var/log/nginx/access.log.1.gz

    Exit status 1 when a line of some file does not parse, 0 when every line does.
    """
    from logmr.client.formats import survey

    found = [survey(path) for path in files]
    if fmt == "json":
        click.echo(json.dumps([f.to_json() for f in found], indent=2))
    else:
        for f in found:
            click.echo(f"{f.path}: {f.fmt}, {f.parsed:,} of {f.lines:,} lines "
                       f"({100 * f.share:.1f} %)")
            for other, n in f.others:
                click.echo(f"  the other lines look like {other} ({n:,} of a sample of them "
                           "parse as it): the file mixes formats")
            if f.first_unparsed is not None:
                number, text = f.first_unparsed
                shown = text.decode("utf-8", "backslashreplace")
                click.echo(f"  first line not read as {f.fmt} (line {number:,}): "
                           f"{shown[:200]}{'...' if len(shown) > 200 else ''}")
    return 1 if any(f.parsed < f.lines for f in found) else 0
