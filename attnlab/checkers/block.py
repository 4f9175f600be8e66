"""Checkers of chapter 6: LayerNorm, the feed-forward network and the whole block."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attnlab.checkers.core import (
    CheckResult,
    Mismatch,
    _as_array,
    _call_explaining,
    _expect_shape,
    _needs_function,
    _run,
)


# ---------------------------------------------------------------- chapter 6: LayerNorm, feed-forward, the block


def _torch_case(seed: int, *shape: int):
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


NO_KEEPDIM = ("the mean or the variance lost its last axis, so it cannot be subtracted from x: take them with "
              "keepdim=True, x.mean(dim=-1, keepdim=True), so they have shape (B, T, 1) and broadcast against "
              "x (B, T, C).")


def _call_layer_norm(fn: Callable, *args, **options):
    """``fn(*args, **options)``, with the broadcasting error of a forgotten ``keepdim=True`` turned into a hint."""
    return _call_explaining(fn, {"must match the size of tensor": NO_KEEPDIM}, *args, **options)


def check_layer_norm(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(x, gain, bias, eps=1e-5)`` → LayerNorm of each token of x (B, T, C), as ``nn.LayerNorm`` computes it."""
    _needs_function(fn)
    import torch
    import torch.nn.functional as F

    x = 3 * _torch_case(6, 2, 3, 6) + 2  # (B, T, C), far from mean 0 and std 1
    gain, bias = 1 + 0.5 * _torch_case(7, 6), _torch_case(8, 6)
    want = F.layer_norm(x, (6,), gain, bias, eps=1e-5)

    def normalise(over, unbiased=False):
        mean = x.mean(dim=over, keepdim=True)
        var = x.var(dim=over, keepdim=True, unbiased=unbiased)
        return (x - mean) / torch.sqrt(var + 1e-5)

    def call(*args, **options):
        return _call_layer_norm(fn, *args, **options)

    def shape():
        _expect_shape(_as_array(call(x, gain, bias), "The output"), tuple(x.shape), "The output")

    def values():
        got = _as_array(call(x, gain, bias), "The output")
        if np.allclose(got, want.numpy(), atol=1e-5):
            return
        not_centred = ("the mean was not subtracted: LayerNorm centres each token first, (x - mean) / "
                       "sqrt(var + eps). Dividing x by its spread without centring it (as RMSNorm does, with the "
                       "root mean square) is a different normalisation.")
        mistakes = [
            (normalise(0), "you normalised across the sentences of the batch (dim 0): LayerNorm works on each "
                           "token's own features, the last axis: x.mean(dim=-1, keepdim=True)."),
            (normalise(1), "you normalised across the tokens (dim 1): LayerNorm works on each token's own "
                           "features, the last axis: x.mean(dim=-1, keepdim=True)."),
            (normalise((0, 1, 2)), "you normalised over the whole tensor at once: take one mean and one variance "
                                   "per token, over the last axis only (dim=-1, keepdim=True)."),
            (normalise(-1, unbiased=True), "the variance should be the biased one, dividing by C, not C - 1: "
                                           "x.var(dim=-1, keepdim=True, unbiased=False)."),
            (x / torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False) + 1e-5), not_centred),
            (x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-5), not_centred),
        ]
        for plain, hint in mistakes:
            for candidate in (plain, gain * plain + bias):
                if np.allclose(got, candidate.numpy(), atol=1e-5):
                    raise Mismatch(hint)
        if np.allclose(got, normalise(-1).numpy(), atol=1e-5):
            raise Mismatch("the normalisation is right, but gain and bias are missing: return gain * normalised + bias.")
        if np.allclose(got, (bias * normalise(-1) + gain).numpy(), atol=1e-5):
            raise Mismatch("gain and bias are swapped: multiply by gain, then add bias.")
        raise Mismatch("the values differ from nn.LayerNorm: (x - mean) / sqrt(var + eps) per token (last axis), "
                       "then * gain + bias.")

    def constant_token():
        flat = torch.full((1, 1, 6), 4.0)  # a token whose features are all equal: variance 0
        got = _as_array(call(flat, gain, bias), "The output")
        if not np.isfinite(got).all():
            raise Mismatch("a token whose features are all equal gives NaN: its variance is 0, so add eps inside "
                           "the square root, torch.sqrt(var + eps), to avoid dividing by zero.")
        if not np.allclose(got, bias.numpy()[None, None], atol=1e-5):
            raise Mismatch("for a constant token x - mean is 0, so the output should be exactly the bias.")

    def uses_eps():
        small = 0.01 * _torch_case(9, 1, 2, 6)  # variance comparable to eps: eps must be the one passed
        got = _as_array(call(small, gain, bias, eps=0.01), "The output")
        if np.allclose(got, F.layer_norm(small, (6,), gain, bias, eps=0.01).numpy(), atol=1e-5):
            return
        centred = small - small.mean(dim=-1, keepdim=True)
        var = small.var(dim=-1, keepdim=True, unbiased=False)
        if np.allclose(got, (gain * centred / (var.sqrt() + 0.01) + bias).numpy(), atol=1e-5):
            raise Mismatch("eps goes inside the square root: torch.sqrt(var + eps), not torch.sqrt(var) + eps.")
        if np.allclose(got, (gain * centred / torch.sqrt(var + 0.01 ** 2) + bias).numpy(), atol=1e-5):
            raise Mismatch("eps is added to the variance as it is, torch.sqrt(var + eps), not squared: "
                           "the variance is already on a squared scale.")
        raise Mismatch("with eps=0.01 the result differs: use the eps argument, not a fixed number.")

    return _run("LayerNorm", [("shape", shape), ("values against nn.LayerNorm", values),
                              ("a constant token", constant_token), ("the eps argument", uses_eps)], verbose)


