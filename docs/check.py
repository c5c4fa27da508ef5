"""Build the documentation site and look at it in headless Chromium; fail when a page renders empty or with an error.

Run from a clone, after ``.venv/bin/pip install -e '.[docs]'`` (the dev extra includes it) and with Debian's
``chromium`` on PATH (``apt-get install -y chromium``)::

    .venv/bin/python docs/check.py [--out DIR] [--chromium PATH] [--no-build]

It builds the site with ``mkdocs build --strict`` into a temporary directory, checks that the reference's objects
inventory lists every public name, serves the site on 127.0.0.1 (a free port; nothing else is reached), and for the
home page, one guide and one reference page: dumps the DOM after the page's scripts ran (``--dump-dom``) and checks
the title, the page's heading and text that only a rendered page has, then takes a screenshot (``--screenshot``)
and checks that it is a PNG of the window's size that is not blank. It prints what it saw (titles, headings, sizes)
and exits 1 on the first page that fails, 2 when the build or the browser cannot run.
"""

from __future__ import annotations

import argparse
import functools
import html
import http.server
import importlib
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
WINDOW = (1280, 1000)
PUBLIC_MODULES = ("aiopersonalize_events", "errors", "serde", "emulator", "redis", "otel")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
)


class Page(NamedTuple):
    path: str  # under the site's root
    title: str  # the <title>, before " - aiopersonalize-events"
    texts: tuple[str, ...]  # text the rendered page shows (its heading first)
    height: int = WINDOW[1]  # of the window for the screenshot (tall enough to hold the page's diagrams)
    diagrams: int = 0  # Mermaid diagrams on the page


PAGES = (
    Page("", "aiopersonalize-events", ("aiopersonalize-events", "Quick start", "Where to go next")),
    Page(
        "guides/delivery/",
        "Delivery guarantees",
        ("Delivery guarantees", "The path of a recorded event", "SqliteSpool"),
        height=2400,
        diagrams=2,
    ),
    Page(
        "reference/client/",
        "aiopersonalize_events",
        ("aiopersonalize_events", "PersonalizeEventsClient", "put_events_batched", "DEFAULT_RATE"),
    ),
)


class Failed(Exception):
    """A page that rendered empty, with an error, or not as expected."""


def build(site: Path) -> None:
    """``mkdocs build --strict`` into ``site`` (a warning fails it)."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise SystemExit(f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}")


def inventory(site: Path) -> set[str]:
    """The names in the site's ``objects.inv`` (Sphinx's format: four header lines, then zlib)."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = data.index(b"\n", header_end) + 1
    lines = zlib.decompress(data[header_end:]).decode("utf-8").splitlines()
    return {line.split(" ", 1)[0] for line in lines if line.strip()}


