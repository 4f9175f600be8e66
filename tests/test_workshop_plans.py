"""Session plans: timed from the chapters by one rule, within their slots, and rendered by the book's directive."""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

from attnlab.workshop import plans
from attnlab.workshop.chapters import chapter_facts
from attnlab.workshop.plans import PlanError, lab_minutes, longest_stretch, schedule, section_minutes
from tests.conftest import ROOT

FACTS = chapter_facts(ROOT)
PLANS = plans.load_plans(ROOT)
NAMES = ["intro-90", "half-day", "two-days"]
LONGEST_STRETCH = 100  # minutes of teaching between two breaks, at most
FILLED = 0.85  # a plan uses at least this share of its slot


def test_the_three_plans_exist():
    assert list(PLANS) == NAMES
    assert [len(schedule(name, FACTS, ROOT).days) for name in NAMES] == [1, 1, 2]


@pytest.mark.parametrize("name", NAMES)
def test_a_plan_fits_its_slot_and_uses_most_of_it(name):
    plan = schedule(name, FACTS, ROOT)
    for day in plan.days:
        used = sum(row.minutes for row in day.rows)
        assert FILLED * day.budget <= used <= day.budget, f"{name}, day {day.number}: {used} of {day.budget} min"
    assert plan.total == sum(row.minutes for row in plan.rows) <= plan.budget
    assert plan.minutes_of("lab") > 0 and all(row.minutes >= 0 for row in plan.rows)


@pytest.mark.parametrize("name", ["half-day", "two-days"])
def test_longer_plans_break_at_least_every_100_minutes(name):
    plan = schedule(name, FACTS, ROOT)
    for day in plan.days:
        assert longest_stretch(day) <= LONGEST_STRETCH, f"{name}, day {day.number}"
        assert any(row.kind == "break" for row in day.rows)
    if len(plan.days) > 1:
        assert all(any(row.kind == "lunch" for row in day.rows) for day in plan.days)


def test_the_introduction_reaches_attention_from_scratch_with_one_exercise():
    plan = schedule("intro-90", FACTS, ROOT)
    taught = {(row.chapter.number, section.title.split(":")[0]) for row in plan.rows if row.kind == "chapter"
              for section in row.sections}
    assert {(4, "Step 1"), (4, "Step 2"), (4, "Step 3"), (4, "Step 4")} <= taught
    exercises = [exercise for row in plan.rows for exercise in row.exercises]
    assert [exercise.checker for exercise in exercises] == ["check_softmax"]


def test_two_days_select_from_a_course_longer_than_two_days():
    plan = schedule("two-days", FACTS, ROOT)
    material = sum(chapter.reading_min + chapter.lab_min for chapter in FACTS)
    assert material > plan.budget  # so the plan must choose, and does
    assert {row.chapter.number for row in plan.rows if row.chapter} == set(range(1, 14))


@pytest.mark.parametrize("name", NAMES)
def test_every_section_and_exercise_a_plan_names_exists(name):
    plan = schedule(name, FACTS, ROOT)
    for row in plan.rows:
        if row.kind == "chapter":
            assert row.sections and set(row.sections) <= set(row.chapter.sections)
        if row.kind == "lab":
            assert row.exercises and set(row.exercises) <= set(row.chapter.exercises)
    assert set(plan.files) <= {path.relative_to(ROOT).as_posix() for path in ROOT.glob("*/*.*")}


@pytest.mark.parametrize("chapter", FACTS, ids=lambda chapter: chapter.docname)
def test_section_parts_add_up_to_the_chapters_reading_time(chapter):
    parts = section_minutes(chapter)
    assert sum(parts) == chapter.reading_min
    assert all(part % plans.STEP == 0 for part in parts)
    total_words = sum(section.words for section in chapter.sections)
    for part, section in zip(parts, chapter.sections):  # largest remainder: off by less than one step
        assert abs(part - chapter.reading_min * section.words / total_words) < plans.STEP


