"""The slide decks (attnlab.workshop.slides): one per chapter, offline, figures drawn and live, math typeset.

The decks are written into the built site by `python -m attnlab.workshop _build/html`, which
`make book` runs after the Sphinx build; these tests read `_build/html/slides/`.
"""

from __future__ import annotations

import os
import re

import pytest

from attnlab.workshop.chapters import Chapter, Section
from attnlab.workshop.plans import section_minutes
from attnlab.workshop.slides import DECK_ASSETS, SlidesError, build_decks, chapter_deck
from tests.conftest import ROOT

# The taught chapters, from the sources (the site may not exist when tests are collected).
TAUGHT = re.compile(r"(?!00-)\d\d-.+")  # every chapter but 00, the welcome
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("*.md") if TAUGHT.fullmatch(p.stem))
PROJECTOR, PHONE = (1280, 720), (390, 844)
FEWEST_SLIDES = 4

READY_JS = """async () => {
  await new Promise(resolve => Reveal.isReady() ? resolve() : Reveal.on("ready", resolve));
  await MathJax.startup.promise;
  return Reveal.getTotalSlides();
}"""
# Every figure of the current slide drawn, at its box's width (drawn while hidden, it would be 0 or 700 px);
# the explorer's map is as wide as its sentence needs.
DRAWN_JS = """() => [...Reveal.getCurrentSlide().querySelectorAll(".js-plotly-plot")].every(
  gd => gd._fullLayout && gd.clientWidth > 0 && gd._fullLayout.width > 0
        && (gd.classList.contains("attnlab-explorer-plot") || Math.abs(gd._fullLayout.width - gd.clientWidth) <= 2))"""
WIDTHS_JS = """() => [...Reveal.getCurrentSlide().querySelectorAll(".js-plotly-plot")].map(gd => gd._fullLayout.width)"""
# The static explorer's token labels (HTML it places beside the map) lie inside its box, not off to one side.
LABELS_JS = """() => [...Reveal.getCurrentSlide().querySelectorAll(".attnlab-explorer")].every(explorer => {
  const box = explorer.getBoundingClientRect();
  return [...explorer.querySelectorAll(".attnlab-explorer-queries span")].every(label => {
    const r = label.getBoundingClientRect();
    return r.left >= box.left - 1 && r.right <= box.right + 1;
  });
})"""
# TeX left in the slides' text: MathJax would have replaced every \\( … \\) and $$ … $$ it found.
RAW_TEX_JS = r"""() => {
  const walker = document.createTreeWalker(document.querySelector(".reveal .slides"), NodeFilter.SHOW_TEXT);
  const raw = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest("script, style")) continue;
    if (/\\\(|\$\$/.test(node.textContent)) raw.push(node.textContent.trim().slice(0, 80));
  }
  return raw;
}"""


@pytest.fixture(scope="module")
def decks(site):
    folder = site / "slides"
    if not folder.is_dir():
        pytest.fail(f"no slide decks in {folder}: run `python -m attnlab.workshop {site}` (make book does)")
    return folder


@pytest.mark.site
def test_one_deck_per_chapter(decks, site):
    chapter_pages = {p.stem for p in (site / "book").glob("*.html") if TAUGHT.fullmatch(p.stem)}
    assert {p.stem for p in decks.glob("*.html")} == set(CHAPTERS) == chapter_pages


@pytest.mark.site
def test_a_deck_links_back_to_its_chapter_and_names_only_local_assets(decks):
    for name in CHAPTERS:
        html = (decks / f"{name}.html").read_text(encoding="utf-8")
        assert f'href="../book/{name}.html"' in html, name
        assets = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', html)
        assert assets and all(a.startswith("../_static/") for a in assets), (name, assets)
        assert "../_static/vendor/reveal.js/dist/reveal.js" in assets and "../_static/vendor/mathjax/startup.js" in assets
        assert '<aside class="notes">' in html, f"{name}: no speaker notes"


@pytest.mark.site
@pytest.mark.browser
@pytest.mark.parametrize("name", CHAPTERS)
def test_a_deck_opens_offline_with_every_figure_drawn_and_math_typeset(visit, decks, name):
    opened = visit(f"slides/{name}.html", viewport=PROJECTOR)
    page = opened.page
    total = page.evaluate(READY_JS)
    assert total >= FEWEST_SLIDES, f"{name}: {total} slides"
    for index in range(total):
        page.evaluate("i => Reveal.slide(i)", index)
        page.wait_for_function(DRAWN_JS, timeout=5_000)
        assert all(width > 0 for width in page.evaluate(WIDTHS_JS)), (name, index)
        page.wait_for_function(LABELS_JS, timeout=5_000)  # the explorer's token labels beside its map
    undrawn = page.evaluate("document.querySelectorAll('.plotly-graph-div:not(.js-plotly-plot)').length")
    assert undrawn == 0, f"{name}: {undrawn} Plotly figures never drawn"
    assert page.evaluate("document.querySelectorAll('.reveal .slides mjx-container').length") > 0, name
    assert page.evaluate(RAW_TEX_JS) == [], f"{name}: TeX left untypeset"
    opened.assert_clean()


