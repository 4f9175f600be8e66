"""The static explorer: data in the page, redrawn in the browser with no kernel and no CDN."""

import base64
import gzip
import json
import re

import numpy as np
import pytest

from attnlab import render
from attnlab.extraction import attend
from attnlab.static_explorer import EXAMPLES, StaticExplorer, explorer_payload, quantize
from tests.conftest import SITE

PLAYGROUND = "book/explorer-playground.html"
EVIL = "<script>alert('x')</script> <img src=x onerror=alert(1)> hello"
READ = """() => { const gd = document.querySelector('.attnlab-explorer-plot');
  return {z: gd._fullData[0].z.map(r => Array.from(r, v => v === null ? null : v)),
          hover: gd.data[0].customdata ? gd.data[0].customdata[1][2] : null,
          keys: Array.from(document.querySelectorAll('.attnlab-explorer-keys span'), e => e.textContent),
          queries: Array.from(document.querySelectorAll('.attnlab-explorer-queries span'), e => e.textContent)}; }"""


def test_quantized_weights_round_trip():
    weights = np.random.default_rng(0).random((2, 3, 4, 4))
    decoded = np.frombuffer(quantize(weights), dtype=np.uint8).reshape(weights.shape) / 255
    assert np.max(np.abs(decoded - weights)) <= 0.5 / 255 + 1e-12


def test_payload_escapes_text_and_survives_a_script_tag(monkeypatch):
    payload = explorer_payload("minilm", {"<b>bold</b>": EVIL})
    assert payload["sentences"][0]["name"] == "&lt;b&gt;bold&lt;/b&gt;"
    assert all("<" not in token for token in payload["sentences"][0]["tokens"])
    monkeypatch.setenv(render.BOOK_BUILD_ENV, "1")
    page = StaticExplorer(payload)._repr_html_()
    assert page.count("<script") == 1 and "</script>" not in page.split("</script>")[0][8:]
    data = re.search(r'<script type="application/json"[^>]*>(.*)</script>', page).group(1)
    assert json.loads(data) == payload


def test_outside_the_book_it_points_to_the_live_explorer(monkeypatch):
    monkeypatch.delenv(render.BOOK_BUILD_ENV, raising=False)
    assert "live explorer" in StaticExplorer({"model": "x"})._repr_html_()


def test_ranges_and_mask_come_from_the_model():
    payload = explorer_payload("minilm", {"one": "A short sentence."})
    assert (payload["layers"], payload["heads"], payload["causal"]) == (6, 12, False)
    tokens = payload["sentences"][0]["tokens"]
    weights = np.frombuffer(base64.b64decode(payload["sentences"][0]["weights"]), dtype=np.uint8)
    assert weights.size == 6 * 12 * len(tokens) ** 2


# ------------------------------------------------------------------ in Chromium

pytestmark_browser = [pytest.mark.site, pytest.mark.browser]


def _expected(sentence: str, layer: int, head: int) -> np.ndarray:
    return np.rint(attend(sentence, "minilm").attentions[layer, head] * 255) / 255


@pytest.mark.site
@pytest.mark.browser
def test_choosing_sentence_layer_and_head_draws_the_right_weights(visit):
    page_visit = visit(PLAYGROUND)
    page = page_visit.page
    page.wait_for_selector(".attnlab-explorer-plot .heatmaplayer", state="attached", timeout=15_000)
    names = list(EXAMPLES)
    for sentence, layer, head in [(0, 0, 0), (1, 0, 2), (1, 4, 11), (3, 5, 7)]:
        page.select_option('select[data-control="sentence"]', str(sentence))
        page.select_option('select[data-control="layer"]', str(layer))
        page.select_option('select[data-control="head"]', str(head))
        drawn = page.evaluate(READ)
        np.testing.assert_allclose(np.array(drawn["z"], dtype=float), _expected(EXAMPLES[names[sentence]], layer, head),
                                   atol=1e-9)
        tokens = list(attend(EXAMPLES[names[sentence]], "minilm").tokens)
        assert drawn["keys"] == tokens and drawn["queries"] == tokens
        assert drawn["hover"] == [tokens[1], tokens[2]]  # hover names the query and the key
    assert page.locator('select[data-control="layer"] option').count() == 6
    assert page.locator('select[data-control="head"] option').count() == 12
    page.locator(".attnlab-explorer-patterns button", has_text="previous token").click()
    assert page.input_value('select[data-control="layer"]') == "0" and page.input_value('select[data-control="head"]') == "2"
    for view in ("1", "2"):  # all heads, head view
        page.select_option('select[data-control="view"]', view)
        page.wait_for_timeout(100)
    # In the head view, pointing at a token highlights its own lines (here: "sat" → "cat").
    page.select_option('select[data-control="sentence"]', "0")
    label = page.locator(".attnlab-explorer-plot .textpoint").nth(3)
    label.scroll_into_view_if_needed()
    box = label.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("() => { const d = document.querySelector('.attnlab-explorer-plot').data;"
                           " return d[d.length - 3].x.length > 0; }")
    highlight = page.evaluate("() => { const d = document.querySelector('.attnlab-explorer-plot').data;"
                              " return d[d.length - 3]; }")
    assert highlight["name"] == "highlight" and highlight["y"][:2] == [3, 2]
    page_visit.screenshot("explorer-playground.png")
    page_visit.assert_clean()


