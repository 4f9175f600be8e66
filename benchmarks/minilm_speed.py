"""Print how long MiniLM takes to return all its attention maps, and a cached repeat.

Usage: .venv/bin/python benchmarks/minilm_speed.py
Each length is a fresh text (so the cache cannot help); the median of 7 runs is shown,
then the time of asking again for a text already seen.
"""

from __future__ import annotations

import statistics
import time

import torch

from attnlab.extraction import _CACHE, attend
from attnlab.models import load

WORDS = "attention lets every token look at every other token and decide what matters".split()


def text_of(n_tokens: int, variant: int) -> str:
    """About ``n_tokens`` tokens ([CLS] and [SEP] included); ``variant`` makes it a new text."""
    words = [WORDS[(i + variant) % len(WORDS)] for i in range(n_tokens - 2)]
    return " ".join(words)


def main() -> None:
    started = time.perf_counter()
    model = load("minilm")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load('minilm') took {time.perf_counter() - started:.2f} s (first time only)")
    print(f"{'tokens':>7} {'attend ms (median)':>19} {'cached repeat ms':>17}")
    for n_tokens in (16, 32, 128, 512):
        attend(text_of(n_tokens, 99), model)  # warm up this shape
        times = []
        for variant in range(7):
            text = text_of(n_tokens, variant)
            _CACHE.clear()
            start = time.perf_counter()
            record = attend(text, model)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        attend(text, model)
        cached = time.perf_counter() - start
        assert len(record.tokens) == n_tokens, (len(record.tokens), n_tokens)
        print(f"{n_tokens:>7} {statistics.median(times) * 1e3:>19.1f} {cached * 1e3:>17.3f}")


if __name__ == "__main__":
    main()
