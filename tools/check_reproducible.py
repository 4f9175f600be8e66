"""Build the book twice from scratch and check that every figure holds the same data both times.

Usage: .venv/bin/python tools/check_reproducible.py [--keep DIR]   (after `make book` has set up .venv)

Every random choice in the chapters and labs is seeded, so two clean builds must draw the same
figures. The exceptions are figures of measured time, which differ from run to run by nature:
they are named in MEASURED (by a phrase of their title) and compared only in their shape (same
traces, same x values). Exits 1 and lists the differences if any other figure differs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_site import toc_pages  # noqa: E402

#: Titles of figures whose values are timings measured during the build.
MEASURED = ("Measured on this machine",)
_NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"[^"]+",\s*')
_EXPLORER = re.compile(r'<script type="application/json" class="attnlab-explorer-data">(.*?)</script>', re.S)


def figures(page: str) -> list[dict]:
    """The (data, layout) of every Plotly figure on a built page, in page order."""
    decoder = json.JSONDecoder()
    found = []
    for match in _NEW_PLOT.finditer(page):
        data, end = decoder.raw_decode(page, match.end())
        layout, _ = decoder.raw_decode(page, page.index("{", end))
        found.append({"data": data, "layout": layout})
    found += [{"explorer": json.loads(payload)} for payload in _EXPLORER.findall(page)]
    return found


def _title(figure: dict) -> str:
    title = figure.get("layout", {}).get("title", {})
    return title.get("text", "") if isinstance(title, dict) else str(title)


def _shape(figure: dict) -> list:
    return [(trace.get("type"), trace.get("name"), json.dumps(trace.get("x"))) for trace in figure["data"]]


def build(output: Path) -> Path:
    """A clean build of the book into ``output``; returns its html folder."""
    subprocess.run([str(ROOT / ".venv" / "bin" / "jupyter-book"), "build", str(ROOT), "--path-output", str(output),
                    "--warningiserror", "--keep-going", "--quiet"], check=True, cwd=ROOT)
    return output / "_build" / "html"


def differences(first: Path, second: Path) -> list[str]:
    """Pages and figures whose data differ between two builds."""
    found = []
    for name in toc_pages():
        a = figures((first / f"{name}.html").read_text(encoding="utf-8"))
        b = figures((second / f"{name}.html").read_text(encoding="utf-8"))
        if len(a) != len(b):
            found.append(f"{name}: {len(a)} figures, then {len(b)}")
            continue
        for index, (one, two) in enumerate(zip(a, b)):
            if any(phrase in _title(one) for phrase in MEASURED):
                same = _shape(one) == _shape(two)
            else:
                same = json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
            if not same:
                found.append(f"{name}: figure {index + 1} ({_title(one)[:60] or 'explorer'}) differs")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build into this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        where = args.keep or Path(scratch)
        first, second = build(where / "first"), build(where / "second")
        found = differences(first, second)
        total = sum(len(figures((first / f"{name}.html").read_text(encoding="utf-8"))) for name in toc_pages())
    if found:
        print("Figures that differ between two clean builds:\n  " + "\n  ".join(found))
        sys.exit(1)
    print(f"Two clean builds: all {total} figures on {len(toc_pages())} pages hold the same data "
          f"(timings compared by shape only).")


if __name__ == "__main__":
    main()
