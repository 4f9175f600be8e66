"""Session plans: book/teach/plans.yml says what to teach, the chapters say how long it takes.

A plan lists blocks (chapter sections, lab exercises, breaks); every minute comes from the chapters' own
"Time" lines by one rule, so a plan follows the book when a chapter changes:

- a chapter's reading minutes are split over its `##` sections in proportion to their prose words, in
  whole 5-minute steps given out by largest remainder, so the parts add up to the chapter's total;
- a lab block takes `lab minutes × exercises chosen / exercises in the lab`, rounded up to 5;
- a block may say `minutes: N` instead, when the instructor knows better.

`schedule(name, facts)` gives the clock; `python -m attnlab.workshop.plans intro-90` prints it, and the
`{session-plan}` directive (`setup(app)`) puts it in the book.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from attnlab.workshop.chapters import Chapter, Exercise, Section, chapter_facts, source_files

PLANS_FILE = "book/teach/plans.yml"
STEP = 5  # minutes: plans are counted in 5-minute steps
PAUSES = ("break", "lunch")  # blocks that are not teaching
KINDS = ("chapter", "lab", "setup", "activity", *PAUSES)


class PlanError(ValueError):
    """A plan in plans.yml names something the chapters do not have, or is written wrongly."""


@dataclass(frozen=True)
class Row:
    day: int
    start: str  # "09:00"
    minutes: int
    kind: str  # one of KINDS
    what: str  # plain text: "4 · Attention from scratch", "Lab 4", "Break"
    chapter: Chapter | None = None
    sections: tuple[Section, ...] = ()
    exercises: tuple[Exercise, ...] = ()
    demo: str | None = None  # what to show live, in words; None: the chosen sections' figures
    notes: str = ""

    def demos(self) -> list[Section]:
        """The chosen sections whose figures are the live demo (none when the plan says what to show)."""
        return [section for section in self.sections if section.figures] if self.demo is None else []


@dataclass(frozen=True)
class Day:
    number: int
    start: str
    end: str
    rows: tuple[Row, ...]

    @property
    def budget(self) -> int:
        return _minutes(self.end) - _minutes(self.start)


@dataclass(frozen=True)
class Schedule:
    name: str
    title: str
    audience: str
    days: tuple[Day, ...]
    files: tuple[str, ...]  # the chapter and lab files the plan's minutes come from, relative to the root

    @property
    def rows(self) -> list[Row]:
        return [row for day in self.days for row in day.rows]

    @property
    def budget(self) -> int:
        """Minutes from start to end of every day: what the plan has to fill."""
        return sum(day.budget for day in self.days)

    @property
    def total(self) -> int:
        return sum(row.minutes for row in self.rows)

    def minutes_of(self, *kinds: str) -> int:
        """Minutes spent on blocks of these kinds."""
        return sum(row.minutes for row in self.rows if row.kind in kinds)


def section_minutes(chapter: Chapter) -> list[int]:
    """The chapter's reading minutes split over its sections by prose words, in 5-minute steps that add up."""
    words = [section.words for section in chapter.sections]
    steps, rest = divmod(chapter.reading_min, STEP)
    if not sum(words):
        return [0] * len(words)
    shares = [steps * count / sum(words) for count in words]
    parts = [math.floor(share) for share in shares]
    # Largest remainder: the steps left over go to the sections that lost most to rounding down.
    by_remainder = sorted(range(len(shares)), key=lambda i: (parts[i] - shares[i], -words[i]))
    for i in by_remainder[:steps - sum(parts)]:
        parts[i] += 1
    minutes = [part * STEP for part in parts]
    minutes[words.index(max(words))] += rest  # a Time line that is not a multiple of 5 keeps its minutes
    return minutes


def lab_minutes(chapter: Chapter, chosen: int) -> int:
    """Minutes for `chosen` of the lab's exercises: its share of the lab's time, rounded up to 5."""
    share = chosen / len(chapter.exercises) if chapter.exercises else 1  # a lab without exercises is run whole
    return STEP * math.ceil(chapter.lab_min * share / STEP)


def load_plans(root: Path) -> dict:
    """plans.yml as a dict of plans, with a friendly error when it cannot be read."""
    path = Path(root) / PLANS_FILE
    try:
        plans = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PlanError(f"{PLANS_FILE}: cannot read it ({error})") from None
    if not isinstance(plans, dict) or not all(isinstance(plan, dict) for plan in plans.values()):
        raise PlanError(f"{PLANS_FILE}: expected plan names, each with a title and days")
    return plans


