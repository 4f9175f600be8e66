"""What a reader of the attnlab book notices: accessibility, exercise numbers, references, search.

A Sphinx extension loaded next to :mod:`attnlab.sphinxext` (``_config.yml``, ``extra_extensions``).
Each fix below is general (every page, every chapter) and says which tool's output it corrects,
so that it can go once that tool does it itself.

- Accessibility (axe-core, ``tests/test_site_shell.py``): the bibliography list's ARIA roles
  (docutils), the code cell toggles' names (myst-nb), the sidebar's expanders' names
  (pydata-sphinx-theme); the search button's name is fixed by a template override
  (``attnlab/_templates``), the link colour by ``attnlab-reader.css``, and display equations
  that scroll sideways take keyboard focus (``attnlab-reader.js``).
- Exercises are numbered per chapter: "Exercise 2.1" in chapter 2 (Sphinx numbers them across
  the book).
- The bibliography's labels are author–year, like the citations in the text.
- Search results show math as text, not as raw LaTeX (``attnlab-search.js``).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from sphinx.application import Sphinx

TEMPLATES = Path(__file__).parent / "_templates"

# ---------------------------------------------------------------------------------------------
# Exercise numbers, per chapter
# ---------------------------------------------------------------------------------------------

#: A chapter's title starts with its number: "2 · From text to vectors".
CHAPTER_NUMBER = re.compile(r"\s*(\d+)\s*·")


def chapter_number(title: str) -> int | None:
    """The chapter number a page's title starts with, if it has one."""
    found = CHAPTER_NUMBER.match(title)
    return int(found.group(1)) if found else None


def number_per_chapter(numbers: dict[str, tuple[int, ...]], chapter: int | None) -> dict[str, tuple[int, ...]]:
    """One page's exercise numbers, restarted at 1 and prefixed by its chapter's number.

    ``numbers`` are Sphinx's (``{"ch2-count": (4,), ...}``, counted across the whole book);
    their order is the page's reading order, which is kept.
    """
    prefix = () if chapter is None else (chapter,)
    in_order = sorted(numbers, key=numbers.__getitem__)
    return {target: (*prefix, index) for index, target in enumerate(in_order, start=1)}


def _number_exercises_per_chapter(app: Sphinx, env) -> list[str]:
    """Renumber sphinx-exercise's exercises per chapter: "Exercise 2.1", "Exercise 2.2", ...

    sphinx-exercise numbers exercises with Sphinx's numfig, which counts across the book unless
    the table of contents is numbered (``numbered: true`` in ``_toc.yml``). Numbering it would
    also put a number in front of every page title, which the chapter titles already carry
    ("2 · From text to vectors" would read "2. 2 · From text to vectors"), and would number
    the labs and the "Start here" part too. So the numbers Sphinx assigned (``env.toc_fignumbers``,
    read by the exercise titles, the solutions' "Solution to Exercise …" and ``{numref}``) are
    rewritten here, after Sphinx's own collector has run (this handler's priority is later).
    Returns the pages whose numbers changed, which Sphinx then writes again.
    """
    changed = []
    for docname, by_type in env.toc_fignumbers.items():
        numbers = by_type.get("exercise")
        if not numbers:
            continue
        title = env.titles.get(docname)
        renumbered = number_per_chapter(numbers, chapter_number(title.astext() if title else ""))
        if renumbered != numbers:
            by_type["exercise"] = renumbered
            changed.append(docname)
    return changed


# ---------------------------------------------------------------------------------------------
# Bibliography labels, author–year
# ---------------------------------------------------------------------------------------------

LABEL_STYLE = "attnlab-author-year"  # a pybtex label style
BIBLIOGRAPHY_STYLE = "attnlab"  # a pybtex formatting style: alpha's, with the labels above


#: Every entry of the book's .bib files, by key (read when the build starts).
_ALL_ENTRIES: dict = {}
_LABELS: dict[str, str] = {}  # their labels before any a/b, by key


def _read_all_entries(app: Sphinx) -> None:
    from pybtex.database import parse_file

    _ALL_ENTRIES.clear()
    _LABELS.clear()
    for name in getattr(app.config, "bibtex_bibfiles", None) or []:
        _ALL_ENTRIES.update(parse_file(str(Path(app.srcdir) / name)).entries)


