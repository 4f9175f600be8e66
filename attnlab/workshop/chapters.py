"""Facts about each chapter, read from its own source: title, objectives, times, sections and lab exercises.

This is the one place the workshop kit learns what a chapter contains; plans, notes and slides all ask here,
so a change to a chapter (its Time line, a new section, a renamed exercise) reaches them all. Plain text
parsing of the MyST files and the lab notebooks: no Sphinx, so tests and command lines can use it cheaply.

Rules, chosen to be simple and checked against the built site by tests/test_workshop_chapters.py:
- a section is a `## ` heading; `###` subsections belong to their `##` section;
- its anchor is the id Sphinx gives the heading (docutils' `make_id` of the heading's text);
- its words are prose words outside code cells, code fences, display math and exercise/solution blocks;
- `has_math`: the section has display math (`$$` or a `{math}` directive);
- `figures`: how many figures its code cells show. A figure is a call to a function imported from
  `attnlab.figures*` or `attnlab.static_explorer` that is either wrapped in `display(...)` or is the
  cell's last statement (the value Jupyter shows); cells tagged `remove-cell` show nothing.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

from docutils.nodes import make_id


@dataclass(frozen=True)
class Section:
    title: str
    anchor: str
    words: int
    has_math: bool
    figures: int


@dataclass(frozen=True)
class Exercise:
    name: str  # the function the learner writes in the lab
    checker: str  # the attnlab.checkers function called in the check cell after it


@dataclass(frozen=True)
class Chapter:
    number: int
    docname: str  # "book/04-attention-from-scratch"
    title: str
    you_will: str
    objectives: list[str]
    reading_min: int
    lab_min: int
    sections: list[Section]
    lab: str | None  # "notebooks/04-attention-from-scratch-lab"
    exercises: list[Exercise]


CHAPTER_FILE = re.compile(r"^(\d\d)-[\w-]+\.md$")
TIME_LINE = re.compile(
    r"\*\*Time:\*\*\s+(\d+)\s+minutes? of reading,\s+(\d+)\s+minutes? for\s+\{lab\}`[^`<]*<([^>]+)>`")
YOU_WILL = re.compile(r"\*\*You will:\*\*\s+(.*)")
FENCE = re.compile(r"^(`{3,}|:{3,})\s*(\{[\w:-]+\})?(.*)$")
# Directives whose content is not prose a learner reads in the flow of the chapter.
NOT_PROSE = {"code-cell", "code", "code-block", "math", "exercise", "solution", "index", "bibliography",
             "glossary", "raw", "eval-rst", "toctree"}
WORD = re.compile(r"[^\W_](?:[\w'’-]*\w)?")
FIGURE_MODULE = re.compile(r"attnlab\.(figures\w*|static_explorer)$")


def source_files(root: Path) -> list[Path]:
    """Every file chapter_facts may read: the chapters book/NN-*.md and the labs notebooks/*-lab.ipynb."""
    return sorted([*(root / "book").glob("[0-9][0-9]-*.md"), *(root / "notebooks").glob("*-lab.ipynb")])


def chapter_facts(root: Path) -> list[Chapter]:
    """Every chapter book/NN-*.md of the course under `root`, in number order, with its lab's exercises."""
    root = Path(root)
    paths = sorted(path for path in (root / "book").glob("*.md") if CHAPTER_FILE.match(path.name))
    if not paths:
        raise ValueError(f"no chapters book/NN-*.md under {root}")
    return [read_chapter(root, path) for path in paths]


def read_chapter(root: Path, path: Path) -> Chapter:
    """The facts of one chapter file (its lab is found from the chapter's Time line)."""
    where = path.relative_to(root).as_posix()
    lines = _body(path.read_text(encoding="utf-8")).split("\n")
    title = _title(lines, where)
    glance = _at_a_glance(lines, where)
    time = TIME_LINE.search(glance)
    if not time:
        raise ValueError(f"{where}: no Time line in the 'at a glance' box; write "
                         "'- **Time:** R minutes of reading, L minutes for {lab}`lab N <NN-name-lab>`'")
    you_will = YOU_WILL.search(glance)
    lab = f"notebooks/{time.group(3)}"
    lab_path = root / f"{lab}.ipynb"
    if not lab_path.exists():
        raise ValueError(f"{where}: its Time line names {lab}, but {lab}.ipynb does not exist")
    return Chapter(
        number=int(path.name[:2]), docname=where.removesuffix(".md"), title=title,
        you_will=_clip_item(you_will.group(1)) if you_will else "",
        objectives=_objectives(lines), reading_min=int(time.group(1)), lab_min=int(time.group(2)),
        sections=_sections(lines), lab=lab, exercises=lab_exercises(lab_path, root))


def lab_exercises(path: Path, root: Path | None = None) -> list[Exercise]:
    """The exercises of a lab: each cell tagged `exercise` and the checker of the next cell tagged `check`."""
    where = path.relative_to(root).as_posix() if root else str(path)
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (json.JSONDecodeError, KeyError) as error:
        raise ValueError(f"{where}: not a notebook ({error})") from None
    exercises: list[Exercise] = []
    for i, cell in enumerate(cells):
        if "exercise" not in _tags(cell):
            continue
        source = "".join(cell["source"])
        name = re.search(r"^def (\w+)", source, re.M)
        check = next((c for c in cells[i + 1:] if "check" in _tags(c) or "exercise" in _tags(c)), None)
        checker = re.search(r"\b(check_\w+)\(", "".join(check["source"])) if check and "check" in _tags(check) else None
        if not name or not checker:
            problem = "defines no function" if not name else "no cell tagged 'check' calls a check_* after it"
            raise ValueError(f"{where}: cell {i} is tagged 'exercise' but {problem}")
        exercises.append(Exercise(name.group(1), checker.group(1)))
    return exercises


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _body(text: str) -> str:
    """The text after the YAML front matter."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[end + 5:]
    return text


def _title(lines: list[str], where: str) -> str:
    for line in lines:
        if line.startswith(("```", "## ")):  # the title comes first; "# " further down is a code comment
            break
        if line.startswith("# "):
            return re.sub(r"^\d+\s*·\s*", "", line[2:].strip())  # "4 · Attention" → "Attention"
    raise ValueError(f"{where}: no title; the chapter should start with '# N · Title'")


def _at_a_glance(lines: list[str], where: str) -> str:
    """The 'at a glance' admonition's items, whitespace-normalised (long lines wrap in the source)."""
    for start, line in enumerate(lines):
        if line.startswith("```{admonition}") and "at a glance" in line:
            end = next((j for j in range(start + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
            return " ".join(" ".join(lines[start + 1:end]).split())
    raise ValueError(f"{where}: no 'This chapter at a glance' admonition (it holds the You will and Time lines)")


def _clip_item(text: str) -> str:
    """One item of the at-a-glance list: the text up to the next `- **Label:**` item."""
    return re.split(r"\s- \*\*\w[\w ]*:\*\*", text)[0].strip()


def _objectives(lines: list[str]) -> list[str]:
    """The numbered list after `**Learning objectives.**`, one string per item ([] when there is none)."""
    start = next((i for i, line in enumerate(lines) if line.startswith("**Learning objectives.**")), None)
    if start is None:
        return []
    items: list[str] = []
    for line in lines[start + 1:]:
        number = re.match(r"^\d+\.\s+(.*)", line)
        if number:
            items.append(number.group(1))
        elif items and line.startswith(" ") and line.strip():
            items[-1] += " " + line.strip()
        elif items and not line.strip():
            break
    return [" ".join(item.split()) for item in items]


def heading_anchor(title: str) -> str:
    """The id Sphinx gives a MyST heading: docutils' make_id of its text (markup and math delimiters dropped)."""
    text = re.sub(r"\{[\w:-]+\}`([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", title)  # {role}`text <target>` → text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [text](link) → text
    text = re.sub(r"[`$*]", "", text)
    return make_id(text)


def _sections(lines: list[str]) -> list[Section]:
    """The chapter's `##` sections with their prose words, display math and figures."""
    figure_names: set[str] = set()  # names imported from the figure modules so far in the chapter
    sections: list[Section] = []
    title, words, has_math, figures = None, 0, False, 0
    stack: list[tuple[str, str]] = []  # open fences: (marker, directive)
    cell: list[str] | None = None
    in_math = False
    seen: set[str] = set()

    def close() -> None:
        if title is not None:
            anchor = heading_anchor(title)
            if anchor in seen:  # Sphinx numbers a repeated id
                anchor = f"{anchor}-{sum(1 for s in sections if s.anchor.startswith(anchor))}"
            seen.add(anchor)
            sections.append(Section(title, anchor, words, has_math, figures))

    for line in lines:
        fence = FENCE.match(line)
        if stack and fence and fence.group(1)[0] == stack[-1][0][0] and len(fence.group(1)) >= len(stack[-1][0]) \
                and not fence.group(2) and not fence.group(3).strip():
            marker, directive = stack.pop()
            if directive == "code-cell" and cell is not None:
                shown, names = _cell_figures("\n".join(cell), figure_names)
                figure_names |= names
                figures += shown
                cell = None
            continue
        if fence and (not stack or stack[-1][1] not in ("code-cell", "code", "")):
            directive = fence.group(2)[1:-1] if fence.group(2) else ""
            stack.append((fence.group(1), directive))
            if directive == "code-cell":
                cell = []
            has_math |= directive == "math"
            continue
        if stack and stack[-1][1] == "code-cell" and cell is not None:
            cell.append(line)
            continue
        if not stack and line.startswith("## "):
            close()
            title, words, has_math, figures = line[3:].strip(), 0, False, 0
            continue
        if "$$" in line:
            has_math = True
            in_math ^= line.count("$$") % 2 == 1  # "$$ x $$" on one line opens and closes
            continue
        if title is None or in_math or any(d in NOT_PROSE or not d for _, d in stack) or line.startswith(":"):
            continue
        words += _words(line)
    close()
    return sections


def _words(line: str) -> int:
    """Prose words in one line of MyST: roles, inline math and labels do not count as words."""
    if re.match(r"^\(.*\)=\s*$", line) or line.startswith("#"):
        return 0
    line = re.sub(r"\$[^$]*\$", " ", line)  # inline math
    line = re.sub(r"\{[\w:-]+\}`([^`<]*?)\s*(?:<[^>]*>)?`", r"\1", line)  # keep a role's text
    line = re.sub(r"\]\([^)]*\)", "]", line)  # drop link targets
    return len(WORD.findall(line))


def _cell_figures(cell: str, known: set[str]) -> tuple[int, set[str]]:
    """How many figures a code cell shows, and the figure functions it imports."""
    options = [line for line in cell.split("\n") if line.startswith(":")]
    code = "\n".join("" if line.startswith((":", "%", "!")) else line for line in cell.split("\n"))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return 0, set()
    names = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and FIGURE_MODULE.match(node.module or "") for alias in node.names}
    if any("remove-cell" in option for option in options):
        return 0, names
    figure = known | names

    def call_of_figure(node: ast.AST) -> bool:
        while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # chart(...).update(...)
            node = node.func.value
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in figure

    displayed = sum(1 for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "display" and node.args and call_of_figure(node.args[0]))
    last = tree.body[-1] if tree.body else None
    shown_last = isinstance(last, ast.Expr) and call_of_figure(last.value)
    return displayed + shown_last, names


if __name__ == "__main__":  # python -m attnlab.workshop.chapters: a summary of every chapter
    for chapter in chapter_facts(Path.cwd()):
        print(f"{chapter.number:>2} {chapter.title}: {chapter.reading_min} + {chapter.lab_min} min, "
              f"{len(chapter.sections)} sections, {len(chapter.exercises)} exercises")
        for section in chapter.sections:
            print(f"     {section.words:>5} words {'∑' if section.has_math else ' '} {section.figures} fig  "
                  f"#{section.anchor}")
