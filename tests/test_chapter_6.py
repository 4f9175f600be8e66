"""The package code behind chapter 6: the post-LN / pre-LN study, the residual-stream figure, the lab's checkers."""

import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from attnlab import checkers, norm_study, render
from attnlab.blocks import MultiHeadAttention, TransformerBlock, load_from_torch_mha
from attnlab.errors import InputError
from attnlab.figures_block import residual_stream
from attnlab.workshop import mistakes
from tests.conftest import ROOT

EVIL = "<script>alert(1)</script>"
TINY = norm_study.StudySettings(n_layers=2, d_model=16, n_heads=2, seq_len=8, batch_size=4, steps=6,
                                warmup_steps=3, text_chars=2_000)


# ------------------------------------------------------------------ the page's own code


@pytest.fixture(scope="module")
def page():
    """The chapter's written-out layer_norm and Block, taken from its code cells."""
    text = (ROOT / "book" / "06-transformer-block.md").read_text(encoding="utf-8")
    cells = re.findall(r"```\{code-cell\} ipython3\n(.*?)```", text, re.S)
    namespace = {"torch": torch, "nn": nn, "MultiHeadAttention": MultiHeadAttention}
    layer_norm = next(c for c in cells if "def layer_norm" in c)
    exec(re.search(r"def layer_norm\(.*?\n\n", layer_norm, re.S).group(0), namespace)
    exec(next(c for c in cells if "class Block(nn.Module)" in c), namespace)
    return namespace


def test_page_layer_norm_equals_nn_layer_norm(page):
    torch.manual_seed(0)
    x = 4 * torch.randn(3, 5, 12) - 2
    reference = nn.LayerNorm(12)
    with torch.no_grad():
        reference.weight.normal_()
        reference.bias.normal_()
        torch.testing.assert_close(page["layer_norm"](x, reference.weight, reference.bias), reference(x))
        constant = torch.full((1, 1, 12), 7.0)
        torch.testing.assert_close(page["layer_norm"](constant, reference.weight, reference.bias),
                                   reference.bias.expand(1, 1, 12))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("d_model,n_heads", [(16, 4), (24, 3)])
def test_page_block_equals_torch_encoder_layer(page, norm_first, d_model, n_heads):
    torch.manual_seed(d_model + n_heads)
    theirs = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=4 * d_model, dropout=0.0,
                                        batch_first=True, norm_first=norm_first).eval()
    ours = page["Block"](d_model, n_heads, norm_first).eval()
    load_from_torch_mha(ours.attention, theirs.self_attn)
    ours.ffn[0].load_state_dict(theirs.linear1.state_dict())
    ours.ffn[2].load_state_dict(theirs.linear2.state_dict())
    ours.norm1.load_state_dict(theirs.norm1.state_dict())
    ours.norm2.load_state_dict(theirs.norm2.state_dict())
    x = torch.randn(2, 7, d_model)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------ the study


def test_settings_refuse_bad_values_with_a_friendly_error():
    with pytest.raises(InputError, match="divisible"):
        norm_study.StudySettings(d_model=30, n_heads=4)
    with pytest.raises(InputError, match="n_layers"):
        norm_study.StudySettings(n_layers=0)
    with pytest.raises(InputError, match="peak_lr"):
        norm_study.StudySettings(peak_lr=-1.0)
    with pytest.raises(InputError, match="unknown setting"):
        norm_study.StudySettings().changed(depth=12)
    assert norm_study.StudySettings().changed(peak_lr=3e-3).peak_lr == 3e-3