def test_the_rule_on_awkward_numbers():
    chapter = FACTS[4]
    odd = dataclasses.replace(chapter, reading_min=23)
    assert sum(section_minutes(odd)) == 23
    assert lab_minutes(chapter, 1) == 20  # 40 minutes, 1 of 2 exercises
    assert lab_minutes(FACTS[5], 2) == 30  # 40 × 2/3 = 26.7, rounded up to 5
    assert lab_minutes(FACTS[12], 6) == FACTS[12].lab_min


def _copy_course(tmp_path: Path) -> Path:
    """The chapters, labs and plans.yml in a folder of their own: all chapter_facts and schedule read."""
    for pattern in ("book/[0-9][0-9]-*.md", "notebooks/[0-9][0-9]-*-lab.ipynb", plans.PLANS_FILE):
        for path in ROOT.glob(pattern):
            (tmp_path / path.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, tmp_path / path.relative_to(ROOT))
    return tmp_path


def _retime(root: Path, reading: int, lab: int) -> None:
    """Change chapter 4's Time line, as an author would."""
    page = root / "book" / "04-attention-from-scratch.md"
    text, count = re.subn(r"\*\*Time:\*\* \d+ minutes of reading, \d+ minutes",
                          f"**Time:** {reading} minutes of reading, {lab} minutes", page.read_text(encoding="utf-8"))
    assert count == 1
    page.write_text(text, encoding="utf-8")


def test_a_plan_follows_a_chapters_time_line(tmp_path):
    root = _copy_course(tmp_path)
    facts = chapter_facts(root)
    before = {name: schedule(name, facts, root) for name in NAMES}
    assert [plan.total for plan in before.values()] == [schedule(name, FACTS, ROOT).total for name in NAMES]
    _retime(root, 90, 80)
    facts = chapter_facts(root)
    for name, old in before.items():
        new = schedule(name, facts, root)
        old_rows = [row.minutes for row in old.rows if row.chapter and row.chapter.number == 4]
        new_rows = [row.minutes for row in new.rows if row.chapter and row.chapter.number == 4]
        assert all(b >= a for a, b in zip(old_rows, new_rows)) and sum(new_rows) > sum(old_rows), name
        assert new.total - old.total == sum(new_rows) - sum(old_rows)
        after = next(i for i, row in enumerate(old.rows) if row.chapter and row.chapter.number == 4) + 1
        assert new.rows[after].start > old.rows[after].start  # the clock moves too


def _plans_with(block: dict, day_blocks: list | None = None) -> dict:
    return {"mine": {"title": "Mine", "days": [{"start": "09:00", "end": "10:00", "blocks": day_blocks or [block]}]}}


@pytest.mark.parametrize("block, message", [
    ({"chapter": 4, "sections": ["Step 9"]},
     r"plan 'mine', day 1, block 1 \(chapter 4\): no section starts with 'Step 9'; .*Step 1: scores"),
    ({"chapter": 4, "sections": ["Step"]}, r"block 1 \(chapter 4\): more than one section starts with 'Step'"),
    ({"lab": 4, "exercises": ["softmaxx"]},
     r"block 1 \(lab 4\): notebooks/04-attention-from-scratch-lab\.ipynb has no exercise softmaxx; "
     r"its exercises are: softmax, attention"),
    ({"lab": 4, "exercises": "softmax"},
     r"block 1 \(lab 4\): exercises is a list of function names, as \[softmax\], or all; got 'softmax'"),
    ({"chapter": 42}, r"block 1: no chapter 42; the chapters are 00-welcome, 01-why-transformers"),
    ({"pause": 10}, r"block 1: a block is one of chapter, lab, setup"),
    ({"break": "ten"}, r"block 1: write break: MINUTES"),
    ({"activity": "Questions"}, r"block 1: an activity needs its minutes"),
    ({"chapter": 4, "minutes": "ten"}, r"block 1: minutes is a whole number"),
])
def test_a_wrong_block_is_an_error_naming_the_plan_the_block_and_what_exists(block, message):
    with pytest.raises(PlanError, match=message):
        schedule("mine", FACTS, plans=_plans_with(block))


