"""Chapter 5, multi-head attention: the page's code, attnlab.heads, its figures and the lab's checkers."""

import re

import numpy as np
import pytest
import torch
from torch import nn

from attnlab import checkers, figures_heads, heads
from attnlab.blocks import MultiHeadAttention, load_from_torch_mha
from attnlab.errors import InputError
from attnlab.workshop import mistakes
from tests.conftest import ROOT

SENTENCE = "The cat sat on the mat because it was tired."
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def page_mha():
    """The chapter's own written-out multi_head_attention, taken from its code cell."""
    text = (ROOT / "book" / "05-multi-head-attention.md").read_text(encoding="utf-8")
    cell = next(c for c in re.findall(r"```\{code-cell\} ipython3\n(.*?)```", text, re.S)
                if "def multi_head_attention" in c)
    namespace = {}
    exec(cell, namespace)
    return namespace["multi_head_attention"]


def _copied(torch_mha):
    projections = [nn.Linear(torch_mha.embed_dim, torch_mha.embed_dim) for _ in range(3)]
    with torch.no_grad():
        for proj, w, b in zip(projections, torch_mha.in_proj_weight.chunk(3), torch_mha.in_proj_bias.chunk(3)):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
    return (*projections, torch_mha.out_proj)


# ------------------------------------------------------------------ the page's code


