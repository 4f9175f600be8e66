"""The reference pages on the built site: glossary links in every chapter, and every glossary term in use."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from bs4 import BeautifulSoup

from tests.test_site import toc_pages

pytestmark = pytest.mark.site

CHAPTERS = [page for page in toc_pages() if re.match(r"book/(?!00-)\d\d-", page)]
FEWEST_TERMS = 5  # a chapter of this course meets at least this many glossary terms
NEVER_INSIDE = "h1, h2, h3, h4, h5, h6, code, pre, .cell_output, .cell_input, mjx-container, .admonition.tip"


def _soup(site, page: str) -> BeautifulSoup:
    return BeautifulSoup((site / f"{page}.html").read_text(encoding="utf-8"), "html.parser")


@pytest.fixture(scope="module")
def glossary_ids(site) -> set[str]:
    """The anchor of every entry the glossary page defines: its first term line's (links go there)."""
    ids, previous = set(), None
    for tag in _soup(site, "book/glossary").select("dl.glossary > dt, dl.glossary > dd"):
        if tag.name == "dt" and previous != "dt":
            ids.add(tag["id"])
        previous = tag.name
    assert len(ids) >= 40, f"the glossary defines only {len(ids)} terms"
    return ids


@pytest.fixture(scope="module")
def term_links(site) -> dict[str, list]:
    return {page: _soup(site, page).select("a.attnlab-term") for page in CHAPTERS}


@pytest.mark.parametrize("page", CHAPTERS)
def test_a_chapter_links_the_first_use_of_its_terms_to_the_glossary(page, term_links, glossary_ids):
    links = term_links[page]
    targets = [link["href"].split("#")[1] for link in links]
    assert len(links) >= FEWEST_TERMS, f"{page}: only {len(links)} glossary terms linked"
    assert set(targets) <= glossary_ids, set(targets) - glossary_ids
    assert all(link["href"].startswith("glossary.html#") for link in links)
    repeated = [target for target, count in Counter(targets).items() if count > 1]
    assert not repeated, f"{page}: linked more than once: {repeated}"
    misplaced = [link.get_text() for link in links if link.find_parent(
        lambda tag: tag.name in {"h1", "h2", "h3", "h4", "h5", "h6", "code", "pre"}
        or {"cell_output", "cell_input"} & set(tag.get("class", [])))]
    assert not misplaced, f"{page}: glossary links inside headings or code: {misplaced}"


def test_every_glossary_term_is_met_in_some_chapter(term_links, glossary_ids):
    used = {link["href"].split("#")[1] for links in term_links.values() for link in links}
    assert glossary_ids - used == set(), "glossary terms no chapter uses (spell them as the chapters do)"

# The card's PDFs (one sheet, A4 and Letter) are printed by the build and checked in tests/test_printables.py.
