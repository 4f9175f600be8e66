"""The chapter facts the workshop kit is built from: read from the chapters and labs, and true of the built site."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from bs4 import BeautifulSoup

from attnlab.workshop.chapters import chapter_facts, heading_anchor
from tests.conftest import ROOT

FACTS = chapter_facts(ROOT)
COURSE = [chapter for chapter in FACTS if chapter.number >= 1]
SKELETON = ["Analogy", "Explore", "Practice", "Summary"]


def test_every_chapter_file_is_read_in_number_order():
    files = sorted(path.stem for path in (ROOT / "book").glob("[0-9][0-9]-*.md"))
    assert [chapter.docname for chapter in FACTS] == [f"book/{stem}" for stem in files]
    assert [chapter.number for chapter in FACTS] == list(range(len(files)))
    assert FACTS[4].title == "Attention from scratch" and FACTS[4].lab == "notebooks/04-attention-from-scratch-lab"


@pytest.mark.parametrize("chapter", COURSE, ids=lambda chapter: chapter.docname)
def test_a_chapter_has_objectives_times_and_its_skeleton(chapter):
    assert len(chapter.objectives) >= 3 and all(len(item.split()) >= 4 for item in chapter.objectives)
    assert chapter.reading_min > 0 and chapter.lab_min > 0
    assert chapter.you_will and not chapter.you_will.startswith("**")
    titles = [section.title for section in chapter.sections]
    assert len(titles) >= 4
    starts = [next(i for i, title in enumerate(titles) if title.startswith(part)) for part in SKELETON]
    assert starts == sorted(starts), f"{chapter.docname}: {titles}"
    explore = chapter.sections[starts[1]]
    assert explore.words > 0
    assert sum(section.words for section in chapter.sections) >= 500


def test_wrapped_time_lines_are_read_whole():
    """Chapters 11 and 13 wrap their Time line inside the lab's parenthesis."""
    by_number = {chapter.number: chapter for chapter in FACTS}
    assert (by_number[11].reading_min, by_number[11].lab_min) == (50, 40)
    assert (by_number[13].reading_min, by_number[13].lab_min) == (40, 35)


@pytest.mark.parametrize("chapter", FACTS, ids=lambda chapter: chapter.docname)
def test_exercises_and_checkers_are_the_labs(chapter):
    cells = json.loads((ROOT / f"{chapter.lab}.ipynb").read_text(encoding="utf-8"))["cells"]
    tagged = [("".join(cell["source"]), cell["metadata"].get("tags", [])) for cell in cells]
    defined = [re.search(r"^def (\w+)", source, re.M).group(1) for source, tags in tagged if "exercise" in tags]
    called = [re.search(r"(check_\w+)\(", source).group(1) for source, tags in tagged if "check" in tags]
    assert [exercise.name for exercise in chapter.exercises] == defined
    assert [exercise.checker for exercise in chapter.exercises] == called
    assert bool(chapter.exercises) == (chapter.number >= 1)


def test_sections_count_prose_math_and_figures():
    chapter = FACTS[4]
    by_title = {section.title: section for section in chapter.sections}
    assert by_title["Step 4: scaling by $\\sqrt{d_k}$"].anchor == "step-4-scaling-by-sqrt-d-k"
    assert by_title["Step 4: scaling by $\\sqrt{d_k}$"].has_math
    assert not by_title["Analogy: a class that votes"].has_math
    assert by_title["Practice"].words == 0  # exercises and solutions are lab work, not reading
    assert by_title["Explore: one real head, step by step"].figures == 1
    assert sum(section.figures for section in chapter.sections) == 3
    assert heading_anchor("The code: {term}`softmax` and `numpy`") == "the-code-softmax-and-numpy"


def _copy_book(tmp_path, chapter: str):
    """A copy of one chapter and its lab: enough for chapter_facts."""
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / f"book/{chapter}.md", tmp_path / "book")
    shutil.copy(ROOT / f"notebooks/{chapter}-lab.ipynb", tmp_path / "notebooks")
    return tmp_path / "book" / f"{chapter}.md"


def test_a_missing_time_line_is_an_error_naming_the_file(tmp_path):
    page = _copy_book(tmp_path, "04-attention-from-scratch")
    page.write_text(re.sub(r"- \*\*Time:\*\*.*\n", "", page.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ValueError, match=r"book/04-attention-from-scratch\.md: no Time line"):
        chapter_facts(tmp_path)


def test_a_missing_title_or_lab_is_an_error_naming_the_file(tmp_path):
    page = _copy_book(tmp_path, "05-multi-head-attention")
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("# 5 · Multi-head attention\n", ""), encoding="utf-8")
    with pytest.raises(ValueError, match=r"book/05-multi-head-attention\.md: no title"):
        chapter_facts(tmp_path)
    page.write_text(text, encoding="utf-8")
    (tmp_path / "notebooks" / "05-multi-head-attention-lab.ipynb").unlink()
    with pytest.raises(ValueError, match=r"05-multi-head-attention\.md: .*notebooks/05-multi-head-attention-lab"):
        chapter_facts(tmp_path)


@pytest.mark.site
@pytest.mark.parametrize("chapter", FACTS, ids=lambda chapter: chapter.docname)
def test_section_anchors_are_the_built_pages_ids(site, chapter):
    page = BeautifulSoup((site / f"{chapter.docname}.html").read_text(encoding="utf-8"), "html.parser")
    built = [heading.parent.get("id") for heading in page.select("section > h2")
             if heading.parent.get("id") not in ("exercise-content", "solution-content")]
    assert built == [section.anchor for section in chapter.sections]
