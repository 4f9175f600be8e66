"""Checkers of chapter 7: the padding mask and a decoder's cross-attention step."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attnlab.attention import scaled_dot_product_attention_np
from attnlab.checkers.core import NOTHING_RETURNED, CheckResult, Mismatch, _as_array, _expect_shape, _needs_function, _run


# ---------------------------------------------------------------- chapter 7: padding mask and a decoder step


def check_padding_mask(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(lengths, max_len)`` → (B, 1, 1, max_len) booleans, True on the real tokens (the keys)."""
    _needs_function(fn)
    lengths, max_len = [3, 5, 1], 5
    want = (np.arange(max_len)[None, :] < np.array(lengths)[:, None])[:, None, None, :]  # (B, 1, 1, T)

    def shape():
        got = _as_array(fn(lengths, max_len), "The mask")
        if got.shape == (3, 1, max_len, 1):
            raise Mismatch("the padding is applied to the QUERIES (shape (B, 1, T, 1)): a padding mask blocks "
                           "keys, so the length axis goes last, (B, 1, 1, T), where it broadcasts over the keys.")
        if got.shape == (3, max_len):
            raise Mismatch("add the two broadcasting axes: (B, T) → (B, 1, 1, T), e.g. real[:, None, None, :], "
                           "so that one mask row serves every head and every query.")
        _expect_shape(got, want.shape, "The mask")

    def values():
        got = _as_array(fn(lengths, max_len), "The mask").astype(bool)
        if np.array_equal(got, ~want):
            raise Mismatch("your mask is inverted: here True means 'may attend', so True on the real tokens "
                           "and False on the padding. (nn.MultiheadAttention uses the opposite convention.)")
        off_by_one = (np.arange(max_len)[None, :] <= np.array(lengths)[:, None])[:, None, None, :]
        if np.array_equal(got, off_by_one):
            raise Mismatch("one pad too many is let through: a sequence of length 3 has real tokens at "
                           "positions 0, 1, 2, so use position < length, not <=.")
        if not np.array_equal(got, want):
            raise Mismatch("the mask should be True exactly where position < length of that sequence.")

    def empty():
        got = _as_array(fn([0, 2], 2), "The mask").astype(bool)
        if got.any(axis=-1).ravel()[0]:
            raise Mismatch("a sequence of length 0 has no real token: its row must be all False.")

    return _run("padding mask", [("shape", shape), ("real tokens vs pads", values), ("an empty sequence", empty)],
                verbose)


def check_cross_attention(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(x, memory, w_q, w_k, w_v)`` → (output (T, d_v), weights (T, S)): decoder states x (T, d)
    attend over encoder memory (S, d), with queries from x and keys and values from memory."""
    _needs_function(fn)
    rng = np.random.default_rng(7)
    length, source_length, d_model, d_k = 4, 6, 8, 8
    x = rng.normal(size=(length, d_model))  # (T, d): the decoder's states
    memory = rng.normal(size=(source_length, d_model))  # (S, d): the encoder's output
    w_q, w_k, w_v = (rng.normal(size=(d_model, d_k)) / np.sqrt(d_model) for _ in range(3))
    _, want_w = scaled_dot_product_attention_np(x @ w_q, memory @ w_k, memory @ w_v)

    def call():
        result = fn(x, memory, w_q, w_k, w_v)
        if result is None:
            raise Mismatch(NOTHING_RETURNED)
        if not isinstance(result, tuple) or len(result) != 2:
            raise Mismatch("return two things, `return output, weights`.")
        return _as_array(result[0], "The output"), _as_array(result[1], "The weights")

    def shapes():
        out, weights = call()
        if out.shape[:1] == (source_length,):
            raise Mismatch("the roles are swapped: the QUERIES come from the decoder (x), one row per output "
                           "position, and the keys and values from the encoder's memory: weights (T, S).")
        if weights.shape == (source_length, length):
            raise Mismatch(f"the weights are transposed: return them as (T, S) = {(length, source_length)}, one row "
                           "per decoder position over the source positions (the softmax's axis is the last one).")
        if weights.shape == (length, length):
            raise Mismatch("this is self-attention: the weights are (T, T). Take the keys and values from memory, "
                           "not from x, so that the weights are (T, S).")
        _expect_shape(weights, (length, source_length), "The weights (decoder positions × encoder positions)")
        _expect_shape(out, (length, d_k), "The output")

    def weights_right():
        _, weights = call()
        if np.allclose(weights.sum(axis=0), 1.0) and not np.allclose(weights.sum(axis=-1), 1.0):
            raise Mismatch("the softmax runs down the columns: take it along the last axis (the keys), "
                           "so each decoder position's row sums to 1.")
        causal = np.tril(np.ones((length, source_length), dtype=bool))
        _, masked = scaled_dot_product_attention_np(x @ w_q, memory @ w_k, memory @ w_v, mask=causal)
        if np.allclose(weights, masked, atol=1e-6):
            raise Mismatch("cross-attention has no causal mask: the whole source is known before decoding "
                           "starts, so every output position may read every input position.")
        _, unscaled = scaled_dot_product_attention_np(x @ w_q * np.sqrt(d_k), memory @ w_k, memory @ w_v)
        if np.allclose(weights, unscaled, atol=1e-6):
            raise Mismatch("divide the scores by √d_k before the softmax.")
        if not np.allclose(weights, want_w, atol=1e-6):
            raise Mismatch("the weights differ from softmax((x w_q)(memory w_k)ᵀ / √d_k) along the keys.")

    def output_right():
        import torch
        import torch.nn.functional as F

        out, _ = call()
        if np.allclose(out, want_w @ memory, atol=1e-6):
            raise Mismatch("project the values: weights @ (memory @ w_v), not weights @ memory.")
        q, k, v = (torch.tensor(m) for m in (x @ w_q, memory @ w_k, memory @ w_v))
        if not np.allclose(out, F.scaled_dot_product_attention(q, k, v).numpy(), atol=1e-6):
            raise Mismatch("the output should be the weights times the values, weights @ (memory @ w_v), "
                           "as PyTorch's F.scaled_dot_product_attention gives.")

    return _run("cross-attention", [("shapes", shapes), ("weights", weights_right), ("output", output_right)],
                verbose)


