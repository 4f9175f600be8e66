"""Directives of the instructor notes: a chapter's facts box, and what its lab's checkers say to common mistakes.

    ```{chapter-facts} 04
    ```
    ```{checker-messages} 04
    ```

Both read the chapter and its lab through :func:`attnlab.workshop.chapters.chapter_facts` and note those
files as dependencies, so an incremental build redraws the notes when a chapter, a lab, a checker or the
catalog of wrong answers changes. Every text that comes from code (checker messages) goes into docutils
nodes as plain text, so `<`, `*` and backticks show as written; chapter prose (objectives, headings) is
MyST and is parsed as such.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.util.docutils import SphinxDirective

from attnlab.workshop.chapters import Chapter, chapter_facts, source_files

_FACTS_CACHE: dict[tuple, list[Chapter]] = {}


def facts(root: Path) -> list[Chapter]:
    """chapter_facts(root), read once per state of the chapter and lab files (the page asks 28 times)."""
    files = source_files(root)
    key = (str(root), tuple((f.name, f.stat().st_mtime_ns) for f in files))
    if key not in _FACTS_CACHE:
        _FACTS_CACHE.clear()
        _FACTS_CACHE[key] = chapter_facts(root)
    return _FACTS_CACHE[key]


_CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]*)`")
_ROLE = re.compile(r"\{[\w:-]+\}`([^`<]*?)\s*(?:<[^>]*>)?`")


def _cited(keys: str) -> str:
    """`ch3-vaswani2017attention` → `Vaswani (2017)`: the chapter's bibliography is filtered to its own page."""
    names = []
    for key in keys.split(","):
        found = re.match(r"(?:ch\d+-)?([a-z]+)(\d{4})", key.strip())
        names.append(f"{found.group(1).capitalize()} ({found.group(2)})" if found else key.strip())
    return "; ".join(names)


def portable(text: str) -> str:
    """Chapter MyST that reads the same on another page: citations as names, other roles as their text.

    Roles such as {doc} resolve relative to the page they are on, so copied here they would point nowhere.
    """
    return _ROLE.sub(r"\1", _CITE.sub(lambda m: _cited(m.group(1)), text))


class _ChapterDirective(SphinxDirective):
    """A directive whose one argument is a chapter number, `04` or `4`."""

    required_arguments = 1
    has_content = False

    def chapter(self) -> Chapter:
        root = Path(self.env.srcdir)
        # Noted before reading: if a chapter is broken now, fixing it must re-read this page, even though
        # this build could not tell which chapter the page shows.
        for path in source_files(root):
            self.env.note_dependency(str(path))
        try:
            chapters = facts(root)
        except ValueError as error:
            raise self.error(f"{self.name}: cannot read the chapters: {error}") from None
        wanted = self.arguments[0].strip()
        for chapter in chapters:
            if wanted.isdigit() and int(wanted) == chapter.number:
                return chapter
        numbers = ", ".join(f"{c.number:02d}" for c in chapters)
        raise self.error(f"{self.name} {wanted}: no such chapter; give one of {numbers}.")

    def inline(self, text: str) -> list[nodes.Node]:
        """One line of chapter MyST (math, emphasis, code) as inline nodes."""
        holder = nodes.container()
        self.state.nested_parse(StringList([portable(text)], source=self.env.docname), self.content_offset, holder)
        paragraph = next(iter(holder.findall(nodes.paragraph)), None)
        return list(paragraph.children) if paragraph is not None else [nodes.Text(text)]

    def doc_link(self, docname: str, *children: nodes.Node) -> addnodes.pending_xref:
        """A link to a whole page; a missing page is a build warning, as for {doc}."""
        xref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget=f"/{docname}", refexplicit=True,
                                     refdoc=self.env.docname, refwarn=True)
        xref += nodes.inline("", "", *children)
        return xref

    def section_link(self, docname: str, anchor: str, *children: nodes.Node) -> nodes.reference:
        """A link to a heading of another page (the anchor Sphinx gives it; chapters.heading_anchor)."""
        uri = self.env.app.builder.get_relative_uri(self.env.docname, docname) + f"#{anchor}"
        return nodes.reference("", "", *children, refuri=uri, internal=True)


