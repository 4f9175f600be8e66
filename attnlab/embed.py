"""Sentence vectors from an encoder: mean of the token vectors over the real tokens, then unit length.

This is what sentence-transformers does for all-MiniLM-L6-v2 (mean pooling, then normalisation),
written out so that every step can be seen and checked.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from attnlab import validate
from attnlab.errors import InputError
from attnlab.models import LoadedModel, as_loaded


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors (B, T, C) over the tokens whose mask (B, T) is 1: (B, C)."""
    hidden = validate.tensor(hidden, "hidden", min_dims=3)
    mask = validate.tensor(mask, "mask", min_dims=2, floating=False)
    if hidden.ndim != 3 or mask.shape != hidden.shape[:2]:
        raise InputError(f"mean_pool needs hidden (B, T, C) and a mask (B, T) of the same B and T; "
                         f"got {tuple(hidden.shape)} and {tuple(mask.shape)}.")
    weights = mask.to(hidden.dtype).unsqueeze(-1)              # (B, T, 1): 1 for real tokens, 0 for padding
    total = (hidden * weights).sum(dim=1)                      # (B, C)
    count = weights.sum(dim=1).clamp(min=1e-9)                 # (B, 1): how many real tokens
    return total / count


def _texts(texts: object) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a string or a non-empty list of strings, such as ['A cat sat.', 'Hello'].")
    return list(texts)


@torch.no_grad()
def embed(texts: str | list[str], model: str | LoadedModel = "minilm", batch_size: int = 32,
          max_tokens: int = 256, normalise: bool = True) -> np.ndarray:
    """One vector per text (N, C): the encoder's last hidden states, mean-pooled, unit length if ``normalise``."""
    texts = _texts(texts)
    lm = as_loaded(model)
    batch_size = validate.whole_number(batch_size, "batch_size", minimum=1)
    max_tokens = validate.whole_number(max_tokens, "max_tokens", minimum=2)
    max_tokens = min(max_tokens, lm.max_tokens)
    order = np.argsort([len(t) for t in texts])               # similar lengths together: little padding
    vectors = [None] * len(texts)
    with _fused_attention(lm.model):
        _batches(lm, texts, order, batch_size, max_tokens, normalise, vectors)
    return np.stack(vectors)


@contextlib.contextmanager
def _fused_attention(model):
    """PyTorch's fused attention while embedding (no maps are needed), the model's own setting after."""
    before = getattr(model.config, "_attn_implementation", None)
    switch = hasattr(model, "set_attn_implementation") and before == "eager"
    try:
        if switch:
            model.set_attn_implementation("sdpa")
    except (ValueError, ImportError, AttributeError):      # a model or version without SDPA: stay as it is
        switch = False
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def _batches(lm, texts, order, batch_size, max_tokens, normalise, vectors) -> None:
    for start in range(0, len(texts), batch_size):
        chosen = order[start:start + batch_size]
        batch = lm.tokenizer([texts[i] for i in chosen], padding=True, truncation=True,
                             max_length=max_tokens, return_tensors="pt").to(lm.device)
        out = lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       token_type_ids=batch.get("token_type_ids"), output_attentions=False)
        pooled = mean_pool(out.last_hidden_state, batch["attention_mask"])   # (b, C)
        if normalise:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        for i, row in zip(chosen, pooled.float().cpu().numpy()):
            vectors[i] = row


def token_count(texts: str | list[str], model: str | LoadedModel = "minilm", max_tokens: int = 256) -> int:
    """How many tokens (specials included, after truncation) the model reads for ``texts``."""
    lm = as_loaded(model)
    return sum(min(len(ids), max_tokens) for ids in lm.tokenizer(_texts(texts))["input_ids"])
