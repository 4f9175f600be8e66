"""Shared fixtures: paths, the built site on a loopback server, and headless Chromium."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

# Tests never reach for the Hugging Face hub: hub code paths are tested on models saved locally.
os.environ["HF_HUB_OFFLINE"] = "1"


def _no_output_widget_echo() -> None:
    """Stop nbclient from sending each Output widget's contents back to the kernel.

    nbclient plays the front end when it runs a lab; after every output captured by an
    ``ipywidgets.Output`` it sends the widget's whole output list back to the kernel on the
    shell channel. With a Plotly figure in it (tens of kB) that send makes nbclient miss the
    cell's execute_reply until its timeout (measured: a 3 s cell took 41 s at timeout=40).
    The kernel never reads that echo, and the outputs still reach the notebook's widget
    state, which the tests read.
    """
    from nbclient import output_widget

    output_widget.OutputWidget.sync_state = lambda self: None


_no_output_widget_echo()

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


def chromium_path() -> str:
    """Debian's chromium (Playwright's own browser download cannot work offline)."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("Chromium not found: install Debian's `chromium` package (.ci/run does) or set CHROMIUM=/path")


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site; the build itself is `make book`, which `make test` runs first."""
    if not (SITE / "index.html").is_file():
        pytest.fail("no built site in _build/html: run `make book` (or `make test`, which builds it)")
    return SITE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output readable
        pass


@pytest.fixture(scope="session")
def site_url(site: Path):
    """The built site served on 127.0.0.1 on a free port."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Debian Chromium driven by Playwright, with a fresh profile."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=chromium_path(), headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1200, "height": 900},
        )
        yield context
        context.close()


class PageVisit:
    """One page opened with every request off 127.0.0.1 blocked, and its errors recorded."""

    def __init__(self, context, url: str):
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.bytes_by_url: dict[str, int] = {}
        self.page = context.new_page()
        self.page.route("**/*", self._route)
        self.page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        self.page.on("pageerror", lambda err: self.console_errors.append(str(err)))
        self.page.goto(url, wait_until="load")

    def _route(self, route) -> None:
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith("data:") or host == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def assert_clean(self) -> None:
        """Nothing was requested off 127.0.0.1 and the console shows no error."""
        assert self.blocked == [], f"requests left 127.0.0.1: {self.blocked}"
        assert self.console_errors == [], self.console_errors

    def screenshot(self, name: str, **kwargs) -> Path:
        """Save a screenshot under _build/screenshots for a person to look at."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        self.page.screenshot(path=str(path), **kwargs)
        return path


@pytest.fixture
def visit(browser, site_url):
    """Open a page of the built site: ``visit("book/00-welcome.html")``."""
    opened: list[PageVisit] = []

    def _open(path: str) -> PageVisit:
        page_visit = PageVisit(browser, f"{site_url}/{path}")
        opened.append(page_visit)
        return page_visit

    yield _open
    for page_visit in opened:
        page_visit.page.close()
