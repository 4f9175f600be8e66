"""Print how fast the playground's in-browser model answers a typed sentence, in headless Chromium.

Usage: .venv/bin/python benchmarks/browser_model_speed.py   (after `make book`)
From a local server (the built site on 127.0.0.1) with a fresh browser profile: the time from
the first sentence typed to its map drawn (the model's download and start included), then, with
the model loaded, the time from pressing Enter on a new 32-token sentence to its map drawn
(median and slowest of 10).
Then the mini-GPT playground: the first text written (its download and start included), and
characters written per second over 300 characters from a 7-character prompt, split where its
128-character window fills: before, each step reads one new character (key/value cache); after,
the window slides and each step reads all 128 again (three seeds, temperature 0.8, top-k 10).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.explorer_speed import open_playground  # noqa: E402
from benchmarks.page_bytes import serve  # noqa: E402
from tests.conftest import SITE  # noqa: E402

# 30 words of plain English: 32 tokens with [CLS] and [SEP] (checked below).
WORDS = ("the quick brown fox jumps over the lazy dog while a small bird sings on the old oak tree near "
         "the quiet river under a bright blue sky once more").split()
TYPE_AND_TIME = """async (text) => {
  const root = document.querySelector('.attnlab-explorer'), box = root.querySelector('input[data-control="typed"]');
  const before = root.attnlab.data.sentences.length, start = performance.now();
  box.value = text;
  box.form.requestSubmit();
  while (root.attnlab.data.sentences.length === before) await new Promise((r) => setTimeout(r, 1));
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));  // the map painted
  return {ms: performance.now() - start, tokens: root.attnlab.data.sentences[before].tokens.length};
}"""


WRITE_AND_TIME = """async ([prompt, length, seed]) => {
  const stamps = [], start = performance.now();
  await window.attnlabBrowserModel.generate("minigpt", prompt, {length, temperature: 0.8, topK: 10, seed,
                                                                onText: () => stamps.push(performance.now())});
  return {start, stamps};
}"""
PROMPT, LENGTH, WINDOW = "ROMEO: ", 300, 128


def per_second(count: int, milliseconds: float) -> float:
    return count / (milliseconds / 1000)


def mini_gpt(playwright, profile: str, base: str) -> None:
    context, page = open_playground(playwright, profile, base, "book/mini-gpt-playground.html")
    first = page.evaluate(WRITE_AND_TIME, [PROMPT, 1, 0])
    print(f"mini-GPT, first character written, model downloaded from 127.0.0.1 and started: "
          f"{(first['stamps'][0] - first['start']) / 1000:.2f} s")
    filled = WINDOW - len(PROMPT)  # characters written before the window slides
    for seed in (1, 2, 3):
        run = page.evaluate(WRITE_AND_TIME, [PROMPT, LENGTH, seed])
        stamps = run["stamps"]
        print(f"  seed {seed}: {per_second(LENGTH, stamps[-1] - run['start']):.0f} characters/s over {LENGTH} "
              f"(cached, window filling: {per_second(filled - 1, stamps[filled - 1] - stamps[0]):.0f}/s; "
              f"window sliding: {per_second(LENGTH - filled, stamps[-1] - stamps[filled - 1]):.0f}/s)")
    context.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    server, base = serve(SITE)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context, page = open_playground(playwright, profile, base)
        first = page.evaluate(TYPE_AND_TIME, "Attention is all you need.")
        print(f"first sentence, model downloaded from 127.0.0.1 and started: {first['ms'] / 1000:.2f} s")
        runs = []
        for i in range(10):
            text = " ".join(WORDS[i:] + WORDS[:i])  # a new sentence each time, same length
            runs.append(page.evaluate(TYPE_AND_TIME, text))
        assert {run["tokens"] for run in runs} == {32}, {run["tokens"] for run in runs}
        times = sorted(run["ms"] for run in runs)
        print(f"typed 32-token sentence → all maps computed, one drawn (model loaded): "
              f"median {statistics.median(times):.0f} ms, slowest {times[-1]:.0f} ms of {len(times)}")
        context.close()
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        mini_gpt(playwright, profile, base)
    server.shutdown()


if __name__ == "__main__":
    main()
