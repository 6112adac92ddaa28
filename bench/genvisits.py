"""Generate an Apache combined log of known visits, and the true click analysis beside it.

Usage: python bench/genvisits.py LINES OUT.log [--seed N] [--start EPOCH] [--timeout 1800]
       [--funnel /a,/b,/c] [--transitions URL]

Writes exactly LINES lines to OUT.log, in time order, and OUT.truth.json (OUT minus a
``.log`` suffix). A visitor is one (IP, user agent) pair; it makes 1..6 visits separated by
more than the timeout (timeout + 60..7200 s between page views); a visit is 1..30 page
views (about 40% bounces) less than the timeout apart (1..600 s), each followed by static
asset hits in the same or the next second. Some visits walk the funnel, some to the end.
Some page views are 404s: they are still page views. About 10% of lines are crawlers
(Googlebot, bingbot), never part of a visit. The truth is counted from the visits as they
are built, not by reading the log back; its "definitions" say how to read the log to agree.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
SPAN = 86400  # visitors arrive over one day; their last visits may run past it
SITE = "http://example.com"
STATIC_EXTENSIONS = (".css", ".js", ".png", ".jpg", ".gif", ".ico", ".svg", ".woff2")
BOT_SHARE = 0.10
FUNNEL_SHARE = 0.15  # of visits that walk the funnel
BOUNCE_SHARE = 0.45  # of the other visits
NOT_FOUND_SHARE = 0.03  # of page views
MAX_GAP = 600  # seconds between page views of a visit (capped at the timeout)
PATH_LEN = 5
DEFAULT_FUNNEL = "/products,/pricing,/signup,/signup/thanks"
BUCKETS = [("0-30s", 0), ("30s-2m", 30), ("2-5m", 120), ("5-15m", 300), ("15-30m", 900),
           ("30m-1h", 1800), ("1h+", 3600)]

PRODUCTS = ["anvil", "rocket-skates", "jet-pack", "giant-magnet", "tornado-kit", "bird-seed",
            "spring-shoes", "dehydrated-boulders", "earthquake-pills", "invisible-paint"]
# Most popular first; a page's weight is 1 / rank.
PAGES = (["/", "/products", "/blog", "/pricing", "/about", "/docs", "/contact", "/login"]
         + [f"/products/{p}" for p in PRODUCTS]
         + [f"/blog/{y}/post-{i}.html" for y in (2024, 2025) for i in range(12)]
         + [f"/docs/{t}" for t in ("install", "config", "api", "faq", "cli", "upgrade")]
         + [f"/search?q={w}" for w in ("anvil", "price", "caf%C3%A9", "refund", "rocket+skates")]
         + ["/products?sort=price", "/products?page=2", "/signup", "/blog/index.html"])
CUM_WEIGHTS = [sum(1 / r for r in range(1, n + 2)) for n in range(len(PAGES))]
ENTRY_PAGES = ["/", "/products", "/blog"] + PAGES[8:]  # where visits land
NOT_FOUND = ([f"/blog/2019/old-post-{i}.html" for i in range(8)]
             + ["/wp-login.php", "/products/discontinued", "/old-pricing", "/docs/v1/api"])
SITE_ASSETS = ["/static/css/site.css", "/static/js/app.js", "/static/img/logo.png",
               "/static/fonts/inter.woff2", "/favicon.ico"]
IMAGES = ([f"/static/img/products/{p}.jpg" for p in PRODUCTS]
          + ["/static/img/icons.svg", "/static/img/spinner.gif", "/static/img/chart.png"])
HUMAN_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
]
BOT_AGENTS = [
    ("66.249.66.", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ("66.249.79.", "Googlebot-Image/1.0"),
    ("157.55.39.", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"),
]
DEFINITIONS = {
    "visitor": "ip+ua",
    "bot": "user agent contains 'bot' (any case); bot lines are in no session",
    "page": "non-static URL (the part before '?' does not end with a static extension), "
            "any method, any status (404s count)",
    "static_extensions": list(STATIC_EXTENSIONS),
    "session": "page views of one visitor; a gap > timeout seconds starts a new session",
    "duration": "last page view ts - first page view ts, in seconds",
    "path_len": PATH_LEN,
    "order": "lists by count descending, then URL (or path) ascending",
    "lines": "totals.lines = page_views + static_lines + bot_lines",
}


def clf_time(epoch: int) -> str:
    """Format an epoch second as Apache's %t in UTC."""
    t = time.gmtime(epoch)
    return (f"[{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000]")


