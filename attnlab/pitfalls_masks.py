"""Chapter 13's pitfalls about masks: conventions, fill values, empty rows, and is_causal after a cache.

Split from :mod:`attnlab.pitfalls`, which re-exports every name here; read them as ``pitfalls.mask_table`` etc.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Demo:
    """One pitfall measured: with the mistake (broken) and without it (fixed)."""

    what: str
    broken: object
    fixed: object
    shown: bool
    parts: tuple[str, ...] = ()  # how to read the value (each element of a tuple): "{} NaN row{s}", "“{}”"
    unit: str = ""  # "bytes": read as MiB

    @property
    def broken_text(self) -> str:
        """The measurement with the mistake, in words and numbers."""
        return plain(self.broken, self.parts, self.unit)

    @property
    def fixed_text(self) -> str:
        """The measurement with the fix, in words and numbers."""
        return plain(self.fixed, self.parts, self.unit)


def plain(value, parts: tuple[str, ...] = (), unit: str = "") -> str:
    """A measured value as a learner reads it: numbers to 3 significant figures, tuples as labelled phrases."""
    if isinstance(value, tuple):
        labels = parts or ("{}",) * len(value)
        return "; ".join(plain(v, (label,), unit) for v, label in zip(value, labels) if v != "")
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif unit == "bytes" and isinstance(value, (int, float)):
        text = f"{value / 2**20:#.3g} MiB"
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = "0" if value == 0 else (f"{value:#.3g}" if math.isfinite(value) else str(value).replace("nan", "NaN"))
    else:
        text = str(value)
    label = parts[0] if parts else "{}"
    return label.format(text, s="" if value == 1 else "s")


def mask_convention(length: int = 5, width: int = 8, heads: int = 2, seed: int = 0) -> Demo:
    """The SDPA mask (True = attend) given to nn.MultiheadAttention (True = blocked): weight on future keys."""
    torch.manual_seed(seed)
    attention = nn.MultiheadAttention(width, heads, batch_first=True).eval()
    x = torch.randn(1, length, width)  # (B, T, C)
    allowed = torch.ones(length, length, dtype=torch.bool).tril()  # SDPA's convention: True = may attend
    future = ~allowed

    def future_weight(mask):
        with torch.no_grad():
            _, weights = attention(x, x, x, attn_mask=mask, need_weights=True)  # (B, T, T), averaged over heads
        nan_rows = weights[0].isnan().any(-1)  # (T,)
        share = float(weights[0][~nan_rows][future[~nan_rows]].sum()) / max(int((~nan_rows).sum()), 1)
        return round(share, 6), int(nan_rows.sum())

    broken, fixed = future_weight(allowed), future_weight(~allowed)
    return Demo("weight on future keys, and NaN rows", broken, fixed, broken[0] > 0.5 and fixed == (0.0, 0),
                parts=("{} on future keys", "{} NaN row{s}"))


def mask_table(length: int = 5, seed: int = 0) -> dict[str, bool]:
    """The four conventions, checked at runtime: the three PyTorch ones give the output of one causal mask;
    the Hugging Face padding mask (1 = real token) hides the same keys as running without the pads."""
    torch.manual_seed(seed)
    q, k, v = (torch.randn(1, 2, length, 4) for _ in range(3))
    allowed = torch.ones(length, length, dtype=torch.bool).tril()
    additive = torch.zeros(length, length).masked_fill(~allowed, float("-inf"))
    reference = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    attention = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(1, length, 8)
    with torch.no_grad():
        mha_bool = attention(x, x, x, attn_mask=~allowed)[0]
        mha_float = attention(x, x, x, attn_mask=additive)[0]
    hf = torch.tensor([[1] * (length - 2) + [0, 0]])  # Hugging Face: 1 = a real token, attend to it; 0 = a pad
    padded = F.scaled_dot_product_attention(q, k, v, attn_mask=hf.bool()[:, None, None, :])  # (B, H, T, d)
    unpadded = F.scaled_dot_product_attention(q, k[:, :, :length - 2], v[:, :, :length - 2])
    return {
        "SDPA bool, True = attend": bool(torch.allclose(F.scaled_dot_product_attention(q, k, v, attn_mask=allowed),
                                                        reference, atol=1e-6)),
        "SDPA float, 0 / -inf": bool(torch.allclose(F.scaled_dot_product_attention(q, k, v, attn_mask=additive),
                                                    reference, atol=1e-6)),
        "nn.MultiheadAttention bool, True = blocked": bool(torch.allclose(mha_bool, mha_float, atol=1e-6)),
        "HF attention_mask, 1 = attend (vs no pads)": bool(torch.allclose(padded, unpadded, atol=1e-6)),
    }


def mask_mixups(length: int = 5, seed: int = 0) -> dict[str, str]:
    """A Hugging Face 1/0 padding mask passed where PyTorch expects its own: which calls raise, which run wrong."""
    torch.manual_seed(seed)
    q, k, v = (torch.randn(1, 2, length, 4) for _ in range(3))
    hf = torch.tensor([[1] * (length - 2) + [0, 0]])  # (B, T): 1 = real token
    right = F.scaled_dot_product_attention(q, k, v, attn_mask=hf.bool()[:, None, None, :])
    attention = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(1, length, 8)
    outcome = {}
    for name, call in (("the int mask as SDPA's attn_mask",
                        lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=hf[:, None, None, :])),
                       ("the int mask as nn.MultiheadAttention's key_padding_mask",
                        lambda: attention(x, x, x, key_padding_mask=hf)[0]),
                       ("mask.float() as SDPA's attn_mask",
                        lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=hf.float()[:, None, None, :]))):
        try:
            with torch.no_grad():
                out = call()
        except (RuntimeError, AssertionError, TypeError) as error:
            outcome[name] = f"raises {type(error).__name__}"
            continue
        if out.shape == right.shape:
            outcome[name] = f"runs, no error: output off by up to {float((out - right).abs().max()):.2f}"
        else:
            outcome[name] = "runs, no error"
    return outcome


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor, fill: float) -> torch.Tensor:
    """softmax over keys after filling blocked scores with ``fill``, in the scores' dtype (may raise or give NaN)."""
    return torch.softmax(scores.masked_fill(~allowed, fill), dim=-1)


