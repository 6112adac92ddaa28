"""``logmr run``: a map/reduce job of your own, across the cluster or over files."""

from __future__ import annotations

import click

from logmr.cli.options import log_format_option, secret_option, servers_option, time_range_options
from logmr.gearman.address import Server


@click.command("run")
@click.argument("job_file", type=click.Path(exists=True, dir_okay=False))
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@servers_option
@secret_option
@time_range_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1),
              help="Rows to show.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]),
              default="table", show_default=True, help="Output format.")
@log_format_option("FILES (file mode)")
def command(job_file: str, files: tuple[str, ...], servers: list[Server],
            secret: bytes | None, since: int | None, until: int | None, limit: int,
            fmt: str, log_format: str) -> int:
    """Run the job defined in JOB_FILE: on every storage node (which must have loaded
    the same file from its --jobs-dir), or over FILES in this process.

    \b
    logmr run jobs/errors_by_hour.py --since 1d
    logmr run jobs/slowest_urls.py --log-format '%h %l %u %t "%r" %>s %b %D' app.log

    A job is a class with a name, a version, a mapper and a reducer: see jobs/ and the
    logmr.jobs module. Job code is never sent over the network.
    """
    from logmr.client.run import run_on_cluster
    from logmr.jobs import load_job, run_inline

    job = load_job(job_file)
    from logmr.client.plan import Coverage

    coverage = Coverage()
    if files:
        pairs = run_inline(job, files, fmt=log_format, since=since, until=until)
    else:
        pairs, coverage = run_on_cluster(servers, job, since, until, secret)
    from logmr.cli.render import render, warn_missing

    render({job.name: job.rows(pairs, limit)}, fmt, None)
    return 2 if warn_missing({}, coverage, "the results are") else 0