def test_warmup_ramps_up_to_the_peak_and_stays_there():
    assert [norm_study.lr_at(step, 1.0, 4) for step in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert norm_study.lr_at(0, 0.01, 0) == 0.01


def test_unigram_entropy_is_the_entropy_of_the_letter_frequencies():
    assert norm_study.unigram_entropy(torch.tensor([0, 1, 2, 3])) == pytest.approx(math.log(4))
    assert norm_study.unigram_entropy(torch.tensor([5, 5, 5])) == pytest.approx(0.0)


def test_char_stack_predicts_every_next_character():
    model = norm_study.CharStack(vocab_size=11, settings=TINY, norm_first=True)
    logits = model(torch.randint(0, 11, (3, TINY.seq_len)))
    assert logits.shape == (3, TINY.seq_len, 11)
    assert isinstance(model.final_norm, nn.LayerNorm)  # pre-LN ends with one more LayerNorm
    assert isinstance(norm_study.CharStack(11, TINY, norm_first=False).final_norm, nn.Identity)


def test_training_is_reproducible_and_leaves_the_thread_count_alone():
    threads = torch.get_num_threads()
    first = norm_study.train_stack(False, True, seed=3, settings=TINY)
    assert torch.get_num_threads() == threads
    assert first == norm_study.train_stack(False, True, seed=3, settings=TINY)
    assert len(first) == TINY.steps and all(math.isfinite(v) for v in first)
    with pytest.raises(InputError, match="characters"):
        norm_study.train_stack(True, False, 0, TINY, data=torch.arange(5))
    with pytest.raises(InputError, match="device"):
        norm_study.train_stack(True, False, 0, TINY, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no GPU"):
            norm_study.run_study(TINY, device="cuda", progress=False)


def test_run_study_gives_one_row_per_run_and_step_and_sums_them_up():
    results = norm_study.run_study(TINY, seeds=(0, 1), progress=False)
    assert set(results.columns) >= {"norm", "warmup", "seed", "step", "loss", "smoothed"}
    assert len(results) == 2 * 2 * 2 * TINY.steps
    summary, per_run = norm_study.final_losses(results, last=3)
    assert len(per_run) == 8 and list(summary.columns) == ["mean", "std", "min", "max"]
    assert set(summary.index) == {(n, w) for n in ("post-LN", "pre-LN") for w in ("no warmup", "with warmup")}
    one = norm_study.run_study(TINY, seeds=(0,), progress=False, norms=("post-LN",), warmups=(False,))
    assert set(one["norm"]) == {"post-LN"} and set(one["warmup"]) == {"no warmup"}
    with pytest.raises(InputError):
        norm_study.run_study(TINY, norms=("mid-LN",))
    with pytest.raises(InputError):
        norm_study.run_study(TINY, seeds=())


def test_loss_curves_is_a_white_png_figure_with_both_panels():
    results = norm_study.run_study(TINY, seeds=(0, 1), progress=False)
    fig = norm_study.loss_curves(results, reference=3.0)
    assert len(fig.axes) == 2
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert [ax.get_title() for ax in fig.axes] == ["no warmup", "with warmup"]
    width, _height = fig.get_size_inches()
    assert width <= 4.5  # about 440 px: readable in a phone's column


def test_study_progress_bar_is_render_progress_and_prints_its_final_state_once_in_a_build(monkeypatch, capsys):
    assert norm_study.progress_bar is render.progress
    monkeypatch.setenv(render.BOOK_BUILD_ENV, "1")
    norm_study.run_study(TINY, seeds=(0,), norms=("pre-LN",), warmups=(False,))
    printed = capsys.readouterr().out
    assert printed.count("training: 100%") == 1 and "1/1" in printed and "\r" not in printed


def test_post_ln_without_warmup_stalls_where_pre_ln_learns():
    """The chapter's finding, on one seed (the chapter asserts it on three at build time)."""
    settings = norm_study.StudySettings()
    data, _ = norm_study.char_data(settings.text_chars)
    letters_only = norm_study.unigram_entropy(data)
    post = np.mean(norm_study.train_stack(False, False, 0, settings, data)[-10:])
    pre = np.mean(norm_study.train_stack(True, False, 0, settings, data)[-10:])
    assert post > letters_only - 0.1
    assert pre < letters_only - 0.5


# ------------------------------------------------------------------ the figure


def _stages(length=4, width=6):
    rng = np.random.default_rng(0)
    x, update = rng.normal(size=(length, width)), 0.1 * rng.normal(size=(1, length, width))
    return {"input x": x, "update": update, "x + update": x + update[0]}, ["stream", "update", "stream"]


def test_residual_stream_shows_each_stage_length_with_a_token_menu():
    stages, kinds = _stages()
    tokens = ["the", EVIL, "sat", "down"]
    fig = residual_stream(stages, kinds, tokens, start=1)
    assert {trace.type for trace in fig.data} == {"bar"}
    stream = fig.data[0]
    assert list(stream.y) == [0, 2]
    np.testing.assert_allclose(stream.x[0], np.linalg.norm(stages["input x"][1]), atol=0.01)
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["the", "&lt;script&gt;alert(1)&lt;/script&gt;", "sat", "down"]
    assert len(buttons[3].args[0]["x"]) == 2  # one list per trace: the stream and the updates
    assert len(fig.layout.meta["alt"]) > 20 and "stages" in fig.layout.meta["alt"]
    assert fig.layout.legend.orientation == "h"


def test_residual_stream_refuses_bad_input():
    stages, kinds = _stages()
    with pytest.raises(InputError, match="one kind per stage"):
        residual_stream(stages, kinds[:2], ["a", "b", "c", "d"])
    with pytest.raises(InputError, match="unknown kind"):
        residual_stream(stages, ["stream", "sideways", "stream"], ["a", "b", "c", "d"])
    with pytest.raises(InputError, match="token vectors"):
        residual_stream(stages, kinds, ["a", "b"])
    with pytest.raises(InputError, match="start"):
        residual_stream(stages, kinds, ["a", "b", "c", "d"], start=9)
    with pytest.raises(InputError):
        residual_stream(stages, kinds, "a b c d")


def test_a_minilm_layer_is_a_post_ln_transformer_block():
    """The chapter's Explore section: MiniLM's layer 2 loaded into TransformerBlock computes the same."""
    from attnlab.models import load

    minilm = load("minilm", device="cpu")
    bert, layer = minilm.model, 2
    real, config = bert.encoder.layer[layer], bert.config
    block = TransformerBlock(config.hidden_size, config.num_attention_heads, d_ff=config.intermediate_size,
                             norm_first=False, activation="gelu", layer_norm_eps=config.layer_norm_eps).eval()
    pairs = [(block.attention.q_proj, real.attention.self.query), (block.attention.k_proj, real.attention.self.key),
             (block.attention.v_proj, real.attention.self.value),
             (block.attention.out_proj, real.attention.output.dense), (block.norm1, real.attention.output.LayerNorm),
             (block.feed_forward.expand, real.intermediate.dense), (block.feed_forward.contract, real.output.dense),
             (block.norm2, real.output.LayerNorm)]
    for ours, theirs in pairs:
        ours.load_state_dict(theirs.state_dict())
    inputs = minilm.tokenizer("The cat sat on the mat.", return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**inputs, output_hidden_states=True).hidden_states
        out, _ = block(hidden[layer])
    torch.testing.assert_close(out, hidden[layer + 1], atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ the lab's checkers


def right_layer_norm(x, gain, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return gain * (x - mean) / torch.sqrt(var + eps) + bias


right_block = mistakes.right_block  # the catalog of wrong answers builds on it too


def not_written(*args, **kwargs):
    raise NotImplementedError


def _hint(result):
    assert not result
    return result.hint


def test_check_layer_norm_accepts_the_right_answer_and_names_each_mistake():
    assert checkers.check_layer_norm(right_layer_norm, verbose=False)
    assert checkers.check_layer_norm(lambda x, g, b, eps=1e-5: torch.nn.functional.layer_norm(x, (x.size(-1),), g, b, eps),
                                     verbose=False)

    def over(dim, unbiased=False, with_eps=True, affine=True):
        def fn(x, gain, bias, eps=1e-5):
            mean, var = x.mean(dim=dim, keepdim=True), x.var(dim=dim, keepdim=True, unbiased=unbiased)
            normalised = (x - mean) / torch.sqrt(var + (eps if with_eps else 0.0))
            return gain * normalised + bias if affine else normalised
        return fn

    assert "batch" in _hint(checkers.check_layer_norm(over(0), verbose=False))
    assert "across the tokens" in _hint(checkers.check_layer_norm(over(1), verbose=False))
    assert "biased" in _hint(checkers.check_layer_norm(over(-1, unbiased=True), verbose=False))
    assert "add eps" in _hint(checkers.check_layer_norm(over(-1, with_eps=False), verbose=False))
    assert "gain and bias are missing" in _hint(checkers.check_layer_norm(over(-1, affine=False), verbose=False))
    outside = lambda x, g, b, eps=1e-5: g * (x - x.mean(-1, keepdim=True)) / (  # noqa: E731
        x.var(-1, keepdim=True, unbiased=False).sqrt() + eps) + b
    assert "inside the square root" in _hint(checkers.check_layer_norm(outside, verbose=False))
    assert "eps argument" in _hint(checkers.check_layer_norm(lambda x, g, b, eps=1e-5: right_layer_norm(x, g, b),
                                                             verbose=False))
    squared = lambda x, g, b, eps=1e-5: right_layer_norm(x, g, b, eps ** 2)  # noqa: E731
    assert "not squared" in _hint(checkers.check_layer_norm(squared, verbose=False))

    def no_keepdim(x, gain, bias, eps=1e-5):
        mean, var = x.mean(dim=-1), x.var(dim=-1, unbiased=False)
        return gain * (x - mean) / torch.sqrt(var + eps) + bias

    hint = _hint(checkers.check_layer_norm(no_keepdim, verbose=False))
    assert "keepdim=True" in hint and "RuntimeError" not in hint

    def not_centred(root_mean_square):
        def fn(x, gain, bias, eps=1e-5):
            spread = x.pow(2).mean(-1, keepdim=True) if root_mean_square else x.var(-1, keepdim=True, unbiased=False)
            return gain * x / torch.sqrt(spread + eps) + bias
        return fn

    assert "mean was not subtracted" in _hint(checkers.check_layer_norm(not_centred(True), verbose=False))
    assert "mean was not subtracted" in _hint(checkers.check_layer_norm(not_centred(False), verbose=False))
    assert _hint(checkers.check_layer_norm(not_written, verbose=False)).startswith(checkers.NOT_WRITTEN)
    with pytest.raises(InputError):
        checkers.check_layer_norm(right_layer_norm(torch.ones(1, 1, 2), torch.ones(2), torch.zeros(2)))


def test_check_feed_forward_accepts_the_right_answer_and_names_each_mistake():
    assert checkers.check_feed_forward(lambda x, w1, b1, w2, b2: torch.relu(x @ w1 + b1) @ w2 + b2, verbose=False)
    assert "nonlinearity" in _hint(checkers.check_feed_forward(lambda x, w1, b1, w2, b2: (x @ w1 + b1) @ w2 + b2,
                                                               verbose=False))
    assert "not after" in _hint(checkers.check_feed_forward(
        lambda x, w1, b1, w2, b2: torch.relu(torch.relu(x @ w1 + b1) @ w2 + b2), verbose=False))
    assert "b2" in _hint(checkers.check_feed_forward(lambda x, w1, b1, w2, b2: torch.relu(x @ w1 + b1) @ w2,
                                                     verbose=False))
    assert _hint(checkers.check_feed_forward(not_written, verbose=False)).startswith(checkers.NOT_WRITTEN)


def test_check_block_accepts_the_right_answer_and_names_each_mistake():
    assert checkers.check_block(right_block, verbose=False)

    no_residual, swapped = mistakes.block_no_residual, mistakes.block_pre_post_swapped
    normalised_stream, norms_swapped = mistakes.block_normalised_stream, mistakes.block_norms_swapped

    assert "residual connections are missing" in _hint(checkers.check_block(no_residual, verbose=False))
    assert "this is pre-LN" in _hint(checkers.check_block(swapped, verbose=False))
    assert "stream itself was normalised" in _hint(checkers.check_block(normalised_stream, verbose=False))
    assert "swapped" in _hint(checkers.check_block(norms_swapped, verbose=False))
    assert _hint(checkers.check_block(not_written, verbose=False)).startswith(checkers.NOT_WRITTEN)
