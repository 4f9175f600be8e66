"""Attention, written to be read: softmax and scaled dot-product attention in NumPy."""

from __future__ import annotations

import numpy as np


def softmax(scores: np.ndarray, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """Softmax along ``axis``; lower temperature sharpens, higher flattens."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    scaled = np.asarray(scores, dtype=float) / temperature
    # exp(x - max) equals exp(x) / exp(max): the same result, and it never overflows.
    shifted = scaled - scaled.max(axis=axis, keepdims=True)
    exps = np.exp(shifted)
    return exps / exps.sum(axis=axis, keepdims=True)


def self_attention_weights(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Weights of the simplest self-attention, queries = keys = ``x``: softmax(x xᵀ / √d)."""
    x = np.asarray(x, dtype=float)  # (T, d)
    scores = x @ x.T / np.sqrt(x.shape[-1])  # (T, T)
    return softmax(scores, axis=-1, temperature=temperature)


def rows_sum_to_one(weights: np.ndarray, atol: float = 1e-6) -> bool:
    """True when every row is a probability distribution: non-negative and summing to 1."""
    weights = np.asarray(weights, dtype=float)
    return bool(np.all(weights >= 0) and np.allclose(weights.sum(axis=-1), 1.0, atol=atol))
