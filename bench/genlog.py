"""Generate a synthetic Apache combined access log for benchmarks.

Usage: python bench/genlog.py LINES OUT [--seed N] [--start EPOCH]

Lines are in time order, one per request, spread over one day. The pools of paths,
agents and referrers are made up here; the shape (sizes, status mix, a few long query
strings) follows what real logs in samples/ look like.
"""

from __future__ import annotations

import argparse
import random
import time

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
PAGES = [f"/blog/{y}/{m:02d}/post-{i}.html" for y in (2023, 2024, 2025) for m in range(1, 13)
         for i in range(6)] + ["/", "/about", "/contact", "/search?q=gearman", "/feed.xml"]
STATIC = [f"/static/{kind}/{name}.{ext}" for kind, ext in (("css", "css"), ("js", "js"),
          ("img", "png"), ("img", "jpg")) for name in ("main", "theme", "logo", "hero", "x1")]
PRESENT = [f"/presentations/talk-{i}/slide-{j}.png" for i in range(20) for j in range(10)]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "curl/8.5.0",
]
REFERRERS = ["-", "https://www.example.org/", "https://news.example.com/item?id=42",
             "https://duckduckgo.com/"]
STATUSES = [200] * 80 + [304] * 8 + [404] * 6 + [301] * 3 + [500] * 2 + [403]


def clf_time(epoch: int) -> str:
    """Format an epoch second as Apache's %t in UTC."""
    t = time.gmtime(epoch)
    return (f"[{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000]")


def generate(lines: int, seed: int, start: int) -> list[str]:
    """Return `lines` combined log lines starting at epoch `start`."""
    rng = random.Random(seed)
    ips = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}."
           f"{rng.randrange(1, 255)}" for _ in range(5000)]
    step = 86400 / max(lines, 1)
    out = []
    cache: dict[int, str] = {}
    for n in range(lines):
        sec = start + int(n * step)
        stamp = cache.get(sec) or cache.setdefault(sec, clf_time(sec))
        kind = rng.random()
        path = rng.choice(PAGES if kind < 0.4 else STATIC if kind < 0.8 else PRESENT)
        status = rng.choice(STATUSES)
        size = "-" if status == 304 else str(rng.randrange(200, 250000))
        method = "GET" if rng.random() < 0.95 else "POST"
        out.append(f'{rng.choice(ips)} - - {stamp} "{method} {path} HTTP/1.1" {status} {size} '
                   f'"{rng.choice(REFERRERS)}" "{rng.choice(AGENTS)}"\n')
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lines", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=int(time.time()) - 86400)
    args = ap.parse_args()
    with open(args.out, "w", encoding="ascii") as f:
        f.writelines(generate(args.lines, args.seed, args.start))


if __name__ == "__main__":
    main()