@pytest.mark.site
@pytest.mark.browser
@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_a_long_sentence_stays_readable_on_a_phone(visit, color_scheme):
    page_visit = visit(PLAYGROUND, viewport=(390, 844), color_scheme=color_scheme)
    page = page_visit.page
    page.wait_for_selector(".attnlab-explorer-plot .heatmaplayer", state="attached", timeout=15_000)
    lengths = page.evaluate("() => document.querySelector('.attnlab-explorer').attnlab.data.sentences"
                            ".map(s => s.tokens.length)")
    assert max(lengths) >= 30
    page.select_option('select[data-control="sentence"]', str(lengths.index(max(lengths))))
    page.wait_for_timeout(300)
    drawn = page.evaluate("""() => {
      const stage = document.querySelector('.attnlab-explorer-stage'), gd = document.querySelector('.attnlab-explorer-plot');
      const y = gd._fullLayout.yaxis, top = gd.getBoundingClientRect().top, n = gd.data[0].z.length;
      const rows = [...document.querySelectorAll('.attnlab-explorer-queries span')].map((label, i) => {
        const r = label.getBoundingClientRect();
        return (r.top + r.height / 2) - (top + y._offset + (i + 0.5) * y._length / n);  // label centre - row centre
      });
      return {cell: gd._fullLayout.xaxis._length / n, stage: stage.clientWidth, content: stage.scrollWidth,
              page: document.documentElement.scrollWidth, offsets: rows, focusable: stage.tabIndex === 0};
    }""")
    assert drawn["cell"] >= 14, "cells too small to read: the heatmap should scroll sideways instead"
    assert drawn["content"] > drawn["stage"] and drawn["focusable"]  # the figure scrolls, not the page
    assert drawn["page"] <= 390
    assert max(abs(offset) for offset in drawn["offsets"]) <= 2, "query labels are off their rows"
    page.locator(".attnlab-explorer-stage").scroll_into_view_if_needed()
    page_visit.screenshot(f"explorer-playground-phone-{color_scheme}.png")
    page_visit.assert_clean()


@pytest.mark.site
@pytest.mark.browser
def test_a_hostile_sentence_renders_as_text(visit, site_url, monkeypatch):
    monkeypatch.setenv(render.BOOK_BUILD_ENV, "1")
    explorer = StaticExplorer(explorer_payload("minilm", {"<img src=x onerror=alert(1)>": EVIL}))._repr_html_()
    page_html = ("<!doctype html><html><head><script src='/_static/vendor/plotly-attnlab.min.js'></script>"
                 "<script defer src='/_static/attnlab-explorer.js'></script></head><body>"
                 f"{explorer}</body></html>")
    page_visit = visit("_static/favicon.svg")
    page = page_visit.page
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.route(f"{site_url}/hostile.html", lambda route: route.fulfill(body=page_html, content_type="text/html"))
    page.goto(f"{site_url}/hostile.html")
    page.wait_for_selector(".attnlab-explorer-plot .heatmaplayer", state="attached", timeout=15_000)
    drawn = page.locator(".attnlab-explorer-keys span").all_text_contents()
    assert "<" in drawn and "script" in drawn  # the characters are drawn as text in the figure
    assert page.locator(".attnlab-explorer img").count() == 0
    assert page.locator('select[data-control="sentence"] option').inner_text() == "<img src=x onerror=alert(1)>"
    assert dialogs == [] and page_visit.console_errors == []


@pytest.mark.site
def test_site_uses_the_small_assets():
    (fontawesome,) = (SITE / "_static" / "vendor" / "fontawesome").glob("*/")  # the theme's copy, one version
    assert (fontawesome / "js" / "all.min.js").stat().st_size < 200
    fonts = list((fontawesome / "webfonts").glob("*.woff2"))
    assert len(fonts) >= 3
    for font in fonts:
        assert font.stat().st_size < 10_000, font.name


@pytest.mark.site
def test_subset_fonts_keep_the_icons_in_use():
    from fontTools.ttLib import TTFont

    (solid,) = (SITE / "_static" / "vendor" / "fontawesome").glob("*/webfonts/fa-solid-900.woff2")
    solid = TTFont(solid)
    codepoints = set(solid.getBestCmap())
    assert 0xF0C9 in codepoints  # fa-bars, used as a class in the page header
    assert 0xF0EB in codepoints  # the lightbulb the theme draws from CSS on "tip" boxes
