"""Chapter 7: masks, the decoder's weights, the tiny reverser, and the lab's checkers."""

import numpy as np
import pytest
import torch
from torch import nn

from attnlab.attention import causal_mask, padding_mask, scaled_dot_product_attention_np
from attnlab.blocks import Decoder, DecoderBlock, EncoderDecoder, load_from_torch_decoder_layer
from attnlab.checkers import check_causal_mask, check_cross_attention, check_padding_mask
from attnlab.errors import InputError
from attnlab.figures import attention_heatmap
from attnlab.seq2seq import BOS, cross_attention, evaluate, greedy_decode, make_batch, train_reverser

# ---------------------------------------------------------------- the decoder's weights


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_block_keeps_its_weights_and_matches_pytorch(norm_first):
    torch.manual_seed(0)
    d_model, n_heads, T, S = 16, 4, 6, 5
    theirs = nn.TransformerDecoderLayer(d_model, n_heads, 32, dropout=0.0, batch_first=True,
                                        norm_first=norm_first).eval()
    ours = load_from_torch_decoder_layer(DecoderBlock(d_model, n_heads, 32, norm_first=norm_first), theirs).eval()
    y, memory = torch.randn(2, T, d_model), torch.randn(2, S, d_model)
    real = padding_mask([5, 3], S)
    plain = ours(y, memory, memory_mask=real)
    assert ours.self_weights is None and ours.cross_weights is None
    got = ours(y, memory, memory_mask=real, need_weights=True)
    want = theirs(y, memory, tgt_mask=~causal_mask(T), memory_key_padding_mask=~real[:, 0, 0])
    assert torch.allclose(got, want, atol=1e-5) and torch.allclose(got, plain, atol=1e-5)
    assert ours.self_weights.shape == (2, n_heads, T, T) and ours.cross_weights.shape == (2, n_heads, T, S)
    assert torch.allclose(ours.cross_weights.sum(-1), torch.ones(2, n_heads, T), atol=1e-6)
    assert ours.self_weights.triu(1).abs().max() == 0  # causal
    assert ours.cross_weights[1, :, :, 3:].abs().max() == 0  # the second source's pads


def test_decoder_stack_returns_every_layer_and_refuses_without_weights():
    decoder = Decoder(2, 8, 2).eval()
    x, memory = torch.randn(1, 4, 8), torch.randn(1, 3, 8)
    decoder(x, memory)
    with pytest.raises(InputError, match="need_weights=True"):
        decoder.attention_weights()
    decoder(x, memory, need_weights=True)
    assert decoder.attention_weights("cross").shape == (2, 1, 2, 4, 3)
    assert decoder.attention_weights("self").shape == (2, 1, 2, 4, 4)
    with pytest.raises(InputError, match="cross"):
        decoder.attention_weights("both")
    with pytest.raises(InputError, match="True or False"):
        decoder(x, memory, need_weights="yes")


def test_encoder_decoder_old_call_still_works_and_causal_matters():
    torch.manual_seed(0)
    model = EncoderDecoder(10, 11, d_model=16, n_heads=2, n_layers=1, dropout=0.0).eval()
    src, tgt = torch.randint(0, 10, (2, 5)), torch.randint(0, 11, (2, 4))
    causal = model(src, tgt)
    assert causal.shape == (2, 4, 11)
    assert torch.allclose(causal, model(src, tgt, need_weights=True), atol=1e-5)
    assert not torch.allclose(causal, model(src, tgt, is_causal=False), atol=1e-4)
    # causal: changing the last target token leaves earlier positions' logits alone
    changed = tgt.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 11
    assert torch.allclose(model(src, changed)[:, :-1], causal[:, :-1], atol=1e-5)


# ---------------------------------------------------------------- the tiny reverser


def test_make_batch_reverses_and_shifts():
    src, decoder_input, target = make_batch(4, 6, torch.Generator().manual_seed(0))
    assert src.shape == decoder_input.shape == target.shape == (4, 6)
    assert torch.equal(target, src.flip(1))
    assert (decoder_input[:, 0] == BOS).all() and torch.equal(decoder_input[:, 1:], target[:, :-1])
    copy_src, _, copy_target = make_batch(2, 3, task="copy")
    assert torch.equal(copy_src, copy_target)


@pytest.mark.parametrize("call, message", [
    (lambda: make_batch(2, 3, task="sort"), "task"),
    (lambda: make_batch(0, 3), "batch_size"),
    (lambda: train_reverser(steps=0), "steps"),
    (lambda: greedy_decode("model", torch.zeros(1, 3, dtype=torch.long)), "EncoderDecoder"),
])
def test_bad_input_is_friendly(call, message):
    with pytest.raises(InputError, match=message):
        call()


@pytest.fixture(scope="module")
def reverser():
    return train_reverser(steps=300, length=6, seed=0, progress=False)


