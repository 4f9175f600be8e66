"""The in-browser model (attnlab-browser-model.js): the site's own ONNX file and runtime, PyTorch's maps."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.extraction import attend
from attnlab.sphinxext import BROWSER_MODELS, ORT_FILES
from tests.test_onnx_export import TEXTS, TOLERANCE

PLAYGROUND = "book/explorer-playground.html"
ATTENTION = """async ([name, ids]) => {
  const out = await window.attnlabBrowserModel.attention(name, ids);
  return {layers: out.layers, heads: out.heads, tokens: out.tokens, weights: Array.from(out.weights)}; }"""
FAILURE = """async ([name, ids]) => {
  try { await window.attnlabBrowserModel.attention(name, ids); return null; } catch (e) { return e.message; } }"""

pytestmark = [pytest.mark.site, pytest.mark.browser]


def test_the_site_serves_the_models_and_the_runtime(site):
    for name in BROWSER_MODELS:
        assert (site / "_static" / "models" / f"{name}.onnx").stat().st_size > 10_000_000
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
        maps = np.array(out["weights"], dtype=np.float32).reshape(out["layers"], out["heads"], out["tokens"], out["tokens"])
        assert maps.shape == record.attentions.shape
        assert np.allclose(maps.sum(-1), 1, atol=1e-4)
        worst = max(worst, float(np.abs(maps - record.attentions).max()))
    print(f"MiniLM in Chromium (onnxruntime-web, wasm): max |browser - PyTorch| {worst:.5f}")
    assert worst <= TOLERANCE
    assert sum("models/minilm.onnx" in url for url in page_visit.requested) == 1  # fetched once, then kept
    page_visit.assert_clean()


def test_bad_calls_get_a_clear_message(visit):
    page_visit = visit(PLAYGROUND)
    page = page_visit.page
    page.wait_for_function("() => window.attnlabBrowserModel !== undefined")
    assert "no in-browser model called" in page.evaluate(FAILURE, ["gpt-5", [101, 102]])
    assert "at least one token" in page.evaluate(FAILURE, ["minilm", []])
    assert "more than minilm's 512" in page.evaluate(FAILURE, ["minilm", [101] * 600])
    page_visit.assert_clean()
