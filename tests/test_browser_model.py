"""The in-browser model (attnlab-browser-model.js): the site's own ONNX file and runtime, PyTorch's maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.extraction import attend
from attnlab.minigpt import gpt_from_loaded
from attnlab.models import load
from attnlab.patterns import score_patterns
from attnlab.sphinxext import BROWSER_MODELS, ORT_FILES, TOKENIZER_FILES
from tests.test_onnx_export import TEXTS, TOLERANCE

PLAYGROUND = "book/explorer-playground.html"
MINI_GPT = "book/mini-gpt-playground.html"
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

WRITE = """async ([prompt, options]) => {
  const out = await window.attnlabBrowserModel.generate("minigpt", prompt, options);
  return {text: out.text, ids: out.ids}; }"""
WRITE_FAILURE = """async ([name, prompt, options]) => {
  try { await window.attnlabBrowserModel.generate(name, prompt, options); return null; } catch (e) { return e.message; } }"""
FOUND = "(s) => document.querySelector('.attnlab-explorer').attnlab.patternsFor(s)"
CHOSEN = "() => +document.querySelector('select[data-control=\"sentence\"]').value"

pytestmark = [pytest.mark.site, pytest.mark.browser]


def assert_patterns_match(found: list[dict], text: str, lm) -> None:
    """The page's heads found in a sentence are Python's (attnlab.patterns) for the same text."""
    scores = score_patterns(attend(text, lm))
    for head in found:
        if head["pattern"] == "induction":  # found once per model, on repeated random tokens
            continue
        table = scores[head["pattern"]]
        assert abs(table[head["layer"], head["head"]] - head["score"]) <= TOLERANCE, head
        assert head["score"] >= table.max() - TOLERANCE, head  # the best head, or as good within rounding
    named = {head["pattern"] for head in found}
    assert {pattern for pattern, table in scores.items() if table.max() >= 0.3 + TOLERANCE} <= named


def test_the_site_serves_the_models_and_the_runtime(site):
    for name in BROWSER_MODELS:
        folder = site / "_static" / "models" / name
        assert (folder / "model.onnx").stat().st_size > 1_000_000
        assert all((folder / file).stat().st_size > 100 for file in TOKENIZER_FILES)
    writer = site / "_static" / "models" / "minigpt"  # the GPT also writes: a step file with a cache, and its shape
    assert (writer / "step.onnx").stat().st_size > 1_000_000 and (writer / "config.json").is_file()
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
    assert_patterns_match(page.evaluate(FOUND, page.evaluate(CHOSEN)), evil, "minilm")
    assert dialogs == [] and page.locator("img[src=x]").count() == 0
    page_visit.screenshot("explorer-playground-typed.png")
    page_visit.assert_clean()


def test_the_mini_gpt_in_the_browser_reads_and_writes_like_python(visit):
    lm = load("minigpt", device="cpu")
    gpt = gpt_from_loaded(lm).eval()
    page_visit = visit(MINI_GPT)
    page = page_visit.page
    page.wait_for_function("() => window.attnlabBrowserModel !== undefined")
    for text in ["ROMEO: But soft!\nWhat light", "Café naïve 🤖 e\u0301 مرحبا", '<script>alert("hi")</script>']:
        got = page.evaluate(ENCODE, ["minigpt", text])
        assert got["ids"] == lm.tokenizer(text)["input_ids"], text  # one id per character, unknown ones 0
    long = page.evaluate(ENCODE, ["minigpt", "x" * 500])
    assert long["truncated"] is True and long["ids"] == list(attend("x" * 500, lm).ids)  # cut as Python cuts it
    record = attend("ROMEO: But soft, what light", lm)
    out = page.evaluate(ATTEND, ["minigpt", "ROMEO: But soft, what light"])
    maps = np.array(out["weights"], dtype=np.float32).reshape(out["layers"], out["heads"], out["length"], out["length"])
    assert np.abs(maps - record.attentions).max() <= TOLERANCE
    prompt = "ROMEO: "
    count = 2 * gpt.config.block_size  # far past the point where the 128-character window slides
    greedy = page.evaluate(WRITE, [prompt, {"length": count, "temperature": 0}])
    reference = gpt.generate(torch.tensor([lm.tokenizer(prompt)["input_ids"]]), count, temperature=0)[0].tolist()
    assert greedy["ids"] == reference  # the browser writes what PyTorch writes
    assert greedy["text"] == lm.tokenizer.decode(reference[len(prompt):])
    first, again = (page.evaluate(WRITE, [prompt, {"length": 80, "temperature": 1, "topK": 20, "seed": 7}]) for _ in "12")
    assert first["text"] == again["text"] != greedy["text"][:80]  # a seed repeats its draw; a draw is not greedy
    only_best = page.evaluate(WRITE, [prompt, {"length": 80, "temperature": 1.5, "topK": 1, "seed": 3}])
    assert only_best["text"] == greedy["text"][:80]  # top-k 1 leaves nothing to draw from
    failures = {
        "temperature": ["minigpt", prompt, {"temperature": -1}], "length": ["minigpt", prompt, {"length": 0}],
        "top-k": ["minigpt", prompt, {"topK": 1.5}], "both directions": ["minilm", prompt, {}],
        "empty": ["minigpt", "  ", {}],
    }
    for words, call in failures.items():
        assert words in page.evaluate(WRITE_FAILURE, call), words
    page_visit.assert_clean()


def test_the_mini_gpt_page_writes_finds_heads_and_keeps_working_offline(visit, browser):
    lm = load("minigpt", device="cpu")
    page_visit = visit(MINI_GPT)
    page = page_visit.page
    page.wait_for_selector(".attnlab-explorer-plot .heatmaplayer", state="attached", timeout=15_000)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    written_options = "() => Array.from(document.querySelectorAll('select[data-control=\"sentence\"] option'))" \
                      ".filter(o => o.textContent.startsWith('Written')).length"
    page.click("form.attnlab-explorer-generating button")  # the default prompt and settings
    page.wait_for_function(f"() => ({written_options})() === 1", timeout=60_000)
    assert len(page.text_content(".attnlab-explorer-written")) == len("ROMEO: ") + 300
    assert "per second" in page.text_content(".attnlab-explorer-generating + pre + p")
    browser.set_offline(True)  # everything the model needs was fetched once: it now works with no network
    try:
        errors = len(page_visit.console_errors)
        assert page.evaluate("() => fetch('?anything').then(() => 'online', () => 'offline')") == "offline"
        page.wait_for_timeout(200)
        assert all("INTERNET_DISCONNECTED" in e for e in page_visit.console_errors[errors:])  # the probe's own
        del page_visit.console_errors[errors:]
        evil = '<img src=x onerror=alert(1)> JULIET:'
        page.fill('input[data-control="prompt"]', evil)
        page.fill('input[data-control="temperature"]', "0")
        page.fill('input[data-control="characters"]', "40")
        page.click("form.attnlab-explorer-generating button")
        page.wait_for_function(f"() => ({written_options})() === 2", timeout=60_000)
        gpt = gpt_from_loaded(lm).eval()
        ids = lm.tokenizer(evil)["input_ids"]
        reference = lm.tokenizer.decode(gpt.generate(torch.tensor([ids]), 40, temperature=0)[0, len(ids):].tolist())
        assert page.text_content(".attnlab-explorer-written") == evil + reference  # shown as text, not markup
        assert_patterns_match(page.evaluate(FOUND, page.evaluate(CHOSEN)), (evil + reference)[-64:], lm)
        text = "To be, or not to be. To be, or not to be."
        page.fill('input[data-control="typed"]', text)
        page.press('input[data-control="typed"]', "Enter")
        page.wait_for_function("() => document.querySelector('select[data-control=\"sentence\"]').selectedOptions[0]"
                               ".textContent.startsWith('Yours:')", timeout=30_000)
        assert_patterns_match(page.evaluate(FOUND, page.evaluate(CHOSEN)), text, lm)
        hints = page.text_content(".attnlab-explorer-patterns")
        assert "previous token" in hints and "in this sentence" in hints
    finally:
        browser.set_offline(False)
    assert dialogs == [] and page.locator("img[src=x]").count() == 0
    page_visit.screenshot("mini-gpt-playground-written.png", full_page=True)
    page_visit.assert_clean()


def test_typing_with_no_network_says_so_and_works_once_it_is_back(visit, browser):
    page_visit = visit(PLAYGROUND)
    page = page_visit.page
    page.wait_for_selector(".attnlab-explorer-plot .heatmaplayer", state="attached", timeout=15_000)
    note = ".attnlab-explorer-typing-note"
    browser.set_offline(True)  # before the model was ever fetched
    try:
        page.fill('input[data-control="typed"]', "No network in this room.")
        page.press('input[data-control="typed"]', "Enter")
        page.wait_for_function(f"() => document.querySelector('{note}').textContent.startsWith('Could not run')",
                               timeout=30_000)
        message = page.text_content(note)
        assert "offline" in message and "prepared examples still work" in message, message
        page.select_option('select[data-control="head"]', "3")  # the prepared sentences still draw
        assert "head 3" in page.text_content(".attnlab-explorer-status")
    finally:
        browser.set_offline(False)
    page.press('input[data-control="typed"]', "Enter")  # back online: the same box now works
    page.wait_for_function(f"() => document.querySelector('{note}').textContent.includes('computed in this browser')",
                           timeout=60_000)
    # The failed requests while offline are the browser's own console lines; nothing else went wrong.
    page_visit.console_errors[:] = [e for e in page_visit.console_errors if "INTERNET_DISCONNECTED" not in e]
    page_visit.assert_clean()


@pytest.mark.parametrize("path", [PLAYGROUND, MINI_GPT])
def test_without_webassembly_the_page_says_why_and_the_prepared_sentences_work(browser, site_url, path):
    page = browser.new_page()
    try:
        page.add_init_script("delete window.WebAssembly")  # as in a browser that has none (or has it turned off)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{site_url}/{path}", wait_until="load")
        page.wait_for_selector(".attnlab-explorer-plot .heatmaplayer", state="attached", timeout=15_000)
        assert page.locator('input[data-control="typed"]').is_disabled()
        notes = " ".join(page.locator(".attnlab-explorer-typing-note").all_text_contents())
        assert "needs WebAssembly" in notes
        if path == MINI_GPT:
            assert page.locator('input[data-control="prompt"]').is_disabled()
            assert page.locator("form.attnlab-explorer-generating button").is_disabled()
        page.select_option('select[data-control="sentence"]', "1")  # the prepared sentences still draw
        page.select_option('select[data-control="view"]', "1")
        assert page.locator(".attnlab-explorer-plot .heatmaplayer").count() == 1 and errors == []
    finally:
        page.close()
