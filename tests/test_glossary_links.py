"""The glossary extension links each term's first use in prose, and nothing else."""

from __future__ import annotations

from docutils import nodes
from docutils.core import publish_doctree

from attnlab.glossary_links import glossary_entries, link_first_uses, term_pattern

ANCHORS = {
    "attention weight": "term-attention-weight",
    "head": "term-head",
    "heads": "term-head",  # a second spelling of the same entry
    "self attention": "term-self-attention",
    "softmax": "term-softmax",
}
SOURCE = """\
A title with softmax
====================

.. admonition:: This chapter at a glance

   You will meet softmax and heads.

Both heads turn scores into an attention weight with ``softmax`` and then softmax again.
Self-attention mixes tokens; every Head is counted once; a headline is not a head.

.. math:: \\mathrm{softmax}(x)

::

    softmax(head)

See `softmax <https://example.org>`_ and the self attention of other heads.
"""


def _linked(doctree: nodes.Node) -> list[tuple[str, str]]:
    return [(ref.astext(), ref["refuri"]) for ref in doctree.findall(nodes.reference)
            if "attnlab-term" in ref.get("classes", [])]


def test_first_use_of_each_term_in_prose_is_linked_once():
    doctree = publish_doctree(SOURCE)
    terms = link_first_uses(doctree, term_pattern(ANCHORS), ANCHORS, "glossary.html")
    assert terms == ["term-head", "term-attention-weight", "term-softmax", "term-self-attention"]
    assert _linked(doctree) == [
        ("heads", "glossary.html#term-head"),
        ("attention weight", "glossary.html#term-attention-weight"),
        ("softmax", "glossary.html#term-softmax"),  # the second "softmax" of that line, not the ``code``
        ("Self-attention", "glossary.html#term-self-attention"),
    ]
    # Text around the links is kept, word for word.
    assert "Both heads turn scores into an attention weight with softmax and then softmax again." in doctree.astext()


def test_titles_code_math_existing_links_and_the_summary_box_are_left_alone():
    doctree = publish_doctree(SOURCE)
    link_first_uses(doctree, term_pattern(ANCHORS), ANCHORS, "glossary.html")
    for kind in (nodes.title, nodes.literal, nodes.literal_block, nodes.math_block, nodes.admonition):
        for node in doctree.findall(kind):
            assert not [ref for ref in node.findall(nodes.reference) if "attnlab-term" in ref["classes"]], kind
    # The hand-written link keeps its own address.
    assert [ref["refuri"] for ref in doctree.findall(nodes.reference) if "attnlab-term" not in ref["classes"]] \
        == ["https://example.org"]


def test_plurals_count_as_the_term_but_longer_words_do_not():
    pattern = term_pattern(ANCHORS)
    assert [m.group(1).lower() for m in pattern.finditer("heads, softmaxes, headline, overhead, multi-head")] \
        == ["heads", "softmax"]


def test_everyday_words_link_only_in_their_plural():
    doctree = publish_doctree("The expected value of a head is 2; values and heads are terms.\n")
    entries = {"value": "term-value", "values": "term-value", "head": "term-head"}
    assert link_first_uses(doctree, term_pattern(entries), entries, "g.html") == ["term-value", "term-head"]
    assert [ref.astext() for ref in doctree.findall(nodes.reference)] == ["values", "heads"]


def test_no_terms_no_pattern():
    assert term_pattern([]) is None


def test_spellings_of_one_entry_share_its_anchor():
    def item(*terms: str):
        lines = [nodes.term(term, term, ids=[f"term-{term}"]) for term in terms]
        return nodes.definition_list_item("", *lines, nodes.definition("", nodes.paragraph("", "text")))

    glossary = nodes.definition_list("", item("Head", "heads"), item("RAG"))
    assert glossary_entries(glossary) == {"head": "term-Head", "heads": "term-Head", "rag": "term-RAG"}


def test_a_small_book_links_chapters_to_its_glossary_and_relinks_when_the_glossary_changes(tmp_path):
    """A Sphinx project with MyST pages: real anchors, relative addresses, and an incremental rebuild."""
    import subprocess
    import sys

    from bs4 import BeautifulSoup

    source = tmp_path / "source"
    (source / "book").mkdir(parents=True)
    (source / "conf.py").write_text('extensions = ["myst_parser", "attnlab.glossary_links"]\n')
    (source / "index.md").write_text("# Book\n\n```{toctree}\nbook/01-one\nbook/glossary\n```\n")
    (source / "book" / "01-one.md").write_text("# 1 · One\n\nThe heads use softmax; so do other heads.\n")
    glossary = "# Glossary\n\n```{{glossary}}\nhead\n  One of several attention units.\n\n{extra}```\n"
    (source / "book" / "glossary.md").write_text(glossary.format(extra=""))

    def build() -> list[tuple[str, str]]:
        # In a process of its own: Sphinx registers node classes globally, and a second app in one
        # process would warn (and fail other tests' warning-as-error builds).
        subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", str(source), str(tmp_path / "html")],
                       check=True)
        page = BeautifulSoup((tmp_path / "html" / "book" / "01-one.html").read_text(encoding="utf-8"), "html.parser")
        return [(a.get_text(), a["href"]) for a in page.select("a.attnlab-term")]

    assert build() == [("heads", "glossary.html#term-head")]
    (source / "book" / "glossary.md").write_text(glossary.format(extra="softmax\n  Turns scores into weights.\n"))
    assert build() == [("heads", "glossary.html#term-head"), ("softmax", "glossary.html#term-softmax")]


def test_the_glossary_page_shows_plural_term_lines_once():
    from attnlab.glossary_links import drop_plural_term_lines, is_plural_of

    assert is_plural_of("queries", "query") and is_plural_of("heads", "head") and is_plural_of("boxes", "box")
    assert not is_plural_of("RoPE", "rotary position embedding") and not is_plural_of("head", "heads")
    lines = [nodes.term(t, t, ids=[f"term-{t}"]) for t in ("query", "queries", "query vector")]
    glossary = nodes.definition_list("", nodes.definition_list_item("", *lines, nodes.definition()))
    drop_plural_term_lines(glossary)
    assert [term.astext() for term in glossary.findall(nodes.term)] == ["query", "query vector"]