def schedule(name: str, facts: list[Chapter], root: Path | None = None, plans: dict | None = None) -> Schedule:
    """The timed plan `name` of plans.yml (read under `root`, the course's root, unless `plans` is given)."""
    plans = plans if plans is not None else load_plans(root if root is not None else Path.cwd())
    if name not in plans:
        raise PlanError(f"{PLANS_FILE}: no plan {name!r}; the plans are: {', '.join(plans)}")
    plan = plans[name]
    files: list[str] = []
    days = []
    for number, day in enumerate(plan.get("days") or [], 1):
        where = f"{PLANS_FILE}: plan {name!r}, day {number}"
        if not isinstance(day, dict):
            raise PlanError(f"{where}: a day has a start, an end and blocks")
        try:
            clock, end = _minutes(str(day["start"])), str(day["end"])
            _minutes(end)
        except (KeyError, TypeError, ValueError):
            raise PlanError(f"{where}: give each day a start and an end in quotes, as \"09:00\" "
                            "(unquoted, YAML reads 10:30 as a number)") from None
        rows = []
        for index, block in enumerate(day.get("blocks") or [], 1):
            row = _row(block, facts, number, _clock(clock), f"{where}, block {index}", files)
            rows.append(row)
            clock += row.minutes
        days.append(Day(number, str(day["start"]), end, tuple(rows)))
    if not days:
        raise PlanError(f"{PLANS_FILE}: plan {name!r} has no days")
    return Schedule(name, str(plan.get("title", name)), str(plan.get("for", "")), tuple(days), tuple(files))


def _row(block: dict, facts: list[Chapter], day: int, start: str, where: str, files: list[str]) -> Row:
    """One block of plans.yml as a row of the schedule."""
    kinds = [kind for kind in KINDS if kind in (block or {})] if isinstance(block, dict) else []
    if len(kinds) != 1:
        raise PlanError(f"{where}: a block is one of {', '.join(KINDS)} (got {block!r})")
    kind = kinds[0]
    notes, minutes = str(block.get("note", "")), block.get("minutes")
    if minutes is not None and not isinstance(minutes, int):
        raise PlanError(f"{where}: minutes is a whole number, as minutes: 10 (got {minutes!r})")
    demo = block.get("demo", True)
    demo = None if demo is True else "" if demo is False else str(demo)  # true: the sections' figures
    if kind in ("chapter", "lab"):
        chapter = _chapter(block[kind], facts, where)
        used = [f"{chapter.docname}.md"] + ([f"{chapter.lab}.ipynb"] if chapter.lab else [])
        files.extend(path for path in used if path not in files)
        if kind == "chapter":
            sections = _sections(chapter, block.get("sections", "all"), f"{where} (chapter {chapter.number})")
            parts = dict(zip(chapter.sections, section_minutes(chapter)))
            minutes = minutes if minutes is not None else sum(parts[section] for section in sections)
            what = f"{chapter.number} · {chapter.title}"
            return Row(day, start, int(minutes), kind, what, chapter, sections, (), demo, notes)
        exercises = _exercises(chapter, block.get("exercises", "all"), f"{where} (lab {chapter.number})")
        minutes = minutes if minutes is not None else lab_minutes(chapter, len(exercises))
        what = f"Lab {chapter.number}"
        return Row(day, start, int(minutes), kind, what, chapter, (), exercises, demo or "", notes)
    if kind == "activity":
        if minutes is None:
            raise PlanError(f"{where}: an activity needs its minutes: {{activity: ..., minutes: 10}}")
        return Row(day, start, int(minutes), kind, str(block[kind]), demo=demo or "", notes=notes)
    if not isinstance(block[kind], int):
        raise PlanError(f"{where}: write {kind}: MINUTES, as {{{kind}: 15}}")
    return Row(day, start, block[kind], kind, kind.capitalize(), demo=demo or "", notes=notes)


def _chapter(key: int | str, facts: list[Chapter], where: str) -> Chapter:
    """The chapter a block names, by number (4) or file name (04-attention-from-scratch)."""
    for chapter in facts:
        if key in (chapter.number, chapter.docname, chapter.docname.removeprefix("book/")):
            return chapter
    known = ", ".join(chapter.docname.removeprefix("book/") for chapter in facts)
    raise PlanError(f"{where}: no chapter {key!r}; the chapters are {known}")


