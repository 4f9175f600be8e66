"""The catalog of wrong answers covers every lab checker, and the instructor-note directives show what checkers say."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attnlab.checkers.core import NOT_WRITTEN
from attnlab.workshop import mistakes
from attnlab.workshop.chapters import chapter_facts
from attnlab.workshop.notes import portable

ROOT = Path(__file__).resolve().parent.parent
LAB_CHECKERS = sorted({exercise.checker for chapter in chapter_facts(ROOT) for exercise in chapter.exercises})


def test_the_labs_call_the_checkers_we_expect():
    assert len(LAB_CHECKERS) >= 30 and "check_softmax" in LAB_CHECKERS and "check_safe_softmax" in LAB_CHECKERS


@pytest.mark.parametrize("checker", LAB_CHECKERS)
def test_every_lab_checker_recognises_at_least_two_common_mistakes(checker):
    catalogued = mistakes.MISTAKES.get(checker, [])
    assert len(catalogued) >= 2, f"add wrong answers for {checker} to attnlab/workshop/mistakes.py"
    hints = set()
    for mistake in catalogued:
        result = mistakes.run(checker, mistake)
        assert not result.passed and result.failed_case, (checker, mistake.what)
        # Recognised: a hint of the checker's own, not the fallbacks for unwritten or crashing code.
        assert not result.hint.startswith((NOT_WRITTEN, "your function raised")), (checker, mistake.what, result.hint)
        hints.add(result.hint)
    assert len(hints) >= 2, f"{checker}: the mistakes should get different diagnoses, not the same one"


def test_messages_are_the_checkers_verbatim_and_print_nothing(capsys):
    said = mistakes.messages("check_softmax")
    assert [what for what, _ in said] == [m.what for m in mistakes.MISTAKES["check_softmax"]]
    for (_, message), mistake in zip(said, mistakes.MISTAKES["check_softmax"]):
        assert message == mistakes.run("check_softmax", mistake).message() and message.startswith("✗ softmax:")
    assert capsys.readouterr().out == ""
    with pytest.raises(KeyError, match="MISTAKES"):
        mistakes.messages("check_nothing")


def test_chapter_prose_is_made_portable_to_another_page():
    assert portable("the encoding of {cite:t}`ch3-vaswani2017attention`") == "the encoding of Vaswani (2017)"
    assert portable("see {doc}`the lab <04-lab>` and {term}`softmax`; $x^2$ stays") \
        == "see the lab and softmax; $x^2$ stays"


CHAPTER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
---

# 4 · Attention from scratch

```{admonition} This chapter at a glance
- **You will:** compute *attention* with `numpy`.
- **Time:** 45 minutes of reading, 40 minutes for {lab}`lab 4 <04-attention-lab>`
```

**Learning objectives.** By the end you can:

1. compute $q k^T$ by hand, as in {doc}`the lab <../notebooks/04-attention-lab>`;
2. explain why a softmax.

## Analogy

A librarian looks up the shelves.

## Step 4: scaling by $\\sqrt{d_k}$

Divide the scores.
"""


def _cell(kind: str, source: str, tag: str) -> dict:
    cell = {"cell_type": kind, "metadata": {"tags": [tag]}, "source": source}
    return {**cell, "outputs": [], "execution_count": None} if kind == "code" else cell


def _lab() -> dict:
    cells = [_cell("code", f"def {name}(*args):\n    raise NotImplementedError", "exercise") if i % 2 == 0
             else _cell("code", f"{checker}({name})", "check")
             for name, checker in [("softmax", "check_softmax"), ("sliding_window_mask", "check_sliding_window_mask")]
             for i in range(2)]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _project(source: Path) -> None:
    """A small Sphinx project with one chapter, its lab and a notes page using both directives."""
    for folder in ("book/teach", "notebooks"):
        (source / folder).mkdir(parents=True)
    (source / "conf.py").write_text(
        'extensions = ["myst_parser", "attnlab.workshop.notes"]\nmyst_enable_extensions = ["dollarmath"]\n'
        "def setup(app):\n    from docutils import nodes\n    from docutils.parsers.rst import roles\n"
        '    roles.register_generic_role("lab", nodes.literal)  # the book\'s role, as plain text here\n')
    (source / "index.md").write_text("# Book\n\n```{toctree}\nbook/04-attention\nnotebooks/04-attention-lab\n"
                                     "book/teach/notes\n```\n")
    (source / "book" / "04-attention.md").write_text(CHAPTER)
    (source / "notebooks" / "04-attention-lab.ipynb").write_text(json.dumps(_lab()))  # read for its exercises
    (source / "notebooks" / "04-attention-lab.md").write_text("# Lab 4\n")  # the page links land on
    (source / "book" / "teach" / "notes.md").write_text(
        "# Notes\n\n## 4\n\n```{chapter-facts} 04\n```\n\n```{checker-messages} 4\n```\n")


