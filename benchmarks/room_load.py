"""A workshop room loading the book at once: N learners open the heaviest page cold, together.

Usage: .venv/bin/python benchmarks/room_load.py [--learners 30] [--page book/NN-....html]   (after `make book`)

Starts the room server exactly as `make serve` does (tools/serve.py: WhiteNoise with brotli/gzip
copies, waitress), finds what a browser downloads for the page (headless Chromium, once), then
has every simulated learner fetch all of those files as a browser would: six connections each,
asking for compressed copies, no cache. Prints whether every request was answered, the bytes
on the wire, and how long the slowest learner waited. It measures the server on this machine
over loopback: a room's Wi-Fi adds its own limit (bytes on the wire ÷ the room's bandwidth).
"""

from __future__ import annotations

import argparse
import http.client
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.page_bytes import all_pages, page_files, serve  # noqa: E402
from tests.conftest import CHROMIUM_FLAGS, SITE, chromium_path  # noqa: E402

CONNECTIONS_PER_BROWSER = 6  # what Chromium opens to one HTTP/1.1 host


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_room_server(port: int, timeout: float = 600) -> subprocess.Popen:
    """tools/serve.py on ``port``; returns once it answers (its first start compresses the site)."""
    server = subprocess.Popen([sys.executable, str(ROOT / "tools" / "serve.py"), "--port", str(port), str(SITE)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if server.poll() is not None:
                raise SystemExit("the room server stopped at start: run `make serve` to see why")
            time.sleep(0.5)
    server.kill()
    raise SystemExit(f"the room server did not answer within {timeout:.0f} s")


def files_of(page: str) -> list[str]:
    """The files a cold browser fetches for ``page``."""
    from playwright.sync_api import sync_playwright

    server, base = serve(SITE)
    try:
        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            files = page_files(context, f"{base}/{page}")
            context.close()
    finally:
        server.shutdown()
    return list(dict.fromkeys(files))  # each file once, as a browser's memory cache would


def heaviest_page() -> str:
    """The chapter or lab whose files weigh most on disk (their compressed size follows)."""
    def weight(page: str) -> int:
        return sum((SITE / path).stat().st_size for path in files_of(page) if (SITE / path).is_file())

    return max(all_pages(), key=weight)


def fetch(port: int, path: str) -> tuple[int, int]:
    """One GET asking for a compressed copy; returns (status, bytes received)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", "/" + quote(path), headers={"Accept-Encoding": "br, gzip"})
        response = connection.getresponse()
        return response.status, len(response.read())
    finally:
        connection.close()


def learner(port: int, files: list[str]) -> tuple[float, list[int], int]:
    """One learner's cold page load: (seconds, statuses, bytes on the wire)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(CONNECTIONS_PER_BROWSER) as browser:
        answers = list(browser.map(lambda path: fetch(port, path), files))
    return time.perf_counter() - start, [status for status, _ in answers], sum(size for _, size in answers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--page", help="a page of the built site (default: the heaviest)")
    args = parser.parse_args(argv)
    if not (SITE / "index.html").is_file():
        raise SystemExit("no built site in _build/html: run `make book` first")

    page = args.page or heaviest_page()
    files = files_of(page)
    port = free_port()
    server = start_room_server(port)
    try:
        fetch(port, "index.html")  # the server is up and its compressed copies are written
        start = time.perf_counter()
        with ThreadPoolExecutor(args.learners) as room:
            loads = list(room.map(lambda _: learner(port, files), range(args.learners)))
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)

    seconds = sorted(load[0] for load in loads)
    statuses = [status for load in loads for status in load[1]]
    failed = [status for status in statuses if status != 200]
    wire = loads[0][2]
    print(f"page: {page} ({len(files)} files, {wire / 1e6:.2f} MB on the wire per learner, compressed)")
    print(f"learners: {args.learners} at once, {CONNECTIONS_PER_BROWSER} connections each, no cache")
    print(f"requests: {len(statuses)}, answered 200: {len(statuses) - len(failed)}, other: {len(failed)}")
    print(f"all {args.learners} done in {elapsed:.2f} s; per learner: median {statistics.median(seconds):.2f} s, "
          f"slowest {seconds[-1]:.2f} s")
    print(f"the room's network must carry {args.learners * wire / 1e6:.1f} MB for this: at 50 Mbit/s about "
          f"{args.learners * wire * 8 / 50e6:.0f} s, at 200 Mbit/s about {args.learners * wire * 8 / 200e6:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
