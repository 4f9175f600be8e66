"""Print how fast the static explorer redraws after a click, in headless Chromium.

Usage: .venv/bin/python benchmarks/explorer_speed.py   (after `make book`)
Changes the layer (then the head, then the view) 30 times each on the playground's
32-token sentence, and times each change from the event to the next painted frame.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.page_bytes import serve  # noqa: E402
from tests.conftest import CHROMIUM_FLAGS, SITE, chromium_path  # noqa: E402

TIME_CHANGES = """async ([control, values]) => {
  const element = document.querySelector(`select[data-control="${control}"]`);
  const times = [];
  for (let i = 0; i < 30; i++) {
    const start = performance.now();
    element.value = String(values[i % values.length]);
    element.dispatchEvent(new Event("change"));
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    times.push(performance.now() - start);
  }
  return times;
}"""


def open_playground(playwright, profile: str, base: str, page_path: str = "book/explorer-playground.html"):
    """A fresh headless Chromium on a built playground, its explorer drawn; returns (context, page)."""
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
    page = context.new_page()
    page.goto(f"{base}/{page_path}", wait_until="networkidle")
    page.wait_for_selector('.attnlab-explorer-plot .heatmaplayer', state="attached")
    return context, page


def main() -> None:
    from playwright.sync_api import sync_playwright

    server, base = serve(SITE)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context, page = open_playground(playwright, profile, base)
        sentences = page.locator('select[data-control="sentence"] option').all_inner_texts()
        index = next(i for i, name in enumerate(sentences) if "32 tokens" in name)
        page.select_option('select[data-control="sentence"]', str(index))
        print("click → redraw in Chromium, 32-token sentence (median / 90th percentile of 30):")
        for control, values in (("layer", [1, 2, 3, 4, 5, 0]), ("head", list(range(12))), ("view", [0, 2])):
            times = sorted(page.evaluate(TIME_CHANGES, [control, values]))
            print(f"  {control:>6}: {statistics.median(times):6.1f} ms / {times[26]:6.1f} ms")
        context.close()
    server.shutdown()


if __name__ == "__main__":
    main()