def test_the_reverser_learns(reverser):
    assert reverser.losses[-1] < 0.1 < reverser.losses[0]
    scores = evaluate(reverser, n=200)
    assert scores["generated"] > 0.95 and scores["teacher_forced"] > 0.95
    out = greedy_decode(reverser, torch.tensor([[3, 1, 4, 1, 5, 9]]))
    assert out.tolist() == [[9, 5, 1, 4, 1, 3]]
    # the module docstring's example
    assert greedy_decode(reverser, torch.tensor([[1, 2, 3, 4, 5, 6]])).tolist() == [[6, 5, 4, 3, 2, 1]]


def test_greedy_decode_refuses_bad_sources(reverser):
    with pytest.raises(InputError, match="between 0 and 9"):
        greedy_decode(reverser, torch.tensor([[1, 2, BOS]]))
    with pytest.raises(InputError, match="whole numbers|long"):
        greedy_decode(reverser, torch.tensor([[1.0, 2.0]]))
    with pytest.raises(InputError, match="length"):
        evaluate(reverser.model)


def test_cross_attention_map_is_a_distribution_along_the_anti_diagonal(reverser):
    src, _, _ = make_batch(100, 6, torch.Generator().manual_seed(5))
    output, maps = cross_attention(reverser, src)
    assert output.shape == (100, 6) and maps.shape == (1, 100, 1, 6, 6)
    assert torch.allclose(maps.sum(-1), torch.ones(1, 100, 1, 6), atol=1e-5)
    mirror = torch.arange(6).flip(0)
    assert (maps[0, :, 0].argmax(-1) == mirror).float().mean() > 0.8
    fig = attention_heatmap(maps[0, 0, 0].numpy(), [str(d) for d in output[0].tolist()],
                            [str(d) for d in src[0].tolist()], title="Cross-attention")
    assert np.allclose(np.nansum(np.asarray(fig.data[0].z, dtype=float), axis=-1), 1, atol=1e-5)


# ---------------------------------------------------------------- checkers


def good_padding(lengths, max_len):
    return (np.arange(max_len)[None, :] < np.array(lengths)[:, None])[:, None, None, :]


@pytest.mark.parametrize("fn, message", [
    (lambda l, m: ~good_padding(l, m), "inverted"),
    (lambda l, m: good_padding(l, m).transpose(0, 1, 3, 2), "QUERIES"),
    (lambda l, m: good_padding(l, m)[:, 0, 0], "broadcasting axes"),
    (lambda l, m: (np.arange(m)[None, :] <= np.array(l)[:, None])[:, None, None, :], "<="),
])
def test_padding_mask_checker_diagnoses(fn, message):
    result = check_padding_mask(fn, verbose=False)
    assert not result and message in result.hint


def test_padding_mask_checker_accepts_numpy_and_the_package():
    assert check_padding_mask(good_padding, verbose=False)
    assert check_padding_mask(lambda lengths, max_len: padding_mask(lengths, max_len), verbose=False)


def good_cross(x, memory, w_q, w_k, w_v):
    return scaled_dot_product_attention_np(x @ w_q, memory @ w_k, memory @ w_v)


def _softmax(s, axis):
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def causal_cross(x, memory, w_q, w_k, w_v):
    mask = np.tril(np.ones((len(x), len(memory)), dtype=bool))
    return scaled_dot_product_attention_np(x @ w_q, memory @ w_k, memory @ w_v, mask=mask)


def column_softmax(x, memory, w_q, w_k, w_v):
    w = _softmax((x @ w_q) @ (memory @ w_k).T / np.sqrt(w_q.shape[1]), axis=0)
    return w @ (memory @ w_v), w


def unscaled(x, memory, w_q, w_k, w_v):
    w = _softmax((x @ w_q) @ (memory @ w_k).T, axis=-1)
    return w @ (memory @ w_v), w


def unprojected_values(x, memory, w_q, w_k, w_v):
    out, w = good_cross(x, memory, w_q, w_k, w_v)
    return w @ memory, w


@pytest.mark.parametrize("fn, message", [
    (lambda x, m, a, b, c: good_cross(m, x, a, b, c), "swapped"),
    (causal_cross, "no causal mask"),
    (column_softmax, "columns"),
    (unscaled, "√d_k"),
    (unprojected_values, "project the values"),
    (lambda x, m, a, b, c: good_cross(x, m, a, b, c)[0], "two things"),
    (lambda x, m, a, b, c: good_cross(x, x, a, b, c), "self-attention"),
    (lambda x, m, a, b, c: (good_cross(x, m, a, b, c)[0], good_cross(x, m, a, b, c)[1].T), "transposed"),
])
def test_cross_attention_checker_diagnoses(fn, message):
    result = check_cross_attention(fn, verbose=False)
    assert not result and message in result.hint, result.hint


def test_cross_attention_checker_accepts_the_right_answer_and_says_not_written():
    assert check_cross_attention(good_cross, verbose=False)

    def unwritten(*args):
        raise NotImplementedError

    assert "not written yet" in check_cross_attention(unwritten, verbose=False).hint
    assert "not written yet" in check_padding_mask(unwritten, verbose=False).hint
    with pytest.raises(InputError):
        check_cross_attention(good_cross(np.ones((2, 2)), np.ones((2, 2)), *[np.eye(2)] * 3))


