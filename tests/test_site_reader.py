"""What a reader notices on the built site: plain numbers in outputs, exercises numbered per
chapter, author–year references, an index, readable search results, and the HTML fixes behind
the accessibility check (attnlab.sphinxext_reader; the axe-core check itself is in
tests/test_site_shell.py).

The first tests need no build: they check attnlab.sphinxext_reader's pieces on their own.
"""

from __future__ import annotations

import re
import textwrap

import pytest
from bs4 import BeautifulSoup

from attnlab import sphinxext_reader
from tests.conftest import ROOT
from tests.test_site import toc_pages

CHAPTERS = {  # chapter number → page, for the chapters with exercises
    int(name.split("/")[1][:2]): name for name in toc_pages() if re.match(r"book/0[1-9]-", name)
}

# ------------------------------------------------------------------------------ no build needed


def test_exercises_restart_at_one_in_each_chapter():
    sphinx_numbers = {"ch2-count": (4,), "ch2-cosine": (6,), "ch2-shapes": (5,)}  # counted across the book
    assert sphinxext_reader.number_per_chapter(sphinx_numbers, 2) == {
        "ch2-count": (2, 1), "ch2-shapes": (2, 2), "ch2-cosine": (2, 3)}
    assert sphinxext_reader.number_per_chapter({"intro": (7,)}, None) == {"intro": (1,)}
    assert sphinxext_reader.chapter_number("2 · From text to vectors") == 2
    assert sphinxext_reader.chapter_number("Welcome to attnlab") is None


def test_bibliography_labels_are_author_year():
    from pybtex.database import parse_file
    from pybtex.plugin import find_plugin

    sphinxext_reader._register_bibliography_style()
    entries = parse_file(ROOT / "book" / "references.bib").entries
    style = find_plugin("pybtex.style.formatting", sphinxext_reader.BIBLIOGRAPHY_STYLE)()
    labels = {entry.key: entry.label for entry in style.format_entries(entries.values())}
    assert labels["vaswani2017attention"] == "Vaswani et al., 2017"
    assert labels["elman1990finding"] == "Elman, 1990"
    label_style = find_plugin("pybtex.style.labels", sphinxext_reader.LABEL_STYLE)()
    liu = [entries["liu2020understanding"], entries["liu2020variance"]]
    assert list(label_style.format_labels(liu)) == ["Liu et al., 2020a", "Liu et al., 2020b"]
    # In a build the whole bibliography decides the letter, so a page citing one of the two agrees with the other page.
    sphinxext_reader._ALL_ENTRIES.update(entries)
    try:
        assert list(label_style.format_labels(liu[1:])) == ["Liu et al., 2020b"]
        assert list(label_style.format_labels([entries["vaswani2017attention"]])) == ["Vaswani et al., 2017"]
    finally:
        sphinxext_reader._ALL_ENTRIES.clear()
        sphinxext_reader._LABELS.clear()


def test_body_fixes_of_myst_nb_and_docutils_markup():
    toggle = '<details class="hide above-input"><summary aria-label="Toggle hidden content">\n<p>Show code cell source</p>'
    bibliography = '<div role="list" class="citation-list">\n<div class="citation" id="id6" role="doc-biblioentry">'
    fixed = sphinxext_reader.accessible_body(toggle + bibliography)
    assert 'aria-label="Toggle hidden content"' not in fixed and "<summary>\n<p>Show code cell source" in fixed
    assert 'role="doc-biblioentry"' not in fixed and '<div class="citation" id="id6" role="listitem">' in fixed


def test_sidebar_expanders_get_a_name_once():
    soup = BeautifulSoup(textwrap.dedent("""\
        <ul><li class="toctree-l1 has-children"><a class="reference internal" href="a.html">2 · Text</a>
        <details><summary><span class="toctree-toggle" role="presentation"><i class="fa-solid fa-chevron-down"></i></span>
        </summary><ul><li class="toctree-l2"><a href="b.html">Lab 2</a></li></ul></details></li></ul>"""), "html.parser")
    sphinxext_reader.name_sidebar_expanders(soup)
    sphinxext_reader.name_sidebar_expanders(soup)  # the theme caches the soup: a second call adds nothing
    assert [s.get_text(strip=True) for s in soup.select("summary")] == ["Pages under 2 · Text"]
    assert soup.select_one("summary .visually-hidden")


def test_exercise_references_follow_the_chapter_numbers(tmp_path):
    """A small Sphinx project: the titles, the solutions and {numref} all say "Exercise 3.2"."""
    from sphinx.application import Sphinx

    source = tmp_path / "source"
    source.mkdir()
    (source / "conf.py").write_text('extensions = ["sphinx_exercise", "attnlab.sphinxext_reader"]\n')
    (source / "index.rst").write_text("Book\n====\n\n.. toctree::\n\n   two\n   three\n")
    exercise = ".. exercise:: {title}\n   :label: {label}\n\n   Do it.\n\n"
    (source / "two.rst").write_text("2 · Two\n=======\n\n" + exercise.format(title="A", label="two-a"))
    (source / "three.rst").write_text(
        "3 · Three\n=========\n\n" + exercise.format(title="B", label="three-b") + exercise.format(title="C", label="three-c")
        + ".. solution:: three-c\n\n   Done.\n\nSee :numref:`three-c` and :ref:`three-c`.\n")
    app = Sphinx(str(source), str(source), str(tmp_path / "html"), str(tmp_path / "doctrees"), "html",
                 status=None, warningiserror=True, freshenv=True)
    app.build()
    page = BeautifulSoup((tmp_path / "html" / "three.html").read_text(encoding="utf-8"), "html.parser")
    text = " ".join(page.get_text(" ").split())
    assert "Exercise 3.1" in text and "Exercise 3.2" in text
    assert "Solution to Exercise 3.2" in text
    links = [a.get_text(" ", strip=True) for a in page.select('a[href="#three-c"]')]  # solution, numref, ref
    assert len(links) == 3 and all(link.startswith("Exercise 3.2") for link in links), links
    two = BeautifulSoup((tmp_path / "html" / "two.html").read_text(encoding="utf-8"), "html.parser")
    assert two.select_one("h1").get_text(strip=True).rstrip("#¶") == "2 · Two"  # no number added to the title


