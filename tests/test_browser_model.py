"""The in-browser model (attnlab-browser-model.js): the site's own ONNX file and runtime, PyTorch's maps."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.extraction import attend
from attnlab.sphinxext import BROWSER_MODELS, ORT_FILES, TOKENIZER_FILES
from tests.test_onnx_export import TEXTS, TOLERANCE

PLAYGROUND = "book/explorer-playground.html"
ATTENTION = """async ([name, ids]) => {
  const out = await window.attnlabBrowserModel.attention(name, ids);
  return {layers: out.layers, heads: out.heads, length: out.length, weights: Array.from(out.weights)}; }"""
ATTEND = """async ([name, text]) => {
  const out = await window.attnlabBrowserModel.attend(name, text);
  return {tokens: out.tokens, ids: out.ids, truncated: out.truncated, layers: out.layers, heads: out.heads,
          length: out.length, weights: Array.from(out.weights)}; }"""
ENCODE = "async ([name, text]) => await window.attnlabBrowserModel.encode(name, text)"
# Beyond TEXTS: right-to-left and mixed scripts, combining accents, a word longer than WordPiece reads, spaces.
MORE_TEXTS = ["مرحبا بالعالم and שלום", "日本語のテキスト mixed with English", "e\u0301te\u0301 déjà vu",
              "x" * 120 + " end", "  spaced\tout\nlines  "]
FAILURE = """async ([name, ids]) => {
  try { await window.attnlabBrowserModel.attention(name, ids); return null; } catch (e) { return e.message; } }"""

pytestmark = [pytest.mark.site, pytest.mark.browser]


def test_the_site_serves_the_models_and_the_runtime(site):
    for name in BROWSER_MODELS:
        folder = site / "_static" / "models" / name
        assert (folder / "model.onnx").stat().st_size > 10_000_000
        assert all((folder / file).stat().st_size > 100 for file in TOKENIZER_FILES)
    assert (site / "_static" / "vendor" / "tokenizers.min.mjs").stat().st_size > 10_000
    for name in ORT_FILES:
        assert (site / "_static" / "vendor" / "ort" / name).stat().st_size > 10_000


def test_minilm_in_the_browser_gives_pytorchs_attention(visit):
    page_visit = visit(PLAYGROUND)
    page = page_visit.page
    page.wait_for_function("() => window.attnlabBrowserModel !== undefined")
    assert not any("models/" in url or "/ort/" in url for url in page_visit.requested)  # nothing before first use
    worst = 0.0
    for text in TEXTS:
        record = attend(text, "minilm")
        out = page.evaluate(ATTENTION, ["minilm", list(record.ids)])
        maps = np.array(out["weights"], dtype=np.float32).reshape(out["layers"], out["heads"], out["length"], out["length"])
        assert maps.shape == record.attentions.shape
        assert np.allclose(maps.sum(-1), 1, atol=1e-4)
        worst = max(worst, float(np.abs(maps - record.attentions).max()))
    print(f"MiniLM in Chromium (onnxruntime-web, wasm): max |browser - PyTorch| {worst:.5f}")
    assert worst <= TOLERANCE
    assert sum("models/minilm/model.onnx" in url for url in page_visit.requested) == 1  # fetched once, then kept
    page_visit.assert_clean()


def test_bad_calls_get_a_clear_message(visit):
    page_visit = visit(PLAYGROUND)
    page = page_visit.page
    page.wait_for_function("() => window.attnlabBrowserModel !== undefined")
    assert "no in-browser model called" in page.evaluate(FAILURE, ["gpt-5", [101, 102]])
    assert "at least one token" in page.evaluate(FAILURE, ["minilm", []])
    assert "more than minilm's 512" in page.evaluate(FAILURE, ["minilm", [101] * 600])
    empty = """async (text) => { try { await window.attnlabBrowserModel.attend("minilm", text); return null; }
                                 catch (e) { return e.message; } }"""
    assert "empty" in page.evaluate(empty, "   ")
    page_visit.assert_clean()


def test_the_browser_tokenizes_like_python_and_attends_to_typed_text(visit):
    from attnlab.models import load

    lm = load("minilm", device="cpu")
    page_visit = visit(PLAYGROUND)
    page = page_visit.page
    page.wait_for_function("() => window.attnlabBrowserModel !== undefined")
    for text in TEXTS + MORE_TEXTS:
        record = attend(text, lm)
        got = page.evaluate(ENCODE, ["minilm", text])
        assert got["ids"] == list(record.ids), text
        assert got["tokens"] == list(record.tokens), text
        assert got["truncated"] is False
    out = page.evaluate(ATTEND, ["minilm", TEXTS[1]])  # typed text → tokens and maps in one call
    record = attend(TEXTS[1], lm)
    maps = np.array(out["weights"], dtype=np.float32).reshape(out["layers"], out["heads"], out["length"], out["length"])
    assert out["tokens"] == list(record.tokens) and np.abs(maps - record.attentions).max() <= TOLERANCE
    long = page.evaluate(ENCODE, ["minilm", "word " * 10_000])  # 10,000 words: cut to the model's 512 positions
    assert long["truncated"] is True and len(long["ids"]) == 512
    assert long["ids"] == list(attend("word " * 10_000, lm).ids)  # as the Python side cuts it
    page_visit.assert_clean()


def test_a_typed_sentence_joins_the_playground_with_the_models_own_maps(visit):
    page_visit = visit(PLAYGROUND)
    page = page_visit.page
    page.wait_for_selector(".attnlab-explorer-plot .heatmaplayer", state="attached", timeout=15_000)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    box = page.locator('input[data-control="typed"]')
    for text in ("first draft", "second draft"):  # typed in quick succession: only the last one is added
        box.fill(text)
        box.press("Enter")
    evil = '<script>alert("x")</script> <img src=x onerror=alert(1)> 🤖 naïve'
    box.fill(evil)
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('select[data-control=\"sentence\"]').selectedOptions[0]"
                           ".textContent.startsWith('Yours: <script>')", timeout=60_000)
    names = page.eval_on_selector_all('select[data-control="sentence"] option', "os => os.map(o => o.textContent)")
    assert sum(name.startswith("Yours:") for name in names) == 1  # the two drafts were overtaken, not piled up
    page.select_option('select[data-control="layer"]', "3")
    page.select_option('select[data-control="head"]', "5")
    drawn = page.evaluate("""() => { const gd = document.querySelector('.attnlab-explorer-plot');
      return {z: gd._fullData[0].z.map(r => Array.from(r)),
              keys: Array.from(document.querySelectorAll('.attnlab-explorer-keys span'), e => e.textContent)}; }""")
    record = attend(evil, "minilm")
    assert drawn["keys"] == list(record.tokens)  # shown as text: the markup is not run
    assert np.abs(np.array(drawn["z"]) - record.attentions[3, 5]).max() <= TOLERANCE
    assert "computed in this browser" in page.text_content(".attnlab-explorer-typing-note")
    assert dialogs == [] and page.locator("img[src=x]").count() == 0
    page_visit.screenshot("explorer-playground-typed.png")
    page_visit.assert_clean()