class ChapterFacts(_ChapterDirective):
    """A compact box: time, objectives, sections with links, and the lab, all read from the chapter."""

    def run(self) -> list[nodes.Node]:
        chapter = self.chapter()
        box = nodes.container(classes=["attnlab-chapter-facts"])
        title = nodes.paragraph()
        name = nodes.Text(f"{chapter.number} · {chapter.title}")
        title += nodes.strong("", "", self.doc_link(chapter.docname, name))
        box += title
        time = nodes.paragraph()
        time += nodes.strong(text="Time: ")
        time += nodes.Text(f"{chapter.reading_min} min reading + {chapter.lab_min} min lab = "
                           f"{chapter.reading_min + chapter.lab_min} min.")
        box += time
        if chapter.you_will:
            you_will = nodes.paragraph()
            you_will += nodes.strong(text="You will: ")
            you_will += self.inline(chapter.you_will)
            box += you_will
        if chapter.objectives:
            heading = nodes.paragraph()
            heading += nodes.strong(text="Objectives:")
            box += heading
            items = nodes.enumerated_list(enumtype="arabic", prefix="", suffix=".")
            for objective in chapter.objectives:
                items += nodes.list_item("", nodes.paragraph("", "", *self.inline(objective)))
            box += items
        box += self.sections(chapter)
        if chapter.lab:
            lab = nodes.paragraph()
            lab += nodes.strong(text="Lab: ")
            lab += self.doc_link(chapter.lab, nodes.Text(f"lab {chapter.number}"))
            if chapter.exercises:
                lab += nodes.Text(", exercises ")
                for i, exercise in enumerate(chapter.exercises):
                    lab += nodes.Text(", " if i else "")
                    lab += nodes.literal(text=exercise.name)
            lab += nodes.Text(".")
            box += lab
        return [box]

    def sections(self, chapter: Chapter) -> nodes.paragraph:
        line = nodes.paragraph()
        line += nodes.strong(text="Sections: ")
        for i, section in enumerate(chapter.sections):
            line += nodes.Text(" · " if i else "")
            line += self.section_link(chapter.docname, section.anchor, *self.inline(section.title))
            extras = ([f"{section.figures} figure{'s' if section.figures > 1 else ''}"] if section.figures else []) \
                + (["math"] if section.has_math else [])
            if extras:
                line += nodes.Text(f" ({', '.join(extras)})")
        return line


class CheckerMessages(_ChapterDirective):
    """Per exercise of the chapter's lab: each common wrong answer and the checker's verbatim message to it."""

    def run(self) -> list[nodes.Node]:
        from attnlab.workshop import mistakes  # imports torch: only when a page uses the directive

        chapter = self.chapter()
        self.note_code_dependencies()
        if not chapter.exercises:
            return [nodes.paragraph(text=f"Chapter {chapter.number}'s lab has no checked exercises.")]
        out: list[nodes.Node] = []
        for exercise in chapter.exercises:
            head = nodes.paragraph(classes=["attnlab-exercise-mistakes"])
            head += nodes.strong("", "", nodes.literal(text=exercise.name))
            head += nodes.Text(" in ")
            head += self.doc_link(chapter.lab, nodes.Text(f"lab {chapter.number}"))
            head += nodes.Text(", checked by ")
            head += nodes.literal(text=exercise.checker)
            out.append(head)
            if exercise.checker not in mistakes.MISTAKES:
                out.append(self.state.document.reporter.warning(
                    f"{self.name} {self.arguments[0]}: no wrong answers for {exercise.checker} yet; add them to "
                    "MISTAKES in attnlab/workshop/mistakes.py.", line=self.lineno))
                continue
            items = nodes.bullet_list(classes=["attnlab-checker-messages"])
            for what, message in mistakes.messages(exercise.checker):
                item = nodes.list_item()
                said = nodes.paragraph()
                said += nodes.Text(f"{what} → the checker says:")
                item += said
                block = nodes.literal_block(message, message, classes=["attnlab-checker-message"])
                block["language"] = "text"
                item += block
                items += item
            out.append(items)
        self.note_code_dependencies()  # again: messages() may have imported more of attnlab
        return out

    def note_code_dependencies(self) -> None:
        """Every attnlab module loaded: the messages come from the checkers, the catalog and the code they call
        (attnlab/attention.py, positional.py, gpt.py...), so a change to any of them redraws the page."""
        from attnlab.workshop import mistakes

        package = Path(mistakes.__file__).resolve().parent.parent
        loaded = {Path(module.__file__).resolve() for module in list(sys.modules.values())
                  if getattr(module, "__file__", None)}
        files = {*package.joinpath("checkers").glob("*.py"), Path(mistakes.__file__).resolve(),
                 *(path for path in loaded if path.is_relative_to(package) and path.suffix == ".py")}
        for path in sorted(files):
            self.env.note_dependency(str(path))


def setup(app) -> None:
    """Register {chapter-facts} and {checker-messages}."""
    app.add_directive("chapter-facts", ChapterFacts)
    app.add_directive("checker-messages", CheckerMessages)