@pytest.mark.site
@pytest.mark.browser
def test_a_figure_on_a_slide_stays_live(visit, decks):
    """A real click on a Plotly menu, at the place it is drawn, changes the data the figure shows."""
    opened = visit("slides/04-attention-from-scratch.html", viewport=PROJECTOR)
    page = opened.page
    page.evaluate(READY_JS)
    index = page.evaluate("""() => {
      const gd = [...document.querySelectorAll('.js-plotly-plot')].find(gd => (gd.layout.updatemenus || []).length);
      return Reveal.getIndices(gd.closest('.slides > section')).h;
    }""")
    page.evaluate("i => Reveal.slide(i)", index)
    page.wait_for_function(DRAWN_JS)
    shown = "() => JSON.stringify(Reveal.getCurrentSlide().querySelector('.js-plotly-plot').data.map(t => t.y))"
    before = page.evaluate(shown)
    slide = page.locator(".slides > section.present")
    slide.locator(".updatemenu-header-group").first.click()
    slide.locator(".updatemenu-dropdown-button").nth(1).click()
    page.wait_for_function(f"before => ({shown})() !== before", arg=before, timeout=5_000)
    opened.assert_clean()


@pytest.mark.site
@pytest.mark.browser
def test_a_deck_fits_a_phone(visit, decks):
    """At 390 px nothing is wider than the slide: text wraps, figures fit, wide equations scroll in their box."""
    opened = visit("slides/04-attention-from-scratch.html", viewport=PHONE)
    page = opened.page
    total = page.evaluate(READY_JS)
    for index in range(total):
        page.evaluate("i => Reveal.slide(i)", index)
        page.wait_for_function(DRAWN_JS, timeout=5_000)
        overflow = page.evaluate("() => { const s = Reveal.getCurrentSlide(); return s.scrollWidth - s.clientWidth; }")
        assert overflow <= 1, f"slide {index + 1} is {overflow} px wider than the phone"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    opened.assert_clean()


# A chapter page as the book builds it, cut to what a deck is made from.
PAGE = """<html><head><script>window.MathJax = {"loader": {"load": ["input/tex"]}}</script></head><body><main>
<section id="c"><h1>7 · A chapter<a class="headerlink" href="#c">#</a></h1>
<div class="tip admonition"><ul>
<li><p><strong>You will:</strong> try it.</p></li>
<li><p><strong>Time:</strong> 20 minutes of reading, 30 minutes for
<a class="attnlab-colab" href="https://colab.research.google.com/x/notebooks/07-a-chapter-lab.ipynb">lab 7</a>.</p></li>
</ul></div>
<p><strong>Learning objectives.</strong> After this chapter you can</p><ol><li><p>do \\(x\\).</p></li></ol>
<section id="analogy"><h2>Analogy: a thing</h2><p>One.</p><p>Two.</p><p>Three, for the notes.</p></section>
<section id="eq"><h2>An equation</h2><p>See <a href="glossary.html#term-x">x</a> in this one, which is long enough to be a lead.</p>
<div class="math">\\[y = x\\]</div></section>
<section id="prose"><h2>Only prose</h2><p>No slide for this section.</p></section>
<section id="explore"><h2>Explore: it</h2><p>Look.</p></section>
<section id="practice"><h2>Practice</h2></section>
<section id="summary"><h2>Summary</h2><ul><li><p>It worked.</p></li></ul></section>
</section></main></body></html>"""


def _site(tmp_path):
    """A site with the assets a deck needs, and no pages yet."""
    for asset in DECK_ASSETS:
        (tmp_path / asset).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / asset).write_text("", encoding="utf-8")
    (tmp_path / "book").mkdir()
    return tmp_path


