"""Print the long version of chapter 11's measurements: attention's time and memory up to long texts.

Usage: .venv/bin/python benchmarks/attention_scaling.py [--longest 8192] [--threads N]
One causal attention call (batch 1, the heads and head size of the course's mini-GPT, read from its
config) at doubling lengths: median time and peak memory (from the allocator) of the written-out
version, the fused kernel (and which one PyTorch picked), blocked local attention (window 256) and
chunked linear attention, and the mini-GPT's feed-forward layer for comparison. On the GPU if there
is one. The run time grows with --longest: each doubling roughly quadruples the written-out
version's. Memory: at T = 8192 the written-out version holds three (H, T, T) float32 matrices at
once, 3 · 4 · H · T² bytes (3 GiB for 4 heads); it is skipped where that would exceed 8 GiB.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from attnlab import cost
from attnlab.blocks import FeedForward
from attnlab.device import pick_device


def written(q, k, v):
    """Causal attention with the (T, T) matrices in memory."""
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1) @ v


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--longest", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device()
    from attnlab.minigpt import gpt_from_loaded
    from attnlab.models import load

    config = gpt_from_loaded(load("minigpt")).config
    C, H = config.n_embd, config.n_head
    feed_forward = FeedForward(C, 4 * C, activation="gelu").to(device).eval()
    q, k, v = (torch.randn(1, H, 64, C // H, device=device) for _ in range(3))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"fused kernel: {cost.sdpa_backend(q, k, v, is_causal=True)}")
    print(f"{'T':>6} | {'time (ms): written':>18} {'fused':>8} {'local':>8} {'linear':>8} {'FFN':>8} | "
          f"{'peak MiB: written':>17} {'fused':>8} {'local':>8} {'linear':>8}")
    length = 128
    while length <= args.longest:
        q, k, v = (torch.randn(1, H, length, C // H, device=device) for _ in range(3))
        x = torch.randn(1, length, C, device=device)
        calls = {"written": lambda: written(q, k, v),
                 "fused": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                 "local": lambda: cost.local_attention_blocked(q, k, v, window=256),
                 "linear": lambda: cost.linear_attention(q, k, v)}
        too_big = 4 * H * length * length * 3 > 8 * 2**30  # the written-out version would need > 8 GiB
        times = {name: (float("nan") if too_big and name == "written" else cost.median_seconds(fn, repeats=3) * 1e3)
                 for name, fn in calls.items()}
        ffn = cost.median_seconds(lambda: feed_forward(x), repeats=3) * 1e3
        memory = {name: (float("nan") if too_big and name == "written" else cost.peak_memory(fn, device) / 2**20)
                  for name, fn in calls.items()}
        print(f"{length:>6} | {times['written']:>18.2f} {times['fused']:>8.2f} {times['local']:>8.2f} "
              f"{times['linear']:>8.2f} {ffn:>8.2f} | {memory['written']:>17.1f} {memory['fused']:>8.1f} "
              f"{memory['local']:>8.1f} {memory['linear']:>8.1f}")
        length *= 2


if __name__ == "__main__":
    main()
