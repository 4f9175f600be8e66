"""Exercise checkers: call them on your own implementation for instant, friendly feedback.

    >>> from attnlab.checkers import check_softmax
    >>> check_softmax(my_softmax)          # prints a verdict; returns a CheckResult

Each checker runs a few targeted cases and stops at the first that fails, with a hint.
The verdict is printed in a script; in a notebook the returned result displays itself
(pass ``verbose=True`` to print it anyway, for example inside a loop).
It never shows a traceback from inside the checker: if your function raises, you are told
which case and what it raised. The returned :class:`CheckResult` is truthy when all passed.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from attnlab.attention import (
    causal_mask_np,
    multi_head_attention_np,
    scaled_dot_product_attention_np,
    softmax,
)
from attnlab.errors import InputError
from attnlab.positional import sinusoidal_encoding


NOT_WRITTEN = "not written yet"


@dataclass
class CheckResult:
    """The verdict of one checker."""

    name: str
    passed: bool
    failed_case: str | None = None
    hint: str = ""
    cases_passed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    def message(self) -> str:
        """The verdict as one short paragraph."""
        if self.passed:
            return f"✓ {self.name}: all {len(self.cases_passed)} checks passed."
        if self.hint.startswith(NOT_WRITTEN):
            return f"✗ {self.name}: {self.hint}"
        done = f" ({len(self.cases_passed)} passed before it)" if self.cases_passed else ""
        return f"✗ {self.name}: the case “{self.failed_case}” failed{done}.\n   Hint: {self.hint}"

    def __repr__(self) -> str:
        return self.message()

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#b3261e"
        text = html.escape(self.message()).replace("\n", "<br>")
        return f'<div class="attnlab-check" style="border-left:4px solid {colour};padding:4px 8px">{text}</div>'


class Mismatch(Exception):
    """A case failed; the message is the hint shown to the learner."""


NOTHING_RETURNED = "your function returned nothing (None): did you forget the `return` line at its end?"


def _needs_function(fn: object) -> None:
    if not callable(fn):
        raise InputError(f"Give the checker your function itself, without calling it: check(my_function), "
                         f"not check(my_function(...)); got {type(fn).__name__}.")


def _as_array(value, what: str) -> np.ndarray:
    if value is None:
        raise Mismatch(NOTHING_RETURNED)
    try:
        return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=float)
    except (TypeError, ValueError):
        raise Mismatch(f"{what} should be an array of numbers, but your function returned {type(value).__name__}.") from None


def _expect_shape(array: np.ndarray, shape: tuple, what: str) -> None:
    if array.shape != shape:
        raise Mismatch(f"{what} should have shape {shape}, but has shape {array.shape}.")


def _run(name: str, cases: list[tuple[str, Callable[[], None]]], verbose: bool) -> CheckResult:
    result = CheckResult(name=name, passed=True)
    for case_name, case in cases:
        try:
            case()
        except Mismatch as mismatch:
            result.passed, result.failed_case, result.hint = False, case_name, str(mismatch)
            break
        except NotImplementedError:
            result.passed, result.failed_case = False, case_name
            result.hint = f"{NOT_WRITTEN}. Replace `raise NotImplementedError` with your code, then run this cell again."
            break
        except Exception as error:  # the learner's code raised: say what, not where
            result.passed, result.failed_case = False, case_name
            result.hint = f"your function raised {type(error).__name__}: {error}"
            break
        result.cases_passed.append(case_name)
    if verbose is None:  # in a notebook the returned result shows itself: printing too would say it twice
        verbose = "IPython" not in sys.modules or getattr(sys.modules["IPython"], "get_ipython", lambda: None)() is None
    if verbose:
        print(result.message())
    return result


# ---------------------------------------------------------------- softmax


def check_softmax(fn: Callable[[np.ndarray], np.ndarray], verbose: bool | None = None) -> CheckResult:
    """Check ``fn(scores)`` → softmax over the last axis (each row)."""
    _needs_function(fn)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(3, 5))

    def shape():
        _expect_shape(_as_array(fn(scores), "The output"), scores.shape, "The output")

    def rows():
        out = _as_array(fn(scores), "The output")
        if np.allclose(out.sum(axis=0), 1) and not np.allclose(out.sum(axis=-1), 1):
            raise Mismatch("your columns sum to 1, but each ROW should: normalise along the last axis (axis=-1).")
        if not np.allclose(out.sum(axis=-1), 1):
            raise Mismatch("each row should sum to 1. Divide the exponentials by their sum along axis=-1, keepdims=True.")

    def positive_for_negative_scores():
        out = _as_array(fn(np.array([[-2.0, 0.0, 1.0]])), "The output")
        if np.any(out <= 0):
            raise Mismatch("with negative scores some outputs are ≤ 0. Dividing scores by their sum is not a softmax: "
                           "take exp() first, so every weight is positive.")

    def values():
        out = _as_array(fn(scores), "The output")
        if not np.allclose(out, softmax(scores), atol=1e-6):
            raise Mismatch("the values differ from exp(x) / sum(exp(x)) along each row.")

    def stable():
        big = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -999.0]])
        with np.errstate(all="ignore"):
            out = _as_array(fn(big), "The output")
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
    result = fn(q, k, v) if mask is None else fn(q, k, v, mask)
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
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except RuntimeError as error:
        if "view size is not compatible" in str(error):
            raise Mismatch(VIEW_AFTER_TRANSPOSE) from None
        raise


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


# ---------------------------------------------------------------- chapter 6: LayerNorm, feed-forward, the block


def _torch_case(seed: int, *shape: int):
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


NO_KEEPDIM = ("the mean or the variance lost its last axis, so it cannot be subtracted from x: take them with "
              "keepdim=True, x.mean(dim=-1, keepdim=True), so they have shape (B, T, 1) and broadcast against "
              "x (B, T, C).")


def _call_layer_norm(fn: Callable, *args, **options):
    """``fn(*args, **options)``, with the broadcasting error of a forgotten ``keepdim=True`` turned into a hint."""
    try:
        return fn(*args, **options)
    except NotImplementedError:
        raise
    except RuntimeError as error:
        if "must match the size of tensor" in str(error):
            raise Mismatch(NO_KEEPDIM) from None
        raise


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
