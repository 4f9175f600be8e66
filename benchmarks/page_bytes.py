"""Print what a reader's browser downloads for pages of the built site, raw and gzipped.

Usage: .venv/bin/python benchmarks/page_bytes.py [page.html ...]   (after `make book`; default: every page)
Opens each page cold (fresh profile) in headless Chromium, records every request the page
makes once it is idle, and sums the files' sizes as served and as gzip (level 6, what
common web servers use) would send them.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import CHROMIUM_FLAGS, SITE, _QuietHandler, chromium_path  # noqa: E402


def all_pages() -> list[str]:
    """Every page of the table of contents."""
    from tests.test_site import toc_pages

    return [f"{name}.html" for name in toc_pages()]


def serve(site: Path):
    """Serve the site on a free loopback port; return (server, base URL)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def page_files(context, url: str) -> list[str]:
    """Local paths of every file the page requested, in order."""
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url, wait_until="networkidle")
    # MathJax loads its parts, typesets, and only then fetches the math fonts it needs.
    page.evaluate("async () => { if (window.MathJax && MathJax.startup) await MathJax.startup.promise;"
                  " await document.fonts.ready; return true; }")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    page.wait_for_load_state("networkidle")
    page.close()
    return [unquote(urlparse(u).path).lstrip("/") for u in requested if u.startswith("http://127.0.0.1")]


def main(pages: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    server, base = serve(SITE)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        for name in pages:
            context = playwright.chromium.launch_persistent_context(
                profile + "/" + name.replace("/", "_"), executable_path=chromium_path(),
                headless=True, args=CHROMIUM_FLAGS,
            )
            files = sorted(set(page_files(context, f"{base}/{name}")))
            context.close()
            rows = []
            for path in files:
                data = (SITE / path).read_bytes() if (SITE / path).is_file() else b""
                rows.append((len(data), len(gzip.compress(data, compresslevel=6)), path))
            raw, zipped = sum(r[0] for r in rows), sum(r[1] for r in rows)
            print(f"\n{name}: {len(rows)} files, {raw / 1e6:.2f} MB raw, {zipped / 1e6:.3f} MB gzipped (cold), {zipped:,} bytes")
            for size, gz, path in sorted(rows, reverse=True)[:5]:
                print(f"  {size / 1e3:8.1f} kB raw {gz / 1e3:8.1f} kB gzip  {path}")
    server.shutdown()
    print_browser_model_bytes()


def print_browser_model_bytes() -> None:
    """The files a reader fetches on first using an in-browser model (not part of any page's cold load)."""
    from attnlab.sphinxext import BROWSER_MODELS, ORT_FILES, TOKENIZERS_JS

    static = SITE / "_static"
    groups = {f"model {name}": sorted((static / "models" / name).glob("*")) for name in BROWSER_MODELS}
    groups["runtime (shared)"] = [static / "vendor" / "ort" / name for name in ORT_FILES]
    groups["runtime (shared)"].append(static / "vendor" / Path(TOKENIZERS_JS).name)  # the tokenizers, run in the page
    print("\nin-browser models, fetched on first use (not part of any page's cold load):")
    for group, paths in groups.items():
        raw = zipped = 0
        for path in paths:
            if not path.is_file():
                raise SystemExit(f"{path} is missing: run `make book` first.")
            data = path.read_bytes()
            size, gz = len(data), len(gzip.compress(data, compresslevel=6))
            raw, zipped = raw + size, zipped + gz
            print(f"  {size / 1e6:7.2f} MB raw {gz / 1e6:7.2f} MB gzip  {path.relative_to(SITE)}")
        print(f"  {raw / 1e6:7.2f} MB raw {zipped / 1e6:7.2f} MB gzip  {group}, in all\n")


if __name__ == "__main__":
    main(sys.argv[1:] or all_pages())
