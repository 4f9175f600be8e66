"""Checkers of chapter 5: splitting and merging heads, multi-head attention against PyTorch."""

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


# ---------------------------------------------------------------- chapter 5: multi-head attention


def _torch_output(value, what: str, shape: tuple) -> np.ndarray:
    """``value`` (or the first of a returned (output, weights) pair) as an array of ``shape``."""
    if isinstance(value, tuple) and value:
        value = value[0]
    array = _as_array(value, what)
    _expect_shape(array, shape, what)
    return array


VIEW_AFTER_TRANSPOSE = ("`.view` cannot join the heads after `.transpose(1, 2)`: the transpose only changes how the "
                        "numbers are read, not where they sit in memory, and `.view` needs them in order. Use "
                        "`.reshape(B, T, C)` (or `.contiguous().view(B, T, C)`), not `.view`.")


def _call(fn: Callable, *args):
    """``fn(*args)``, with the error of a ``.view`` after a transpose turned into a hint."""
    return _call_explaining(fn, {"view size is not compatible": VIEW_AFTER_TRANSPOSE}, *args)


def check_split_heads(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(x, n_heads)`` → (B, n_heads, T, C / n_heads) for x (B, T, C): each head a block of features."""
    _needs_function(fn)
    import torch

    batch, length, width, n_heads = 2, 5, 12, 3
    head_dim = width // n_heads
    x = torch.arange(batch * length * width, dtype=torch.float32).reshape(batch, length, width)
    want = x.view(batch, length, n_heads, head_dim).transpose(1, 2).numpy()

    def shape():
        got = _as_array(fn(x, n_heads), "The split")
        if got.shape == (batch, length, n_heads, head_dim):
            raise Mismatch(f"the shape is (B, T, heads, d_head) = {got.shape}: swap the token and head axes "
                           "with .transpose(1, 2), so that each head holds all its tokens.")
        _expect_shape(got, want.shape, "The split (B, heads, T, d_head)")

    def values():
        got = _as_array(fn(x, n_heads), "The split")
        if np.array_equal(got, x.numpy().reshape(want.shape)):
            raise Mismatch("you reshaped straight to (B, heads, T, d_head) without a transpose: that cuts the "
                           "token axis into pieces, so a 'head' gets features of other tokens. View as "
                           "(B, T, heads, d_head) first, then .transpose(1, 2).")
        interleaved = x.view(batch, length, head_dim, n_heads).permute(0, 3, 1, 2).numpy()
        if np.array_equal(got, interleaved):
            raise Mismatch("each head takes every n_heads-th feature: a head must be one block of d_head features "
                           "side by side. View as (B, T, heads, d_head), not (B, T, d_head, heads).")
        if not np.array_equal(got, want):
            raise Mismatch("head h should hold features h·d_head … (h+1)·d_head − 1 of every token: "
                           "x.view(B, T, n_heads, d_head).transpose(1, 2).")

    def other_sizes():
        y = torch.randn(1, 7, 8)
        try:
            returned = fn(y, 4)
        except NotImplementedError:
            raise
        except Exception as error:
            raise Mismatch(f"with x of shape (1, 7, 8) and 4 heads your function raised {type(error).__name__}: "
                           "read B, T and C from x.shape and compute d_head = C // n_heads, rather than "
                           "fixed numbers.") from None
        got = _as_array(returned, "With 4 heads of width 2, the split")
        _expect_shape(got, (1, 4, 7, 2), "With x of shape (1, 7, 8) and 4 heads, the split")
        if not np.allclose(got, y.view(1, 7, 4, 2).transpose(1, 2).numpy()):
            raise Mismatch("with another batch size, length or number of heads the values differ: read B, T and "
                           "C from x.shape and compute d_head = C // n_heads, rather than fixed numbers.")

    return _run("split_heads", [("shape", shape), ("which features go to which head", values),
                                ("other sizes", other_sizes)], verbose)


def check_merge_heads(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(x)`` → (B, T, n_heads · d_head) for x (B, n_heads, T, d_head): the heads side by side."""
    _needs_function(fn)
    import torch

    batch, n_heads, length, head_dim = 2, 3, 5, 4
    x = torch.arange(batch * n_heads * length * head_dim, dtype=torch.float32).reshape(batch, n_heads, length,
                                                                                        head_dim)
    want = x.transpose(1, 2).reshape(batch, length, n_heads * head_dim).numpy()

    def shape():
        got = _as_array(_call(fn, x), "The merged heads")
        if got.shape == (batch, length, n_heads, head_dim):
            raise Mismatch("the heads are back beside each other but not joined: reshape (B, T, heads, d_head) "
                           "to (B, T, heads · d_head).")
        _expect_shape(got, want.shape, "The merged heads (B, T, heads · d_head)")

    def values():
        got = _as_array(_call(fn, x), "The merged heads")
        if np.array_equal(got, x.numpy().reshape(want.shape)):
            raise Mismatch("you reshaped (B, heads, T, d_head) straight to (B, T, C): that mixes tokens. Put the "
                           "token axis back in front of the heads first: .transpose(1, 2), then .reshape(B, T, C).")
        if not np.array_equal(got, want):
            raise Mismatch("token t should get head 0's vector, then head 1's, …: "
                           "x.transpose(1, 2).reshape(B, T, heads * d_head).")

    def undoes_split():
        y = torch.randn(1, 6, 8)
        split = y.view(1, 6, 2, 4).transpose(1, 2)  # (1, 2, 6, 4), not contiguous in memory
        got = _as_array(_call(fn, split), "Merging a split")
        _expect_shape(got, (1, 6, 8), "Merging 2 heads of (1, 6, 4)")
        if not np.allclose(got, y.numpy()):
            raise Mismatch("merging the split of x should give x back; use .reshape (not .view) after the "
                           "transpose, and read the sizes from x.shape.")

    return _run("merge_heads", [("shape", shape), ("order of the features", values),
                                ("merge undoes split", undoes_split)], verbose)


def check_multi_head_torch(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(x, w_q, w_k, w_v, w_o, n_heads)`` → (B, T, C) against ``torch.nn.MultiheadAttention``.

    ``x`` is (B, T, C); each ``w_*`` is (C, C), used as ``x @ w``; no biases. A returned
    (output, weights) pair is accepted too.
    """
    _needs_function(fn)
    import itertools

    import torch
    from torch import nn

    batch, length, width, n_heads = 2, 5, 8, 2
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(batch, length, width, generator=generator)
    w_q, w_k, w_v, w_o = (torch.randn(width, width, generator=generator) / width ** 0.5 for _ in range(4))

    def reference(heads: int) -> np.ndarray:
        """torch.nn.MultiheadAttention(width, heads) with the same weights: the right answer."""
        module = nn.MultiheadAttention(width, heads, bias=False, batch_first=True)
        with torch.no_grad():  # nn.Linear stores weights as (out, in): ours transposed
            module.in_proj_weight.copy_(torch.cat([w_q.T, w_k.T, w_v.T]))
            module.out_proj.weight.copy_(w_o.T)
            return module(x, x, x, need_weights=False)[0].numpy()

    def variant(heads: int, scale: float | None = None, split_bad: bool = False, merge_bad: bool = False,
                project: bool = True, softmax_dim: int = -1, transposed: tuple = ()) -> np.ndarray:
        head_dim = width // heads
        w_q_, w_k_, w_v_, w_o_ = (w.T if name in transposed else w
                                  for w, name in zip((w_q, w_k, w_v, w_o), ("w_q", "w_k", "w_v", "w_o")))

        def split(t):
            if split_bad:
                return t.reshape(batch, heads, length, head_dim)
            return t.view(batch, length, heads, head_dim).transpose(1, 2)

        q, k, v = split(x @ w_q_), split(x @ w_k_), split(x @ w_v_)
        scores = q @ k.transpose(-2, -1) / (scale if scale is not None else head_dim ** 0.5)
        heads_out = torch.softmax(scores, dim=softmax_dim) @ v
        merged = (heads_out.reshape(batch, length, width) if merge_bad
                  else heads_out.transpose(1, 2).reshape(batch, length, width))
        return (merged @ w_o_ if project else merged).numpy()

    def shape():
        _torch_output(_call(fn, x, w_q, w_k, w_v, w_o, n_heads), "The output", (batch, length, width))

    def diagnose(heads: int) -> None:
        with torch.no_grad():
            got = _torch_output(_call(fn, x, w_q, w_k, w_v, w_o, heads), "The output", (batch, length, width))
            close = lambda other: np.allclose(got, other, atol=1e-5)  # noqa: E731
            if close(reference(heads)):
                return
            names = ("w_q", "w_k", "w_v", "w_o")
            for transposed in (subset for size in range(1, 5) for subset in itertools.combinations(names, size)):
                if close(variant(heads, transposed=transposed)):
                    raise Mismatch(f"{', '.join(transposed)} {'is' if len(transposed) == 1 else 'are'} used "
                                   "transposed: here every weight is (C_in, C_out) and is applied as x @ w, with no "
                                   ".T (nn.Linear's .weight is stored (out, in), which is why its forward uses W.T).")
            if close(variant(heads, softmax_dim=-2)):
                raise Mismatch("the softmax runs over the queries (dim=-2): each query's row of weights must sum to 1 "
                               "over the keys, so use softmax(scores, dim=-1).")
            if close(variant(heads, project=False)):
                raise Mismatch("the output projection is missing: multiply the merged heads by w_o at the end.")
            if close(variant(heads, scale=1.0)):
                raise Mismatch("the scores are not scaled: divide q kᵀ by √d_head (here √(C / n_heads)) "
                               "before the softmax.")
            if heads > 1 and close(variant(heads, scale=width ** 0.5)):
                raise Mismatch("the scores are divided by √C, the model's width: each head's keys have d_head = "
                               "C / n_heads numbers, so divide by √d_head.")
            if heads > 1 and (close(variant(heads, merge_bad=True)) or close(variant(heads, split_bad=True))
                              or close(variant(heads, split_bad=True, merge_bad=True))):
                raise Mismatch("a reshape without a transpose: split with .view(B, T, heads, d_head).transpose(1, 2) "
                               "and merge with .transpose(1, 2).reshape(B, T, C); reshaping directly between "
                               "(B, T, C) and (B, heads, T, d_head) mixes up tokens.")
            if heads > 1 and close(variant(1)):
                raise Mismatch("this is single-head attention: split q, k and v into n_heads heads of width "
                               "C / n_heads, attend in each head, then merge.")
            raise Mismatch(f"with {heads} head(s) the output differs from the reference, torch.nn.MultiheadAttention"
                           f"({width}, {heads}) with the same weights: project with w_q, w_k, w_v; split; "
                           "softmax(q kᵀ / √d_head) v per head; merge; then @ w_o.")

    return _run("multi-head attention (PyTorch)", [("shape", shape),
                                                    ("one head, against nn.MultiheadAttention", lambda: diagnose(1)),
                                                    ("two heads, against nn.MultiheadAttention",
                                                     lambda: diagnose(n_heads))], verbose)


