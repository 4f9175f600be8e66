"""One reveal.js deck per chapter, made from the chapter's built page, with its figures still live.

    .venv/bin/python -m attnlab.workshop.slides _build/html

Writes ``slides/NN-name.html`` into the site for every chapter from 01 on. A deck holds the chapter's title,
objectives, analogy, every section with a key equation or figure, the Explore figure, the summary
and the lab's exercises, each with speaker notes (press ``s``). The pages' HTML is reused as built:
equations are typeset by the site's MathJax and Plotly figures keep their sliders, menus and hover.
nbconvert's SlidesExporter lays the slides out; our template (templates/attnlab_reveal) serves
reveal.js, MathJax and plotly.js from the site's ``_static/vendor``, so a deck works with no network.
"""

from __future__ import annotations

import copy
import html as html_lib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from bs4 import BeautifulSoup, NavigableString, Tag

from attnlab.sphinxext import plotly_bundle_for
from attnlab.workshop.chapters import Chapter, chapter_facts
from attnlab.workshop.notebooks import remove_others, write_if_changed
from attnlab.workshop.plans import STEP, section_minutes

TEMPLATES = Path(__file__).parent / "templates"
ROOT = Path(__file__).resolve().parents[2]  # the repository: its book/NN-*.md give each deck's section minutes
CHAPTER_PAGE = re.compile(r"(\d\d)-[a-z0-9-]+\.html")  # a chapter's page; chapter 00 (the welcome) gets no deck
OUT_DIR = "slides"
#: What every deck loads from the site (besides plotly.js, which the book's pages load too).
DECK_ASSETS = ("_static/vendor/reveal.js/dist/reveal.js", "_static/vendor/reveal.js/dist/reveal.css",
               "_static/vendor/reveal.js/plugin/notes/notes.js", "_static/vendor/mathjax/startup.js")
MAX_EQUATIONS = 2  # per section: the key ones, not the derivation
MAX_TALKING_POINTS = 6
ROOM_FOR_LEAD = 470  # px: a figure up to this tall still leaves room for its lead sentence at 1280×720
LEAD_CHARS = 60  # a lead sentence is at least this long: "e.g." or "Fig." do not end it
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_MATHJAX_CONFIG = re.compile(r"window\.MathJax\s*=")


class SlidesError(ValueError):
    """A chapter page lacks what a deck is made from; the message names the page and what to fix."""


@dataclass
class Slide:
    """One slide: its HTML, speaker notes (HTML) and whether it holds a wide figure."""

    html: str
    notes: str = ""
    wide: bool = False


@dataclass
class Deck:
    """A chapter's deck: its slides and the facts the template needs."""

    name: str
    title: str
    slides: list[Slide] = field(default_factory=list)
    mathjax_config: str = ""


def build_decks(site: Path, root: Path | None = None) -> list[Path]:
    """Write ``slides/NN-name.html`` for every chapter page 01 and up of the built ``site``; return the paths.

    ``root`` is the repository whose chapters the site was built from (default: this one); a deck's speaker
    notes give each section the minutes the session plans give it (plans.section_minutes).
    """
    pages = sorted(p for p in (site / "book").glob("*.html")
                   if (found := CHAPTER_PAGE.fullmatch(p.name)) and int(found.group(1)) >= 1)
    if not pages:
        raise SlidesError(f"{site}/book has no chapter pages NN-name.html: build the book first (make book)")
    missing = [asset for asset in DECK_ASSETS if not (site / asset).is_file()]
    if missing:
        raise SlidesError(f"{site} lacks {', '.join(missing)}: run `npm ci`, then build the book again "
                          "(attnlab.sphinxext copies reveal.js and MathJax from node_modules)")
    try:
        facts = {Path(chapter.docname).name: chapter for chapter in chapter_facts(root or ROOT)}
    except ValueError as error:
        raise SlidesError(f"cannot read the chapters: {error}") from None
    exporter = _exporter()
    out = site / OUT_DIR
    written = []
    for page in pages:
        deck = chapter_deck(page, site, facts.get(page.stem))
        path = out / page.name
        write_if_changed(path, render_deck(deck, exporter))  # an unchanged deck keeps its mtime (and .br/.gz)
        written.append(path)
    remove_others(out, written, "*.html")  # a renamed or removed chapter's old deck
    return written


# ---------------------------------------------------------------- reading a built chapter page


