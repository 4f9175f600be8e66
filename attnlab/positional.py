"""Positional encodings: how a Transformer learns where each token is.

Attention alone is blind to order (permute the tokens and the outputs permute with them).
Three answers, in historical order: the 2017 sinusoids, learned position vectors, and
rotary embeddings (RoPE), which rotate queries and keys so that their dot product depends
only on how far apart two tokens are.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from attnlab import validate
from attnlab.errors import InputError


def sinusoidal_encoding(num_positions: int, d_model: int, base: float = 10000.0) -> np.ndarray:
    """(num_positions, d_model): PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(same)."""
    num_positions = validate.whole_number(num_positions, "num_positions")
    d_model = validate.whole_number(d_model, "d_model", minimum=2)
    base = validate.positive_number(base, "base")
    if d_model % 2:
        raise InputError(f"d_model must be even for sine/cosine pairs, got {d_model}.")
    positions = np.arange(num_positions)[:, None]  # (T, 1)
    pair_index = np.arange(0, d_model, 2)[None, :]  # (1, d/2): the 2i of the formula
    angles = positions / base ** (pair_index / d_model)  # (T, d/2)
    encoding = np.zeros((num_positions, d_model))
    encoding[:, 0::2] = np.sin(angles)
    encoding[:, 1::2] = np.cos(angles)
    return encoding


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed 2017 sinusoids to token embeddings (nothing to learn)."""

    def __init__(self, d_model: int, max_len: int = 4096, dropout: float = 0.0):
        super().__init__()
        table = torch.tensor(sinusoidal_encoding(max_len, d_model), dtype=torch.float32)
        self.register_buffer("table", table, persistent=False)  # (max_len, C)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) → x + PE[:T]."""
        _check_positions(x, self.table.size(0), self.table.size(1))
        return self.dropout(x + self.table[: x.size(1)].to(x.dtype))


class LearnedPositionalEmbedding(nn.Module):
    """Adds a trained vector per position, as BERT and GPT-2 do."""

    def __init__(self, d_model: int, max_len: int):
        super().__init__()
        self.table = nn.Embedding(max_len, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) → x + P[0..T-1]."""
        _check_positions(x, self.table.num_embeddings, self.table.embedding_dim)
        positions = torch.arange(x.size(1), device=x.device)  # (T,)
        return x + self.table(positions)


def _check_positions(x, max_len: int, d_model: int) -> None:
    validate.tensor(x, "x", min_dims=0)
    if x.dim() != 3 or x.size(-1) != d_model:
        raise InputError(f"x must be (batch, tokens, {d_model}) embeddings, got shape {tuple(x.shape)}.")
    if x.size(1) > max_len:
        raise InputError(f"a sequence of {x.size(1)} tokens is longer than max_len={max_len}, the positions this "
                         f"encoding has: cut the sequence, or build it with a larger max_len.")


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) → (-x2, x1) on the two halves of the last dimension: a 90° turn per pair."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """RoPE: turns each (x_i, x_{i+d/2}) pair of a query or key by angle position × frequency_i."""

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        head_dim = validate.whole_number(head_dim, "head_dim", minimum=2)
        base = validate.positive_number(base, "base")
        if head_dim % 2:
            raise InputError(f"head_dim must be even (features are turned in pairs), got {head_dim}.")
        self.head_dim = head_dim
        frequencies = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.register_buffer("frequencies", frequencies, persistent=False)  # (hd/2,)

    def angles(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of every position × frequency, each (T, hd), on the device of ``positions``."""
        turns = positions.to(torch.float64)[:, None] * self.frequencies.to(positions.device)[None, :]  # (T, hd/2)
        turns = torch.cat((turns, turns), dim=-1)  # (T, hd): same angle for both halves of a pair
        return turns.cos(), turns.sin()

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x: (..., T, hd) queries or keys → the same, rotated by their positions."""
        validate.tensor(x, "x", min_dims=2)
        if x.size(-1) != self.head_dim:
            raise InputError(f"x must end in head_dim={self.head_dim} features, got shape {tuple(x.shape)}.")
        if positions is None:
            positions = torch.arange(x.size(-2), device=x.device)
        else:
            if not isinstance(positions, torch.Tensor):
                positions = torch.as_tensor(positions)
            if positions.dim() != 1 or positions.size(0) != x.size(-2) or positions.is_complex():
                raise InputError(f"positions must be one number per token ({x.size(-2)}), got shape "
                                 f"{tuple(positions.shape)}.")
            positions = positions.to(x.device)  # follow the input, wherever the positions were made
        cos, sin = self.angles(positions)
        return (x * cos.to(x.dtype)) + (rotate_half(x) * sin.to(x.dtype))
