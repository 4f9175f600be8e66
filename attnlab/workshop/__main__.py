"""After the Sphinx build: `python -m attnlab.workshop _build/html` writes the workshop kit into the site.

Student and instructor notebooks, one slide deck per chapter, and the printable PDFs, all made from the
labs and the pages just built (so they can never disagree with the book).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from attnlab.errors import AttnlabError
from attnlab.workshop import notebooks, printing, slides

try:  # a page that never loads, or a Chrome that Playwright cannot drive
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover - playwright is a dependency of the book build
    PlaywrightError = AttnlabError


def main(argv: list[str] | None = None) -> None:
    """Write notebooks, slides and PDFs into the built site."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, nargs="?", default=Path("_build/html"))
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (its notebooks/ are the labs)")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        raise SystemExit(f"{args.site} holds no built book: run `make book` (or jupyter-book build .) first")
    steps = [
        ("notebooks", lambda: notebooks.write_notebooks(args.root, args.site)),
        ("slide decks", lambda: slides.build_decks(args.site, args.root)),
        ("PDFs", lambda: printing.print_pdfs(args.site)),
    ]
    for name, step in steps:
        start = time.perf_counter()
        try:
            written = step()
        except (AttnlabError, PlaywrightError, ValueError) as error:
            # ValueError: SlidesError, and chapter_facts' message naming the chapter file to fix.
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SystemExit(f"workshop kit, {name}: {first}") from None
        print(f"workshop kit: {len(written)} {name} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