def chapter_deck(page: Path, site: Path, facts: Chapter | None = None) -> Deck:
    """The slides of one built chapter page (``site/book/NN-name.html``); ``facts`` of its chapter give the minutes."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    chapter = soup.select_one("main section") or soup.select_one("section")
    if chapter is None or chapter.find("h1") is None:
        raise SlidesError(f"{page}: no chapter <section> with an <h1>: is this a chapter page of the built book?")
    _relink(chapter, page.name)
    title = _inner(chapter.find("h1"))
    deck = Deck(name=page.stem, title=chapter.find("h1").get_text(" ", strip=True).rstrip("#").strip())
    deck.mathjax_config = _mathjax_config(soup, page)
    glance = _at_a_glance(chapter)
    sections = chapter.find_all("section", recursive=False)
    planned = _planned_minutes(facts)

    def minutes(section: Tag) -> str:
        # The session plans' numbers (one rule for both), found by the section's anchor.
        share = planned.get(section.get("id", ""))
        if share is None:
            return ""
        if share == 0:
            return ("<p>A short section: the session plans give it no reading minutes of its own "
                    f"(they count the chapter's {facts.reading_min} in {STEP}-minute steps).</p>")
        return f"<p>About {share} of the chapter's {facts.reading_min} reading minutes, as in the session plans.</p>"

    lab_url, colab_url = _lab_links(chapter, page)
    deck.slides.append(_title_slide(title, glance, page, lab_url))
    deck.slides.append(_objectives_slide(chapter, page))
    analogy = _section(sections, "Analogy", page)
    paragraphs = analogy.find_all("p", recursive=False)
    deck.slides.append(Slide(
        _heading(analogy) + "".join(str(p) for p in paragraphs[:2]),
        _notes(paragraphs[2:], minutes(analogy)),
    ))
    start = sections.index(analogy) + 1
    practice = _section(sections, "Practice", page)
    for section in sections[start:sections.index(practice)]:
        deck.slides.extend(_section_slides(section, minutes(section)))
    summary = _section(sections, "Summary", page)
    deck.slides.append(Slide(
        _heading(summary) + "".join(str(lst) for lst in summary.find_all(["ul", "ol"], recursive=False)),
        "<p>Ask the room to say each point back in their own words before the lab.</p>",
    ))
    deck.slides.append(_lab_slide(site, page, lab_url, colab_url))
    return deck


def _planned_minutes(facts: Chapter | None) -> dict[str, int]:
    """Section anchor → the minutes the session plans give it; empty without the chapter's facts."""
    if facts is None:
        return {}
    return {section.anchor: share for section, share in zip(facts.sections, section_minutes(facts))}


def _section_slides(section: Tag, minutes: str) -> list[Slide]:
    """A section's slides: its key equations, then its first figure; none for a section with neither."""
    explore = _title(section).startswith("Explore")
    equations = section.select("div.math")[:MAX_EQUATIONS]
    figure = _figure(section)
    if not (equations or figure or explore):
        return []
    heading, lead = _heading(section), _lead(section)
    notes = _notes(section.find_all("p", recursive=False)[1:], minutes)
    slides = []
    if equations:
        slides.append(Slide(heading + lead + "".join(str(eq) for eq in equations), notes))
    if figure is not None:
        # On a projector (720 px high) a tall figure leaves no room for a sentence above it.
        roomy = not equations and _height(figure) <= ROOM_FOR_LEAD
        figure_notes = _on_screen(figure) + ("" if equations else notes if roomy else _points(lead) + notes)
        slides.append(Slide(heading + (lead if roomy else "") + str(figure), figure_notes, wide=True))
    if not slides:  # an Explore section with no figure: its opening paragraphs
        paragraphs = section.find_all("p", recursive=False)
        slides.append(Slide(heading + "".join(str(p) for p in paragraphs[:2]), _notes(paragraphs[2:], minutes)))
    return slides


def _figure(section: Tag) -> Tag | None:
    """The section's first figure: a Plotly figure, the static explorer, or a picture a cell drew."""
    found = section.select_one(".attnlab-figure, .attnlab-explorer, div.cell_output img")
    if found is None:
        return None
    if found.name == "img":
        found = copy.copy(found)
        found["class"] = [*found.get("class", []), "attnlab-still"]
        return found
    return found


def _height(figure: Tag) -> int:
    """The figure's drawn height in px, from its box's style (0 when it has none; the explorer is tall)."""
    if "attnlab-explorer" in figure.get("class", []):
        return 10 * ROOM_FOR_LEAD  # its controls, pattern buttons and map fill a projector's height
    found = re.search(r"height:\s*(\d+)px", str(figure)[:2000])
    return int(found.group(1)) if found else 0


def _points(lead: str) -> str:
    """A lead sentence moved off the slide, as the first talking point."""
    text = lead.removeprefix('<p class="attnlab-lead">').removesuffix("</p>")
    return f"<ul><li>{text}</li></ul>" if text else ""