def _register_bibliography_style() -> None:
    """Register the pybtex styles that label the bibliography "Vaswani et al., 2017".

    The citations in the text are author–year (``bibtex_reference_style: author_year``), but
    the list's labels come from the pybtex formatting style (``bibtex_default_style``), whose
    "alpha" labels read "[VSP+17]". This label style writes the names and year exactly as
    sphinxcontrib-bibtex's author–year citations do, with "a", "b", … where two entries of one
    list would get the same label.
    """
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.alpha import Style as AlphaStyle
    from pybtex.style.labels import BaseLabelStyle
    from sphinxcontrib.bibtex.style.referencing import PersonStyle
    from sphinxcontrib.bibtex.style.template import join, year

    class AuthorYearLabelStyle(BaseLabelStyle):
        person = PersonStyle()
        template = join(sep=", ")[person.author_or_editor_or_title(full=False), year]

        def label_of(self, entry) -> str:
            data = {"style": SimpleNamespace(person=self.person), "entry": entry}
            return self.template.format_data(data).render_as("text")

        def format_labels(self, sorted_entries):
            # Same authors, same year: 2020a, 2020b — decided over the whole bibliography, so that
            # one paper has one label on every page (Sphinx warns about a label shared by two keys).
            entries = list(sorted_entries)
            everyone = _ALL_ENTRIES or {entry.key: entry for entry in entries}
            if _LABELS.keys() != everyone.keys():
                _LABELS.clear()
                _LABELS.update({key: self.label_of(other) for key, other in everyone.items()})
            for entry in entries:
                key = entry.key if entry.key in _LABELS else entry.key.split("-", 1)[-1]  # without a keyprefix
                label = _LABELS.get(key) or self.label_of(entry)
                twins = sorted(other for other, other_label in _LABELS.items() if other_label == label)
                if len(twins) <= 1 or key not in twins:
                    yield label
                else:
                    yield f"{label}{'abcdefghijklmnopqrstuvwxyz'[twins.index(key)]}"

    class AuthorYearStyle(AlphaStyle):
        """pybtex's alpha style (entries sorted by author, year, title), author–year labels."""

        default_label_style = LABEL_STYLE

    register_plugin("pybtex.style.labels", LABEL_STYLE, AuthorYearLabelStyle, force=True)
    register_plugin("pybtex.style.formatting", BIBLIOGRAPHY_STYLE, AuthorYearStyle, force=True)


# ---------------------------------------------------------------------------------------------
# Accessibility of the HTML that the theme and the other extensions write
# ---------------------------------------------------------------------------------------------

# myst-nb names its "Show code cell source" toggles "Toggle hidden content", which is not what
# they say: a speech-input user says the words shown (axe: label-content-name-mismatch). Without
# the label, the toggle's name is its visible text.
_CELL_TOGGLE_LABEL = re.compile(r'<summary aria-label="Toggle hidden content">')
# docutils writes the bibliography as <div role="list"> of <div role="doc-biblioentry">: a list
# must hold list items (axe: aria-required-children, critical), and DPUB-ARIA 1.1 deprecates
# doc-biblioentry in favour of listitem.
_BIBLIOGRAPHY_ENTRY_ROLE = 'role="doc-biblioentry"'


def accessible_body(body: str) -> str:
    """The page body with myst-nb's and docutils' ARIA mistakes corrected (see above)."""
    body = _CELL_TOGGLE_LABEL.sub("<summary>", body)
    return body.replace(_BIBLIOGRAPHY_ENTRY_ROLE, 'role="listitem"')


def name_sidebar_expanders(soup) -> None:
    """Give each expander of the sidebar's chapter list a name (axe: summary-name).

    pydata-sphinx-theme puts a chapter's sub-pages in <details> whose <summary> holds only a
    chevron icon, so a screen reader announces an unnamed button. The name, "Pages under 2 ·
    From text to vectors", is visually hidden; the chevron stays the only thing shown.
    """
    for summary in soup.select("li.has-children > details > summary"):
        if summary.get_text(strip=True):
            continue  # a part caption, or named already (the function's result is cached)
        link = summary.find_parent("li").find("a", recursive=False)
        if link is None:
            continue
        name = soup.new_tag("span", attrs={"class": "visually-hidden"})
        name.string = f"Pages under {link.get_text(' ', strip=True)}"
        summary.append(name)


def _wrap_toctree(generate):
    def generate_toctree_html(kind, *args, **kwargs):
        result = generate(kind, *args, **kwargs)
        if kind == "sidebar" and hasattr(result, "select"):
            name_sidebar_expanders(result)
        return result

    return generate_toctree_html


def _on_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    # Runs after the theme's handler (priority below), which puts generate_toctree_html here.
    if "body" in context:
        context["body"] = accessible_body(context["body"])
    if "generate_toctree_html" in context:
        context["generate_toctree_html"] = _wrap_toctree(context["generate_toctree_html"])
    if 'class="math' in context.get("body", "") or "<table" in context.get("body", ""):
        # After MathJax (priority 500): equations and tables that scroll sideways take keyboard focus.
        app.add_js_file("attnlab-reader.js", priority=600, defer="defer")
    if pagename == "search":
        app.add_js_file("attnlab-search.js", priority=600, defer="defer")


def _on_config(app: Sphinx, config) -> None:
    # Theme template overrides (the search button); templates_path entries come before the theme's.
    config.templates_path.append(str(TEMPLATES))


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx."""
    _register_bibliography_style()
    app.connect("builder-inited", _read_all_entries)
    app.connect("config-inited", _on_config)
    app.connect("env-get-updated", _number_exercises_per_chapter, priority=900)  # after Sphinx's numbering
    app.connect("html-page-context", _on_page, priority=900)  # after the theme's and myst-nb's handlers
    app.add_css_file("attnlab-reader.css")
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
