"""Find the Chromium that prints the PDFs and runs the browser tests, and the flags it is launched with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from attnlab.errors import AttnlabError

#: Headless and quiet: no sandbox (containers lack user namespaces), no GPU, nothing fetched from the network.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]

#: Tried in order after $CHROMIUM: Debian's package, then whatever browser of the family is on PATH.
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


class ChromiumNotFound(AttnlabError, FileNotFoundError):
    """$CHROMIUM names a browser that is not there."""


def find_chromium() -> str | None:
    """The path of a Chromium to drive with Playwright ($CHROMIUM first), or None when there is none.

    A $CHROMIUM that is not a file raises ChromiumNotFound: whoever set it meant that browser, and trying
    another one instead would hide the mistake (or, in CI, skip the PDFs without a word).
    """
    # Playwright's own browser download needs the network, so a system browser is used instead.
    chosen = os.environ.get("CHROMIUM")
    if chosen:
        path = chosen if os.sep in chosen else shutil.which(chosen)
        if not path or not Path(path).is_file():
            raise ChromiumNotFound(f"CHROMIUM={chosen} does not exist: point CHROMIUM at a Chromium or Chrome "
                                   "executable, or unset it to use the first of " + ", ".join(CANDIDATES))
        return path
    for candidate in CANDIDATES:
        path = candidate if os.sep in candidate else shutil.which(candidate)
        if path and Path(path).is_file():
            return path
    return None
