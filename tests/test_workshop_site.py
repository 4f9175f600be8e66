"""The "Teach this course" pages on the built site: every file they link exists, every command they name exists."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup

from tests.conftest import ROOT

pytestmark = pytest.mark.site
TEACH = ["book/teach/index", "book/teach/session-plans", "book/teach/instructor-notes", "book/teach/handout"]


def _soup(site, page: str) -> BeautifulSoup:
    return BeautifulSoup((site / f"{page}.html").read_text(encoding="utf-8"), "html.parser")


def test_every_workshop_file_linked_from_the_teach_page_exists(site):
    page = site / "book/teach/index.html"
    links = [a["href"] for a in _soup(site, "book/teach/index").select("table.attnlab-workshop-files a[href]")]
    kinds = {name: [h for h in links if name in h] for name in ("slides/", "notebooks/student/",
                                                               "notebooks/instructor/", "_static/print/")}
    assert len(kinds["slides/"]) == 13 and len(kinds["notebooks/student/"]) == 13
    assert len(kinds["notebooks/instructor/"]) >= 12 and len(kinds["_static/print/"]) == 4
    missing = [h for h in links if not (page.parent / urlsplit(h).path).resolve().is_file()]
    assert missing == [], f"linked from the Teach page but not built: {missing}"


def test_every_make_command_the_teach_pages_name_is_a_target(site):
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    code = [c.get_text() for page in TEACH for c in _soup(site, page).select("code, pre")]
    named = {m for text in code for m in re.findall(r"(?:^|\s)make ([a-z][\w-]*)", text)}
    assert {"book", "room", "bundle", "wheelhouse"} <= named
    assert named <= targets, f"commands named on the Teach pages but missing from the Makefile: {named - targets}"
