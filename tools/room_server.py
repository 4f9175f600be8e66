"""Serve the attnlab book to a room from this laptop, with nothing installed but Python 3.8+.

Usage: python serve.py [--port 8000] [--host 0.0.0.0] [SITE]     (in the offline bundle; SITE defaults to ./site)
       python serve.py --verify                                  (checks every file against SHA256SUMS)

The site ships with a brotli (.br) and a gzip (.gz) copy of every text file, made by `make bundle`.
This server sends each browser the smallest copy it accepts, with the ``Content-Encoding`` and
``Vary`` headers that make that safe, and the right type for the in-browser models' files
(``.wasm`` as application/wasm, ``.onnx`` as bytes). It only reads: nothing is compressed here.
In the repository it is tools/room_server.py; `make bundle` copies it into the bundle as serve.py.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import http.server
import mimetypes
import os
import socket
import sys
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote, urlsplit

HERE = Path(__file__).resolve().parent
T = TypeVar("T")
# Types fixed here, not read from the operating system: Windows' registry maps .js to text/plain on some machines.
TYPES = {
    ".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
    ".wasm": "application/wasm", ".onnx": "application/octet-stream", ".ipynb": "application/x-ipynb+json",
    ".txt": "text/plain; charset=utf-8", ".woff2": "font/woff2", ".woff": "font/woff", ".png": "image/png",
    ".pdf": "application/pdf", ".xml": "application/xml", ".inv": "application/octet-stream",
}
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))  # best first
MAX_AGE = 60  # a learner reloading after the instructor rebuilt the book gets the new pages


def content_type(path: Path) -> str:
    """The Content-Type of a file of the site."""
    return TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def accepted(header: str) -> set[str]:
    """The encodings an Accept-Encoding header allows (q=0 refuses one)."""
    allowed = set()
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        params = params.strip()
        quality = params[2:] if params.startswith("q=") else "1"
        try:
            if name.strip() and float(quality) > 0:
                allowed.add(name.strip().lower())
        except ValueError:
            continue
    return allowed


class RoomHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the site's files, precompressed copies first; nothing else."""

    protocol_version = "HTTP/1.1"  # keep-alive: a browser reuses its six connections for a page's files
    server_version = "attnlab"
    site: Path = HERE / "site"
    verbose = False

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self._send(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(body=False)

    def _file(self) -> tuple[Path | None, bool]:
        """(the file the request names inside the site or None, whether it is a folder asked without its /)."""
        asked = unquote(urlsplit(self.path).path)
        try:  # /%00 (ValueError) or a name longer than the file system allows (OSError) is no file of the site
            target = (self.site / asked.lstrip("/")).resolve()
            if target != self.site and self.site not in target.parents:
                return None, False  # ../ never leaves the site
            if target.is_dir():
                index = target / "index.html"
                return (index if index.is_file() else None), not asked.endswith("/")
            return (target if target.is_file() else None), False
        except (OSError, ValueError):
            return None, False

    def _send(self, body: bool) -> None:
        path, folder = self._file()
        if path is None:
            return self._reply(404, "text/plain; charset=utf-8", b"Not found: this page is not part of the book. "
                               b"Start at /\n", body)
        if folder:  # /book -> /book/, so that the page's relative links resolve as on any web server
            self.send_response(301)
            self.send_header("Location", quote(unquote(urlsplit(self.path).path)) + "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        sent, encoding = path, None
        allowed = accepted(self.headers.get("Accept-Encoding", ""))
        for name, suffix in ENCODINGS:
            copy = path.with_name(path.name + suffix)
            if name in allowed and copy.is_file():
                sent, encoding = copy, name
                break
        stat = sent.stat()
        since = self.headers.get("If-Modified-Since")
        try:
            if since and int(stat.st_mtime) <= parsedate_to_datetime(since).timestamp():
                self.send_response(304)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        except (TypeError, ValueError):
            pass
        self.send_response(200)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Content-Length", str(stat.st_size))
        self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
        self.send_header("Cache-Control", f"max-age={MAX_AGE}, public")
        if any(path.with_name(path.name + suffix).is_file() for _, suffix in ENCODINGS):
            self.send_header("Vary", "Accept-Encoding")
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.end_headers()
        if body:
            with sent.open("rb") as file:
                self.copyfile(file)
        return None

    def copyfile(self, file) -> None:
        """Send the file in large blocks (the models are tens of MB)."""
        for block in iter(lambda: file.read(1 << 18), b""):
            self.wfile.write(block)

    def _reply(self, status: int, kind: str, text: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if body:
            self.wfile.write(text)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        if self.verbose:
            super().log_message(format, *args)


class RoomServer(http.server.ThreadingHTTPServer):
    """One thread per connection; a deep listen queue, since thirty browsers open six connections each at once."""

    daemon_threads = True
    allow_reuse_address = os.name != "nt"  # on Windows it would let a second server take a port in use
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        """A learner who left mid-download is normal: say nothing; anything else in one line, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):  # reset, broken pipe, aborted, timed out
            return
        print(f"{client_address[0]}: request failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)


def make_server(site: Path, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False) -> RoomServer:
    """A server for ``site`` bound to host:port (port 0: any free one); serve_forever() starts it."""
    handler = type("Handler", (RoomHandler,), {"site": site.resolve(), "verbose": verbose})
    return RoomServer((host, port), handler)


def lan_addresses() -> list[tuple[str, str]]:
    """(IPv4 address, where it was found) of this machine other than loopback, without sending a packet."""
    found: dict[str, str] = {}
    if sys.platform.startswith("linux"):  # every interface's address, with its name (wlan0, eth0, docker0)
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _, name in socket.if_nameindex():
                try:
                    packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
                except OSError:
                    continue  # an interface without an IPv4 address
                found.setdefault(socket.inet_ntoa(packed[20:24]), name)
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.setdefault(info[4][0], "host name")
    except OSError:
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:  # connecting a UDP socket picks the outgoing interface; no packet leaves the machine
            probe.connect(("10.255.255.255", 9))
            found.setdefault(probe.getsockname()[0], "default route")
        except OSError:
            pass
    return [(ip, where) for ip, where in found.items() if not ip.startswith(("127.", "0."))]


def room_message(host: str, port: int) -> str:
    """What to tell the room: the addresses learners type, or how to let them in."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return (f"Serving the book at http://127.0.0.1:{port}/ for this machine only (Ctrl-C stops).\n"
                "To let the room connect, listen on every interface: --host 0.0.0.0 (make room).")
    addresses = lan_addresses() if host in ("0.0.0.0", "", "::") else [(host, "chosen")]
    lines = [f"Serving the book on port {port} (Ctrl-C stops). Learners type one of these into their browser:"]
    lines += [f"    http://{ip}:{port}/    ({where})" for ip, where in addresses]
    if not addresses:
        lines.append("    (no network address found: is this machine connected to the room's Wi-Fi?)")
    lines.append("Pick the address on the room's network (Wi-Fi: usually wlan0, en0 or wl...; 'docker0' is not it).")
    lines.append("If a learner cannot connect, this machine's firewall may block the port: allow Python on it.")
    return "\n".join(lines)


def bind_error(error: OSError, host: str, port: int) -> str:
    """A friendly sentence for a server that could not start listening."""
    if error.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
        return (f"Port {port} is already in use (another `make serve`/`make room`, or another program). "
                f"Stop it, or pick another port: --port {port + 1} (make room PORT={port + 1}).")
    if error.errno in (errno.EACCES, getattr(errno, "WSAEACCES", -1)):
        return f"Port {port} needs administrator rights on this machine: pick one above 1023, e.g. --port 8000."
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine: use --host 0.0.0.0 (every interface)."
    return f"Could not listen on {host}:{port}: {error}"


def listen(create: Callable[[], T], host: str, port: int) -> T:
    """``create()`` the server, or stop with a sentence saying why it cannot listen on host:port."""
    try:
        return create()
    except OSError as error:
        sys.exit(bind_error(error, host, port))


def verify(folder: Path = HERE) -> list[str]:
    """Files of the bundle whose SHA-256 differs from SHA256SUMS, or that are missing."""
    bad = []
    for line in (folder / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        path = folder / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            bad.append(name)
    return bad


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", type=Path, default=HERE / "site", help="the site (default: ./site)")
    parser.add_argument("--host", default="0.0.0.0", help="0.0.0.0 (default): every learner in the room can connect")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log", action="store_true", help="print every request")
    parser.add_argument("--verify", action="store_true", help="check the bundle against SHA256SUMS and stop")
    args = parser.parse_args(argv)
    if args.verify:
        if not (HERE / "SHA256SUMS").is_file():
            sys.exit(f"No SHA256SUMS next to {Path(__file__).name}: --verify checks a bundle made by `make bundle`.")
        bad = verify()
        if bad:
            sys.exit(f"{len(bad)} files differ from SHA256SUMS or are missing, e.g. {bad[:3]}: copy the bundle again.")
        print("Every file matches SHA256SUMS.")
        return
    if not (args.site / "index.html").is_file():
        sys.exit(f"No book in {args.site}: in the repository run `make book` first; "
                 "in the bundle, run serve.py from the attnlab-room folder.")
    server = listen(lambda: make_server(args.site, args.host, args.port, args.log), args.host, args.port)
    print(room_message(args.host, args.port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.")


if __name__ == "__main__":
    main()
