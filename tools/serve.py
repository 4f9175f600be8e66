"""Serve the built book to a room: compressed files, from this machine, no internet needed.

Usage: .venv/bin/python tools/serve.py [--host 0.0.0.0] [--port 8000] [SITE]
       (`make serve` runs it for this machine, `make room` for the room: it prints the addresses learners type)

A page of the book is 3-6 MB as files but about a fifth of that compressed. Over a weak
room network that is the difference between a page in one second and a page in ten. So
every text file of the site is compressed once, ahead of time (brotli and gzip, by
WhiteNoise's own compressor), and WhiteNoise serves each reader the smallest copy their
browser accepts, with the right ``Content-Encoding`` and ``Vary`` headers. waitress is the
web server: multi-threaded, pure Python, fine for a room of forty laptops.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from whitenoise import WhiteNoise
from whitenoise.compress import Compressor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.room_server import listen, room_message  # noqa: E402  (the bundle's server: addresses, messages)

SITE = ROOT / "_build" / "html"
COMPRESSED = (".gz", ".br")
# The in-browser models' weights (float16) shrink by 8 % under gzip, after minutes of brotli: sent as they are.
NOT_WORTH_COMPRESSING = (".onnx",)


def _stale(source: Path) -> bool:
    """True when a compressible file has no compressed copy newer than itself."""
    copies = [source.with_name(source.name + suffix) for suffix in COMPRESSED]
    return not all(copy.is_file() and copy.stat().st_mtime >= source.stat().st_mtime for copy in copies)


def compress_site(site: Path) -> int:
    """Write .br and .gz copies of every compressible file that changed since the last run; return how many."""
    compressor = Compressor(quiet=True)
    todo = [path for path in site.rglob("*") if path.is_file() and path.suffix not in COMPRESSED + NOT_WORTH_COMPRESSING
            and compressor.should_compress(path.name) and _stale(path)]
    for path in todo:
        compressor.compress(str(path))  # writes path.br and path.gz where they save at least 5 %
    return len(todo)


def _not_found(environ: dict, start_response: Callable) -> Iterator[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
    yield b"Not found: this page is not part of the book. Start at /"


def book_app(site: Path) -> WhiteNoise:
    """A WSGI app serving ``site`` with compressed copies, index.html for folders, short caching."""
    # max_age 60: a reader reloading after the instructor rebuilt the book gets the new pages.
    return WhiteNoise(_not_found, root=str(site), index_file=True, max_age=60)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", type=Path, default=SITE, help="the built site (default: _build/html)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 lets other machines in the room connect")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        sys.exit(f"Nothing built in {args.site}: run `make book` first.")
    import waitress

    # bound before the (maybe long) compression, so that a port in use is said at once
    server = listen(lambda: waitress.create_server(book_app(args.site), host=args.host, port=args.port, threads=8,
                                                   ident="attnlab"), args.host, args.port)
    changed = compress_site(args.site)
    print(f"Compressed {changed} changed files (brotli and gzip) in {args.site}.")
    print(room_message(args.host, args.port), flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        print("Stopped.")


if __name__ == "__main__":
    main()
