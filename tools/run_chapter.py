"""Run one MyST chapter's code cells on a fresh kernel, as the book build would, and report.

    .venv/bin/python tools/run_chapter.py book/05-multi-head-attention.md [--show]

Prints each cell's run time (and, with --show, its text output); exits 1 at the first error.
It is the quick loop while writing a chapter: seconds, instead of a whole book build.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from myst_nb.core.read import read_myst_markdown_notebook
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from attnlab import render


def _text(outputs: list) -> str:
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            data = output["data"]
            parts.append("[html/figure]\n" if "text/html" in data else str(data.get("text/plain", "")) + "\n")
        elif output.get("output_type") == "error":
            parts.append("\n".join(output.get("traceback", [])))
    return "".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter", type=Path)
    parser.add_argument("--show", action="store_true", help="print each cell's text output")
    args = parser.parse_args()
    notebook = read_myst_markdown_notebook(args.chapter.read_text(encoding="utf-8"))
    env = {**os.environ, render.BOOK_BUILD_ENV: "1"}
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(args.chapter.parent)}})
    total = time.perf_counter()
    with client.setup_kernel(env=env):
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            start = time.perf_counter()
            try:
                client.execute_cell(cell, index)
            except CellExecutionError:
                print(f"cell {index}: ERROR\n{cell.source}\n{_text(cell.outputs)}")
                return 1
            first_line = cell.source.strip().splitlines()[0][:70] if cell.source.strip() else ""
            print(f"cell {index:>3}: {time.perf_counter() - start:6.2f} s  {first_line}")
            if args.show:
                print(_text(cell.outputs))
    print(f"total: {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
