"""Print how fast the written-out attention is next to PyTorch's fused kernel, on this machine.

Usage: .venv/bin/python benchmarks/attention_speed.py
Times (median of repeated runs, torch.utils.benchmark) of one attention call (batch 1,
8 heads of 64) and of a GPT forward pass (4 layers, 256 wide) at several lengths, on the GPU
if there is one. Ratios above 1 mean the fused kernel is faster.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from attnlab.attention import scaled_dot_product_attention
from attnlab.device import pick_device
from attnlab.gpt import GPT, GPTConfig


def median_ms(statement: str, **globals_) -> float:
    """Median time of ``statement`` in milliseconds."""
    timer = benchmark.Timer(stmt=statement, globals=globals_, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=0.5).median * 1e3


@torch.no_grad()
def attention_table(device: str) -> None:
    print(f"\nOne attention call, batch 1 × 8 heads × head size 64, causal ({device}):")
    print(f"{'tokens':>7} {'written-out ms':>15} {'fused ms':>9} {'ratio':>6}")
    for length in (128, 256, 512, 1024, 2048):
        q, k, v = (torch.randn(1, 8, length, 64, device=device) for _ in range(3))
        mask = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        written = median_ms("f(q, k, v, mask)", f=scaled_dot_product_attention, q=q, k=k, v=v, mask=mask)
        fused = median_ms("f(q, k, v, is_causal=True)", f=F.scaled_dot_product_attention, q=q, k=k, v=v)
        print(f"{length:>7} {written:>15.2f} {fused:>9.2f} {written / fused:>6.1f}")


@torch.no_grad()
def gpt_table(device: str) -> None:
    print(f"\nGPT forward pass, 4 layers × 8 heads × 256 wide, batch 4 ({device}):")
    print(f"{'tokens':>7} {'written-out ms':>15} {'fused ms':>9} {'ratio':>6}")
    model = GPT(GPTConfig(vocab_size=512, block_size=512, n_layer=4, n_head=8, n_embd=256)).to(device).eval()
    for length in (64, 128, 256, 512):
        idx = torch.randint(0, 512, (4, length), device=device)
        model.set_fused(False)
        written = median_ms("model(idx)", model=model, idx=idx)
        model.set_fused(True)
        fused = median_ms("model(idx)", model=model, idx=idx)
        print(f"{length:>7} {written:>15.2f} {fused:>9.2f} {written / fused:>6.1f}")


if __name__ == "__main__":
    device = pick_device()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    attention_table(device)
    gpt_table(device)