def test_an_unknown_plan_names_the_plans():
    with pytest.raises(PlanError, match=r"no plan 'three-days'; the plans are: intro-90, half-day, two-days"):
        schedule("three-days", FACTS, ROOT)


def test_minutes_override_the_rule_and_the_clock_follows():
    blocks = [{"chapter": 4, "sections": ["Analogy"], "minutes": 7}, {"break": 5}, {"lab": 4, "exercises": "all"}]
    plan = schedule("mine", FACTS, plans=_plans_with({}, blocks))
    assert [(row.start, row.minutes) for row in plan.rows] == [("09:00", 7), ("09:07", 5), ("09:12", 40)]
    assert plan.total == 52 and plan.budget == 60
    welcome = schedule("mine", FACTS, plans=_plans_with({"lab": 0})).rows[0]  # a lab with no exercises: run whole
    assert welcome.exercises == () and welcome.minutes == FACTS[0].lab_min


def test_the_command_line_prints_the_timetable(capsys):
    assert plans.main(["intro-90", "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    plan = schedule("intro-90", FACTS, ROOT)
    assert plans.totals_line(plan) in out
    for row in plan.rows:
        assert re.search(rf"^  {row.start}\s+{row.minutes}  ", out, re.M), row
    assert "softmax → check_softmax" in out
    assert "Step 4: scaling by √d_k" in out and "\\sqrt" not in out and "$" not in out  # math as plain text
    assert plans.main(["no-such-plan", "--root", str(ROOT)]) == 1
    assert "no plan 'no-such-plan'" in capsys.readouterr().err


# ---- the directive, in a small Sphinx build ---------------------------------------------------------------

CONF = '''\
extensions = ["myst_parser"]
exclude_patterns = ["_build", "book/[0-9]*", "notebooks"]


def setup(app):
    from attnlab.workshop import plans
    plans.setup(app)   # only the plans directive: this test does not depend on the other modules
'''


def _build(source: Path, out: Path) -> subprocess.CompletedProcess:
    # In a process of its own, as tests/test_glossary_links.py does: Sphinx registers nodes globally.
    # -W --keep-going as `make book`: every page is written, and any warning fails the build at the end.
    return subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "--keep-going", "-b", "html",
                           str(source), str(out)], capture_output=True, text=True)