def _sections(chapter: Chapter, wanted: list[str] | str, where: str) -> tuple[Section, ...]:
    """The sections a block names, each by the start of its heading ("Step 2", "Explore"), or "all"."""
    if wanted == "all":
        return tuple(section for section in chapter.sections if section.title != "References")
    if not isinstance(wanted, list) or not wanted:
        raise PlanError(f"{where}: sections is a list of heading starts, or all")
    chosen = []
    for start in wanted:
        matches = [section for section in chapter.sections if section.title.lower().startswith(str(start).lower())]
        if len(matches) != 1:
            problem = "no section starts with" if not matches else "more than one section starts with"
            titles = "; ".join(section.title for section in chapter.sections)
            raise PlanError(f"{where}: {problem} {start!r}; the sections of {chapter.docname}.md are: {titles}")
        chosen.append(matches[0])
    return tuple(chosen)


def _exercises(chapter: Chapter, wanted: list[str] | str, where: str) -> tuple[Exercise, ...]:
    """The lab exercises a block names, by function name, or "all"."""
    if wanted == "all":
        return tuple(chapter.exercises)
    names = {exercise.name: exercise for exercise in chapter.exercises}
    if not isinstance(wanted, list):
        raise PlanError(f"{where}: exercises is a list of function names, as [{next(iter(names), 'softmax')}], "
                        f"or all; got {wanted!r}")
    unknown = [name for name in wanted if name not in names]
    if unknown or not wanted:
        missing = ", ".join(map(str, unknown)) or "(none given)"
        raise PlanError(f"{where}: {chapter.lab}.ipynb has no exercise {missing}; "
                        f"its exercises are: {', '.join(names) or 'none'}")
    return tuple(names[name] for name in wanted)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def longest_stretch(day: Day) -> int:
    """The longest run of minutes in a day without a break or lunch."""
    longest = run = 0
    for row in day.rows:
        run = 0 if row.kind in PAUSES else run + row.minutes
        longest = max(longest, run)
    return longest


def totals_line(plan: Schedule) -> str:
    """One sentence of totals, the same in the book and on the command line."""
    over = plan.total - plan.budget
    fit = f"{over} min over: shorten a block" if over > 0 else f"{-over} min to spare"
    return (f"Total {plan.total} min of the {plan.budget} planned ({fit}): "
            f"{plan.minutes_of('chapter', 'setup', 'activity')} min teaching, {plan.minutes_of('lab')} min lab, "
            f"{plan.minutes_of(*PAUSES)} min breaks.")


# ---- the book: the {session-plan} directive -------------------------------------------------------------


def setup(app) -> None:
    """Register the {session-plan} directive with Sphinx."""
    app.add_directive("session-plan", SessionPlanDirective)


class SessionPlanDirective(SphinxDirective):
    """``{session-plan} intro-90``: the plan as a table, timed from the chapters it uses."""

    required_arguments = 1
    has_content = False

    def run(self) -> list:
        root = Path(self.env.srcdir)
        # Every file a plan may read, before reading any: a plan that fails to build must be
        # rebuilt when the chapter that broke it is fixed, and a chapter a plan starts to use counts too.
        for path in [root / PLANS_FILE, *source_files(root)]:
            self.env.note_dependency(str(path))
        try:
            plan = schedule(self.arguments[0], chapter_facts(root), root)
        except ValueError as error:  # PlanError, and chapter files that cannot be read
            raise self.error(str(error)) from None
        if plan.total > plan.budget:
            logging.getLogger(__name__).warning(f"{PLANS_FILE}: plan {plan.name!r}: {totals_line(plan)}",
                                                location=(self.env.docname, self.lineno))
        container = nodes.container(classes=["attnlab-session-plan"], ids=[f"session-plan-{plan.name}"])
        if plan.audience:
            container += nodes.paragraph("", "", nodes.strong("", "For: "), nodes.Text(plan.audience))
        container += _table(plan, self._link)
        container += nodes.paragraph("", totals_line(plan), classes=["attnlab-plan-totals"])
        return [container]

    def _link(self, docname: str, anchor: str = "") -> str:
        """The address of a page of the book (and a place on it) from this page."""
        uri = self.env.app.builder.get_relative_uri(self.env.docname, docname)
        return f"{uri}#{anchor}" if anchor else uri


HEADERS = ("Clock", "Min", "What", "Live demo", "Lab exercise", "Notes")