def is_static(url: str) -> bool:
    """True for an asset URL (by extension, query string ignored)."""
    return url.split("?", 1)[0].endswith(STATIC_EXTENSIONS)


@dataclass
class Truth:
    """The true click analysis, counted visit by visit as they are built."""

    funnel: list[str]
    transitions: str
    sessions: int = 0
    bounces: int = 0
    page_views: int = 0
    static_lines: int = 0
    bot_lines: int = 0
    visitors: int = 0
    durations: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    entry: Counter[str] = field(default_factory=Counter)
    exit: Counter[str] = field(default_factory=Counter)
    paths: Counter[tuple[str, ...]] = field(default_factory=Counter)
    previous: Counter[str] = field(default_factory=Counter)
    next: Counter[str] = field(default_factory=Counter)
    reached: list[int] = field(default_factory=list)

    def add_visit(self, first_ts: int, last_ts: int, urls: list[str]) -> None:
        """Count one visit, given its first and last page view times and its page URLs."""
        self.sessions += 1
        self.bounces += len(urls) == 1
        self.page_views += len(urls)
        self.durations[max(i for i, (_, low) in enumerate(BUCKETS)
                           if last_ts - first_ts >= low)] += 1
        self.entry[urls[0]] += 1
        self.exit[urls[-1]] += 1
        self.paths[tuple(urls[:PATH_LEN])] += 1
        for i, url in enumerate(urls):
            if url == self.transitions:
                self.previous[urls[i - 1] if i else "(entry)"] += 1
                self.next[urls[i + 1] if i + 1 < len(urls) else "(exit)"] += 1
        step = 0
        for url in urls:
            if step < len(self.funnel) and url == self.funnel[step]:
                step += 1
        for i in range(step):
            self.reached[i] += 1

    def to_json(self, lines: int, timeout: int) -> dict[str, Any]:
        """The truth file: the shape of SessionStats.to_report, nothing truncated."""
        n = self.sessions
        return {
            "definitions": {"timeout": timeout, **DEFINITIONS},
            "totals": {"lines": lines, "page_views": self.page_views,
                       "bot_lines": self.bot_lines, "static_lines": self.static_lines,
                       "visitors": self.visitors},
            "sessions": {
                "count": n, "bounces": self.bounces,
                "bounce_rate": round(self.bounces / n, 4) if n else 0.0,
                "pages_per_session": round(self.page_views / n, 2) if n else 0.0,
                "duration_buckets": {name: c for (name, _), c in
                                     zip(BUCKETS, self.durations, strict=True)},
            },
            "entry_pages": dict(ranked(self.entry)),
            "exit_pages": dict(ranked(self.exit)),
            "paths": [{"path": list(p), "sessions": c} for p, c in ranked(self.paths)],
            "transitions": {
                "url": self.transitions,
                "previous": [{"url": u, "count": c} for u, c in ranked(self.previous)],
                "next": [{"url": u, "count": c} for u, c in ranked(self.next)],
            },
            "funnel": [{"step": s, "visits": c}
                       for s, c in zip(self.funnel, self.reached, strict=True)],
        }