def _title_slide(title: str, glance: dict[str, str], page: Path, lab_url: str) -> Slide:
    lines = "".join(f'<p><strong>{key}:</strong> {glance[k]}</p>'
                    for k, key in (("you will", "You will"), ("time", "Time")) if k in glance)
    links = (f'<p class="attnlab-links"><a href="../book/{page.name}">Read the chapter</a>'
             f'<a href="{lab_url}">Open the lab on this site</a></p>')
    need = f"<p>Learners need: {glance['you need']}</p>" if "you need" in glance else ""
    return Slide(f"<h1>{title}</h1>{lines}{links}", need)


def _objectives_slide(chapter: Tag, page: Path) -> Slide:
    label = chapter.find("strong", string=re.compile(r"Learning objectives"))
    objectives = label and label.find_parent("p").find_next_sibling(["ol", "ul"])
    if objectives is None:
        raise SlidesError(f"{page}: no **Learning objectives.** list: the chapter skeleton asks for one")
    return Slide(f"<h2>After this chapter you can</h2>{objectives}",
                 "<p>Read them out; come back to them on the summary slide.</p>")


def _lab_slide(site: Path, page: Path, lab_url: str, colab_url: str) -> Slide:
    lab_page = site / "book" / lab_url
    exercises, lab_title = [], "The lab"
    if lab_page.is_file():
        lab = BeautifulSoup(lab_page.read_text(encoding="utf-8"), "html.parser")
        lab_title = lab.find("h1").get_text(" ", strip=True).rstrip("#").strip() if lab.find("h1") else lab_title
        for cell in lab.select("div.tag_exercise"):
            exercises += re.findall(r"\bdef\s+(\w+)\s*\(", cell.get_text())
    items = "".join(f"<li><code>{name}</code></li>" for name in exercises)
    listed = f"<p>Exercises, each checked as you go:</p><ul>{items}</ul>" if items else ""
    # get_text() and attribute values come back unescaped: a title "Q&A" or a URL with "&" must be re-escaped.
    colab = f'<a href="{html_lib.escape(colab_url)}">▶ Open the lab in Colab</a>' if colab_url else ""
    html = (f"<h2>{html_lib.escape(lab_title, quote=False)}</h2>{listed}<p class=\"attnlab-links\">{colab}"
            f'<a href="{lab_url}">The lab on this site</a><a href="../book/{page.name}">Back to the chapter</a></p>')
    notes = ("<p>Pairs work well: one types, one reads the checker's message aloud. "
             "Walk the room and ask what the checker said before reading code.</p>")
    return Slide(html, notes)


def _at_a_glance(chapter: Tag) -> dict[str, str]:
    """The "This chapter at a glance" box: {"you will": html, "time": html, "you need": html}."""
    found = {}
    for strong in chapter.select("div.admonition li strong"):
        key = strong.get_text(strip=True).rstrip(":").lower()
        if key in {"you will", "time", "you need"}:
            item = copy.copy(strong.find_parent("li"))
            item.find("strong").decompose()
            found[key] = "".join(str(c) for c in (item.p or item).contents).strip()
    return found


def _lab_links(chapter: Tag, page: Path) -> tuple[str, str]:
    """(the lab's page on this site, relative to slides/; its Colab address, or "")."""
    stem = page.stem
    colab = chapter.select_one(f'a.attnlab-colab[href*="{stem}-lab"]') or chapter.select_one("a.attnlab-colab")
    return f"../notebooks/{stem}-lab.html", colab["href"] if colab else ""


def _section(sections: list[Tag], starts: str, page: Path) -> Tag:
    for section in sections:
        if _title(section).startswith(starts):
            return section
    raise SlidesError(f"{page}: no '## {starts}…' section: the chapter skeleton asks for one")


def _title(section: Tag) -> str:
    heading = section.find(["h2", "h3"])
    return heading.get_text(" ", strip=True).rstrip("#").strip() if heading else ""


def _heading(section: Tag) -> str:
    return f"<h2>{_inner(section.find(['h2', 'h3']))}</h2>"


def _inner(heading: Tag) -> str:
    """A heading's HTML without its "#" permalink."""
    heading = copy.copy(heading)
    for link in heading.select("a.headerlink"):
        link.decompose()
    return "".join(str(c) for c in heading.contents).strip()


def _lead(section: Tag) -> str:
    """The first sentence of a section's first paragraph, as HTML (inline math and links kept)."""
    first = section.find("p", recursive=False)
    if first is None:
        return ""
    kept, length = [], 0
    for child in first.contents:
        text = str(child) if isinstance(child, NavigableString) else None
        if text is not None:
            for match in _SENTENCE_END.finditer(text):
                if length + match.end() >= LEAD_CHARS:
                    kept.append(_escape(text[:match.end()]))
                    return f'<p class="attnlab-lead">{"".join(kept)}</p>'
            length += len(text)
            kept.append(_escape(text))
        else:
            length += len(child.get_text())
            kept.append(str(child))
    return f'<p class="attnlab-lead">{"".join(kept)}</p>'


