"""Chapter 11: measuring helpers, cheaper attention, the key/value cache, its figures and checkers."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnlab import cost
from attnlab.checkers import check_cache_step, check_sliding_window_mask
from attnlab.errors import InputError
from attnlab.figures_cost import cost_chart, cost_explorer


@pytest.fixture(scope="module")
def minigpt():
    from attnlab.minigpt import gpt_from_loaded
    from attnlab.models import load

    return gpt_from_loaded(load("minigpt")).cpu().eval()


def qkv(T, B=1, H=2, d=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, d, generator=generator) for _ in range(3)]


# ------------------------------------------------------------------ the key/value cache


def test_cached_generation_gives_the_tokens_of_generate(minigpt):
    prompt = torch.tensor([[5, 17, 30, 2, 44, 9, 1, 12], [3, 3, 60, 21, 7, 8, 40, 2]])
    n_new = minigpt.config.block_size - prompt.size(1)  # up to the window
    with torch.no_grad():
        want = minigpt.generate(prompt, n_new, temperature=0)
    assert torch.equal(cost.generate_cached(minigpt, prompt, n_new), want)


def test_cache_step_matches_the_model_and_cached_step(minigpt):
    from attnlab.onnx_export import CachedStep, empty_cache

    ids = torch.tensor([[5, 17, 30, 2, 44]])
    with torch.no_grad():
        logits, cache = cost.cache_step(minigpt, ids, [])
        torch.testing.assert_close(logits, minigpt(ids).logits, atol=1e-4, rtol=1e-4)
        more, grown = cost.cache_step(minigpt, torch.tensor([[9, 3]]), cache)
        full = minigpt(torch.tensor([[5, 17, 30, 2, 44, 9, 3]])).logits
        torch.testing.assert_close(more, full[:, -2:], atol=1e-4, rtol=1e-4)
        theirs, _, _ = CachedStep(minigpt)(ids, empty_cache(minigpt), empty_cache(minigpt))
    torch.testing.assert_close(theirs, logits[:, -1], atol=1e-4, rtol=1e-4)
    c = minigpt.config
    assert grown[0][0].shape == (1, c.n_head, 7, c.n_embd // c.n_head)
    assert sum(k.nbytes + v.nbytes for k, v in grown) == cost.kv_cache_bytes(c.n_layer, c.n_head, c.n_embd // c.n_head, 7)


def test_cache_refuses_to_go_past_the_window(minigpt):
    prompt = torch.zeros((1, 10), dtype=torch.long)
    with pytest.raises(InputError, match="window"):
        cost.generate_cached(minigpt, prompt, minigpt.config.block_size)
    with pytest.raises(InputError):
        cost.cache_step(minigpt, torch.zeros((1, minigpt.config.block_size + 1), dtype=torch.long), [])
    with pytest.raises(InputError):
        cost.cache_step("minigpt", prompt, [])


# ------------------------------------------------------------------ cheaper attention


def test_sliding_window_mask_on_tiny_cases():
    assert cost.sliding_window_mask(4, 2).int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    assert torch.equal(cost.sliding_window_mask(5, 1), torch.eye(5, dtype=torch.bool))
    assert torch.equal(cost.sliding_window_mask(5, 9), torch.ones(5, 5, dtype=torch.bool).tril())
    assert cost.sliding_window_mask(7, 3).sum(-1).tolist() == [1, 2, 3, 3, 3, 3, 3]
    with pytest.raises(InputError):
        cost.sliding_window_mask(5, 0)


def test_blocked_local_attention_equals_the_dense_masked_one():
    q, k, v = qkv(70)
    for window, block in ((1, 16), (5, 16), (33, 8), (100, 64)):
        dense = F.scaled_dot_product_attention(q, k, v, attn_mask=cost.sliding_window_mask(70, window))
        torch.testing.assert_close(cost.local_attention_blocked(q, k, v, window, block), dense, atol=1e-5, rtol=1e-5)


def test_linear_attention_equals_the_direct_quadratic_formula():
    q, k, v = qkv(45, B=2)
    for causal in (True, False):
        direct = cost.linear_attention_direct(q, k, v, is_causal=causal)
        for chunk in (1, 7, 64):
            torch.testing.assert_close(cost.linear_attention(q, k, v, causal, chunk), direct, atol=1e-5, rtol=1e-5)
    # by hand, one query: Σ φ(q)·φ(k_j) v_j / Σ φ(q)·φ(k_j) over j ≤ 3
    phi = lambda x: F.elu(x) + 1  # noqa: E731
    s = phi(k[0, 0, :4]) @ phi(q[0, 0, 3])
    torch.testing.assert_close(cost.linear_attention(q, k, v)[0, 0, 3], (s[:, None] * v[0, 0, :4]).sum(0) / s.sum())


def test_online_softmax_equals_full_attention():
    q, k, v = qkv(50)
    for causal in (False, True):
        want = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        for block in (1, 16, 128):
            torch.testing.assert_close(cost.online_softmax_attention(q, k, v, block, causal), want, atol=1e-5, rtol=1e-5)


def test_grouped_query_attention():
    q, k, v = qkv(9, B=2, H=6)
    torch.testing.assert_close(cost.grouped_query_attention(q, k, v, True),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True))  # groups = heads: MHA
    k2, v2 = k[:, :2], v[:, :2]  # 2 key/value heads for 6 query heads: heads 3, 4, 5 use head 1
    out = cost.grouped_query_attention(q, k2, v2)
    torch.testing.assert_close(out[:, 4:5], F.scaled_dot_product_attention(q[:, 4:5], k2[:, 1:2], v2[:, 1:2]))
    if "enable_gqa" in F.scaled_dot_product_attention.__doc__:
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k2, v2, enable_gqa=True))
    with pytest.raises(InputError):
        cost.grouped_query_attention(q, k[:, :4], v[:, :4])  # 4 does not divide 6
    with pytest.raises(InputError, match="batch"):
        cost.grouped_query_attention(q, k2[:1], v2[:1])  # a batch of 2 queries, 1 of keys
    assert cost.kv_cache_bytes(32, 8, 128, 4096, bytes_per_number=2) * 4 == cost.kv_cache_bytes(32, 32, 128, 4096, 1, 2)
    assert cost.kv_cache_bytes(1, 1, 1, 1) == 8


# ------------------------------------------------------------------ measuring


def test_peak_memory_reports_more_for_longer_texts():
    def written(T):
        q, k, v = qkv(T, H=4, d=16)
        return lambda: torch.softmax(q @ k.transpose(-2, -1) / 4, dim=-1) @ v

    short, long = cost.peak_memory(written(64)), cost.peak_memory(written(256))
    assert short >= 2 * 4 * 64 * 64 * 4 * 0.9  # at least the scores and the weights
    assert long > 10 * short  # T² grows 16 times
    q, k, v = qkv(256, H=4, d=16)
    assert cost.peak_memory(lambda: F.scaled_dot_product_attention(q, k, v)) < long / 4
    with pytest.raises(InputError):
        cost.peak_memory("not a function")


def test_median_seconds_backend_and_crossover():
    assert cost.median_seconds(lambda: sum(range(1000)), repeats=3) > 0
    q, k, v = qkv(32)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    assert cost.sdpa_backend(q, k, v, is_causal=True) == "_scaled_dot_product_flash_attention_for_cpu"
    with sdpa_kernel(SDPBackend.MATH):
        assert cost.sdpa_backend(q, k, v, is_causal=True) == "_scaled_dot_product_attention_math"
    assert cost.crossover([1, 2, 4, 8], [1, 1, 1, 1], [2, 0.5, 3, 4]) == 4  # an early noisy win does not count
    assert cost.crossover([1, 2], [1, 1], [0.5, 0.5]) is None
    with pytest.raises(InputError):
        cost.crossover([1, 2], [1], [1, 2])
    with pytest.raises(InputError):
        cost.median_seconds(lambda: None, repeats=0)


@pytest.mark.parametrize("call", [
    lambda: cost.online_softmax_attention(np.zeros((2, 3)), torch.zeros(2, 3), torch.zeros(2, 3)),
    lambda: cost.linear_attention(torch.zeros(4, 3), torch.zeros(5, 3), torch.zeros(5, 2)),
    lambda: cost.local_attention_blocked(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 3), window=0),
    lambda: cost.grouped_query_attention(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 3)),
    lambda: cost.kv_cache_bytes(0, 1, 1, 1),
    # batches that do not fit: a friendly error, never torch's, and never a silent broadcast
    lambda: cost.online_softmax_attention(torch.zeros(2, 3, 5, 4), torch.zeros(4, 3, 5, 4), torch.zeros(4, 3, 5, 4)),
    lambda: cost.linear_attention(torch.zeros(2, 3, 5, 4), torch.zeros(4, 3, 5, 4), torch.zeros(4, 3, 5, 4)),
    lambda: cost.online_softmax_attention(torch.zeros(2, 3, 5, 4), torch.zeros(1, 3, 5, 4), torch.zeros(1, 3, 5, 4)),
    lambda: cost.linear_attention(torch.zeros(2, 3, 5, 4), torch.zeros(2, 3, 5, 4), torch.zeros(2, 1, 5, 4)),
    lambda: cost.local_attention_blocked(torch.zeros(2, 3, 5, 4), torch.zeros(2, 1, 5, 4), torch.zeros(2, 1, 5, 4), 2),
    lambda: cost.grouped_query_attention(torch.zeros(2, 6, 5, 4), torch.zeros(1, 2, 5, 4), torch.zeros(1, 2, 5, 4)),
    lambda: cost.grouped_query_attention(torch.zeros(2, 6, 5, 4), torch.zeros(2, 2, 5, 4), torch.zeros(2, 3, 5, 4)),
])
def test_bad_input_is_a_friendly_error(call):
    with pytest.raises(InputError):
        call()


# ------------------------------------------------------------------ figures


def test_cost_figures_are_small_and_described():
    fig = cost_chart([64, 128, 256], {"written": [1.0, 4.0, 16.0], "theory: T²": [1, 4, 16]}, "MiB", "Memory",
                     alt="Peak memory against the length, measured and in theory")
    assert fig.data[1].line.dash == "dash" and len(fig.layout.meta["alt"]) > 20
    assert fig.layout.xaxis.type == "log" and fig.layout.legend.orientation == "h"
    assert fig.data[0].hovertemplate.startswith("T = ")
    other = cost_chart([15, 30], {"a": [1, 2]}, "ms", "t", alt="time against new characters", x_title="new characters")
    assert other.data[0].hovertemplate.startswith("new characters = ")
    explorer = cost_explorer({"time": ([64, 128], {"a": [1, 2]}, "ms", "ms"),
                              "memory": ([64, 128, 256], {"b": [1, 2, 3], "c": [3, 2, 1]}, "MiB", "MiB")})
    buttons = explorer.layout.updatemenus[0].buttons
    assert [b.args[0]["visible"] for b in buttons] == [[True, False, False], [False, True, True]]
    assert len(explorer.to_json()) < 20_000
    with pytest.raises(InputError):
        cost_chart([1, 2], {"a": [1.0]}, "ms", "t", alt="a chart with a missing value in it")


# ------------------------------------------------------------------ checkers


def right_mask(size, window):
    i, j = torch.arange(size)[:, None], torch.arange(size)[None, :]
    return (j <= i) & (j > i - window)


MASK_MISTAKES = {
    "off by one": (lambda s, w: right_mask(s, w + 1), "off by one"),
    "one short": (lambda s, w: right_mask(s, w - 1), "off by one"),
    "wrong direction": (lambda s, w: right_mask(s, w).T, "wrong way"),
    "both ways": (lambda s, w: (torch.arange(s)[:, None] - torch.arange(s)[None, :]).abs() < w, "both ways"),
    "swapped": (lambda s, w: ~right_mask(s, w), "swapped"),
    "no window": (lambda s, w: torch.ones(s, s, dtype=torch.bool).tril(), "window is missing"),
}


def test_mask_checker_accepts_the_right_mask():
    assert check_sliding_window_mask(right_mask, verbose=False)
    assert check_sliding_window_mask(lambda s, w: right_mask(s, w).int().numpy(), verbose=False)


@pytest.mark.parametrize("name", MASK_MISTAKES)
def test_mask_checker_names_each_mistake(name):
    mistake, words = MASK_MISTAKES[name]
    result = check_sliding_window_mask(mistake, verbose=False)
    assert not result and words in result.hint


def step_with(mistake=None):
    """cache_step as the page writes it, with one usual mistake."""

    def step(model, ids, cache):
        past = cache[0][0].size(2) if cache else 0
        start = 0 if mistake == "positions" else past
        positions = torch.arange(start, start + ids.size(1))
        x = model.token_embedding(ids) + model.position_embedding(positions)
        t = ids.size(1)
        if mistake == "mask":
            sees = torch.ones(t, t, dtype=torch.bool).tril()  # forgets the cached positions
        else:
            sees = torch.arange(past + t)[None, :] <= torch.arange(past, past + t)[:, None]
        grown = []
        for layer, block in enumerate(model.blocks):
            att, h = block.attention, block.norm1(x)
            q, k, v = (att.split_heads(p(h)) for p in (att.q_proj, att.k_proj, att.v_proj))
            new_k, new_v = k, v
            if cache and mistake != "unused":
                axis = {"axis 1": 1, "axis -1": -1}.get(mistake, 2)
                k = torch.cat((cache[layer][0], k), dim=axis)
                v = torch.cat((cache[layer][1], v), dim=axis)
            if mistake == "unused":
                sees = torch.ones(t, t, dtype=torch.bool).tril()
            grown.append((new_k, new_v) if mistake == "not grown" else (k, v))
            scale = 1 if mistake == "no sqrt" else math.sqrt(att.head_dim)
            if mistake == "is_causal":  # PyTorch's causal mask is aligned to the first key, not the last
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                out = torch.softmax((q @ k.transpose(-2, -1) / scale).masked_fill(~sees, float("-inf")), -1) @ v
            x = x + att.out_proj(att.merge_heads(out))
            x = x + block.feed_forward(block.norm2(x))
        return model.lm_head(model.final_norm(x)), grown

    return step


def test_cache_checker_accepts_the_right_step():
    assert check_cache_step(step_with(None), verbose=False)
    assert check_cache_step(cost.cache_step, verbose=False)


@pytest.mark.parametrize("mistake, words", [
    ("positions", "positions were not advanced"), ("axis 1", "dim=2"), ("axis -1", "dim=2"),
    ("not grown", "GROWN"), ("unused", "cache was not used"), ("mask", "(t, P + t)"),
    ("is_causal", "is_causal=True"), ("no sqrt", "√d"),
])
def test_cache_checker_names_each_mistake(mistake, words):
    result = check_cache_step(step_with(mistake), verbose=False)
    assert not result and words in result.hint, result.hint


def test_cache_checker_leaves_the_learners_random_generator_alone():
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    check_cache_step(cost.cache_step, verbose=False)
    assert torch.equal(torch.rand(3), want)


def test_checkers_say_not_written_yet():
    def unwritten(*args):
        raise NotImplementedError

    for checker in (check_cache_step, check_sliding_window_mask):
        result = checker(unwritten, verbose=False)
        assert not result and "not written yet" in result.hint
    with pytest.raises(InputError):
        check_cache_step(42)
