"""A workshop room loading the book at once: N learners open the heaviest page cold, together.

Usage: .venv/bin/python benchmarks/room_load.py [--learners 30] [--page book/NN-....html]
           [--server serve bundle] [--site DIR]                 (after `make book`)

Starts a room server: `serve` (default) exactly as `make serve`/`make room` do (tools/serve.py:
WhiteNoise with brotli/gzip copies, waitress), or `bundle`, the offline bundle's serve.py
(tools/room_server.py, standard library only; with --site _build/bundle/attnlab-room/site it serves
the bundle itself). Finds what a browser downloads for the page (headless Chromium, once), then
has every simulated learner fetch all of those files as a browser would: six connections each,
asking for compressed copies, no cache. Prints whether every request was answered, the time for
all learners to finish (and the slowest learner's), and the MB each learner received. It measures the server on this machine
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


SERVERS = {"serve": ROOT / "tools" / "serve.py", "bundle": ROOT / "tools" / "room_server.py"}


def start_room_server(port: int, site: Path = SITE, server: str = "serve", timeout: float = 600) -> subprocess.Popen:
    """A room server (``SERVERS``) for ``site`` on ``port``, once it answers (serve.py may compress first)."""
    # Its stderr goes to a file, not a pipe: under load waitress logs a line per queued request, and a pipe
    # nobody reads fills at 64 KB and then blocks the server mid-benchmark.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, str(SERVERS[server]), "--host", "127.0.0.1", "--port", str(port),
                                    str(site)], stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if fetch(port, "", timeout=2)[0] == 200:  # the front page (WhiteNoise redirects index.html to /)
                return process  # the server keeps writing to the file it inherited, unlinked, until it stops
            if process.poll() is not None:
                log.seek(0)
                raise SystemExit(f"the room server stopped at start: {log.read().decode(errors='replace').strip()}")
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the room server did not answer within {timeout:.0f} s")


def files_of(page: str, site: Path = SITE) -> list[str]:
    """The files a cold browser fetches for ``page``."""
    from playwright.sync_api import sync_playwright

    server, base = serve(site)
    try:
        with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            files = page_files(context, f"{base}/{page}")
            context.close()
    finally:
        server.shutdown()
    return list(dict.fromkeys(files))  # each file once, as a browser's memory cache would


def heaviest_page(site: Path = SITE) -> str:
    """The chapter or lab whose files weigh most on disk (their compressed size follows)."""
    def weight(page: str) -> int:
        return sum((site / path).stat().st_size for path in files_of(page, site) if (site / path).is_file())

    return max(all_pages(), key=weight)


def fetch(port: int, path: str, timeout: float = 120) -> tuple[int, int]:
    """One GET asking for a compressed copy; returns (status, bytes received), (0, 0) when it got no answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/" + quote(path), headers={"Accept-Encoding": "br, gzip"})
        response = connection.getresponse()
        return response.status, len(response.read())
    except (OSError, http.client.HTTPException):  # refused, reset, timed out, cut short: counted as unanswered
        return 0, 0
    finally:
        connection.close()


def learner(port: int, files: list[str]) -> tuple[float, list[int], int]:
    """One learner's cold page load: (seconds, statuses, bytes on the wire)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(CONNECTIONS_PER_BROWSER) as browser:
        answers = list(browser.map(lambda path: fetch(port, path), files))
    return time.perf_counter() - start, [status for status, _ in answers], sum(size for _, size in answers)


def room(port: int, files: list[str], learners: int) -> dict:
    """``learners`` cold page loads at once against the server on ``port``: what a summary needs."""
    start = time.perf_counter()
    with ThreadPoolExecutor(learners) as pool:
        loads = list(pool.map(lambda _: learner(port, files), range(learners)))
    elapsed = time.perf_counter() - start
    statuses = [status for load in loads for status in load[1]]
    return {"learners": learners, "files": len(files), "requests": len(statuses),
            "answered": sum(status == 200 for status in statuses), "elapsed": elapsed,
            "seconds": sorted(load[0] for load in loads), "wire": loads[0][2]}


def summary(result: dict, page: str, server: str) -> str:
    """The benchmark's report, one fact a line."""
    learners, wire, seconds = result["learners"], result["wire"], result["seconds"]
    answered = result["answered"] == result["requests"]
    return "\n".join([
        f"server: {server}; page: {page} ({result['files']} files)",
        f"learners: {learners} at once, {CONNECTIONS_PER_BROWSER} connections each, no cache",
        f"requests: {result['requests']}, answered 200: {result['answered']}"
        f" -> {'all answered' if answered else 'NOT ALL ANSWERED'}",
        f"time for all {learners} to finish: {result['elapsed']:.2f} s "
        f"(per learner: median {statistics.median(seconds):.2f} s, slowest {seconds[-1]:.2f} s)",
        f"per learner: {wire / 1e6:.2f} MB on the wire (compressed)",
        f"the room's network must carry {learners * wire / 1e6:.1f} MB for this: at 50 Mbit/s about "
        f"{learners * wire * 8 / 50e6:.0f} s, at 200 Mbit/s about {learners * wire * 8 / 200e6:.0f} s",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--page", help="a page of the built site (default: the heaviest)")
    parser.add_argument("--server", choices=sorted(SERVERS), nargs="+", default=["serve"],
                        help="serve: tools/serve.py (make serve/room); bundle: the offline bundle's serve.py; "
                             "both: the same files for each, one after the other")
    parser.add_argument("--site", type=Path, default=SITE, help="default: _build/html")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        raise SystemExit(f"no built site in {args.site}: run `make book` first")

    page = args.page or heaviest_page(args.site)
    files = files_of(page, args.site)  # once: a page's lazy files vary a little from one load to the next
    failed = False
    for name in args.server:
        port = free_port()
        server = start_room_server(port, args.site, name)
        try:
            result = room(port, files, args.learners)
        finally:
            server.terminate()
            server.wait(timeout=30)
        print(summary(result, page, name), flush=True)
        failed |= result["answered"] != result["requests"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