def _notes(paragraphs: list[Tag], minutes: str) -> str:
    """Talking points: the first sentence of each further paragraph, then the time rule."""
    points = [_lead_of(p) for p in paragraphs[:MAX_TALKING_POINTS]]
    items = "".join(f"<li>{point}</li>" for point in points if point)
    return (f"<ul>{items}</ul>" if items else "") + minutes


def _on_screen(figure: Tag) -> str:
    """What the figure shows and how to drive it: the page's own description of it (its aria-label)."""
    label = figure.get("aria-label") or figure.get("alt") or ""
    return f"<p>On screen: {_escape(label)}</p>" if label else ""


def _plain_math(notes: str) -> str:
    """Notes with their math as TeX text: the speaker view is another window, with no MathJax in it."""
    soup = BeautifulSoup(notes, "html.parser")
    for math in soup.select("span.math"):
        tex = math.get_text().strip().removeprefix("\\(").removesuffix("\\)").strip()
        code = soup.new_tag("code")
        code.string = tex
        math.replace_with(code)
    return str(soup)


def _lead_of(paragraph: Tag) -> str:
    holder = BeautifulSoup("<section></section>", "html.parser").section
    holder.append(copy.copy(paragraph))
    return _lead(holder).removeprefix('<p class="attnlab-lead">').removesuffix("</p>")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _relink(chapter: Tag, page_name: str) -> None:
    """Links written for book/NN-name.html, rewritten for slides/NN-name.html (a sibling folder)."""
    for link in chapter.find_all("a", href=True):
        href = link["href"]
        if href.startswith("#"):
            link["href"] = f"../book/{page_name}{href}"
        elif not re.match(r"[a-z][a-z0-9+.-]*:|/|\.\./", href):
            link["href"] = f"../book/{href}"
    for image in chapter.find_all("img", src=True):
        if not re.match(r"[a-z][a-z0-9+.-]*:|/|\.\./", image["src"]):
            image["src"] = f"../book/{image['src']}"


def _mathjax_config(soup: BeautifulSoup, page: Path) -> str:
    """The page's own ``window.MathJax = {...}`` script: the book's settings, exactly."""
    for script in soup.find_all("script", src=False):
        if _MATHJAX_CONFIG.search(script.get_text()):
            return script.get_text()
    raise SlidesError(f"{page}: no window.MathJax settings in the page: is mathjax3_config still in _config.yml?")


# ---------------------------------------------------------------- writing the deck


def deck_notebook(deck: Deck) -> nbformat.NotebookNode:
    """The deck as a notebook for nbconvert: each slide a code cell whose HTML output is the slide.

    Code-cell outputs, not Markdown cells: Markdown would be re-parsed and would mangle the pages'
    ``\\(``…``\\)`` math and inline scripts.
    """
    cells = []
    for slide in deck.slides:
        cells.append(_html_cell(slide.html, "slide", ["attnlab-wide"] if slide.wide else []))
        if slide.notes:
            cells.append(_html_cell(_plain_math(slide.notes), "notes"))
    body = "".join(slide.html for slide in deck.slides)
    chapter_number = deck.name.split("-")[0].lstrip("0")
    for number, cell in enumerate(cells):
        cell.id = f"slide-part-{number}"  # not nbformat's random ids: the same pages give the same decks
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["attnlab"] = {
        "title": deck.title,
        "short_title": f"Chapter {chapter_number}",
        "chapter_url": f"../book/{deck.name}.html",
        "static": "../_static",
        "plotly": plotly_bundle_for(body),
        "explorer": "attnlab-explorer" in body,
        "mathjax_config": deck.mathjax_config,
    }
    return notebook


def _html_cell(html: str, slide_type: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    output = nbformat.v4.new_output("display_data", data={"text/html": html})
    metadata = {"slideshow": {"slide_type": slide_type}, "tags": tags or []}
    return nbformat.v4.new_code_cell(source="", outputs=[output], metadata=metadata)


def _exporter():
    from nbconvert import SlidesExporter

    return SlidesExporter(
        template_name="attnlab_reveal", extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
    )


def render_deck(deck: Deck, exporter=None) -> str:
    """The deck's HTML page."""
    html, _ = (exporter or _exporter()).from_notebook_node(deck_notebook(deck))
    return html


def main(argv: list[str] | None = None) -> None:
    """Build the decks into the site given on the command line."""
    args = sys.argv[1:] if argv is None else argv
    site = Path(args[0] if args else "_build/html")
    try:
        written = build_decks(site)
    except SlidesError as error:
        raise SystemExit(f"slides: {error}") from None
    print(f"slides: {len(written)} decks in {site / OUT_DIR}")


if __name__ == "__main__":
    main()