def _build(source: Path, html: Path, *flags: str) -> subprocess.CompletedProcess:
    """Build (or rebuild, incrementally: the environment is kept in html/.doctrees) in a process of its own.

    Its own process, because Sphinx registers node classes globally (see test_glossary_links)."""
    return subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", *flags, "-b", "html", str(source), str(html)],
                          cwd=source, capture_output=True, text=True)


def _retime(source: Path, line: str) -> None:
    chapter = source / "book" / "04-attention.md"
    text = re.sub(r"- \*\*Time:\*\*.*", line, chapter.read_text())
    time.sleep(0.01)  # a newer mtime than the last build's, on any filesystem clock
    chapter.write_text(text)


@pytest.fixture(scope="module")
def notes_page(tmp_path_factory):
    """The small project built once."""
    from bs4 import BeautifulSoup

    source = tmp_path_factory.mktemp("notes") / "source"
    _project(source)
    html = source.parent / "html"
    built = _build(source, html)
    assert built.returncode == 0, built.stderr
    raw = (html / "book" / "teach" / "notes.html").read_text(encoding="utf-8")
    return raw, BeautifulSoup(raw, "html.parser"), html


def _box_time(html: Path) -> str:
    from bs4 import BeautifulSoup

    page = BeautifulSoup((html / "book" / "teach" / "notes.html").read_text(encoding="utf-8"), "html.parser")
    box = page.select_one("div.attnlab-chapter-facts")
    return re.search(r"\d+ min reading", box.get_text(" ")).group(0) if box else "no box"


def test_an_incremental_build_redraws_the_notes_when_the_chapter_changes_even_after_a_failed_build(tmp_path):
    source, html = tmp_path / "source", tmp_path / "html"
    _project(source)
    assert _build(source, html).returncode == 0
    assert _box_time(html) == "45 min reading"
    # Only the chapter changes: the notes page is re-read because it noted the chapter as a dependency.
    _retime(source, "- **Time:** 50 minutes of reading, 40 minutes for {lab}`lab 4 <04-attention-lab>`")
    assert _build(source, html).returncode == 0
    assert _box_time(html) == "50 min reading"
    # A broken Time line fails the build; once fixed, the next incremental build must draw the box again.
    _retime(source, "- **Time:** soon")
    broken = _build(source, html, "--keep-going")
    assert broken.returncode != 0 and "no Time line" in broken.stderr, broken.stderr
    assert _box_time(html) == "no box"
    _retime(source, "- **Time:** 55 minutes of reading, 40 minutes for {lab}`lab 4 <04-attention-lab>`")
    fixed = _build(source, html)
    assert fixed.returncode == 0, fixed.stderr
    assert _box_time(html) == "55 min reading"


def test_chapter_facts_box_has_time_objectives_and_working_links(notes_page):
    _, page, html = notes_page
    box = page.select_one("div.attnlab-chapter-facts")
    text = " ".join(box.get_text(" ").split())
    assert "45 min reading + 40 min lab = 85 min" in text
    assert "as in the lab;" in text and "{doc" not in text and "librarian" not in text
    assert box.select("li") and box.select("span.math, .math")  # objectives as a list, their math kept as math
    links = {a.get_text(" ", strip=True): a["href"] for a in box.select("a")}
    assert links["4 · Attention from scratch"] == "../04-attention.html"
    assert links["lab 4"] == "../../notebooks/04-attention-lab.html"
    chapter = (html / "book" / "04-attention.html").read_text(encoding="utf-8")
    anchors = [href.split("#")[1] for href in links.values() if "#" in href]
    assert anchors == ["analogy", "step-4-scaling-by-sqrt-d-k"]
    assert all(f'id="{anchor}"' in chapter for anchor in anchors)


def test_checker_messages_are_shown_verbatim_and_escaped(notes_page):
    raw, page, _ = notes_page
    shown = [block.get_text() for block in page.select("div.attnlab-checker-message, pre")]
    for checker in ("check_softmax", "check_sliding_window_mask"):
        for what, message in mistakes.messages(checker):
            assert what in page.get_text() and any(text.rstrip("\n") == message for text in shown), message
    # A message with a "<" (the window's "j <= i") arrives escaped, as text, not as a tag.
    assert any("<=" in message for _, message in mistakes.messages("check_sliding_window_mask"))
    assert "j &lt;= i" in raw and "j <= i" not in raw
    heads = [p.get_text(" ", strip=True) for p in page.select("p.attnlab-exercise-mistakes")]
    assert heads == ["softmax in lab 4 , checked by check_softmax",
                     "sliding_window_mask in lab 4 , checked by check_sliding_window_mask"]
