"""Checkers of chapter 11: a sliding-window mask and one step of writing with a key/value cache."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attnlab.checkers.core import NOTHING_RETURNED, CheckResult, Mismatch, _call_explaining, _needs_function, _run


def _band(size: int, window: int) -> np.ndarray:
    """The right answer: query i sees key j when i − window < j ≤ i."""
    i, j = np.arange(size)[:, None], np.arange(size)[None, :]
    return (j <= i) & (j > i - window)


def check_sliding_window_mask(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(size, window)`` → (size, size) booleans, True where query i may see key j: i − window < j ≤ i."""
    _needs_function(fn)

    def call(size, window):
        got = fn(size, window)
        if got is None:
            raise Mismatch(NOTHING_RETURNED)
        array = np.asarray(got.detach().cpu() if hasattr(got, "detach") else got)
        if array.shape != (size, size):
            raise Mismatch(f"fn({size}, {window}) should have shape ({size}, {size}), one row per query and one "
                           f"column per key; got {array.shape}.")
        if array.dtype != bool:
            values = set(np.unique(array).tolist())
            if not values <= {0, 1}:
                raise Mismatch("return booleans, True where the query may attend (as torch's attn_mask), not "
                               f"scores or an additive mask: your values include {sorted(values)[:3]}.")
            array = array.astype(bool)
        return array

    def diagnose(got, size, window):
        want = _band(size, window)
        if np.array_equal(got, want):
            return
        i, j = np.arange(size)[:, None], np.arange(size)[None, :]
        if np.array_equal(got, _band(size, window + 1)):
            raise Mismatch(f"off by one: each query sees {window + 1} keys. With itself included it should see "
                           f"{window}: keep j > i - window, not j >= i - window.")
        if window > 1 and np.array_equal(got, _band(size, window - 1)):
            raise Mismatch(f"off by one: each query sees only {window - 1} keys. The query's own position counts "
                           f"as one of the {window}: keep j > i - window and j <= i.")
        if np.array_equal(got, want.T):
            raise Mismatch("the window points the wrong way: your queries see the NEXT keys (the future). A causal "
                           "window looks back: key j <= query i, and j > i - window.")
        if np.array_equal(got, np.abs(i - j) < window) or np.array_equal(got, np.abs(i - j) <= window):
            raise Mismatch("your window looks both ways, so a query sees later keys: add the causal condition "
                           "j <= i.")
        if np.array_equal(got, ~want):
            raise Mismatch("True and False are swapped: True means the query MAY attend to the key.")
        if np.array_equal(got, j <= i):
            raise Mismatch("that is the plain causal mask: the window is missing, add j > i - window.")
        raise Mismatch(f"for size {size} and window {window}, row i should be True exactly at the keys "
                       f"i - {window} < j <= i; row {size - 1} should be True at {list(range(max(0, size - window), size))}.")

    def tiny():
        diagnose(call(6, 3), 6, 3)

    def window_one():
        diagnose(call(5, 1), 5, 1)

    def wide_window():
        got = call(4, 10)
        if not np.array_equal(got, _band(4, 10)):
            raise Mismatch("a window as long as the text (or longer) should give the plain causal mask, "
                           "j <= i: clip nothing, and do not fail.")

    def another_size():
        diagnose(call(9, 4), 9, 4)

    return _run("sliding-window mask", [("6 tokens, window 3", tiny), ("window 1: only itself", window_one),
                                        ("window longer than the text", wide_window),
                                        ("9 tokens, window 4", another_size)], verbose)


# ---------------------------------------------------------------- one step with a key/value cache


