"""Shared fixtures: paths, the built site on a loopback server, and headless Chromium."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from attnlab.workshop.chromium import CHROMIUM_FLAGS, find_chromium  # noqa: F401 (benchmarks import both from here)

# Tests never reach for the Hugging Face hub: hub code paths are tested on models saved locally.
os.environ["HF_HUB_OFFLINE"] = "1"


def _output_widget_echo_through_asyncio() -> None:
    """Let nbclient echo an Output widget's contents to the kernel without losing the cell's reply.

    nbclient plays the front end when it runs a lab: after each output captured by an
    ``ipywidgets.Output`` it sends the widget's outputs back to the kernel on the shell
    channel, while it waits for the cell's execute_reply on that same (asyncio) socket.
    jupyter_client's ``Session.send`` sends through a blocking shadow of the socket, and
    libzmq's send drains the socket's wake-up signal: when the execute_reply has arrived by
    then (the figure is a cell's last output), the asyncio poll is never woken and nbclient
    takes the reply only when the poll times out (measured: the explorer cell of lab 00, 0.3 s
    of kernel time, waited the full 60 s timeout; upstream: jupyter/nbclient#312). Sending
    the echo through the asyncio socket instead lets pyzmq re-check the socket's events
    after the send and wake the waiting poll. The kernel still gets the echo, as from a
    real front end, and the outputs still reach the notebook's widget state.
    """
    from nbclient import output_widget
    from nbclient.jsonutil import json_clean

    def _publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys) -> None:
        session = self.kernel_client.session
        content = json_clean(dict(data=data or {}, comm_id=self.comm_id, **keys))
        msg = session.msg(msg_type, content=content, parent=self.parent_header, metadata=metadata or {})
        self.kernel_client.shell_channel.socket.send_multipart(session.serialize(msg))

    output_widget.OutputWidget._publish_msg = _publish_msg


_output_widget_echo_through_asyncio()

#: One line per lab run by tests/test_notebooks.py (wall and kernel CPU time), shown after the tests.
LAB_RUNS: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if LAB_RUNS:
        terminalreporter.section("lab run times")
        for line in LAB_RUNS:
            terminalreporter.write_line(line)


ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("ATTNLAB_SITE", ROOT / "_build" / "html"))  # another build: ATTNLAB_SITE=path/_build/html
SCREENSHOTS = ROOT / "_build" / "screenshots"
#: The widths every page is checked at: a phone, a tablet, a laptop.
VIEWPORTS = {"phone": (390, 844), "tablet": (800, 1000), "desktop": (1280, 900)}


def chromium_path() -> str:
    """Debian's chromium (Playwright's own browser download cannot work offline)."""
    path = find_chromium()
    if path is None:
        pytest.fail("Chromium not found: install Debian's `chromium` package (.ci/run does) or set CHROMIUM=/path")
    return path


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

    def __init__(self, context, url: str, viewport: tuple[int, int] | None = None, color_scheme: str | None = None):
        self.blocked: list[str] = []
        self.requested: list[str] = []  # every address the page asked for, in order
        self.console_errors: list[str] = []
        self.bytes_by_url: dict[str, int] = {}
        self.page = context.new_page()
        if viewport:
            self.page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
        if color_scheme:
            self.page.emulate_media(color_scheme=color_scheme)
        self.page.route("**/*", self._route)
        self.page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))
        self.page.on("pageerror", lambda err: self.console_errors.append(str(err)))
        self.page.goto(url, wait_until="load")

    def _route(self, route) -> None:
        host = urlparse(route.request.url).hostname
        self.requested.append(route.request.url)
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
    """Open a page of the built site: ``visit("book/00-welcome.html")``, optionally
    ``viewport=(390, 844)`` (a phone) and ``color_scheme="dark"``."""
    opened: list[PageVisit] = []

    def _open(path: str, **options) -> PageVisit:
        page_visit = PageVisit(browser, f"{site_url}/{path}", **options)
        opened.append(page_visit)
        return page_visit

    yield _open
    for page_visit in opened:
        page_visit.page.close()
