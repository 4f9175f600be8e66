"""The printable PDFs on the built site: the card and the session handout, each one sheet of A4 and of Letter."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from bs4 import BeautifulSoup
from playwright.sync_api import Error as PlaywrightError

from attnlab.workshop import __main__ as kit
from attnlab.workshop import chromium, printing
from attnlab.workshop.printing import OUT_DIR, PAPERS, PRINTABLES, REQUIRE_ENV, PrintError, fixed_dates, print_pdfs

PDFS = [f"{name}-{paper}.pdf" for name in PRINTABLES for paper in PAPERS]
SMALLEST_PDF = 20_000  # bytes: a page printed before its fonts or math arrived is a few kB of blank sheet


def _pdf(site, name: str) -> bytes:
    path = site / OUT_DIR / name
    if not path.is_file():
        pytest.fail(f"{OUT_DIR}/{name} is missing from the built site: `make book` prints it "
                    "(`python -m attnlab.workshop.printing _build/html`; it needs Chromium)")
    page = site / PRINTABLES[name.rsplit("-", 1)[0]]
    # _static/print outlives a build that could not print (no Chromium): a PDF older than its page is stale.
    assert path.stat().st_mtime >= page.stat().st_mtime, f"{name} is older than {page.name}: printed by an earlier build"
    return path.read_bytes()


@pytest.mark.site
@pytest.mark.parametrize("name", PDFS)
def test_each_printable_is_one_full_sheet(site, name):
    pdf = _pdf(site, name)
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))
    assert pages == 1, f"{name} has {pages} pages: its print CSS in attnlab/static/attnlab-reader.css must fit one"
    assert len(pdf) > SMALLEST_PDF, f"{name} is only {len(pdf)} bytes: printed before the page was drawn?"
    # The same page prints the same bytes: no time of printing in the PDF.
    dates = re.findall(rb"/(?:CreationDate|ModDate) ?\(D:(\d{14})", pdf)
    assert dates and set(dates) == {printing.FIXED_DATE}, f"{name}: dates {dates}"
    assert b"127.0.0.1" not in pdf, f"{name} links to the build's throwaway server"


@pytest.mark.site
@pytest.mark.parametrize("paper", list(PAPERS))
def test_the_handout_pdf_carries_its_attention_maps(site, paper):
    images = len(re.findall(rb"/Subtype\s*/Image", _pdf(site, f"handout-{paper}.pdf")))
    assert images >= 2, f"handout-{paper}.pdf embeds {images} images, not the two heatmaps"


@pytest.mark.site
def test_the_handout_maps_have_alt_text(site):
    soup = BeautifulSoup((site / PRINTABLES["handout"]).read_text(encoding="utf-8"), "html.parser")
    maps = soup.select("section#session-handout .cell_output img")
    assert len(maps) >= 2, f"the handout page shows {len(maps)} heatmap images"
    for image in maps:
        alt = image.get("alt", "")
        assert alt.startswith("Heatmap") and len(alt) > 80, f"heatmap without a real description: {alt!r}"
        assert (site / PRINTABLES["handout"]).parent.joinpath(image["src"]).resolve().is_file(), image["src"]


def test_the_print_dates_are_fixed_without_moving_any_byte():
    pdf = b"%PDF-1.4\n<< /Creator (Chromium) /CreationDate (D:20261127070254+00'00') /ModDate (D:20261127070301+00'00') >>"
    fixed = fixed_dates(pdf)
    assert len(fixed) == len(pdf) and fixed_dates(fixed) == fixed
    assert fixed.count(b"(D:20000101000000+00'00')") == 2 and b"2026" not in fixed


def test_a_chromium_that_is_not_there_is_named(monkeypatch):
    monkeypatch.setenv("CHROMIUM", "/usr/bin/no-such-chrome")
    with pytest.raises(chromium.ChromiumNotFound, match="CHROMIUM=/usr/bin/no-such-chrome does not exist"):
        chromium.find_chromium()


def _bare_site(tmp_path):
    (tmp_path / "index.html").write_text("<html></html>", encoding="utf-8")
    return tmp_path


def test_without_chromium_the_pdfs_are_a_warning_or_in_strict_mode_an_error(monkeypatch, tmp_path, capsys):
    site = _bare_site(tmp_path)
    monkeypatch.setattr(printing, "find_chromium", lambda: None)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    assert print_pdfs(site) == [] and "no Chromium found" in capsys.readouterr().out
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(PrintError, match=f"no Chromium found, and {REQUIRE_ENV}=1"):
        print_pdfs(site)


def _kit_with(monkeypatch, print_step):
    """The kit's command with its notebooks and slides steps doing nothing, and the PDFs step given."""
    monkeypatch.setattr(kit.notebooks, "write_notebooks", lambda root, site: [])
    monkeypatch.setattr(kit.slides, "build_decks", lambda site, root=None: [])
    monkeypatch.setattr(kit.printing, "print_pdfs", print_step)


