"""Student and instructor notebooks from one source: the labs (attnlab.workshop.notebooks)."""

from __future__ import annotations

import os

import nbformat
import pytest

from attnlab.errors import InputError
from attnlab.workshop.notebooks import has_exercises, instructor_version, solve, student_version, write_notebooks
from tests.conftest import ROOT

LABS = sorted((ROOT / "notebooks").glob("*-lab.ipynb"))
EXERCISE_LABS = [p for p in LABS if has_exercises(nbformat.read(p, 4))]


def _tagged(nb, tag: str) -> list:
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


@pytest.mark.parametrize("path", EXERCISE_LABS, ids=[p.stem for p in EXERCISE_LABS])
def test_instructor_version_fills_every_exercise_and_names_the_slips(path):
    lab = nbformat.read(path, as_version=4)
    instructor = instructor_version(lab)
    exercises, filled = _tagged(lab, "exercise"), _tagged(instructor, "exercise")
    assert len(filled) == len(exercises) and not _tagged(instructor, "solution")
    assert all("raise NotImplementedError" in c.source for c in exercises), "the source lab is left as it was"
    assert not any("NotImplementedError" in c.source or "YOUR CODE" in c.source for c in filled)
    notes = _tagged(instructor, "instructor-note")
    assert "Upload notebook" in notes[0].source and "colab.research.google.com" not in notes[0].source
    assert notes[1].source.startswith("**Instructor copy") and "Show a solution" in notes[1].source
    slips = [c.source for c in notes[2:]]
    assert len(slips) == len(_tagged(lab, "check")), "every check is followed by its common slips"
    assert all(s.count("\n- ") >= 2 and "```text\n" in s for s in slips), "at least two wrong answers, each quoted"
    # Code cells other than the exercises are untouched.
    same = [c.source for c in lab.cells if c.cell_type == "code" and "exercise" not in c.metadata.get("tags", [])]
    assert same == [c.source for c in instructor.cells if c.cell_type == "code" and "exercise" not in c.metadata.get("tags", [])]


def test_student_version_is_the_lab_itself():
    lab = nbformat.read(LABS[0], as_version=4)
    assert student_version(lab) == lab and student_version(lab) is not lab


def test_an_exercise_without_its_solution_is_named():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise NotImplementedError")])
    nb.cells[0].metadata["tags"] = ["exercise"]
    with pytest.raises(InputError, match="exercise cell 0"):
        solve(nb)


def _lab(root, name: str, *cells) -> None:
    nb = nbformat.v4.new_notebook(cells=list(cells))
    for number, cell in enumerate(nb.cells):
        cell.id = f"cell-{number}"
    (root / "notebooks").mkdir(exist_ok=True)
    nbformat.write(nb, root / "notebooks" / name)


def _tagged_cell(make, source: str, tag: str):
    cell = make(source)
    cell.metadata["tags"] = [tag]
    return cell


def test_a_checker_without_catalogued_mistakes_is_named_with_its_lab(tmp_path):
    _lab(tmp_path, "05-new-lab.ipynb",
         _tagged_cell(nbformat.v4.new_code_cell, "def new_thing(x):\n    raise NotImplementedError", "exercise"),
         _tagged_cell(nbformat.v4.new_markdown_cell, "```python\ndef new_thing(x):\n    return x\n```", "solution"),
         _tagged_cell(nbformat.v4.new_code_cell, "check_new_thing(new_thing)", "check"))
    with pytest.raises(InputError, match=r"notebooks/05-new-lab\.ipynb: .*check_new_thing.*attnlab/workshop/mistakes\.py"):
        write_notebooks(tmp_path, tmp_path / "site")


def test_a_rewrite_keeps_unchanged_notebooks_and_drops_a_removed_labs(tmp_path):
    _lab(tmp_path, "00-plain-lab.ipynb", nbformat.v4.new_code_cell("print(1)"))
    site = tmp_path / "site"
    [student] = write_notebooks(tmp_path, site)
    assert student.read_bytes() == (tmp_path / "notebooks" / "00-plain-lab.ipynb").read_bytes()
    os.utime(student, ns=(1_000_000_000, 1_000_000_000))
    stale = site / "_static" / "notebooks" / "instructor" / "99-removed-lab.ipynb"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    assert write_notebooks(tmp_path, site) == [student]
    assert student.stat().st_mtime_ns == 1_000_000_000, "an unchanged notebook was written again"
    assert not stale.exists()


@pytest.mark.site
def test_the_site_serves_both_notebooks_as_built_from_the_labs(site):
    for path in LABS:
        lab = nbformat.read(path, as_version=4)
        student = site / "_static" / "notebooks" / "student" / path.name
        assert nbformat.read(student, as_version=4).cells == lab.cells, f"{student} is stale: run `make book`"
        instructor = site / "_static" / "notebooks" / "instructor" / path.name
        if path in EXERCISE_LABS:
            assert nbformat.read(instructor, as_version=4).cells == instructor_version(lab).cells, \
                f"{instructor} is stale: run `make book`"
        else:
            assert not instructor.exists()
