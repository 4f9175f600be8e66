"""Our written-out Transformer pieces compute what PyTorch's own do (float64, tight tolerance)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab.attention import (
    additive_mask, causal_mask, padding_mask, scaled_dot_product_attention, scaled_dot_product_attention_np,
)
from attnlab.blocks import (
    DecoderBlock, MultiHeadAttention, TransformerBlock, load_from_torch_decoder_layer,
    load_from_torch_encoder_layer, load_from_torch_mha,
)

TOL = {"atol": 1e-10, "rtol": 1e-9}
B, H, T, D = 2, 3, 7, 5


@pytest.fixture(autouse=True)
def _seed_and_double():
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def qkv():
    return torch.randn(B, H, T, D), torch.randn(B, H, T, D), torch.randn(B, H, T, D)


@pytest.mark.parametrize("kind", ["none", "causal", "padding", "additive", "causal+padding"])
def test_attention_equals_torch_sdpa(kind):
    q, k, v = qkv()
    masks = {
        "none": None,
        "causal": causal_mask(T),
        "padding": padding_mask([T, 4], T),
        "additive": additive_mask(causal_mask(T)),
        "causal+padding": causal_mask(T) & padding_mask([T, 4], T),
    }
    mask = masks[kind]
    ours, weights = scaled_dot_product_attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, **TOL)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T), **TOL)
    if kind == "causal":
        torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True), **TOL)
        assert torch.all(weights.triu(1) == 0)


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = qkv()
    mask = torch.ones(T, T, dtype=torch.bool)
    mask[2] = False  # query 2 may attend to nothing
    ours, weights = scaled_dot_product_attention(q, k, v, mask)
    assert not torch.isnan(ours).any() and not torch.isnan(weights).any()
    assert torch.all(weights[..., 2, :] == 0) and torch.all(ours[..., 2, :] == 0)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), **TOL)
    out_np, w_np = scaled_dot_product_attention_np(q.numpy(), k.numpy(), v.numpy(), mask.numpy())
    assert np.all(np.isfinite(out_np)) and np.all(w_np[..., 2, :] == 0)


def test_numpy_attention_equals_torch():
    q, k, v = qkv()
    mask = causal_mask(T)
    out_np, w_np = scaled_dot_product_attention_np(q.numpy(), k.numpy(), v.numpy(), mask.numpy())
    out_t, w_t = scaled_dot_product_attention(q, k, v, mask)
    np.testing.assert_allclose(out_np, out_t.numpy(), atol=1e-12)
    np.testing.assert_allclose(w_np, w_t.numpy(), atol=1e-12)


@pytest.mark.parametrize("with_padding", [False, True])
def test_multi_head_attention_equals_nn_multiheadattention(with_padding):
    d_model, n_heads = 12, 3
    theirs = nn.MultiheadAttention(d_model, n_heads, batch_first=True).eval()
    ours = load_from_torch_mha(MultiHeadAttention(d_model, n_heads), theirs).eval()
    x, memory = torch.randn(B, T, d_model), torch.randn(B, T + 2, d_model)
    keep = padding_mask([T + 2, 5], T + 2) if with_padding else None  # True = real token
    # nn.MultiheadAttention's key_padding_mask is True where a key is IGNORED: the opposite.
    ignore = ~keep[:, 0, 0, :] if with_padding else None
    want, want_w = theirs(x, memory, memory, key_padding_mask=ignore, average_attn_weights=False)
    got, got_w = ours(x, memory, mask=keep, need_weights=True)
    torch.testing.assert_close(got, want, **TOL)
    torch.testing.assert_close(got_w, want_w, **TOL)
    fused, _ = ours(x, memory, mask=keep)  # PyTorch's fused kernel path: same numbers
    torch.testing.assert_close(fused, want, **TOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_block_equals_nn_transformer_encoder_layer(norm_first):
    d_model, n_heads, d_ff = 16, 4, 40
    theirs = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    ours = load_from_torch_encoder_layer(TransformerBlock(d_model, n_heads, d_ff, norm_first=norm_first), theirs).eval()
    x = torch.randn(B, T, d_model)
    causal = causal_mask(T)
    torch.testing.assert_close(ours(x)[0], theirs(x), **TOL)
    # nn.Transformer* layers take a float mask to add (or True = blocked); ours: True = allowed.
    torch.testing.assert_close(ours(x, mask=causal)[0], theirs(x, src_mask=additive_mask(causal).double()), **TOL)
    torch.testing.assert_close(ours(x, is_causal=True)[0], theirs(x, src_mask=~causal), **TOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_equals_nn_transformer_decoder_layer(norm_first):
    d_model, n_heads, d_ff = 16, 4, 40
    theirs = nn.TransformerDecoderLayer(d_model, n_heads, d_ff, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    ours = load_from_torch_decoder_layer(DecoderBlock(d_model, n_heads, d_ff, norm_first=norm_first), theirs).eval()
    x, memory = torch.randn(B, T, d_model), torch.randn(B, T + 3, d_model)
    keep = padding_mask([T + 3, 6], T + 3)
    want = theirs(x, memory, tgt_mask=~causal_mask(T), memory_key_padding_mask=~keep[:, 0, 0, :])
    torch.testing.assert_close(ours(x, memory, memory_mask=keep), want, **TOL)


def test_causal_outputs_ignore_later_tokens():
    block = TransformerBlock(16, 4, norm_first=True).eval()
    x = torch.randn(1, T, 16)
    changed = x.clone()
    changed[:, 4:] = torch.randn(1, T - 4, 16)  # change tokens 4.. only
    before, after = block(x, is_causal=True)[0], block(changed, is_causal=True)[0]
    torch.testing.assert_close(before[:, :4], after[:, :4], **TOL)
    assert not torch.allclose(before[:, 4:], after[:, 4:])
