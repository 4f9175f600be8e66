"""Checkers of chapter 13: fix the usual mistakes (masks, pooling, fp16, √d_k, future leak, empty rows)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch

from attnlab.checkers.core import (NOTHING_RETURNED, CheckResult, Mismatch, _as_array, _expect_shape, _needs_function,
                                   _run)


def _tensor(value, what: str) -> torch.Tensor:
    if value is None:
        raise Mismatch(NOTHING_RETURNED)
    if not isinstance(value, torch.Tensor):
        raise Mismatch(f"{what} should be a torch tensor, but your function returned {type(value).__name__}.")
    return value


def check_mha_mask(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(allowed)``: SDPA's boolean mask (True = attend) → nn.MultiheadAttention's (True = blocked)."""
    _needs_function(fn)

    def case(allowed: torch.Tensor):
        got = _tensor(fn(allowed.clone()), "the mask")
        if got.shape != allowed.shape:
            raise Mismatch(f"the mask should keep its shape {tuple(allowed.shape)}, got {tuple(got.shape)}.")
        if got.dtype == torch.bool:
            if torch.equal(got, allowed):
                raise Mismatch("you returned the mask unchanged: nn.MultiheadAttention reads True as BLOCKED, "
                               "so the query would attend only where it must not. Invert it: ~allowed.")
            if torch.equal(got, ~allowed.transpose(-2, -1)):
                raise Mismatch("inverted, but transposed too: rows are queries, columns keys; keep the layout.")
            if not torch.equal(got, ~allowed):
                raise Mismatch("True must be exactly where allowed is False (the blocked keys).")
            return
        if got.is_floating_point():
            values = got.detach().cpu().float()
            if bool((values[allowed] == 0).all()) and bool((values[~allowed] <= -1e4).all()):
                return  # -inf, finfo.min or -1e9: all block the key
            if bool((values[~allowed] == 0).all()) and bool((values[allowed] < 0).all()):
                raise Mismatch("your float mask is the wrong way round: it is ADDED to the scores, so put 0.0 where "
                               "the query may attend and -inf (or a very negative number) where it may not.")
            raise Mismatch("a float mask is added to the scores: 0.0 where the query may attend, -inf (or "
                           "torch.finfo(dtype).min) where not.")
        raise Mismatch(f"return booleans (True = blocked) or an additive float mask, not {got.dtype}: "
                       "nn.MultiheadAttention raises on integer masks (\"only bool and floating types of attn_mask "
                       "are supported\").")

    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    window = causal & ~torch.ones(5, 5, dtype=torch.bool).tril(-2)
    return _run("mask for nn.MultiheadAttention", [("causal mask, 5 tokens", lambda: case(causal)),
                                                   ("sliding window of 2", lambda: case(window))], verbose)