def ranked(counts: Counter[Any]) -> list[tuple[Any, int]]:
    """Count descending, then key ascending (ASCII URLs: the same order as bytes)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


class Generator:
    """Builds visitors one at a time and streams their lines, merged in time order."""

    def __init__(self, lines: int, seed: int, start: int, timeout: int, funnel: list[str],
                 transitions: str) -> None:
        self.rng = random.Random(seed)
        self.lines, self.start, self.timeout, self.funnel = lines, start, timeout, funnel
        self.max_gap = max(1, min(MAX_GAP, timeout))
        self.bot_budget = round(lines * BOT_SHARE)
        self.human_budget = lines - self.bot_budget
        self.used = 0  # human lines planned so far
        self.truth = Truth(funnel, transitions, reached=[0] * len(funnel))
        self.heap: list[tuple[int, int, str, str]] = []  # (ts, seq, "ip - - ", rest)
        self.seq = 0
        depth = len(funnel)
        self.depth_weights = [1.0] * (depth - 1) + [1.5] if depth > 1 else [1.0]

    def write(self, out: TextIO) -> None:
        """Write every line; visitors arrive evenly as the human line budget is spent."""
        rng, heap, inf = self.rng, self.heap, float("inf")
        bot = 0
        bot_ts: float = self._bot_ts(0) if self.bot_budget else inf
        stamp_sec, stamp = -1, ""
        buf: list[str] = []
        while True:
            visitor_ts: float = (self.start + SPAN * self.used // self.human_budget
                                 if self.used < self.human_budget else inf)
            arrival = min(visitor_ts, bot_ts)
            if heap and heap[0][0] < arrival:
                ts, _, prefix, rest = heapq.heappop(heap)
            elif arrival == inf:
                break
            elif bot_ts <= visitor_ts:
                ts = int(bot_ts)
                prefix, rest = self._bot_line(rng)
                bot += 1
                bot_ts = self._bot_ts(bot) if bot < self.bot_budget else inf
            else:
                self._plan_visitor(int(visitor_ts))
                continue
            if ts != stamp_sec:
                stamp_sec, stamp = ts, clf_time(ts)
            buf.append(prefix + stamp + rest)
            if len(buf) >= 8192:
                out.writelines(buf)
                buf.clear()
        out.writelines(buf)
        self.truth.bot_lines = bot

    def _bot_ts(self, k: int) -> int:
        return self.start + int(SPAN * (k + self.rng.random()) / self.bot_budget)

    def _bot_line(self, rng: random.Random) -> tuple[str, str]:
        net, agent = rng.choice(BOT_AGENTS)
        url = rng.choice(IMAGES) if agent.startswith("Googlebot-Image") else (
            rng.choice(NOT_FOUND) if rng.random() < 0.05 else rng.choice(PAGES))
        status = 404 if url in NOT_FOUND else 200
        return (f"{net}{rng.randrange(1, 255)} - - ",
                f' "GET {url} HTTP/1.1" {status} {rng.randrange(300, 90000)} "-" "{agent}"\n')

    def _identity(self, n: int) -> tuple[str, str]:
        """Visitor n's IP and agent: two visitors per IP (a NAT), never the same pair."""
        group, member = divmod(n, 2)
        x = (group * 2654435761 + 12345) % (223 << 24) + (1 << 24)
        ip = f"{x >> 24}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}"
        return ip, HUMAN_AGENTS[(group * 3 + member) % len(HUMAN_AGENTS)]

    def _plan_visitor(self, ts: int) -> None:
        rng = self.rng
        ip, agent = self._identity(self.truth.visitors)
        self.truth.visitors += 1
        prefix, tail = f"{ip} - - ", f'" "{agent}"\n'
        visits = rng.choices((1, 2, 3, 4, 5, 6), weights=(60, 22, 9, 5, 3, 1))[0]
        for v in range(visits):
            if self.used >= self.human_budget:
                return
            if v:
                ts += self.timeout + rng.randint(60, 7200)
            ts = self._emit_visit(ts, self._visit_pages(), v, prefix, tail)

    def _visit_pages(self) -> list[str]:
        rng = self.rng
        if self.funnel and rng.random() < FUNNEL_SHARE:
            return self._funnel_walk()
        first = rng.choice(ENTRY_PAGES) if rng.random() < 0.7 else "/"
        if rng.random() < BOUNCE_SHARE:
            return [first]
        more = 1 + min(int(rng.expovariate(0.25)), 28)
        return [first] + rng.choices(PAGES, cum_weights=CUM_WEIGHTS, k=more)

    def _funnel_walk(self) -> list[str]:
        """Detours of 0..2 pages before each step; some walks stop early."""
        rng = self.rng
        depth = rng.choices(range(1, len(self.funnel) + 1), weights=self.depth_weights)[0]
        pages = [rng.choice(ENTRY_PAGES)] if rng.random() < 0.5 else []
        for step in self.funnel[:depth]:
            pages += rng.choices(PAGES, cum_weights=CUM_WEIGHTS, k=rng.choice((0, 0, 0, 1, 2)))
            pages.append(step)
        pages += rng.choices(PAGES, cum_weights=CUM_WEIGHTS, k=rng.choice((0, 0, 1, 2)))
        return pages

    def _emit_visit(self, ts: int, urls: list[str], visit: int, prefix: str, tail: str) -> int:
        """Queue a visit's lines within the budget, count it; return its last page's ts."""
        rng = self.rng
        slow = rng.choice((20, 60, 180, self.max_gap))  # this visitor's reading speed
        first_ts, done = ts, []
        referer = "-"
        for i, url in enumerate(urls):
            if self.used >= self.human_budget:
                break
            if i:
                # Slow readers sometimes wait exactly the cap: with --timeout <= 600 that
                # is a gap of exactly the timeout, which must not split the visit.
                exact = slow == self.max_gap and rng.random() < 0.05
                ts += self.max_gap if exact else rng.randint(1, min(slow, self.max_gap))
            status = 200
            if rng.random() < NOT_FOUND_SHARE:
                url, status = rng.choice(NOT_FOUND), 404
            done.append(url)
            self._push(ts, prefix, f' "GET {url} HTTP/1.1" {status} '
                                   f'{rng.randrange(2000, 60000)} "{referer}{tail}')
            referer = SITE + url
            assets = (SITE_ASSETS[: rng.randint(2, 5)] if i == 0 and visit == 0 else
                      rng.choices(IMAGES, k=rng.choice((0, 0, 1, 1, 2, 3))))
            for asset in assets[: self.human_budget - self.used]:
                cached = visit > 0 and rng.random() < 0.5
                size = "-" if cached else str(rng.randrange(400, 150000))
                self._push(ts + rng.randint(0, 1), prefix,
                           f' "GET {asset} HTTP/1.1" {304 if cached else 200} {size} '
                           f'"{referer}{tail}')
                self.truth.static_lines += 1
        if done:
            self.truth.add_visit(first_ts, ts, done)
        return ts

    def _push(self, ts: int, prefix: str, rest: str) -> None:
        self.seq += 1
        self.used += 1
        heapq.heappush(self.heap, (ts, self.seq, prefix, rest))


