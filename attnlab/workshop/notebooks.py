"""Student and instructor notebooks from one source: the labs in `notebooks/`.

The student notebook is the lab as it is (exercise stubs that the checker answers with "not written yet").
The instructor notebook is the same lab with every exercise's folded solution put in its place, a banner
saying so, and after each check the usual wrong answers with what the checker says to each.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat

from attnlab.errors import InputError

SOLUTION_CODE = re.compile(r"```python\n(.*?)\n```", re.S)
CHECKER_CALL = re.compile(r"\b(check_\w+)\(")
BANNER = (
    "**Instructor copy: every exercise has its solution filled in.** Run it top to bottom before the session: "
    "every check should print ✓. After each check, a note lists the wrong answers learners often write and "
    "what the checker tells them. Learners get the lab as published: the same exercises as stubs, each with "
    "its solution folded under *Show a solution* (ask them to open it only after the checker has answered twice)."
)
BADGE = (
    "To run this instructor copy in Colab, download it, then in Colab choose *File → Upload notebook*. "
    "(The lab's own link opens the learners' version.)"
)


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def has_exercises(nb: nbformat.NotebookNode) -> bool:
    """Whether the lab has a cell tagged `exercise` (so an instructor version with solutions)."""
    return any("exercise" in _tags(cell) for cell in nb.cells)


def solve(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Put each exercise's folded solution (the Markdown cell after it) in place of the exercise, in place."""
    for index, cell in enumerate(nb.cells):
        if "exercise" not in _tags(cell):
            continue
        folded = nb.cells[index + 1] if index + 1 < len(nb.cells) else None
        found = SOLUTION_CODE.search(folded.source) if folded is not None and "solution" in _tags(folded) else None
        if found is None:
            raise InputError(f"exercise cell {index} must be followed by a cell tagged 'solution' with a ```python block")
        cell.source = found.group(1)
    return nb


def _note_cell(source: str, cell_id: str) -> nbformat.NotebookNode:
    """A Markdown cell tagged as an instructor's note, with a fixed id (so two builds write the same file)."""
    cell = nbformat.v4.new_markdown_cell(source)
    cell.id = cell_id
    cell.metadata["tags"] = ["instructor-note"]
    return cell


def _slips_cell(checker: str, cell_id: str) -> nbformat.NotebookNode | None:
    """A Markdown cell listing the common wrong answers for ``checker`` and the checker's message to each."""
    from attnlab.workshop.mistakes import MISTAKES, messages

    if checker not in MISTAKES:
        raise InputError(f"its check cell calls {checker}, which has no wrong answers in MISTAKES: add at least "
                         f"two Mistake(what, answer) entries for {checker!r} to attnlab/workshop/mistakes.py")
    slips = messages(checker)
    if not slips:
        return None
    lines = [f"**Instructor note: common slips, and what `{checker}` tells the learner**", ""]
    for what, message in slips:
        # A fenced block shows the message verbatim: Markdown would read its `*`, `_` and `<` as markup.
        lines += [f"- {what}:", "", "  ```text", *(f"  {line}" for line in message.strip().splitlines()), "  ```", ""]
    return _note_cell("\n".join(lines).rstrip() + "\n", cell_id)


def instructor_version(lab: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The lab with solutions filled in, a banner, and the common slips after each check."""
    nb = solve(copy.deepcopy(lab))
    cells = []
    for index, cell in enumerate(nb.cells):
        if "solution" in _tags(cell):
            continue  # its code now stands in the exercise cell above
        if "attnlab-badge" in _tags(cell):
            cell = _note_cell(BADGE, "instructor-badge")  # its Colab link would open the learners' lab
        cells.append(cell)
        if index == 1:
            cells.append(_note_cell(BANNER, "instructor-copy"))
        if "check" in _tags(cell):
            for checker in dict.fromkeys(CHECKER_CALL.findall(cell.source)):
                slips = _slips_cell(checker, f"slips-{index}-{checker}"[:64])
                if slips is not None:
                    cells.append(slips)
    nb.cells = cells
    return nb


def student_version(lab: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The lab exactly as published: the student notebook is the source itself."""
    return copy.deepcopy(lab)


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it holds exactly that already; return whether it was written.

    An unchanged file keeps its mtime, so the room server's compressed copies of it (.br, .gz) stay valid.
    """
    data = text.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def remove_others(folder: Path, kept: list[Path], pattern: str) -> None:
    """Delete the files matching ``pattern`` under ``folder`` that are not in ``kept`` (a renamed lab's old copy)."""
    keep = {path.resolve() for path in kept}
    for path in folder.glob(pattern):
        if path.is_file() and path.resolve() not in keep:
            path.unlink()


def write_notebooks(root: Path, site: Path) -> list[Path]:
    """Write ``site/_static/notebooks/{student,instructor}/`` from the labs; return the files (written or unchanged)."""
    out = site / "_static" / "notebooks"
    written = []
    for path in sorted((root / "notebooks").glob("*-lab.ipynb")):
        lab = nbformat.read(path, as_version=4)
        versions = {"student": student_version(lab)}
        try:
            if has_exercises(lab):
                versions["instructor"] = instructor_version(lab)
        except InputError as error:
            raise InputError(f"{path.relative_to(root).as_posix()}: {error}") from None
        for kind, nb in versions.items():
            target = out / kind / path.name
            text = nbformat.writes(nb)
            write_if_changed(target, text if text.endswith("\n") else text + "\n")  # as nbformat.write() ends it
            written.append(target)
    if out.is_dir():
        remove_others(out, written, "**/*")
    return written


if __name__ == "__main__":
    for written in write_notebooks(Path.cwd(), Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")):
        print(written)