def check_feed_forward(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(x, w1, b1, w2, b2)`` → relu(x @ w1 + b1) @ w2 + b2, with x (B, T, C), w1 (C, 4C), w2 (4C, C)."""
    _needs_function(fn)
    import torch

    x = _torch_case(10, 2, 5, 4)
    w1, b1 = _torch_case(11, 4, 16) / 2, _torch_case(12, 16)
    w2, b2 = _torch_case(13, 16, 4) / 4, _torch_case(14, 4)
    hidden = x @ w1 + b1  # (B, T, 4C)
    want = torch.relu(hidden) @ w2 + b2

    def shape():
        _expect_shape(_as_array(fn(x, w1, b1, w2, b2), "The output"), tuple(want.shape), "The output")

    def values():
        got = _as_array(fn(x, w1, b1, w2, b2), "The output")
        if np.allclose(got, want.numpy(), atol=1e-5):
            return
        mistakes = [
            (hidden @ w2 + b2, "the nonlinearity is missing: apply torch.relu to x @ w1 + b1 before the second layer. "
                               "Without it the two layers collapse into one linear map."),
            (torch.relu(torch.relu(hidden) @ w2 + b2), "the ReLU should come only between the two layers, not after "
                                                       "the second one: the output may be negative."),
            (torch.relu(hidden) @ w2, "the second bias b2 is missing."),
            (torch.relu(x @ w1) @ w2 + b2, "the first bias b1 is missing: relu(x @ w1 + b1)."),
        ]
        for candidate, hint in mistakes:
            if np.allclose(got, candidate.numpy(), atol=1e-5):
                raise Mismatch(hint)
        raise Mismatch("the values differ: relu(x @ w1 + b1) @ w2 + b2, the same for every token.")

    def position_wise():
        order = torch.tensor([4, 2, 0, 1, 3])
        got = _as_array(fn(x[:, order], w1, b1, w2, b2), "The output")
        if not np.allclose(got, want[:, order].numpy(), atol=1e-5):
            raise Mismatch("shuffling the tokens should shuffle the outputs the same way: each token must be "
                           "treated on its own, with the same weights.")

    return _run("position-wise feed-forward network", [("shape", shape), ("values", values),
                                                        ("position-wise", position_wise)], verbose)


def _encoder_layer_case(norm_first: bool, seed: int = 15):
    """PyTorch's layer, the same weights as parts (attention, ffn, norm1, norm2), an input and the expected output."""
    import torch
    from torch import nn

    from attnlab.blocks import FeedForward, MultiHeadAttention, load_from_torch_mha

    torch.manual_seed(seed)
    theirs = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True,
                                        norm_first=norm_first).eval()
    with torch.no_grad():  # LayerNorms with gains and biases of their own: swapping them is visible
        for norm in (theirs.norm1, theirs.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0, 0.3)
    mha = load_from_torch_mha(MultiHeadAttention(16, 4), theirs.self_attn).eval()
    ffn = FeedForward(16, 64).eval()
    ffn.expand.load_state_dict(theirs.linear1.state_dict())
    ffn.contract.load_state_dict(theirs.linear2.state_dict())
    norm1, norm2 = nn.LayerNorm(16), nn.LayerNorm(16)
    norm1.load_state_dict(theirs.norm1.state_dict())
    norm2.load_state_dict(theirs.norm2.state_dict())
    x = 2 * torch.randn(2, 5, 16)

    def attention(h):
        return mha(h)[0]

    with torch.no_grad():
        want = theirs(x)
    return x, attention, ffn, norm1, norm2, want


