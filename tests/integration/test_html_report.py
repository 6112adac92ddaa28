"""The HTML report opens in a real browser (headless Chromium, no network) and draws its
charts: a screenshot of it holds the bars' colour."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.cluster import HACKERS, logmr

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BAR = (0x3B, 0x6E, 0xA8)  # the charts' bar colour in logmr/cli/html.py


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and raw RGB(A) rows of an 8-bit PNG (enough for a screenshot)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc
                                      else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)")
def test_the_html_report_renders_its_charts(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    out = logmr("report", "--all", "--funnel", "/,/join_form", "--format", "html", "-o",
                str(page), str(HACKERS))
    assert out.returncode == 0, out.stderr
    shot = tmp_path / "shot.png"
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--window-size=1400,1200", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=True)
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 1200)
    channels = len(rows[0]) // width
    bar_pixels = sum(
        1 for row in rows for x in range(0, len(row), channels)
        if abs(row[x] - BAR[0]) < 8 and abs(row[x + 1] - BAR[1]) < 8
        and abs(row[x + 2] - BAR[2]) < 8)
    assert bar_pixels > 2000, bar_pixels  # the four charts' bars are drawn
    html = page.read_text()
    for chart in ("chart-traffic", "chart-status", "chart-urls", "chart-funnel"):
        assert chart in html
