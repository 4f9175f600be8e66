"""Link the first use of each glossary term in every chapter to the glossary, automatically.

A Sphinx extension (``_config.yml``, ``extra_extensions``). The glossary page
(``attnlab_glossary``, default ``book/glossary``) defines its terms with MyST's ``{glossary}``
directive; on each chapter page the first time the prose uses a term (any of its spellings,
plus a plain plural "s"/"es") that word becomes a quiet link to the term's definition. Chapters
are not edited by hand, so a new term in the glossary reaches every chapter at the next build.

Never linked: titles, code (inline or cells) and cell outputs, math, captions, existing links,
the glossary's own page, and the "This chapter at a glance" box (its words come again below).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx

#: Pages whose prose gets links: the numbered chapters after the welcome page.
CHAPTER = re.compile(r"^book/(?!00-)\d\d-")
AT_A_GLANCE = "this chapter at a glance"
LINK_CLASS = "attnlab-term"

#: Nodes whose text is never linked (and everything inside them).
SKIPPED = (
    nodes.title, nodes.subtitle, nodes.rubric, nodes.caption, nodes.literal, nodes.literal_block,
    nodes.doctest_block, nodes.math, nodes.math_block, nodes.raw, nodes.comment, nodes.reference,
    nodes.target, nodes.term, nodes.citation, nodes.footnote, nodes.label, nodes.field_name,
    nodes.image, nodes.figure, addnodes.pending_xref, addnodes.toctree, addnodes.index,
)
#: Glossary words that are also everyday words in their singular ("the expected value", "a tied
#: head", "a search query"): only their plurals ("values", "heads") are read as the term.
EVERYDAY = frozenset({"query", "key", "value", "head"})
SKIPPED_CLASSES = {"cell_input", "cell_output", "output", "bibliography", "glossary"}


def glossary_entries(glossary: nodes.Node) -> dict[str, str]:
    """Every spelling the glossary defines (lower case) → the anchor of its entry's first term line.

    Spellings of one entry ("attention weight", "attention weights") share one anchor, so a page
    links the entry once, whichever spelling it meets first.
    """
    entries: dict[str, str] = {}
    for item in glossary.findall(nodes.definition_list_item):
        terms = list(item.findall(nodes.term))
        if terms and terms[0]["ids"]:
            for term in terms:
                entries.setdefault(_normal(term.astext()), terms[0]["ids"][0])
    return entries


def term_pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for all terms, longest first, whole words, an optional plural ending."""
    spelled = sorted({term.strip() for term in terms if term.strip()}, key=len, reverse=True)
    if not spelled:
        return None
    # A space in a term matches any run of spaces or a hyphen ("self attention" = "self-attention").
    alternatives = "|".join(re.sub(r"\\[ \-]", r"[\\s\\-]+", re.escape(term)) for term in spelled)
    return re.compile(rf"(?<![\w-])({alternatives})(?:s|es)?(?![\w-])", re.IGNORECASE)


def _normal(found: str) -> str:
    return re.sub(r"[\s\-]+", " ", found.lower())


def _is_skipped(node: nodes.Node) -> bool:
    if isinstance(node, SKIPPED):
        return True
    if isinstance(node, nodes.Element):
        if SKIPPED_CLASSES & set(node.get("classes", [])):
            return True
        if isinstance(node, nodes.Admonition):
            title = next(iter(node.findall(nodes.title)), None)
            return title is not None and title.astext().strip().lower() == AT_A_GLANCE
    return False


def prose_text(node: nodes.Node) -> Iterator[nodes.Text]:
    """The text nodes of ``node`` a reader sees as prose, in reading order."""
    if _is_skipped(node):
        return
    if isinstance(node, nodes.Text):
        yield node
        return
    for child in list(node.children):
        yield from prose_text(child)


def link_first_uses(doctree: nodes.Node, pattern: re.Pattern[str], entries: dict[str, str],
                    glossary_uri: str) -> list[str]:
    """Wrap the first use of each entry in ``doctree`` in a link; return the anchors linked, in order."""
    linked: list[str] = []
    for text in list(prose_text(doctree)):
        pieces: list[nodes.Node] = []
        source, position = text.astext(), 0
        for found in pattern.finditer(source):
            anchor = entries.get(_normal(found.group(1)))
            if anchor is None or anchor in linked or _normal(found.group(0)) in EVERYDAY:
                continue
            linked.append(anchor)
            pieces.append(nodes.Text(source[position:found.start()]))
            pieces.append(nodes.reference(
                "", found.group(0), internal=True, refuri=f"{glossary_uri}#{anchor}",
                reftitle=f"Glossary: {found.group(1)}", classes=[LINK_CLASS]))
            position = found.end()
        if pieces:
            pieces.append(nodes.Text(source[position:]))
            text.parent.replace(text, [piece for piece in pieces if not (isinstance(piece, nodes.Text) and not piece)])
    return linked


def _on_doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    glossary = app.config.attnlab_glossary
    if docname == glossary:
        drop_plural_term_lines(doctree)
        return
    if not CHAPTER.match(docname) or glossary not in app.env.found_docs or app.builder.format != "html":
        return
    entries = glossary_entries(app.env.get_doctree(glossary))
    pattern = term_pattern(entries)
    if pattern is None:
        return
    link_first_uses(doctree, pattern, entries, app.builder.get_relative_uri(docname, glossary))


def is_plural_of(word: str, other: str) -> bool:
    """True when ``word`` is ``other`` with a plain English plural ending: heads, boxes, queries."""
    word, other = _normal(word), _normal(other)
    return word in {other + "s", other + "es"} or (other.endswith("y") and word == other[:-1] + "ies")


def drop_plural_term_lines(glossary: nodes.Node) -> None:
    """On the glossary page, show "token" once rather than "token" over "tokens".

    The plural lines are there for the links (chapters say "tokens"); the reader needs them once.
    """
    for item in glossary.findall(nodes.definition_list_item):
        terms = list(item.findall(nodes.term))
        for term in terms[1:]:
            if any(is_plural_of(term.astext(), other.astext()) for other in terms if other is not term):
                term.parent.remove(term)


def _outdated_with_glossary(app: Sphinx, env, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    """When the glossary changes, every chapter's links may change: write them all again."""
    glossary = app.config.attnlab_glossary
    if glossary in added | changed | removed:
        return [docname for docname in env.found_docs if CHAPTER.match(docname)]
    return []


def setup(app: Sphinx) -> dict:
    """Register the extension with Sphinx."""
    app.add_config_value("attnlab_glossary", "book/glossary", "env")
    app.connect("doctree-resolved", _on_doctree_resolved)
    app.connect("env-get-outdated", _outdated_with_glossary)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