def test_whole_stacks_match_nn_transformer_and_refuse_mismatches():
    import warnings

    from attnlab.blocks import Encoder, load_from_torch_transformer

    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = nn.Transformer(16, 4, 2, 2, 64, dropout=0.0, batch_first=True, norm_first=True).eval()
    encoder, decoder = load_from_torch_transformer(Encoder(2, 16, 4, 64), Decoder(2, 16, 4, 64), theirs)
    src, tgt, real = torch.randn(2, 5, 16), torch.randn(2, 6, 16), padding_mask([5, 2], 5)
    got = decoder(tgt, encoder.eval()(src, mask=real), memory_mask=real)
    want = theirs(src, tgt, tgt_mask=~causal_mask(6), src_key_padding_mask=~real[:, 0, 0],
                  memory_key_padding_mask=~real[:, 0, 0])
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(InputError, match="n_layers=2"):
        load_from_torch_transformer(Encoder(1, 16, 4, 64), Decoder(2, 16, 4, 64), theirs)
    with pytest.raises(InputError, match="norm_first=True"):
        load_from_torch_transformer(Encoder(2, 16, 4, 64, norm_first=False), Decoder(2, 16, 4, 64), theirs)


@pytest.mark.parametrize("options, message", [({"lr": -1.0}, "lr"), ({"seed": 1.5}, "seed"),
                                              ({"d_model": 30, "n_heads": 4}, "divisible")])
def test_train_reverser_refuses_bad_settings(options, message):
    with pytest.raises(InputError, match=message):
        train_reverser(steps=1, progress=False, **options)


def test_causal_mask_checker_refuses_an_additive_mask():
    def additive(size):
        return np.where(np.tril(np.ones((size, size), dtype=bool)), 0.0, -np.inf)

    result = check_causal_mask(additive, verbose=False)
    assert not result and "not an additive mask" in result.hint
    assert check_causal_mask(lambda size: np.tril(np.ones((size, size), dtype=bool)), verbose=False)


def test_loaders_refuse_a_norm_first_mismatch():
    import warnings

    from attnlab.blocks import Encoder, TransformerBlock, load_from_torch_encoder_layer, load_from_torch_transformer

    post = nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=False)
    with pytest.raises(InputError, match="norm_first=False"):
        load_from_torch_decoder_layer(DecoderBlock(16, 4, 32), post)
    encoder_layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=True)
    with pytest.raises(InputError, match="norm_first=True"):
        load_from_torch_encoder_layer(TransformerBlock(16, 4, 32, norm_first=False), encoder_layer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post_transformer = nn.Transformer(16, 4, 1, 1, 32, dropout=0.0, batch_first=True, norm_first=False)
    assert post_transformer.encoder.norm is not None  # nn.Transformer adds a final norm for post-LN too
    with pytest.raises(InputError, match="whether norm_first"):
        load_from_torch_transformer(Encoder(1, 16, 4, 32, norm_first=False), Decoder(1, 16, 4, 32, norm_first=False),
                                    post_transformer)
    with pytest.raises(InputError, match="norm_first"):  # pre-LN stacks, post-LN layers
        load_from_torch_transformer(Encoder(1, 16, 4, 32), Decoder(1, 16, 4, 32), post_transformer)


def test_the_pytorch_facts_the_chapter_states():
    torch.manual_seed(0)
    T = 4
    x = torch.randn(2, T, 8)
    empty = padding_mask([4, 0], T)  # (B, 1, 1, T): the second sequence has no real key
    # F.scaled_dot_product_attention: a fully masked row gives 0, not NaN
    out = torch.nn.functional.scaled_dot_product_attention(x[:, None], x[:, None], x[:, None], attn_mask=empty)
    assert not torch.isnan(out).any() and out[1].abs().max() == 0
    # nn.MultiheadAttention: NaN with need_weights=True (its default), 0 with need_weights=False
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    with_weights, _ = mha(x, x, x, key_padding_mask=~empty[:, 0, 0], need_weights=True)
    without, _ = mha(x, x, x, key_padding_mask=~empty[:, 0, 0], need_weights=False)
    assert torch.isnan(with_weights[1]).all() and not torch.isnan(without).any()
    # a float mask is added: generate_square_subsequent_mask == the negated boolean causal mask
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True).eval()
    float_mask = nn.Transformer.generate_square_subsequent_mask(T)
    assert set(float_mask.unique().tolist()) == {0.0, float("-inf")}
    assert torch.allclose(layer(x, x, tgt_mask=float_mask), layer(x, x, tgt_mask=~causal_mask(T)), atol=1e-6)
    # tgt_is_causal is only a hint: without a tgt_mask it raises
    with pytest.raises(RuntimeError, match="attn_mask"):
        layer(x, x, tgt_is_causal=True)
