"""Print the one-sheet pages of the built site to PDF, A4 and Letter, with headless Chromium.

    .venv/bin/python -m attnlab.workshop.printing _build/html

Writes ``_static/print/{quick-reference,handout}-{a4,letter}.pdf`` inside the site. The pages'
own print CSS (attnlab/static/attnlab-reader.css) fits each on one sheet; this module only
serves the site on 127.0.0.1, waits until the math and fonts are drawn, and prints.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.workshop.chromium import CHROMIUM_FLAGS, find_chromium

#: PDF name → the built page it prints.
PRINTABLES = {"quick-reference": "book/quick-reference.html", "handout": "book/teach/handout.html"}
PAPERS = {"a4": "A4", "letter": "Letter"}
OUT_DIR = "_static/print"
#: Set to 1 (CI does) and a build that cannot print every PDF fails instead of warning.
REQUIRE_ENV = "ATTNLAB_REQUIRE_PDFS"
# Chromium stamps the time of printing into each PDF; a fixed stamp makes two prints of a page the same bytes.
_PDF_DATE = re.compile(rb"/(CreationDate|ModDate) ?\(D:(\d{14})([+\-Z]\d\d'\d\d'|Z?)\)")
FIXED_DATE = b"20000101000000"
#: The address the pages are printed from, so the PDFs' links are `make serve`'s (PORT=8000), not a
#: throwaway port that would also make every print differ; Chromium maps it to the build's own server.
PRINT_ORIGIN = "http://localhost:8000"


def host_rules(port: int) -> str:
    """Chromium's resolver rules: PRINT_ORIGIN's host goes to our server, and every other name fails.

    A page that reached for the internet would hang a build offline (and the site ships everything it
    needs), so other names fail to resolve, inside Chromium, at no cost per request.
    """
    return f"--host-resolver-rules=MAP localhost 127.0.0.1:{port} , MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"

# MathJax typesets after `load` and only then asks for the glyph fonts it needs; images must be decoded too.
_READY_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  return true;
}"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # a build log is no place for one line per file served
        pass


@contextmanager
def serving(site: Path):
    """Serve ``site`` on a free loopback port for the duration of the block; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class PrintError(AttnlabError):
    """The PDFs could not all be printed while they were required ($ATTNLAB_REQUIRE_PDFS=1)."""


def fixed_dates(pdf: bytes) -> bytes:
    """The PDF with its CreationDate and ModDate set to 2000-01-01 00:00 UTC.

    Same length as before, so the byte offsets in the PDF's cross-reference table stay right.
    """
    def fixed(match: re.Match) -> bytes:
        zone = match.group(3)
        same = b"+00'00'" if len(zone) == 7 else zone
        return match.group(0).replace(match.group(2) + zone, FIXED_DATE + same)

    return _PDF_DATE.sub(fixed, pdf)


def required() -> bool:
    """Whether every PDF must be printed (a missing Chromium or page is an error, not a warning)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def _print_page(context, url: str, out_base: Path) -> list[Path]:
    """Open one page, wait for math, fonts and images, and print it once per paper size."""
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.evaluate(_READY_JS)
    written = []
    for suffix, paper in PAPERS.items():
        path = out_base.with_name(f"{out_base.name}-{suffix}.pdf")
        path.write_bytes(fixed_dates(page.pdf(format=paper, print_background=False)))
        written.append(path)
    page.close()
    return written


def print_pdfs(site: Path) -> list[Path]:
    """Print every page of PRINTABLES found in ``site`` to ``site/_static/print``; return the PDFs written."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise PrintError(f"{site} is not a built site (no index.html): run `make book` first")
    chromium = find_chromium()
    if chromium is None:
        advice = "install Debian's `chromium` or set CHROMIUM=/path/to/chrome, then run `make book` again"
        if required():
            raise PrintError(f"no Chromium found, and {REQUIRE_ENV}=1 asks for every PDF: {advice}")
        print(f"attnlab: no Chromium found, so the printable PDFs were not made ({advice})")
        return []
    from playwright.sync_api import sync_playwright

    out = site / OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with serving(site) as base, sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        port = int(base.rsplit(":", 1)[1])
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=[*CHROMIUM_FLAGS, host_rules(port)])
        for name, page in PRINTABLES.items():
            if not (site / page).is_file():
                print(f"attnlab: {page} is not in the built site, so {name}-*.pdf was not printed "
                      "(is it in _toc.yml?)")
                continue
            written += _print_page(context, f"{PRINT_ORIGIN}/{page}", out / name)
        context.close()
    _remove_others(out, written)
    expected = len(PRINTABLES) * len(PAPERS)
    if required() and len(written) < expected:
        raise PrintError(f"printed {len(written)} of {expected} PDFs, and {REQUIRE_ENV}=1 asks for every one "
                         "(see the lines above for the pages that were missing)")
    return written


def _remove_others(out: Path, written: list[Path]) -> None:
    """Delete PDFs this run did not print: one dropped from PRINTABLES must not stay on the site."""
    for path in out.glob("*.pdf"):
        if path not in written:
            path.unlink()


def main(argv: list[str]) -> int:
    """Command line: print the PDFs of the site given (default _build/html) and say how long it took."""
    site = Path(argv[0] if argv else "_build/html")
    started = time.perf_counter()
    try:
        written = print_pdfs(site)
    except AttnlabError as error:
        raise SystemExit(f"attnlab: {error}") from None
    for path in written:
        print(f"  {path.relative_to(site)}  {path.stat().st_size / 1e3:.0f} kB")
    if written:
        print(f"printed {len(written)} PDFs in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
