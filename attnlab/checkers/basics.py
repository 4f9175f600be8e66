"""Checkers of chapters 1–4: softmax, attention, masks, NumPy multi-head, positions, RNN, cosine."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attnlab.attention import causal_mask_np, multi_head_attention_np, scaled_dot_product_attention_np, softmax
from attnlab.checkers.core import (
    NOTHING_RETURNED,
    CheckResult,
    Mismatch,
    _as_array,
    _call_explaining,
    _expect_shape,
    _needs_function,
    _name_the_mistake,
    _run,
)
from attnlab.positional import sinusoidal_encoding


# ---------------------------------------------------------------- softmax


def _no_keepdims(shape: tuple) -> dict[str, str]:
    """NumPy's broadcasting error, for scores of ``shape``, as the hint about the forgotten ``keepdims=True``."""
    whole, per_row = (str(tuple(dims)).replace(" ", "") for dims in (shape, shape[:-1]))  # as NumPy prints them
    hint = (
        f"NumPy could not line up {shape} with {shape[:-1]}: x.max(axis=-1) and e.sum(axis=-1) drop the last axis, "
        f"and NumPy lines up what is left with the columns, not the rows. Write keepdims=True in both, "
        f"x.max(axis=-1, keepdims=True) and e.sum(axis=-1, keepdims=True): shape {shape[:-1] + (1,)}, "
        "one value beside each row.")
    # Only this pair of shapes: another broadcasting error (a mask of the wrong shape) is not about keepdims.
    return {f"{whole} {per_row}": hint, f"{per_row} {whole}": hint}



def check_softmax(fn: Callable[[np.ndarray], np.ndarray], verbose: bool | None = None) -> CheckResult:
    """Check ``fn(scores)`` → softmax over the last axis (each row)."""
    _needs_function(fn)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 5))

    def call(x):
        return _as_array(_call_explaining(fn, _no_keepdims(x.shape), x), "The output")

    def shape():
        _expect_shape(call(scores), scores.shape, "The output")

    def rows():
        out = call(scores)
        if np.allclose(out.sum(axis=0), 1) and not np.allclose(out.sum(axis=-1), 1):
            raise Mismatch("your columns sum to 1, but each ROW should: normalise along the last axis (axis=-1).")
        if not np.allclose(out.sum(axis=-1), 1):
            raise Mismatch("each row should sum to 1. Divide the exponentials by their sum along axis=-1, keepdims=True.")

    def positive_for_negative_scores():
        out = call(np.array([[-2.0, 0.0, 1.0]]))
        if np.any(out <= 0):
            raise Mismatch("with negative scores some outputs are ≤ 0. Dividing scores by their sum is not a softmax: "
                           "take exp() first, so every weight is positive.")

    def values():
        out = call(scores)
        if not np.allclose(out, softmax(scores), atol=1e-6):
            raise Mismatch("the values differ from exp(x) / sum(exp(x)) along each row.")

    def stable():
        big = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -999.0]])
        with np.errstate(all="ignore"):
            out = call(big)
        # Row 0 holds the matrix's largest score: right there but nan in row 1 = a max that is not each row's own.
        if np.all(np.isfinite(out[0])) and np.allclose(out[0], softmax(big)[0], atol=1e-6) \
                and not np.all(np.isfinite(out[1])):
            raise Mismatch("the second row, far below the first, comes out as nan: the max you subtract is not that "
                           "row's own (x.max() takes the whole matrix's), so exp() underflows to 0 in that row and "
                           "you divide 0 by 0. Subtract each row's max (axis=-1, keepdims=True), not the matrix's.")
        if not np.all(np.isfinite(out)):
            raise Mismatch("large scores like 1000 give inf or nan: exp(1000) overflows. Subtract each row's max "
                           "before exp(); the result is mathematically the same.")
        if not np.allclose(out, softmax(big), atol=1e-6):
            raise Mismatch("large scores give the wrong values; subtract each row's max (keepdims=True) before exp().")

    return _run("softmax", [("shape is kept", shape), ("each row sums to 1", rows),
                            ("negative scores", positive_for_negative_scores), ("values", values),
                            ("large scores (numerical stability)", stable)], verbose)


# ---------------------------------------------------------------- attention


def _call_attention(fn, q, k, v, mask=None):
    scores_shape = q.shape[:-1] + k.shape[-2:-1]  # the learner's softmax runs on an array of this shape
    result = _call_explaining(fn, _no_keepdims(scores_shape), q, k, v, *(() if mask is None else (mask,)))
    if result is None:
        raise Mismatch(NOTHING_RETURNED)
    if isinstance(result, tuple) and len(result) == 2:
        return _as_array(result[0], "The output"), _as_array(result[1], "The weights")
    raise Mismatch("return two things: (output, weights).")