def _rendered(page: Path) -> dict[str, list[tuple[str, str]]]:
    """Each plan on a built page: its (clock, minutes) rows, the totals row last."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    return {div["id"].removeprefix("session-plan-"): [tuple(td.get_text(" ", strip=True) for td in tr.select("td")[:2])
                                                    for tr in div.select("tbody tr")]
            for div in soup.select("div.attnlab-session-plan")}


def _expected(plan) -> list[tuple[str, str]]:
    """What the table should show: clock and minutes per row (a day's first row names the day), then the total."""
    several = len(plan.days) > 1
    return [(f"Day {day.number} · {row.start}" if several and i == 0 else row.start, str(row.minutes))
            for day in plan.days for i, row in enumerate(day.rows)] + [("Total", str(plan.total))]


def test_the_directive_renders_each_plan_and_rerenders_when_a_chapter_changes(tmp_path):
    source = _copy_course(tmp_path / "source")
    (source / "conf.py").write_text(CONF)
    (source / "index.md").write_text("# Plans\n\n```{toctree}\nbook/teach/plans\n```\n")
    (source / "book" / "teach" / "plans.md").write_text(
        "# The plans\n\n" + "".join(f"## {name}\n\n```{{session-plan}} {name}\n```\n\n" for name in NAMES))
    page = tmp_path / "html" / "book" / "teach" / "plans.html"

    assert _build(source, tmp_path / "html").returncode == 0
    rendered = _rendered(page)
    assert list(rendered) == NAMES
    for name in NAMES:
        assert rendered[name] == _expected(schedule(name, FACTS, ROOT)), name
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    intro = soup.select_one("#session-plan-intro-90")
    hrefs = [a["href"] for a in intro.select("td a")]
    assert "../04-attention-from-scratch.html#step-2-from-scores-to-weights-why-softmax" in hrefs
    assert "../../notebooks/04-attention-from-scratch-lab.html" in hrefs
    assert intro.select_one("tr.attnlab-plan-total") and "check_softmax" in intro.get_text()
    assert plans.totals_line(schedule("intro-90", FACTS, ROOT)) in intro.get_text(" ", strip=True)
    # The breakdown is said once, in the totals line: the totals row holds only the minutes.
    total = intro.select_one("tr.attnlab-plan-total").get_text(" ", strip=True)
    assert total == f"Total {schedule('intro-90', FACTS, ROOT).total}"

    # An author shortens chapter 4's Time line and changes nothing else: the next (incremental) build
    # re-renders the plans. (Lengthening it would overrun the 90-minute plan: a warning, a failed build.)
    _retime(source, 30, 20)
    assert _build(source, tmp_path / "html").returncode == 0
    moved = chapter_facts(source)
    rendered = _rendered(page)
    for name in NAMES:
        assert rendered[name] == _expected(schedule(name, moved, source)), name
    assert rendered["intro-90"][-1] != _expected(schedule("intro-90", FACTS, ROOT))[-1]

    # An author renames a heading a plan names: the build fails, saying which plan and block; once the
    # heading is back, the next incremental build shows the plans again (the page was not left stale).
    chapter = source / "book" / "04-attention-from-scratch.md"
    text = chapter.read_text(encoding="utf-8")
    chapter.write_text(text.replace("\n## Step 2:", "\n## Stage 2:", 1), encoding="utf-8")
    build = _build(source, tmp_path / "html")
    assert build.returncode != 0
    assert re.search(r"plans\.md:\d+: ERROR: book/teach/plans\.yml: plan 'intro-90', day 1, block \d+ \(chapter 4\): "
                     r"no section starts with 'Step 2'; the sections of book/04-attention-from-scratch\.md are: ",
                     build.stderr), build.stderr
    chapter.write_text(text, encoding="utf-8")
    assert _build(source, tmp_path / "html").returncode == 0
    rendered = _rendered(page)
    for name in NAMES:
        assert rendered[name] == _expected(schedule(name, moved, source)), name


# ---- the built book ---------------------------------------------------------------------------------------

@pytest.mark.site
def test_the_built_page_shows_the_three_plans_with_working_links(site):
    page = site / "book" / "teach" / "session-plans.html"
    rendered = _rendered(page)
    assert list(rendered) == NAMES
    for name in NAMES:
        assert rendered[name] == _expected(schedule(name, FACTS, ROOT)), name
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    ids = functools.cache(lambda built: set(re.findall(r'\bid="([^"]+)"', built.read_text(encoding="utf-8"))))
    for link in soup.select("div.attnlab-session-plan td a"):
        target, _, anchor = link["href"].partition("#")
        built = (page.parent / target).resolve()
        assert built.is_file(), link["href"]
        assert not anchor or anchor in ids(built), link["href"]


def test_plans_yml_is_the_only_place_plans_are_written():
    """The page holds no timings of its own: each plan appears once, as a directive."""
    page = (ROOT / "book" / "teach" / "session-plans.md").read_text(encoding="utf-8")
    assert re.findall(r"```\{session-plan\} (\S+)", page) == NAMES
    assert yaml.safe_load((ROOT / plans.PLANS_FILE).read_text(encoding="utf-8")).keys() == set(NAMES)
