import pytest
import torch

from attnlab.blocks import EncoderDecoder
from attnlab.attention import padding_mask
from attnlab.errors import InputError
from attnlab.gpt import GPT, GPTConfig, next_token_probabilities


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, block_size=24, n_layer=2, n_head=4, n_embd=32)).eval()


def test_fused_and_written_out_attention_agree(model):
    idx = torch.randint(0, 40, (2, 20))
    fused = model(idx).logits
    model.set_fused(False)
    written = model(idx).logits
    torch.testing.assert_close(fused, written, atol=1e-5, rtol=1e-5)


def test_attention_maps_are_causal_distributions(model):
    out = model(torch.randint(0, 40, (2, 12)), return_attention=True)
    maps = out.attentions  # (layers, B, heads, T, T)
    assert maps.shape == (2, 2, 4, 12, 12)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 4, 12))
    assert torch.all(maps.triu(1) == 0)


def test_changing_a_later_token_never_changes_earlier_logits(model):
    idx = torch.randint(0, 40, (1, 16))
    changed = idx.clone()
    changed[0, 10] = (idx[0, 10] + 1) % 40
    before, after = model(idx).logits, model(changed).logits
    torch.testing.assert_close(before[:, :10], after[:, :10])
    assert not torch.allclose(before[:, 10:], after[:, 10:])


def test_weights_are_tied_and_loss_is_near_uniform_at_start(model):
    assert model.lm_head.weight is model.token_embedding.weight
    idx = torch.randint(0, 40, (4, 16))
    loss = model(idx, targets=idx).loss
    assert abs(loss.item() - torch.log(torch.tensor(40.0)).item()) < 0.5


def test_generation_extends_and_respects_block_size(model):
    out = model.generate(torch.zeros(2, 1, dtype=torch.long), max_new_tokens=30)
    assert out.shape == (2, 31)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 25, dtype=torch.long))


def test_top_k_one_is_greedy(model):
    idx = torch.randint(0, 40, (1, 5))
    sampled = model.generate(idx, 8, top_k=1)
    greedy = idx
    for _ in range(8):
        greedy = torch.cat((greedy, model(greedy).logits[:, -1].argmax(-1, keepdim=True)), dim=1)
    assert torch.equal(sampled, greedy)


def test_sampling_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    torch.testing.assert_close(next_token_probabilities(logits), torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    top2 = next_token_probabilities(logits, top_k=2)
    torch.testing.assert_close(top2, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    nucleus = next_token_probabilities(logits, top_p=0.8)  # 0.5 + 0.3 reach 0.8: keep two
    torch.testing.assert_close(nucleus, top2)
    assert next_token_probabilities(logits, top_p=0.1)[0, 0] == 1.0  # the best token always stays
    cold = next_token_probabilities(logits, temperature=0.1)
    assert cold[0, 0] > 0.99
    with pytest.raises(ValueError):
        next_token_probabilities(logits, temperature=-0.5)


def test_encoder_decoder_is_causal_and_respects_source_padding():
    torch.manual_seed(0)
    model = EncoderDecoder(src_vocab=20, tgt_vocab=30, d_model=32, n_heads=4, n_layers=2, dropout=0.0).eval()
    src, tgt = torch.randint(1, 20, (2, 9)), torch.randint(1, 30, (2, 6))
    keep = padding_mask([9, 5], 9)
    logits = model(src, tgt, src_mask=keep)
    assert logits.shape == (2, 6, 30)
    changed_src = src.clone()
    changed_src[1, 5:] = 0  # only padding positions of the second example change
    torch.testing.assert_close(model(changed_src, tgt, src_mask=keep), logits)
    changed_tgt = tgt.clone()
    changed_tgt[:, 4] = 0
    torch.testing.assert_close(model(src, changed_tgt, src_mask=keep)[:, :4], logits[:, :4])


def test_temperature_zero_is_greedy():
    logits = torch.tensor([[0.1, 2.0, 2.0, -1.0], [3.0, 0.0, 0.0, 0.0]])
    probs = next_token_probabilities(logits, temperature=0)
    assert torch.equal(probs, torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]))  # ties: the first
    with pytest.raises(InputError):
        next_token_probabilities(logits, temperature=-1)
