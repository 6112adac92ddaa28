"""Classify what a log line says about its client and request: agent, static file, referrer.

These functions are pure and take the raw bytes of one column. Callers memoise them per
distinct value, so they aim to be cheap rather than exhaustive: a handful of substring tests
on the lowercased value, in an order that matters (Edge and Opera user agents also say
Chrome, Chrome ones also say Safari, iOS ones also say "like Mac OS X", Android ones also say
Linux).

Crawlers are found first, by a list of known names (``KNOWN_CRAWLERS``) and then by a
generic ``bot``/``spider``/``crawl`` word, whose name becomes the crawler's name. A crawler
gets os and browser ``"Crawlers"``, as GoAccess reports them.

Static files are those whose path (before ``?`` or ``#``) ends in one of
``STATIC_EXTENSIONS``: the extensions GoAccess's default ``config/goaccess.conf`` enables
with ``static-file`` (https://github.com/allinurl/goaccess). Two differences from GoAccess:
the match ignores case, and a query string does not stop a file counting as static (as
GoAccess's ``--all-static-files``).

>>> classify_agent(b"Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) "
...                b"Chrome/39.0.2171.95 Safari/537.36 OPR/26.0.1656.60")
Agent(os='Windows 7', browser='Opera', bot=None)
>>> is_static(b"/fonts/icons.woff2?v=4"), referring_site(b"https://www.Example.org:8080/x")
(True, b'www.example.org')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The extensions GoAccess enables by default (config/goaccess.conf, "static-file"), lower case.
STATIC_EXTENSIONS = frozenset(
    b"css js jpg png gif ico jpeg pdf csv mpeg mpg swf woff woff2 xls xlsx doc docx ppt pptx "
    b"txt zip ogg mp3 mp4 exe iso gz rar svg bmp tar tgz tiff tif ttf flv dmg xz zst".split()
)

# (lowercase substring, crawler name); the first that occurs wins, so a specific name
# comes before a more general one it contains.
KNOWN_CRAWLERS: tuple[tuple[bytes, str], ...] = (
    (b"googlebot-image", "Googlebot-Image"),
    (b"googlebot", "Googlebot"),
    (b"adsbot-google", "AdsBot-Google"),
    (b"mediapartners-google", "Mediapartners-Google"),
    (b"google-inspectiontool", "Google-InspectionTool"),
    (b"googleother", "GoogleOther"),
    (b"bingbot", "bingbot"),
    (b"bingpreview", "BingPreview"),
    (b"msnbot", "msnbot"),
    (b"slurp", "Yahoo! Slurp"),
    (b"duckduckbot", "DuckDuckBot"),
    (b"baiduspider", "Baiduspider"),
    (b"yandexbot", "YandexBot"),
    (b"yandeximages", "YandexImages"),
    (b"yandex.com/bots", "Yandex"),
    (b"sogou web spider", "Sogou Spider"),
    (b"360spider", "360Spider"),
    (b"yisouspider", "YisouSpider"),
    (b"petalbot", "PetalBot"),
    (b"applebot", "Applebot"),
    (b"seznambot", "SeznamBot"),
    (b"exabot", "Exabot"),
    (b"mojeekbot", "MojeekBot"),
    (b"daumoa", "Daumoa"),
    (b"coccocbot", "coccocbot"),
    (b"ahrefsbot", "AhrefsBot"),
    (b"semrushbot", "SemrushBot"),
    (b"mj12bot", "MJ12bot"),
    (b"dotbot", "DotBot"),
    (b"blexbot", "BLEXBot"),
    (b"dataforseobot", "DataForSeoBot"),
    (b"ezooms", "Ezooms"),
    (b"siteexplorer", "SiteExplorer"),
    (b"gptbot", "GPTBot"),
    (b"chatgpt-user", "ChatGPT-User"),
    (b"oai-searchbot", "OAI-SearchBot"),
    (b"claudebot", "ClaudeBot"),
    (b"anthropic-ai", "anthropic-ai"),
    (b"ccbot", "CCBot"),
    (b"perplexitybot", "PerplexityBot"),
    (b"bytespider", "Bytespider"),
    (b"amazonbot", "Amazonbot"),
    (b"meta-externalagent", "meta-externalagent"),
    (b"facebookexternalhit", "facebookexternalhit"),
    (b"facebot", "Facebot"),
    (b"twitterbot", "Twitterbot"),
    (b"linkedinbot", "LinkedInBot"),
    (b"pinterestbot", "Pinterestbot"),
    (b"slackbot", "Slackbot"),
    (b"discordbot", "Discordbot"),
    (b"telegrambot", "TelegramBot"),
    (b"whatsapp", "WhatsApp"),
    (b"embedly", "Embedly"),
    (b"ia_archiver", "ia_archiver"),
    (b"special_archiver", "special_archiver"),
    (b"archive.org_bot", "archive.org_bot"),
    (b"uptimerobot", "UptimeRobot"),
    (b"pingdom", "Pingdom"),
    (b"headlesschrome", "HeadlessChrome"),
    (b"phantomjs", "PhantomJS"),
    (b"nutch", "Nutch"),
    (b"spinn3r", "Spinn3r"),
    (b"xenu link sleuth", "Xenu Link Sleuth"),
)

# A word holding "bot" (not followed by a letter other than "s": not "Botswana"), "spider"
# or "crawl" names a crawler: the word up to the end of that token and of the name part
# after it (so "Mail.RU_Bot/2.0" gives "Mail.RU_Bot", "/bot.html" gives "bot").
_WORD = re.compile(rb"[\w.\-]+")
_CRAWLER_TOKEN = re.compile(rb"bots?(?![a-z])|spider|crawl", re.IGNORECASE)
_NAME_TAIL = re.compile(rb"[\w\-]*")
# Device names with "bot" in them that are not crawlers.
_NOT_CRAWLERS = (b"cubot",)

_WINDOWS_NT = re.compile(rb"windows nt (\d+\.\d+)")
_NT_NAMES = {
    b"10.0": "Windows 10", b"6.4": "Windows 10", b"6.3": "Windows 8.1", b"6.2": "Windows 8",
    b"6.1": "Windows 7", b"6.0": "Windows Vista", b"5.2": "Windows XP", b"5.1": "Windows XP",
    b"5.01": "Windows 2000", b"5.0": "Windows 2000", b"4.0": "Windows NT 4.0",
}
_OLD_WINDOWS = (
    (b"windows 98", "Windows 98"), (b"win98", "Windows 98"), (b"windows 95", "Windows 95"),
    (b"win95", "Windows 95"), (b"windows me", "Windows ME"), (b"win 9x 4.90", "Windows ME"),
    (b"windows ce", "Windows CE"), (b"windows xp", "Windows XP"),
)
_WINDOWS_MARKS = (b"windows", b"win32", b"win64", b"winnt", b"cygwin")
_IOS_MARKS = (b"iphone", b"ipad", b"ipod", b"like mac os x", b"mobilesafari")
_MAC_MARKS = (b"macintosh", b"mac os x", b"mac_powerpc", b"darwin")
_LINUX_MARKS = (b"linux", b"ubuntu", b"debian", b"fedora", b"centos")
_BSD_MARKS = (b"freebsd", b"openbsd", b"netbsd", b"dragonfly")

# Command-line tools and HTTP libraries, by how their user agent starts (lower case).
_TOOLS = (
    ((b"curl/",), "curl"),
    ((b"wget/",), "Wget"),
    ((b"python-", b"python/", b"aiohttp/"), "Python"),
    ((b"go-http-client/",), "Go"),
    ((b"java/", b"apache-httpclient/", b"jakarta commons-httpclient/"), "Java"),
)
# Browsers in the order they must be tested, each with the lowercase tokens that show it.
_BROWSERS = (
    ("Edge", (b"edg/", b"edge/", b"edga/", b"edgios/")),
    ("Opera", (b"opr/", b"opera", b"opios/")),
    ("Samsung Internet", (b"samsungbrowser/",)),
    ("Internet Explorer", (b"msie ", b"trident/", b"iemobile")),
    ("Firefox", (b"firefox/", b"fxios/")),
    ("Chrome", (b"chrome/", b"crios/", b"chromium/")),
)

_REFERRER = re.compile(rb"\s*[A-Za-z][A-Za-z0-9+.\-]*://([^/?#\s]*)")


@dataclass(frozen=True)
class Agent:
    """What a user agent string says: operating system, browser and, for a crawler, its name.

    ``os`` is one of "Windows" (maybe with a version, "Windows 7"), "Android", "iOS",
    "macOS", "Linux", "Chrome OS", "BSD", "Crawlers", "Unknown"; ``browser`` one of "Chrome",
    "Firefox", "Safari", "Edge", "Opera", "Internet Explorer", "Samsung Internet", "curl",
    "Wget", "Python", "Go", "Java", "Crawlers", "Others". "Windows Phone" is an os too;
    Windows 11 says "Windows NT 10.0", so it is "Windows 10".
    """

    os: str
    browser: str
    bot: str | None


UNKNOWN_AGENT = Agent("Unknown", "Others", None)


def classify_agent(ua: bytes) -> Agent:
    """Classify a User-Agent header value; ``-`` or empty gives ``UNKNOWN_AGENT``.

    >>> classify_agent(b"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
    Agent(os='Crawlers', browser='Crawlers', bot='Googlebot')
    >>> classify_agent(b"Wget/1.14 (linux-gnu)")
    Agent(os='Linux', browser='Wget', bot=None)
    """
    ua = ua.strip()
    if not ua or ua == b"-":
        return UNKNOWN_AGENT
    low = ua.lower()
    bot = crawler_name(ua, low)
    if bot is not None:
        return Agent("Crawlers", "Crawlers", bot)
    os = _os(low)
    return Agent(os, _browser(low, os), None)


def crawler_name(ua: bytes, low: bytes | None = None) -> str | None:
    """The crawler ``ua`` announces itself as, or None; ``low`` is ``ua.lower()`` if known.

    >>> crawler_name(b"Mozilla/5.0 (compatible; Mail.RU_Bot/2.0; +http://go.mail.ru/)")
    'Mail.RU_Bot'
    """
    if low is None:
        low = ua.lower()
    for needle, name in KNOWN_CRAWLERS:
        if needle in low:
            return name
    if not any(token in low for token in (b"bot", b"spider", b"crawl")):
        return None
    for word_match in _WORD.finditer(ua):
        word = word_match.group()
        m = _CRAWLER_TOKEN.search(word)
        if m is None or word.lower().startswith(_NOT_CRAWLERS):
            continue
        tail = _NAME_TAIL.match(word, m.end())
        end = tail.end() if tail is not None else m.end()
        return word[:end].decode("ascii", "replace")
    return None


def _os(low: bytes) -> str:
    if b"windows phone" in low:
        return "Windows Phone"
    if b" cros " in low or b"(cros " in low:
        return "Chrome OS"
    if b"android" in low:
        return "Android"
    if any(mark in low for mark in _IOS_MARKS):
        return "iOS"
    if any(mark in low for mark in _WINDOWS_MARKS):
        return _windows_version(low)
    if any(mark in low for mark in _MAC_MARKS):
        return "macOS"
    if any(mark in low for mark in _LINUX_MARKS):
        return "Linux"
    if any(mark in low for mark in _BSD_MARKS):
        return "BSD"
    return "Unknown"


def _windows_version(low: bytes) -> str:
    m = _WINDOWS_NT.search(low)
    if m is not None:
        return _NT_NAMES.get(m.group(1), "Windows")
    for needle, name in _OLD_WINDOWS:
        if needle in low:
            return name
    return "Windows"


def _browser(low: bytes, os: str) -> str:
    for starts, name in _TOOLS:
        if low.startswith(starts):
            return name
    for name, tokens in _BROWSERS:
        if any(token in low for token in tokens):
            return name
    # Safari says "Version/" (or is the CFNetwork app itself); other WebKit browsers and
    # in-app views say "Safari/" without it, and Android's stock browser is not Safari.
    if os != "Android" and (
        (b"safari" in low and b"version/" in low)
        or low.startswith((b"safari/", b"mobilesafari/"))
    ):
        return "Safari"
    return "Others"


def is_static(url: bytes) -> bool:
    """True if the path of ``url`` (before ``?`` or ``#``) ends in a static-file extension.

    >>> is_static(b"/img/Logo.PNG?v=2"), is_static(b"/blog/post.html"), is_static(b"/a.js/")
    (True, False, False)
    """
    end = len(url)
    for sep in (b"?", b"#"):
        i = url.find(sep, 0, end)
        if i >= 0:
            end = i
    dot = url.rfind(b".", 0, end)
    if dot < 0 or url.find(b"/", dot, end) >= 0:
        return False
    return url[dot + 1:end].lower() in STATIC_EXTENSIONS


def referring_site(referer: bytes) -> bytes | None:
    """The lowercase host of a referrer URL, without user or port; None if it has none.

    >>> referring_site(b"https://www.example.org/x?y"), referring_site(b"-")
    (b'www.example.org', None)
    """
    m = _REFERRER.match(referer)
    if m is None:
        return None
    host = m.group(1).rpartition(b"@")[2]
    if host.startswith(b"["):  # IPv6 literal: keep the brackets, drop the port
        close = host.find(b"]")
        host = host[:close + 1] if close > 0 else b""
    else:
        host = host.partition(b":")[0].rstrip(b".")
    return host.lower() or None


def status_class(status: int) -> str:
    """The class of an HTTP status, "1xx" to "5xx"; "Unknown" outside 100-599 (0 is ``-``).

    >>> status_class(404), status_class(0)
    ('4xx', 'Unknown')
    """
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return "Unknown"


def is_bot(ua: bytes) -> bool:
    """True for a known crawler's user agent."""
    return classify_agent(ua).bot is not None