def test_a_deck_is_built_from_a_page_and_rebuilt_in_place(tmp_path):
    _site(tmp_path)
    (tmp_path / "book" / "07-a-chapter.html").write_text(PAGE, encoding="utf-8")
    (tmp_path / "book" / "00-welcome.html").write_text(PAGE, encoding="utf-8")  # not a taught chapter: no deck
    first = build_decks(tmp_path)
    html = first[0].read_text(encoding="utf-8")
    assert first == build_decks(tmp_path) == [tmp_path / "slides" / "07-a-chapter.html"]
    assert first[0].read_text(encoding="utf-8") == html, "the same page gave another deck"
    slides = re.findall(r'<section(?: [^>]*)?>\s*<section', html)
    # title, objectives, analogy, the equation, Explore, summary, lab
    assert len(slides) == 7, len(slides)
    assert "No slide for this section" not in html and "Three, for the notes" in html
    assert 'href="../book/glossary.html#term-x"' in html and 'href="../book/07-a-chapter.html"' in html
    assert "https://colab.research.google.com/x/notebooks/07-a-chapter-lab.ipynb" in html
    assert "vendor/plotly" not in html  # no figure, no plotly.js


def test_a_rebuild_keeps_unchanged_decks_and_removes_stale_ones(tmp_path):
    _site(tmp_path)
    (tmp_path / "book" / "07-a-chapter.html").write_text(PAGE, encoding="utf-8")
    [deck] = build_decks(tmp_path)
    os.utime(deck, ns=(1_000_000_000, 1_000_000_000))  # as if written long ago
    stale = tmp_path / "slides" / "06-renamed-since.html"
    stale.write_text("an old chapter's deck", encoding="utf-8")
    assert build_decks(tmp_path) == [deck]
    assert deck.stat().st_mtime_ns == 1_000_000_000, "an unchanged deck was written again (its .br/.gz go stale)"
    assert not stale.exists()


def _facts(reading: int, words: dict[str, int]) -> Chapter:
    sections = [Section(title=anchor, anchor=anchor, words=n, has_math=False, figures=0) for anchor, n in words.items()]
    return Chapter(number=7, docname="book/07-a-chapter", title="A chapter", you_will="", objectives=[],
                   reading_min=reading, lab_min=30, sections=sections, lab=None, exercises=[])


def test_speaker_notes_give_each_section_the_session_plans_minutes(tmp_path):
    _site(tmp_path)
    page = tmp_path / "book" / "07-a-chapter.html"
    page.write_text(PAGE, encoding="utf-8")
    facts = _facts(20, {"analogy": 100, "eq": 290, "prose": 10, "explore": 0, "practice": 0, "summary": 0})
    planned = dict(zip([s.anchor for s in facts.sections], section_minutes(facts)))
    assert (planned["analogy"], planned["eq"], planned["explore"]) == (5, 15, 0)
    notes = [slide.notes for slide in chapter_deck(page, tmp_path, facts).slides]
    assert any("About 5 of the chapter's 20 reading minutes" in n and "Three, for the notes" in n for n in notes)
    assert any("About 15 of the chapter's 20 reading minutes" in n for n in notes)
    assert any("no reading minutes of its own" in n for n in notes)  # Explore: 0 in the plans, said so
    assert not any("share of the words" in n for n in notes)  # the deck's own rule is gone
    assert not any("reading minutes" in n for n in (s.notes for s in chapter_deck(page, tmp_path).slides))


def test_the_lab_title_and_colab_address_are_escaped(tmp_path):
    _site(tmp_path)
    colab = "https://colab.research.google.com/x/notebooks/07-a-chapter-lab.ipynb?a=1&amp;b=2"
    (tmp_path / "book" / "07-a-chapter.html").write_text(
        PAGE.replace("https://colab.research.google.com/x/notebooks/07-a-chapter-lab.ipynb", colab), encoding="utf-8")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "07-a-chapter-lab.html").write_text(
        '<html><body><h1>Lab 7 · A &amp; &lt;b&gt;</h1><div class="tag_exercise"><pre>def f(x):</pre></div>'
        "</body></html>", encoding="utf-8")
    [deck] = build_decks(tmp_path)
    html = deck.read_text(encoding="utf-8")
    assert "<h2>Lab 7 · A &amp; &lt;b&gt;</h2>" in html and "<b></h2>" not in html
    assert 'href="https://colab.research.google.com/x/notebooks/07-a-chapter-lab.ipynb?a=1&amp;b=2"' in html
    assert "<code>f</code>" in html


def test_bad_input_is_named_in_the_error(tmp_path):
    _site(tmp_path)
    (tmp_path / "book" / "03-broken.html").write_text(PAGE.replace("Analogy: a thing", "A thing"), encoding="utf-8")
    with pytest.raises(SlidesError, match=r"03-broken\.html: no '## Analogy…' section"):
        build_decks(tmp_path)
    (tmp_path / DECK_ASSETS[0]).unlink()
    with pytest.raises(SlidesError, match="reveal.js/dist/reveal.js: run `npm ci`"):
        build_decks(tmp_path)
    with pytest.raises(SlidesError, match="build the book first"):
        build_decks(tmp_path / "nowhere")
