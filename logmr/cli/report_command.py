"""``logmr report``: summaries and click analysis, from every node or from files."""

from __future__ import annotations

import sys
from typing import Any

import click

from logmr.cli.options import log_format_option, secret_option, servers_option, time_range_options
from logmr.client.report import filters_from_options, spec_from_options
from logmr.client.rounds import MEMORY_MB
from logmr.errors import ConfigError
from logmr.gearman.address import Server
from logmr.mapfn.spec import MAX_LIMIT, check_networks

FLAGS = {
    "summary": "requests, unique visitors, bandwidth, time span, unparsed lines, per node",
    "top-urls": "every request by URL (static files and errors included)",
    "pages": "--top-urls without static files",
    "static": "static files (css, js, images...)",
    "not-found": "URLs answered 404",
    "hosts": "client IPs",
    "os": "operating systems",
    "browsers": "browsers",
    "visit-times": "hits per hour (or --interval)",
    "status": "status codes",
    "referrers": "referring URLs",
    "referring-sites": "referring hosts",
    "vhosts": "virtual hosts (formats with %v)",
    "user-agents": "user agents",
    "methods": "request methods",
    "remote-users": "authenticated users (%u, as logged)",
    "response-times": "time taken (%D, %T, nginx $request_time logged as %T): percentiles, "
                      "and the URLs that took the most time",
    "mime-types": "content types sent (%{Content-Type}o)",
    "tls": "TLS protocols (%{SSL_PROTOCOL}x; plain HTTP not counted)",
    "bots": "known crawlers",
    "sessions": "visits: count, pages per visit, duration buckets, bounce rate",
    "entry-pages": "first page of each visit",
    "exit-pages": "last page of each visit",
    "paths": "most common page sequences",
}


def _networks(ctx: click.Context, param: click.Parameter, value: str | None
              ) -> tuple[str, ...]:
    nets = tuple(n.strip() for n in (value or "").split(",") if n.strip())
    try:
        check_networks(nets)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return nets


def _report_flags(f: Any) -> Any:
    for flag, text in reversed(FLAGS.items()):
        f = click.option(f"--{flag}", flag.replace("-", "_"), is_flag=True, help=text)(f)
    return f


@click.command("report")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@_report_flags
@click.option("--all", "everything", is_flag=True, help="Every report above.")
@click.option("--transitions", metavar="URL", help="Previous and next pages of URL.")
@click.option("--funnel", metavar="/a,/b,/c", help="Visits reaching each step, in order.")
@servers_option
@secret_option
@time_range_options
@click.option("--grep", metavar="PATTERN", help="Only lines matching PATTERN (a regex).")
@click.option("--url", metavar="PATTERN", help="Only requests whose URL matches PATTERN.")
@click.option("--only-status", metavar="CODES",
              help="Only these statuses: 404, 5xx, 4xx,503 (the --status report counts "
                   "them).")
@click.option("--host", "source_host", metavar="NAME",
              help="Only lines shipped from this host (ship --host).")
@click.option("--exclude-bots", is_flag=True, help="Leave known crawlers out.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, MAX_LIMIT),
              help="Rows per report.")
@click.option("--interval", default="1h", show_default=True, metavar="SPAN",
              help="Bucket of --visit-times: 10m, 1h, 1d.")
@click.option("--visitor-key", type=click.Choice(["ip", "ip+ua", "ip+ua+date"]),
              default="ip+ua", show_default=True, help="Who a visitor is, for visits.")
@click.option("--session-timeout", default="30m", show_default=True, metavar="SPAN",
              help="A visit ends after this long without a page view.")
@click.option("--include-static", is_flag=True, help="Count static files as page views.")
@click.option("--include-bots", is_flag=True, help="Count crawlers' visits.")
@click.option("--client-ip", type=click.Choice(["peer", "xff"]), default="peer",
              show_default=True,
              help="Who the client is, for visitors, --hosts and visits: the connecting "
                   "address (%h), or the one X-Forwarded-For names (formats that log it, "
                   "such as nginx_main).")
@click.option("--trusted-proxies", metavar="NETS", callback=_networks,
              help="With --client-ip xff: your proxies (10.0.0.0/8,192.0.2.7): the client "
                   "is the nearest address in X-Forwarded-For that is not one of them. "
                   "Without it, the first address there.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html"]),
              default="table", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of stdout.")
@log_format_option("FILES (file mode)")
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
@click.option("--timeout", default=300.0, show_default=True, type=click.FloatRange(1),
              help="Seconds a node may stay silent before it is counted as missing.")
@click.option("--memory-mb", default=MEMORY_MB, show_default=True, type=click.IntRange(1),
              help="What this client may hold of what the nodes keep back for a large "
                   "report's rounds; past it, the nodes reduce it in jobs of their own.")
def command(files: tuple[str, ...], everything: bool, transitions: str | None,
            funnel: str | None, servers: list[Server], secret: bytes | None,
            since: int | None, until: int | None, grep: str | None, url: str | None,
            only_status: str | None, source_host: str | None, exclude_bots: bool,
            limit: int, interval: str, visitor_key: str, session_timeout: str,
            include_static: bool, include_bots: bool, client_ip: str,
            trusted_proxies: tuple[str, ...], fmt: str, output: str | None,
            log_format: str, timeout: float, memory_mb: int, quiet: bool,
            **flags: bool) -> int:
    """Summaries and click analysis of the stored logs, from every storage node, or
    of FILES with no cluster at all (FILE arguments always mean file mode).

    \b
    logmr report --summary --top-urls --status
    logmr report --all --since 1d --format html -o report.html
    logmr report --sessions --entry-pages --exit-pages --exclude-bots
    logmr report --funnel /cart,/checkout,/thanks --since 7d
    logmr report --top-urls --only-status 5xx access.log.gz

    Several reports run in one pass over the data. --format json gives one key per
    report, named like its flag with _ for - (see README for the schema).
    """
    spec = spec_from_options(
        [n for n, on in flags.items() if on], everything=everything, transitions=transitions,
        funnel=funnel, filters=filters_from_options(
            since=since, until=until, grep=grep, url=url, only_status=only_status,
            source_host=source_host, exclude_bots=exclude_bots),
        limit=limit, interval=interval, visitor_key=visitor_key,
        session_timeout=session_timeout, include_static=include_static,
        include_bots=include_bots, client_ip=client_ip, trusted_proxies=trusted_proxies)
    from logmr.cli.render import NodeProgress, render, warn_missing

    if files:
        from logmr.client.report import file_report

        result = file_report(files, spec, fmt=log_format)
    else:
        from logmr.client.report import cluster_report

        bar = None if quiet or not sys.stderr.isatty() else NodeProgress()
        try:
            result = cluster_report(servers, spec, secret=secret, timeout=timeout,
                                    progress=bar.update if bar else None,
                                    memory_mb=memory_mb)
        finally:
            if bar is not None:
                bar.close()
    render(result.data, fmt, output)
    return 2 if warn_missing(result.servers_down, result.coverage, "the report is") else 0