def check_mean_pool(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(hidden, mask)``: (B, T, C) token vectors, (B, T) 1/0 mask → (B, C) mean over real tokens."""
    _needs_function(fn)
    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(3, 6, 4, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
    weights = mask.unsqueeze(-1).float()
    want = ((hidden * weights).sum(1) / weights.sum(1)).numpy()

    def case():
        got = _as_array(fn(hidden.clone(), mask.clone()), "the pooled vectors")
        _expect_shape(got, (3, 4), "the pooled vectors (B, C)")
        if np.allclose(got, want, atol=1e-5):
            return
        if np.allclose(got, hidden.mean(1).numpy(), atol=1e-5):
            raise Mismatch("your mean includes the padding: text 2 has 3 real tokens and 3 pads. Weigh by the "
                           "mask: (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).")
        if np.allclose(got, (hidden * weights).sum(1).numpy() / 6, atol=1e-5):
            raise Mismatch("you divide by T, the padded length: divide by the number of REAL tokens, mask.sum(1).")
        if np.allclose(got, hidden[:, 0].numpy(), atol=1e-5):
            raise Mismatch("that is the first ([CLS]) token's vector: MiniLM's sentence vector is the mean of all "
                           "real tokens.")
        if np.allclose(got, (hidden * weights).sum(1).numpy(), atol=1e-5):
            raise Mismatch("that is the sum: divide by the number of real tokens.")
        raise Mismatch("text 2's vector should be the mean of its first 3 token vectors only.")

    def no_pads():
        got = _as_array(fn(hidden[:1].clone(), mask[:1].clone()), "the pooled vector")
        _expect_shape(got, (1, 4), "the pooled vectors (B, C)")
        if not np.allclose(got, hidden[:1].mean(1).numpy(), atol=1e-5):
            raise Mismatch("with no padding, the result should be the plain mean over tokens.")

    return _run("mean pooling over real tokens", [("a batch with 3 and 2 real tokens", case),
                                                  ("one text, no padding", no_pads)], verbose)


def check_safe_fill(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(scores, allowed)``: blocked scores filled with the dtype's most negative number, in fp32 and fp16."""
    _needs_function(fn)
    allowed = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)

    def case(dtype):
        scores = torch.randn(3, 3, generator=torch.Generator().manual_seed(1)).to(dtype)
        try:
            got = _tensor(fn(scores.clone(), allowed.clone()), "the filled scores")
        except RuntimeError as error:
            if "overflow" in str(error) or "converted" in str(error):
                raise Mismatch(f"in {dtype} your fill value does not fit (largest magnitude "
                               f"{torch.finfo(dtype).max:.4g}): -1e9 and float32's minimum overflow. Use "
                               "torch.finfo(scores.dtype).min.") from None
            raise
        if got.dtype != dtype:
            raise Mismatch(f"keep the scores' dtype ({dtype}); yours returned {got.dtype}.")
        if torch.isinf(got).any():
            raise Mismatch("-inf is fine for a row with at least one allowed key, but a row with none (row 3 "
                           "here) becomes NaN after softmax (0/0). The task asks for the most negative FINITE "
                           "number: torch.finfo(scores.dtype).min (the empty row then comes out uniform; section 6 "
                           "zeroes it).")
        if not torch.equal(got[allowed], scores[allowed]):
            raise Mismatch("allowed scores must stay as they are; fill only where allowed is False "
                           "(masked_fill(~allowed, ...)).")
        if not bool((got[~allowed] == torch.finfo(dtype).min).all()):
            if bool((got[~allowed] > -100).any()):
                raise Mismatch("the blocked scores are not negative enough: softmax would still give them weight.")
            raise Mismatch("your fill blocks the keys, but the task asks for the most negative finite number of "
                           "each dtype: torch.finfo(scores.dtype).min (a fixed value such as -1e4 works in fp16 but "
                           "is not that number).")

    return _run("fp16-safe mask fill", [("float16", lambda: case(torch.float16)),
                                        ("float32", lambda: case(torch.float32))], verbose)


