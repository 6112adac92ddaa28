"""`make bench`: logmr against its peers on the same generated log, in the same run.

1. Generate a combined log (default 1M lines) with current timestamps.
2. GoAccess parses it (`goaccess FILE --log-format=COMBINED -o report.json`): lines/s.
3. A local cluster (gearmand + 2 storage nodes) ingests it: `logmr ship FILE`, timed until
   every line is durably stored: lines/s. Target: at least 5x GoAccess.
4. `logmr grep -c PATTERN` against GNU `grep -c PATTERN` on the file (in the page cache),
   best of several runs. Target: within 3x of GNU grep's time.

Figures go to stdout and to bench/out/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
LOGMR = [sys.executable, "-m", "logmr"]
PATTERNS = ["GET /presentations", "talk-3/", '" 500 ']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(cmd: list[str], **kw: object) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, check=False, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start, out


def best_of(n: int, cmd: list[str], env: dict[str, str] | None = None
            ) -> tuple[float, float, bytes]:
    """Best and first time of n runs, and the output."""
    times, last = [], b""
    for _ in range(n):
        took, out = timed(cmd, env=env)
        if out.returncode not in (0, 1):
            sys.exit(f"bench: {' '.join(cmd)} failed: {out.stderr.decode()[-500:]}")
        times.append(took)
        last = out.stdout
    return min(times), times[0], last


def wait(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"bench: timed out waiting for {what}")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description="logmr benchmarks against peer tools")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5, help="runs per grep timing (best is kept)")
    args = ap.parse_args()
    for tool in ("gearmand", "goaccess", "grep"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"bench: {tool} is not installed (apt-get install gearman-job-server "
                     "goaccess)")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    log = OUT / "access.log"
    subprocess.run([sys.executable, str(ROOT / "bench" / "genlog.py"), str(args.lines),
                    str(log)], check=True)
    size = log.stat().st_size
    print(f"log: {args.lines:,} lines, {size / 1e6:.0f} MB")
    results: dict[str, object] = {"lines": args.lines, "bytes": size}

    took, out = timed(["goaccess", str(log), "--log-format=COMBINED", "-o",
                       str(OUT / "goaccess.json")])
    if out.returncode != 0:
        sys.exit(f"bench: goaccess failed: {out.stderr.decode()[-500:]}")
    goaccess_rate = args.lines / took
    print(f"goaccess: {took:.2f} s, {goaccess_rate:,.0f} lines/s")
    results["goaccess_s"] = took

    port = free_port()
    env = {**os.environ, "LOGMR_SERVERS": f"127.0.0.1:{port}"}
    gearmand = shutil.which("gearmand") or "/usr/sbin/gearmand"
    procs = [subprocess.Popen([gearmand, "--listen=127.0.0.1", f"--port={port}",
                               f"--log-file={OUT / 'gearmand.log'}", "--verbose=WARNING"])]
    try:
        wait(lambda: timed(LOGMR + ["status", "--format", "json"], env=env)[1].returncode
             == 0, 20, "gearmand")
        for n in (1, 2):
            procs.append(subprocess.Popen(
                LOGMR + ["worker", "--data-dir", str(OUT / f"node{n}"), "--node-id",
                         f"node{n}"], env=env, stderr=subprocess.DEVNULL))

        sys.path.insert(0, str(ROOT))
        from logmr.gearman.connection import Server
        from logmr.status import cluster_status

        def nodes() -> dict[str, dict[str, int]]:
            # in-process, so that polling does not steal CPU from the cluster being measured
            return cluster_status([Server("127.0.0.1", port)]).nodes

        wait(lambda: len(nodes()) == 2, 20, "two nodes")
        start = time.perf_counter()
        ship = subprocess.run(LOGMR + ["ship", str(log)], env=env, check=False)
        if ship.returncode != 0:
            sys.exit("bench: ship failed")
        shipped = time.perf_counter() - start
        wait(lambda: sum(n["lines"] for n in nodes().values()) >= args.lines, 600, "ingest")
        ingest = time.perf_counter() - start
        rate = args.lines / ingest
        print(f"logmr ingest (ship -> 2 nodes, fsynced): {ingest:.2f} s ({shipped:.2f} s "
              f"to queue), {rate:,.0f} lines/s = {rate / goaccess_rate:.1f}x GoAccess "
              "(target >= 5x)")
        results.update(ingest_s=ingest, ship_s=shipped, ingest_ratio=rate / goaccess_rate)
        spread = {k: v["lines"] for k, v in nodes().items()}
        print(f"  lines per node: {spread}")

        subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)
        greps = []
        for pattern in PATTERNS:
            gnu, _, gnu_out = best_of(args.runs, ["grep", "-c", pattern, str(log)])
            ours, first, our_out = best_of(args.runs, LOGMR + ["grep", "-c", pattern], env=env)
            if gnu_out.strip() != our_out.strip():
                sys.exit(f"bench: counts differ for {pattern!r}: grep {gnu_out!r}, "
                         f"logmr {our_out!r}")
            ratio = ours / gnu
            print(f"grep -c {pattern!r}: {int(gnu_out)} lines; GNU grep {gnu * 1000:.0f} ms, "
                  f"logmr {ours * 1000:.0f} ms = {ratio:.2f}x (target <= 3x); logmr's first "
                  f"run {first * 1000:.0f} ms")
            greps.append({"pattern": pattern, "matches": int(gnu_out), "gnu_s": gnu,
                          "logmr_s": ours, "logmr_first_s": first, "ratio": ratio})
        results["grep"] = greps
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
