"""Attention, written to be read: softmax, masks and scaled dot-product attention.

NumPy versions serve the first chapters; PyTorch versions serve the models. Both return
the attention weights as well as the output, because a course needs to show them.

Mask convention (the same as ``torch.nn.functional.scaled_dot_product_attention``): a
boolean mask is True where a query MAY attend to a key. (``nn.MultiheadAttention`` uses the
opposite convention; :func:`additive_mask` and the tests show the conversion.)
A query whose keys are all masked gets weights of 0 and an output of 0, never NaN, and
its gradients are 0 too: the same as PyTorch's ``scaled_dot_product_attention`` with a
boolean mask (checked against torch 2.13, whose fused kernel also returns 0 there).
NaN inputs are refused with an :class:`~attnlab.errors.InputError`, never hidden.
"""

from __future__ import annotations

import math

import numpy as np

from attnlab import validate
from attnlab.errors import InputError

# ---------------------------------------------------------------- NumPy


def softmax(scores: np.ndarray, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """Softmax along ``axis``; lower temperature sharpens, higher flattens."""
    temperature = validate.positive_number(temperature, "temperature")
    scores = validate.numeric_array(scores, "scores")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -scores.ndim <= axis < scores.ndim:
        raise InputError(f"axis {axis!r} does not exist for scores of shape {scores.shape}: use -1 for the last one.")
    if scores.shape[axis] == 0:
        raise InputError(f"scores of shape {scores.shape} have no entries along axis {axis}: softmax needs at least one.")
    scaled = scores / temperature
    # exp(x - max) / sum(exp(x - max)) equals exp(x) / sum(exp(x)), and never overflows.
    # A row that is all -inf (fully masked) has max -inf; shift it by 0 instead.
    row_max = scaled.max(axis=axis, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    exps = np.exp(scaled - row_max)
    total = exps.sum(axis=axis, keepdims=True)
    return np.divide(exps, total, out=np.zeros_like(exps), where=total > 0)


def causal_mask_np(size: int) -> np.ndarray:
    """(size, size) booleans, True on and below the diagonal: query i may see keys 0..i."""
    size = validate.whole_number(size, "size")
    return np.tril(np.ones((size, size), dtype=bool))


def scaled_dot_product_attention_np(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """softmax(q kᵀ / √d_k) v, with an optional boolean mask; returns (output, weights)."""
    q, k, v = (validate.numeric_array(x, name, min_dims=2) for x, name in ((q, "q"), (k, "k"), (v, "v")))
    _check_qkv_shapes(tuple(q.shape), tuple(k.shape), tuple(v.shape))
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise InputError(f"mask must be boolean (True where a query may attend), not {mask.dtype}: "
                             "use mask.astype(bool) or a comparison such as lengths > 0.")
        _check_mask_shape(tuple(mask.shape), (*q.shape[:-1], k.shape[-2]))
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(d_k)  # (..., T_q, T_k)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)  # masked BEFORE the softmax, so rows still sum to 1
    weights = softmax(scores, axis=-1)  # (..., T_q, T_k)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


def self_attention_weights(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Weights of the simplest self-attention, queries = keys = ``x``: softmax(x xᵀ / √d)."""
    x = validate.numeric_array(x, "x", min_dims=2)  # (T, d)
    if x.ndim != 2:
        raise InputError(f"x must be a (tokens, features) matrix, got shape {x.shape}.")
    scores = x @ x.T / np.sqrt(x.shape[-1])  # (T, T)
    return softmax(scores, axis=-1, temperature=temperature)


def rows_sum_to_one(weights: np.ndarray, atol: float = 1e-6) -> bool:
    """True when every row is a probability distribution: non-negative and summing to 1."""
    try:
        weights = np.asarray(weights, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"weights must be an array of numbers, not {type(weights).__name__}.") from None
    return bool(np.all(weights >= 0) and np.allclose(weights.sum(axis=-1), 1.0, atol=atol))


# ---------------------------------------------------------------- PyTorch


def _check_qkv_shapes(q: tuple, k: tuple, v: tuple) -> None:
    if q[-1] != k[-1]:
        raise InputError(f"q and k must have the same last size d_k to be multiplied: q is {q}, k is {k}.")
    if k[-2] != v[-2]:
        raise InputError(f"k and v must have one row per key, the same number: k is {k}, v is {v}.")
    if q[-1] == 0:
        raise InputError(f"q and k have d_k = 0 features: give each token at least one, got q {q}.")


def _check_mask_shape(mask: tuple, scores: tuple) -> None:
    try:
        np.broadcast_shapes(mask, scores)
    except ValueError:
        raise InputError(f"mask of shape {mask} does not fit scores of shape {scores} (queries × keys): "
                         "it must broadcast to (..., T_q, T_k).") from None


def causal_mask(size: int, device=None, n_keys: int | None = None):
    """(size, size) bool tensor, True where query i may attend to key j (j <= i).

    With ``n_keys``, (size, n_keys), aligned top-left as ``is_causal`` of PyTorch's attention.
    """
    import torch

    size = validate.whole_number(size, "size")
    n_keys = size if n_keys is None else validate.whole_number(n_keys, "n_keys")
    return torch.ones(size, n_keys, dtype=torch.bool, device=validate.device(device)).tril()


def padding_mask(lengths, max_len: int, device=None):
    """(B, 1, 1, max_len) bool tensor, True on real tokens and False on padding.

    It is made on ``device``; when that is left out, on the device of ``lengths`` if that is a
    tensor (so a mask for CUDA tensors is made from ``lengths.to("cuda")`` or ``device="cuda"``).
    """
    import torch

    max_len = validate.whole_number(max_len, "max_len")
    if isinstance(lengths, torch.Tensor):
        where = lengths.device if device is None else validate.device(device)
        if lengths.is_floating_point() or lengths.dtype == torch.bool or lengths.is_complex():
            raise InputError(f"lengths must be whole numbers of tokens, not {lengths.dtype}.")
        lengths = lengths.to(where)
    else:
        values = list(lengths) if isinstance(lengths, (list, tuple, range, np.ndarray)) else None
        if not values or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in values):
            raise InputError(f"lengths must be a list of whole numbers, one per sequence, such as [3, 5], "
                             f"got {lengths!r}.")
        lengths = torch.tensor([int(n) for n in values], device=validate.device(device))
    if lengths.dim() != 1:
        raise InputError(f"lengths must be one number per sequence (1-D), got shape {tuple(lengths.shape)}.")
    if lengths.numel() and (lengths.min() < 0 or lengths.max() > max_len):
        raise InputError(f"every length must be between 0 and max_len={max_len}, got {lengths.tolist()}.")
    positions = torch.arange(max_len, device=lengths.device)  # (T,)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]


def additive_mask(mask, dtype=None):
    """Boolean mask (True = may attend) → float mask to add to scores (0 or -inf), on the mask's device."""
    import torch

    validate.tensor(mask, "mask", min_dims=0, floating=False)
    if mask.dtype != torch.bool:
        raise InputError(f"additive_mask turns a boolean mask into 0 / -inf; this one is {mask.dtype}: "
                         "build it with a comparison, or use .bool().")
    zeros = torch.zeros(mask.shape, device=mask.device, dtype=dtype or torch.get_default_dtype())
    return zeros.masked_fill(~mask, float("-inf"))


def _check_torch_attention(q, k, v, mask, dropout_p) -> None:
    import torch

    for x, name in ((q, "q"), (k, "k"), (v, "v")):
        validate.tensor(x, name, min_dims=2)
    if not q.dtype == k.dtype == v.dtype:
        raise InputError(f"q, k and v must have the same dtype, got {q.dtype}, {k.dtype} and {v.dtype}: "
                         "convert them with .to(q.dtype).")
    if not q.device == k.device == v.device:
        raise InputError(f"q, k and v must be on the same device, got {q.device}, {k.device} and {v.device}: "
                         "move them with .to(q.device).")
    _check_qkv_shapes(tuple(q.shape), tuple(k.shape), tuple(v.shape))
    for x, name in ((q, "q"), (k, "k"), (v, "v")):
        if torch.isnan(x).any():
            raise InputError(f"{name} contains NaN (not a number): check the computation that produced it.")
    if mask is not None:
        check_mask(mask, q, k)
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p <= 1.0:
        raise InputError(f"dropout_p must be a probability between 0 and 1, got {dropout_p!r}.")


def check_mask(mask, q, k) -> None:
    """Refuse a mask that attention cannot use: it must be boolean (True = may attend) or additive
    (floats added to the scores, no NaN), on q's device, and shaped for the (…, T_q, T_k) scores."""
    import torch

    validate.tensor(mask, "mask", min_dims=0, floating=False)
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise InputError(f"mask must be boolean (True = may attend) or floating-point (added to the scores), "
                         f"not {mask.dtype}: for 0/1 integers use mask.bool().")
    if mask.device != q.device:
        raise InputError(f"mask is on {mask.device} but q is on {q.device}: move it with mask.to(q.device).")
    if mask.is_floating_point() and torch.isnan(mask).any():
        raise InputError("the additive mask contains NaN: use 0 where a query may attend and -inf elsewhere.")
    _check_mask_shape(tuple(mask.shape), (*q.shape[:-1], k.shape[-2]))


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p: float = 0.0, training: bool = False):
    """Written-out attention on tensors (..., T, d); returns (output, weights).

    ``mask`` is boolean (True = may attend) or additive (added to the scores), broadcastable
    to (..., T_q, T_k). Equal to ``F.scaled_dot_product_attention``, which returns no weights.
    """
    import torch
    import torch.nn.functional as F

    _check_torch_attention(q, k, v, mask, dropout_p)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    # A fully masked row is all -inf, and its softmax would be 0/0 = NaN (in the gradients too).
    # Give such a row finite scores before the softmax, then zero weights after it: output 0, gradients 0.
    blocked = torch.isneginf(scores).all(dim=-1, keepdim=True)  # (..., T_q, 1)
    weights = torch.softmax(scores.masked_fill(blocked, 0.0), dim=-1).masked_fill(blocked, 0.0)
    if dropout_p > 0.0 and training:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (..., T_q, d_v), (..., T_q, T_k)


def multi_head_attention_np(
    x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray, w_v: np.ndarray, w_o: np.ndarray, n_heads: int
) -> np.ndarray:
    """Multi-head self-attention of x (T, d) with (d, d) projection matrices; returns (T, d)."""
    x = validate.numeric_array(x, "x", min_dims=2)
    if x.ndim != 2:
        raise InputError(f"x must be a (tokens, d_model) matrix, got shape {x.shape}.")
    length, d_model = x.shape
    n_heads = validate.whole_number(n_heads, "n_heads", minimum=1)
    if d_model % n_heads:
        raise InputError(f"d_model={d_model} is not divisible by n_heads={n_heads}: each head gets d_model / n_heads.")
    w_q, w_k, w_v, w_o = (validate.numeric_array(w, name, min_dims=2)
                          for w, name in ((w_q, "w_q"), (w_k, "w_k"), (w_v, "w_v"), (w_o, "w_o")))
    for w, name in ((w_q, "w_q"), (w_k, "w_k"), (w_v, "w_v"), (w_o, "w_o")):
        if w.shape != (d_model, d_model):
            raise InputError(f"{name} must be ({d_model}, {d_model}) for x of width {d_model}, got {w.shape}.")
    head_dim = d_model // n_heads

    def split(m: np.ndarray) -> np.ndarray:  # (T, d) → (H, T, d/H)
        return m.reshape(length, n_heads, head_dim).transpose(1, 0, 2)

    heads, _ = scaled_dot_product_attention_np(split(x @ w_q), split(x @ w_k), split(x @ w_v))  # (H, T, d/H)
    merged = heads.transpose(1, 0, 2).reshape(length, d_model)  # heads side by side: (T, d)
    return merged @ w_o
