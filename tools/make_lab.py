"""Write a lab notebook from a short Python description (used to author the labs; not needed to run them).

A lab script calls ``lab(path, cells)`` where each cell is ``md(text)``, ``code(text, *tags)``,
``exercise(text)`` (a code cell the learner completes) or ``solution(code)`` (a folded
Markdown cell holding the solution of the exercise above it). The badge and setup cells are
added here, empty, and filled by ``python -m attnlab.labs sync``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat


def md(text: str, *tags: str):
    cell = nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def code(text: str, *tags: str):
    cell = nbformat.v4.new_code_cell(textwrap.dedent(text).strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def exercise(text: str):
    return code(text, "exercise")


def check(text: str):
    return code(text, "check")


def solution(text: str):
    body = textwrap.dedent(text).strip()
    return md(f"<details><summary>Show a solution</summary>\n\n```python\n{body}\n```\n\n</details>", "solution")


def lab(path: str, cells: list) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["colab"] = {"provenance": []}
    nb.cells = [md("badge", "attnlab-badge"), cells[0], code("setup", "attnlab-setup"), *cells[1:]]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    nbformat.write(nb, Path(path))