# ------------------------------------------------------------------------------ the built site

site_tests = pytest.mark.site
# numpy and torch scalars printed where a number was meant: np.float64(0.924), tensor(0.5).
SCALAR_REPR = re.compile(r"\bnp\.(?:float|int|uint|bool|complex)\w*\(|\bnp\.(?:True|False)_|\btensor\(")


@pytest.fixture(scope="module")
def soups(site) -> dict[str, BeautifulSoup]:
    return {name: BeautifulSoup((site / f"{name}.html").read_text(encoding="utf-8"), "html.parser")
            for name in toc_pages()}


@site_tests
def test_outputs_print_plain_numbers(soups):
    for name, soup in soups.items():
        for output in soup.select(".cell_output"):
            text = output.get_text()
            assert not SCALAR_REPR.search(text), f"{name}: {SCALAR_REPR.search(text).group(0)} in {text[:200]!r}"


@site_tests
def test_exercises_are_numbered_per_chapter(soups):
    for chapter, name in CHAPTERS.items():
        soup = soups[name]
        numbers = [n.get_text(strip=True) for n in soup.select(".exercise .caption-number")]
        assert numbers == [f"Exercise {chapter}.{i}" for i in range(1, len(numbers) + 1)] and numbers, name
        solutions = [a.get_text(" ", strip=True) for a in soup.select(".solution .admonition-title a")]
        assert all(s.startswith(f"Exercise {chapter}.") for s in solutions) and solutions, name
        title = soup.select_one("h1").get_text(strip=True).rstrip("#¶")
        assert title.startswith(f"{chapter} · ") and not title.startswith(f"{chapter}."), f"{name}: {title}"


@site_tests
def test_bibliography_lists_are_author_year_list_items(soups):
    cited = 0
    for name, soup in soups.items():
        for bibliography in soup.select(".citation-list"):
            for entry in bibliography.select(".citation"):
                label = entry.select_one(".label").get_text(strip=True)
                assert re.fullmatch(r"\[\w[\w\- ]*(?: and \w[\w\-]*| et al\.)?, \d{4}[a-z]?\]", label), f"{name}: {label}"
                assert entry.get("role") == "listitem", name
                cited += 1
    assert cited >= 10
    assert soups["book/01-why-transformers"].find(string="Vaswani et al., 2017")


@site_tests
def test_index_page_lists_the_key_terms(site):
    index = BeautifulSoup((site / "genindex.html").read_text(encoding="utf-8"), "html.parser")
    terms = {a.get_text(strip=True): a["href"] for a in index.select("table.indextable a")}
    for term in ("attention", "softmax", "query", "key", "value", "positional encoding", "RoPE", "WordPiece",
                 "BPE", "embedding", "scaled dot-product attention", "mask", "recurrent neural network", "RNN"):
        assert term in terms, f"the index lacks {term!r}"
    # The glossary's definition comes first (Sphinx lists a glossary term as the main entry), then the chapter.
    entry = next(li for li in index.select("table.indextable li") if li.a and li.a.get_text(strip=True) == "softmax")
    softmax = [a["href"] for a in entry.find_all("a", recursive=False)]
    assert softmax[0].startswith("book/glossary.html#term-softmax"), softmax
    assert any(href.startswith("book/04-attention-from-scratch.html#") for href in softmax), softmax


@site_tests
def test_explorer_lab_says_what_the_static_page_shows(soups):
    text = soups["notebooks/explorer-lab"].get_text(" ")
    assert "the figure above follows" not in text
    assert "snapshot" in text


@site_tests
def test_the_accessibility_fixes_reach_every_page(site):
    for path in site.rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        name = path.relative_to(site)
        assert 'aria-label="Toggle hidden content"' not in html, name
        assert 'role="doc-biblioentry"' not in html, name
        for button in re.findall(r'<button class="btn search-button-field[^>]*>', html):
            assert "aria-label" not in button, name  # the search button's name is its text, "Search Ctrl+K"
        soup = BeautifulSoup(html, "html.parser")
        for summary in soup.select(".bd-sidebar-primary summary"):
            assert summary.get_text(strip=True), f"{name}: a sidebar expander without a name"


@pytest.mark.site
@pytest.mark.browser
def test_search_results_show_math_as_text(visit):
    page_visit = visit("search.html?q=softmax")
    page = page_visit.page
    # Sphinx shows each result's summary (p.context) as its page arrives, then says it finished.
    page.wait_for_function("() => document.querySelectorAll('#search-results li p.context').length >= 5",
                           timeout=20_000)
    page.wait_for_timeout(500)
    summaries = page.locator("#search-results li p.context").all_inner_texts()
    assert any("softmax" in s.lower() for s in summaries), summaries
    for summary in summaries:
        assert not re.search(r"\\[A-Za-z()\[\]]", summary), summary  # \frac, \(, \operatorname …
    to_text = page.evaluate(r"() => Search.attnlabTexToText('\\(\\operatorname{softmax}\\!\\left(\\frac{Q K^\\top}{\\sqrt{d_k}}\\right)\\)')")
    assert to_text == "softmax((Q Kᵀ)/√d_k)"
    page_visit.assert_clean()