def fp16_mask_value(fills=(-1e9, torch.finfo(torch.float32).min, float("-inf"),
                           torch.finfo(torch.float16).min), seed: int = 0) -> dict:
    """For each fill value in float16: 'raises …', or NaN rows, largest weight on a blocked key, and the empty row."""
    torch.manual_seed(seed)
    scores = torch.randn(3, 4).half()  # (T_q, T_k); the last row has every key blocked
    allowed = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    outcome = {}
    for fill in fills:
        try:
            weights = masked_softmax(scores, allowed, fill).float()
        except RuntimeError as error:
            outcome[fill] = f"raises RuntimeError ({str(error).split(' without')[0]})"
            continue
        nan_rows = int(weights.isnan().any(-1).sum())
        leak = float(torch.nan_to_num(weights[:2])[~allowed[:2]].max())  # rows that have an allowed key
        empty = weights[2]  # the row with every key blocked
        if empty.isnan().any():
            said = "NaN"
        elif torch.allclose(empty, torch.full_like(empty, 1 / empty.numel()), atol=1e-3):
            said = "uniform, all its weight on blocked keys"
        else:
            said = "weights " + ", ".join(f"{w:.2f}" for w in empty.tolist())
        rows = "1 NaN row" if nan_rows == 1 else f"{nan_rows} NaN rows"
        outcome[fill] = (f"{rows}; largest weight on a blocked key {leak:.1e} in rows with an allowed "
                         f"key; the empty row: {said}")
    return outcome


def fully_masked_row(seed: int = 0) -> Demo:
    """NaN rows of a written-out masked softmax when a row has no key (broken), and with such rows zeroed (fixed)."""
    torch.manual_seed(seed)
    scores = torch.randn(2, 3, 3)  # (B, T, T); text 1 is all padding
    allowed = torch.ones(2, 3, 3, dtype=torch.bool)
    allowed[1] = False
    broken = masked_softmax(scores, allowed, float("-inf"))
    fixed = torch.where(allowed.any(-1, keepdim=True), broken, torch.zeros_like(broken))  # rows with no key → 0
    count = lambda w: int(w.isnan().any(-1).sum())  # noqa: E731
    return Demo("NaN rows", count(broken), count(fixed), count(broken) > 0 and count(fixed) == 0,
                parts=("{} NaN row{s}",))


def sdpa_fully_masked() -> str:
    """What PyTorch's fused attention returns for a fully masked row on this version and device."""
    q = k = v = torch.randn(1, 1, 2, 4)
    allowed = torch.tensor([[False, False], [True, True]])
    row = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)[0, 0, 0]
    return "NaN" if row.isnan().any() else ("zeros" if bool((row == 0).all()) else "numbers")


def causal_with_cache(cached: int = 4, seed: int = 0) -> Demo:
    """One new query after ``cached`` keys: weight it gives to the cached keys with is_causal=True and with a mask."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 1, 1, 8, generator=generator)  # (B, H, T_q=1, d): the new token
    k = torch.randn(1, 1, cached + 1, 8, generator=generator)  # (B, H, T_k, d): the cache and the new token
    v = torch.eye(cached + 1).view(1, 1, cached + 1, cached + 1)  # value j = one-hot j: the output is the weights

    def seen(**mask) -> int:
        weights = F.scaled_dot_product_attention(q, k, v, **mask)[0, 0, 0]  # (T_k,)
        return int((weights > 1e-6).sum())

    everything = torch.ones(1, cached + 1, dtype=torch.bool)  # the new token may see every cached key and itself
    broken, fixed = seen(is_causal=True), seen(attn_mask=everything)
    return Demo(f"keys a new token attends to, after {cached} cached ones", broken, fixed,
                broken < fixed == cached + 1, parts=("{} key{s}",))
