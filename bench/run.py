"""`make bench`: logmr against its peers on the same generated log, in the same run.

1. Generate a combined log of realistic visits (default 1M lines, bench/genvisits.py).
2. GoAccess parses it (`goaccess FILE --log-format=COMBINED -o report.json`): lines/s.
3. A local cluster (gearmand + 2 storage nodes) ingests it: `logmr ship FILE`, timed until
   every line is durably stored, on 2 nodes (RF=2, the default) and, in a second cluster,
   once (RF=1): lines/s. Target: at least 5x GoAccess with RF=2. Steps 4 and 5 run on
   both, and RF=2's times are compared with RF=1's (target: within 1.2x).
4. `logmr grep -c PATTERN` against GNU `grep -c PATTERN` on the file (in the page cache),
   best of several runs. Target: within 3x of GNU grep's time; for a selective literal
   (`-F`, the address of one client), faster than GNU grep. File mode first (no
   cluster): `logmr grep -c PATTERN FILE` within 2x of GNU grep's, `logmr grep PATTERN
   FILE` within 3x, the same output byte for byte; `logmr report --all FILE` at least 5x
   faster than GoAccess.
5. `logmr report --all` over the stored lines against GoAccess's full JSON report of the
   file (target: 10x faster), `--top-urls` against `awk '{print $7}' | sort | uniq -c |
   sort -rn` (target: faster), `--sessions` (target: under GoAccess's time), the client's
   peak memory (target: 300 MiB), and the storage nodes' and the client's peak memory at
   1M lines and again after growing to --grow-to lines of the same kind (target: the
   client's within 1.1x, the first `report --all`'s cost per line within 1.2x).

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
PLOYT0 = ROOT / "samples" / "nginx_combined_ployt0.log"
PATTERNS = ["GET /products", "Googlebot", '" 404 ']


LOGS = {"visits": "genvisits.py", "simple": "genlog.py", "flood": "genflood.py",
        "ployt0": ""}


def repeat_log(sample: Path, lines: int, out: Path) -> None:
    """``lines`` lines of ``sample`` repeated, each repeat's times a whole number of days
    later than the last (past the sample's own span), so that the result is in time order
    and no two repeats share a second."""
    import re
    from datetime import datetime, timedelta

    stamp = re.compile(rb"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]")
    source = sample.read_bytes().splitlines(keepends=True)
    when = [datetime.strptime(m.group(1).decode(), "%d/%b/%Y:%H:%M:%S %z")
            for m in (stamp.search(line) for line in source) if m]
    shift = timedelta(days=(max(when) - min(when)).days + 1)
    memo: dict[tuple[bytes, int], bytes] = {}

    def moved(m: re.Match[bytes], k: int) -> bytes:
        key = (m.group(1), k)
        if key not in memo:
            t = datetime.strptime(m.group(1).decode(), "%d/%b/%Y:%H:%M:%S %z") + k * shift
            memo[key] = b"[" + t.strftime("%d/%b/%Y:%H:%M:%S %z").encode() + b"]"
        return memo[key]

    with out.open("wb") as f:
        written = 0
        for k in range(lines // len(source) + 1):
            for line in source[:lines - written]:
                f.write(stamp.sub(lambda m, k=k: moved(m, k), line, count=1))
            written = min(lines, written + len(source))
            if len(memo) > 200_000:
                memo.clear()


def client_of(log: Path) -> str:
    """The client address of the log's middle line (its first field)."""
    with log.open("rb") as f:
        f.seek(log.stat().st_size // 2)
        f.readline()
        return f.readline().split(b" ", 1)[0].decode()


def counted_against_gnu(args: argparse.Namespace, flags: list[str], pattern: str,
                        path: Path, env: dict[str, str], target: float, where: str = ""
                        ) -> dict[str, object]:
    """Cluster `logmr grep -c` against GNU `grep -c` on ``path``, best of args.runs each;
    the counts must agree. Prints the line and returns the figures."""
    gnu, _, gnu_out = best_of(args.runs, ["grep", "-c", *flags, pattern, str(path)])
    ours, first, our_out = best_of(args.runs, LOGMR + ["grep", "-c", *flags, pattern], env=env)
    if gnu_out.strip() != our_out.strip():
        sys.exit(f"bench: counts differ for {pattern!r}{where}: grep {gnu_out!r}, "
                 f"logmr {our_out!r}")
    ratio = ours / gnu
    print(f"  {where.strip() + ': ' if where else ''}grep -c {' '.join(flags)}"
          f"{' ' if flags else ''}{pattern!r}: {int(gnu_out)} lines; GNU grep "
          f"{gnu * 1000:.0f} ms, logmr {ours * 1000:.0f} ms = {ratio:.2f}x (target "
          f"{'<' if target == 1 else '<='} {target:g}x); logmr's first run "
          f"{first * 1000:.0f} ms")
    return {"pattern": pattern, "flags": flags, "matches": int(gnu_out), "gnu_s": gnu,
            "logmr_s": ours, "logmr_first_s": first, "ratio": ratio, "target": target}


def wait_compacted(nodes, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Until every node has rewritten all it holds as columns (--compact-after)."""
    wait(lambda: all(n["records_to_compact"] == 0 for n in nodes().values()), timeout, what,
         poll=0.5)


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
    best, first, last, _ = measured(n, cmd, env)
    return best, first, last


def measured(n: int, cmd: list[str], env: dict[str, str] | None = None
             ) -> tuple[float, float, bytes, float]:
    """Best and first time of n runs, the output, and the peak RSS (MiB) of any run (the
    kernel's count for that child alone, from wait4)."""
    import tempfile

    times, last, peak = [], b"", 0.0
    for _ in range(n):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
            times.append(time.perf_counter() - start)
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            if proc.returncode not in (0, 1):
                sys.exit(f"bench: {' '.join(cmd)} failed: {err.read().decode()[-500:]}")
            last = out.read()
        peak = max(peak, usage.ru_maxrss / 1024)
    return min(times), times[0], last, peak


def wait(condition, timeout: float, what: str,  # type: ignore[no-untyped-def]
         poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"bench: timed out waiting for {what}")
        time.sleep(poll)


def peak_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def bench_reports(log: Path, env: dict[str, str], args: argparse.Namespace,
                  goaccess_s: float, workers: list[subprocess.Popen[bytes]]
                  ) -> dict[str, object]:
    """logmr report against GoAccess and the awk pipeline."""
    awk_cmd = ["sh", "-c", f"awk '{{print $7}}' {log} | sort | uniq -c | sort -rn | head -10"]
    awk, _, _ = best_of(args.runs, awk_cmd)
    out: dict[str, object] = {"goaccess_s": goaccess_s, "awk_top_urls_s": awk}
    for name, flags in (("all", ["--all"]), ("top_urls", ["--top-urls"]),
                        ("sessions", ["--sessions"])):
        best, first, _, peak = measured(args.runs, LOGMR + ["report", "--format", "json",
                                                             *flags], env=env)
        out[f"{name}_s"], out[f"{name}_first_s"] = best, first
        out[f"{name}_client_peak_mib"] = peak
    print(f"  report --all: {out['all_s']:.2f} s (first {out['all_first_s']:.2f} s) vs GoAccess "
          f"{goaccess_s:.2f} s = {goaccess_s / out['all_s']:.1f}x faster (first run "
          f"{goaccess_s / out['all_first_s']:.1f}x; target >= 10x); client peak RSS "
          f"{out['all_client_peak_mib']:.0f} MiB (target <= 300)")
    print(f"  report --top-urls: {out['top_urls_s'] * 1000:.0f} ms (first "
          f"{out['top_urls_first_s'] * 1000:.0f} ms) vs awk|sort|uniq -c "
          f"{awk * 1000:.0f} ms = {awk / out['top_urls_s']:.1f}x faster (target > 1x)")
    print(f"  report --sessions: {out['sessions_s']:.2f} s (first {out['sessions_first_s']:.2f} "
          f"s) vs GoAccess {goaccess_s:.2f} s (target: under it)")
    out["worker_peak_rss_mb_1"] = [peak_rss_mb(w) for w in workers]
    print(f"  storage nodes' peak RSS at {args.lines:,} lines: "
          f"{', '.join(f'{m:.0f} MB' for m in out['worker_peak_rss_mb_1'])}")
    return out


def grow(log: Path, env: dict[str, str], args: argparse.Namespace,
         workers: list[subprocess.Popen[bytes]], nodes: object, before: dict[str, object],
         rf: int) -> dict[str, object]:
    """Store more lines of the same kind (later in time), run the reports again, read peak
    memory: the nodes' and the client's."""
    more = OUT / "more.log"
    extra = args.grow_to - args.lines
    if args.log == "ployt0":  # the repeats that come after the first args.lines lines
        whole = OUT / "whole.log"
        repeat_log(PLOYT0, args.grow_to, whole)
        with whole.open("rb") as src, more.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= args.lines:
                    dst.write(line)
        whole.unlink()
    else:
        subprocess.run([sys.executable, str(ROOT / "bench" / LOGS[args.log]), str(extra),
                        str(more), "--seed", "2", "--start", str(int(time.time()) - 86400)],
                       check=True, capture_output=True)
    subprocess.run(LOGMR + ["ship", str(more)], env=env, check=True)
    wait(lambda: sum(n["lines"] for n in nodes().values()) >= rf * args.grow_to,  # type: ignore[operator]
         1800, "ingest of the larger data set")
    # as at the first size: the first report once every record is rewritten as columns
    start = time.perf_counter()
    wait_compacted(nodes, 3600, "compaction of the larger data set")
    print(f"at {args.grow_to:,} lines: every record rewritten as columns "
          f"{time.perf_counter() - start:.0f} s after ingest")
    took, first, _, client = measured(2, LOGMR + ["report", "--format", "json", "--all"],
                                      env=env)
    peaks = [peak_rss_mb(w) for w in workers]
    growth = max(peaks) / max(before["worker_peak_rss_mb_1"])  # type: ignore[call-overload]
    scale = args.grow_to / args.lines
    per_line = first / scale / before["all_first_s"]  # type: ignore[operator]
    client_growth = client / before["all_client_peak_mib"]  # type: ignore[operator]
    print(f"at {args.grow_to:,} lines: report --all {took:.2f} s (first {first:.2f} s) = "
          f"{per_line:.2f}x the cost per line of the first query at {args.lines:,} (target <= "
          f"1.2x); client peak RSS {client:.0f} MiB = {client_growth:.2f}x (target <= 1.1x); "
          f"storage nodes' peak RSS {', '.join(f'{m:.0f} MB' for m in peaks)} = "
          f"{growth:.2f}x the peak at {args.lines:,} lines for {scale:.0f}x "
          "the data (target: flat; each node's cache is bounded by --cache-mb)")
    # one client's address over all of it (every record carries its token filter)
    whole = OUT / "grown.log"
    with whole.open("wb") as dst:
        for part in (log, more):
            with part.open("rb") as src:
                shutil.copyfileobj(src, dst, 1 << 24)
    more.unlink()
    selective = counted_against_gnu(args, ["-F"], args.client, whole, env, 1.0,
                                    f" at {args.grow_to:,} lines")
    whole.unlink()
    return {"lines": args.grow_to, "all_s": took, "all_first_s": first,
            "worker_peak_rss_mb": peaks, "growth": growth, "client_peak_mib": client,
            "client_growth": client_growth, "cost_per_line_ratio": per_line,
            "selective_grep": selective}


def file_phase(log: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    """File mode (the embedded default) against GNU grep on the same file in the page
    cache: `grep -c` (target: within 2x) and `grep PATTERN FILE` (target: within 3x), with
    the same output byte for byte."""
    subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)
    out = []
    for pattern in [*PATTERNS, args.client]:
        fixed = ["-F"] if pattern == args.client else []
        for mode, flags, target in (("count", ["-c", *fixed], 2.0), ("lines", fixed, 3.0)):
            gnu, _, gnu_out = best_of(args.runs, ["grep", *flags, "--", pattern, str(log)])
            ours, first, our_out = best_of(args.runs, LOGMR + ["grep", *flags, "--", pattern,
                                                               str(log)])
            if gnu_out != our_out:
                sys.exit(f"bench: file mode grep {' '.join(flags)} {pattern!r} differs from "
                         "GNU grep's output")
            ratio = ours / gnu
            what = (f"grep {' '.join(flags)}{' ' if flags else ''}{pattern!r}"
                    + ("" if mode == "count" else " FILE"))
            print(f"  file mode {what}: GNU grep {gnu * 1000:.0f} ms, logmr {ours * 1000:.0f} "
                  f"ms = {ratio:.2f}x (target <= {target:g}x); first run {first * 1000:.0f} ms")
            out.append({"pattern": pattern, "mode": mode, "gnu_s": gnu, "logmr_s": ours,
                        "logmr_first_s": first, "ratio": ratio, "target": target})
    return out


def file_report_phase(log: Path, args: argparse.Namespace, goaccess_s: float
                      ) -> dict[str, object]:
    """File mode's `report --all` against GoAccess's full JSON report of the same file
    (target: at least 5x faster)."""
    best, first, _, peak = measured(max(2, args.runs // 2), LOGMR + [
        "report", "--all", "--format", "json", str(log)])
    print(f"  file mode report --all: {best:.2f} s (first {first:.2f} s) vs GoAccess "
          f"{goaccess_s:.2f} s = {goaccess_s / best:.1f}x faster (first run "
          f"{goaccess_s / first:.1f}x; target >= 5x); peak RSS {peak:.0f} MiB")
    return {"all_s": best, "all_first_s": first, "ratio": goaccess_s / best,
            "ratio_first": goaccess_s / first, "peak_mib": peak}


def du(path: Path) -> int:
    """Bytes of the files under ``path`` (what the data dir holds)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def density_phase() -> dict[str, object]:
    """The real ployt0 log shipped once to one node: the bytes its data dir holds."""
    port = free_port()
    env = {**os.environ, "LOGMR_SERVERS": f"127.0.0.1:{port}"}
    gearmand = shutil.which("gearmand") or "/usr/sbin/gearmand"
    data = OUT / "density"
    lines = sum(1 for _ in PLOYT0.open("rb"))
    procs = [subprocess.Popen([gearmand, "--listen=127.0.0.1", f"--port={port}",
                               f"--log-file={OUT / 'gearmand-density.log'}",
                               "--verbose=WARNING"])]
    try:
        wait(lambda: timed(LOGMR + ["status", "--format", "json"], env=env)[1].returncode
             == 0, 20, "gearmand")
        procs.append(subprocess.Popen(LOGMR + ["worker", "--data-dir", str(data), "--replicas",
                                               "1"], env=env, stderr=subprocess.DEVNULL))
        if subprocess.run(LOGMR + ["ship", str(PLOYT0)], env=env, check=False).returncode:
            sys.exit("bench: ship failed")
        wait(lambda: timed(LOGMR + ["grep", "-c", ""], env=env)[1].stdout.strip()
             == str(lines).encode(), 120, "the ployt0 log stored")
        wait(lambda: b'"records_to_compact": 0' in timed(
            LOGMR + ["status", "--format", "json"], env=env)[1].stdout, 120, "compaction",
            poll=0.5)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)
    raw, disk = PLOYT0.stat().st_size, du(data)
    print(f"storage: the real ployt0 log ({raw:,} bytes, {lines:,} lines) shipped once: "
          f"{disk:,} bytes in the data dir = 1/{raw / disk:.1f} (target <= 1/15)")
    return {"raw_bytes": raw, "disk_bytes": disk, "ratio": raw / disk}


def cluster_phase(rf: int, log: Path, args: argparse.Namespace, goaccess_rate: float,
                  goaccess_s: float, grow_after: bool) -> dict[str, object]:
    """A fresh 2-node cluster keeping ``rf`` copies: ingest, grep -c, reports."""
    port = free_port()
    env = {**os.environ, "LOGMR_SERVERS": f"127.0.0.1:{port}"}
    gearmand = shutil.which("gearmand") or "/usr/sbin/gearmand"
    data = OUT / f"rf{rf}"
    procs = [subprocess.Popen([gearmand, "--listen=127.0.0.1", f"--port={port}",
                               f"--log-file={OUT / f'gearmand-rf{rf}.log'}",
                               "--verbose=WARNING"])]
    results: dict[str, object] = {"replicas": rf}
    try:
        wait(lambda: timed(LOGMR + ["status", "--format", "json"], env=env)[1].returncode
             == 0, 20, "gearmand")
        for n in (1, 2):
            procs.append(subprocess.Popen(
                LOGMR + ["worker", "--data-dir", str(data / f"node{n}"), "--node-id",
                         f"node{n}", "--replicas", str(rf)], env=env,
                stderr=subprocess.DEVNULL))

        sys.path.insert(0, str(ROOT))
        from logmr import wire
        from logmr.client.status import cluster_status
        from logmr.gearman.connection import Server

        def nodes() -> dict[str, dict[str, int]]:
            # in-process, so that polling does not steal CPU from the cluster being measured
            return cluster_status([Server("127.0.0.1", port)], replication=False).nodes

        wait(lambda: len(nodes()) == 2, 20, "two nodes")
        start = time.perf_counter()
        ship = subprocess.run(LOGMR + ["ship", str(log)], env=env, check=False)
        if ship.returncode != 0:
            sys.exit("bench: ship failed")
        shipped = time.perf_counter() - start
        from logmr.gearman import admin

        def queued() -> bool:
            # gearmand alone answers this: the nodes are not disturbed while they store
            return any((f.name == wire.STORE_FUNCTION or f.name.startswith("logmr.replica."))
                       and f.total for f in admin.status(Server("127.0.0.1", port)))

        # a batch's job completes once it is stored and its copies are queued
        wait(lambda: not queued() and sum(n["lines"] for n in nodes().values())
             >= rf * args.lines, 600, "ingest", poll=0.01)
        ingest = time.perf_counter() - start
        rate = args.lines / ingest
        print(f"RF={rf}: logmr ingest (ship -> 2 nodes, {rf} fsynced copies of every line): "
              f"{ingest:.2f} s ({shipped:.2f} s to queue), {rate:,.0f} lines/s = "
              f"{rate / goaccess_rate:.1f}x GoAccess (target >= 5x)")
        results.update(ingest_s=ingest, ship_s=shipped, ingest_ratio=rate / goaccess_rate)
        spread = {k: v["lines"] for k, v in nodes().items()}
        print(f"  lines per node: {spread}")
        # idle segments are rewritten as columns (--compact-after, 30 s): queries wait
        wait_compacted(nodes, 900, "compaction")
        compacted = time.perf_counter() - start
        print(f"  every record rewritten as columns {compacted:.1f} s after ship began "
              "(--compact-after 30)")
        results["compacted_s"] = compacted
        disk = sum(du(data / f"node{n}") for n in (1, 2))
        print(f"  on disk: {disk / 1e6:.1f} MB for {rf} copies of {log.stat().st_size / 1e6:.0f}"
              f" MB = 1/{rf * log.stat().st_size / disk:.1f} of the raw log a copy")
        results["disk_bytes"] = disk

        subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)
        greps = [counted_against_gnu(args, flags, pattern, log, env, target)
                 for flags, pattern, target in [*(([], p, 3.0) for p in PATTERNS),
                                                (["-F"], args.client, 1.0)]]
        results["grep"] = greps
        results["report"] = bench_reports(log, env, args, goaccess_s, procs[1:])
        if grow_after:
            results["memory"] = grow(log, env, args, procs[1:], nodes,
                                     results["report"], rf)  # type: ignore[arg-type]
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(data, ignore_errors=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description="logmr benchmarks against peer tools")
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5, help="runs per grep timing (best is kept)")
    ap.add_argument("--simple-log", action="store_true",
                    help="generate the simpler log of bench/genlog.py instead of visits")
    ap.add_argument("--log", choices=sorted(LOGS), default="visits",
                    help="the bench log: realistic visits (bench/genvisits.py), the simpler "
                         "genlog, a flood from nearly as many clients as lines "
                         "(bench/genflood.py), or the real ployt0 nginx log of samples/ "
                         "repeated, a day later each time")
    ap.add_argument("--grow-to", type=int, default=10_000_000,
                    help="lines stored when memory is measured the second time (0: skip)")
    args = ap.parse_args()
    for tool in ("gearmand", "goaccess", "grep"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"bench: {tool} is not installed (apt-get install gearman-job-server "
                     "goaccess)")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    # logmr runs from bytecode, as it does for a user (not compiled again each run where
    # PYTHONDONTWRITEBYTECODE is set): compiling its modules cost each command ~35 ms here
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "logmr")], check=True)
    log = OUT / "access.log"
    start = int(time.time()) - 2 * 86400
    kind = args.log = "simple" if args.simple_log else args.log
    if kind == "ployt0":
        repeat_log(PLOYT0, args.lines, log)
    else:
        subprocess.run([sys.executable, str(ROOT / "bench" / LOGS[kind]), str(args.lines),
                        str(log), "--start", str(start)], check=True, capture_output=True)
    print(f"bench log: {kind}")
    size = log.stat().st_size
    print(f"log: {args.lines:,} lines, {size / 1e6:.0f} MB")
    args.client = client_of(log)  # a selective literal: one client's address
    print(f"one client: {args.client}")
    results: dict[str, object] = {"lines": args.lines, "bytes": size}

    took, out = timed(["goaccess", str(log), "--log-format=COMBINED", "-o",
                       str(OUT / "goaccess.json")])
    if out.returncode != 0:
        sys.exit(f"bench: goaccess failed: {out.stderr.decode()[-500:]}")
    goaccess_rate = args.lines / took
    print(f"goaccess: {took:.2f} s, {goaccess_rate:,.0f} lines/s")
    results["goaccess_s"] = took

    results["density"] = density_phase()
    print("file mode (no cluster):")
    results["file_grep"] = file_phase(log, args)
    results["file_report"] = file_report_phase(log, args, took)
    rf1 = cluster_phase(1, log, args, goaccess_rate, took, grow_after=False)
    rf2 = cluster_phase(2, log, args, goaccess_rate, took, grow_after=args.grow_to > args.lines)
    results["rf1"], results["rf2"] = rf1, rf2
    results.update(ingest_s=rf2["ingest_s"], ingest_ratio=rf2["ingest_ratio"],
                   grep=rf2["grep"], report=rf2["report"])
    if "memory" in rf2:
        results["memory"] = rf2["memory"]
    print("two copies against one, same file, same run (target: within 1.2x):")
    for one, two in zip(rf1["grep"], rf2["grep"], strict=True):  # type: ignore[call-overload]
        print(f"  grep -c {one['pattern']!r}: RF=1 {one['logmr_s'] * 1000:.0f} ms, RF=2 "
              f"{two['logmr_s'] * 1000:.0f} ms = {two['logmr_s'] / one['logmr_s']:.2f}x "
              f"(first runs {one['logmr_first_s'] * 1000:.0f} / "
              f"{two['logmr_first_s'] * 1000:.0f} ms = "
              f"{two['logmr_first_s'] / one['logmr_first_s']:.2f}x)")
    a1, a2 = rf1["report"], rf2["report"]  # type: ignore[index]
    print(f"  report --all: RF=1 {a1['all_s']:.2f} s, RF=2 {a2['all_s']:.2f} s = "
          f"{a2['all_s'] / a1['all_s']:.2f}x (first runs {a1['all_first_s']:.2f} / "
          f"{a2['all_first_s']:.2f} s = {a2['all_first_s'] / a1['all_first_s']:.2f}x)")
    results["rf2_over_rf1"] = {
        "grep": [two["logmr_s"] / one["logmr_s"] for one, two in
                 zip(rf1["grep"], rf2["grep"], strict=True)],  # type: ignore[call-overload]
        "grep_first": [two["logmr_first_s"] / one["logmr_first_s"] for one, two in
                       zip(rf1["grep"], rf2["grep"], strict=True)],  # type: ignore[call-overload]
        "report_all": a2["all_s"] / a1["all_s"],
        "report_all_first": a2["all_first_s"] / a1["all_first_s"]}
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
