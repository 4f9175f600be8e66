"""Sphinx extension of the workshop kit: the directives of the "Teach this course" pages."""

from __future__ import annotations

from pathlib import Path

import nbformat
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.osutil import relative_uri

from attnlab.workshop.chapters import chapter_facts, source_files
from attnlab.workshop.notebooks import has_exercises
from attnlab.workshop.printing import OUT_DIR, PAPERS, PRINTABLES

#: How the Teach page names each printable of printing.PRINTABLES (a new one shows under its file name).
PRINTABLE_TITLES = {"quick-reference": "Quick-reference card", "handout": "Session handout (90-minute introduction)"}
PAPER_TITLES = {"Letter": "US Letter"}


def _link(text: str, uri: str) -> nodes.paragraph:
    paragraph = nodes.paragraph()
    paragraph += nodes.reference("", text, refuri=uri, internal=False)
    return paragraph


def _table(header: list[str], rows: list[list[nodes.Node]]) -> nodes.table:
    """A plain docutils table; each cell holds one node (a paragraph or a link)."""
    table = nodes.table(classes=["attnlab-workshop-files"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in header)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    for cells, parent in [(header, head)] + [(row, body) for row in rows]:
        row_node = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=cell) if isinstance(cell, str) else cell
            row_node += entry
        parent += row_node
    return table


class WorkshopFiles(SphinxDirective):
    """``{workshop-files}``: per chapter, its slides and its student and instructor notebooks; then the PDFs.

    The files are written after the Sphinx build (`python -m attnlab.workshop`), so this only links to them;
    tests/test_workshop_site.py checks every link resolves in the built site.
    """

    def run(self) -> list[nodes.Node]:
        root = Path(self.env.srcdir)
        here = self.env.app.builder.get_target_uri(self.env.docname)
        for path in source_files(root):  # before reading: a chapter fixed after a failed build re-reads this page
            self.env.note_dependency(str(path))
        try:
            chapters = [chapter for chapter in chapter_facts(root) if chapter.number >= 1]  # 00 is the welcome
        except ValueError as error:
            raise self.error(f"workshop-files: cannot read the chapters: {error}") from None
        rows = []
        for chapter in chapters:
            stem = Path(chapter.docname).name
            chapter_cell = nodes.paragraph()
            chapter_cell += nodes.reference("", f"{chapter.number} · {chapter.title}",
                                            refuri=relative_uri(here, f"{chapter.docname}.html"))
            row = [chapter_cell, _link("slides", relative_uri(here, f"slides/{stem}.html"))]
            lab = root / f"{chapter.lab}.ipynb" if chapter.lab else None
            if lab is not None and lab.is_file():
                notebook = f"_static/notebooks/{{}}/{lab.name}"
                row.append(_link("student", relative_uri(here, notebook.format("student"))))
                row.append(_link("instructor", relative_uri(here, notebook.format("instructor")))
                           if has_exercises(nbformat.read(lab, as_version=4)) else nodes.paragraph(text="(no exercises)"))
            else:
                row += [nodes.paragraph(text="—"), nodes.paragraph(text="—")]
            rows.append(row)
        files = _table(["Chapter", "Slides", "Student notebook", "Instructor notebook"], rows)
        prints = [[nodes.paragraph(text=PRINTABLE_TITLES.get(name, name)),
                   *(_link(paper, relative_uri(here, f"{OUT_DIR}/{name}-{suffix}.pdf")) for suffix, paper in PAPERS.items())]
                  for name in PRINTABLES]
        papers = [PAPER_TITLES.get(paper, paper) for paper in PAPERS.values()]
        return [files, _table(["Printable (PDF, one sheet)", *papers], prints)]


def setup(app: Sphinx) -> dict:
    """Register the session-plan, instructor-note and workshop-files directives."""
    from attnlab.workshop import notes, plans

    plans.setup(app)
    notes.setup(app)
    app.add_directive("workshop-files", WorkshopFiles)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
