"""Generate a high-cardinality combined log for benchmarks: nearly every request from a
different client, as in a scan or a flood.

Usage: python bench/genflood.py LINES OUT [--seed N] [--start EPOCH] [--urls N]

Lines are in time order over one day. Clients are random IPv4 addresses (about one repeat
per thousand at 1M lines), URLs come from a pool of --urls paths (2,000 by default), user
agents from four, statuses mostly 200 with 404s and a few 5xx.
"""

from __future__ import annotations

import argparse
import random
import time

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
]
STATUSES = [200] * 70 + [404] * 22 + [301] * 4 + [500] * 2 + [503] * 2
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lines", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=int(time.time()) - 86400)
    ap.add_argument("--urls", type=int, default=2000)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    urls = [f"/product/{i}" if i % 3 else f"/search?q=item{i}&page={i % 7}"
            for i in range(args.urls)]
    stamps: dict[int, str] = {}
    with open(args.out, "w", encoding="ascii") as f:
        for i in range(args.lines):
            epoch = args.start + i * 86400 // max(args.lines, 1)
            stamp = stamps.get(epoch)
            if stamp is None:
                t = time.gmtime(epoch)
                stamp = stamps[epoch] = (f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                                         f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")
                if len(stamps) > 4:
                    stamps.pop(next(iter(stamps)))
            ip = rng.getrandbits(32)
            status = rng.choice(STATUSES)
            size = 0 if status >= 300 else rng.randrange(200, 60_000)
            f.write(f"{ip >> 24}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255} - - [{stamp}] "
                    f'"GET {rng.choice(urls)} HTTP/1.1" {status} {size} "-" '
                    f'"{rng.choice(AGENTS)}"\n')


if __name__ == "__main__":
    main()
