"""Print how long the live explorer takes to react, kernel side, on this machine.

Usage: .venv/bin/python benchmarks/live_speed.py
Times, from setting a control to the new figure being built and sent to the output area:
switching layer or head (no model run), and a new 32-token text (one MiniLM run).
The browser's own drawing comes on top (see explorer_speed.py for plotly.js's share).
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from attnlab.live import LiveExplorer  # noqa: E402

WORDS = "every token looks at every other token and decides what matters most here".split()


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    explorer = LiveExplorer("minilm")
    text_32 = " ".join(WORDS[i % len(WORDS)] for i in range(30))  # + [CLS] and [SEP] = 32 tokens
    explorer.text.value = text_32
    assert len(explorer.record.tokens) == 32, len(explorer.record.tokens)
    layer = [timed(lambda v=v: setattr(explorer.layer, "value", v)) for v in [1, 2, 3, 4, 5, 0] * 3]
    head = [timed(lambda v=v: setattr(explorer.head, "value", v)) for v in list(range(1, 12)) + [0]]
    texts = [timed(lambda i=i: setattr(explorer.text, "value", f"{text_32[:-5]} v{i:03d}")) for i in range(9)]
    print("live explorer, kernel side (median / max, ms):")
    print(f"  switch layer       {statistics.median(layer):7.1f} / {max(layer):7.1f}")
    print(f"  switch head        {statistics.median(head):7.1f} / {max(head):7.1f}")
    print(f"  new 32-token text  {statistics.median(texts):7.1f} / {max(texts):7.1f}   (model ran {explorer.model_runs} times)")


if __name__ == "__main__":
    main()