@pytest.mark.parametrize("n_heads", [1, 2, 4, 8])
def test_page_code_equals_torch_multihead_attention_with_its_masks_and_weights(page_mha, n_heads):
    torch.manual_seed(n_heads)
    torch_mha = nn.MultiheadAttention(16, n_heads, batch_first=True).eval()
    projections = _copied(torch_mha)
    x = torch.randn(3, 6, 16)
    real = torch.arange(6) < torch.tensor([6, 4, 2])[:, None]
    with torch.no_grad():
        ours, weights = page_mha(x, *projections, n_heads)
        theirs, averaged = torch_mha(x, x, x)
        _, per_head = torch_mha(x, x, x, average_attn_weights=False)
        masked, masked_weights = page_mha(x, *projections, n_heads, mask=real[:, None, None, :])
        masked_theirs, _ = torch_mha(x, x, x, key_padding_mask=~real)
        causal = torch.tril(torch.ones(6, 6, dtype=torch.bool))
        causal_ours, _ = page_mha(x, *projections, n_heads, mask=causal)
        causal_theirs, _ = torch_mha(x, x, x, attn_mask=~causal)
        package = load_from_torch_mha(MultiHeadAttention(16, n_heads), torch_mha).eval()
        fused, _ = package(x, mask=real[:, None, None, :])
        # The mask exercise's answer: our (B, 1, 1, T) mask, flipped, in both of PyTorch's arguments.
        may_attend = real[:, None, None, :]
        by_padding, _ = torch_mha(x, x, x, key_padding_mask=~may_attend[:, 0, 0, :])
        by_attn_mask, _ = torch_mha(x, x, x, attn_mask=(~may_attend).expand(3, n_heads, 6, 6).reshape(3 * n_heads, 6, 6))
        for wrong in ({"key_padding_mask": may_attend}, {"attn_mask": ~may_attend}):
            with pytest.raises((RuntimeError, AssertionError)):  # which one depends on PyTorch's path
                torch_mha(x, x, x, **wrong)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights, per_head, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.mean(1), averaged, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, n_heads, 6))
    torch.testing.assert_close(masked, masked_theirs, atol=1e-6, rtol=1e-5)
    assert torch.all(masked_weights[2, :, :, 2:] == 0)
    torch.testing.assert_close(causal_ours, causal_theirs, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fused, masked, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(by_padding, masked, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(by_attn_mask, masked, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("layer", [0, 4])
def test_page_code_reproduces_a_minilm_layer(page_mha, layer):
    from attnlab.extraction import attend

    captured = heads.capture_layer(SENTENCE, "minilm", layer)
    assert captured.x.shape == captured.attended.shape == (1, len(captured.tokens), 384)
    with torch.no_grad():
        out, weights = page_mha(captured.x, captured.q_proj, captured.k_proj, captured.v_proj,
                                captured.out_proj, captured.n_heads)
    torch.testing.assert_close(out, captured.attended, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(weights[0].numpy(), attend(SENTENCE, "minilm").attentions[layer], atol=1e-5)


def test_capture_layer_refuses_a_missing_layer():
    with pytest.raises(InputError, match="layer 6 does not exist"):
        heads.capture_layer(SENTENCE, "minilm", 6)
    with pytest.raises(InputError, match="empty"):
        heads.capture_layer("   ", "minilm", 0)


# ------------------------------------------------------------------ cost


def test_heads_cost_the_same_and_the_counts_follow_the_formulas():
    d, length = 64, 20
    costs = [heads.attention_cost(d, h, length) for h in (1, 2, 4, 8)]
    for c in costs:
        assert c.parameters == 4 * (d * d + d) == heads.count_parameters(nn.MultiheadAttention(d, c.n_heads))
        assert c.projection_flops == 8 * length * d * d
        assert c.attention_flops == 4 * length * length * d
        assert c.weights_held == c.n_heads * length * length
        assert c.head_dim * c.n_heads == d and c.flops == c.projection_flops + c.attention_flops
    no_bias = heads.attention_cost(d, 2, length, bias=False)
    assert no_bias.parameters == 4 * d * d and no_bias.flops == costs[1].flops


def test_cost_and_count_refuse_bad_input():
    with pytest.raises(InputError, match="not divisible"):
        heads.attention_cost(384, 5)
    with pytest.raises(InputError, match="length"):
        heads.attention_cost(384, 6, length=0)
    with pytest.raises(InputError, match="n_heads"):
        heads.attention_cost(384, 2.0)
    with pytest.raises(InputError, match="torch module"):
        heads.count_parameters([1, 2, 3])


# ------------------------------------------------------------------ ablation


def test_silencing_heads_changes_the_layer_and_more_heads_change_it_more():
    assert heads.ablate_heads(SENTENCE, "minilm", 0, []) == 0.0
    one = heads.ablate_heads(SENTENCE, "minilm", 0, [2])
    same = heads.ablate_heads(SENTENCE, "minilm", 0, 2)
    everything = heads.ablate_heads(SENTENCE, "minilm", 0, range(12))
    assert 0 < one == same < everything
    # The hook is removed afterwards: the model computes as before.
    assert heads.ablate_heads(SENTENCE, "minilm", 0, []) == 0.0


def test_silencing_heads_is_measured_after_w_o_and_diluted_at_the_block_output():
    from attnlab.models import load

    captured = heads.capture_layer(SENTENCE, "minilm", 0)
    out_proj = captured.out_proj
    # All heads silenced: the merged heads are 0, so W_O outputs its bias alone.
    bias_only = out_proj.bias.detach().expand_as(captured.attended)
    expected = float(torch.linalg.norm(bias_only - captured.attended) / torch.linalg.norm(captured.attended))
    assert heads.ablate_heads(SENTENCE, "minilm", 0, range(12)) == pytest.approx(expected, rel=1e-4)
    for head in (2, 6):
        attention = heads.ablate_heads(SENTENCE, "minilm", 0, [head])
        block = heads.ablate_heads(SENTENCE, "minilm", 0, [head], where="block")
        assert 0 < block < attention
    assert heads.ablate_heads(SENTENCE, load("minilm"), 0, [], where="block") == 0.0
    with pytest.raises(InputError, match="'attention'"):
        heads.ablate_heads(SENTENCE, "minilm", 0, [2], where="output")


def test_ablation_refuses_heads_and_layers_that_do_not_exist():
    with pytest.raises(InputError, match="head 12 does not exist"):
        heads.ablate_heads(SENTENCE, "minilm", 0, [12])
    with pytest.raises(InputError, match="layer -1 does not exist"):
        heads.ablate_heads(SENTENCE, "minilm", -1, [0])


# ------------------------------------------------------------------ figures


def _maps(layers=2, n_heads=4, length=5, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(layers, n_heads, length, length))
    return np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)


def test_layer_grid_shows_every_head_with_rows_summing_to_one_and_a_layer_menu():
    maps = _maps(layers=3, n_heads=5)
    tokens = ["a", EVIL, "b", "a", "c"]
    fig = figures_heads.layer_heads_grid(maps, tokens, {(1, 2): "previous"}, layer=1, title="Grid")
    assert len(fig.data) == 5 and all(t.type == "heatmap" for t in fig.data)
    for head, trace in enumerate(fig.data):
        np.testing.assert_allclose(np.asarray(trace.z), maps[1, head], atol=1e-3)
        assert np.allclose(np.asarray(trace.z).sum(-1), 1, atol=1e-2)
    assert "<script>" not in fig.to_json() and len(set(fig.data[0].x)) == 5  # a repeated word keeps its row
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == 3 and fig.layout.updatemenus[0].active == 1
    for layer, button in enumerate(buttons):
        for head, z in enumerate(button.args[0]["z"]):
            np.testing.assert_allclose(np.asarray(z), maps[layer, head], atol=1e-3)
    titles = [a.text for a in fig.layout.annotations]
    assert "<b>h2 · previous</b>" in titles and "layer 1" in fig.layout.title.text
    # The small maps hide their axes: the title says how to read them, on a line that fits a phone.
    assert "rows: queries · columns: keys" in fig.layout.title.text
    assert all("rows: queries · columns: keys" in b.args[1]["title.text"] for b in buttons)
    assert all(len(line) <= 38 for line in fig.layout.title.text.split("<br>"))
    assert len(fig.layout.meta["alt"]) > 20


def test_layer_grid_refuses_bad_input():
    maps = _maps()
    with pytest.raises(InputError, match="layers, heads, tokens, tokens"):
        figures_heads.layer_heads_grid(maps[0], list("abcde"))
    with pytest.raises(InputError, match="one label per token"):
        figures_heads.layer_heads_grid(maps, list("abc"))
    with pytest.raises(InputError, match="sums to 1"):
        figures_heads.layer_heads_grid(maps * 2, list("abcde"))
    with pytest.raises(InputError, match="layer 7 does not exist"):
        figures_heads.layer_heads_grid(maps, list("abcde"), layer=7)


def test_qkv_heatmaps_draw_the_real_vectors_of_a_head():
    from attnlab.extraction import head_internals

    head = head_internals(SENTENCE, "minilm", layer=0, head=2)
    fig = figures_heads.qkv_heatmaps(head.q, head.k, head.v, head.tokens)
    assert [t.type for t in fig.data] == ["heatmap"] * 3
    np.testing.assert_allclose(np.asarray(fig.data[1].z), head.k, atol=0.01)
    assert len(fig.layout.meta["alt"]) > 20
    with pytest.raises(InputError, match="one row per token"):
        figures_heads.qkv_heatmaps(head.q[:3], head.k, head.v, head.tokens)


def test_cost_chart_stacks_the_measured_flops():
    costs = [heads.attention_cost(32, h, 8) for h in (1, 2, 4)]
    fig = figures_heads.head_cost_chart(costs)
    assert all(t.type == "bar" for t in fig.data) and fig.layout.barmode == "stack"
    stacked = np.asarray(fig.data[0].y) + np.asarray(fig.data[1].y)
    np.testing.assert_allclose(stacked, [c.flops / 1e6 for c in costs])
    assert list(fig.data[2].y) == [c.weights_held for c in costs]
    with pytest.raises(InputError, match="same"):
        figures_heads.head_cost_chart([heads.attention_cost(32, 2, 8), heads.attention_cost(16, 2, 8)])
    with pytest.raises(InputError, match="at least one"):
        figures_heads.head_cost_chart([])


# ------------------------------------------------------------------ checkers


# The right and wrong answers live in the instructors' catalog of mistakes: one source for both.
good_split, good_merge, view_merge = mistakes.split_heads, mistakes.merge_heads, mistakes.merge_with_view
make_mha = mistakes.torch_heads


def _verdict(result):
    return result.passed, result.hint


def test_split_checker_accepts_the_right_split_and_names_each_mistake():
    assert checkers.check_split_heads(good_split, verbose=False)
    mistakes = {
        "transpose(1, 2)": lambda x, h: x.view(x.shape[0], x.shape[1], h, -1),
        "without a transpose": lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1),
        "every n_heads-th feature": lambda x, h: x.view(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2),
        "read B, T and": lambda x, h: x.view(2, 5, 3, 4).transpose(1, 2),
    }
    for hint, fn in mistakes.items():
        passed, message = _verdict(checkers.check_split_heads(fn, verbose=False))
        assert not passed and hint in message, (hint, message)


def test_merge_checker_accepts_the_right_merge_and_names_each_mistake():
    assert checkers.check_merge_heads(good_merge, verbose=False)
    mistakes = {
        "not joined": lambda x: x.transpose(1, 2),
        "mixes tokens": lambda x: x.reshape(x.shape[0], x.shape[2], -1),
        "`.reshape(B, T, C)`": view_merge,  # a .view after the transpose: PyTorch's RuntimeError, explained
    }
    for hint, fn in mistakes.items():
        passed, message = _verdict(checkers.check_merge_heads(fn, verbose=False))
        assert not passed and hint in message, (hint, message)


def test_multi_head_checker_compares_with_pytorch_and_names_each_mistake():
    assert checkers.check_multi_head_torch(make_mha(), verbose=False)
    bad_split = lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1)  # noqa: E731
    bad_merge = lambda x: x.reshape(x.shape[0], x.shape[2], -1)  # noqa: E731
    mistakes = {
        "output projection is missing": make_mha(project=False),
        "not scaled": make_mha(scale=lambda x, q: 1.0),
        "divided by √C": make_mha(scale=lambda x, q: x.shape[-1]),
        "without a transpose": make_mha(merge=bad_merge),
        "reshape without a transpose": make_mha(split=bad_split, merge=bad_merge),
        "single-head": lambda x, w_q, w_k, w_v, w_o, n_heads: make_mha()(x, w_q, w_k, w_v, w_o, 1),
        "`.view` cannot join the heads": make_mha(merge=view_merge),
        "w_q, w_k, w_v, w_o are used transposed": make_mha(transposed=("w_q", "w_k", "w_v", "w_o")),
        "w_o is used transposed": make_mha(transposed=("w_o",)),
        "softmax runs over the queries (dim=-2)": make_mha(softmax_dim=-2),
        "differs from the reference, torch.nn.MultiheadAttention(8, 1)": make_mha(scale=lambda x, q: 2.0),
    }
    for hint, fn in mistakes.items():
        passed, message = _verdict(checkers.check_multi_head_torch(fn, verbose=False))
        assert not passed and hint in message, (hint, message)


def test_unwritten_chapter_5_exercises_say_not_written_yet():
    def unwritten(*args):
        raise NotImplementedError

    for check in (checkers.check_split_heads, checkers.check_merge_heads, checkers.check_multi_head_torch):
        result = check(unwritten, verbose=False)
        assert not result and result.hint.startswith(checkers.NOT_WRITTEN)
        with pytest.raises(InputError, match="without calling it"):
            check(42)