def truth_path(out: str) -> str:
    """OUT.log -> OUT.truth.json (any other name gets .truth.json appended)."""
    return (out[:-4] if out.endswith(".log") else out) + ".truth.json"


def generate(lines: int, out: str, seed: int = 1, start: int = 1_700_000_000,
             timeout: int = 1800, funnel: str = DEFAULT_FUNNEL,
             transitions: str | None = None) -> dict[str, Any]:
    """Write the log to ``out`` and its truth beside it; return the truth."""
    steps = [s for s in funnel.split(",") if s]
    for url in steps + ([transitions] if transitions else []):
        if not url.startswith("/") or is_static(url):
            raise SystemExit(f"genvisits: {url!r} is not a page URL (/path, no static "
                             "extension)")
    if timeout < 1 or lines < 0:
        raise SystemExit("genvisits: LINES must be >= 0 and --timeout >= 1")
    chosen = transitions or (steps[1] if len(steps) > 1 else steps[0] if steps else "/")
    gen = Generator(lines, seed, start, timeout, steps, chosen)
    with open(out, "w", encoding="ascii", buffering=1 << 20) as f:
        gen.write(f)
    truth = gen.truth.to_json(lines, timeout)
    with open(truth_path(out), "w", encoding="utf-8") as f:
        json.dump(truth, f, indent=1)
        f.write("\n")
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("lines", type=int)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=int(time.time()) - 86400)
    ap.add_argument("--timeout", type=int, default=1800, help="session timeout, seconds")
    ap.add_argument("--funnel", default=DEFAULT_FUNNEL, help="comma-separated page URLs")
    ap.add_argument("--transitions", default=None,
                    help="URL whose previous/next pages are counted (default: funnel step 2)")
    args = ap.parse_args()
    began = time.perf_counter()
    truth = generate(args.lines, args.out, args.seed, args.start, args.timeout, args.funnel,
                     args.transitions)
    print(f"genvisits: {args.lines} lines, {truth['sessions']['count']} visits of "
          f"{truth['totals']['visitors']} visitors in {time.perf_counter() - began:.1f} s "
          f"-> {args.out}, {truth_path(args.out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