def check_inventory(site: Path) -> int:
    """Every name of a public module's ``__all__`` is in the inventory, under its own module or the package."""
    names = inventory(site)
    missing = []
    for short in PUBLIC_MODULES:
        full = short if short == "aiopersonalize_events" else f"aiopersonalize_events.{short}"
        module = importlib.import_module(full)
        for name in module.__all__:
            candidates = {f"{module.__name__}.{name}", f"aiopersonalize_events.{name}"}
            value = getattr(module, name)
            candidates.add(f"{getattr(value, '__module__', '')}.{name}")
            if not candidates & names:
                missing.append(f"{module.__name__}.{name}")
    if missing:
        raise Failed(f"the reference's inventory lacks {missing}")
    return len(names)


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on 127.0.0.1, a free port, from a thread; yield the root URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a throw-away profile; the flags keep it from reaching anything but the URL."""
    command = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG, unfiltered (enough for a screenshot)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Failed("the screenshot is not a PNG")
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    if depth != 8 or color not in (2, 6):
        raise Failed(f"unexpected PNG format (depth {depth}, colour type {color})")
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[x] = (line[x] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def look_at_screenshot(path: Path, window: tuple[int, int]) -> str:
    """Check that the screenshot has the window's size and is not blank; describe it."""
    data = path.read_bytes()
    width, height, rows = png_pixels(data)
    if (width, height) != window:
        raise Failed(f"{path.name}: {width}x{height}, not the window's {window[0]}x{window[1]}")
    channels = len(rows[0]) // width
    background = rows[height // 2][-channels:]  # the right edge: the page's background
    colours: set[bytes] = set()
    differing = 0
    for row in rows[::4]:
        for x in range(0, width * channels, channels * 4):
            pixel = row[x : x + channels]
            colours.add(pixel)
            differing += pixel != background
    sampled = len(rows[::4]) * len(range(0, width * channels, channels * 4))
    share = differing / sampled
    if len(colours) < 16 or share < 0.02:
        raise Failed(f"{path.name} looks blank: {len(colours)} colours, {share:.1%} of the pixels off the background")
    return f"{width}x{height} PNG, {len(data):,} bytes, {len(colours)} colours, {share:.0%} off the background"


def fetch_mermaid(work: Path) -> Path | None:
    """mermaid.min.js of Mermaid 11 (the major version Material loads from unpkg), through npm; None without npm."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    result = subprocess.run(
        [npm, "pack", "--silent", "mermaid@11", "--pack-destination", str(work)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tarballs = sorted(work.glob("mermaid-*.tgz"))
    if result.returncode != 0 or not tarballs:
        print(
            f"warning: npm pack mermaid@11 failed, diagrams not rendered here: {result.stderr[-500:]}", file=sys.stderr
        )
        return None
    with tarfile.open(tarballs[0]) as archive:
        member = archive.extractfile("package/dist/mermaid.min.js")
        if member is None:
            return None
        script = work / "mermaid.min.js"
        script.write_bytes(member.read())
    return script


def use_local_mermaid(site: Path, script: Path) -> None:
    """Load Mermaid from the site itself (Material uses a ``mermaid`` already defined instead of fetching unpkg's)."""
    shutil.copy(script, site / "assets" / "javascripts" / "mermaid.min.js")
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if 'class="mermaid"' in text:
            tag = '<script src="/assets/javascripts/mermaid.min.js"></script>'
            page.write_text(text.replace("</head>", f"{tag}</head>", 1), encoding="utf-8")


def look_at_diagrams(dom: str, url: str, page: Page, rendered: bool) -> str:
    """The page's Mermaid blocks are there, and drawn when Mermaid could be loaded: Material replaces each
    ``<pre class="mermaid">`` by a ``<div class="mermaid">`` holding the SVG (in a closed shadow root) only once
    Mermaid drew it, so a diagram with a syntax error stays a ``<pre>``."""
    source = len(re.findall(r'<pre class="mermaid"', dom))
    drawn = len(re.findall(r'<div class="mermaid"', dom))
    if source + drawn != page.diagrams:
        raise Failed(f"{url}: {source + drawn} Mermaid blocks, expected {page.diagrams}")
    if not rendered:
        return f"{source} Mermaid blocks (not drawn: Mermaid could not be loaded here)"
    if drawn != page.diagrams:
        raise Failed(f"{url}: {drawn} of {page.diagrams} Mermaid diagrams drawn (a syntax error?)")
    return f"{drawn} Mermaid diagrams drawn"


def look_at_page(
    browser: str, profile: Path, url: str, page: Page, screenshot: Path, mermaid: bool = False
) -> list[str]:
    """Dump the page's DOM and take its screenshot; check both; return what was seen."""
    result = chromium(browser, profile, "--dump-dom", url)
    dom = result.stdout
    if result.returncode != 0 or "<html" not in dom:
        raise Failed(f"{url}: chromium exited {result.returncode} without a DOM:\n{result.stderr[-2000:]}")
    title_match = re.search(r"<title>(.*?)</title>", dom, flags=re.S)
    title = html.unescape(title_match.group(1).strip()) if title_match else ""
    heading_match = re.search(r"<h1[^>]*>(.*?)</h1>", dom, flags=re.S)
    heading = ""
    if heading_match:
        heading = html.unescape(re.sub(r"<[^>]+>", "", heading_match.group(1))).replace("¶", "").strip()
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    if "404 - Not found" in text or not title.startswith(page.title):
        raise Failed(f"{url}: title {title!r}, expected {page.title!r} (a missing page?)")
    if heading != page.texts[0]:
        raise Failed(f"{url}: heading {heading!r}, expected {page.texts[0]!r}")
    missing = [t for t in page.texts if t not in text]
    if missing:
        raise Failed(f"{url}: the rendered page lacks {missing}")
    article = re.search(r"<article[^>]*>(.*?)</article>", dom, flags=re.S)
    words = len(re.sub(r"<[^>]+>", " ", article.group(1)).split()) if article else 0
    if words < 50:
        raise Failed(f"{url}: the article is empty ({words} words)")
    if "search" not in dom or 'data-md-component="search"' not in dom:
        raise Failed(f"{url}: no search box")
    seen_diagrams = look_at_diagrams(dom, url, page, mermaid) if page.diagrams else ""
    window = (WINDOW[0], page.height)
    shot = chromium(browser, profile, f"--screenshot={screenshot}", f"--window-size={window[0]},{window[1]}", url)
    if shot.returncode != 0 or not screenshot.is_file():
        raise Failed(f"{url}: no screenshot (chromium exited {shot.returncode}):\n{shot.stderr[-2000:]}")
    return [
        f"page {url}",
        f"  title   {title!r}",
        f"  heading {heading!r}; {words:,} words in the article; DOM {len(dom):,} characters",
        *([f"  diagrams {seen_diagrams}"] if seen_diagrams else []),
        f"  screenshot {screenshot}: {look_at_screenshot(screenshot, window)}",
    ]


def look_at_every_diagram(browser: str, profile: Path, root: str, site: Path, rendered: bool) -> list[str]:
    """Every other page with Mermaid diagrams: each is drawn (a syntax error in one fails the check)."""
    seen = []
    looked_at = {page.path for page in PAGES}
    for html_file in sorted(site.rglob("index.html")):
        path = str(html_file.parent.relative_to(site)) + "/"
        path = "" if path == "./" else path
        count = html_file.read_text(encoding="utf-8").count('<pre class="mermaid"')
        if not count or path in looked_at:
            continue
        url = root + path
        result = chromium(browser, profile, "--dump-dom", url)
        diagrams = look_at_diagrams(result.stdout, url, Page(path, "", (), diagrams=count), rendered)
        seen.append(f"page {url}\n  diagrams {diagrams}")
    return seen


def main(argv: list[str] | None = None) -> int:
    """Build, serve, look; print what was seen; 0 when every page is fine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, help="where to keep the screenshots (default: a temporary directory)")
    parser.add_argument("--chromium", help="the browser (default: chromium, else chromium-browser, on PATH)")
    parser.add_argument("--no-build", action="store_true", help="check the site already built in ./site")
    parser.add_argument(
        "--mermaid",
        default="npm",
        help="mermaid.min.js to draw the diagrams with; 'npm' (default): fetch Mermaid 11 with npm; 'none': don't draw",
    )
    args = parser.parse_args(argv)
    browser = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("chromium not found: apt-get install -y chromium (Debian's)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="docs-check-") as temporary:
        work = Path(temporary)
        site = ROOT / "site" if args.no_build else work / "site"
        if not args.no_build:
            build(site)
        out = args.out or work / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        script = {"npm": fetch_mermaid, "none": lambda _: None}.get(args.mermaid, lambda _: Path(args.mermaid))(work)
        if script is not None:
            use_local_mermaid(site, script)
        try:
            print(f"site built in {site}; objects inventory: {check_inventory(site)} names, every public one")
            with serve(site) as root:
                for number, page in enumerate(PAGES, 1):
                    shot = out / f"{number}-{page.path.strip('/').replace('/', '-') or 'home'}.png"
                    profile = work / "profile"
                    for line in look_at_page(browser, profile, root + page.path, page, shot, script is not None):
                        print(line)
                for line in look_at_every_diagram(browser, work / "profile", root, site, script is not None):
                    print(line)
        except Failed as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
    print(f"every page rendered: {len(PAGES)} pages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