def check_attention(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(q, k, v, mask=None)`` → (output, weights), scaled dot-product attention.

    ``mask`` is boolean, True where a query may attend to a key.
    """
    _needs_function(fn)
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(4, 8)), rng.normal(size=(6, 8)), rng.normal(size=(6, 3))
    mask = rng.random((4, 6)) > 0.4
    mask[:, 0] = True  # every query keeps at least one key
    expected_out, expected_w = scaled_dot_product_attention_np(q, k, v)

    def shapes():
        out, weights = _call_attention(fn, q, k, v)
        _expect_shape(weights, (4, 6), "The weights (one row per query, one column per key)")
        _expect_shape(out, (4, 3), "The output (one row per query, width of v)")

    def rows():
        _, weights = _call_attention(fn, q, k, v)
        if np.allclose(weights.sum(axis=0), 1) and not np.allclose(weights.sum(axis=-1), 1):
            raise Mismatch("your softmax runs over the queries; it must run over the keys (axis=-1), "
                           "so that each query's weights sum to 1.")
        if not np.allclose(weights.sum(axis=-1), 1):
            raise Mismatch("each query's weights should sum to 1: apply a softmax along the last axis.")

    def scaled():
        out, weights = _call_attention(fn, q, k, v)
        unscaled = softmax(q @ k.T)
        if np.allclose(weights, unscaled, atol=1e-6):
            raise Mismatch("the weights are softmax(q kᵀ) without scaling: divide the scores by √d_k "
                           "(here √8) before the softmax.")
        d_k, d_v = q.shape[-1], v.shape[-1]
        _name_the_mistake(weights, {
            f"the scores are divided by d_k ({d_k}), not by its square root: divide by √d_k, "
            "np.sqrt(q.shape[-1]), so that they keep a spread of about 1.": softmax(q @ k.T / d_k),
            f"the scores are divided by √d_v, the width of v ({d_v}): the scale is √d_k, the width of q and k "
            f"(here √{d_k}), np.sqrt(q.shape[-1]).": softmax(q @ k.T / np.sqrt(d_v)),
        }, atol=1e-6)
        if not np.allclose(weights, expected_w, atol=1e-6):
            raise Mismatch("the weights differ from softmax(q kᵀ / √d_k).")
        if not np.allclose(out, expected_out, atol=1e-6):
            raise Mismatch("the weights are right but the output is not: it should be weights @ v.")

    def masked():
        out, weights = _call_attention(fn, q, k, v, mask)
        want_out, want_w = scaled_dot_product_attention_np(q, k, v, mask)
        if np.allclose(weights[~mask], 0, atol=1e-9) and not np.allclose(weights.sum(axis=-1), 1):
            raise Mismatch("masked weights are 0 but the rows no longer sum to 1: the mask was applied after the "
                           "softmax. Set masked scores to -inf BEFORE the softmax.")
        partly = (~mask).any(axis=-1)  # rows with a key to block: a row of all True tells nothing here
        if np.allclose(weights[partly][mask[partly]], 0, atol=1e-9) \
                and np.allclose(weights[partly].sum(axis=-1), 1):
            raise Mismatch("your mask is inverted: the weights are 0 exactly where the mask is True. Here True "
                           "means 'may attend' (as in PyTorch's scaled_dot_product_attention; nn.MultiheadAttention "
                           "uses the opposite): np.where(mask, scores, -np.inf).")
        scores = q @ k.T / np.sqrt(q.shape[-1])
        if np.allclose(weights, softmax(scores * mask), atol=1e-6):
            raise Mismatch("mask * scores sets the blocked scores to 0, not to -inf: 0 is an ordinary score, so the "
                           "blocked keys still get weight. Replace them with -inf: np.where(mask, scores, -np.inf).")
        if not np.allclose(weights, want_w, atol=1e-6):
            raise Mismatch("with a mask, weights where mask is False must be exactly 0 and each row must still "
                           "sum to 1: set those scores to -inf before the softmax (np.where(mask, scores, -np.inf)).")
        if not np.allclose(out, want_out, atol=1e-6):
            raise Mismatch("the masked weights are right but the output is not: it should be weights @ v.")

    def stable():
        with np.errstate(all="ignore"):
            out, weights = _call_attention(fn, q * 100, k * 100, v)
        if not (np.all(np.isfinite(out)) and np.all(np.isfinite(weights))):
            raise Mismatch("large queries and keys give inf or nan: use a stable softmax (subtract each row's max).")

    def batched():
        qb, kb, vb = (np.stack([m, m[::-1]]) for m in (q, k, v))
        try:
            out, _ = _call_attention(fn, qb, kb, vb)
        except Mismatch:
            raise
        except Exception as error:
            raise Mismatch(f"with a batch dimension in front your function raised {type(error).__name__}: "
                           "transpose only the last two axes of k (np.swapaxes(k, -1, -2)), not k.T.") from None
        want, _ = scaled_dot_product_attention_np(qb, kb, vb)
        _expect_shape(out, want.shape, "With a batch dimension in front, the output")
        if not np.allclose(out, want, atol=1e-6):
            raise Mismatch("with a batch dimension in front, transpose only the last two axes of k "
                           "(np.swapaxes(k, -1, -2)), not k.T.")

    return _run("scaled dot-product attention", [("shapes", shapes), ("rows sum to 1", rows),
                                                 ("scaled by √d_k", scaled), ("masking", masked),
                                                 ("large inputs", stable), ("batched inputs", batched)], verbose)


# ---------------------------------------------------------------- causal mask


def check_causal_mask(fn: Callable[[int], np.ndarray], verbose: bool | None = None) -> CheckResult:
    """Check ``fn(size)`` → (size, size) booleans, True where query i may attend to key j."""
    _needs_function(fn)
    size = 5
    want = causal_mask_np(size)

    def shape():
        _expect_shape(_as_array(fn(size), "The mask"), (size, size), "The mask")

    def values():
        raw = _as_array(fn(size), "The mask")
        if (raw < 0).any():
            raise Mismatch("return booleans (True = may attend), not an additive mask of 0 and −∞: "
                           "np.tril(np.ones((size, size), dtype=bool)).")
        got = raw.astype(bool)
        if np.array_equal(got, want.T):
            raise Mismatch("your mask lets each token see the FUTURE: True must be on and below the diagonal "
                           "(key j ≤ query i), as np.tril gives.")
        if np.array_equal(got, ~want):
            raise Mismatch("your mask is inverted: here True means 'may attend'.")
        if np.array_equal(got, np.tril(np.ones((size, size), bool), k=-1)):
            raise Mismatch("each token must be allowed to attend to itself: include the diagonal.")
        if not np.array_equal(got, want):
            raise Mismatch("the mask should be True exactly where key j ≤ query i.")

    return _run("causal mask", [("shape", shape), ("who may see whom", values)], verbose)


# ---------------------------------------------------------------- multi-head


def check_multi_head(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(x, w_q, w_k, w_v, w_o, n_heads)`` → (T, d) multi-head self-attention of x (T, d)."""
    _needs_function(fn)
    rng = np.random.default_rng(2)
    length, d_model, n_heads = 5, 8, 2
    x = rng.normal(size=(length, d_model))
    w_q, w_k, w_v, w_o = (rng.normal(size=(d_model, d_model)) / np.sqrt(d_model) for _ in range(4))

    def diagnose(heads: int) -> None:
        got = _as_array(fn(x, w_q, w_k, w_v, w_o, heads), "The output")
        if np.allclose(got, multi_head_attention_np(x, w_q, w_k, w_v, w_o, heads), atol=1e-6):
            return
        head_dim = d_model // heads
        split = lambda m: m.reshape(length, heads, head_dim).transpose(1, 0, 2)  # noqa: E731
        per_head, _ = scaled_dot_product_attention_np(split(x @ w_q), split(x @ w_k), split(x @ w_v))
        if np.allclose(got, per_head.transpose(1, 0, 2).reshape(length, d_model), atol=1e-6):
            raise Mismatch("the output projection is missing: multiply the merged heads by w_o.")
        if heads > 1 and np.allclose(got, per_head.reshape(length, d_model) @ w_o, atol=1e-6):
            raise Mismatch("the heads are merged in the wrong order: go from (heads, T, d_head) back to "
                           "(T, heads, d_head) with transpose(1, 0, 2) BEFORE reshaping to (T, d).")
        if heads > 1 and np.allclose(got, multi_head_attention_np(x, w_q, w_k, w_v, w_o, 1), atol=1e-6):
            raise Mismatch("this is single-head attention: split q, k and v into n_heads slices of width "
                           "d / n_heads and scale each by √(d / n_heads).")
        raise Mismatch(f"with {heads} head(s) the result differs: project with w_q, w_k, w_v, split into heads, "
                       "attend per head with softmax(q kᵀ / √d_head) v, merge the heads, then @ w_o.")

    def shape():
        out = _as_array(fn(x, w_q, w_k, w_v, w_o, n_heads), "The output")
        _expect_shape(out, (length, d_model), "The output")

    return _run("multi-head attention", [("shape", shape), ("one head", lambda: diagnose(1)),
                                         ("two heads", lambda: diagnose(n_heads))], verbose)


# ---------------------------------------------------------------- positional encoding


def check_positional_encoding(fn: Callable[[int, int], np.ndarray], verbose: bool | None = None) -> CheckResult:
    """Check ``fn(num_positions, d_model)`` → the 2017 sinusoidal encoding, (num_positions, d_model)."""
    _needs_function(fn)
    positions, d_model = 12, 16
    want = sinusoidal_encoding(positions, d_model)

    def shape():
        _expect_shape(_as_array(fn(positions, d_model), "The encoding"), want.shape, "The encoding")

    def values():
        got = _as_array(fn(positions, d_model), "The encoding")
        if np.allclose(got, want, atol=1e-6):
            return
        swapped = np.empty_like(want)
        swapped[:, 0::2], swapped[:, 1::2] = want[:, 1::2], want[:, 0::2]
        if np.allclose(got, swapped, atol=1e-6):
            raise Mismatch("sine and cosine are swapped: even columns (2i) take sin, odd columns (2i+1) take cos.")
        if np.allclose(got, np.concatenate([want[:, 0::2], want[:, 1::2]], axis=1), atol=1e-6):
            raise Mismatch("your table has all the sines first, then all the cosines (concatenated). That layout "
                           "would work in a model too, but this course follows the 2017 paper and interleaves them: "
                           "column 2i takes the sine and column 2i+1 the cosine of the same angle, "
                           "encoding[:, 0::2] = np.sin(angles) and encoding[:, 1::2] = np.cos(angles).")
        if not np.allclose(got[0, 0::2], 0) or not np.allclose(got[0, 1::2], 1):
            raise Mismatch("position 0 should be (0, 1, 0, 1, ...): sin(0) = 0 and cos(0) = 1.")
        raise Mismatch("the frequencies differ: column pair i uses pos / 10000^(2i / d_model), "
                       "with 2i = 0, 2, 4, ... (the column index of the sine).")

    return _run("sinusoidal positional encoding", [("shape", shape), ("values", values)], verbose)


# ---------------------------------------------------------------- chapter 1: a recurrent network


def check_rnn_forward(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(x, w_x, w_h)`` → every hidden state of h_t = tanh(x_t W_x + h_{t-1} W_h), h_0 = 0: (T, C)."""
    _needs_function(fn)
    import torch

    from attnlab.recurrence import rnn_forward

    generator = torch.Generator().manual_seed(2)
    x = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    w_x, w_h = (torch.randn(4, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    want = rnn_forward(x, w_x, w_h).numpy()

    def shape():
        _expect_shape(_as_array(fn(x, w_x, w_h), "The hidden states"), want.shape,
                      "The hidden states (one row per token)")

    def first_step():
        got = _as_array(fn(x, w_x, w_h), "The hidden states")
        if not np.allclose(got[0], np.tanh(x[0].numpy() @ w_x.numpy()), atol=1e-6):
            raise Mismatch("the first state should be tanh(x_0 W_x): the state before the first token is all zeros.")

    def carries_state():
        got = _as_array(fn(x, w_x, w_h), "The hidden states")
        if np.allclose(got, np.tanh(x.numpy() @ w_x.numpy()), atol=1e-6):
            raise Mismatch("each state ignores the previous one: add h_{t-1} W_h before the tanh, and keep h "
                           "from one step to the next.")
        if not np.allclose(got, want, atol=1e-6):
            raise Mismatch("later states differ: at step t use the state from step t-1, "
                           "h = tanh(x_t @ w_x + h @ w_h), and keep every h.")

    return _run("recurrent network", [("shape", shape), ("first step", first_step),
                                      ("the state carries over", carries_state)], verbose)


# ---------------------------------------------------------------- chapter 2: cosine similarity


def check_cosine_similarity(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], verbose: bool | None = None) -> CheckResult:
    """Check ``fn(a, table)`` → cosine similarity of vector ``a`` (C,) with each row of ``table`` (N, C): (N,)."""
    _needs_function(fn)
    from attnlab.vectors import cosine_similarity

    rng = np.random.default_rng(3)
    a, table = rng.normal(size=6), rng.normal(size=(5, 6))
    want = cosine_similarity(a, table)

    def shape():
        _expect_shape(_as_array(fn(a, table), "The similarities"), (5,), "The similarities (one per row)")

    def same_direction():
        got = _as_array(fn(a, np.stack([a, 3 * a, -a])), "The similarities")
        if not np.allclose(got, [1, 1, -1], atol=1e-6):
            raise Mismatch("a vector and 3 × itself should score 1, and its opposite −1: divide the dot product "
                           "by both lengths (np.linalg.norm).")

    def values():
        got = _as_array(fn(a, table), "The similarities")
        if np.allclose(got, table @ a, atol=1e-6):
            raise Mismatch("these are plain dot products: divide by the length of a and of each row.")
        if not np.allclose(got, want, atol=1e-6):
            raise Mismatch("the values differ from (row · a) / (|row| |a|) for each row.")

    return _run("cosine similarity", [("shape", shape), ("same and opposite direction", same_direction),
                                      ("values", values)], verbose)


