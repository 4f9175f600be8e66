"""Every numbered chapter keeps the shared skeleton, so instructors always know where they are."""

import re

import pytest

from tests.conftest import ROOT

CHAPTERS = sorted(p for p in (ROOT / "book").glob("[0-9][0-9]-*.md") if not p.name.startswith("00-"))


def test_the_foundation_chapters_exist():
    assert [p.stem for p in CHAPTERS][:4] == ["01-why-transformers", "02-text-to-vectors",
                                             "03-positional-encoding", "04-attention-from-scratch"]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_follows_the_skeleton(path):
    text = path.read_text(encoding="utf-8")
    for marker in ("**Learning objectives.**", "**Time:**", "**You need:**", "\n## Analogy", "\n## Explore",
                   "\n## Practice", "\n## Summary", "\n## References", "```{bibliography}"):
        assert marker in text, f"{path.name} lacks {marker.strip()}"
    order = [text.index(m) for m in ("\n## Analogy", "\n## Explore", "\n## Practice", "\n## Summary", "\n## References")]
    assert order == sorted(order), f"{path.name}: the sections are out of order"
    assert "$$" in text and "```{code-cell}" in text  # math, and code that runs at build time
    exercises = re.findall(r"````\{exercise\}", text)
    solutions = re.findall(r"````\{solution\}[^\n]*\n:class: dropdown", text)
    assert len(exercises) >= 3 and len(solutions) == len(exercises), "each exercise has a folded solution"
    assert "Predict, then check" in text
    lab = path.stem + "-lab"
    assert f"<{lab}>`" in text and (ROOT / "notebooks" / f"{lab}.ipynb").is_file()
    assert re.search(r"\{cite:[pt]\}`ch\d+-", text), "cites its sources with the chapter's key prefix"