def _tiny_gpt():
    """A 2-layer GPT with larger-than-initial weights, so that logits differ clearly between contexts."""
    import torch

    from attnlab.gpt import GPT, GPTConfig

    with torch.random.fork_rng(devices=[]):  # seed our own weights without resetting the learner's generator
        torch.manual_seed(11)
        model = GPT(GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.mul_(3)
    return model


CONCAT_HINT = ("concatenate the cached and the new keys (and values) along the POSITIONS, dim=2: (B, H, P, d) and "
               "(B, H, t, d) give (B, H, P + t, d), with the cached ones first.")
MASK_HINT = ("the mask must be (t, P + t): new token number n (at position P + n) sees the keys at positions "
             "0 .. P + n, e.g. torch.arange(P + t)[None, :] <= torch.arange(P, P + t)[:, None].")
CAUSAL_HINT = ("F.scaled_dot_product_attention(..., is_causal=True) aligns its mask to the FIRST key: with a cache "
               "of P positions the new token then sees only the keys 0 .. n, not 0 .. P + n. Pass the (t, P + t) "
               "mask as attn_mask instead of is_causal=True.")
EMPTY_HINT = ("compare your step, line by line, with the model's forward pass: the scores divided by √d "
              "(att.head_dim), block.norm1 before attention and block.norm2 before the feed-forward layer, both "
              "residual additions x = x + ..., and the final norm before lm_head.")
ERRORS = {"Sizes of tensors must match": CONCAT_HINT, "must match the size": CONCAT_HINT + " " + MASK_HINT,
          "cannot be multiplied": CONCAT_HINT, "Expected size for first two dimensions": CONCAT_HINT,
          "index out of range": "positions run from P to P + t - 1, all below block_size: torch.arange(P, P + t)."}


def check_cache_step(fn: Callable, verbose: bool | None = None) -> CheckResult:
    """Check ``fn(model, ids, cache)`` → (logits (B, t, vocab), cache): ``ids`` (B, t) read after the P positions
    of ``cache`` (one (keys, values) per layer, (B, H, P, d) each; [] to start), the cache grown to P + t."""
    _needs_function(fn)
    import torch

    from attnlab.cost import _cache_step

    model = _tiny_gpt()
    vocab, layers, heads = model.config.vocab_size, model.config.n_layer, model.config.n_head
    head_dim = model.config.n_embd // heads
    state = {}

    def call(ids, cache):
        with torch.no_grad():
            got = _call_explaining(fn, ERRORS, model, ids, cache)
        if got is None:
            raise Mismatch(NOTHING_RETURNED)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Mismatch("return two things: the logits and the new cache, `return logits, new_cache`.")
        logits, new_cache = got
        if not isinstance(logits, torch.Tensor):
            raise Mismatch(f"the logits should be a tensor (B, t, vocab), not {type(logits).__name__}.")
        if tuple(logits.shape) == (ids.size(0), vocab) and ids.size(1) > 1:
            raise Mismatch("return the logits of every new position, (B, t, vocab), not only the last one.")
        if tuple(logits.shape) != (*ids.shape, vocab):
            raise Mismatch(f"the logits should have shape (B, t, vocab) = {(*ids.shape, vocab)}, got "
                           f"{tuple(logits.shape)}.")
        if not isinstance(new_cache, (list, tuple)) or len(new_cache) != layers:
            raise Mismatch(f"the cache should be a list with one (keys, values) pair per layer ({layers} here).")
        return logits, list(new_cache)

    def shapes(ids, cache, new_cache):
        past = cache[0][0].size(2) if cache else 0
        for keys, values in new_cache:
            want = (ids.size(0), heads, past + ids.size(1), head_dim)
            if tuple(keys.shape) != want or tuple(values.shape) != want:
                if tuple(keys.shape) == (ids.size(0), heads, ids.size(1), head_dim) and past:
                    raise Mismatch("your cache holds only the new positions: return the GROWN cache, the old keys "
                                   "and values with the new ones appended (torch.cat(..., dim=2)).")
                raise Mismatch(f"each layer's keys and values should be (B, H, P + t, d) = {want}, got "
                               f"{tuple(keys.shape)}. " + CONCAT_HINT)

    def reference(ids):
        with torch.no_grad():
            return model(ids).logits

    def prompt():
        ids = torch.tensor([[1, 5, 2, 7, 3]])
        logits, cache = call(ids, [])
        if not torch.allclose(logits, reference(ids), atol=1e-4):
            raise Mismatch("with an empty cache the logits should be model(ids).logits (nothing cached yet, so the "
                           "mask is the plain causal one). " + EMPTY_HINT)
        shapes(ids, [], cache)
        state["ids"], state["cache"] = ids, cache

    def one_token():
        ids, cache = state["ids"], state["cache"]
        new = torch.tensor([[9]])
        logits, grown = call(new, cache)
        want = reference(torch.cat((ids, new), dim=1))[:, -1:]
        if not torch.allclose(logits, want, atol=1e-4):
            with torch.no_grad():
                restarted, _ = _cache_step(model, new, cache, first_position=0)
            if torch.allclose(logits, restarted, atol=1e-4):
                raise Mismatch("the positions were not advanced: the new token is at position P (the cache's length), "
                               "not 0. Use torch.arange(P, P + t) with P = cache[0][0].size(2).")
            with torch.no_grad():
                top_left, _ = _cache_step(model, new, cache, top_left=True)
            if torch.allclose(logits, top_left, atol=1e-4):
                raise Mismatch("the new token saw only the first cached key. " + CAUSAL_HINT)
            with torch.no_grad():
                alone, _ = _cache_step(model, new, [], first_position=ids.size(1))
            if torch.allclose(logits, reference(new), atol=1e-4) or torch.allclose(logits, alone, atol=1e-4):
                raise Mismatch("the cache was not used: attend from the new query to the cached keys AND the new one. "
                               + CONCAT_HINT)
            raise Mismatch("one token after a cache of 5 should give the logits of model(all 6 tokens) at the last "
                           "position.")
        shapes(new, cache, grown)
        for layer, ((old_k, old_v), (k, v)) in enumerate(zip(cache, grown)):
            if not (torch.allclose(k[:, :, :5], old_k) and torch.allclose(v[:, :, :5], old_v)):
                raise Mismatch(f"layer {layer}: the grown cache should start with the old keys and values, the new "
                               "ones after them: torch.cat((cached, new), dim=2).")

    def several_tokens():
        ids = torch.tensor([[1, 5, 2, 7], [4, 4, 8, 1]])  # a batch of 2
        new = torch.tensor([[3, 9, 6], [2, 11, 5]])
        _, cache = call(ids, [])
        logits, grown = call(new, cache)
        shapes(new, cache, grown)
        if not torch.allclose(logits, reference(torch.cat((ids, new), dim=1))[:, -3:], atol=1e-4):
            with torch.no_grad():
                top_left, _ = _cache_step(model, new, cache, top_left=True)
            if torch.allclose(logits, top_left, atol=1e-4):
                raise Mismatch("new token n saw only the keys 0 .. n. " + CAUSAL_HINT)
            raise Mismatch("3 new tokens after a cache of 4, batch of 2: the logits should be those of the whole "
                           "text at positions 4, 5, 6. " + MASK_HINT)

    def writing():
        idx = torch.tensor([[2, 7, 1]])
        logits, cache = call(idx, [])
        for _ in range(8):
            next_id = logits[:, -1].argmax(dim=-1, keepdim=True)
            idx = torch.cat((idx, next_id), dim=1)
            logits, cache = call(next_id, cache)
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # generate draws (greedy, one-hot) samples
            want = model.generate(idx[:, :3], 8, temperature=0)
        if not torch.equal(idx, want):
            raise Mismatch("greedy writing with your step should give exactly the tokens of "
                           "model.generate(prompt, 8, temperature=0).")

    return _run("key/value cache step", [("the prompt, empty cache", prompt), ("one token after the cache", one_token),
                                         ("3 tokens after a cache, batch of 2", several_tokens),
                                         ("writing 8 tokens = GPT.generate", writing)], verbose)
