"""Attention, written to be read: softmax, masks and scaled dot-product attention.

NumPy versions serve the first chapters; PyTorch versions serve the models. Both return
the attention weights as well as the output, because a course needs to show them.

Mask convention (the same as ``torch.nn.functional.scaled_dot_product_attention``): a
boolean mask is True where a query MAY attend to a key. (``nn.MultiheadAttention`` uses the
opposite convention; :func:`additive_mask` and the tests show the conversion.)
A query whose keys are all masked gets weights of 0 and an output of 0, never NaN.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------- NumPy


def softmax(scores: np.ndarray, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """Softmax along ``axis``; lower temperature sharpens, higher flattens."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    scaled = np.asarray(scores, dtype=float) / temperature
    # exp(x - max) / sum(exp(x - max)) equals exp(x) / sum(exp(x)), and never overflows.
    # A row that is all -inf (fully masked) has max -inf; shift it by 0 instead.
    row_max = scaled.max(axis=axis, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    exps = np.exp(scaled - row_max)
    total = exps.sum(axis=axis, keepdims=True)
    return np.divide(exps, total, out=np.zeros_like(exps), where=total > 0)


def causal_mask_np(size: int) -> np.ndarray:
    """(size, size) booleans, True on and below the diagonal: query i may see keys 0..i."""
    return np.tril(np.ones((size, size), dtype=bool))


def scaled_dot_product_attention_np(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q kᵀ / √d_k) v, with an optional boolean mask; returns (output, weights)."""
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)  # masked BEFORE the softmax, so rows still sum to 1
    weights = softmax(scores, axis=-1)  # (..., T_q, T_k)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


def self_attention_weights(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Weights of the simplest self-attention, queries = keys = ``x``: softmax(x xᵀ / √d)."""
    x = np.asarray(x, dtype=float)  # (T, d)
    scores = x @ x.T / np.sqrt(x.shape[-1])  # (T, T)
    return softmax(scores, axis=-1, temperature=temperature)


def rows_sum_to_one(weights: np.ndarray, atol: float = 1e-6) -> bool:
    """True when every row is a probability distribution: non-negative and summing to 1."""
    weights = np.asarray(weights, dtype=float)
    return bool(np.all(weights >= 0) and np.allclose(weights.sum(axis=-1), 1.0, atol=atol))


# ---------------------------------------------------------------- PyTorch


def causal_mask(size: int, device=None):
    """(size, size) bool tensor, True where query i may attend to key j (j <= i)."""
    import torch

    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def padding_mask(lengths, max_len: int):
    """(B, 1, 1, max_len) bool tensor, True on real tokens and False on padding."""
    import torch

    lengths = torch.as_tensor(lengths)
    positions = torch.arange(max_len, device=lengths.device)  # (T,)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]


def additive_mask(mask):
    """Boolean mask (True = may attend) → float mask to add to scores (0 or -inf)."""
    import torch

    zeros = torch.zeros(mask.shape, device=mask.device)
    return zeros.masked_fill(~mask, float("-inf"))


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p: float = 0.0, training: bool = False):
    """Written-out attention on tensors (..., T, d); returns (output, weights).

    ``mask`` is boolean (True = may attend) or additive (added to the scores), broadcastable
    to (..., T_q, T_k). Equal to ``F.scaled_dot_product_attention``, which returns no weights.
    """
    import torch
    import torch.nn.functional as F

    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = torch.softmax(scores, dim=-1)
    # A fully masked row is all -inf, and its softmax is NaN: give it zero weight instead.
    weights = torch.nan_to_num(weights, nan=0.0)
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


def multi_head_attention_np(
    x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray, w_o: np.ndarray, n_heads: int
) -> np.ndarray:
    """Multi-head self-attention of x (T, d) with (d, d) projection matrices; returns (T, d)."""
    length, d_model = x.shape
    head_dim = d_model // n_heads

    def split(m: np.ndarray) -> np.ndarray:  # (T, d) → (H, T, d/H)
        return m.reshape(length, n_heads, head_dim).transpose(1, 0, 2)

    heads, _ = scaled_dot_product_attention_np(split(x @ w_q), split(x @ w_k), split(x @ w_v))  # (H, T, d/H)
    merged = heads.transpose(1, 0, 2).reshape(length, d_model)  # heads side by side: (T, d)
    return merged @ w_o