def _table(plan: Schedule, link) -> nodes.table:
    """The plan as a docutils table: a row per block and a row of totals."""
    table = nodes.table(classes=["attnlab-plan-table"])
    group = nodes.tgroup(cols=len(HEADERS))
    table += group
    for width in (6, 4, 34, 22, 18, 24):
        group += nodes.colspec(colwidth=width)
    head, body = nodes.thead(), nodes.tbody()
    head += _table_row([nodes.Text(header) for header in HEADERS])
    group += head
    group += body
    for row in plan.rows:
        clock = f"Day {row.day} · {row.start}" if len(plan.days) > 1 and row is plan.days[row.day - 1].rows[0] \
            else row.start
        body += _table_row([nodes.Text(clock), nodes.Text(str(row.minutes)), *_cells(row, link)],
                           classes=[f"attnlab-plan-{row.kind}"])
    # The breakdown is in the totals line under the table, not repeated here.
    body += _table_row([nodes.Text("Total"), nodes.Text(str(plan.total)), *[nodes.Text("")] * 4],
                       classes=["attnlab-plan-total"])
    return table


def _table_row(cells: list, classes: list[str] | None = None) -> nodes.row:
    row = nodes.row(classes=classes or [])
    for content in cells:
        entry = nodes.entry()
        if not isinstance(content, nodes.paragraph):
            content = nodes.paragraph("", "", content)
        if content.astext():  # an empty cell stays empty, without an empty paragraph
            entry += content
        row += entry
    return row


def _cells(row: Row, link) -> list:
    """The What, Live demo, Lab exercise and Notes cells of one row."""
    what = nodes.paragraph()
    demo = nodes.paragraph()
    exercise = nodes.paragraph()
    if row.kind == "chapter":
        what += nodes.reference("", row.what, refuri=link(row.chapter.docname), internal=True)
        for i, section in enumerate(row.sections):
            what += nodes.Text(": " if i == 0 else "; ")
            what += _section_link(row.chapter, section, link)
        demo += nodes.Text(row.demo or "")
        for i, section in enumerate(row.demos()):
            demo += nodes.Text("" if i == 0 else "; ")
            demo += _section_link(row.chapter, section, link)
            demo += nodes.Text(f" ({section.figures} figure{'s' * (section.figures > 1)})")
    elif row.kind == "lab":
        what += nodes.reference("", f"{row.what}: {row.chapter.title}", refuri=link(row.chapter.lab), internal=True)
        for i, item in enumerate(row.exercises):
            exercise += nodes.Text("" if i == 0 else "; ")
            exercise += nodes.literal("", item.name)
            exercise += nodes.Text(" → ")
            exercise += nodes.literal("", item.checker)
    else:
        what += nodes.Text(row.what)
        demo += nodes.Text(row.demo or "")
    return [what, demo, exercise, nodes.paragraph("", row.notes)]


def _section_link(chapter: Chapter, section: Section, link) -> nodes.reference:
    """A link to one section, its title's $math$ typeset as math."""
    reference = nodes.reference("", "", refuri=link(chapter.docname, section.anchor), internal=True)
    for i, piece in enumerate(section.title.split("$")):
        if piece:
            reference += nodes.math(piece, piece) if i % 2 else nodes.Text(piece)
    return reference


# ---- the command line ------------------------------------------------------------------------------------


def plain(title: str) -> str:
    """A heading's $math$ as plain text: "Step 4: scaling by $\\sqrt{d_k}$" → "Step 4: scaling by √d_k"."""
    return re.sub(r"\\sqrt\{([^{}]*)\}", r"√\1", title).replace("$", "")


def format_schedule(plan: Schedule) -> str:
    """The plan as plain text: one line per block, then the totals."""
    lines = [f"{plan.title} ({plan.name})"]
    for day in plan.days:
        lines.append(f"Day {day.number}: {day.start}–{day.end}" if len(plan.days) > 1 else f"{day.start}–{day.end}")
        for row in day.rows:
            what = row.what
            if row.sections:
                what += ": " + "; ".join(plain(section.title) for section in row.sections)
            if row.exercises:
                what += ": " + "; ".join(f"{item.name} → {item.checker}" for item in row.exercises)
            demo = row.demo or "; ".join(plain(section.title.split(":")[0]) for section in row.demos())
            extra = "".join(f"\n{'':13}{label}: {text}" for label, text in (("demo", demo), ("note", row.notes))
                            if text)
            lines.append(f"  {row.start}  {row.minutes:>3}  {what}{extra}")
    lines.append(totals_line(plan))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """python -m attnlab.workshop.plans [PLAN ...] [--root DIR]: print the plans' timetables."""
    parser = argparse.ArgumentParser(description="Print a session plan of book/teach/plans.yml with its timings.")
    parser.add_argument("plans", nargs="*", help="plan names (default: all)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the course's root folder")
    args = parser.parse_args(argv)
    try:
        plans = load_plans(args.root)
        facts = chapter_facts(args.root)
        for name in args.plans or list(plans):
            print(format_schedule(schedule(name, facts, plans=plans)), end="\n\n")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