def check_scaled_scores(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(q, k)``: (B, T, d) each → (B, T, T) scores q kᵀ / √d."""
    _needs_function(fn)
    generator = torch.Generator().manual_seed(5)
    q, k = torch.randn(2, 3, 16, generator=generator), torch.randn(2, 4, 16, generator=generator)
    raw = q @ k.transpose(-2, -1)

    def case():
        got = _as_array(fn(q.clone(), k.clone()), "the scores")
        if got.shape == (2, 4, 3):
            raise Mismatch("your scores are (B, T_k, T_q): rows must be queries, q @ k.transpose(-2, -1).")
        _expect_shape(got, (2, 3, 4), "the scores (B, T_q, T_k)")
        want = (raw / math.sqrt(16)).numpy()
        if np.allclose(got, want, atol=1e-5):
            return
        if np.allclose(got, raw.numpy(), atol=1e-4):
            raise Mismatch("no scaling: divide by math.sqrt(d_k), so the scores' spread stays near 1 whatever d_k.")
        if np.allclose(got, (raw / 16).numpy(), atol=1e-5):
            raise Mismatch("you divide by d_k; divide by its square root, math.sqrt(d_k).")
        if np.allclose(got, (raw / math.sqrt(3)).numpy(), atol=1e-5) or np.allclose(got, (raw / 2).numpy(), atol=1e-5):
            raise Mismatch("d_k is the size of each query and key, q.size(-1), not the number of tokens.")
        raise Mismatch("expected q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)).")

    return _run("scaled scores", [("B=2, 3 queries, 4 keys, d_k=16", case)], verbose)


def _tiny_gpts():
    from attnlab.gpt import GPT, GPTConfig
    from attnlab.pitfalls import without_causal_mask

    torch.manual_seed(0)
    causal = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=32)).eval()
    one_ahead = copy.deepcopy(causal)
    one_ahead.blocks = torch.nn.ModuleList(_PeeksOneAhead(block) for block in one_ahead.blocks)
    return causal, without_causal_mask(causal).eval(), one_ahead.eval()


class _PeeksOneAhead(torch.nn.Module):
    """A block whose mask lets each position see one token ahead: a leak of exactly one step."""

    def __init__(self, block: torch.nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x, mask=None, is_causal=False, need_weights=False):
        length = x.size(1)
        ahead = torch.ones(length, length, dtype=torch.bool, device=x.device).tril(1)  # True = may attend
        return self.block(x, mask=ahead, is_causal=False, need_weights=need_weights)


def check_future_leak(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(model, ids, cut)`` → the largest change of the logits before ``cut`` when ids[:, cut:] change."""
    _needs_function(fn)
    causal, sees_future, one_ahead = _tiny_gpts()
    ids = torch.randint(0, 20, (2, 12), generator=torch.Generator().manual_seed(2))

    def measure(model):
        got = fn(model, ids.clone(), 6)
        if got is None:
            raise Mismatch(NOTHING_RETURNED)
        try:
            return float(got)
        except (TypeError, ValueError, RuntimeError):
            raise Mismatch(f"return one number (a float), not {type(got).__name__}.") from None

    def on_causal():
        leak = measure(causal)
        if leak > 1e-5:
            raise Mismatch(f"a causal GPT should give 0 (yours: {leak:.3g}). Compare only positions BEFORE cut, "
                           "logits[:, :cut]: the changed tokens themselves, and what follows them, may change.")

    def on_leaky():
        leak = measure(sees_future)
        if leak < 1e-3:
            raise Mismatch(f"a GPT without its causal mask should give a clear change (yours: {leak:.3g}). Did you "
                           "change the tokens from cut on (ids[:, cut:]), and run the model on both versions?")

    def on_one_ahead():
        leak = measure(one_ahead)
        if leak < 1e-3:
            raise Mismatch(f"a GPT that sees just ONE token ahead should give a clear change (yours: {leak:.3g}). "
                           "Change every token from position cut on (ids[:, cut:], the token AT cut included), and "
                           "compare every position before it (logits[:, :cut], position cut-1 included).")

    return _run("future leak", [("a causal GPT: no leak", on_causal), ("a GPT without its mask: a leak", on_leaky),
                                ("a GPT that peeks one token ahead: a leak", on_one_ahead)], verbose)


def check_safe_softmax(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(scores, allowed)`` → weights: softmax over allowed keys; a row with no allowed key all zeros."""
    _needs_function(fn)
    scores = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(4))
    allowed = torch.ones(2, 3, 3, dtype=torch.bool).tril()
    allowed[1, 0] = False  # one query with nothing to attend to

    def case():
        got = _tensor(fn(scores.clone(), allowed.clone()), "the weights")
        if got.shape != scores.shape:
            raise Mismatch(f"the weights should have the scores' shape {tuple(scores.shape)}, got {tuple(got.shape)}.")
        if got.isnan().any():
            raise Mismatch("NaN in a row whose every key is masked (softmax of all -inf is 0/0): set those rows "
                           "to 0, e.g. torch.where(allowed.any(-1, keepdim=True), weights, 0).")
        if bool((got[~allowed].abs() > 1e-6).any()):
            if torch.allclose(got[1, 0], torch.full((3,), 1 / 3)):
                raise Mismatch("the empty row came out uniform (1/3 each): it averages keys the query may not see. "
                               "A row with no allowed key should be all zeros.")
            raise Mismatch("weight on a masked key: fill masked scores with -inf (or the dtype's minimum) first.")
        want = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
        if torch.allclose(got, torch.softmax(scores, -1) * allowed, atol=1e-5):
            raise Mismatch("you masked AFTER the softmax, so the allowed weights no longer sum to 1. Mask BEFORE it: "
                           "fill blocked scores with -inf, softmax, then zero the rows with no allowed key.")
        if not torch.allclose(got, want, atol=1e-5):
            raise Mismatch("rows with allowed keys should be a softmax over the last dimension (the keys).")

    return _run("NaN-safe masked softmax", [("a batch with one empty row", case)], verbose)