def test_the_kit_stops_with_one_line_naming_the_step(monkeypatch, tmp_path):
    site = _bare_site(tmp_path)
    monkeypatch.setattr(printing, "find_chromium", lambda: None)
    monkeypatch.setenv(REQUIRE_ENV, "1")
    _kit_with(monkeypatch, print_pdfs)
    with pytest.raises(SystemExit, match=r"^workshop kit, PDFs: no Chromium found") as stopped:
        kit.main([str(site)])
    assert "\n" not in str(stopped.value)

    def timed_out(site):
        raise PlaywrightError("Timeout 30000ms exceeded.\n=========================== logs ===========")

    _kit_with(monkeypatch, timed_out)
    with pytest.raises(SystemExit, match=r"^workshop kit, PDFs: Timeout 30000ms exceeded\.$"):
        kit.main([str(site)])


def _print(site) -> subprocess.CompletedProcess:
    """`python -m attnlab.workshop.printing SITE` in strict mode, in a process of its own: the browser tests'
    session-wide Playwright keeps an event loop running in this one, where a second sync Playwright cannot start."""
    env = {**os.environ, REQUIRE_ENV: "1"}
    return subprocess.run([sys.executable, "-m", "attnlab.workshop.printing", str(site)], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.browser
def test_strict_mode_fails_when_a_printable_page_is_missing(tmp_path):
    site = _bare_site(tmp_path)
    if chromium.find_chromium() is None:
        pytest.fail("Chromium not found: install Debian's `chromium` package (.ci/run does) or set CHROMIUM=/path")
    stale = site / OUT_DIR / "dropped-a4.pdf"  # a printable since removed from PRINTABLES
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"%PDF")
    printed = _print(site)
    assert printed.returncode == 1
    assert printed.stderr.strip() == (f"attnlab: printed 0 of {len(PRINTABLES) * len(PAPERS)} PDFs, and {REQUIRE_ENV}=1 "
                                      "asks for every one (see the lines above for the pages that were missing)")
    assert not stale.exists()


@pytest.mark.browser
def test_two_prints_of_the_same_pages_are_the_same_bytes(tmp_path):
    site = _bare_site(tmp_path)
    for page in PRINTABLES.values():
        (site / page).parent.mkdir(parents=True, exist_ok=True)
        (site / page).write_text('<html><body><h1>One sheet</h1><p><a href="../index.html">Home</a></p></body></html>',
                                 encoding="utf-8")
    pdfs = [site / OUT_DIR / f"{name}-{paper}.pdf" for name in PRINTABLES for paper in PAPERS]
    assert _print(site).returncode == 0
    first = [path.read_bytes() for path in pdfs]
    assert _print(site).returncode == 0
    assert [path.read_bytes() for path in pdfs] == first
    assert f"/URI ({printing.PRINT_ORIGIN}/".encode() in first[0] and b"127.0.0.1" not in first[0]
