"""The rounds after a report's first answers: asking the nodes for what they kept back
(``report_rest`` map jobs), and the partitioned reduce.

When what the nodes kept back for the hash ranges (:mod:`logmr.reduce.ranges`) is more
than the client's bound (``--memory-mb``), the client does not read it. It cuts the span of
hashes into R parts and sends each as a plain Gearman job to ``logmr.reduce``, which every
storage node offers. The node that takes one fetches that part's ranges from every node
that kept something (``report_rest``, a range at a time), merges and counts them, and
sends back the part's top rows, distinct visitors and session counts; the client adds the
R answers up.

- A job's unique id is the hash of its request: a job sent again (a retry, or the same
  part asked twice) is the one the job server already holds, and the answer is a pure
  function of what the spools hold, so a job that is run again gives the same answer.
- A reducer that dies is replaced by the job server (it hands the job to another node). A
  reducer that finds a source gone says so, and the client has that node's share read
  again by the other holders, as for its own rounds. A job that fails otherwise (an older
  node, an unreachable job server) has its part read here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from logmr import wire
from logmr.client.plan import Node, send_each, verified_answer
from logmr.errors import LogmrError
from logmr.gearman.address import Server, parse_server
from logmr.gearman.client import Client, ForegroundJob
from logmr.gearman.errors import AddressError, GearmanError
from logmr.mapfn.partial import hashes_of
from logmr.reduce.ranges import (
    BUCKET_ROWS,
    Fetch,
    RangeResult,
    RangeWork,
    combine,
    result_of,
    result_to_wire,
    run,
    split,
    work_of,
    work_to_wire,
)

log = logging.getLogger(__name__)

REDUCE_FUNCTION = wire.REDUCE_FUNCTION
MEMORY_MB = 256  # what a report's client may hold of what the nodes kept back
REDUCERS_PER_NODE = 2  # parts of a partitioned reduce, per live node: the faster take more

Source = tuple[Node, str]  # a node, and the query id of its spool


class RoundFailed(LogmrError):
    """Nodes did not answer a round (node -> why)."""

    def __init__(self, failed: dict[str, str]) -> None:
        super().__init__("; ".join(failed.values()))
        self.failed = failed


def rest_fetcher(client: Client, sources: dict[str, Source], secret: bytes | None,
                 timeout: float | None) -> Fetch:
    """Ask each source for what it kept of the report (one job per source, all at once)."""
    def fetch(requests: dict[str, dict[str, Any]]) -> Callable[[], dict[str, dict[str, Any]]]:
        names = sorted(requests)
        pending = send_each(client, [
            (sources[s][0], wire.MapRequest("report_rest", {"query": sources[s][1],
                                                            **requests[s]})) for s in names],
            secret, timeout)

        def answers() -> dict[str, dict[str, Any]]:
            got = pending()
            failed = {sources[s][0].node_id: str(a) for s, a in zip(names, got, strict=True)
                      if isinstance(a, Exception)}
            if failed:
                raise RoundFailed(failed)
            out = {}
            for name, answer in zip(names, got, strict=True):
                assert isinstance(answer, dict)
                out[name] = decoded(answer)
            return out
        return answers
    return fetch


def decoded(answer: dict[str, Any]) -> dict[str, Any]:
    """A report_rest answer with its tables, hashes and page views as polars data."""
    got: dict[str, Any] = {"tables": {name: wire.unpack_frame(table) for name, table
                                      in (answer.get("tables") or {}).items()}}
    if answer.get("visitors") is not None:
        got["visitors"] = hashes_of(answer["visitors"])
    if answer.get("pages") is not None:
        got["pages"] = wire.unpack_frame(answer["pages"])
    return got


# -- the client's side --------------------------------------------------------------------

def partitioned(client: Client, sources: dict[str, Source], fetch: Fetch,
                secret: bytes | None, timeout: float | None, memory_bytes: int, parts: int,
                bucket_rows: int = BUCKET_ROWS
                ) -> Callable[[RangeWork, int], Callable[[], RangeResult]]:
    """Run the ranges here (with ``fetch``) when what was kept back fits in
    ``memory_bytes``; otherwise as ``parts`` reduce jobs on the nodes (sent at once; the
    call returned waits for them)."""

    def here(work: RangeWork) -> Callable[[], RangeResult]:
        return lambda: run(work, fetch, bucket_rows)

    def start(work: RangeWork, held_bytes: int) -> Callable[[], RangeResult]:
        if held_bytes <= memory_bytes or parts < 2:
            return here(work)
        pieces = split(work, parts)
        log.info("the nodes kept %d MiB back for this report, more than --memory-mb %d: "
                 "reducing it in %d jobs on the nodes", held_bytes >> 20,
                 memory_bytes >> 20, len(pieces))
        sent = [_submit(client, piece, sources, secret, timeout, bucket_rows)
                for piece in pieces]

        def wait() -> RangeResult:
            results, failed = [], {}
            for piece, (unique, job) in zip(pieces, sent, strict=True):
                try:
                    answer = _answer(job, unique, secret)
                except (LogmrError, GearmanError) as exc:
                    log.warning("a reduce job failed (%s): reading its ranges here", exc)
                    results.append(run(piece, fetch, bucket_rows))
                    continue
                if answer.get("failed"):
                    failed.update({str(k): str(v) for k, v in answer["failed"].items()})
                else:
                    results.append(result_of(answer))
            if failed:
                raise RoundFailed(failed)
            return combine(results, work)
        return wait
    return start


def reduce_request(work: RangeWork, sources: dict[str, Source], bucket_rows: int,
                   timeout: float | None) -> wire.MapRequest:
    """The request of one reduce job: the work, and where each of its sources is."""
    return wire.MapRequest("reduce", {
        "work": work_to_wire(work), "bucket_rows": bucket_rows, "timeout": timeout,
        "sources": {s: [sources[s][0].node_id, str(sources[s][0].server), sources[s][1]]
                    for s in work.sources()}})


def job_unique(payload: bytes) -> str:
    """A reduce job's unique id: the hash of its request, so that the same part asked
    again is the same job."""
    return "reduce:" + hashlib.sha256(payload).hexdigest()[:48]


def _submit(client: Client, work: RangeWork, sources: dict[str, Source],
            secret: bytes | None, timeout: float | None, bucket_rows: int
            ) -> tuple[str, ForegroundJob | GearmanError]:
    payload = wire.pack_request(reduce_request(work, sources, bucket_rows, timeout))
    unique = job_unique(payload)
    try:
        return unique, client.submit(REDUCE_FUNCTION, wire.sign(payload, secret),
                                     unique=unique, timeout=timeout)
    except GearmanError as exc:
        return unique, exc


def _answer(job: ForegroundJob | GearmanError, unique: str, secret: bytes | None
            ) -> dict[str, Any]:
    if isinstance(job, GearmanError):
        raise job
    with job:
        for _ in job:
            pass
        answer = wire.unpack_result(verified_answer(job.result, secret, "(a reducer)",
                                                    unique, "reduce result"))
    answer.pop("v", None)
    return answer


# -- the node's side ----------------------------------------------------------------------

def serve_reduce(args: dict[str, Any], servers: list[Server], secret: bytes | None,
                 reply: Any = None) -> dict[str, Any]:
    """Run one reduce job on this node: fetch its ranges from every source, reduce them.
    A source that does not answer is named in the answer (``failed``), for the client to
    have its share read again."""
    work = work_of(args.get("work"))
    bucket_rows = args.get("bucket_rows")
    if type(bucket_rows) is not int or bucket_rows < 1:
        raise LogmrError("malformed reduce request: bucket_rows must be a positive count")
    timeout = args.get("timeout")
    if timeout is not None and not (isinstance(timeout, int | float) and 0 < timeout <= 3600):
        raise LogmrError("malformed reduce request: timeout must be seconds, at most 3600")
    sources = _sources(args.get("sources"), servers)
    missing = sorted(set(work.sources()) - set(sources))
    if missing:
        raise LogmrError(f"malformed reduce request: no address for the sources "
                         f"{', '.join(missing)}")
    client = Client(servers)
    progress = None if reply is None else reply.send_status
    try:
        result = run(work, rest_fetcher(client, sources, secret, timeout), bucket_rows,
                     progress)
    except RoundFailed as exc:
        return {"failed": exc.failed}
    finally:
        client.close()
    return result_to_wire(result)


def _sources(value: Any, servers: list[Server]) -> dict[str, Source]:
    """The sources of a reduce request; each on one of this node's own job servers (a
    request does not make a node connect anywhere else)."""
    if not isinstance(value, dict):
        raise LogmrError("malformed reduce request: sources must be a map")
    out = {}
    for name, where in value.items():
        if not (isinstance(name, str) and isinstance(where, list) and len(where) == 3
                and all(isinstance(w, str) for w in where)):
            raise LogmrError("malformed reduce request: a source must be [node id, job "
                             "server, query]")
        node_id, address, query = where
        wire.check_id(node_id, "node id")
        try:
            server = parse_server(address)
        except AddressError as exc:
            raise LogmrError(f"malformed reduce request: {exc}") from None
        if server not in servers:
            raise LogmrError(f"the reduce job names job server {server}, which is not one "
                             f"of this node's ({', '.join(map(str, servers))})")
        out[name] = (Node(node_id, server), query)
    return out


__all__ = ["MEMORY_MB", "REDUCE_FUNCTION", "RoundFailed", "decoded", "job_unique",
           "partitioned", "reduce_request", "rest_fetcher", "serve_reduce"]
