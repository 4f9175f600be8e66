"""Chapter 1: reading one token at a time (a recurrent network) vs all at once (attention).

Both functions read a sequence ``x`` of shape (T, C). The recurrent one needs T steps, each
waiting for the last; attention needs one step whose cost grows with T². ``race`` times both
on this machine, so the book's claims about speed are measurements, not assertions.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch


def rnn_forward(x: torch.Tensor, w_x: torch.Tensor, w_h: torch.Tensor) -> torch.Tensor:
    """A plain (Elman) recurrent network: h_t = tanh(x_t W_x + h_{t-1} W_h); returns every h_t."""
    h = torch.zeros(w_h.shape[0], dtype=x.dtype, device=x.device)  # (C,)
    states = []
    for x_t in x:  # one token after another: step t cannot start before step t-1 ends
        h = torch.tanh(x_t @ w_x + h @ w_h)
        states.append(h)
    return torch.stack(states)  # (T, C)


def attention_forward(x: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor) -> torch.Tensor:
    """One self-attention step over the whole sequence at once (values are the inputs themselves)."""
    q, k = x @ w_q, x @ w_k  # (T, C) each
    weights = torch.softmax(q @ k.T / q.shape[-1] ** 0.5, dim=-1)  # (T, T): every pair, in one go
    return weights @ x  # (T, C)


@dataclass(frozen=True)
class RaceResult:
    """Median wall-clock milliseconds of both readers at one sequence length."""

    length: int
    rnn_ms: float
    attention_ms: float
    attention_matrix_mb: float  # the (T, T) float32 weights attention must hold


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay for memory allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def race(lengths: list[int], d_model: int = 64, repeats: int = 5, device: str = "cpu", seed: int = 0) -> list[RaceResult]:
    """Time ``rnn_forward`` and ``attention_forward`` at each sequence length, on ``device``."""
    generator = torch.Generator().manual_seed(seed)
    w_x, w_h, w_q, w_k = (torch.randn(d_model, d_model, generator=generator).to(device) / d_model**0.5 for _ in range(4))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)  # GPU work is asynchronous
    results = []
    with torch.no_grad():
        for length in lengths:
            x = torch.randn(length, d_model, generator=generator).to(device)

            def run_rnn():
                rnn_forward(x, w_x, w_h)
                sync()

            def run_attention():
                attention_forward(x, w_q, w_k)
                sync()

            results.append(RaceResult(length, _median_ms(run_rnn, repeats), _median_ms(run_attention, repeats),
                                      length * length * 4 / 2**20))
    return results


def crossover(results: list[RaceResult]) -> int | None:
    """The measured length from which attention stayed slower than the recurrent loop, if any.

    That is the first length at which attention was slower *and* stayed slower at every longer
    length measured, so that one noisy short run (a few milliseconds lost to another process)
    does not count as the crossover. ``None`` when attention was still the faster reader at the
    longest length.
    """
    crossing = None
    for r in sorted(results, key=lambda r: r.length):
        if r.attention_ms > r.rnn_ms:
            crossing = r.length if crossing is None else crossing
        else:
            crossing = None
    return crossing


def influence_by_distance(length: int = 40, d_model: int = 32, seed: int = 0,
                          w_h_scale: float = 1.0) -> tuple[list[float], list[float]]:
    """How strongly the last output depends on each earlier token: the gradient norm |∂y_last / ∂x_t|.

    Returns (recurrent, attention) lists indexed by distance from the last token (0 = itself),
    with the same random weights for both readers. A recurrent network's influence typically
    fades with distance; attention's does not depend on it. ``w_h_scale`` multiplies the
    recurrent matrix W_h (chapter 1's exercise: larger weights make the influence grow with
    distance instead of fading).
    """
    generator = torch.Generator().manual_seed(seed)
    w_x, w_h, w_q, w_k = (torch.randn(d_model, d_model, generator=generator) / d_model**0.5 for _ in range(4))
    w_h = w_h * w_h_scale
    x = torch.randn(length, d_model, generator=generator)
    norms = []
    for reader in (lambda t: rnn_forward(t, w_x, w_h), lambda t: attention_forward(t, w_q, w_k)):
        inputs = x.clone().requires_grad_(True)
        reader(inputs)[-1].sum().backward()
        norms.append(inputs.grad.norm(dim=-1).flip(0).tolist())  # index 0: the last token itself
    return norms[0], norms[1]
