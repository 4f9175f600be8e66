"""`make serve`: the book served to a room compressed, with the headers browsers need."""

import gzip
import threading
import urllib.request

import brotli
import pytest

from tests.conftest import ROOT
from tools.serve import book_app, compress_site

PAGE = "<html><body>" + "<p>attention is all you need</p>" * 400 + "</body></html>"


@pytest.fixture
def served(tmp_path):
    """A two-page site, compressed and served by waitress on a free loopback port."""
    import waitress

    (tmp_path / "index.html").write_text(PAGE)
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "ch1.html").write_text(PAGE.replace("attention", "recurrence"))
    (tmp_path / "logo.png").write_bytes(b"\x89PNG" + bytes(2000))
    (tmp_path / "model.onnx").write_bytes(bytes(2000))
    assert compress_site(tmp_path) == 2  # the two pages; a PNG is already compressed, model weights barely compress
    assert compress_site(tmp_path) == 0  # nothing changed: nothing compressed again
    server = waitress.create_server(book_app(tmp_path), host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"

    def stop() -> None:  # run inside the server's own loop, so that no poll meets a closed socket
        server.task_dispatcher.shutdown()
        for channel in list(server._map.values()):
            channel.close()

    server.trigger.pull_trigger(stop)
    thread.join(5)


def get(url: str, encoding: str | None):
    request = urllib.request.Request(url, headers={"Accept-Encoding": encoding} if encoding else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers, response.read()


@pytest.mark.parametrize("accept, encoding, decode", [
    ("br, gzip", "br", brotli.decompress),
    ("gzip", "gzip", gzip.decompress),
    (None, None, lambda body: body),
])
def test_pages_are_sent_compressed_when_the_browser_accepts_it(served, accept, encoding, decode):
    headers, body = get(f"{served}/book/ch1.html", accept)
    assert headers.get("Content-Encoding") == encoding
    assert "Accept-Encoding" in headers.get("Vary", "")
    assert headers.get_content_type() == "text/html"
    assert decode(body).decode() == PAGE.replace("attention", "recurrence")
    if encoding:
        assert len(body) < len(PAGE) / 10


def test_the_front_page_and_a_missing_page(served):
    headers, body = get(f"{served}/", "gzip")
    assert gzip.decompress(body).decode() == PAGE
    with pytest.raises(urllib.error.HTTPError) as missing:
        get(f"{served}/nope.html", None)
    assert missing.value.code == 404


def test_make_serve_uses_the_compressing_server():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    serve_rule = makefile.split("\nserve:", 1)[1].split("\n\n", 1)[0]
    assert "tools/serve.py" in serve_rule and "http.server" not in serve_rule
