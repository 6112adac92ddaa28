"""Unit tests of logmr.mapfn.agents: user agents (real ones from samples/), static files,
referring sites and status classes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logmr.mapfn.agents import (
    KNOWN_CRAWLERS,
    STATIC_EXTENSIONS,
    UNKNOWN_AGENT,
    Agent,
    classify_agent,
    crawler_name,
    is_static,
    referring_site,
    status_class,
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
OSES = {"Windows", "Android", "iOS", "macOS", "Linux", "Chrome OS", "BSD", "Crawlers",
        "Unknown"}
KNOWN_NAMES = {name for _, name in KNOWN_CRAWLERS}
BROWSERS = {"Chrome", "Firefox", "Safari", "Edge", "Opera", "Internet Explorer",
            "Samsung Internet", "curl", "Wget", "Python", "Go", "Java", "Crawlers", "Others"}


def sample_agents() -> set[bytes]:
    """The distinct user agents of the sample logs (the last quoted field of each line)."""
    last_quoted = re.compile(rb'"([^"]*)"\s*$')
    agents: set[bytes] = set()
    for log in sorted(SAMPLES.glob("*.log")):
        for line in log.read_bytes().splitlines():
            m = last_quoted.search(line)
            if m is not None:
                agents.add(m.group(1))
    return agents


def os_family(os: str) -> str:
    """"Windows 7" -> "Windows": the family an os name belongs to."""
    return "Windows" if os.startswith("Windows") else os


# Real user agents from samples/*.log, among the most frequent, classified by hand.
REAL: list[tuple[bytes, Agent]] = [
    (b"Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/32.0.1700.107 Safari/537.36", Agent("Windows 7", "Chrome", None)),
    (b"Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/39.0.2171.95 Safari/537.36 OPR/26.0.1656.60", Agent("Windows 7", "Opera", None)),
    (b"Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Dragon/36.1.1.21 Chrome/36.0.1985.97 Safari/537.36", Agent("Windows 7", "Chrome", None)),
    (b"Mozilla/5.0 (Windows NT 6.0; rv:34.0) Gecko/20100101 Firefox/34.0",
     Agent("Windows Vista", "Firefox", None)),
    (b"Mozilla/5.0 (Windows NT 5.1; rv:35.0) Gecko/20100101 Firefox/35.0",
     Agent("Windows XP", "Firefox", None)),
    (b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/33.0.1750.91 Safari/537.36", Agent("macOS", "Chrome", None)),
    (b"UniversalFeedParser/4.2-pre-314-svn +http://feedparser.org/",
     Agent("Unknown", "Others", None)),
    (b"Mozilla/5.0 (iPhone; CPU iPhone OS 6_0 like Mac OS X) AppleWebKit/536.26 (KHTML, like "
     b"Gecko) Version/6.0 Mobile/10A5376e Safari/8536.25 (compatible; Googlebot/2.1; "
     b"+http://www.google.com/bot.html)", Agent("Crawlers", "Crawlers", "Googlebot")),
    (b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/32.0.1700.107 Safari/537.36", Agent("Linux", "Chrome", None)),
    (b"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:27.0) Gecko/20100101 Firefox/27.0",
     Agent("Linux", "Firefox", None)),
    (b"-", UNKNOWN_AGENT),
    (b"Mozilla/5.0 (Windows NT 6.3; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/32.0.1700.107 Safari/537.36", Agent("Windows 8.1", "Chrome", None)),
    (b"Mozilla/5.0 (compatible; archive.org_bot +http://www.archive.org/details/archive.org_bot)",
     Agent("Crawlers", "Crawlers", "archive.org_bot")),
    (b"Mozilla/5.0 (compatible; Ezooms/1.0; help@moz.com)",
     Agent("Crawlers", "Crawlers", "Ezooms")),
    (b"Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
     Agent("Crawlers", "Crawlers", "Yahoo! Slurp")),
    (b"msnbot/2.0b (+http://search.msn.com/msnbot.htm)", Agent("Crawlers", "Crawlers", "msnbot")),
    (b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Ubuntu "
     b"Chromium/32.0.1700.102 Chrome/32.0.1700.102 Safari/537.36", Agent("Linux", "Chrome", None)),
    (b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.73.11 (KHTML, like Gecko) "
     b"Version/7.0.1 Safari/537.73.11", Agent("macOS", "Safari", None)),
    (b"Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; WOW64; Trident/5.0; "
     b"chromeframe/19.0.1084.52)", Agent("Windows 7", "Internet Explorer", None)),
    (b"Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
     Agent("Crawlers", "Crawlers", "Baiduspider")),
    (b"Mozilla/5.0 (Windows NT 6.3; WOW64; Trident/7.0; rv:11.0) like Gecko",
     Agent("Windows 8.1", "Internet Explorer", None)),
    (b"Mozilla/5.0 (Windows; U; Windows NT 5.2; en-US; rv:1.8.1.4) Gecko/20070515 "
     b"Firefox/2.0.0.4", Agent("Windows XP", "Firefox", None)),
    (b"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
     Agent("Crawlers", "Crawlers", "YandexBot")),
    (b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
     Agent("Windows XP", "Internet Explorer", None)),
    (b"Mozilla/5.0 (X11; CrOS x86_64 6310.68.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/39.0.2171.96 Safari/537.36", Agent("Chrome OS", "Chrome", None)),
    (b"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
     Agent("Crawlers", "Crawlers", "bingbot")),
    (b"Mozilla/5.0 (iPad; CPU OS 7_0_4 like Mac OS X) AppleWebKit/537.51.1 (KHTML, like Gecko) "
     b"Version/7.0 Mobile/11B554a Safari/9537.53", Agent("iOS", "Safari", None)),
    (b"Mozilla/5.0 (compatible; MJ12bot/v1.4.4; http://www.majestic12.co.uk/bot.php?+)",
     Agent("Crawlers", "Crawlers", "MJ12bot")),
    (b"Safari/9537.73.11 CFNetwork/673.0.3 Darwin/13.0.0 (x86_64) (MacBookPro8%2C1)",
     Agent("macOS", "Safari", None)),
    (b"Mozilla/5.0 (compatible; AhrefsBot/5.0; +http://ahrefs.com/robot/)",
     Agent("Crawlers", "Crawlers", "AhrefsBot")),
    (b"Mozilla/5.0 (Linux; Android 4.4.2; Nexus 4 Build/KOT49H) AppleWebKit/537.36 (KHTML, like "
     b"Gecko) Chrome/32.0.1700.99 Mobile Safari/537.36", Agent("Android", "Chrome", None)),
    (b"Opera/9.80 (X11; Linux x86_64) Presto/2.12.388 Version/12.16",
     Agent("Linux", "Opera", None)),
    (b"Twitterbot/1.0", Agent("Crawlers", "Crawlers", "Twitterbot")),
    (b"Mozilla/5.0 (compatible; Linux x86_64; Mail.RU_Bot/2.0; +http://go.mail.ru/help/robots)",
     Agent("Crawlers", "Crawlers", "Mail.RU_Bot")),
    (b"Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
     Agent("Crawlers", "Crawlers", "Sogou Spider")),
    (b"Mozilla/5.0 (iPhone; CPU iPhone OS 7_0_4 like Mac OS X) AppleWebKit/537.51.1 (KHTML, like "
     b"Gecko) CriOS/32.0.1700.21 Mobile/11B554a Safari/9537.53", Agent("iOS", "Chrome", None)),
    (b"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
     Agent("Crawlers", "Crawlers", "facebookexternalhit")),
    (b"Googlebot-Image/1.0", Agent("Crawlers", "Crawlers", "Googlebot-Image")),
    (b"Mozilla/5.0 (Android; Mobile; rv:27.0) Gecko/27.0 Firefox/27.0",
     Agent("Android", "Firefox", None)),
    (b"Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; WOW64; Trident/6.0)",
     Agent("Windows 7", "Internet Explorer", None)),
    (b"magpie-crawler/1.1 (U; Linux amd64; en-GB; +http://www.brandwatch.net)",
     Agent("Crawlers", "Crawlers", "magpie-crawler")),
    (b"Mozilla/5.0 (X11; FreeBSD amd64) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/30.0.1599.101 Safari/537.36", Agent("BSD", "Chrome", None)),
    (b"Opera/9.80 (iPhone; Opera Mini/7.0.3/34.1244; U; de) Presto/2.8.119 Version/11.10",
     Agent("iOS", "Opera", None)),
    (b"Mozilla/5.0 (Linux; U; Android 4.3; es-es; GT-I9300 Build/JSS15J) AppleWebKit/534.30 "
     b"(KHTML, like Gecko) Version/4.0 Mobile Safari/534.30", Agent("Android", "Others", None)),
    (b"Wget/1.14 (linux-gnu)", Agent("Linux", "Wget", None)),
    (b"Python-urllib/2.7", Agent("Unknown", "Python", None)),
    (b"python-requests/1.2.0 CPython/2.7.4 Linux/3.8.0-33-generic",
     Agent("Linux", "Python", None)),
    (b"curl/7.22.0 (i686-pc-linux-gnu) libcurl/7.22.0 OpenSSL/1.0.1 zlib/1.2.3.4 libidn/1.23 "
     b"librtmp/2.3", Agent("Linux", "curl", None)),
    (b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; en) Opera 8.50",
     Agent("Windows XP", "Opera", None)),
    (b"Mozilla/4.0 (compatible; MSIE 5.0; Windows 98)",
     Agent("Windows 98", "Internet Explorer", None)),
    (b"Mozilla/4.0 (compatible; MSIE 5.01; Windows NT 5.0)",
     Agent("Windows 2000", "Internet Explorer", None)),
    (b"Mozilla/5.0 (compatible; MSIE 10.0; Windows Phone 8.0; Trident/6.0; IEMobile/10.0; ARM; "
     b"Touch; NOKIA; Lumia 920)", Agent("Windows Phone", "Internet Explorer", None)),
    (b"Mozilla/5.0 (compatible; YandexDirect/3.0; +http://yandex.com/bots)",
     Agent("Crawlers", "Crawlers", "Yandex")),
    (b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1;  "
     b"http://www.changedetection.com/bot.html )", Agent("Crawlers", "Crawlers", "bot")),
    (b"Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/534.34 (KHTML, like Gecko) "
     b"PhantomJS/1.9.2 Safari/534.34", Agent("Crawlers", "Crawlers", "PhantomJS")),
]

# Current user agents the 2015 samples do not have.
SYNTHETIC: list[tuple[bytes, Agent]] = [
    (b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91", Agent("Windows 10", "Edge", None)),
    (b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/70.0.3538.102 Safari/537.36 Edge/18.19582", Agent("Windows 10", "Edge", None)),
    (b"Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
     Agent("Android", "Samsung Internet", None)),
    (b"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/120.0.0.0 Mobile Safari/537.36 OPR/79.1.4195.76160", Agent("Android", "Opera", None)),
    (b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     b"Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15", Agent("iOS", "Firefox", None)),
    (b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     b"Gecko) Version/17.2 Mobile/15E148 Safari/604.1", Agent("iOS", "Safari", None)),
    (b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     b"Version/17.2 Safari/605.1.15", Agent("macOS", "Safari", None)),
    (b"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
     Agent("Linux", "Firefox", None)),
    (b"Mozilla/5.0 (Mobile; Windows Phone 8.1; Android 4.0; ARM; Trident/7.0; Touch; rv:11.0; "
     b"IEMobile/11.0; NOKIA; Lumia 635) like iPhone OS 7_0_3 Mac OS X AppleWebKit/537 (KHTML, "
     b"like Gecko) Mobile Safari/537", Agent("Windows Phone", "Internet Explorer", None)),
    (b"Mozilla/5.0 (X11; OpenBSD amd64; rv:120.0) Gecko/20100101 Firefox/120.0",
     Agent("BSD", "Firefox", None)),
    (b"Go-http-client/1.1", Agent("Unknown", "Go", None)),
    (b"Java/17.0.2", Agent("Unknown", "Java", None)),
    (b"Apache-HttpClient/4.5.13 (Java/11.0.16)", Agent("Unknown", "Java", None)),
    (b"python-requests/2.31.0", Agent("Unknown", "Python", None)),
    (b"Python/3.11 aiohttp/3.9.1", Agent("Unknown", "Python", None)),
    (b"curl/8.5.0", Agent("Unknown", "curl", None)),
    (b"  Wget/1.21.4  ", Agent("Unknown", "Wget", None)),
    (b"", UNKNOWN_AGENT),
    (b"  ", UNKNOWN_AGENT),
    (b"Mozilla/5.0 (Linux; Android 10; CUBOT X20 PRO) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/120.0.0.0 Mobile Safari/537.36", Agent("Android", "Chrome", None)),
]

CRAWLERS: list[tuple[bytes, str]] = [
    (b"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; "
     b"+https://openai.com/gptbot)", "GPTBot"),
    (b"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
     b"+claudebot@anthropic.com)", "ClaudeBot"),
    (b"Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/"
     b"537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)", "PetalBot"),
    (b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     b"Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
     "Applebot"),
    (b"Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/"
     b"537.36 (compatible; Bytespider; spider-feedback@bytedance.com)", "Bytespider"),
    (b"DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", "DuckDuckBot"),
    (b"Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
     "SemrushBot"),
    (b"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, "
     b"like Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
     b"+http://www.google.com/bot.html)", "Googlebot"),
    (b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"HeadlessChrome/120.0.0.0 Safari/537.36", "HeadlessChrome"),
    (b"Mozilla/5.0 (compatible; FooCrawler/2.0; +https://foo.example/crawler)", "FooCrawler"),
    (b"acme-spider 3.1", "acme-spider"),
    (b"Mozilla/5.0 (compatible; WidgetBots/1.0)", "WidgetBots"),
]


@pytest.mark.parametrize(("ua", "expected"), REAL + SYNTHETIC)
def test_classify_agent(ua: bytes, expected: Agent) -> None:
    assert classify_agent(ua) == expected


def test_real_cases_are_in_the_samples() -> None:
    agents = sample_agents()
    missing = [ua for ua, _ in REAL if ua not in agents]
    assert len(REAL) >= 30
    assert missing == []


def test_every_sample_agent_is_classified_within_the_documented_names() -> None:
    for ua in sample_agents():
        agent = classify_agent(ua)
        assert os_family(agent.os) in OSES | {"Windows Phone"}, ua
        assert agent.browser in BROWSERS, ua
        assert (agent.bot is not None) == (agent.os == "Crawlers") == (
            agent.browser == "Crawlers"), ua


@pytest.mark.parametrize(("ua", "name"), CRAWLERS)
def test_crawlers(ua: bytes, name: str) -> None:
    assert classify_agent(ua) == Agent("Crawlers", "Crawlers", name)


def test_known_crawlers_are_many_and_none_hides_another() -> None:
    assert len(KNOWN_CRAWLERS) >= 40
    assert len(KNOWN_NAMES) == len(KNOWN_CRAWLERS)
    # each needle is found as itself: no earlier needle is part of a later one
    for needle, name in KNOWN_CRAWLERS:
        assert needle == needle.lower()
        assert crawler_name(needle.upper()) == name


def test_bot_word_is_not_any_word_with_bot_in_it() -> None:
    assert crawler_name(b"Mozilla/5.0 (Botswana edition) Chrome/120.0") is None
    assert crawler_name(b"Mozilla/5.0 (Linux; Android 9; Cubot_Note) Chrome/120.0") is None
    assert crawler_name(b"Mozilla/5.0 (compatible; abbot/1.0)") == "abbot"


@given(st.binary(max_size=300))
def test_classify_agent_never_raises_and_bots_are_crawlers(ua: bytes) -> None:
    agent = classify_agent(ua)
    assert os_family(agent.os) in OSES | {"Windows Phone"}
    assert agent.browser in BROWSERS
    if agent.bot is not None:
        assert agent.os == agent.browser == "Crawlers"
        assert agent.bot
    else:
        assert "Crawlers" not in (agent.os, agent.browser)


@given(st.lists(st.sampled_from([b"Mozilla/5.0 ", b"(", b")", b"; ", b"bot", b"Bot", b"spider",
                                 b"crawl", b"/", b".", b"-", b"_", b"x", b"1", b" ", b"\xff",
                                 b"Windows NT 6.1", b"Android", b"like Mac OS X",
                                 b"Chrome/1", b"Safari/1", b"Version/1"]),
                max_size=20).map(b"".join))
def test_classify_agent_on_agent_like_bytes(ua: bytes) -> None:
    agent = classify_agent(ua)
    assert (agent.bot is not None) == (agent.os == "Crawlers") == (agent.browser == "Crawlers")
    # a crawler's name is a known one or a word of the user agent
    assert agent.bot is None or agent.bot in KNOWN_NAMES or agent.bot.encode() in ua


@pytest.mark.parametrize(("url", "expected"), [
    (b"/style.css", True),
    (b"/js/app.min.js", True),
    (b"/presentations/logstash-monitorama-2013/images/kibana-search.png", True),
    (b"/favicon.ico", True),
    (b"/IMG/Photo.JPG", True),
    (b"/fonts/fontawesome-webfont.woff?v=4.0.3", True),
    (b"/fonts/x.woff2#iefix", True),
    (b"/robots.txt", True),
    (b"/paper.pdf", True),
    (b"/dist/pkg-1.0.tar.gz", True),
    (b"/", False),
    (b"", False),
    (b"/index.html", False),
    (b"/blog/post", False),
    (b"/search?q=a.css", False),
    (b"/page#x.js", False),
    (b"/dir.css/", False),
    (b"/v1.2/users", False),
    (b"/x.cssx", False),
    (b"/file.", False),
    (b"/style.css;jsessionid=1", False),
    (b"/app.js.map", False),
    (b"/feed.xml", False),
])
def test_is_static(url: bytes, expected: bool) -> None:
    assert is_static(url) is expected


def test_static_extensions_are_goaccess_defaults() -> None:
    assert len(STATIC_EXTENSIONS) == 40
    assert {b"css", b"js", b"png", b"jpg", b"woff2", b"svg", b"txt", b"zst"} <= STATIC_EXTENSIONS
    assert all(ext == ext.lower() and not ext.startswith(b".") for ext in STATIC_EXTENSIONS)


@given(st.binary(max_size=60), st.sampled_from(sorted(STATIC_EXTENSIONS)),
       st.binary(max_size=20))
def test_is_static_ignores_query_and_case(path: bytes, ext: bytes, query: bytes) -> None:
    path = path.replace(b"?", b"").replace(b"#", b"")
    url = path + b"." + ext
    assert is_static(url)
    assert is_static(url.upper())
    assert is_static(url + b"?" + query)
    assert is_static(url + b"#" + query)
    assert not is_static(url + b"/")


@given(st.binary(max_size=100))
def test_is_static_never_raises(url: bytes) -> None:
    assert isinstance(is_static(url), bool)


@pytest.mark.parametrize(("referer", "expected"), [
    (b"https://www.example.org/x?y", b"www.example.org"),
    (b"http://semicomplete.com/presentations/logstash-monitorama-2013/", b"semicomplete.com"),
    (b"http://howto.basjes.nl/", b"howto.basjes.nl"),
    (b"https://WWW.Google.COM:443/search?q=x", b"www.google.com"),
    (b"http://user:pw@example.net:8080/", b"example.net"),
    (b"http://example.com", b"example.com"),
    (b"http://example.com?q=1", b"example.com"),
    (b"http://example.com#top", b"example.com"),
    (b"http://example.com./", b"example.com"),
    (b"http://[2001:db8::1]:8080/x", b"[2001:db8::1]"),
    (b"android-app://com.google.android.gm/", b"com.google.android.gm"),
    (b"-", None),
    (b"", None),
    (b"&as_qdr=all", None),
    (b"www.example.org/x", None),
    (b"//example.org/x", None),
    (b"http://", None),
    (b"http:///path", None),
    (b"http://:80/", None),
    (b"://example.org", None),
])
def test_referring_site(referer: bytes, expected: bytes | None) -> None:
    assert referring_site(referer) == expected


def test_referring_site_of_sample_referrers() -> None:
    referrer = re.compile(rb'" \d{3} \S+ "([^"]*)"')
    sites: set[bytes] = set()
    for log in SAMPLES.glob("*.log"):
        for m in referrer.finditer(log.read_bytes()):
            site = referring_site(m.group(1))
            if site is not None:
                sites.add(site)
    assert {b"semicomplete.com", b"www.google.com", b"howto.basjes.nl"} <= sites


@given(st.binary(max_size=100))
def test_referring_site_never_raises(referer: bytes) -> None:
    site = referring_site(referer)
    if site is not None:
        assert site and site == site.lower()
        assert not any(c in site for c in b"/?#@ ")


@pytest.mark.parametrize(("status", "expected"), [
    (100, "1xx"), (200, "2xx"), (204, "2xx"), (301, "3xx"), (304, "3xx"), (404, "4xx"),
    (499, "4xx"), (500, "5xx"), (599, "5xx"), (0, "Unknown"), (99, "Unknown"),
    (600, "Unknown"), (-1, "Unknown"),
])
def test_status_class(status: int, expected: str) -> None:
    assert status_class(status) == expected