def check_block(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(x, attention, ffn, norm1, norm2, norm_first)`` → one Transformer block, against ``nn.TransformerEncoderLayer``.

    ``attention`` and ``ffn`` map (B, T, C) → (B, T, C); ``norm1`` and ``norm2`` are ``nn.LayerNorm`` s.
    """
    _needs_function(fn)
    import torch

    def diagnose(norm_first: bool) -> None:
        x, a, f, n1, n2, want = _encoder_layer_case(norm_first)
        with torch.no_grad():
            got = _as_array(fn(x, a, f, n1, n2, norm_first), "The output")
            _expect_shape(got, tuple(x.shape), "The output")
            if np.allclose(got, want.numpy(), atol=1e-4):
                return

            def post(h, n1=n1, n2=n2):
                h = n1(h + a(h))
                return n2(h + f(h))

            def pre(h):
                h = h + a(n1(h))
                return h + f(n2(h))

            if norm_first:
                mistakes = [
                    (post(x), "this is post-LN (LayerNorm after each addition), but norm_first=True asks for pre-LN: "
                              "x = x + attention(norm1(x)), then x = x + ffn(norm2(x))."),
                    (f(n2(a(n1(x)))), "the residual connections are missing: add each sublayer's output to its "
                                      "input, x = x + attention(norm1(x))."),
                    (n2(n1(x) + a(n1(x))) + f(n2(n1(x) + a(n1(x)))),
                     "the stream itself was normalised: in pre-LN only the sublayer's input is normalised, and its "
                     "output is added to the un-normalised x: x = x + attention(norm1(x))."),
                    (f(n2(x + a(n1(x)))), "the second residual connection is missing: h = x + attention(norm1(x)), "
                                          "then return h + ffn(norm2(h))."),
                ]
            else:
                mistakes = [
                    (pre(x), "this is pre-LN (LayerNorm before each sublayer), but norm_first=False asks for post-LN: "
                             "x = norm1(x + attention(x)), then x = norm2(x + ffn(x))."),
                    (n2(f(n1(a(x)))), "the residual connections are missing: add the input back before each "
                                      "LayerNorm, norm1(x + attention(x))."),
                    (n2(f(n1(x + a(x)))), "the second residual connection is missing: norm2(h + ffn(h)), "
                                          "where h is the output of the first half."),
                    (n2(n1(x + a(x)) + f(x)), "the FFN should read h = norm1(x + attention(x)), the output of the "
                                              "first half, not the block's input x."),
                    (post(x, n2, n1), "norm1 and norm2 are swapped: norm1 follows attention, norm2 follows the FFN."),
                ]
            for candidate, hint in mistakes:
                if np.allclose(got, candidate.numpy(), atol=1e-4):
                    raise Mismatch(hint)
        name = "pre-LN" if norm_first else "post-LN"
        raise Mismatch(f"with norm_first={norm_first} ({name}) the output differs from nn.TransformerEncoderLayer.")

    return _run("Transformer block", [("post-LN (norm_first=False)", lambda: diagnose(False)),
                                      ("pre-LN (norm_first=True)", lambda: diagnose(True))], verbose)
